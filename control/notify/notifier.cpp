#include "control/notify/notifier.hpp"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "control/policy/templates.hpp"
#include "control/db/db.hpp"

namespace sekisho::control::notify {

using nlohmann::json;

namespace {

const db::Migration kMigrations[] = {
    {1, "notifications sent for policy decisions",
     R"sql(
CREATE TABLE notifications (
  event_id   TEXT NOT NULL,
  target     TEXT NOT NULL,
  rule       TEXT NOT NULL,
  template   TEXT NOT NULL,
  state      TEXT NOT NULL,
  detail     TEXT NOT NULL,
  ts_us      BIGINT NOT NULL,
  PRIMARY KEY (event_id, target)
);
)sql"},
};

std::vector<std::string> strings(const std::string& text) {
  std::vector<std::string> out;
  json j = json::parse(text, nullptr, false);
  if (j.is_array())
    for (const auto& x : j)
      if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

struct Event {
  std::string sender, subject, rule;
  std::vector<std::string> rcpts, to_cc;
};

}  // namespace

Notifier::Notifier(db::Db& db, policy::PolicyStore& policies, Options opt)
    : db_(db), policies_(policies), opt_(std::move(opt)) {
  db_.migrate("notify", kMigrations);
}

Stats Notifier::pass(int64_t now_us) {
  Stats st;
  // Policy rules that notify, by the name they compile to.
  std::map<std::string, policy::PolicyRule> notifying;
  for (const auto& r : policies_.current().policy.rules)
    if (!r.notify.empty()) notifying[policy::compiled_name(r.name)] = r;
  if (notifying.empty()) return st;

  // Recent events decided by a policy rule and not claimed yet.
  std::map<std::string, Event> events;
  db_.exec(
      "SELECT t.event_id, t.envelope_sender, t.recipient, t.header_to, t.header_cc, t.subject, t.rule "
      "FROM tracking_log t WHERE t.rule LIKE 'POLICY\\_%' ESCAPE '\\' AND t.ts_us >= ? "
      "AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.event_id = t.event_id) "
      "ORDER BY t.ts_us, t.event_id, t.rcpt_index LIMIT 10000",
      {now_us - opt_.max_age_us}, [&](const db::Row& r) {
        Event& e = events[r.text(0)];
        e.sender = r.text(1);
        if (!r.text(2).empty()) e.rcpts.push_back(r.text(2));
        if (e.to_cc.empty()) {
          e.to_cc = strings(r.text(3));
          for (auto& a : strings(r.text(4))) e.to_cc.push_back(a);
        }
        e.subject = r.text(5);
        e.rule = r.text(6);
      });

  for (const auto& [id, e] : events) {
    auto rule = notifying.find(e.rule);
    if (rule == notifying.end()) continue;
    const policy::PolicyRule& pr = rule->second;
    std::vector<std::string> targets;
    for (const auto& t : pr.notify_to) {
      if (t == "sender") targets.push_back(e.sender);  // "" (null sender) is skipped below
      else if (t == "recipients") targets.insert(targets.end(), e.rcpts.begin(), e.rcpts.end());
      else targets.push_back(t);
    }
    auto tpl = policies_.get_template(pr.notify);
    std::set<std::string> seen;
    for (const auto& to : targets) {
      std::string target = to.empty() ? "<>" : to;
      if (!seen.insert(target).second) continue;
      // Claim (event, target) first: exactly once, whoever gets there.
      if (db_.exec("INSERT INTO notifications (event_id, target, rule, template, state, detail, ts_us) VALUES (?, ?, "
                   "?, ?, 'sending', '', ?) ON CONFLICT (event_id, target) DO NOTHING",
                   {id, target, e.rule, pr.notify, now_us}) != 1)
        continue;
      std::string state, detail;
      if (to.empty()) {
        state = "skipped", detail = "the null sender is never notified";
        ++st.skipped;
      } else if (!tpl) {
        state = "skipped", detail = "no template '" + pr.notify + "'";
        ++st.skipped;
      } else if (opt_.relay_host.empty()) {
        state = "no_relay", detail = "no relay configured (control.notify_relay or release_relay)";
        ++st.no_relay;
      } else {
        policy::NoticeFacts f{e.sender, e.rcpts, e.to_cc, e.subject, pr.name};
        try {
          std::string msg = policy::render_message(tpl->t, f, opt_.from, to, now_us, opt_.message_id_domain);
          smtp::DeliveryResult d = smtp::deliver(opt_.relay_host, opt_.relay_port, "", {to}, msg, opt_.smtp);
          state = d.delivered ? "sent" : "failed";
          detail = d.delivered ? std::to_string(d.final.code) + " " + d.final.text : d.error + " (" + std::to_string(d.final.code) + " " + d.final.text + ")";
          d.delivered ? ++st.sent : ++st.failed;
        } catch (const std::invalid_argument& ex) {
          state = "failed", detail = ex.what();
          ++st.failed;
        }
      }
      // The detail holds the server's reply text: stored as valid UTF-8 without NUL.
      db_.exec("UPDATE notifications SET state = ?, detail = ? WHERE event_id = ? AND target = ?",
               {state, db::valid_utf8(detail), id, target});
    }
  }
  return st;
}

}  // namespace sekisho::control::notify
