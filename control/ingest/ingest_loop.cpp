#include "control/ingest/ingest_loop.hpp"

#include <iostream>

namespace sekisho::control::ingest {

namespace {

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

IngestLoop::IngestLoop(std::string journal_dir, std::chrono::milliseconds interval, tracking::Store& store,
                       quarantine::Quarantine* quarantine, notify::Notifier* notifier)
    : ingester_(std::move(journal_dir), store), quarantine_(quarantine), notifier_(notifier), interval_(interval) {}

void IngestLoop::run() {
  std::string last_error;
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    try {
      IngestStats st = ingester_.pass();
      if (st.events_new || st.bad_lines || st.abandoned_tails)
        std::cerr << "sekisho-control: ingested " << st.events_new << " events (" << st.events_seen
                  << " already stored, " << st.bad_lines << " bad lines)\n";
      if (quarantine_) {
        // Held messages from the spool, then retention.
        int64_t now = now_us();
        quarantine::SpoolStats qs = quarantine_->ingest_spool(now);
        if (qs.stored || qs.bad)
          std::cerr << "sekisho-control: quarantined " << qs.stored << " held messages (" << qs.bad
                    << " bad spool files moved to bad/)\n";
        if (size_t n = quarantine_->expire(now)) std::cerr << "sekisho-control: " << n << " quarantined messages expired\n";
      }
      if (notifier_) {
        notify::Stats ns = notifier_->pass(now_us());
        if (ns.sent || ns.failed || ns.no_relay)
          std::cerr << "sekisho-control: notifications: " << ns.sent << " sent, " << ns.failed << " failed, "
                    << ns.no_relay << " not sent (no relay)\n";
      }
      last_error.clear();
    } catch (const std::exception& e) {
      if (last_error != e.what()) std::cerr << "sekisho-control: ingest: " << e.what() << "\n";
      last_error = e.what();
    }
    lock.lock();
    cv_.wait_for(lock, interval_, [&] { return stop_; });
  }
}

void IngestLoop::stop() {
  std::lock_guard g(mu_);
  stop_ = true;
  cv_.notify_all();
}

}  // namespace sekisho::control::ingest
