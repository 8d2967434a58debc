#include "dataplane/hold/replies.hpp"

namespace sekisho::hold {

std::string reply_text(const std::string& rule_text, const char* fallback) {
  if (rule_text.empty()) return fallback;
  std::string t = rule_text.substr(0, 200);
  for (char& c : t)
    if (c < 0x20 || c > 0x7e) c = ' ';
  return t;
}

std::string verdict_reply(bool reject, const std::string& rule_text, const std::string& ref) {
  return (reject ? "550 5.7.1 " : "451 4.7.1 ") +
         reply_text(rule_text, reject ? "Message rejected by policy" : "Message deferred by policy, try later") +
         " (ref " + ref + ")\r\n";
}

std::string desync_reply(const char* why) {
  return std::string("451 4.7.0 sekisho: session cannot be inspected (") + why + "), try again later\r\n";
}

std::string hold_failed_reply(const std::string& ref) {
  return "451 4.3.0 Message cannot be held now, try later (ref " + ref + ")\r\n";
}

std::string held_reply(const std::string& id) {
  return "250 2.0.0 Ok: held as " + id + "\r\n421 4.3.0 sekisho: closing connection\r\n";
}

}  // namespace sekisho::hold
