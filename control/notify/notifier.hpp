// Notifications of policy decisions: when a message was decided by a policy
// rule that names a template ("notify") the notifier renders that template
// (control/policy/templates.hpp: %SENDER%, %RCPTS% never revealing a Bcc,
// %SUBJECT%, %RULE%) once per target of the rule's "notify_to" ("sender",
// "recipients", addresses) and sends it through the relay with the SMTP
// client, from the configured address, with the null envelope sender (a
// notice must never bounce back and forth).
//
// Exactly once: each (event, target) is claimed in the notifications table
// (INSERT ... ON CONFLICT DO NOTHING) before it is sent, so several control
// planes on one PostgreSQL, or a restart, never send it twice; a notice
// whose delivery failed stays "failed" with the reason (not retried).
// Only events newer than max_age are considered (a new policy does not
// notify about last month's mail). The null sender is never notified.
//
// Thread-safety: one Notifier per Db connection (the ingester's).
#pragma once

#include <cstdint>
#include <string>

#include "control/policy/policy_store.hpp"
#include "control/smtp/smtp_client.hpp"
#include "control/db/db.hpp"

namespace sekisho::control::notify {

struct Options {
  std::string relay_host;  // "" = notifications are recorded as "no_relay", not sent
  uint16_t relay_port = 25;
  std::string from = "postmaster@localhost";  // header From
  std::string message_id_domain = "localhost";
  smtp::ClientOptions smtp;
  int64_t max_age_us = int64_t(86400) * 1000000;
};

struct Stats {
  uint64_t sent = 0, failed = 0, no_relay = 0, skipped = 0;  // skipped: null sender, missing template
};

class Notifier {
 public:
  Notifier(db::Db& db, policy::PolicyStore& policies, Options opt);
  Stats pass(int64_t now_us);

 private:
  db::Db& db_;
  policy::PolicyStore& policies_;
  Options opt_;
};

}  // namespace sekisho::control::notify
