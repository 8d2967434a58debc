// In-place rewrites of forwarded segments: STARTTLS masking, URG clearing
// and the TCP checksum after either.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/enforce/rewrite.hpp"
#include "dataplane/net/packet.hpp"

using namespace sekisho;

namespace {

std::string masked(std::string s) {
  std::span<uint8_t> b(reinterpret_cast<uint8_t*>(s.data()), s.size());
  enforce::mask_starttls(b);
  return s;
}

bool sums_to_ones(const uint8_t* p, size_t n, uint32_t s = 0) {
  uint64_t sum = s;
  for (size_t i = 0; i < n; i += 2) sum += (uint64_t(p[i]) << 8) + (i + 1 < n ? p[i + 1] : 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

// A server segment 192.0.2.2:25 -> 192.0.2.1:40000 with |flags| and an
// urgent pointer of 1; the checksum is left zero.
std::vector<uint8_t> server_segment(const std::string& payload, uint8_t flags) {
  std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 0x11, 0x02, 0, 0, 0, 0, 0x22, 0x08, 0x00};
  uint16_t tot = uint16_t(20 + 20 + payload.size());
  f.insert(f.end(), {0x45, 0, uint8_t(tot >> 8), uint8_t(tot), 0, 0, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 2, 192, 0, 2, 1});
  f.insert(f.end(), {0x00, 0x19, 0x9c, 0x40, 0, 0, 0x13, 0x88, 0, 0, 0x03, 0xe8, 0x50, flags, 0x01, 0xf6, 0, 0, 0, 1});
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

}  // namespace

TEST(MaskStarttls, EhloCapabilityLines) {
  EXPECT_EQ(masked("250-mx.example\r\n250-STARTTLS\r\n250 SIZE 1000\r\n"),
            "250-mx.example\r\n250-XXXXXXXX\r\n250 SIZE 1000\r\n");
  EXPECT_EQ(masked("250-PIPELINING\r\n250 starttls\r\n"), "250-PIPELINING\r\n250 XXXXXXXX\r\n");
  EXPECT_EQ(masked("250 STARTTLS"), "250 XXXXXXXX") << "at the end of the segment";
  EXPECT_EQ(masked("250-STARTTLS \r\n"), "250-XXXXXXXX \r\n");
}

TEST(MaskStarttls, LeavesEverythingElse) {
  for (const std::string s : {"220 STARTTLS ready\r\n", "250-STARTTLSX\r\n", "250-XSTARTTLS\r\n",
                              "250-START", "TLS\r\n", "STARTTLS\r\n", "354 STARTTLS\r\n"}) {
    std::string copy = s;
    std::span<uint8_t> b(reinterpret_cast<uint8_t*>(copy.data()), copy.size());
    EXPECT_FALSE(enforce::mask_starttls(b)) << s;
    EXPECT_EQ(copy, s);
  }
}

TEST(Rewrite, UrgentClearedAndChecksumValid) {
  auto f = server_segment("250 OK\r\n", net::kTcpAck | net::kTcpPsh | net::kTcpUrg);
  net::Packet p;
  ASSERT_EQ(net::decode(f, p), net::DecodeStatus::ok);
  enforce::clear_urgent(f.data(), p);
  enforce::fix_tcp_checksum(f.data(), p);
  net::Packet r;
  ASSERT_EQ(net::decode(f, r), net::DecodeStatus::ok);
  EXPECT_EQ(r.tcp_flags, net::kTcpAck | net::kTcpPsh);
  EXPECT_EQ(f[p.l4_offset + 18], 0);
  EXPECT_EQ(f[p.l4_offset + 19], 0);
  const size_t tcp_len = p.ip_end - p.l4_offset;
  uint32_t pseudo = 0;
  for (size_t i = 0; i < 8; i += 2) pseudo += (uint32_t(f[p.l3_offset + 12 + i]) << 8) + f[p.l3_offset + 13 + i];
  pseudo += 6 + uint32_t(tcp_len);
  EXPECT_TRUE(sums_to_ones(f.data() + p.l4_offset, tcp_len, pseudo));
}
