#include "scanners/mime/collect.hpp"

namespace sekisho::mime {

void ContentCollector::reset() {
  headers_.clear();
  fields_.clear();
  text_.clear();
  raw_text_.clear();
  message_.clear();
  truncated_ = false;
  part_ = 0;
  // A big message does not leave big buffers with the flow.
  for (std::string* s : {&headers_, &text_, &raw_text_, &message_})
    if (s->capacity() > 65536) s->shrink_to_fit();
}

void ContentCollector::add(std::string& s, std::string_view v, size_t cap) {
  if (s.size() + v.size() <= cap) {
    s.append(v);
    return;
  }
  if (s.size() < cap) s.append(v.substr(0, cap - s.size()));
  truncated_ = true;
}

void ContentCollector::on_header(std::string_view name, std::string_view raw, std::string_view decoded) {
  field(name, raw, decoded, 0);
}

void ContentCollector::on_part_header(std::string_view name, std::string_view raw, std::string_view decoded) {
  field(name, raw, decoded, part_);
}

void ContentCollector::field(std::string_view name, std::string_view raw, std::string_view decoded, uint32_t part) {
  if (headers_.size() + name.size() + raw.size() + decoded.size() > lim_.header_bytes) {
    truncated_ = true;
    return;
  }
  Field f;
  f.name_off = uint32_t(headers_.size()), f.name_len = uint32_t(name.size());
  headers_.append(name);
  f.raw_off = uint32_t(headers_.size()), f.raw_len = uint32_t(raw.size());
  headers_.append(raw);
  f.dec_off = uint32_t(headers_.size()), f.dec_len = uint32_t(decoded.size());
  headers_.append(decoded);
  f.part = part;
  fields_.push_back(f);
}

}  // namespace sekisho::mime
