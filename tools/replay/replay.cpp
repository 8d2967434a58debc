// sekisho-replay: runs the dataplane's stream engines (decode, TCP
// reassembly, SMTP) over a capture and prints JSON lines: one object per
// message ("type":"message") and one per session ("type":"session"), then
// a summary object ("type":"summary").
//
//   sekisho-replay [--smtp-port N ...] FILE.pcap|FILE.pcapng
//
// Without --smtp-port every TCP flow is followed and reported if it speaks
// SMTP. Exit: 0 done (even if the capture was cut short: reported in the
// summary), 1 unreadable capture or unsupported link type, 2 usage.
#include <openssl/evp.h>
#include <pcap/pcap.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/packet.hpp"
#include "smtp/smtp_session.hpp"
#include "tcp/flow_table.hpp"
#include "tcp/tcp_stream.hpp"

using nlohmann::json;
using namespace sekisho;

namespace {

std::string iso_time(double ts) {
  time_t s = time_t(ts);
  struct tm tm;
  gmtime_r(&s, &tm);
  char buf[64];
  int us = int((ts - double(s)) * 1e6);
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, us);
  return buf;
}

std::string hex(const unsigned char* d, unsigned n) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s.push_back(k[d[i] >> 4]);
    s.push_back(k[d[i] & 15]);
  }
  return s;
}

struct Replay;

// One followed connection: TCP engine -> SMTP engine -> this sink.
struct Flow : tcp::StreamSink, smtp::MessageSink {
  Replay* r = nullptr;
  tcp::TcpFlow tcp;
  std::optional<smtp::SmtpSession> smtp;
  std::string client, server;  // "ip:port"
  double first_ts = 0;
  EVP_MD_CTX* sha = nullptr;
  uint64_t gaps = 0;
  bool reported = false;

  Flow() = default;
  Flow(const Flow&) {}  // slots are constructed once; never copied with state
  Flow& operator=(const Flow&) { return *this; }
  ~Flow() { if (sha) EVP_MD_CTX_free(sha); }

  void on_data(bool from_client, std::span<const uint8_t> b) override {
    from_client ? smtp->on_client(b) : smtp->on_server(b);
  }
  void on_gap(bool from_client, uint64_t len) override {
    ++gaps;
    smtp->on_gap(from_client, len);
  }
  void on_close() override;
  void on_message_begin(const smtp::SessionFacts&, const smtp::Transaction&) override {
    if (!sha) sha = EVP_MD_CTX_new();
    EVP_DigestInit_ex(sha, EVP_sha256(), nullptr);
  }
  void on_body(std::span<const uint8_t> b) override { EVP_DigestUpdate(sha, b.data(), b.size()); }
  void on_transaction_done(const smtp::SessionFacts& f, const smtp::Transaction& t) override;
};

struct Replay {
  double now = 0;
  uint64_t messages = 0, sessions = 0;
  tcp::Limits limits;
  std::unique_ptr<tcp::BufferPool> pool;
  tcp::EventCounters ev{};

  void emit(const json& j) { std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n"; }
};

void Flow::on_transaction_done(const smtp::SessionFacts& f, const smtp::Transaction& t) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (sha) EVP_DigestFinal_ex(sha, md, &n);
  json j;
  j["type"] = "message";
  j["ts"] = iso_time(r->now);
  j["src"] = client;
  j["dst"] = server;
  j["helo"] = f.helo;
  j["mail_from"] = t.mail_from;
  j["rcpt_to"] = t.rcpt_to;
  j["rcpt_refused"] = t.rcpt_refused;
  j["tls"] = f.tls;
  j["auth"] = f.auth_mechanism.empty() ? json(nullptr) : json(f.auth_mechanism);
  j["size"] = t.body_bytes;
  j["sha256"] = n ? json(hex(md, n)) : json(nullptr);
  j["server_reply"] = t.final_reply ? json(t.final_reply) : json(nullptr);
  j["body_via"] = t.body_via == smtp::BodyVia::bdat ? "BDAT" : "DATA";
  j["complete"] = t.complete;
  j["gap"] = t.gap;
  r->emit(j);
  ++r->messages;
}

void Flow::on_close() {
  if (reported || !smtp) return;
  smtp->on_close();
  reported = true;
  const auto& f = smtp->facts();
  if (f.greeting.empty() && f.commands == 0) return;  // not SMTP
  json j;
  j["type"] = "session";
  j["ts"] = iso_time(first_ts);
  j["end"] = iso_time(r->now);
  j["src"] = client;
  j["dst"] = server;
  j["helo"] = f.helo;
  j["greeting"] = f.greeting;
  j["capabilities"] = f.capabilities;
  j["tls"] = f.tls;
  j["auth"] = f.auth_mechanism.empty() ? json(nullptr) : json(f.auth_mechanism);
  j["commands"] = f.commands;
  j["messages"] = f.transactions;
  j["gaps"] = gaps;
  json an = json::object();
  for (size_t i = 0; i < smtp::kAnomalyCount; ++i)
    if (f.anomalies[i]) an[smtp::anomaly_name(smtp::Anomaly(i))] = f.anomalies[i];
  j["anomalies"] = an;
  r->emit(j);
  ++r->sessions;
}

// Link types other than Ethernet get a synthetic Ethernet header.
bool to_ethernet(int dlt, const uint8_t* d, size_t n, std::vector<uint8_t>& out) {
  auto make = [&](uint16_t type, const uint8_t* l3, size_t len) {
    out.assign(14 + len, 0);
    out[12] = uint8_t(type >> 8);
    out[13] = uint8_t(type);
    std::memcpy(out.data() + 14, l3, len);
    return true;
  };
  auto by_version = [&](const uint8_t* l3, size_t len) {
    if (len < 1) return false;
    return make((l3[0] >> 4) == 6 ? 0x86DD : 0x0800, l3, len);
  };
  switch (dlt) {
    case DLT_EN10MB:
      out.assign(d, d + n);
      return true;
    case DLT_LINUX_SLL:
      if (n < 16) return false;
      return make(uint16_t(d[14] << 8 | d[15]), d + 16, n - 16);
    case DLT_RAW:   // 12 on most systems
    case 14:        // DLT_RAW on OpenBSD
    case 101:       // LINKTYPE_RAW in files
      return by_version(d, n);
    case DLT_NULL:
    case DLT_LOOP:
      if (n < 4) return false;
      return by_version(d + 4, n - 4);
    default:
      return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::set<uint16_t> ports;
  const char* file = nullptr;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--smtp-port" && i + 1 < argc) ports.insert(uint16_t(std::atoi(argv[++i])));
    else if (a == "-h" || a == "--help") {
      std::cerr << "usage: sekisho-replay [--smtp-port N ...] FILE.pcap|FILE.pcapng\n";
      return 0;
    } else if (!file) file = argv[i];
    else {
      std::cerr << "sekisho-replay: unexpected argument '" << a << "'\n";
      return 2;
    }
  }
  if (!file) {
    std::cerr << "usage: sekisho-replay [--smtp-port N ...] FILE.pcap|FILE.pcapng\n";
    return 2;
  }
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* pc = pcap_open_offline(file, err);
  if (!pc) {
    std::cerr << "sekisho-replay: " << file << ": " << err << "\n";
    return 1;
  }
  int dlt = pcap_datalink(pc);
  if (dlt != DLT_EN10MB && dlt != DLT_LINUX_SLL && dlt != DLT_RAW && dlt != 14 && dlt != 101 && dlt != DLT_NULL &&
      dlt != DLT_LOOP) {
    std::cerr << "sekisho-replay: " << file << ": unsupported link type " << dlt << " ("
              << (pcap_datalink_val_to_name(dlt) ? pcap_datalink_val_to_name(dlt) : "?") << ")\n";
    pcap_close(pc);
    return 1;
  }

  Replay r;
  r.limits.retain_delivered = false;  // offline: nothing is forwarded, nothing to normalise
  r.limits.buffer_bytes = 1u << 20;
  r.limits.cap = tcp::CapPolicy::fail_open;
  r.pool = std::make_unique<tcp::BufferPool>(r.limits.buffer_bytes, 4096);
  auto table = std::make_unique<tcp::FlowTable<Flow>>(1u << 16);
  std::vector<uint8_t> frame;
  uint64_t packets = 0, decode_errors = 0, skipped_frames = 0, table_full = 0;
  std::string read_error;

  auto finish_flow = [&](tcp::FlowTable<Flow>::Slot& s) {
    s.value.tcp.close(r.ev);
    s.value.on_close();
    table->erase(&s);
  };

  pcap_pkthdr* h;
  const u_char* data;
  int rc;
  while ((rc = pcap_next_ex(pc, &h, &data)) >= 0) {
    if (rc == 0) continue;
    ++packets;
    r.now = double(h->ts.tv_sec) + double(h->ts.tv_usec) / 1e6;
    if (!to_ethernet(dlt, data, h->caplen, frame)) {
      ++skipped_frames;
      continue;
    }
    net::Packet p;
    net::DecodeStatus st = net::decode(frame, p);
    if (st != net::DecodeStatus::ok) {
      if (st != net::DecodeStatus::non_ip) ++decode_errors;
      continue;
    }
    if (p.ip_proto != net::kProtoTcp) continue;
    if (!ports.empty() && !ports.count(p.sport) && !ports.count(p.dport)) continue;
    net::FlowRef ref = net::flow_ref(p);
    uint32_t hash = net::symmetric_hash(ref.key);
    bool created = false;
    bool syn = p.tcp_flags & net::kTcpSyn;
    auto* slot = table->find(ref.key, hash, true, created);
    if (!slot) {
      ++table_full;
      continue;
    }
    Flow& f = slot->value;
    if (!created && syn && !(p.tcp_flags & net::kTcpAck) && f.tcp.state() == tcp::TcpFlow::State::closed) {
      // Port reuse: a new connection on a finished flow's key.
      f.on_close();
      created = true;
    }
    if (created) {
      f.r = &r;
      f.reported = false;
      f.gaps = 0;
      f.first_ts = r.now;
      f.tcp.reset(&r.limits, r.pool.get(), &f);
      f.smtp.emplace(&f);
      f.client.clear();
    }
    std::span<uint8_t> payload(frame.data() + p.payload_offset, p.payload_len);
    f.tcp.on_segment(ref.src_is_a, p, payload, r.ev);
    if (f.client.empty() && f.tcp.state() != tcp::TcpFlow::State::none) {
      bool client_is_src = f.tcp.client_is_a() == ref.src_is_a;
      f.client = client_is_src ? net::format_endpoint(p.src, p.sport, p.l3) : net::format_endpoint(p.dst, p.dport, p.l3);
      f.server = client_is_src ? net::format_endpoint(p.dst, p.dport, p.l3) : net::format_endpoint(p.src, p.sport, p.l3);
    }
    if (f.tcp.state() == tcp::TcpFlow::State::closed && !f.reported) f.on_close();
  }
  if (rc == -1) read_error = pcap_geterr(pc);
  table->for_each([&](tcp::FlowTable<Flow>::Slot& s) { finish_flow(s); });
  pcap_close(pc);

  json sum;
  sum["type"] = "summary";
  sum["file"] = file;
  sum["packets"] = packets;
  sum["messages"] = r.messages;
  sum["sessions"] = r.sessions;
  sum["decode_errors"] = decode_errors;
  sum["skipped_frames"] = skipped_frames;
  sum["flow_table_full"] = table_full;
  json ev = json::object();
  for (size_t i = 0; i < tcp::kEventCount; ++i)
    if (r.ev[i]) ev[tcp::event_name(tcp::Event(i))] = r.ev[i];
  sum["tcp"] = ev;
  if (!read_error.empty()) {
    sum["read_error"] = read_error;
    std::cerr << "sekisho-replay: " << file << ": capture cut short: " << read_error << "\n";
  }
  r.emit(sum);
  return 0;
}
