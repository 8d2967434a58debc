// Frames the dataplane writes itself: the SMTP reply it injects towards the
// client and the RST it sends to the server when a verdict is enforced.
//
// Both are built from a frame the dataplane has seen on the flow (usually
// the held end-of-data segment): L2 (MACs and VLAN tags) and addresses are
// taken from it, reversed when the new frame goes back to its sender. IPv4
// and IPv6 headers are written fresh (no options, no extension headers),
// TCP with a 20-byte header; every checksum is computed.
//
// No allocation, no exceptions; |out| must hold the frame (kMaxInjectFrame
// is always enough for a payload of kMaxInjectPayload bytes).
// Returns the frame length, or 0 if |seen| is not a decoded TCP packet or
// the payload does not fit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "dataplane/net/packet.hpp"

namespace sekisho::enforce {

inline constexpr size_t kMaxInjectPayload = 512;
inline constexpr size_t kMaxInjectFrame = 14 + 8 + 40 + 20 + kMaxInjectPayload;

enum class Towards : uint8_t {
  sender,    // back to whoever sent |seen| (e.g. the reply to the client)
  receiver,  // on to whoever |seen| was going to (e.g. the RST to the server)
};

struct TcpSegmentSpec {
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t flags = net::kTcpAck;
  uint16_t window = 0;  // 0: copy the window of |seen|
  std::span<const uint8_t> payload;
};

size_t build_tcp_frame(std::span<const uint8_t> seen_frame, const net::Packet& seen, Towards dir,
                       const TcpSegmentSpec& spec, std::span<uint8_t> out);

// RFC 1071 one's-complement sum helpers (exposed for tests and the normaliser).
uint32_t checksum_add(uint32_t sum, std::span<const uint8_t> bytes);
uint16_t checksum_fold(uint32_t sum);

}  // namespace sekisho::enforce
