#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "dataplane/enforce/tcp_inject.hpp"
#include "dataplane/net/packet.hpp"

using namespace sekisho;

namespace {

// Independent checksum check: the 16-bit one's-complement sum of a correct
// header (with its checksum field) is 0xffff.
bool sums_to_ones(const std::vector<uint8_t>& words) {
  uint64_t s = 0;
  for (size_t i = 0; i < words.size(); i += 2)
    s += (uint64_t(words[i]) << 8) + (i + 1 < words.size() ? words[i + 1] : 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return s == 0xffff;
}

std::vector<uint8_t> client_segment(bool v6, bool vlan, const std::string& payload) {
  std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 0x22, 0x02, 0, 0, 0, 0, 0x11};  // dst=server mac, src=client mac
  if (vlan) f.insert(f.end(), {0x81, 0x00, 0x00, 0x2a});
  if (!v6) {
    f.insert(f.end(), {0x08, 0x00});
    uint16_t tot = uint16_t(20 + 20 + payload.size());
    f.insert(f.end(), {0x45, 0, uint8_t(tot >> 8), uint8_t(tot), 0, 0, 0x40, 0, 64, 6, 0, 0,
                       192, 0, 2, 1, 192, 0, 2, 2});
  } else {
    f.insert(f.end(), {0x86, 0xdd});
    uint16_t pl = uint16_t(20 + payload.size());
    f.insert(f.end(), {0x60, 0, 0, 0, uint8_t(pl >> 8), uint8_t(pl), 6, 64});
    for (int i = 0; i < 15; ++i) f.push_back(i == 0 ? 0x20 : 0);
    f.push_back(1);
    for (int i = 0; i < 15; ++i) f.push_back(i == 0 ? 0x20 : 0);
    f.push_back(2);
  }
  // sport 40000 -> 25, seq 1000, ack 5000, PSH|ACK, window 502
  f.insert(f.end(), {0x9c, 0x40, 0x00, 0x19, 0, 0, 0x03, 0xe8, 0, 0, 0x13, 0x88, 0x50, 0x18, 0x01, 0xf6, 0, 0, 0, 0});
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

void expect_valid_checksums(const std::vector<uint8_t>& f, const net::Packet& p) {
  const uint8_t* ip = f.data() + p.l3_offset;
  size_t tcp_len = p.ip_end - p.l4_offset;
  std::vector<uint8_t> pseudo;
  if (p.l3 == net::L3::ipv4) {
    EXPECT_TRUE(sums_to_ones({ip, ip + 20})) << "IPv4 header checksum";
    pseudo.assign(ip + 12, ip + 20);
  } else {
    pseudo.assign(ip + 8, ip + 40);
  }
  pseudo.insert(pseudo.end(), {0, 6, uint8_t(tcp_len >> 8), uint8_t(tcp_len)});
  pseudo.insert(pseudo.end(), f.begin() + p.l4_offset, f.begin() + long(p.ip_end));
  EXPECT_TRUE(sums_to_ones(pseudo)) << "TCP checksum";
}

}  // namespace

class Inject : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(Inject, ReplyToClientIsAValidReversedSegment) {
  auto [v6, vlan] = GetParam();
  const std::string data = "\r\n.\r\n";
  auto seen = client_segment(v6, vlan, data);
  net::Packet p;
  ASSERT_EQ(net::decode(seen, p), net::DecodeStatus::ok);
  const std::string reply = "550 5.7.1 Message rejected (ref SK-1)\r\n";
  enforce::TcpSegmentSpec spec;
  spec.seq = p.ack;
  spec.ack = p.seq + p.payload_len;
  spec.flags = net::kTcpAck | net::kTcpPsh;
  spec.payload = {reinterpret_cast<const uint8_t*>(reply.data()), reply.size()};
  std::vector<uint8_t> out(enforce::kMaxInjectFrame);
  size_t n = enforce::build_tcp_frame(seen, p, enforce::Towards::sender, spec, out);
  ASSERT_GT(n, 0u);
  out.resize(n);
  net::Packet r;
  ASSERT_EQ(net::decode(out, r), net::DecodeStatus::ok);
  EXPECT_EQ(r.src, p.dst);
  EXPECT_EQ(r.dst, p.src);
  EXPECT_EQ(r.sport, 25);
  EXPECT_EQ(r.dport, 40000);
  EXPECT_EQ(r.seq, 5000u);
  EXPECT_EQ(r.ack, 1000u + data.size());
  EXPECT_EQ(r.tcp_flags, net::kTcpAck | net::kTcpPsh);
  EXPECT_EQ(r.window, 502);
  EXPECT_EQ(r.vlan_depth, vlan ? 1 : 0);
  EXPECT_EQ(std::memcmp(out.data(), seen.data() + 6, 6), 0) << "destination MAC is the client's";
  EXPECT_EQ(std::string(out.begin() + r.payload_offset, out.end()), reply);
  expect_valid_checksums(out, r);
}

TEST_P(Inject, RstToServerKeepsDirection) {
  auto [v6, vlan] = GetParam();
  auto seen = client_segment(v6, vlan, "QUIT\r\n");
  net::Packet p;
  ASSERT_EQ(net::decode(seen, p), net::DecodeStatus::ok);
  enforce::TcpSegmentSpec spec;
  spec.seq = p.seq;
  spec.flags = net::kTcpRst;
  spec.window = 0;
  std::vector<uint8_t> out(enforce::kMaxInjectFrame);
  size_t n = enforce::build_tcp_frame(seen, p, enforce::Towards::receiver, spec, out);
  ASSERT_GT(n, 0u);
  out.resize(n);
  net::Packet r;
  ASSERT_EQ(net::decode(out, r), net::DecodeStatus::ok);
  EXPECT_EQ(r.src, p.src);
  EXPECT_EQ(r.dport, 25);
  EXPECT_EQ(r.seq, 1000u);
  EXPECT_EQ(r.tcp_flags, net::kTcpRst);
  EXPECT_EQ(r.payload_len, 0u);
  EXPECT_EQ(std::memcmp(out.data(), seen.data(), 12), 0) << "MACs unchanged";
  expect_valid_checksums(out, r);
}

INSTANTIATE_TEST_SUITE_P(Families, Inject,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()));

TEST(InjectLimits, RefusesWhatItCannotBuild) {
  auto seen = client_segment(false, false, "x");
  net::Packet p;
  ASSERT_EQ(net::decode(seen, p), net::DecodeStatus::ok);
  std::vector<uint8_t> big(enforce::kMaxInjectPayload + 1, 'a');
  std::vector<uint8_t> out(enforce::kMaxInjectFrame);
  enforce::TcpSegmentSpec spec;
  spec.payload = big;
  EXPECT_EQ(enforce::build_tcp_frame(seen, p, enforce::Towards::sender, spec, out), 0u);
  spec.payload = {};
  std::vector<uint8_t> tiny(20);
  EXPECT_EQ(enforce::build_tcp_frame(seen, p, enforce::Towards::sender, spec, tiny), 0u);
  p.ip_proto = net::kProtoUdp;
  EXPECT_EQ(enforce::build_tcp_frame(seen, p, enforce::Towards::sender, spec, out), 0u);
}
