// Policy rules (control/policy): validation names the rule and the field;
// the compiled text; and behaviour: each condition compiled with the
// shipped packs into one artifact and run by the match runtime on messages
// it must and must not catch, as the dataplane and sekisho-replay run it.
// Notification templates: placeholders, Bcc never revealed, no header
// injection.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "scanners/match/match.hpp"
#include "control/policy/policy.hpp"
#include "control/policy/templates.hpp"
#include "rules/compiler/compiler.hpp"
#include "rules/lang/parser.hpp"

using namespace sekisho;
using namespace sekisho::control::policy;
using nlohmann::json;

namespace {

std::string source_root() {
  const char* r = std::getenv("SEKISHO_SOURCE_ROOT");
  return r ? r : ".";
}

Policy parsed(const json& j) {
  Policy p;
  std::vector<PolicyError> errs;
  EXPECT_TRUE(parse_policy(j, p, errs));
  for (auto& e : errs) ADD_FAILURE() << e.text();
  auto more = check_policy(p);
  for (auto& e : more) ADD_FAILURE() << e.text();
  return p;
}

std::vector<std::string> errors_of(const json& j) {
  Policy p;
  std::vector<PolicyError> errs;
  if (parse_policy(j, p, errs)) errs = check_policy(p);
  std::vector<std::string> out;
  for (auto& e : errs) out.push_back(e.text());
  return out;
}

bool contains(const std::vector<std::string>& v, std::string_view what) {
  for (auto& s : v)
    if (s.find(what) != std::string::npos) return true;
  return false;
}

// The packs and the compiled policy in one artifact, as a ruleset version has them.
std::unique_ptr<match::Ruleset> build(const Policy& p, bool with_packs = true) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("policy-test-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "policy");
  std::ofstream(dir / "policy" / "policy.cf") << compile_policy(p);
  std::vector<std::string> paths;
  if (with_packs) paths.push_back(source_root() + "/rules/packs");
  paths.push_back((dir / "policy").string());
  rules::RuleSource src = rules::parse_paths(paths);
  for (auto& e : src.errors) ADD_FAILURE() << e.text();
  std::string art;
  rules::CompileReport rep;
  std::vector<rules::Diagnostic> errs;
  EXPECT_TRUE(rules::compile_ruleset(src, {}, art, rep, errs));
  for (auto& [rule, why] : rep.refused)
    if (rule.find("POLICY") != std::string::npos) ADD_FAILURE() << rule << ": " << why;
  std::string err;
  auto rs = match::Ruleset::load_bytes({reinterpret_cast<const uint8_t*>(art.data()), art.size()}, err);
  EXPECT_TRUE(rs) << err;
  fs::remove_all(dir);
  return rs;
}

struct Msg {
  std::string mail_from = "<alice@outside.example>";
  std::vector<std::string> rcpts{"bob@corp.example"};
  std::vector<std::pair<std::string, std::string>> headers{{"From", "Alice <alice@outside.example>"}, {"Subject", "hello"}};
  std::string body = "Hi Bob\n";
  std::string client = "198.51.100.7";
};

match::Result run(const match::Ruleset& rs, const Msg& m) {
  match::Scratch sc(rs);
  EXPECT_TRUE(sc.ok());
  match::MessageScan s(rs, sc);
  s.envelope(m.mail_from, m.rcpts, "mx.outside.example");
  s.client_ip(m.client);
  for (auto& [n, v] : m.headers) s.header(n, v, v);
  s.body_text(match::bytes_of(m.body));
  return s.finish();
}

// One rule with |conditions| and action quarantine.
json one(const json& conditions, const std::string& action = "quarantine") {
  return {{"internal_domains", {"corp.example"}},
          {"rules", {{{"name", "R"}, {"order", 1}, {"conditions", conditions}, {"action", action}}}}};
}

// Does the rule decide |m|?
bool caught(const match::Ruleset& rs, const Msg& m) {
  match::Result r = run(rs, m);
  return r.decided_by == "POLICY_R";
}

Msg with(std::function<void(Msg&)> f) {
  Msg m;
  f(m);
  return m;
}

}  // namespace

TEST(PolicyValidation, ErrorsNameTheRuleAndTheField) {
  json j = {{"internal_domains", {"corp.example", "bad domain"}},
            {"rules",
             {{{"name", "Bulk"}, {"conditions", {{"recipient_count", {{"of", "envelope"}, {"op", "=>"}, {"value", 5}}}}}, {"action", "quarantine"}},
              {{"name", "Keywords"}, {"conditions", {{"header", {{"name", "Sub ject"}, {"keywords", {"x"}}}}}}, {"action", "reject"},
               {"reply", "no\r\nRCPT TO:<x>"}},
              {{"name", "Lists"}, {"conditions", {{"senders", {{"list", {"ok@x.example", "not an address", "@bad..example"}}}}}}, {"action", "pass"}},
              {{"name", "Unknown"}, {"conditions", {{"colour", "red"}}}, {"action", "discard"}},
              {{"name", "bulk"}, {"conditions", {{"null_sender", true}}}, {"action", "tag"}, {"reply", "only for reject"}},
              {{"name", "Re"}, {"conditions", {{"header", {{"name", "Subject"}, {"regex", "(unclosed"}}}}}, {"action", "tag"}},
              {{"name", "Class"}, {"conditions", {{"sender_class", {"Q"}}, {"score", {{"op", ">="}}}}}, {"action", "tag"}}}}};
  auto e = errors_of(j);
  EXPECT_TRUE(contains(e, "internal_domains[1]: ")) << ::testing::PrintToString(e);
  EXPECT_TRUE(contains(e, "rule 1 \"Bulk\": conditions.recipient_count.op: expected one of"));
  EXPECT_TRUE(contains(e, "rule 2 \"Keywords\": conditions.header.name: "));
  EXPECT_TRUE(contains(e, "rule 2 \"Keywords\": reply: expected 1 to 200 printable ASCII"));
  EXPECT_TRUE(contains(e, "rule 3 \"Lists\": conditions.senders.list[1]: "));
  EXPECT_TRUE(contains(e, "rule 3 \"Lists\": conditions.senders.list[2]: "));
  EXPECT_FALSE(contains(e, "conditions.senders.list[0]"));
  EXPECT_TRUE(contains(e, "rule 4 \"Unknown\": conditions.colour: unknown field"));
  EXPECT_TRUE(contains(e, "rule 4 \"Unknown\": action: expected pass, tag, quarantine, reject or tempfail"));
  EXPECT_TRUE(contains(e, "rule 5 \"bulk\": name: compiles to the same rule name (POLICY_BULK) as rule 1"));
  EXPECT_TRUE(contains(e, "rule 5 \"bulk\": reply: only a reject or tempfail action"));
  EXPECT_TRUE(contains(e, "rule 7 \"Class\": conditions.sender_class: "));
  EXPECT_TRUE(contains(e, "rule 7 \"Class\": conditions.score.value: expected a number"));
  // The regex is only found bad by the rules parser: mapped back to its rule and field.
  auto r = errors_of({{"rules", {{{"name", "Re"}, {"conditions", {{"header", {{"name", "Subject"}, {"regex", "(unclosed"}}}}}, {"action", "tag"}}}}});
  ASSERT_EQ(r.size(), 1u) << ::testing::PrintToString(r);
  EXPECT_TRUE(contains(r, "rule 1 \"Re\": conditions.header.regex: ")) << r[0];
  // Direction without internal domains.
  auto d = errors_of({{"rules", {{{"name", "In"}, {"conditions", {{"direction", "inbound"}}}, {"action", "tag"}}}}});
  EXPECT_TRUE(contains(d, "rule 1 \"In\": conditions.direction: needs internal_domains"));
  // No conditions at all is refused (it would catch every message).
  EXPECT_TRUE(contains(errors_of({{"rules", {{{"name", "All"}, {"conditions", json::object()}, {"action", "reject"}}}}}),
                       "rule 1 \"All\": conditions: expected an object with at least one condition"));
}

TEST(PolicyCompile, TextIsRuleLanguageInDecisionOrderAndRoundTrips) {
  json j = {{"internal_domains", {"corp.example"}},
            {"internal_networks", {"10.0.0.0/8"}},
            {"rules",
             {{{"name", "Second"}, {"order", 20}, {"conditions", {{"null_sender", true}}}, {"action", "reject"}, {"reply", "No bounces"}},
              {{"name", "First"}, {"order", 10}, {"conditions", {{"direction", "inbound"}, {"senders", {{"list", {"@partner.example", "x@y.example"}}, {"not", true}}}}}, {"action", "tag"}},
              {{"name", "Off"}, {"enabled", false}, {"order", 0}, {"conditions", {{"null_sender", true}}}, {"action", "pass"}}}}};
  Policy p = parsed(j);
  std::string t = compile_policy(p);
  size_t first = t.find("decide POLICY_FIRST tag"), second = t.find("decide POLICY_SECOND reject");
  ASSERT_NE(first, std::string::npos) << t;
  ASSERT_NE(second, std::string::npos) << t;
  EXPECT_LT(first, second) << "order 10 before order 20";
  EXPECT_EQ(t.find("POLICY_OFF"), std::string::npos) << "disabled rules are not compiled";
  EXPECT_NE(t.find("reply POLICY_SECOND No bounces"), std::string::npos);
  EXPECT_NE(t.find("list POLICY_INTERNAL_NETWORKS ip inline 10.0.0.0/8"), std::string::npos);
  EXPECT_NE(t.find("listed __POLICY_FROM_INSIDE client_ip POLICY_INTERNAL_NETWORKS"), std::string::npos);
  EXPECT_NE(t.find("meta POLICY_FIRST !(__POLICY_FIRST_SENDERS_ADDRESSES || __POLICY_FIRST_SENDERS_DOMAINS) && __POLICY_INBOUND"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("score POLICY_FIRST 0"), std::string::npos);
  // JSON round trip: the normalised policy parses to the same text.
  Policy again = parsed(policy_json(p));
  EXPECT_EQ(compile_policy(again), t);
  EXPECT_EQ(policy_json(again)["rules"][1]["conditions"]["senders"]["list"], json({"x@y.example", "@partner.example"}));
}

TEST(PolicyBehaviour, NullSender) {
  auto rs = build(parsed(one({{"null_sender", true}})));
  EXPECT_TRUE(caught(*rs, with([](Msg& m) { m.mail_from = "<>"; })));
  EXPECT_TRUE(caught(*rs, with([](Msg& m) { m.mail_from = ""; })));
  EXPECT_FALSE(caught(*rs, Msg{}));
  EXPECT_EQ(run(*rs, with([](Msg& m) { m.mail_from = "<>"; })).action, rules::Action::quarantine);
}

TEST(PolicyBehaviour, FromDiffersFromEnvelopeSender) {
  auto addr = build(parsed(one({{"from_differs_from_sender", "address"}})));
  auto dom = build(parsed(one({{"from_differs_from_sender", "domain"}})));
  Msg same;
  Msg bounce = with([](Msg& m) { m.mail_from = "<bounce+123@outside.example>"; });
  Msg spoof = with([](Msg& m) { m.mail_from = "<x@bulk-mailer.example>"; });
  EXPECT_FALSE(caught(*addr, same));
  EXPECT_FALSE(caught(*dom, same));
  EXPECT_TRUE(caught(*addr, bounce));
  EXPECT_FALSE(caught(*dom, bounce)) << "same domain";
  EXPECT_TRUE(caught(*addr, spoof));
  EXPECT_TRUE(caught(*dom, spoof));
  EXPECT_FALSE(caught(*addr, with([](Msg& m) { m.headers[0].second = "ALICE@Outside.Example"; }))) << "case-insensitive";
}

TEST(PolicyBehaviour, FromDiffersFromReplyTo) {
  auto addr = build(parsed(one({{"from_differs_from_reply_to", "address"}})));
  auto dom = build(parsed(one({{"from_differs_from_reply_to", "domain"}})));
  Msg none;
  Msg same_dom = with([](Msg& m) { m.headers.push_back({"Reply-To", "support@outside.example"}); });
  Msg other = with([](Msg& m) { m.headers.push_back({"Reply-To", "\"Alice\" <alice.payments@freemail.example>"}); });
  EXPECT_FALSE(caught(*addr, none)) << "no Reply-To";
  EXPECT_TRUE(caught(*addr, same_dom));
  EXPECT_FALSE(caught(*dom, same_dom));
  EXPECT_TRUE(caught(*addr, other));
  EXPECT_TRUE(caught(*dom, other));
}

TEST(PolicyBehaviour, HeaderKeywordsAndRegex) {
  auto kw = build(parsed(one({{"header", {{"name", "Subject"}, {"keywords", {"invoice", "50% off!", "a.b", "請求書"}}}}})));
  auto subj = [](std::string s) { return with([&](Msg& m) { m.headers[1].second = s; }); };
  EXPECT_TRUE(caught(*kw, subj("Your INVOICE is attached")));
  EXPECT_TRUE(caught(*kw, subj("Today: 50% OFF! everything")));
  EXPECT_TRUE(caught(*kw, subj("see a.b")));
  EXPECT_FALSE(caught(*kw, subj("see axb"))) << "keywords are literal: '.' is not a wildcard";
  EXPECT_TRUE(caught(*kw, subj("【重要】請求書のご案内")));
  EXPECT_FALSE(caught(*kw, subj("hello")));
  auto xm = build(parsed(one({{"header", {{"name", "X-Mailer"}, {"keywords", {"MassMailer"}}, {"case_sensitive", true}}}})));
  EXPECT_TRUE(caught(*xm, with([](Msg& m) { m.headers.push_back({"X-Mailer", "MassMailer 5.1"}); })));
  EXPECT_FALSE(caught(*xm, with([](Msg& m) { m.headers.push_back({"X-Mailer", "massmailer 5.1"}); })));
  EXPECT_FALSE(caught(*xm, Msg{})) << "absent header";
  auto re = build(parsed(one({{"header", {{"name", "Subject"}, {"regex", "^\\[(?:spam|bulk)\\]/x"}}}})));
  EXPECT_TRUE(caught(*re, subj("[SPAM]/x offer")));
  EXPECT_FALSE(caught(*re, subj("re: [spam]/x offer")));
}

TEST(PolicyBehaviour, RecipientCount) {
  auto env = build(parsed(one({{"recipient_count", {{"of", "envelope"}, {"op", ">="}, {"value", 3}}}})));
  auto tocc = build(parsed(one({{"recipient_count", {{"of", "to_cc"}, {"op", ">"}, {"value", 2}}}})));
  Msg many = with([](Msg& m) {
    m.rcpts = {"a@corp.example", "b@corp.example", "c@corp.example"};
    m.headers.push_back({"To", "a@corp.example"});
  });
  Msg listed = with([](Msg& m) {
    m.headers.push_back({"To", "a@corp.example, b@corp.example"});
    m.headers.push_back({"Cc", "\"C, D\" <c@corp.example>"});
  });
  EXPECT_TRUE(caught(*env, many));
  EXPECT_FALSE(caught(*env, listed));
  EXPECT_FALSE(caught(*tocc, many));
  EXPECT_TRUE(caught(*tocc, listed));
}

TEST(PolicyBehaviour, SenderAndRecipientLists) {
  auto env = build(parsed(one({{"senders", {{"list", {"ceo@partner.example", "@vendor.example"}}}}})));
  auto from = build(parsed(one({{"senders", {{"list", {"@vendor.example"}}, {"match", "from"}}}})));
  auto not_listed = build(parsed(one({{"senders", {{"list", {"@corp.example"}}, {"not", true}}}})));
  auto rcpt = build(parsed(one({{"recipients", {{"list", {"finance@corp.example", "@legal.corp.example"}}}}})));
  auto sender = [](std::string env_from, std::string from_hdr) {
    return with([&](Msg& m) {
      m.mail_from = env_from;
      m.headers[0].second = from_hdr;
    });
  };
  EXPECT_TRUE(caught(*env, sender("<CEO@partner.example>", "x@other.example")));
  EXPECT_FALSE(caught(*env, sender("<cfo@partner.example>", "ceo@partner.example")));
  EXPECT_TRUE(caught(*env, sender("<a@mail.vendor.example>", "x@other.example"))) << "@domain covers subdomains";
  EXPECT_FALSE(caught(*env, sender("<a@vendor.example.evil>", "x@other.example")));
  EXPECT_FALSE(caught(*from, sender("<a@vendor.example>", "x@other.example")));
  EXPECT_TRUE(caught(*from, sender("<x@other.example>", "Vendor <a@vendor.example>")));
  EXPECT_TRUE(caught(*not_listed, Msg{}));
  EXPECT_FALSE(caught(*not_listed, sender("<me@corp.example>", "me@corp.example")));
  EXPECT_TRUE(caught(*rcpt, with([](Msg& m) { m.rcpts = {"bob@corp.example", "<Finance@corp.example>"}; })));
  EXPECT_TRUE(caught(*rcpt, with([](Msg& m) { m.rcpts = {"counsel@legal.corp.example"}; })));
  EXPECT_FALSE(caught(*rcpt, Msg{}));
}

TEST(PolicyBehaviour, DirectionFromNetworksOrDomains) {
  auto rule = [](const std::string& dir, bool networks) {
    json j = one({{"direction", dir}});
    if (networks) j["internal_networks"] = {"10.0.0.0/8", "2001:db8::/32"};
    return build(parsed(j));
  };
  Msg in;  // outside sender, outside client, to corp
  Msg out = with([](Msg& m) {
    m.client = "10.1.2.3";
    m.mail_from = "<bob@corp.example>";
    m.rcpts = {"carol@partner.example"};
  });
  Msg internal = with([](Msg& m) {
    m.client = "10.1.2.3";
    m.mail_from = "<bob@corp.example>";
    m.rcpts = {"dave@corp.example", "eve@sales.corp.example"};
  });
  Msg spoofed = with([](Msg& m) { m.mail_from = "<ceo@corp.example>"; });  // corp sender from outside
  for (bool nets : {true, false}) {
    auto inbound = rule("inbound", nets), outbound = rule("outbound", nets), intern = rule("internal", nets);
    EXPECT_TRUE(caught(*inbound, in)) << nets;
    EXPECT_FALSE(caught(*outbound, in)) << nets;
    EXPECT_FALSE(caught(*intern, in)) << nets;
    EXPECT_FALSE(caught(*inbound, out)) << nets;
    EXPECT_TRUE(caught(*outbound, out)) << nets;
    EXPECT_FALSE(caught(*intern, out)) << nets;
    EXPECT_FALSE(caught(*inbound, internal)) << nets;
    EXPECT_FALSE(caught(*outbound, internal)) << nets;
    EXPECT_TRUE(caught(*intern, internal)) << nets;
    // With networks, where the client connects from decides; without, the sender's domain.
    EXPECT_EQ(caught(*inbound, spoofed), nets) << nets;
  }
  // Mixed recipients from inside: outbound (some recipient is outside), not internal.
  auto outbound = rule("outbound", true), intern = rule("internal", true);
  Msg mixed = with([](Msg& m) {
    m.client = "2001:db8::5";
    m.rcpts = {"dave@corp.example", "carol@partner.example"};
  });
  EXPECT_TRUE(caught(*outbound, mixed));
  EXPECT_FALSE(caught(*intern, mixed));
}

TEST(PolicyBehaviour, SenderClassFromTheSendersPack) {
  auto rs = build(parsed(one({{"sender_class", {"J"}}})));
  auto from = [](std::string f) { return with([&](Msg& m) { m.headers[0].second = f; }); };
  EXPECT_TRUE(caught(*rs, from("someone@gmail.com")));  // rules/packs/senders/freemail.txt
  EXPECT_FALSE(caught(*rs, from("someone@outside.example")));
  auto jp = build(parsed(one({{"sender_class", {"E", "D"}}})));
  EXPECT_TRUE(caught(*jp, from("a@shop.co.jp")));
  EXPECT_FALSE(caught(*jp, from("someone@gmail.com")));
  // Without the packs there is no J class: the same rule catches nothing.
  auto alone = build(parsed(one({{"sender_class", {"J"}}})), false);
  EXPECT_FALSE(caught(*alone, from("someone@gmail.com")));
}

TEST(PolicyBehaviour, ScoreOfThePacks) {
  auto rs = build(parsed(one({{"score", {{"op", ">="}, {"value", 4}}}}, "tempfail")));
  Msg phish = with([](Msg& m) {
    // SK_SUBJ_ACCOUNT_SUSPEND 2.5 + SK_SUBJ_PASSWORD_RESET 2.0
    m.headers[1].second = "Your account has been suspended - verify your account";
  });
  match::Result r = run(*rs, phish);
  EXPECT_GE(r.score, 4) << "the packs score it";
  EXPECT_EQ(r.decided_by, "POLICY_R");
  EXPECT_EQ(r.action, rules::Action::tempfail);
  EXPECT_FALSE(caught(*rs, Msg{}));
}

TEST(PolicyBehaviour, OrderEnabledAndPassOverThePacks) {
  json j = {{"internal_domains", {"corp.example"}},
            {"rules",
             {{{"name", "Hold urgent"}, {"order", 20}, {"conditions", {{"header", {{"name", "Subject"}, {"keywords", {"urgent"}}}}}}, {"action", "quarantine"}},
              {{"name", "Allow partner"}, {"order", 10}, {"conditions", {{"senders", {{"list", {"@partner.example"}}}}}}, {"action", "pass"}},
              {{"name", "Reject urgent"}, {"order", 5}, {"enabled", false}, {"conditions", {{"header", {{"name", "Subject"}, {"keywords", {"urgent"}}}}}}, {"action", "reject"}},
              {{"name", "No bounces"}, {"order", 30}, {"conditions", {{"null_sender", true}}}, {"action", "reject"}, {"reply", "Bounces are not accepted"}}}}};
  auto rs = build(parsed(j));
  Msg urgent = with([](Msg& m) { m.headers[1].second = "URGENT: read"; });
  match::Result a = run(*rs, urgent);
  EXPECT_EQ(a.decided_by, "POLICY_HOLD_URGENT") << "the disabled order-5 rule does not run";
  EXPECT_EQ(a.action, rules::Action::quarantine);
  // The partner is allowed even for a message the packs reject (blocklisted domain in the From).
  Msg partner = with([](Msg& m) {
    m.mail_from = "<news@partner.example>";
    m.headers[1].second = "urgent";
  });
  match::Result b = run(*rs, partner);
  EXPECT_EQ(b.decided_by, "POLICY_ALLOW_PARTNER");
  EXPECT_EQ(b.action, rules::Action::pass);
  match::Result c = run(*rs, with([](Msg& m) { m.mail_from = "<>"; }));
  EXPECT_EQ(c.action, rules::Action::reject);
  EXPECT_EQ(c.reply, "Bounces are not accepted");
  // Nothing matches: the packs decide as before (pass here).
  match::Result d = run(*rs, Msg{});
  EXPECT_TRUE(d.decided_by.empty());
  EXPECT_EQ(d.action, rules::Action::pass);
}

TEST(PolicyBehaviour, AllConditionsMustHold) {
  auto rs = build(parsed(one({{"null_sender", true}, {"recipient_count", {{"op", ">"}, {"value", 1}}}})));
  EXPECT_FALSE(caught(*rs, with([](Msg& m) { m.mail_from = "<>"; })));
  EXPECT_FALSE(caught(*rs, with([](Msg& m) { m.rcpts = {"a@corp.example", "b@corp.example"}; })));
  EXPECT_TRUE(caught(*rs, with([](Msg& m) {
    m.mail_from = "<>";
    m.rcpts = {"a@corp.example", "b@corp.example"};
  })));
}

// ---- notification templates

TEST(NotificationTemplates, PlaceholdersAndBccNeverRevealed) {
  NotificationTemplate t{"held", "Held: %SUBJECT%", "From %SENDER% to %RCPTS%\nrule %RULE%\n%UNKNOWN% stays\n"};
  NoticeFacts f;
  f.envelope_sender = "alice@outside.example";
  f.envelope_rcpts = {"<Bob@corp.example>", "secret-bcc@corp.example", "carol@corp.example"};
  f.header_to_cc = {"\"Bob\" <bob@corp.example>", "Carol <carol@corp.example>, \"Dan, Jr\" <dan@corp.example>"};
  f.subject = "Quarterly numbers";
  f.rule = "Hold external";
  RenderedNotice r = render(t, f);
  EXPECT_EQ(r.subject, "Held: Quarterly numbers");
  EXPECT_EQ(r.body, "From alice@outside.example to Bob@corp.example, carol@corp.example\r\nrule Hold external\r\n%UNKNOWN% stays\r\n");
  EXPECT_EQ(r.body.find("secret-bcc"), std::string::npos) << "a Bcc'd envelope recipient is never shown";
  EXPECT_EQ(r.body.find("dan@"), std::string::npos) << "only envelope recipients named in To/Cc";
  f.envelope_sender.clear();
  f.header_to_cc = {"undisclosed-recipients:;"};
  r = render(t, f);
  EXPECT_NE(r.body.find("From <> to (undisclosed recipients)"), std::string::npos) << r.body;
  // A group syntax still names its members.
  f.header_to_cc = {"team: Bob <bob@corp.example>, carol@corp.example;"};
  EXPECT_EQ(visible_recipients(f), (std::vector<std::string>{"Bob@corp.example", "carol@corp.example"}));
  // A value holding a placeholder is not expanded again.
  f.subject = "%RCPTS% %RULE%";
  EXPECT_EQ(render(t, f).subject, "Held: %RCPTS% %RULE%");
}

TEST(NotificationTemplates, HeaderInjectionIsImpossible) {
  NotificationTemplate t{"n", "Blocked: %SUBJECT% from %SENDER%", "Subject was: %SUBJECT%\n"};
  NoticeFacts f;
  f.envelope_sender = "evil@x.example\r\nBcc: victim@corp.example";
  f.envelope_rcpts = {"bob@corp.example"};
  f.header_to_cc = {"bob@corp.example"};
  f.subject = "hi\r\nBcc: everyone@corp.example\r\n\r\n<script>x</script>\nX-Injected: 1\rY: 2";
  f.rule = "R\nX-Rule: 1";
  std::string m = render_message(t, f, "postmaster@corp.example", "bob@corp.example", 1700000000000000, "corp.example");
  size_t end = m.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos);
  std::string head = m.substr(0, end + 2), body = m.substr(end + 4);
  // Every header line is a known field or a folded continuation (starts with a space).
  std::vector<std::string> names;
  for (size_t p = 0; p < head.size();) {
    size_t e = head.find("\r\n", p);
    ASSERT_NE(e, std::string::npos);
    std::string line = head.substr(p, e - p);
    p = e + 2;
    EXPECT_EQ(line.find_first_of("\r\n"), std::string::npos);
    if (line[0] == ' ') continue;
    names.push_back(line.substr(0, line.find(':')));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
                                             "Content-Transfer-Encoding", "Auto-Submitted"}));
  EXPECT_EQ(m.find("\nBcc:"), std::string::npos);
  EXPECT_EQ(m.find("\nX-Injected"), std::string::npos);
  EXPECT_EQ(m.find("\nY: 2"), std::string::npos);
  EXPECT_EQ(body.find("\r\nBcc"), std::string::npos) << "no new lines in the body either";
  EXPECT_NE(body.find("Subject was: hi  Bcc: everyone@corp.example    <script>x</script> X-Injected: 1 Y: 2"), std::string::npos) << body;
  // Bare LF, CR or CRLF in the template body all become CRLF; no bare CR or LF remains.
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n') {
      EXPECT_TRUE(i > 0 && m[i - 1] == '\r') << i;
    }
    if (m[i] == '\r') {
      EXPECT_TRUE(i + 1 < m.size() && m[i + 1] == '\n') << i;
    }
  }
  // Addresses with CR/LF or spaces are refused outright.
  EXPECT_THROW(render_message(t, f, "a@b.example\r\nBcc: x@y", "bob@corp.example", 0, "corp.example"), std::invalid_argument);
  EXPECT_THROW(render_message(t, f, "a@b.example", "bob@corp.example, x@y.example", 0, "corp.example"), std::invalid_argument);
}

TEST(NotificationTemplates, NonAsciiSubjectIsEncodedAndTemplatesValidated) {
  NotificationTemplate t{"n", "保留: %SUBJECT%", "本文\n"};
  NoticeFacts f;
  f.subject = std::string(40, 'x') + "【重要】お支払いについてのご案内とアカウントの確認のお願い";
  std::string m = render_message(t, f, "a@corp.example", "b@corp.example", 0, "corp.example");
  size_t s = m.find("Subject: "), e = m.find("\r\nDate:");
  std::string subj = m.substr(s, e - s);
  EXPECT_NE(subj.find("=?UTF-8?B?"), std::string::npos);
  for (size_t p = 0; p < subj.size();) {
    size_t n = subj.find("\r\n", p);
    std::string line = subj.substr(p, n == std::string::npos ? std::string::npos : n - p);
    EXPECT_LE(line.size(), 78u) << line;
    for (unsigned char c : line) EXPECT_LT(c, 0x80);
    if (n == std::string::npos) break;
    EXPECT_EQ(subj[n + 2], ' ') << "folded with CRLF SP";
    p = n + 2;
  }
  // Decoding the words gives the subject back (no UTF-8 sequence split).
  std::string decoded;
  for (size_t p = 0; (p = subj.find("=?UTF-8?B?", p)) != std::string::npos;) {
    size_t q = subj.find("?=", p + 10);
    std::string b64 = subj.substr(p + 10, q - p - 10);
    unsigned char out[128];
    int n = EVP_DecodeBlock(out, reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
    while (!b64.empty() && b64.back() == '=') {
      b64.pop_back();
      --n;
    }
    std::string part(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    decoded += part;
    p = q + 2;
  }
  EXPECT_EQ(decoded, "保留: " + f.subject);
  EXPECT_EQ(template_problem({"ok", "s", "b"}), "");
  EXPECT_NE(template_problem({"bad name", "s", "b"}), "");
  EXPECT_NE(template_problem({"ok", "two\nlines", "b"}).find("subject"), std::string::npos);
  EXPECT_NE(template_problem({"ok", "s", std::string("\x01")}).find("body"), std::string::npos);
}
