// MimeParser: the MIME engine. Push-style, fed the message bytes as the
// server stores them (after dot-unstuffing), in chunks of any size; bounded
// memory; never buffers a message. Feeding a message in 1-byte chunks gives
// the same result as feeding it whole.
//
//   feed(bytes)* -> finish() -> facts()
//
// Structure: header blocks (top-level, parts, message/rfc822), multipart
// nesting (bounded depth; boundaries checked against every open multipart,
// innermost first; boundary lines cut across chunks are reassembled),
// preamble and epilogue scanned as text but not listed as parts, a missing
// close delimiter tolerated.
//
// Where parsers disagree, the engine scans the union of what common clients
// could display, and names the ambiguity in MessageFacts:
//   - a line that is no header field inside a header block starts the body
//     (Python); the header fields after it up to the blank line are read as
//     well (GMime, mime4j's default), and the body after the blank line is
//     read again from there when those fields or an encoding make it differ;
//   - message/rfc822 parts are parsed as messages in any transfer encoding;
//   - a delimiter followed by other text on its line is a delimiter
//     (RFC 2046's note to implementors, mime4j), strict matches first,
//     except inside an attachment that is not base64, whose bytes stay as
//     strict readers (GMime, Python) keep them;
//   - delimiter lines of any length match (a boundary is bounded by its
//     header block);
//   - a boundary that ends in white space also matches without it (not
//     inside an attachment either).
// Per leaf part: base64 / quoted-printable decoding (streaming), then
//   text/*       -> charset to UTF-8 -> (HTML reduced to text) -> text, URLs
//   attachments  -> AttachmentAnalyzer (size, SHA-256, type, macros, ...)
// A MimeSink, if given, receives the top-level header fields and the text
// as it is produced (for the matching engine).
//
// Limits (rspamd's lesson): depth, part count, header sizes, URL count; what
// exceeds them is counted in MessageFacts, never fatal.
//
// Thread-safety: one instance per message in flight, one thread.
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scanners/mime/attachment.hpp"
#include "scanners/mime/charset.hpp"
#include "scanners/mime/decode.hpp"
#include "scanners/mime/header_scan.hpp"
#include "scanners/mime/html_text.hpp"
#include "scanners/mime/urls.hpp"

namespace sekisho::mime {

struct MimeLimits {
  size_t max_header_bytes = 256 * 1024;      // the top-level header block
  size_t max_part_header_bytes = 64 * 1024;  // each part's header block
  uint32_t max_depth = 16;                   // multipart and message/rfc822 nesting
  uint32_t max_parts = 1024;                 // entities (as Python's walk() counts them)
  uint32_t max_attachments = 64;             // facts kept; the rest counted
  size_t max_urls = 256;
  AttachmentLimits attachment;
  bool leaf_digests = false;  // per-leaf SHA-256 of the transfer-decoded bytes (reference checks)
  bool leaf_text = false;     // with leaf_digests: keep each text leaf's UTF-8 (debugging, bounded 1 MiB)
};

// One leaf part, for reference checks (MimeLimits::leaf_digests).
struct LeafInfo {
  std::string type, charset, encoding, filename;
  uint64_t size = 0;    // transfer-decoded bytes
  std::string sha256;   // of those bytes
  std::string text_sha256;  // of the UTF-8 text (text parts that are not attachments)
  std::string text;         // that text, with MimeLimits::leaf_text
  uint32_t depth = 0;
};

struct MessageFacts {
  HeaderFacts header;                    // the top-level header block
  std::vector<std::string> urls;         // normalised, deduplicated, capped
  std::vector<AttachmentFacts> attachments;
  std::vector<LeafInfo> leaves;          // only with leaf_digests
  uint32_t parts = 0;                    // entities, containers included (Python's walk())
  uint64_t text_bytes = 0;               // UTF-8 text produced for scanning
  uint32_t charset_errors = 0;           // headers and text parts
  uint32_t decode_errors = 0;            // base64 / quoted-printable
  uint32_t urls_seen = 0, urls_dropped = 0;
  uint32_t attachments_dropped = 0;
  // structure anomalies
  uint32_t missing_close_boundary = 0;   // a multipart ended without its "--b--"
  uint32_t no_boundary = 0;              // multipart without a boundary parameter
  uint32_t depth_exceeded = 0, parts_exceeded = 0;
  uint32_t header_truncated = 0;         // header blocks over their limit
  uint32_t html_truncated = 0;
  // parsing ambiguities (each read the way that exposes the most; see above)
  uint32_t header_block_garbage = 0;     // a line that is no field ended a header block: the body starts there
  uint32_t header_after_garbage = 0;     // and the body after the blank line read afresh (content fields after the line, or an encoded part or attachment)
  uint32_t encoded_message = 0;          // a base64/QP message/rfc822 part, decoded and parsed as a message
  uint32_t boundary_junk = 0;            // a delimiter line with text after the boundary (lenient match; in a non-base64 attachment: left in it)
  uint32_t long_boundary_line = 0;       // a delimiter line over 1,024 bytes
  uint32_t boundary_trailing_space = 0;  // a delimiter matched without the white space that ends its boundary (Python's reading)
  // A header block with two Content-Type, Content-Transfer-Encoding or
  // Content-Disposition fields that differ: the engine reads the first, as
  // Python and mime4j do; GMime reads the last. Not scanned both ways.
  uint32_t conflicting_content_fields = 0;
  uint32_t header_leading_continuation = 0;  // a header block starting with white space-led lines (no field): scanned as text
  uint32_t encoding_junk = 0;            // a Content-Transfer-Encoding with more than a token: its first token is read (GMime; Python decodes nothing)
};

class MimeSink {
 public:
  virtual ~MimeSink() = default;
  // Each top-level header field, in order: raw value (folded, as written) and decoded (unfolded, RFC 2047).
  virtual void on_header(std::string_view /*name*/, std::string_view /*raw*/, std::string_view /*decoded*/) {}
  // Each header field of a nested part (a new part begins with part_begin).
  virtual void on_part_begin() {}
  virtual void on_part_header(std::string_view /*name*/, std::string_view /*raw*/, std::string_view /*decoded*/) {}
  // UTF-8 text of text parts (HTML reduced to text), in order.
  virtual void on_text(std::string_view /*utf8*/) {}
  // UTF-8 text parts before HTML reduction (SpamAssassin's rawbody).
  virtual void on_rawbody(std::string_view /*utf8*/) {}
  virtual void on_attachment(const AttachmentFacts&) {}
};

class MimeParser : private HtmlToText::UrlHandler {
 public:
  explicit MimeParser(const MimeLimits& limits = {}, MimeSink* sink = nullptr);
  ~MimeParser() override;
  MimeParser(const MimeParser&) = delete;
  MimeParser& operator=(const MimeParser&) = delete;

  void feed(std::span<const uint8_t> bytes);
  void finish();  // the message ended (end of data, or the session did)
  bool finished() const { return finished_; }
  const MessageFacts& facts() const { return facts_; }
  MessageFacts take_facts() { return std::move(facts_); }
  void reset();   // ready for the next message (keeps buffers' capacity)
  void set_sink(MimeSink* s) { sink_ = s; }

 private:
  enum class Mode : uint8_t { headers, leaf, epilogue };  // epilogue: bytes no one reads (after a discarded part)
  enum class Leaf : uint8_t { discard, text, html, attachment, message };  // message: an encoded message/rfc822
  enum class Cte : uint8_t { identity, base64, qp };
  struct Frame {
    std::string delim;   // "--" + boundary
    uint32_t msg_depth;  // message/rfc822 nesting of the multipart
    bool digest;         // multipart/digest: parts default to message/rfc822
  };

  void on_attribute_url(std::string_view url) override;
  void line(const uint8_t* p, size_t n, size_t eol);  // one complete line (n includes the EOL of eol bytes)
  int match_boundary(const uint8_t* p, size_t n, bool& close, std::string_view& junk);
  size_t max_delim_line() const;  // delimiter candidates are kept up to this many bytes
  bool long_delimiter(const uint8_t* p, size_t n);  // a candidate over that: a delimiter by its prefix?
  void boundary(int frame, bool close, std::string_view junk, bool long_line);
  bool garbage_line(const uint8_t* p, size_t text) const;
  void end_headers(bool reread = false);
  void shadow_line(const uint8_t* p, size_t n, size_t text, bool cont);
  bool shadow_end(bool blank);  // true: the body after the blank line is read anew
  void loose_text(std::string_view raw);
  void begin_nested(Cte cte);
  void end_nested();
  void begin_hidden();
  void begin_leaf(Leaf kind, Cte cte, std::string type, std::string charset, std::string filename);
  void body(const uint8_t* p, size_t n);     // transfer-encoded leaf bytes
  void decoded(const uint8_t* p, size_t n);  // transfer-decoded leaf bytes
  void text_out(const std::string& utf8);
  void end_leaf();
  void fragment(const uint8_t* p, size_t n);

  MimeLimits limits_;
  MimeSink* sink_;
  bool nested_ = false;          // a child parser: URLs go to the parent's collector
  MessageFacts facts_;
  Mode mode_ = Mode::headers;
  bool top_ = true;              // the header block being read is the message's own
  bool finished_ = false;
  uint32_t msg_depth_ = 0;       // message/rfc822 nesting of the current entity
  bool default_rfc822_ = false;  // the current entity is a part of multipart/digest
  std::vector<Frame> frames_;
  std::string hdr_;              // header block being read
  bool hdr_over_ = false;
  std::string line_;             // a line cut by a chunk boundary
  bool mid_line_ = false;        // the current line was already passed on as content
  bool skip_line_ = false;       // the rest of an over-long delimiter line is dropped
  bool stripped_match_ = false;  // the last match_boundary() matched a boundary without its trailing white space
  // After a header block ended at a line that is no field (header_block_garbage):
  // the lines up to the blank line are body and also read as header fields.
  bool shadow_ = false;
  std::string shadow_pre_;       // the header block before that line
  std::string shadow_hdr_;       // the field lines after it
  bool shadow_top_ = false;      // it was the message's own header block
  bool shadow_nested_ = false;   // it was a message/rfc822 part's: its message may begin after the blank line
  bool entity_rfc822_ = false;   // the entity's default type was message/rfc822 (digest)
  struct TopFlags { bool from = false, subject = false, mid = false, date = false; std::string fallback; } top_flags_;
  uint8_t pending_eol_[2];       // a content line's EOL, held: before a boundary it belongs to the delimiter
  uint8_t pending_n_ = 0;

  // the leaf being decoded
  Leaf leaf_ = Leaf::discard;
  bool hidden_ = false;          // a preamble or epilogue (scanned, not a part)
  Cte cte_ = Cte::identity;
  Base64Stream b64_;
  QpStream qp_;
  TextDecoder text_dec_;
  HtmlToText html_;
  UrlCollector own_urls_;
  UrlCollector* urls_ = &own_urls_;  // a child parser shares its parent's
  std::unique_ptr<AttachmentAnalyzer> att_;
  std::unique_ptr<MimeParser> child_;   // an encoded message/rfc822 part
  std::unique_ptr<MimeSink> child_sink_;
  std::vector<uint8_t> dec_buf_;
  std::string utf8_, text_;
  EVP_MD_CTX* leaf_sha_ = nullptr;
  EVP_MD_CTX* text_sha_ = nullptr;
  LeafInfo leaf_info_;
};

}  // namespace sekisho::mime
