#include "scanners/mime/urls.hpp"

#include <idn2.h>

#include <cstring>

namespace sekisho::mime {
namespace {

constexpr size_t kMaxToken = 4096;

// Bytes that end a URL token in text.
constexpr auto kStop = [] {
  struct T { bool v[256]; } t{};
  for (int c = 0; c <= 0x20; ++c) t.v[c] = true;
  for (unsigned char c : std::string_view("<>\"'`{}|\\^[]\x7f")) t.v[c] = true;
  return t;
}();

inline char lc(char c) { return c >= 'A' && c <= 'Z' ? char(c + 32) : c; }

bool iprefix(std::string_view s, std::string_view p) {
  if (s.size() < p.size()) return false;
  for (size_t i = 0; i < p.size(); ++i)
    if (lc(s[i]) != p[i]) return false;
  return true;
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lc(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

// Where a URL starts inside a text token: the scheme or "www.", or npos.
size_t url_start(std::string_view tok) {
  size_t best = std::string_view::npos;
  for (size_t k = tok.find("://"); k != std::string_view::npos; k = tok.find("://", k + 3)) {
    size_t s = k;
    while (s > 0 && ((tok[s - 1] >= 'a' && tok[s - 1] <= 'z') || (tok[s - 1] >= 'A' && tok[s - 1] <= 'Z'))) --s;
    std::string_view scheme = tok.substr(s, k - s);
    // the scheme may be glued to text before it ("URL:http://")
    for (std::string_view sc : {"https", "http", "ftp"})
      if (scheme.size() >= sc.size() && iprefix(scheme.substr(scheme.size() - sc.size()), sc)) {
        best = k - sc.size();
        break;
      }
    if (best != std::string_view::npos) break;
  }
  for (size_t k = 0; k + 4 <= tok.size() && k < best; ++k) {
    if ((tok[k] == 'w' || tok[k] == 'W') && iprefix(tok.substr(k), "www.") &&
        (k == 0 || !((tok[k - 1] >= 'a' && tok[k - 1] <= 'z') || (tok[k - 1] >= 'A' && tok[k - 1] <= 'Z') ||
                     tok[k - 1] == '.' || tok[k - 1] == '/' || tok[k - 1] == '@'))) {
      best = k;
      break;
    }
  }
  return best;
}

}  // namespace

bool normalise_url(std::string_view in, std::string& out) {
  out.clear();
  while (!in.empty() && (in.front() == ' ' || in.front() == '\t')) in.remove_prefix(1);
  while (!in.empty() && (in.back() == ' ' || in.back() == '\t')) in.remove_suffix(1);
  std::string scheme;
  if (iprefix(in, "http://")) scheme = "http", in.remove_prefix(7);
  else if (iprefix(in, "https://")) scheme = "https", in.remove_prefix(8);
  else if (iprefix(in, "ftp://")) scheme = "ftp", in.remove_prefix(6);
  else if (iprefix(in, "www.")) scheme = "http";
  else return false;
  // authority = [userinfo@]host[:port]
  size_t aend = in.find_first_of("/?#\\");
  std::string_view auth = in.substr(0, aend);
  std::string_view rest = aend == std::string_view::npos ? std::string_view() : in.substr(aend);
  if (auto at = auth.rfind('@'); at != std::string_view::npos) auth.remove_prefix(at + 1);  // userinfo dropped: it is a disguise
  std::string_view port;
  if (!auth.empty() && auth.front() == '[') {  // IPv6 literal
    size_t rb = auth.find(']');
    if (rb == std::string_view::npos) return false;
    if (rb + 1 < auth.size() && auth[rb + 1] == ':') port = auth.substr(rb + 2);
    auth = auth.substr(0, rb + 1);
  } else if (auto colon = auth.rfind(':'); colon != std::string_view::npos) {
    port = auth.substr(colon + 1);
    auth = auth.substr(0, colon);
  }
  // Host: percent-decoded, lower case, trailing dot dropped, IDN to A-labels.
  std::string host;
  bool non_ascii = false;
  for (size_t i = 0; i < auth.size(); ++i) {
    char c = auth[i];
    if (c == '%' && i + 2 < auth.size() && hexval(auth[i + 1]) >= 0 &&
        hexval(auth[i + 2]) >= 0) {
      c = char(hexval(auth[i + 1]) * 16 + hexval(auth[i + 2]));
      i += 2;
    }
    if (static_cast<unsigned char>(c) >= 0x80) non_ascii = true;
    host.push_back(lc(c));
  }
  while (!host.empty() && host.back() == '.') host.pop_back();
  if (host.empty() || host.size() > 253) return false;
  if (non_ascii) {
    char* ascii = nullptr;
    if (idn2_to_ascii_8z(host.c_str(), &ascii, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK) {
      if (ascii) idn2_free(ascii);
      if (idn2_to_ascii_8z(host.c_str(), &ascii, IDN2_NFC_INPUT | IDN2_TRANSITIONAL) != IDN2_OK) {
        if (ascii) idn2_free(ascii);
        return false;  // not a host name
      }
    }
    host = ascii;
    idn2_free(ascii);
  }
  for (char c : host)
    if (!(unreserved(static_cast<unsigned char>(c)) || c == '[' || c == ']' || c == ':')) return false;
  bool default_port = port.empty() || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") ||
                      (scheme == "ftp" && port == "21");
  for (char c : port)
    if (c < '0' || c > '9') return false;
  out = scheme;
  out += "://";
  out += host;
  if (!default_port) {
    out += ':';
    out += port;
  }
  // Path and query: fragment dropped; %XX of unreserved decoded, others upper-cased; backslash is '/'.
  if (auto h = rest.find('#'); h != std::string_view::npos) rest = rest.substr(0, h);
  if (rest.empty() || rest.front() == '?') out += '/';
  for (size_t i = 0; i < rest.size(); ++i) {
    char c = rest[i];
    if (c == '\\') c = '/';
    if (c == '%' && i + 2 < rest.size() && hexval(rest[i + 1]) >= 0 &&
        hexval(rest[i + 2]) >= 0) {
      unsigned char d = static_cast<unsigned char>(hexval(rest[i + 1]) * 16 + hexval(rest[i + 2]));
      if (unreserved(d)) {
        out.push_back(char(d));
      } else {
        static const char kHex[] = "0123456789ABCDEF";
        out.push_back('%'), out.push_back(kHex[d >> 4]), out.push_back(kHex[d & 15]);
      }
      i += 2;
    } else if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {  // as WHATWG URL does
      static const char kHex[] = "0123456789ABCDEF";
      out.push_back('%'), out.push_back(kHex[static_cast<unsigned char>(c) >> 4]);
      out.push_back(kHex[static_cast<unsigned char>(c) & 15]);
    } else {
      out.push_back(c);
    }
  }
  return true;
}

void UrlCollector::reset() {
  attr_ = List{};
  text_ = List{};
  carry_.clear();
  seen_ = dropped_ = 0;
}

void UrlCollector::add(List& l, std::string_view raw) {
  if (!normalise_url(raw, norm_)) return;
  ++seen_;
  if (l.set.count(norm_)) return;
  if (l.v.size() >= max_) {
    ++dropped_;
    return;
  }
  l.set.insert(norm_);
  l.v.push_back(norm_);
}

void UrlCollector::attribute(std::string_view url) { add(attr_, url); }

std::vector<std::string> UrlCollector::take() {
  std::vector<std::string> out = std::move(attr_.v);
  for (auto& u : text_.v) {
    if (attr_.set.count(u)) continue;
    if (out.size() >= max_) {
      ++dropped_;
      continue;
    }
    out.push_back(std::move(u));
  }
  attr_ = List{};
  text_ = List{};
  return out;
}

void UrlCollector::scan(const char* p, size_t n) {
  // Driven by the hits: each "://" or "www." found, the token around it
  // (a run of non-stop bytes) is taken; text without them costs a memchr.
  std::string_view sv(p, n);
  size_t done = 0;  // tokens before this offset were handled
  auto token_at = [&](size_t k) {
    size_t s = k, e = k;
    while (s > done && !kStop.v[static_cast<unsigned char>(p[s - 1])]) --s;
    while (e < n && !kStop.v[static_cast<unsigned char>(p[e])]) ++e;
    std::string_view tok(p + s, e - s);
    done = e;
    size_t u = url_start(tok);
    if (u == std::string_view::npos) return;
    tok.remove_prefix(u);
    while (!tok.empty() && std::strchr(".,;:!?)]}*'\"", tok.back())) tok.remove_suffix(1);
    add(text_, tok);
  };
  size_t a = sv.find("://"), w = std::string_view::npos;
  auto next_www = [&](size_t from) {
    size_t best = std::string_view::npos;
    for (size_t k = from; k + 4 <= n; ++k) {
      const void* q = std::memchr(p + k, '.', n - k);
      if (!q) break;
      k = size_t(static_cast<const char*>(q) - p);
      if (k >= 3 && lc(p[k - 1]) == 'w' && lc(p[k - 2]) == 'w' && lc(p[k - 3]) == 'w') {
        best = k - 3;
        break;
      }
    }
    return best;
  };
  w = next_www(0);
  while (a != std::string_view::npos || w != std::string_view::npos) {
    size_t k = std::min(a, w);
    if (k >= done) token_at(k);
    if (a != std::string_view::npos && a < done) a = sv.find("://", done);
    else if (k == a) a = sv.find("://", std::max(done, a + 3));
    if (w != std::string_view::npos && w < done) w = next_www(done);
    else if (k == w) w = next_www(std::max(done, w + 4));
  }
}

void UrlCollector::text(const char* p, size_t n) {
  if (n == 0) return;
  // Finish the token carried over from the last chunk.
  size_t i = 0;
  if (!carry_.empty()) {
    while (i < n && !kStop.v[static_cast<unsigned char>(p[i])]) ++i;
    if (carry_.size() + i <= kMaxToken) carry_.append(p, i);
    if (i == n) return;
    scan(carry_.data(), carry_.size());
    carry_.clear();
  }
  // Hold back a token that touches the end of the chunk.
  size_t end = n;
  while (end > i && !kStop.v[static_cast<unsigned char>(p[end - 1])]) --end;
  scan(p + i, end - i);
  if (end < n) carry_.assign(p + end, std::min(n - end, kMaxToken));
}

void UrlCollector::end_text() {
  if (!carry_.empty()) scan(carry_.data(), carry_.size());
  carry_.clear();
}

}  // namespace sekisho::mime
