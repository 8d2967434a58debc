// Telemetry: the counters of ports, workers and the io lcore as one JSON
// tree (/sekisho/stats, and the final line on exit), the flow census
// (/sekisho/flows), and the conversion to rte_tel_data. Counter names come
// from the .def tables (counters.def, port_counters.def, io_counters.def,
// stream_counters.def, message_counters.def, tcp/tcp_events.def,
// net/decode_errors.def); only gauges are listed here. Runs on the
// telemetry thread (and the main thread at exit), reading with relaxed loads.
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include <nlohmann/json.hpp>

#include <mutex>
#include <string>

#include "dataplane/dpdk/bridge.hpp"
#include "dataplane/dpdk/bridge_state.hpp"

namespace sekisho::dataplane {

namespace {

const char* const kWorkerCounterNames[] = {
#define X(name, text) #name,
#include "dataplane/dpdk/counters.def"
#undef X
};

nlohmann::json snapshot(BridgeState& s) {
  reclaim_policies(s);  // the control side's own call: frees what no one holds (policy_swap.cpp)
  using nlohmann::json;
  json j;
  j["dispatch"] = s.rss ? "rss" : "software";
  j["bypass"] = s.bypass.load();
  {
    std::lock_guard<std::mutex> lock(s.policy_mu);
    const PolicySet* p = s.policy.load();
    j["policy"] = {{"version", p->version}, {"source", p->source}, {"rules", p->policy.envelope.size()},
                   {"retired_pending", s.policy_retired - s.policy_freed}, {"freed", s.policy_freed}};
    if (p->content)
      j["policy"]["ruleset"] = {{"path", p->content->path}, {"version", std::string(p->content->ruleset->version())},
                                {"rules", p->content->ruleset->rule_count()}, {"load", p->content->version}};
    else
      j["policy"]["ruleset"] = nullptr;
  }
  j["uptime_s"] = s.started_tsc ? double(rte_rdtsc() - s.started_tsc) / double(rte_get_tsc_hz()) : 0.0;
  json ports = json::object();
  for (const Port& p : s.ports) {
    PortCounters sum;
    auto add = [&](const PortCounters& c) {
#define X(name, text) sum.name += read_counter(c.name);
#include "dataplane/dpdk/port_counters.def"
#undef X
    };
    add(s.io.port[p.id]);
    for (const auto& w : s.workers) add(w->port[p.id]);
    rte_eth_stats es{};
    rte_eth_stats_get(p.id, &es);
    json pj = {{"port_id", p.id},
               {"peer", s.ports[p.peer].name},
               {"hw_ipackets", es.ipackets},
               {"hw_opackets", es.opackets},
               {"hw_imissed", es.imissed},
               {"hw_ierrors", es.ierrors},
               {"hw_oerrors", es.oerrors},
               {"hw_rx_nombuf", es.rx_nombuf}};
#define X(name, text) pj[#name] = sum.name;
#include "dataplane/dpdk/port_counters.def"
#undef X
    ports[p.name] = pj;
  }
  j["ports"] = ports;
  json workers = json::object();
  json totals = json::object();
  for (const auto& w : s.workers) {
    json wj;
    wj["lcore"] = w->lcore;
    for (size_t i = 0; i < kWorkerCounterCount; ++i) {
      uint64_t v = read_counter(w->counters.v[i]);
      wj[kWorkerCounterNames[i]] = v;
      totals[kWorkerCounterNames[i]] = totals.value(kWorkerCounterNames[i], uint64_t(0)) + v;
    }
    json dec = json::object();
    for (size_t i = 1; i < net::kDecodeStatusCount; ++i) {  // 0 is ok
      uint64_t v = read_counter(w->counters.decode[i]);
      const char* n = net::decode_status_name(net::DecodeStatus(i));
      dec[n] = v;
    }
    wj["decode"] = dec;
    wj["flows"] = w->census->size();
    json stream = json::object();
    for (size_t i = 0; i < tcp::kEventCount; ++i)
      stream[tcp::event_name(tcp::Event(i))] = read_counter(w->tcp_shared[i]);
    stream["tracked_flows"] = w->flows->size();
    stream["reassembly_buffers_in_use"] = w->pool->in_use();
#define X(name, text) stream[#name] = read_counter(w->stream.name);
#include "dataplane/dpdk/stream_counters.def"
#undef X
#define X(field, name, text) stream[#name] = read_counter(w->events.field);
#include "dataplane/dpdk/message_counters.def"
#undef X
    {
      uint64_t total = 0;
      for (const auto& c : w->hold_hist) total += read_counter(c);
      auto pct = [&](double q) -> uint64_t {
        uint64_t want = uint64_t(q * double(total) + 0.999999), seen = 0;
        for (unsigned b = 0; b <= WorkerState::kHoldBuckets; ++b) {
          seen += read_counter(w->hold_hist[b]);
          if (seen >= want && want) return (b + 1) * 100;  // upper edge of the bucket, ns
        }
        return 0;
      };
      stream["hold_samples"] = total;
      stream["hold_p50_ns"] = pct(0.50);
      stream["hold_p99_ns"] = pct(0.99);
    }
    wj["stream"] = stream;
    workers[std::to_string(w->index)] = wj;
  }
  j["workers"] = workers;
  j["totals"] = totals;
  if (!s.rss) {
    json io = json::object();
#define X(name, text) io[#name] = read_counter(s.io.name);
#include "dataplane/dpdk/io_counters.def"
#undef X
    j["io"] = io;
  }
  return j;
}

// Converts a JSON tree into telemetry data: objects become dicts (nested),
// numbers u64/int, strings strings, arrays of scalars arrays.
void to_tel(const nlohmann::json& j, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto& v = it.value();
    const char* k = it.key().c_str();
    if (v.is_object()) {
      rte_tel_data* c = rte_tel_data_alloc();
      to_tel(v, c);
      rte_tel_data_add_dict_container(d, k, c, 0);
    } else if (v.is_number_unsigned()) {
      rte_tel_data_add_dict_u64(d, k, v.get<uint64_t>());
    } else if (v.is_number_integer()) {
      rte_tel_data_add_dict_int(d, k, int(v.get<int64_t>()));
    } else if (v.is_number_float()) {
      rte_tel_data_add_dict_u64(d, k, uint64_t(v.get<double>()));
    } else if (v.is_string()) {
      rte_tel_data_add_dict_string(d, k, v.get<std::string>().c_str());
    } else if (v.is_boolean()) {
      rte_tel_data_add_dict_int(d, k, v.get<bool>() ? 1 : 0);
    }
  }
}

}  // namespace

void Bridge::stats(rte_tel_data* d) const { to_tel(snapshot(*s_), d); }

std::string Bridge::stats_json() const { return snapshot(*s_).dump(); }

void Bridge::flows(rte_tel_data* d, int worker, unsigned limit) const {
  const BridgeState& s = *s_;
  nlohmann::json j = nlohmann::json::object();
  for (const auto& w : s.workers) {
    uint64_t both = 0, one = 0, tcp = 0, tcp_one = 0;
    nlohmann::json list = nlohmann::json::object();
    unsigned listed = 0;
    const net::FlowCensus& c = *w->census;
    for (uint32_t i = 0; i < c.capacity(); ++i) {
      const auto& e = c.slot(i);
      if (!net::FlowCensus::used(e)) continue;
      uint64_t ab = net::FlowCensus::pkts(e, 0), ba = net::FlowCensus::pkts(e, 1);
      bool two = ab && ba;
      (two ? both : one) += 1;
      if (e.key.proto == net::kProtoTcp) { ++tcp; if (!two) ++tcp_one; }
      if (int(w->index) == worker && listed < limit) {
        bool v4 = e.key.a[10] == 0xff && e.key.a[11] == 0xff && !e.key.a[0];
        net::L3 fam = v4 ? net::L3::ipv4 : net::L3::ipv6;
        list[std::to_string(listed++)] = {
            {"proto", e.key.proto},
            {"a", net::format_endpoint(e.key.a, e.key.pa, fam)},
            {"b", net::format_endpoint(e.key.b, e.key.pb, fam)},
            {"pkts_a_to_b", ab},
            {"pkts_b_to_a", ba}};
      }
    }
    nlohmann::json wj = {{"flows", both + one}, {"both_directions", both}, {"one_direction", one},
                         {"tcp_flows", tcp}, {"tcp_one_direction", tcp_one}};
    if (int(w->index) == worker) wj["list"] = list;
    j[std::to_string(w->index)] = wj;
  }
  to_tel(j, d);
}

const char* worker_counter_name(size_t i) { return i < kWorkerCounterCount ? kWorkerCounterNames[i] : "?"; }

}  // namespace sekisho::dataplane
