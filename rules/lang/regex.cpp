#include "rules/lang/regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace sekisho::rules {

namespace {
char closing_of(char open) {
  switch (open) {
    case '{': return '}';
    case '(': return ')';
    case '[': return ']';
    case '<': return '>';
    default: return open;
  }
}
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}
}  // namespace

bool parse_regex_literal(std::string_view text, Regex& out, std::string& error) {
  std::string_view s = trim(text);
  size_t pos;
  char close;
  if (!s.empty() && s[0] == '/') {
    pos = 1;
    close = '/';
  } else if (s.size() > 2 && s[0] == 'm' && !isalnum(static_cast<unsigned char>(s[1])) &&
             s[1] != ' ' && s[1] != '\t' && s[1] != '_') {
    pos = 2;
    close = closing_of(s[1]);
  } else {
    error = "expected a regex: /re/mods or m{re}mods";
    return false;
  }
  size_t last = s.rfind(close);
  if (last == std::string_view::npos || last < pos) {
    error = std::string("regex not terminated: missing closing '") + close + "'";
    return false;
  }
  std::string_view mods = s.substr(last + 1);
  for (char c : mods) {
    // Perl's match modifiers; those without meaning here are accepted and ignored.
    if (std::string_view("imsxopgaulnd").find(c) == std::string_view::npos) {
      error = std::string("unknown regex modifier '") + c + "'";
      return false;
    }
  }
  out.source = std::string(s.substr(pos, last - pos));
  out.mods = std::string(mods);
  return true;
}

uint32_t pcre2_options(std::string_view mods) {
  uint32_t o = 0;
  for (char c : mods) {
    if (c == 'i') o |= PCRE2_CASELESS;
    if (c == 'm') o |= PCRE2_MULTILINE;
    if (c == 's') o |= PCRE2_DOTALL;
    if (c == 'x') o |= PCRE2_EXTENDED;
  }
  return o;
}

bool implies_multiline(RuleKind kind) { return kind == RuleKind::body || kind == RuleKind::rawbody; }

bool check_with_pcre2(const Regex& re, RuleKind kind, std::string& error, bool* too_large) {
  if (too_large) *too_large = false;
  uint32_t opts = pcre2_options(re.mods);
  if (implies_multiline(kind)) opts |= PCRE2_MULTILINE;
  int code = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.source.data()), re.source.size(),
                                opts, &code, &off, nullptr);
  if (c == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(code, buf, sizeof buf);
    if (too_large && code == PCRE2_ERROR_PATTERN_TOO_LARGE) *too_large = true;
    error = "invalid regex: " + std::string(reinterpret_cast<char*>(buf)) + " at offset " +
            std::to_string(off);
    return false;
  }
  pcre2_code_free(c);
  return true;
}

}  // namespace sekisho::rules
