// Held replies and injection: which TCP segments the dataplane writes, and
// at which sequence numbers, when it answers in the server's place.
//
//   client ----- [ sekisho ] --x-- server
//          <-- reply (as the server, at the server's next seq)
//                           RST --> (at the seq the server expects)
//
// Each function returns the segments to inject (at most two, in order) as
// specs for enforce::build_tcp_frame relative to the segment |p| at hand,
// and updates the flow's ServerHalf: from then on the dataplane speaks for
// the server (pipeline::Connection::Enforced is one). Payload spans point into the
// caller's reply string or static text: build the frames before it goes.
//
// Plain functions, no allocation, no clock: unit-tested without EAL.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "dataplane/enforce/tcp_inject.hpp"
#include "dataplane/hold/replies.hpp"
#include "dataplane/net/packet.hpp"

namespace sekisho::hold {

// The server's half of a flow once a verdict cut it off.
template <class T>
concept ServerHalf = requires(T& h) {
  h.active = true;            // the dataplane answers for the server
  h.server_seq = uint32_t();  // next sequence number it sends as the server
  h.closing = true;           // its FIN is sent
  h.done = true;              // the client's FIN is acknowledged
  h.held = true;              // waiting for the spool: say nothing yet
};

struct Injection {
  enforce::Towards towards;  // relative to the segment at hand
  enforce::TcpSegmentSpec spec;
};

struct Injections {
  std::array<Injection, 2> v{};
  unsigned n = 0;
  void add(enforce::Towards t, const enforce::TcpSegmentSpec& s) { v[n++] = {t, s}; }
  const Injection* begin() const { return v.data(); }
  const Injection* end() const { return v.data() + n; }
};

inline std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Drops a segment by answering both ends with an RST each accepts (RFC 5961:
// at exactly its rcv_nxt): the receiver expects p.seq; the sender expects
// what it acknowledged, p.ack (only when the segment acknowledges).
Injections reset_both(const net::Packet& p);

// The answer to the client for a held client segment |p| (|reply| at
// |server_seq|, with a FIN if |close_client|) and the reset of the server at
// the sequence number it expects. |half| (may be null: the flow is gone)
// records where the dataplane's own server sequence goes on.
template <ServerHalf H>
Injections answer_held(const net::Packet& p, uint32_t server_seq, std::string_view reply, bool close_client,
                       H* half) {
  Injections out;
  enforce::TcpSegmentSpec to_client;
  to_client.seq = server_seq;
  to_client.ack = p.seq + p.payload_len;
  to_client.flags = uint8_t(net::kTcpAck | net::kTcpPsh | (close_client ? net::kTcpFin : 0));
  to_client.payload = bytes(reply);
  out.add(enforce::Towards::sender, to_client);
  enforce::TcpSegmentSpec to_server;
  to_server.seq = p.seq;
  to_server.flags = net::kTcpRst;
  out.add(enforce::Towards::receiver, to_server);
  if (half) {
    half->active = true;
    half->server_seq = server_seq + uint32_t(reply.size()) + (close_client ? 1 : 0);
    half->closing = close_client;
  }
  return out;
}

// A desync found in a server segment |p|: the client gets |reply| in its
// place (at p.seq, acknowledging |client_next|), the server an RST at the
// client's next byte.
template <ServerHalf H>
Injections answer_desync_in_server_segment(const net::Packet& p, uint32_t client_next, std::string_view reply,
                                           H& half) {
  Injections out;
  enforce::TcpSegmentSpec to_client;
  to_client.seq = p.seq;
  to_client.ack = client_next;
  to_client.flags = net::kTcpAck | net::kTcpPsh;
  to_client.payload = bytes(reply);
  out.add(enforce::Towards::receiver, to_client);
  enforce::TcpSegmentSpec to_server;
  to_server.seq = client_next;
  to_server.flags = net::kTcpRst;
  out.add(enforce::Towards::sender, to_server);
  half.active = true;
  half.server_seq = p.seq + uint32_t(reply.size());
  return out;
}

// A flow whose server was cut off: the dataplane answers the client as the
// server would on closing (221 + FIN, then ACKs); nothing reaches the reset
// server any more. Only client segments with data or a FIN get an answer.
template <ServerHalf H>
Injections speak_for_server(const net::Packet& p, H& half, bool from_client) {
  Injections out;
  if (!from_client) return out;
  const bool fin = p.tcp_flags & net::kTcpFin;
  if (!p.payload_len && !fin) return out;
  enforce::TcpSegmentSpec spec;
  spec.seq = half.server_seq;
  spec.ack = p.seq + p.payload_len + (fin ? 1 : 0);
  if (!half.closing) {
    spec.flags = net::kTcpAck | net::kTcpPsh | net::kTcpFin;
    if (p.payload_len) spec.payload = bytes(kClosingReply);
    half.server_seq += uint32_t(spec.payload.size()) + 1;
    half.closing = true;
  } else {
    spec.flags = net::kTcpAck;
  }
  if (fin) half.done = true;
  out.add(enforce::Towards::sender, spec);
  return out;
}

}  // namespace sekisho::hold
