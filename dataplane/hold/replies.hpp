// The SMTP replies the dataplane speaks in the server's place when it
// enforces a verdict, holds a message, or loses sync with a session. One
// home for their wording: the wire tests and the control plane read them.
#pragma once

#include <string>
#include <string_view>

namespace sekisho::hold {

// What the client hears while the dataplane closes a session whose server
// side a verdict cut off.
inline constexpr std::string_view kClosingReply = "221 2.0.0 sekisho: closing connection\r\n";

// The text of an injected reply: the deciding rule's (printable ASCII only,
// at most 200 bytes; anything else becomes a space) or |fallback|.
std::string reply_text(const std::string& rule_text, const char* fallback);

// 550 (|reject|) or 451 for a message the policy refuses, with the rule's
// text or the default, and the message's reference.
std::string verdict_reply(bool reject, const std::string& rule_text, const std::string& ref);

// 451 for a session the engines lost sync with; |why| names the reason
// (smtp/desync.def, or a TCP one).
std::string desync_reply(const char* why);

// 451 for a message to quarantine that cannot be held (not retained whole,
// no spool, queue full, spool failure, hold deadline).
std::string hold_failed_reply(const std::string& ref);

// 250 for a message the spool holds durably, then 421: the session ends.
std::string held_reply(const std::string& id);

}  // namespace sekisho::hold
