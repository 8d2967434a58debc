// The event contract: to_json -> from_json -> equal on what sekisho-replay
// writes for the recorded fixtures (byte-identical lines too), on a
// hand-built event with every optional part, hostile lines (wrong types,
// truncated, not UTF-8, too large, too deep) and the version rule.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "journal/event.hpp"
#include "journal/time.hpp"

namespace sekisho::journal {
namespace {

using nlohmann::json;

// The JSON lines sekisho-replay prints for tests/fixtures/wire/*.pcap.
std::vector<std::string> replay_lines() {
  const char* build = getenv("SEKISHO_BUILD_ROOT");
  const char* src = getenv("SEKISHO_SOURCE_ROOT");
  std::vector<std::string> lines;
  if (!build || !src) return lines;
  std::string replay = std::string(build) + "/tools/replay/sekisho-replay";
  if (!std::filesystem::exists(replay)) return lines;
  std::vector<std::string> pcaps;
  for (const auto& ent : std::filesystem::directory_iterator(std::string(src) + "/tests/fixtures/wire"))
    if (ent.path().extension() == ".pcap") pcaps.push_back(ent.path().string());
  std::sort(pcaps.begin(), pcaps.end());
  for (const auto& p : pcaps) {
    std::string cmd = "'" + replay + "' '" + p + "'";
    std::unique_ptr<FILE, int (*)(FILE*)> f(popen(cmd.c_str(), "r"), pclose);
    if (!f) continue;
    std::string out;
    char buf[65536];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f.get())) > 0;) out.append(buf, n);
    for (size_t start = 0, nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1)
      lines.push_back(out.substr(start, nl - start));
  }
  return lines;
}

// An event with every optional part present.
MessageEvent full_event() {
  MessageEvent e;
  e.ts_us = *parse_iso_time_us("2026-12-01T10:00:00.123456Z");
  e.client = "[2001:db8::1]:40000";
  e.server = "192.0.2.2:25";
  e.helo = "client.test";
  e.mail_from = "alice@outside.test";
  e.rcpt_to = {"bob@inside.test", "carol@inside.test"};
  e.rcpt_refused = {"nobody@inside.test"};
  e.tls = false;
  e.auth = "PLAIN";
  e.size = 12345;
  e.sha256 = std::string(64, 'a');
  e.server_reply = 250;
  e.body_via = message::BodyVia::bdat;
  e.complete = true;
  e.gap = false;
  MimePart& m = e.mime.emplace();
  m.from = "alice@outside.test";
  m.from_name = "Alice \xe3\x81\x82";
  m.to = {"bob@inside.test"};
  m.cc = {"carol@inside.test", "dave@inside.test"};
  m.reply_to = "other@z.test";
  m.subject = "お知らせ <script>";
  m.message_id = "<1@client.test>";
  m.date = "Tue, 1 Dec 2026 10:00:00 +0900";
  m.charset_errors = 1;
  m.header_fields = 9;
  m.headers_truncated = true;
  m.parts = 3;
  m.urls = {"http://evil.example/"};
  m.attachments.push_back({"invoice.pdf.exe", "application/octet-stream", "application/x-dosexec", 4096,
                           std::string(64, 'b'), false, false, true, true, false, 0, 1, 0,
                           std::vector<std::string>{"entries", "ratio"}});
  m.attachments.push_back({"a.zip", "application/zip", "application/zip", 10, std::string(64, 'c'), false, true,
                           false, false, true, 2, 0, 20, std::nullopt});
  m.anomalies = {{"decode_errors", 2}, {"boundary_junk", 1}};
  m.leaves.push_back({"text/plain", "utf-8", "base64", "", 5, std::string(64, 'd'), std::string(64, 'e'), 0, "hello"});
  m.leaves.push_back({"image/png", "", "base64", "x.png", 7, std::string(64, 'f'), std::nullopt, 1, ""});
  e.verdict.action = verdict::Action::quarantine;
  e.verdict.rule = "SK_PHISH_LINK";
  e.verdict.scan = ContentScan{7.25, {{"SK_PHISH_LINK", "body"}, {"JP_SUBJECT", "subject"}}, "J", {"phishing"}};
  e.id = "SK0000000000000001AAAAAAA";
  e.spool = "new/SK0000000000000001AAAAAAA.msg";
  return e;
}

TEST(Event, RoundTripOnTheRecordedFixtures) {
  std::vector<std::string> lines = replay_lines();
  if (lines.empty()) GTEST_SKIP() << "sekisho-replay not built";
  size_t messages = 0, sessions = 0;
  for (const auto& line : lines) {
    SCOPED_TRACE(line);
    MessageEvent m;
    SessionEvent s;
    ReadError err;
    switch (read_line(line, &m, &s, err)) {
      case LineType::message: {
        ++messages;
        EXPECT_EQ(m.version, kVersion);
        EXPECT_EQ(to_line(to_json(m)), line);  // the same bytes: nothing lost, nothing added
        MessageEvent again;
        ASSERT_FALSE(from_json(to_json(m), again));
        EXPECT_EQ(again, m);
        EXPECT_TRUE(m.mime);
        break;
      }
      case LineType::session: {
        ++sessions;
        EXPECT_EQ(to_line(to_json(s)), line);
        SessionEvent again;
        ASSERT_FALSE(from_json(to_json(s), again));
        EXPECT_EQ(again, s);
        break;
      }
      case LineType::other: EXPECT_NE(line.find("\"summary\""), std::string::npos); break;
      case LineType::bad: ADD_FAILURE() << err.text; break;
    }
  }
  EXPECT_GE(messages, 9u);
  EXPECT_GE(sessions, 9u);
}

TEST(Event, RoundTripWithEveryPart) {
  MessageEvent e = full_event();
  json j = to_json(e);
  EXPECT_EQ(j["v"], kVersion);
  EXPECT_EQ(j["ts"], "2026-12-01T10:00:00.123456Z");
  EXPECT_EQ(j["body_via"], "BDAT");
  EXPECT_EQ(j["verdict"]["rules"][1]["context"], "subject");
  EXPECT_EQ(j["attachments"][0]["budget_exceeded"][1], "ratio");
  EXPECT_FALSE(j["attachments"][1].contains("budget_exceeded"));
  EXPECT_FALSE(j["leaves"][1].contains("text"));
  EXPECT_TRUE(j["leaves"][1]["text_sha256"].is_null());
  MessageEvent back;
  ASSERT_FALSE(from_json(j, back));
  EXPECT_EQ(back, e);
  // And through the text of a line.
  ReadError err;
  MessageEvent from_line;
  ASSERT_EQ(read_line(to_line(j), &from_line, nullptr, err), LineType::message) << err.text;
  EXPECT_EQ(from_line, e);

  // The smallest event: no MIME part, nullable keys null, no id, no scan.
  MessageEvent small;
  small.ts_us = 1;
  json s = to_json(small);
  EXPECT_TRUE(s["sha256"].is_null());
  EXPECT_TRUE(s["spool"].is_null());
  EXPECT_TRUE(s["server_reply"].is_null());
  EXPECT_FALSE(s.contains("id"));
  EXPECT_FALSE(s.contains("subject"));
  EXPECT_EQ(s["verdict"], json({{"action", "pass"}}));
  ASSERT_FALSE(from_json(s, back));
  EXPECT_EQ(back, small);

  SessionEvent ses;
  ses.ts_us = 5;
  ses.end_us = 6000000;
  ses.client = "192.0.2.1:1";
  ses.capabilities = {"PIPELINING", "STARTTLS"};
  ses.desync = "bare_lf";
  ses.anomalies = {{"long_line", 3}};
  SessionEvent sback;
  ASSERT_FALSE(from_json(to_json(ses), sback));
  EXPECT_EQ(sback, ses);
}

TEST(Event, KeysAndValuesAsTheJournalHasAlwaysHadThem) {
  // A line as the dataplane wrote it before "v" existed reads as version 1
  // and writes back the same keys plus "v".
  const std::string old =
      R"({"attachments":[],"auth":null,"body_via":"DATA","cc":[],"charset_errors":0,"complete":true,)"
      R"("date":"","dst":"192.0.2.2:25","from":"a@x.test","from_name":"","gap":false,"header_fields":3,)"
      R"("headers_truncated":false,"helo":"h","mail_from":"a@x.test","message_id":"","mime_anomalies":{},)"
      R"("parts":1,"rcpt_refused":[],"rcpt_to":["b@y.test"],"reply_to":null,"server_reply":250,)"
      R"("sha256":"00","size":10,"spool":null,"src":"192.0.2.1:1","subject":"s","tls":false,)"
      R"("to":["b@y.test"],"ts":"2026-01-01T00:00:00.000001Z","type":"message","urls":[],)"
      R"("verdict":{"action":"pass"}})";
  MessageEvent e;
  ReadError err;
  ASSERT_EQ(read_line(old, &e, nullptr, err), LineType::message) << err.text;
  EXPECT_EQ(e.version, 1);
  json back = to_json(e);
  json want = json::parse(old);
  want["v"] = 1;
  EXPECT_EQ(back, want);
}

TEST(Event, VersionRule) {
  json j = to_json(full_event());
  MessageEvent e;
  j["v"] = kVersion + 1;
  auto err = from_json(j, e);
  ASSERT_TRUE(err);
  EXPECT_TRUE(err->newer_version);
  EXPECT_NE(err->text.find("newer"), std::string::npos) << err->text;
  for (json bad : {json(0), json(-1), json("1"), json(1.5), json::array()}) {
    j["v"] = bad;
    err = from_json(j, e);
    ASSERT_TRUE(err) << bad;
    EXPECT_FALSE(err->newer_version) << bad;
  }
  j.erase("v");
  EXPECT_FALSE(from_json(j, e));
  EXPECT_EQ(e.version, 1);
  // A newer session line is newer too, when sessions are asked for.
  json s = to_json(SessionEvent{});
  s["v"] = 99;
  SessionEvent se;
  ReadError re;
  EXPECT_EQ(read_line(s.dump(), nullptr, &se, re), LineType::bad);
  EXPECT_TRUE(re.newer_version);
  EXPECT_EQ(read_line(s.dump(), nullptr, nullptr, re), LineType::other);
}

// Every key of the event (top level, verdict, an attachment, a leaf) with a
// value of each JSON type: never a throw; a type that is not the key's
// (other than null, which is the default) is an error.
TEST(Event, WrongTypesAreErrorsNeverThrows) {
  const json good = to_json(full_event());
  const std::vector<json> values = {json(nullptr), json(true),  json(-1),         json(7),
                                    json(1.5),     json("str"), json::array({1}), json::object({{"k", 1}})};
  auto same_kind = [](const json& a, const json& b) {
    if (a.is_number() && b.is_number()) return true;
    return a.type() == b.type();
  };
  size_t checked = 0;
  auto try_all = [&](const std::function<json&(json&)>& at, const std::string& where) {
    for (const auto& v : values) {
      json j = good;
      json& slot = at(j);
      const json orig = slot;
      slot = v;
      MessageEvent e;
      std::optional<ReadError> err;
      ASSERT_NO_THROW(err = from_json(j, e)) << where << " = " << v;
      if (!v.is_null() && !same_kind(orig, v)) {
        EXPECT_TRUE(err) << where << " = " << v;
      }
      ++checked;
    }
  };
  for (const auto& [k, _] : good.items()) {
    if (k == "type") continue;
    try_all([k = k](json& j) -> json& { return j[k]; }, k);
  }
  for (const auto& [k, _] : good["verdict"].items())
    try_all([k = k](json& j) -> json& { return j["verdict"][k]; }, "verdict." + k);
  for (const auto& [k, _] : good["attachments"][0].items())
    try_all([k = k](json& j) -> json& { return j["attachments"][0][k]; }, "attachments[0]." + k);
  for (const auto& [k, _] : good["leaves"][0].items())
    try_all([k = k](json& j) -> json& { return j["leaves"][0][k]; }, "leaves[0]." + k);
  try_all([](json& j) -> json& { return j["attachments"][0]; }, "attachments[0]");
  try_all([](json& j) -> json& { return j["rcpt_to"][0]; }, "rcpt_to[0]");
  try_all([](json& j) -> json& { return j["mime_anomalies"]["decode_errors"]; }, "mime_anomalies.decode_errors");
  EXPECT_GT(checked, 400u);

  // Values of the right type that are not values of the key.
  MessageEvent e;
  for (auto [k, v] : std::vector<std::pair<std::string, json>>{{"ts", "yesterday"},
                                                               {"ts", "2026-01-01T00:00:00"},
                                                               {"ts", "1969-12-31T23:59:59Z"},
                                                               {"size", -1},
                                                               {"header_fields", 1ll << 33},
                                                               {"server_reply", 1000},
                                                               {"body_via", "SMTP"}}) {
    json j = good;
    j[k] = v;
    EXPECT_TRUE(from_json(j, e)) << k << " = " << v;
  }
  json j = good;
  j["verdict"]["action"] = "divert";
  EXPECT_TRUE(from_json(j, e));
  j = good;
  j.erase("ts");
  EXPECT_TRUE(from_json(j, e)) << "ts is required";
  EXPECT_TRUE(from_json(json::array(), e));
  EXPECT_TRUE(from_json(json({{"type", "session"}}), e));
}

TEST(Event, HostileLines) {
  const std::string line = to_line(to_json(full_event()));
  MessageEvent e;
  SessionEvent s;
  ReadError err;
  // Every cut of a line is refused, never thrown.
  for (size_t n = 0; n < line.size(); ++n)
    ASSERT_EQ(read_line(std::string_view(line).substr(0, n), &e, &s, err), LineType::bad) << n;
  // Not UTF-8 inside a string: not JSON.
  std::string bad = line;
  bad.replace(bad.find("SK_PHISH_LINK"), 2, "\xff\xfe");
  EXPECT_EQ(read_line(bad, &e, &s, err), LineType::bad);
  // A writer given bytes that are not UTF-8 writes U+FFFD instead.
  MessageEvent w = full_event();
  w.mime->subject = "caf\xe9";
  ASSERT_EQ(read_line(to_line(to_json(w)), &e, &s, err), LineType::message) << err.text;
  EXPECT_EQ(e.mime->subject, "caf\xef\xbf\xbd");
  // Not objects, other types.
  EXPECT_EQ(read_line("[1,2]", &e, &s, err), LineType::bad);
  EXPECT_EQ(read_line("\"message\"", &e, &s, err), LineType::bad);
  EXPECT_EQ(read_line(R"({"type":"summary","messages":3})", &e, &s, err), LineType::other);
  EXPECT_EQ(read_line(R"({"type":7})", &e, &s, err), LineType::other);
  EXPECT_EQ(read_line(R"({"type":"message","ts":"2026-01-01T00:00:00Z","rcpt_to":"a"})", &e, &s, err),
            LineType::bad);
  EXPECT_NE(err.text.find("rcpt_to"), std::string::npos) << err.text;
  // Deep nesting is refused before it is parsed.
  std::string deep = R"({"type":"message","x":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_EQ(read_line(deep, &e, &s, err), LineType::bad);
  EXPECT_NE(err.text.find("nested"), std::string::npos) << err.text;
  // Brackets inside strings do not count.
  json strings = to_json(full_event());
  strings["mime"] = std::string(1000, '[');
  strings["subject"] = std::string(1000, '{') + "\\\"[";
  EXPECT_EQ(read_line(to_line(strings), &e, &s, err), LineType::message) << err.text;
  // Too many values in one line, too many elements in one array.
  std::string many = R"({"type":"message","ts":"2026-01-01T00:00:00Z","urls":[)";
  for (size_t i = 0; i < kMaxValues + 1; ++i) many += "0,";
  many += "0]}";
  EXPECT_EQ(read_line(many, &e, &s, err), LineType::bad);
  EXPECT_NE(err.text.find("values"), std::string::npos) << err.text;
  json wide = to_json(full_event());
  wide["rcpt_to"] = std::vector<std::string>(kMaxItems + 1, "a");
  auto werr = from_json(wide, e);
  ASSERT_TRUE(werr);
  EXPECT_NE(werr->text.find("too many"), std::string::npos) << werr->text;
  // A line over the bound is refused without being parsed.
  std::string huge(kMaxLineBytes + 1, ' ');
  EXPECT_EQ(read_line(huge, &e, &s, err), LineType::bad);
}

TEST(Time, FormatAndParse) {
  EXPECT_EQ(iso_time_us(1795532430506762LL), "2026-11-24T15:00:30.506762Z");
  EXPECT_EQ(parse_iso_time_us("2026-11-25T00:00:30.506762+09:00"), 1795532430506762LL);
  EXPECT_EQ(unix_us(1795532430.5067625), 1795532430506762LL);
  EXPECT_EQ(unix_us(0.0000009), 0);
}

}  // namespace
}  // namespace sekisho::journal
