// The quarantine: spool entries (written by the dataplane's own
// SpoolWriter) are taken exactly once; lists filter by recipient, sender,
// category and state; the view never carries HTML; release re-delivers the
// stored bytes unchanged to a real SMTP server (aiosmtpd) with the original
// envelope, once; delete and expiry erase the bytes; the HTTP routes answer
// as documented.
#include "control/quarantine/quarantine.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "tests/unit/control/backends.hpp"
#include "tests/unit/control/control_test_util.hpp"
#include "control/quarantine/quarantine_api.hpp"
#include "tests/unit/control/smtp_sink.hpp"
#include "journal/spool_file.hpp"

namespace sekisho::control::quarantine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::Sink;
using testing::TempDir;

const std::string kHtmlMessage =
    "From: \"Bank\" <alerts@bank.example>\r\nTo: bob@inside.test\r\nSubject: =?UTF-8?B?44GK55+l44KJ44Gb?= "
    "<script>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    "<html><body><p>Verify <b>now</b>: <a href=\"http://evil.example/\">here</a></p>"
    "<script>alert(1)</script>\r\n.leading dot line\r\n</body></html>\r\n";

// The spool header as the dataplane writes it (message_json + MIME facts + verdict).
json spool_header(const std::string& id, const std::string& mail_from, std::vector<std::string> rcpts,
                  const std::string& server, const std::string& message) {
  json j = testing::message_event("2026-12-01T10:00:00.000000Z", mail_from, rcpts, "お知らせ <script>",
                                  "quarantine", id);
  j["dst"] = server;
  j["size"] = message.size();
  j["verdict"] = {{"action", "quarantine"},
                  {"rule", "SK_PHISH_LINK"},
                  {"score", 7.5},
                  {"rules", json::array({{{"rule", "SK_PHISH_LINK"}, {"context", "body"}}})},
                  {"sender_class", "bulk"},
                  {"categories", json::array({"phishing"})}};
  j["spool"] = "new/" + id + ".msg";
  return j;
}

class QuarantineTest : public testing::BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (IsSkipped()) return;
    Options o;
    o.spool_dir = dir / "spool";
    o.retention_s = 3600;
    o.smtp.timeout = std::chrono::seconds(10);
    o.announce_release = [this](const std::string& sha) {
      announced.push_back(sha);
      return announce_error;
    };
    q.emplace(db(), o);
    writer.emplace(dir / "spool");
  }
  void spool(const std::string& id, const std::string& from, std::vector<std::string> rcpts,
             const std::string& server = "127.0.0.1:1", const std::string& msg = kHtmlMessage) {
    auto r = writer->write(id, spool_header(id, from, rcpts, server, msg).dump(),
                           {reinterpret_cast<const uint8_t*>(msg.data()), msg.size()});
    ASSERT_TRUE(r.ok) << r.error;
  }
  TempDir dir;
  std::optional<Quarantine> q;
  std::optional<journal::SpoolWriter> writer;
  std::vector<std::string> announced;
  std::string announce_error;
};

TEST_P(QuarantineTest, SpoolTakenExactlyOnce) {
  spool("SK1", "alice@outside.test", {"bob@inside.test", "carol@inside.test"});
  spool("SK2", "", {"bob@inside.test"});
  SpoolStats s = q->ingest_spool(1000);
  EXPECT_EQ(s.stored, 2u);
  EXPECT_TRUE(fs::is_empty(dir / "spool/new"));  // removed once stored
  // The same entry again (a crash before the unlink): stored once only.
  spool("SK1", "alice@outside.test", {"bob@inside.test"});
  s = q->ingest_spool(2000);
  EXPECT_EQ(s.stored, 0u);
  EXPECT_EQ(s.already, 1u);
  EXPECT_EQ(q->list({}).total, 2);
  auto it = q->get("SK1");
  ASSERT_TRUE(it);
  EXPECT_EQ(it->recipients, (std::vector<std::string>{"bob@inside.test", "carol@inside.test"}));
  EXPECT_EQ(it->category, "phishing");
  EXPECT_EQ(it->rule, "SK_PHISH_LINK");
  EXPECT_EQ(it->state, "held");
  EXPECT_EQ(it->expires_us, 1000 + 3600 * int64_t(1000000));
  EXPECT_EQ(*q->message("SK1"), kHtmlMessage);
  EXPECT_EQ(item_json(*q->get("SK2"))["sender"], "<>");
}

TEST_P(QuarantineTest, BadSpoolFilesMovedAsideAndCounted) {
  fs::create_directories(dir / "spool/new");
  testing::append_file(dir / "spool/new/junk.msg", "not json\nbytes");
  testing::append_file(dir / "spool/new/cut.msg", "{\"type\":\"message\"");
  SpoolStats s = q->ingest_spool(1000);
  EXPECT_EQ(s.bad, 2u);
  EXPECT_TRUE(fs::exists(dir / "spool/bad/junk.msg"));
  EXPECT_TRUE(fs::exists(dir / "spool/bad/cut.msg"));
  EXPECT_EQ(q->list({}).total, 0);
}

TEST_P(QuarantineTest, ANewerVersionStaysInTheSpool) {
  json h = spool_header("SKN", "alice@outside.test", {"bob@inside.test"}, "127.0.0.1:1", kHtmlMessage);
  h["v"] = journal::kVersion + 1;
  auto r = writer->write("SKN", h.dump(), {reinterpret_cast<const uint8_t*>(kHtmlMessage.data()), kHtmlMessage.size()});
  ASSERT_TRUE(r.ok);
  SpoolStats s = q->ingest_spool(1000);
  EXPECT_EQ(s.newer, 1u);
  EXPECT_EQ(s.bad, 0u);
  EXPECT_EQ(s.stored, 0u);
  EXPECT_TRUE(fs::exists(dir / "spool/new/SKN.msg"));
  EXPECT_FALSE(q->get("SKN"));
  EXPECT_THROW(q->add(h.dump(), kHtmlMessage, 1000), NewerVersion);
}

TEST_P(QuarantineTest, HostileTextIsStoredNotFatal) {
  // A subject and From with NUL (JSON can carry \u0000; PostgreSQL text
  // cannot): stored with U+FFFD, and the next entry is still taken.
  json h = spool_header("SKX", "alice@outside.test", {"bob@inside.test"}, "127.0.0.1:1", kHtmlMessage);
  std::string header = h.dump();
  std::string bad_subject = "\"subject\":\"a\\u0000b\"";
  size_t at = header.find("\"subject\":");
  header.replace(at, header.find(',', at) - at, bad_subject);
  header.replace(header.find("\"from\":\""), 8, "\"from\":\"\\u0000");
  auto r = writer->write("SKX", header, {reinterpret_cast<const uint8_t*>(kHtmlMessage.data()), kHtmlMessage.size()});
  ASSERT_TRUE(r.ok);
  spool("SKY", "carol@outside.test", {"bob@inside.test"});
  SpoolStats s = q->ingest_spool(1000);
  EXPECT_EQ(s.stored, 2u);
  EXPECT_EQ(s.failed, 0u);
  auto it = q->get("SKX");
  ASSERT_TRUE(it);
  EXPECT_EQ(it->subject.find('\0'), std::string::npos);
  EXPECT_NE(it->subject.find("\xef\xbf\xbd"), std::string::npos) << it->subject;  // U+FFFD
  EXPECT_TRUE(q->get("SKY"));
}

TEST_P(QuarantineTest, ListFilters) {
  spool("SK1", "alice@outside.test", {"bob@inside.test"});
  spool("SK2", "", {"Carol@Inside.test"});
  spool("SK3", "mallory@spam.test", {"dave@inside.test"});
  q->ingest_spool(1000);
  auto ids = [&](ItemQuery iq) {
    std::vector<std::string> out;
    for (const auto& it : q->list(iq).rows) out.push_back(it.id);
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(ids({.rcpt = "carol@inside"}), std::vector<std::string>{"SK2"});  // case-insensitive
  EXPECT_EQ(ids({.sender = "<>"}), std::vector<std::string>{"SK2"});
  EXPECT_EQ(ids({.sender = "spam.test"}), std::vector<std::string>{"SK3"});
  EXPECT_EQ(ids({.category = "phish"}).size(), 3u);
  EXPECT_EQ(ids({.category = "virus"}).size(), 0u);
  EXPECT_EQ(ids({.q = "mallory"}), std::vector<std::string>{"SK3"});
  EXPECT_TRUE(q->remove("SK3", "admin", 5000));
  EXPECT_EQ(ids({.state = "held"}), (std::vector<std::string>{"SK1", "SK2"}));
  EXPECT_EQ(ids({.q = "100%_"}).size(), 0u);  // LIKE metacharacters are literal
  auto page = q->list({.limit = 1, .offset = 1});
  EXPECT_EQ(page.total, 3);
  EXPECT_EQ(page.rows.size(), 1u);
}

TEST_P(QuarantineTest, ViewIsTextNeverHtml) {
  spool("SK1", "alice@outside.test", {"bob@inside.test"});
  q->ingest_spool(1000);
  auto v = q->view("SK1");
  ASSERT_TRUE(v);
  EXPECT_NE(v->text.find("Verify now: here"), std::string::npos) << v->text;
  EXPECT_EQ(v->text.find("<b>"), std::string::npos);
  EXPECT_EQ(v->text.find("<a "), std::string::npos);
  EXPECT_EQ(v->text.find("alert(1)"), std::string::npos);  // script content is not text
  bool subject = false;
  for (const auto& [n, val] : v->headers)
    if (n == "Subject") subject = val == "お知らせ <script>";
  EXPECT_TRUE(subject);
}

TEST_P(QuarantineTest, ReleaseDeliversTheSameBytesOnce) {
  Sink sink(true);
  std::string server = "127.0.0.1:" + std::to_string(sink.port());
  spool("SK1", "alice@outside.test", {"bob@inside.test", "nobody@inside.test", "carol@inside.test"}, server);
  q->ingest_spool(1000);
  ReleaseOutcome r = q->release("SK1", "admin", false, 2000);
  ASSERT_TRUE(r.ok) << r.error << " " << r.result.dump();
  EXPECT_EQ(sink.message(1), kHtmlMessage);
  EXPECT_EQ(sink.meta(1)["mail_from"], "alice@outside.test");
  EXPECT_EQ(sink.meta(1)["rcpt_to"], (json{"bob@inside.test", "carol@inside.test"}));
  EXPECT_EQ(sink.meta(1)["tls"], true);
  ASSERT_EQ(announced.size(), 1u);
  EXPECT_EQ(announced[0], q->get("SK1")->sha256);
  EXPECT_EQ(r.result["smtp"][1]["code"], 550);
  auto it = q->get("SK1");
  EXPECT_EQ(it->state, "released");
  EXPECT_EQ(it->changed_by, "admin");
  EXPECT_EQ(*it->changed_us, 2000);
  // Twice: refused, nothing sent again.
  ReleaseOutcome again = q->release("SK1", "admin", false, 3000);
  EXPECT_FALSE(again.ok);
  EXPECT_EQ(again.http_status, 409);
  EXPECT_TRUE(sink.message(2).empty());
}

TEST_P(QuarantineTest, ConcurrentReleasesDeliverOnce) {
  Sink sink(false);
  spool("SK1", "alice@outside.test", {"bob@inside.test"}, "127.0.0.1:" + std::to_string(sink.port()));
  q->ingest_spool(1000);
  auto db2 = connect();
  Quarantine q2(*db2, q->options());
  std::atomic<int> ok{0};
  std::thread a([&] { ok += q->release("SK1", "a", false, 2000).ok; });
  std::thread b([&] { ok += q2.release("SK1", "b", false, 2000).ok; });
  a.join();
  b.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_FALSE(sink.message(1).empty());
  EXPECT_TRUE(sink.message(2).empty());
}

TEST_P(QuarantineTest, FailedReleaseStaysHeld) {
  Sink sink(false);
  std::string server = "127.0.0.1:" + std::to_string(sink.port());
  spool("SK1", "alice@outside.test", {"nobody@inside.test"}, server);
  spool("SK2", "alice@outside.test", {"bob@inside.test"}, server);
  q->ingest_spool(1000);
  ReleaseOutcome r = q->release("SK1", "admin", false, 2000);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.http_status, 502);
  EXPECT_EQ(q->get("SK1")->state, "held");
  EXPECT_NE(q->get("SK1")->release_json.find("550"), std::string::npos);
  // The dataplane refusing the announcement: nothing is sent.
  announce_error = "telemetry socket not found";
  ReleaseOutcome r2 = q->release("SK2", "admin", false, 2000);
  EXPECT_FALSE(r2.ok);
  EXPECT_TRUE(sink.message(1).empty());
  EXPECT_EQ(q->get("SK2")->state, "held");
  // No relay configured but asked for.
  announce_error.clear();
  EXPECT_EQ(q->release("SK2", "admin", true, 2000).http_status, 400);
  EXPECT_EQ(q->release("nope", "admin", false, 2000).http_status, 404);
}

TEST_P(QuarantineTest, DeleteAndExpiryEraseTheBytes) {
  spool("SK1", "alice@outside.test", {"bob@inside.test"});
  spool("SK2", "alice@outside.test", {"bob@inside.test"});
  q->ingest_spool(1000);
  EXPECT_TRUE(q->remove("SK1", "admin", 2000));
  EXPECT_FALSE(q->remove("SK1", "admin", 2000));  // not held any more
  EXPECT_FALSE(q->message("SK1"));
  EXPECT_EQ(q->get("SK1")->state, "deleted");
  EXPECT_EQ(q->expire(1000 + 3600 * int64_t(1000000) - 1), 0u);
  EXPECT_EQ(q->expire(1000 + 3600 * int64_t(1000000)), 1u);
  EXPECT_EQ(q->get("SK2")->state, "expired");
  EXPECT_FALSE(q->message("SK2"));
  auto c = q->counts_by_state();
  EXPECT_EQ(c["deleted"], 1);
  EXPECT_EQ(c["expired"], 1);
}

TEST_P(QuarantineTest, HttpRoutes) {
  Sink sink(false);
  spool("SK1", "alice@outside.test", {"bob@inside.test"}, "127.0.0.1:" + std::to_string(sink.port()));
  spool("SK2", "", {"carol@inside.test"});
  q->ingest_spool(1000);
  testing::TempDir adir;
  audit::AuditLog audit(db(), "0123456789abcdef0123", adir / "anchor");
  http::Router router;
  add_quarantine_routes(router, *q, &audit);
  auto call = [&](boost::beast::http::verb v, const std::string& target, const std::string& body = "") {
    http::Request req{v, target, 11};
    req.body() = body;
    req.prepare_payload();
    return router.handle(req, 5000);
  };
  using V = boost::beast::http::verb;
  auto r = call(V::get, "/api/quarantine?sender=%3C%3E");
  ASSERT_EQ(r.result_int(), 200) << r.body();
  json j = json::parse(r.body());
  EXPECT_EQ(j["total"], 1);
  EXPECT_EQ(j["rows"][0]["id"], "SK2");
  EXPECT_EQ(j["rows"][0]["sender"], "<>");
  EXPECT_EQ(call(V::get, "/api/quarantine?state=bogus").result_int(), 400);
  EXPECT_EQ(call(V::get, "/api/quarantine?colour=red").result_int(), 400);

  r = call(V::get, "/api/quarantine/SK1");
  ASSERT_EQ(r.result_int(), 200);
  j = json::parse(r.body());
  EXPECT_EQ(j["subject"], "お知らせ <script>");
  EXPECT_EQ(j["text"].get<std::string>().find('<'), std::string::npos);
  EXPECT_FALSE(j["headers"].empty());
  r = call(V::get, "/api/quarantine/SK1/message");
  EXPECT_EQ(r.body(), kHtmlMessage);
  EXPECT_EQ(r[boost::beast::http::field::content_type], "message/rfc822");
  EXPECT_EQ(call(V::get, "/api/quarantine/NOPE").result_int(), 404);

  EXPECT_EQ(call(V::post, "/api/quarantine/SK1/release", "{\"colour\":1}").result_int(), 400);
  r = call(V::post, "/api/quarantine/SK1/release", "{}");
  ASSERT_EQ(r.result_int(), 200) << r.body();
  EXPECT_EQ(json::parse(r.body())["state"], "released");
  EXPECT_EQ(sink.message(1), kHtmlMessage);
  EXPECT_EQ(call(V::post, "/api/quarantine/SK1/release").result_int(), 409);
  EXPECT_EQ(call(V::post, "/api/quarantine/SK2/delete").result_int(), 200);
  EXPECT_EQ(call(V::post, "/api/quarantine/SK2/delete").result_int(), 409);
  EXPECT_EQ(call(V::post, "/api/quarantine/SK2/explode").result_int(), 404);
  EXPECT_EQ(call(V::put, "/api/quarantine/SK2").result_int(), 405);

  auto entries = audit.list(10);
  ASSERT_EQ(entries.size(), 3u);  // release, failed second release, delete
  EXPECT_EQ(entries[0].action, "quarantine.delete");
  EXPECT_EQ(entries[0].target, "SK2");
  EXPECT_EQ(entries[2].action, "quarantine.release");
  EXPECT_TRUE(audit.verify().ok);
}

SEKISHO_INSTANTIATE_BACKENDS(QuarantineTest);

}  // namespace
}  // namespace sekisho::control::quarantine
