// pipeline::Connection keeps one bounded copy of each message: it is the
// spool's copy (up to the retain limit) and the content scan's raw message
// (its first CollectLimits::message_bytes); with nothing retained the
// collector keeps the scan's copy. Driven by a real TCP handshake and SMTP
// dialogue through the TCP and SMTP engines.
#include <gtest/gtest.h>

#include "dataplane/pipeline/connection.hpp"

using namespace sekisho;

namespace {

struct Seen : pipeline::FlowEvents {
  size_t message = 0;
  bool message_truncated = false;
  bool collector_truncated = false;
  std::string prefix;
  int ended = 0;
  void on_message_end(pipeline::MessageRecord& m) override {
    ++ended;
    message = m.message.size();
    message_truncated = m.message_truncated;
    collector_truncated = m.content && m.content->truncated();
    prefix.assign(reinterpret_cast<const char*>(m.message.data()), std::min<size_t>(m.message.size(), 64));
  }
  void on_message(const pipeline::MessageRecord&) override {}
};

class Wire {
 public:
  Wire(size_t retain, size_t scan) {
    lim_.retain_delivered = false;  // offline: bytes are delivered as they come
    collect_.message_bytes = scan;
    c_.start(&lim_, &pool_, smtp::Limits{}, &seen, 0, retain);
    c_.set_content_limits(&collect_);
    seg(true, net::kTcpSyn, "");
    seg(false, net::kTcpSyn | net::kTcpAck, "");
    seg(true, net::kTcpAck, "");
    for (auto [client, line] : std::initializer_list<std::pair<bool, const char*>>{
             {false, "220 mx.example ESMTP\r\n"}, {true, "EHLO client.example\r\n"}, {false, "250 mx.example\r\n"},
             {true, "MAIL FROM:<a@x.example>\r\n"}, {false, "250 ok\r\n"}, {true, "RCPT TO:<b@y.example>\r\n"},
             {false, "250 ok\r\n"}, {true, "DATA\r\n"}, {false, "354 go\r\n"}})
      seg(client, net::kTcpAck | net::kTcpPsh, line);
  }
  // Sends |message| (CRLF lines, no dot at a line start) and the end of data.
  void send(const std::string& message) {
    for (size_t i = 0; i < message.size(); i += 16384) seg(true, net::kTcpAck, message.substr(i, 16384));
    seg(true, net::kTcpAck | net::kTcpPsh, ".\r\n");
  }
  std::string take_retained(bool& complete) { return c_.take_retained(complete); }
  Seen seen;

 private:
  void seg(bool client, uint8_t flags, std::string data) {
    net::Packet p;
    p.l3 = net::L3::ipv4;
    p.ip_proto = net::kProtoTcp;
    net::IpAddr a = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
    net::IpAddr b = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 2};
    p.src = client ? a : b;
    p.dst = client ? b : a;
    p.sport = client ? 40000 : 25;
    p.dport = client ? 25 : 40000;
    p.tcp_flags = flags;
    p.window = 65535;
    uint32_t& mine = client ? cseq_ : sseq_;
    p.seq = mine;
    p.ack = (flags & net::kTcpAck) ? (client ? sseq_ : cseq_) : 0;
    p.payload_len = uint32_t(data.size());
    c_.on_segment(net::flow_ref(p).src_is_a, p, {reinterpret_cast<uint8_t*>(data.data()), data.size()}, ev_, 0);
    mine += uint32_t(data.size()) + ((flags & net::kTcpSyn) ? 1 : 0);
  }
  tcp::Limits lim_;
  tcp::BufferPool pool_{1u << 20, 8};
  tcp::EventCounters ev_{};
  mime::CollectLimits collect_;
  pipeline::Connection c_;
  uint32_t cseq_ = 1000, sseq_ = 900000;
};

std::string message_of(size_t body_bytes) {
  std::string m = "Subject: retention\r\nFrom: a@x.example\r\n\r\n";
  while (m.size() < body_bytes) m += "line of text in the body of the message\r\n";
  return m;
}

TEST(Connection, SmallMessageOneCopyServesSpoolAndScan) {
  Wire w(1u << 20, 4096);
  std::string msg = message_of(2000);
  w.send(msg);
  ASSERT_EQ(w.seen.ended, 1);
  EXPECT_EQ(w.seen.message, msg.size());
  EXPECT_FALSE(w.seen.message_truncated);
  EXPECT_EQ(w.seen.prefix, msg.substr(0, 64));
  bool complete = false;
  EXPECT_EQ(w.take_retained(complete), msg);
  EXPECT_TRUE(complete);
}

TEST(Connection, ScanSeesItsPrefixOfARetainedMessage) {
  Wire w(1u << 20, 4096);
  std::string msg = message_of(100000);
  w.send(msg);
  ASSERT_EQ(w.seen.ended, 1);
  EXPECT_EQ(w.seen.message, 4096u) << "the scan's cap, not the spool's";
  EXPECT_TRUE(w.seen.message_truncated);
  EXPECT_FALSE(w.seen.collector_truncated) << "the collector holds no second copy of the message";
  bool complete = false;
  EXPECT_EQ(w.take_retained(complete).size(), msg.size());
  EXPECT_TRUE(complete);
}

TEST(Connection, OverTheRetainLimitTheScanPrefixStays) {
  Wire w(64 * 1024, 4096);
  std::string msg = message_of(200000);
  w.send(msg);
  ASSERT_EQ(w.seen.ended, 1);
  EXPECT_EQ(w.seen.message, 4096u);
  EXPECT_TRUE(w.seen.message_truncated);
  EXPECT_EQ(w.seen.prefix, msg.substr(0, 64));
  bool complete = true;
  std::string kept = w.take_retained(complete);
  EXPECT_FALSE(complete) << "too large to spool";
  EXPECT_LE(kept.size(), 4096u) << "only the scan's prefix is held after the limit";
}

TEST(Connection, WithoutRetentionTheCollectorKeepsTheScanCopy) {
  Wire w(0, 4096);
  std::string msg = message_of(100000);
  w.send(msg);
  ASSERT_EQ(w.seen.ended, 1);
  EXPECT_EQ(w.seen.message, 4096u);
  EXPECT_TRUE(w.seen.message_truncated);
  EXPECT_TRUE(w.seen.collector_truncated);
  bool complete = true;
  EXPECT_TRUE(w.take_retained(complete).empty());
}

}  // namespace
