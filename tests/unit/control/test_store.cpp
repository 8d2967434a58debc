// SqlStore: migrations, one row per recipient, idempotent ingest,
// cursor in the same transaction, search filters and paging, counts.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "control_test_util.hpp"
#include "store/sql_store.hpp"
#include "store/sqlite_db.hpp"

namespace sekisho::control::store {
namespace {

using testing::TempDir;

MessageEvent event(const std::string& id, int64_t ts_s, const std::string& sender, std::vector<std::string> rcpts,
                   const std::string& subject, const std::string& action = "pass") {
  MessageEvent e;
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

TEST(SqlStore, MigratesOnceAndRecordsVersions) {
  TempDir dir;
  {
    SqliteDb s_db(dir / "c.db");
    SqlStore s(s_db);
    EXPECT_EQ(s.schema_version(), SqlStore::latest_schema_version());
  }
  SqliteDb again_db(dir / "c.db");  // reopening applies nothing twice
  SqlStore again(again_db);
  EXPECT_EQ(again.schema_version(), SqlStore::latest_schema_version());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "c.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM schema_migrations WHERE component = 'tracking_log'", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), SqlStore::latest_schema_version());
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(SqlStore, RefusesADatabaseFromANewerProgram) {
  TempDir dir;
  {
    SqliteDb s_db(dir / "c.db");
    SqlStore s(s_db);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "c.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "INSERT INTO schema_migrations VALUES ('tracking_log', 999, 'future', 0)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  SqliteDb again(dir / "c.db");
  EXPECT_THROW(SqlStore{again}, StoreError);
}

TEST(SqlStore, OneRowPerRecipientAndIdempotentById) {
  SqliteDb s_db(":memory:");
  SqlStore s(s_db);
  std::vector<MessageEvent> evs = {event("SK1", 1000, "alice@example.net", {"a@x.test", "b@x.test", "c@x.test"}, "hi"),
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

TEST(SqlStore, MessageWithoutAcceptedRecipientKeepsOneRow) {
  SqliteDb s_db(":memory:");
  SqlStore s(s_db);
  s.ingest({event("SK9", 5, "x@example.net", {}, "nobody")});
  LogPage p = s.search({});
  ASSERT_EQ(p.total, 1);
  EXPECT_EQ(p.rows[0].recipient, "");
}

TEST(SqlStore, CursorCommitsWithTheBatch) {
  SqliteDb s_db(":memory:");
  SqlStore s(s_db);
  EXPECT_EQ(s.cursor("/j").file, "");
  s.ingest({event("SK1", 1, "a@b.test", {"c@d.test"}, "s")}, "/j", JournalCursor{"events-000000000003.jsonl", 77, 5});
  JournalCursor c = s.cursor("/j");
  EXPECT_EQ(c.file, "events-000000000003.jsonl");
  EXPECT_EQ(c.offset, 77u);
  EXPECT_EQ(c.caught_up_us, 5);
  EXPECT_EQ(s.counts().cursors.at("/j").offset, 77u);
}

class SearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<MessageEvent> evs;
    for (int i = 0; i < 25; ++i)
      evs.push_back(event("SK" + std::to_string(i), 1000 + i, "user" + std::to_string(i) + "@example.net",
                          {"rcpt" + std::to_string(i % 5) + "@inside.test"}, "report " + std::to_string(i),
                          i % 10 == 0 ? "quarantine" : "pass"));
    evs.push_back(event("NULL1", 2000, "", {"postmaster@inside.test"}, "Undelivered Mail Returned to Sender"));
    evs.push_back(event("PCT", 2001, "odd@example.net", {"x@inside.test"}, "100% off_today"));
    evs.push_back(event("JP", 2002, "jp@example.jp", {"y@inside.test"}, "【重要】アカウント確認のお願い"));
    store.ingest(evs);
  }
  SqliteDb db{":memory:"};
  SqlStore store{db};
};

TEST_F(SearchTest, FiltersBySenderRecipientSubjectVerdictAndTime) {
  LogQuery q;
  q.sender = "USER1";  // case-insensitive substring: user1, user10..user19
  EXPECT_EQ(store.search(q).total, 11);
  q = {};
  q.sender = "<>";
  LogPage p = store.search(q);
  ASSERT_EQ(p.total, 1);
  EXPECT_EQ(p.rows[0].event.event_id, "NULL1");
  q = {};
  q.rcpt = "rcpt3@";
  EXPECT_EQ(store.search(q).total, 5);
  q = {};
  q.verdict = "quarantine";
  EXPECT_EQ(store.search(q).total, 3);
  q = {};
  q.since_us = 1010 * 1000000LL;
  q.until_us = 1020 * 1000000LL;  // [since, until)
  EXPECT_EQ(store.search(q).total, 10);
  q = {};
  q.subject = "アカウント";
  EXPECT_EQ(store.search(q).total, 1);
  q = {};
  q.from = "jp@EXAMPLE";
  EXPECT_EQ(store.search(q).total, 1);
  q = {};
  q.q = "Returned to";
  EXPECT_EQ(store.search(q).total, 1);
  q = {};
  q.q = "SK2";  // event id: SK2, SK20..SK24
  EXPECT_EQ(store.search(q).total, 6);
}

TEST_F(SearchTest, LikeWildcardsInInputAreLiteral) {
  LogQuery q;
  q.subject = "100%";
  EXPECT_EQ(store.search(q).total, 1);
  q.subject = "off_";
  EXPECT_EQ(store.search(q).total, 1);
  q.subject = "%";
  EXPECT_EQ(store.search(q).total, 1);
  q.subject = "_";
  EXPECT_EQ(store.search(q).total, 1);
}

TEST_F(SearchTest, PagesNewestFirstWithTotal) {
  LogQuery q;
  q.sender = "user";
  q.limit = 10;
  std::vector<std::string> seen;
  for (q.offset = 0; q.offset < 30; q.offset += 10) {
    LogPage p = store.search(q);
    EXPECT_EQ(p.total, 25);
    for (const auto& r : p.rows) seen.push_back(r.event.event_id);
  }
  ASSERT_EQ(seen.size(), 25u);
  EXPECT_EQ(seen.front(), "SK24");
  EXPECT_EQ(seen.back(), "SK0");
}

}  // namespace
}  // namespace sekisho::control::store
