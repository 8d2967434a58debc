#include "control/tracking/sql_store.hpp"

#include <chrono>
#include <iterator>
#include <set>
#include <unordered_set>

namespace sekisho::control::tracking {

using db::Dialect;
using db::Migration;
using db::Row;
using db::Transaction;
using db::TxKind;
using db::Value;
using db::like_pattern;
using db::opt;
using db::valid_utf8;

namespace {

// Append only once deployed: a released version is never edited, a change
// is a new entry. (Version 1 was last edited before any deployment, for
// PostgreSQL: BIGINT types, byte_offset instead of the reserved offset.)
const Migration kMigrations[] = {
    {1, "message events, tracking log (one row per envelope recipient), journal cursors",
     R"sql(
CREATE TABLE message_events (
  event_id    TEXT PRIMARY KEY,
  ts_us       BIGINT NOT NULL,
  ingested_us BIGINT NOT NULL
);
CREATE TABLE tracking_log (
  row_id          {{id}},
  event_id        TEXT NOT NULL REFERENCES message_events(event_id),
  rcpt_index      BIGINT NOT NULL,
  ts_us           BIGINT NOT NULL,
  envelope_sender TEXT NOT NULL,
  recipient       TEXT NOT NULL,
  header_from     TEXT NOT NULL,
  header_to       TEXT NOT NULL,
  header_cc       TEXT NOT NULL,
  reply_to        TEXT,
  subject         TEXT NOT NULL,
  size            BIGINT NOT NULL,
  message_id      TEXT NOT NULL,
  client          TEXT NOT NULL,
  server          TEXT NOT NULL,
  tls             BIGINT NOT NULL,
  action          TEXT NOT NULL,
  rule            TEXT NOT NULL,
  score           DOUBLE PRECISION,
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
  byte_offset  BIGINT NOT NULL,
  caught_up_us BIGINT NOT NULL
)
)sql"},
    {2, "substring search indexes: FTS5 trigram (SQLite), pg_trgm GIN (PostgreSQL)",
     R"sql(
CREATE VIRTUAL TABLE tracking_log_fts USING fts5(
  envelope_sender, recipient, header_from, subject, message_id, client, event_id,
  content='tracking_log', content_rowid='row_id', tokenize='trigram');
CREATE TRIGGER tracking_log_fts_insert AFTER INSERT ON tracking_log BEGIN
  INSERT INTO tracking_log_fts (rowid, envelope_sender, recipient, header_from, subject, message_id, client, event_id)
  VALUES (new.row_id, new.envelope_sender, new.recipient, new.header_from, new.subject, new.message_id, new.client,
          new.event_id);
END;
CREATE TRIGGER tracking_log_fts_delete AFTER DELETE ON tracking_log BEGIN
  INSERT INTO tracking_log_fts (tracking_log_fts, rowid, envelope_sender, recipient, header_from, subject, message_id,
                                client, event_id)
  VALUES ('delete', old.row_id, old.envelope_sender, old.recipient, old.header_from, old.subject, old.message_id,
          old.client, old.event_id);
END;
INSERT INTO tracking_log_fts (tracking_log_fts) VALUES ('rebuild')
)sql",
     R"sql(
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX tracking_log_sender_trgm ON tracking_log USING gin (envelope_sender COLLATE "C" gin_trgm_ops);
CREATE INDEX tracking_log_recipient_trgm ON tracking_log USING gin (recipient COLLATE "C" gin_trgm_ops);
CREATE INDEX tracking_log_from_trgm ON tracking_log USING gin (header_from COLLATE "C" gin_trgm_ops);
CREATE INDEX tracking_log_subject_trgm ON tracking_log USING gin (subject COLLATE "C" gin_trgm_ops);
CREATE INDEX tracking_log_message_id_trgm ON tracking_log USING gin (message_id COLLATE "C" gin_trgm_ops);
CREATE INDEX tracking_log_client_trgm ON tracking_log USING gin (client COLLATE "C" gin_trgm_ops);
CREATE INDEX tracking_log_event_id_trgm ON tracking_log USING gin (event_id COLLATE "C" gin_trgm_ops)
)sql"},
};

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* kRowColumns =
    "event_id, ts_us, envelope_sender, recipient, header_from, header_to, header_cc, reply_to, subject, size, "
    "message_id, client, server, tls, action, rule, score, rules_hit, attachments, spool";
constexpr size_t kRowParams = 21;  // rcpt_index + kRowColumns

TrackingRow read_row(const Row& s) {
  TrackingRow r;
  LogEntry& e = r.event;
  e.event_id = s.text(0);
  e.ts_us = s.i64(1);
  e.envelope_sender = s.text(2);
  r.recipient = s.text(3);
  e.header_from = s.text(4);
  e.to_json = s.text(5);
  e.cc_json = s.text(6);
  e.reply_to = s.opt_text(7);
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
  e.spool = s.opt_text(19);
  return r;
}

// "INSERT INTO t (cols) VALUES (?, ..), (?, ..)" for n rows of k columns.
std::string multi_insert(const std::string& head, size_t k, size_t n, const std::string& tail = "") {
  std::string one = "(";
  for (size_t i = 0; i < k; ++i) one += i ? ", ?" : "?";
  one += ")";
  std::string s = head + " VALUES ";
  for (size_t i = 0; i < n; ++i) {
    if (i) s += ", ";
    s += one;
  }
  return s + tail;
}

// Calls f(begin, count) over [0, n) in power-of-two chunks of at most max.
template <class F>
void chunks(size_t n, size_t max, F f) {
  size_t i = 0;
  while (i < n) {
    size_t c = max;
    while (c > n - i) c /= 2;
    f(i, c);
    i += c;
  }
}

std::optional<std::string> valid_opt(const std::optional<std::string>& s) {
  return s ? std::optional(valid_utf8(*s)) : std::nullopt;
}

}  // namespace

std::span<const Migration> SqlStore::migrations() { return kMigrations; }

SqlStore::SqlStore(db::Db& db) : db_(db) { db_.migrate(kComponent, kMigrations); }

size_t SqlStore::ingest(const std::vector<LogEntry>& events, const std::string& source,
                        const JournalCursor& cursor) {
  // The first occurrence of an id in the batch is the one stored.
  std::vector<const LogEntry*> batch;
  {
    std::unordered_set<std::string_view> ids;
    for (const LogEntry& e : events)
      if (ids.insert(e.event_id).second) batch.push_back(&e);
  }
  const int64_t now = now_us();
  Transaction t(db_);
  std::set<std::string> fresh;
  chunks(batch.size(), kChunkRows, [&](size_t b, size_t n) {
    std::vector<Value> p;
    p.reserve(n * 3);
    for (size_t i = b; i < b + n; ++i) {
      p.emplace_back(valid_utf8(batch[i]->event_id));
      p.emplace_back(batch[i]->ts_us);
      p.emplace_back(now);
    }
    db_.exec(multi_insert("INSERT INTO message_events (event_id, ts_us, ingested_us)", 3, n,
                          " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"),
             p, [&](const Row& r) { fresh.insert(r.text(0)); });
  });

  // One row per recipient of each new event (one row with recipient "" when
  // none was accepted), in event and recipient order.
  struct Pending {
    const LogEntry* e;
    size_t rcpt;
  };
  std::vector<Pending> rows;
  for (const LogEntry* e : batch) {
    if (!fresh.count(valid_utf8(e->event_id))) continue;  // stored before: exactly once
    size_t n = e->recipients.empty() ? 1 : e->recipients.size();
    for (size_t i = 0; i < n; ++i) rows.push_back({e, i});
  }
  const std::string head = std::string("INSERT INTO tracking_log (rcpt_index, ") + kRowColumns + ")";
  chunks(rows.size(), kChunkRows, [&](size_t b, size_t n) {
    std::vector<Value> p;
    p.reserve(n * kRowParams);
    for (size_t i = b; i < b + n; ++i) {
      const LogEntry& e = *rows[i].e;
      size_t k = rows[i].rcpt;
      p.emplace_back(int64_t(k));
      p.emplace_back(valid_utf8(e.event_id));
      p.emplace_back(e.ts_us);
      p.emplace_back(valid_utf8(e.envelope_sender));
      p.emplace_back(e.recipients.empty() ? std::string() : valid_utf8(e.recipients[k]));
      p.emplace_back(valid_utf8(e.header_from));
      p.emplace_back(valid_utf8(e.to_json));
      p.emplace_back(valid_utf8(e.cc_json));
      p.emplace_back(opt(valid_opt(e.reply_to)));
      p.emplace_back(valid_utf8(e.subject));
      p.emplace_back(e.size);
      p.emplace_back(valid_utf8(e.message_id));
      p.emplace_back(valid_utf8(e.client));
      p.emplace_back(valid_utf8(e.server));
      p.emplace_back(int64_t(e.tls));
      p.emplace_back(valid_utf8(e.action));
      p.emplace_back(valid_utf8(e.rule));
      p.emplace_back(opt(e.score));
      p.emplace_back(valid_utf8(e.rules_json));
      p.emplace_back(valid_utf8(e.attachments_json));
      p.emplace_back(opt(valid_opt(e.spool)));
    }
    db_.exec(multi_insert(head, kRowParams, n), p);
  });

  if (!source.empty()) {
    db_.exec(
        "INSERT INTO journal_cursors (source, file, byte_offset, caught_up_us) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (source) DO UPDATE SET file = excluded.file, byte_offset = excluded.byte_offset, "
        "caught_up_us = excluded.caught_up_us",
        {source, cursor.file, int64_t(cursor.offset), cursor.caught_up_us});
  }
  t.commit();
  return fresh.size();
}

JournalCursor SqlStore::cursor(const std::string& source) {
  JournalCursor c;
  db_.exec("SELECT file, byte_offset, caught_up_us FROM journal_cursors WHERE source = ?", {source},
           [&](const Row& r) {
             c.file = r.text(0);
             c.offset = uint64_t(r.i64(1));
             c.caught_up_us = r.i64(2);
           });
  return c;
}

// s as an FTS5 phrase ("..." with quotes doubled: everything else inside is
// literal) when it has 3 characters or more (the trigram index cannot
// narrow shorter ones).
std::optional<std::string> fts_phrase(std::string_view s) {
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  if (chars < 3) return std::nullopt;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

LogPage SqlStore::search(const LogQuery& q) {
  std::string where = " WHERE TRUE";
  std::vector<Value> p;
  // On SQLite the FTS5 trigram table narrows a substring search to its
  // candidates (a superset: its phrase is the needle, literally, folded
  // more widely than ASCII); the LIKE keeps the exact meaning. On PostgreSQL
  // the planner uses the pg_trgm indexes for the ILIKE itself.
  const bool fts = db_.dialect() == Dialect::sqlite;
  auto narrow = [&](const char* column, const std::string& v) {
    if (!fts) return;
    if (auto phrase = fts_phrase(v)) {
      where += " AND row_id IN (SELECT rowid FROM tracking_log_fts WHERE tracking_log_fts MATCH ?)";
      p.emplace_back(column ? std::string(column) + " : " + *phrase : *phrase);
    }
  };
  auto like = [&](const char* column, const std::string& v) {
    where += " AND " + db_.ci_like(column);
    p.emplace_back(like_pattern(v));
    narrow(column, v);
  };
  if (!q.q.empty()) {
    static const char* kAny[] = {"envelope_sender", "recipient", "header_from", "subject",
                                 "message_id",      "client",    "event_id"};
    where += " AND (";
    for (size_t i = 0; i < std::size(kAny); ++i) {
      where += (i ? " OR " : "") + db_.ci_like(kAny[i]);
      p.emplace_back(like_pattern(q.q));
    }
    where += ")";
    narrow(nullptr, q.q);  // every column of the FTS table is one of kAny
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
    p.emplace_back(q.verdict);
  }
  if (q.since_us) {
    where += " AND ts_us >= ?";
    p.emplace_back(*q.since_us);
  }
  if (q.until_us) {
    where += " AND ts_us < ?";
    p.emplace_back(*q.until_us);
  }

  // The count and the page see the same snapshot.
  Transaction t(db_, TxKind::read);
  LogPage page;
  page.total = 0;
  db_.exec("SELECT count(*) FROM tracking_log" + where, p, [&](const Row& r) { page.total = r.i64(0); });
  p.emplace_back(q.limit);
  p.emplace_back(q.offset);
  db_.exec(std::string("SELECT ") + kRowColumns + " FROM tracking_log" + where +
               " ORDER BY ts_us DESC, row_id DESC LIMIT ? OFFSET ?",
           p, [&](const Row& r) { page.rows.push_back(read_row(r)); });
  t.commit();
  return page;
}

std::vector<TrackingRow> SqlStore::event_rows(const std::string& event_id) {
  std::vector<TrackingRow> rows;
  db_.exec(std::string("SELECT ") + kRowColumns + " FROM tracking_log WHERE event_id = ? ORDER BY rcpt_index",
           {valid_utf8(event_id)}, [&](const Row& r) { rows.push_back(read_row(r)); });
  return rows;
}

Counts SqlStore::counts() {
  Counts c;
  Transaction t(db_, TxKind::read);
  db_.exec("SELECT count(*), max(ts_us) FROM message_events", {}, [&](const Row& r) {
    c.events = r.i64(0);
    if (!r.null(1)) c.newest_event_us = r.i64(1);
  });
  db_.exec("SELECT action, count(*) FROM tracking_log GROUP BY action", {}, [&](const Row& r) {
    c.rows_by_action[r.text(0)] = r.i64(1);
    c.rows += r.i64(1);
  });
  db_.exec("SELECT source, file, byte_offset, caught_up_us FROM journal_cursors", {}, [&](const Row& r) {
    c.cursors[r.text(0)] = JournalCursor{r.text(1), uint64_t(r.i64(2)), r.i64(3)};
  });
  t.commit();
  return c;
}

}  // namespace sekisho::control::tracking
