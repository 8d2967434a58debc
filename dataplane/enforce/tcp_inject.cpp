#include "dataplane/enforce/tcp_inject.hpp"

#include <cstring>

namespace sekisho::enforce {
namespace {

inline void wr16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v >> 8); p[1] = uint8_t(v); }
inline void wr32(uint8_t* p, uint32_t v) { wr16(p, uint16_t(v >> 16)); wr16(p + 2, uint16_t(v)); }

}  // namespace

uint32_t checksum_add(uint32_t sum, std::span<const uint8_t> b) {
  size_t i = 0;
  for (; i + 1 < b.size(); i += 2) sum += uint32_t(b[i]) << 8 | b[i + 1];
  if (i < b.size()) sum += uint32_t(b[i]) << 8;
  return sum;
}

uint16_t checksum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

size_t build_tcp_frame(std::span<const uint8_t> seen_frame, const net::Packet& seen, Towards dir,
                       const TcpSegmentSpec& spec, std::span<uint8_t> out) {
  if (seen.ip_proto != net::kProtoTcp || seen.l3 == net::L3::none || seen.fragment) return 0;
  if (spec.payload.size() > kMaxInjectPayload) return 0;
  const size_t l2 = seen.l3_offset;  // Ethernet + VLAN tags, copied
  const bool v4 = seen.l3 == net::L3::ipv4;
  const size_t l3 = v4 ? 20 : 40;
  const size_t total = l2 + l3 + 20 + spec.payload.size();
  if (l2 > seen_frame.size() || total > out.size()) return 0;
  uint8_t* f = out.data();

  // L2: keep tags; swap MACs when going back to the sender.
  std::memcpy(f, seen_frame.data(), l2);
  if (dir == Towards::sender) {
    std::memcpy(f, seen_frame.data() + 6, 6);
    std::memcpy(f + 6, seen_frame.data(), 6);
  }
  const net::IpAddr& src = dir == Towards::sender ? seen.dst : seen.src;
  const net::IpAddr& dst = dir == Towards::sender ? seen.src : seen.dst;
  const uint16_t sport = dir == Towards::sender ? seen.dport : seen.sport;
  const uint16_t dport = dir == Towards::sender ? seen.sport : seen.dport;
  const uint16_t tcp_len = uint16_t(20 + spec.payload.size());

  uint8_t* ip = f + l2;
  uint32_t pseudo = 0;
  if (v4) {
    ip[0] = 0x45;
    ip[1] = 0;
    wr16(ip + 2, uint16_t(20 + tcp_len));
    wr16(ip + 4, 0);       // id
    wr16(ip + 6, 0x4000);  // DF
    ip[8] = 64;
    ip[9] = net::kProtoTcp;
    wr16(ip + 10, 0);
    std::memcpy(ip + 12, src.data() + 12, 4);
    std::memcpy(ip + 16, dst.data() + 12, 4);
    wr16(ip + 10, checksum_fold(checksum_add(0, {ip, 20})));
    pseudo = checksum_add(pseudo, {ip + 12, 8});
  } else {
    wr32(ip, 0x60000000);
    wr16(ip + 4, tcp_len);
    ip[6] = net::kProtoTcp;
    ip[7] = 64;
    std::memcpy(ip + 8, src.data(), 16);
    std::memcpy(ip + 24, dst.data(), 16);
    pseudo = checksum_add(pseudo, {ip + 8, 32});
  }
  pseudo += net::kProtoTcp;
  pseudo += tcp_len;

  uint8_t* t = ip + l3;
  wr16(t, sport);
  wr16(t + 2, dport);
  wr32(t + 4, spec.seq);
  wr32(t + 8, spec.ack);
  t[12] = 0x50;
  t[13] = spec.flags;
  uint16_t window = spec.window ? spec.window : seen.window;
  wr16(t + 14, window);
  wr16(t + 16, 0);
  wr16(t + 18, 0);
  if (!spec.payload.empty()) std::memcpy(t + 20, spec.payload.data(), spec.payload.size());
  wr16(t + 16, checksum_fold(checksum_add(pseudo, {t, tcp_len})));
  return total;
}

}  // namespace sekisho::enforce
