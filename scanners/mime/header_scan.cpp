#include "mime/header_scan.hpp"

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

// 8-bit header text: UTF-8 as it is (RFC 6532), else Latin-1 (counted).
void raw_to_utf8(std::string_view s, std::string& out, uint32_t& errors) {
  if (valid_utf8(s)) {
    out.append(s);
  } else {
    ++errors;
    latin1_to_utf8(s, out);
  }
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

bool to_utf8(std::string_view charset, std::string_view bytes, std::string& out) {
  std::string cs = lower(charset);
  if (cs == "utf-8" || cs == "utf8" || cs == "us-ascii" || cs == "ascii") {
    if (!valid_utf8(bytes)) return false;
    out.append(bytes);
    return true;
  }
  // Names mail gets wrong, mapped to what iconv (glibc) knows.
  if (cs == "shift-jis" || cs == "sjis" || cs == "x-sjis" || cs == "shift_jis") cs = "CP932";
  else if (cs == "iso-2022-jp" || cs == "iso2022jp") cs = "ISO-2022-JP-3";  // a superset of ISO-2022-JP
  else if (cs == "gb2312" || cs == "x-gbk") cs = "GBK";
  else if (cs == "ks_c_5601-1987") cs = "CP949";
  else if (cs == "unknown-8bit" || cs == "x-unknown" || cs == "default") return false;
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

std::string decode_words(std::string_view v, uint32_t& errors) {
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
      if (!last_was_word) raw_to_utf8(pending_ws, out, errors);  // whitespace between two words is dropped
      pending_ws.clear();
      std::string bytes = enc == 'B' ? b64decode(text) : qdecode(text);
      if (!to_utf8(charset, bytes, out)) {
        ++errors;
        raw_to_utf8(bytes, out, errors);
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
    raw_to_utf8(pending_ws, out, errors);
    pending_ws.clear();
    size_t j = i;
    while (j < v.size() && v[j] != ' ' && v[j] != '\t' && !(v[j] == '=' && j + 1 < v.size() && v[j + 1] == '?' && j > i))
      ++j;
    if (j == i) j = i + 1;
    raw_to_utf8(v.substr(i, j - i), out, errors);
    i = j;
    last_was_word = false;
  }
  raw_to_utf8(pending_ws, out, errors);
  return out;
}

std::vector<Address> parse_addresses(std::string_view v, uint32_t& errors) {
  // Tokenise into mailboxes at top-level commas, remembering for each the
  // display part, the <angle> part and comments.
  std::vector<Address> out;
  std::string display, angle, bare, comment;
  bool in_angle = false, have_angle = false;
  int depth = 0;
  bool in_quote = false;
  auto flush = [&] {
    Address a;
    std::string_view disp = trim(display);
    if (have_angle) {
      a.address = std::string(trim(angle));
      // source routes: <@a,@b:user@c>
      if (!a.address.empty() && a.address[0] == '@') {
        auto c = a.address.find(':');
        if (c != std::string::npos) a.address.erase(0, c + 1);
      }
      a.name = decode_words(disp, errors);
    } else {
      std::string_view b = trim(bare);
      a.address = std::string(b);
      a.name = decode_words(trim(comment), errors);
    }
    if (!a.address.empty() || !a.name.empty()) out.push_back(std::move(a));
    display.clear();
    angle.clear();
    bare.clear();
    comment.clear();
    have_angle = false;
  };
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (depth > 0) {  // inside a comment
      if (c == '\\' && i + 1 < v.size()) {
        comment.push_back(v[++i]);
        continue;
      }
      if (c == '(') ++depth;
      else if (c == ')') --depth;
      if (depth > 0) comment.push_back(c);
      continue;
    }
    if (in_quote) {
      if (c == '\\' && i + 1 < v.size()) {
        (in_angle ? angle : display).push_back(v[++i]);
        continue;
      }
      if (c == '"') {
        in_quote = false;
        if (in_angle) angle.push_back(c);
        continue;
      }
      (in_angle ? angle : display).push_back(c);
      if (!in_angle) bare.push_back(c);
      continue;
    }
    if (in_angle) {
      if (c == '>') in_angle = false;
      else if (c == '"') { in_quote = true; angle.push_back(c); }
      else if (c != ' ' && c != '\t') angle.push_back(c);
      continue;
    }
    switch (c) {
      case '"':
        in_quote = true;
        break;
      case '(':
        depth = 1;
        break;
      case '<':
        in_angle = have_angle = true;
        angle.clear();
        break;
      case ',':
        flush();
        break;
      case ':':
        // a group's display name ("undisclosed-recipients:") unless part of a bare address
        if (!have_angle) {
          display.clear();
          bare.clear();
          comment.clear();
        }
        break;
      case ';':
        flush();
        break;
      default:
        display.push_back(c);
        if (c != '\r' && c != '\n') bare.push_back(c);
    }
  }
  flush();
  // A bare address cannot contain spaces: "John Smith" with no address is a name.
  for (auto& a : out) {
    auto sp = a.address.find_first_of(" \t");
    if (sp != std::string::npos) {
      // keep the token that looks like an address, if any
      std::string best;
      size_t p = 0;
      std::string_view s = a.address;
      while (p < s.size()) {
        size_t q = s.find_first_of(" \t", p);
        std::string_view tok = s.substr(p, q == std::string_view::npos ? std::string_view::npos : q - p);
        if (tok.find('@') != std::string_view::npos) best = std::string(tok);
        if (q == std::string_view::npos) break;
        p = q + 1;
      }
      a.address = best;
    }
  }
  out.erase(std::remove_if(out.begin(), out.end(), [](const Address& a) { return a.address.empty(); }), out.end());
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

namespace {

bool name_is(std::string_view name, std::string_view want) {
  if (name.size() != want.size()) return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(name[i])) != want[i]) return false;
  return true;
}

// The value of a field, unfolded (the line breaks before continuation lines removed).
std::string unfold(std::string_view raw) {
  std::string v;
  v.reserve(std::min(raw.size(), kMaxFieldValue));
  for (size_t i = 0; i < raw.size() && v.size() < kMaxFieldValue; ++i) {
    if (raw[i] == '\r' || raw[i] == '\n') continue;
    v.push_back(raw[i]);
  }
  return v;
}

}  // namespace

void HeaderScanner::parse() {
  done_ = true;
  // Fields are found in place; only the ones we keep are copied (unfolded).
  std::string_view block(block_);
  bool have_from = false, have_subject = false, have_mid = false, have_date = false;
  size_t i = 0;
  while (i < block.size()) {
    size_t eol = block.find('\n', i);
    size_t line_end = eol == std::string_view::npos ? block.size() : eol;
    std::string_view line = block.substr(i, line_end - i);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    // The field runs on over continuation lines (starting with space or tab).
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
    ++facts_.headers;
    std::string_view raw_value = field.substr(colon + 1);
    if (name_is(name, "from") && !have_from) {
      have_from = true;
      auto a = parse_addresses(trim(unfold(raw_value)), facts_.charset_errors);
      if (!a.empty()) {
        facts_.from = a[0].address;
        facts_.from_name = a[0].name;
      }
    } else if (name_is(name, "to") || name_is(name, "cc")) {
      bool to = name_is(name, "to");
      for (auto& a : parse_addresses(trim(unfold(raw_value)), facts_.charset_errors))
        (to ? facts_.to : facts_.cc).push_back(std::move(a.address));
    } else if (name_is(name, "reply-to") && !facts_.reply_to) {
      auto a = parse_addresses(trim(unfold(raw_value)), facts_.charset_errors);
      if (!a.empty()) facts_.reply_to = a[0].address;
    } else if (name_is(name, "subject") && !have_subject) {
      have_subject = true;
      facts_.subject = decode_words(trim(unfold(raw_value)), facts_.charset_errors);
    } else if (name_is(name, "message-id") && !have_mid) {
      have_mid = true;
      facts_.message_id = std::string(trim(unfold(raw_value)));
    } else if (name_is(name, "date") && !have_date) {
      have_date = true;
      facts_.date = std::string(trim(unfold(raw_value)));
    }
  }
  if (block_.capacity() > 65536) {
    block_.clear();
    block_.shrink_to_fit();  // a huge header block does not stay with the flow
  } else {
    block_.clear();
  }
}

}  // namespace sekisho::mime
