#include "dataplane/tcp/tcp_stream.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

namespace sekisho::tcp {
namespace {

const char* const kNames[] = {
#define X(name, text) #name,
#include "dataplane/tcp/tcp_events.def"
#undef X
};
const char* const kTexts[] = {
#define X(name, text) text,
#include "dataplane/tcp/tcp_events.def"
#undef X
};

inline int32_t diff(uint32_t a, uint32_t b) { return int32_t(a - b); }  // a - b, wrap-safe
inline bool before(uint32_t a, uint32_t b) { return diff(a, b) < 0; }
inline uint32_t smax(uint32_t a, uint32_t b) { return before(a, b) ? b : a; }
inline uint32_t smin(uint32_t a, uint32_t b) { return before(a, b) ? a : b; }

constexpr uint32_t kMaxGap = 1u << 30;

}  // namespace

const char* event_name(Event e) { return size_t(e) < kEventCount ? kNames[size_t(e)] : "?"; }
const char* event_text(Event e) { return size_t(e) < kEventCount ? kTexts[size_t(e)] : "?"; }

BufferPool::BufferPool(uint32_t buffer_bytes, uint32_t max_buffers) : size_(buffer_bytes), max_(max_buffers) {}

uint8_t* BufferPool::get() {
  if (!free_.empty()) {
    uint8_t* b = free_.back();
    free_.pop_back();
    ++in_use_;
    return b;
  }
  if (owned_.size() >= max_) return nullptr;
  owned_.emplace_back(new uint8_t[size_]);
  ++in_use_;
  return owned_.back().get();
}

void BufferPool::put(uint8_t* b) {
  if (!b) return;
  free_.push_back(b);
  --in_use_;
}

void TcpFlow::reset(const Limits* lim, BufferPool* pool, StreamSink* sink) {
  for (auto& d : dir_)
    if (d.buf && pool_) pool_->put(d.buf);
  lim_ = lim;
  pool_ = pool;
  sink_ = sink;
  dir_[0] = Dir{};
  dir_[1] = Dir{};
  state_ = State::none;
  client_is_a_ = true;
  reported_close_ = false;
}

uint32_t TcpFlow::retained_bytes() const {
  uint32_t n = 0;
  for (const auto& d : dir_)
    if (d.buf) n += lim_->buffer_bytes;
  return n;
}

bool TcpFlow::ensure_buffer(int d, EventCounters& ev) {
  if (dir_[d].buf) return true;
  dir_[d].buf = pool_->get();
  if (!dir_[d].buf) ++ev[size_t(Event::pool_exhausted)];
  return dir_[d].buf != nullptr;
}

bool TcpFlow::present(const Dir& x, uint32_t s) const {
  for (unsigned i = 0; i < x.nranges; ++i)
    if (!before(s, x.ranges[i].start) && before(s, x.ranges[i].end)) return true;
  return false;
}

bool TcpFlow::add_range(Dir& x, uint32_t s, uint32_t e) {
  Range merged{s, e};
  Range out[kMaxHoles + 1];
  unsigned n = 0;
  bool placed = false;
  for (unsigned i = 0; i < x.nranges; ++i) {
    const Range& r = x.ranges[i];
    if (before(r.end, merged.start)) {
      out[n++] = r;
    } else if (before(merged.end, r.start)) {
      if (!placed) { out[n++] = merged; placed = true; }
      out[n++] = r;
    } else {
      merged.start = smin(merged.start, r.start);
      merged.end = smax(merged.end, r.end);
    }
  }
  if (!placed) out[n++] = merged;
  if (n > kMaxHoles) return false;
  std::copy(out, out + n, x.ranges);
  x.nranges = uint8_t(n);
  return true;
}

void TcpFlow::deliver(int d, EventCounters&) {
  Dir& x = dir_[d];
  const uint32_t cap = lim_->buffer_bytes;
  while (x.nranges && !before(x.next, x.ranges[0].start)) {
    uint32_t end = x.ranges[0].end;
    uint32_t from = x.next;
    while (before(from, end)) {
      uint32_t off = from & (cap - 1);
      uint32_t n = std::min<uint32_t>(uint32_t(diff(end, from)), cap - off);
      if (sink_) sink_->on_data(d == 0, {x.buf + off, n});
      from += n;
    }
    x.next = smax(x.next, end);
    std::copy(x.ranges + 1, x.ranges + x.nranges, x.ranges);
    --x.nranges;
  }
  if (!lim_->retain_delivered) x.base = x.next;
  if (x.fin && x.next == x.fin_seq) x.closed = true;
  if (x.buf && x.base == x.next && x.nranges == 0) {
    pool_->put(x.buf);
    x.buf = nullptr;
  }
}

void TcpFlow::release(int d, uint32_t upto) {
  Dir& x = dir_[d];
  if (!x.started || !before(x.base, upto)) return;
  x.base = smin(upto, x.next);
  if (x.buf && x.base == x.next && x.nranges == 0) {
    pool_->put(x.buf);
    x.buf = nullptr;
  }
}

void TcpFlow::finish(EventCounters& ev) {
  if (reported_close_) return;
  reported_close_ = true;
  // Flush what waits behind holes that will never fill (replay, capture gaps).
  for (int d = 0; d < 2; ++d) {
    Dir& x = dir_[d];
    while (x.nranges) {
      uint32_t hole = uint32_t(diff(x.ranges[0].start, x.next));
      if (hole) {
        ++ev[size_t(Event::gaps)];
        if (sink_) sink_->on_gap(d == 0, hole);
        x.next = x.ranges[0].start;
      }
      deliver(d, ev);
    }
  }
  if (sink_) sink_->on_close();
  for (auto& x : dir_)
    if (x.buf) {
      pool_->put(x.buf);
      x.buf = nullptr;
    }
}

void TcpFlow::close(EventCounters& ev) {
  if (inspected() || state_ == State::closed) finish(ev);
  for (auto& x : dir_)
    if (x.buf) {
      pool_->put(x.buf);
      x.buf = nullptr;
    }
  state_ = State::closed;
}

SegmentVerdict TcpFlow::on_segment(bool from_a, const net::Packet& p, std::span<uint8_t> payload, EventCounters& ev) {
  ++ev[size_t(Event::segments)];
  const uint8_t fl = p.tcp_flags;
  const bool syn = fl & net::kTcpSyn, ack = fl & net::kTcpAck, rst = fl & net::kTcpRst, fin = fl & net::kTcpFin;

  if (state_ == State::none) {
    if (syn && !ack) {
      client_is_a_ = from_a;
      state_ = State::syn_sent;
    } else if (syn && ack) {
      client_is_a_ = !from_a;
      state_ = State::syn_sent;
    } else {
      ++ev[size_t(Event::midstream)];
      state_ = State::midstream;
      return SegmentVerdict::forward;
    }
  }
  if (state_ == State::midstream || state_ == State::bypass) return SegmentVerdict::forward;
  if (state_ == State::closed) {
    // Reset or closed both ways: the receiver takes no more data on this
    // connection (or Sekisho no longer follows it): data never passes.
    if (payload.empty() || syn) return SegmentVerdict::forward;
    ++ev[size_t(Event::after_close_dropped)];
    return SegmentVerdict::drop;
  }

  const int d = from_a == client_is_a_ ? 0 : 1;
  const int o = 1 - d;
  Dir& x = dir_[d];
  Dir& y = dir_[o];

  // 1-2: SYN and SYN-ACK set the initial sequence numbers. Data on a SYN
  // (Fast Open) would reach the server before anything was inspected.
  if (syn && !payload.empty()) {
    ++ev[size_t(Event::syn_data_dropped)];
    return SegmentVerdict::drop;
  }
  if (syn) {
    if (!x.started) {
      x.started = true;
      x.next = x.base = p.seq + 1;
      x.wscale = p.wscale == 0xff ? 0 : p.wscale;
    }
    if (ack && !y.started) {  // SYN-ACK without the SYN seen
      y.started = true;
      y.next = y.base = p.ack;
    }
    if (x.started && y.started) state_ = State::established;
    y.window = uint32_t(p.window);
    return SegmentVerdict::forward;
  }
  if (!x.started) {
    // Data from a side whose ISN we never saw (e.g. the SYN-ACK was lost
    // from the capture): learn it from the other side's ACK if we have one.
    if (!(y.started && ack)) return SegmentVerdict::forward;
    x.started = true;
    x.next = x.base = p.seq;
    state_ = State::established;
  }

  // 3: RST as Linux takes it (RFC 5961 3.2): at exactly rcv_nxt the
  // connection ends; elsewhere in the window the receiver answers with a
  // challenge ACK and the connection goes on, so inspection must too;
  // outside the window it is ignored. Once ended, data on the flow is
  // dropped (see above): if the receiver did not take the RST after all
  // (a byte Sekisho passed was lost after it), nothing passes uninspected.
  if (rst) {
    int32_t rel = diff(p.seq, x.next);
    uint32_t win = std::max<uint32_t>(x.window, 65535);
    // After its FIN a side's RST carries the sequence number past the FIN.
    if (rel == 0 || (x.fin && x.next == x.fin_seq && rel == 1)) {
      ++ev[size_t(Event::rst_accepted)];
      finish(ev);
      state_ = State::closed;
    } else if (rel > 0 && uint32_t(rel) <= win) {
      ++ev[size_t(Event::rst_challenged)];
    } else {
      ++ev[size_t(Event::rst_ignored)];
    }
    return SegmentVerdict::forward;
  }

  // 4: the window this side advertises bounds the other side's data; its
  // ACK releases the other side's retained bytes, or reveals a capture gap.
  if (ack && y.started && lim_->retain_delivered) {
    // Inline every byte of the other side passed here, so an ACK beyond
    // them acknowledges data never sent: the receiver drops the segment
    // (RFC 5961 5.2) and so does Sekisho, before reading its data. (Offline,
    // the same ACK means the capture missed bytes: a gap, below.)
    int32_t ahead = diff(p.ack, y.next);
    if (ahead > 0 && !(y.fin && y.next == y.fin_seq && ahead == 1)) {
      ++ev[size_t(Event::ack_beyond_data)];
      return SegmentVerdict::drop;
    }
  }
  y.window = uint32_t(p.window) << std::min<uint8_t>(x.wscale, 14);
  if (ack && y.started) {
    int32_t ahead = diff(p.ack, y.next);
    if (ahead > 0 && uint32_t(ahead) < kMaxGap && !y.fin) {
      // The receiver has bytes we never saw. Deliver the hole as a gap, then what waits behind it.
      uint32_t upto = y.nranges && before(y.ranges[0].start, p.ack) ? y.ranges[0].start : p.ack;
      uint32_t hole = uint32_t(diff(upto, y.next));
      if (hole) {
        ++ev[size_t(Event::gaps)];
        if (sink_) sink_->on_gap(o == 0, hole);
        y.next = upto;
        if (!lim_->retain_delivered) y.base = y.next;
        deliver(o, ev);
      }
    }
    release(o, p.ack);
  }

  SegmentVerdict verdict = SegmentVerdict::forward;
  const uint32_t len = uint32_t(payload.size());
  const uint32_t seq = p.seq;
  const uint32_t end = seq + len;
  if (len) {
    const uint32_t cap = lim_->buffer_bytes;
    // 5a: bytes the receiver has acknowledged are ignored by it: skip them.
    uint32_t start = smax(seq, x.base);
    if (!before(start, end)) {
      ++ev[size_t(Event::retransmissions)];
    } else if (seq == x.next && x.nranges == 0) {
      // 5b: the common case: in order, nothing waiting.
      ++ev[size_t(Event::in_order)];
      if (lim_->retain_delivered) {
        if (uint32_t(diff(end, x.base)) > cap || !ensure_buffer(d, ev)) {
          if (uint32_t(diff(end, x.base)) > cap) ++ev[size_t(Event::cap_dropped)];
          if (lim_->cap == CapPolicy::fail_closed) return SegmentVerdict::drop;
          ++ev[size_t(Event::cap_bypassed)];
          finish(ev);
          state_ = State::bypass;
          return SegmentVerdict::forward;
        }
        for (uint32_t s = seq; s != end;) {
          uint32_t off = s & (cap - 1);
          uint32_t n = std::min<uint32_t>(uint32_t(diff(end, s)), cap - off);
          std::memcpy(x.buf + off, payload.data() + (s - seq), n);
          s += n;
        }
      }
      x.next = end;
      if (!lim_->retain_delivered) x.base = x.next;
      if (sink_) sink_->on_data(d == 0, {payload.data(), payload.size()});
    } else {
      // 5c: overlap with retained bytes, or ahead of a hole.
      if (uint32_t(diff(end, x.base)) > cap) {
        if (before(seq, x.next) || diff(seq, x.next) < int32_t(cap)) {
          ++ev[size_t(Event::cap_dropped)];
          if (lim_->cap == CapPolicy::fail_closed) return SegmentVerdict::drop;
          ++ev[size_t(Event::cap_bypassed)];
          finish(ev);
          state_ = State::bypass;
          return SegmentVerdict::forward;
        }
        ++ev[size_t(Event::out_of_window)];
        return lim_->cap == CapPolicy::fail_closed ? SegmentVerdict::drop : SegmentVerdict::forward;
      }
      bool conflict = false, any_new = false, any_old = false;
      const bool have_buf = x.buf != nullptr;
      for (uint32_t s = start; s != end; ++s) {
        bool old = before(s, x.next) ? (lim_->retain_delivered && have_buf) : (have_buf && present(x, s));
        if (old) {
          any_old = true;
          if (at(x, s) != payload[s - seq]) conflict = true;
        } else if (!before(s, x.next)) {
          any_new = true;
        }
      }
      if (conflict && lim_->conflict == ConflictPolicy::drop) {
        ++ev[size_t(Event::conflicts_dropped)];
        return SegmentVerdict::drop;
      }
      if (any_new) {
        // Count the holes the new data would leave; too many is a cap.
        Dir probe = x;
        if (!add_range(probe, smax(start, x.next), end)) {
          ++ev[size_t(Event::cap_dropped)];
          if (lim_->cap == CapPolicy::fail_closed) return SegmentVerdict::drop;
          ++ev[size_t(Event::cap_bypassed)];
          finish(ev);
          state_ = State::bypass;
          return SegmentVerdict::forward;
        }
        if (!ensure_buffer(d, ev)) {
          if (lim_->cap == CapPolicy::fail_closed) return SegmentVerdict::drop;
          ++ev[size_t(Event::cap_bypassed)];
          finish(ev);
          state_ = State::bypass;
          return SegmentVerdict::forward;
        }
      }
      if (any_old) ++ev[size_t(Event::retransmissions)];
      if (conflict) {
        ++ev[size_t(Event::conflicts_rewritten)];
        verdict = SegmentVerdict::forward_rewritten;
      }
      for (uint32_t s = start; s != end; ++s) {
        bool old = before(s, x.next) ? (lim_->retain_delivered && have_buf) : (have_buf && present(x, s));
        if (old) payload[s - seq] = at(x, s);  // the receiver gets what was inspected
        else if (!before(s, x.next)) at(x, s) = payload[s - seq];
      }
      if (any_new) {
        if (diff(seq, x.next) > 0) ++ev[size_t(Event::out_of_order)];
        add_range(x, smax(start, x.next), end);  // cannot fail: probed above
        deliver(d, ev);
      }
    }
  }

  // 6: FIN takes one sequence number after the data.
  if (fin && !x.fin) {
    x.fin = true;
    x.fin_seq = end;
    if (x.next == x.fin_seq) x.closed = true;
  }
  if (x.fin && !x.closed && x.next == x.fin_seq) x.closed = true;
  if (x.closed && y.closed) {
    finish(ev);
    state_ = State::closed;
  }
  return verdict;
}

}  // namespace sekisho::tcp
