// HTTP routes of rule packs and ruleset versions (JSON; mutations need
// Access::admin). The policy's and templates' routes are policy/policy_api.hpp.
//
//   GET  /api/rulesets                  {active, versions: [...]} newest first (?limit=1..1000)
//   POST /api/rulesets[?activate=1]     upload packs: JSON {"files": {"name": "text"}} or a tar
//                                       (Content-Type application/x-tar); 202 {version, state, check}
//                                       or 422 {error, errors: ["file:line: reason"]}
//   POST /api/rulesets/check            the same check without a version: {ok, errors, rules, lists}
//   GET  /api/rulesets/V                the version (state, counts, error, report, files)
//   POST /api/rulesets/V/activate       tells the dataplane; {version, previous, dataplane}
//   POST /api/rulesets/rollback         activates the version active before the current one
//
// Errors: 400 bad input, 404 unknown version, 409 wrong state ("version 3
// is compiling"), 502 the dataplane refused or is unreachable; always
// {"error": "..."}. Every mutation is audited (by the RulesetService).
//
// Thread-safety: as the service's.
#pragma once

#include "control/http/router.hpp"
#include "control/rulesets/rulesets.hpp"

namespace sekisho::control::rulesets {

void add_ruleset_routes(http::Router& router, RulesetService& rulesets);

}  // namespace sekisho::control::rulesets
