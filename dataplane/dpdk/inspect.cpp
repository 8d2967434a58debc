// One TCP segment of an SMTP port through the stream engines, the verdict's
// enforcement on it (injected replies and RSTs, the hold for the spool), the
// settling of held messages and the flow sweep. Runs on a worker lcore.
//
// The EAL-free halves live in dataplane/enforce (frame building, in-place
// rewrites) and dataplane/hold (replies, injection plans, the hold queue);
// this file turns their plans into mbufs and keeps the flow's books.
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "dataplane/dpdk/bridge_state.hpp"
#include "dataplane/enforce/rewrite.hpp"
#include "dataplane/enforce/tcp_inject.hpp"
#include "dataplane/hold/answers.hpp"
#include "dataplane/hold/replies.hpp"
#include "dataplane/pipeline/admission.hpp"

namespace sekisho::dataplane {

namespace {

// Builds the frames of |plan| from |seen| and queues them (towards the
// sender: back out of the port |seen| came in on; otherwise on to its peer).
void inject(BridgeState& s, WorkerState& w, Injected& out, rte_mbuf* seen, const net::Packet& p,
            const hold::Injections& plan) {
  for (const hold::Injection& in : plan) {
    if (out.n >= Injected::kMax) { ++w.tcp_local[size_t(tcp::Event::pool_exhausted)]; continue; }
    rte_mbuf* m = rte_pktmbuf_alloc(s.pool);
    if (!m) { ++w.tcp_local[size_t(tcp::Event::pool_exhausted)]; continue; }
    uint8_t buf[enforce::kMaxInjectFrame];
    std::span<const uint8_t> frame(rte_pktmbuf_mtod(seen, const uint8_t*), rte_pktmbuf_data_len(seen));
    size_t len = enforce::build_tcp_frame(frame, p, in.towards, in.spec, buf);
    char* dst = len ? rte_pktmbuf_append(m, uint16_t(len)) : nullptr;
    if (!dst) { rte_pktmbuf_free(m); continue; }
    std::memcpy(dst, buf, len);
    // The loops send a frame to the peer of the port it came in on.
    m->port = in.towards == enforce::Towards::sender ? s.ports[peer_index(s, seen)].id : seen->port;
    out.m[out.n++] = m;
  }
}

}  // namespace

// Runs one TCP segment of an SMTP port through the stream engines.
// drop: normalisation policy or a verdict keeps it from the server;
// parked: it ends a message being written to the spool (the job owns it).
Disposition inspect_segment(BridgeState& s, WorkerState& w, rte_mbuf* m, const net::Packet& p, Injected& out,
                            CounterBlock& d) {
  if (m->nb_segs != 1) {  // linearised before decode; never inspect half a frame
    ++w.stream.uninspected_multiseg;
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
    inject(s, w, out, m, p, hold::reset_both(p));
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
    if (!f.enforced.held)
      inject(s, w, out, m, p, hold::speak_for_server(p, f.enforced, f.tcp().client_is_a() == ref.src_is_a));
    return Disposition::drop;  // the server's half is gone (or about to be)
  }
  bool masked = false;
  if (s.mask_starttls[p.sport] && p.payload_len && f.tcp().client_is_a() != ref.src_is_a)
    masked = enforce::mask_starttls({frame + p.payload_offset, p.payload_len});
  if (masked) ++w.stream.starttls_masked;
  if (p.tcp_flags & net::kTcpUrg) {
    // Without SO_OOBINLINE (no MTA sets it) Linux takes the urgent byte out
    // of the stream: the server would read other bytes than the engines.
    // Cleared, the byte stays in line for both.
    enforce::clear_urgent(frame, p);
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
  if (v == tcp::SegmentVerdict::forward_rewritten) enforce::fix_tcp_checksum(frame, p);
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
      inject(s, w, out, m, p, hold::reset_both(p));
      f.close(w.tcp_local);
      return Disposition::drop;
    }
    d[WorkerCounter::desync_tempfailed] += 1;
    std::string reply = hold::desync_reply(why);
    if (from_client) {
      inject(s, w, out, m, p, hold::answer_held(p, f.tcp().next_seq(false), reply, false, &f.enforced));
    } else {
      // A server segment: the client still expects it at p.seq; the server
      // expects the client's next byte.
      inject(s, w, out, m, p, hold::answer_desync_in_server_segment(p, f.tcp().next_seq(true), reply, f.enforced));
    }
    f.close(w.tcp_local);
    return Disposition::drop;
  }
  if (ended_here && verdict::delivers(action)) w.hold_ended = true;
  if (action == verdict::Action::quarantine && from_client) {
    bool complete = false;
    std::string body = f.take_retained(complete);
    const smtp::Transaction* t = f.smtp() ? f.smtp()->last_ended() : nullptr;
    auto* job = new hold::SpoolJob;
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
      job->deadline = rte_rdtsc() + uint64_t(s.tsc_hz * double(s.cfg.hold_timeout_ms) / 1000.0);
      if (rte_ring_sp_enqueue(w.spool_ring, job) == 0) {
        w.holds.park(job);
        f.enforced.active = true;
        f.enforced.held = true;  // retransmissions of the held segment are dropped meanwhile
        return Disposition::parked;
      }
    }
    // Cannot hold it (too large to retain, no spool, queue full): fail closed.
    delete job;
    WorkerEvents::add(w.events.hold_failed, 1);
    std::string reply = hold::hold_failed_reply(f.last_reference());
    inject(s, w, out, m, p, hold::answer_held(p, f.tcp().next_seq(false), reply, false, &f.enforced));
    f.set_outcome(verdict::Action::tempfail, "");
    f.close(w.tcp_local);
    return Disposition::drop;
  }
  if (!verdict::delivers(action) && from_client) {
    // This segment completes a message the policy refuses: it never reaches
    // the server. The client hears the verdict from "the server"; the
    // server's half is reset at the sequence number it expects.
    std::string reply = hold::verdict_reply(action == verdict::Action::reject, f.last_reply_text(), f.last_reference());
    inject(s, w, out, m, p, hold::answer_held(p, f.tcp().next_seq(false), reply, false, &f.enforced));
    f.close(w.tcp_local);  // the verdict is final: report the message and session now
    return Disposition::drop;
  }
  return v == tcp::SegmentVerdict::drop ? Disposition::drop : Disposition::forward;
}

// Spool results and hold deadlines: answer the clients of parked messages.
void settle_held(BridgeState& s, WorkerState& w, Injected& out) {
  if (!w.done_ring) return;
  auto finish = [&](hold::SpoolJob* job, bool ok) {
    net::Packet p;
    rte_mbuf* held = job->held;
    std::span<const uint8_t> frame(rte_pktmbuf_mtod(held, const uint8_t*), rte_pktmbuf_data_len(held));
    net::decode(frame, p);
    bool created = false;
    auto* slot = w.flows->find(job->key, net::symmetric_hash(job->key), false, created);
    pipeline::Connection* f = slot ? &slot->value : nullptr;
    if (f) f->enforced.held = false;
    std::string reply = ok ? hold::held_reply(job->id) : hold::hold_failed_reply(job->id);
    inject(s, w, out, held, p, hold::answer_held(p, job->server_seq, reply, ok, f ? &f->enforced : nullptr));
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
  auto release = [&](hold::SpoolJob* job) {
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
    auto* job = static_cast<hold::SpoolJob*>(done[i]);
    switch (w.holds.on_spool_done(job)) {
      case hold::HoldQueue::Settle::answer_held: finish(job, true); break;
      case hold::HoldQueue::Settle::answer_failed: finish(job, false); break;
      case hold::HoldQueue::Settle::unlink_copy: unlink(job->path.c_str()); break;
      default: break;
    }
    delete job;
  }
  if (w.holds.empty()) return;
  w.holds.expire(rte_rdtsc(), [&](hold::SpoolJob* job, hold::HoldQueue::Settle what) {
    // the spool thread still owns the job; it comes back on done_ring
    WorkerEvents::add(w.events.hold_timeouts, 1);
    if (what == hold::HoldQueue::Settle::release_to_server) release(job);
    else finish(job, false);
  });
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

}  // namespace sekisho::dataplane
