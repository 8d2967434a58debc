// The lcore loops, one function per role as l3fwd has them: the worker in
// software dispatch (rings in and out), the worker in rss dispatch (queue w
// of every port), and the io lcore of software dispatch. A burst goes
// through process_burst(): decode, counters, the stream engines for
// SMTP-port TCP, census; what leaves is buffered per port and queue
// (TxBuffer) and sent when a buffer fills, when the lcore's TSC drain
// deadline passes (kTxDrainUs), or before the lcore idles. A segment that
// ends a passed message is sent at once with what precedes it.
//
// Hot path rules (DESIGN.md): bursts, prefetch kPrefetchAhead frames ahead,
// no allocation, locks or syscalls per packet, counters accumulated locally
// and stored once per burst.
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "dataplane/dpdk/bridge_state.hpp"
#include "scanners/mime/attachment.hpp"

namespace sekisho::dataplane {

namespace {

// Put on a worker's TX ring after the frames up to a held segment: the io
// lcore sends what it buffered at once instead of at its drain deadline.
char g_flush_mark_storage;
rte_mbuf* const kFlushMark = reinterpret_cast<rte_mbuf*>(&g_flush_mark_storage);

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

void tx_flush(TxBuffer& b) {
  if (!b.n) return;
  transmit(b.port_id, b.queue, b.m, b.n, *b.counters);
  b.n = 0;
}

void tx_put(TxBuffer& b, rte_mbuf* m, unsigned flush_at) {
  b.m[b.n++] = m;
  if (b.n >= flush_at) tx_flush(b);
}

void tx_flush_all(std::vector<TxBuffer>& tx) {
  for (TxBuffer& b : tx) tx_flush(b);
}

// Sends what waited longer than the drain deadline (l3fwd's drain_tsc).
void tx_drain_on_deadline(const BridgeState& s, std::vector<TxBuffer>& tx, uint64_t& last_drain) {
  const uint64_t now = rte_rdtsc();
  if (now - last_drain > s.tx_drain_tsc) {
    tx_flush_all(tx);
    last_drain = now;
  }
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
    if (!w.holds.empty() || (w.done_ring && rte_ring_count(w.done_ring))) {
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
      void* mark = kFlushMark;
      rte_ring_sp_enqueue(w.tx_ring, mark);  // if the ring is full, the drain deadline sends them
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

// RSS dispatch: worker w owns queue w of every port; TX buffered per port.
int worker_loop_rss(BridgeState& s, WorkerState& w) {
  rte_mbuf* bufs[kMaxBurst];
  CounterBlock d;
  unsigned idle_rounds = 0;
  const uint16_t q = uint16_t(w.index);
  const unsigned flush_at = s.cfg.burst;
  uint64_t last_drain = rte_rdtsc();
  rte_rcu_qsbr_thread_online(s.qs, w.index);
  while (!g_stop.load(std::memory_order_relaxed)) {
    rte_rcu_qsbr_quiescent(s.qs, w.index);
    tx_drain_on_deadline(s, w.tx, last_drain);
    bool any = false;
    sweep_flows(s, w);
    if (!w.holds.empty() || (w.done_ring && rte_ring_count(w.done_ring))) {
      Injected answers;
      settle_held(s, w, answers);
      for (unsigned i = 0; i < answers.n; ++i) tx_put(w.tx[peer_index(s, answers.m[i])], answers.m[i], flush_at);
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
      TxBuffer& out = w.tx[p.peer];
      process_burst(s, w, bufs, n, kept, d, injected, [&](rte_mbuf** b, unsigned c) {
        for (unsigned i = 0; i < c; ++i) tx_put(out, b[i], flush_at);
        tx_flush(out);  // the held segment leaves now
      });
      for (unsigned i = 0; i < kept; ++i) tx_put(out, bufs[i], flush_at);
      record_holds(s, w);
      // Injected frames go where their m->port says, batched with the rest.
      for (unsigned i = 0; i < injected.n; ++i) tx_put(w.tx[peer_index(s, injected.m[i])], injected.m[i], flush_at);
    }
    publish(w.counters, d);
    publish_stream(w);
    if (!any) {
      tx_flush_all(w.tx);
      idle(s, idle_rounds, nullptr);
    } else {
      idle_rounds = 0;
    }
  }
  tx_flush_all(w.tx);
  rte_rcu_qsbr_thread_offline(s.qs, w.index);
  return 0;
}

}  // namespace

void publish_stream(WorkerState& w) {
  for (size_t i = 0; i < tcp::kEventCount; ++i) {
    if (w.tcp_local[i]) {
      __atomic_store_n(&w.tcp_shared[i], __atomic_load_n(&w.tcp_shared[i], __ATOMIC_RELAXED) + w.tcp_local[i],
                       __ATOMIC_RELAXED);
      w.tcp_local[i] = 0;
    }
  }
}

// Software dispatch, io side (main lcore): RX all ports, hash, hand to
// workers; drain worker TX rings into the paired ports' TX buffers.
void io_loop(BridgeState& s) {
  rte_mbuf* bufs[kMaxBurst];
  const unsigned nw = unsigned(s.workers.size());
  std::vector<std::array<rte_mbuf*, kMaxBurst>> stage(nw);
  std::vector<unsigned> staged(nw, 0);
  const unsigned flush_at = s.cfg.burst;
  uint64_t last_drain = rte_rdtsc();
  unsigned idle_rounds = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    tx_drain_on_deadline(s, s.io.tx, last_drain);
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
        if (bufs[i] == kFlushMark) tx_flush_all(s.io.tx);  // a held segment is in: send it now
        else tx_put(s.io.tx[peer_index(s, bufs[i])], bufs[i], flush_at);
      }
    }
    if (!any) {
      tx_flush_all(s.io.tx);
      idle(s, idle_rounds, &s.io.idle_sleeps);
    } else {
      idle_rounds = 0;
    }
  }
  tx_flush_all(s.io.tx);
}

int launch_worker(void* arg) {
  auto* pair = static_cast<std::pair<BridgeState*, WorkerState*>*>(arg);
  mime::preload_sniffer();  // libmagic's database, per thread: not at the first attachment's hold point
  return pair->first->rss ? worker_loop_rss(*pair->first, *pair->second)
                          : worker_loop_software(*pair->first, *pair->second);
}

}  // namespace sekisho::dataplane
