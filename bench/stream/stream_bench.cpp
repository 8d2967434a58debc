// stream_bench: the stream engines (decode, flow table, TCP reassembly with
// inline normalisation, SMTP) on packets preloaded in memory, next to
// memcpy of the same frames, in one run; and the memory of an idle tracked
// SMTP flow.
//
//   stream_bench FILE.pcap [ROUNDS] [--rules ARTIFACT]...
//
// With --rules, the full pipeline also runs with each ruleset loaded: every
// message's contexts collected and scanned at its end, as a worker does.
#include <malloc.h>
#include <nlohmann/json.hpp>
#include <pcap/pcap.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <type_traits>

#include "scanners/match/match.hpp"
#include "dataplane/net/packet.hpp"
#include "dataplane/pipeline/admission.hpp"
#include "dataplane/pipeline/connection.hpp"
#include "scanners/verdict/evaluator.hpp"
#include "dataplane/tcp/flow_table.hpp"
#include "dataplane/tcp/tcp_stream.hpp"

using namespace sekisho;
using Clock = std::chrono::steady_clock;
using Flow = pipeline::Connection;

namespace {

struct Counter : pipeline::FlowEvents {
  uint64_t body = 0, messages = 0, not_passed = 0;
  const match::Ruleset* rules = nullptr;
  match::Scratch* scratch = nullptr;
  void on_message_end(pipeline::MessageRecord& m) override {
    if (!rules) return;
    const verdict::Inputs in = pipeline::verdict_inputs(m);
    // The evaluator the workers call; offline: counted, nothing is held.
    if (!verdict::delivers(verdict::evaluate({}, {rules, scratch}, in).action)) ++not_passed;
  }
  void on_message(const pipeline::MessageRecord& m) override {
    body += m.txn->body_bytes;
    ++messages;
  }
};

// Reassembly + SMTP engine only: what the TCP engine delivers goes to the
// SMTP engine, whose message bytes are counted (no hash, no header scan).
struct EngineFlow : tcp::StreamSink, smtp::MessageSink {
  tcp::TcpFlow stream;
  std::optional<smtp::SmtpSession> smtp;
  tcp::TcpFlow& tcp() { return stream; }
  uint64_t* body = nullptr;
  uint64_t* messages = nullptr;
  EngineFlow() = default;
  EngineFlow(const EngineFlow&) : EngineFlow() {}
  EngineFlow& operator=(const EngineFlow&) { return *this; }
  void start(const tcp::Limits* lim, tcp::BufferPool* pool, const smtp::Limits& sl, Counter* c, double, size_t) {
    stream.reset(lim, pool, this);
    smtp.emplace(this, sl);
    body = &c->body;
    messages = &c->messages;
  }
  tcp::SegmentVerdict on_segment(bool from_a, const net::Packet& p, std::span<uint8_t> payload,
                                 tcp::EventCounters& ev, double) {
    return stream.on_segment(from_a, p, payload, ev);
  }
  void close(tcp::EventCounters& ev) {
    stream.close(ev);
    if (smtp) smtp->on_close();
    smtp.reset();
  }
  void on_data(bool from_client, std::span<const uint8_t> b) override {
    from_client ? smtp->on_client(b) : smtp->on_server(b);
  }
  void on_gap(bool from_client, uint64_t len) override { smtp->on_gap(from_client, len); }
  void on_close() override {}
  void on_body(std::span<const uint8_t> b) override { *body += b.size(); }
  void on_transaction_done(const smtp::SessionFacts&, const smtp::Transaction& t) override {
    if (t.body_via != smtp::BodyVia::none) ++*messages;
  }
};

struct Run {
  uint64_t body = 0, messages = 0, segments = 0, not_passed = 0;
};

// |table| is preallocated once, as a worker's is; the run leaves it empty.
template <class Flow>
Run run_pipeline(std::vector<std::vector<uint8_t>>& frames, tcp::FlowTable<Flow>& table, const tcp::Limits& lim,
                 tcp::BufferPool& pool, size_t retain_bytes = 0, const match::Ruleset* rules = nullptr,
                 match::Scratch* scratch = nullptr) {
  Run r;
  Counter counter;
  counter.rules = rules;
  counter.scratch = scratch;
  static const mime::CollectLimits kCollect;
  smtp::Limits sl;
  tcp::EventCounters ev{};
  for (auto& f : frames) {
    net::Packet p;
    if (net::decode(f, p) != net::DecodeStatus::ok || p.ip_proto != net::kProtoTcp) continue;
    if (p.sport != 25 && p.dport != 25) continue;
    net::FlowRef ref = net::flow_ref(p);
    typename tcp::FlowTable<Flow>::Slot* s = nullptr;
    // The dataplane's admission rule (pipeline/admission.hpp); the capture starts with its SYNs.
    pipeline::Admission admitted = pipeline::admit(table, p, ref, pipeline::Midstream::refuse, ev, s);
    if (!s) continue;
    Flow& fl = s->value;
    if (admitted == pipeline::Admission::started) {
      fl.start(&lim, &pool, sl, &counter, 0, retain_bytes);
      if constexpr (std::is_same_v<Flow, pipeline::Connection>)
        if (rules) fl.set_content_limits(&kCollect);
    }
    fl.on_segment(ref.src_is_a, p, {f.data() + p.payload_offset, p.payload_len}, ev, 0);
    ++r.segments;
  }
  table.for_each([&](auto& s) {
    s.value.close(ev);
    table.erase(&s);
  });
  r.body = counter.body;
  r.messages = counter.messages;
  r.not_passed = counter.not_passed;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: stream_bench FILE.pcap [ROUNDS] [--rules ARTIFACT]...\n");
    return 2;
  }
  int rounds = 5;
  std::vector<std::string> rule_files;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rules" && i + 1 < argc) rule_files.push_back(argv[++i]);
    else rounds = atoi(argv[i]);
  }
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* pc = pcap_open_offline(argv[1], err);
  if (!pc) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  std::vector<std::vector<uint8_t>> frames;
  pcap_pkthdr* h;
  const u_char* d;
  uint64_t wire_bytes = 0;
  while (pcap_next_ex(pc, &h, &d) == 1) {
    frames.emplace_back(d, d + h->caplen);
    wire_bytes += h->caplen;
  }
  pcap_close(pc);

  tcp::Limits lim;  // inline mode: retained until acknowledged, conflicts rewritten
  tcp::BufferPool pool(lim.buffer_bytes, 1024);
  auto engine_table = std::make_unique<tcp::FlowTable<EngineFlow>>(1u << 14);
  auto flow_table = std::make_unique<tcp::FlowTable<Flow>>(1u << 14);
  std::vector<uint8_t> sink(1 << 16);
  double best_engine = 1e30, best_pipe = 1e30, best_copy = 1e30, best_retain = 1e30;
  Run engine, last;
  auto secs = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  for (int i = 0; i < rounds; ++i) {
    auto t0 = Clock::now();
    for (auto& f : frames) std::memcpy(sink.data(), f.data(), std::min(f.size(), sink.size()));
    asm volatile("" : : "r"(sink.data()) : "memory");
    auto t1 = Clock::now();
    engine = run_pipeline(frames, *engine_table, lim, pool);
    auto t2 = Clock::now();
    last = run_pipeline(frames, *flow_table, lim, pool);
    auto t3 = Clock::now();
    run_pipeline(frames, *flow_table, lim, pool, 32u << 20);  // with a copy of every message kept for quarantine
    auto t4 = Clock::now();
    best_copy = std::min(best_copy, secs(t0, t1));
    best_engine = std::min(best_engine, secs(t1, t2));
    best_pipe = std::min(best_pipe, secs(t2, t3));
    best_retain = std::min(best_retain, secs(t3, t4));
  }

  // Memory of idle tracked SMTP flows: handshake, greeting, EHLO, then quiet.
  constexpr int kIdle = 10000;
  struct mallinfo2 before = mallinfo2();
  auto table = std::make_unique<tcp::FlowTable<Flow>>(1u << 14);
  Counter idle_counter;
  smtp::Limits sl;
  tcp::EventCounters ev{};
  for (int i = 0; i < kIdle; ++i) {
    net::Packet p;
    p.l3 = net::L3::ipv4;
    p.ip_proto = net::kProtoTcp;
    p.src = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, uint8_t(i >> 8), uint8_t(i)};
    p.dst = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 25};
    p.sport = 40000;
    p.dport = 25;
    net::FlowRef ref = net::flow_ref(p);
    bool created;
    auto* s = table->find(ref.key, net::symmetric_hash(ref.key), true, created);
    Flow& fl = s->value;
    fl.start(&lim, &pool, sl, &idle_counter, 0);
    auto seg = [&](bool client, uint32_t seq, uint32_t ack, uint8_t flags, std::string data) {
      net::Packet q = p;
      q.seq = seq;
      q.ack = ack;
      q.tcp_flags = flags;
      q.window = 65535;
      fl.on_segment(client == ref.src_is_a, q, {reinterpret_cast<uint8_t*>(data.data()), data.size()}, ev, 0);
    };
    std::string greet = "220 mx.example.net ESMTP\r\n", ehlo = "EHLO client.example.org\r\n",
                caps = "250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250 STARTTLS\r\n";
    seg(true, 100, 0, net::kTcpSyn, "");
    seg(false, 900, 101, net::kTcpSyn | net::kTcpAck, "");
    seg(false, 901, 101, net::kTcpAck | net::kTcpPsh, greet);
    seg(true, 101, 901 + uint32_t(greet.size()), net::kTcpAck | net::kTcpPsh, ehlo);
    seg(false, 901 + uint32_t(greet.size()), 101 + uint32_t(ehlo.size()), net::kTcpAck | net::kTcpPsh, caps);
    seg(true, 101 + uint32_t(ehlo.size()), 901 + uint32_t(greet.size() + caps.size()), net::kTcpAck, "");
  }
  struct mallinfo2 after = mallinfo2();
  // Small blocks (uordblks) and mmapped ones (hblkhd: large tables) together.
  double heap_per_flow = (double(after.uordblks + after.hblkhd) - double(before.uordblks + before.hblkhd)) / kIdle;
  double table_slot = double(tcp::FlowTable<Flow>::slot_bytes());
  double table_heap_per_flow = double(table->capacity()) * table_slot / kIdle;  // table preallocated
  double per_flow = heap_per_flow - table_heap_per_flow + table_slot;

  auto gbit = [&](double t) { return double(wire_bytes) * 8 / t / 1e9; };
  double copy_gbps = gbit(best_copy);
  printf("input: %s: %zu frames, %.1f MB of frames, %lu messages, %.1f MB of message bodies\n", argv[1],
         frames.size(), double(wire_bytes) / 1e6, (unsigned long)last.messages, double(last.body) / 1e6);
  printf("one core, best of %d rounds, tables preallocated (as a worker's are):\n", rounds);
  printf("  memcpy of the same frames:                          %6.2f Gbit/s\n", copy_gbps);
  printf("  reassembly + SMTP engine (decode, flow table, TCP inline, SMTP, body to a counting sink):\n");
  printf("                                                      %6.2f Gbit/s %8.0f msgs/s  (%.3f of memcpy)\n",
         gbit(best_engine), double(engine.messages) / best_engine, gbit(best_engine) / copy_gbps);
  printf("  + Connection (SHA-256 of every message, MIME engine, events):\n");
  printf("                                                      %6.2f Gbit/s %8.0f msgs/s  (%.3f of memcpy)\n",
         gbit(best_pipe), double(last.messages) / best_pipe, gbit(best_pipe) / copy_gbps);
  printf("  + every message retained for quarantine:            %6.2f Gbit/s %8.0f msgs/s\n", gbit(best_retain),
         double(last.messages) / best_retain);
  if (engine.messages != last.messages || engine.body != last.body)
    printf("  WARNING: the two pipelines disagree (%lu/%lu messages, %lu/%lu bytes)\n",
           (unsigned long)engine.messages, (unsigned long)last.messages, (unsigned long)engine.body,
           (unsigned long)last.body);
  nlohmann::json summary = {{"frames", frames.size()}, {"wire_bytes", wire_bytes}, {"messages", last.messages},
                            {"memcpy_gbit_s", copy_gbps},
                            {"engines_gbit_s", gbit(best_engine)}, {"engines_msgs_s", double(engine.messages) / best_engine},
                            {"pipeline_gbit_s", gbit(best_pipe)}, {"pipeline_msgs_s", double(last.messages) / best_pipe},
                            {"retain_gbit_s", gbit(best_retain)}, {"rulesets", nlohmann::json::array()}};
  for (const auto& rf : rule_files) {
    std::string error;
    auto rs = match::Ruleset::load(rf, error);
    if (!rs) {
      fprintf(stderr, "stream_bench: %s: %s\n", rf.c_str(), error.c_str());
      return 1;
    }
    match::Scratch scratch(*rs);
    double best = 1e30;
    Run rr;
    for (int i = 0; i < std::max(1, rounds / 2); ++i) {
      auto t0 = Clock::now();
      rr = run_pipeline(frames, *flow_table, lim, pool, 0, rs.get(), &scratch);
      best = std::min(best, secs(t0, Clock::now()));
    }
    printf("  + content scan with ruleset %s (%zu rules, %s):\n", std::string(rs->version()).c_str(), rs->rule_count(),
           rf.c_str());
    printf("                                                      %6.2f Gbit/s %8.0f msgs/s  (%.3f of memcpy, %.3f of "
           "the pipeline without rules); %lu not passed\n",
           gbit(best), double(rr.messages) / best, gbit(best) / copy_gbps, best_pipe / best, (unsigned long)rr.not_passed);
    summary["rulesets"].push_back({{"file", rf}, {"version", std::string(rs->version())}, {"rules", rs->rule_count()},
                                   {"gbit_s", gbit(best)}, {"msgs_s", double(rr.messages) / best},
                                   {"of_pipeline", best_pipe / best}, {"not_passed", rr.not_passed}});
  }
  printf("idle SMTP flow after handshake and EHLO: %.0f bytes (table slot %.0f + heap %.0f)\n", per_flow, table_slot,
         per_flow - table_slot);
  printf("  of the slot: TcpFlow %zu, SmtpSession %zu, rest of Connection %zu; only while a message is open: MIME "
         "engine %zu + its buffers, hash context\n",
         sizeof(tcp::TcpFlow), sizeof(smtp::SmtpSession),
         sizeof(pipeline::Connection) - sizeof(tcp::TcpFlow) - sizeof(std::optional<smtp::SmtpSession>),
         sizeof(mime::MimeParser));
  printf("targets (issue 3): >= 20 Gbit/s and >= 0.5 of memcpy; <= 1024 bytes per idle flow\n");
  summary["idle_flow_bytes"] = per_flow;
  summary["open_message_state_bytes"] = sizeof(mime::MimeParser);
  printf("%s\n", summary.dump().c_str());
  return 0;
}
