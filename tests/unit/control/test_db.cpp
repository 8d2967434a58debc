// The Db drivers (SQLite, PostgreSQL) through one interface: values round
// trip, changes, RETURNING, transactions and their lock, migrations,
// case-insensitive LIKE, errors; PostgreSQL's placeholder numbering and
// reconnection after the server dropped the connection.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/unit/control/backends.hpp"
#include "control/db/db.hpp"
#include "control/db/pg_db.hpp"
#include "control/db/sqlite_db.hpp"

namespace sekisho::control::db {
namespace {

using testing::Backend;
using testing::BackendTest;

class DbTest : public BackendTest {
 protected:
  void make_table() {
    db().exec_script(db().expand(
        "CREATE TABLE t (id {{id}}, n BIGINT, r DOUBLE PRECISION, s TEXT, b {{blob}}); "
        "CREATE TABLE u (k TEXT PRIMARY KEY, v BIGINT NOT NULL)"));
  }
};

TEST_P(DbTest, ValuesRoundTrip) {
  make_table();
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(char(i));
  const std::string text = "日本語 ✉ 'quoted' \"double\" \\ back ? not a placeholder";
  std::vector<int64_t> ids;
  auto ins = [&](std::initializer_list<Value> v) {
    db().exec("INSERT INTO t (n, r, s, b) VALUES (?, ?, ?, ?) RETURNING id", v,
              [&](const Row& r) { ids.push_back(r.i64(0)); });
  };
  ins({INT64_MIN, -0.125, text, Blob{all_bytes}});
  ins({INT64_MAX, 1e300, std::string(), Blob{}});
  ins({Value(), Value(), Value(), Value()});
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_LT(ids[0], ids[1]);
  EXPECT_LT(ids[1], ids[2]);

  std::vector<std::vector<std::optional<std::string>>> rows;
  int64_t n0 = 0, n1 = 0;
  double r0 = 0, r1 = 0;
  db().exec("SELECT n, r, s, b FROM t ORDER BY id", {}, [&](const Row& r) {
    ASSERT_EQ(r.columns(), 4u);
    if (rows.empty()) n0 = r.i64(0), r0 = r.dbl(1);
    if (rows.size() == 1) n1 = r.i64(0), r1 = r.dbl(1);
    rows.push_back({r.opt_text(0), r.opt_text(1), r.opt_text(2), r.opt_text(3)});
  });
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(n0, INT64_MIN);
  EXPECT_EQ(n1, INT64_MAX);
  EXPECT_EQ(r0, -0.125);
  EXPECT_EQ(r1, 1e300);
  EXPECT_EQ(rows[0][2], text);
  EXPECT_EQ(rows[0][3], all_bytes);
  EXPECT_EQ(rows[1][2], "");  // empty is not NULL
  EXPECT_EQ(rows[1][3], "");
  for (const auto& c : rows[2]) EXPECT_FALSE(c);
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM t WHERE b = ?", {Blob{all_bytes}}), 1);
}

TEST_P(DbTest, ChangesCountOnlyRowsWritten) {
  make_table();
  EXPECT_EQ(db().exec("INSERT INTO u (k, v) VALUES (?, ?), (?, ?)", {"a", int64_t(1), "b", int64_t(2)}), 2);
  EXPECT_EQ(db().exec("SELECT k FROM u"), 0);
  EXPECT_EQ(db().exec("CREATE TABLE w (x BIGINT)"), 0);  // not the last INSERT's count
  EXPECT_EQ(db().exec("UPDATE u SET v = v + 1 WHERE k = ?", {"a"}), 1);
  EXPECT_EQ(db().exec("INSERT INTO u (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING", {"a", int64_t(9)}), 0);
  EXPECT_EQ(db().exec("INSERT INTO u (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                      {"a", int64_t(9)}),
            1);
  EXPECT_EQ(db().query_i64("SELECT v FROM u WHERE k = ?", {"a"}), 9);
  EXPECT_EQ(db().exec("DELETE FROM u"), 2);
  EXPECT_FALSE(db().query_i64("SELECT v FROM u WHERE k = ?", {"a"}));  // no row
  EXPECT_FALSE(db().query_text("SELECT k FROM u"));
}

TEST_P(DbTest, TransactionsCommitOrRollBackWhole) {
  make_table();
  {
    Transaction t(db());
    db().exec("INSERT INTO u (k, v) VALUES ('x', 1)");
  }  // not committed
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM u"), 0);
  try {
    Transaction t(db());
    db().exec("INSERT INTO u (k, v) VALUES ('x', 1)");
    db().exec("INSERT INTO u (k, v) VALUES ('x', 2)");  // duplicate key
    t.commit();
    ADD_FAILURE() << "duplicate key accepted";
  } catch (const StoreError&) {
  }
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM u"), 0);
  {
    Transaction t(db());
    db().exec("INSERT INTO u (k, v) VALUES ('x', 1)");
    EXPECT_THROW(db().begin(), StoreError);  // not nested
    t.commit();
  }
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM u"), 1);
  {
    Transaction t(db(), TxKind::read);
    EXPECT_EQ(db().query_i64("SELECT count(*) FROM u"), 1);
    t.commit();
  }
}

TEST_P(DbTest, OtherThreadsWaitForATransaction) {
  make_table();
  std::atomic<bool> done{false};
  std::thread other;
  {
    Transaction t(db());
    db().exec("INSERT INTO u (k, v) VALUES ('a', 1)");
    other = std::thread([&] {
      db().exec("INSERT INTO u (k, v) VALUES ('b', (SELECT count(*) FROM u))");
      done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_FALSE(done) << "a statement of another thread ran inside the transaction";
    t.commit();
  }
  other.join();
  EXPECT_EQ(db().query_i64("SELECT v FROM u WHERE k = 'b'"), 1);  // it saw the committed row
}

TEST_P(DbTest, WritersOnTwoConnectionsDoNotLoseRows) {
  make_table();
  auto other = connect();
  auto work = [](Db& d, const std::string& prefix) {
    for (int i = 0; i < 100; ++i) {
      Transaction t(d);
      d.exec("INSERT INTO u (k, v) VALUES (?, ?)", {prefix + std::to_string(i), int64_t(i)});
      t.commit();
    }
  };
  std::thread a([&] { work(db(), "a"); });
  work(*other, "b");
  a.join();
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM u"), 200);
}

TEST_P(DbTest, MigrationsPerComponentInOrderOnce) {
  const Migration a[] = {{1, "first", "CREATE TABLE a1 (x BIGINT)"},
                         {2, "second", "CREATE TABLE a2 (id {{id}}, y TEXT); INSERT INTO a2 (y) VALUES ('z')"}};
  const Migration b[] = {{1, "other component", "CREATE TABLE b1 (x BIGINT)"}};
  EXPECT_EQ(db().schema_version("a"), 0);
  db().migrate("a", a);
  db().migrate("a", a);  // nothing twice
  db().migrate("b", b);
  EXPECT_EQ(db().schema_version("a"), 2);
  EXPECT_EQ(db().schema_version("b"), 1);
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM a2"), 1);
  // A program that knows only version 1 of "a" refuses the database.
  EXPECT_THROW(db().migrate("a", std::span(a, 1)), StoreError);
  // A failing migration applies nothing of itself and is not recorded.
  const Migration bad[] = {{1, "other component", "CREATE TABLE b1 (x BIGINT)"},
                           {2, "half", "CREATE TABLE b2 (x BIGINT); CREATE TABLE b2 (x BIGINT)"}};
  EXPECT_THROW(db().migrate("b", bad), StoreError);
  EXPECT_EQ(db().schema_version("b"), 1);
  EXPECT_EQ(db().exec("INSERT INTO b1 (x) VALUES (1)"), 1);
  EXPECT_THROW(db().exec("INSERT INTO b2 (x) VALUES (1)"), StoreError);
  // Versions must ascend.
  const Migration unordered[] = {{2, "x", "SELECT 1"}, {1, "y", "SELECT 1"}};
  EXPECT_THROW(db().migrate("c", unordered), StoreError);
}

TEST_P(DbTest, CaseInsensitiveLikeIsAsciiAndLiteral) {
  make_table();
  for (const char* s : {"Alice@Example.NET", "bob@example.net", "50% off_now", "a\\b", "ÉCOLE"})
    db().exec("INSERT INTO t (s) VALUES (?)", {std::string(s)});
  auto count = [&](const std::string& needle) {
    return *db().query_i64("SELECT count(*) FROM t WHERE " + db().ci_like("s"), {like_pattern(needle)});
  };
  EXPECT_EQ(count("example.net"), 2);
  EXPECT_EQ(count("ALICE@"), 1);
  EXPECT_EQ(count("%"), 1);
  EXPECT_EQ(count("f_n"), 1);
  EXPECT_EQ(count("_"), 1);
  EXPECT_EQ(count("a\\b"), 1);
  EXPECT_EQ(count("\\"), 1);
  EXPECT_EQ(count("ÉCOLE"), 1);
  EXPECT_EQ(count("école"), 0);  // ASCII letters fold, others do not: on both backends
  EXPECT_EQ(count(""), 5);
}

TEST_P(DbTest, ErrorsCarryTheDatabasesMessage) {
  try {
    db().exec("SELECT x FROM no_such_table");
    ADD_FAILURE();
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_table"), std::string::npos) << e.what();
  }
  EXPECT_THROW(db().exec("SELECT ?", {int64_t(1), int64_t(2)}), StoreError);  // too many parameters
  EXPECT_THROW(db().exec_script("THIS IS NOT SQL"), StoreError);
  EXPECT_EQ(db().query_i64("SELECT 41 + 1"), 42);  // still usable
}

TEST_P(DbTest, OpenDbChoosesTheDriverByName) {
  auto again = open_db(db_name());
  EXPECT_EQ(again->dialect(), backend() == Backend::sqlite ? Dialect::sqlite : Dialect::postgres);
  EXPECT_EQ(open_db(":memory:")->dialect(), Dialect::sqlite);
}

SEKISHO_INSTANTIATE_BACKENDS(DbTest);

// PostgreSQL only.
class PgDbTest : public BackendTest {
 protected:
  PgDb& pg() { return static_cast<PgDb&>(db()); }
  void kill_session() {
    int pid = pg().backend_pid();
    auto admin = connect();
    // Waits up to 5 s for the backend to be gone.
    EXPECT_EQ(admin->query_i64("SELECT pg_terminate_backend(?, 5000)", {int64_t(pid)}), 1);
  }
};

TEST_P(PgDbTest, ReconnectsOutsideATransactionAfterTheServerDroppedIt) {
  db().exec_script("CREATE TABLE u (k TEXT PRIMARY KEY)");
  db().exec("INSERT INTO u (k) VALUES (?)", {"a"});
  // A SELECT is retried once on a new connection.
  kill_session();
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM u"), 1);
  EXPECT_EQ(pg().reconnects(), 1);
  // A statement not yet prepared on the new connection fails at its
  // prepare: nothing ran, so it is run on a new connection.
  kill_session();
  db().exec("INSERT INTO u (k) VALUES (?)", {"b"});
  EXPECT_EQ(pg().reconnects(), 2);
  // A prepared write is never retried (it may have been committed): it
  // fails once, and the next call reconnects.
  kill_session();
  EXPECT_THROW(db().exec("INSERT INTO u (k) VALUES (?)", {"c"}), StoreError);
  db().exec("INSERT INTO u (k) VALUES (?)", {"c"});
  EXPECT_EQ(pg().reconnects(), 3);
  // Inside a transaction the failure is the caller's; the transaction is lost.
  try {
    Transaction t(db());
    db().exec("INSERT INTO u (k) VALUES (?)", {"d"});
    kill_session();
    db().exec("INSERT INTO u (k) VALUES (?)", {"e"});
    t.commit();
    ADD_FAILURE() << "a transaction survived its connection";
  } catch (const StoreError&) {
  }
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM u"), 3);
}

TEST_P(PgDbTest, RefusesNulInTextAndReportsSqlState) {
  db().exec_script("CREATE TABLE u (k TEXT PRIMARY KEY)");
  EXPECT_THROW(db().exec("INSERT INTO u (k) VALUES (?)", {std::string("a\0b", 3)}), StoreError);
  db().exec("INSERT INTO u (k) VALUES (?)", {"a"});
  try {
    db().exec("INSERT INTO u (k) VALUES (?)", {"a"});
    ADD_FAILURE();
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("23505"), std::string::npos) << e.what();  // unique_violation
  }
}

TEST_P(PgDbTest, CommitOfAFailedTransactionIsAnError) {
  db().exec_script("CREATE TABLE u (k TEXT PRIMARY KEY)");
  db().begin();
  db().exec("INSERT INTO u (k) VALUES ('a')");
  EXPECT_THROW(db().exec("INSERT INTO u (k) VALUES ('a')"), StoreError);
  EXPECT_THROW(db().commit(), StoreError);  // the server answered ROLLBACK
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM u"), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, PgDbTest, ::testing::Values(Backend::postgres), testing::backend_param_name);

TEST(PgPlaceholders, NumberedOutsideQuotesAndComments) {
  int n = 0;
  EXPECT_EQ(number_placeholders("SELECT ?, '?', \"a?\" -- ?\n, ? /* ? */ , 'it''s ?', ?", n),
            "SELECT $1, '?', \"a?\" -- ?\n, $2 /* ? */ , 'it''s ?', $3");
  EXPECT_EQ(n, 3);
  EXPECT_EQ(number_placeholders("x LIKE ? ESCAPE '\\' AND y = ?", n), "x LIKE $1 ESCAPE '\\' AND y = $2");
  EXPECT_EQ(n, 2);
}

TEST(ConnInfo, PasswordsAreRedactedAndNamesRouted) {
  EXPECT_EQ(redact_conninfo("postgresql://sek:s3cret@db.example/sekisho?sslmode=require"),
            "postgresql://sek:***@db.example/sekisho?sslmode=require");
  EXPECT_EQ(redact_conninfo("host=db password='a b\\'c' dbname=x"), "host=db password=*** dbname=x");
  EXPECT_EQ(redact_conninfo("postgres://db/x?password=p&user=u"), "postgres://db/x?password=***&user=u");
  EXPECT_EQ(redact_conninfo("/var/lib/sekisho/control.db"), "/var/lib/sekisho/control.db");
  EXPECT_TRUE(is_postgres_name("postgresql://db/x"));
  EXPECT_TRUE(is_postgres_name("host=/run/postgresql dbname=x"));
  EXPECT_FALSE(is_postgres_name("/var/lib/sekisho/control.db"));
  EXPECT_FALSE(is_postgres_name(":memory:"));
}

TEST(ConnInfo, AnUnreachableServerIsAClearError) {
  try {
    PgDb db("host=127.0.0.1 port=1 dbname=x user=u password=hidden connect_timeout=2");
    ADD_FAILURE();
  } catch (const StoreError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cannot connect"), std::string::npos) << m;
    EXPECT_EQ(m.find("hidden"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace sekisho::control::db
