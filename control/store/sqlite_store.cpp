#include "store/sqlite_store.hpp"

#include <sqlite3.h>

#include <chrono>
#include <iterator>

namespace sekisho::control::store {

namespace {

struct Migration {
  int version;
  const char* description;
  const char* sql;
};

// Append only: a released version is never edited, a change is a new entry.
const Migration kMigrations[] = {
    {1, "message events, tracking log (one row per envelope recipient), journal cursors",
     R"sql(
CREATE TABLE message_events (
  event_id    TEXT PRIMARY KEY,
  ts_us       INTEGER NOT NULL,
  ingested_us INTEGER NOT NULL
);
CREATE TABLE tracking_log (
  row_id          INTEGER PRIMARY KEY,
  event_id        TEXT NOT NULL REFERENCES message_events(event_id),
  rcpt_index      INTEGER NOT NULL,
  ts_us           INTEGER NOT NULL,
  envelope_sender TEXT NOT NULL,
  recipient       TEXT NOT NULL,
  header_from     TEXT NOT NULL,
  header_to       TEXT NOT NULL,
  header_cc       TEXT NOT NULL,
  reply_to        TEXT,
  subject         TEXT NOT NULL,
  size            INTEGER NOT NULL,
  message_id      TEXT NOT NULL,
  client          TEXT NOT NULL,
  server          TEXT NOT NULL,
  tls             INTEGER NOT NULL,
  action          TEXT NOT NULL,
  rule            TEXT NOT NULL,
  score           REAL,
  rules_hit       TEXT NOT NULL,
  attachments     TEXT NOT NULL,
  spool           TEXT,
  UNIQUE (event_id, rcpt_index)
);
CREATE INDEX tracking_log_ts ON tracking_log (ts_us, row_id);
CREATE INDEX tracking_log_action ON tracking_log (action, ts_us);
CREATE INDEX tracking_log_recipient ON tracking_log (recipient);
CREATE INDEX tracking_log_sender ON tracking_log (envelope_sender);
CREATE TABLE journal_cursors (
  source       TEXT PRIMARY KEY,
  file         TEXT NOT NULL,
  offset       INTEGER NOT NULL,
  caught_up_us INTEGER NOT NULL
);
)sql"},
};

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A prepared statement, finalized on scope exit. Binds are 1-based.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.c_str(), int(sql.size()), &st_, nullptr) != SQLITE_OK)
      throw StoreError(std::string("sqlite prepare: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  void bind(int i, const std::string& v) { check(sqlite3_bind_text(st_, i, v.data(), int(v.size()), SQLITE_TRANSIENT)); }
  void bind(int i, int64_t v) { check(sqlite3_bind_int64(st_, i, v)); }
  void bind(int i, const std::optional<std::string>& v) {
    if (v) bind(i, *v);
    else check(sqlite3_bind_null(st_, i));
  }
  void bind(int i, const std::optional<double>& v) {
    check(v ? sqlite3_bind_double(st_, i, *v) : sqlite3_bind_null(st_, i));
  }
  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw StoreError(std::string("sqlite step: ") + sqlite3_errmsg(db_));
  }
  void reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  int changes() const { return sqlite3_changes(db_); }
  int64_t i64(int c) const { return sqlite3_column_int64(st_, c); }
  double dbl(int c) const { return sqlite3_column_double(st_, c); }
  bool null(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  std::string text(int c) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, c));
    return p ? std::string(p, size_t(sqlite3_column_bytes(st_, c))) : std::string();
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw StoreError(std::string("sqlite bind: ") + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) { run("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    run("COMMIT");
    done_ = true;
  }

 private:
  void run(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string m = err ? err : "?";
      sqlite3_free(err);
      throw StoreError(std::string("sqlite ") + sql + ": " + m);
    }
  }
  sqlite3* db_;
  bool done_ = false;
};

// "%text%" for LIKE ... ESCAPE '\' with the pattern characters escaped.
std::string like_pattern(const std::string& s) {
  std::string p = "%";
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') p.push_back('\\');
    p.push_back(c);
  }
  p.push_back('%');
  return p;
}

const char* kRowColumns =
    "event_id, ts_us, envelope_sender, recipient, header_from, header_to, header_cc, reply_to, subject, size, "
    "message_id, client, server, tls, action, rule, score, rules_hit, attachments, spool";

TrackingRow read_row(const Stmt& s) {
  TrackingRow r;
  MessageEvent& e = r.event;
  e.event_id = s.text(0);
  e.ts_us = s.i64(1);
  e.envelope_sender = s.text(2);
  r.recipient = s.text(3);
  e.header_from = s.text(4);
  e.to_json = s.text(5);
  e.cc_json = s.text(6);
  if (!s.null(7)) e.reply_to = s.text(7);
  e.subject = s.text(8);
  e.size = s.i64(9);
  e.message_id = s.text(10);
  e.client = s.text(11);
  e.server = s.text(12);
  e.tls = s.i64(13) != 0;
  e.action = s.text(14);
  e.rule = s.text(15);
  if (!s.null(16)) e.score = s.dbl(16);
  e.rules_json = s.text(17);
  e.attachments_json = s.text(18);
  if (!s.null(19)) e.spool = s.text(19);
  return r;
}

}  // namespace

SqliteStore::SqliteStore(const std::string& path) : path_(path) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string m = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StoreError("cannot open database " + path + ": " + m);
  }
  try {
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec("PRAGMA foreign_keys=ON");
    migrate();
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

SqliteStore::~SqliteStore() { sqlite3_close(db_); }

void SqliteStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw StoreError(path_ + ": " + m);
  }
}

int SqliteStore::latest_schema_version() { return std::end(kMigrations)[-1].version; }

int SqliteStore::schema_version() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT coalesce(max(version), 0) FROM schema_migrations");
  s.step();
  return int(s.i64(0));
}

void SqliteStore::migrate() {
  exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
      "applied_us INTEGER NOT NULL)");
  int current;
  {
    Stmt s(db_, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    s.step();
    current = int(s.i64(0));
  }
  if (current > latest_schema_version())
    throw StoreError(path_ + ": schema version " + std::to_string(current) + " is newer than this program's (" +
                     std::to_string(latest_schema_version()) + ")");
  for (const Migration& m : kMigrations) {
    if (m.version <= current) continue;
    Transaction t(db_);
    exec(m.sql);
    Stmt ins(db_, "INSERT INTO schema_migrations (version, description, applied_us) VALUES (?, ?, ?)");
    ins.bind(1, int64_t(m.version));
    ins.bind(2, std::string(m.description));
    ins.bind(3, now_us());
    ins.step();
    t.commit();
  }
}

size_t SqliteStore::ingest(const std::vector<MessageEvent>& events, const std::string& source,
                           const JournalCursor& cursor) {
  std::lock_guard lock(mu_);
  Transaction t(db_);
  Stmt ev(db_, "INSERT OR IGNORE INTO message_events (event_id, ts_us, ingested_us) VALUES (?, ?, ?)");
  Stmt row(db_, std::string("INSERT INTO tracking_log (rcpt_index, ") + kRowColumns +
                    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  size_t added = 0;
  int64_t now = now_us();
  for (const MessageEvent& e : events) {
    ev.reset();
    ev.bind(1, e.event_id);
    ev.bind(2, e.ts_us);
    ev.bind(3, now);
    ev.step();
    if (ev.changes() == 0) continue;  // stored before: exactly once
    ++added;
    // A message with no accepted recipient still gets one row (recipient "").
    size_t n = e.recipients.empty() ? 1 : e.recipients.size();
    for (size_t i = 0; i < n; ++i) {
      row.reset();
      row.bind(1, int64_t(i));
      row.bind(2, e.event_id);
      row.bind(3, e.ts_us);
      row.bind(4, e.envelope_sender);
      row.bind(5, e.recipients.empty() ? std::string() : e.recipients[i]);
      row.bind(6, e.header_from);
      row.bind(7, e.to_json);
      row.bind(8, e.cc_json);
      row.bind(9, e.reply_to);
      row.bind(10, e.subject);
      row.bind(11, e.size);
      row.bind(12, e.message_id);
      row.bind(13, e.client);
      row.bind(14, e.server);
      row.bind(15, int64_t(e.tls));
      row.bind(16, e.action);
      row.bind(17, e.rule);
      row.bind(18, e.score);
      row.bind(19, e.rules_json);
      row.bind(20, e.attachments_json);
      row.bind(21, e.spool);
      row.step();
    }
  }
  if (!source.empty()) {
    Stmt c(db_,
           "INSERT INTO journal_cursors (source, file, offset, caught_up_us) VALUES (?, ?, ?, ?) "
           "ON CONFLICT (source) DO UPDATE SET file = excluded.file, offset = excluded.offset, "
           "caught_up_us = excluded.caught_up_us");
    c.bind(1, source);
    c.bind(2, cursor.file);
    c.bind(3, int64_t(cursor.offset));
    c.bind(4, cursor.caught_up_us);
    c.step();
  }
  t.commit();
  return added;
}

JournalCursor SqliteStore::cursor(const std::string& source) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT file, offset, caught_up_us FROM journal_cursors WHERE source = ?");
  s.bind(1, source);
  JournalCursor c;
  if (s.step()) {
    c.file = s.text(0);
    c.offset = uint64_t(s.i64(1));
    c.caught_up_us = s.i64(2);
  }
  return c;
}

LogPage SqliteStore::search(const LogQuery& q) {
  std::string where = " WHERE 1";
  std::vector<std::string> text_binds;
  std::vector<int64_t> int_binds;  // bound after the text ones, in order
  auto like = [&](const char* column, const std::string& v) {
    where += std::string(" AND ") + column + " LIKE ? ESCAPE '\\'";
    text_binds.push_back(like_pattern(v));
  };
  if (!q.q.empty()) {
    static const char* kAny[] = {"envelope_sender", "recipient", "header_from", "subject",
                                 "message_id",      "client",    "event_id"};
    where += " AND (";
    for (size_t i = 0; i < std::size(kAny); ++i) {
      where += std::string(i ? " OR " : "") + kAny[i] + " LIKE ? ESCAPE '\\'";
      text_binds.push_back(like_pattern(q.q));
    }
    where += ")";
  }
  if (q.sender == "<>") {
    where += " AND envelope_sender = ''";
  } else if (!q.sender.empty()) {
    like("envelope_sender", q.sender);
  }
  if (!q.rcpt.empty()) like("recipient", q.rcpt);
  if (!q.from.empty()) like("header_from", q.from);
  if (!q.subject.empty()) like("subject", q.subject);
  if (!q.verdict.empty()) {
    where += " AND action = ?";
    text_binds.push_back(q.verdict);
  }
  if (q.since_us) {
    where += " AND ts_us >= ?";
    int_binds.push_back(*q.since_us);
  }
  if (q.until_us) {
    where += " AND ts_us < ?";
    int_binds.push_back(*q.until_us);
  }
  auto bind_all = [&](Stmt& s) {
    int i = 1;
    for (const auto& t : text_binds) s.bind(i++, t);
    for (int64_t v : int_binds) s.bind(i++, v);
    return i;
  };

  std::lock_guard lock(mu_);
  LogPage page;
  {
    Stmt s(db_, "SELECT count(*) FROM tracking_log" + where);
    bind_all(s);
    s.step();
    page.total = s.i64(0);
  }
  Stmt s(db_, std::string("SELECT ") + kRowColumns + " FROM tracking_log" + where +
                  " ORDER BY ts_us DESC, row_id DESC LIMIT ? OFFSET ?");
  int i = bind_all(s);
  s.bind(i++, q.limit);
  s.bind(i, q.offset);
  while (s.step()) page.rows.push_back(read_row(s));
  return page;
}

Counts SqliteStore::counts() {
  std::lock_guard lock(mu_);
  Counts c;
  {
    Stmt s(db_, "SELECT count(*), max(ts_us) FROM message_events");
    s.step();
    c.events = s.i64(0);
    if (!s.null(1)) c.newest_event_us = s.i64(1);
  }
  {
    Stmt s(db_, "SELECT action, count(*) FROM tracking_log GROUP BY action");
    while (s.step()) {
      c.rows_by_action[s.text(0)] = s.i64(1);
      c.rows += s.i64(1);
    }
  }
  {
    Stmt s(db_, "SELECT source, file, offset, caught_up_us FROM journal_cursors");
    while (s.step()) c.cursors[s.text(0)] = JournalCursor{s.text(1), uint64_t(s.i64(2)), s.i64(3)};
  }
  return c;
}

}  // namespace sekisho::control::store
