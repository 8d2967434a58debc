// libFuzzer target: the header scanner fed in two chunks split at a
// fuzz-chosen point must give the same facts as fed whole. The input is
// also one address list for the splitter (scanners/mime/address.hpp,
// instrumented here as a header): it must stay inside the bytes (ASan, on a
// copy with nothing after it), yield spans inside them, and parse_addresses
// must give one address per mailbox it yields.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "scanners/mime/address.hpp"
#include "scanners/mime/header_scan.hpp"

#include <string_view>
#include <vector>

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

  std::vector<char> list(msg, msg + n);  // exactly n bytes: a read past them is caught
  std::string_view v(list.data(), list.size());
  size_t mailboxes = 0;
  auto inside = [&](std::string_view s) {
    if (!s.empty() && (s.data() < v.data() || s.data() + s.size() > v.data() + v.size())) abort();
  };
  for_each_address(v, [&](const Mailbox& m) {
    inside(m.address);
    inside(m.phrase);
    inside(m.comments);
    inside(m.group);
    if (m.address.empty()) abort();
    size_t out = 0;
    auto put = [&](std::string_view p) { out += p.size(); };
    render_address(m.address, put);
    render_phrase(m.phrase, put);
    render_comments(m.comments, put);
    ++mailboxes;
  });
  uint32_t errors = 0;
  if (parse_addresses(v, errors).size() != mailboxes) abort();
  return 0;
}
