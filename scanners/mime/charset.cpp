#include "scanners/mime/charset.hpp"

#include <cerrno>
#include <cstring>
#include <vector>

namespace sekisho::mime {
namespace {

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o)
    if (c >= 'A' && c <= 'Z') c = char(c + 32);
  return o;
}

constexpr char kReplacement[] = "\xef\xbf\xbd";

// iconv_open dlopens the conversion module each time: descriptors are kept
// in a per-thread pool and lent to one decoder at a time (ISO-2022-JP keeps
// shift state in the descriptor, so two messages never share one).
struct Pooled {
  std::string name;
  iconv_t cd;
};
struct Pool {
  std::vector<Pooled> free;
  ~Pool() {
    for (auto& p : free) iconv_close(p.cd);
  }
};
thread_local Pool t_pool;
constexpr size_t kPoolMax = 64;

iconv_t pool_take(const std::string& name) {
  for (size_t i = t_pool.free.size(); i-- > 0;) {
    if (t_pool.free[i].name == name) {
      iconv_t cd = t_pool.free[i].cd;
      t_pool.free.erase(t_pool.free.begin() + long(i));
      iconv(cd, nullptr, nullptr, nullptr, nullptr);  // initial state
      return cd;
    }
  }
  return iconv_open("UTF-8", name.c_str());
}

void pool_give(const std::string& name, iconv_t cd) {
  if (t_pool.free.size() >= kPoolMax) {
    iconv_close(t_pool.free.front().cd);
    t_pool.free.erase(t_pool.free.begin());
  }
  t_pool.free.push_back({name, cd});
}

// Windows-1252 0x80..0x9F (the rest of the upper half is Latin-1).
constexpr uint16_t kCp1252[32] = {0x20ac, 0xfffd, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
                                  0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0xfffd, 0x017d, 0xfffd,
                                  0xfffd, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
                                  0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0xfffd, 0x017e, 0x0178};

// Length of the valid UTF-8 sequence at p (1..4), 0 if invalid, -1 if it is
// cut off by the end of the buffer but valid so far.
int utf8_seq(const uint8_t* p, size_t left) {
  uint8_t c = p[0];
  int n;
  uint32_t min;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) n = 2, min = 0x80;
  else if ((c & 0xf0) == 0xe0) n = 3, min = 0x800;
  else if ((c & 0xf8) == 0xf0 && c <= 0xf4) n = 4, min = 0x10000;
  else return 0;
  uint32_t cp = c & (0x7f >> n);
  for (int k = 1; k < n; ++k) {
    if (size_t(k) >= left) return -1;
    if ((p[k] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (p[k] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

}  // namespace

std::string iconv_name(std::string_view mime_charset) {
  std::string cs = lower(mime_charset);
  while (!cs.empty() && (cs.back() == ' ' || cs.back() == '"')) cs.pop_back();
  if (cs.empty() || cs == "utf-8" || cs == "utf8" || cs == "us-ascii" || cs == "ascii" || cs == "unicode-1-1-utf-8")
    return "";
  if (cs == "shift_jis" || cs == "shift-jis" || cs == "sjis" || cs == "x-sjis" || cs == "ms_kanji" || cs == "cp932" ||
      cs == "windows-31j")
    return "CP932";
  if (cs == "iso-2022-jp" || cs == "iso2022jp" || cs == "csiso2022jp") return "ISO-2022-JP-3";
  if (cs == "euc-jp" || cs == "x-euc-jp" || cs == "eucjp") return "EUC-JP-MS";
  if (cs == "gb2312" || cs == "x-gbk" || cs == "gbk" || cs == "euc-cn" || cs == "cp936") return "GB18030";
  if (cs == "ks_c_5601-1987" || cs == "euc-kr") return "CP949";
  if (cs == "big5" || cs == "x-big5") return "BIG5-HKSCS";
  return cs;
}

void TextDecoder::begin(std::string_view mime_charset) {
  carry_n_ = 0;
  errors_ = 0;
  std::string name = iconv_name(mime_charset);
  if (name.empty()) {
    mode_ = Mode::utf8;
    return;
  }
  close();
  if (name == "iso-8859-1" || name == "latin1" || name == "iso8859-1" || name == "iso_8859-1" || name == "l1") {
    mode_ = Mode::latin1;
    return;
  }
  if (name == "windows-1252" || name == "cp1252" || name == "x-cp1252") {
    mode_ = Mode::cp1252;
    return;
  }
  cd_ = pool_take(name);
  cd_name_ = name;
  if (cd_ == iconv_t(-1)) {
    ++errors_;  // unknown charset: UTF-8 if it is, else replacement characters (counted)
    mode_ = Mode::utf8;
    return;
  }
  mode_ = Mode::iconv;
}

void TextDecoder::utf8_feed(const uint8_t* in, size_t n, std::string& out) {
  size_t i = 0;
  while (i < n) {
    // ASCII run, eight bytes at a time.
    size_t j = i;
    while (j + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, in + j, 8);
      if (w & 0x8080808080808080ull) break;
      j += 8;
    }
    while (j < n && in[j] < 0x80) ++j;
    if (j > i) out.append(reinterpret_cast<const char*>(in + i), j - i);
    i = j;
    if (i >= n) break;
    int k = utf8_seq(in + i, n - i);
    if (k > 0) {
      out.append(reinterpret_cast<const char*>(in + i), size_t(k));
      i += size_t(k);
    } else if (k < 0) {  // cut by the chunk: keep for the next call
      carry_n_ = n - i;
      std::memcpy(carry_, in + i, carry_n_);
      return;
    } else {
      out.append(kReplacement);
      ++errors_;
      ++i;
    }
  }
}

void TextDecoder::feed(const uint8_t* in, size_t n, std::string& out) {
  if (n == 0) return;
  if (carry_n_) {  // a sequence cut at the previous chunk's end: join it to this chunk
    joined_.assign(reinterpret_cast<const char*>(carry_), carry_n_);
    joined_.append(reinterpret_cast<const char*>(in), n);
    carry_n_ = 0;
    convert(reinterpret_cast<const uint8_t*>(joined_.data()), joined_.size(), out);
    return;
  }
  convert(in, n, out);
}

void TextDecoder::convert(const uint8_t* in, size_t n, std::string& out) {
  if (mode_ == Mode::utf8) {
    utf8_feed(in, n, out);
    return;
  }
  if (mode_ == Mode::latin1 || mode_ == Mode::cp1252) {  // one byte, one character: no state, no iconv
    size_t old = out.size();
    out.resize(old + 3 * n);
    char* o = out.data() + old;
    for (size_t i = 0; i < n; ++i) {
      uint8_t c = in[i];
      if (c < 0x80) {
        *o++ = char(c);
        continue;
      }
      uint32_t cp = mode_ == Mode::cp1252 && c < 0xa0 ? kCp1252[c - 0x80] : c;
      if (cp == 0xfffd) ++errors_;
      if (cp < 0x800) {
        *o++ = char(0xc0 | cp >> 6), *o++ = char(0x80 | (cp & 0x3f));
      } else {
        *o++ = char(0xe0 | cp >> 12), *o++ = char(0x80 | ((cp >> 6) & 0x3f)), *o++ = char(0x80 | (cp & 0x3f));
      }
    }
    out.resize(size_t(o - out.data()));
    return;
  }
  char* ip = const_cast<char*>(reinterpret_cast<const char*>(in));
  size_t ileft = n;
  while (ileft > 0) {
    size_t old = out.size();
    size_t want = ileft * 3 + 16;
    out.resize(old + want);
    char* op = out.data() + old;
    size_t oleft = want;
    size_t r = iconv(cd_, &ip, &ileft, &op, &oleft);
    out.resize(old + (want - oleft));
    if (r != size_t(-1)) break;
    if (errno == E2BIG) continue;
    if (errno == EINVAL && ileft <= sizeof carry_) {  // incomplete sequence at the end: carry it
      std::memcpy(carry_, ip, ileft);
      carry_n_ = ileft;
      return;
    }
    out.append(kReplacement);  // EILSEQ (or a long incomplete run)
    ++errors_;
    ++ip;
    --ileft;
  }
}

void TextDecoder::finish(std::string& out) {
  if (carry_n_) {
    out.append(kReplacement);
    ++errors_;
    carry_n_ = 0;
  }
  if (mode_ == Mode::iconv) {  // return to the initial shift state (ISO-2022-JP)
    char obuf[64];
    char* op = obuf;
    size_t oleft = sizeof obuf;
    iconv(cd_, nullptr, nullptr, &op, &oleft);
    out.append(obuf, size_t(op - obuf));
  }
  close();
}

void TextDecoder::close() {
  if (cd_ != iconv_t(-1)) pool_give(cd_name_, cd_);
  cd_ = iconv_t(-1);
  mode_ = Mode::utf8;
}

}  // namespace sekisho::mime
