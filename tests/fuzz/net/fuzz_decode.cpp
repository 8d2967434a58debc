// libFuzzer target: packet decode, the symmetric hash and the reply/RST
// builder on arbitrary frames. Invariants checked: offsets stay inside the
// frame, both directions of a decoded flow hash alike, built frames decode.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "dataplane/enforce/tcp_inject.hpp"
#include "dataplane/net/packet.hpp"

using namespace sekisho;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> frame(data, data + size);  // exact-size copy: ASan sees overreads
  net::Packet p;
  net::DecodeStatus st = net::decode(frame, p);
  if (st == net::DecodeStatus::ok) {
    if (p.payload_offset + p.payload_len > size || p.ip_end > size) abort();
    net::FlowRef r = net::flow_ref(p);
    net::Packet q = p;
    std::swap(q.src, q.dst);
    std::swap(q.sport, q.dport);
    if (net::symmetric_hash(net::flow_ref(q).key) != net::symmetric_hash(r.key)) abort();
    if (p.ip_proto == net::kProtoTcp) {
      uint8_t out[enforce::kMaxInjectFrame];
      enforce::TcpSegmentSpec spec;
      spec.seq = p.ack;
      spec.ack = p.seq + p.payload_len;
      static const uint8_t reply[] = "550 5.7.1 no\r\n";
      spec.payload = {reply, sizeof reply - 1};
      size_t n = enforce::build_tcp_frame(frame, p, enforce::Towards::sender, spec, out);
      if (n) {
        net::Packet b;
        if (net::decode({out, n}, b) != net::DecodeStatus::ok || b.sport != p.dport || b.payload_len != spec.payload.size())
          abort();
      }
    }
  }
  (void)net::symmetric_hash_frame(frame, p, st);
  return 0;
}
