// PostgreSQL driver of Db (libpq): several appliances can share one control
// plane database. Opened from a libpq URI ("postgresql://user@host/db") or
// keyword conninfo ("host=... dbname=..."), client encoding UTF8.
//
// SQL: `?` placeholders become $1, $2, ... (outside '...' literals, "..."
// identifiers and comments); each distinct SQL text is prepared once per
// connection (PQprepare, at most kCacheLimit, then DEALLOCATE ALL) and run
// with PQexecPrepared. Parameters travel as text, Blob as binary; results
// come as text (bytea decoded). exec() returns the count of PQcmdTuples for
// INSERT/UPDATE/DELETE/MERGE, 0 otherwise.
//
// Broken connections: outside a transaction, a call on a connection that
// has gone bad reconnects first (PQreset; prepared statements are prepared
// again), and a SELECT whose connection broke under it is retried once on a
// new connection. A statement that changes data is never retried (it may
// have been committed); inside a transaction the error is thrown and the
// transaction is lost, as it is on the server.
//
// Thread-safety: one connection behind a recursive mutex; begin() holds it
// for the calling thread until commit()/rollback().
// Errors: StoreError "NAME: MESSAGE (SQLSTATE XXXXX)" with the server's
// message and detail; NAME never shows a password. Text parameters with a
// NUL byte are refused (PostgreSQL text cannot hold one).
#pragma once

#include <mutex>
#include <string>
#include <unordered_map>

#include "control/db/db.hpp"

struct pg_conn;
struct pg_result;

namespace sekisho::control::db {

class PgDb final : public Db {
 public:
  static constexpr size_t kCacheLimit = 256;

  // Connects; throws StoreError with libpq's reason.
  explicit PgDb(const std::string& conninfo);
  ~PgDb() override;
  PgDb(const PgDb&) = delete;
  PgDb& operator=(const PgDb&) = delete;

  Dialect dialect() const override { return Dialect::postgres; }
  using Db::exec;
  int64_t exec(std::string_view sql, std::span<const Value> params,
               const std::function<void(const Row&)>& each) override;
  void exec_script(std::string_view sql) override;
  void begin(TxKind kind) override;
  void commit() override;
  void rollback() noexcept override;
  std::string name() const override { return name_; }

  // How many times this connection was re-established (tests, metrics).
  int reconnects() const { return reconnects_; }
  // The server process serving this connection (tests kill it).
  int backend_pid();

 private:
  struct Prepared {
    std::string name;
    int params = 0;
  };
  void ensure_connected();
  void reconnect();
  const Prepared& prepare(std::string_view sql);
  pg_result* run_prepared(const Prepared& p, std::span<const Value> params);
  void check(pg_result* r, std::string_view sql);
  [[noreturn]] void throw_error(pg_result* r, std::string_view sql);

  std::recursive_mutex mu_;
  pg_conn* conn_ = nullptr;
  std::string conninfo_;
  std::string name_;
  bool in_tx_ = false;
  int reconnects_ = 0;
  uint64_t next_statement_ = 0;
  std::unordered_map<std::string, Prepared> cache_;
};

// SQL with `?` placeholders numbered $1, $2, ... (quotes and comments left
// alone); count receives the number of placeholders.
std::string number_placeholders(std::string_view sql, int& count);

}  // namespace sekisho::control::db
