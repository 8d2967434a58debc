// sekisho-dataplane: the bump-in-the-wire bridge.
//
//   sekisho-dataplane [-c FILE] [--check]
//
// Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad configuration or
// usage (the message names file, line and reason).
#include <csignal>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include <rte_telemetry.h>

#include "dataplane/dpdk/bridge.hpp"
#include "dataplane/config/dataplane_config.hpp"

namespace {

using sekisho::dataplane::Bridge;

// Telemetry callbacks are plain C functions; they reach the one Bridge of
// the process through this pointer, set before registration and cleared
// before the Bridge is destroyed.
Bridge* g_bridge = nullptr;

int tel_stats(const char*, const char*, rte_tel_data* d) {
  if (!g_bridge) return -1;
  g_bridge->stats(d);
  return 0;
}

int tel_flows(const char*, const char* params, rte_tel_data* d) {
  if (!g_bridge) return -1;
  int worker = -1;
  if (params && *params) worker = std::atoi(params);
  g_bridge->flows(d, worker, 100);
  return 0;
}

// /sekisho/bypass[,on|off]: sets the switch when given, reports it always.
int tel_bypass(const char*, const char* params, rte_tel_data* d) {
  if (!g_bridge) return -1;
  std::string p = params ? params : "";
  if (p == "on" || p == "1") g_bridge->set_bypass(true);
  else if (p == "off" || p == "0") g_bridge->set_bypass(false);
  else if (!p.empty()) return -EINVAL;
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_string(d, "bypass", g_bridge->bypass() ? "on" : "off");
  return 0;
}

// /sekisho/reload,FILE: loads an envelope policy file and swaps it in.
int tel_reload(const char*, const char* params, rte_tel_data* d) {
  if (!g_bridge || !params || !*params) return -EINVAL;
  uint64_t version = 0;
  size_t rules = 0;
  std::string err = g_bridge->reload_policy(params, version, rules);
  rte_tel_data_start_dict(d);
  if (!err.empty()) {
    rte_tel_data_add_dict_string(d, "error", err.substr(0, RTE_TEL_MAX_STRING_LEN - 1).c_str());
    return 0;
  }
  rte_tel_data_add_dict_u64(d, "version", version);
  rte_tel_data_add_dict_u64(d, "rules", rules);
  return 0;
}

int tel_rules(const char*, const char* params, struct rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  if (!g_bridge || !params || !*params) {
    rte_tel_data_add_dict_string(d, "error", "usage: /sekisho/rules,ARTIFACT (or none)");
    return 0;
  }
  uint64_t version = 0;
  std::string rs;
  std::string err = g_bridge->load_rules(params, version, rs);
  if (!err.empty()) {
    rte_tel_data_add_dict_string(d, "error", err.substr(0, RTE_TEL_MAX_STRING_LEN - 1).c_str());
    return 0;
  }
  rte_tel_data_add_dict_u64(d, "version", version);
  rte_tel_data_add_dict_string(d, "ruleset", rs.substr(0, RTE_TEL_MAX_STRING_LEN - 1).c_str());
  return 0;
}

// /sekisho/release,SHA256[,TTL_S]: the control plane is about to re-deliver
// a released message with this hash; pass it once (TTL default 600 s).
int tel_release(const char*, const char* params, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  std::string p = params ? params : "";
  size_t comma = p.find(',');
  std::string hash = p.substr(0, comma);
  uint64_t ttl = 600;
  if (comma != std::string::npos) {
    char* end = nullptr;
    ttl = std::strtoull(p.c_str() + comma + 1, &end, 10);
    if (!end || *end || ttl == 0 || ttl > 86400) ttl = 0;
  }
  if (!g_bridge || hash.empty() || ttl == 0) {
    rte_tel_data_add_dict_string(d, "error", "usage: /sekisho/release,SHA256HEX[,TTL_SECONDS 1..86400]");
    return 0;
  }
  size_t pending = 0;
  std::string r = g_bridge->release(hash, ttl, pending);
  if (r.rfind("error", 0) == 0) {
    rte_tel_data_add_dict_string(d, "error", r.c_str());
    return 0;
  }
  rte_tel_data_add_dict_string(d, "release", r.c_str());
  rte_tel_data_add_dict_u64(d, "pending", pending);
  rte_tel_data_add_dict_u64(d, "ttl", ttl);
  return 0;
}

void on_signal(int) { Bridge::request_stop(); }

void usage() {
  std::cerr << "usage: sekisho-dataplane [-c FILE] [--check]\n"
               "  -c FILE   configuration (default appliance/sekisho.conf)\n"
               "  --check   validate the configuration and exit\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string conf = "appliance/sekisho.conf";
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "-c" || a == "--config") && i + 1 < argc) conf = argv[++i];
    else if (a == "--check") check_only = true;
    else if (a == "-h" || a == "--help") { usage(); return 0; }
    else { std::cerr << "sekisho-dataplane: unknown argument '" << a << "'\n"; usage(); return 2; }
  }
  sekisho::dataplane::DataplaneConfig cfg;
  try {
    cfg = sekisho::dataplane::load_dataplane_config(conf);
  } catch (const sekisho::dataplane::ConfigError& e) {
    std::cerr << "sekisho-dataplane: " << e.what() << "\n";
    return 2;
  }
  if (check_only) {
    std::cout << conf << ": ok (" << cfg.ports.size() << " ports, " << cfg.pairs.size() << " bridges, "
              << cfg.workers << " workers)\n";
    return 0;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    Bridge bridge(cfg, argv[0]);
    g_bridge = &bridge;
    rte_telemetry_register_cmd("/sekisho/stats", tel_stats,
                               "Sekisho counters: ports, workers, io lcore. No parameters.");
    rte_telemetry_register_cmd("/sekisho/bypass", tel_bypass,
                               "Bypass switch: parameter on|off sets it; forwards everything uninspected when on.");
    rte_telemetry_register_cmd("/sekisho/reload", tel_reload,
                               "Loads an envelope policy file (parameter: its path) and publishes it with RCU.");
    rte_telemetry_register_cmd("/sekisho/rules", tel_rules,
                               "Loads a compiled ruleset artifact (parameter: its path, or none) and publishes it with RCU.");
    rte_telemetry_register_cmd("/sekisho/release", tel_release,
                               "Lets the next message with this SHA-256 pass once (a release from quarantine): "
                               "SHA256HEX[,TTL_SECONDS].");
    rte_telemetry_register_cmd("/sekisho/flows", tel_flows,
                               "Flow census per worker; parameter: a worker index to list up to 100 of its flows.");
    std::cout << "sekisho-dataplane: ready, " << cfg.workers << " worker(s), dispatch "
              << bridge.dispatch_name() << ", " << cfg.pairs.size() << " bridge(s)" << std::endl;
    bridge.run();
    std::cout << "sekisho-dataplane: final counters " << bridge.stats_json() << std::endl;
    g_bridge = nullptr;
  } catch (const sekisho::dataplane::ConfigError& e) {
    std::cerr << "sekisho-dataplane: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "sekisho-dataplane: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
