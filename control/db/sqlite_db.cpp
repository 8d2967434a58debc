#include "control/db/sqlite_db.hpp"

#include <sqlite3.h>

namespace sekisho::control::db {

namespace {

class SqliteRow final : public Row {
 public:
  explicit SqliteRow(sqlite3_stmt* st) : st_(st) {}
  size_t columns() const override { return size_t(sqlite3_column_count(st_)); }
  bool null(size_t c) const override { return sqlite3_column_type(st_, int(c)) == SQLITE_NULL; }
  int64_t i64(size_t c) const override { return sqlite3_column_int64(st_, int(c)); }
  double dbl(size_t c) const override { return sqlite3_column_double(st_, int(c)); }
  std::string text(size_t c) const override {
    if (sqlite3_column_type(st_, int(c)) == SQLITE_BLOB) {
      auto* p = static_cast<const char*>(sqlite3_column_blob(st_, int(c)));
      return p ? std::string(p, size_t(sqlite3_column_bytes(st_, int(c)))) : std::string();
    }
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, int(c)));
    return p ? std::string(p, size_t(sqlite3_column_bytes(st_, int(c)))) : std::string();
  }

 private:
  sqlite3_stmt* st_;
};

// Resets a statement when a call ends, however it ends.
struct StmtUse {
  sqlite3_stmt* st;
  bool* busy;
  bool owned;
  ~StmtUse() {
    if (owned) {
      sqlite3_finalize(st);
    } else {
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
      *busy = false;
    }
  }
};

}  // namespace

SqliteDb::SqliteDb(const std::string& path) : path_(path) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string m = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StoreError("cannot open database " + path + ": " + m);
  }
  try {
    sqlite3_busy_timeout(db_, 5000);
    sqlite3_extended_result_codes(db_, 1);
    run("PRAGMA journal_mode=WAL");
    run("PRAGMA synchronous=NORMAL");
    run("PRAGMA foreign_keys=ON");
    run("PRAGMA temp_store=MEMORY");
    // The default page cache (2 MiB) is far smaller than the tracking log's
    // indexes at a million rows: ingestion then reads its B-tree pages back
    // from the file for every insert (store_bench: 7.7k events/s falling to
    // 2k). 64 MiB per connection keeps the hot pages.
    run("PRAGMA cache_size=-65536");
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

SqliteDb::~SqliteDb() {
  for (auto& [sql, c] : cache_) sqlite3_finalize(c.st);
  sqlite3_close(db_);
}

void SqliteDb::fail(const std::string& what) const {
  throw StoreError(path_ + ": " + what + sqlite3_errmsg(db_));
}

void SqliteDb::run(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw StoreError(path_ + ": " + m);
  }
}

int64_t SqliteDb::exec(std::string_view sql, std::span<const Value> params,
                       const std::function<void(const Row&)>& each) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* st = nullptr;
  bool* busy = nullptr;
  bool owned = false;
  auto it = cache_.find(std::string(sql));
  if (it != cache_.end() && !it->second.busy) {
    st = it->second.st;
  } else {
    if (sqlite3_prepare_v2(db_, sql.data(), int(sql.size()), &st, nullptr) != SQLITE_OK)
      throw StoreError(path_ + ": " + sqlite3_errmsg(db_) + " in: " + std::string(sql));
    if (!st) throw StoreError(path_ + ": empty statement");
    if (it == cache_.end()) {
      if (cache_.size() >= kCacheLimit) {
        for (auto c = cache_.begin(); c != cache_.end();) {
          if (c->second.busy) {
            ++c;
          } else {
            sqlite3_finalize(c->second.st);
            c = cache_.erase(c);
          }
        }
      }
      it = cache_.emplace(std::string(sql), Cached{st, false}).first;
    } else {
      owned = true;  // re-entered while the cached one is stepping
    }
  }
  if (!owned) {
    it->second.busy = true;
    busy = &it->second.busy;
  }
  StmtUse use{st, busy, owned};

  int n = sqlite3_bind_parameter_count(st);
  if (size_t(n) != params.size())
    throw StoreError(path_ + ": " + std::to_string(params.size()) + " parameters for " + std::to_string(n) +
                     " placeholders in: " + std::string(sql));
  for (int i = 0; i < n; ++i) {
    const Value& v = params[size_t(i)];
    int rc = SQLITE_OK;
    if (std::holds_alternative<std::monostate>(v)) rc = sqlite3_bind_null(st, i + 1);
    else if (auto* x = std::get_if<int64_t>(&v)) rc = sqlite3_bind_int64(st, i + 1, *x);
    else if (auto* d = std::get_if<double>(&v)) rc = sqlite3_bind_double(st, i + 1, *d);
    else if (auto* s = std::get_if<std::string>(&v))
      rc = sqlite3_bind_text64(st, i + 1, s->data(), s->size(), SQLITE_STATIC, SQLITE_UTF8);
    else if (auto* b = std::get_if<Blob>(&v))
      rc = sqlite3_bind_blob64(st, i + 1, b->bytes.data(), b->bytes.size(), SQLITE_STATIC);
    if (rc != SQLITE_OK) fail("bind: ");
  }
  SqliteRow row(st);
  const int64_t total_before = sqlite3_total_changes64(db_);
  for (;;) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      if (each) each(row);
      continue;
    }
    if (rc == SQLITE_DONE) break;
    fail("");
  }
  // sqlite3_changes() keeps the last INSERT/UPDATE/DELETE's count through
  // other statements: report it only when this one changed something.
  return sqlite3_stmt_readonly(st) || sqlite3_total_changes64(db_) == total_before ? 0 : sqlite3_changes64(db_);
}

void SqliteDb::exec_script(std::string_view sql) {
  std::lock_guard lock(mu_);
  run(std::string(sql).c_str());
}

void SqliteDb::begin(TxKind kind) {
  mu_.lock();
  if (in_tx_) {
    mu_.unlock();
    throw StoreError(path_ + ": nested transaction");
  }
  try {
    run(kind == TxKind::write ? "BEGIN IMMEDIATE" : "BEGIN");
  } catch (...) {
    mu_.unlock();
    throw;
  }
  in_tx_ = true;
}

void SqliteDb::commit() {
  std::lock_guard lock(mu_);
  if (!in_tx_) throw StoreError(path_ + ": commit without a transaction");
  run("COMMIT");  // on failure the transaction stays open for rollback()
  in_tx_ = false;
  mu_.unlock();  // the lock begin() took
}

void SqliteDb::rollback() noexcept {
  std::lock_guard lock(mu_);
  if (!in_tx_) return;
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  in_tx_ = false;
  mu_.unlock();
}

}  // namespace sekisho::control::db
