#include <gtest/gtest.h>

#include <vector>

#include "dataplane/net/packet.hpp"

using namespace sekisho::net;

namespace {

std::vector<uint8_t> eth(uint16_t type) {
  std::vector<uint8_t> f = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  f.push_back(uint8_t(type >> 8));
  f.push_back(uint8_t(type));
  return f;
}

void put16(std::vector<uint8_t>& f, uint16_t v) { f.push_back(uint8_t(v >> 8)); f.push_back(uint8_t(v)); }
void put32(std::vector<uint8_t>& f, uint32_t v) { put16(f, uint16_t(v >> 16)); put16(f, uint16_t(v)); }

// IPv4 + TCP with an MSS and window-scale option and |payload| bytes.
std::vector<uint8_t> ipv4_tcp(uint32_t s, uint32_t d, uint16_t sp, uint16_t dp, size_t payload,
                              std::vector<uint8_t> f = eth(0x0800)) {
  size_t tcp_len = 28;
  put16(f, 0x4500);
  put16(f, uint16_t(20 + tcp_len + payload));
  put32(f, 0);           // id, flags
  put16(f, 0x4006);      // ttl 64, tcp
  put16(f, 0);
  put32(f, s);
  put32(f, d);
  put16(f, sp);
  put16(f, dp);
  put32(f, 1000);
  put32(f, 2000);
  put16(f, 0x7018);      // doff 7, PSH|ACK
  put16(f, 65535);
  put32(f, 0);           // csum, urg
  put32(f, 0x020405b4);  // MSS 1460
  put32(f, 0x01030307);  // NOP, wscale 7
  f.insert(f.end(), payload, 'x');
  return f;
}

}  // namespace

TEST(Decode, Ipv4TcpFieldsAndOptions) {
  auto f = ipv4_tcp(0xc0000201, 0xc0000202, 40000, 25, 5);
  Packet p;
  ASSERT_EQ(decode(f, p), DecodeStatus::ok);
  EXPECT_EQ(p.l3, L3::ipv4);
  EXPECT_EQ(p.ip_proto, kProtoTcp);
  EXPECT_EQ(p.sport, 40000);
  EXPECT_EQ(p.dport, 25);
  EXPECT_EQ(p.seq, 1000u);
  EXPECT_EQ(p.ack, 2000u);
  EXPECT_EQ(p.tcp_flags, kTcpPsh | kTcpAck);
  EXPECT_EQ(p.mss, 1460);
  EXPECT_EQ(p.wscale, 7);
  EXPECT_EQ(p.payload_len, 5u);
  EXPECT_EQ(p.payload_offset, 14 + 20 + 28);
  EXPECT_EQ(format_endpoint(p.src, p.sport, p.l3), "192.0.2.1:40000");
}

TEST(Decode, EthernetPaddingIsNotPayload) {
  auto f = ipv4_tcp(1, 2, 3, 4, 0);
  f.insert(f.end(), 6, 0);  // minimum-frame padding
  Packet p;
  ASSERT_EQ(decode(f, p), DecodeStatus::ok);
  EXPECT_EQ(p.payload_len, 0u);
}

TEST(Decode, QinQ) {
  auto f = eth(0x88A8);
  put16(f, 100);
  put16(f, 0x8100);
  put16(f, 200);
  put16(f, 0x0800);
  // rebuild with tags: splice an IPv4/TCP datagram after the tags
  auto inner = ipv4_tcp(1, 2, 1025, 25, 3);
  f.insert(f.end(), inner.begin() + 14, inner.end());
  Packet p;
  ASSERT_EQ(decode(f, p), DecodeStatus::ok);
  EXPECT_EQ(p.vlan_depth, 2);
  EXPECT_EQ(p.vlan_id[0], 100);
  EXPECT_EQ(p.vlan_id[1], 200);
  EXPECT_EQ(p.dport, 25);
}

TEST(Decode, ThreeVlanTagsRefused) {
  auto f = eth(0x8100);
  for (int i = 0; i < 3; ++i) { put16(f, 1); put16(f, 0x8100); }
  f.resize(f.size() + 40);
  Packet p;
  EXPECT_EQ(decode(f, p), DecodeStatus::vlan_too_deep);
}

TEST(Decode, Ipv6WithExtensionHeaders) {
  auto f = eth(0x86DD);
  std::vector<uint8_t> tcp(20, 0);
  tcp[1] = 25; tcp[0] = 0; tcp[2] = 0x9c; tcp[3] = 0x40;  // sport 25, dport 40000
  tcp[12] = 0x50;
  std::vector<uint8_t> hbh = {60, 0, 1, 4, 0, 0, 0, 0};   // hop-by-hop -> dest opts
  std::vector<uint8_t> dst = {6, 0, 1, 4, 0, 0, 0, 0};    // dest opts -> TCP
  uint16_t plen = uint16_t(hbh.size() + dst.size() + tcp.size() + 4);
  put32(f, 0x60000000);
  put16(f, plen);
  f.push_back(0);   // next: hop-by-hop
  f.push_back(64);
  for (int i = 0; i < 15; ++i) f.push_back(0);
  f.push_back(1);   // ::1
  for (int i = 0; i < 15; ++i) f.push_back(0);
  f.push_back(2);   // ::2
  f.insert(f.end(), hbh.begin(), hbh.end());
  f.insert(f.end(), dst.begin(), dst.end());
  f.insert(f.end(), tcp.begin(), tcp.end());
  f.insert(f.end(), {'a', 'b', 'c', 'd'});
  Packet p;
  ASSERT_EQ(decode(f, p), DecodeStatus::ok);
  EXPECT_EQ(p.l3, L3::ipv6);
  EXPECT_EQ(p.ip_proto, kProtoTcp);
  EXPECT_EQ(p.sport, 25);
  EXPECT_EQ(p.dport, 40000);
  EXPECT_EQ(p.payload_len, 4u);
  EXPECT_EQ(format_endpoint(p.dst, p.dport, p.l3), "[::2]:40000");
}

TEST(Decode, FragmentsAreCountedAndCarryNoPorts) {
  auto f = ipv4_tcp(1, 2, 3, 4, 10);
  f[14 + 6] = 0x20;  // MF
  Packet p;
  EXPECT_EQ(decode(f, p), DecodeStatus::ip_fragment);
  EXPECT_TRUE(p.fragment);
  EXPECT_EQ(p.sport, 0);
}

TEST(Decode, TruncationsNeverReadPastTheSpan) {
  auto f = ipv4_tcp(1, 2, 3, 4, 10);
  for (size_t n = 0; n < f.size(); ++n) {
    std::vector<uint8_t> cut(f.begin(), f.begin() + long(n));  // exact-size heap copy for ASan
    Packet p;
    DecodeStatus st = decode(cut, p);
    EXPECT_NE(st, DecodeStatus::ok) << "length " << n;
  }
  Packet p;
  EXPECT_EQ(decode(std::span<const uint8_t>(f.data(), 10), p), DecodeStatus::runt);
}

TEST(Decode, BadIpv4LengthsRefused) {
  auto f = ipv4_tcp(1, 2, 3, 4, 10);
  f[14 + 2] = 0xff;  // total length beyond the frame
  Packet p;
  EXPECT_EQ(decode(f, p), DecodeStatus::ipv4_bad_length);
  f = ipv4_tcp(1, 2, 3, 4, 10);
  f[14] = 0x44;      // IHL 4
  EXPECT_EQ(decode(f, p), DecodeStatus::ipv4_truncated);
  f = ipv4_tcp(1, 2, 3, 4, 10);
  f[14 + 20 + 12] = 0x40;  // TCP data offset 4
  EXPECT_EQ(decode(f, p), DecodeStatus::tcp_truncated);
}

TEST(FlowKey, BothDirectionsShareKeyAndHash) {
  Packet a, b;
  auto fa = ipv4_tcp(0xc0000201, 0xc0000202, 40000, 25, 0);
  auto fb = ipv4_tcp(0xc0000202, 0xc0000201, 25, 40000, 0);
  ASSERT_EQ(decode(fa, a), DecodeStatus::ok);
  ASSERT_EQ(decode(fb, b), DecodeStatus::ok);
  FlowRef ra = flow_ref(a), rb = flow_ref(b);
  EXPECT_EQ(ra.key, rb.key);
  EXPECT_NE(ra.src_is_a, rb.src_is_a);
  EXPECT_EQ(symmetric_hash(ra.key), symmetric_hash(rb.key));
  EXPECT_EQ(symmetric_hash_frame(fa, a, DecodeStatus::ok), symmetric_hash_frame(fb, b, DecodeStatus::ok));
  auto fc = ipv4_tcp(0xc0000201, 0xc0000202, 40001, 25, 0);
  Packet c;
  ASSERT_EQ(decode(fc, c), DecodeStatus::ok);
  EXPECT_NE(symmetric_hash(flow_ref(c).key), symmetric_hash(ra.key));
}

TEST(FlowKey, HashSpreadsAcrossWorkers) {
  // 1000 client ports to one server: both halves of a 2-way split get traffic.
  int buckets[2] = {0, 0};
  for (uint16_t port = 30000; port < 31000; ++port) {
    Packet p;
    auto f = ipv4_tcp(0xc0000201, 0xc0000202, port, 25, 0);
    ASSERT_EQ(decode(f, p), DecodeStatus::ok);
    ++buckets[symmetric_hash(flow_ref(p).key) % 2];
  }
  EXPECT_GT(buckets[0], 400);
  EXPECT_GT(buckets[1], 400);
}

TEST(Decode, NonIpHashesMacPairSymmetrically) {
  std::vector<uint8_t> f1 = {1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x08, 0x06, 0, 0};
  std::vector<uint8_t> f2 = {2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0x08, 0x06, 0, 0};
  Packet p1, p2;
  EXPECT_EQ(decode(f1, p1), DecodeStatus::non_ip);
  EXPECT_EQ(decode(f2, p2), DecodeStatus::non_ip);
  EXPECT_EQ(symmetric_hash_frame(f1, p1, DecodeStatus::non_ip), symmetric_hash_frame(f2, p2, DecodeStatus::non_ip));
}

// PPPoE sessions and MPLS can carry IP (and so SMTP) the decoder does not
// read: they are told apart from harmless non-IP frames (ARP, LLDP) so the
// dataplane can refuse them by policy instead of forwarding them unread.
TEST(Decode, EncapsulationsThatMayCarryIpAreNamed) {
  for (uint16_t type : {0x8864, 0x8847, 0x8848, 0x88e7}) {
    std::vector<uint8_t> f = {1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, uint8_t(type >> 8), uint8_t(type), 0x11, 0, 0, 1};
    f.resize(60, 0);
    Packet p;
    EXPECT_EQ(decode(f, p), DecodeStatus::encapsulated) << std::hex << type;
  }
  std::vector<uint8_t> arp = {1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x08, 0x06, 0, 1};
  arp.resize(60, 0);
  Packet p;
  EXPECT_EQ(decode(arp, p), DecodeStatus::non_ip);
}
