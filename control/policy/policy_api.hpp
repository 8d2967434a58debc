// HTTP routes of the policy and the notification templates (JSON; reads
// need Access::user, changes Access::admin):
//
//   GET  /api/policy                    {revision, created_us, created_by, policy, compiled}
//   PUT  /api/policy[?activate=1]       saves a policy, then on_saved() makes a ruleset version
//                                       (packs of the active version + this policy): 202 {revision,
//                                       version}; 422 {error, errors: [{rule, name, field, reason, text}]}
//                                       (POST = PUT, for forms)
//   POST /api/policy/preview            {"policy"?: ..., "message"?: {mail_from, rcpt_to, client_ip,
//                                       headers: [[name, value]], body}} -> {errors, compiled, result}
//                                       (the policy alone: pack rules, their score and classes are absent)
//   GET  /api/templates                 [{name, subject, body, updated_us, updated_by}]
//   GET|PUT|DELETE /api/templates/NAME  PUT {"subject", "body"}
//   POST /api/templates/NAME/render     {"sender", "rcpts", "to", "cc", "subject", "rule"} -> {subject, body, recipients}
//
// Errors: 400 bad input, 404 unknown template, 422 a policy or template
// that does not check; always {"error": "..."}. Policy and template
// changes are audited (policy.update, template.update, template.delete).
//
// Thread-safety: as the PolicyStore's.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "control/audit/hook.hpp"
#include "control/http/router.hpp"
#include "control/policy/policy_store.hpp"

namespace sekisho::control::policy {

// Called after a policy is saved: (actor, now_us, activate_when_compiled)
// -> the ruleset version made from it (rulesets::RulesetService::policy_changed).
using PolicySaved = std::function<int64_t(const std::string& actor, int64_t now_us, bool activate)>;

void add_policy_routes(http::Router& router, PolicyStore& policies, PolicySaved on_saved, audit::Hook audit = {});

}  // namespace sekisho::control::policy
