// The verdict: one Action and one Verdict for every path a message can
// take (the dataplane's workers, sekisho-replay, sekishoctl rules explain,
// the benchmarks). What decides it is the Evaluator (evaluator.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/lang/rule.hpp"

namespace sekisho::verdict {

// pass, tag (delivered, marked in the event), quarantine, reject, tempfail:
// the rule language's actions are the verdict's (rules/lang/rule.hpp), so
// a "decide" rule, an envelope rule and a policy all speak one enum.
using Action = rules::Action;
using rules::action_name;

// Whether the message goes on to the server as sent (pass or tag).
constexpr bool delivers(Action a) { return a == Action::pass || a == Action::tag; }
// "pass", "tag", "quarantine", "reject", "tempfail" -> a; false otherwise.
inline bool action_from_name(std::string_view name, Action& a) {
  static constexpr std::string_view kNames[] = {"pass", "tag", "quarantine", "reject", "tempfail"};
  for (size_t i = 0; i < 5; ++i)
    if (name == kNames[i]) {
      a = Action(i);
      return true;
    }
  return false;
}

// Which input decided the action (the counters and the event say why).
enum class Stage : uint8_t {
  none,        // nothing decided: pass
  smuggling,   // ended by a bare-LF variant of CRLF.CRLF (SMTP smuggling)
  envelope,    // an envelope rule (glob policy)
  content,     // the content ruleset (a decide rule, a threshold, a forced action)
  overflow,    // a context outgrew its collection cap, by policy
  mime,        // the MIME engine hit a cap or could not parse, by policy
};
const char* stage_name(Stage s);

struct Verdict {
  Action action = Action::pass;
  Stage stage = Stage::none;
  std::string rule;   // what decided ("" when nothing did); for tag, the tagging rule
  std::string reply;  // the deciding rule's reply text for reject/tempfail ("" = the default)
  std::string id;     // the reference given to the client (reject/tempfail/quarantine), set by the caller
  // The content scan's findings (empty without a ruleset).
  bool scanned = false;
  bool content_truncated = false;  // a context hit its collection cap: scanned what was kept
  double score = 0;
  std::vector<std::pair<std::string, std::string>> rules_hit;  // (rule, context)
  std::string sender_class;                                     // "P".."D", "" when not scanned
  std::vector<std::string> categories;
};

}  // namespace sekisho::verdict
