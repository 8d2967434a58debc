#include "dataplane/dpdk/bridge.hpp"

#include <unistd.h>
#include <net/if.h>
#include <sched.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_telemetry.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "dataplane/dpdk/counters.hpp"
#include "dataplane/enforce/tcp_inject.hpp"
#include "dataplane/net/flow_census.hpp"
#include "dataplane/net/packet.hpp"
#include "dataplane/pipeline/admission.hpp"
#include "scanners/match/match.hpp"
#include "scanners/mime/attachment.hpp"
#include "scanners/verdict/evaluator.hpp"
#include "dataplane/pipeline/release_list.hpp"
#include "dataplane/pipeline/connection.hpp"
#include "dataplane/spool/spool.hpp"
#include "dataplane/tcp/flow_table.hpp"
#include "dataplane/tcp/tcp_stream.hpp"

namespace sekisho::dataplane {

namespace {

constexpr unsigned kMaxBurst = 256;
constexpr unsigned kPrefetchAhead = 3;
constexpr unsigned kIdleRoundsBeforeSleep = 64;
constexpr unsigned kTxRetries = 4;
constexpr unsigned kMaxPorts = RTE_MAX_ETHPORTS;

std::atomic<bool> g_stop{false};  // set by signal handlers; read by every loop

const char* const kWorkerCounterNames[] = {
#define X(name, text) #name,
#include "counters.def"
#undef X
};

// Port counters kept per writing lcore, summed by the reader.
struct PortCounters {
  uint64_t rx_pkts = 0, rx_bytes = 0, tx_pkts = 0, tx_bytes = 0, tx_dropped = 0;
};

inline void add_relaxed(uint64_t& shared, uint64_t delta) {
  if (delta) __atomic_store_n(&shared, __atomic_load_n(&shared, __ATOMIC_RELAXED) + delta, __ATOMIC_RELAXED);
}

struct Port {
  std::string name;
  uint16_t id = 0;
  unsigned peer = 0;  // index of the paired port
};

}  // namespace

// An immutable envelope policy, published to the workers with RCU. A
// message keeps the set it started with (inflight counts it per worker);
// a replaced set is freed once the grace period has passed and no message
// holds it.
// A loaded content ruleset and one Hyperscan scratch per worker (a worker
// scans one message at a time, at its hold point). Shared by the policy
// sets that use it; freed with the last of them.
struct ContentRules {
  std::unique_ptr<match::Ruleset> ruleset;
  std::vector<std::unique_ptr<match::Scratch>> scratch;  // by worker index
  std::string path;
  uint64_t version = 0;  // of the load, counted by the bridge
};

// Loads an artifact off the fast path (never compiles) and gives every
// worker its scratch; null with |err| set when it cannot.
std::shared_ptr<ContentRules> load_content_rules(const std::string& path, unsigned workers, uint64_t version,
                                                 std::string& err) {
  auto c = std::make_shared<ContentRules>();
  c->ruleset = match::Ruleset::load(path, err);
  if (!c->ruleset) return nullptr;
  for (unsigned i = 0; i < workers; ++i) {
    c->scratch.push_back(std::make_unique<match::Scratch>(*c->ruleset));
    if (!c->scratch.back()->ok()) {
      err = "cannot allocate a Hyperscan scratch for worker " + std::to_string(i);
      return nullptr;
    }
  }
  c->path = path;
  c->version = version;
  return c;
}

struct PolicySet {
  verdict::Policy policy;  // smuggling, envelope rules, overflow and MIME caps
  std::shared_ptr<ContentRules> content;  // null: no content rules
  std::string source;
  uint64_t version = 0;
  struct alignas(64) Count { uint64_t v = 0; };
  std::vector<Count> inflight;  // one per worker, written by that worker only
  uint64_t held() const {
    uint64_t n = 0;
    for (const auto& c : inflight) n += __atomic_load_n(&c.v, __ATOMIC_ACQUIRE);
    return n;
  }
};

// A quarantined message on its way to the spool. The worker parks the held
// segment here; the spool thread fills the result and hands it back.
struct SpoolJob {
  std::string id, header, message;
  rte_mbuf* held = nullptr;     // the segment that ended the message
  net::FlowKey key;
  uint32_t server_seq = 0;      // the server's next sequence number at the hold
  uint64_t deadline_tsc = 0;
  bool timed_out = false;       // the worker answered already (451)
  bool ok = false;              // written and fsync'ed
  std::string path, error;
};

// Message and session events of one worker, formatted off the packet loop's
// fast part (once per message) and handed to the journal thread by ring.
struct WorkerEvents : pipeline::FlowEvents {
  rte_ring* ring = nullptr;
  std::atomic<PolicySet*>* policy = nullptr;  // the published set
  unsigned worker = 0;
  unsigned lcore = 0;
  uint32_t next_id = 0;
  uint64_t rejected = 0, tempfailed = 0, quarantined = 0, hold_failed = 0, hold_timeouts = 0, tls_sessions = 0;
  uint64_t hold_timeout_passed = 0, smuggling_refused = 0, desyncs = 0;
  verdict::Action smuggling = verdict::Action::reject;  // before a policy set is published
  uint64_t scanned = 0, scan_tagged = 0, scan_truncated = 0;  // content scans at the hold point
  uint64_t mime_capped = 0;  // messages decided by a MIME cap's policy
  const void* message_started() override {
    if (!policy) return nullptr;
    PolicySet* p = policy->load(std::memory_order_acquire);
    auto& c = p->inflight[worker].v;
    __atomic_store_n(&c, c + 1, __ATOMIC_RELEASE);
    return p;
  }
  bool wants_content(const void* token) override {
    return token && static_cast<const PolicySet*>(token)->content != nullptr;
  }
  void message_released(const void* token) override {
    auto* p = const_cast<PolicySet*>(static_cast<const PolicySet*>(token));
    auto& c = p->inflight[worker].v;
    __atomic_store_n(&c, c - 1, __ATOMIC_RELEASE);
  }
  pipeline::ReleaseList* releases = nullptr;  // released from quarantine: pass once
  uint64_t released_passed = 0;
  void on_message_end(pipeline::MessageRecord& m) override {
    verdict::Verdict& v = m.verdict;
    v = decide(m);
    if (!verdict::delivers(v.action)) v.id = spool::make_message_id(uint64_t(m.ts * 1e6), lcore, next_id++);
    if (verdict::delivers(v.action)) return;
    if (v.stage != verdict::Stage::smuggling && releases && !m.sha256.empty() && releases->pending() &&
        releases->take(m.sha256, uint64_t(std::chrono::duration_cast<std::chrono::seconds>(
                                               std::chrono::steady_clock::now().time_since_epoch())
                                               .count()))) {
      // Released by the control plane: delivered this once, not caught again.
      add(released_passed, 1);
      v.rule = "released:" + v.rule;
      v.action = verdict::Action::pass;
      v.id.clear();
      return;
    }
    if (v.action == verdict::Action::reject) add(rejected, 1);
    if (v.action == verdict::Action::tempfail) add(tempfailed, 1);
  }
  // The verdict before releases: the one evaluator, with the set the
  // message started with and this worker's scratch.
  verdict::Verdict decide(const pipeline::MessageRecord& m) {
    const auto* set = static_cast<const PolicySet*>(m.policy);
    verdict::Policy none;
    none.smuggling = smuggling;
    verdict::Content content;
    if (set && set->content && worker < set->content->scratch.size())
      content = {set->content->ruleset.get(), set->content->scratch[worker].get()};
    verdict::Inputs in;
    in.session = m.session;
    in.txn = m.txn;
    in.client_ip = verdict::host_of(m.client);
    in.content = m.content;
    in.mime = m.mime;
    in.message = m.message;
    in.message_truncated = m.message_truncated;
    verdict::Verdict v = verdict::evaluate(set ? set->policy : none, content, in);
    if (v.stage == verdict::Stage::smuggling) add(smuggling_refused, 1);
    if (v.scanned) add(scanned, 1);
    if (v.action == verdict::Action::tag) add(scan_tagged, 1);
    if (v.content_truncated) add(scan_truncated, 1);
    if (v.stage == verdict::Stage::mime) add(mime_capped, 1);
    return v;
  }
  uint64_t messages = 0, sessions = 0, dropped = 0;  // written by the worker only
  void push(const nlohmann::json& j) {
    auto* line = new std::string(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    if (rte_ring_sp_enqueue(ring, line) != 0) {
      delete line;
      add(dropped, 1);
    }
  }
  static void add(uint64_t& c, uint64_t d) { __atomic_store_n(&c, __atomic_load_n(&c, __ATOMIC_RELAXED) + d, __ATOMIC_RELAXED); }
  void on_message(const pipeline::MessageRecord& m) override {
    add(messages, 1);
    if (ring) push(pipeline::message_json(m));
  }
  void on_session(const pipeline::SessionRecord& s) override {
    add(sessions, 1);
    if (s.session->tls) add(tls_sessions, 1);  // encrypted after STARTTLS: not inspected
    if (ring) push(pipeline::session_json(s));
  }
};

struct alignas(RTE_CACHE_LINE_SIZE) WorkerState {
  unsigned index = 0;
  unsigned lcore = 0;
  rte_ring* rx_ring = nullptr;   // io -> worker (software dispatch)
  rte_ring* tx_ring = nullptr;   // worker -> io
  net::FlowCensus::Entry* census_slots = nullptr;
  std::unique_ptr<net::FlowCensus> census;
  CounterBlock counters;                    // published
  std::array<PortCounters, kMaxPorts> port; // rss mode only
  // Stream inspection: TCP reassembly with normalisation feeding SMTP.
  tcp::Limits tcp_limits;
  smtp::Limits smtp_limits;
  std::unique_ptr<tcp::BufferPool> pool;
  std::unique_ptr<tcp::FlowTable<pipeline::Connection>> flows;
  tcp::EventCounters tcp_local{};           // accumulated in the loop
  tcp::EventCounters tcp_shared{};          // published
  uint64_t uninspected_multiseg = 0;
  uint64_t starttls_masked = 0;
  // Hold latency of passed messages: from the worker taking the segment that
  // ends a message to that segment being handed on (100 ns buckets, 1 ms).
  static constexpr unsigned kHoldBuckets = 10000;
  std::vector<uint64_t> hold_hist = std::vector<uint64_t>(kHoldBuckets + 1, 0);
  uint64_t hold_t0[kMaxBurst];
  unsigned hold_n = 0;
  bool hold_ended = false;  // set by inspect_segment for the segment at hand
  WorkerEvents events;
  rte_ring* spool_ring = nullptr;  // worker -> spool thread (SpoolJob*)
  rte_ring* done_ring = nullptr;   // spool thread -> worker
  std::vector<SpoolJob*> parked;   // held segments waiting for the spool
};

struct alignas(RTE_CACHE_LINE_SIZE) IoState {
  std::array<PortCounters, kMaxPorts> port;
  uint64_t dispatched = 0;
  uint64_t dispatch_ring_full = 0;
  uint64_t idle_sleeps = 0;
};

struct BridgeState {
  DataplaneConfig cfg;
  std::atomic<bool> bypass{false};  // telemetry /sekisho/bypass: forward everything uninspected
  bool retain = false;              // some rule quarantines: keep a copy of every message
  mime::CollectLimits collect;      // what each open message keeps for the content scan
  uint64_t ruleset_loads = 0;       // under policy_mu
  std::atomic<PolicySet*> policy{nullptr};
  pipeline::ReleaseList releases;       // telemetry /sekisho/release: pass these once
  rte_rcu_qsbr* qs = nullptr;       // workers report quiescence once per loop
  std::mutex policy_mu;             // reload and reclaim (control side only)
  std::vector<std::pair<PolicySet*, uint64_t>> retired;  // with the RCU token of their retirement
  uint64_t policy_versions = 0, policy_freed = 0;
  std::array<bool, 65536> smtp_port{};
  std::array<bool, 65536> mask_starttls{};
  bool desync_pass = false;  // cfg.desync_action == "pass"
  double wall_at_start = 0;  // unix seconds when tsc_at_start was read
  uint64_t tsc_at_start = 0;
  double tsc_hz = 1;
  bool rss = false;
  rte_mempool* pool = nullptr;
  std::vector<Port> ports;
  std::array<int, kMaxPorts> index_of_port_id{};  // DPDK port id -> ports[] index
  std::vector<std::unique_ptr<WorkerState>> workers;
  IoState io;
  uint64_t started_tsc = 0;
};

namespace {

double wall_now(const BridgeState& s) {
  return s.wall_at_start + double(rte_rdtsc() - s.tsc_at_start) / s.tsc_hz;
}

// Recomputes the TCP checksum after the payload was normalised in place.
void fix_tcp_checksum(uint8_t* frame, const net::Packet& p) {
  uint8_t* t = frame + p.l4_offset;
  const uint32_t tcp_len = p.ip_end - p.l4_offset;
  t[16] = t[17] = 0;
  uint32_t sum = 0;
  if (p.l3 == net::L3::ipv4) sum = enforce::checksum_add(sum, {frame + p.l3_offset + 12, 8});
  else sum = enforce::checksum_add(sum, {frame + p.l3_offset + 8, 32});
  sum += net::kProtoTcp + tcp_len;
  uint16_t c = enforce::checksum_fold(enforce::checksum_add(sum, {t, tcp_len}));
  t[16] = uint8_t(c >> 8);
  t[17] = uint8_t(c);
}

// Frames the worker writes itself during a burst, sent after the burst's
// forwarded frames (m->port says where they came from, as for any frame).
struct Injected {
  static constexpr unsigned kMax = 64;
  rte_mbuf* m[kMax];
  unsigned n = 0;
};

// Builds a frame from |seen| and queues it. |towards_sender|: back out of
// the port |seen| came in on; otherwise on to its peer.
void inject(BridgeState& s, WorkerState& w, Injected& out, rte_mbuf* seen, const net::Packet& p, bool towards_sender,
            const enforce::TcpSegmentSpec& spec) {
  if (out.n >= Injected::kMax) { ++w.tcp_local[size_t(tcp::Event::pool_exhausted)]; return; }
  rte_mbuf* m = rte_pktmbuf_alloc(s.pool);
  if (!m) { ++w.tcp_local[size_t(tcp::Event::pool_exhausted)]; return; }
  uint8_t buf[enforce::kMaxInjectFrame];
  std::span<const uint8_t> frame(rte_pktmbuf_mtod(seen, const uint8_t*), rte_pktmbuf_data_len(seen));
  size_t len = enforce::build_tcp_frame(frame, p,
                                        towards_sender ? enforce::Towards::sender : enforce::Towards::receiver, spec, buf);
  char* dst = len ? rte_pktmbuf_append(m, uint16_t(len)) : nullptr;
  if (!dst) { rte_pktmbuf_free(m); return; }
  std::memcpy(dst, buf, len);
  // The loops send a frame to the peer of the port it came in on.
  int in = s.index_of_port_id[seen->port];
  m->port = towards_sender ? s.ports[s.ports[unsigned(in)].peer].id : seen->port;
  out.m[out.n++] = m;
}

// A flow whose server was cut off by a verdict: the dataplane answers the
// client as the server would on closing (221 + FIN, then ACKs); nothing
// reaches the reset server any more.
void speak_for_server(BridgeState& s, WorkerState& w, Injected& out, rte_mbuf* m, const net::Packet& p,
                      pipeline::Connection& f, bool from_client) {
  if (!from_client) return;
  const bool fin = p.tcp_flags & net::kTcpFin;
  if (!p.payload_len && !fin) return;
  enforce::TcpSegmentSpec spec;
  spec.seq = f.enforced.server_seq;
  spec.ack = p.seq + p.payload_len + (fin ? 1 : 0);
  static const char kBye[] = "221 2.0.0 sekisho: closing connection\r\n";
  if (!f.enforced.closing) {
    spec.flags = net::kTcpAck | net::kTcpPsh | net::kTcpFin;
    if (p.payload_len) spec.payload = {reinterpret_cast<const uint8_t*>(kBye), sizeof kBye - 1};
    f.enforced.server_seq += uint32_t(spec.payload.size()) + 1;
    f.enforced.closing = true;
  } else {
    spec.flags = net::kTcpAck;
  }
  if (fin) f.enforced.done = true;
  inject(s, w, out, m, p, true, spec);
}

enum class Disposition : uint8_t { forward, drop, parked };

// The answer to the client for a held message, and the reset of the server.
void answer_held(BridgeState& s, WorkerState& w, Injected& out, rte_mbuf* held, const net::Packet& p,
                 pipeline::Connection* f, uint32_t server_seq, const std::string& reply, bool close_client) {
  enforce::TcpSegmentSpec to_client;
  to_client.seq = server_seq;
  to_client.ack = p.seq + p.payload_len;
  to_client.flags = net::kTcpAck | net::kTcpPsh | (close_client ? net::kTcpFin : 0);
  to_client.payload = {reinterpret_cast<const uint8_t*>(reply.data()), reply.size()};
  inject(s, w, out, held, p, true, to_client);
  enforce::TcpSegmentSpec to_server;
  to_server.seq = p.seq;
  to_server.flags = net::kTcpRst;
  inject(s, w, out, held, p, false, to_server);
  if (f) {
    f->enforced.active = true;
    f->enforced.server_seq = server_seq + uint32_t(reply.size()) + (close_client ? 1 : 0);
    f->enforced.closing = close_client;
  }
}

// The text of an injected reply: the deciding rule's (printable ASCII
// only, at most 200 bytes; anything else becomes a space) or the default.
std::string reply_text(const std::string& rule_text, const char* fallback) {
  if (rule_text.empty()) return fallback;
  std::string t = rule_text.substr(0, 200);
  for (char& c : t)
    if (c < 0x20 || c > 0x7e) c = ' ';
  return t;
}

// Masks the STARTTLS keyword of an EHLO reply in a server segment with
// same-length bytes ("250-STARTTLS" -> "250-XXXXXXXX"), so the client never
// asks for TLS. Done before the TCP engine sees the segment: the retained
// copy holds the masked bytes, so a retransmission is masked alike. A
// keyword split across two segments is not masked (the session then shows
// up as encrypted in the counters).
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

// Drops a segment by answering both ends with an RST each ends accepts
// (RFC 5961: at exactly its rcv_nxt): the receiver expects p.seq; the
// sender expects what it acknowledged, p.ack.
void reset_both(BridgeState& s, WorkerState& w, Injected& out, rte_mbuf* m, const net::Packet& p) {
  enforce::TcpSegmentSpec to_receiver;
  to_receiver.seq = p.seq;
  to_receiver.flags = net::kTcpRst;
  inject(s, w, out, m, p, false, to_receiver);
  if (p.tcp_flags & net::kTcpAck) {
    enforce::TcpSegmentSpec to_sender;
    to_sender.seq = p.ack;
    to_sender.flags = net::kTcpRst;
    inject(s, w, out, m, p, true, to_sender);
  }
}

// Clears URG and the urgent pointer (the caller fixes the checksum).
void clear_urgent(uint8_t* frame, const net::Packet& p) {
  uint8_t* tcp = frame + p.l4_offset;
  tcp[13] = uint8_t(tcp[13] & ~net::kTcpUrg);
  tcp[18] = tcp[19] = 0;
}

// Runs one TCP segment of an SMTP port through the stream engines.
// drop: normalisation policy or a verdict keeps it from the server;
// parked: it ends a message being written to the spool (the job owns it).
Disposition inspect_segment(BridgeState& s, WorkerState& w, rte_mbuf* m, const net::Packet& p, Injected& out,
                            CounterBlock& d) {
  if (m->nb_segs != 1) {  // linearised before decode; never inspect half a frame
    ++w.uninspected_multiseg;
    return Disposition::drop;
  }
  net::FlowRef ref = net::flow_ref(p);
  // Only a SYN makes a flow (pipeline/admission.hpp). A segment of a
  // connection not followed (begun before us, expired after an idle gap,
  // reset) carries bytes no engine has seen in their context: with data,
  // it is a desync.
  tcp::FlowTable<pipeline::Connection>::Slot* slot = nullptr;
  const pipeline::Admission admitted =
      pipeline::admit(*w.flows, p, ref, pipeline::Midstream::refuse, w.tcp_local, slot);
  if (admitted == pipeline::Admission::midstream) {
    ++w.tcp_local[size_t(tcp::Event::midstream)];
    if (!p.payload_len || (p.tcp_flags & net::kTcpRst)) return Disposition::forward;  // ACK/FIN/RST: no bytes
    if (s.desync_pass) {
      d[WorkerCounter::midstream_passed] += 1;
      return Disposition::forward;
    }
    d[WorkerCounter::midstream_reset] += 1;
    reset_both(s, w, out, m, p);
    return Disposition::drop;
  }
  if (admitted == pipeline::Admission::table_full) {
    // The flow memcap: the cap policy decides (fail-closed drops, and the
    // client retransmits; fail-open passes the flow uninspected). Counted.
    ++w.tcp_local[size_t(tcp::Event::table_full)];
    return s.cfg.cap_fail_open ? Disposition::forward : Disposition::drop;
  }
  pipeline::Connection& f = slot->value;
  const double now = wall_now(s);
  const bool created = admitted == pipeline::Admission::started;
  if (created) {
    ++w.tcp_local[size_t(tcp::Event::flows_created)];
    // A client STARTTLS on a port that masks it would take the session out
    // of sight: the engine treats it as a desync.
    smtp::Limits lim = w.smtp_limits;
    lim.refuse_starttls = s.mask_starttls[(p.tcp_flags & net::kTcpAck) ? p.sport : p.dport];
    f.start(&w.tcp_limits, w.pool.get(), lim, &w.events, now, s.retain ? s.cfg.retain_bytes : 0);
    f.set_content_limits(&s.collect);  // rules may be loaded at any time: always collect (bounded)
  }
  uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
  if (f.enforced.active) {
    if (!f.enforced.held) speak_for_server(s, w, out, m, p, f, f.tcp().client_is_a() == ref.src_is_a);
    return Disposition::drop;  // the server's half is gone (or about to be)
  }
  bool masked = false;
  if (s.mask_starttls[p.sport] && p.payload_len && f.tcp().client_is_a() != ref.src_is_a)
    masked = mask_starttls({frame + p.payload_offset, p.payload_len});
  if (masked) ++w.starttls_masked;
  if (p.tcp_flags & net::kTcpUrg) {
    // Without SO_OOBINLINE (no MTA sets it) Linux takes the urgent byte out
    // of the stream: the server would read other bytes than the engines.
    // Cleared, the byte stays in line for both.
    clear_urgent(frame, p);
    d[WorkerCounter::urgent_cleared] += 1;
    masked = true;
  }
  tcp::SegmentVerdict v = f.on_segment(ref.src_is_a, p, {frame + p.payload_offset, p.payload_len}, w.tcp_local, now);
  if (masked && v == tcp::SegmentVerdict::forward) v = tcp::SegmentVerdict::forward_rewritten;
  if (!f.has_endpoints() && f.tcp().state() != tcp::TcpFlow::State::none) {
    bool client_is_src = f.tcp().client_is_a() == ref.src_is_a;
    std::string src = net::format_endpoint(p.src, p.sport, p.l3), dst = net::format_endpoint(p.dst, p.dport, p.l3);
    f.set_endpoints(client_is_src ? src : dst, client_is_src ? dst : src);
  }
  if (v == tcp::SegmentVerdict::forward_rewritten) fix_tcp_checksum(frame, p);
  const bool from_client = f.tcp().client_is_a() == ref.src_is_a;
  verdict::Action action = f.take_action();
  const bool ended_here = f.take_message_ended();
  const char* why = f.take_desync();
  // A message judged in this segment is answered by its verdict (the
  // segment is dropped or parked either way); a desync decides otherwise.
  if (why && !(from_client && !verdict::delivers(action))) {
    if (ended_here && !s.desync_pass) f.set_outcome(verdict::Action::tempfail, "", "desync");
    // The engine no longer knows what the server reads: nothing of this
    // segment may pass unless the operator chose fail-open.
    WorkerEvents::add(w.events.desyncs, 1);
    if (s.desync_pass) {
      d[WorkerCounter::desync_passed] += 1;
      f.bypass(w.tcp_local);
      return v == tcp::SegmentVerdict::drop ? Disposition::drop : Disposition::forward;
    }
    if (s.cfg.desync_action == "reset") {
      d[WorkerCounter::desync_reset] += 1;
      reset_both(s, w, out, m, p);
      f.close(w.tcp_local);
      return Disposition::drop;
    }
    d[WorkerCounter::desync_tempfailed] += 1;
    std::string reply = std::string("451 4.7.0 sekisho: session cannot be inspected (") + why + "), try again later\r\n";
    if (from_client) {
      answer_held(s, w, out, m, p, &f, f.tcp().next_seq(false), reply, false);
    } else {
      // A server segment: the client still expects it at p.seq; the server
      // expects the client's next byte.
      enforce::TcpSegmentSpec to_client;
      to_client.seq = p.seq;
      to_client.ack = f.tcp().next_seq(true);
      to_client.flags = net::kTcpAck | net::kTcpPsh;
      to_client.payload = {reinterpret_cast<const uint8_t*>(reply.data()), reply.size()};
      inject(s, w, out, m, p, false, to_client);
      enforce::TcpSegmentSpec to_server;
      to_server.seq = f.tcp().next_seq(true);
      to_server.flags = net::kTcpRst;
      inject(s, w, out, m, p, true, to_server);
      f.enforced.active = true;
      f.enforced.server_seq = p.seq + uint32_t(reply.size());
    }
    f.close(w.tcp_local);
    return Disposition::drop;
  }
  if (ended_here && verdict::delivers(action)) w.hold_ended = true;
  if (action == verdict::Action::quarantine && from_client) {
    bool complete = false;
    std::string body = f.take_retained(complete);
    const smtp::Transaction* t = f.smtp() ? f.smtp()->last_ended() : nullptr;
    auto* job = new SpoolJob;
    if (complete && t && w.spool_ring) {
      pipeline::MessageRecord rec;
      rec.ts = now;
      rec.client = f.client_endpoint();
      rec.server = f.server_endpoint();
      rec.session = &f.smtp()->facts();
      rec.txn = t;
      f.fill_last_verdict(rec);        // MIME facts and the verdict (quarantine, rule, reference) for the control plane
      rec.spool = "new/" + rec.verdict.id + ".msg";
      rec.sha256 = f.sha256_so_far();  // the running hash, not a second pass over the copy
      job->id = rec.verdict.id;
      job->header = pipeline::message_json(rec).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      job->message = std::move(body);
      job->held = m;
      job->key = ref.key;
      job->server_seq = f.tcp().next_seq(false);
      job->deadline_tsc = rte_rdtsc() + uint64_t(s.tsc_hz * double(s.cfg.hold_timeout_ms) / 1000.0);
      if (rte_ring_sp_enqueue(w.spool_ring, job) == 0) {
        w.parked.push_back(job);
        f.enforced.active = true;
        f.enforced.held = true;  // retransmissions of the held segment are dropped meanwhile
        return Disposition::parked;
      }
    }
    // Cannot hold it (too large to retain, no spool, queue full): fail closed.
    delete job;
    WorkerEvents::add(w.events.hold_failed, 1);
    std::string reply = "451 4.3.0 Message cannot be held now, try later (ref " + f.last_reference() + ")\r\n";
    answer_held(s, w, out, m, p, &f, f.tcp().next_seq(false), reply, false);
    f.set_outcome(verdict::Action::tempfail, "");
    f.close(w.tcp_local);
    return Disposition::drop;
  }
  if (!verdict::delivers(action) && from_client) {
    // This segment completes a message the policy refuses: it never reaches
    // the server. The client hears the verdict from "the server"; the
    // server's half is reset at the sequence number it expects.
    std::string reply = (action == verdict::Action::reject ? "550 5.7.1 " : "451 4.7.1 ") +
                        reply_text(f.last_reply_text(), action == verdict::Action::reject
                                                            ? "Message rejected by policy"
                                                            : "Message deferred by policy, try later") +
                        " (ref " + f.last_reference() + ")\r\n";
    answer_held(s, w, out, m, p, &f, f.tcp().next_seq(false), reply, false);
    f.close(w.tcp_local);  // the verdict is final: report the message and session now
    return Disposition::drop;
  }
  return v == tcp::SegmentVerdict::drop ? Disposition::drop : Disposition::forward;
}

// Spool results and hold deadlines: answer the clients of parked messages.
void settle_held(BridgeState& s, WorkerState& w, Injected& out) {
  if (!w.done_ring) return;
  auto finish = [&](SpoolJob* job, bool ok) {
    net::Packet p;
    rte_mbuf* held = job->held;
    std::span<const uint8_t> frame(rte_pktmbuf_mtod(held, const uint8_t*), rte_pktmbuf_data_len(held));
    net::decode(frame, p);
    bool created = false;
    auto* slot = w.flows->find(job->key, net::symmetric_hash(job->key), false, created);
    pipeline::Connection* f = slot ? &slot->value : nullptr;
    if (f) f->enforced.held = false;
    std::string reply = ok ? "250 2.0.0 Ok: held as " + job->id + "\r\n421 4.3.0 sekisho: closing connection\r\n"
                           : "451 4.3.0 Message cannot be held now, try later (ref " + job->id + ")\r\n";
    answer_held(s, w, out, held, p, f, job->server_seq, reply, ok);
    if (f) {
      f->set_outcome(ok ? verdict::Action::quarantine : verdict::Action::tempfail, ok ? job->path : "");
      f->close(w.tcp_local);
    }
    if (!ok) WorkerEvents::add(w.events.hold_failed, 1);
    else WorkerEvents::add(w.events.quarantined, 1);
    rte_pktmbuf_free(held);
    job->held = nullptr;
  };
  // The deadline's fail-open fallback: the held segment goes on to the
  // server, which accepts the message as if nothing had held it.
  auto release = [&](SpoolJob* job) {
    rte_mbuf* held = job->held;
    job->held = nullptr;
    bool created = false;
    auto* slot = w.flows->find(job->key, net::symmetric_hash(job->key), false, created);
    if (slot) {
      slot->value.enforced = pipeline::Connection::Enforced{};
      slot->value.set_outcome(verdict::Action::pass, "", "hold_timeout");
    }
    if (out.n < Injected::kMax) out.m[out.n++] = held;  // to the peer of the port it came in on: the server
    else rte_pktmbuf_free(held);                        // the client retransmits it
    WorkerEvents::add(w.events.hold_timeout_passed, 1);
  };
  void* done[16];
  unsigned n = rte_ring_sc_dequeue_burst(w.done_ring, done, 16, nullptr);
  for (unsigned i = 0; i < n; ++i) {
    auto* job = static_cast<SpoolJob*>(done[i]);
    if (!job->timed_out) finish(job, job->ok);
    else if (job->ok && s.cfg.hold_timeout_pass && !job->path.empty())
      unlink(job->path.c_str());  // delivered by the fallback: no held copy may be released a second time
    w.parked.erase(std::remove(w.parked.begin(), w.parked.end(), job), w.parked.end());
    delete job;
  }
  if (w.parked.empty()) return;
  uint64_t now = rte_rdtsc();
  for (SpoolJob* job : w.parked) {
    if (!job->timed_out && now > job->deadline_tsc) {
      job->timed_out = true;  // the spool thread still owns it; it comes back on done_ring
      WorkerEvents::add(w.events.hold_timeouts, 1);
      if (s.cfg.hold_timeout_pass) release(job);
      else finish(job, false);
    }
  }
}

// Ends finished flows and flows idle past the timeout, a few slots a call.
void sweep_flows(BridgeState& s, WorkerState& w) {
  const double now = wall_now(s);
  w.flows->sweep(8, [&](tcp::FlowTable<pipeline::Connection>::Slot& slot) {
    pipeline::Connection& f = slot.value;
    bool closed = f.tcp().state() == tcp::TcpFlow::State::closed;
    // Handshakes that never complete (SYN floods, scans) get a short life.
    double timeout = f.tcp().state() == tcp::TcpFlow::State::syn_sent ? std::min(10.0, double(s.cfg.flow_idle_timeout_s))
                                                                      : double(s.cfg.flow_idle_timeout_s);
    bool idle = now - f.last_seen() > timeout;
    if (closed && f.enforced.active && !f.enforced.done && !idle) return;  // still answering the client
    if (closed || idle) {
      if (!closed) ++w.tcp_local[size_t(tcp::Event::flows_expired)];
      f.close(w.tcp_local);
      w.flows->erase(&slot);
    }
  });
}

void record_holds(const BridgeState& s, WorkerState& w) {
  if (!w.hold_n) return;
  const uint64_t now = rte_rdtsc();
  for (unsigned i = 0; i < w.hold_n; ++i) {
    double ns = double(now - w.hold_t0[i]) * 1e9 / s.tsc_hz;
    unsigned b = std::min<unsigned>(unsigned(ns / 100), WorkerState::kHoldBuckets);
    __atomic_store_n(&w.hold_hist[b], w.hold_hist[b] + 1, __ATOMIC_RELAXED);
  }
  w.hold_n = 0;
}

void publish_stream(WorkerState& w) {
  for (size_t i = 0; i < tcp::kEventCount; ++i) {
    if (w.tcp_local[i]) {
      __atomic_store_n(&w.tcp_shared[i], __atomic_load_n(&w.tcp_shared[i], __ATOMIC_RELAXED) + w.tcp_local[i],
                       __ATOMIC_RELAXED);
      w.tcp_local[i] = 0;
    }
  }
}

// |flush(bufs, count)| hands frames on at once: used when a segment that
// ends a passed message is ready, so the hold does not wait for the rest of
// the burst. Frames are flushed in order, so a flow's order is kept.
template <class Flush>
void process_burst(BridgeState& s, WorkerState& w, rte_mbuf** bufs, unsigned n, unsigned& kept,
                   CounterBlock& d, Injected& out, Flush&& flush) {
  unsigned flushed = 0;
  kept = 0;
  const bool bypass = s.bypass.load(std::memory_order_relaxed);
  w.hold_n = 0;
  for (unsigned i = 0; i < n; ++i) {
    if (i + kPrefetchAhead < n) rte_prefetch0(rte_pktmbuf_mtod(bufs[i + kPrefetchAhead], void*));
    rte_mbuf* m = bufs[i];
    const uint64_t t0 = rte_rdtsc();
    w.hold_ended = false;
    d[WorkerCounter::rx_pkts] += 1;
    d[WorkerCounter::rx_bytes] += rte_pktmbuf_pkt_len(m);
    if (m->nb_segs > 1) {
      // Decode reads one contiguous frame: a chained one would decode as
      // truncated and pass as malformed, its TCP payload unread.
      if (rte_pktmbuf_linearize(m) != 0) {
        d[WorkerCounter::multiseg_dropped] += 1;
        rte_pktmbuf_free(m);
        continue;
      }
      d[WorkerCounter::multiseg_linearized] += 1;
    }
    std::span<const uint8_t> frame(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m));
    net::Packet p;
    net::DecodeStatus st = net::decode(frame, p);
    d.decode[size_t(st)] += 1;
    if (st == net::DecodeStatus::vlan_too_deep || st == net::DecodeStatus::ipv6_ext_chain ||
        st == net::DecodeStatus::encapsulated) {
      d[WorkerCounter::undecodable] += 1;
      if (s.cfg.undecodable == "drop") {
        d[WorkerCounter::undecodable_dropped] += 1;
        rte_pktmbuf_free(m);
        continue;
      }
    }
    if (st == net::DecodeStatus::ip_fragment &&
        (p.ip_proto == net::kProtoTcp ||
         (p.l3 == net::L3::ipv6 && p.ip_proto != net::kProtoUdp && p.ip_proto != net::kProtoIcmp6))) {
      d[WorkerCounter::tcp_fragments] += 1;
      if (s.cfg.ip_fragments == "drop") {
        d[WorkerCounter::tcp_fragments_dropped] += 1;
        rte_pktmbuf_free(m);
        continue;
      }
    }
    bool malformed = st != net::DecodeStatus::ok && st != net::DecodeStatus::ip_fragment &&
                     st != net::DecodeStatus::non_ip && st != net::DecodeStatus::vlan_too_deep &&
                     st != net::DecodeStatus::ipv6_ext_chain && st != net::DecodeStatus::encapsulated;
    if (malformed) {
      d[WorkerCounter::malformed] += 1;
      if (s.cfg.malformed == MalformedPolicy::drop) {
        d[WorkerCounter::malformed_dropped] += 1;
        rte_pktmbuf_free(m);
        continue;
      }
    } else if (p.l3 == net::L3::none) {
      d[WorkerCounter::other_pkts] += 1;
    } else if (p.ip_proto == net::kProtoTcp) {
      d[WorkerCounter::tcp_pkts] += 1;
    } else if (p.ip_proto == net::kProtoUdp) {
      d[WorkerCounter::udp_pkts] += 1;
    } else if (p.ip_proto == net::kProtoIcmp || p.ip_proto == net::kProtoIcmp6) {
      d[WorkerCounter::icmp_pkts] += 1;
    } else {
      d[WorkerCounter::other_pkts] += 1;
    }
    if (st == net::DecodeStatus::ok && p.ip_proto == net::kProtoTcp && (s.smtp_port[p.sport] || s.smtp_port[p.dport])) {
      if (bypass) {
        d[WorkerCounter::bypassed] += 1;
      } else {
        Disposition disp = inspect_segment(s, w, m, p, out, d);
        if (disp == Disposition::parked) continue;  // the spool job owns the frame now
        if (disp == Disposition::drop) {
          rte_pktmbuf_free(m);
          continue;
        }
        if (w.hold_ended) {
          w.hold_t0[w.hold_n++] = t0;
          bufs[kept++] = m;
          d[WorkerCounter::tx_pkts] += 1;
          d[WorkerCounter::tx_bytes] += rte_pktmbuf_pkt_len(m);
          flush(bufs + flushed, kept - flushed);
          flushed = kept;
          record_holds(s, w);
          goto next_packet;
        }
      }
    }
    if (st == net::DecodeStatus::ok && (p.ip_proto == net::kProtoTcp || p.ip_proto == net::kProtoUdp)) {
      net::FlowRef ref = net::flow_ref(p);
      switch (w.census->touch(ref, net::symmetric_hash(ref.key))) {
        case net::FlowCensus::Touch::created: d[WorkerCounter::flows_created] += 1; break;
        case net::FlowCensus::Touch::full: d[WorkerCounter::flow_table_full] += 1; break;
        default: break;
      }
    }
    d[WorkerCounter::tx_pkts] += 1;
    d[WorkerCounter::tx_bytes] += rte_pktmbuf_pkt_len(m);
    bufs[kept++] = m;
  next_packet:;
  }
  // What is left for the caller starts at |flushed|: move it to the front.
  if (flushed) {
    for (unsigned i = flushed; i < kept; ++i) bufs[i - flushed] = bufs[i];
    kept -= flushed;
  }
}

// Transmits |n| frames on |port|, retrying briefly; frees and counts the rest.
void transmit(uint16_t port_id, uint16_t queue, rte_mbuf** bufs, unsigned n, PortCounters& pc) {
  unsigned sent = 0;
  uint64_t bytes = 0;
  for (unsigned i = 0; i < n; ++i) bytes += rte_pktmbuf_pkt_len(bufs[i]);
  for (unsigned t = 0; t < kTxRetries && sent < n; ++t)
    sent += rte_eth_tx_burst(port_id, queue, bufs + sent, uint16_t(n - sent));
  for (unsigned i = sent; i < n; ++i) bytes -= rte_pktmbuf_pkt_len(bufs[i]);
  if (sent < n) rte_pktmbuf_free_bulk(bufs + sent, n - sent);
  add_relaxed(pc.tx_pkts, sent);
  add_relaxed(pc.tx_bytes, bytes);
  add_relaxed(pc.tx_dropped, n - sent);
}

void idle(BridgeState& s, unsigned& idle_rounds, uint64_t* sleeps) {
  if (s.cfg.idle_sleep_us == 0) { rte_pause(); return; }
  if (++idle_rounds >= kIdleRoundsBeforeSleep) {
    rte_delay_us_sleep(s.cfg.idle_sleep_us);
    if (sleeps) add_relaxed(*sleeps, 1);
  }
}

// Software dispatch, worker side: ring in, process, ring out.
int worker_loop_software(BridgeState& s, WorkerState& w) {
  rte_mbuf* bufs[kMaxBurst];
  CounterBlock d;
  unsigned idle_rounds = 0;
  rte_rcu_qsbr_thread_online(s.qs, w.index);
  while (!g_stop.load(std::memory_order_relaxed)) {
    rte_rcu_qsbr_quiescent(s.qs, w.index);
    sweep_flows(s, w);
    if (!w.parked.empty() || (w.done_ring && rte_ring_count(w.done_ring))) {
      Injected answers;
      settle_held(s, w, answers);
      unsigned qa = rte_ring_sp_enqueue_burst(w.tx_ring, reinterpret_cast<void**>(answers.m), answers.n, nullptr);
      if (qa < answers.n) rte_pktmbuf_free_bulk(answers.m + qa, answers.n - qa);
    }
    unsigned n = rte_ring_sc_dequeue_burst(w.rx_ring, reinterpret_cast<void**>(bufs), s.cfg.burst, nullptr);
    if (n == 0) { publish_stream(w); idle(s, idle_rounds, nullptr); continue; }
    idle_rounds = 0;
    unsigned kept = 0;
    Injected injected;
    auto to_ring = [&](rte_mbuf** b, unsigned c) {
      unsigned e = rte_ring_sp_enqueue_burst(w.tx_ring, reinterpret_cast<void**>(b), c, nullptr);
      if (e < c) {
        rte_pktmbuf_free_bulk(b + e, c - e);
        d[WorkerCounter::tx_ring_full] += c - e;
        d[WorkerCounter::tx_pkts] -= c - e;
      }
    };
    process_burst(s, w, bufs, n, kept, d, injected, to_ring);
    unsigned q = rte_ring_sp_enqueue_burst(w.tx_ring, reinterpret_cast<void**>(bufs), kept, nullptr);
    if (injected.n) {
      unsigned qi = rte_ring_sp_enqueue_burst(w.tx_ring, reinterpret_cast<void**>(injected.m), injected.n, nullptr);
      if (qi < injected.n) rte_pktmbuf_free_bulk(injected.m + qi, injected.n - qi);
    }
    if (q < kept) {
      rte_pktmbuf_free_bulk(bufs + q, kept - q);
      d[WorkerCounter::tx_ring_full] += kept - q;
      d[WorkerCounter::tx_pkts] -= kept - q;
    }
    record_holds(s, w);
    publish(w.counters, d);
    publish_stream(w);
  }
  rte_rcu_qsbr_thread_offline(s.qs, w.index);
  return 0;
}

// RSS dispatch: worker w owns queue w of every port.
int worker_loop_rss(BridgeState& s, WorkerState& w) {
  rte_mbuf* bufs[kMaxBurst];
  CounterBlock d;
  unsigned idle_rounds = 0;
  const uint16_t q = uint16_t(w.index);
  rte_rcu_qsbr_thread_online(s.qs, w.index);
  while (!g_stop.load(std::memory_order_relaxed)) {
    rte_rcu_qsbr_quiescent(s.qs, w.index);
    bool any = false;
    sweep_flows(s, w);
    if (!w.parked.empty() || (w.done_ring && rte_ring_count(w.done_ring))) {
      Injected answers;
      settle_held(s, w, answers);
      for (unsigned i = 0; i < answers.n; ++i) {
        const Port& o = s.ports[s.ports[unsigned(s.index_of_port_id[answers.m[i]->port])].peer];
        transmit(o.id, q, &answers.m[i], 1, w.port[o.id]);
      }
    }
    for (const Port& p : s.ports) {
      uint16_t n = rte_eth_rx_burst(p.id, q, bufs, uint16_t(s.cfg.burst));
      if (n == 0) continue;
      any = true;
      uint64_t bytes = 0;
      for (unsigned i = 0; i < n; ++i) bytes += rte_pktmbuf_pkt_len(bufs[i]);
      add_relaxed(w.port[p.id].rx_pkts, n);
      add_relaxed(w.port[p.id].rx_bytes, bytes);
      unsigned kept = 0;
      Injected injected;
      const Port& out = s.ports[p.peer];
      process_burst(s, w, bufs, n, kept, d, injected,
                    [&](rte_mbuf** b, unsigned c) { transmit(out.id, q, b, c, w.port[out.id]); });
      transmit(out.id, q, bufs, kept, w.port[out.id]);
      record_holds(s, w);
      for (unsigned i = 0; i < injected.n; ++i) {  // injected frames go where their m->port says
        const Port& o = s.ports[s.ports[unsigned(s.index_of_port_id[injected.m[i]->port])].peer];
        transmit(o.id, q, &injected.m[i], 1, w.port[o.id]);
      }
    }
    publish(w.counters, d);
    publish_stream(w);
    if (!any) idle(s, idle_rounds, nullptr); else idle_rounds = 0;
  }
  rte_rcu_qsbr_thread_offline(s.qs, w.index);
  return 0;
}

// Software dispatch, io side (main lcore): RX all ports, hash, hand to
// workers; drain worker TX rings to the paired ports.
void io_loop(BridgeState& s) {
  rte_mbuf* bufs[kMaxBurst];
  const unsigned nw = unsigned(s.workers.size());
  std::vector<std::array<rte_mbuf*, kMaxBurst>> stage(nw);
  std::vector<unsigned> staged(nw, 0);
  std::vector<std::array<rte_mbuf*, kMaxBurst>> out(s.ports.size());
  std::vector<unsigned> outn(s.ports.size(), 0);
  unsigned idle_rounds = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    bool any = false;
    for (const Port& p : s.ports) {
      uint16_t n = rte_eth_rx_burst(p.id, 0, bufs, uint16_t(s.cfg.burst));
      if (n == 0) continue;
      any = true;
      uint64_t bytes = 0;
      for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* m = bufs[i];
        bytes += rte_pktmbuf_pkt_len(m);
        std::span<const uint8_t> frame(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m));
        net::Packet pk;
        net::DecodeStatus st = net::decode(frame, pk);
        uint32_t h = net::symmetric_hash_frame(frame, pk, st);
        unsigned w = nw == 1 ? 0 : h % nw;
        stage[w][staged[w]++] = m;
      }
      add_relaxed(s.io.port[p.id].rx_pkts, n);
      add_relaxed(s.io.port[p.id].rx_bytes, bytes);
      for (unsigned w = 0; w < nw; ++w) {
        if (!staged[w]) continue;
        unsigned q = rte_ring_sp_enqueue_burst(s.workers[w]->rx_ring,
                                               reinterpret_cast<void**>(stage[w].data()), staged[w], nullptr);
        add_relaxed(s.io.dispatched, q);
        if (q < staged[w]) {
          rte_pktmbuf_free_bulk(stage[w].data() + q, staged[w] - q);
          add_relaxed(s.io.dispatch_ring_full, staged[w] - q);
        }
        staged[w] = 0;
      }
    }
    for (unsigned w = 0; w < nw; ++w) {
      unsigned n = rte_ring_sc_dequeue_burst(s.workers[w]->tx_ring, reinterpret_cast<void**>(bufs),
                                             s.cfg.burst, nullptr);
      if (n == 0) continue;
      any = true;
      for (unsigned i = 0; i < n; ++i) {
        int idx = s.index_of_port_id[bufs[i]->port];
        unsigned o = s.ports[unsigned(idx)].peer;
        out[o][outn[o]++] = bufs[i];
      }
      for (unsigned o = 0; o < s.ports.size(); ++o) {
        if (!outn[o]) continue;
        transmit(s.ports[o].id, 0, out[o].data(), outn[o], s.io.port[s.ports[o].id]);
        outn[o] = 0;
      }
    }
    if (!any) idle(s, idle_rounds, &s.io.idle_sleeps); else idle_rounds = 0;
  }
}

int launch_worker(void* arg) {
  auto* pair = static_cast<std::pair<BridgeState*, WorkerState*>*>(arg);
  mime::preload_sniffer();  // libmagic's database, per thread: not at the first attachment's hold point
  return pair->first->rss ? worker_loop_rss(*pair->first, *pair->second)
                          : worker_loop_software(*pair->first, *pair->second);
}

bool has_lcore_option(const std::vector<std::string>& eal) {
  for (const auto& a : eal)
    if (a == "-l" || a == "-c" || a.rfind("--lcores", 0) == 0 || (a.rfind("-l", 0) == 0 && a.size() > 2 && isdigit(a[2])))
      return true;
  return false;
}

std::string af_packet_iface(const std::string& device) {
  auto pos = device.find("iface=");
  if (pos == std::string::npos) return "";
  auto end = device.find(',', pos);
  return device.substr(pos + 6, end == std::string::npos ? std::string::npos : end - pos - 6);
}

// A symmetric Toeplitz key: 0x6d5a repeated maps (a,b) and (b,a) alike.
std::array<uint8_t, 40> symmetric_rss_key() {
  std::array<uint8_t, 40> k{};
  for (size_t i = 0; i < k.size(); i += 2) { k[i] = 0x6d; k[i + 1] = 0x5a; }
  return k;
}

}  // namespace

void Bridge::request_stop() { g_stop.store(true); }

void Bridge::set_bypass(bool on) { s_->bypass.store(on); }

std::string Bridge::release(const std::string& sha256_hex, uint64_t ttl_s, size_t& pending) {
  uint64_t now = uint64_t(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
  auto r = s_->releases.add(sha256_hex, now, ttl_s);
  pending = s_->releases.pending();
  switch (r) {
    case pipeline::ReleaseList::AddResult::added: return "added";
    case pipeline::ReleaseList::AddResult::refreshed: return "refreshed";
    case pipeline::ReleaseList::AddResult::bad_hash: return "error: not a SHA-256 in hex";
    case pipeline::ReleaseList::AddResult::full: return "error: release list full";
  }
  return "error";
}
bool Bridge::bypass() const { return s_->bypass.load(); }

Bridge::Bridge(const DataplaneConfig& cfg, const std::string& argv0) : s_(std::make_unique<BridgeState>()) {
  BridgeState& s = *s_;
  s.cfg = cfg;
  s.index_of_port_id.fill(-1);

  // 1. Checks EAL would only report vaguely.
  for (const auto& p : cfg.ports) {
    if (p.dpdk_name().rfind("net_af_packet", 0) == 0) {
      std::string ifn = af_packet_iface(p.device);
      if (ifn.empty()) throw ConfigError(cfg.file, p.line, "port '" + p.name + "': net_af_packet needs iface=NAME");
      if (if_nametoindex(ifn.c_str()) == 0)
        throw ConfigError(cfg.file, p.line, "port '" + p.name + "': interface '" + ifn +
                                                "' does not exist in this network namespace");
    }
  }
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  sched_getaffinity(0, sizeof cpus, &cpus);
  std::vector<int> cpu_ids;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &cpus)) cpu_ids.push_back(c);
  if (cfg.workers > cpu_ids.size())
    throw ConfigError(cfg.file, cfg.workers_line,
                      "workers = " + std::to_string(cfg.workers) + ": this machine gives only " +
                          std::to_string(cpu_ids.size()) + " CPUs");

  // 2. EAL.
  std::vector<std::string> args = {argv0};
  args.insert(args.end(), cfg.eal.begin(), cfg.eal.end());
  if (!has_lcore_option(cfg.eal)) {
    // main lcore 0 (io), workers 1..N, spread over the CPUs we may use.
    std::string l = "--lcores=";
    for (unsigned i = 0; i <= cfg.workers; ++i)
      l += (i ? "," : "") + std::to_string(i) + "@" + std::to_string(cpu_ids[i % cpu_ids.size()]);
    args.push_back(l);
  }
  for (const auto& p : cfg.ports) {
    if (p.is_vdev()) args.push_back("--vdev=" + p.device);
    else { args.push_back("-a"); args.push_back(p.device); }
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (rte_eal_init(int(args.size()), argv.data()) < 0)
    throw ConfigError(cfg.file, cfg.eal_line, std::string("EAL initialisation failed: ") + rte_strerror(rte_errno));

  // 3. Ports.
  for (size_t i = 0; i < cfg.ports.size(); ++i) {
    uint16_t id;
    if (rte_eth_dev_get_port_by_name(cfg.ports[i].dpdk_name().c_str(), &id) != 0)
      throw ConfigError(cfg.file, cfg.ports[i].line, "port '" + cfg.ports[i].name + "': DPDK has no device '" +
                                                         cfg.ports[i].dpdk_name() + "' (probe failed?)");
    s.ports.push_back({cfg.ports[i].name, id, 0});
    s.index_of_port_id[id] = int(i);
  }
  for (const auto& pp : cfg.pairs) {
    s.ports[pp.a].peer = pp.b;
    s.ports[pp.b].peer = pp.a;
  }
  bool rss_ok = true;
  std::string rss_why;
  for (const Port& p : s.ports) {
    rte_eth_dev_info info;
    if (rte_eth_dev_info_get(p.id, &info) != 0) throw std::runtime_error("cannot query port " + p.name);
    if (!(info.flow_type_rss_offloads & RTE_ETH_RSS_IP) || info.max_rx_queues < cfg.workers ||
        info.max_tx_queues < cfg.workers) {
      rss_ok = false;
      rss_why = "port '" + p.name + "' (" + info.driver_name + ") has no RSS over " +
                std::to_string(cfg.workers) + " queues";
    }
  }
  if (cfg.dispatch == DispatchMode::rss && !rss_ok) throw ConfigError(cfg.file, cfg.dispatch_line, "dispatch = \"rss\": " + rss_why);
  s.rss = cfg.dispatch == DispatchMode::rss || (cfg.dispatch == DispatchMode::automatic && rss_ok);
  const unsigned need_lcores = cfg.workers + 1;
  if (rte_lcore_count() < need_lcores)
    throw ConfigError(cfg.file, cfg.workers_line ? cfg.workers_line : cfg.eal_line,
                      "workers = " + std::to_string(cfg.workers) + " needs " + std::to_string(need_lcores) +
                          " lcores; EAL gave " + std::to_string(rte_lcore_count()));

  s.pool = rte_pktmbuf_pool_create("sekisho_mbufs", cfg.mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, int(rte_socket_id()));
  if (!s.pool)
    throw ConfigError(cfg.file, cfg.eal_line, std::string("cannot create the mbuf pool (raise EAL memory -m?): ") +
                                                  rte_strerror(rte_errno));

  auto key = symmetric_rss_key();
  for (const Port& p : s.ports) {
    rte_eth_dev_info info;
    rte_eth_dev_info_get(p.id, &info);
    rte_eth_conf conf{};
    uint16_t nq = s.rss ? uint16_t(cfg.workers) : 1;
    if (s.rss) {
      conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
      conf.rx_adv_conf.rss_conf.rss_key = key.data();
      conf.rx_adv_conf.rss_conf.rss_key_len = uint8_t(key.size());
      conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    }
    int rc = rte_eth_dev_configure(p.id, nq, nq, &conf);
    if (rc != 0) throw std::runtime_error("port " + p.name + ": configure failed: " + rte_strerror(-rc));
    uint16_t nrx = uint16_t(cfg.rx_descriptors), ntx = uint16_t(cfg.tx_descriptors);
    rte_eth_dev_adjust_nb_rx_tx_desc(p.id, &nrx, &ntx);
    for (uint16_t q = 0; q < nq; ++q) {
      rc = rte_eth_rx_queue_setup(p.id, q, nrx, rte_eth_dev_socket_id(p.id), nullptr, s.pool);
      if (rc != 0) throw std::runtime_error("port " + p.name + ": rx queue setup failed: " + rte_strerror(-rc));
      rc = rte_eth_tx_queue_setup(p.id, q, ntx, rte_eth_dev_socket_id(p.id), nullptr);
      if (rc != 0) throw std::runtime_error("port " + p.name + ": tx queue setup failed: " + rte_strerror(-rc));
    }
    rc = rte_eth_dev_start(p.id);
    if (rc != 0) throw std::runtime_error("port " + p.name + ": start failed: " + rte_strerror(-rc));
    rte_eth_promiscuous_enable(p.id);  // a bump in the wire forwards every frame
  }

  for (unsigned port : cfg.smtp_ports) s.smtp_port[port] = true;
  for (unsigned port : cfg.starttls_mask_ports) s.mask_starttls[port] = true;
  s.desync_pass = cfg.desync_action == "pass";
  // Messages are retained for quarantine whenever a spool exists: a policy
  // reloaded later may quarantine what the first one passed.
  s.retain = !cfg.spool_dir.empty() && cfg.retain_bytes > 0;
  s.collect.text_bytes = s.collect.raw_text_bytes = s.collect.message_bytes = cfg.scan_bytes;
  {
    auto* first = new PolicySet;
    first->policy = evaluator_policy(cfg);
    if (!cfg.ruleset.empty()) {
      std::string err;
      first->content = load_content_rules(cfg.ruleset, cfg.workers, ++s.ruleset_loads, err);
      if (!first->content) {
        delete first;
        throw ConfigError(cfg.file, 0, "dataplane.ruleset: " + err);
      }
    }
    first->source = cfg.file;
    first->version = ++s.policy_versions;
    first->inflight.resize(cfg.workers);
    s.policy.store(first);
  }
  size_t qs_size = rte_rcu_qsbr_get_memsize(cfg.workers);
  s.qs = static_cast<rte_rcu_qsbr*>(rte_zmalloc("sk_rcu", qs_size, RTE_CACHE_LINE_SIZE));
  if (!s.qs || rte_rcu_qsbr_init(s.qs, cfg.workers) != 0) throw std::runtime_error("cannot set up RCU");
  if (!cfg.spool_dir.empty()) {
    try {
      spool::SpoolWriter probe(cfg.spool_dir);
    } catch (const std::exception& e) {
      throw ConfigError(cfg.file, cfg.eal_line, std::string("spool: ") + e.what());
    }
  }
  s.tsc_hz = double(rte_get_tsc_hz());
  s.tsc_at_start = rte_rdtsc();
  s.wall_at_start = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (!cfg.journal_dir.empty()) {
    try {
      spool::JournalOptions jo;
      jo.dir = cfg.journal_dir;
      spool::Journal probe(jo);  // fails now, with the path, if the directory is unusable
    } catch (const std::exception& e) {
      throw ConfigError(cfg.file, cfg.eal_line, std::string("journal: ") + e.what());
    }
  }

  // 4. Workers: rings, flow census and stream engines.
  unsigned lcore = rte_get_next_lcore(-1, 1, 0);
  for (unsigned w = 0; w < cfg.workers; ++w, lcore = rte_get_next_lcore(lcore, 1, 0)) {
    auto ws = std::make_unique<WorkerState>();
    ws->index = w;
    ws->lcore = lcore;
    int sock = int(rte_lcore_to_socket_id(lcore));
    if (!s.rss) {
      std::string rn = "sk_rx" + std::to_string(w), tn = "sk_tx" + std::to_string(w);
      ws->rx_ring = rte_ring_create(rn.c_str(), cfg.ring_size, sock, RING_F_SP_ENQ | RING_F_SC_DEQ);
      ws->tx_ring = rte_ring_create(tn.c_str(), cfg.ring_size, sock, RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (!ws->rx_ring || !ws->tx_ring) throw std::runtime_error("cannot create worker rings: " + std::string(rte_strerror(rte_errno)));
    }
    ws->census_slots = static_cast<net::FlowCensus::Entry*>(
        rte_zmalloc_socket("sk_census", sizeof(net::FlowCensus::Entry) * cfg.flow_table_size, RTE_CACHE_LINE_SIZE, sock));
    if (!ws->census_slots)
      throw ConfigError(cfg.file, cfg.eal_line, "cannot allocate the flow census (flow_table_size too large for EAL memory?)");
    ws->census = std::make_unique<net::FlowCensus>(ws->census_slots, cfg.flow_table_size);
    ws->tcp_limits.buffer_bytes = cfg.reassembly_buffer_bytes;
    ws->tcp_limits.retain_delivered = true;  // inline: retransmissions are compared until acknowledged
    ws->tcp_limits.conflict = cfg.conflict_drop ? tcp::ConflictPolicy::drop : tcp::ConflictPolicy::rewrite;
    ws->tcp_limits.cap = cfg.cap_fail_open ? tcp::CapPolicy::fail_open : tcp::CapPolicy::fail_closed;
    ws->pool = std::make_unique<tcp::BufferPool>(cfg.reassembly_buffer_bytes, cfg.reassembly_buffers);
    ws->flows = std::make_unique<tcp::FlowTable<pipeline::Connection>>(cfg.flow_table_size);
    ws->events.policy = &s.policy;
    ws->events.releases = &s.releases;
    ws->events.worker = w;
    ws->smtp_limits.end_of_data = cfg.end_of_data == "strict" ? smtp::EndOfData::strict : smtp::EndOfData::lenient;
    ws->events.smuggling = evaluator_policy(cfg).smuggling;
    rte_rcu_qsbr_thread_register(s.qs, w);
    if (!cfg.spool_dir.empty()) {
      std::string a = "sk_sp" + std::to_string(w), b = "sk_sd" + std::to_string(w);
      ws->spool_ring = rte_ring_create(a.c_str(), 1024, sock, RING_F_SP_ENQ | RING_F_SC_DEQ);
      ws->done_ring = rte_ring_create(b.c_str(), 1024, sock, RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (!ws->spool_ring || !ws->done_ring) throw std::runtime_error("cannot create the spool rings");
    }
    ws->events.lcore = lcore;
    if (!cfg.journal_dir.empty()) {
      std::string en = "sk_ev" + std::to_string(w);
      ws->events.ring = rte_ring_create(en.c_str(), 4096, sock, RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (!ws->events.ring) throw std::runtime_error("cannot create the event ring: " + std::string(rte_strerror(rte_errno)));
    }
    s.workers.push_back(std::move(ws));
  }
}

Bridge::~Bridge() {
  BridgeState& s = *s_;
  for (const Port& p : s.ports) {
    rte_eth_dev_stop(p.id);
    rte_eth_dev_close(p.id);
  }
  for (auto& w : s.workers) {
    rte_ring_free(w->rx_ring);
    rte_ring_free(w->tx_ring);
    for (rte_ring* r : {w->spool_ring, w->done_ring}) {
      void* job;
      while (r && rte_ring_sc_dequeue(r, &job) == 0) {
        auto* j = static_cast<SpoolJob*>(job);
        if (j->held) rte_pktmbuf_free(j->held);
        delete j;
      }
      rte_ring_free(r);
    }
    if (w->events.ring) {
      void* line;
      while (rte_ring_sc_dequeue(w->events.ring, &line) == 0) delete static_cast<std::string*>(line);
      rte_ring_free(w->events.ring);
    }
    rte_free(w->census_slots);
  }
  rte_mempool_free(s.pool);
  for (auto& [set, token] : s.retired) delete set;
  delete s.policy.load();
  rte_free(s.qs);
  rte_eal_cleanup();
}

const char* Bridge::dispatch_name() const { return s_->rss ? "rss" : "software"; }

namespace {

// The journal writer: drains the workers' event rings into the event
// journal, flushing on its count/time bounds. A thread of its own, never an
// lcore: it makes syscalls.
void journal_loop(BridgeState& s, std::atomic<bool>& done) {
  spool::JournalOptions jo;
  jo.dir = s.cfg.journal_dir;
  jo.flush_count = s.cfg.journal_flush_count;
  jo.flush_interval = std::chrono::milliseconds(s.cfg.journal_flush_ms);
  spool::Journal journal(jo);
  void* lines[64];
  for (;;) {
    bool finishing = done.load();
    unsigned got = 0;
    for (auto& w : s.workers) {
      unsigned n = rte_ring_sc_dequeue_burst(w->events.ring, lines, 64, nullptr);
      for (unsigned i = 0; i < n; ++i) {
        auto* line = static_cast<std::string*>(lines[i]);
        journal.append(*line);
        delete line;
      }
      got += n;
    }
    journal.tick();
    if (finishing && got == 0) break;
    if (got == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  journal.flush();
}

// The spool writer: makes each quarantined message durable (file and
// directory fsync'ed) and hands the job back; the worker answers the client
// only then.
void spool_loop(BridgeState& s, std::atomic<bool>& done) {
  spool::SpoolWriter writer(s.cfg.spool_dir);
  void* jobs[16];
  for (;;) {
    bool finishing = done.load();
    unsigned got = 0;
    for (auto& w : s.workers) {
      unsigned n = rte_ring_sc_dequeue_burst(w->spool_ring, jobs, 16, nullptr);
      for (unsigned i = 0; i < n; ++i) {
        auto* job = static_cast<SpoolJob*>(jobs[i]);
        if (s.cfg.spool_fault_delay_ms)  // fault injection (tests): a slow disk
          std::this_thread::sleep_for(std::chrono::milliseconds(s.cfg.spool_fault_delay_ms));
        spool::SpoolResult r = writer.write(job->id, job->header,
                                            {reinterpret_cast<const uint8_t*>(job->message.data()), job->message.size()});
        job->ok = r.ok;
        job->path = r.path;
        job->error = r.error;
        if (!r.ok) fprintf(stderr, "sekisho-dataplane: spool: %s: %s\n", job->id.c_str(), r.error.c_str());
        job->message.clear();
        job->message.shrink_to_fit();
        while (rte_ring_sp_enqueue(w->done_ring, job) != 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      got += n;
    }
    if (finishing && got == 0) break;
    if (got == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

namespace {

// Frees replaced policy sets no worker can reach and no message holds.
void reclaim_policies(BridgeState& s) {
  std::lock_guard<std::mutex> lock(s.policy_mu);
  for (auto it = s.retired.begin(); it != s.retired.end();) {
    if (rte_rcu_qsbr_check(s.qs, it->second, false) == 1 && it->first->held() == 0) {
      delete it->first;
      ++s.policy_freed;
      it = s.retired.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace

std::string Bridge::reload_policy(const std::string& path, uint64_t& version, size_t& rules) {
  BridgeState& s = *s_;
  std::vector<EnvelopeRule> parsed;
  try {
    parsed = load_envelope_policy(path);  // off the fast path: the telemetry thread
  } catch (const ConfigError& e) {
    return e.what();
  }
  auto* next = new PolicySet;
  next->source = path;
  next->inflight.resize(s.workers.size());
  std::lock_guard<std::mutex> lock(s.policy_mu);
  next->policy = s.policy.load()->policy;  // the configured stages stay; the envelope rules are replaced
  next->policy.envelope = std::move(parsed);
  next->content = s.policy.load()->content;  // the content ruleset stays
  next->version = ++s.policy_versions;
  PolicySet* old = s.policy.exchange(next, std::memory_order_acq_rel);
  s.retired.emplace_back(old, rte_rcu_qsbr_start(s.qs));
  version = next->version;
  rules = next->policy.envelope.size();
  return "";
}

std::string Bridge::load_rules(const std::string& path, uint64_t& version, std::string& ruleset_version) {
  BridgeState& s = *s_;
  uint64_t load_no;
  {
    std::lock_guard<std::mutex> lock(s.policy_mu);
    load_no = ++s.ruleset_loads;
  }
  std::string err;
  std::shared_ptr<ContentRules> rules;
  if (!path.empty() && path != "none") {
    rules = load_content_rules(path, unsigned(s.workers.size()), load_no, err);  // off the fast path
    if (!rules) return path + ": " + err;
  }
  std::lock_guard<std::mutex> lock(s.policy_mu);
  const PolicySet* cur = s.policy.load();
  auto* next = new PolicySet;
  next->policy = cur->policy;
  next->source = cur->source;
  next->content = std::move(rules);
  next->inflight.resize(s.workers.size());
  next->version = ++s.policy_versions;
  PolicySet* old = s.policy.exchange(next, std::memory_order_acq_rel);
  s.retired.emplace_back(old, rte_rcu_qsbr_start(s.qs));
  version = next->version;
  ruleset_version = next->content ? std::string(next->content->ruleset->version()) : "none";
  return "";
}

void Bridge::run() {
  BridgeState& s = *s_;
  s.started_tsc = rte_rdtsc();
  std::atomic<bool> journal_done{false};
  std::thread journal;
  if (!s.cfg.journal_dir.empty()) journal = std::thread(journal_loop, std::ref(s), std::ref(journal_done));
  std::atomic<bool> housekeeping_done{false};
  std::thread housekeeping([&s, &housekeeping_done] {
    while (!housekeeping_done.load()) {
      reclaim_policies(s);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  std::atomic<bool> spool_done{false};
  std::thread spool;
  if (!s.cfg.spool_dir.empty()) spool = std::thread(spool_loop, std::ref(s), std::ref(spool_done));
  std::vector<std::pair<BridgeState*, WorkerState*>> args;
  args.reserve(s.workers.size());
  for (auto& w : s.workers) args.emplace_back(&s, w.get());
  for (size_t i = 0; i < s.workers.size(); ++i)
    rte_eal_remote_launch(launch_worker, &args[i], s.workers[i]->lcore);
  if (s.rss) {
    while (!g_stop.load()) rte_delay_us_sleep(10000);
  } else {
    io_loop(s);
  }
  rte_eal_mp_wait_lcore();
  spool_done.store(true);
  if (spool.joinable()) spool.join();
  // Workers are stopped: end their open flows so every session is reported.
  for (auto& w : s.workers) {
    w->flows->for_each([&](tcp::FlowTable<pipeline::Connection>::Slot& slot) { slot.value.close(w->tcp_local); });
    publish_stream(*w);
  }
  journal_done.store(true);
  if (journal.joinable()) journal.join();
  housekeeping_done.store(true);
  housekeeping.join();
  reclaim_policies(s);
}

namespace {

nlohmann::json snapshot(const BridgeState& s) {
  using nlohmann::json;
  json j;
  j["dispatch"] = s.rss ? "rss" : "software";
  j["bypass"] = s.bypass.load();
  {
    std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(s.policy_mu));
    const PolicySet* p = s.policy.load();
    j["policy"] = {{"version", p->version}, {"source", p->source}, {"rules", p->policy.envelope.size()},
                   {"retired_pending", s.retired.size()}, {"freed", s.policy_freed}};
    if (p->content)
      j["policy"]["ruleset"] = {{"path", p->content->path}, {"version", std::string(p->content->ruleset->version())},
                                {"rules", p->content->ruleset->rule_count()}, {"load", p->content->version}};
    else
      j["policy"]["ruleset"] = nullptr;
  }
  j["uptime_s"] = s.started_tsc ? double(rte_rdtsc() - s.started_tsc) / double(rte_get_tsc_hz()) : 0.0;
  json ports = json::object();
  for (const Port& p : s.ports) {
    PortCounters sum;
    auto add = [&](const PortCounters& c) {
      sum.rx_pkts += read_counter(c.rx_pkts);
      sum.rx_bytes += read_counter(c.rx_bytes);
      sum.tx_pkts += read_counter(c.tx_pkts);
      sum.tx_bytes += read_counter(c.tx_bytes);
      sum.tx_dropped += read_counter(c.tx_dropped);
    };
    add(s.io.port[p.id]);
    for (const auto& w : s.workers) add(w->port[p.id]);
    rte_eth_stats es{};
    rte_eth_stats_get(p.id, &es);
    ports[p.name] = {{"port_id", p.id},
                     {"peer", s.ports[p.peer].name},
                     {"rx_pkts", sum.rx_pkts},
                     {"rx_bytes", sum.rx_bytes},
                     {"tx_pkts", sum.tx_pkts},
                     {"tx_bytes", sum.tx_bytes},
                     {"tx_dropped", sum.tx_dropped},
                     {"hw_ipackets", es.ipackets},
                     {"hw_opackets", es.opackets},
                     {"hw_imissed", es.imissed},
                     {"hw_ierrors", es.ierrors},
                     {"hw_oerrors", es.oerrors},
                     {"hw_rx_nombuf", es.rx_nombuf}};
  }
  j["ports"] = ports;
  json workers = json::object();
  json totals = json::object();
  for (const auto& w : s.workers) {
    json wj;
    wj["lcore"] = w->lcore;
    for (size_t i = 0; i < kWorkerCounterCount; ++i) {
      uint64_t v = read_counter(w->counters.v[i]);
      wj[kWorkerCounterNames[i]] = v;
      totals[kWorkerCounterNames[i]] = totals.value(kWorkerCounterNames[i], uint64_t(0)) + v;
    }
    json dec = json::object();
    for (size_t i = 1; i < net::kDecodeStatusCount; ++i) {  // 0 is ok
      uint64_t v = read_counter(w->counters.decode[i]);
      const char* n = net::decode_status_name(net::DecodeStatus(i));
      dec[n] = v;
    }
    wj["decode"] = dec;
    wj["flows"] = w->census->size();
    json stream = json::object();
    for (size_t i = 0; i < tcp::kEventCount; ++i)
      stream[tcp::event_name(tcp::Event(i))] = read_counter(w->tcp_shared[i]);
    stream["tracked_flows"] = w->flows->size();
    stream["reassembly_buffers_in_use"] = w->pool->in_use();
    stream["uninspected_multiseg"] = read_counter(w->uninspected_multiseg);
    stream["starttls_masked"] = read_counter(w->starttls_masked);
    stream["tls_sessions"] = read_counter(w->events.tls_sessions);
    {
      uint64_t total = 0;
      for (const auto& c : w->hold_hist) total += read_counter(c);
      auto pct = [&](double q) -> uint64_t {
        uint64_t want = uint64_t(q * double(total) + 0.999999), seen = 0;
        for (unsigned b = 0; b <= WorkerState::kHoldBuckets; ++b) {
          seen += read_counter(w->hold_hist[b]);
          if (seen >= want && want) return (b + 1) * 100;  // upper edge of the bucket, ns
        }
        return 0;
      };
      stream["hold_samples"] = total;
      stream["hold_p50_ns"] = pct(0.50);
      stream["hold_p99_ns"] = pct(0.99);
    }
    stream["messages"] = read_counter(w->events.messages);
    stream["sessions"] = read_counter(w->events.sessions);
    stream["events_dropped"] = read_counter(w->events.dropped);
    stream["rejected"] = read_counter(w->events.rejected);
    stream["tempfailed"] = read_counter(w->events.tempfailed);
    stream["quarantined"] = read_counter(w->events.quarantined);
    stream["hold_timeout_passed"] = read_counter(w->events.hold_timeout_passed);
    stream["released_passed"] = read_counter(w->events.released_passed);
    stream["smuggling_refused"] = read_counter(w->events.smuggling_refused);
    stream["desyncs"] = read_counter(w->events.desyncs);
    stream["content_scanned"] = read_counter(w->events.scanned);
    stream["content_tagged"] = read_counter(w->events.scan_tagged);
    stream["content_truncated"] = read_counter(w->events.scan_truncated);
    stream["hold_failed"] = read_counter(w->events.hold_failed);
    stream["hold_timeouts"] = read_counter(w->events.hold_timeouts);
    wj["stream"] = stream;
    workers[std::to_string(w->index)] = wj;
  }
  j["workers"] = workers;
  j["totals"] = totals;
  if (!s.rss)
    j["io"] = {{"dispatched", read_counter(s.io.dispatched)},
               {"dispatch_ring_full", read_counter(s.io.dispatch_ring_full)},
               {"idle_sleeps", read_counter(s.io.idle_sleeps)}};
  return j;
}

// Converts a JSON tree into telemetry data: objects become dicts (nested),
// numbers u64/int, strings strings, arrays of scalars arrays.
void to_tel(const nlohmann::json& j, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto& v = it.value();
    const char* k = it.key().c_str();
    if (v.is_object()) {
      rte_tel_data* c = rte_tel_data_alloc();
      to_tel(v, c);
      rte_tel_data_add_dict_container(d, k, c, 0);
    } else if (v.is_number_unsigned()) {
      rte_tel_data_add_dict_u64(d, k, v.get<uint64_t>());
    } else if (v.is_number_integer()) {
      rte_tel_data_add_dict_int(d, k, int(v.get<int64_t>()));
    } else if (v.is_number_float()) {
      rte_tel_data_add_dict_u64(d, k, uint64_t(v.get<double>()));
    } else if (v.is_string()) {
      rte_tel_data_add_dict_string(d, k, v.get<std::string>().c_str());
    } else if (v.is_boolean()) {
      rte_tel_data_add_dict_int(d, k, v.get<bool>() ? 1 : 0);
    }
  }
}

}  // namespace

void Bridge::stats(rte_tel_data* d) const { to_tel(snapshot(*s_), d); }

std::string Bridge::stats_json() const { return snapshot(*s_).dump(); }

void Bridge::flows(rte_tel_data* d, int worker, unsigned limit) const {
  const BridgeState& s = *s_;
  nlohmann::json j = nlohmann::json::object();
  for (const auto& w : s.workers) {
    uint64_t both = 0, one = 0, tcp = 0, tcp_one = 0;
    nlohmann::json list = nlohmann::json::object();
    unsigned listed = 0;
    const net::FlowCensus& c = *w->census;
    for (uint32_t i = 0; i < c.capacity(); ++i) {
      const auto& e = c.slot(i);
      if (!net::FlowCensus::used(e)) continue;
      uint64_t ab = net::FlowCensus::pkts(e, 0), ba = net::FlowCensus::pkts(e, 1);
      bool two = ab && ba;
      (two ? both : one) += 1;
      if (e.key.proto == net::kProtoTcp) { ++tcp; if (!two) ++tcp_one; }
      if (int(w->index) == worker && listed < limit) {
        bool v4 = e.key.a[10] == 0xff && e.key.a[11] == 0xff && !e.key.a[0];
        net::L3 fam = v4 ? net::L3::ipv4 : net::L3::ipv6;
        list[std::to_string(listed++)] = {
            {"proto", e.key.proto},
            {"a", net::format_endpoint(e.key.a, e.key.pa, fam)},
            {"b", net::format_endpoint(e.key.b, e.key.pb, fam)},
            {"pkts_a_to_b", ab},
            {"pkts_b_to_a", ba}};
      }
    }
    nlohmann::json wj = {{"flows", both + one}, {"both_directions", both}, {"one_direction", one},
                         {"tcp_flows", tcp}, {"tcp_one_direction", tcp_one}};
    if (int(w->index) == worker) wj["list"] = list;
    j[std::to_string(w->index)] = wj;
  }
  to_tel(j, d);
}

const char* worker_counter_name(size_t i) { return i < kWorkerCounterCount ? kWorkerCounterNames[i] : "?"; }

}  // namespace sekisho::dataplane
