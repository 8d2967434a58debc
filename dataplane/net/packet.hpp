// Packet decode from a plain byte span: Ethernet, 802.1Q/QinQ, IPv4, IPv6
// with extension headers, TCP and UDP. No DPDK, no allocation: runs the same
// in workers, tests, fuzzers and sekisho-replay.
//
// Thread-safety: all functions are pure; callers own their Packet.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace sekisho::net {

enum class DecodeStatus : uint8_t {
#define X(name, text) name,
#include "dataplane/net/decode_errors.def"
#undef X
};
inline constexpr size_t kDecodeStatusCount = 0
#define X(name, text) +1
#include "dataplane/net/decode_errors.def"
#undef X
    ;
const char* decode_status_name(DecodeStatus s);
const char* decode_status_text(DecodeStatus s);

enum class L3 : uint8_t { none = 0, ipv4 = 4, ipv6 = 6 };

inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoIcmp6 = 58;

// TCP flag bits as on the wire.
inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04,
                         kTcpPsh = 0x08, kTcpAck = 0x10, kTcpUrg = 0x20;

// One address: IPv4 is stored as ::ffff:a.b.c.d so both families compare alike.
using IpAddr = std::array<uint8_t, 16>;

struct Packet {
  L3 l3 = L3::none;
  uint8_t ip_proto = 0;       // upper-layer protocol after extension headers
  uint8_t vlan_depth = 0;
  bool fragment = false;      // IPv4 MF/offset or IPv6 fragment header
  uint16_t vlan_id[2] = {0, 0};
  uint16_t l3_offset = 0;     // from frame start
  uint16_t l4_offset = 0;
  uint16_t payload_offset = 0;
  uint32_t payload_len = 0;   // L4 payload bytes inside the IP datagram
  uint32_t ip_end = 0;        // frame offset where the IP datagram ends (padding follows)
  IpAddr src{}, dst{};
  uint16_t sport = 0, dport = 0;
  // TCP only
  uint32_t seq = 0, ack = 0;
  uint16_t window = 0;
  uint8_t tcp_flags = 0;
  uint8_t wscale = 0xff;      // 0xff: option absent
  uint16_t mss = 0;
  bool sack_permitted = false;
};

// Decodes |frame|. On any status other than ok/ip_fragment the Packet holds
// what was decoded before the problem; the caller counts the status.
DecodeStatus decode(std::span<const uint8_t> frame, Packet& out);

// A direction-free flow key: the same value for both directions of a
// connection. |lower_is_src| tells which endpoint was the packet's source.
struct FlowKey {
  IpAddr a{}, b{};     // a <= b (address, then port)
  uint16_t pa = 0, pb = 0;
  uint8_t proto = 0;
  uint8_t pad[3] = {0, 0, 0};
  bool operator==(const FlowKey&) const = default;
};

struct FlowRef {
  FlowKey key;
  bool src_is_a = true;  // packet travels a -> b
};

FlowRef flow_ref(const Packet& p);

// Symmetric 32-bit hash of the 5-tuple: equal for both directions of a flow.
// Non-IP frames hash their MAC pair the same way. Used by the dataplane's
// software dispatch and by the flow table, so both agree.
uint32_t symmetric_hash(const FlowKey& k);
uint32_t symmetric_hash_frame(std::span<const uint8_t> frame, const Packet& p, DecodeStatus st);

std::string format_ip(const IpAddr& a, L3 family);
std::string format_endpoint(const IpAddr& a, uint16_t port, L3 family);  // "ip:port", "[v6]:port"

}  // namespace sekisho::net
