// Facts about one attachment, computed while its decoded bytes stream by:
// size and SHA-256 over every byte; the type sniffed from the content
// (libmagic on the first bytes); Office macros (OLE2 "_VBA_PROJECT"
// storage in .doc/.xls, "vbaProject.bin" in OOXML zips); encrypted content
// (password-protected ZIP/7z/RAR entries through libarchive, encrypted
// OOXML packages, the PPAP case); executables behind double extensions or
// a right-to-left override in the name; archives listed to a bounded depth.
//
// Memory: the first kSniffBytes are kept; an archive is kept up to
// max_archive_bytes for listing (beyond that only the streaming checks apply,
// and archive_truncated is set).
//
// Thread-safety: one instance per part, one thread. libmagic handles are per
// thread.
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sekisho::mime {

struct AttachmentFacts {
  std::string name;          // file name, decoded (RFC 2231 / 2047), "" if none
  std::string type;          // declared Content-Type (lower case)
  std::string sniffed_type;  // from the content (libmagic), "" if empty
  uint64_t size = 0;         // decoded bytes
  std::string sha256;        // hex of the decoded bytes
  bool macros = false;
  bool encrypted = false;
  bool executable = false;        // executable by name or by content
  bool double_extension = false;  // "invoice.pdf.exe"
  bool rtlo = false;              // U+202E (or another bidi override) in the name
  uint32_t archive_entries = 0;   // entries listed, nested ones included
  bool archive_truncated = false; // the archive exceeded the retention bound
  uint32_t depth = 0;             // message/rfc822 nesting it was found in
};

struct AttachmentLimits {
  size_t max_archive_bytes = 8 << 20;
  uint32_t max_archive_depth = 2;
  uint32_t max_archive_entries = 1000;
};

// Loads libmagic's database for the calling thread now (it takes tens of
// milliseconds): dataplane workers call it before their loop.
void preload_sniffer();

// Name-only checks (also applied to archive entries).
void classify_name(std::string_view name, bool& executable, bool& double_extension, bool& rtlo);

class AttachmentAnalyzer {
 public:
  static constexpr size_t kSniffBytes = 16384;
  explicit AttachmentAnalyzer(const AttachmentLimits& limits = {});
  ~AttachmentAnalyzer();
  AttachmentAnalyzer(const AttachmentAnalyzer&) = delete;
  AttachmentAnalyzer& operator=(const AttachmentAnalyzer&) = delete;

  void begin(std::string name, std::string type, uint32_t depth);
  void feed(const uint8_t* p, size_t n);
  AttachmentFacts finish();

 private:
  enum class Kind : uint8_t { unknown, zip, ole2, other_archive, plain };
  void classify_head();
  void search_markers(const uint8_t* p, size_t n);
  void process(const uint8_t* p, size_t n);
  AttachmentLimits limits_;
  EVP_MD_CTX* sha_;
  AttachmentFacts f_;
  Kind kind_ = Kind::unknown;
  std::vector<uint8_t> head_;   // first kSniffBytes
  std::vector<uint8_t> keep_;   // the archive, while it fits
  uint8_t tail_[32];            // last bytes of the previous chunk, for markers cut by a boundary
  size_t tail_n_ = 0;
  bool ole_encrypted_package_ = false;
};

}  // namespace sekisho::mime
