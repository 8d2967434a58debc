// The tracking log and journal cursors (Store) over a Db: one implementation
// in the SQL both SQLite and PostgreSQL accept (see db/db.hpp). Its schema is
// the migration component "tracking_log".
//
// Ingestion is batched: a batch's events go in as multi-row
//   INSERT INTO message_events ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id
// (the ids returned are the new ones: exactly once), then the new events'
// recipient rows as multi-row INSERTs, then the cursor, in one transaction.
// Chunks are powers of two (at most kChunkRows rows per statement), so the
// prepared-statement caches hold a few shapes only.
//
// Text is stored as valid UTF-8 without NUL on both backends: bytes that are
// not (the journal is JSON, but a \u0000 or a lone surrogate can reach us)
// become U+FFFD, so a hostile subject can neither stop ingestion on
// PostgreSQL nor be stored differently by the two backends.
//
// Thread-safety: as the Db it uses (calls are serialised on its
// connection). Errors: StoreError; each call is one transaction.
#pragma once

#include <span>
#include <string>

#include "control/db/db.hpp"
#include "control/tracking/store.hpp"

namespace sekisho::control::tracking {

class SqlStore final : public Store {
 public:
  static constexpr const char* kComponent = "tracking_log";
  static constexpr size_t kChunkRows = 64;

  // Migrates db (component "tracking_log"); db must outlive the store.
  explicit SqlStore(db::Db& db);

  using Store::ingest;
  size_t ingest(const std::vector<LogEntry>& events, const std::string& source,
                const JournalCursor& cursor) override;
  JournalCursor cursor(const std::string& source) override;
  LogPage search(const LogQuery& q) override;
  std::vector<TrackingRow> event_rows(const std::string& event_id) override;
  Counts counts() override;

  int schema_version() { return db_.schema_version(kComponent); }
  static std::span<const db::Migration> migrations();
  static int latest_schema_version() { return migrations().back().version; }
  db::Db& db() { return db_; }

 private:
  db::Db& db_;
};

}  // namespace sekisho::control::tracking
