// Notifications of policy decisions: a rule with "notify" sends its
// rendered template through a real SMTP server (aiosmtpd as the relay) to
// each target once, never to the null sender, never revealing a Bcc'd
// recipient in %RCPTS%; a second pass (or a second control plane) sends
// nothing again; without a relay nothing is sent and that is recorded.
#include "control/notify/notifier.hpp"

#include <gtest/gtest.h>

#include "tests/unit/control/backends.hpp"
#include "tests/unit/control/control_test_util.hpp"
#include "control/ingest/journal_ingest.hpp"
#include "tests/unit/control/smtp_sink.hpp"
#include "control/tracking/sql_store.hpp"
#include "control/tracking/time.hpp"

namespace sekisho::control::notify {
namespace {

using nlohmann::json;
using testing::Sink;

class NotifyTest : public testing::BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (IsSkipped()) return;
    log.emplace(db());
    policies.emplace(db());
    policy::Policy p;
    std::vector<policy::PolicyError> errors;
    json pj = {{"rules",
                {{{"name", "Hold urgent"},
                  {"conditions", {{"header", {{"name", "Subject"}, {"keywords", {"urgent"}}}}}},
                  {"action", "quarantine"},
                  {"notify", "held"},
                  {"notify_to", {"sender", "recipients", "admin@corp.example"}}}}}};
    ASSERT_TRUE(policy::parse_policy(pj, p, errors)) << (errors.empty() ? "" : errors[0].text());
    policies->save(p, "admin", 1);
    policies->put_template({"held", "Held: %SUBJECT%", "Your message to %RCPTS% was held by %RULE%.\nSender: %SENDER%\n"},
                           "admin", 1);
  }
  void add(const std::string& id, const std::string& sender, std::vector<std::string> rcpts, json to,
           const std::string& subject, const std::string& rule) {
    json j = testing::message_event("2026-12-02T10:00:00Z", sender, rcpts, subject, "quarantine", id);
    j["to"] = to;
    j["verdict"] = {{"action", "quarantine"}, {"rule", rule}};
    tracking::LogEntry e;
    std::string err;
    ASSERT_EQ(ingest::parse_event_line(j.dump(), e, err), ingest::LineKind::message) << err;
    log->ingest({e});
  }
  Options opt(uint16_t port) {
    Options o;
    o.relay_host = port ? "127.0.0.1" : "";
    o.relay_port = port;
    o.from = "postmaster@corp.example";
    o.smtp.timeout = std::chrono::seconds(10);
    return o;
  }
  int64_t kNow = *tracking::parse_iso_time_us("2026-12-02T10:05:00Z");
  std::optional<tracking::SqlStore> log;
  std::optional<policy::PolicyStore> policies;
};

TEST_P(NotifyTest, EachTargetOnceAndBccNeverRevealed) {
  Sink relay(false);
  add("SK1", "alice@outside.test", {"bob@corp.example", "hidden@corp.example"}, {"bob@corp.example"},
      "urgent: wire money", "POLICY_HOLD_URGENT");
  add("SK2", "carol@outside.test", {"bob@corp.example"}, {"bob@corp.example"}, "lunch", "SK_OTHER_RULE");
  Notifier n(db(), *policies, opt(relay.port()));
  Stats s = n.pass(kNow);
  // alice, bob, hidden (an envelope recipient gets the notice), admin: four notices for SK1, none for SK2.
  EXPECT_EQ(s.sent, 4u);
  std::set<std::string> to;
  for (int i = 1; i <= 4; ++i) {
    json m = relay.meta(i);
    EXPECT_EQ(m["mail_from"], "");  // null envelope sender: notices never bounce
    to.insert(m["rcpt_to"][0].get<std::string>());
    std::string msg = relay.message(i);
    EXPECT_NE(msg.find("Subject: Held: urgent: wire money\r\n"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Your message to bob@corp.example was held by Hold urgent."), std::string::npos) << msg;
    // The Bcc'd recipient is not revealed: %RCPTS% names bob only, and no
    // notice but the one addressed to hidden itself mentions it.
    if (m["rcpt_to"][0] != "hidden@corp.example") {
      EXPECT_EQ(msg.find("hidden@corp.example"), std::string::npos) << msg;
    }
    EXPECT_NE(msg.find("Auto-Submitted: auto-generated"), std::string::npos);
  }
  EXPECT_EQ(to, (std::set<std::string>{"alice@outside.test", "bob@corp.example", "hidden@corp.example",
                                       "admin@corp.example"}));
  // Again, and from a second control plane: nothing more.
  EXPECT_EQ(n.pass(kNow).sent, 0u);
  auto db2 = connect();
  policy::PolicyStore p2(*db2);
  Notifier other(*db2, p2, opt(relay.port()));
  EXPECT_EQ(other.pass(kNow).sent, 0u);
  EXPECT_TRUE(relay.message(5).empty());
}

TEST_P(NotifyTest, NullSenderOldEventsAndNoRelay) {
  Sink relay(false);
  add("SK3", "", {"bob@corp.example"}, {"bob@corp.example"}, "urgent bounce", "POLICY_HOLD_URGENT");
  Notifier n(db(), *policies, opt(relay.port()));
  // Too old: not considered at all.
  EXPECT_EQ(n.pass(kNow + int64_t(2) * 86400 * 1000000).sent, 0u);
  Stats s = n.pass(kNow);
  EXPECT_EQ(s.skipped, 1u);  // the null sender
  EXPECT_EQ(s.sent, 2u);     // bob and the admin
  add("SK4", "dave@outside.test", {"bob@corp.example"}, {"bob@corp.example"}, "urgent 2", "POLICY_HOLD_URGENT");
  Notifier no_relay(db(), *policies, opt(0));
  Stats r = no_relay.pass(kNow);
  EXPECT_EQ(r.no_relay, 3u);
  EXPECT_EQ(r.sent, 0u);
  EXPECT_EQ(*db().query_text("SELECT state FROM notifications WHERE event_id = 'SK4' AND target = ?",
                             {std::string("dave@outside.test")}),
            "no_relay");
}

TEST_P(NotifyTest, NotifyToNeedsATemplateAndValidTargets) {
  policy::Policy p;
  std::vector<policy::PolicyError> errors;
  json bad = {{"rules",
               {{{"name", "R"},
                 {"conditions", {{"header", {{"name", "Subject"}, {"keywords", {"x"}}}}}},
                 {"action", "tag"},
                 {"notify_to", {"everyone", "a@b.example"}}}}}};
  EXPECT_FALSE(policy::parse_policy(bad, p, errors));
  std::string all;
  for (const auto& e : errors) all += e.text() + "\n";
  EXPECT_NE(all.find("notify_to[0]"), std::string::npos) << all;
  EXPECT_NE(all.find("needs 'notify'"), std::string::npos) << all;
}

SEKISHO_INSTANTIATE_BACKENDS(NotifyTest);

}  // namespace
}  // namespace sekisho::control::notify
