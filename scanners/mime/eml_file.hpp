// A message file as SMTP would deliver it: an mbox "From " separator line
// dropped, every line end (CR, LF or CRLF) made CRLF. For tools and
// benchmarks that read .eml/.txt files; the dataplane gets CRLF already.
#pragma once

#include <string>
#include <string_view>

namespace sekisho::mime {

inline std::string eml_as_smtp(std::string_view s) {
  if (s.rfind("From ", 0) == 0) {
    size_t nl = s.find('\n');
    s = nl == std::string_view::npos ? std::string_view() : s.substr(nl + 1);
  }
  std::string o;
  o.reserve(s.size() + s.size() / 32);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      o += "\r\n";
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else if (s[i] == '\n') {
      o += "\r\n";
    } else {
      o.push_back(s[i]);
    }
  }
  return o;
}

}  // namespace sekisho::mime
