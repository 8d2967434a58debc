// Backend-parameterised tests: the same test body runs on SQLite and on a
// real PostgreSQL, each test on a fresh, empty database.
//
//   class QuarantineTest : public sekisho::control::testing::BackendTest {};
//   TEST_P(QuarantineTest, Something) { MyStore s(db()); ... }
//   SEKISHO_INSTANTIATE_BACKENDS(QuarantineTest);
//
// and link the test with control_test_backends_dep (tests/unit/control/
// meson.build). Fixtures that keep a store built on db() construct it in
// their SetUp after BackendTest::SetUp(), and return when IsSkipped().
//
// SQLite: a database file in a temporary directory (so connect() can open a
// second connection to it). PostgreSQL: a schema of its own per test
// ("t_PID_N", search_path "t_PID_N, public"), dropped afterwards, in the
// server named by SEKISHO_TEST_PG (a libpq conninfo). When that is unset,
// the first PostgreSQL test starts a private server with
// tests/support/pg-test-server.sh (stopped at exit, or by its watchdog if
// the test crashes) and exports SEKISHO_TEST_PG for child processes.
// If no server can be had, PostgreSQL cases FAIL when CI is set (CI=true)
// and are skipped with the reason otherwise.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "control/db/db.hpp"

namespace sekisho::control::testing {

enum class Backend { sqlite, postgres };

// The conninfo of the test server, starting one if needed; "" with the
// reason in *why when none can be had.
std::string postgres_conninfo(std::string* why = nullptr);

class BackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override;
  void TearDown() override;

  db::Db& db() { return *db_; }
  // Another connection to this test's database.
  std::unique_ptr<db::Db> connect();
  // What to give open_db() (or a program's `database` setting) to reach
  // this test's database.
  const std::string& db_name() const { return name_; }
  Backend backend() const { return GetParam(); }

 private:
  std::unique_ptr<db::Db> db_;
  std::string name_;
  std::string dir_;     // SQLite: the temporary directory
  std::string schema_;  // PostgreSQL: the test's schema
};

std::string backend_param_name(const ::testing::TestParamInfo<Backend>& info);
// gtest prints the parameter with this ("SQLite", "PostgreSQL").
void PrintTo(Backend b, std::ostream* os);

}  // namespace sekisho::control::testing

#define SEKISHO_INSTANTIATE_BACKENDS(Fixture)                                                            \
  INSTANTIATE_TEST_SUITE_P(Backends, Fixture,                                                            \
                           ::testing::Values(::sekisho::control::testing::Backend::sqlite,               \
                                             ::sekisho::control::testing::Backend::postgres),            \
                           ::sekisho::control::testing::backend_param_name)
