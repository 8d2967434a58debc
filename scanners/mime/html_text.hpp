// HTML reduced to text for scanning, streaming, without a DOM: tags dropped
// (block-level tags become line breaks), comments, <script> and <style>
// content dropped, character references decoded (numeric and the common
// named ones), whitespace runs collapsed to one space. URL-bearing
// attributes (href, src, action, background, formaction, cite, poster,
// data) are handed to a callback. Input is UTF-8 (after charset conversion).
//
// Bounded: tag names, attribute names and values and references have fixed
// caps; what exceeds them is truncated and counted.
//
// Thread-safety: one instance per part, one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sekisho::mime {

class HtmlToText {
 public:
  struct UrlHandler {
    virtual ~UrlHandler() = default;
    virtual void on_attribute_url(std::string_view url) = 0;
  };
  explicit HtmlToText(UrlHandler* urls = nullptr) : urls_(urls) {}
  void reset();
  // Appends the text of |n| bytes of HTML to |out|.
  void feed(const char* in, size_t n, std::string& out);
  void finish(std::string& out);
  uint32_t truncated() const { return truncated_; }

 private:
  enum class St : uint8_t {
    text, lt, tag_name, in_tag, attr_name, after_attr_name, before_value, value_dq, value_sq, value_unq,
    bang, comment, comment_dash1, comment_dash2, decl, entity, skip, skip_lt, skip_name
  };
  void end_tag(std::string& out);
  void end_attr();
  void emit_space(std::string& out);
  void emit_break(std::string& out);
  void emit_entity(std::string& out);
  UrlHandler* urls_;
  St st_ = St::text;
  St entity_return_ = St::text;
  bool closing_ = false;     // </tag
  bool pending_space_ = false;
  bool at_line_start_ = true;
  char skip_until_[8] = {};  // "script" / "style" while skipping their content
  uint8_t tag_len_ = 0, attr_len_ = 0, ent_len_ = 0, skip_len_ = 0;
  char tag_[16] = {};
  char attr_[16] = {};
  char ent_[12] = {};
  std::string value_;  // attribute value (URL attributes only), bounded
  bool want_value_ = false;
  bool ent_semicolon_ = false;  // the reference being emitted ended with ';'
  uint32_t truncated_ = 0;
};

}  // namespace sekisho::mime
