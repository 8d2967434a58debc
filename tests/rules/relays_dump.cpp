// Prints, for every message of a corpus directory (NAME.json files with a
// "text" field, as the npm SpamAssassin corpus keeps them), the four
// X-Spam-Relays-* pseudo-headers the runtime builds from its Received:
// fields, one JSON object a line: {"file", "Trusted", "Untrusted",
// "Internal", "External"}. tests/rules/relays_vs_spamassassin.py compares
// them with what SpamAssassin itself prints for the same messages.
//
// Usage: relays_dump CORPUS_DATA_DIR
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "tools/sekishoctl/eml.hpp"
#include "scanners/match/received.hpp"

namespace fs = std::filesystem;
using namespace sekisho;

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: relays_dump CORPUS_DATA_DIR\n");
    return 2;
  }
  std::vector<std::string> files;
  std::error_code ec;
  for (auto& e : fs::recursive_directory_iterator(argv[1], ec))
    if (e.path().extension() == ".json" && e.path().filename() != "file_list.json") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  match::RelayParser parser;
  match::Relays relays;
  relays.reserve(64 * 1024);
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string msg;
    try {
      msg = nlohmann::json::parse(in).at("text").get<std::string>();
    } catch (const std::exception&) {
      continue;
    }
    ctl::EmlMessage m = ctl::parse_eml(msg);
    std::vector<std::string_view> rcvd;
    for (const auto& h : m.headers)
      if (h.name.size() == 8 && strncasecmp(h.name.c_str(), "received", 8) == 0) rcvd.push_back(h.raw);
    parser.build([&](size_t i, std::string_view& v) {
      if (i >= rcvd.size()) return false;
      v = rcvd[i];
      return true;
    }, relays);
    nlohmann::json j;
    j["file"] = f;
    j["Trusted"] = relays.trusted;
    j["Untrusted"] = relays.untrusted;
    j["Internal"] = relays.internal;
    j["External"] = relays.external;
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  return 0;
}
