// ContentCollector: a MimeSink that keeps, bounded, what a matching engine
// scans at the end of a message: the top-level header fields (raw and
// decoded), the rendered text and the raw text of the text parts, and the
// message bytes as received. The dataplane scans at the hold point from
// these (one scan per worker at a time); what exceeds a cap is cut and
// flagged, never grown.
//
// Thread-safety: one instance per message in flight, one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "scanners/mime/mime_parser.hpp"

namespace sekisho::mime {

struct CollectLimits {
  size_t header_bytes = 64 * 1024;  // names + raw + decoded values of all fields
  size_t text_bytes = 256 * 1024;   // rendered text
  size_t raw_text_bytes = 256 * 1024;
  size_t message_bytes = 256 * 1024;  // the message as received ("full")
};

class ContentCollector : public MimeSink {
 public:
  struct Field {
    uint32_t name_off, name_len, raw_off, raw_len, dec_off, dec_len;
    uint32_t part;  // 0: the message's own header; 1, 2, ...: nested parts in order
  };
  explicit ContentCollector(const CollectLimits& lim = {}) : lim_(lim) {}
  void reset();
  void on_header(std::string_view name, std::string_view raw, std::string_view decoded) override;
  void on_part_begin() override { ++part_; }
  void on_part_header(std::string_view name, std::string_view raw, std::string_view decoded) override;
  void on_text(std::string_view utf8) override { add(text_, utf8, lim_.text_bytes); }
  void on_rawbody(std::string_view utf8) override { add(raw_text_, utf8, lim_.raw_text_bytes); }
  void message_bytes(std::span<const uint8_t> b) {
    add(message_, {reinterpret_cast<const char*>(b.data()), b.size()}, lim_.message_bytes);
  }

  size_t fields() const { return fields_.size(); }
  uint32_t field_part(size_t i) const { return fields_[i].part; }
  std::string_view field_name(size_t i) const { return view(fields_[i].name_off, fields_[i].name_len); }
  std::string_view field_raw(size_t i) const { return view(fields_[i].raw_off, fields_[i].raw_len); }
  std::string_view field_decoded(size_t i) const { return view(fields_[i].dec_off, fields_[i].dec_len); }
  const std::string& text() const { return text_; }
  const std::string& raw_text() const { return raw_text_; }
  const std::string& message() const { return message_; }
  bool truncated() const { return truncated_; }  // some context hit its cap

 private:
  void add(std::string& s, std::string_view v, size_t cap);
  std::string_view view(uint32_t off, uint32_t len) const { return std::string_view(headers_).substr(off, len); }
  CollectLimits lim_;
  std::string headers_;
  std::vector<Field> fields_;
  std::string text_, raw_text_, message_;
  bool truncated_ = false;
  uint32_t part_ = 0;
  void field(std::string_view name, std::string_view raw, std::string_view decoded, uint32_t part);
};

}  // namespace sekisho::mime
