// The event journal on disk: DIR/events-SEQ.jsonl, one event per line
// (to_line of event.hpp), appended by one writer, read by a cursor.
//
// Writer: a file is closed and the next SEQ opened after max_bytes or
// max_age, and after a failed write (a short write may have left a partial
// line: every file is a sequence of whole lines up to its end, except
// perhaps a last partial line of a file the writer has left). Lines are
// written (write(2)) and fdatasync'ed when flush_count lines are pending or
// flush_interval has passed since the oldest pending line; a crash loses at
// most those pending lines. A restart continues after the highest SEQ:
// files are never reopened.
//
// Reader: every complete line after a position (file name, byte offset).
// A last line without its newline is left for the next read, unless a
// newer file exists (the writer has left it for good): that tail is
// skipped and reported. A line over max_line_bytes is skipped and reported.
// Files removed before they were read are gone; reading continues at the
// next one. A file shorter than the position is read again from its start.
//
// Thread-safety: one writer per directory and thread; one reader per thread.
// Errors: the writer's constructor throws std::runtime_error if DIR is
// unusable; append/flush/tick return false on a failed write. The reader
// throws std::runtime_error when a file cannot be read.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "journal/event.hpp"

namespace sekisho::journal {

// "events-000000000012.jsonl"; the SEQ of such a name, else nullopt.
std::string journal_file_name(uint64_t seq);
std::optional<uint64_t> journal_file_seq(std::string_view name);

struct JournalOptions {
  std::string dir;
  uint64_t max_bytes = 64 << 20;
  std::chrono::seconds max_age{3600};
  unsigned flush_count = 64;
  std::chrono::milliseconds flush_interval{200};
};

class JournalWriter {
 public:
  explicit JournalWriter(JournalOptions opt);  // throws std::runtime_error if dir is unusable
  ~JournalWriter();
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

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

// Where a reader stands: a file name in the directory ("" before the first
// line) and the byte after the last line consumed.
struct JournalPosition {
  std::string file;
  uint64_t offset = 0;
  bool operator==(const JournalPosition&) const = default;
};

struct JournalLine {
  const std::string& file;
  uint64_t offset;        // of its first byte
  uint64_t next;          // after its newline: the position past it
  std::string_view text;  // without the newline; never empty
};

class JournalReader {
 public:
  class Visitor {
   public:
    virtual ~Visitor() = default;
    // One complete line. false: stop before it (it is read again next time).
    virtual bool on_line(const JournalLine& line) = 0;
    // A file the writer has left (a newer one exists) is read to its end.
    virtual void on_file_end(const JournalPosition& end) { (void)end; }
    // The unfinished last line of a file the writer has left, skipped.
    virtual void on_abandoned_tail(const std::string& path, uint64_t offset, uint64_t bytes) {
      (void)path, (void)offset, (void)bytes;
    }
    // A line longer than max_line_bytes, skipped.
    virtual void on_overlong_line(const std::string& path, uint64_t offset, uint64_t bytes) {
      (void)path, (void)offset, (void)bytes;
    }
    // The file is shorter than the position: read again from its start.
    virtual void on_rewind(const std::string& path, uint64_t size, uint64_t offset) {
      (void)path, (void)size, (void)offset;
    }
  };

  explicit JournalReader(std::string dir, uint64_t max_line_bytes = kMaxLineBytes);

  // Reads every complete line after `from`, in order, into `v`. Returns the
  // position past the last line consumed (and tails skipped).
  JournalPosition read(const JournalPosition& from, Visitor& v);

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  uint64_t max_line_;
};

}  // namespace sekisho::journal
