#include "rules/compiler/translate.hpp"

#include <hs/hs.h>

#include <cctype>
#include <algorithm>
#include <cstdio>
#include <vector>

namespace sekisho::rules {

namespace {

void hex_byte(std::string& out, unsigned char c) {
  char b[8];
  snprintf(b, sizeof b, "\\x%02x", c);
  out += b;
}

// Perl /x: drops whitespace and #-comments outside character classes.
std::string strip_extended(std::string_view s) {
  std::string out;
  bool in_class = false, first = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {
      out += c;
      out += s[++i];
      first = false;
      continue;
    }
    if (in_class) {
      if (c == ']' && !first) in_class = false;
      if (!(c == '^' && first && out.back() == '[')) first = false;
      out += c;
      continue;
    }
    if (c == '[') {
      in_class = true;
      first = true;
      out += c;
      if (i + 1 < s.size() && s[i + 1] == '^') out += s[++i];
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') continue;
    if (c == '#') {
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    out += c;
  }
  return out;
}

bool is_quantifier_brace(std::string_view s, size_t i, size_t& end) {
  // {n} {n,} {n,m}
  size_t j = i + 1;
  size_t d1 = j;
  while (j < s.size() && isdigit(static_cast<unsigned char>(s[j]))) ++j;
  if (j == d1) return false;
  if (j < s.size() && s[j] == ',') {
    ++j;
    while (j < s.size() && isdigit(static_cast<unsigned char>(s[j]))) ++j;
  }
  if (j < s.size() && s[j] == '}') {
    end = j;
    return true;
  }
  return false;
}

}  // namespace

Translation translate_regex(std::string_view source, std::string_view mods, bool multiline) {
  Translation t;
  bool x = false;
  for (char c : mods) {
    if (c == 'i') t.flags |= HS_FLAG_CASELESS;
    if (c == 's') t.flags |= HS_FLAG_DOTALL;
    if (c == 'm') t.flags |= HS_FLAG_MULTILINE;
    if (c == 'x') x = true;
  }
  if (multiline) t.flags |= HS_FLAG_MULTILINE;
  std::string stripped;
  if (x) {
    stripped = strip_extended(source);
    source = stripped;
  }
  std::string& out = t.pattern;
  const std::string_view s = source;
  const size_t n = s.size();
  bool in_class = false, class_first = false, after_quant = false;
  auto refuse = [&](std::string why) {
    if (t.refused.empty()) t.refused = std::move(why);
  };
  for (size_t i = 0; i < n && t.refused.empty();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (in_class) {
      if (c == '\\' && i + 1 < n) {
        char e = s[i + 1];
        if (e == 'p' || e == 'P') {
          refuse("Unicode property \\p in a byte-mode pattern");
          break;
        }
        if (e == 'x' && i + 2 < n && s[i + 2] == '{') {
          size_t close = s.find('}', i + 3);
          if (close == std::string_view::npos) { refuse("unterminated \\x{"); break; }
          unsigned long v = strtoul(std::string(s.substr(i + 3, close - i - 3)).c_str(), nullptr, 16);
          if (v > 0xff) { refuse("code point above \\xff in a byte-mode pattern"); break; }
          hex_byte(out, static_cast<unsigned char>(v));
          i = close + 1;
        } else if (static_cast<unsigned char>(e) >= 0x80) {
          hex_byte(out, static_cast<unsigned char>(e));
          i += 2;
        } else {
          out += s.substr(i, 2);
          i += 2;
        }
        class_first = false;
        continue;
      }
      if (c == '[' && i + 1 < n && (s[i + 1] == ':' || s[i + 1] == '=' || s[i + 1] == '.')) {
        size_t close = s.find(std::string{s[i + 1], ']'}, i + 2);
        if (close == std::string_view::npos) {
          out += "\\[";
          ++i;
        } else {
          out += s.substr(i, close + 2 - i);
          i = close + 2;
        }
        class_first = false;
        continue;
      }
      if (c == ']' && !class_first) {
        in_class = false;
        out += ']';
        ++i;
        after_quant = false;
        continue;
      }
      if (c == '[') out += "\\[";
      else if (c >= 0x80) hex_byte(out, c);
      else out += static_cast<char>(c);
      class_first = false;
      ++i;
      continue;
    }
    switch (c) {
      case '\\': {
        if (i + 1 >= n) {
          refuse("trailing backslash");
          break;
        }
        char e = s[i + 1];
        after_quant = false;
        if (e >= '1' && e <= '9') {
          t.prefilter = true;
          out += s.substr(i, 2);
          i += 2;
        } else if (e == 'g' || e == 'k') {
          t.prefilter = true;
          out += s.substr(i, 2);
          i += 2;
        } else if (e == 'K') {
          i += 2;  // only moves the reported start; existence is unchanged
        } else if (e == 'G') {
          out += "\\A";
          i += 2;
        } else if (e == 'R') {
          out += "(?:\\r\\n|[\\n\\x0b\\f\\r\\x85])";
          i += 2;
        } else if (e == 'N') {
          if (i + 2 < n && s[i + 2] == '{') {
            refuse("named character \\N{...}");
            break;
          }
          out += "[^\\n]";
          i += 2;
        } else if (e == 'Q') {
          size_t end = s.find("\\E", i + 2);
          std::string_view lit = s.substr(i + 2, end == std::string_view::npos ? std::string_view::npos : end - i - 2);
          for (char l : lit) {
            unsigned char u = static_cast<unsigned char>(l);
            if (u >= 0x80 || u < 0x20) hex_byte(out, u);
            else if (isalnum(u) || u == ' ' || u == '_') out += l;
            else {
              out += '\\';
              out += l;
            }
          }
          i = end == std::string_view::npos ? n : end + 2;
        } else if (e == 'E') {
          i += 2;
        } else if (e == 'x' && i + 2 < n && s[i + 2] == '{') {
          size_t close = s.find('}', i + 3);
          if (close == std::string_view::npos) { refuse("unterminated \\x{"); break; }
          unsigned long v = strtoul(std::string(s.substr(i + 3, close - i - 3)).c_str(), nullptr, 16);
          if (v > 0xff) { refuse("code point above \\xff in a byte-mode pattern"); break; }
          hex_byte(out, static_cast<unsigned char>(v));
          i = close + 1;
        } else if (e == 'p' || e == 'P' || e == 'X' || e == 'C') {
          refuse(std::string("\\") + e + " (Unicode property/cluster/byte escape)");
        } else if (e == 'l' || e == 'u' || e == 'L' || e == 'U') {
          refuse(std::string("Perl case escape \\") + e);
        } else if (static_cast<unsigned char>(e) >= 0x80) {
          hex_byte(out, static_cast<unsigned char>(e));
          i += 2;
        } else {
          out += s.substr(i, 2);
          i += 2;
        }
        break;
      }
      case '[':
        in_class = true;
        class_first = true;
        out += '[';
        ++i;
        if (i < n && s[i] == '^') {
          out += '^';
          ++i;
        }
        if (i < n && s[i] == ']') {  // a leading ] is literal
          out += "\\]";
          ++i;
          class_first = false;
        }
        after_quant = false;
        break;
      case '(': {
        after_quant = false;
        if (i + 1 < n && s[i + 1] == '*') {
          refuse("backtracking control verb (*...)");
          break;
        }
        if (i + 1 >= n || s[i + 1] != '?') {
          out += '(';
          ++i;
          break;
        }
        char k = i + 2 < n ? s[i + 2] : 0;
        if (k == '#') {
          size_t close = s.find(')', i);
          i = close == std::string_view::npos ? n : close + 1;
        } else if (k == ':') {
          out += "(?:";
          i += 3;
        } else if (k == '=' || k == '!') {
          t.prefilter = true;
          out += s.substr(i, 3);
          i += 3;
        } else if (k == '<' && i + 3 < n && (s[i + 3] == '=' || s[i + 3] == '!')) {
          t.prefilter = true;
          out += s.substr(i, 4);
          i += 4;
        } else if (k == '<' || k == '\'' || (k == 'P' && i + 3 < n && s[i + 3] == '<')) {
          char close = k == '\'' ? '\'' : '>';
          size_t e = s.find(close, i + (k == 'P' ? 4 : 3));
          if (e == std::string_view::npos) {
            refuse("unterminated group name");
            break;
          }
          out += "(?:";
          i = e + 1;
        } else if (k == 'P' && i + 3 < n && s[i + 3] == '=') {
          t.prefilter = true;  // (?P=name) back-reference
          out += s.substr(i, 4);
          i += 4;
        } else if (k == '>') {
          t.superset = true;
          out += "(?:";
          i += 3;
        } else if (k == '|') {
          out += "(?:";
          i += 3;
        } else if (k == '(') {
          refuse("conditional pattern (?(...)");
        } else if (k == 'R' || k == '&' || (k == 'P' && i + 3 < n && s[i + 3] == '>') ||
                   isdigit(static_cast<unsigned char>(k)) ||
                   ((k == '+' || k == '-') && i + 3 < n && isdigit(static_cast<unsigned char>(s[i + 3])))) {
          refuse("recursion or subroutine call");
        } else if (k == '^') {
          // Perl's (?^flags: ...) resets to the defaults, then applies flags.
          size_t j = i + 3;
          std::string on;
          while (j < n && isalpha(static_cast<unsigned char>(s[j]))) on += s[j++];
          std::string off;
          for (char f : std::string("ims"))
            if (on.find(f) == std::string::npos) off += f;
          std::string keep;
          for (char f : on)
            if (f == 'i' || f == 'm' || f == 's') keep += f;
          out += "(?" + keep + "-" + off;
          i = j;
        } else {
          // Inline flags (?imsx-imsx) or (?imsx-imsx: ...)
          size_t j = i + 2;
          std::string fl;
          while (j < n && (isalpha(static_cast<unsigned char>(s[j])) || s[j] == '-')) fl += s[j++];
          if (j >= n || (s[j] != ')' && s[j] != ':')) {
            refuse("unknown group construct (?" + std::string(1, k) + "...");
            break;
          }
          std::string kept;
          for (char f : fl) {
            if (f == 'i' || f == 'm' || f == 's' || f == '-') kept += f;
            else if (f == 'x') {
              refuse("inline (?x)");
            }
            // a, u, l, d, n, p, o: no meaning in byte mode
          }
          if (kept == "-" || kept.empty()) {
            if (s[j] == ':') out += "(?:";
          } else {
            out += "(?" + kept + s[j];
          }
          i = j + 1;
        }
        break;
      }
      case '*':
      case '+':
      case '?':
        if (after_quant) {
          if (c == '+') {
            t.superset = true;  // possessive -> greedy
            ++i;
            after_quant = false;
            break;
          }
          if (c == '?') {  // lazy
            out += '?';
            ++i;
            after_quant = false;
            break;
          }
        }
        out += static_cast<char>(c);
        ++i;
        after_quant = true;
        break;
      case '{': {
        size_t end;
        if (is_quantifier_brace(s, i, end)) {
          out += s.substr(i, end + 1 - i);
          i = end + 1;
          after_quant = true;
        } else {
          out += "\\{";
          ++i;
          after_quant = false;
        }
        break;
      }
      case '}':
        out += "\\}";
        ++i;
        after_quant = false;
        break;
      default:
        if (c >= 0x80) hex_byte(out, c);
        else out += static_cast<char>(c);
        ++i;
        after_quant = false;
        break;
    }
  }
  if (in_class && t.refused.empty()) t.refused = "unterminated character class";
  return t;
}

}  // namespace sekisho::rules

namespace sekisho::rules {

uint64_t expansion_estimate(std::string_view p) {
  // cur: sizes of the alternatives of the innermost open group.
  std::vector<std::vector<uint64_t>> stack;
  std::vector<uint64_t> cur{0};
  uint64_t last = 0;
  const size_t n = p.size();
  auto add = [&](uint64_t sz) {
    cur.back() += sz;
    last = sz;
  };
  auto sum = [](const std::vector<uint64_t>& v) {
    uint64_t s = 0;
    for (auto x : v) s += x;
    return s;
  };
  for (size_t i = 0; i < n;) {
    char c = p[i];
    if (c == '\\') {
      i += (i + 1 < n && p[i + 1] == 'x') ? 4 : 2;
      add(1);
      continue;
    }
    if (c == '[') {
      size_t j = i + 1;
      if (j < n && p[j] == '^') ++j;
      if (j < n && p[j] == ']') ++j;
      while (j < n && p[j] != ']') {
        if (p[j] == '\\') j += 2;
        else if (p[j] == '[' && j + 1 < n && p[j + 1] == ':') {
          size_t e = p.find(":]", j);
          j = e == std::string_view::npos ? n : e + 2;
        } else ++j;
      }
      i = j + 1;
      add(1);
      continue;
    }
    if (c == '(') {
      size_t j = i + 1;
      if (j < n && p[j] == '?') {
        ++j;
        if (j < n && p[j] == '<' && j + 1 < n && (p[j + 1] == '=' || p[j + 1] == '!')) j += 2;
        else if (j < n && (p[j] == '=' || p[j] == '!')) ++j;
        else {
          while (j < n && (isalpha(static_cast<unsigned char>(p[j])) || p[j] == '-')) ++j;
          if (j < n && p[j] == ')') {  // (?i) flags only
            i = j + 1;
            continue;
          }
          if (j < n && p[j] == ':') ++j;
        }
      }
      stack.push_back(std::move(cur));
      cur.assign(1, 0);
      i = j;
      continue;
    }
    if (c == ')') {
      uint64_t sz = sum(cur);
      if (stack.empty()) cur.assign(1, 0);
      else {
        cur = std::move(stack.back());
        stack.pop_back();
      }
      add(sz);
      ++i;
      continue;
    }
    if (c == '|') {
      cur.push_back(0);
      ++i;
      continue;
    }
    if (c == '*' || c == '+' || c == '?') {
      ++i;
      if (i < n && (p[i] == '?' || p[i] == '+')) ++i;
      if (c != '?') cur.back() += last;
      continue;
    }
    if (c == '{') {
      size_t j = i + 1;
      uint64_t lo = 0, hi = 0;
      bool digits = false, comma = false, hi_digits = false;
      while (j < n && isdigit(static_cast<unsigned char>(p[j]))) lo = std::min<uint64_t>(lo * 10 + (p[j++] - '0'), 100000), digits = true;
      if (j < n && p[j] == ',') {
        comma = true;
        ++j;
        while (j < n && isdigit(static_cast<unsigned char>(p[j]))) hi = std::min<uint64_t>(hi * 10 + (p[j++] - '0'), 100000), hi_digits = true;
      }
      if (digits && j < n && p[j] == '}') {
        uint64_t top = !comma ? lo : hi_digits ? hi : lo + 1;
        if (top > 1) cur.back() += last * (top - 1);
        i = j + 1;
        continue;
      }
    }
    add(1);
    ++i;
  }
  while (!stack.empty()) {
    uint64_t sz = sum(cur);
    cur = std::move(stack.back());
    stack.pop_back();
    cur.back() += sz;
  }
  return sum(cur);
}

}  // namespace sekisho::rules
