// Ports and EAL setup: the checks EAL would only report vaguely, EAL's
// arguments, the ports (paired, RSS or software dispatch, queues, mbuf
// pool) and each worker's lcore resources (rings, flow census, stream
// engines, TX buffers); and their teardown. Main thread only; every failure
// a configuration can cause is a ConfigError naming its key.
#include <net/if.h>
#include <sched.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <array>
#include <cctype>
#include <stdexcept>
#include <string>
#include <vector>

#include "dataplane/dpdk/bridge_state.hpp"

namespace sekisho::dataplane {

namespace {

bool has_lcore_option(const std::vector<std::string>& eal) {
  for (const auto& a : eal)
    if (a == "-l" || a == "-c" || a.rfind("--lcores", 0) == 0 || (a.rfind("-l", 0) == 0 && a.size() > 2 && isdigit(a[2])))
      return true;
  return false;
}

std::string af_packet_iface(const std::string& device) {
  auto pos = device.find("iface=");
  if (pos == std::string::npos) return "";
  auto end = device.find(',', pos);
  return device.substr(pos + 6, end == std::string::npos ? std::string::npos : end - pos - 6);
}

// A symmetric Toeplitz key: 0x6d5a repeated maps (a,b) and (b,a) alike.
std::array<uint8_t, 40> symmetric_rss_key() {
  std::array<uint8_t, 40> k{};
  for (size_t i = 0; i < k.size(); i += 2) { k[i] = 0x6d; k[i + 1] = 0x5a; }
  return k;
}

}  // namespace

void init_eal(BridgeState& s, const std::string& argv0) {
  const DataplaneConfig& cfg = s.cfg;
  // 1. Checks EAL would only report vaguely.
  for (const auto& p : cfg.ports) {
    if (p.dpdk_name().rfind("net_af_packet", 0) == 0) {
      std::string ifn = af_packet_iface(p.device);
      if (ifn.empty()) throw ConfigError(cfg.file, p.line, "port '" + p.name + "': net_af_packet needs iface=NAME");
      if (if_nametoindex(ifn.c_str()) == 0)
        throw ConfigError(cfg.file, p.line, "port '" + p.name + "': interface '" + ifn +
                                                "' does not exist in this network namespace");
    }
  }
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  sched_getaffinity(0, sizeof cpus, &cpus);
  std::vector<int> cpu_ids;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &cpus)) cpu_ids.push_back(c);
  if (cfg.workers > cpu_ids.size())
    throw ConfigError(cfg.file, cfg.workers_line,
                      "workers = " + std::to_string(cfg.workers) + ": this machine gives only " +
                          std::to_string(cpu_ids.size()) + " CPUs");

  // 2. EAL.
  std::vector<std::string> args = {argv0};
  args.insert(args.end(), cfg.eal.begin(), cfg.eal.end());
  if (!has_lcore_option(cfg.eal)) {
    // main lcore 0 (io), workers 1..N, spread over the CPUs we may use.
    std::string l = "--lcores=";
    for (unsigned i = 0; i <= cfg.workers; ++i)
      l += (i ? "," : "") + std::to_string(i) + "@" + std::to_string(cpu_ids[i % cpu_ids.size()]);
    args.push_back(l);
  }
  for (const auto& p : cfg.ports) {
    if (p.is_vdev()) args.push_back("--vdev=" + p.device);
    else { args.push_back("-a"); args.push_back(p.device); }
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (rte_eal_init(int(args.size()), argv.data()) < 0)
    throw ConfigError(cfg.file, cfg.eal_line, std::string("EAL initialisation failed: ") + rte_strerror(rte_errno));

}

void init_ports(BridgeState& s) {
  const DataplaneConfig& cfg = s.cfg;
  // 3. Ports.
  for (size_t i = 0; i < cfg.ports.size(); ++i) {
    uint16_t id;
    if (rte_eth_dev_get_port_by_name(cfg.ports[i].dpdk_name().c_str(), &id) != 0)
      throw ConfigError(cfg.file, cfg.ports[i].line, "port '" + cfg.ports[i].name + "': DPDK has no device '" +
                                                         cfg.ports[i].dpdk_name() + "' (probe failed?)");
    s.ports.push_back({cfg.ports[i].name, id, 0});
    s.index_of_port_id[id] = int(i);
  }
  for (const auto& pp : cfg.pairs) {
    s.ports[pp.a].peer = pp.b;
    s.ports[pp.b].peer = pp.a;
  }
  bool rss_ok = true;
  std::string rss_why;
  for (const Port& p : s.ports) {
    rte_eth_dev_info info;
    if (rte_eth_dev_info_get(p.id, &info) != 0) throw std::runtime_error("cannot query port " + p.name);
    if (!(info.flow_type_rss_offloads & RTE_ETH_RSS_IP) || info.max_rx_queues < cfg.workers ||
        info.max_tx_queues < cfg.workers) {
      rss_ok = false;
      rss_why = "port '" + p.name + "' (" + info.driver_name + ") has no RSS over " +
                std::to_string(cfg.workers) + " queues";
    }
  }
  if (cfg.dispatch == DispatchMode::rss && !rss_ok) throw ConfigError(cfg.file, cfg.dispatch_line, "dispatch = \"rss\": " + rss_why);
  s.rss = cfg.dispatch == DispatchMode::rss || (cfg.dispatch == DispatchMode::automatic && rss_ok);
  const unsigned need_lcores = cfg.workers + 1;
  if (rte_lcore_count() < need_lcores)
    throw ConfigError(cfg.file, cfg.workers_line ? cfg.workers_line : cfg.eal_line,
                      "workers = " + std::to_string(cfg.workers) + " needs " + std::to_string(need_lcores) +
                          " lcores; EAL gave " + std::to_string(rte_lcore_count()));

  s.pool = rte_pktmbuf_pool_create("sekisho_mbufs", cfg.mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, int(rte_socket_id()));
  if (!s.pool)
    throw ConfigError(cfg.file, cfg.eal_line, std::string("cannot create the mbuf pool (raise EAL memory -m?): ") +
                                                  rte_strerror(rte_errno));

  auto key = symmetric_rss_key();
  for (const Port& p : s.ports) {
    rte_eth_dev_info info;
    rte_eth_dev_info_get(p.id, &info);
    rte_eth_conf conf{};
    uint16_t nq = s.rss ? uint16_t(cfg.workers) : 1;
    if (s.rss) {
      conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
      conf.rx_adv_conf.rss_conf.rss_key = key.data();
      conf.rx_adv_conf.rss_conf.rss_key_len = uint8_t(key.size());
      conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    }
    int rc = rte_eth_dev_configure(p.id, nq, nq, &conf);
    if (rc != 0) throw std::runtime_error("port " + p.name + ": configure failed: " + rte_strerror(-rc));
    uint16_t nrx = uint16_t(cfg.rx_descriptors), ntx = uint16_t(cfg.tx_descriptors);
    rte_eth_dev_adjust_nb_rx_tx_desc(p.id, &nrx, &ntx);
    for (uint16_t q = 0; q < nq; ++q) {
      rc = rte_eth_rx_queue_setup(p.id, q, nrx, rte_eth_dev_socket_id(p.id), nullptr, s.pool);
      if (rc != 0) throw std::runtime_error("port " + p.name + ": rx queue setup failed: " + rte_strerror(-rc));
      rc = rte_eth_tx_queue_setup(p.id, q, ntx, rte_eth_dev_socket_id(p.id), nullptr);
      if (rc != 0) throw std::runtime_error("port " + p.name + ": tx queue setup failed: " + rte_strerror(-rc));
    }
    rc = rte_eth_dev_start(p.id);
    if (rc != 0) throw std::runtime_error("port " + p.name + ": start failed: " + rte_strerror(-rc));
    rte_eth_promiscuous_enable(p.id);  // a bump in the wire forwards every frame
  }
}

void init_workers(BridgeState& s) {
  const DataplaneConfig& cfg = s.cfg;
  // 4. Workers: rings, flow census and stream engines.
  unsigned lcore = rte_get_next_lcore(-1, 1, 0);
  for (unsigned w = 0; w < cfg.workers; ++w, lcore = rte_get_next_lcore(lcore, 1, 0)) {
    auto ws = std::make_unique<WorkerState>();
    ws->index = w;
    ws->lcore = lcore;
    int sock = int(rte_lcore_to_socket_id(lcore));
    if (!s.rss) {
      std::string rn = "sk_rx" + std::to_string(w), tn = "sk_tx" + std::to_string(w);
      ws->rx_ring = rte_ring_create(rn.c_str(), cfg.ring_size, sock, RING_F_SP_ENQ | RING_F_SC_DEQ);
      ws->tx_ring = rte_ring_create(tn.c_str(), cfg.ring_size, sock, RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (!ws->rx_ring || !ws->tx_ring) throw std::runtime_error("cannot create worker rings: " + std::string(rte_strerror(rte_errno)));
    }
    ws->census_slots = static_cast<net::FlowCensus::Entry*>(
        rte_zmalloc_socket("sk_census", sizeof(net::FlowCensus::Entry) * cfg.flow_table_size, RTE_CACHE_LINE_SIZE, sock));
    if (!ws->census_slots)
      throw ConfigError(cfg.file, cfg.eal_line, "cannot allocate the flow census (flow_table_size too large for EAL memory?)");
    ws->census = std::make_unique<net::FlowCensus>(ws->census_slots, cfg.flow_table_size);
    ws->tcp_limits.buffer_bytes = cfg.reassembly_buffer_bytes;
    ws->tcp_limits.retain_delivered = true;  // inline: retransmissions are compared until acknowledged
    ws->tcp_limits.conflict = cfg.conflict_drop ? tcp::ConflictPolicy::drop : tcp::ConflictPolicy::rewrite;
    ws->tcp_limits.cap = cfg.cap_fail_open ? tcp::CapPolicy::fail_open : tcp::CapPolicy::fail_closed;
    ws->pool = std::make_unique<tcp::BufferPool>(cfg.reassembly_buffer_bytes, cfg.reassembly_buffers);
    ws->flows = std::make_unique<tcp::FlowTable<pipeline::Connection>>(cfg.flow_table_size);
    ws->events.policy = &s.policy;
    ws->events.releases = &s.releases;
    ws->events.worker = w;
    ws->smtp_limits.end_of_data = cfg.end_of_data == "strict" ? smtp::EndOfData::strict : smtp::EndOfData::lenient;
    ws->events.smuggling = evaluator_policy(cfg).smuggling;
    rte_rcu_qsbr_thread_register(s.qs, w);
    if (!cfg.spool_dir.empty()) {
      std::string a = "sk_sp" + std::to_string(w), b = "sk_sd" + std::to_string(w);
      ws->spool_ring = rte_ring_create(a.c_str(), 1024, sock, RING_F_SP_ENQ | RING_F_SC_DEQ);
      ws->done_ring = rte_ring_create(b.c_str(), 1024, sock, RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (!ws->spool_ring || !ws->done_ring) throw std::runtime_error("cannot create the spool rings");
    }
    ws->events.lcore = lcore;
    if (!cfg.journal_dir.empty()) {
      std::string en = "sk_ev" + std::to_string(w);
      ws->events.ring = rte_ring_create(en.c_str(), 4096, sock, RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (!ws->events.ring) throw std::runtime_error("cannot create the event ring: " + std::string(rte_strerror(rte_errno)));
    }
    ws->holds = hold::HoldQueue(cfg.hold_timeout_pass);
    if (s.rss) {  // queue w of every port, buffered per port
      ws->tx.resize(s.ports.size());
      for (size_t o = 0; o < s.ports.size(); ++o)
        ws->tx[o] = TxBuffer{s.ports[o].id, uint16_t(w), 0, &ws->port[s.ports[o].id], {}};
    }
    s.workers.push_back(std::move(ws));
  }
  if (!s.rss) {  // the io lcore transmits on queue 0 of every port
    s.io.tx.resize(s.ports.size());
    for (size_t o = 0; o < s.ports.size(); ++o)
      s.io.tx[o] = TxBuffer{s.ports[o].id, 0, 0, &s.io.port[s.ports[o].id], {}};
  }
  s.tx_drain_tsc = (rte_get_tsc_hz() + US_PER_S - 1) / US_PER_S * kTxDrainUs;
}

void close_ports_and_workers(BridgeState& s) {
  for (const Port& p : s.ports) {
    rte_eth_dev_stop(p.id);
    rte_eth_dev_close(p.id);
  }
  for (auto& w : s.workers) {
    rte_ring_free(w->rx_ring);
    rte_ring_free(w->tx_ring);
    for (rte_ring* r : {w->spool_ring, w->done_ring}) {
      void* job;
      while (r && rte_ring_sc_dequeue(r, &job) == 0) {
        auto* j = static_cast<hold::SpoolJob*>(job);
        if (j->held) rte_pktmbuf_free(j->held);
        delete j;
      }
      rte_ring_free(r);
    }
    if (w->events.ring) {
      void* line;
      while (rte_ring_sc_dequeue(w->events.ring, &line) == 0) delete static_cast<std::string*>(line);
      rte_ring_free(w->events.ring);
    }
    rte_free(w->census_slots);
  }
  rte_mempool_free(s.pool);
}

}  // namespace sekisho::dataplane
