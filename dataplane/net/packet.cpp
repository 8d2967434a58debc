#include "dataplane/net/packet.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace sekisho::net {
namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86DD;
constexpr uint16_t kEthVlan = 0x8100;
constexpr uint16_t kEthQinQ = 0x88A8;
constexpr uint16_t kEthQinQOld = 0x9100;
constexpr int kMaxIpv6ExtHeaders = 8;

inline uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline uint32_t rd32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

const char* const kNames[] = {
#define X(name, text) #name,
#include "dataplane/net/decode_errors.def"
#undef X
};
const char* const kTexts[] = {
#define X(name, text) text,
#include "dataplane/net/decode_errors.def"
#undef X
};

void parse_tcp_options(const uint8_t* opt, size_t len, Packet& out) {
  size_t i = 0;
  while (i < len) {
    uint8_t kind = opt[i];
    if (kind == 0) break;        // end of option list
    if (kind == 1) { ++i; continue; }  // NOP
    if (i + 1 >= len) break;
    uint8_t olen = opt[i + 1];
    if (olen < 2 || i + olen > len) break;  // malformed: stop, keep what we have
    if (kind == 2 && olen == 4) out.mss = rd16(opt + i + 2);
    else if (kind == 3 && olen == 3) out.wscale = std::min<uint8_t>(opt[i + 2], 14);
    else if (kind == 4 && olen == 2) out.sack_permitted = true;
    i += olen;
  }
}

DecodeStatus decode_l4(const uint8_t* f, size_t l4, size_t ip_end, Packet& out) {
  out.l4_offset = uint16_t(l4);
  if (out.ip_proto == kProtoTcp) {
    if (ip_end < l4 + 20) return DecodeStatus::tcp_truncated;
    const uint8_t* t = f + l4;
    size_t doff = size_t(t[12] >> 4) * 4;
    if (doff < 20 || l4 + doff > ip_end) return DecodeStatus::tcp_truncated;
    out.sport = rd16(t);
    out.dport = rd16(t + 2);
    out.seq = rd32(t + 4);
    out.ack = rd32(t + 8);
    out.tcp_flags = t[13];
    out.window = rd16(t + 14);
    parse_tcp_options(t + 20, doff - 20, out);
    out.payload_offset = uint16_t(l4 + doff);
    out.payload_len = uint32_t(ip_end - l4 - doff);
  } else if (out.ip_proto == kProtoUdp) {
    if (ip_end < l4 + 8) return DecodeStatus::udp_truncated;
    out.sport = rd16(f + l4);
    out.dport = rd16(f + l4 + 2);
    out.payload_offset = uint16_t(l4 + 8);
    out.payload_len = uint32_t(ip_end - l4 - 8);
  } else {
    out.payload_offset = uint16_t(l4);
    out.payload_len = uint32_t(ip_end - l4);
  }
  return DecodeStatus::ok;
}

}  // namespace

const char* decode_status_name(DecodeStatus s) {
  return size_t(s) < kDecodeStatusCount ? kNames[size_t(s)] : "unknown";
}
const char* decode_status_text(DecodeStatus s) {
  return size_t(s) < kDecodeStatusCount ? kTexts[size_t(s)] : "unknown";
}

DecodeStatus decode(std::span<const uint8_t> frame, Packet& out) {
  out = Packet{};
  const uint8_t* f = frame.data();
  const size_t n = frame.size();
  if (n < 14) return DecodeStatus::runt;
  size_t off = 12;
  uint16_t type = rd16(f + off);
  off += 2;
  // 802.1ad / 802.1Q, at most two tags (QinQ).
  while (type == kEthVlan || type == kEthQinQ || type == kEthQinQOld) {
    if (out.vlan_depth == 2) return DecodeStatus::vlan_too_deep;
    if (n < off + 4) return DecodeStatus::vlan_truncated;
    out.vlan_id[out.vlan_depth++] = rd16(f + off) & 0x0fff;
    type = rd16(f + off + 2);
    off += 4;
  }
  out.l3_offset = uint16_t(off);

  if (type == kEthIpv4) {
    if (n < off + 20) return DecodeStatus::ipv4_truncated;
    const uint8_t* ip = f + off;
    if ((ip[0] >> 4) != 4) return DecodeStatus::ipv4_version;
    size_t ihl = size_t(ip[0] & 0x0f) * 4;
    if (ihl < 20 || n < off + ihl) return DecodeStatus::ipv4_truncated;
    size_t total = rd16(ip + 2);
    if (total < ihl || off + total > n) return DecodeStatus::ipv4_bad_length;
    out.l3 = L3::ipv4;
    out.ip_proto = ip[9];
    out.src = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ip[12], ip[13], ip[14], ip[15]};
    out.dst = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ip[16], ip[17], ip[18], ip[19]};
    out.ip_end = uint32_t(off + total);
    uint16_t frag = rd16(ip + 6);
    if ((frag & 0x2000) || (frag & 0x1fff)) {  // MF or offset
      out.fragment = true;
      out.l4_offset = uint16_t(off + ihl);
      return DecodeStatus::ip_fragment;
    }
    return decode_l4(f, off + ihl, off + total, out);
  }

  if (type == kEthIpv6) {
    if (n < off + 40) return DecodeStatus::ipv6_truncated;
    const uint8_t* ip = f + off;
    if ((ip[0] >> 4) != 6) return DecodeStatus::ipv4_version;
    size_t plen = rd16(ip + 4);
    if (off + 40 + plen > n) return DecodeStatus::ipv6_truncated;
    out.l3 = L3::ipv6;
    std::memcpy(out.src.data(), ip + 8, 16);
    std::memcpy(out.dst.data(), ip + 24, 16);
    size_t end = off + 40 + plen;
    out.ip_end = uint32_t(end);
    uint8_t next = ip[6];
    size_t p = off + 40;
    for (int i = 0;; ++i) {
      if (i > kMaxIpv6ExtHeaders) return DecodeStatus::ipv6_ext_chain;
      if (next == 0 || next == 43 || next == 60 || next == 135 || next == 139 || next == 140) {
        // Hop-by-hop, routing, destination options, mobility, HIP, shim6: (len+1)*8.
        if (p + 8 > end) return DecodeStatus::ipv6_truncated;
        size_t hl = (size_t(f[p + 1]) + 1) * 8;
        if (p + hl > end) return DecodeStatus::ipv6_truncated;
        next = f[p];
        p += hl;
      } else if (next == 44) {  // fragment
        if (p + 8 > end) return DecodeStatus::ipv6_truncated;
        uint16_t fo = rd16(f + p + 2);
        out.ip_proto = f[p];
        if ((fo & 0xfff8) || (fo & 1)) {
          out.fragment = true;
          out.l4_offset = uint16_t(p + 8);
          return DecodeStatus::ip_fragment;
        }
        next = f[p];  // atomic fragment: go on
        p += 8;
      } else if (next == 51) {  // AH: (len+2)*4
        if (p + 8 > end) return DecodeStatus::ipv6_truncated;
        size_t hl = (size_t(f[p + 1]) + 2) * 4;
        if (p + hl > end) return DecodeStatus::ipv6_truncated;
        next = f[p];
        p += hl;
      } else {
        break;
      }
    }
    out.ip_proto = next;
    return decode_l4(f, p, end, out);
  }
  // PPPoE session, MPLS unicast/multicast, 802.1ah: IP may be inside.
  if (type == 0x8864 || type == 0x8847 || type == 0x8848 || type == 0x88e7) return DecodeStatus::encapsulated;
  return DecodeStatus::non_ip;
}

FlowRef flow_ref(const Packet& p) {
  FlowRef r;
  r.key.proto = p.ip_proto;
  int c = std::memcmp(p.src.data(), p.dst.data(), 16);
  bool src_low = c < 0 || (c == 0 && p.sport <= p.dport);
  r.src_is_a = src_low;
  if (src_low) {
    r.key.a = p.src; r.key.pa = p.sport; r.key.b = p.dst; r.key.pb = p.dport;
  } else {
    r.key.a = p.dst; r.key.pa = p.dport; r.key.b = p.src; r.key.pb = p.sport;
  }
  return r;
}

namespace {
// murmur3 finalizer-based mixing; the key is already direction-free.
inline uint64_t mix(uint64_t h) {
  h ^= h >> 33; h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}
inline uint64_t load64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
}  // namespace

uint32_t symmetric_hash(const FlowKey& k) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ k.proto;
  h = mix(h ^ load64(k.a.data()));
  h = mix(h ^ load64(k.a.data() + 8));
  h = mix(h ^ load64(k.b.data()));
  h = mix(h ^ load64(k.b.data() + 8));
  h = mix(h ^ (uint64_t(k.pa) << 16 | k.pb));
  return uint32_t(h ^ (h >> 32));
}

uint32_t symmetric_hash_frame(std::span<const uint8_t> frame, const Packet& p, DecodeStatus st) {
  if (p.l3 != L3::none && (st == DecodeStatus::ok || st == DecodeStatus::ip_fragment)) {
    Packet q = p;
    if (st == DecodeStatus::ip_fragment) q.sport = q.dport = 0;  // fragments carry no ports
    return symmetric_hash(flow_ref(q).key);
  }
  if (frame.size() < 12) return 0;
  // Non-IP: MAC pair, ordered so both directions agree.
  uint64_t m1 = 0, m2 = 0;
  std::memcpy(&m1, frame.data(), 6);
  std::memcpy(&m2, frame.data() + 6, 6);
  if (m1 > m2) std::swap(m1, m2);
  uint64_t h = mix(mix(m1) ^ m2);
  return uint32_t(h ^ (h >> 32));
}

std::string format_ip(const IpAddr& a, L3 family) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == L3::ipv4) inet_ntop(AF_INET, a.data() + 12, buf, sizeof buf);
  else inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
  return buf;
}

std::string format_endpoint(const IpAddr& a, uint16_t port, L3 family) {
  if (family == L3::ipv6) return "[" + format_ip(a, family) + "]:" + std::to_string(port);
  return format_ip(a, family) + ":" + std::to_string(port);
}

}  // namespace sekisho::net
