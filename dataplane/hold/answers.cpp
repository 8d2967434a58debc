#include "dataplane/hold/answers.hpp"

namespace sekisho::hold {

Injections reset_both(const net::Packet& p) {
  Injections out;
  enforce::TcpSegmentSpec to_receiver;
  to_receiver.seq = p.seq;
  to_receiver.flags = net::kTcpRst;
  out.add(enforce::Towards::receiver, to_receiver);
  if (p.tcp_flags & net::kTcpAck) {
    enforce::TcpSegmentSpec to_sender;
    to_sender.seq = p.ack;
    to_sender.flags = net::kTcpRst;
    out.add(enforce::Towards::sender, to_sender);
  }
  return out;
}

}  // namespace sekisho::hold
