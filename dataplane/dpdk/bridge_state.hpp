// The per-lcore and shared state of the bridge, below every file of
// dataplane/dpdk/ that uses it (ports.cpp, loops.cpp, inspect.cpp,
// writers.cpp, policy_swap.cpp, telemetry.cpp, bridge.cpp), and the
// functions they give each other. Private to dataplane/dpdk/.
//
// Ownership: BridgeState is built and torn down on the main thread. A
// WorkerState is written by its worker lcore only (counters published with
// relaxed single-writer stores, read by the telemetry thread); IoState by
// the io lcore. The policy pointer is published with RCU (policy_swap.cpp).
#pragma once

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane/config/dataplane_config.hpp"
#include "dataplane/dpdk/counters.hpp"
#include "dataplane/dpdk/worker_events.hpp"
#include "dataplane/hold/hold_queue.hpp"
#include "dataplane/net/flow_census.hpp"
#include "dataplane/net/packet.hpp"
#include "dataplane/pipeline/release_list.hpp"
#include "dataplane/pipeline/connection.hpp"
#include "dataplane/tcp/flow_table.hpp"
#include "dataplane/tcp/tcp_stream.hpp"

struct rte_rcu_qsbr_dq;

namespace sekisho::dataplane {

inline constexpr unsigned kMaxBurst = 256;
inline constexpr unsigned kPrefetchAhead = 3;
inline constexpr unsigned kIdleRoundsBeforeSleep = 64;
inline constexpr unsigned kTxRetries = 4;
inline constexpr unsigned kTxDrainUs = 100;  // a TX buffer waits at most this long (l3fwd's BURST_TX_DRAIN_US)
inline constexpr unsigned kMaxPorts = RTE_MAX_ETHPORTS;

extern std::atomic<bool> g_stop;  // set by signal handlers; read by every loop

inline void add_relaxed(uint64_t& shared, uint64_t delta) {
  if (delta) __atomic_store_n(&shared, __atomic_load_n(&shared, __ATOMIC_RELAXED) + delta, __ATOMIC_RELAXED);
}

// Port counters kept per writing lcore, summed by the reader (port_counters.def).
struct PortCounters {
#define X(name, text) uint64_t name = 0;
#include "dataplane/dpdk/port_counters.def"
#undef X
};

// Stream counters a worker keeps beside the TCP engine's (stream_counters.def).
struct StreamCounters {
#define X(name, text) uint64_t name = 0;
#include "dataplane/dpdk/stream_counters.def"
#undef X
};

struct Port {
  std::string name;
  uint16_t id = 0;
  unsigned peer = 0;  // index of the paired port
};

// Frames waiting for one TX queue of one port, as l3fwd keeps them: sent
// when |flush_at| are buffered, when the lcore's TSC drain deadline passes,
// or before the lcore idles. Written by one lcore.
struct TxBuffer {
  uint16_t port_id = 0;
  uint16_t queue = 0;
  unsigned n = 0;
  PortCounters* counters = nullptr;  // of the writing lcore
  rte_mbuf* m[kMaxBurst];
};

// Frames the worker writes itself during a burst, sent after the burst's
// forwarded frames (m->port says where they came from, as for any frame).
struct Injected {
  static constexpr unsigned kMax = 64;
  rte_mbuf* m[kMax];
  unsigned n = 0;
};

struct alignas(RTE_CACHE_LINE_SIZE) WorkerState {
  unsigned index = 0;
  unsigned lcore = 0;
  rte_ring* rx_ring = nullptr;   // io -> worker (software dispatch)
  rte_ring* tx_ring = nullptr;   // worker -> io
  net::FlowCensus::Entry* census_slots = nullptr;
  std::unique_ptr<net::FlowCensus> census;
  CounterBlock counters;                    // published
  std::array<PortCounters, kMaxPorts> port; // rss mode only
  std::vector<TxBuffer> tx;                 // rss mode: by ports[] index
  // Stream inspection: TCP reassembly with normalisation feeding SMTP.
  tcp::Limits tcp_limits;
  smtp::Limits smtp_limits;
  std::unique_ptr<tcp::BufferPool> pool;
  std::unique_ptr<tcp::FlowTable<pipeline::Connection>> flows;
  tcp::EventCounters tcp_local{};           // accumulated in the loop
  tcp::EventCounters tcp_shared{};          // published
  StreamCounters stream;
  // Hold latency of passed messages: from the worker taking the segment that
  // ends a message to that segment being handed on (100 ns buckets, 1 ms).
  static constexpr unsigned kHoldBuckets = 10000;
  std::vector<uint64_t> hold_hist = std::vector<uint64_t>(kHoldBuckets + 1, 0);
  uint64_t hold_t0[kMaxBurst];
  unsigned hold_n = 0;
  bool hold_ended = false;  // set by inspect_segment for the segment at hand
  WorkerEvents events;
  rte_ring* spool_ring = nullptr;  // worker -> spool thread (SpoolJob*)
  rte_ring* done_ring = nullptr;   // spool thread -> worker
  hold::HoldQueue holds;           // held segments waiting for the spool
};

struct alignas(RTE_CACHE_LINE_SIZE) IoState {
  std::array<PortCounters, kMaxPorts> port;
  std::vector<TxBuffer> tx;  // by ports[] index
#define X(name, text) uint64_t name = 0;
#include "dataplane/dpdk/io_counters.def"
#undef X
};

struct BridgeState {
  DataplaneConfig cfg;
  std::atomic<bool> bypass{false};  // telemetry /sekisho/bypass: forward everything uninspected
  bool retain = false;              // some rule quarantines: keep a copy of every message
  mime::CollectLimits collect;      // what each open message keeps for the content scan
  // The policy (policy_swap.cpp): published with RCU, replaced sets go
  // through the defer queue, then wait in |draining| while messages hold them.
  std::atomic<PolicySet*> policy{nullptr};
  pipeline::ReleaseList releases;       // telemetry /sekisho/release: pass these once
  rte_rcu_qsbr* qs = nullptr;       // workers report quiescence once per loop
  rte_rcu_qsbr_dq* dq = nullptr;    // replaced sets until their grace period ends
  std::mutex policy_mu;             // reload, reclaim and snapshot (control side only)
  std::vector<PolicySet*> draining; // past the grace period, still held by messages
  uint64_t ruleset_loads = 0;       // under policy_mu
  uint64_t policy_versions = 0, policy_retired = 0, policy_freed = 0;
  std::array<bool, 65536> smtp_port{};
  std::array<bool, 65536> mask_starttls{};
  bool desync_pass = false;  // cfg.desync_action == "pass"
  double wall_at_start = 0;  // unix seconds when tsc_at_start was read
  uint64_t tsc_at_start = 0;
  double tsc_hz = 1;
  uint64_t tx_drain_tsc = 0;  // kTxDrainUs in TSC cycles
  bool rss = false;
  rte_mempool* pool = nullptr;
  std::vector<Port> ports;
  std::array<int, kMaxPorts> index_of_port_id{};  // DPDK port id -> ports[] index
  std::vector<std::unique_ptr<WorkerState>> workers;
  IoState io;
  uint64_t started_tsc = 0;
};

inline double wall_now(const BridgeState& s) {
  return s.wall_at_start + double(rte_rdtsc() - s.tsc_at_start) / s.tsc_hz;
}

// The ports[] index a frame that came in on |m->port| leaves by.
inline unsigned peer_index(const BridgeState& s, const rte_mbuf* m) {
  return s.ports[unsigned(s.index_of_port_id[m->port])].peer;
}

// ports.cpp: EAL, ports and per-lcore resources.
void init_eal(BridgeState& s, const std::string& argv0);
void init_ports(BridgeState& s);
void init_workers(BridgeState& s);
void close_ports_and_workers(BridgeState& s);

// policy_swap.cpp: the first policy, RCU and its defer queue.
void init_policy(BridgeState& s);
void reclaim_policies(BridgeState& s);
void free_policies(BridgeState& s);

// inspect.cpp: one SMTP-port segment through the engines; held messages.
enum class Disposition : uint8_t { forward, drop, parked };
Disposition inspect_segment(BridgeState& s, WorkerState& w, rte_mbuf* m, const net::Packet& p, Injected& out,
                            CounterBlock& d);
void settle_held(BridgeState& s, WorkerState& w, Injected& out);
void sweep_flows(BridgeState& s, WorkerState& w);

// loops.cpp: the lcore loops.
int launch_worker(void* arg);  // a std::pair<BridgeState*, WorkerState*>
void io_loop(BridgeState& s);
void publish_stream(WorkerState& w);

// writers.cpp: the journal and spool threads (syscalls: never on an lcore).
void journal_loop(BridgeState& s, std::atomic<bool>& done);
void spool_loop(BridgeState& s, std::atomic<bool>& done);

}  // namespace sekisho::dataplane
