// libFuzzer target for the MIME engine: any bytes, fed whole and then cut
// into chunks at positions taken from the input itself, must give the same
// facts (the JSON of the message event); nothing may crash or read out of
// bounds (ASan/UBSan).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "journal/mime_part.hpp"
#include "scanners/mime/mime_parser.hpp"

namespace {

std::string facts(const uint8_t* data, size_t size, size_t step_seed) {
  sekisho::mime::MimeLimits lim;
  lim.max_depth = 8;
  lim.max_parts = 64;
  lim.leaf_digests = true;
  // The clock-driven unpacking budgets (time, the worker's bucket) may cut
  // one of the two runs and not the other: out of the comparison.
  lim.attachment.message_time_us = UINT32_MAX;
  lim.attachment.worker_unpacked_burst = UINT64_MAX / 2;
  sekisho::mime::MimeParser p(lim);
  if (step_seed == 0) {
    p.feed({data, size});
  } else {
    size_t i = 0, k = step_seed;
    while (i < size) {
      size_t n = 1 + (k % 97);  // 1..97 bytes, varying
      k = k * 1103515245u + 12345u;
      n = std::min(n, size - i);
      p.feed({data + i, n});
      i += n;
    }
  }
  p.finish();
  nlohmann::json j;
  sekisho::journal::add_facts_json(p.facts(), j);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256 * 1024) return 0;
  std::string whole = facts(data, size, 0);
  size_t seed = size ? data[0] + 1 : 1;
  std::string chunked = facts(data, size, seed);
  if (whole != chunked) {
    std::fprintf(stderr, "chunking changed the result:\nwhole:   %s\nchunked: %s\n", whole.c_str(), chunked.c_str());
    std::abort();
  }
  return 0;
}
