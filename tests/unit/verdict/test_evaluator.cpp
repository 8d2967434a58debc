// The one evaluator (scanners/verdict): the order of its stages (smuggling,
// envelope, content, overflow, MIME caps), what each stage puts in the
// verdict, and that later stages only make a passing verdict stricter.
#include <gtest/gtest.h>

#include "rules/compiler/compiler.hpp"
#include "rules/lang/parser.hpp"
#include "scanners/verdict/evaluator.hpp"

using namespace sekisho;
using verdict::Action;
using verdict::Stage;

namespace {

std::unique_ptr<match::Ruleset> build(std::string_view text) {
  rules::RuleSource s;
  rules::parse_text(s, "t.cf", text);
  rules::finish_source(s);
  for (auto& e : s.errors) ADD_FAILURE() << e.text();
  std::string art;
  rules::CompileReport rep;
  std::vector<rules::Diagnostic> errs;
  EXPECT_TRUE(rules::compile_ruleset(s, {}, art, rep, errs));
  for (auto& e : errs) ADD_FAILURE() << e.text();
  std::string err;
  auto rs = match::Ruleset::load_bytes({reinterpret_cast<const uint8_t*>(art.data()), art.size()}, err);
  EXPECT_TRUE(rs) << err;
  return rs;
}

// One message through the MIME engine into a collector, as the pipeline does.
struct Parsed {
  explicit Parsed(std::string_view text, mime::CollectLimits lim = {}) : collector(lim), parser({}, &collector) {
    auto b = match::bytes_of(text);
    parser.feed(b);
    collector.message_bytes(b);
    parser.finish();
  }
  mime::ContentCollector collector;
  mime::MimeParser parser;
};

struct Case {
  message::SessionFacts session;
  message::Transaction txn;
  verdict::Inputs in(const Parsed* p = nullptr) {
    verdict::Inputs i;
    i.session = &session;
    i.txn = &txn;
    i.client_ip = "192.0.2.7";
    if (p) {
      i.content = &p->collector;
      i.mime = &p->parser.facts();
    }
    return i;
  }
};

constexpr std::string_view kPlain = "From: a@x.example\r\nSubject: hello\r\n\r\nplain words\r\n";
constexpr std::string_view kWin = "From: a@x.example\r\nSubject: you won a prize\r\n\r\nclaim it\r\n";

TEST(Evaluator, NothingDecidesPass) {
  Case c;
  c.txn.mail_from = "a@x.example";
  c.txn.rcpt_to = {"b@y.example"};
  verdict::Verdict v = verdict::evaluate({}, {}, c.in());
  EXPECT_EQ(v.action, Action::pass);
  EXPECT_EQ(v.stage, Stage::none);
  EXPECT_TRUE(v.rule.empty());
  EXPECT_FALSE(v.scanned);
}

TEST(Evaluator, SmugglingComesFirstUnlessPassed) {
  Case c;
  c.txn.mail_from = "a@x.example";
  c.txn.bare_lf_end = true;
  verdict::Policy p;
  p.envelope.push_back({"allow_all", "", "", Action::pass, 1});
  verdict::Verdict v = verdict::evaluate(p, {}, c.in());
  EXPECT_EQ(v.action, Action::reject);
  EXPECT_EQ(v.stage, Stage::smuggling);
  EXPECT_EQ(v.rule, "smtp_smuggling");
  p.smuggling = Action::tempfail;
  EXPECT_EQ(verdict::evaluate(p, {}, c.in()).action, Action::tempfail);
  p.smuggling = Action::pass;  // the next stage decides
  v = verdict::evaluate(p, {}, c.in());
  EXPECT_EQ(v.stage, Stage::envelope);
  EXPECT_EQ(v.rule, "allow_all");
}

TEST(Evaluator, FirstMatchingEnvelopeRuleDecides) {
  verdict::Policy p;
  p.envelope.push_back({"null_sender", "<>", "", Action::tempfail, 1});
  p.envelope.push_back({"spammer", "*@SPAM.example", "", Action::reject, 2});
  p.envelope.push_back({"hold_ceo", "", "ceo@*", Action::quarantine, 3});
  Case c;
  c.txn.mail_from = "x@spam.example";  // globs are case-insensitive
  c.txn.rcpt_to = {"ceo@corp.example"};
  verdict::Verdict v = verdict::evaluate(p, {}, c.in());
  EXPECT_EQ(v.action, Action::reject);
  EXPECT_EQ(v.rule, "spammer");
  c.txn.mail_from = "";
  EXPECT_EQ(verdict::evaluate(p, {}, c.in()).rule, "null_sender") << "the null sender matches <>";
  c.txn.mail_from = "ok@good.example";
  c.txn.rcpt_to.clear();
  EXPECT_EQ(verdict::evaluate(p, {}, c.in()).action, Action::pass);
  c.txn.rcpt_pending = {"ceo@corp.example"};  // sent, reply not seen: still judged
  v = verdict::evaluate(p, {}, c.in());
  EXPECT_EQ(v.action, Action::quarantine);
  EXPECT_EQ(v.stage, Stage::envelope);
}

TEST(Evaluator, EnvelopeRuleComesBeforeContent) {
  auto rs = build("body WIN /won a prize/i\nscore WIN 10\n");
  match::Scratch scratch(*rs);
  verdict::Policy p;
  p.envelope.push_back({"trusted", "*@x.example", "", Action::pass, 1});
  Parsed msg(kWin);
  Case c;
  c.txn.mail_from = "a@x.example";
  verdict::Verdict v = verdict::evaluate(p, {rs.get(), &scratch}, c.in(&msg));
  EXPECT_EQ(v.action, Action::pass);
  EXPECT_EQ(v.rule, "trusted");
  EXPECT_FALSE(v.scanned) << "an envelope rule decides without a content scan";
}

TEST(Evaluator, ContentScanFillsFindingsAndDecides) {
  auto rs = build(
      "body WIN /won a prize/i\nscore WIN 3\n"
      "header SUBJ_WIN Subject =~ /prize/\nscore SUBJ_WIN 4\n"
      "decide SUBJ_WIN reject\nreply SUBJ_WIN prize mail refused\n");
  match::Scratch scratch(*rs);
  Parsed win(kWin), plain(kPlain);
  Case c;
  c.txn.mail_from = "a@x.example";
  c.txn.rcpt_to = {"b@y.example"};
  verdict::Verdict v = verdict::evaluate({}, {rs.get(), &scratch}, c.in(&win));
  EXPECT_TRUE(v.scanned);
  EXPECT_EQ(v.action, Action::reject);
  EXPECT_EQ(v.stage, Stage::content);
  EXPECT_EQ(v.rule, "SUBJ_WIN");
  EXPECT_EQ(v.reply, "prize mail refused");
  EXPECT_DOUBLE_EQ(v.score, 7);
  ASSERT_EQ(v.rules_hit.size(), 2u);
  EXPECT_EQ(v.sender_class.size(), 1u);
  v = verdict::evaluate({}, {rs.get(), &scratch}, c.in(&plain));
  EXPECT_EQ(v.action, Action::pass);
  EXPECT_TRUE(v.rules_hit.empty());
  EXPECT_TRUE(v.rule.empty());
}

TEST(Evaluator, TagDeliversWithItsRule) {
  auto rs = build("body WIN /won a prize/i\nscore WIN 1\ndecide WIN tag\n");
  match::Scratch scratch(*rs);
  Parsed win(kWin);
  Case c;
  verdict::Verdict v = verdict::evaluate({}, {rs.get(), &scratch}, c.in(&win));
  EXPECT_EQ(v.action, Action::tag);
  EXPECT_TRUE(verdict::delivers(v.action));
  EXPECT_EQ(v.rule, "WIN");
}

TEST(Evaluator, OverflowPolicyOnlyTightensAPass) {
  auto rs = build("body WIN /won a prize/i\nscore WIN 1\n");
  match::Scratch scratch(*rs);
  mime::CollectLimits tiny;
  tiny.message_bytes = 16;
  Parsed big(kPlain, tiny);
  ASSERT_TRUE(big.collector.truncated());
  Case c;
  verdict::Policy p;
  verdict::Verdict v = verdict::evaluate(p, {rs.get(), &scratch}, c.in(&big));
  EXPECT_EQ(v.action, Action::pass) << "fail-open by default: what was kept is scanned";
  EXPECT_TRUE(v.content_truncated);
  p.overflow = Action::tempfail;
  v = verdict::evaluate(p, {rs.get(), &scratch}, c.in(&big));
  EXPECT_EQ(v.action, Action::tempfail);
  EXPECT_EQ(v.stage, Stage::overflow);
  EXPECT_EQ(v.rule, "scan_overflow");
}

TEST(Evaluator, MimeOutcomeIsPolicy) {
  mime::MessageFacts f;
  EXPECT_EQ(verdict::mime_outcome(f), verdict::MimeOutcome::ok);
  f.missing_close_boundary = 1;
  EXPECT_EQ(verdict::mime_outcome(f), verdict::MimeOutcome::malformed);
  f.parts_exceeded = 1;
  EXPECT_EQ(verdict::mime_outcome(f), verdict::MimeOutcome::limit);
  f.depth_exceeded = 1;
  EXPECT_EQ(verdict::mime_outcome(f), verdict::MimeOutcome::nesting);

  // 20 nested multiparts: beyond the engine's depth cap of 16.
  std::string deep = "From: a@x.example\r\nSubject: deep\r\n";
  for (int i = 0; i < 20; ++i)
    deep += "Content-Type: multipart/mixed; boundary=\"b" + std::to_string(i) + "\"\r\n\r\n--b" + std::to_string(i) + "\r\n";
  deep += "Content-Type: text/plain\r\n\r\nhidden\r\n";
  Parsed msg(deep);
  ASSERT_EQ(verdict::mime_outcome(msg.parser.facts()), verdict::MimeOutcome::nesting);
  Case c;
  verdict::Policy p;
  EXPECT_EQ(verdict::evaluate(p, {}, c.in(&msg)).action, Action::pass) << "default: scan what was parsed";
  p.mime_nesting = Action::quarantine;
  verdict::Verdict v = verdict::evaluate(p, {}, c.in(&msg));
  EXPECT_EQ(v.action, Action::quarantine);
  EXPECT_EQ(v.stage, Stage::mime);
  EXPECT_EQ(v.rule, "mime_nesting");
  p.mime_malformed = Action::reject;  // a different outcome's policy does not apply
  p.mime_nesting = Action::pass;
  EXPECT_EQ(verdict::evaluate(p, {}, c.in(&msg)).action, Action::pass);
}

TEST(Evaluator, ActionNamesRoundTrip) {
  for (Action a : {Action::pass, Action::tag, Action::quarantine, Action::reject, Action::tempfail}) {
    Action b = Action::pass;
    ASSERT_TRUE(verdict::action_from_name(verdict::action_name(a), b));
    EXPECT_EQ(a, b);
  }
  Action b;
  EXPECT_FALSE(verdict::action_from_name("drop", b));
  EXPECT_EQ(verdict::host_of("[2001:db8::1]:25"), "2001:db8::1");
  EXPECT_EQ(verdict::host_of("192.0.2.1:587"), "192.0.2.1");
}

}  // namespace
