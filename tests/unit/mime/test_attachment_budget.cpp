// Bounded work per attachment and per message (issue 14, deliverable 4).
// Bombs are built here with zlib, the way gzip and zip make them, without
// compressing gigabytes: a fresh deflate stream over 1 MiB of zeros ended by
// a full flush is byte-aligned and independent of what came before, so N
// copies of it followed by an empty final block are N MiB of zeros (CRC by
// crc32_combine). The work is asserted through the analyzer's counters
// (bytes unpacked, libarchive calls), never through wall-clock time.
//
// Before the budgets (commit 1edd696's attachment.cpp), measured on a 2-core
// VM: a 1.9 KB .tar.gz.gz holding 1 GiB of zeros took 2.5 s to list, a
// 0.8 MB zip of 100 "a.zip" entries of 8 MiB of zeros 3.1 s; after: 13 ms
// and 0.11-0.18 s, stopped by the ratio and bytes budgets.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "scanners/mime/attachment.hpp"
#include "journal/mime_part.hpp"
#include "scanners/mime/mime_parser.hpp"

using namespace sekisho::mime;

namespace {

// A raw deflate stream built from pieces, each compressed once and repeated.
struct Deflated {
  std::string raw;
  uLong crc = crc32(0, nullptr, 0);
  uint64_t size = 0;

  static std::string full_flush(const std::string& piece) {
    z_stream z{};
    EXPECT_EQ(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&z, piece.size()) + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(piece.data()));
    z.avail_in = uInt(piece.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = uInt(out.size());
    EXPECT_EQ(deflate(&z, Z_FULL_FLUSH), Z_OK);
    out.resize(out.size() - z.avail_out);
    deflateEnd(&z);
    return out;
  }
  Deflated& add(const std::string& piece, size_t times = 1) {
    std::string d = full_flush(piece);
    uLong c = crc32(0, reinterpret_cast<const Bytef*>(piece.data()), uInt(piece.size()));
    for (size_t i = 0; i < times; ++i) {
      raw += d;
      crc = crc32_combine(crc, c, z_off_t(piece.size()));
      size += piece.size();
    }
    return *this;
  }
  Deflated& zeros_mib(size_t mib) { return add(std::string(1 << 20, '\0'), mib); }
  std::string deflate_data() const { return raw + std::string("\x03\x00", 2); }  // an empty final block
  std::string gzip() const {
    std::string g("\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03", 10);
    g += deflate_data();
    for (int i = 0; i < 4; ++i) g.push_back(char(crc >> (8 * i)));
    for (int i = 0; i < 4; ++i) g.push_back(char(size >> (8 * i)));
    return g;
  }
};

std::string gzip_of(const std::string& s) { return Deflated().add(s).gzip(); }

std::string tar_header(const std::string& name, uint64_t size) {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 99));
  std::snprintf(&h[100], 8, "%07o", 0644);
  std::snprintf(&h[108], 8, "%07o", 0);
  std::snprintf(&h[116], 8, "%07o", 0);
  std::snprintf(&h[124], 12, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(&h[136], 12, "%011o", 0);
  h[156] = '0';
  std::memcpy(&h[257], "ustar\0" "00", 8);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(&h[148], 8, "%06o", sum);
  return h;
}

// A tar of one file of `mib` MiB of zeros, gzip-compressed.
std::string tgz_of_zeros(size_t mib, const std::string& name = "zeros.bin") {
  return Deflated().add(tar_header(name, uint64_t(mib) << 20)).zeros_mib(mib).add(std::string(1024, '\0')).gzip();
}

struct ZipEntry {
  std::string name;
  Deflated data;
};

void le(std::string& s, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s.push_back(char(v >> (8 * i)));
}

// A ZIP (deflated entries, a central directory), as zip writes it.
std::string zip_of(const std::vector<ZipEntry>& entries) {
  std::string out, cd;
  for (const auto& e : entries) {
    std::string d = e.data.deflate_data();
    uint64_t off = out.size();
    le(out, 0x04034b50, 4), le(out, 20, 2), le(out, 0, 2), le(out, 8, 2), le(out, 0, 4);
    le(out, e.data.crc, 4), le(out, d.size(), 4), le(out, e.data.size, 4), le(out, e.name.size(), 2), le(out, 0, 2);
    out += e.name + d;
    le(cd, 0x02014b50, 4), le(cd, 20, 2), le(cd, 20, 2), le(cd, 0, 2), le(cd, 8, 2), le(cd, 0, 4);
    le(cd, e.data.crc, 4), le(cd, d.size(), 4), le(cd, e.data.size, 4), le(cd, e.name.size(), 2);
    le(cd, 0, 2), le(cd, 0, 2), le(cd, 0, 2), le(cd, 0, 2), le(cd, 0, 4), le(cd, off, 4);
    cd += e.name;
  }
  uint64_t start = out.size();
  out += cd;
  le(out, 0x06054b50, 4), le(out, 0, 2), le(out, 0, 2), le(out, entries.size(), 2), le(out, entries.size(), 2);
  le(out, cd.size(), 4), le(out, start, 4), le(out, 0, 2);
  return out;
}

ZipEntry entry(const std::string& name, const std::string& content) { return {name, Deflated().add(content)}; }

// An archive written by libarchive (7-Zip, tar.gz, ...), for the ordinary cases.
std::string write_archive(int format, int filter, const std::vector<std::pair<std::string, std::string>>& files,
                          const char* options = nullptr) {
  archive* a = archive_write_new();
  archive_write_set_format(a, format);
  if (filter != ARCHIVE_FILTER_NONE) archive_write_add_filter(a, filter);
  if (options) {
    EXPECT_EQ(archive_write_set_options(a, options), ARCHIVE_OK) << archive_error_string(a);
  }
  std::string buf(64 << 20, '\0');
  size_t used = 0;
  EXPECT_EQ(archive_write_open_memory(a, buf.data(), buf.size(), &used), ARCHIVE_OK);
  for (const auto& [name, data] : files) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, la_int64_t(data.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  buf.resize(used);
  return buf;
}

// Limits with the clock-driven budgets out of the way (they are tested on their own).
AttachmentLimits steady_limits() {
  AttachmentLimits l;
  l.message_time_us = 600'000'000;
  l.worker_unpacked_burst = uint64_t(1) << 50;
  return l;
}

AttachmentFacts analyze(const std::string& bytes, const std::string& name, const AttachmentLimits& lim = steady_limits(),
                        MessageUnpackBudget* msg = nullptr, WorkerUnpackBudget* worker = nullptr) {
  AttachmentAnalyzer a(lim, msg, worker);
  a.begin(name, "application/octet-stream", 0);
  a.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return a.finish();
}

constexpr uint64_t kSlack = 256 << 10;  // what the calls in flight when a budget runs out may add

}  // namespace

TEST(AttachmentBudget, GzInGzInTarStopsAtTheRatio) {
  // tar of 1 GiB of zeros, gzip, gzip again: under 4 KB.
  std::string bomb = gzip_of(tgz_of_zeros(1024));
  ASSERT_LT(bomb.size(), 4096u);
  AttachmentLimits lim = steady_limits();
  AttachmentFacts f = analyze(bomb, "report.tar.gz.gz", lim);
  EXPECT_TRUE(f.exceeded(BudgetReason::ratio)) << f.budget_exceeded;
  EXPECT_GT(f.unpacked_bytes, lim.ratio_floor);
  EXPECT_LE(f.unpacked_bytes, lim.ratio_floor + kSlack);
  EXPECT_LE(f.unpack_steps, 1000u);
  EXPECT_EQ(f.archive_entries, 1u);  // the tar's header was read before the budget ran out
}

TEST(AttachmentBudget, BytesBudgetWhenTheRatioIsNotChecked) {
  std::string bomb = tgz_of_zeros(256);
  AttachmentLimits lim = steady_limits();
  lim.max_ratio = 1u << 30;
  AttachmentFacts f = analyze(bomb, "x.tgz", lim);
  EXPECT_EQ(f.budget_exceeded, 1u << unsigned(BudgetReason::bytes));
  EXPECT_GT(f.unpacked_bytes, lim.max_unpacked_bytes);
  EXPECT_LE(f.unpacked_bytes, lim.max_unpacked_bytes + kSlack);
}

TEST(AttachmentBudget, TarInsideGzipWithAnExecutableAfterABigEntryIsListedWithinBudget) {
  // 24 MiB of zeros then "run.exe": under the 32 MiB budget, ratio unchecked: the exe is found.
  Deflated d;
  d.add(tar_header("big.bin", 24u << 20)).zeros_mib(24).add(tar_header("run.exe", 3)).add(std::string("MZ\0", 3) + std::string(509, '\0'));
  d.add(std::string(1024, '\0'));
  AttachmentLimits lim = steady_limits();
  lim.max_ratio = 1u << 30;
  AttachmentFacts f = analyze(d.gzip(), "x.tgz", lim);
  EXPECT_EQ(f.budget_exceeded, 0u);
  EXPECT_TRUE(f.executable);
  EXPECT_EQ(f.archive_entries, 2u);
  EXPECT_GE(f.unpacked_bytes, 24u << 20);
  EXPECT_LE(f.unpacked_bytes, (24u << 20) + kSlack);
}

TEST(AttachmentBudget, ZipEntryOfOneGiBIsSkippedAndItsDeclaredRatioNoted) {
  std::string z = zip_of({{"zeros.bin", Deflated().zeros_mib(1024)}, entry("after.exe", "MZ")});
  AttachmentFacts f = analyze(z, "bomb.zip");
  EXPECT_EQ(f.unpacked_bytes, 0u);  // skipped by the central directory: nothing inflated
  EXPECT_TRUE(f.exceeded(BudgetReason::ratio));
  EXPECT_TRUE(f.executable);  // the walk went on: a noted ratio is not a halt
  EXPECT_EQ(f.archive_entries, 2u);
}

TEST(AttachmentBudget, ManyNestedZipsOfZerosStopAtTheBytesBudget) {
  // 100 entries "aN.zip" of 8 MiB of zeros each (800 MiB to inflate, 0.8 MB of zip).
  Deflated eight;
  eight.zeros_mib(8);
  std::vector<ZipEntry> es;
  for (int i = 0; i < 100; ++i) es.push_back({"a" + std::to_string(i) + ".zip", eight});
  std::string z = zip_of(es);
  AttachmentLimits lim = steady_limits();
  AttachmentFacts f = analyze(z, "many.zip", lim);
  EXPECT_TRUE(f.exceeded(BudgetReason::bytes)) << f.budget_exceeded;
  EXPECT_LE(f.unpacked_bytes, lim.max_unpacked_bytes + kSlack);
  EXPECT_LT(f.archive_entries, 10u);
}

TEST(AttachmentBudget, FortyTwoStyleNestingIsBounded) {
  // 42.zip's shape: 16 zips of 16 zips of 16 zips, each holding 1 GiB of zeros entries.
  Deflated gib;
  gib.zeros_mib(1024);
  std::vector<ZipEntry> bottom;
  for (int i = 0; i < 4; ++i) bottom.push_back({"0" + std::to_string(i) + ".dll", gib});
  std::string l3 = zip_of(bottom);
  auto level = [](const std::string& inner, const char* prefix) {
    std::vector<ZipEntry> es;
    for (int i = 0; i < 16; ++i) es.push_back(entry(prefix + std::to_string(i) + ".zip", inner));
    return zip_of(es);
  };
  std::string l2 = level(l3, "c"), l1 = level(l2, "b"), top = level(l1, "a");
  AttachmentLimits lim = steady_limits();
  AttachmentFacts f = analyze(top, "42.zip", lim);
  EXPECT_NE(f.budget_exceeded, 0u);
  EXPECT_TRUE(f.exceeded(BudgetReason::depth));  // the third zip level is not opened
  EXPECT_LE(f.unpacked_bytes, lim.max_unpacked_bytes + kSlack);
  EXPECT_LE(f.archive_entries, lim.max_archive_entries);
}

TEST(AttachmentBudget, DepthIsNotedAndTheWalkGoesOn) {
  std::string deep = zip_of({entry("payload.exe", "MZ")});
  for (int i = 0; i < 3; ++i) deep = zip_of({entry("level" + std::to_string(i) + ".zip", deep)});
  std::string z = zip_of({entry("deep.zip", deep), entry("readme.pdf.scr", "MZ")});
  AttachmentFacts f = analyze(z, "x.zip");
  EXPECT_EQ(f.budget_exceeded, 1u << unsigned(BudgetReason::depth));
  EXPECT_TRUE(f.double_extension);  // listed after the too-deep archive
}

TEST(AttachmentBudget, EntriesBudget) {
  std::vector<ZipEntry> es;
  for (int i = 0; i < 50; ++i) es.push_back(entry("f" + std::to_string(i) + ".txt", "x"));
  AttachmentLimits lim = steady_limits();
  lim.max_archive_entries = 10;
  AttachmentFacts f = analyze(zip_of(es), "x.zip", lim);
  EXPECT_EQ(f.budget_exceeded, 1u << unsigned(BudgetReason::entries));
  EXPECT_EQ(f.archive_entries, 10u);
}

TEST(AttachmentBudget, MoreCompressionLayersThanAllowedAreNotUnpacked) {
  std::string g3 = gzip_of(gzip_of(tgz_of_zeros(1)));
  AttachmentFacts f = analyze(g3, "x.tgz");
  EXPECT_EQ(f.budget_exceeded, 1u << unsigned(BudgetReason::depth));
  EXPECT_EQ(f.unpacked_bytes, 0u);
}

TEST(AttachmentBudget, SolidSevenZipIsReadNotSkipped) {
  // libarchive skips an entry of a solid 7z by unpacking it: the walk does that reading itself, charged.
  std::string big(16 << 20, '\0');
  std::string z = write_archive(ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_NONE, {{"big.bin", big}, {"b.exe", "MZ"}},
                                "7zip:compression=deflate");
  AttachmentLimits lim = steady_limits();
  AttachmentFacts f = analyze(z, "x.7z", lim);
  EXPECT_TRUE(f.exceeded(BudgetReason::ratio)) << f.budget_exceeded;
  EXPECT_LE(f.unpacked_bytes, std::max<uint64_t>(lim.ratio_floor, lim.max_ratio * z.size()) + kSlack);
  EXPECT_FALSE(f.executable);  // b.exe lies beyond the budget
  // Under the budget the same walk reaches the second entry.
  std::string small = write_archive(ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_NONE,
                                    {{"small.bin", std::string(1 << 20, '\0')}, {"b.exe", "MZ"}}, "7zip:compression=deflate");
  AttachmentFacts g = analyze(small, "y.7z", lim);
  EXPECT_EQ(g.budget_exceeded, 0u);
  EXPECT_TRUE(g.executable);
  EXPECT_EQ(g.archive_entries, 2u);
  EXPECT_GE(g.unpacked_bytes, 1u << 20);
}

TEST(AttachmentBudget, SevenZipHeaderTooBigToParseIsNotOpened) {
  // libarchive parses a 7z's whole header in its first call: 100,000 empty
  // entries are a few KB of 7z and about 2 MB of header.
  std::vector<std::pair<std::string, std::string>> files;
  for (int i = 0; i < 100000; ++i) files.push_back({"f" + std::to_string(i), ""});
  std::string z = write_archive(ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_NONE, files);
  ASSERT_LT(z.size(), 64u << 10);
  AttachmentFacts f = analyze(z, "x.7z");
  EXPECT_EQ(f.budget_exceeded, 1u << unsigned(BudgetReason::entries));
  EXPECT_EQ(f.archive_entries, 0u);
  EXPECT_LE(f.unpack_steps, 1u);
  // A smaller one is listed, up to the entry budget.
  files.resize(2000);
  AttachmentFacts g = analyze(write_archive(ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_NONE, files), "y.7z");
  EXPECT_EQ(g.budget_exceeded, 1u << unsigned(BudgetReason::entries));
  EXPECT_EQ(g.archive_entries, 1000u);
}

TEST(AttachmentBudget, ZipDirectoryTooBigToReadIsNotOpened) {
  Deflated empty;
  empty.add("");
  std::vector<ZipEntry> es;
  for (int i = 0; i < 10000; ++i) es.push_back({"f" + std::to_string(i), empty});
  AttachmentFacts f = analyze(zip_of(es), "x.zip");
  EXPECT_EQ(f.budget_exceeded, 1u << unsigned(BudgetReason::entries));
  EXPECT_EQ(f.archive_entries, 0u);
  EXPECT_LE(f.unpack_steps, 1u);
  es.resize(5000);  // under max_directory_entries: listed to max_archive_entries
  AttachmentFacts g = analyze(zip_of(es), "y.zip");
  EXPECT_EQ(g.budget_exceeded, 1u << unsigned(BudgetReason::entries));
  EXPECT_EQ(g.archive_entries, 1000u);
}

TEST(AttachmentBudget, TarGzInsideTarGzThenMoreEntries) {
  // The inner stream is read while the outer reader still holds bytes of its own: separate buffers.
  std::string inner = write_archive(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, {{"a.txt", std::string(300000, 'a')}});
  std::string outer = write_archive(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP,
                                    {{"inner.tgz", inner}, {"pad.txt", std::string(70000, 'p')}, {"z.scr", "MZ"}});
  AttachmentFacts f = analyze(outer, "outer.tgz");
  EXPECT_EQ(f.budget_exceeded, 0u);
  EXPECT_EQ(f.archive_entries, 4u);
  EXPECT_TRUE(f.executable);
}

TEST(AttachmentBudget, OrdinaryArchivesAreListedWithoutBudgetBits) {
  std::string tgz = write_archive(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP,
                                  {{"notes.txt", std::string(100000, 'n')}, {"setup.exe", "MZ"}});
  AttachmentFacts t = analyze(tgz, "bundle.tgz");
  EXPECT_EQ(t.budget_exceeded, 0u);
  EXPECT_TRUE(t.executable);
  EXPECT_EQ(t.archive_entries, 2u);
  std::string nested = zip_of({entry("inner.zip", zip_of({entry("payload.pdf.exe", "MZ")}))});
  AttachmentFacts n = analyze(nested, "n.zip");
  EXPECT_EQ(n.budget_exceeded, 0u);
  EXPECT_TRUE(n.double_extension);
  EXPECT_EQ(n.archive_entries, 2u);
}

TEST(AttachmentBudget, MessageBudgetIsSharedByItsAttachments) {
  AttachmentLimits lim = steady_limits();
  lim.max_ratio = 1u << 30;
  lim.message_unpacked_bytes = 12 << 20;
  std::string tgz = tgz_of_zeros(8);
  MessageUnpackBudget msg;
  AttachmentFacts a = analyze(tgz, "a.tgz", lim, &msg);
  EXPECT_EQ(a.budget_exceeded, 0u);
  AttachmentFacts b = analyze(tgz, "b.tgz", lim, &msg);
  EXPECT_EQ(b.budget_exceeded, 1u << unsigned(BudgetReason::message_bytes));
  EXPECT_LE(msg.unpacked_bytes, lim.message_unpacked_bytes + kSlack);
  AttachmentFacts c = analyze(tgz, "c.tgz", lim, &msg);  // nothing left: no work at all
  EXPECT_EQ(c.budget_exceeded, 1u << unsigned(BudgetReason::message_bytes));
  EXPECT_EQ(c.unpacked_bytes, 0u);
  msg.reset();
  EXPECT_EQ(analyze(tgz, "d.tgz", lim, &msg).budget_exceeded, 0u);
}

namespace {

std::string message_with(const std::vector<std::pair<std::string, std::string>>& atts) {
  std::string m = "From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n";
  for (const auto& [name, bytes] : atts) {
    m += "--z\r\nContent-Type: application/gzip\r\nContent-Disposition: attachment; filename=" + name +
         "\r\nContent-Transfer-Encoding: base64\r\n\r\n";
    static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string b;
    for (size_t i = 0; i < bytes.size(); i += 3) {
      uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
      if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
      if (i + 2 < bytes.size()) v |= uint8_t(bytes[i + 2]);
      b += k[v >> 18], b += k[(v >> 12) & 63];
      b += i + 1 < bytes.size() ? k[(v >> 6) & 63] : '=';
      b += i + 2 < bytes.size() ? k[v & 63] : '=';
      if (b.size() % 78 == 76) b += "\r\n";
    }
    m += b + "\r\n";
  }
  return m + "--z--\r\n";
}

}  // namespace

TEST(AttachmentBudget, MimeParserGivesEachMessageOneBudget) {
  MimeLimits lim;
  lim.attachment = steady_limits();
  lim.attachment.max_ratio = 1u << 30;
  lim.attachment.message_unpacked_bytes = 12 << 20;
  std::string tgz = tgz_of_zeros(8);
  MimeParser p(lim);
  auto run = [&](const std::string& m) {
    p.reset();
    p.feed({reinterpret_cast<const uint8_t*>(m.data()), m.size()});
    p.finish();
    return p.facts();
  };
  MessageFacts one = run(message_with({{"a.tgz", tgz}, {"b.tgz", tgz}}));
  ASSERT_EQ(one.attachments.size(), 2u);
  EXPECT_EQ(one.attachments[0].budget_exceeded, 0u);
  EXPECT_TRUE(one.attachments[1].exceeded(BudgetReason::message_bytes));
  nlohmann::json j;
  sekisho::journal::add_facts_json(one, j);
  EXPECT_FALSE(j["attachments"][0].contains("budget_exceeded"));
  EXPECT_EQ(j["attachments"][1]["budget_exceeded"], nlohmann::json::array({"message_bytes"}));
  EXPECT_GE(j["attachments"][0]["unpacked_bytes"].get<uint64_t>(), 8u << 20);
  // The same parser, the next message: a fresh budget.
  MessageFacts two = run(message_with({{"c.tgz", tgz}}));
  ASSERT_EQ(two.attachments.size(), 1u);
  EXPECT_EQ(two.attachments[0].budget_exceeded, 0u);
}

TEST(AttachmentBudget, OneMegabyteMessageOfBombsCostsOneMessageBudget) {
  // The case: about 25 minutes of a worker before the budgets.
  std::string bomb = gzip_of(tgz_of_zeros(1024));
  size_t each = message_with({{"l000.tar.gz.gz", bomb}}).size() - message_with({}).size();
  std::vector<std::pair<std::string, std::string>> atts;
  for (size_t i = 0; i < 1000000 / each; ++i) atts.push_back({"l" + std::to_string(100 + i) + ".tar.gz.gz", bomb});
  std::string m = message_with(atts);
  ASSERT_GT(atts.size(), 200u);
  ASSERT_LT(m.size(), 1050000u);
  MimeLimits lim;
  lim.attachment = steady_limits();
  MimeParser p(lim);
  p.feed({reinterpret_cast<const uint8_t*>(m.data()), m.size()});
  p.finish();
  const MessageFacts& f = p.facts();
  ASSERT_EQ(f.attachments.size(), lim.max_attachments);
  EXPECT_EQ(f.attachments.size() + f.attachments_dropped, atts.size());
  uint64_t total = 0;
  for (const auto& a : f.attachments) total += a.unpacked_bytes;
  EXPECT_LE(total, lim.attachment.message_unpacked_bytes + kSlack);
  EXPECT_TRUE(f.attachments[0].exceeded(BudgetReason::ratio));
  const AttachmentFacts& last = f.attachments.back();
  EXPECT_TRUE(last.exceeded(BudgetReason::message_bytes));
  EXPECT_EQ(last.unpacked_bytes, 0u);  // nothing left: no work at all
}

TEST(AttachmentBudget, StepsBudget) {
  AttachmentLimits lim = steady_limits();
  lim.max_ratio = 1u << 30;
  lim.message_steps = 50;
  AttachmentFacts f = analyze(tgz_of_zeros(8), "x.tgz", lim);
  EXPECT_EQ(f.budget_exceeded, 1u << unsigned(BudgetReason::steps));
  EXPECT_LE(f.unpack_steps, 51u);
}

TEST(AttachmentBudget, TimeBudget) {
  AttachmentLimits lim = steady_limits();
  lim.max_ratio = 1u << 30;
  lim.message_time_us = 1;  // spent by the first call
  AttachmentFacts f = analyze(tgz_of_zeros(8), "x.tgz", lim);
  EXPECT_TRUE(f.exceeded(BudgetReason::time)) << f.budget_exceeded;
  EXPECT_LE(f.unpack_steps, 2u);
}

TEST(AttachmentBudget, WorkerBudgetSpansMessages) {
  AttachmentLimits lim = steady_limits();
  lim.max_ratio = 1u << 30;
  lim.worker_unpacked_burst = 10 << 20;
  lim.worker_unpacked_per_sec = 0;  // no refill within the test
  WorkerUnpackBudget worker;
  std::string tgz = tgz_of_zeros(8);
  MessageUnpackBudget m1, m2, m3;
  EXPECT_EQ(analyze(tgz, "a.tgz", lim, &m1, &worker).budget_exceeded, 0u);
  AttachmentFacts b = analyze(tgz, "b.tgz", lim, &m2, &worker);  // another message, same worker
  EXPECT_EQ(b.budget_exceeded, 1u << unsigned(BudgetReason::worker));
  EXPECT_LE(worker.spent(), lim.worker_unpacked_burst + kSlack);
  EXPECT_EQ(analyze(tgz, "c.tgz", lim, &m3, &worker).unpacked_bytes, 0u);
  // Each thread has its own: a fresh thread's default budget is full.
  AttachmentFacts other;
  std::thread([&] { other = analyze(tgz, "d.tgz", lim); }).join();
  EXPECT_EQ(other.budget_exceeded, 0u);
}

TEST(AttachmentBudget, WorkerBudgetRefillsWithTime) {
  AttachmentLimits lim;
  lim.worker_unpacked_burst = 1000;
  lim.worker_unpacked_per_sec = 1000;
  WorkerUnpackBudget w;
  auto t = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  EXPECT_TRUE(w.take(1500, lim, t));   // a full bucket goes into debt once
  EXPECT_FALSE(w.take(1, lim, t));
  EXPECT_FALSE(w.take(1, lim, t + std::chrono::milliseconds(400)));  // -500 + 400: still empty
  EXPECT_TRUE(w.take(1, lim, t + std::chrono::milliseconds(700)));
  EXPECT_TRUE(w.take(1000, lim, t + std::chrono::seconds(10)));  // refilled to the burst, no more
  EXPECT_FALSE(w.take(1, lim, t + std::chrono::seconds(10)));
}

TEST(AttachmentBudget, DamagedBombsStayWithinTheBudgets) {
  // Truncated and bit-flipped bombs: libarchive takes other paths (errors,
  // resynchronisation), the bounds must hold on every one of them.
  Deflated eight;
  eight.zeros_mib(8);
  std::vector<ZipEntry> es;
  for (int i = 0; i < 8; ++i) es.push_back({"a" + std::to_string(i) + ".zip", eight});
  std::vector<std::pair<std::string, std::string>> bombs = {
      {"x.tar.gz.gz", gzip_of(tgz_of_zeros(256))}, {"x.tgz", tgz_of_zeros(64)}, {"x.zip", zip_of(es)}};
  AttachmentLimits lim = steady_limits();
  lim.max_unpacked_bytes = 4 << 20;  // small budgets, many rounds
  lim.ratio_floor = 1 << 20;
  std::mt19937 rng(14);
  for (const auto& [name, bomb] : bombs) {
    for (int round = 0; round < 60; ++round) {
      std::string b = bomb;
      if (round % 3 == 0) b.resize(rng() % b.size());
      for (int k = 0, flips = 1 + int(rng() % 4); k < flips && !b.empty(); ++k) b[rng() % b.size()] ^= char(1 << (rng() % 8));
      MessageUnpackBudget msg;
      AttachmentFacts f = analyze(b, name, lim, &msg);
      ASSERT_LE(f.unpacked_bytes, lim.max_unpacked_bytes + kSlack) << name << " round " << round;
      ASSERT_LE(msg.steps, lim.message_steps + 1) << name << " round " << round;
    }
  }
}

TEST(AttachmentBudget, ReasonNames) {
  const char* expect[] = {"depth", "entries", "ratio", "bytes", "message_bytes", "steps", "time", "worker"};
  for (unsigned k = 0; k < kBudgetReasonCount; ++k) EXPECT_STREQ(budget_reason_name(BudgetReason(k)), expect[k]);
}
