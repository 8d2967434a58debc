// The control plane's storage interface: the message tracking log and the
// journal cursor. One event (one message the dataplane saw) becomes one
// tracking-log row per envelope recipient.
//
// Exactly once: ingest() stores a batch of events and the journal cursor in
// one transaction, and an event whose id is already stored is skipped, so a
// batch re-read after a crash (or from a journal copied twice) adds nothing.
//
// Thread-safety: every method may be called from any thread; a backend
// serialises calls on one connection (open one Store per thread that must
// not wait on another, e.g. the ingester and the HTTP server).
// Errors: backends throw db::StoreError (a std::runtime_error) on any failure
// of the database; nothing is half-written (each call is one transaction).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control/db/error.hpp"

namespace sekisho::control::tracking {

// One message as the tracking log keeps it (its row source; the event it
// comes from is journal::MessageEvent). JSON-valued fields hold
// serialised JSON text (arrays), ready for the API.
struct LogEntry {
  std::string event_id;              // dataplane id (SK...) or derived for pass events
  int64_t ts_us = 0;                 // message end, microseconds since the Unix epoch (UTC)
  std::string envelope_sender;       // "" for the null sender <>
  std::vector<std::string> recipients;  // accepted envelope recipients, in order
  std::string header_from;
  std::string to_json = "[]";        // header To addresses
  std::string cc_json = "[]";        // header Cc addresses
  std::optional<std::string> reply_to;
  std::string subject;               // decoded to UTF-8
  int64_t size = 0;                  // message bytes
  std::string message_id;
  std::string client;                // src "IP:port"
  std::string server;                // dst "IP:port"
  bool tls = false;
  std::string action = "pass";       // verdict: pass, tag, reject, tempfail, quarantine
  std::string rule;                  // the verdict's deciding rule, "" if none
  std::optional<double> score;
  std::string rules_json = "[]";     // rules hit [{"rule":..,"context":..}]
  std::string attachments_json = "[]";
  std::optional<std::string> spool;  // spool file of a held message
};

// One row of the tracking log (one envelope recipient of one event).
struct TrackingRow {
  LogEntry event;     // recipients left empty; see recipient
  std::string recipient;  // "" when the message had no accepted recipient
};

// Search of the tracking log. Text filters are case-insensitive substring
// matches (ASCII case folding); sender "<>" selects the null sender only.
// Time range is [since, until). Rows come newest first.
struct LogQuery {
  std::string q;  // any of sender, recipient, From, subject, message-id, client, event id
  std::string sender, rcpt, from, subject, verdict;
  std::optional<int64_t> since_us, until_us;
  int64_t limit = 100;
  int64_t offset = 0;
};

struct LogPage {
  std::vector<TrackingRow> rows;
  int64_t total = 0;  // rows matching the query, ignoring limit/offset
};

// Where ingestion of one journal directory stands. file is a file name in
// that directory ("" before the first event); offset the byte after the last
// line consumed. caught_up_us: the last time a pass left no complete line
// unread (0: never).
struct JournalCursor {
  std::string file;
  uint64_t offset = 0;
  int64_t caught_up_us = 0;
};

struct Counts {
  int64_t events = 0;  // message events stored
  int64_t rows = 0;    // tracking-log rows
  std::map<std::string, int64_t> rows_by_action;
  std::optional<int64_t> newest_event_us;
  std::map<std::string, JournalCursor> cursors;  // by source
};

class Store {
 public:
  virtual ~Store() = default;

  // Stores the events not stored yet and sets the cursor of `source` (a
  // journal directory), all in one transaction. Returns how many events were
  // new.
  virtual size_t ingest(const std::vector<LogEntry>& events, const std::string& source,
                        const JournalCursor& cursor) = 0;
  // Stores the events only (no cursor): the idempotent single-event path.
  size_t ingest(const std::vector<LogEntry>& events) { return ingest(events, {}, {}); }

  // The cursor of `source`; a default cursor if never set.
  virtual JournalCursor cursor(const std::string& source) = 0;

  virtual LogPage search(const LogQuery& q) = 0;
  // The rows of one event by its exact id, recipients in their envelope
  // order (an index lookup, unlike a q= search); empty if unknown.
  virtual std::vector<TrackingRow> event_rows(const std::string& event_id) = 0;
  virtual Counts counts() = 0;
};

}  // namespace sekisho::control::tracking
