// SQLite backend of Store: the embedded default. WAL journal mode
// (readers do not block the ingester), synchronous=NORMAL (a power cut may
// lose the last transactions, and with them the cursor: the lines are read
// again, still exactly once), foreign keys on, busy timeout 5 s.
//
// Schema migrations are versioned: schema_migrations(version, description,
// applied_us) lists the ones applied; opening a database applies the missing
// ones in order, each in its own transaction. A database newer than this
// program (a version it does not know) is refused.
//
// Thread-safety: one connection guarded by a mutex; calls are serialised.
#pragma once

#include <mutex>
#include <string>

#include "store/store.hpp"

struct sqlite3;

namespace sekisho::control::store {

class SqliteStore final : public Store {
 public:
  // Opens (creating if needed) and migrates. ":memory:" works for tests.
  // Throws StoreError.
  explicit SqliteStore(const std::string& path);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  using Store::ingest;
  size_t ingest(const std::vector<MessageEvent>& events, const std::string& source,
                const JournalCursor& cursor) override;
  JournalCursor cursor(const std::string& source) override;
  LogPage search(const LogQuery& q) override;
  Counts counts() override;

  int schema_version();
  static int latest_schema_version();

 private:
  void exec(const char* sql);
  void migrate();
  std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace sekisho::control::store
