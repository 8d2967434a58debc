#include "scanners/mime/decode.hpp"

#include <cstring>

namespace sekisho::mime {
namespace {

// 0..63: sextet; 64: '='; 65: whitespace; 66: anything else.
constexpr auto kB64 = [] {
  struct T { uint8_t v[256]; } t{};
  for (int i = 0; i < 256; ++i) t.v[i] = 66;
  for (int i = 0; i < 26; ++i) t.v['A' + i] = uint8_t(i), t.v['a' + i] = uint8_t(26 + i);
  for (int i = 0; i < 10; ++i) t.v['0' + i] = uint8_t(52 + i);
  t.v['+'] = 62, t.v['/'] = 63, t.v['='] = 64;
  t.v[' '] = t.v['\t'] = t.v['\r'] = t.v['\n'] = 65;
  return t;
}();

// The sextet of each byte already shifted to its place in a quantum; bit 31
// marks bytes outside the alphabet (also '=' and whitespace).
struct B64Shifted {
  uint32_t t[4][256];
};
constexpr B64Shifted kB64Shifted = [] {
  B64Shifted s{};
  for (int k = 0; k < 4; ++k)
    for (int c = 0; c < 256; ++c) {
      uint8_t v = kB64.v[c];
      s.t[k][c] = v < 64 ? uint32_t(v) << (18 - 6 * k) : 0x80000000u;
    }
  return s;
}();

inline int hexval(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;  // lower case: not canonical, but decoded (as Python does)
  return -1;
}

}  // namespace

size_t Base64Stream::feed(const uint8_t* in, size_t n, uint8_t* out) {
  uint8_t* o = out;
  size_t i = 0;
  while (i < n) {
    // Fast path: whole quanta with no quantum pending; line breaks between
    // quanta (where encoders put them) are stepped over.
    if (n_ == 0 && !padded_) {
      const auto& t = kB64Shifted.t;
      while (i + 4 <= n) {
        uint32_t v = t[0][in[i]] | t[1][in[i + 1]] | t[2][in[i + 2]] | t[3][in[i + 3]];
        if (v & 0x80000000u) {
          if (in[i] == '\r' && in[i + 1] == '\n') {
            i += 2;
            continue;
          }
          if (in[i] == '\n') {
            i += 1;
            continue;
          }
          break;
        }
        o[0] = uint8_t(v >> 16), o[1] = uint8_t(v >> 8), o[2] = uint8_t(v);
        o += 3;
        i += 4;
      }
      if (i >= n) break;
    }
    uint8_t v = kB64.v[in[i++]];
    if (padded_) {  // after the padding: ignored (as most decoders do), counted once
      if (v < 64 && !after_pad_) {
        after_pad_ = true;
        ++errors_;
      }
      continue;
    }
    if (v < 64) {
      acc_ = acc_ << 6 | v;
      if (++n_ == 4) {
        o[0] = uint8_t(acc_ >> 16), o[1] = uint8_t(acc_ >> 8), o[2] = uint8_t(acc_);
        o += 3;
        n_ = 0;
        acc_ = 0;
      }
    } else if (v == 64) {
      if (n_ == 2) *o++ = uint8_t(acc_ >> 4);
      else if (n_ == 3) *o++ = uint8_t(acc_ >> 10), *o++ = uint8_t(acc_ >> 2);
      else ++errors_;  // '=' where no padding can be
      n_ = 0;
      acc_ = 0;
      padded_ = true;
    } else if (v == 66) {
      ++errors_;
    }
  }
  return size_t(o - out);
}

size_t Base64Stream::finish(uint8_t* out) {
  uint8_t* o = out;
  if (n_ == 1) {
    ++errors_;
  } else if (n_ == 2) {
    *o++ = uint8_t(acc_ >> 4);
    ++errors_;  // missing padding
  } else if (n_ == 3) {
    *o++ = uint8_t(acc_ >> 10), *o++ = uint8_t(acc_ >> 2);
    ++errors_;
  }
  n_ = 0;
  acc_ = 0;
  return size_t(o - out);
}

size_t QpStream::flush_ws(uint8_t* out) {
  std::memcpy(out, wsbuf_, ws_);
  size_t k = ws_;
  ws_ = 0;
  return k;
}

size_t QpStream::feed(const uint8_t* in, size_t n, uint8_t* out) {
  uint8_t* o = out;
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = in[i];
    switch (st_) {
      case St::text:
        if (c == '=') {
          o += flush_ws(o);
          st_ = St::eq;
        } else if (c == ' ' || c == '\t') {
          if (ws_ == sizeof wsbuf_) o += flush_ws(o);
          wsbuf_[ws_++] = c;
        } else if (c == '\r') {
          st_ = St::cr;
        } else if (c == '\n') {  // hard break (bare LF taken as one)
          ws_ = 0;
          *o++ = '\r', *o++ = '\n';
        } else {
          if (ws_) o += flush_ws(o);
          // Plain run: copy up to the next byte that needs a decision.
          size_t j = i;
          while (j < n && in[j] != '=' && in[j] != ' ' && in[j] != '\t' && in[j] != '\r' && in[j] != '\n') ++j;
          std::memcpy(o, in + i, j - i);
          o += j - i;
          i = j - 1;
        }
        break;
      case St::cr:
        ws_ = 0;
        *o++ = '\r', *o++ = '\n';
        st_ = St::text;
        if (c != '\n') --i;  // bare CR: a break too; reprocess this byte
        break;
      case St::eq:
        if (hexval(c) >= 0) {
          hex_ = c;
          st_ = St::eq_hex;
        } else if (c == '\r' || c == '\n' || c == ' ' || c == '\t') {
          st_ = St::eq_ws;  // soft line break, possibly with whitespace before the CRLF
          if (c == '\n') st_ = St::text;
        } else {  // RFC 2045 6.7 note (2): keep "=" and the character after it as they are
          ++errors_;
          *o++ = '=';
          *o++ = c;
          st_ = St::text;
        }
        break;
      case St::eq_hex:
        if (hexval(c) >= 0) {
          *o++ = uint8_t(hexval(hex_) << 4 | hexval(c));
        } else {
          ++errors_;
          *o++ = '=', *o++ = hex_;
          --i;
        }
        st_ = St::text;
        break;
      case St::eq_ws:
        if (c == '\n') {
          st_ = St::text;
        } else if (c == ' ' || c == '\t' || c == '\r') {
          // still inside the soft break
        } else {  // "= x": not a soft break after all; the '=' was literal
          ++errors_;
          *o++ = '=';
          st_ = St::text;
          --i;
        }
        break;
    }
  }
  return size_t(o - out);
}

size_t QpStream::finish(uint8_t* out) {
  uint8_t* o = out;
  if (st_ == St::eq) {  // a final "=" is a soft break with nothing after it
  } else if (st_ == St::eq_hex) {
    ++errors_;
    *o++ = '=', *o++ = hex_;
  } else if (st_ == St::cr) {
    *o++ = '\r', *o++ = '\n';
  }
  ws_ = 0;  // trailing whitespace at the end of the body is dropped
  st_ = St::text;
  return size_t(o - out);
}

}  // namespace sekisho::mime
