// SQLite driver of Db: the embedded default. WAL journal mode (readers never
// block the writer and the writer never blocks readers), synchronous=NORMAL
// (a power cut may lose the last transactions, never corrupt), foreign keys
// on, busy timeout 5 s, temp_store in memory, a 64 MiB page cache.
//
// Prepared statements are cached by SQL text (at most kCacheLimit; the
// cache is emptied when full, so SQL built from values instead of
// placeholders costs a prepare each time, never unbounded memory).
// A statement re-entered from a row callback gets a fresh, uncached one.
//
// Thread-safety: one connection (SQLITE_OPEN_NOMUTEX) behind a recursive
// mutex; begin() holds it for the calling thread until commit()/rollback(),
// so other threads wait for the whole transaction. Open one SqliteDb per
// thread that must not wait.
// Errors: StoreError "PATH: <sqlite message>" (SQL text appended for
// prepare errors).
#pragma once

#include <mutex>
#include <string>
#include <unordered_map>

#include "control/db/db.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace sekisho::control::db {

class SqliteDb final : public Db {
 public:
  static constexpr size_t kCacheLimit = 256;

  // Opens (creating if needed) a file, or ":memory:" (a private database).
  explicit SqliteDb(const std::string& path);
  ~SqliteDb() override;
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  Dialect dialect() const override { return Dialect::sqlite; }
  using Db::exec;
  int64_t exec(std::string_view sql, std::span<const Value> params,
               const std::function<void(const Row&)>& each) override;
  void exec_script(std::string_view sql) override;
  void begin(TxKind kind) override;
  void commit() override;
  void rollback() noexcept override;
  std::string name() const override { return path_; }

  // The raw handle, for SQLite-only features (FTS5, backups) and tests.
  sqlite3* handle() { return db_; }

 private:
  struct Cached {
    sqlite3_stmt* st = nullptr;
    bool busy = false;
  };
  [[noreturn]] void fail(const std::string& what) const;
  void run(const char* sql);

  std::recursive_mutex mu_;
  sqlite3* db_ = nullptr;
  std::string path_;
  bool in_tx_ = false;
  std::unordered_map<std::string, Cached> cache_;
};

}  // namespace sekisho::control::db
