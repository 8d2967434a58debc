// libFuzzer target: the header scanner fed in two chunks split at a
// fuzz-chosen point must give the same facts as fed whole.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "scanners/mime/header_scan.hpp"

using namespace sekisho::mime;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t split = data[0] % (size);
  const uint8_t* msg = data + 1;
  size_t n = size - 1;
  HeaderScanner whole(4096), parts(4096);
  whole.feed({msg, n});
  whole.finish();
  parts.feed({msg, std::min(split, n)});
  parts.feed({msg + std::min(split, n), n - std::min(split, n)});
  parts.finish();
  const HeaderFacts &a = whole.facts(), &b = parts.facts();
  if (a.subject != b.subject || a.from != b.from || a.to != b.to || a.cc != b.cc || a.from_name != b.from_name)
    abort();
  return 0;
}
