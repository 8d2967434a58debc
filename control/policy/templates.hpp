// Notification templates: the message a policy rule's "notify" sends (to
// the sender, the recipients or an administrator) when it decides. A
// template has a subject line and a text body with placeholders:
//
//   %SENDER%   the envelope sender ("<>" for the null sender)
//   %RCPTS%    the envelope recipients that the message's own To or Cc
//              fields name, comma-separated; never one that is not in To/Cc
//              (a Bcc'd recipient is never revealed); "(undisclosed
//              recipients)" when none is
//   %SUBJECT%  the message's decoded Subject
//   %RULE%     the policy rule that decided (its name as written)
//
// Rendering never lets mail-derived text add header fields or lines: every
// substituted value has CR, LF and other control characters replaced by a
// space; the Subject header is RFC 2047-encoded when it is not plain ASCII
// and folded only with CRLF + space. render_message() gives the whole RFC
// 5322 message (CRLF line ends) for an SMTP client.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sekisho::control::policy {

struct NotificationTemplate {
  std::string name;     // letters, digits, - _ . (1..64)
  std::string subject;  // one line, placeholders allowed (<= 500 bytes)
  std::string body;     // text, placeholders allowed (<= 64 KiB)
};

// What the placeholders are filled from.
struct NoticeFacts {
  std::string envelope_sender;                // "" = null sender
  std::vector<std::string> envelope_rcpts;    // as in the envelope
  std::vector<std::string> header_to_cc;      // values of the message's To and Cc fields (decoded)
  std::string subject;                        // decoded
  std::string rule;
};

struct RenderedNotice {
  std::string subject;  // after substitution, one line (UTF-8)
  std::string body;     // after substitution, CRLF line ends
};

// Validates a template: "" or the reason (naming the field).
std::string template_problem(const NotificationTemplate& t);

// The %RCPTS% list: envelope recipients named in To/Cc (case-insensitive
// address comparison), in envelope order, no duplicates.
std::vector<std::string> visible_recipients(const NoticeFacts& f);

RenderedNotice render(const NotificationTemplate& t, const NoticeFacts& f);

// A complete message: From, To, Subject (encoded when needed), Date,
// Message-ID, MIME-Version, Content-Type text/plain; charset=utf-8,
// Content-Transfer-Encoding 8bit, Auto-Submitted: auto-generated, blank
// line, body. |from| and |to| are plain addresses (validated: no spaces,
// no control characters, one '@'); std::invalid_argument otherwise.
std::string render_message(const NotificationTemplate& t, const NoticeFacts& f, const std::string& from,
                           const std::string& to, int64_t now_us, const std::string& message_id_domain);

// Replaces CR, LF, TAB and other control characters by a space.
std::string one_line(std::string_view s);

// RFC 2047 "B" encoding of a header value when it is not printable ASCII,
// folded with CRLF SP between encoded words (no word over 75 characters).
std::string encode_header_value(std::string_view utf8, size_t name_len);

}  // namespace sekisho::control::policy
