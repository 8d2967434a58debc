#include "control/config/control_config.hpp"

#include <arpa/inet.h>

#include <libconfig.h++>
#include <optional>

#include "common/config/settings.hpp"

namespace sekisho::control::config {

namespace {

using libconfig::Setting;
using common::config::fail;
using common::config::get_string;

int get_int(const std::string& file, const Setting& s, int lo, int hi) {
  return int(common::config::get_int(file, s, lo, hi, common::config::RangeWording::from_to));
}

// "HOST:PORT" (HOST may be "[IPv6]"); nullopt when it is not one.
std::optional<RelayEndpoint> parse_relay(const std::string& v) {
  size_t colon = v.rfind(':');
  if (colon == std::string::npos || colon == 0 || v.find_first_not_of("0123456789", colon + 1) != std::string::npos ||
      colon + 1 == v.size() || v.size() - colon > 6 || std::stoi(v.substr(colon + 1)) > 65535 ||
      std::stoi(v.substr(colon + 1)) == 0)
    return std::nullopt;
  RelayEndpoint r;
  r.host = v.substr(0, colon);
  if (r.host.size() > 2 && r.host.front() == '[') r.host = r.host.substr(1, r.host.size() - 2);
  r.port = uint16_t(std::stoi(v.substr(colon + 1)));
  return r;
}

void parse_listen(const std::string& file, const Setting& s, ControlConfig& c) {
  std::string v = get_string(file, s);
  std::string host, port;
  if (!v.empty() && v[0] == '[') {
    size_t close = v.find(']');
    if (close == std::string::npos || close + 1 >= v.size() || v[close + 1] != ':')
      fail(file, s, "'control.listen' must be \"ADDRESS:PORT\" or \"[IPv6]:PORT\", not \"" + v + "\"");
    host = v.substr(1, close - 1);
    port = v.substr(close + 2);
  } else {
    size_t colon = v.rfind(':');
    if (colon == std::string::npos || v.find(':') != colon)
      fail(file, s, "'control.listen' must be \"ADDRESS:PORT\" or \"[IPv6]:PORT\", not \"" + v + "\"");
    host = v.substr(0, colon);
    port = v.substr(colon + 1);
  }
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) != 1 && inet_pton(AF_INET6, host.c_str(), buf) != 1)
    fail(file, s, "'control.listen': \"" + host + "\" is not an IP address");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535)
    fail(file, s, "'control.listen': \"" + port + "\" is not a port (0-65535)");
  c.listen_address = host;
  c.listen_port = uint16_t(std::stoul(port));
  c.listen_line = int(s.getSourceLine());
}

}  // namespace

ControlConfig load_control_config(const std::string& path) {
  libconfig::Config cfg;
  common::config::read_file(cfg, path, "configuration file");
  ControlConfig c;
  c.file = path;
  const Setting& root = cfg.getRoot();
  if (!root.exists("control")) throw ConfigError(path, 1, "missing section 'control'");
  const Setting& g = root["control"];
  if (!g.isGroup()) fail(path, g, "'control' must be a group { ... }");
  for (int i = 0; i < g.getLength(); ++i) {
    const Setting& s = g[i];
    std::string key = s.getName();
    if (key == "listen") parse_listen(path, s, c);
    else if (key == "journal") c.journal = get_string(path, s);
    else if (key == "database") c.database = get_string(path, s);
    else if (key == "ingest_interval_ms") c.ingest_interval_ms = get_int(path, s, 50, 60000);
    else if (key == "http_threads") c.http_threads = get_int(path, s, 1, 64);
    else if (key == "http_timeout_s") c.http_timeout_s = get_int(path, s, 1, 3600);
    else if (key == "tls_certificate" || key == "tls_key") {
      (key == "tls_key" ? c.tls_key : c.tls_certificate) = get_string(path, s);
      (key == "tls_key" ? c.tls_key_line : c.tls_certificate_line) = int(s.getSourceLine());
      if ((key == "tls_key" ? c.tls_key : c.tls_certificate).empty())
        fail(path, s, "'control." + key + "' must not be empty");
    }
    // quarantine, release and audit (lead)
    else if (key == "spool") c.spool = get_string(path, s);
    else if (key == "quarantine_retention_days") c.quarantine_retention_days = get_int(path, s, 1, 3650);
    else if (key == "release_relay" || key == "notify_relay") {
      std::string& v = key == "release_relay" ? c.release_relay : c.notify_relay;
      RelayEndpoint& e = key == "release_relay" ? c.release_endpoint : c.notify_endpoint;
      v = get_string(path, s);
      e = {};
      if (!v.empty()) {
        std::optional<RelayEndpoint> r = parse_relay(v);
        if (!r) fail(path, s, "'control." + key + "' must be \"HOST:PORT\" (or \"\")");
        e = *r;
      }
    } else if (key == "notify_from") {
      c.notify_from = get_string(path, s);
      size_t at = c.notify_from.find('@');
      if (at == std::string::npos || at == 0 || at + 1 == c.notify_from.size() ||
          c.notify_from.find_first_of(" <>\"(),;:\\[]\r\n\t") != std::string::npos)
        fail(path, s, "'control.notify_from' must be a plain address (local@domain)");
    } else if (key == "release_tls") {
      c.release_tls = get_string(path, s);
      if (c.release_tls != "off" && c.release_tls != "opportunistic" && c.release_tls != "require")
        fail(path, s, "'control.release_tls' must be \"off\", \"opportunistic\" or \"require\"");
    } else if (key == "release_helo") c.release_helo = get_string(path, s);
    else if (key == "release_timeout_s") c.release_timeout_s = get_int(path, s, 1, 600);
    else if (key == "audit_key") c.audit_key = get_string(path, s);
    else if (key == "audit_anchor") c.audit_anchor = get_string(path, s);
    else if (key == "dataplane_socket") c.dataplane_socket = get_string(path, s);
    // rulesets (POLICY helper)
    else if (key == "dataplane_prefix") {
      std::string p = get_string(path, s);
      if (p.empty() || p.size() > 64 || p.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != std::string::npos)
        fail(path, s, "'control.dataplane_prefix' must be a DPDK file prefix (letters, digits, . _ -)");
      c.dataplane_socket = "/var/run/dpdk/" + p + "/dpdk_telemetry.v2";
    } else if (key == "rulesets_dir") {
      c.rulesets_dir = get_string(path, s);
      if (c.rulesets_dir.empty()) fail(path, s, "'control.rulesets_dir' must not be empty");
    } else if (key == "rulesets_max_upload_mb") c.rulesets_max_upload_mb = get_int(path, s, 1, 256);
    else fail(path, s, "unknown key 'control." + key + "'");
    if ((key == "journal" || key == "database") && (key == "journal" ? c.journal : c.database).empty())
      fail(path, s, "'control." + key + "' must not be empty");
  }
  if (c.tls_certificate.empty() != c.tls_key.empty())
    throw ConfigError(path, c.tls_certificate.empty() ? c.tls_key_line : c.tls_certificate_line,
                      c.tls_certificate.empty() ? "'control.tls_key' needs 'control.tls_certificate'"
                                                : "'control.tls_certificate' needs 'control.tls_key'");
  if (c.notify_relay.empty()) c.notify_endpoint = c.release_endpoint;
  return c;
}

}  // namespace sekisho::control::config
