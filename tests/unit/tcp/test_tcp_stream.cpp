// TCP engine: for every segmentation the bytes delivered to the inspector
// must equal the bytes a receiver can assemble from what the engine
// forwarded (after its rewrites). The "receiver" here keeps the first copy
// of every byte, the other keeps the last: after normalisation both agree.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "dataplane/tcp/tcp_stream.hpp"

using namespace sekisho;
using tcp::SegmentVerdict;

namespace {

struct Collect : tcp::StreamSink {
  std::string client, server;
  uint64_t gaps = 0;
  bool closed = false;
  void on_data(bool c, std::span<const uint8_t> b) override {
    (c ? client : server).append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  void on_gap(bool, uint64_t len) override { gaps += len; }
  void on_close() override { closed = true; }
};

// A receiver that assembles forwarded segments by sequence number.
struct Receiver {
  uint32_t isn = 0;
  std::map<uint32_t, char> first, last;
  void take(uint32_t seq, const std::string& data) {
    for (size_t i = 0; i < data.size(); ++i) {
      uint32_t off = seq + uint32_t(i) - isn - 1;
      first.emplace(off, data[i]);
      last[off] = data[i];
    }
  }
  static std::string contiguous(const std::map<uint32_t, char>& m) {
    std::string s;
    uint32_t want = 0;
    for (auto& [off, c] : m) {
      if (off != want) break;
      s.push_back(c);
      ++want;
    }
    return s;
  }
};

class Harness {
 public:
  explicit Harness(tcp::Limits lim = {}, uint32_t client_isn = 1000, uint32_t server_isn = 5000)
      : lim_(lim), pool_(lim_.buffer_bytes, 64), cisn_(client_isn), sisn_(server_isn) {
    flow_.reset(&lim_, &pool_, &sink_);
    rx_.isn = client_isn;
    segment(true, cisn_, 0, net::kTcpSyn, "");
    segment(false, sisn_, cisn_ + 1, net::kTcpSyn | net::kTcpAck, "");
    segment(true, cisn_ + 1, sisn_ + 1, net::kTcpAck, "");
  }
  // Client data at stream offset |off| (0 = first byte after the SYN).
  SegmentVerdict client(uint32_t off, std::string data, uint8_t flags = net::kTcpAck | net::kTcpPsh) {
    uint32_t seq = cisn_ + 1 + off;
    SegmentVerdict v = segment(true, seq, sisn_ + 1, flags, data);
    if (v != SegmentVerdict::drop) rx_.take(seq, forwarded_);
    return v;
  }
  // The server acknowledges client bytes up to offset |off|.
  void server_ack(uint32_t off) { segment(false, sisn_ + 1, cisn_ + 1 + off, net::kTcpAck, ""); }
  SegmentVerdict rst_from_client(uint32_t seq) { return segment(true, seq, 0, net::kTcpRst, ""); }
  // Client data at |off| acknowledging server bytes up to server offset |server_off|.
  SegmentVerdict client_acking(uint32_t off, uint32_t server_off, std::string data) {
    uint32_t seq = cisn_ + 1 + off;
    SegmentVerdict v = segment(true, seq, sisn_ + 1 + server_off, net::kTcpAck | net::kTcpPsh, data);
    if (v != SegmentVerdict::drop) rx_.take(seq, forwarded_);
    return v;
  }
  SegmentVerdict server(uint32_t off, std::string data, uint8_t flags = net::kTcpAck | net::kTcpPsh) {
    return segment(false, sisn_ + 1 + off, cisn_ + 1, flags, data);
  }
  SegmentVerdict raw(bool from_client, uint32_t seq, uint32_t ack, uint8_t flags, std::string data) {
    return segment(from_client, seq, ack, flags, data);
  }

  Collect& sink() { return sink_; }
  Receiver& receiver() { return rx_; }
  tcp::TcpFlow& flow() { return flow_; }
  tcp::EventCounters& ev() { return ev_; }
  uint64_t count(tcp::Event e) const { return ev_[size_t(e)]; }

 private:
  SegmentVerdict segment(bool from_client, uint32_t seq, uint32_t ack, uint8_t flags, std::string data) {
    net::Packet p;
    p.l3 = net::L3::ipv4;
    p.ip_proto = net::kProtoTcp;
    p.seq = seq;
    p.ack = ack;
    p.tcp_flags = flags;
    p.window = 65535;
    forwarded_ = data;
    std::span<uint8_t> payload(reinterpret_cast<uint8_t*>(forwarded_.data()), forwarded_.size());
    return flow_.on_segment(from_client, p, payload, ev_);
  }

  tcp::Limits lim_;
  tcp::BufferPool pool_;
  Collect sink_;
  tcp::TcpFlow flow_;
  tcp::EventCounters ev_{};
  Receiver rx_;
  uint32_t cisn_, sisn_;
  std::string forwarded_;
};

const std::string kStream = "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: hello\r\n\r\nbuy now\r\n.\r\n";

void expect_inspected_equals_delivered(Harness& h, const std::string& expected) {
  EXPECT_EQ(h.sink().client, expected);
  EXPECT_EQ(Receiver::contiguous(h.receiver().first), expected) << "receiver keeping first copies";
  EXPECT_EQ(Receiver::contiguous(h.receiver().last), expected) << "receiver keeping last copies";
}

}  // namespace

TEST(TcpStream, InOrder) {
  Harness h;
  h.client(0, kStream.substr(0, 20));
  h.client(20, kStream.substr(20));
  expect_inspected_equals_delivered(h, kStream);
  EXPECT_EQ(h.count(tcp::Event::in_order), 2u);
}

TEST(TcpStream, OneByteSegments) {
  Harness h;
  for (size_t i = 0; i < kStream.size(); ++i) h.client(uint32_t(i), kStream.substr(i, 1));
  expect_inspected_equals_delivered(h, kStream);
}

TEST(TcpStream, ReverseOrder) {
  Harness h;
  for (size_t i = kStream.size(); i > 0; i -= std::min<size_t>(i, 8)) {
    size_t start = i >= 8 ? i - 8 : 0;
    h.client(uint32_t(start), kStream.substr(start, i - start));
    if (start == 0) break;
  }
  expect_inspected_equals_delivered(h, kStream);
  EXPECT_GT(h.count(tcp::Event::out_of_order), 0u);
}

TEST(TcpStream, OverlapWithDifferentBytesAheadOfAHoleIsRewritten) {
  Harness h;
  std::string decoy = kStream;
  decoy.replace(kStream.find("buy now"), 7, "BUY NOW");
  h.client(10, kStream.substr(10));          // ahead of a hole: buffered as sent
  auto v = h.client(10, decoy.substr(10));   // same range, other bytes
  EXPECT_EQ(v, SegmentVerdict::forward_rewritten);
  h.client(0, kStream.substr(0, 10));        // fills the hole
  expect_inspected_equals_delivered(h, kStream);
  EXPECT_EQ(h.count(tcp::Event::conflicts_rewritten), 1u);
}

TEST(TcpStream, RetransmissionWithDifferentBytesIsRewritten) {
  Harness h;
  h.client(0, kStream);
  std::string evil = kStream;
  evil.replace(kStream.find("hello"), 5, "HELLO");
  EXPECT_EQ(h.client(0, evil), SegmentVerdict::forward_rewritten);
  expect_inspected_equals_delivered(h, kStream);
}

TEST(TcpStream, PartialOverlapCarriesNewBytesToo) {
  Harness h;
  h.client(0, kStream.substr(0, 30));
  std::string mixed = "XXXXXXXXXX" + kStream.substr(30);  // 10 old (different) + new
  EXPECT_EQ(h.client(20, mixed), SegmentVerdict::forward_rewritten);
  expect_inspected_equals_delivered(h, kStream);
}

TEST(TcpStream, DropPolicyDropsConflicts) {
  tcp::Limits lim;
  lim.conflict = tcp::ConflictPolicy::drop;
  Harness h(lim);
  h.client(0, kStream);
  std::string evil = kStream;
  evil[3] = 'X';
  EXPECT_EQ(h.client(0, evil), SegmentVerdict::drop);
  expect_inspected_equals_delivered(h, kStream);
  EXPECT_EQ(h.count(tcp::Event::conflicts_dropped), 1u);
}

TEST(TcpStream, AcknowledgedBytesAreReleased) {
  Harness h;
  h.client(0, kStream);
  EXPECT_GT(h.flow().retained_bytes(), 0u);
  h.server_ack(uint32_t(kStream.size()));
  EXPECT_EQ(h.flow().retained_bytes(), 0u) << "an idle flow holds no buffer";
  // A retransmission of acknowledged bytes is not compared (the receiver drops it).
  EXPECT_EQ(h.client(0, std::string(kStream.size(), 'Z')), SegmentVerdict::forward);
  EXPECT_EQ(h.sink().client, kStream);
}

TEST(TcpStream, OutOfWindowRstIsIgnoredRstAtNextCloses) {
  Harness h(tcp::Limits{}, 1000, 5000);
  h.client(0, kStream.substr(0, 20));
  h.rst_from_client(1000 + 1 + 20 + 10'000'000);
  EXPECT_EQ(h.count(tcp::Event::rst_ignored), 1u);
  h.client(20, kStream.substr(20));
  expect_inspected_equals_delivered(h, kStream);
  EXPECT_FALSE(h.sink().closed);
  h.rst_from_client(1000 + 1 + uint32_t(kStream.size()));
  EXPECT_TRUE(h.sink().closed);
  EXPECT_EQ(h.flow().state(), tcp::TcpFlow::State::closed);
}

// Linux (RFC 5961 3.2) answers an RST inside the window but not at rcv_nxt
// with a challenge ACK and keeps the connection: inspection must go on.
TEST(TcpStream, InWindowRstNotAtNextKeepsInspecting) {
  Harness h(tcp::Limits{}, 1000, 5000);
  h.client(0, kStream.substr(0, 20));
  h.rst_from_client(1000 + 1 + 20 + 5);
  EXPECT_EQ(h.count(tcp::Event::rst_challenged), 1u);
  EXPECT_FALSE(h.sink().closed);
  EXPECT_NE(h.flow().state(), tcp::TcpFlow::State::closed);
  h.client(20, kStream.substr(20));
  expect_inspected_equals_delivered(h, kStream);
}

// After an accepted RST nothing with data passes: if the receiver did not
// take the RST, what follows would otherwise reach it uninspected.
TEST(TcpStream, DataAfterResetIsDropped) {
  Harness h(tcp::Limits{}, 1000, 5000);
  h.client(0, kStream.substr(0, 20));
  h.rst_from_client(1000 + 1 + 20);
  EXPECT_EQ(h.flow().state(), tcp::TcpFlow::State::closed);
  EXPECT_EQ(h.client(20, kStream.substr(20)), SegmentVerdict::drop);
  EXPECT_EQ(h.count(tcp::Event::after_close_dropped), 1u);
  EXPECT_EQ(Receiver::contiguous(h.receiver().first), kStream.substr(0, 20));
}

// Inline, an ACK beyond what the server sent is discarded by the server
// with its data (RFC 5961 5.2); it used to be taken as a capture gap, which
// pushed the server's real replies below the engine's view.
TEST(TcpStream, AckBeyondServerDataIsDroppedInline) {
  Harness h(tcp::Limits{}, 1000, 5000);
  h.server(0, "220 hi\r\n");
  EXPECT_EQ(h.client_acking(0, 8 + 100000, kStream.substr(0, 20)), SegmentVerdict::drop);
  EXPECT_EQ(h.count(tcp::Event::ack_beyond_data), 1u);
  EXPECT_EQ(h.count(tcp::Event::gaps), 0u);
  EXPECT_EQ(h.sink().client, "");
  h.server(8, "250 ok\r\n");
  EXPECT_EQ(h.sink().server, "220 hi\r\n250 ok\r\n");
  EXPECT_EQ(h.client_acking(0, 16, kStream), SegmentVerdict::forward);
  expect_inspected_equals_delivered(h, kStream);
}

TEST(TcpStream, RstAfterFinAtTheSequenceNumberPastTheFinCloses) {
  Harness h(tcp::Limits{}, 1000, 5000);
  h.client(0, kStream, net::kTcpAck | net::kTcpPsh | net::kTcpFin);
  h.rst_from_client(1000 + 1 + uint32_t(kStream.size()) + 1);
  EXPECT_EQ(h.count(tcp::Event::rst_accepted), 1u);
  EXPECT_EQ(h.flow().state(), tcp::TcpFlow::State::closed);
}

TEST(TcpStream, AckOfServerFinIsNotBeyondData) {
  Harness h(tcp::Limits{}, 1000, 5000);
  h.server(0, "221 bye\r\n", net::kTcpAck | net::kTcpFin);
  EXPECT_EQ(h.client_acking(0, 9 + 1, ""), SegmentVerdict::forward);
  EXPECT_EQ(h.count(tcp::Event::ack_beyond_data), 0u);
}

TEST(TcpStream, SynWithDataIsDropped) {
  tcp::Limits lim;
  tcp::BufferPool pool(lim.buffer_bytes, 4);
  Collect sink;
  tcp::TcpFlow f;
  f.reset(&lim, &pool, &sink);
  tcp::EventCounters ev{};
  net::Packet p;
  p.l3 = net::L3::ipv4;
  p.ip_proto = net::kProtoTcp;
  p.seq = 77;
  p.tcp_flags = net::kTcpSyn;
  std::string data = "EHLO x\r\n";
  EXPECT_EQ(f.on_segment(true, p, {reinterpret_cast<uint8_t*>(data.data()), data.size()}, ev), SegmentVerdict::drop);
  EXPECT_EQ(ev[size_t(tcp::Event::syn_data_dropped)], 1u);
  EXPECT_EQ(sink.client, "");
}

TEST(TcpStream, SequenceWrap) {
  Harness h(tcp::Limits{}, 0xffffffffu - 30, 0xfffffff0u);
  for (size_t i = 0; i < kStream.size(); i += 7) h.client(uint32_t(i), kStream.substr(i, 7));
  expect_inspected_equals_delivered(h, kStream);
  h.server_ack(uint32_t(kStream.size()));
  EXPECT_EQ(h.flow().retained_bytes(), 0u);
}

TEST(TcpStream, TooManyHolesIsACap) {
  Harness h;
  for (uint32_t i = 0; i < 20; ++i) h.client(10 + i * 4, "ab");  // 20 separate islands
  EXPECT_GT(h.count(tcp::Event::cap_dropped), 0u);
  EXPECT_EQ(h.sink().client, "");
}

TEST(TcpStream, RetentionCapDropsThenRecovers) {
  tcp::Limits lim;
  lim.buffer_bytes = 64;
  Harness h(lim);
  std::string big(200, 'x');
  EXPECT_EQ(h.client(0, big.substr(0, 60)), SegmentVerdict::forward);
  EXPECT_EQ(h.client(60, big.substr(60, 60)), SegmentVerdict::drop) << "would exceed the retention buffer";
  h.server_ack(60);
  EXPECT_EQ(h.client(60, big.substr(60, 60)), SegmentVerdict::forward) << "after the ACK there is room";
  EXPECT_EQ(h.sink().client, big.substr(0, 120));
}

TEST(TcpStream, MidstreamFlowIsPassedUninspected) {
  tcp::Limits lim;
  tcp::BufferPool pool(lim.buffer_bytes, 4);
  Collect sink;
  tcp::TcpFlow f;
  f.reset(&lim, &pool, &sink);
  tcp::EventCounters ev{};
  net::Packet p;
  p.ip_proto = net::kProtoTcp;
  p.tcp_flags = net::kTcpAck | net::kTcpPsh;
  p.seq = 77;
  std::string d = "MAIL FROM:<x@y>\r\n";
  EXPECT_EQ(f.on_segment(true, p, {reinterpret_cast<uint8_t*>(d.data()), d.size()}, ev), SegmentVerdict::forward);
  EXPECT_EQ(f.state(), tcp::TcpFlow::State::midstream);
  EXPECT_EQ(ev[size_t(tcp::Event::midstream)], 1u);
  EXPECT_TRUE(sink.client.empty());
}

TEST(TcpStream, ReplayModeReportsCaptureGaps) {
  tcp::Limits lim;
  lim.retain_delivered = false;
  Harness h(lim);
  h.client(0, kStream.substr(0, 10));
  h.client(20, kStream.substr(20));            // 10 bytes never captured
  h.server_ack(uint32_t(kStream.size()));      // but the server got them
  EXPECT_EQ(h.sink().gaps, 10u);
  EXPECT_EQ(h.sink().client, kStream.substr(0, 10) + kStream.substr(20));
}
