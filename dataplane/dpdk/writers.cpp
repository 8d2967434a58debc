// The writer threads: the event journal and the held-message spool. Plain
// threads of their own, never lcores: they make syscalls (write, fsync) and
// sleep when there is nothing to do. Each drains one ring per worker.
#include <rte_ring.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "dataplane/dpdk/bridge_state.hpp"
#include "dataplane/spool/spool.hpp"

namespace sekisho::dataplane {

// The journal writer: drains the workers' event rings into the event
// journal, flushing on its count/time bounds. A thread of its own, never an
// lcore: it makes syscalls.
void journal_loop(BridgeState& s, std::atomic<bool>& done) {
  spool::JournalOptions jo;
  jo.dir = s.cfg.journal_dir;
  jo.flush_count = s.cfg.journal_flush_count;
  jo.flush_interval = std::chrono::milliseconds(s.cfg.journal_flush_ms);
  spool::Journal journal(jo);
  void* lines[64];
  for (;;) {
    bool finishing = done.load();
    unsigned got = 0;
    for (auto& w : s.workers) {
      unsigned n = rte_ring_sc_dequeue_burst(w->events.ring, lines, 64, nullptr);
      for (unsigned i = 0; i < n; ++i) {
        auto* line = static_cast<std::string*>(lines[i]);
        journal.append(*line);
        delete line;
      }
      got += n;
    }
    journal.tick();
    if (finishing && got == 0) break;
    if (got == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  journal.flush();
}

// The spool writer: makes each quarantined message durable (file and
// directory fsync'ed) and hands the job back; the worker answers the client
// only then.
void spool_loop(BridgeState& s, std::atomic<bool>& done) {
  spool::SpoolWriter writer(s.cfg.spool_dir);
  void* jobs[16];
  for (;;) {
    bool finishing = done.load();
    unsigned got = 0;
    for (auto& w : s.workers) {
      unsigned n = rte_ring_sc_dequeue_burst(w->spool_ring, jobs, 16, nullptr);
      for (unsigned i = 0; i < n; ++i) {
        auto* job = static_cast<hold::SpoolJob*>(jobs[i]);
        if (s.cfg.spool_fault_delay_ms)  // fault injection (tests): a slow disk
          std::this_thread::sleep_for(std::chrono::milliseconds(s.cfg.spool_fault_delay_ms));
        spool::SpoolResult r = writer.write(job->id, job->header,
                                            {reinterpret_cast<const uint8_t*>(job->message.data()), job->message.size()});
        job->ok = r.ok;
        job->path = r.path;
        job->error = r.error;
        if (!r.ok) fprintf(stderr, "sekisho-dataplane: spool: %s: %s\n", job->id.c_str(), r.error.c_str());
        job->message.clear();
        job->message.shrink_to_fit();
        while (rte_ring_sp_enqueue(w->done_ring, job) != 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      got += n;
    }
    if (finishing && got == 0) break;
    if (got == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace sekisho::dataplane
