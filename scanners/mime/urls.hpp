// URLs of a message: found in text (bare "scheme://" and "www." forms) and
// in HTML attributes, normalised, deduplicated, capped per message.
//
// Normal form: scheme and host lower-cased, "www." given "http://", IDN
// hosts to punycode (libidn2), percent-escapes of unreserved characters
// decoded (others upper-cased), non-ASCII and control bytes of the path
// percent-encoded (UTF-8, as WHATWG URL does), the default port dropped, an empty path
// made "/", the fragment dropped. Trailing punctuation that mail text puts
// after a URL ('.', ',', ')', '>', quotes, ...) is not part of it.
//
// Thread-safety: one instance per message, one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace sekisho::mime {

// Normalises one URL (absolute http/https/ftp, or "www." form); false if it
// is not one (mailto:, javascript:, relative, no host, ...).
bool normalise_url(std::string_view in, std::string& out);

class UrlCollector {
 public:
  explicit UrlCollector(size_t max_urls = 256) : max_(max_urls) {}
  void reset();
  // Text of a part, streamed: URLs cut by a chunk boundary are kept whole.
  void text(const char* p, size_t n);
  void end_text();  // the text part ended
  void attribute(std::string_view url);  // href/src/... value from HTML
  // HTML attribute URLs first, then those of the text, each in document
  // order (so the list does not depend on how the message was chunked).
  std::vector<std::string> take();
  uint32_t seen() const { return seen_; }        // URL occurrences, duplicates included
  uint32_t dropped() const { return dropped_; }  // distinct URLs over the cap

 private:
  void scan(const char* p, size_t n);
  struct List {
    std::vector<std::string> v;
    std::unordered_set<std::string> set;
  };
  void add(List& l, std::string_view raw);
  size_t max_;
  List attr_, text_;
  std::string carry_;  // unfinished token at the end of the last text chunk
  std::string norm_;
  uint32_t seen_ = 0, dropped_ = 0;
};

}  // namespace sekisho::mime
