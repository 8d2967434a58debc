// Streaming conversion of a text part's bytes to UTF-8 (iconv, glibc).
// Multibyte sequences and ISO-2022-JP shift state may span feed calls.
// Bytes that do not convert become U+FFFD and are counted; an unknown
// charset is read as UTF-8 (invalid bytes replaced) and counted once.
//
// Thread-safety: one instance per part, one thread. An instance holds its
// iconv descriptor (from a per-thread pool) from begin() to finish():
// ISO-2022-JP keeps shift state in it, and a dataplane worker interleaves
// many messages. Latin-1 and Windows-1252 are converted without iconv.
#pragma once

#include <iconv.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sekisho::mime {

// Maps a MIME charset label to the name glibc's iconv knows ("" for the
// UTF-8/ASCII pass-through).
std::string iconv_name(std::string_view mime_charset);

class TextDecoder {
 public:
  TextDecoder() = default;
  TextDecoder(const TextDecoder&) = delete;
  TextDecoder& operator=(const TextDecoder&) = delete;
  ~TextDecoder() { close(); }
  void begin(std::string_view mime_charset);
  // Appends the UTF-8 of |n| bytes to |out|.
  void feed(const uint8_t* in, size_t n, std::string& out);
  void finish(std::string& out);
  uint32_t errors() const { return errors_; }

 private:
  enum class Mode : uint8_t { utf8, iconv, latin1, cp1252 };
  void utf8_feed(const uint8_t* in, size_t n, std::string& out);
  void convert(const uint8_t* in, size_t n, std::string& out);
  void close();
  Mode mode_ = Mode::utf8;
  iconv_t cd_ = iconv_t(-1);
  std::string cd_name_;
  uint8_t carry_[16];
  size_t carry_n_ = 0;
  std::string joined_;
  uint32_t errors_ = 0;
};

}  // namespace sekisho::mime
