// Journal ingestion: exactly once across restarts, partial lines, rotation,
// abandoned tails, bad lines, derived ids, and a journal made by
// sekisho-replay from the recorded fixtures.
#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/unit/control/control_test_util.hpp"
#include "control/ingest/journal_ingest.hpp"
#include "tests/unit/control/backends.hpp"
#include "control/tracking/sql_store.hpp"
#include "control/tracking/time.hpp"

namespace sekisho::control::ingest {
namespace {

using sekisho::control::testing::append_file;
using sekisho::control::testing::message_event;
using sekisho::control::testing::TempDir;
using tracking::SqlStore;
using testing::BackendTest;

// Ingestion tests run on SQLite and PostgreSQL.
class JournalIngesterTest : public BackendTest {};

std::string line(const nlohmann::json& j) { return j.dump() + "\n"; }
std::string journal_file(unsigned seq) {
  char b[64];
  snprintf(b, sizeof b, "events-%012u.jsonl", seq);
  return b;
}
const std::string kSession = R"({"type":"session","ts":"2026-01-01T00:00:00.000000Z","src":"192.0.2.1:1"})"
                             "\n";

TEST(IsoTime, ParsesTheJournalFormatAndOffsets) {
  EXPECT_EQ(tracking::parse_iso_time_us("1970-01-01T00:00:01.5Z"), 1500000);
  EXPECT_EQ(tracking::parse_iso_time_us("2026-11-24T15:00:30.506762Z"), 1795532430506762LL);
  EXPECT_EQ(tracking::parse_iso_time_us("2026-11-25T00:00:30.506762+09:00"), 1795532430506762LL);
  EXPECT_EQ(tracking::parse_iso_time_us("2026-11-24T15:00:30Z"), 1795532430000000LL);
  EXPECT_FALSE(tracking::parse_iso_time_us("2026-11-24T15:00:30"));   // no zone
  EXPECT_FALSE(tracking::parse_iso_time_us("2026-13-24T15:00:30Z"));  // month 13
  EXPECT_FALSE(tracking::parse_iso_time_us("2026-11-24T15:00:30.Z"));
  EXPECT_FALSE(tracking::parse_iso_time_us("yesterday"));
}

TEST(ParseEventLine, MessagesSessionsAndBadLines) {
  tracking::LogEntry e;
  std::string err;
  auto j = message_event("2026-01-01T00:00:00.000001Z", "", {"a@x.test", "b@x.test"}, "s");
  ASSERT_EQ(parse_event_line(j.dump(), e, err), LineKind::message);
  EXPECT_EQ(e.envelope_sender, "");  // the null sender is stored empty
  EXPECT_EQ(e.recipients.size(), 2u);
  EXPECT_EQ(e.ts_us, 1767225600000001LL);
  EXPECT_EQ(e.to_json, R"(["a@x.test","b@x.test"])");
  EXPECT_FALSE(e.reply_to);
  EXPECT_EQ(e.action, "pass");
  EXPECT_EQ(parse_event_line(kSession.substr(0, kSession.size() - 1), e, err), LineKind::other);
  EXPECT_EQ(parse_event_line("{not json", e, err), LineKind::bad);
  EXPECT_EQ(parse_event_line(R"({"type":"message","ts":"soon"})", e, err), LineKind::bad);
  EXPECT_EQ(parse_event_line(R"({"type":"message","ts":"2026-01-01T00:00:00Z","rcpt_to":"a"})", e, err),
            LineKind::bad);
}

TEST(ParseEventLine, VerdictFieldsAndIds) {
  auto j = message_event("2026-01-01T00:00:00Z", "s@x.test", {"r@y.test"}, "phish", "reject", "SK0123");
  j["verdict"] = {{"action", "reject"},
                  {"rule", "JP_PHISH"},
                  {"score", 7.5},
                  {"rules", {{{"rule", "JP_PHISH"}, {"context", "subject"}}}}};
  j["reply_to"] = "other@z.test";
  j["spool"] = "/var/spool/sekisho/new/SK0123.msg";
  tracking::LogEntry e;
  std::string err;
  ASSERT_EQ(parse_event_line(j.dump(), e, err), LineKind::message);
  EXPECT_EQ(e.event_id, "SK0123");
  EXPECT_EQ(e.rule, "JP_PHISH");
  EXPECT_EQ(e.score, 7.5);
  EXPECT_EQ(*e.reply_to, "other@z.test");
  EXPECT_EQ(*e.spool, "/var/spool/sekisho/new/SK0123.msg");
  EXPECT_NE(e.rules_json.find("JP_PHISH"), std::string::npos);

  // A pass event has no id: one is derived, the same each time the line is read.
  auto p = message_event("2026-01-01T00:00:00Z", "s@x.test", {"r@y.test"}, "hello");
  tracking::LogEntry a, b, c;
  parse_event_line(p.dump(), a, err);
  parse_event_line(p.dump(), b, err);
  p["ts"] = "2026-01-01T00:00:01Z";
  parse_event_line(p.dump(), c, err);
  EXPECT_EQ(a.event_id, b.event_id);
  EXPECT_NE(a.event_id, c.event_id);
  EXPECT_EQ(a.event_id.rfind("pass-", 0), 0u);
}

TEST_P(JournalIngesterTest, ExactlyOnceAcrossARestartWithAPartialLineCompletedLater) {
  TempDir dir;
  const std::string journal = dir / "journal";
  std::filesystem::create_directory(journal);
  const std::string f0 = journal + "/" + journal_file(0);

  std::string e4 = line(message_event("2026-01-01T00:00:04Z", "d@x.test", {"r@y.test"}, "four", "reject", "SK4"));
  append_file(f0, line(message_event("2026-01-01T00:00:01Z", "a@x.test", {"r1@y.test", "r2@y.test"}, "one")) +
                      kSession + line(message_event("2026-01-01T00:00:02Z", "", {"r@y.test"}, "two")) +
                      line(message_event("2026-01-01T00:00:03Z", "c@x.test", {"r@y.test"}, "three")) +
                      e4.substr(0, 40));  // the writer is mid-line
  {
    auto conn = connect();  // the control plane (re)starts: a new connection
    SqlStore s(*conn);
    JournalIngester in(journal, s);
    IngestStats st = in.pass();
    EXPECT_EQ(st.events_new, 3u);
    EXPECT_EQ(st.other_lines, 1u);
    EXPECT_EQ(s.counts().rows, 4);
    EXPECT_EQ(s.cursor(journal).file, journal_file(0));
    EXPECT_EQ(s.cursor(journal).offset, std::filesystem::file_size(f0) - 40);
    EXPECT_EQ(in.pass().events_new, 0u);  // the partial line waits
  }
  // The control plane restarts; meanwhile the line is completed, more is
  // appended and the journal rotates.
  append_file(f0, e4.substr(40) + line(message_event("2026-01-01T00:00:05Z", "e@x.test", {"r@y.test"}, "five")));
  append_file(journal + "/" + journal_file(1),
              line(message_event("2026-01-01T00:00:06Z", "f@x.test", {"r@y.test", "s@y.test"}, "six")));
  {
    auto conn = connect();  // the control plane (re)starts: a new connection
    SqlStore s(*conn);
    JournalIngester in(journal, s);
    IngestStats st = in.pass();
    EXPECT_EQ(st.events_new, 3u);
    EXPECT_EQ(st.events_seen, 0u);
    EXPECT_EQ(st.lines, 3u);  // only what was not read before
    EXPECT_EQ(in.pass().lines, 0u);
    tracking::Counts c = s.counts();
    EXPECT_EQ(c.events, 6);
    EXPECT_EQ(c.rows, 8);
    EXPECT_EQ(c.rows_by_action["reject"], 1);
    EXPECT_EQ(s.cursor(journal).file, journal_file(1));
    EXPECT_GT(s.cursor(journal).caught_up_us, 0);

    // A lost cursor (the database's last transaction gone) reads every line
    // again and stores nothing twice.
    s.ingest({}, journal, tracking::JournalCursor{});
    st = in.pass();
    EXPECT_EQ(st.events_new, 0u);
    EXPECT_EQ(st.events_seen, 6u);
    EXPECT_EQ(s.counts().rows, 8);
  }
}

TEST_P(JournalIngesterTest, SmallBatchesAndABadLine) {
  TempDir dir;
  SqlStore s(db());
  std::string bytes;
  for (int i = 0; i < 7; ++i)
    bytes += line(message_event("2026-01-01T00:00:0" + std::to_string(i) + "Z", "a@x.test", {"r@y.test"},
                                "n" + std::to_string(i)));
  bytes += "{\"type\":\"message\",\"ts\":\n";  // a broken line, stepped over
  bytes += line(message_event("2026-01-01T00:00:09Z", "a@x.test", {"r@y.test"}, "n9"));
  append_file(dir / journal_file(5), bytes);
  JournalIngester in(dir.path(), s, 2);
  IngestStats st = in.pass();
  EXPECT_EQ(st.events_new, 8u);
  EXPECT_EQ(st.bad_lines, 1u);
  EXPECT_EQ(s.cursor(dir.path()).offset, bytes.size());
}

TEST_P(JournalIngesterTest, AbandonedTailOfAnOlderFileIsSkipped) {
  TempDir dir;
  SqlStore s(db());
  // A failed write left half a line in file 0 and the writer moved to file 1.
  append_file(dir / journal_file(0), line(message_event("2026-01-01T00:00:01Z", "a@x.test", {"r@y.test"}, "one")) +
                                          "{\"type\":\"message\",\"ts\":\"2026");
  append_file(dir / journal_file(1), line(message_event("2026-01-01T00:00:02Z", "b@x.test", {"r@y.test"}, "two")));
  JournalIngester in(dir.path(), s);
  IngestStats st = in.pass();
  EXPECT_EQ(st.events_new, 2u);
  EXPECT_EQ(st.abandoned_tails, 1u);
  EXPECT_EQ(in.pass().lines, 0u);
}

TEST_P(JournalIngesterTest, CursorFileRemovedByRetention) {
  TempDir dir;
  SqlStore s(db());
  append_file(dir / journal_file(0), line(message_event("2026-01-01T00:00:01Z", "a@x.test", {"r@y.test"}, "one")));
  JournalIngester in(dir.path(), s);
  EXPECT_EQ(in.pass().events_new, 1u);
  std::filesystem::remove(dir / journal_file(0));
  append_file(dir / journal_file(2), line(message_event("2026-01-01T00:00:02Z", "b@x.test", {"r@y.test"}, "two")));
  EXPECT_EQ(in.pass().events_new, 1u);
  EXPECT_EQ(s.cursor(dir.path()).file, journal_file(2));
}

TEST_P(JournalIngesterTest, MissingDirectoryIsEmpty) {
  SqlStore s(db());
  JournalIngester in("/nonexistent/sekisho-journal", s);
  EXPECT_EQ(in.pass().lines, 0u);
}

TEST_P(JournalIngesterTest, ANewerVersionWaitsForAnUpgrade) {
  TempDir dir;
  SqlStore s(db());
  std::string first = line(message_event("2026-01-01T00:00:01Z", "a@x.test", {"r@y.test"}, "one"));
  auto newer = message_event("2026-01-01T00:00:02Z", "b@x.test", {"r@y.test"}, "two");
  newer["v"] = journal::kVersion + 1;
  append_file(dir / journal_file(0), first + line(newer) +
                                          line(message_event("2026-01-01T00:00:03Z", "c@x.test", {"r@y.test"}, "3")));
  JournalIngester in(dir.path(), s);
  for (int pass = 0; pass < 2; ++pass) {
    IngestStats st = in.pass();
    EXPECT_EQ(st.events_new, pass == 0 ? 1u : 0u);
    EXPECT_EQ(st.newer_lines, 1u);
    EXPECT_EQ(st.bad_lines, 0u);
    EXPECT_EQ(s.cursor(dir.path()).offset, first.size()) << "the newer line is not consumed";
  }
  tracking::LogEntry e;
  std::string err;
  EXPECT_EQ(parse_event_line(newer.dump(), e, err), LineKind::newer);
  EXPECT_NE(err.find("newer"), std::string::npos) << err;
}

// What the reader before journal/ stored for a line, field by field (a
// reference for compatibility only): the derived id of pass events and the
// JSON-valued columns must not change, or a re-read journal would add rows.
void expect_as_before(const std::string& text, const tracking::LogEntry& e) {
  nlohmann::json j = nlohmann::json::parse(text);
  std::string key;
  for (const char* k : {"ts", "src", "dst", "mail_from", "rcpt_to", "sha256", "size"}) {
    const nlohmann::json v = j.contains(k) ? j[k] : nlohmann::json();
    key += v.is_string() ? v.get<std::string>() : v.dump();
    key.push_back('\0');
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(key.data(), key.size(), md, &n, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned i = 0; i < 16; ++i) {
    char b[3];
    snprintf(b, sizeof b, "%02x", md[i]);
    hex += b;
  }
  EXPECT_EQ(e.event_id, j.contains("id") ? j["id"].get<std::string>() : "pass-" + hex);
  EXPECT_EQ(e.to_json, j["to"].dump());
  EXPECT_EQ(e.cc_json, j["cc"].dump());
  EXPECT_EQ(e.attachments_json, j["attachments"].dump());
  EXPECT_EQ(e.rules_json, j["verdict"].contains("rules") ? j["verdict"]["rules"].dump() : "[]");
  EXPECT_EQ(e.action, j["verdict"]["action"].get<std::string>());
  EXPECT_EQ(e.subject, j["subject"].get<std::string>());
  EXPECT_EQ(e.size, j["size"].get<int64_t>());
}

// The real format: sekisho-replay prints the dataplane's event lines.
TEST_P(JournalIngesterTest, ReplayOfTheRecordedFixtures) {
  const char* build = std::getenv("SEKISHO_BUILD_ROOT");
  const char* src = std::getenv("SEKISHO_SOURCE_ROOT");
  if (!build || !src) GTEST_SKIP() << "SEKISHO_BUILD_ROOT/SEKISHO_SOURCE_ROOT not set";
  std::string replay = std::string(build) + "/tools/replay/sekisho-replay";
  if (!std::filesystem::exists(replay)) GTEST_SKIP() << replay << " not built";
  TempDir dir;
  std::string out = dir / journal_file(0);
  size_t messages = 0, pcaps = 0;
  for (const auto& ent : std::filesystem::directory_iterator(std::string(src) + "/tests/fixtures/wire")) {
    if (ent.path().extension() != ".pcap") continue;
    ++pcaps;
    std::string cmd = "'" + replay + "' '" + ent.path().string() + "' >> '" + out + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  ASSERT_GT(pcaps, 0u);
  std::ifstream f(out);
  for (std::string l; std::getline(f, l);) {
    if (l.find("\"type\":\"message\"") == std::string::npos) continue;
    ++messages;
    // The row is the one the field-by-field reader before journal/ made.
    tracking::LogEntry e;
    std::string err;
    ASSERT_EQ(parse_event_line(l, e, err), LineKind::message) << err;
    expect_as_before(l, e);
  }
  ASSERT_GT(messages, 0u);

  SqlStore s(db());
  JournalIngester in(dir.path(), s);
  IngestStats st = in.pass();
  EXPECT_EQ(st.bad_lines, 0u);
  EXPECT_EQ(st.events_new, messages);
  EXPECT_EQ(in.pass().events_new, 0u);

  tracking::LogQuery q;
  q.sender = "<>";
  tracking::LogPage p = s.search(q);  // swaks_null_sender.pcap
  ASSERT_GE(p.total, 1);
  EXPECT_EQ(p.rows[0].event.envelope_sender, "");
  q = {};
  q.subject = "plain";
  EXPECT_GE(s.search(q).total, 1);
  // smtplib_three_transactions: one session, three messages, each stored.
  q = {};
  q.rcpt = "@";
  EXPECT_GE(s.search(q).total, int64_t(messages));
}

SEKISHO_INSTANTIATE_BACKENDS(JournalIngesterTest);

}  // namespace
}  // namespace sekisho::control::ingest
