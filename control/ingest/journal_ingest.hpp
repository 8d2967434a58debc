// Ingestion of the dataplane's event journal (journal/journal_file.hpp:
// DIR/events-SEQ.jsonl, one event per line, rotated, appended), read with
// journal::JournalReader and journal::read_line: one parse of each line into
// a journal::MessageEvent, then mapped to the tracking log's row.
//
// Exactly once: a pass reads every complete line after the cursor stored
// for DIR, and stores each batch of message events together with the
// cursor past its last line in one transaction (Store::ingest). Events are
// also idempotent by id, so a cursor lost with the database's last
// transactions reads lines again without adding rows.
//
// Lines: "type":"message" becomes a LogEntry; other types (session,
// summary) are stepped over; a line that is not JSON or lacks required
// fields is counted and stepped over. A line of a newer event version than
// this program reads stops the pass before it (reported once; nothing is lost:
// it is read once sekisho-control is upgraded). A last line without its newline is
// left for the next pass — unless a newer file exists: the journal writer
// never returns to a file once it opened the next (a failed write leaves a
// partial line and moves on), so that tail is abandoned and counted.
//
// Thread-safety: one JournalIngester per thread; the Store may be shared.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "control/tracking/store.hpp"
#include "journal/event.hpp"
#include "journal/journal_file.hpp"

namespace sekisho::control::ingest {

struct IngestStats {
  uint64_t lines = 0;          // complete lines read
  uint64_t events_new = 0;     // message events stored
  uint64_t events_seen = 0;    // message events already stored (skipped)
  uint64_t other_lines = 0;    // session/summary lines
  uint64_t bad_lines = 0;      // not JSON, or a message without required fields
  uint64_t abandoned_tails = 0;  // partial last lines of files the writer left
  uint64_t newer_lines = 0;    // passes stopped at an event of a newer version
  IngestStats& operator+=(const IngestStats& o);
};

// What one journal line is (newer: an event of a version newer than
// journal::kVersion).
enum class LineKind { message, other, bad, newer };

// The tracking log's view of a message event. Pass events (no "id") get an
// id derived from what makes the message unique: "pass-" + the first 16
// bytes of SHA-256 over ts, src, dst, mail_from, rcpt_to, sha256 and size
// (the same every time the line is read).
tracking::LogEntry tracking_event(const journal::MessageEvent& e);

// One line (without its newline) through journal::read_line, then
// tracking_event(). On message fills `out`; on bad or newer sets `error`.
LineKind parse_event_line(std::string_view line, tracking::LogEntry& out, std::string& error);

class JournalIngester {
 public:
  JournalIngester(std::string dir, tracking::Store& store, size_t batch_lines = 500);

  // One pass over everything the journal holds now. Throws StoreError when
  // the store fails (the failing batch is not stored; the next pass retries
  // from the stored cursor).
  IngestStats pass();

  const IngestStats& totals() const { return totals_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  tracking::Store& store_;
  size_t batch_lines_;
  IngestStats totals_;
  journal::JournalPosition waiting_at_;  // the newer-version line reported last
};

}  // namespace sekisho::control::ingest
