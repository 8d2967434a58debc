// The one evaluator: every input that can decide a message's fate, in one
// order, for every caller (worker, sekisho-replay, sekishoctl rules
// explain, benchmarks), so offline and inline verdicts are the same.
//
//   1. smuggling   the message ended at a bare-LF variant of CRLF.CRLF
//   2. envelope    the first envelope rule whose globs match
//   3. content     the content ruleset (Hyperscan/PCRE2, scanners/match)
//   4. overflow    a context outgrew its collection cap (policy)
//   5. mime        the MIME engine stopped at a cap or could not parse (policy)
// Stages 4 and 5 only make a passing verdict stricter.
//
// Thread-safety: a Policy is immutable and shared; an Evaluator belongs to
// one thread (it borrows that thread's Hyperscan scratch).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scanners/match/match.hpp"
#include "scanners/message/message.hpp"
#include "scanners/mime/collect.hpp"
#include "scanners/mime/mime_parser.hpp"
#include "scanners/verdict/policy.hpp"
#include "scanners/verdict/verdict.hpp"

namespace sekisho::verdict {

// The typed outcome of the MIME engine's parse of f.
MimeOutcome mime_outcome(const mime::MessageFacts& f);

// What the evaluator reads about one message, all borrowed for the call.
struct Inputs {
  const message::SessionFacts* session = nullptr;
  const message::Transaction* txn = nullptr;  // null: no envelope (a message file without one)
  std::string_view client_ip;
  const mime::ContentCollector* content = nullptr;  // the collected contexts (null: not collected)
  // The message as received for "full" rules when the caller keeps it
  // elsewhere (the pipeline's retained copy); empty: the collector's.
  std::span<const uint8_t> message;
  bool message_truncated = false;  // |message| is a prefix
  const mime::MessageFacts* mime = nullptr;         // what the MIME engine found (null: not parsed)
};

// The content ruleset and this thread's scratch for it (both null: none).
struct Content {
  const match::Ruleset* ruleset = nullptr;
  match::Scratch* scratch = nullptr;
};

// The verdict of one message. |detail|, when given, receives the content
// scan's full result (hits with descriptions and counts; its views are
// valid until the scratch scans again) for sekishoctl rules explain.
Verdict evaluate(const Policy& policy, const Content& content, const Inputs& in, match::Result* detail = nullptr);

// "1.2.3.4:25" or "[2001:db8::1]:25" -> the address.
std::string_view host_of(std::string_view endpoint);

}  // namespace sekisho::verdict
