// Streaming Content-Transfer-Encoding decoders: base64 and quoted-printable.
// Fed any chunking, they keep a few bytes of state between calls and give
// the same output as one call over the whole body. Corrupt input is
// tolerated (skipped or passed through) and counted, never fatal.
//
// Output size is bounded (base64: 3/4 of the input plus 3 pending bytes;
// QP: twice the input, as a bare CR or LF becomes CRLF, plus held
// whitespace), so callers pass an output buffer of at least
// 2 * n + kDecodeSlack bytes.
//
// Thread-safety: one instance per body part, one thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sekisho::mime {

inline constexpr size_t kDecodeSlack = 512;

class Base64Stream {
 public:
  // Decodes |n| bytes into |out|; returns the bytes written.
  size_t feed(const uint8_t* in, size_t n, uint8_t* out);
  // End of the part: a dangling partial quantum is counted (its whole bytes kept).
  size_t finish(uint8_t* out);
  uint32_t errors() const { return errors_; }  // bytes outside the alphabet, data after the padding
  void reset() { *this = Base64Stream(); }

 private:
  uint32_t acc_ = 0;
  int n_ = 0;            // sextets in acc_
  bool padded_ = false;     // '=' seen: the rest of the part is ignored
  bool after_pad_ = false;  // data came after the padding (counted once)
  uint32_t errors_ = 0;
};

// RFC 2045 6.7: "=XY" octets, soft line breaks "=" CRLF, trailing
// whitespace on a line dropped. Hard line breaks come out as CRLF. An "="
// followed by anything else is kept with that character (RFC 2045 6.7 note 2)
// and counted.
class QpStream {
 public:
  size_t feed(const uint8_t* in, size_t n, uint8_t* out);
  size_t finish(uint8_t* out);
  uint32_t errors() const { return errors_; }
  void reset() { *this = QpStream(); }

 private:
  enum class St : uint8_t { text, eq, eq_hex, eq_ws, cr };
  St st_ = St::text;
  uint8_t hex_ = 0;      // first hex digit after '='
  uint16_t ws_ = 0;      // held trailing-whitespace candidates
  uint8_t wsbuf_[kDecodeSlack / 2];
  uint32_t errors_ = 0;
  size_t flush_ws(uint8_t* out);
};

}  // namespace sekisho::mime
