// libFuzzer target: a TCP flow (handshake, then fuzz-chosen segments in
// both directions: offsets, lengths, flags, ACKs) through the TCP engine
// into the SMTP engine. Invariant besides memory safety: every byte the
// inspector was given equals the first copy of that byte the engine let
// through to the receiver.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "dataplane/smtp/smtp_session.hpp"
#include "dataplane/tcp/tcp_stream.hpp"

using namespace sekisho;

namespace {

struct Sink : tcp::StreamSink, smtp::MessageSink {
  smtp::SmtpSession* smtp = nullptr;
  uint64_t client_off = 0;
  std::map<uint64_t, uint8_t>* first = nullptr;
  void on_data(bool c, std::span<const uint8_t> b) override {
    if (c) {
      for (size_t i = 0; i < b.size(); ++i) {
        auto it = first->find(client_off + i);
        if (it != first->end() && it->second != b[i]) abort();  // inspected != delivered
      }
      client_off += b.size();
      smtp->on_client(b);
    } else {
      smtp->on_server(b);
    }
  }
  void on_gap(bool c, uint64_t len) override {
    if (c) client_off += len;
    smtp->on_gap(c, len);
  }
  void on_close() override { smtp->on_close(); }
  void on_body(std::span<const uint8_t>) override {}
  void on_transaction_done(const smtp::SessionFacts&, const smtp::Transaction&) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tcp::Limits lim;
  lim.buffer_bytes = 4096;
  tcp::BufferPool pool(lim.buffer_bytes, 4);
  Sink sink;
  smtp::Limits sl;
  sl.max_line = 200;
  smtp::SmtpSession smtp(&sink, sl);
  std::map<uint64_t, uint8_t> first;
  sink.smtp = &smtp;
  sink.first = &first;
  tcp::TcpFlow flow;
  flow.reset(&lim, &pool, &sink);
  tcp::EventCounters ev{};
  const uint32_t cisn = 0xfffffe00u, sisn = 7;
  auto seg = [&](bool from_client, uint32_t seq, uint32_t ack, uint8_t flags, uint8_t* p, size_t n) {
    net::Packet pk;
    pk.l3 = net::L3::ipv4;
    pk.ip_proto = net::kProtoTcp;
    pk.seq = seq;
    pk.ack = ack;
    pk.tcp_flags = flags;
    pk.window = 4096;
    return flow.on_segment(from_client, pk, {p, n}, ev);
  };
  seg(true, cisn, 0, net::kTcpSyn, nullptr, 0);
  seg(false, sisn, cisn + 1, net::kTcpSyn | net::kTcpAck, nullptr, 0);
  uint8_t buf[256];
  size_t i = 0;
  while (i + 4 <= size) {
    bool from_client = data[i] & 1;
    uint8_t flags = uint8_t(net::kTcpAck | ((data[i] >> 1) & 0x0f) << 0) & ~net::kTcpSyn;
    if (data[i] & 0x80) flags &= ~net::kTcpRst;
    uint16_t off = uint16_t(data[i + 1] << 8 | data[i + 2]);
    size_t n = std::min<size_t>(data[i + 3] % 64, size - i - 4);
    std::memcpy(buf, data + i + 4, n);
    i += 4 + n;
    uint32_t seq = (from_client ? cisn + 1 : sisn + 1) + off;
    uint32_t ack = from_client ? sisn + 1 + (off >> 4) : cisn + 1 + (off >> 2);
    auto v = seg(from_client, seq, ack, flags, buf, n);
    // A receiver ignores the data of an RST segment (and so does the engine).
    if (from_client && v != tcp::SegmentVerdict::drop && flow.inspected() && !(flags & net::kTcpRst))
      for (size_t k = 0; k < n; ++k) first.emplace(uint64_t(off) + k, buf[k]);
    if (flow.state() == tcp::TcpFlow::State::closed) break;
  }
  flow.close(ev);
  return 0;
}
