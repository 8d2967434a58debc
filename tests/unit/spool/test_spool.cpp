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

#include "dataplane/spool/spool.hpp"

namespace fs = std::filesystem;
using namespace sekisho::spool;

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

TEST(Journal, FlushesByCountAndKeepsWholeLines) {
  TempDir t;
  JournalOptions o;
  o.dir = (t.p / "journal").string();
  o.flush_count = 3;
  o.flush_interval = std::chrono::hours(1);
  Journal j(o);
  j.append(R"({"n":1})");
  j.append(R"({"n":2})");
  EXPECT_EQ(slurp(j.current_path()), "") << "nothing written before the count bound";
  j.append(R"({"n":3})");
  EXPECT_EQ(slurp(j.current_path()), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
  EXPECT_EQ(j.events_written(), 3u);
}

TEST(Journal, FlushesByTime) {
  TempDir t;
  JournalOptions o;
  o.dir = (t.p / "journal").string();
  o.flush_count = 1000;
  o.flush_interval = std::chrono::milliseconds(0);
  Journal j(o);
  j.append(R"({"n":1})");  // the interval has passed at once
  EXPECT_EQ(slurp(j.current_path()), "{\"n\":1}\n");
}

TEST(Journal, RotatesBySizeAndNeverReopensAFile) {
  TempDir t;
  JournalOptions o;
  o.dir = (t.p / "journal").string();
  o.flush_count = 1;
  o.max_bytes = 20;
  {
    Journal j(o);
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
  Journal again(o);  // a restart continues after the last file
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
