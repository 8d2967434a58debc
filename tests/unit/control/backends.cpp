#include "tests/unit/control/backends.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "control/db/pg_db.hpp"
#include "control/db/sqlite_db.hpp"

#ifndef SEKISHO_PG_TEST_SERVER
#error "SEKISHO_PG_TEST_SERVER (the path of tests/support/pg-test-server.sh) must be defined"
#endif

namespace sekisho::control::testing {

namespace {

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && *ci && std::string(ci) != "false" && std::string(ci) != "0";
}

std::string make_temp_dir(const char* prefix) {
  std::string t = (std::filesystem::temp_directory_path() / (std::string(prefix) + "XXXXXX")).string();
  if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
  return t;
}

std::string run(const std::string& cmd, int& status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    status = -1;
    return out;
  }
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  status = pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// The private server of this process, stopped at exit.
class PrivateServer {
 public:
  ~PrivateServer() {
    if (dir_.empty()) return;
    int st;
    run(std::string("'") + SEKISHO_PG_TEST_SERVER + "' stop '" + dir_ + "'", st);
  }
  std::string get(std::string* why) {
    std::lock_guard g(mu_);
    if (const char* env = std::getenv("SEKISHO_TEST_PG"); env && *env) return env;
    if (tried_) {
      if (why) *why = error_;
      return {};
    }
    tried_ = true;
    dir_ = make_temp_dir("sekisho-pg-");
    int st = 0;
    std::string out = run(std::string("'") + SEKISHO_PG_TEST_SERVER + "' start '" + dir_ + "' --watch " +
                              std::to_string(getpid()) + " 2>&1",
                          st);
    if (st != 0) {
      error_ = "cannot start a PostgreSQL test server: " + out;
      std::filesystem::remove_all(dir_);
      dir_.clear();
      if (why) *why = error_;
      return {};
    }
    // The last line is the conninfo (warnings may precede it).
    std::string conninfo = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
    setenv("SEKISHO_TEST_PG", conninfo.c_str(), 1);
    return conninfo;
  }

 private:
  std::mutex mu_;
  bool tried_ = false;
  std::string dir_, error_;
};

PrivateServer& private_server() {
  static PrivateServer s;
  return s;
}

std::atomic<int> schema_counter{0};

}  // namespace

std::string postgres_conninfo(std::string* why) { return private_server().get(why); }

std::string backend_param_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::sqlite ? "SQLite" : "PostgreSQL";
}

void PrintTo(Backend b, std::ostream* os) { *os << (b == Backend::sqlite ? "SQLite" : "PostgreSQL"); }

void BackendTest::SetUp() {
  if (GetParam() == Backend::sqlite) {
    dir_ = make_temp_dir("sekisho-db-");
    name_ = dir_ + "/test.db";
    db_ = std::make_unique<db::SqliteDb>(name_);
    return;
  }
  std::string why;
  std::string base = postgres_conninfo(&why);
  if (base.empty()) {
    if (in_ci()) FAIL() << why << " (CI is set: PostgreSQL cases must run)";
    GTEST_SKIP() << why << " (set SEKISHO_TEST_PG to a conninfo, or install postgresql)";
  }
  schema_ = "t_" + std::to_string(getpid()) + "_" + std::to_string(++schema_counter);
  {
    db::PgDb admin(base);
    admin.exec_script("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE; CREATE SCHEMA " + schema_);
  }
  if (base.starts_with("postgresql://") || base.starts_with("postgres://"))
    name_ = base + (base.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" + schema_ + "%2Cpublic";
  else
    name_ = base + " options='-c search_path=" + schema_ + ",public'";
  db_ = std::make_unique<db::PgDb>(name_);
}

void BackendTest::TearDown() {
  db_.reset();
  if (!dir_.empty()) std::filesystem::remove_all(dir_);
  if (!schema_.empty()) {
    try {
      db::PgDb admin(postgres_conninfo());
      admin.exec_script("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
    } catch (const std::exception& e) {
      ADD_FAILURE() << "dropping " << schema_ << ": " << e.what();
    }
  }
}

std::unique_ptr<db::Db> BackendTest::connect() { return db::open_db(name_); }

}  // namespace sekisho::control::testing
