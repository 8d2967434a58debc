// sekisho-mime: the MIME engine on message files, one JSON line per file
// (the same fields as the message event of sekisho-replay).
//
//   sekisho-mime [--chunk N] [--leaves] [--crlf] [--compare-chunks N] FILE...
//   sekisho-mime --list LISTFILE ...      (one path per line)
//
// --chunk N           feed the engine N bytes at a time (default: whole file)
// --crlf              make line endings CRLF first (as SMTP delivers them);
//                     an mbox "From " first line is dropped
// --leaves            add each leaf part's transfer-decoded SHA-256
// --leaf-text         and the UTF-8 text of text leaves (debugging)
// --compare-chunks N  feed each file whole and in N-byte chunks; print only
//                     files whose results differ; exit 1 if any does
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "journal/mime_part.hpp"
#include "scanners/mime/eml_file.hpp"
#include "scanners/mime/mime_parser.hpp"

using sekisho::mime::MimeLimits;
using sekisho::mime::MimeParser;

namespace {

nlohmann::json run(const std::string& data, size_t chunk, const MimeLimits& lim) {
  MimeParser p(lim);
  auto* b = reinterpret_cast<const uint8_t*>(data.data());
  if (chunk == 0) chunk = data.size() ? data.size() : 1;
  for (size_t i = 0; i < data.size(); i += chunk) p.feed({b + i, std::min(chunk, data.size() - i)});
  p.finish();
  nlohmann::json j;
  sekisho::journal::add_facts_json(p.facts(), j);
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  size_t chunk = 0, compare = 0;
  bool leaves = false, leaf_text = false, make_crlf = false;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--chunk" && i + 1 < argc) chunk = std::stoul(argv[++i]);
    else if (a == "--compare-chunks" && i + 1 < argc) compare = std::stoul(argv[++i]);
    else if (a == "--leaves") leaves = true;
    else if (a == "--leaf-text") leaves = leaf_text = true;
    else if (a == "--crlf") make_crlf = true;
    else if (a == "--list" && i + 1 < argc) {
      std::ifstream l(argv[++i]);
      for (std::string line; std::getline(l, line);)
        if (!line.empty()) files.push_back(line);
    } else if (a == "-h" || a == "--help") {
      std::fprintf(stderr, "usage: sekisho-mime [--chunk N] [--leaves] [--crlf] [--compare-chunks N] FILE...\n");
      return 0;
    } else {
      files.push_back(a);
    }
  }
  MimeLimits lim;
  lim.leaf_digests = leaves;
  lim.leaf_text = leaf_text;
  int differ = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "sekisho-mime: %s: cannot read\n", f.c_str());
      return 2;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string data = make_crlf ? sekisho::mime::eml_as_smtp(ss.str()) : ss.str();
    nlohmann::json j = run(data, compare ? 0 : chunk, lim);
    if (compare) {
      nlohmann::json k = run(data, compare, lim);
      if (j != k) {
        ++differ;
        std::cout << nlohmann::json{{"file", f}, {"whole", j}, {"chunked", k}}.dump(-1, ' ', false,
                                                                                    nlohmann::json::error_handler_t::replace)
                  << "\n";
      }
      continue;
    }
    j["file"] = f;
    j["size"] = data.size();
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  if (compare) {
    std::fprintf(stderr, "sekisho-mime: %zu file(s), %d differ between whole and %zu-byte chunks\n", files.size(),
                 differ, compare);
    return differ ? 1 : 0;
  }
  return 0;
}
