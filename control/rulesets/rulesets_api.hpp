// HTTP routes of rule packs, ruleset versions, the policy and the
// notification templates (JSON; mutations need Access::admin):
//
//   GET  /api/rulesets                  {active, versions: [...]} newest first (?limit=1..1000)
//   POST /api/rulesets[?activate=1]     upload packs: JSON {"files": {"name": "text"}} or a tar
//                                       (Content-Type application/x-tar); 202 {version, state, check}
//                                       or 422 {error, errors: ["file:line: reason"]}
//   POST /api/rulesets/check            the same check without a version: {ok, errors, rules, lists}
//   GET  /api/rulesets/V                the version (state, counts, error, report, files)
//   POST /api/rulesets/V/activate       tells the dataplane; {version, previous, dataplane}
//   POST /api/rulesets/rollback         activates the version active before the current one
//   GET  /api/policy                    {revision, created_us, created_by, policy, compiled}
//   PUT  /api/policy[?activate=1]       saves a policy; a new ruleset version (packs of the
//                                       active version + this policy): 202 {revision, version};
//                                       422 {error, errors: [{rule, name, field, reason, text}]}
//   POST /api/policy/preview            {"policy"?: ..., "message"?: {mail_from, rcpt_to, client_ip,
//                                       headers: [[name, value]], body}} -> {errors, compiled, result}
//                                       (the policy alone: pack rules, their score and classes are absent)
//   GET  /api/templates                 [{name, subject, body, updated_us, updated_by}]
//   GET|PUT|DELETE /api/templates/NAME  PUT {"subject", "body"}
//   POST /api/templates/NAME/render     {"sender", "rcpts", "to", "cc", "subject", "rule"} -> {subject, body, recipients}
//
// Errors: 400 bad input, 404 unknown version/template, 409 wrong state
// ("version 3 is compiling"), 502 the dataplane refused or is unreachable;
// always {"error": "..."}. Every mutation is audited.
//
// Thread-safety: as the services'.
#pragma once

#include "control/http/router.hpp"
#include "control/policy/policy_store.hpp"
#include "control/rulesets/rulesets.hpp"

namespace sekisho::control::rulesets {

void add_ruleset_routes(http::Router& router, RulesetService& rulesets, policy::PolicyStore& policies,
                        AuditHook audit = {});

}  // namespace sekisho::control::rulesets
