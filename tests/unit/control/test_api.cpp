// The tracking log's routes (tracking_api.hpp) without sockets: search, null sender shown "<>", CSV
// quoting, /metrics, bad parameters, unknown paths, methods, HEAD.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/unit/control/control_test_util.hpp"
#include "control/tracking/tracking_api.hpp"
#include "control/ingest/journal_ingest.hpp"
#include "tests/unit/control/backends.hpp"
#include "control/tracking/sql_store.hpp"

namespace sekisho::control::tracking {
namespace {

namespace bhttp = boost::beast::http;
using nlohmann::json;
using http::Request;
using http::Response;
using testing::message_event;

// On SQLite and PostgreSQL: the API's answers must not depend on the backend.
class ApiTest : public testing::BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    store.emplace(db());
    add(message_event("2026-03-01T10:00:00Z", "alice@outside.test", {"bob@inside.test", "carol@inside.test"},
                      "quarterly report"));
    add(message_event("2026-03-01T11:00:00Z", "", {"postmaster@inside.test"}, "Undelivered Mail"));
    auto tricky = message_event("2026-03-01T12:00:00Z", "mallory@outside.test", {"bob@inside.test"},
                                "Re: \"invoice\", overdue\r\nsecond line", "quarantine", "SKQ1");
    tricky["verdict"] = {{"action", "quarantine"},
                         {"rule", "PPAP_ZIP"},
                         {"score", 5.5},
                         {"rules", {{{"rule", "PPAP_ZIP"}, {"context", "attachment"}},
                                    {{"rule", "NEW_SENDER"}, {"context", "envelope"}}}}};
    tricky["attachments"] = {{{"name", "請求書.zip"}, {"encrypted", true}}, {{"name", "a,b.txt"}}};
    tricky["cc"] = {"x@inside.test", "y@inside.test"};
    tricky["reply_to"] = "=cmd|' /C calc'!A0";
    tricky["spool"] = "/var/spool/sekisho/new/SKQ1.msg";
    add(tricky);
    add(message_event("2026-03-01T13:00:00Z", "jp@example.jp", {"dave@inside.test"}, "【重要】お支払い, 確認",
                      "reject", "SKR1"));
  }
  void add(const json& j) {
    LogEntry e;
    std::string err;
    ASSERT_EQ(ingest::parse_event_line(j.dump(), e, err), ingest::LineKind::message) << err;
    store->ingest({e});
  }
  Response get(const std::string& target, bhttp::verb method = bhttp::verb::get) {
    Request req{method, target, 11};
    return handle_request(req, *store, kNow);
  }
  json get_json(const std::string& target) {
    Response r = get(target);
    EXPECT_EQ(r.result(), bhttp::status::ok) << r.body();
    EXPECT_EQ(r[bhttp::field::content_type], "application/json");
    return json::parse(r.body());
  }
  static constexpr int64_t kNow = 1772370000LL * 1000000;  // 2026-03-01T13:00:00Z
  std::optional<SqlStore> store;
};

TEST_P(ApiTest, LogSearchReturnsRowsPerRecipientNewestFirst) {
  json j = get_json("/api/log");
  EXPECT_EQ(j["total"], 5);
  ASSERT_EQ(j["rows"].size(), 5u);
  EXPECT_EQ(j["rows"][0]["event_id"], "SKR1");
  EXPECT_EQ(j["rows"][0]["time"], "2026-03-01T13:00:00.000000Z");
  EXPECT_EQ(j["rows"][0]["subject"], "【重要】お支払い, 確認");
  const json& q = j["rows"][1];
  EXPECT_EQ(q["verdict"]["action"], "quarantine");
  EXPECT_EQ(q["verdict"]["rule"], "PPAP_ZIP");
  EXPECT_EQ(q["verdict"]["score"], 5.5);
  EXPECT_EQ(q["rules"].size(), 2u);
  EXPECT_EQ(q["cc"], json({"x@inside.test", "y@inside.test"}));
  EXPECT_EQ(q["attachments"][0]["name"], "請求書.zip");
  EXPECT_EQ(q["spool"], "/var/spool/sekisho/new/SKQ1.msg");
  EXPECT_TRUE(j["rows"][4]["reply_to"].is_null());
  // alice's message: one row per envelope recipient
  EXPECT_EQ(get_json("/api/log?sender=alice")["total"], 2);
}

TEST_P(ApiTest, OneMessageWithAllItsRecipients) {
  std::string id = get_json("/api/log?sender=alice")["rows"][0]["event_id"];
  json m = get_json("/api/log/" + id);
  EXPECT_EQ(m["event_id"], id);
  EXPECT_EQ(m["recipients"], json({"bob@inside.test", "carol@inside.test"}));  // envelope order
  EXPECT_EQ(m["subject"], "quarterly report");
  EXPECT_FALSE(m.contains("recipient"));
  json q = get_json("/api/log/SKQ1");
  EXPECT_EQ(q["recipients"], json({"bob@inside.test"}));
  EXPECT_EQ(q["verdict"]["rule"], "PPAP_ZIP");
  EXPECT_EQ(q["reply_to"], "=cmd|' /C calc'!A0");
  EXPECT_EQ(get("/api/log/SKQ").result(), bhttp::status::not_found);  // ids match exactly
  EXPECT_EQ(get("/api/log/NOPE").result(), bhttp::status::not_found);
  EXPECT_EQ(get("/api/log/SKQ1?x=1").result(), bhttp::status::bad_request);
  EXPECT_EQ(get("/api/log/SKQ1", bhttp::verb::post).result(), bhttp::status::method_not_allowed);
}

TEST_P(ApiTest, NullSenderIsShownAsAngleBrackets) {
  json j = get_json("/api/log?sender=%3C%3E");
  ASSERT_EQ(j["total"], 1);
  EXPECT_EQ(j["rows"][0]["sender"], "<>");
  EXPECT_EQ(j["rows"][0]["subject"], "Undelivered Mail");
  Response csv = get("/api/log.csv?sender=<>");
  EXPECT_NE(csv.body().find("\r\n2026-03-01T11:00:00.000000Z,"), std::string::npos);
  EXPECT_NE(csv.body().find(",<>,postmaster@inside.test,"), std::string::npos);
}

TEST_P(ApiTest, FiltersAndPaging) {
  EXPECT_EQ(get_json("/api/log?rcpt=bob%40inside.test")["total"], 2);
  EXPECT_EQ(get_json("/api/log?verdict=reject")["total"], 1);
  EXPECT_EQ(get_json("/api/log?subject=%E9%87%8D%E8%A6%81")["total"], 1);  // 重要
  EXPECT_EQ(get_json("/api/log?from=MALLORY")["total"], 1);
  EXPECT_EQ(get_json("/api/log?q=undelivered+mail")["total"], 1);
  EXPECT_EQ(get_json("/api/log?since=2026-03-01T11:00:00Z&until=2026-03-01T13:00:00%2B00:00")["total"], 2);
  EXPECT_EQ(get_json("/api/log?since=1772362800")["total"], 3);  // Unix seconds, 11:00Z
  EXPECT_EQ(get_json("/api/log?until=2026-03-01")["total"], 0);   // a date is its midnight UTC
  json p = get_json("/api/log?limit=2&offset=2");
  EXPECT_EQ(p["total"], 5);
  EXPECT_EQ(p["limit"], 2);
  ASSERT_EQ(p["rows"].size(), 2u);
  EXPECT_EQ(p["rows"][0]["sender"], "<>");
  EXPECT_EQ(get_json("/api/log?limit=2&offset=4")["rows"].size(), 1u);
}

TEST_P(ApiTest, CsvQuotesCommasQuotesNewlinesAndKeepsJapanese) {
  Response r = get("/api/log.csv");
  ASSERT_EQ(r.result(), bhttp::status::ok);
  EXPECT_EQ(r[bhttp::field::content_type], "text/csv; charset=utf-8; header=present");
  EXPECT_NE(r[bhttp::field::content_disposition].find("attachment"), std::string::npos);
  const std::string& b = r.body();
  EXPECT_EQ(b.rfind("time,event_id,sender,recipient,from,to,cc,reply_to,subject,", 0), 0u);
  EXPECT_NE(b.find(",\"Re: \"\"invoice\"\", overdue\r\nsecond line\","), std::string::npos) << b;
  EXPECT_NE(b.find(",\"【重要】お支払い, 確認\","), std::string::npos);
  EXPECT_NE(b.find(",\"x@inside.test, y@inside.test\","), std::string::npos);
  EXPECT_NE(b.find(",PPAP_ZIP NEW_SENDER,\"請求書.zip; a,b.txt\","), std::string::npos);
  EXPECT_NE(b.find(",quarantine,PPAP_ZIP,5.5,"), std::string::npos);
  // A Reply-To that a spreadsheet would run as a formula is neutralised.
  EXPECT_NE(b.find(",'=cmd|' /C calc'!A0,"), std::string::npos);
  // header + 5 rows, each ended by CRLF; the quoted newline is inside a field
  size_t crlf = 0;
  for (size_t i = b.find("\r\n"); i != std::string::npos; i = b.find("\r\n", i + 2)) ++crlf;
  EXPECT_EQ(crlf, 7u);  // 6 record ends + 1 inside the quoted subject
}

TEST(CsvField, Rfc4180) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("l1\nl2"), "\"l1\nl2\"");
  EXPECT_EQ(csv_field("件名"), "件名");
  EXPECT_EQ(csv_field("=1+1"), "'=1+1");
  EXPECT_EQ(csv_field("-2", false), "-2");
  EXPECT_EQ(csv_field("@x,y"), "\"'@x,y\"");
  EXPECT_EQ(csv_field(""), "");
}

TEST_P(ApiTest, MetricsInPrometheusTextFormat) {
  store->ingest({}, "/var/lib/sekisho/journal", JournalCursor{"events-000000000000.jsonl", 10,
                                                                      kNow - 2500000});
  Response r = get("/metrics");
  ASSERT_EQ(r.result(), bhttp::status::ok);
  EXPECT_EQ(r[bhttp::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  const std::string& b = r.body();
  EXPECT_NE(b.find("# TYPE sekisho_control_events_ingested_total counter\nsekisho_control_events_ingested_total 4\n"),
            std::string::npos)
      << b;
  EXPECT_NE(b.find("# TYPE sekisho_control_ingest_lag_seconds gauge\n"
                   "sekisho_control_ingest_lag_seconds{journal=\"/var/lib/sekisho/journal\"} 2.500\n"),
            std::string::npos)
      << b;
  EXPECT_NE(b.find("sekisho_control_tracking_rows{action=\"pass\"} 3\n"), std::string::npos);
  EXPECT_NE(b.find("sekisho_control_tracking_rows{action=\"quarantine\"} 1\n"), std::string::npos);
  EXPECT_NE(b.find("sekisho_control_tracking_rows{action=\"reject\"} 1\n"), std::string::npos);
  EXPECT_NE(b.find("sekisho_control_tracking_rows{action=\"tempfail\"} 0\n"), std::string::npos);
  // Every line is a comment or "name{labels} value".
  std::istringstream in(b);
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("# HELP ", 0) == 0 || l.rfind("# TYPE ", 0) == 0) continue;
    size_t sp = l.rfind(' ');
    ASSERT_NE(sp, std::string::npos) << l;
    std::string v = l.substr(sp + 1);
    EXPECT_TRUE(v == "+Inf" || v.find_first_not_of("0123456789.") == std::string::npos) << l;
    EXPECT_EQ(l.rfind("sekisho_control_", 0), 0u) << l;
  }
  // Before the first time ingestion caught up the lag is unbounded.
  store->ingest({}, "/other", JournalCursor{});
  EXPECT_NE(get("/metrics").body().find("sekisho_control_ingest_lag_seconds{journal=\"/other\"} +Inf\n"),
            std::string::npos);
}

TEST_P(ApiTest, BadParametersAre400WithAReason) {
  for (const char* t : {"/api/log?limit=0", "/api/log?limit=1001", "/api/log?limit=ten", "/api/log?offset=-1",
                        "/api/log?verdict=maybe", "/api/log?since=yesterday", "/api/log?until=2026-03-01T10:00:00",
                        "/api/log?since=2026-03-02&until=2026-03-01", "/api/log?colour=red", "/api/log?q=a&q=b",
                        "/api/log?q=%zz", "/api/log?q=%4", "/api/log?=x", "/api/log.csv?limit=100001",
                        "/metrics?x=1"}) {
    Response r = get(t);
    EXPECT_EQ(r.result(), bhttp::status::bad_request) << t;
    json j = json::parse(r.body(), nullptr, false);
    ASSERT_TRUE(j.is_object()) << t;
    EXPECT_FALSE(j["error"].get<std::string>().empty()) << t;
  }
  EXPECT_EQ(get("/api/log.csv?limit=100000").result(), bhttp::status::ok);
  EXPECT_EQ(get("/api/log?verdict=").result(), bhttp::status::ok);  // empty filter = none
}

TEST_P(ApiTest, UnknownPathsAre404AndOtherMethods405) {
  for (const char* t : {"/", "/api", "/api/log/", "/api/logs", "/metrics/", "/api/log.json", "/../etc/passwd"})
    EXPECT_EQ(get(t).result(), bhttp::status::not_found) << t;
  Response r = get("/api/log", bhttp::verb::post);
  EXPECT_EQ(r.result(), bhttp::status::method_not_allowed);
  EXPECT_EQ(r[bhttp::field::allow], "GET, HEAD");
  EXPECT_EQ(get("/nowhere", bhttp::verb::delete_).result(), bhttp::status::not_found);
}

TEST_P(ApiTest, HeadHasTheLengthButNoBody) {
  Response g = get("/api/log");
  Response h = get("/api/log", bhttp::verb::head);
  EXPECT_EQ(h.result(), bhttp::status::ok);
  EXPECT_TRUE(h.body().empty());
  EXPECT_EQ(h[bhttp::field::content_length], std::to_string(g.body().size()));
}

TEST_P(ApiTest, KeepAliveFollowsTheRequest) {
  Request req{bhttp::verb::get, "/metrics", 11};
  EXPECT_TRUE(handle_request(req, *store, kNow).keep_alive());
  req.keep_alive(false);
  EXPECT_FALSE(handle_request(req, *store, kNow).keep_alive());
}

SEKISHO_INSTANTIATE_BACKENDS(ApiTest);

}  // namespace
}  // namespace sekisho::control::tracking
