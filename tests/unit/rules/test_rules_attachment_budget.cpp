// `attachment R budget_exceeded [REASON...]`: the MIME engine's unpacking
// budgets (scanners/mime/attachment.hpp) as a verdict input. Parsed, compiled
// to the artifact, evaluated on attachment facts, and end to end on a real
// message with a decompression bomb through MimeParser and the shipped pack.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <cstring>

#include "scanners/match/match.hpp"
#include "scanners/mime/attachment.hpp"
#include "scanners/mime/mime_parser.hpp"
#include "rules/compiler/compiler.hpp"
#include "rules/lang/parser.hpp"

using namespace sekisho;
using namespace sekisho::rules;

namespace {

RuleSource parse(std::string_view text) {
  RuleSource s;
  parse_text(s, "t.cf", text);
  finish_source(s);
  return s;
}

std::unique_ptr<match::Ruleset> compile(RuleSource& s) {
  for (auto& e : s.errors) ADD_FAILURE() << e.text();
  std::string art;
  CompileReport rep;
  std::vector<Diagnostic> errs;
  EXPECT_TRUE(compile_ruleset(s, {}, art, rep, errs));
  for (auto& e : errs) ADD_FAILURE() << e.text();
  std::string err;
  auto rs = match::Ruleset::load_bytes({reinterpret_cast<const uint8_t*>(art.data()), art.size()}, err);
  EXPECT_TRUE(rs) << err;
  return rs;
}

std::unique_ptr<match::Ruleset> build(std::string_view text) {
  RuleSource s = parse(text);
  return compile(s);
}

uint32_t bit(mime::BudgetReason r) { return 1u << unsigned(r); }

match::Result scan(const match::Ruleset& rs, const std::vector<match::AttachmentFacts>& atts) {
  match::Scratch sc(rs);
  match::MessageScan s(rs, sc);
  s.header("From", "a@example.com", "a@example.com");
  for (const auto& a : atts) s.attachment(a);
  return s.finish();
}

bool hit(const match::Result& r, std::string_view name) {
  for (auto& h : r.hits)
    if (h.rule == name) return true;
  return false;
}

// The projection the dataplane and sekisho-replay make (scanners/verdict/evaluator.cpp).
match::AttachmentFacts project(const mime::AttachmentFacts& a) {
  match::AttachmentFacts f;
  f.name = a.name;
  f.type = a.type;
  f.sniffed_type = a.sniffed_type;
  f.size = a.size;
  f.sha256 = a.sha256;
  f.macros = a.macros;
  f.encrypted = a.encrypted;
  f.budget_exceeded = a.budget_exceeded;
  return f;
}

std::string b64(const std::string& s) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  for (size_t i = 0; i < s.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(s[i])) << 16;
    if (i + 1 < s.size()) v |= uint32_t(uint8_t(s[i + 1])) << 8;
    if (i + 2 < s.size()) v |= uint8_t(s[i + 2]);
    o += k[v >> 18], o += k[(v >> 12) & 63];
    o += i + 1 < s.size() ? k[(v >> 6) & 63] : '=';
    o += i + 2 < s.size() ? k[v & 63] : '=';
    if (o.size() % 78 == 76) o += "\r\n";
  }
  return o + "\r\n";
}

// A .tar.gz of one file of zeros, written by libarchive.
std::string tgz_of_zeros(size_t bytes) {
  archive* a = archive_write_new();
  archive_write_set_format_ustar(a);
  archive_write_add_filter_gzip(a);
  std::string buf(bytes / 100 + (1 << 20), '\0');
  size_t used = 0;
  archive_write_open_memory(a, buf.data(), buf.size(), &used);
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, "zeros.bin");
  archive_entry_set_size(e, la_int64_t(bytes));
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_write_header(a, e);
  std::string zeros(1 << 20, '\0');
  for (size_t left = bytes; left;) {
    size_t n = std::min(left, zeros.size());
    archive_write_data(a, zeros.data(), n);
    left -= n;
  }
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  buf.resize(used);
  return buf;
}

}  // namespace

TEST(RulesAttachmentBudget, ParsedWithReasonsAndErrorsCarryFileAndLine) {
  RuleSource ok = parse("attachment ANY budget_exceeded\nattachment BOMB budget_exceeded ratio bytes\n");
  EXPECT_TRUE(ok.errors.empty());
  RuleSource bad = parse("\nattachment X budget_exceeded ratio fast\n");
  ASSERT_EQ(bad.errors.size(), 1u);
  EXPECT_NE(bad.errors[0].text().find("t.cf:2"), std::string::npos) << bad.errors[0].text();
  EXPECT_NE(bad.errors[0].text().find("unknown budget 'fast'"), std::string::npos) << bad.errors[0].text();
}

TEST(RulesAttachmentBudget, MatchesAnyOrTheNamedReasons) {
  auto rs = build(
      "attachment ANY budget_exceeded\nscore ANY 1\n"
      "attachment BOMB budget_exceeded ratio bytes\nscore BOMB 1\n"
      "attachment BUSY budget_exceeded time worker\nscore BUSY 1\n");
  match::AttachmentFacts clean;
  clean.name = "a.zip";
  match::Result none = scan(*rs, {clean});
  EXPECT_FALSE(hit(none, "ANY") || hit(none, "BOMB") || hit(none, "BUSY"));

  match::AttachmentFacts bomb = clean;
  bomb.budget_exceeded = bit(mime::BudgetReason::ratio);
  match::Result r = scan(*rs, {clean, bomb});
  EXPECT_TRUE(hit(r, "ANY"));
  EXPECT_TRUE(hit(r, "BOMB"));
  EXPECT_FALSE(hit(r, "BUSY"));

  match::AttachmentFacts busy = clean;
  busy.budget_exceeded = bit(mime::BudgetReason::worker) | bit(mime::BudgetReason::depth);
  r = scan(*rs, {busy});
  EXPECT_TRUE(hit(r, "ANY"));
  EXPECT_FALSE(hit(r, "BOMB"));
  EXPECT_TRUE(hit(r, "BUSY"));
}

TEST(RulesAttachmentBudget, ReasonNamesAgreeWithTheMimeEngine) {
  ASSERT_EQ(std::size(kBudgetReasons), size_t(mime::kBudgetReasonCount));
  for (unsigned k = 0; k < mime::kBudgetReasonCount; ++k)
    EXPECT_STREQ(kBudgetReasons[k], mime::budget_reason_name(mime::BudgetReason(k))) << k;
}

TEST(RulesAttachmentBudget, BombThroughTheMimeEngineIsQuarantinedByTheShippedPack) {
  // 64 MiB of zeros as a 64 KB .tar.gz in a mail; the attachments pack as shipped.
  std::string tgz = tgz_of_zeros(64 << 20);
  std::string msg =
      "From: a@example.com\r\nSubject: logs\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
      "--z\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
      "--z\r\nContent-Type: application/gzip\r\nContent-Disposition: attachment; filename=logs.tgz\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n" + b64(tgz) + "--z--\r\n";
  mime::MimeLimits lim;
  lim.attachment.message_time_us = 600'000'000;  // the clock-driven budgets are not under test here
  lim.attachment.worker_unpacked_burst = uint64_t(1) << 50;
  mime::MimeParser p(lim);
  p.feed({reinterpret_cast<const uint8_t*>(msg.data()), msg.size()});
  p.finish();
  ASSERT_EQ(p.facts().attachments.size(), 1u);
  const mime::AttachmentFacts& a = p.facts().attachments[0];
  EXPECT_TRUE(a.exceeded(mime::BudgetReason::ratio)) << a.budget_exceeded;

  RuleSource s = parse_paths({SEKISHO_PACKS_DIR "/attachments"});
  auto rs = compile(s);
  ASSERT_TRUE(rs);
  match::Result r = scan(*rs, {project(a)});
  EXPECT_TRUE(hit(r, "SK_ATT_BOMB"));
  EXPECT_EQ(r.action, Action::quarantine);

  // The same pack lets an ordinary archive through.
  std::string small = tgz_of_zeros(100000);
  mime::AttachmentAnalyzer an(lim.attachment);
  an.begin("notes.tgz", "application/gzip", 0);
  an.feed(reinterpret_cast<const uint8_t*>(small.data()), small.size());
  mime::AttachmentFacts ok = an.finish();
  EXPECT_EQ(ok.budget_exceeded, 0u);
  EXPECT_EQ(scan(*rs, {project(ok)}).action, Action::pass);
  // A big ordinary archive that spends the bytes budget is scored, not held.
  mime::AttachmentFacts big = ok;
  big.budget_exceeded = bit(mime::BudgetReason::bytes);
  match::Result b = scan(*rs, {project(big)});
  EXPECT_TRUE(hit(b, "SK_ATT_UNPACK_LIMIT"));
  EXPECT_FALSE(hit(b, "SK_ATT_BOMB"));
  EXPECT_NE(b.action, Action::quarantine);
}
