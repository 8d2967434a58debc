// store_bench: the tracking log at scale, SQLite and PostgreSQL in the same
// run. Ingests generated message events (1-5 envelope recipients each, as
// gateways see them) through SqlStore::ingest in batches of --batch events
// (one transaction each, with a journal cursor, as the ingester does) into
// an empty store until it holds --rows tracking-log rows, then times the
// searches the log pages make at that size: newest page, sender substring,
// recipient (a whole address, searched as a substring as the API does),
// subject substring, verdict + a one-day range, and counts(). Every search
// includes its total (count of matches), as /api/log does.
//
//   store_bench [--rows 1000000] [--batch 1000] [--queries 15]
//               [--sqlite PATH] [--pg CONNINFO | --no-pg] [--seed N]
//
// PostgreSQL: CONNINFO, else $SEKISHO_BENCH_PG, else a private durable
// server (fsync and synchronous_commit on) from tests/support/
// pg-test-server.sh, stopped at the end. SQLite: a file in a temporary
// directory unless --sqlite names one (it must not exist).
// Output: a table, then one JSON line.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "control/db/db.hpp"
#include "control/db/pg_db.hpp"
#include "control/tracking/sql_store.hpp"
#include "control/db/sqlite_db.hpp"

#ifndef SEKISHO_PG_TEST_SERVER
#error "SEKISHO_PG_TEST_SERVER must be defined"
#endif

namespace {

using namespace sekisho::control::db;
using namespace sekisho::control::tracking;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Deterministic mail traffic: a pool of outside senders, inside recipients,
// subjects from word lists (some Japanese), verdicts mostly pass.
class Traffic {
 public:
  // Pools from pool_seed; the picks from pick_seed (searches use the same
  // pools with other picks).
  Traffic(uint64_t pool_seed, uint64_t pick_seed) : rng_(pool_seed) {
    for (int i = 0; i < 20000; ++i)
      senders_.push_back(pick(kFirst) + std::to_string(i) + "@" + pick(kDomains) + std::to_string(i % 700) + ".example");
    for (int i = 0; i < 3000; ++i) rcpts_.push_back(pick(kFirst) + "." + std::to_string(i) + "@corp.example.jp");
    rng_.seed(pick_seed);
  }
  static constexpr int64_t kStartUs = 1767225600LL * 1000000;  // 2026-01-01
  // Events arrive ~3 s apart on average: 1M rows span about 18 days.
  LogEntry next() {
    LogEntry e;
    ts_us_ += 1 + int64_t(std::exponential_distribution<double>(1.0 / 3e6)(rng_));
    e.ts_us = ts_us_;
    char id[32];
    snprintf(id, sizeof id, "SK%014llX", static_cast<unsigned long long>(++n_));
    e.event_id = id;
    bool bounce = u(0, 99) < 2;
    e.envelope_sender = bounce ? "" : senders_[zipf()];
    static const int kRcptWeights[] = {50, 20, 15, 10, 5};  // 1..5 recipients, mean 2.0
    int r = u(0, 99), k = 0;
    for (int acc = 0; k < 5 && r >= (acc += kRcptWeights[k]); ++k) {
    }
    for (int i = 0; i <= k; ++i) e.recipients.push_back(rcpts_[size_t(u(0, int(rcpts_.size()) - 1))]);
    e.header_from = bounce ? "MAILER-DAEMON@mx.example" : e.envelope_sender;
    nlohmann::json to = e.recipients;
    e.to_json = to.dump();
    e.subject = pick(kSubjects) + " " + pick(kWords) + " " + std::to_string(u(1, 99999));
    e.size = 2000 + u(0, 200000);
    e.message_id = "<" + std::string(id) + "." + std::to_string(u(0, 1 << 30)) + "@mx.example>";
    e.client = "198.51." + std::to_string(u(0, 255)) + "." + std::to_string(u(1, 254)) + ":" + std::to_string(u(1024, 65535));
    e.server = "192.0.2.25:25";
    e.tls = u(0, 9) < 8;
    int v = u(0, 99);
    e.action = v < 85 ? "pass" : v < 90 ? "tag" : v < 94 ? "quarantine" : v < 99 ? "reject" : "tempfail";
    if (e.action != "pass") {
      e.rule = pick(kRules);
      e.score = u(50, 200) / 10.0;
      e.rules_json = R"([{"rule":")" + e.rule + R"(","context":"subject"}])";
    }
    if (e.action == "quarantine") e.spool = "/var/spool/sekisho/new/" + std::string(id) + ".msg";
    return e;
  }
  std::string some_sender() {
    const std::string& s = senders_[zipf()];
    return s.substr(0, s.find('@'));
  }
  std::string some_rcpt() { return rcpts_[size_t(u(0, int(rcpts_.size()) - 1))]; }
  std::string some_word() { return pick(kWords); }
  int u(int a, int b) { return std::uniform_int_distribution<int>(a, b)(rng_); }
  int64_t end_us() const { return ts_us_; }

 private:
  template <size_t N>
  std::string pick(const char* const (&a)[N]) {
    return a[size_t(u(0, int(N) - 1))];
  }
  // Some senders write a lot, most rarely.
  size_t zipf() {
    double x = std::pow(std::uniform_real_distribution<double>(0, 1)(rng_), 3.0);
    return size_t(x * double(senders_.size() - 1));
  }
  static constexpr const char* kFirst[] = {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
                                           "ivan", "judy", "mallory", "oscar", "peggy", "trent", "victor", "walter",
                                           "taro", "hanako", "yuki", "kenji"};
  static constexpr const char* kDomains[] = {"mail", "news", "shop", "bank", "post", "info", "support", "cloud"};
  static constexpr const char* kSubjects[] = {"Invoice", "Re: meeting", "Fwd: report", "Your order", "【重要】お知らせ",
                                              "Password reset", "Quarterly results", "請求書の送付",
                                              "Delivery failure", "Newsletter", "Action required", "ご確認のお願い"};
  static constexpr const char* kWords[] = {"april", "budget", "contract", "delivery", "estimate", "forecast",
                                           "gateway", "holiday", "inventory", "journal", "kickoff", "ledger",
                                           "milestone", "network", "overdue", "payment", "quotation", "renewal",
                                           "schedule", "training", "update", "vendor", "warranty", "見積書",
                                           "会議", "契約"};
  static constexpr const char* kRules[] = {"PPAP_ZIP", "JP_PHISH_BANK", "SPF_FAIL", "EXEC_ATTACHMENT", "URIBL_HIT",
                                           "NEW_LOOKALIKE_DOMAIN", "BULK_SENDER"};
  std::mt19937_64 rng_;
  std::vector<std::string> senders_, rcpts_;
  int64_t ts_us_ = kStartUs;
  uint64_t n_ = 0;
};

struct Latency {
  std::string name;
  double p50_ms = 0, p99_ms = 0;
  int64_t matches = 0;  // median total of the queries
};

Latency time_queries(const std::string& name, int n, const std::function<int64_t(int)>& run) {
  std::vector<double> ms;
  std::vector<int64_t> totals;
  run(-1);  // warm the statement cache and the page cache once
  for (int i = 0; i < n; ++i) {
    auto t = Clock::now();
    totals.push_back(run(i));
    ms.push_back(seconds_since(t) * 1000);
  }
  std::sort(ms.begin(), ms.end());
  std::sort(totals.begin(), totals.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, size_t(p * double(ms.size() - 1) + 0.5))]; };
  return {name, pct(0.5), pct(0.99), totals[totals.size() / 2]};
}

struct Result {
  std::string backend;
  int64_t events = 0, rows = 0;
  double ingest_s = 0;
  double first_rate = 0, last_rate = 0;  // events/s in the first and last 10% of batches
  std::vector<Latency> searches;
  int64_t db_bytes = 0;
};

Result run(const std::string& label, Db& db, int64_t target_rows, size_t batch, int queries, uint64_t seed) {
  Result res;
  res.backend = label;
  SqlStore store(db);
  Traffic traffic(seed, seed);
  std::vector<double> batch_rates;
  auto t0 = Clock::now();
  int64_t rows = 0, events = 0;
  uint64_t offset = 0;
  while (rows < target_rows) {
    std::vector<LogEntry> evs;
    evs.reserve(batch);
    for (size_t i = 0; i < batch && rows < target_rows; ++i) {
      evs.push_back(traffic.next());
      rows += int64_t(evs.back().recipients.size());
    }
    offset += evs.size() * 900;
    auto tb = Clock::now();
    events += int64_t(store.ingest(evs, "/var/lib/sekisho/journal", JournalCursor{"events-000000000000.jsonl", offset, 0}));
    batch_rates.push_back(double(evs.size()) / seconds_since(tb));
    if (batch_rates.size() % 100 == 0)
      std::cerr << "  " << label << ": " << rows << " rows, " << int(seconds_since(t0)) << " s\n";
  }
  res.ingest_s = seconds_since(t0);
  res.events = events;
  res.rows = rows;
  size_t tenth = std::max<size_t>(1, batch_rates.size() / 10);
  auto mean = [](auto b, auto e) {
    double s = 0;
    for (auto i = b; i != e; ++i) s += 1.0 / *i;  // harmonic mean of rates = events over time
    return double(std::distance(b, e)) / s;
  };
  res.first_rate = mean(batch_rates.begin(), batch_rates.begin() + long(tenth));
  res.last_rate = mean(batch_rates.end() - long(tenth), batch_rates.end());
  // What autovacuum (PostgreSQL: statistics and the visibility map that
  // index-only scans need) or a periodic ANALYZE (SQLite) would have done.
  db.exec_script(db.dialect() == Dialect::postgres ? "VACUUM ANALYZE" : "ANALYZE");

  Traffic q(seed, seed + 1);  // the same pools, other picks
  const int64_t end = traffic.end_us();
  res.searches.push_back(time_queries("newest page (100 rows + total)", queries, [&](int) {
    return store.search(LogQuery{}).total;
  }));
  res.searches.push_back(time_queries("sender substring", queries, [&](int) {
    LogQuery l;
    l.sender = q.some_sender();
    return store.search(l).total;
  }));
  res.searches.push_back(time_queries("recipient address", queries, [&](int) {
    LogQuery l;
    l.rcpt = q.some_rcpt();
    return store.search(l).total;
  }));
  res.searches.push_back(time_queries("subject substring", queries, [&](int) {
    LogQuery l;
    l.subject = q.some_word();
    return store.search(l).total;
  }));
  res.searches.push_back(time_queries("any field (q=) substring", queries, [&](int) {
    LogQuery l;
    l.q = q.some_sender();
    return store.search(l).total;
  }));
  res.searches.push_back(time_queries("verdict + one day", queries, [&](int) {
    LogQuery l;
    l.verdict = "quarantine";
    int64_t day = 86400LL * 1000000;
    int days = int((end - Traffic::kStartUs) / day);
    l.since_us = Traffic::kStartUs + int64_t(days > 0 ? q.u(0, days - 1) : 0) * day;
    l.until_us = *l.since_us + day;
    return store.search(l).total;
  }));
  res.searches.push_back(time_queries("counts (/metrics)", queries, [&](int) { return store.counts().rows; }));
  if (db.dialect() == Dialect::postgres)
    res.db_bytes = db.query_i64("SELECT pg_database_size(current_database())").value_or(0);
  else
    res.db_bytes = db.query_i64("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()").value_or(0);
  return res;
}

std::string shell(const std::string& cmd, int& status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return status = -1, out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  status = pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 1000000;
  size_t batch = 1000;
  int queries = 15;
  uint64_t seed = 7;
  std::string sqlite_path, pg;
  bool no_pg = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "store_bench: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--rows") rows = std::stoll(val());
    else if (a == "--batch") batch = size_t(std::stoul(val()));
    else if (a == "--queries") queries = std::stoi(val());
    else if (a == "--seed") seed = std::stoull(val());
    else if (a == "--sqlite") sqlite_path = val();
    else if (a == "--pg") pg = val();
    else if (a == "--no-pg") no_pg = true;
    else {
      std::cerr << "usage: store_bench [--rows N] [--batch N] [--queries N] [--sqlite PATH] [--pg CONNINFO | --no-pg]\n";
      return 2;
    }
  }
  if (rows < 1000 || batch < 1 || queries < 1) {
    std::cerr << "store_bench: --rows >= 1000, --batch >= 1, --queries >= 1\n";
    return 2;
  }

  std::vector<Result> results;
  std::string tmp = (std::filesystem::temp_directory_path() / "sekisho-store-bench-XXXXXX").string();
  if (!mkdtemp(tmp.data())) return 1;
  std::string pg_dir;
  try {
    {
      std::string path = sqlite_path.empty() ? tmp + "/bench.db" : sqlite_path;
      if (std::filesystem::exists(path)) throw StoreError(path + " exists; store_bench wants an empty store");
      SqliteDb db(path);
      std::cerr << "SQLite: " << path << "\n";
      results.push_back(run("SQLite", db, rows, batch, queries, seed));
    }
    if (!no_pg) {
      if (pg.empty() && std::getenv("SEKISHO_BENCH_PG")) pg = std::getenv("SEKISHO_BENCH_PG");
      if (pg.empty()) {
        // Its own directory under /tmp: the server runs as 'postgres' when
        // we are root, and cannot enter our 0700 temporary directory.
        pg_dir = (std::filesystem::temp_directory_path() / "sekisho-bench-pg-XXXXXX").string();
        if (!mkdtemp(pg_dir.data())) throw StoreError("mkdtemp failed");
        int st = 0;
        pg = shell(std::string("'") + SEKISHO_PG_TEST_SERVER + "' start '" + pg_dir + "' --durable --watch " +
                       std::to_string(getpid()),
                   st);
        if (st != 0) throw StoreError("cannot start PostgreSQL: " + pg + " (use --pg CONNINFO or --no-pg)");
        std::cerr << "PostgreSQL: a private durable server, " << pg << "\n";
      }
      PgDb db(pg);
      results.push_back(run("PostgreSQL", db, rows, batch, queries, seed));
    }
  } catch (const std::exception& e) {
    std::cerr << "store_bench: " << e.what() << "\n";
    if (!pg_dir.empty()) {
      int st;
      shell(std::string("'") + SEKISHO_PG_TEST_SERVER + "' stop '" + pg_dir + "'", st);
    }
    std::filesystem::remove_all(tmp);
    return 1;
  }
  if (!pg_dir.empty()) {
    int st;
    shell(std::string("'") + SEKISHO_PG_TEST_SERVER + "' stop '" + pg_dir + "'", st);
  }
  std::filesystem::remove_all(tmp);

  nlohmann::json j = {{"bench", "store_bench"}, {"rows", rows}, {"batch_events", batch}, {"queries", queries}};
  printf("%-32s", "");
  for (const auto& r : results) printf(" %22s", r.backend.c_str());
  printf("\n%-32s", "events stored");
  for (const auto& r : results) printf(" %22lld", static_cast<long long>(r.events));
  printf("\n%-32s", "tracking-log rows");
  for (const auto& r : results) printf(" %22lld", static_cast<long long>(r.rows));
  printf("\n%-32s", "ingest events/s (all)");
  for (const auto& r : results) printf(" %22.0f", double(r.events) / r.ingest_s);
  printf("\n%-32s", "ingest rows/s (all)");
  for (const auto& r : results) printf(" %22.0f", double(r.rows) / r.ingest_s);
  printf("\n%-32s", "events/s first 10% / last 10%");
  for (const auto& r : results) printf(" %12.0f / %7.0f", r.first_rate, r.last_rate);
  printf("\n%-32s", "database size MiB");
  for (const auto& r : results) printf(" %22.0f", double(r.db_bytes) / 1048576.0);
  printf("\n%-32s", "search ms p50 / p99 (matches)");
  for (size_t i = 0; i < results[0].searches.size(); ++i) {
    printf("\n  %-30s", results[0].searches[i].name.c_str());
    for (const auto& r : results)
      printf(" %6.1f / %6.1f (%6lld)", r.searches[i].p50_ms, r.searches[i].p99_ms,
             static_cast<long long>(r.searches[i].matches));
  }
  printf("\n");
  for (const auto& r : results) {
    nlohmann::json b = {{"events", r.events},
                        {"rows", r.rows},
                        {"ingest_seconds", r.ingest_s},
                        {"ingest_events_per_s", double(r.events) / r.ingest_s},
                        {"ingest_rows_per_s", double(r.rows) / r.ingest_s},
                        {"first_tenth_events_per_s", r.first_rate},
                        {"last_tenth_events_per_s", r.last_rate},
                        {"database_bytes", r.db_bytes}};
    for (const auto& s : r.searches)
      b["search_ms"][s.name] = {{"p50", s.p50_ms}, {"p99", s.p99_ms}, {"median_matches", s.matches}};
    j["backends"][r.backend] = b;
  }
  printf("%s\n", j.dump().c_str());
  return 0;
}
