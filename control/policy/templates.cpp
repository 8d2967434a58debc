#include "control/policy/templates.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cctype>
#include <ctime>
#include <stdexcept>

#include "scanners/mime/header_scan.hpp"

namespace sekisho::control::policy {

namespace {

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return o;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}


std::string bare(std::string_view a) {
  a = trim(a);
  if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = a.substr(1, a.size() - 2);
  return std::string(a);
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  size_t p = 0;
  while ((p = s.find(from, p)) != std::string::npos) {
    s.replace(p, from.size(), to);
    p += to.size();
  }
}

std::string substitute(std::string_view text, const NoticeFacts& f) {
  // One pass over the template, so a value that contains "%RULE%" is not expanded again.
  std::string rcpts;
  for (const auto& r : visible_recipients(f)) rcpts += (rcpts.empty() ? "" : ", ") + r;
  if (rcpts.empty()) rcpts = "(undisclosed recipients)";
  const std::string sender = f.envelope_sender.empty() ? "<>" : f.envelope_sender;
  const std::pair<std::string_view, std::string> vars[] = {
      {"%SENDER%", one_line(sender)}, {"%RCPTS%", one_line(rcpts)},
      {"%SUBJECT%", one_line(f.subject)}, {"%RULE%", one_line(f.rule)}};
  std::string out;
  for (size_t i = 0; i < text.size();) {
    bool done = false;
    if (text[i] == '%')
      for (const auto& [k, v] : vars)
        if (text.substr(i, k.size()) == k) {
          out += v;
          i += k.size();
          done = true;
          break;
        }
    if (!done) out += text[i++];
  }
  return out;
}

bool plain_address(std::string_view a) {
  if (a.empty() || a.size() > 320) return false;
  size_t at = a.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == a.size() || a.find('@', at + 1) != std::string_view::npos)
    return false;
  for (unsigned char c : a)
    if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == ',' || c == '"' || c == '(' || c == ')') return false;
  return true;
}

}  // namespace

std::string one_line(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (unsigned char c : s) o += (c < 0x20 || c == 0x7f) ? ' ' : static_cast<char>(c);
  return o;
}

std::string template_problem(const NotificationTemplate& t) {
  if (t.name.empty() || t.name.size() > 64 ||
      t.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != std::string::npos)
    return "name: expected 1 to 64 letters, digits, '-', '_' or '.'";
  if (t.subject.empty() || t.subject.size() > 500) return "subject: expected 1 to 500 bytes";
  for (unsigned char c : t.subject)
    if (c < 0x20 || c == 0x7f) return "subject: one line without control characters";
  if (t.body.size() > 64 * 1024) return "body: more than 64 KiB";
  for (unsigned char c : t.body)
    if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f) return "body: control characters";
  return "";
}

std::vector<std::string> visible_recipients(const NoticeFacts& f) {
  std::vector<std::string> named;
  uint32_t errors = 0;
  for (const auto& v : f.header_to_cc)
    for (auto& a : mime::parse_addresses(v, errors))  // the MIME engine's RFC 5322 parser
      if (!a.address.empty()) named.push_back(lower(a.address));
  std::vector<std::string> out, seen;
  for (const auto& r : f.envelope_rcpts) {
    std::string b = bare(r), l = lower(b);
    if (b.empty()) continue;
    bool in_header = false, dup = false;
    for (auto& n : named) in_header = in_header || n == l;
    for (auto& s : seen) dup = dup || s == l;
    if (in_header && !dup) {
      out.push_back(b);
      seen.push_back(l);
    }
  }
  return out;
}

RenderedNotice render(const NotificationTemplate& t, const NoticeFacts& f) {
  RenderedNotice r;
  r.subject = one_line(substitute(t.subject, f));
  std::string body = substitute(t.body, f);
  replace_all(body, "\r\n", "\n");
  replace_all(body, "\r", "\n");
  replace_all(body, "\n", "\r\n");
  if (!body.empty() && body.size() >= 2 && body.substr(body.size() - 2) != "\r\n") body += "\r\n";
  r.body = std::move(body);
  return r;
}

std::string encode_header_value(std::string_view v, size_t name_len) {
  bool plain = true;
  for (unsigned char c : v)
    if (c < 0x20 || c > 0x7e) plain = false;
  if (plain && v.size() + name_len + 2 <= 998 && v.find("=?") == std::string_view::npos) return std::string(v);
  // Encoded words of at most 75 characters, lines of at most 78 ("Name: " on the first).
  std::string out;
  size_t i = 0;
  while (i < v.size()) {
    size_t prefix = out.empty() ? name_len + 2 : 1;
    size_t room = std::min<size_t>(75, 78 - std::min<size_t>(prefix, 60)) - 12;  // minus "=?UTF-8?B?" "?="
    size_t n = std::min<size_t>(room / 4 * 3, v.size() - i);
    // Never split a UTF-8 sequence: back off to the start of a character.
    while (n > 1 && i + n < v.size() && (static_cast<unsigned char>(v[i + n]) & 0xc0) == 0x80) --n;
    unsigned char enc[64];
    int len = EVP_EncodeBlock(enc, reinterpret_cast<const unsigned char*>(v.data() + i), static_cast<int>(n));
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?";
    out.append(reinterpret_cast<const char*>(enc), static_cast<size_t>(len));
    out += "?=";
    i += n;
  }
  return out;
}

std::string render_message(const NotificationTemplate& t, const NoticeFacts& f, const std::string& from,
                           const std::string& to, int64_t now_us, const std::string& message_id_domain) {
  if (!plain_address(from)) throw std::invalid_argument("notification From is not a plain address");
  if (!plain_address(to)) throw std::invalid_argument("notification To is not a plain address");
  if (message_id_domain.empty() || message_id_domain.find_first_not_of(
                                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != std::string::npos)
    throw std::invalid_argument("Message-ID domain is not a domain");
  RenderedNotice r = render(t, f);
  time_t secs = static_cast<time_t>(now_us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char date[64];
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  unsigned char rnd[8];
  RAND_bytes(rnd, sizeof rnd);
  char id[32];
  snprintf(id, sizeof id, "%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
  std::string m;
  m += "From: " + from + "\r\n";
  m += "To: " + to + "\r\n";
  m += "Subject: " + encode_header_value(r.subject, 7) + "\r\n";
  m += std::string("Date: ") + date + "\r\n";
  m += "Message-ID: <" + std::string(id) + "." + std::to_string(now_us) + "@" + message_id_domain + ">\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "Auto-Submitted: auto-generated\r\n";
  m += "\r\n";
  m += r.body;
  return m;
}

}  // namespace sekisho::control::policy
