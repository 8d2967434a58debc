// RFC 5322 address lists: the one splitter of Sekisho (issue 15).
//
// for_each_address(list, fn) walks an address-list (or a single mailbox)
// header value and calls fn(const Mailbox&) for each mailbox, in order, with
// spans into |list|: nothing is allocated and nothing copied, so the matcher
// calls it on views into its scratch buffers and mime::parse_addresses on a
// header value it then decodes and copies. The render_* helpers turn a span
// into its text through a sink (put(std::string_view)), also without
// allocating.
//
// How a value is read (each point has a test in tests/unit/mime/test_address.cpp;
// where RFC 5322, SpamAssassin 4's parse_header_addresses and Python's
// email.utils.getaddresses disagree, the choice is named):
//  - mailboxes end at ',' or ';' outside quoted strings, comments (nested,
//    with quoted pairs) and angle brackets: "Last, First" <a@b> is one, and
//    so is <@r1,@r2:u@c> (a source route, dropped from the address);
//  - "name:" before any '<' opens a group (the name is not a mailbox's
//    display name); ';' closes it; "undisclosed-recipients:;" yields nothing;
//  - name <addr>: the display name is the phrase before the first '<';
//    the address is inside the first <...> (SpamAssassin; Python refuses
//    "<a@b> <c@d>"); inside it a further '<' restarts the address, so
//    <<a@b>> is a@b (SpamAssassin's last-ditch reading; Python refuses it);
//    text after the '>' is ignored; a comment after <addr> is no display
//    name (RFC 5322 and Python; SpamAssassin uses it when there is no phrase);
//  - addr (comment): without angle brackets the comments are the name
//    (Python joins several with a space); "John Smith john@x" gives the
//    word with the '@' (lenient: Python keeps the whole text, SpamAssassin
//    and the RFC nothing);
//  - not a mailbox, skipped: an empty address (<>, a comment alone), two
//    unquoted '@', ':' ';' ',' '<' '>' outside quotes, '[' or ']' in an
//    unquoted local part, an unterminated quoted string, comment or angle
//    address (Python still splits "<a@b, c@d" in two; a quote or '<' that
//    never closes swallows the rest of the value here).
// Every loop advances; no index passes list.size().
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string_view>

namespace sekisho::mime {

struct Mailbox {
  std::string_view address;   // addr-spec as written, outer white space trimmed (render_address for its text)
  std::string_view phrase;    // display name as written before '<' (render_phrase), "" if none
  std::string_view comments;  // from the first top-level '(' to the last ')' (render_comments), "" if none
  std::string_view group;     // display name of the enclosing group as written, "" outside one
  bool angle = false;         // the address was in <...>: the name is the phrase, else the comments
};

namespace address_detail {

constexpr size_t npos = std::string_view::npos;

inline bool ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// |i| at '"': the index after the closing quote, or v.size() if none (*closed false).
inline size_t skip_quoted(std::string_view v, size_t i, bool* closed = nullptr) {
  size_t j = i + 1;
  while (j < v.size()) {
    if (v[j] == '\\') {
      j = j + 2 < v.size() ? j + 2 : v.size();
    } else if (v[j] == '"') {
      if (closed) *closed = true;
      return j + 1;
    } else {
      ++j;
    }
  }
  if (closed) *closed = false;
  return v.size();
}

// |i| at '(': the index after the matching ')', or v.size() if none.
inline size_t skip_comment(std::string_view v, size_t i, bool* closed = nullptr) {
  int depth = 0;
  size_t j = i;
  while (j < v.size()) {
    char c = v[j];
    if (c == '\\') {
      j = j + 2 < v.size() ? j + 2 : v.size();
      continue;
    }
    if (c == '(') {
      ++depth;
    } else if (c == ')' && --depth == 0) {
      if (closed) *closed = true;
      return j + 1;
    }
    ++j;
  }
  if (closed) *closed = false;
  return v.size();
}

inline std::string_view trim_ws(std::string_view s) {
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

// White space and whole comments off both ends (one pass: linear however
// many comments there are).
inline std::string_view trim_cfws(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (ws(s[i])) {
      ++i;
    } else if (s[i] == '(') {
      bool closed = false;
      size_t e = skip_comment(s, i, &closed);
      if (!closed) break;
      i = e;
    } else {
      break;
    }
  }
  s.remove_prefix(i);
  // The start of the last run of white space and whole comments, if it ends the text.
  size_t end = s.size();
  bool run = false;
  i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (ws(c) || c == '(') {
      size_t e = i + 1;
      if (c == '(') {
        bool closed = false;
        e = skip_comment(s, i, &closed);
        if (!closed) {  // runs to the end: text, not trimmed
          run = false;
          break;
        }
      }
      if (!run) end = i;
      run = true;
      i = e;
      continue;
    }
    run = false;
    if (c == '"') i = skip_quoted(s, i);
    else i = c == '\\' && i + 2 <= s.size() ? i + 2 : i + 1;
  }
  return run ? s.substr(0, end) : s;
}

// An addr-spec, leniently (what the old two splitters and Python agree is
// no mailbox is refused; see the header comment).
inline bool plausible_addr_spec(std::string_view s) {
  bool content = false;
  int ats = 0;
  size_t last_at = npos, first = npos;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == '"') {
      bool closed = false;
      if (first == npos) first = i;
      i = skip_quoted(s, i, &closed);
      if (!closed) return false;
      content = true;
      continue;
    }
    if (c == '(') {
      bool closed = false;
      i = skip_comment(s, i, &closed);
      if (!closed) return false;
      continue;
    }
    if (ws(c)) {
      ++i;
      continue;
    }
    if (first == npos) first = i;
    content = true;
    if (c == ':' || c == ';' || c == ',' || c == '<' || c == '>' || c == ')') return false;
    if (c == '@') {
      ++ats;
      last_at = i;
    }
    ++i;
  }
  if (!content || ats > 1) return false;
  if (s[first] != '"') {
    std::string_view local = s.substr(0, last_at == npos ? s.size() : last_at);
    if (local.find_first_of("[]") != npos) return false;
  }
  return true;
}

// Without angle brackets: the element, or, when white space separates
// several words, the last word with an unquoted '@'.
inline std::string_view bare_address(std::string_view e) {
  e = trim_cfws(e);
  size_t words = 0, i = 0;
  std::string_view best;
  while (i < e.size()) {
    while (i < e.size() && ws(e[i])) ++i;
    if (i >= e.size()) break;
    size_t b = i;
    bool at = false, text = false;
    while (i < e.size() && !ws(e[i])) {
      if (e[i] == '"') {
        i = skip_quoted(e, i);
        text = true;
      } else if (e[i] == '(') {
        i = skip_comment(e, i);
      } else {
        at = at || e[i] == '@';
        text = true;
        i += e[i] == '\\' && i + 1 < e.size() ? 2 : 1;
      }
    }
    if (!text) continue;  // a comment alone
    ++words;
    if (at) best = e.substr(b, i - b);
  }
  if (words <= 1) return e;
  return trim_cfws(best);
}

// Inside <...> (without the brackets): drops a source route "@a,@b:".
inline std::string_view route_addr(std::string_view a) {
  a = trim_cfws(a);
  if (a.empty() || a.front() != '@') return a;
  size_t i = 0;
  while (i < a.size()) {
    if (a[i] == '"') i = skip_quoted(a, i);
    else if (a[i] == '(') i = skip_comment(a, i);
    else if (a[i] == ':') return trim_cfws(a.substr(i + 1));
    else ++i;
  }
  return a;
}

}  // namespace address_detail

template <typename F>
void for_each_address(std::string_view v, F&& fn) {
  using namespace address_detail;
  std::string_view group;
  size_t i = 0;
  const size_t n = v.size();
  while (i < n) {
    size_t b = i;
    size_t lt = npos, in_b = 0, in_e = 0;  // the first '<' and its address
    bool closed_angle = false, broken = false;
    size_t c_first = npos, c_end = 0;  // top-level comments
    char stop = 0;
    while (i < n && !stop) {
      char c = v[i];
      if (c == '"') {
        bool closed = false;
        i = skip_quoted(v, i, &closed);
        broken = broken || !closed;
      } else if (c == '(') {
        bool closed = false;
        if (c_first == npos) c_first = i;
        i = skip_comment(v, i, &closed);
        c_end = i;
        broken = broken || !closed;
      } else if (c == '<') {
        // 3.4: angle-addr; a '<' inside restarts the address (<<a@b>>).
        size_t j = i + 1, ib = j;
        bool closed = false;
        while (j < n && !closed) {
          if (v[j] == '"') j = skip_quoted(v, j);
          else if (v[j] == '(') j = skip_comment(v, j);
          else if (v[j] == '<') ib = ++j;
          else if (v[j] == '>') closed = true;
          else ++j;
        }
        if (lt == npos) {
          lt = i;
          in_b = ib;
          in_e = j;
          closed_angle = closed;
        }
        i = closed ? j + 1 : n;
      } else if (c == ',' || c == ';' || (c == ':' && lt == npos)) {
        stop = c;
        ++i;
      } else {
        ++i;
      }
    }
    size_t e = stop ? i - 1 : i;
    if (stop == ':') {  // 3.4: group = display-name ":" [group-list] ";"
      group = trim_cfws(v.substr(b, e - b));
      continue;
    }
    Mailbox m;
    m.group = group;
    if (c_first != npos) m.comments = v.substr(c_first, c_end - c_first);
    if (lt != npos) {
      m.angle = true;
      // The phrase keeps its comments for render_phrase to drop.
      m.phrase = trim_ws(v.substr(b, lt - b));
      m.address = closed_angle ? route_addr(v.substr(in_b, in_e - in_b)) : std::string_view();
    } else {
      m.address = broken ? std::string_view() : bare_address(v.substr(b, e - b));
    }
    if (stop == ';') group = {};
    if (!m.address.empty() && plausible_addr_spec(m.address)) fn(static_cast<const Mailbox&>(m));
  }
}

// The address without comments and folding: white space between two words
// of a local part stays one space (obs-local-part, as Python reads it),
// around '.' and '@' it goes; quoted strings as written.
template <typename Put>
void render_address(std::string_view a, Put&& put) {
  using namespace address_detail;
  if (a.find_first_of(" \t\r\n(") == npos) {
    put(a);
    return;
  }
  bool space = false;
  char last = 0;
  size_t i = 0;
  while (i < a.size()) {
    char c = a[i];
    if (ws(c)) {
      space = true;
      ++i;
      continue;
    }
    if (c == '(') {
      i = skip_comment(a, i);
      space = true;
      continue;
    }
    if (space && last && last != '.' && last != '@' && c != '.' && c != '@') put(std::string_view(" ", 1));
    space = false;
    size_t j = c == '"' ? skip_quoted(a, i) : i + 1;
    put(a.substr(i, j - i));
    last = a[j - 1];
    i = j;
  }
}

// A display name: quoted strings unquoted (quoted pairs unescaped),
// comments dropped, other white space runs one space, none at the ends.
template <typename Put>
void render_phrase(std::string_view p, Put&& put) {
  using namespace address_detail;
  bool space = false, any = false;
  size_t i = 0;
  while (i < p.size()) {
    char c = p[i];
    if (ws(c)) {
      space = true;
      ++i;
      continue;
    }
    if (c == '(') {
      i = skip_comment(p, i);
      space = true;
      continue;
    }
    if (space && any) put(std::string_view(" ", 1));
    space = false;
    any = true;
    if (c == '"') {
      size_t j = i + 1;
      while (j < p.size() && p[j] != '"') {
        size_t k = j;
        while (k < p.size() && p[k] != '"' && p[k] != '\\') ++k;
        if (k > j) put(p.substr(j, k - j));
        if (k < p.size() && p[k] == '\\') {
          if (k + 1 < p.size()) put(p.substr(k + 1, 1));
          k = k + 2 < p.size() ? k + 2 : p.size();
        }
        j = k;
      }
      i = j < p.size() ? j + 1 : p.size();
      continue;
    }
    size_t j = i;
    while (j < p.size() && !ws(p[j]) && p[j] != '"' && p[j] != '(') ++j;
    put(p.substr(i, j - i));
    i = j;
  }
}

// The text of each top-level comment in |c| (quoted pairs unescaped,
// nested parentheses kept), joined by one space.
template <typename Put>
void render_comments(std::string_view c, Put&& put) {
  using namespace address_detail;
  bool first = true;
  size_t i = 0;
  while (i < c.size()) {
    if (c[i] == '"') {
      i = skip_quoted(c, i);
      continue;
    }
    if (c[i] != '(') {
      ++i;
      continue;
    }
    size_t e = skip_comment(c, i);
    size_t end = e > i + 1 && c[e - 1] == ')' ? e - 1 : e;
    std::string_view body = trim_ws(c.substr(i + 1, end - i - 1));
    if (!body.empty()) {
      if (!first) put(std::string_view(" ", 1));
      first = false;
      size_t j = 0;
      while (j < body.size()) {
        size_t k = body.find('\\', j);
        if (k == npos) k = body.size();
        if (k > j) put(body.substr(j, k - j));
        if (k + 1 < body.size()) put(body.substr(k + 1, 1));
        j = k + 2;
      }
    }
    i = e;
  }
}

}  // namespace sekisho::mime
