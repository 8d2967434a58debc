// The held-message spool and the event journal: the two files the
// dataplane hands to the control plane. Both run on a writer thread, never
// on a worker lcore (they do syscalls and may allocate).
//
// Spool layout (maildir-like, one file per message, atomic by rename):
//   DIR/tmp/ID.msg   being written
//   DIR/new/ID.msg   durable: fsync'ed file and directory; the control plane
//                    takes it from here
// File format: one line of JSON (the envelope and session facts), "\n",
// then the message bytes exactly as the client sent them (after
// dot-unstuffing).
//
// Journal layout: DIR/events-SEQ.jsonl, one JSON object per line, appended;
// a file is closed and the next SEQ opened after max_bytes or max_age.
// Lines are written (write(2)) and fdatasync'ed when flush_count lines are
// pending or flush_interval has passed since the oldest pending line; a
// crash loses at most those pending lines.
//
// Thread-safety: one instance per writer thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sekisho::spool {

struct SpoolResult {
  bool ok = false;
  std::string path;   // DIR/new/ID.msg when ok
  std::string error;  // what failed (errno text), when not ok
};

class SpoolWriter {
 public:
  // Creates DIR/tmp and DIR/new when missing. Throws std::runtime_error if
  // DIR cannot be used at all (start-up only).
  explicit SpoolWriter(std::string dir);

  // Writes one held message durably. Returns only after file and directory
  // are fsync'ed; on any failure nothing is left in new/.
  SpoolResult write(std::string_view id, std::string_view header_json, std::span<const uint8_t> message);

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int new_fd_ = -1;  // DIR/new, kept open for fsync
};

struct SpoolEntry {
  std::string header_json;
  std::string message;
};
// Reads a spool file back (tests, control plane). Returns false on a file
// that is not a complete spool entry.
bool read_spool_file(const std::string& path, SpoolEntry& out);

struct JournalOptions {
  std::string dir;
  uint64_t max_bytes = 64 << 20;
  std::chrono::seconds max_age{3600};
  unsigned flush_count = 64;
  std::chrono::milliseconds flush_interval{200};
};

class Journal {
 public:
  explicit Journal(JournalOptions opt);  // throws std::runtime_error if dir is unusable
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Queues one event (a JSON object without newline); flushes by policy.
  // Returns false if a flush failed (the event stays pending and is retried).
  bool append(std::string_view json_line);
  // Flushes if the interval has passed; call periodically.
  bool tick();
  // Writes and syncs everything pending now.
  bool flush();

  uint64_t events_written() const { return written_; }
  uint64_t flush_failures() const { return flush_failures_; }
  const std::string& current_path() const { return path_; }

 private:
  bool open_next();
  JournalOptions opt_;
  std::string pending_;
  unsigned pending_count_ = 0;
  std::chrono::steady_clock::time_point oldest_pending_{};
  std::chrono::steady_clock::time_point opened_{};
  int fd_ = -1;
  uint64_t seq_ = 0;
  uint64_t file_bytes_ = 0;
  uint64_t written_ = 0;
  uint64_t flush_failures_ = 0;
  std::string path_;
};

// A message id: "SK" + 13 base32 characters of time (µs) + lcore + counter.
// Unique per process run and sortable by time.
std::string make_message_id(uint64_t unix_us, unsigned lcore, uint32_t counter);

}  // namespace sekisho::spool
