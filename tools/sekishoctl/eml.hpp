// The matching contexts of one .eml held in memory (headers, part headers,
// body text, raw body, the message, URLs, attachment facts), built by the
// MIME engine (scanners/mime) exactly as the dataplane builds them, for
// sekishoctl explain and the rules tests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "scanners/match/match.hpp"

namespace sekisho::ctl {

struct EmlField {
  std::string name, raw, decoded;
};

struct EmlAttachment {
  std::string name, type, sniffed, sha256;
  uint64_t size = 0;
  bool macros = false, encrypted = false;
  uint32_t budget_exceeded = 0;  // mime::AttachmentFacts::budget_exceeded
};

struct EmlMessage {
  std::vector<EmlField> headers;                    // top level, in order
  std::vector<std::vector<EmlField>> part_headers;  // nested parts
  std::string body_text;  // rendered text of text parts (HTML tags stripped), parts separated by "\n"
  std::string rawbody;    // transfer-decoded text parts, not rendered
  std::string full;       // the message as given
  std::vector<std::string> uris;
  std::vector<EmlAttachment> attachments;
};

EmlMessage parse_eml(std::string_view bytes);

// Feeds every context to |scan| (headers, part headers, body in chunks of
// |chunk| bytes, raw body, full, URLs, attachments).
void feed(match::MessageScan& scan, const EmlMessage& m, size_t chunk = 4096);

}  // namespace sekisho::ctl
