#include "mime/charset.hpp"

#include <cerrno>
#include <cstring>

namespace sekisho::mime {
namespace {

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o)
    if (c >= 'A' && c <= 'Z') c = char(c + 32);
  return o;
}

constexpr char kReplacement[] = "\xef\xbf\xbd";

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
  cd_ = iconv_open("UTF-8", name.c_str());
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
  if (cd_ != iconv_t(-1)) iconv_close(cd_);
  cd_ = iconv_t(-1);
  mode_ = Mode::utf8;
}

}  // namespace sekisho::mime
