#include "scanners/mime/header_scan.hpp"

#include "scanners/mime/address.hpp"
#include "scanners/mime/charset.hpp"

#include <iconv.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace sekisho::mime {
namespace {

constexpr size_t kMaxFieldValue = 16 * 1024;

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = char(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!n || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += n;
  }
  return true;
}

void latin1_to_utf8(std::string_view s, std::string& out) {
  for (unsigned char c : s) {
    if (c < 0x80) {
      out.push_back(char(c));
    } else {
      out.push_back(char(0xc0 | (c >> 6)));
      out.push_back(char(0x80 | (c & 0x3f)));
    }
  }
}

bool to_utf8_impl(std::string_view charset, std::string_view bytes, std::string& out);

// 8-bit header text without an encoded word: UTF-8 as it is (RFC 6532);
// raw ISO-2022-JP (ESC sequences, as Japanese mailers still send); else the
// message's declared charset, if any; else Latin-1. All but UTF-8 counted.
void raw_to_utf8(std::string_view s, std::string& out, uint32_t& errors, std::string_view fallback = {}) {
  if (valid_utf8(s) && s.find('\x1b') == std::string_view::npos) {
    out.append(s);
    return;
  }
  ++errors;
  if (s.find("\x1b$") != std::string_view::npos && to_utf8_impl("ISO-2022-JP", s, out)) return;
  if (!fallback.empty() && to_utf8_impl(fallback, s, out)) return;
  latin1_to_utf8(s, out);
}

int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Lenient base64: skips what is not in the alphabet, stops at '='.
std::string b64decode(std::string_view s) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : s) {
    if (c == '=') break;
    int v = b64val(c);
    if (v < 0) continue;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xff));
    }
  }
  return out;
}

int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = char(std::tolower(c));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string qdecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      out.push_back(' ');
    } else if (s[i] == '=' && i + 2 < s.size() && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      out.push_back(char(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Parses "=?charset?E?text?=" at |s|; returns its length or 0.
size_t encoded_word(std::string_view s, std::string& charset, char& enc, std::string_view& text) {
  if (s.size() < 8 || s[0] != '=' || s[1] != '?') return 0;
  size_t q1 = s.find('?', 2);
  if (q1 == std::string_view::npos || q1 + 3 >= s.size() || s[q1 + 2] != '?') return 0;
  size_t end = s.find("?=", q1 + 3);
  if (end == std::string_view::npos) return 0;
  charset.assign(s.substr(2, q1 - 2));
  if (auto star = charset.find('*'); star != std::string::npos) charset.resize(star);  // RFC 2231 language
  enc = char(std::toupper(static_cast<unsigned char>(s[q1 + 1])));
  if (enc != 'B' && enc != 'Q') return 0;
  text = s.substr(q1 + 3, end - q1 - 3);
  if (text.find(' ') != std::string_view::npos) return 0;
  return end + 2;
}

}  // namespace

bool to_utf8(std::string_view charset, std::string_view bytes, std::string& out) { return to_utf8_impl(charset, bytes, out); }

namespace {
bool to_utf8_impl(std::string_view charset, std::string_view bytes, std::string& out) {
  std::string cs = lower(charset);
  if (cs == "utf-8" || cs == "utf8" || cs == "us-ascii" || cs == "ascii") {
    if (!valid_utf8(bytes)) return false;
    out.append(bytes);
    return true;
  }
  // Names mail gets wrong, mapped to what iconv (glibc) knows (the same map as bodies).
  if (cs == "unknown-8bit" || cs == "x-unknown" || cs == "default") return false;
  cs = iconv_name(cs);
  if (cs.empty()) {  // another name for UTF-8 or ASCII
    if (!valid_utf8(bytes)) return false;
    out.append(bytes);
    return true;
  }
  // iconv_open loads conversion modules: keep a few descriptors per thread.
  struct Converter {
    std::string charset;
    iconv_t cd;
  };
  struct Cache {
    std::vector<Converter> v;
    ~Cache() {
      for (auto& c : v) iconv_close(c.cd);
    }
  };
  thread_local Cache tl;
  auto& cache = tl.v;
  iconv_t cd = iconv_t(-1);
  for (auto& c : cache)
    if (c.charset == cs) cd = c.cd;
  if (cd == iconv_t(-1)) {
    cd = iconv_open("UTF-8", cs.c_str());
    if (cd == iconv_t(-1)) return false;
    if (cache.size() >= 16) {
      iconv_close(cache.front().cd);
      cache.erase(cache.begin());
    }
    cache.push_back({cs, cd});
  }
  iconv(cd, nullptr, nullptr, nullptr, nullptr);  // initial shift state
  std::string buf(bytes.size() * 4 + 16, '\0');
  char* in = const_cast<char*>(bytes.data());
  size_t inleft = bytes.size();
  char* o = buf.data();
  size_t oleft = buf.size();
  size_t r = iconv(cd, &in, &inleft, &o, &oleft);
  if (r != size_t(-1)) r = iconv(cd, nullptr, nullptr, &o, &oleft);
  if (r == size_t(-1)) return false;
  out.append(buf.data(), buf.size() - oleft);
  return true;
}

}  // namespace

std::string decode_words(std::string_view v, uint32_t& errors, std::string_view fallback) {
  // Most header values are plain ASCII without encoded words: as they are.
  if (v.find("=?") == std::string_view::npos &&
      std::all_of(v.begin(), v.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80 && c != 0x1b; }))
    return std::string(v);
  std::string out;
  size_t i = 0;
  bool last_was_word = false;
  std::string pending_ws;
  while (i < v.size()) {
    std::string charset;
    char enc;
    std::string_view text;
    size_t n = v[i] == '=' ? encoded_word(v.substr(i), charset, enc, text) : 0;
    if (n) {
      if (!last_was_word) raw_to_utf8(pending_ws, out, errors, fallback);  // whitespace between two words is dropped
      pending_ws.clear();
      std::string bytes = enc == 'B' ? b64decode(text) : qdecode(text);
      if (!to_utf8(charset, bytes, out)) {
        // Some bytes do not convert: the rest still does, those become U+FFFD
        // (an unknown charset is read as UTF-8 the same way). Counted.
        ++errors;
        TextDecoder td;
        td.begin(charset);
        td.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), out);
        td.finish(out);
      }
      i += n;
      last_was_word = true;
      continue;
    }
    if (v[i] == ' ' || v[i] == '\t') {
      pending_ws.push_back(v[i]);
      ++i;
      continue;
    }
    raw_to_utf8(pending_ws, out, errors, fallback);
    pending_ws.clear();
    size_t j = i;
    while (j < v.size() && v[j] != ' ' && v[j] != '\t' && !(v[j] == '=' && j + 1 < v.size() && v[j + 1] == '?' && j > i))
      ++j;
    if (j == i) j = i + 1;
    raw_to_utf8(v.substr(i, j - i), out, errors, fallback);
    i = j;
    last_was_word = false;
  }
  raw_to_utf8(pending_ws, out, errors, fallback);
  return out;
}

namespace {

// A quoted local part keeps its quotes only if it needs them (as Python
// renders addresses): "john"@x -> john@x, "a b"@x stays.
void canonical_quotes(std::string& a) {
  if (a.find('"') == std::string::npos) return;
  std::string o;
  size_t i = 0;
  while (i < a.size()) {
    if (a[i] != '"') {
      o.push_back(a[i++]);
      continue;
    }
    size_t j = i + 1;
    while (j < a.size() && a[j] != '"') j += a[j] == '\\' ? 2 : 1;
    if (j >= a.size()) {  // unterminated: as written
      o.append(a, i, std::string::npos);
      break;
    }
    std::string_view inner(a.data() + i + 1, j - i - 1);
    bool atom = !inner.empty();
    for (char c : inner) {
      unsigned char u = static_cast<unsigned char>(c);
      if (!(std::isalnum(u) || std::strchr("!#$%&'*+-/=?^_`{|}~.", c) || u >= 0x80)) atom = false;
    }
    if (atom) o.append(inner);
    else o.append(a, i, j - i + 1);
    i = j + 1;
  }
  a = std::move(o);
}

}  // namespace

// The splitting is for_each_address's (address.hpp), shared with the
// matcher; here the spans are copied, and display names decoded.
std::vector<Address> parse_addresses(std::string_view v, uint32_t& errors, std::string_view fallback) {
  std::vector<Address> out;
  std::string name;
  for_each_address(v, [&](const Mailbox& m) {
    Address a;
    render_address(m.address, [&](std::string_view p) { a.address.append(p); });
    canonical_quotes(a.address);
    name.clear();
    if (m.angle) render_phrase(m.phrase, [&](std::string_view p) { name.append(p); });
    else render_comments(m.comments, [&](std::string_view p) { name.append(p); });
    a.name = decode_words(name, errors, fallback);
    out.push_back(std::move(a));
  });
  return out;
}

void HeaderScanner::reset() {
  block_.clear();
  done_ = false;
  facts_ = HeaderFacts{};
}

void HeaderScanner::feed(std::span<const uint8_t> bytes) {
  if (done_) return;
  const char* p = reinterpret_cast<const char*>(bytes.data());
  size_t n = bytes.size();
  size_t old = block_.size();
  if (old == 0) block_.reserve(std::min<size_t>(max_ + 4, 8192));
  size_t take = std::min(n, max_ + 4 - std::min(max_ + 4, old));
  block_.append(p, take);
  // The block ends at the first empty line; look only around the new bytes.
  size_t from = old >= 3 ? old - 3 : 0;
  size_t e1 = block_.find("\r\n\r\n", from), e2 = block_.find("\n\n", from);
  size_t end = std::min(e1 == std::string::npos ? std::string::npos : e1 + 2,
                        e2 == std::string::npos ? std::string::npos : e2 + 1);
  if (old == 0 && (block_.rfind("\r\n", 0) == 0 || block_.rfind("\n", 0) == 0)) end = 0;  // no headers at all
  if (end != std::string::npos) {
    block_.resize(end);
    facts_.complete = true;
    parse();
  } else if (block_.size() > max_) {
    block_.resize(max_);
    facts_.truncated = true;
    parse();
  }
}

void HeaderScanner::finish() {
  if (!done_) parse();
}

bool name_is(std::string_view name, std::string_view want) {
  if (name.size() != want.size()) return false;
  for (size_t i = 0; i < name.size(); ++i)
    if ((name[i] >= 'A' && name[i] <= 'Z' ? char(name[i] + 32) : name[i]) != want[i]) return false;
  return true;
}

// The value of a field, unfolded (the line breaks before continuation lines removed).
std::string unfold(std::string_view raw) {
  std::string v;
  size_t cap = std::min(raw.size(), kMaxFieldValue);
  v.reserve(cap);
  size_t i = 0;
  while (i < raw.size() && v.size() < kMaxFieldValue) {
    size_t j = raw.find_first_of("\r\n", i);
    if (j == std::string_view::npos) j = raw.size();
    v.append(raw.substr(i, std::min(j - i, kMaxFieldValue - v.size())));
    i = j + 1;
  }
  return v;
}

void for_each_field(std::string_view block, const FieldFn& fn) {
  // Fields are found in place; a field runs on over continuation lines.
  size_t i = 0;
  while (i < block.size()) {
    size_t eol = block.find('\n', i);
    size_t line_end = eol == std::string_view::npos ? block.size() : eol;
    std::string_view line = block.substr(i, line_end - i);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    size_t end = eol == std::string_view::npos ? block.size() : eol + 1;
    while (end < block.size() && (block[end] == ' ' || block[end] == '\t')) {
      size_t e = block.find('\n', end);
      end = e == std::string_view::npos ? block.size() : e + 1;
    }
    std::string_view field = block.substr(i, end - i);
    i = end;
    if (line[0] == ' ' || line[0] == '\t') continue;  // continuation without a field
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;  // not a field (e.g. an mbox From_ line)
    std::string_view name = trim(line.substr(0, colon));
    if (name.find(' ') != std::string_view::npos) continue;
    fn(name, field.substr(colon + 1));
  }
}

void FactsBuilder::field(std::string_view name, std::string_view raw_value) {
  ++f.headers;
  if (name_is(name, "from") && !have_from) {
    have_from = true;
    auto a = parse_addresses(trim(unfold(raw_value)), f.charset_errors, fallback);
    if (!a.empty()) {
      f.from = a[0].address;
      f.from_name = a[0].name;
    }
  } else if (name_is(name, "to") || name_is(name, "cc")) {
    bool to = name_is(name, "to");
    for (auto& a : parse_addresses(trim(unfold(raw_value)), f.charset_errors, fallback))
      (to ? f.to : f.cc).push_back(std::move(a.address));
  } else if (name_is(name, "reply-to") && !f.reply_to) {
    auto a = parse_addresses(trim(unfold(raw_value)), f.charset_errors, fallback);
    if (!a.empty()) f.reply_to = a[0].address;
  } else if (name_is(name, "subject") && !have_subject) {
    have_subject = true;
    f.subject = decode_words(trim(unfold(raw_value)), f.charset_errors, fallback);
  } else if (name_is(name, "message-id") && !have_mid) {
    have_mid = true;
    f.message_id = std::string(trim(unfold(raw_value)));
  } else if (name_is(name, "date") && !have_date) {
    have_date = true;
    f.date = std::string(trim(unfold(raw_value)));
  }
}

void HeaderScanner::parse() {
  done_ = true;
  FactsBuilder b{facts_};
  for_each_field(block_, [&](std::string_view name, std::string_view raw) { b.field(name, raw); });
  if (block_.capacity() > 65536) {
    block_.clear();
    block_.shrink_to_fit();  // a huge header block does not stay with the flow
  } else {
    block_.clear();
  }
}

ContentField parse_content_field(std::string_view raw_value, uint32_t& errors) {
  ContentField cf;
  std::string v = unfold(raw_value);
  std::string_view sv = trim(v);
  size_t semi = sv.find(';');
  std::string_view main = trim(sv.substr(0, semi));
  // A comment after the value: "text/plain (fixed)".
  if (auto paren = main.find('('); paren != std::string_view::npos) main = trim(main.substr(0, paren));
  cf.value = lower(main);
  if (semi == std::string_view::npos) return cf;
  // Parameters: name=token | name="quoted", RFC 2231 name*=cs'lang'pct and name*N[*]= sections.
  struct Section {
    std::string name;
    int index;
    bool extended;
    std::string value;
  };
  std::vector<Section> secs;
  size_t i = semi + 1;
  while (i < sv.size() && secs.size() < 64) {
    while (i < sv.size() && (sv[i] == ' ' || sv[i] == '\t' || sv[i] == ';')) ++i;
    size_t eq = sv.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string name = lower(trim(sv.substr(i, eq - i)));
    i = eq + 1;
    while (i < sv.size() && (sv[i] == ' ' || sv[i] == '\t')) ++i;
    std::string value;
    if (i < sv.size() && sv[i] == '"') {
      ++i;
      while (i < sv.size() && sv[i] != '"') {
        if (sv[i] == '\\' && i + 1 < sv.size()) ++i;
        value.push_back(sv[i++]);
      }
      ++i;
      while (i < sv.size() && sv[i] != ';') ++i;  // junk after the closing quote
    } else {
      size_t e = sv.find(';', i);
      value = std::string(trim(sv.substr(i, e == std::string_view::npos ? std::string_view::npos : e - i)));
      i = e == std::string_view::npos ? sv.size() : e;
    }
    Section s{name, -1, false, std::move(value)};
    if (!s.name.empty() && s.name.back() == '*') {
      s.extended = true;
      s.name.pop_back();
    }
    if (auto star = s.name.rfind('*'); star != std::string::npos) {
      std::string_view idx(s.name.data() + star + 1, s.name.size() - star - 1);
      if (!idx.empty() && idx.size() < 4 && std::all_of(idx.begin(), idx.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        s.index = std::stoi(std::string(idx));
        s.name.resize(star);
      }
    }
    if (!s.name.empty()) secs.push_back(std::move(s));
  }
  auto pct = [](std::string_view x) {
    std::string o;
    for (size_t k = 0; k < x.size(); ++k) {
      if (x[k] == '%' && k + 2 < x.size() && hexval(x[k + 1]) >= 0 && hexval(x[k + 2]) >= 0) {
        o.push_back(char(hexval(x[k + 1]) * 16 + hexval(x[k + 2])));
        k += 2;
      } else {
        o.push_back(x[k]);
      }
    }
    return o;
  };
  for (size_t k = 0; k < secs.size(); ++k) {
    const std::string& name = secs[k].name;
    bool done = false;
    for (auto& p : cf.params)
      if (p.first == name) done = true;
    if (done) continue;  // first occurrence wins; sections gathered below
    // Gather this parameter: the plain one, or sections 0..N in index order.
    std::vector<const Section*> parts;
    const Section* plain = nullptr;
    const Section* ext = nullptr;
    for (auto& s : secs) {
      if (s.name != name) continue;
      if (s.index >= 0) parts.push_back(&s);
      else if (s.extended && !ext) ext = &s;
      else if (!s.extended && !plain) plain = &s;
    }
    std::string raw, charset;
    bool encoded = false;
    if (!parts.empty()) {
      std::sort(parts.begin(), parts.end(), [](auto* a, auto* b) { return a->index < b->index; });
      for (size_t n = 0; n < parts.size(); ++n) {
        std::string piece = parts[n]->value;
        if (parts[n]->extended) {
          if (parts[n]->index == 0) {
            size_t q1 = piece.find('\''), q2 = q1 == std::string::npos ? q1 : piece.find('\'', q1 + 1);
            if (q2 != std::string::npos) {
              charset = piece.substr(0, q1);
              piece = piece.substr(q2 + 1);
            }
          }
          piece = pct(piece);
          encoded = true;
        }
        raw += piece;
      }
    } else if (ext) {
      std::string piece = ext->value;
      size_t q1 = piece.find('\''), q2 = q1 == std::string::npos ? q1 : piece.find('\'', q1 + 1);
      if (q2 != std::string::npos) {
        charset = piece.substr(0, q1);
        piece = piece.substr(q2 + 1);
      }
      raw = pct(piece);
      encoded = true;
    } else if (plain) {
      raw = plain->value;
    }
    std::string decoded;
    if (encoded && !charset.empty()) {
      if (!to_utf8(charset, raw, decoded)) {
        ++errors;
        decoded.clear();
        raw_to_utf8(raw, decoded, errors);
      }
    } else if (raw.find("=?") != std::string::npos) {
      decoded = decode_words(raw, errors);  // RFC 2047 inside a parameter: wrong, but what mailers send
    } else {
      raw_to_utf8(raw, decoded, errors);
    }
    cf.params.emplace_back(name, std::move(decoded));
  }
  return cf;
}

const std::string* ContentField::param(std::string_view name) const {
  for (auto& p : params)
    if (p.first == name) return &p.second;
  return nullptr;
}

}  // namespace sekisho::mime
