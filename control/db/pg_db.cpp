#include "control/db/pg_db.hpp"

#include <libpq-fe.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace sekisho::control::db {

namespace {

constexpr Oid kByteaOid = 17;
constexpr Oid kBoolOid = 16;

struct ResultFree {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultFree>;

class PgRow final : public Row {
 public:
  PgRow(PGresult* r, int row) : r_(r), row_(row) {}
  size_t columns() const override { return size_t(PQnfields(r_)); }
  bool null(size_t c) const override { return PQgetisnull(r_, row_, int(c)); }
  int64_t i64(size_t c) const override {
    if (null(c)) return 0;
    const char* v = PQgetvalue(r_, row_, int(c));
    if (PQftype(r_, int(c)) == kBoolOid) return v[0] == 't';
    int64_t x = 0;
    size_t n = size_t(PQgetlength(r_, row_, int(c)));
    auto [end, ec] = std::from_chars(v, v + n, x);
    if (ec == std::errc() && end == v + n) return x;
    return int64_t(std::strtod(v, nullptr));  // numeric with a fraction (avg, sum of reals)
  }
  double dbl(size_t c) const override { return null(c) ? 0.0 : std::strtod(PQgetvalue(r_, row_, int(c)), nullptr); }
  std::string text(size_t c) const override {
    if (null(c)) return {};
    const char* v = PQgetvalue(r_, row_, int(c));
    if (PQftype(r_, int(c)) == kByteaOid) {
      size_t n = 0;
      unsigned char* b = PQunescapeBytea(reinterpret_cast<const unsigned char*>(v), &n);
      if (!b) throw StoreError("bytea column: out of memory");
      std::string s(reinterpret_cast<char*>(b), n);
      PQfreemem(b);
      return s;
    }
    return std::string(v, size_t(PQgetlength(r_, row_, int(c))));
  }

 private:
  PGresult* r_;
  int row_;
};

bool starts_with_word(std::string_view sql, std::string_view word) {
  size_t i = 0;
  while (i < sql.size() && (sql[i] == ' ' || sql[i] == '\n' || sql[i] == '\t' || sql[i] == '\r' || sql[i] == '(')) ++i;
  if (sql.size() - i < word.size()) return false;
  for (size_t k = 0; k < word.size(); ++k)
    if (std::toupper(static_cast<unsigned char>(sql[i + k])) != word[k]) return false;
  return true;
}

void ignore_notice(void*, const char*) {}

std::string double_text(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char b[64];
  auto [end, ec] = std::to_chars(b, b + sizeof b, d);
  return std::string(b, end);
}

}  // namespace

std::string number_placeholders(std::string_view sql, int& count) {
  std::string out;
  out.reserve(sql.size() + 16);
  count = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (c == '\'' || c == '"') {  // literal or quoted identifier; a doubled quote stays inside
      size_t j = i + 1;
      for (; j < sql.size(); ++j) {
        if (sql[j] == c) {
          if (j + 1 < sql.size() && sql[j + 1] == c) ++j;
          else break;
        }
      }
      out.append(sql.substr(i, j - i + 1));
      i = j;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      size_t j = sql.find('\n', i);
      if (j == std::string_view::npos) j = sql.size() - 1;
      out.append(sql.substr(i, j - i + 1));
      i = j;
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      size_t j = sql.find("*/", i + 2);
      j = j == std::string_view::npos ? sql.size() - 1 : j + 1;
      out.append(sql.substr(i, j - i + 1));
      i = j;
    } else if (c == '?') {
      out += "$" + std::to_string(++count);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

PgDb::PgDb(const std::string& conninfo) : conninfo_(conninfo), name_(redact_conninfo(conninfo)) {
  const char* keys[] = {"dbname", "fallback_application_name", "client_encoding", nullptr};
  const char* values[] = {conninfo.c_str(), "sekisho-control", "UTF8", nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
    std::string m = conn_ ? PQerrorMessage(conn_) : "out of memory";
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    PQfinish(conn_);
    conn_ = nullptr;
    throw StoreError("cannot connect to " + name_ + ": " + m);
  }
  PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
}

PgDb::~PgDb() { PQfinish(conn_); }

void PgDb::reconnect() {
  cache_.clear();  // prepared statements die with the session
  PQreset(conn_);
  ++reconnects_;
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string m = PQerrorMessage(conn_);
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    throw StoreError("cannot reconnect to " + name_ + ": " + m);
  }
  PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
}

void PgDb::ensure_connected() {
  if (!in_tx_ && PQstatus(conn_) != CONNECTION_OK) reconnect();
}

void PgDb::throw_error(PGresult* r, std::string_view sql) {
  std::string m;
  const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  if (primary) {
    m = primary;
    if (const char* d = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL)) m += std::string(" (") + d + ")";
    if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) m += std::string(" [SQLSTATE ") + s + "]";
  } else {
    m = PQerrorMessage(conn_);
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    if (m.empty()) m = "no result";
  }
  std::string where(sql.substr(0, 200));
  throw StoreError(name_ + ": " + m + (where.empty() ? "" : " in: " + where));
}

void PgDb::check(PGresult* r, std::string_view sql) {
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) throw_error(r, sql);
}

const PgDb::Prepared& PgDb::prepare(std::string_view sql) {
  auto it = cache_.find(std::string(sql));
  if (it != cache_.end()) return it->second;
  if (cache_.size() >= kCacheLimit) {
    Result r(PQexec(conn_, "DEALLOCATE ALL"));
    check(r.get(), "DEALLOCATE ALL");
    cache_.clear();
  }
  Prepared p;
  std::string text = number_placeholders(sql, p.params);
  p.name = "sk" + std::to_string(++next_statement_);
  Result r(PQprepare(conn_, p.name.c_str(), text.c_str(), 0, nullptr));
  check(r.get(), sql);
  return cache_.emplace(std::string(sql), std::move(p)).first->second;
}

PGresult* PgDb::run_prepared(const Prepared& p, std::span<const Value> params) {
  std::vector<std::string> text(params.size());
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size()), formats(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const Value& v = params[i];
    if (std::holds_alternative<std::monostate>(v)) {
      values[i] = nullptr;
      continue;
    }
    if (auto* x = std::get_if<int64_t>(&v)) {
      text[i] = std::to_string(*x);
    } else if (auto* d = std::get_if<double>(&v)) {
      text[i] = double_text(*d);
    } else if (auto* s = std::get_if<std::string>(&v)) {
      if (s->find('\0') != std::string::npos)
        throw StoreError(name_ + ": parameter " + std::to_string(i + 1) +
                         " holds a NUL byte, which PostgreSQL text cannot store");
      values[i] = s->c_str();
      continue;
    } else if (auto* b = std::get_if<Blob>(&v)) {
      values[i] = b->bytes.data();
      lengths[i] = int(b->bytes.size());
      formats[i] = 1;
      continue;
    }
    values[i] = text[i].c_str();
  }
  return PQexecPrepared(conn_, p.name.c_str(), int(params.size()), values.data(), lengths.data(), formats.data(), 0);
}

int64_t PgDb::exec(std::string_view sql, std::span<const Value> params,
                   const std::function<void(const Row&)>& each) {
  std::lock_guard lock(mu_);
  ensure_connected();
  Result r;
  for (int attempt = 0;; ++attempt) {
    bool prepared = false;
    try {
      const Prepared& p = prepare(sql);
      prepared = true;
      if (size_t(p.params) != params.size())
        throw StoreError(name_ + ": " + std::to_string(params.size()) + " parameters for " +
                         std::to_string(p.params) + " placeholders in: " + std::string(sql));
      r.reset(run_prepared(p, params));
      check(r.get(), sql);
      break;
    } catch (const StoreError&) {
      // A connection that broke outside a transaction: prepare again, or
      // run a SELECT again, once, on a new connection.
      bool retry = attempt == 0 && !in_tx_ && PQstatus(conn_) != CONNECTION_OK &&
                   (!prepared || starts_with_word(sql, "SELECT"));
      if (!retry) throw;
      reconnect();
    }
  }
  if (each) {
    int n = PQntuples(r.get());
    for (int i = 0; i < n; ++i) each(PgRow(r.get(), i));
  }
  const char* status = PQcmdStatus(r.get());
  if (!std::strncmp(status, "INSERT", 6) || !std::strncmp(status, "UPDATE", 6) || !std::strncmp(status, "DELETE", 6) ||
      !std::strncmp(status, "MERGE", 5)) {
    const char* t = PQcmdTuples(r.get());
    return *t ? std::strtoll(t, nullptr, 10) : 0;
  }
  return 0;
}

void PgDb::exec_script(std::string_view sql) {
  std::lock_guard lock(mu_);
  ensure_connected();
  Result r(PQexec(conn_, std::string(sql).c_str()));
  check(r.get(), sql);
}

void PgDb::begin(TxKind kind) {
  mu_.lock();
  try {
    if (in_tx_) throw StoreError(name_ + ": nested transaction");
    ensure_connected();
    const char* sql = kind == TxKind::write ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    Result r(PQexec(conn_, sql));
    if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      if (PQstatus(conn_) != CONNECTION_OK) {  // BEGIN is always safe to repeat
        reconnect();
        r.reset(PQexec(conn_, sql));
      }
      check(r.get(), sql);
    }
  } catch (...) {
    mu_.unlock();
    throw;
  }
  in_tx_ = true;
}

void PgDb::commit() {
  std::lock_guard lock(mu_);
  if (!in_tx_) throw StoreError(name_ + ": commit without a transaction");
  Result r(PQexec(conn_, "COMMIT"));
  in_tx_ = false;  // whatever happened, the server's transaction is over
  mu_.unlock();    // the lock begin() took
  check(r.get(), "COMMIT");
  // COMMIT of a transaction that failed earlier answers ROLLBACK, no error.
  if (std::strcmp(PQcmdStatus(r.get()), "COMMIT") != 0)
    throw StoreError(name_ + ": transaction rolled back (" + PQcmdStatus(r.get()) + ")");
}

void PgDb::rollback() noexcept {
  std::lock_guard lock(mu_);
  if (!in_tx_) return;
  if (PQstatus(conn_) == CONNECTION_OK) PQclear(PQexec(conn_, "ROLLBACK"));
  in_tx_ = false;
  mu_.unlock();
}

int PgDb::backend_pid() {
  std::lock_guard lock(mu_);
  ensure_connected();
  return PQbackendPID(conn_);
}

}  // namespace sekisho::control::db
