// What the evaluator is configured with: the envelope rules and the action
// at each input that is policy (smuggling, a collection cap, a MIME cap).
// Plain data, so a configuration loader can build it without linking the
// matcher.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "scanners/verdict/verdict.hpp"

namespace sekisho::verdict {

// An envelope rule: the first that matches decides. Globs as fnmatch(3),
// case-insensitive; empty matches all.
struct EnvelopeRule {
  std::string name;
  std::string mail_from;  // "" matches any sender; "<>" matches the null sender
  std::string rcpt_to;    // matches if any envelope recipient (accepted or pending) matches
  Action action = Action::pass;
  int line = 0;           // where it was configured
};

// How the MIME engine's parse ended (mime::MessageFacts): the typed outcome
// the evaluator's mime stage reads.
enum class MimeOutcome : uint8_t {
  ok,
  limit,      // a cap was hit: header block, parts, attachments or URLs kept, HTML
  nesting,    // multipart/message nesting beyond the depth cap
  malformed,  // structure the engine had to guess at (no boundary, unclosed multipart, undecodable encoding)
};
const char* mime_outcome_name(MimeOutcome o);

struct Policy {
  Action smuggling = Action::reject;      // pass lets the message on to the next stages
  std::vector<EnvelopeRule> envelope;
  Action overflow = Action::pass;         // a context over its collection cap (scan what was kept)
  Action mime_limit = Action::pass;       // per MimeOutcome; pass: scan what was parsed
  Action mime_nesting = Action::pass;
  Action mime_malformed = Action::pass;
};

}  // namespace sekisho::verdict
