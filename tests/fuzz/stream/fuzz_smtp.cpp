// libFuzzer target: the SMTP engine alone; the input alternates directions
// at every 0xff byte (both sides parse hostile bytes).
#include <cstddef>
#include <cstdint>

#include "smtp/smtp_session.hpp"

using namespace sekisho;

namespace {
struct Sink : smtp::MessageSink {
  uint64_t bytes = 0;
  void on_body(std::span<const uint8_t> b) override { bytes += b.size(); }
  void on_transaction_done(const smtp::SessionFacts&, const smtp::Transaction& t) override {
    if (t.body_bytes > bytes) __builtin_trap();
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Sink sink;
  smtp::Limits lim;
  lim.max_line = 128;
  lim.max_pending = 16;
  lim.max_recipients = 8;
  smtp::SmtpSession s(&sink, lim);
  bool client = false;
  size_t start = 0;
  for (size_t i = 0; i <= size; ++i) {
    if (i == size || data[i] == 0xff) {
      std::span<const uint8_t> part(data + start, i - start);
      client ? s.on_client(part) : s.on_server(part);
      client = !client;
      start = i + 1;
    }
  }
  s.on_close();
  return 0;
}
