// sekisho-replay: runs the dataplane's stream engines (decode, TCP
// reassembly, SMTP) over a capture and prints JSON lines: one object per
// message ("type":"message") and one per session ("type":"session"), then
// a summary object ("type":"summary").
//
//   sekisho-replay [--smtp-port N ...] [--inline [--conflict drop]
//                  [--forwarded OUT.pcap]] FILE.pcap|FILE.pcapng
//
// Without --smtp-port every TCP flow is followed and reported if it speaks
// SMTP. --inline runs the TCP engine as the dataplane does (bytes retained
// until acknowledged, conflicting retransmissions/overlaps rewritten, or
// dropped with --conflict drop); --forwarded writes the frames as the
// dataplane would forward them (Ethernet, rewritten payloads, dropped
// frames left out; checksums are not recomputed) so a test can reassemble
// what the server would have received. Exit: 0 done (even if the capture was cut short: reported in the
// summary), 1 unreadable capture or unsupported link type, 2 usage.
#include <pcap/pcap.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dataplane/net/packet.hpp"
#include "scanners/match/match.hpp"
#include "dataplane/smtp/content_policy.hpp"
#include "dataplane/smtp/smtp_flow.hpp"
#include "dataplane/tcp/flow_table.hpp"
#include "dataplane/tcp/tcp_stream.hpp"

using nlohmann::json;
using namespace sekisho;

namespace {

// Prints the engines' events as JSON lines.
struct Printer : smtp::FlowEvents {
  uint64_t messages = 0, sessions = 0;
  // --rules: the content verdict of every message, as the dataplane decides it.
  const match::Ruleset* rules = nullptr;
  match::Scratch* scratch = nullptr;
  uint64_t verdicts[5] = {};  // pass, tag, quarantine, reject, tempfail
  smtp::Action on_message_end(smtp::MessageRecord& m) override {
    if (!rules || !scratch) return smtp::Action::pass;
    smtp::ContentScan c = smtp::scan_content(*rules, *scratch, m);
    ++verdicts[c.action == smtp::Action::tempfail     ? 4
               : c.action == smtp::Action::reject     ? 3
               : c.action == smtp::Action::quarantine ? 2
               : c.tagged                             ? 1
                                                      : 0];
    // Offline nothing is held: the verdict is reported, the message was delivered as captured.
    return c.action;
  }
  static void emit(const json& j) { std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n"; }
  void on_message(const smtp::MessageRecord& m) override {
    emit(smtp::message_json(m));
    ++messages;
  }
  void on_session(const smtp::SessionRecord& s) override {
    emit(smtp::session_json(s));
    ++sessions;
  }
};

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

constexpr const char* kUsage =
    "usage: sekisho-replay [--smtp-port N ...] [--rules ARTIFACT] [--inline [--conflict drop] [--forwarded OUT.pcap]] "
    "FILE.pcap|FILE.pcapng\n";

int main(int argc, char** argv) {
  std::set<uint16_t> ports;
  const char* file = nullptr;
  const char* forwarded_file = nullptr;
  const char* rules_file = nullptr;
  bool inline_mode = false, conflict_drop = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--smtp-port" && i + 1 < argc) ports.insert(uint16_t(std::atoi(argv[++i])));
    else if (a == "--inline") inline_mode = true;
    else if (a == "--rules" && i + 1 < argc) rules_file = argv[++i];
    else if (a == "--conflict" && i + 1 < argc && std::string(argv[i + 1]) == "drop") {
      conflict_drop = true;
      ++i;
    } else if (a == "--forwarded" && i + 1 < argc) forwarded_file = argv[++i];
    else if (a == "-h" || a == "--help") {
      std::cerr << kUsage;
      return 0;
    } else if (!file) file = argv[i];
    else {
      std::cerr << "sekisho-replay: unexpected argument '" << a << "'\n";
      return 2;
    }
  }
  if (!file) {
    std::cerr << kUsage;
    return 2;
  }
  std::unique_ptr<match::Ruleset> ruleset;
  std::unique_ptr<match::Scratch> scratch;
  static const mime::CollectLimits kCollect;
  if (rules_file) {
    std::string error;
    ruleset = match::Ruleset::load(rules_file, error);
    if (!ruleset) {
      std::cerr << "sekisho-replay: " << rules_file << ": " << error << "\n";
      return 2;
    }
    scratch = std::make_unique<match::Scratch>(*ruleset);
    if (!scratch->ok()) {
      std::cerr << "sekisho-replay: " << rules_file << ": cannot allocate Hyperscan scratch\n";
      return 2;
    }
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

  Printer out;
  out.rules = ruleset.get();
  out.scratch = scratch.get();
  tcp::Limits limits;
  limits.retain_delivered = inline_mode;  // offline: nothing is forwarded, nothing to normalise
  limits.buffer_bytes = 1u << 20;
  limits.cap = inline_mode ? tcp::CapPolicy::fail_closed : tcp::CapPolicy::fail_open;
  limits.conflict = conflict_drop ? tcp::ConflictPolicy::drop : tcp::ConflictPolicy::rewrite;
  pcap_t* dead = nullptr;
  pcap_dumper_t* forwarded = nullptr;
  if (forwarded_file) {
    dead = pcap_open_dead(DLT_EN10MB, 262144);
    forwarded = dead ? pcap_dump_open(dead, forwarded_file) : nullptr;
    if (!forwarded) {
      std::cerr << "sekisho-replay: " << forwarded_file << ": " << (dead ? pcap_geterr(dead) : "cannot open") << "\n";
      pcap_close(pc);
      if (dead) pcap_close(dead);
      return 1;
    }
  }
  uint64_t frames_dropped = 0, frames_rewritten = 0;
  auto forward = [&](const pcap_pkthdr* hdr, const std::vector<uint8_t>& f) {
    if (!forwarded) return;
    pcap_pkthdr out_hdr = *hdr;
    out_hdr.caplen = out_hdr.len = uint32_t(f.size());
    pcap_dump(reinterpret_cast<u_char*>(forwarded), &out_hdr, f.data());
  };
  tcp::BufferPool pool(limits.buffer_bytes, 4096);
  tcp::EventCounters ev{};
  smtp::Limits smtp_limits;
  smtp_limits.assume_silent_server_accepts = !inline_mode;  // one-sided captures (offline only)
  auto table = std::make_unique<tcp::FlowTable<smtp::SmtpFlow>>(1u << 16);
  double now = 0;
  constexpr double kIdleTimeout = 600;  // capture seconds without a packet
  std::vector<uint8_t> frame;
  uint64_t packets = 0, decode_errors = 0, skipped_frames = 0, table_full = 0;
  std::string read_error;

  auto finish_flow = [&](tcp::FlowTable<smtp::SmtpFlow>::Slot& s) {
    s.value.close(ev);
    table->erase(&s);
  };

  pcap_pkthdr* h;
  const u_char* data;
  int rc;
  while ((rc = pcap_next_ex(pc, &h, &data)) >= 0) {
    if (rc == 0) continue;
    ++packets;
    now = double(h->ts.tv_sec) + double(h->ts.tv_usec) / 1e6;
    table->sweep(4, [&](tcp::FlowTable<smtp::SmtpFlow>::Slot& s) {
      if (now - s.value.last_seen() > kIdleTimeout) finish_flow(s);
    });
    if (!to_ethernet(dlt, data, h->caplen, frame)) {
      ++skipped_frames;
      continue;
    }
    net::Packet p;
    net::DecodeStatus st = net::decode(frame, p);
    if (st != net::DecodeStatus::ok) {
      if (st != net::DecodeStatus::non_ip) ++decode_errors;
      forward(h, frame);
      continue;
    }
    if (p.ip_proto != net::kProtoTcp || (!ports.empty() && !ports.count(p.sport) && !ports.count(p.dport))) {
      forward(h, frame);
      continue;
    }
    net::FlowRef ref = net::flow_ref(p);
    uint32_t hash = net::symmetric_hash(ref.key);
    bool created = false;
    bool syn = p.tcp_flags & net::kTcpSyn;
    auto* slot = table->find(ref.key, hash, true, created);
    if (!slot) {
      ++table_full;
      forward(h, frame);
      continue;
    }
    smtp::SmtpFlow& f = slot->value;
    if (!created && syn && !(p.tcp_flags & net::kTcpAck) && f.tcp().state() == tcp::TcpFlow::State::closed) {
      f.close(ev);  // port reuse: a new connection on a finished flow's key
      created = true;
    }
    if (created) {
      f.start(&limits, &pool, smtp_limits, &out, now);
      if (ruleset) f.set_content_limits(&kCollect);
    }
    std::span<uint8_t> payload(frame.data() + p.payload_offset, p.payload_len);
    tcp::SegmentVerdict verdict = f.on_segment(ref.src_is_a, p, payload, ev, now);
    if (verdict == tcp::SegmentVerdict::drop) ++frames_dropped;
    else {
      if (verdict == tcp::SegmentVerdict::forward_rewritten) ++frames_rewritten;
      forward(h, frame);
    }
    if (!f.has_endpoints() && f.tcp().state() != tcp::TcpFlow::State::none) {
      bool client_is_src = f.tcp().client_is_a() == ref.src_is_a;
      std::string src = net::format_endpoint(p.src, p.sport, p.l3), dst = net::format_endpoint(p.dst, p.dport, p.l3);
      f.set_endpoints(client_is_src ? src : dst, client_is_src ? dst : src);
    }
  }
  if (rc == -1) read_error = pcap_geterr(pc);
  table->for_each([&](tcp::FlowTable<smtp::SmtpFlow>::Slot& s) { finish_flow(s); });
  pcap_close(pc);
  if (forwarded) {
    pcap_dump_close(forwarded);
    pcap_close(dead);
  }

  json sum;
  sum["type"] = "summary";
  sum["file"] = file;
  sum["packets"] = packets;
  sum["messages"] = out.messages;
  sum["sessions"] = out.sessions;
  if (ruleset) {
    sum["ruleset"] = std::string(ruleset->version());
    sum["verdicts"] = {{"pass", out.verdicts[0]}, {"tag", out.verdicts[1]}, {"quarantine", out.verdicts[2]}, {"tempfail", out.verdicts[4]},
                       {"reject", out.verdicts[3]}};
  }
  sum["decode_errors"] = decode_errors;
  sum["skipped_frames"] = skipped_frames;
  sum["flow_table_full"] = table_full;
  if (inline_mode) {
    sum["frames_rewritten"] = frames_rewritten;
    sum["frames_dropped"] = frames_dropped;
  }
  json evj = json::object();
  for (size_t i = 0; i < tcp::kEventCount; ++i)
    if (ev[i]) evj[tcp::event_name(tcp::Event(i))] = ev[i];
  sum["tcp"] = evj;
  if (!read_error.empty()) {
    sum["read_error"] = read_error;
    std::cerr << "sekisho-replay: " << file << ": capture cut short: " << read_error << "\n";
  }
  Printer::emit(sum);
  return 0;
}
