// HeaderScanner: the top-level header block of a message, fed push-style as
// the message streams (chunk by chunk, any boundaries), bounded. It yields
// the fields every log and policy needs, decoded to UTF-8: From (address and
// display name), To, Cc, Reply-To, Subject, Message-ID, Date.
//
// What it is not (yet): the full MIME engine of issue 4 (parts, bodies,
// attachments). Header folding, RFC 2047 encoded words (B and Q, adjacent
// words joined, charsets through iconv: UTF-8, ISO-2022-JP, Shift_JIS,
// EUC-JP, ISO-8859-x, Windows-125x, GB2312/GBK, Big5, KOI8-R, ...), and
// RFC 5322 address lists (display names, quoted strings, comments, groups)
// are handled here.
//
// Thread-safety: one instance per message, one thread.
#pragma once

#include <cstddef>
#include <functional>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sekisho::mime {

struct Address {
  std::string name;     // display name, decoded ("" if none)
  std::string address;  // addr-spec as written ("" for an empty group)
};

struct HeaderFacts {
  std::string from;       // address of the first From mailbox
  std::string from_name;  // its display name
  std::vector<std::string> to, cc;  // addresses, in order, all To:/Cc: headers
  std::optional<std::string> reply_to;  // first Reply-To address, if any
  std::string subject, message_id, date;
  uint32_t headers = 0;          // header fields seen
  uint32_t charset_errors = 0;   // encoded words or 8-bit text that did not decode
  bool truncated = false;        // the header block exceeded the limit
  bool complete = false;         // the blank line ending the header block was seen
};

class HeaderScanner {
 public:
  explicit HeaderScanner(size_t max_header_bytes = 256 * 1024) : max_(max_header_bytes) {}
  // Feeds message bytes; ignores everything after the header block.
  void feed(std::span<const uint8_t> bytes);
  // The message ended: parses what was collected if the block never ended.
  void finish();
  bool done() const { return done_; }
  const HeaderFacts& facts() const { return facts_; }
  HeaderFacts take_facts() { return std::move(facts_); }
  void reset();

 private:
  void parse();
  size_t max_;
  std::string block_;
  bool done_ = false;
  HeaderFacts facts_;
};

// Calls fn(name, raw_value) for each field of a header block, in order;
// raw_value is folded as written (from after the colon to the line end).
using FieldFn = std::function<void(std::string_view name, std::string_view raw_value)>;
void for_each_field(std::string_view block, const FieldFn& fn);
// The value with its line breaks removed (bounded to 16 KiB).
std::string unfold(std::string_view raw);
// Case-insensitive comparison of a field name with a lower-case one.
bool name_is(std::string_view name, std::string_view lower_want);

// Builds HeaderFacts from the fields of one header block.
struct FactsBuilder {
  HeaderFacts& f;
  std::string fallback;  // charset for raw 8-bit text (the message's declared one), "" if none
  bool have_from = false, have_subject = false, have_mid = false, have_date = false;
  void field(std::string_view name, std::string_view raw_value);
};

// Content-Type / Content-Disposition: the value (lower case) and its
// parameters (names lower case), RFC 2231 sections and charsets joined and
// decoded to UTF-8; RFC 2047 words inside a quoted value decoded as well.
struct ContentField {
  std::string value;
  std::vector<std::pair<std::string, std::string>> params;
  const std::string* param(std::string_view name) const;
};
ContentField parse_content_field(std::string_view raw_value, uint32_t& errors);

// RFC 2047: decodes encoded words in an unstructured header value to UTF-8.
// Raw 8-bit text that is not UTF-8: raw ISO-2022-JP, else |fallback_charset|
// (the message's declared charset), else Latin-1 (counted).
std::string decode_words(std::string_view value, uint32_t& errors, std::string_view fallback_charset = {});
// RFC 5322 address list (also a single mailbox): the mailboxes
// for_each_address (address.hpp, the one splitter, shared with the matcher)
// yields, addresses without comments or folding (quotes kept only where
// needed, as Python renders them), display names (or, without angle
// brackets, the comments) decoded to UTF-8.
std::vector<Address> parse_addresses(std::string_view value, uint32_t& errors,
                                     std::string_view fallback_charset = {});
// Converts |bytes| in |charset| to UTF-8 with iconv; false if the charset is
// unknown or the bytes do not convert.
bool to_utf8(std::string_view charset, std::string_view bytes, std::string& out);

}  // namespace sekisho::mime
