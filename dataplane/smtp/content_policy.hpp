// The content verdict at the hold point: one scan of a message's collected
// contexts (envelope, header fields, text, raw text, the message, URLs,
// attachments) with a loaded ruleset, mapped to an SMTP action and written
// into the message record for its event. Shared by the dataplane's workers
// and sekisho-replay, so offline and inline verdicts are the same.
//
// Thread-safety: |scratch| belongs to the calling thread; the ruleset is
// shared read-only.
#pragma once

#include "scanners/match/match.hpp"
#include "dataplane/smtp/smtp_flow.hpp"

namespace sekisho::smtp {

struct ContentScan {
  Action action = Action::pass;
  bool tagged = false;          // the ruleset said "tag": delivered, marked in the event
  bool content_truncated = false;  // a context hit its collection cap: scanned what was kept
  std::string reply;            // a "decide ... reject|tempfail" rule's reply text ("" = default)
};

// Scans m (m.content and m.mime must be set) and fills m.score, m.rules_hit,
// m.sender_class, m.categories and, when the verdict is not pass,
// m.verdict_rule with the rule that decided (a "decide" rule) or else the
// highest-scoring rule that hit.
ContentScan scan_content(const match::Ruleset& rs, match::Scratch& scratch, MessageRecord& m);

}  // namespace sekisho::smtp
