// The background ingester of sekisho-control: every interval, one pass
// over the journal (JournalIngester), then held messages from the spool and
// quarantine expiry, then notifications of policy decisions. Each line of
// progress and each new error goes to stderr ("sekisho-control: ...");
// an error ends the pass and the next pass retries (the same error is
// reported once until it changes).
//
// Thread-safety: run() on one thread (it uses its own database connection
// through the objects given); stop() from any thread ends run() after the
// pass in progress (a pass commits or rolls back whole batches).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include "control/ingest/journal_ingest.hpp"
#include "control/notify/notifier.hpp"
#include "control/quarantine/quarantine.hpp"
#include "control/tracking/store.hpp"

namespace sekisho::control::ingest {

class IngestLoop {
 public:
  // quarantine and notifier may be null (that step is skipped); all must
  // outlive the loop.
  IngestLoop(std::string journal_dir, std::chrono::milliseconds interval, tracking::Store& store,
             quarantine::Quarantine* quarantine = nullptr, notify::Notifier* notifier = nullptr);

  // Runs passes until stop().
  void run();
  void stop();

 private:
  JournalIngester ingester_;
  quarantine::Quarantine* quarantine_;
  notify::Notifier* notifier_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

}  // namespace sekisho::control::ingest
