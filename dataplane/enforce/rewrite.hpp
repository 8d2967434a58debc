// In-place rewrites of a segment the dataplane forwards: the STARTTLS
// capability masked with same-length bytes, URG cleared, and the TCP
// checksum recomputed after either (or after the TCP engine normalised the
// payload).
//
// Plain functions over the frame bytes: no allocation, no exceptions,
// callable from any thread on a frame it owns.
#pragma once

#include <cstdint>
#include <span>

#include "dataplane/net/packet.hpp"

namespace sekisho::enforce {

// Masks the STARTTLS keyword of an EHLO reply in a server segment's payload
// with same-length bytes ("250-STARTTLS" -> "250-XXXXXXXX"), so the client
// never asks for TLS. The worker does it before the TCP engine sees the
// segment: the retained copy holds the masked bytes, so a retransmission is
// masked alike. A keyword split across two segments is not masked (the
// session then shows up as encrypted in the counters). Returns whether
// anything was masked.
bool mask_starttls(std::span<uint8_t> payload);

// Clears URG and the urgent pointer of the TCP header of |p| in |frame| (the
// caller fixes the checksum).
void clear_urgent(uint8_t* frame, const net::Packet& p);

// Recomputes the TCP checksum of |p| in |frame| after its header or payload
// was rewritten in place.
void fix_tcp_checksum(uint8_t* frame, const net::Packet& p);

}  // namespace sekisho::enforce
