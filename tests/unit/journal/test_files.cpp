// The journal's files: the spool (durable, atomic, read back, its header
// as a message event), the journal writer (flush bounds, whole lines,
// rotation) and reader (cursor, partial and abandoned lines, over-long
// lines, removed and shortened files, stopping before a line).
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "journal/journal_file.hpp"
#include "journal/spool_file.hpp"

namespace fs = std::filesystem;
using namespace sekisho::journal;

namespace {

struct TempDir {
  fs::path p;
  TempDir() {
    char t[] = "/tmp/sekisho-spool-XXXXXX";
    p = mkdtemp(t);
  }
  ~TempDir() { fs::remove_all(p); }
};

std::vector<std::string> files_in(const fs::path& d) {
  std::vector<std::string> v;
  if (!fs::exists(d)) return v;
  for (auto& e : fs::directory_iterator(d)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

TEST(Spool, WritesDurablyAndReadsBack) {
  TempDir t;
  SpoolWriter w((t.p / "spool").string());
  std::string msg = "From: a@b\r\nSubject: held\r\n\r\nbody\r\n.\r\nnot the end\r\n";
  msg.push_back('\0');  // binary-safe
  auto r = w.write("SK0001", R"({"mail_from":"a@b","rcpt_to":["c@d"]})",
                   {reinterpret_cast<const uint8_t*>(msg.data()), msg.size()});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.path, (t.p / "spool" / "new" / "SK0001.msg").string());
  EXPECT_TRUE(files_in(t.p / "spool" / "tmp").empty());
  SpoolEntry e;
  ASSERT_TRUE(read_spool_file(r.path, e));
  EXPECT_EQ(e.header_json, R"({"mail_from":"a@b","rcpt_to":["c@d"]})");
  EXPECT_EQ(e.message, msg);
}

TEST(Spool, FailureLeavesNothingInNew) {
  TempDir t;
  SpoolWriter w((t.p / "spool").string());
  // tmp/ replaced by a file: every create fails.
  fs::remove(t.p / "spool" / "tmp");
  std::ofstream(t.p / "spool" / "tmp") << "x";
  auto r = w.write("SK0002", "{}", {});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("cannot create"), std::string::npos) << r.error;
  EXPECT_TRUE(files_in(t.p / "spool" / "new").empty());
}

TEST(Spool, RefusesBadIdsAndMultilineHeaders) {
  TempDir t;
  SpoolWriter w((t.p / "spool").string());
  EXPECT_FALSE(w.write("../etc/passwd", "{}", {}).ok);
  EXPECT_FALSE(w.write("", "{}", {}).ok);
  EXPECT_FALSE(w.write("SK1", "{\n}", {}).ok);
  EXPECT_TRUE(w.write("SK1", "{}", {}).ok);  // a good one still works
  EXPECT_FALSE(w.write("SK1", "{}", {}).ok) << "ids are written once";
}

TEST(Spool, UnusableDirectoryFailsAtStart) {
  TempDir t;
  std::ofstream(t.p / "file") << "x";
  EXPECT_THROW(SpoolWriter((t.p / "file").string()), std::runtime_error);
}

TEST(JournalWriter, FlushesByCountAndKeepsWholeLines) {
  TempDir t;
  JournalOptions o;
  o.dir = (t.p / "journal").string();
  o.flush_count = 3;
  o.flush_interval = std::chrono::hours(1);
  JournalWriter j(o);
  j.append(R"({"n":1})");
  j.append(R"({"n":2})");
  EXPECT_EQ(slurp(j.current_path()), "") << "nothing written before the count bound";
  j.append(R"({"n":3})");
  EXPECT_EQ(slurp(j.current_path()), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
  EXPECT_EQ(j.events_written(), 3u);
}

TEST(JournalWriter, FlushesByTime) {
  TempDir t;
  JournalOptions o;
  o.dir = (t.p / "journal").string();
  o.flush_count = 1000;
  o.flush_interval = std::chrono::milliseconds(0);
  JournalWriter j(o);
  j.append(R"({"n":1})");  // the interval has passed at once
  EXPECT_EQ(slurp(j.current_path()), "{\"n\":1}\n");
}

TEST(JournalWriter, RotatesBySizeAndNeverReopensAFile) {
  TempDir t;
  JournalOptions o;
  o.dir = (t.p / "journal").string();
  o.flush_count = 1;
  o.max_bytes = 20;
  {
    JournalWriter j(o);
    for (int i = 0; i < 5; ++i) j.append(R"({"event":"xxxxxx"})");  // 19 bytes a line
    EXPECT_EQ(j.events_written(), 5u);
  }
  auto files = files_in(t.p / "journal");
  ASSERT_GE(files.size(), 3u);
  size_t lines = 0;
  for (auto& f : files) {
    std::string s = slurp(t.p / "journal" / f);
    EXPECT_TRUE(s.empty() || s.back() == '\n') << f;
    lines += size_t(std::count(s.begin(), s.end(), '\n'));
  }
  EXPECT_EQ(lines, 5u);
  JournalWriter again(o);  // a restart continues after the last file
  EXPECT_GT(fs::path(again.current_path()).filename().string(), files.back());
}

TEST(MessageId, SortableAndUnique) {
  std::set<std::string> seen;
  std::string prev;
  for (uint32_t c = 0; c < 1000; ++c) {
    std::string id = make_message_id(1700000000000000ull + c, 1, c);
    EXPECT_EQ(id.size(), 2u + 13 + 1 + 7);
    EXPECT_TRUE(seen.insert(id).second);
    EXPECT_GT(id, prev);
    prev = id;
  }
}

TEST(Spool, HeaderIsAMessageEventWithAnId) {
  MessageEvent e;
  e.ts_us = 1;
  e.verdict.action = sekisho::verdict::Action::quarantine;
  MessageEvent back;
  auto err = read_spool_header(to_line(to_json(e)), back);
  ASSERT_TRUE(err);
  EXPECT_NE(err->text.find("id"), std::string::npos) << err->text;
  e.id = "SK1";
  e.spool = "new/SK1.msg";
  EXPECT_FALSE(read_spool_header(to_line(to_json(e)), back));
  EXPECT_EQ(back, e);
  EXPECT_TRUE(read_spool_header(R"({"type":"session","ts":"2026-01-01T00:00:00Z"})", back));
  EXPECT_TRUE(read_spool_header("not json", back));
}

namespace {

// Records what a read saw; stops before the line `stop_at` (1-based) if set.
struct Seen : JournalReader::Visitor {
  std::vector<std::string> lines;
  std::vector<JournalPosition> ends;
  uint64_t tails = 0, overlong = 0, rewinds = 0;
  size_t stop_at = 0;
  bool on_line(const JournalLine& l) override {
    if (stop_at && lines.size() + 1 == stop_at) return false;
    lines.emplace_back(l.text);
    return true;
  }
  void on_file_end(const JournalPosition& end) override { ends.push_back(end); }
  void on_abandoned_tail(const std::string&, uint64_t, uint64_t) override { ++tails; }
  void on_overlong_line(const std::string&, uint64_t, uint64_t) override { ++overlong; }
  void on_rewind(const std::string&, uint64_t, uint64_t) override { ++rewinds; }
};

void append(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::app);
  f << bytes;
}

}  // namespace

TEST(JournalReader, CompleteLinesAfterThePositionAcrossFiles) {
  TempDir t;
  const fs::path d = t.p / "journal";
  fs::create_directories(d);
  EXPECT_EQ(journal_file_name(7), "events-000000000007.jsonl");
  EXPECT_EQ(journal_file_seq("events-000000000007.jsonl"), 7u);
  EXPECT_FALSE(journal_file_seq("events-7.json"));
  EXPECT_FALSE(journal_file_seq("events-x.jsonl"));
  append(d / journal_file_name(0), "a\n\nb\nunfinished");
  append(d / "notes.txt", "ignored\n");
  JournalReader r(d.string());
  Seen s1;
  JournalPosition p = r.read({}, s1);
  EXPECT_EQ(s1.lines, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p, (JournalPosition{journal_file_name(0), 5}));
  Seen s2;
  EXPECT_EQ(r.read(p, s2), p);  // the partial line waits
  EXPECT_TRUE(s2.lines.empty());
  // The writer moves on: the partial line is abandoned, the next file read.
  append(d / journal_file_name(1), "c\nd\n");
  Seen s3;
  p = r.read(p, s3);
  EXPECT_EQ(s3.lines, (std::vector<std::string>{"c", "d"}));
  EXPECT_EQ(s3.tails, 1u);
  ASSERT_EQ(s3.ends.size(), 1u);
  EXPECT_EQ(s3.ends[0], (JournalPosition{journal_file_name(0), 15}));
  EXPECT_EQ(p, (JournalPosition{journal_file_name(1), 4}));
  // Stopping before a line leaves the position before it.
  append(d / journal_file_name(1), "e\nf\n");
  Seen s4;
  s4.stop_at = 2;
  JournalPosition q = r.read(p, s4);
  EXPECT_EQ(s4.lines, (std::vector<std::string>{"e"}));
  EXPECT_EQ(q, (JournalPosition{journal_file_name(1), 6}));
  // A file removed before it was read: reading goes on at the next one.
  append(d / journal_file_name(3), "g\n");
  fs::remove(d / journal_file_name(1));
  Seen s5;
  EXPECT_EQ(r.read(q, s5), (JournalPosition{journal_file_name(3), 2}));
  EXPECT_EQ(s5.lines, (std::vector<std::string>{"g"}));
  // A file shorter than the position is read again from its start.
  Seen s6;
  EXPECT_EQ(r.read({journal_file_name(3), 100}, s6), (JournalPosition{journal_file_name(3), 2}));
  EXPECT_EQ(s6.rewinds, 1u);
  EXPECT_EQ(s6.lines, (std::vector<std::string>{"g"}));
}

TEST(JournalReader, OverlongLinesAreSkipped) {
  TempDir t;
  const fs::path d = t.p / "journal";
  fs::create_directories(d);
  append(d / journal_file_name(0), "short\n" + std::string(3 << 20, 'x') + "\nafter\n" + std::string(100, 'y'));
  JournalReader r(d.string(), 1000);
  Seen s;
  JournalPosition p = r.read({}, s);
  EXPECT_EQ(s.lines, (std::vector<std::string>{"short", "after"}));
  EXPECT_EQ(s.overlong, 1u);
  EXPECT_EQ(p.offset, 6u + (3u << 20) + 1 + 6);
  // An over-long unfinished line in the newest file waits like any other.
  append(d / journal_file_name(0), std::string(5000, 'z'));
  Seen s2;
  EXPECT_EQ(r.read(p, s2), p);
  EXPECT_EQ(s2.overlong, 0u);
  append(d / journal_file_name(0), "\nend\n");
  Seen s3;
  r.read(p, s3);
  EXPECT_EQ(s3.overlong, 1u);
  EXPECT_EQ(s3.lines, (std::vector<std::string>{"end"}));
}

TEST(JournalReader, ReadsWhatTheWriterWrote) {
  TempDir t;
  JournalOptions o;
  o.dir = (t.p / "journal").string();
  o.flush_count = 1;
  o.max_bytes = 30;
  std::vector<std::string> want;
  {
    JournalWriter w(o);
    for (int i = 0; i < 10; ++i) {
      MessageEvent e;
      e.ts_us = i;
      want.push_back(to_line(to_json(e)));
      w.append(want.back());
    }
  }
  Seen s;
  JournalReader(o.dir).read({}, s);
  EXPECT_EQ(s.lines, want);
  EXPECT_EQ(s.tails, 0u);
}
