// The bridge's life: construction in the order of its dependencies, the
// threads and lcores of run(), teardown. What each step does lives in the
// file named for its concern:
//
//   ports.cpp        EAL, ports, per-lcore resources (rings, census, engines, TX buffers)
//   policy_swap.cpp  the first policy, RCU and its defer queue, reload and ruleset swap
//   loops.cpp        the worker and io loops (bursts, TX buffers drained on a TSC deadline)
//   inspect.cpp      one SMTP-port segment through the engines; held messages; flow sweep
//   worker_events.*  the verdict hook (WorkerEvents) and the policy it reads
//   writers.cpp      the journal and spool writer threads
//   telemetry.cpp    counters and flows as telemetry data
#include "dataplane/dpdk/bridge.hpp"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "dataplane/dpdk/bridge_state.hpp"
#include "dataplane/spool/spool.hpp"

namespace sekisho::dataplane {

std::atomic<bool> g_stop{false};

void Bridge::request_stop() { g_stop.store(true); }

void Bridge::set_bypass(bool on) { s_->bypass.store(on); }

std::string Bridge::release(const std::string& sha256_hex, uint64_t ttl_s, size_t& pending) {
  uint64_t now = uint64_t(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
  auto r = s_->releases.add(sha256_hex, now, ttl_s);
  pending = s_->releases.pending();
  switch (r) {
    case pipeline::ReleaseList::AddResult::added: return "added";
    case pipeline::ReleaseList::AddResult::refreshed: return "refreshed";
    case pipeline::ReleaseList::AddResult::bad_hash: return "error: not a SHA-256 in hex";
    case pipeline::ReleaseList::AddResult::full: return "error: release list full";
  }
  return "error";
}
bool Bridge::bypass() const { return s_->bypass.load(); }

Bridge::Bridge(const DataplaneConfig& cfg, const std::string& argv0) : s_(std::make_unique<BridgeState>()) {
  BridgeState& s = *s_;
  s.cfg = cfg;
  s.index_of_port_id.fill(-1);
  init_eal(s, argv0);  // 1-2. checks, EAL
  init_ports(s);       // 3. ports, dispatch mode, mbuf pool

  for (unsigned port : cfg.smtp_ports) s.smtp_port[port] = true;
  for (unsigned port : cfg.starttls_mask_ports) s.mask_starttls[port] = true;
  s.desync_pass = cfg.desync_action == "pass";
  // Messages are retained for quarantine whenever a spool exists: a policy
  // reloaded later may quarantine what the first one passed.
  s.retain = !cfg.spool_dir.empty() && cfg.retain_bytes > 0;
  s.collect.text_bytes = s.collect.raw_text_bytes = s.collect.message_bytes = cfg.scan_bytes;
  init_policy(s);  // the first policy set, RCU
  if (!cfg.spool_dir.empty()) {
    try {
      spool::SpoolWriter probe(cfg.spool_dir);
    } catch (const std::exception& e) {
      throw ConfigError(cfg.file, cfg.eal_line, std::string("spool: ") + e.what());
    }
  }
  s.tsc_hz = double(rte_get_tsc_hz());
  s.tsc_at_start = rte_rdtsc();
  s.wall_at_start = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (!cfg.journal_dir.empty()) {
    try {
      spool::JournalOptions jo;
      jo.dir = cfg.journal_dir;
      spool::Journal probe(jo);  // fails now, with the path, if the directory is unusable
    } catch (const std::exception& e) {
      throw ConfigError(cfg.file, cfg.eal_line, std::string("journal: ") + e.what());
    }
  }
  init_workers(s);  // 4. rings, flow census, stream engines, TX buffers
}

Bridge::~Bridge() {
  BridgeState& s = *s_;
  close_ports_and_workers(s);
  free_policies(s);
  rte_eal_cleanup();
}

const char* Bridge::dispatch_name() const { return s_->rss ? "rss" : "software"; }

void Bridge::run() {
  BridgeState& s = *s_;
  s.started_tsc = rte_rdtsc();
  std::atomic<bool> journal_done{false};
  std::thread journal;
  if (!s.cfg.journal_dir.empty()) journal = std::thread(journal_loop, std::ref(s), std::ref(journal_done));
  std::atomic<bool> spool_done{false};
  std::thread spool;
  if (!s.cfg.spool_dir.empty()) spool = std::thread(spool_loop, std::ref(s), std::ref(spool_done));
  std::vector<std::pair<BridgeState*, WorkerState*>> args;
  args.reserve(s.workers.size());
  for (auto& w : s.workers) args.emplace_back(&s, w.get());
  for (size_t i = 0; i < s.workers.size(); ++i)
    rte_eal_remote_launch(launch_worker, &args[i], s.workers[i]->lcore);
  if (s.rss) {
    while (!g_stop.load()) rte_delay_us_sleep(10000);
  } else {
    io_loop(s);
  }
  rte_eal_mp_wait_lcore();
  spool_done.store(true);
  if (spool.joinable()) spool.join();
  // Workers are stopped: end their open flows so every session is reported.
  for (auto& w : s.workers) {
    w->flows->for_each([&](tcp::FlowTable<pipeline::Connection>::Slot& slot) { slot.value.close(w->tcp_local); });
    publish_stream(*w);
  }
  journal_done.store(true);
  if (journal.joinable()) journal.join();
  reclaim_policies(s);
}

}  // namespace sekisho::dataplane
