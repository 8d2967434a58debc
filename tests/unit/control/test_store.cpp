// SqlStore on SQLite and PostgreSQL (backends.hpp): migrations, one row per
// recipient, idempotent ingest, cursor in the same transaction, search
// filters and paging, counts, text that is not UTF-8.
#include <gtest/gtest.h>

#include <thread>

#include "tests/unit/control/backends.hpp"
#include "tests/unit/control/control_test_util.hpp"
#include "control/tracking/sql_store.hpp"
#include "control/db/sqlite_db.hpp"

namespace sekisho::control::tracking {
namespace {

using db::Dialect;
using db::SqliteDb;
using db::StoreError;
using db::valid_utf8;
using testing::BackendTest;
using testing::TempDir;

LogEntry event(const std::string& id, int64_t ts_s, const std::string& sender, std::vector<std::string> rcpts,
                   const std::string& subject, const std::string& action = "pass") {
  LogEntry e;
  e.event_id = id;
  e.ts_us = ts_s * 1000000;
  e.envelope_sender = sender;
  e.recipients = std::move(rcpts);
  e.header_from = sender.empty() ? "MAILER-DAEMON@example.net" : sender;
  e.subject = subject;
  e.size = 100;
  e.message_id = "<" + id + "@example.net>";
  e.client = "192.0.2.1:1234";
  e.server = "192.0.2.2:25";
  e.action = action;
  return e;
}

class StoreTest : public BackendTest {};

TEST_P(StoreTest, MigratesOnceAndRecordsVersions) {
  {
    SqlStore s(db());
    EXPECT_EQ(s.schema_version(), SqlStore::latest_schema_version());
  }
  auto again_db = connect();
  SqlStore again(*again_db);  // reopening applies nothing twice
  EXPECT_EQ(again.schema_version(), SqlStore::latest_schema_version());
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM schema_migrations WHERE component = ?", {SqlStore::kComponent}),
            SqlStore::latest_schema_version());
  EXPECT_EQ(db().query_text("SELECT description FROM schema_migrations WHERE component = ? AND version = 1",
                            {SqlStore::kComponent}),
            std::string(SqlStore::migrations()[0].description));
  EXPECT_GT(*db().query_i64("SELECT applied_us FROM schema_migrations WHERE component = ?", {SqlStore::kComponent}),
            1700000000LL * 1000000);
}

TEST_P(StoreTest, RefusesADatabaseFromANewerProgram) {
  { SqlStore s(db()); }
  db().exec("INSERT INTO schema_migrations VALUES (?, 999, 'future', 0)", {SqlStore::kComponent});
  auto again = connect();
  try {
    SqlStore s(*again);
    ADD_FAILURE() << "a newer schema was accepted";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("999"), std::string::npos) << e.what();
  }
}

TEST_P(StoreTest, OneRowPerRecipientAndIdempotentById) {
  SqlStore s(db());
  std::vector<LogEntry> evs = {event("SK1", 1000, "alice@example.net", {"a@x.test", "b@x.test", "c@x.test"}, "hi"),
                                   event("SK2", 1001, "", {"d@x.test"}, "bounce", "reject")};
  EXPECT_EQ(s.ingest(evs), 2u);
  EXPECT_EQ(s.ingest(evs), 0u);  // the same ids again add nothing
  Counts c = s.counts();
  EXPECT_EQ(c.events, 2);
  EXPECT_EQ(c.rows, 4);
  EXPECT_EQ(c.rows_by_action["pass"], 3);
  EXPECT_EQ(c.rows_by_action["reject"], 1);
  ASSERT_TRUE(c.newest_event_us);
  EXPECT_EQ(*c.newest_event_us, 1001 * 1000000LL);

  LogPage p = s.search({});
  ASSERT_EQ(p.total, 4);
  EXPECT_EQ(p.rows[0].event.event_id, "SK2");  // newest first
  EXPECT_EQ(p.rows[0].event.envelope_sender, "");
  EXPECT_EQ(p.rows[1].recipient, "c@x.test");
  EXPECT_EQ(p.rows[3].recipient, "a@x.test");
}

TEST_P(StoreTest, DuplicateIdsWithinOneBatchAndAcrossChunks) {
  SqlStore s(db());
  // More events than one multi-row INSERT holds, an id repeated inside the
  // batch, and some ids stored by an earlier batch.
  std::vector<LogEntry> first, second;
  for (int i = 0; i < 10; ++i) first.push_back(event("E" + std::to_string(i), i, "a@x.test", {"r@y.test"}, "s"));
  EXPECT_EQ(s.ingest(first), 10u);
  for (int i = 0; i < 200; ++i)
    second.push_back(event("E" + std::to_string(i), i, "a@x.test", {"r@y.test", "q@y.test"}, "s"));
  second.push_back(event("E150", 150, "dup@x.test", {"z@y.test"}, "dup"));
  EXPECT_EQ(s.ingest(second), 190u);
  Counts c = s.counts();
  EXPECT_EQ(c.events, 200);
  EXPECT_EQ(c.rows, 10 + 190 * 2);
  LogQuery q;
  q.sender = "dup@";
  EXPECT_EQ(s.search(q).total, 0);  // the first occurrence in the batch won
}

TEST_P(StoreTest, EventRowsByExactId) {
  SqlStore s(db());
  s.ingest({event("SK1", 1000, "alice@example.net", {"c@x.test", "a@x.test", "b@x.test"}, "hi"),
            event("SK10", 1001, "bob@example.net", {"d@x.test"}, "other")});
  std::vector<TrackingRow> rows = s.event_rows("SK1");
  ASSERT_EQ(rows.size(), 3u);  // not SK10: the id is exact
  EXPECT_EQ(rows[0].recipient, "c@x.test");  // envelope order
  EXPECT_EQ(rows[2].recipient, "b@x.test");
  EXPECT_EQ(rows[1].event.subject, "hi");
  EXPECT_TRUE(s.event_rows("sk1").empty());  // ids are case-sensitive
  EXPECT_TRUE(s.event_rows("nope").empty());
}

TEST_P(StoreTest, MessageWithoutAcceptedRecipientKeepsOneRow) {
  SqlStore s(db());
  s.ingest({event("SK9", 5, "x@example.net", {}, "nobody")});
  LogPage p = s.search({});
  ASSERT_EQ(p.total, 1);
  EXPECT_EQ(p.rows[0].recipient, "");
}

TEST_P(StoreTest, CursorCommitsWithTheBatch) {
  SqlStore s(db());
  EXPECT_EQ(s.cursor("/j").file, "");
  s.ingest({event("SK1", 1, "a@b.test", {"c@d.test"}, "s")}, "/j", JournalCursor{"events-000000000003.jsonl", 77, 5});
  JournalCursor c = s.cursor("/j");
  EXPECT_EQ(c.file, "events-000000000003.jsonl");
  EXPECT_EQ(c.offset, 77u);
  EXPECT_EQ(c.caught_up_us, 5);
  EXPECT_EQ(s.counts().cursors.at("/j").offset, 77u);
  // Offsets past 4 GiB survive (BIGINT on both backends).
  s.ingest({}, "/j", JournalCursor{"events-000000000004.jsonl", 5000000000ULL, 6});
  EXPECT_EQ(s.cursor("/j").offset, 5000000000ULL);
}

TEST_P(StoreTest, AFailedBatchStoresNothingNotEvenTheCursor) {
  SqlStore s(db());
  s.ingest({event("A", 1, "a@b.test", {"c@d.test"}, "s")}, "/j", JournalCursor{"f", 10, 0});
  // A tracking row that violates NOT NULL cannot be built from LogEntry,
  // so break the table instead: the second statement of the batch fails.
  db().exec_script("ALTER TABLE tracking_log ADD COLUMN must_not_be_null BIGINT NOT NULL DEFAULT 0");
  db().exec_script(db().dialect() == Dialect::sqlite
                       ? "CREATE TRIGGER refuse BEFORE INSERT ON tracking_log BEGIN SELECT RAISE(ABORT, 'refused'); END"
                       : "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
                         "'refused'; END $$; CREATE TRIGGER refuse BEFORE INSERT ON tracking_log FOR EACH ROW "
                         "EXECUTE FUNCTION refuse()");
  EXPECT_THROW(s.ingest({event("B", 2, "a@b.test", {"c@d.test"}, "s")}, "/j", JournalCursor{"f", 20, 0}), StoreError);
  EXPECT_EQ(s.cursor("/j").offset, 10u);
  EXPECT_EQ(s.counts().events, 1);
  // The connection is usable afterwards.
  db().exec_script("DROP TRIGGER refuse" + std::string(db().dialect() == Dialect::sqlite ? "" : " ON tracking_log"));
  EXPECT_EQ(s.ingest({event("B", 2, "a@b.test", {"c@d.test"}, "s")}, "/j", JournalCursor{"f", 20, 0}), 1u);
  EXPECT_EQ(s.cursor("/j").offset, 20u);
}

TEST_P(StoreTest, TextThatIsNotUtf8IsStoredTheSameOnBothBackends) {
  SqlStore s(db());
  LogEntry e = event("BAD", 1, "a@b.test", {"r@y.test"}, std::string("x\0y\xff\xfe z \xe3\x81", 10));
  e.header_from = "\xed\xa0\x80@b.test";  // a UTF-16 surrogate in UTF-8 form
  ASSERT_EQ(s.ingest({e}), 1u);
  LogPage p = s.search({});
  ASSERT_EQ(p.total, 1);
  EXPECT_EQ(p.rows[0].event.subject, "x\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBD z \xEF\xBF\xBD");
  EXPECT_EQ(p.rows[0].event.header_from, "\xEF\xBF\xBD@b.test");
  EXPECT_EQ(valid_utf8("plain ascii, 日本語, 🙂"), "plain ascii, 日本語, 🙂");
  EXPECT_EQ(valid_utf8("\xc0\xaf"), "\xEF\xBF\xBD");  // overlong '/'
}

TEST_P(StoreTest, ReadersSeeCommittedBatchesWhileTheWriterWorks) {
  SqlStore writer(db());
  auto other = connect();
  SqlStore reader(*other);
  std::thread t([&] {
    for (int b = 0; b < 20; ++b) {
      std::vector<LogEntry> evs;
      for (int i = 0; i < 50; ++i) {
        std::string id = std::to_string(b) + "-" + std::to_string(i);
        evs.push_back(event(id, b * 100 + i, "a@b.test", {"r1@y.test", "r2@y.test"}, "s"));
      }
      writer.ingest(evs);
    }
  });
  int64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    LogPage p = reader.search({});
    EXPECT_EQ(p.total % 100, 0) << "a batch seen half-written";
    EXPECT_GE(p.total, last);
    last = p.total;
  }
  t.join();
  EXPECT_EQ(reader.counts().rows, 2000);
}

class SearchTest : public BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    store.emplace(db());
    std::vector<LogEntry> evs;
    for (int i = 0; i < 25; ++i)
      evs.push_back(event("SK" + std::to_string(i), 1000 + i, "user" + std::to_string(i) + "@example.net",
                          {"rcpt" + std::to_string(i % 5) + "@inside.test"}, "report " + std::to_string(i),
                          i % 10 == 0 ? "quarantine" : "pass"));
    evs.push_back(event("NULL1", 2000, "", {"postmaster@inside.test"}, "Undelivered Mail Returned to Sender"));
    evs.push_back(event("PCT", 2001, "odd@example.net", {"x@inside.test"}, "100% off_today"));
    evs.push_back(event("JP", 2002, "jp@example.jp", {"y@inside.test"}, "【重要】アカウント確認のお願い"));
    evs.push_back(event("BS", 2003, "back\\slash@example.net", {"z@inside.test"}, "C:\\temp"));
    evs.push_back(event("QT", 2004, "quote@example.net", {"z@inside.test"}, "say \"hello\" OR NOT world*"));
    store->ingest(evs);
  }
  std::optional<SqlStore> store;
};

TEST_P(SearchTest, FiltersBySenderRecipientSubjectVerdictAndTime) {
  LogQuery q;
  q.sender = "USER1";  // case-insensitive substring: user1, user10..user19
  EXPECT_EQ(store->search(q).total, 11);
  q = {};
  q.sender = "<>";
  LogPage p = store->search(q);
  ASSERT_EQ(p.total, 1);
  EXPECT_EQ(p.rows[0].event.event_id, "NULL1");
  q = {};
  q.rcpt = "RCPT3@";
  EXPECT_EQ(store->search(q).total, 5);
  q = {};
  q.verdict = "quarantine";
  EXPECT_EQ(store->search(q).total, 3);
  q.verdict = "QUARANTINE";  // verdicts are exact
  EXPECT_EQ(store->search(q).total, 0);
  q = {};
  q.since_us = 1010 * 1000000LL;
  q.until_us = 1020 * 1000000LL;  // [since, until)
  EXPECT_EQ(store->search(q).total, 10);
  q = {};
  q.subject = "アカウント";
  EXPECT_EQ(store->search(q).total, 1);
  q = {};
  q.from = "jp@EXAMPLE";
  EXPECT_EQ(store->search(q).total, 1);
  q = {};
  q.q = "Returned to";
  EXPECT_EQ(store->search(q).total, 1);
  q = {};
  q.q = "sk2";  // event id: SK2, SK20..SK24
  EXPECT_EQ(store->search(q).total, 6);
  q = {};
  q.q = "192.0.2.1";  // client
  EXPECT_EQ(store->search(q).total, 30);
}

TEST_P(SearchTest, LikeWildcardsAndBackslashesInInputAreLiteral) {
  LogQuery q;
  q.subject = "100%";
  EXPECT_EQ(store->search(q).total, 1);
  q.subject = "off_";
  EXPECT_EQ(store->search(q).total, 1);
  q.subject = "%";
  EXPECT_EQ(store->search(q).total, 1);
  q.subject = "_";
  EXPECT_EQ(store->search(q).total, 1);
  q.subject = "\\";
  EXPECT_EQ(store->search(q).total, 1);
  q.subject = ":\\t";
  EXPECT_EQ(store->search(q).total, 1);
  q = {};
  q.sender = "k\\s";
  EXPECT_EQ(store->search(q).total, 1);
  // Characters that mean something to full-text query syntax are literal too.
  q = {};
  q.subject = "\"hello\" OR";
  EXPECT_EQ(store->search(q).total, 1);
  q.subject = "NOT world*";
  EXPECT_EQ(store->search(q).total, 1);
  q.subject = "hello OR";
  EXPECT_EQ(store->search(q).total, 0);
  q = {};
  q.q = "\"HELLO\"";
  EXPECT_EQ(store->search(q).total, 1);
}

TEST_P(SearchTest, PagesNewestFirstWithTotal) {
  LogQuery q;
  q.sender = "user";
  q.limit = 10;
  std::vector<std::string> seen;
  for (q.offset = 0; q.offset < 30; q.offset += 10) {
    LogPage p = store->search(q);
    EXPECT_EQ(p.total, 25);
    for (const auto& r : p.rows) seen.push_back(r.event.event_id);
  }
  ASSERT_EQ(seen.size(), 25u);
  EXPECT_EQ(seen.front(), "SK24");
  EXPECT_EQ(seen.back(), "SK0");
}

TEST_P(SearchTest, TiesInTimeKeepOneOrderAcrossPages) {
  // Several events in the same microsecond, with several recipients each.
  std::vector<LogEntry> evs;
  for (int i = 0; i < 7; ++i)
    evs.push_back(event("TIE" + std::to_string(i), 5000, "tie@x.test", {"a@y.test", "b@y.test", "c@y.test"}, "t"));
  store->ingest(evs);
  LogQuery q;
  q.sender = "tie@";
  q.limit = 4;
  std::vector<std::string> seen;
  for (q.offset = 0; q.offset < 21; q.offset += 4)
    for (const auto& r : store->search(q).rows) seen.push_back(r.event.event_id + "/" + r.recipient);
  ASSERT_EQ(seen.size(), 21u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 21u);  // none twice, none lost
  EXPECT_EQ(seen.front(), "TIE6/c@y.test");  // the latest stored first
  EXPECT_EQ(seen.back(), "TIE0/a@y.test");
}

TEST_P(SearchTest, ScoresAndOptionalFieldsRoundTrip) {
  LogEntry e = event("OPT", 3000, "o@x.test", {"r@y.test"}, "s", "tag");
  e.score = -0.125;
  e.reply_to = "";
  e.spool = "/var/spool/sekisho/new/OPT.msg";
  e.tls = true;
  e.size = 5'000'000'000LL;
  e.rules_json = R"([{"rule":"R","context":"body"}])";
  store->ingest({e});
  LogQuery q;
  q.verdict = "tag";
  LogPage p = store->search(q);
  ASSERT_EQ(p.total, 1);
  const LogEntry& got = p.rows[0].event;
  EXPECT_EQ(got.score, -0.125);
  ASSERT_TRUE(got.reply_to);
  EXPECT_EQ(*got.reply_to, "");  // empty is not absent
  EXPECT_EQ(got.spool, e.spool);
  EXPECT_TRUE(got.tls);
  EXPECT_EQ(got.size, 5'000'000'000LL);
  EXPECT_EQ(got.rules_json, e.rules_json);
  q.verdict = "quarantine";
  EXPECT_FALSE(store->search(q).rows[0].event.score);  // NULL stays NULL
}

TEST_P(StoreTest, SearchIndexesCoverRowsStoredBeforeTheyExisted) {
  // A database at version 1 (before the substring indexes) with rows in it.
  db().migrate(SqlStore::kComponent, SqlStore::migrations().first(1));
  db().exec("INSERT INTO message_events (event_id, ts_us, ingested_us) VALUES ('OLD', 1, 1)");
  db().exec(
      "INSERT INTO tracking_log (event_id, rcpt_index, ts_us, envelope_sender, recipient, header_from, header_to, "
      "header_cc, subject, size, message_id, client, server, tls, action, rule, rules_hit, attachments) VALUES "
      "('OLD', 0, 1, 'legacy@old.test', 'r@y.test', 'legacy@old.test', '[]', '[]', 'Ancient Subject', 1, '<m>', "
      "'192.0.2.9:1', '192.0.2.2:25', 0, 'pass', '', '[]', '[]')");
  SqlStore s(db());  // migrates to the latest version
  EXPECT_EQ(s.schema_version(), SqlStore::latest_schema_version());
  LogQuery q;
  q.subject = "ancient sub";
  EXPECT_EQ(s.search(q).total, 1);
  q = {};
  q.q = "LEGACY@";
  EXPECT_EQ(s.search(q).total, 1);
  s.ingest({event("NEW", 2, "legacy@old.test", {"r@y.test"}, "Ancient Subject too")});
  q = {};
  q.subject = "ancient sub";
  EXPECT_EQ(s.search(q).total, 2);
}

SEKISHO_INSTANTIATE_BACKENDS(StoreTest);
SEKISHO_INSTANTIATE_BACKENDS(SearchTest);

// SQLite only: the file is in WAL mode.
TEST(SqliteDbFile, IsInWalMode) {
  TempDir dir;
  SqliteDb db(dir / "c.db");
  SqlStore s(db);
  EXPECT_EQ(db.query_text("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(db.query_i64("PRAGMA foreign_keys"), 1);
}

}  // namespace
}  // namespace sekisho::control::tracking
