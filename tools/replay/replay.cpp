// sekisho-replay: runs the dataplane's stream engines (decode, TCP
// reassembly, SMTP) over a capture and prints JSON lines: one object per
// message ("type":"message") and one per session ("type":"session"), then
// a summary object ("type":"summary").
//
//   sekisho-replay [--smtp-port N ...] [--config SEKISHO.CONF] [--rules ARTIFACT]
//                  [--inline [--conflict drop] [--forwarded OUT.pcap]] FILE.pcap|FILE.pcapng
//
// Every message gets its verdict from the one evaluator (scanners/verdict)
// the dataplane uses: --config takes the dataplane section's policy
// (smuggling_action, envelope_policy, scan_overflow, mime_* and its
// ruleset), --rules a ruleset artifact (over the config's). Without either,
// the defaults apply (a smuggling message is refused; nothing else is).
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
#include "dataplane/config/dataplane_config.hpp"
#include "dataplane/pipeline/admission.hpp"
#include "dataplane/pipeline/connection.hpp"
#include "scanners/verdict/evaluator.hpp"
#include "dataplane/tcp/flow_table.hpp"
#include "dataplane/tcp/tcp_stream.hpp"

using nlohmann::json;
using namespace sekisho;

namespace {

// Prints the engines' events as JSON lines.
struct Printer : pipeline::FlowEvents {
  uint64_t messages = 0, sessions = 0;
  // The verdict of every message, by the one evaluator with the policy and
  // ruleset given (--config, --rules), as the dataplane decides it.
  verdict::Policy policy;
  verdict::Content content;
  uint64_t verdicts[5] = {};  // by verdict::Action: pass, tag, quarantine, reject, tempfail
  bool wants_content(const void*) override { return content.ruleset != nullptr; }
  void on_message_end(pipeline::MessageRecord& m) override {
    const verdict::Inputs in = pipeline::verdict_inputs(m);
    m.verdict = verdict::evaluate(policy, content, in);
    ++verdicts[size_t(m.verdict.action) % 5];
    // Offline nothing is held: the verdict is reported, the message was delivered as captured.
  }
  static void emit(const json& j) { std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n"; }
  void on_message(const pipeline::MessageRecord& m) override {
    emit(pipeline::message_json(m));
    ++messages;
  }
  void on_session(const pipeline::SessionRecord& s) override {
    emit(pipeline::session_json(s));
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
    "usage: sekisho-replay [--smtp-port N ...] [--config SEKISHO.CONF] [--rules ARTIFACT] [--inline [--conflict drop] [--forwarded OUT.pcap]] "
    "FILE.pcap|FILE.pcapng\n";

int main(int argc, char** argv) {
  std::set<uint16_t> ports;
  const char* file = nullptr;
  const char* forwarded_file = nullptr;
  const char* rules_file = nullptr;
  const char* config_file = nullptr;
  bool inline_mode = false, conflict_drop = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--smtp-port" && i + 1 < argc) ports.insert(uint16_t(std::atoi(argv[++i])));
    else if (a == "--inline") inline_mode = true;
    else if (a == "--rules" && i + 1 < argc) rules_file = argv[++i];
    else if (a == "--config" && i + 1 < argc) config_file = argv[++i];
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
  verdict::Policy policy;
  std::string config_rules;
  if (config_file) {
    try {
      dataplane::DataplaneConfig cfg = dataplane::load_dataplane_config(config_file);
      policy = dataplane::evaluator_policy(cfg);
      config_rules = cfg.ruleset;
    } catch (const std::exception& e) {
      std::cerr << "sekisho-replay: " << e.what() << "\n";
      return 2;
    }
    if (!rules_file && !config_rules.empty()) rules_file = config_rules.c_str();
  }
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
  out.policy = std::move(policy);
  out.content = {ruleset.get(), scratch.get()};
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
  auto table = std::make_unique<tcp::FlowTable<pipeline::Connection>>(1u << 16);
  double now = 0;
  constexpr double kIdleTimeout = 600;  // capture seconds without a packet
  std::vector<uint8_t> frame;
  uint64_t packets = 0, decode_errors = 0, skipped_frames = 0, table_full = 0;
  std::string read_error;

  auto finish_flow = [&](tcp::FlowTable<pipeline::Connection>::Slot& s) {
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
    table->sweep(4, [&](tcp::FlowTable<pipeline::Connection>::Slot& s) {
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
    // A capture may begin mid-way through a connection: its first segment
    // starts the flow (the dataplane's rule otherwise: pipeline/admission.hpp).
    tcp::FlowTable<pipeline::Connection>::Slot* slot = nullptr;
    pipeline::Admission admitted = pipeline::admit(*table, p, ref, pipeline::Midstream::follow, ev, slot);
    if (admitted == pipeline::Admission::table_full) {
      ++table_full;
      forward(h, frame);
      continue;
    }
    pipeline::Connection& f = slot->value;
    if (admitted == pipeline::Admission::started) {
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
  table->for_each([&](tcp::FlowTable<pipeline::Connection>::Slot& s) { finish_flow(s); });
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
