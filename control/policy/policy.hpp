// Policy rules in the style of commercial mail gateways, and their
// compilation into rule-language text (rules/README.md, "Policy
// conditions") that is compiled together with the rule packs into one
// ruleset artifact. The dataplane and sekisho-replay then enforce a policy
// with nothing policy-specific of their own.
//
// A policy: internal domains and networks (for "direction") and an ordered
// list of rules. A rule: name, enabled, order, conditions (all must hold),
// action (pass, tag, quarantine, reject, tempfail), optional SMTP reply text
// (reject/tempfail) and an optional notification template name. Rules are
// tried by (order, position); the first enabled rule whose conditions hold
// decides the verdict, over the packs' thresholds and forced actions. If no
// rule holds, the packs decide.
//
// JSON (the API's and the database's form):
//   {"internal_domains": ["corp.example"], "internal_networks": ["10.0.0.0/8"],
//    "rules": [{"name": "Hold bulk mail", "enabled": true, "order": 10,
//               "conditions": {...}, "action": "quarantine",
//               "reply": "...", "notify": "template-name"}]}
// conditions (each optional, at least one):
//   "null_sender": true                          envelope sender is <>
//   "from_differs_from_sender": "address"|"domain"   header From vs envelope sender
//   "from_differs_from_reply_to": "address"|"domain" header From vs Reply-To
//   "header": {"name": "Subject", "keywords": ["..."]} or {"name": ..., "regex": "..."}
//             (+ "case_sensitive": bool, default false)
//   "recipient_count": {"of": "envelope"|"to_cc", "op": ">=", "value": 10}
//   "senders": {"list": ["a@x.example", "@y.example"], "match": "envelope"|"from", "not": bool}
//   "recipients": {"list": [...], "not": bool}   any envelope recipient listed ("not": none is)
//   "direction": "inbound"|"outbound"|"internal"
//   "sender_class": ["P", "J"]                   the packs' sender classes (P G H J E D)
//   "score": {"op": ">=", "value": 5}            the packs' score
//
// Errors name the rule and the field: `rule 2 "Hold bulk": conditions.header.regex: ...`.
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "rules/lang/rule.hpp"

namespace sekisho::control::policy {

enum class Compare { address, domain };
enum class Direction { inbound, outbound, internal };

struct HeaderMatch {
  std::string name;
  std::vector<std::string> keywords;  // any of them, as substrings
  std::string regex;                  // or a Perl regex (no delimiters)
  bool case_sensitive = false;
};

struct Comparison {
  std::string op;  // >= > <= < == !=
  double value = 0;
};

struct RecipientCount {
  bool to_cc = false;  // false: envelope recipients
  Comparison cmp;
};

struct AddressList {
  std::vector<std::string> addresses;  // normalised "local@domain"
  std::vector<std::string> domains;    // normalised "domain" (written "@domain"; covers subdomains)
  bool header_from = false;            // senders: match header From instead of the envelope sender
  bool negate = false;
};

struct Conditions {
  bool null_sender = false;
  std::optional<Compare> from_differs_from_sender, from_differs_from_reply_to;
  std::optional<HeaderMatch> header;
  std::optional<RecipientCount> recipient_count;
  std::optional<AddressList> senders, recipients;
  std::optional<Direction> direction;
  std::string sender_class;  // letters of PGHJED
  std::optional<Comparison> score;
};

struct PolicyRule {
  std::string name;
  bool enabled = true;
  int64_t order = 0;
  Conditions when;
  rules::Action action = rules::Action::pass;
  std::string reply;   // reject/tempfail only
  std::string notify;  // notification template name ("" = none)
  // Who gets that notification: "sender" (the envelope sender; never the
  // null sender), "recipients" (the envelope recipients) and/or plain
  // addresses (an administrator). Default: ["sender"].
  std::vector<std::string> notify_to;
};

struct Policy {
  std::vector<std::string> internal_domains;   // normalised
  std::vector<std::string> internal_networks;  // canonical CIDR
  std::vector<PolicyRule> rules;               // as given (positions matter for ties)
};

struct PolicyError {
  int rule = -1;          // position in "rules" (0-based), -1 for policy-wide fields
  std::string name;       // the rule's name as given ("" if none)
  std::string field;      // "conditions.header.regex", "internal_domains[2]", ...
  std::string reason;
  std::string text() const;  // `rule 2 "NAME": FIELD: REASON` or `FIELD: REASON`
};

// JSON -> Policy. Every problem is collected (not only the first); false if any.
bool parse_policy(const nlohmann::json& j, Policy& out, std::vector<PolicyError>& errors);
nlohmann::json policy_json(const Policy& p);

// The rule name a policy rule compiles to: "POLICY_" + the name in upper
// case with every other character '_' (what the tracking log shows as the
// verdict rule and notifications as %RULE%).
std::string compiled_name(const std::string& name);

// Rule-language text for the enabled rules, in decision order. Call after
// parse_policy succeeded.
std::string compile_policy(const Policy& p);

// Parses and compiles the policy alone (fast: no packs) and maps what the
// rules compiler refuses or reports back to the rule and field that caused
// it. Empty when the policy is sound.
std::vector<PolicyError> check_policy(const Policy& p);

const char* action_word(rules::Action a);

}  // namespace sekisho::control::policy
