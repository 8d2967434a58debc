// Rule language, compiler and runtime: behaviour seen from the outside.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "scanners/match/match.hpp"
#include "scanners/match/received.hpp"
#include "rules/compiler/compiler.hpp"
#include "rules/compiler/translate.hpp"
#include "rules/lang/meta.hpp"
#include "rules/lang/parser.hpp"

using namespace sekisho;
using namespace sekisho::rules;

namespace {

RuleSource parse(std::string_view text, const std::string& file = "t.cf") {
  RuleSource s;
  parse_text(s, file, text);
  finish_source(s);
  return s;
}

std::unique_ptr<match::Ruleset> build(std::string_view text, CompileReport* rep_out = nullptr) {
  RuleSource s = parse(text);
  for (auto& e : s.errors) ADD_FAILURE() << e.text();
  std::string art;
  CompileReport rep;
  std::vector<Diagnostic> errs;
  EXPECT_TRUE(compile_ruleset(s, {}, art, rep, errs));
  for (auto& e : errs) ADD_FAILURE() << e.text();
  if (rep_out) *rep_out = rep;
  std::string err;
  auto rs = match::Ruleset::load_bytes({reinterpret_cast<const uint8_t*>(art.data()), art.size()}, err);
  EXPECT_TRUE(rs) << err;
  return rs;
}

struct Msg {
  std::vector<std::array<std::string, 2>> headers;  // name, value (raw == decoded)
  std::string body, rawbody, full;
  std::vector<std::string> uris;
  std::vector<match::AttachmentFacts> atts;
  std::string mail_from = "", helo = "";
  std::vector<std::string> rcpts;
};

match::Result scan(const match::Ruleset& rs, const Msg& m, size_t chunk = 3) {
  match::Scratch scratch(rs);
  EXPECT_TRUE(scratch.ok());
  match::MessageScan s(rs, scratch);
  s.envelope(m.mail_from, m.rcpts, m.helo);
  for (auto& h : m.headers) s.header(h[0], h[1], h[1]);
  for (size_t i = 0; i < m.body.size(); i += chunk) s.body_text(match::bytes_of(std::string_view(m.body).substr(i, chunk)));
  for (size_t i = 0; i < m.rawbody.size(); i += chunk) s.rawbody(match::bytes_of(std::string_view(m.rawbody).substr(i, chunk)));
  for (size_t i = 0; i < m.full.size(); i += chunk) s.full(match::bytes_of(std::string_view(m.full).substr(i, chunk)));
  for (auto& u : m.uris) s.uri(u);
  for (auto& a : m.atts) s.attachment(a);
  return s.finish();
}

bool hit(const match::Result& r, std::string_view name, uint32_t* count = nullptr) {
  for (auto& h : r.hits)
    if (h.rule == name) {
      if (count) *count = h.count;
      return true;
    }
  return false;
}

}  // namespace

TEST(RulesParser, ErrorsCarryFileAndLine) {
  RuleSource s = parse(
      "header A Subject =~ /ok/\n"
      "\n"
      "header B Subject =~ /unclosed(/\n"
      "body C /x/q\n"
      "bogus_directive 1\n"
      "score A one\n"
      "meta D (A && \n"
      "endif\n",
      "pack.cf");
  std::vector<std::string> lines;
  for (auto& e : s.errors) lines.push_back(e.text());
  ASSERT_EQ(lines.size(), 6u) << ::testing::PrintToString(lines);
  EXPECT_EQ(lines[0].rfind("pack.cf:4: ", 0), 0u) << lines[0];  // bad modifier
  EXPECT_NE(lines[0].find("modifier"), std::string::npos);
  EXPECT_EQ(lines[1].rfind("pack.cf:5: unknown directive", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2].rfind("pack.cf:6: ", 0), 0u) << lines[2];
  EXPECT_EQ(lines[3].rfind("pack.cf:7: ", 0), 0u) << lines[3];
  EXPECT_EQ(lines[4].rfind("pack.cf:8: endif without if", 0), 0u) << lines[4];
  EXPECT_EQ(lines[5].rfind("pack.cf:3: header B: invalid regex", 0), 0u) << lines[5];
}

TEST(RulesParser, ConditionalsPluginsAndVersions) {
  RuleSource s = parse(
      "ifplugin Mail::SpamAssassin::Plugin::ReplaceTags\nbody IN1 /a/\nendif\n"
      "ifplugin Mail::SpamAssassin::Plugin::TxRep\nbody OUT1 /a/\nelse\nbody IN2 /b/\nendif\n"
      "if (version >= 3.004000)\nbody IN3 /c/\nendif\n"
      "if !plugin(Mail::SpamAssassin::Plugin::MIMEHeader)\nbody OUT2 /d/\nendif\n"
      "if can(Mail::SpamAssassin::Conf::feature_capture_rules)\nbody OUT3 /e/\nendif\n"
      "if can(Mail::SpamAssassin::Conf::feature_bug6558_free)\nbody IN4 /f/\nendif\n"
      "lang de body OUT4 /g/\n");
  EXPECT_TRUE(s.errors.empty());
  for (const char* n : {"IN1", "IN2", "IN3", "IN4"}) EXPECT_TRUE(s.index.count(n)) << n;
  for (const char* n : {"OUT1", "OUT2", "OUT3", "OUT4"}) EXPECT_FALSE(s.index.count(n)) << n;
  EXPECT_EQ(s.lang_skipped, 1u);
}

TEST(RulesParser, EvalAndNetworkRulesAreKeptByNameAndReason) {
  RuleSource s = parse(
      "header RCVD_IN_X eval:check_rbl('x', 'x.example.')\n"
      "body BODY_EVAL eval:check_stock_info()\n"
      "askdns ASK _AUTHORDOMAIN_.example.com A\n"
      "meta M RCVD_IN_X && BODY_EVAL\n"
      "meta N UNDEFINED_RULE\n");
  EXPECT_TRUE(s.errors.empty());
  auto reason = [&](const char* n) { return s.rules[s.index.at(n)].unsupported; };
  EXPECT_EQ(reason("RCVD_IN_X"), "eval:check_rbl()");
  EXPECT_EQ(reason("BODY_EVAL"), "eval:check_stock_info()");
  EXPECT_EQ(reason("ASK"), "network test: askdns");
  EXPECT_EQ(reason("M").rfind("meta depends on eval/network rule", 0), 0u);
  EXPECT_EQ(reason("N"), "meta depends on undefined rule UNDEFINED_RULE");
  for (auto& r : s.rules) EXPECT_TRUE(reason_documented(r.unsupported)) << r.unsupported;
}

TEST(RulesParser, ReplaceTags) {
  RuleSource s = parse(
      "replace_tag A (?:a|4)\nreplace_tag B (?:b|8)\nreplace_inter W1 \\W?\nreplace_post P2 {1,2}\n"
      "body OBF /<inter W1><A><B>/\nbody OBF2 /<post P2><A>x/\nreplace_rules OBF OBF2\n");
  ASSERT_TRUE(s.errors.empty());
  EXPECT_EQ(s.rules[s.index.at("OBF")].regex.source, "\\W?(?:a|4)\\W?(?:b|8)");
  EXPECT_EQ(s.rules[s.index.at("OBF2")].regex.source, "(?:a|4){1,2}x");
}

TEST(RulesParser, ListEntriesAreValidated) {
  std::string out, why;
  EXPECT_TRUE(normalise_list_entry(ListType::domains, "*.Example.COM", out, why));
  EXPECT_EQ(out, "example.com");
  EXPECT_FALSE(normalise_list_entry(ListType::domains, "bad domain", out, why));
  EXPECT_FALSE(normalise_list_entry(ListType::domains, "例え.jp", out, why));
  EXPECT_TRUE(normalise_list_entry(ListType::ip, "192.0.2.77/24", out, why));
  EXPECT_EQ(out, "192.0.2.0/24");
  EXPECT_FALSE(normalise_list_entry(ListType::ip, "300.1.1.1", out, why));
  EXPECT_FALSE(normalise_list_entry(ListType::sha256, "abc", out, why));
}

TEST(RulesParser, BadEntryInAPackListFailsWithFileAndLine) {
  auto dir = std::filesystem::temp_directory_path() / ("sk-rules-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "p.cf") << "list L domains l.txt\nlisted R from_domain L\n";
  std::ofstream(dir / "l.txt") << "# comment\ngood.example\nbad..example\n";
  RuleSource s = parse_paths({dir.string()});
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_EQ(s.errors[0].text().rfind((dir / "l.txt").string() + ":3: ", 0), 0u) << s.errors[0].text();
  std::filesystem::remove_all(dir);
}

TEST(RulesParser, ShippedPacksCheckClean) {
  const char* root = getenv("SEKISHO_SOURCE_ROOT");
  if (!root) GTEST_SKIP() << "SEKISHO_SOURCE_ROOT not set";
  RuleSource s = parse_paths({std::string(root) + "/rules/packs"});
  for (auto& e : s.errors) ADD_FAILURE() << e.text();
  EXPECT_GT(s.rules.size(), 20u);
  for (auto& r : s.rules) EXPECT_TRUE(r.unsupported.empty()) << r.name << ": " << r.unsupported;
}

TEST(RulesParser, HostileInputNeverCrashes) {
  std::mt19937 rng(12345);
  const std::string alphabet = "header body meta score tflags ifplugin if else endif /m{}()[]|\\=~!&<>:#\n \t\"'0123456789ABC_\xe3\x81\x82";
  for (int i = 0; i < 300; ++i) {
    std::string text;
    size_t n = rng() % 400;
    for (size_t k = 0; k < n; ++k) {
      if (rng() % 8 == 0) {
        static const char* words[] = {"header X Subject =~ ", "body Y ", "meta Z ", "(", ")", "&&", "score X ", "if ", "endif\n", "\n", "/", "m{", "[if-unset: x]", "replace_tag A ", "<A>", "replace_rules Y\n"};
        text += words[rng() % 16];
      } else {
        text += alphabet[rng() % alphabet.size()];
      }
    }
    RuleSource s = parse(text, "fuzz.cf");
    for (auto& e : s.errors) EXPECT_EQ(e.text().rfind("fuzz.cf:", 0), 0u) << e.text();
    if (s.errors.empty()) {
      std::string art;
      CompileReport rep;
      std::vector<Diagnostic> errs;
      compile_ruleset(s, {}, art, rep, errs);
    }
  }
}

TEST(RulesMeta, PerlSemantics) {
  std::vector<MetaInstr> code;
  uint32_t depth = 0;
  std::string err;
  std::map<std::string, uint32_t> idx{{"A", 0}, {"B", 1}, {"C", 2}};
  auto resolve = [&](std::string_view n) { return idx.at(std::string(n)); };
  double values[3] = {1, 0, 3};
  std::vector<double> stack(16);
  auto eval = [&](const char* e) {
    code.clear();
    EXPECT_TRUE(compile_meta(e, resolve, code, depth, err)) << err;
    return eval_meta(code.data(), code.size(), values, stack.data());
  };
  EXPECT_EQ(eval("A && !B"), 1);
  EXPECT_EQ(eval("A && B"), 0);
  EXPECT_EQ(eval("A + B + C > 3"), 1);
  EXPECT_EQ(eval("(A || B) && C >= 3"), 1);
  EXPECT_EQ(eval("C * 2 - 1"), 5);
  EXPECT_EQ(eval("!(A)"), 0);
  EXPECT_FALSE(compile_meta("A && (B", resolve, code, depth, err));
  EXPECT_FALSE(compile_meta("rules_matching(A)", resolve, code, depth, err));
}

TEST(RulesTranslate, PerlismsBecomeHyperscan) {
  Translation t = translate_regex("a*+b(?>cd)\\z", "i", false);
  EXPECT_TRUE(t.superset);
  EXPECT_EQ(t.pattern, "a*b(?:cd)\\z");
  t = translate_regex("(\\w)\\1", "", false);
  EXPECT_TRUE(t.prefilter);
  t = translate_regex("foo(?=bar)", "", false);
  EXPECT_TRUE(t.prefilter);
  t = translate_regex("a b # comment\n c", "x", false);
  EXPECT_EQ(t.pattern, "abc");
  t = translate_regex("\\Qa.b\\E", "", false);
  EXPECT_EQ(t.pattern, "a\\.b");
  t = translate_regex("(?<year>\\d{4})", "", false);
  EXPECT_EQ(t.pattern, "(?:\\d{4})");
  t = translate_regex("x(?R)", "", false);
  EXPECT_FALSE(t.refused.empty());
}

TEST(RulesCompiler, SamePacksGiveByteIdenticalArtifacts) {
  const char* text =
      "header A Subject =~ /hello/i\nbody B /(\\w+) \\1/\nuri C /example\\.com/\nmeta D A && B\n"
      "list L domains inline example.com example.org\nlisted E from_domain L\nbrand X /xbrand/i x.example\nspoof S\n";
  std::string a1, a2;
  CompileReport r1, r2;
  std::vector<Diagnostic> e;
  RuleSource s1 = parse(text), s2 = parse(text);
  ASSERT_TRUE(compile_ruleset(s1, {}, a1, r1, e));
  ASSERT_TRUE(compile_ruleset(s2, {}, a2, r2, e));
  EXPECT_EQ(a1, a2);
  EXPECT_EQ(r1.sha256, r2.sha256);
  EXPECT_EQ(r1.pcre_confirmed, 1u);  // the back-reference
  // A different source gives a different hash.
  std::string a3;
  CompileReport r3;
  RuleSource s3 = parse(std::string(text) + "body F /x/\n");
  ASSERT_TRUE(compile_ruleset(s3, {}, a3, r3, e));
  EXPECT_NE(r1.sha256, r3.sha256);
}

TEST(RulesArtifact, CorruptArtifactsAreRefused) {
  std::string art;
  CompileReport rep;
  std::vector<Diagnostic> e;
  RuleSource s = parse("header A Subject =~ /x/\nbody B /y/\n");
  ASSERT_TRUE(compile_ruleset(s, {}, art, rep, e));
  std::string err;
  EXPECT_FALSE(match::Ruleset::load_bytes(match::bytes_of(std::string_view(art).substr(0, art.size() / 2)), err));
  EXPECT_FALSE(err.empty());
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string bad = art;
    for (int k = 0; k < 4; ++k) bad[8 + rng() % (bad.size() - 8)] ^= static_cast<char>(1 + rng() % 255);
    auto rs = match::Ruleset::load_bytes(match::bytes_of(bad), err);  // must not crash
    if (rs) {
      match::Scratch sc(*rs);
      if (sc.ok()) {
        match::MessageScan m(*rs, sc);
        m.header("Subject", "x", "x");
        m.finish();
      }
    }
  }
}

TEST(RulesRuntime, HeaderBodyUriAndMeta) {
  auto rs = build(
      "header SUBJ Subject =~ /\\bwin(?:ner)?\\b/i\n"
      "header NOT_TO To !~ /@example\\.jp$/\n"
      "header UNSET X-Missing =~ /^dflt$/ [if-unset: dflt]\n"
      "header FROM_ADDR From:addr =~ /^bob\\@evil\\.example$/\n"
      "header FROM_NAME From:name =~ /^Bob$/\n"
      "header ALLH ALL =~ /^X-Flag: yes$/m\n"
      "header HAS_FLAG exists:X-Flag\n"
      "body BODY_LINE /^prize line$/\n"
      "body SUBJ_IN_BODY /^You are a winner$/\n"
      "body NOSUBJ /winner/\ntflags NOSUBJ nosubject\n"
      "body BACKREF /(\\w{4}) \\1/\n"
      "rawbody RAW /=3D/\n"
      "full FULL /^Subject: You/m\n"
      "uri URI /evil\\.example\\/login/\n"
      "body MULTI /ab/\ntflags MULTI multiple maxhits=3\n"
      "meta META SUBJ && (BODY_LINE || URI)\n"
      "meta ARITH (SUBJ + BODY_LINE + URI + NOT_TO) >= 4\n"
      "score SUBJ 1.5\n");
  Msg m;
  m.headers = {{"From", "Bob <bob@evil.example>"}, {"To", "someone@example.com"}, {"Subject", "You are a winner"}, {"X-Flag", "yes"}};
  m.body = "first\nprize line\nlong long ago\nab ab ab ab ab\n";
  m.rawbody = "a=3Db\n";
  m.full = "Subject: You are a winner\n\nbody\n";
  m.uris = {"http://evil.example/login?x=1"};
  auto r = scan(*rs, m);
  for (const char* n : {"SUBJ", "NOT_TO", "UNSET", "FROM_ADDR", "FROM_NAME", "ALLH", "HAS_FLAG", "BODY_LINE", "SUBJ_IN_BODY",
                        "BACKREF", "RAW", "FULL", "URI", "MULTI", "META", "ARITH"})
    EXPECT_TRUE(hit(r, n)) << n;
  EXPECT_FALSE(hit(r, "NOSUBJ"));  // "winner" is only in the Subject line
  uint32_t c = 0;
  ASSERT_TRUE(hit(r, "MULTI", &c));
  EXPECT_EQ(c, 3u);  // five matches, maxhits=3
  EXPECT_GT(r.score, 1.5);

  Msg clean;
  clean.headers = {{"From", "alice@example.jp"}, {"To", "x@example.jp"}, {"Subject", "lunch"}, {"X-Missing", "other"}};
  clean.body = "see you at noon\n";
  auto r2 = scan(*rs, clean);
  EXPECT_TRUE(r2.hits.empty()) << r2.hits.size() << " " << (r2.hits.empty() ? "" : std::string(r2.hits[0].rule));
  EXPECT_EQ(r2.score, 0);
}

TEST(RulesRuntime, ChunkingDoesNotChangeTheResult) {
  auto rs = build("body A /alpha\\s+beta/\nbody B /(?:gam)+ma$/\nbody C /(\\w+)-\\1/\nrawbody D /x{3,}/\nfull E /^To: a$/m\n");
  Msg m;
  m.headers = {{"Subject", "s"}};
  m.body = "alpha \n  beta\ngamgamma\nfoo-foo\n";
  m.rawbody = "..xxxx..";
  m.full = "To: a\nSubject: s\n\nbody";
  std::vector<std::string> base;
  for (size_t chunk : {1, 2, 5, 7, 1000}) {
    auto r = scan(*rs, m, chunk);
    std::vector<std::string> names;
    for (auto& h : r.hits) names.emplace_back(h.rule);
    if (base.empty()) base = names;
    EXPECT_EQ(names, base) << "chunk " << chunk;
  }
  EXPECT_EQ(base.size(), 5u);
}

TEST(RulesRuntime, ListsBrandsClassesAttachmentsAndActions) {
  auto rs = build(
      "list BL domains inline bad.example\nlist FM domains inline freemail.example\n"
      "list MK domains inline mk.example\nlist H sha256 inline " + std::string(64, 'a') + "\n"
      "list IPS ip inline 192.0.2.0/24\nlist SH domains inline bit.ly\n"
      "sender_class P BL\nsender_class H MK\nsender_class J FM\nsender_class G brands\n"
      "brand ACME /acme/i acme.example\nspoof SPOOF\nscore SPOOF 3\n"
      "listed BLOCKED from_domain BL\naction BLOCKED reject\n"
      "listed HASH attachment_sha256 H\nlisted SHORT uri_host SH\nlisted IP client_ip IPS\n"
      "attachment MAC macros\nattachment DBL name =~ /\\.pdf\\.exe$/i\naction DBL quarantine\ncategory DBL malware\n"
      "envelope HELO_IP helo =~ /^\\d+\\.\\d+\\.\\d+\\.\\d+$/\nenvelope RCPT rcpt_to =~ /\\@victim\\.example$/\n"
      "threshold tag 2\nthreshold quarantine 50\n");
  auto one = [&](const std::string& from, auto&& more) {
    match::Scratch sc(*rs);
    match::MessageScan s(*rs, sc);
    more(s);
    s.header("From", from, from);
    return s.finish();
  };
  auto nothing = [](match::MessageScan&) {};
  EXPECT_EQ(one("x@bad.example", nothing).sender_class, SenderClass::P);
  EXPECT_EQ(one("x@sub.bad.example", nothing).action, Action::reject);
  EXPECT_EQ(one("news@mk.example", nothing).sender_class, SenderClass::H);
  EXPECT_EQ(one("a@freemail.example", nothing).sender_class, SenderClass::J);
  EXPECT_EQ(one("a@mail.acme.example", nothing).sender_class, SenderClass::G);
  EXPECT_EQ(one("a@shop.co.jp", nothing).sender_class, SenderClass::E);
  EXPECT_EQ(one("a@other.example", nothing).sender_class, SenderClass::D);
  auto spoof = one("\"ACME Support\" <help@acme-help.example>", nothing);
  EXPECT_TRUE(hit(spoof, "SPOOF"));
  EXPECT_EQ(spoof.action, Action::tag);  // score 3 >= tag 2
  EXPECT_FALSE(hit(one("\"ACME Support\" <help@acme.example>", nothing), "SPOOF"));
  std::string sha(64, 'a');
  auto r = one("a@other.example", [&](match::MessageScan& s) {
    std::vector<std::string> rc{"boss@victim.example"};
    s.envelope("<a@other.example>", rc, "10.1.2.3");
    s.client_ip("192.0.2.9");
    s.uri("https://bit.ly/xyz");
    match::AttachmentFacts f;
    f.name = "invoice.PDF.exe";
    f.sha256 = sha;
    f.macros = true;
    s.attachment(f);
  });
  for (const char* n : {"HASH", "SHORT", "IP", "MAC", "DBL", "HELO_IP", "RCPT"}) EXPECT_TRUE(hit(r, n)) << n;
  EXPECT_EQ(r.action, Action::quarantine);
  ASSERT_EQ(r.categories.size(), 1u);
  EXPECT_EQ(r.categories[0], "malware");
}

TEST(RulesRuntime, ScratchIsReusedAcrossMessages) {
  auto rs = build("body A /needle/\nheader B Subject =~ /x/\n");
  match::Scratch sc(*rs);
  for (int i = 0; i < 50; ++i) {
    match::MessageScan s(*rs, sc);
    s.header("Subject", i % 2 ? "x" : "y", i % 2 ? "x" : "y");
    if (i % 3 == 0) s.body_text(match::bytes_of("a needle here"));
    auto r = s.finish();
    EXPECT_EQ(hit(r, "A"), i % 3 == 0) << i;
    EXPECT_EQ(hit(r, "B"), i % 2 == 1) << i;
  }
}

namespace {
// The four pseudo-headers for Received values given newest first.
match::Relays relays_of(const std::vector<std::string>& received) {
  match::RelayParser p;
  match::Relays r;
  r.reserve(64 * 1024);
  p.build([&](size_t i, std::string_view& v) {
    if (i >= received.size()) return false;
    v = received[i];
    return true;
  }, r);
  return r;
}
}  // namespace

TEST(RulesRelays, CommonReceivedFormatsAsSpamAssassinPrintsThem) {
  struct Case {
    const char* received;
    const char* relay;
  } cases[] = {
      // Sendmail
      {"from mail1.example.com (host66.example.com [65.217.159.66] (may be forged)) by dogma.example.org "
       "(8.11.6/8.11.6) with ESMTP id h2F0c2x31856 for <jm@example.org>; Sat, 15 Mar 2003 00:38:03 GMT",
       "[ ip=65.217.159.66 rdns=host66.example.com helo=mail1.example.com by=dogma.example.org ident= envfrom= "
       "intl=0 id=h2F0c2x31856 auth= msa=0 ]"},
      // Postfix, no rDNS
      {"from nologic.org (unknown [217.114.163.124])\n\tby lugh.example.org (Postfix) with SMTP id 8E822340D5\n"
       "\tfor <ilug@example.ie>; Mon, 7 Oct 2002 09:42:29 +0100 (IST)",
       "[ ip=217.114.163.124 rdns= helo=nologic.org by=lugh.example.org ident= envfrom= intl=0 id=8E822340D5 auth= msa=0 ]"},
      // qmail
      {"from unknown (HELO terpsichore.example.com) (jdavid@[216.254.40.70]) (envelope-sender <jdavid@example.com>) "
       "by mail13.example.net (qmail-ldap-1.03) with SMTP for <jm@example.org>; 12 Feb 2003 18:23:19 -0000",
       "[ ip=216.254.40.70 rdns= helo=terpsichore.example.com by=mail13.example.net ident=jdavid "
       "envfrom=jdavid@example.com intl=0 id= auth= msa=0 ]"},
      {"from x1-6.example.dk (benelli@80.167.158.170) by totor.example.net with SMTP; 5 Nov 2003 23:18:42 -0000",
       "[ ip=80.167.158.170 rdns=x1-6.example.dk helo=x1-6.example.dk by=totor.example.net ident=benelli envfrom= "
       "intl=0 id= auth= msa=0 ]"},
      // Exim
      {"from dsl092.example.net ([66.92.72.213] helo=blazing.example.org) by list1.example.net with esmtp "
       "(Exim 3.31-VA-mm2 #1 (Debian)) id 18lyuU-0007TI-00; Thu, 20 Feb 2003 14:11:18 -0800",
       "[ ip=66.92.72.213 rdns=dsl092.example.net helo=blazing.example.org by=list1.example.net ident= envfrom= "
       "intl=0 id=18lyuU-0007TI-00 auth= msa=0 ]"},
      {"from [61.174.163.26] (helo=host) by list1.example.net with smtp (Exim 3.31) id 18t2z0-0001NX-00",
       "[ ip=61.174.163.26 rdns= helo=host by=list1.example.net ident= envfrom= intl=0 id=18t2z0-0001NX-00 auth= msa=0 ]"},
      // Microsoft SMTPSVC, authenticated submission, a bracketed HELO
      {"from tthompson ([217.35.105.172] unverified) by mail.example.com with Microsoft SMTPSVC(5.0.2195.5329); "
       "Tue, 11 Mar 2003 13:23:01 +0000",
       "[ ip=217.35.105.172 rdns= helo=tthompson by=mail.example.com ident= envfrom= intl=0 id= auth= msa=0 ]"},
      {"from [192.0.2.9] (p5.example.net [198.51.100.7]) by smtp.example.com (Postfix) with ESMTPSA id 1A2B3C",
       // authenticated: trusted and internal (intl=1)
       "[ ip=198.51.100.7 rdns=p5.example.net helo=!192.0.2.9! by=smtp.example.com ident= envfrom= intl=1 id=1A2B3C "
       "auth=ESMTPSA msa=0 ]"},
  };
  for (const auto& c : cases) {
    auto r = relays_of({c.received});
    EXPECT_EQ(r.untrusted + r.trusted, c.relay) << c.received;
  }
  // Local hand-overs and fetcher hops give no relay.
  EXPECT_EQ(relays_of({"(qmail 4141 invoked by uid 104); 22 Aug 2002 15:25:57 -0000"}).relays, 0u);
  EXPECT_EQ(relays_of({"from andrew by trinity.example.net with local (Exim 4.12) id 18xeL6-000Dn1-00"}).relays, 0u);
  EXPECT_EQ(relays_of({"by oak.example.cz (Postfix, from userid 1002) id DABBD1BED3"}).relays, 0u);
}

TEST(RulesRelays, TrustIsInferredFromPrivateAddressesAndAuthentication) {
  auto r = relays_of({
      "from localhost (localhost [127.0.0.1]) by mx.example.org (Postfix) with ESMTP id A1",
      "from gw.example.org (gw.example.org [10.1.2.3]) by localhost (Postfix) with ESMTP id A2",
      "from evil.example (dyn-1-2-3-4.example.net [203.0.113.4]) by gw.example.org (Postfix) with SMTP id A3",
      "from inner (inner [192.168.1.5]) by evil.example (Postfix) with SMTP id A4",
  });
  EXPECT_EQ(r.relays, 4u);
  // The two newest hops come from private addresses: trusted and internal.
  EXPECT_NE(r.trusted.find("ip=127.0.0.1 "), std::string::npos);
  EXPECT_NE(r.trusted.find("ip=10.1.2.3 "), std::string::npos);
  EXPECT_NE(r.internal.find("intl=1"), std::string::npos);
  // From the first public address on, everything is untrusted, even a private one after it.
  EXPECT_EQ(r.untrusted.rfind("[ ip=203.0.113.4 ", 0), 0u);
  EXPECT_NE(r.untrusted.find("ip=192.168.1.5 "), std::string::npos);
  EXPECT_EQ(r.untrusted, r.external);
  EXPECT_EQ(r.external.find("intl=1"), std::string::npos);
  EXPECT_EQ(r.last_trusted, 1);
}

TEST(RulesRelays, HostileReceivedValuesNeverCrash) {
  std::mt19937 rng(7);
  const char* pieces[] = {"from ", "by ", "(", ")", "[", "]", "1.2.3.4", "::ffff:10.0.0.1", "helo=", "HELO ", "@",
                          " with ", "ESMTPA", "Exim", " id ", "<", ">", ";", "\n\t", "IPv6:fe80::1%eth0", "\xff", " "};
  match::RelayParser p(512, 8, 4096);
  match::Relays out;
  out.reserve(4096);
  for (int n = 0; n < 3000; ++n) {
    std::vector<std::string> rc(rng() % 12);
    for (auto& v : rc) {
      size_t len = rng() % 60;
      for (size_t i = 0; i < len; ++i) v += pieces[rng() % (sizeof pieces / sizeof *pieces)];
    }
    rc.push_back(std::string(100000, '['));
    p.build([&](size_t i, std::string_view& v) {
      if (i >= rc.size()) return false;
      v = rc[i];
      return true;
    }, out);
    EXPECT_LE(out.untrusted.size(), 4096u);
  }
}

TEST(RulesRuntime, RelayPseudoHeadersAndAllExternal) {
  auto rs = build(
      "header RDNS_NONE X-Spam-Relays-External =~ /^[^\\]]+ rdns= /\n"
      "header DYN X-Spam-Relays-Untrusted =~ /^[^\\]]+ rdns=dyn-/\n"
      "header SINGLE X-Spam-Relays-External =~ /^\\[ [^\\]]+ \\]$/\n"
      "header TRUSTED_LOCAL X-Spam-Relays-Trusted =~ /ip=127\\.0\\.0\\.1 /\n"
      "header EXT_HAS_RCVD ALL-EXTERNAL =~ /^Received: from evil/m\n"
      "header EXT_NO_TOP ALL-EXTERNAL =~ /^X-Top:/m\n"
      "header TRUSTED_TOP ALL-TRUSTED =~ /^X-Top:/m\n");
  Msg m;
  m.headers = {{"X-Top", "1"},
               {"Received", "from localhost (localhost [127.0.0.1]) by mx.example.org (Postfix) with ESMTP id A1"},
               {"Received", "from evil.example (dyn-1-2-3-4.example.net [203.0.113.4]) by mx.example.org (Postfix) with SMTP id A3"},
               {"Subject", "x"}};
  auto r = scan(*rs, m);
  for (const char* n : {"DYN", "SINGLE", "TRUSTED_LOCAL", "EXT_HAS_RCVD", "TRUSTED_TOP"}) EXPECT_TRUE(hit(r, n)) << n;
  EXPECT_FALSE(hit(r, "RDNS_NONE"));
  EXPECT_FALSE(hit(r, "EXT_NO_TOP"));
  Msg none;
  none.headers = {{"Subject", "no relays"}};
  auto r2 = scan(*rs, none);
  EXPECT_TRUE(r2.hits.empty());
}
