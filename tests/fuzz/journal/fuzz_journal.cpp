// libFuzzer target for the journal's reader: any bytes as one journal line
// (journal::read_line, from_json of both event types) must be refused or
// read, never crash, throw or read out of bounds (ASan/UBSan); what is read
// must write back (to_json) as a line that reads to the same line again.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "journal/event.hpp"

namespace {

using namespace sekisho::journal;

bool reread(const std::string& line, MessageEvent& e, ReadError& err) {
  return read_line(line, &e, nullptr, err) == LineType::message;
}
bool reread(const std::string& line, SessionEvent& e, ReadError& err) {
  return read_line(line, nullptr, &e, err) == LineType::session;
}

template <typename Event>
void round_trip(const Event& e) {
  const std::string line = to_line(to_json(e));
  Event again;
  ReadError err;
  if (!reread(line, again, err)) {
    std::fprintf(stderr, "an event did not read back (%s):\n%s\n", err.text.c_str(), line.c_str());
    std::abort();
  }
  const std::string line2 = to_line(to_json(again));
  if (line2 != line) {
    std::fprintf(stderr, "an event changed on the way back:\n%s\n%s\n", line.c_str(), line2.c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  MessageEvent m;
  SessionEvent s;
  ReadError err;
  switch (read_line(line, &m, &s, err)) {
    case LineType::message: round_trip(m); break;
    case LineType::session: round_trip(s); break;
    default: break;
  }
  return 0;
}
