// libFuzzer target: the SMTP engine alone; the input alternates directions
// at every 0xff byte (both sides parse hostile bytes). The same dialogue is
// played a second time with every write cut into small pieces (sizes taken
// from the input): the messages, their sizes and replies and the anomaly
// counts must not depend on how the bytes were segmented.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "smtp/smtp_session.hpp"

using namespace sekisho;

namespace {
struct Sink : smtp::MessageSink {
  uint64_t bytes = 0;
  std::string body;  // every message's bytes, each followed by its size and reply
  void on_body(std::span<const uint8_t> b) override {
    bytes += b.size();
    body.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  void on_transaction_done(const smtp::SessionFacts&, const smtp::Transaction& t) override {
    if (t.body_bytes > bytes) __builtin_trap();
    body += "|" + std::to_string(t.body_bytes) + "/" + std::to_string(t.final_reply) + "/" + t.mail_from + "|";
  }
};

void play(smtp::SmtpSession& s, const uint8_t* data, size_t size, size_t piece_seed) {
  bool client = false;
  size_t start = 0;
  for (size_t i = 0; i <= size; ++i) {
    if (i == size || data[i] == 0xff) {
      size_t at = start;
      while (at < i) {
        size_t n = piece_seed ? std::min(i - at, 1 + (piece_seed + at) % 7) : i - at;
        std::span<const uint8_t> part(data + at, n);
        client ? s.on_client(part) : s.on_server(part);
        at += n;
      }
      client = !client;
      start = i + 1;
    }
  }
  s.on_close();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  smtp::Limits lim;
  lim.max_line = 128;
  lim.max_pending = 16;
  lim.max_recipients = 8;
  Sink whole, cut;
  smtp::SmtpSession a(&whole, lim), b(&cut, lim);
  play(a, data, size, 0);
  play(b, data, size, size ? data[0] : 1);
  if (whole.body != cut.body) __builtin_trap();
  if (a.facts().anomalies != b.facts().anomalies) __builtin_trap();
  return 0;
}
