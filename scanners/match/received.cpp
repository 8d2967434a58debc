#include "scanners/match/received.hpp"

#include <algorithm>
#include <cstring>

namespace sekisho::match {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_word(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
// Characters SpamAssassin accepts in a HELO argument.
bool is_helo_char(char c) { return is_word(c) || (c && strchr("-.^+&:=?!@%*$\\/", c) != nullptr); }
// Characters SpamAssassin replaces by '!' in relay fields.
bool is_bad_char(char c) { return is_space(c) || c == 0 || strchr("#[]()<>|", c) != nullptr; }

using sv = std::string_view;
constexpr size_t npos = sv::npos;

bool starts_ci(sv s, sv p) {
  if (s.size() < p.size()) return false;
  for (size_t i = 0; i < p.size(); ++i)
    if (lower(s[i]) != lower(p[i])) return false;
  return true;
}
bool iequal(sv a, sv b) { return a.size() == b.size() && starts_ci(a, b); }
size_t find_ci(sv s, sv p, size_t from = 0) {
  if (p.empty() || s.size() < p.size()) return npos;
  for (size_t i = from; i + p.size() <= s.size(); ++i)
    if (lower(s[i]) == lower(p[0]) && starts_ci(s.substr(i), p)) return i;
  return npos;
}
sv token_at(sv s, size_t pos) {
  size_t e = pos;
  while (e < s.size() && s[e] != ' ') ++e;
  return s.substr(pos, e - pos);
}

// One decimal octet as SpamAssassin's IPv4 pattern reads it (no leading zeros).
size_t octet(sv s, size_t i) {
  size_t n = 0;
  while (i + n < s.size() && n < 3 && is_digit(s[i + n])) ++n;
  if (n == 0) return 0;
  if (n > 1 && s[i] == '0') return 1;  // "0" alone; the rest is not this octet
  if (n == 3 && (s[i] > '2' || (s[i] == '2' && (s[i + 1] > '5' || (s[i + 1] == '5' && s[i + 2] > '5'))))) n = 2;
  return n;
}

// Length of an IPv4 address at |i| (0 if none); the next byte must not be a word byte.
size_t ipv4_len(sv s, size_t i) {
  size_t p = i;
  for (int k = 0; k < 4; ++k) {
    size_t n = octet(s, p);
    if (!n) return 0;
    p += n;
    if (k < 3) {
      if (p >= s.size() || s[p] != '.') return 0;
      ++p;
    }
  }
  if (p < s.size() && is_word(s[p])) return 0;
  return p - i;
}

// Length of an IPv6 address (optionally "IPv6:"-prefixed, optionally with a
// dotted IPv4 tail) at |i|; 0 if none.
size_t ipv6_len(sv s, size_t i) {
  size_t p = i;
  if (starts_ci(s.substr(p), "ipv6:")) p += 5;
  size_t b = p;
  int colons = 0;
  size_t last_colon = npos;
  while (p < s.size() && (is_hex(s[p]) || s[p] == ':')) {
    if (s[p] == ':') {
      ++colons;
      last_colon = p;
    }
    ++p;
  }
  if (colons < 2 || p - b < 2) return 0;
  if (p < s.size() && s[p] == '.' && last_colon != npos) {
    size_t v4 = ipv4_len(s, last_colon + 1);
    if (!v4) return 0;
    p = last_colon + 1 + v4;
  }
  if (p < s.size() && (is_hex(s[p]) || s[p] == ':')) return 0;
  return p - i;
}

size_t ip_len(sv s, size_t i) {
  if (i > 0 && (is_word(s[i - 1]) || s[i - 1] == ':')) {
    // An IPv4 address needs a boundary before it (and no "::" marker).
    return 0;
  }
  size_t n = ipv4_len(s, i);
  return n ? n : ipv6_len(s, i);
}
bool is_ip(sv s) { return !s.empty() && ip_len(s, 0) == s.size(); }

bool private_ip(sv ip) {
  auto v4_private = [](sv a) {
    if (a.substr(0, 3) == "10." || a.substr(0, 4) == "127." || a.substr(0, 8) == "169.254." ||
        a.substr(0, 8) == "192.168.")
      return true;
    if (a.substr(0, 4) == "172.") {
      int n = atoi(std::string(a.substr(4, 3)).c_str());
      return n >= 16 && n <= 31 && a.size() > 6 && (a[6] == '.' || a[5] == '.');
    }
    if (a.substr(0, 4) == "100.") {
      int n = atoi(std::string(a.substr(4, 3)).c_str());
      return n >= 64 && n <= 127;
    }
    return false;
  };
  if (ipv4_len(ip, 0) == ip.size()) return v4_private(ip);
  if (starts_ci(ip, "ipv6:")) ip.remove_prefix(5);
  if (starts_ci(ip, "fe8") || starts_ci(ip, "fe9") || starts_ci(ip, "fea") || starts_ci(ip, "feb")) return ip.size() > 4 && ip[4] == ':';
  // ::1 in any spelling: only zero groups, then 1.
  {
    bool only_zero = true, saw_one = false;
    for (size_t i = 0; i < ip.size() && only_zero; ++i) {
      char c = ip[i];
      if (c == ':' || c == '0') continue;
      if (c == '1' && i + 1 == ip.size()) saw_one = true;
      else only_zero = false;
    }
    if (only_zero && saw_one) return true;
  }
  // IPv4-mapped (::ffff:a.b.c.d).
  size_t f = find_ci(ip, "ffff:");
  if (f != npos && ipv4_len(ip, f + 5) == ip.size() - f - 5) return v4_private(ip.substr(f + 5));
  return false;
}

bool localhost_name(sv s) {
  return iequal(s, "localhost") || iequal(s, "localhost.localdomain") || s == "127.0.0.1" || s == "::1" ||
         iequal(s, "::ffff:127.0.0.1");
}

// The from-clause, read as groups.
struct Item {
  enum Kind { word, paren, bracket } kind = word;
  sv text;            // inner text for paren/bracket
  bool glued = false; // no space before it
};

size_t split_items(sv c, Item* items, size_t max) {
  size_t n = 0, i = 0;
  while (i < c.size() && n < max) {
    bool glued = i > 0 && c[i - 1] != ' ';
    while (i < c.size() && c[i] == ' ') {
      ++i;
      glued = false;
    }
    if (i >= c.size()) break;
    Item it;
    it.glued = glued && n > 0;
    if (c[i] == '(' || c[i] == '[') {
      char open = c[i], close = open == '(' ? ')' : ']';
      int depth = 0;
      size_t j = i;
      for (; j < c.size(); ++j) {
        if (c[j] == open) ++depth;
        else if (c[j] == close && --depth == 0) break;
      }
      it.kind = open == '(' ? Item::paren : Item::bracket;
      it.text = c.substr(i + 1, (j < c.size() ? j : c.size()) - i - 1);
      i = j < c.size() ? j + 1 : c.size();
    } else {
      size_t j = i;
      while (j < c.size() && c[j] != ' ' && c[j] != '(') ++j;
      it.kind = Item::word;
      it.text = c.substr(i, j - i);
      i = j;
    }
    items[n++] = it;
  }
  return n;
}

// "[IP]" or "[IP:port]" / "[IP.port]" at the start of |s|: the IP, and where the group ends.
bool bracket_ip(sv s, sv& ip, size_t& end) {
  if (s.empty() || s[0] != '[') return false;
  size_t n = ip_len(s, 1);
  if (!n) return false;
  size_t p = 1 + n;
  if (p < s.size() && s[p] == '%') {  // IPv6 zone
    while (p < s.size() && s[p] != ']') ++p;
  }
  if (p < s.size() && (s[p] == ':' || s[p] == '.') && p + 1 < s.size() && is_digit(s[p + 1])) {
    ++p;
    while (p < s.size() && is_digit(s[p])) ++p;
  }
  if (p >= s.size() || s[p] != ']') return false;
  ip = s.substr(1, n);
  end = p + 1;
  return true;
}

// A parenthesised group that holds the connecting address: "[IP]...",
// "rdns [IP]", "rdns[IP]", "IP", "ident@IP".
bool paren_has_address(const Item& it) {
  if (it.kind != Item::paren) return false;
  sv t = it.text;
  sv ip;
  size_t end = 0;
  if (bracket_ip(t, ip, end)) return true;
  size_t lb = t.find('[');
  if (lb != npos && lb > 0) {
    sv r0 = t.substr(0, lb);
    if (r0.back() == ' ') r0.remove_suffix(1);
    if (!r0.empty() && r0.find(' ') == npos && r0.find('=') == npos && bracket_ip(t.substr(lb), ip, end)) return true;
  }
  size_t at = t.find('@');
  size_t from = at == npos ? 0 : at + 1;
  size_t n = ip_len(t, from);
  return n && (from + n == t.size() || t[from + n] == ' ' || t[from + n] == ',');
}

// qmail's "by HOST [(comments)] with [...]SMTP" (or QMQP), not followed by " id ".
bool qmail_shape(sv s, size_t by_at, sv by) {
  if (by_at == npos) return false;
  size_t p = by_at + 4 + by.size();
  size_t w = s.find(" with ", p);
  if (w == npos) return false;
  sv between = s.substr(p, w - p);
  if (!between.empty() && !(between.substr(0, 2) == " (" && between.back() == ')')) return false;
  for (size_t q = w + 6; q + 4 <= s.size(); ++q) {
    if (q > w + 6 && s[q - 1] != ' ') continue;
    if (s.compare(q, 4, "SMTP") != 0 && s.compare(q, 4, "QMQP") != 0) continue;
    if (s.compare(q + 4, 4, " id ") == 0) continue;
    return true;
  }
  return false;
}

// "helo=X" / "ident=Y" inside an Exim comment.
sv keyword_value(sv s, sv key) {
  size_t p = s.find(key);
  if (p == npos) return {};
  p += key.size();
  size_t e = p;
  while (e < s.size() && s[e] != ' ' && s[e] != ')') ++e;
  return s.substr(p, e - p);
}

}  // namespace

void Relays::clear() {
  trusted.clear();
  untrusted.clear();
  internal.clear();
  external.clear();
  last_trusted = last_internal = -1;
  relays = unparseable = skipped = 0;
  cut = false;
}

void Relays::reserve(size_t bytes) {
  trusted.reserve(bytes);
  untrusted.reserve(bytes);
  internal.reserve(bytes);
  external.reserve(bytes);
}

RelayParser::RelayParser(size_t max_line, size_t max_headers, size_t max_out)
    : max_line_(max_line), max_headers_(max_headers), max_out_(max_out) {
  line_.reserve(max_line + 8);
  work_.reserve(max_line + 8);
}

int RelayParser::parse(sv value, Relay& r, bool& fetch_marker) {
  r = Relay{};
  fetch_marker = false;
  // Unfold and collapse white space; drop trailing semicolons.
  line_.clear();
  for (char c : value) {
    if (line_.size() >= max_line_) break;
    if (is_space(c)) {
      if (!line_.empty() && line_.back() != ' ') line_.push_back(' ');
    } else {
      line_.push_back(c);
    }
  }
  while (!line_.empty() && line_.back() == ' ') line_.pop_back();
  while (!line_.empty() && line_.back() == ';') {
    line_.pop_back();
    if (!line_.empty() && line_.back() == ' ') line_.pop_back();
  }
  // ")by " written without its space.
  if (size_t p = line_.find(")by "); p != npos) line_.insert(p + 1, 1, ' ');
  sv s = line_;

  bool paren_from = starts_ci(s, "(from ");
  if (!paren_from && !starts_ci(s, "from ")) return 0;  // "(qmail ... invoked ...)", "by x (Postfix, from userid)"
  {
    size_t w = s.find("with local for");
    if (w != npos && (w == 0 || !is_word(s[w - 1])) && (w + 14 == s.size() || !is_word(s[w + 14]))) return 0;
  }
  if (!paren_from) {  // "from host by host ;": no handover recorded
    sv head = token_at(s, 5);
    size_t b = 5 + head.size();
    if (starts_ci(s.substr(b), " by ")) {
      size_t e = b + 4;
      while (e < s.size() && s[e] != ' ' && s[e] != ';') ++e;
      if (e > b + 4) {
        size_t q = e < s.size() && s[e] == ' ' ? e + 1 : e;
        bool bracketed = head.size() > 2 && head.front() == '[' && head.back() == ']' &&
                         head.find_first_not_of("0123456789.", 1) == head.size() - 1;
        if (q < s.size() && s[q] == ';' && !bracketed) return 0;
      }
    }
  }

  // Fields found anywhere in the line.
  sv helo, by, id, auth, ident, rdns, ip;
  for (size_t p = s.find(" id "); p != npos; p = s.find(" id ", p + 1)) {
    size_t q = p + 4;
    if (q < s.size() && s[q] == '<') ++q;
    size_t e = q;
    while (e < s.size() && !is_space(s[e]) && s[e] != '<' && s[e] != '>' && s[e] != ';') ++e;
    if (e - q >= 3) {
      id = s.substr(q, e - q);
      break;
    }
  }
  for (size_t p = s.find("helo="); p != npos; p = s.find("helo=", p + 1)) {
    if (p > 0 && is_word(s[p - 1])) continue;
    size_t e = p + 5;
    while (e < s.size() && is_helo_char(s[e])) ++e;
    if (e > p + 5) {
      helo = s.substr(p + 5, e - p - 5);
      break;
    }
  }
  if (helo.empty()) {
    for (size_t p = 0; p + 5 < s.size(); ++p) {
      if (!(s.compare(p, 5, "HELO ") == 0 || s.compare(p, 5, "EHLO ") == 0)) continue;
      if (p > 0 && is_word(s[p - 1])) continue;
      size_t e = p + 5;
      while (e < s.size() && is_helo_char(s[e])) ++e;
      if (e > p + 5) {
        helo = s.substr(p + 5, e - p - 5);
        break;
      }
    }
  }
  size_t by_at = s.find(" by ");
  while (by_at != npos && (by_at + 4 >= s.size() || s[by_at + 4] == ' ')) by_at = s.find(" by ", by_at + 1);
  if (by_at != npos) by = token_at(s, by_at + 4);

  // Authenticated submissions.
  if (by_at != npos) {
    // The leftmost " with X" naming an authenticated protocol (RFC 3848 and friends).
    static const char* const kAuth[] = {"ESMTPA", "ESMTPSA", "LMTPA", "LMTPSA", "UTF8SMTPA", "UTF8SMTPSA",
                                        "UTF8LMTPA", "UTF8LMTPSA", "ASMTP", "HTTP", "HTTPS", "HTTPU"};
    for (size_t p = find_ci(s, " with "); p != npos && auth.empty(); p = find_ci(s, " with ", p + 1)) {
      size_t e = p + 6;
      while (e < s.size() && s[e] != ' ' && s[e] != ';') ++e;
      sv w = s.substr(p + 6, e - p - 6);
      for (const char* k : kAuth)
        if (iequal(w, k)) auth = w;
    }
  }
  if (auth.empty()) {
    if (size_t p = s.find(" (AUTH: "); p != npos && starts_ci(s, "from ") && p > 0 &&
                                        (s[p - 1] == ')' || s[p - 1] == ']')) {
      sv m = token_at(s, p + 8);
      for (const char* k : {"LOGIN", "PLAIN", "DIGEST-MD5", "CRAM-MD5"})
        if (m == k) auth = m;
    }
  }
  if (auth.empty() && s.find("authenticated") != npos && by_at != npos) {
    // Sendmail, MDaemon, ...: "(... authenticated ...)" after the address group, before " by".
    size_t g = s.find("])");
    size_t g2 = s.find(")]");
    g = std::min(g, g2);
    if (g != npos && g < by_at) {
      size_t open = s.find('(', g + 2);
      size_t a = open == npos ? npos : s.find("authenticated", open);
      size_t close = a == npos ? npos : s.find(')', a);
      if (close != npos && s.find(" by", close) != npos) auth = "Sendmail";
    }
  }
  if (auth.empty()) {
    size_t p = s.find(") (Authenticated sender: ");
    if (p != npos) {
      size_t q = s.find(") by ", p + 25);
      if (q != npos) {
        size_t o = s.find(" (", q + 5);
        size_t c = o == npos ? npos : s.find(')', o);
        if (c != npos && s.compare(c, 7, ") with ") == 0 && token_at(s, q + 5).size() == o - q - 5) {
          sv mta = s.substr(o + 2, c - o - 2);
          auth = mta;
          if (mta != "Postfix") {
            work_.assign("Postfix (");
            work_.append(mta);
            work_.push_back(')');
            auth = work_;
          }
        }
      }
    }
  }
  if (auth.empty() && s.find(" (account ") != npos) {
    for (const char* k : {"CommuniGate Pro HTTP", "CommuniGate Pro SMTP", "CommuniGate Pro XIMSS", "CommuniGate Pro IMAP"})
      if (s.find(k) != npos) auth = "Communigate";
  }
  if (auth.empty() && s.find(" with Microsoft Exchange Server HTTP-DAV") != npos) auth = "HTTP-DAV";
  if (auth.empty() && by_at != npos) {
    for (size_t p = find_ci(s, " (via HTTP"); p != npos; p = find_ci(s, " (via HTTP", p + 1)) {
      size_t q = p + 6;  // "HTTP" starts here
      size_t e = q + 4;
      if (e < s.size() && s[e] != ')') ++e;
      if (e < s.size() && s[e] == ')' && (e + 1 == s.size() || s[e + 1] == ' ' || s[e + 1] == ';')) {
        auth = s.substr(q, e - q);
        break;
      }
    }
  }

  bool mapi_ms = false;
  bool matched = false;  // a from-clause shape decided ip/helo/rdns
  bool exim = s.find("Exim") != npos;
  if (!paren_from && s.compare(0, 5, "from ") == 0) {
    sv rest = s.substr(5);
    // Envelope sender noted by the receiving MTA.
    size_t best = npos, key_len = 0;
    for (sv key : {sv("return-path: "), sv("return-path "), sv("envelope-sender "), sv("envelope-sender="),
                   sv("envelope-from "), sv("envelope-from=")}) {
      size_t p = find_ci(rest, key);
      if (p != npos && (p < best || (p == best && key.size() > key_len))) {
        best = p;
        key_len = key.size();
      }
    }
    if (best != npos) {
      size_t p = best + key_len;
      sv t = token_at(rest, p);
      // \S+ then a word boundary: give back trailing bytes until there is one.
      size_t n = t.size();
      auto boundary = [&](size_t k) {
        char after = p + k < rest.size() ? rest[p + k] : ' ';
        return is_word(t[k - 1]) != is_word(after);
      };
      while (n > 0 && !boundary(n)) --n;
      if (n > 0) {
        r.envfrom = t.substr(0, n);
        r.has_envfrom = true;
      }
    }
    if (exim) {
      for (size_t p = rest.find("with local"); p != npos; p = rest.find("with local", p + 1)) {
        if (p > 0 && is_word(rest[p - 1])) continue;
        size_t e = p + 10;
        if (e < rest.size() && rest[e] == '-') {
          while (e < rest.size() && rest[e] != ' ') ++e;
        }
        if (e < rest.size() && rest[e] == ' ') return 0;
      }
    }
    if (rest.find(" with Microsoft SMTPSVC") != npos && rest.substr(0, 25) == "mail pickup service by ") return 0;
    {
      size_t m = rest.find(" with mapi id ");
      size_t m2 = rest.find(" with Microsoft SMTP Server ");
      mapi_ms = m != npos || m2 != npos;
    }
    size_t clause_end = by_at == npos ? s.size() : by_at;
    sv clause = s.substr(5, clause_end > 5 ? clause_end - 5 : 0);
    Item items[16];
    size_t n = split_items(clause, items, 16);
    sv head = n && items[0].kind == Item::word ? items[0].text : sv{};
    size_t first = 0;
    if (n > 1 && ((items[0].kind == Item::bracket && paren_has_address(items[1])) ||
                  (items[0].kind == Item::bracket && items[1].kind == Item::bracket && is_ip(items[1].text)) ||
                  (items[0].kind == Item::paren && items[0].text.find(' ') == npos && items[1].kind == Item::bracket &&
                   is_ip(items[1].text)))) {
      // "[IP] (rdns [IP2])", "[IP] [IP2]", "(name) [IP]": the group is the HELO word.
      head = sv(items[0].text.data() - 1, items[0].text.size() + 2);
      first = 1;
    }
    sv helo_group;
    bool have_helo_group = false;
    for (size_t k = 0; k < n; ++k)
      if (items[k].kind == Item::paren && (starts_ci(items[k].text, "HELO ") || starts_ci(items[k].text, "EHLO ") ||
                                           iequal(items[k].text, "HELO") || iequal(items[k].text, "EHLO"))) {
        helo_group = items[k].text.size() > 5 ? items[k].text.substr(5) : sv{};
        if (size_t sp = helo_group.find(' '); sp != npos) helo_group = helo_group.substr(0, sp);
        have_helo_group = true;
        break;
      }
    bool fetcher = s.find("with POP3") != npos || s.find("with IMAP") != npos;
    bool qmail = qmail_shape(s, by_at, by);
    if (rest.find(" (SquirrelMail authenticated user ") != npos || rest.find(" (NaSMail authenticated user ") != npos) {
      // Webmail: the client is the address 10 to 80 bytes before "by HOST with HTTP".
      for (size_t p = 0; p < rest.size() && !matched; ++p) {
        size_t len = ip_len(rest, p);
        if (!len) continue;
        size_t e = p + len;
        if (e < rest.size() && (rest[e] == '.' || rest[e] == '-')) continue;
        for (size_t d = 80; d >= 10; --d) {
          size_t b = e + d;
          if (b + 3 > rest.size()) continue;
          if (rest.compare(b, 3, "by ") != 0) continue;
          sv h = token_at(rest, b + 3);
          if (rest.compare(b + 3 + h.size(), 10, " with HTTP") != 0 || h.empty()) continue;
          ip = rest.substr(p, len);
          by = h;
          matched = true;
          break;
        }
      }
    }
    for (size_t k = first; k < n && !matched; ++k) {
      const Item& it = items[k];
      sv t = it.text;
      if (it.kind == Item::paren) {
        if (have_helo_group && t.data() == helo_group.data() - 5) continue;
        sv bip;
        size_t bend = 0;
        if (bracket_ip(t, bip, bend)) {
          // "H ([IP] rest)": Exim, Sendmail without rDNS, Microsoft, CommuniGate.
          sv tail = t.substr(bend);
          ip = bip;
          if (head.empty() || k == 0) {
            // "([IP]) by": the address alone.
          } else if (have_helo_group) {
            rdns = head;
            helo = helo_group;
          } else if (exim) {
            rdns = helo = head;
            if (sv h = keyword_value(tail, "helo="); !h.empty()) helo = h;
            if (size_t ip2 = tail.find("ident="); ip2 != npos) ident = keyword_value(tail, "ident=");
          } else if (tail.substr(0, 6) == " helo=") {
            rdns = head;
            helo = keyword_value(tail, "helo=");
          } else if (tail == " verified" && s.find(" (CommuniGate Pro") != npos) {
            rdns = helo = head;
          } else if (is_ip(head) && s.find("with HTTP") != npos) {
            ip = head;  // webmail: the numeric "HELO" is the client
          } else if (qmail && tail.empty() && s.find(" SMTPSVC") == npos && !mapi_ms) {
            rdns = helo = head;  // qmail-ldap writes the address in brackets
          } else {
            helo = head;
            rdns = {};
          }
          matched = true;
          break;
        }
        // "R [IP]" / "R[IP]": Sendmail, Postfix and friends looked the address up.
        size_t lb = t.find('[');
        if (lb != npos && lb > 0) {
          sv r0 = t.substr(0, lb);
          bool spaced = r0.back() == ' ';
          if (spaced) r0.remove_suffix(1);
          if (!r0.empty() && r0.find(' ') == npos && bracket_ip(t.substr(lb), bip, bend)) {
            ip = bip;
            if (exim) {
              rdns = head;
            } else if (!spaced && r0.back() == '@') {
              ident = r0.substr(0, r0.size() - 1);
              if (have_helo_group) {  // qmail: "rdns (HELO x) (ident@[IP])"
                rdns = head;
                helo = helo_group;
              } else if (by_at != npos && s.compare(by_at + 4 + by.size(), 2, " (") == 0) {
                helo = head;  // Sendmail: "helo (ident@[IP]) by host (version)"
              } else {
                rdns = helo = head;
              }
            } else if (head.empty() || k == 0) {
              helo = r0;  // "(helo [IP]) by"
            } else {
              helo = head;
              rdns = r0;
              if (starts_ci(rdns, "IDENT:")) {
                size_t at = rdns.find('@');
                if (at != npos) {
                  ident = rdns.substr(6, at - 6);
                  rdns.remove_prefix(at + 1);
                }
              }
              if (size_t at = rdns.find('@'); at != npos) {
                ident = rdns.substr(0, at);
                rdns.remove_prefix(at + 1);
              }
              if (rdns.substr(0, 8) == "<unknown" || rdns == "softdnserr") rdns = {};
              if (!spaced && rdns.find('.') == npos && !iequal(rdns, "unknown") && s.find(" (Postfix) with") == npos) rdns = {};
            }
            matched = true;
            break;
          }
        }
        // "(IP)", "(ident@IP)", "(IP, HELO x)", "(ident@IP with login)": qmail and others.
        {
          size_t at = t.find('@');
          size_t sp = t.find(' ');
          size_t ipos = at != npos && (sp == npos || at < sp) ? at + 1 : 0;
          size_t brk = ipos < t.size() && t[ipos] == '[' ? 1 : 0;
          size_t len = ip_len(t, ipos + brk);
          size_t after = ipos + brk + len;
          if (len && brk && (after >= t.size() || t[after] != ']')) len = 0;
          if (len) {
            if (brk) ++after;
            ip = t.substr(ipos + brk, len);
            if (ipos) ident = t.substr(0, ipos - 1);
            if (head.empty() || k == 0) {
              // "(IP) by"
            } else if (it.glued) {  // smap: "host(IP)"
              rdns = head;
              if (after + 2 < t.size() && t.compare(after, 2, ", ") == 0) {
                sv hh = t.substr(after + 2);
                if (starts_ci(hh, "HELO ") || starts_ci(hh, "EHLO ")) helo = token_at(hh, 5);
              }
            } else if (mapi_ms) {
              helo = head;
            } else if (have_helo_group) {
              rdns = head;
              helo = helo_group;
            } else {
              rdns = helo = head;
            }
            if (!have_helo_group && !mapi_ms && !it.glued && fetcher) {
              fetch_marker = true;
              return 0;
            }
            matched = true;
            break;
          }
        }
      } else if (it.kind == Item::bracket) {
        sv bip;
        size_t bend = 0;
        std::string_view whole(t.data() - 1, t.size() + 2);
        if (!bracket_ip(whole, bip, bend)) continue;
        ip = bip;
        if (k == 0) {
          // "[IP] (helo=x ident=y)" / "[IP] (HELO x)" / "[IP] by"
          bool parened = n > 1 && items[1].kind == Item::paren;
          if (parened) {
            if (fetcher) {
              fetch_marker = true;
              return 0;
            }
            sv p = items[1].text;
            if (sv h = keyword_value(p, "helo="); !h.empty()) helo = h;
            else if (size_t hp = p.find("HELO "); hp != npos) helo = token_at(p, hp + 5);
            else if (size_t ep = p.find("EHLO "); ep != npos) helo = token_at(p, ep + 5);
            if (p.find("ident=") != npos) ident = keyword_value(p, "ident=");
          }
        } else if (!head.empty()) {
          if (fetcher) {
            fetch_marker = true;
            return 0;
          }
          helo = have_helo_group ? helo_group : head;
          if (exim) rdns = head;
        }
        matched = true;
        break;
      }
    }
    if (!matched && !head.empty() && is_ip(head)) {
      // "IP by host", "IP (HELO x) by host": the address is the first word.
      if (fetcher) {
        fetch_marker = true;
        return 0;
      }
      ip = head;
      if (have_helo_group) helo = helo_group;
      matched = true;
    }
    if (!matched && by.size() > 17 && by.substr(by.size() - 17) == ".hotmail.msn.com") matched = true;  // ip may be absent
    if (!matched) {
      if (fetcher) {
        fetch_marker = true;
        return 0;
      }
      // No address in the from-clause: local handovers and MTAs that log too little.
      if (n <= 2 && head.find('@') != npos) return 0;
      if (n >= 2 && items[1].kind == Item::paren) {
        sv p = items[1].text;
        size_t at = p.find('@');
        sv host = at == npos ? p : p.substr(at + 1);
        if (size_t sp = host.find_first_of(" [)"); sp != npos) host = host.substr(0, sp);
        if (localhost_name(host)) return 0;
      }
      if (n == 1 || (n == 2 && items[1].kind == Item::word)) return 0;
      if (helo.empty() && !head.empty()) helo = head;
    }
  }
  if (!matched) {
    if (ip.empty()) {
      for (size_t p = s.find('['); p != npos; p = s.find('[', p + 1)) {
        size_t n = ip_len(s, p + 1);
        if (n && p + 1 + n < s.size() && s[p + 1 + n] == ']') {
          ip = s.substr(p + 1, n);
          break;
        }
      }
    }
    if (ip.empty() || by.empty()) return -1;
  }
  if (mapi_ms) id = {};

  // Clean-up as SpamAssassin does before printing.
  while (!rdns.empty() && rdns.back() == '.') rdns.remove_suffix(1);
  if (iequal(rdns, "unknown") || (!rdns.empty() && rdns[0] == '[')) rdns = {};
  if (starts_ci(ip, "ipv6:")) ip.remove_prefix(5);
  if (!ip.empty() && ip.front() == '[') ip.remove_prefix(1);
  if (!ip.empty() && ip.back() == ']') ip.remove_suffix(1);
  if (size_t z = ip.find('%'); z != npos) ip = ip.substr(0, z);
  if (size_t f = find_ci(ip, ":ffff:"); f != npos && ipv4_len(ip, f + 6) == ip.size() - f - 6 &&
                                        ip.substr(0, f + 1).find_first_not_of("0:") == npos)
    ip = ip.substr(f + 6);
  while (!by.empty() && by.back() == ';') by.remove_suffix(1);
  if (r.has_envfrom) {
    sv e = r.envfrom;
    while (!e.empty() && (is_space(e.front()) || e.front() == '<')) e.remove_prefix(1);
    while (!e.empty() && (is_space(e.back()) || e.back() == '>')) e.remove_suffix(1);
    r.envfrom = e;
  }
  r.ip = ip;
  r.rdns = rdns;
  r.helo = helo;
  r.by = by;
  r.ident = ident;
  r.id = id;
  r.auth = auth;
  r.ip_private = private_ip(ip);
  return 1;
}

void RelayParser::begin(Relays& out) {
  out.clear();
  in_trusted_ = in_internal_ = allow_fetch_ = true;
}

void RelayParser::append(std::string& dst, const Relay& r, bool internal, Relays& out) {
  // [ ip=... rdns=... helo=... by=... ident=... envfrom=... intl=N id=... auth=... msa=0 ]
  size_t need = 80 + r.ip.size() + r.rdns.size() + r.helo.size() + r.by.size() + r.ident.size() + r.envfrom.size() +
                r.id.size() + r.auth.size();
  if (dst.size() + need > max_out_ || dst.capacity() - dst.size() < need) {
    out.cut = true;
    return;
  }
  auto clean = [&](sv v) {
    for (char c : v) dst.push_back(is_bad_char(c) ? '!' : c);
  };
  if (!dst.empty()) dst.push_back(' ');
  dst += "[ ip=";
  clean(r.ip);
  dst += " rdns=";
  clean(r.rdns);
  dst += " helo=";
  clean(r.helo);
  dst += " by=";
  clean(r.by);
  dst += " ident=";
  clean(r.ident);
  dst += " envfrom=";
  clean(r.envfrom);
  dst += internal ? " intl=1 id=" : " intl=0 id=";
  dst += r.id;  // SpamAssassin leaves the id as found
  dst += " auth=";
  dst += r.auth;
  dst += " msa=0 ]";
}

void RelayParser::add(sv value, Relays& out) {
  Relay r;
  bool marker = false;
  int rc = parse(value, r, marker);
  if (marker) {
    if (allow_fetch_) {
      out.trusted.clear();
      out.internal.clear();
      out.external.clear();
    }
  }
  if (rc <= 0) {
    if (rc < 0) ++out.unparseable;
    else ++out.skipped;
    if (in_trusted_) ++out.last_trusted;
    if (in_internal_) ++out.last_internal;
    return;
  }
  ++out.relays;
  if (in_trusted_ && !r.ip_private && r.auth.empty()) in_trusted_ = in_internal_ = false;
  if (in_trusted_) {
    append(out.trusted, r, in_internal_, out);
    allow_fetch_ = true;
    ++out.last_trusted;
  } else {
    append(out.untrusted, r, in_internal_, out);
    allow_fetch_ = false;
  }
  if (in_internal_) {
    append(out.internal, r, true, out);
    ++out.last_internal;
  } else {
    append(out.external, r, false, out);
  }
}

}  // namespace sekisho::match
