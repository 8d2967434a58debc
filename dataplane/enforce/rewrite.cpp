#include "dataplane/enforce/rewrite.hpp"

#include <cstring>

#include "dataplane/enforce/tcp_inject.hpp"

namespace sekisho::enforce {

bool mask_starttls(std::span<uint8_t> payload) {
  static const char kKey[] = "STARTTLS";
  bool masked = false;
  for (size_t i = 4; i + 8 <= payload.size(); ++i) {
    if ((payload[i] | 0x20) != 's') continue;
    bool match = true;
    for (size_t k = 0; k < 8 && match; ++k) match = (payload[i + k] & 0xdf) == uint8_t(kKey[k]);
    if (!match) continue;
    const uint8_t* pre = payload.data() + i - 4;
    if (pre[0] == '2' && pre[1] == '5' && pre[2] == '0' && (pre[3] == '-' || pre[3] == ' ') &&
        (i + 8 == payload.size() || payload[i + 8] == '\r' || payload[i + 8] == '\n' || payload[i + 8] == ' ')) {
      std::memset(payload.data() + i, 'X', 8);
      masked = true;
    }
  }
  return masked;
}

void clear_urgent(uint8_t* frame, const net::Packet& p) {
  uint8_t* tcp = frame + p.l4_offset;
  tcp[13] = uint8_t(tcp[13] & ~net::kTcpUrg);
  tcp[18] = tcp[19] = 0;
}

void fix_tcp_checksum(uint8_t* frame, const net::Packet& p) {
  uint8_t* t = frame + p.l4_offset;
  const uint32_t tcp_len = p.ip_end - p.l4_offset;
  t[16] = t[17] = 0;
  uint32_t sum = 0;
  if (p.l3 == net::L3::ipv4) sum = checksum_add(sum, {frame + p.l3_offset + 12, 8});
  else sum = checksum_add(sum, {frame + p.l3_offset + 8, 32});
  sum += net::kProtoTcp + tcp_len;
  uint16_t c = checksum_fold(checksum_add(sum, {t, tcp_len}));
  t[16] = uint8_t(c >> 8);
  t[17] = uint8_t(c);
}

}  // namespace sekisho::enforce
