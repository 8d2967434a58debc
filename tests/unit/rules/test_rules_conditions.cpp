// The rule language's policy conditions (rules/README.md, "Policy
// conditions"): compare, count, classed, scored, listed rcpt_address and
// counts, decide and reply. Each is compiled and run on messages it must and
// must not catch.
#include <gtest/gtest.h>

#include <array>

#include "scanners/match/match.hpp"
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

std::unique_ptr<match::Ruleset> build(std::string_view text) {
  RuleSource s = parse(text);
  for (auto& e : s.errors) ADD_FAILURE() << e.text();
  std::string art;
  CompileReport rep;
  std::vector<Diagnostic> errs;
  EXPECT_TRUE(compile_ruleset(s, {}, art, rep, errs));
  for (auto& e : errs) ADD_FAILURE() << e.text();
  for (auto& [rule, why] : rep.refused) ADD_FAILURE() << rule << ": " << why;
  std::string err;
  auto rs = match::Ruleset::load_bytes({reinterpret_cast<const uint8_t*>(art.data()), art.size()}, err);
  EXPECT_TRUE(rs) << err;
  return rs;
}

struct Msg {
  std::string mail_from;
  std::vector<std::string> rcpts;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string client;
};

// The rule values (hit counts, 0/1 for metas) by name, and the result.
struct Seen {
  match::Result result;
  std::vector<double> values;
  const match::Ruleset* rs = nullptr;
  double operator[](std::string_view name) const {
    uint32_t i = rs->find(name);
    EXPECT_NE(i, kNone) << name;
    return i == kNone ? -1 : values[i];
  }
  bool reported(std::string_view name) const {
    for (auto& h : result.hits)
      if (h.rule == name) return true;
    return false;
  }
};

Seen run(const match::Ruleset& rs, const Msg& m) {
  match::Scratch sc(rs);
  EXPECT_TRUE(sc.ok());
  match::MessageScan s(rs, sc);
  s.envelope(m.mail_from, m.rcpts, "helo.example");
  if (!m.client.empty()) s.client_ip(m.client);
  for (auto& [n, v] : m.headers) s.header(n, v, v);
  s.body_text(match::bytes_of(m.body));
  Seen out;
  out.rs = &rs;
  s.finish(out.result, out.values);
  return out;
}

}  // namespace

TEST(RulesConditions, CompareFromWithEnvelopeSenderAndReplyTo) {
  auto rs = build(
      "compare FROM_NE_ENV_ADDR from_address != envelope_from_address\n"
      "compare FROM_NE_ENV_DOM from_domain != envelope_from_domain\n"
      "compare FROM_EQ_ENV from_address == envelope_from_address\n"
      "compare FROM_NE_RT from_address != reply_to_address\n"
      "compare FROM_NE_RT_DOM from_domain != reply_to_domain\n");
  // Same address, different case and angle brackets: equal.
  Seen a = run(*rs, {"<Alice@Example.COM>", {"bob@corp.example"}, {{"From", "Alice <alice@example.com>"}}});
  EXPECT_EQ(a["FROM_NE_ENV_ADDR"], 0);
  EXPECT_EQ(a["FROM_NE_ENV_DOM"], 0);
  EXPECT_EQ(a["FROM_EQ_ENV"], 1);
  EXPECT_EQ(a["FROM_NE_RT"], 0) << "no Reply-To: nothing to compare";
  // Same domain, other mailbox (a bounce address): address differs, domain does not.
  Seen b = run(*rs, {"bounce-123@example.com", {"bob@corp.example"},
                     {{"From", "\"Shop\" <news@example.com>"}, {"Reply-To", "support@example.com"}}});
  EXPECT_EQ(b["FROM_NE_ENV_ADDR"], 1);
  EXPECT_EQ(b["FROM_NE_ENV_DOM"], 0);
  EXPECT_EQ(b["FROM_EQ_ENV"], 0);
  EXPECT_EQ(b["FROM_NE_RT"], 1);
  EXPECT_EQ(b["FROM_NE_RT_DOM"], 0);
  // Phishing shape: From a bank, replies to a free-mail box.
  Seen c = run(*rs, {"x@mailer.example", {"bob@corp.example"},
                     {{"From", "Bank <service@bank.example>"}, {"Reply-To", "bank.help@freemail.example"}}});
  EXPECT_EQ(c["FROM_NE_ENV_DOM"], 1);
  EXPECT_EQ(c["FROM_NE_RT_DOM"], 1);
  // Null sender: the envelope side is absent, the comparison does not hold either way.
  Seen d = run(*rs, {"<>", {"bob@corp.example"}, {{"From", "MAILER-DAEMON@mx.example"}}});
  EXPECT_EQ(d["FROM_NE_ENV_ADDR"], 0);
  EXPECT_EQ(d["FROM_EQ_ENV"], 0);
}

TEST(RulesConditions, NullSenderAsAnEnvelopeRule) {
  // What the policy compiler writes for "envelope sender blank".
  auto rs = build("envelope NULL_SENDER mail_from !~ /[^<>\\s]/\n");
  EXPECT_EQ(run(*rs, {"<>", {"a@b.example"}, {}})["NULL_SENDER"], 1);
  EXPECT_EQ(run(*rs, {"", {"a@b.example"}, {}})["NULL_SENDER"], 1);
  EXPECT_EQ(run(*rs, {"<x@y.example>", {"a@b.example"}, {}})["NULL_SENDER"], 0);
  EXPECT_EQ(run(*rs, {"x@y.example", {"a@b.example"}, {}})["NULL_SENDER"], 0);
}

TEST(RulesConditions, CountRecipientsInMetas) {
  auto rs = build(
      "count __RCPTS rcpt_to\ncount __TOCC to_cc\n"
      "meta MANY_RCPTS __RCPTS >= 3\nmeta MANY_TOCC __TOCC > 2\nmeta BCC_ONLY (__TOCC == 0) && __RCPTS > 0\n");
  Msg m{"a@x.example", {"1@c.example", "2@c.example", "3@c.example"},
        {{"To", "One <1@c.example>, \"Two, Esq.\" <2@c.example>"}, {"Cc", "3@c.example"}}};
  Seen s = run(*rs, m);
  EXPECT_EQ(s["__RCPTS"], 3);
  EXPECT_EQ(s["__TOCC"], 3) << "the quoted comma does not split an address";
  EXPECT_EQ(s["MANY_RCPTS"], 1);
  EXPECT_EQ(s["MANY_TOCC"], 1);
  EXPECT_EQ(s["BCC_ONLY"], 0);
  m.rcpts.pop_back();
  m.headers = {{"To", "undisclosed-recipients:;"}};
  s = run(*rs, m);
  EXPECT_EQ(s["__RCPTS"], 2);
  EXPECT_EQ(s["__TOCC"], 0) << "a group without addresses counts nothing";
  EXPECT_EQ(s["MANY_RCPTS"], 0);
  EXPECT_EQ(s["BCC_ONLY"], 1);
}

TEST(RulesConditions, RecipientListsCountListedRecipients) {
  auto rs = build(
      "list VIP addresses inline ceo@corp.example cfo@corp.example\nlist CORP domains inline corp.example\n"
      "listed TO_VIP rcpt_address VIP\nlisted __TO_CORP rcpt_domain CORP\ntflags __TO_CORP multiple\n"
      "count __N rcpt_to\nmeta ALL_CORP __N > 0 && __TO_CORP == __N\nmeta SOME_OUTSIDE __TO_CORP < __N\n");
  Seen a = run(*rs, {"x@y.example", {"<CEO@corp.example>", "dev@sub.corp.example"}, {}});
  EXPECT_EQ(a["TO_VIP"], 1) << "address lists compare without case and angle brackets";
  EXPECT_EQ(a["__TO_CORP"], 2) << "domains cover subdomains; one count per recipient";
  EXPECT_EQ(a["ALL_CORP"], 1);
  EXPECT_EQ(a["SOME_OUTSIDE"], 0);
  Seen b = run(*rs, {"x@y.example", {"dev@corp.example", "friend@outside.example"}, {}});
  EXPECT_EQ(b["TO_VIP"], 0);
  EXPECT_EQ(b["__TO_CORP"], 1);
  EXPECT_EQ(b["ALL_CORP"], 0);
  EXPECT_EQ(b["SOME_OUTSIDE"], 1);
}

TEST(RulesConditions, ClassedSeesTheSenderClass) {
  auto rs = build(
      "list FM domains inline freemail.example\nlist BL domains inline bad.example\n"
      "sender_class J FM\nsender_class P BL\n"
      "classed FREEMAIL J\nclassed RISKY P J\nclassed OTHER D\nclassed JP E\n");
  Seen j = run(*rs, {"a@freemail.example", {"b@c.example"}, {{"From", "a@freemail.example"}}});
  EXPECT_EQ(j.result.sender_class, SenderClass::J);
  EXPECT_EQ(j["FREEMAIL"], 1);
  EXPECT_EQ(j["RISKY"], 1);
  EXPECT_EQ(j["OTHER"], 0);
  Seen p = run(*rs, {"a@x.bad.example", {"b@c.example"}, {{"From", "a@x.bad.example"}}});
  EXPECT_EQ(p["FREEMAIL"], 0);
  EXPECT_EQ(p["RISKY"], 1);
  Seen d = run(*rs, {"a@plain.example", {"b@c.example"}, {{"From", "a@plain.example"}}});
  EXPECT_EQ(d["OTHER"], 1);
  EXPECT_EQ(d["RISKY"], 0);
  EXPECT_EQ(run(*rs, {"", {"b@c.example"}, {{"From", "a@shop.co.jp"}}})["JP"], 1);
}

TEST(RulesConditions, ScoredComparesTheOtherRulesScore) {
  auto rs = build(
      "header SPAMMY Subject =~ /winner/i\nscore SPAMMY 4\n"
      "body LOTTERY /lottery/\nscore LOTTERY 2.5\n"
      "scored __HIGH >= 6\nscored __LOW < 1\n"
      "meta HIGH_AND_BULK __HIGH && __BULK\nheader __BULK Precedence =~ /bulk/\n"
      "meta VERY_HIGH __HIGH\nscore VERY_HIGH 10\n");
  Seen s = run(*rs, {"a@b.example", {"c@d.example"}, {{"Subject", "You are a WINNER"}}, "the lottery awaits\n"});
  EXPECT_DOUBLE_EQ(s["__HIGH"], 1) << "4 + 2.5 >= 6";
  EXPECT_EQ(s["__LOW"], 0);
  EXPECT_EQ(s["HIGH_AND_BULK"], 0);
  EXPECT_EQ(s["VERY_HIGH"], 1);
  EXPECT_DOUBLE_EQ(s.result.score, 16.5) << "a late rule's own score is added after the comparison";
  Seen t = run(*rs, {"a@b.example", {"c@d.example"}, {{"Subject", "winner"}, {"Precedence", "bulk"}}});
  EXPECT_EQ(t["__HIGH"], 0) << "4 < 6";
  EXPECT_EQ(t["VERY_HIGH"], 0);
  EXPECT_DOUBLE_EQ(t.result.score, 4);
  Seen u = run(*rs, {"a@b.example", {"c@d.example"}, {{"Subject", "hello"}}});
  EXPECT_EQ(u["__LOW"], 1);
}

TEST(RulesConditions, FirstDecidingRuleSetsTheVerdict) {
  auto rs = build(
      "header BAD Subject =~ /viagra/i\nscore BAD 20\nthreshold reject 10\n"
      "listed __PARTNER envelope_from_domain PARTNERS\nlist PARTNERS domains inline partner.example\n"
      "meta POLICY_ALLOW_PARTNER __PARTNER\nscore POLICY_ALLOW_PARTNER 0\ndecide POLICY_ALLOW_PARTNER pass\n"
      "header __URGENT Subject =~ /urgent/i\n"
      "meta POLICY_HOLD_URGENT __URGENT\nscore POLICY_HOLD_URGENT 0\ndecide POLICY_HOLD_URGENT quarantine\n"
      "meta POLICY_DEFER_URGENT __URGENT\nscore POLICY_DEFER_URGENT 0\ndecide POLICY_DEFER_URGENT tempfail\n"
      "envelope __NULL mail_from !~ /[^<>\\s]/\n"
      "meta POLICY_NO_BOUNCES __NULL\nscore POLICY_NO_BOUNCES 0\ndecide POLICY_NO_BOUNCES reject\n"
      "reply POLICY_NO_BOUNCES Bounces are not accepted here\n");
  // Nothing decides: the threshold does.
  Seen a = run(*rs, {"x@spam.example", {"b@corp.example"}, {{"Subject", "viagra"}}});
  EXPECT_EQ(a.result.action, Action::reject);
  EXPECT_TRUE(a.result.decided_by.empty());
  // A pass decision overrides the threshold.
  Seen b = run(*rs, {"x@partner.example", {"b@corp.example"}, {{"Subject", "viagra urgent"}}});
  EXPECT_EQ(b.result.action, Action::pass);
  EXPECT_EQ(b.result.decided_by, "POLICY_ALLOW_PARTNER");
  EXPECT_TRUE(b.reported("POLICY_ALLOW_PARTNER")) << "the deciding rule is reported with score 0";
  EXPECT_FALSE(b.reported("POLICY_HOLD_URGENT")) << "later deciding rules are not";
  EXPECT_DOUBLE_EQ(b.result.score, 20);
  // The first of two matching rules wins.
  Seen c = run(*rs, {"x@other.example", {"b@corp.example"}, {{"Subject", "urgent"}}});
  EXPECT_EQ(c.result.action, Action::quarantine);
  EXPECT_EQ(c.result.decided_by, "POLICY_HOLD_URGENT");
  EXPECT_TRUE(c.result.reply.empty());
  // Reject with a reply text.
  Seen d = run(*rs, {"<>", {"b@corp.example"}, {{"Subject", "Undelivered Mail"}}});
  EXPECT_EQ(d.result.action, Action::reject);
  EXPECT_EQ(d.result.decided_by, "POLICY_NO_BOUNCES");
  EXPECT_EQ(d.result.reply, "Bounces are not accepted here");
}

TEST(RulesConditions, TempfailDecision) {
  auto rs = build("header __X Subject =~ /later/\nmeta DEFER __X\nscore DEFER 0\ndecide DEFER tempfail\n"
                  "reply DEFER Try again in an hour\n");
  Seen s = run(*rs, {"a@b.example", {"c@d.example"}, {{"Subject", "later"}}});
  EXPECT_EQ(s.result.action, Action::tempfail);
  EXPECT_EQ(s.result.reply, "Try again in an hour");
  EXPECT_EQ(run(*rs, {"a@b.example", {"c@d.example"}, {{"Subject", "now"}}}).result.action, Action::pass);
}

TEST(RulesConditions, ErrorsNameFileLineAndRule) {
  auto has = [](const RuleSource& s, std::string_view what) {
    for (auto& e : s.errors)
      if (e.text().find(what) != std::string::npos) return true;
    return false;
  };
  RuleSource s = parse(
      "compare A from_address <> envelope_from_address\n"
      "count B recipients\n"
      "classed C X\n"
      "scored D => 5\n"
      "decide NOPE reject\n"
      "header E Subject =~ /x/\ndecide E maybe\n"
      "header F Subject =~ /y/\nreply F no decision\n"
      "header G Subject =~ /z/\ndecide G reject\nreply G bad\x01text\n"
      "decide G tag\n");
  EXPECT_TRUE(has(s, "t.cf:1: compare A"));
  EXPECT_TRUE(has(s, "t.cf:2: count B"));
  EXPECT_TRUE(has(s, "t.cf:3: classed C"));
  EXPECT_TRUE(has(s, "t.cf:4: scored D"));
  EXPECT_TRUE(has(s, "decide NOPE: no rule named 'NOPE'"));
  EXPECT_TRUE(has(s, "t.cf:7: decide E: expected pass"));
  EXPECT_TRUE(has(s, "reply F: needs 'decide F reject'"));
  EXPECT_TRUE(has(s, "t.cf:12: reply G"));
  EXPECT_TRUE(has(s, "t.cf:13: decide G: already decided"));
}

TEST(RulesConditions, ArtifactRoundTripsTheNewFields) {
  RuleSource s = parse(
      "compare A from_domain == reply_to_domain\ncount B to_cc\nclassed C P D\nscored D <= -1.5\n"
      "meta E D && A\ndecide E tempfail\nreply E wait\n");
  std::string art;
  CompileReport rep;
  std::vector<Diagnostic> errs;
  ASSERT_TRUE(compile_ruleset(s, {}, art, rep, errs));
  Artifact a;
  std::string err;
  ASSERT_TRUE(read_artifact({reinterpret_cast<const uint8_t*>(art.data()), art.size()}, a, err)) << err;
  EXPECT_EQ(a.format, 2u);
  auto rule = [&](std::string_view n) -> const ArtifactRule& {
    for (auto& r : a.rules)
      if (r.name == n) return r;
    ADD_FAILURE() << n;
    return a.rules[0];
  };
  EXPECT_EQ(rule("A").kind, RuleKind::compare);
  EXPECT_EQ(rule("A").form, uint8_t(AddressField::from_domain));
  EXPECT_EQ(rule("A").arg, uint8_t(0x80 | uint8_t(AddressField::reply_to_domain)));
  EXPECT_EQ(rule("B").form, uint8_t(CountField::to_cc));
  EXPECT_EQ(rule("C").arg, uint8_t((1 << 0) | (1 << 5)));
  EXPECT_EQ(rule("D").form, uint8_t(CompareOp::le));
  EXPECT_DOUBLE_EQ(rule("D").value, -1.5);
  EXPECT_TRUE(rule("D").flags & flag_late);
  EXPECT_TRUE(rule("E").flags & flag_late) << "a meta over a scored rule is late";
  EXPECT_FALSE(rule("A").flags & flag_late);
  EXPECT_TRUE(rule("E").decides);
  EXPECT_EQ(rule("E").decision, Action::tempfail);
  EXPECT_EQ(rule("E").reply, "wait");
  ASSERT_EQ(a.decide_order.size(), 1u);
  // A corrupt decide index is refused.
  std::string bad = art;
  Artifact b;
  for (size_t cut = 16; cut < bad.size(); cut += 97) {
    std::string t = bad.substr(0, cut);
    EXPECT_FALSE(read_artifact({reinterpret_cast<const uint8_t*>(t.data()), t.size()}, b, err));
  }
}

// The matcher splits address lists with the MIME engine's splitter
// (scanners/mime/address.hpp; its readings in tests/unit/mime/test_address.cpp):
// addresses from the raw value, as SpamAssassin 4's :addr; names from the
// decoded one, non-empty only, tidied as SpamAssassin's :name.
TEST(RulesConditions, AddressListsReadAsTheMimeEngineReadsThem) {
  auto rs = build(
      "header TO_ADDRS To:addr =~ /^a\\@x\\.example\\nb\\@y\\.example$/\n"
      "header TO_NAMES To:name =~ /^Foo Blah\\nB$/\n"
      "header FROM_BANK From:addr =~ /bank\\.example/\n"
      "compare FROM_NE_RT_DOM from_domain != reply_to_domain\n"
      "count __TOCC to_cc\n");
  // {name, raw, decoded}; decoded "" means the same as raw.
  auto scan = [&](std::vector<std::array<std::string, 3>> headers) {
    match::Scratch sc(*rs);
    EXPECT_TRUE(sc.ok());
    match::MessageScan s(*rs, sc);
    s.envelope("e@mailer.example", {}, "helo.example");
    for (auto& h : headers) s.header(h[0], h[1], h[2].empty() ? h[1] : h[2]);
    Seen out;
    out.rs = rs.get();
    s.finish(out.result, out.values);
    return out;
  };
  // A display name that decodes to "x@bank.example,": split raw, it is one
  // mailbox of evil.example (the old matcher split the decoded value and
  // took x@bank.example as the From address).
  Seen a = scan({{"From", "=?UTF-8?B?eEBiYW5rLmV4YW1wbGUs?= <y@evil.example>",
                  "x@bank.example, <y@evil.example>"},
                 {"Reply-To", "r@evil.example"},
                 {"To", "'Foo  Blah' <a@x.example>, b@y.example (B), undisclosed:;"},
                 {"Cc", "Group: <c@z.example>,\r\n \"Not, Two\" <d@z.example>;", "Group: <c@z.example>, \"Not, Two\" <d@z.example>;"}});
  EXPECT_EQ(a["FROM_BANK"], 0);
  EXPECT_EQ(a["FROM_NE_RT_DOM"], 0) << "from_domain is evil.example";
  EXPECT_EQ(a["TO_ADDRS"], 1);
  EXPECT_EQ(a["TO_NAMES"], 1) << "single quotes and white space tidied; no empty name for the group";
  EXPECT_EQ(a["__TOCC"], 4);
  // Two angle addresses: the first is the From address (SpamAssassin).
  Seen b = scan({{"From", "\"Bank\" <x@bank.example> <y@evil.example>"},
                 {"Reply-To", "x@bank.example"}});
  EXPECT_EQ(b["FROM_BANK"], 1);
  EXPECT_EQ(b["FROM_NE_RT_DOM"], 0);
}
