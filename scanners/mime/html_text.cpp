#include "scanners/mime/html_text.hpp"

#include <cstring>
#include <string_view>

namespace sekisho::mime {
namespace {

constexpr size_t kMaxValue = 2048;

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'; }
inline char lc(char c) { return c >= 'A' && c <= 'Z' ? char(c + 32) : c; }

using namespace std::literals;

bool eq(const char* s, size_t n, std::string_view lit) { return lit.size() == n && std::memcmp(s, lit.data(), n) == 0; }

bool block_tag(const char* t, size_t n) {
  // Most tags in mail are a, span, font, b, i, img, td: out at the first letter.
  switch (t[0]) {
    case 'p': case 'b': case 'd': case 't': case 'l': case 'u': case 'o': case 'h': case 's': case 'f':
    case 'c':
      break;
    default:
      return false;
  }
  static constexpr std::string_view kBlock[] = {
      "p"sv,  "br"sv, "div"sv,   "tr"sv,      "li"sv,  "ul"sv,         "ol"sv,  "table"sv, "h1"sv,   "h2"sv,
      "h3"sv, "h4"sv, "h5"sv,    "h6"sv,      "hr"sv,  "blockquote"sv, "pre"sv, "title"sv, "dl"sv,   "dt"sv,
      "dd"sv, "section"sv, "article"sv, "header"sv, "footer"sv, "form"sv, "center"sv, "body"sv, "html"sv, "head"sv};
  if (n == 0 || n > 10) return false;
  for (std::string_view b : kBlock)
    if (b.size() == n && b[0] == t[0] && std::memcmp(b.data(), t, n) == 0) return true;
  return false;
}

bool url_attr(const char* a, size_t n) {
  static constexpr std::string_view kUrl[] = {"href"sv, "src"sv, "action"sv, "background"sv,
                                              "formaction"sv, "cite"sv, "poster"sv, "data"sv};
  for (std::string_view u : kUrl)
    if (u.size() == n && std::memcmp(u.data(), a, n) == 0) return true;
  return false;
}

void put_utf8(uint32_t cp, std::string& out) {
  if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xc0 | cp >> 6)), out.push_back(char(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xe0 | cp >> 12)), out.push_back(char(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(char(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(char(0xf0 | cp >> 18)), out.push_back(char(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3f))), out.push_back(char(0x80 | (cp & 0x3f)));
  }
}

struct Named {
  const char* name;
  uint32_t cp;
};
constexpr Named kNamed[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},     {"apos", '\''},   {"nbsp", 0xa0},
    {"copy", 0xa9},    {"reg", 0xae},     {"trade", 0x2122}, {"euro", 0x20ac},  {"pound", 0xa3},  {"yen", 0xa5},
    {"cent", 0xa2},    {"middot", 0xb7},  {"bull", 0x2022},  {"hellip", 0x2026}, {"ndash", 0x2013}, {"mdash", 0x2014},
    {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201c}, {"rdquo", 0x201d}, {"laquo", 0xab},  {"raquo", 0xbb},
    {"zwnj", 0x200c},  {"zwj", 0x200d},   {"shy", 0xad},     {"times", 0xd7},   {"deg", 0xb0},    {"sect", 0xa7},
    {"para", 0xb6},    {"iexcl", 0xa1},   {"iquest", 0xbf},  {"eacute", 0xe9},  {"egrave", 0xe8}, {"agrave", 0xe0},
    {"aacute", 0xe1},  {"ccedil", 0xe7},  {"ouml", 0xf6},    {"uuml", 0xfc},    {"auml", 0xe4},   {"szlig", 0xdf},
    {"ensp", 0x2002},  {"emsp", 0x2003},  {"thinsp", 0x2009}};

}  // namespace

void HtmlToText::reset() {
  UrlHandler* u = urls_;
  *this = HtmlToText(u);
}

void HtmlToText::emit_space(std::string&) { pending_space_ = true; }

void HtmlToText::emit_break(std::string& out) {
  pending_space_ = false;
  if (!at_line_start_) {
    out.push_back('\n');
    at_line_start_ = true;
  }
}

void HtmlToText::emit_entity(std::string& out) {
  uint32_t cp = 0;
  bool ok = false;
  if (ent_len_ > 1 && ent_[0] == '#') {
    bool hex = ent_[1] == 'x' || ent_[1] == 'X';
    ok = ent_len_ > (hex ? 2 : 1);
    for (size_t i = hex ? 2 : 1; i < ent_len_ && ok; ++i) {
      char c = lc(ent_[i]);
      uint32_t d = c >= '0' && c <= '9' ? uint32_t(c - '0') : hex && c >= 'a' && c <= 'f' ? uint32_t(c - 'a' + 10) : 99;
      if (d == 99) ok = false;
      else cp = cp * (hex ? 16 : 10) + d;
      if (cp > 0x10ffff) cp = 0x110000;
    }
  } else {
    for (const auto& e : kNamed)
      if (eq(ent_, ent_len_, e.name)) {
        cp = e.cp;
        ok = true;
        break;
      }
  }
  std::string* dst = &out;
  std::string tmp;
  if (entity_return_ != St::text) dst = &tmp;  // inside an attribute value
  if (ok) {
    if (cp == 0xa0 && dst == &out) {
      pending_space_ = true;
      return;
    }
    put_utf8(cp, *dst);
  } else {  // not a reference we know: keep it as written
    dst->push_back('&');
    dst->append(ent_, ent_len_);
    if (ent_semicolon_) dst->push_back(';');
  }
  if (dst == &out) {
    at_line_start_ = false;
  } else if (want_value_ && value_.size() + tmp.size() <= kMaxValue) {
    value_.append(tmp);
  }
}

void HtmlToText::end_attr() {
  if (want_value_ && urls_ && !value_.empty()) urls_->on_attribute_url(value_);
  want_value_ = false;
  value_.clear();
}

void HtmlToText::end_tag(std::string& out) {
  end_attr();
  if (!closing_ && (eq(tag_, tag_len_, "script") || eq(tag_, tag_len_, "style"))) {
    std::memcpy(skip_until_, tag_, tag_len_);
    skip_len_ = tag_len_;
    st_ = St::skip;
    return;
  }
  if (block_tag(tag_, tag_len_)) emit_break(out);
  else if (eq(tag_, tag_len_, "td") || eq(tag_, tag_len_, "th") || eq(tag_, tag_len_, "img")) emit_space(out);
  st_ = St::text;
}

void HtmlToText::feed(const char* in, size_t n, std::string& out) {
  for (size_t i = 0; i < n; ++i) {
    char c = in[i];
    switch (st_) {
      case St::text: {
        // Text up to the next markup, whitespace runs collapsed, written in place.
        const char* lt = static_cast<const char*>(std::memchr(in + i, '<', n - i));
        size_t end = lt ? size_t(lt - in) : n;
        if (const void* amp = std::memchr(in + i, '&', end - i)) end = size_t(static_cast<const char*>(amp) - in);
        if (end > i) {
          size_t old = out.size();
          out.resize(old + (end - i) + 1);
          char* o = out.data() + old;
          for (size_t k = i; k < end; ++k) {
            char ch = in[k];
            if (is_space(ch)) {
              pending_space_ = true;
            } else {
              if (pending_space_ && !at_line_start_) *o++ = ' ';
              pending_space_ = false;
              at_line_start_ = false;
              *o++ = ch;
            }
          }
          out.resize(size_t(o - out.data()));
          i = end;
          if (i >= n) break;
          c = in[i];
        }
        if (c == '<') {
          st_ = St::lt;
        } else {  // '&'
          ent_len_ = 0;
          entity_return_ = St::text;
          st_ = St::entity;
          if (pending_space_ && !at_line_start_) out.push_back(' ');
          pending_space_ = false;
        }
        break;
      }
      case St::lt:
        tag_len_ = 0;
        closing_ = false;
        if (c == '/') {
          closing_ = true;
          st_ = St::tag_name;
        } else if (c == '!') {
          st_ = St::bang;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
          st_ = St::tag_name;
          --i;
        } else if (c == '?') {
          st_ = St::decl;
        } else {  // a lone '<' is text
          if (pending_space_ && !at_line_start_) out.push_back(' ');
          pending_space_ = false;
          out.push_back('<');
          at_line_start_ = false;
          st_ = St::text;
          --i;
        }
        break;
      case St::tag_name:
        if (is_space(c) || c == '/') {
          st_ = St::in_tag;
        } else if (c == '>') {
          end_tag(out);
        } else if (tag_len_ < sizeof tag_) {
          tag_[tag_len_++] = lc(c);
        }
        break;
      case St::in_tag:
        if (c == '>') {
          end_tag(out);
        } else if (!is_space(c) && c != '/') {
          end_attr();
          attr_len_ = 0;
          attr_[attr_len_++] = lc(c);
          st_ = St::attr_name;
        }
        break;
      case St::attr_name:
        if (c == '=') {
          want_value_ = url_attr(attr_, attr_len_);
          st_ = St::before_value;
        } else if (is_space(c)) {
          st_ = St::after_attr_name;
        } else if (c == '>') {
          end_tag(out);
        } else if (attr_len_ < sizeof attr_) {
          attr_[attr_len_++] = lc(c);
        }
        break;
      case St::after_attr_name:
        if (c == '=') {
          want_value_ = url_attr(attr_, attr_len_);
          st_ = St::before_value;
        } else if (c == '>') {
          end_tag(out);
        } else if (!is_space(c)) {
          st_ = St::in_tag;
          --i;
        }
        break;
      case St::before_value:
        if (c == '"') st_ = St::value_dq;
        else if (c == '\'') st_ = St::value_sq;
        else if (c == '>') end_tag(out);
        else if (!is_space(c)) st_ = St::value_unq, --i;
        break;
      case St::value_dq:
      case St::value_sq:
        if (!want_value_) {  // a value nobody reads: jump to its closing quote
          const void* q = std::memchr(in + i, st_ == St::value_dq ? '"' : '\'', n - i);
          if (!q) {
            i = n - 1;
            break;
          }
          i = size_t(static_cast<const char*>(q) - in);
          c = in[i];
        }
        else {  // a URL value: take the run up to the quote (or an entity) at once
          const char quote = st_ == St::value_dq ? '"' : '\'';
          size_t j = i;
          while (j < n && in[j] != quote && in[j] != '&' && in[j] != '\r' && in[j] != '\n' && in[j] != '\t') ++j;
          if (j > i) {
            size_t take = std::min(j - i, kMaxValue - std::min(kMaxValue, value_.size()));
            if (take < j - i) {
              ++truncated_;
              want_value_ = false;  // an absurd URL is not followed
              value_.clear();
            } else {
              value_.append(in + i, take);
            }
            i = j;
            if (i >= n) break;
            c = in[i];
          }
        }
        [[fallthrough]];
      case St::value_unq: {
        bool end = st_ == St::value_dq ? c == '"' : st_ == St::value_sq ? c == '\'' : (is_space(c) || c == '>');
        if (end) {
          end_attr();
          if (st_ == St::value_unq && c == '>') {
            end_tag(out);
          } else {
            st_ = St::in_tag;
          }
        } else if (c == '&' && want_value_) {
          ent_len_ = 0;
          entity_return_ = st_;
          st_ = St::entity;
        } else if (want_value_) {
          if (value_.size() < kMaxValue) {
            if (c != '\r' && c != '\n' && c != '\t') value_.push_back(c);
          } else {
            ++truncated_;
            want_value_ = false;  // an absurd URL is not followed
            value_.clear();
          }
        }
        break;
      }
      case St::bang:
        if (c == '-') st_ = St::comment_dash1;
        else st_ = c == '>' ? St::text : St::decl;
        break;
      case St::comment_dash1:  // "<!-" seen
        st_ = c == '-' ? St::comment : St::decl;
        break;
      case St::comment: {
        const void* p = std::memchr(in + i, '-', n - i);
        if (!p) {
          i = n - 1;
          break;
        }
        i = size_t(static_cast<const char*>(p) - in);
        st_ = St::comment_dash2;
        tag_len_ = 1;  // dashes seen
        break;
      }
      case St::comment_dash2:
        if (c == '-') ++tag_len_;
        else if (c == '>' && tag_len_ >= 2) st_ = St::text;
        else st_ = St::comment;
        break;
      case St::decl:
        if (c == '>') st_ = St::text;
        break;
      case St::entity:
        if (c == ';' || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '#') ||
            ent_len_ >= sizeof ent_) {
          St back = entity_return_;
          ent_semicolon_ = c == ';';
          emit_entity(out);
          st_ = back;
          if (c != ';') --i;  // the terminator is not part of the reference
        } else {
          ent_[ent_len_++] = c;
        }
        break;
      case St::skip: {
        const void* p = std::memchr(in + i, '<', n - i);
        if (!p) {
          i = n - 1;
          break;
        }
        i = size_t(static_cast<const char*>(p) - in);
        st_ = St::skip_lt;
        break;
      }
      case St::skip_lt:
        if (c == '/') {
          tag_len_ = 0;
          st_ = St::skip_name;
        } else {
          st_ = St::skip;
          --i;
        }
        break;
      case St::skip_name:
        if (tag_len_ < skip_len_ && lc(c) == skip_until_[tag_len_]) {
          ++tag_len_;
        } else if (tag_len_ == skip_len_ && (c == '>' || is_space(c))) {
          st_ = c == '>' ? St::text : St::decl;  // the rest of the end tag up to '>'
          emit_break(out);
        } else {
          st_ = St::skip;
          --i;
        }
        break;
    }
  }
}

void HtmlToText::finish(std::string& out) {
  if (st_ == St::entity) {
    ent_semicolon_ = false;
    St back = entity_return_;
    emit_entity(out);
    st_ = back;
  }
  end_attr();
  st_ = St::text;
}

}  // namespace sekisho::mime
