// libFuzzer target: the SMTP engine alone; the input alternates directions
// at every 0xff byte (both sides parse hostile bytes). The same dialogue is
// played a second time with every write cut into small pieces (sizes taken
// from the input). Invariants:
//  - the messages, their envelopes (sender, accepted/refused recipients),
//    sizes and replies, the anomaly counts and the desync reason do not
//    depend on how the bytes were segmented;
//  - once the engine reports a desync it delivers nothing more: no message
//    begins, no body byte, no message end (the dataplane holds the segment
//    that caused it, so nothing after it may be judged as if in sync);
//    offline (assume_silent_server_accepts) it parses on, best effort;
//  - a message's body_bytes never exceed the bytes delivered.
// The first input byte also picks the end-of-data strictness, STARTTLS
// masking, and whether limits are small.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/smtp/smtp_session.hpp"

using namespace sekisho;

namespace {
struct Sink : smtp::MessageSink {
  const smtp::SmtpSession* session = nullptr;
  uint64_t bytes = 0;
  std::string log;  // every message's bytes, each followed by its envelope, size and reply
  bool offline = false;  // assume_silent_server_accepts: parsing goes on after a desync
  void check_in_sync() const {
    if (session && !offline && session->desync() != smtp::Desync::none) __builtin_trap();
  }
  void on_message_begin(const smtp::SessionFacts&, const smtp::Transaction&) override {
    check_in_sync();
    log += "<begin>";
  }
  void on_body(std::span<const uint8_t> b) override {
    check_in_sync();
    bytes += b.size();
    log.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  void on_message_end(const smtp::SessionFacts&, const smtp::Transaction& t) override {
    check_in_sync();
    log += "<end " + t.mail_from + (t.bare_lf_end ? " bare-lf>" : ">");
  }
  void on_transaction_done(const smtp::SessionFacts&, const smtp::Transaction& t) override {
    if (t.body_bytes > bytes) __builtin_trap();
    log += "|" + std::to_string(t.body_bytes) + "/" + std::to_string(t.final_reply) + "/" + t.mail_from + "/" +
           (t.mail_accepted ? "A" : "-") + (t.complete ? "C" : "-");
    for (const auto& r : t.rcpt_to) log += " +" + r;
    for (const auto& r : t.rcpt_refused) log += " -" + r;
    log += "|";
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
  const uint8_t mode = size ? data[0] : 0;
  smtp::Limits lim;
  if (!(mode & 8)) {
    lim.max_line = 128;
    lim.max_pending = 16;
    lim.max_recipients = 8;
  }
  lim.end_of_data = (mode & 1) ? smtp::EndOfData::strict : smtp::EndOfData::lenient;
  lim.refuse_starttls = mode & 2;
  lim.assume_silent_server_accepts = (mode & 0x30) == 0x30;
  Sink whole, cut;
  smtp::SmtpSession a(&whole, lim), b(&cut, lim);
  whole.session = &a;
  cut.session = &b;
  whole.offline = cut.offline = lim.assume_silent_server_accepts;
  play(a, data, size, 0);
  play(b, data, size, size ? data[0] : 1);
  if (whole.log != cut.log) __builtin_trap();
  if (a.facts().anomalies != b.facts().anomalies) __builtin_trap();
  if (a.desync() != b.desync()) __builtin_trap();
  return 0;
}
