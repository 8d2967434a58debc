// TCP reassembly with inline normalisation, per flow and direction, on
// plain spans (no DPDK).
//
// For each direction the engine keeps the bytes the receiver may still be
// given again: from the receiver's last ACK up to the highest byte seen
// ("retained"), in one ring buffer taken from a pool only while such bytes
// exist. Every segment's overlap with them is compared byte for byte; a
// difference is rewritten in the segment to the bytes already inspected
// (or the segment is dropped, by policy), so the receiver can only ever get
// the bytes the inspector saw. Bytes ahead of a hole wait in the ring and
// are delivered in order when the hole fills.
//
//   segment ──► RST? ─► in window: close │ else ignore
//           ──► SYN/SYN-ACK: ISNs        │
//           ──► ACK: release retained bytes of the other direction
//           ──► data: [below ack: unread] [retained: compare/rewrite] [new: store]
//                      └► deliver contiguous bytes at rcv_nxt ─► StreamSink
//
// Sequence numbers compare as int32 differences (wrap-safe).
// Thread-safety: a TcpFlow and its pool belong to one thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dataplane/net/packet.hpp"

namespace sekisho::tcp {

enum class Event : uint8_t {
#define X(name, text) name,
#include "dataplane/tcp/tcp_events.def"
#undef X
  count_
};
inline constexpr size_t kEventCount = size_t(Event::count_);
const char* event_name(Event e);
const char* event_text(Event e);
using EventCounters = std::array<uint64_t, kEventCount>;

enum class ConflictPolicy : uint8_t { rewrite, drop };
enum class CapPolicy : uint8_t { fail_closed, fail_open };

struct Limits {
  uint32_t buffer_bytes = 256 * 1024;  // retention per direction (power of two)
  bool retain_delivered = true;        // inline: keep bytes until acked; replay: false
  ConflictPolicy conflict = ConflictPolicy::rewrite;
  CapPolicy cap = CapPolicy::fail_closed;  // fail_closed: drop the segment; fail_open: stop inspecting
};

// Fixed-size retention buffers, recycled; the per-lcore memcap is the count.
class BufferPool {
 public:
  BufferPool(uint32_t buffer_bytes, uint32_t max_buffers);
  uint8_t* get();            // nullptr when exhausted
  void put(uint8_t* b);
  uint32_t buffer_bytes() const { return size_; }
  uint32_t in_use() const { return in_use_; }

 private:
  uint32_t size_, max_, in_use_ = 0;
  std::vector<uint8_t*> free_;
  std::vector<std::unique_ptr<uint8_t[]>> owned_;
};

class StreamSink {
 public:
  virtual ~StreamSink() = default;
  virtual void on_data(bool from_client, std::span<const uint8_t> bytes) = 0;
  virtual void on_gap(bool from_client, uint64_t len) = 0;
  virtual void on_close() = 0;
};

enum class SegmentVerdict : uint8_t { forward, forward_rewritten, drop };

class TcpFlow {
 public:
  enum class State : uint8_t { none, syn_sent, established, closed, midstream, bypass };

  TcpFlow() = default;
  void reset(const Limits* lim, BufferPool* pool, StreamSink* sink);

  // One segment of this flow. |from_a| says which FlowKey endpoint sent it;
  // |payload| is the segment's data in the frame, rewritten in place when a
  // conflict is normalised (the caller then fixes the TCP checksum).
  SegmentVerdict on_segment(bool from_a, const net::Packet& p, std::span<uint8_t> payload, EventCounters& ev);
  // Releases buffers; reports the end to the sink if it was not reported.
  void close(EventCounters& ev);
  // Stops inspecting (fail-open after a desync): reports the end to the
  // sink; later segments are forwarded unread.
  void bypass(EventCounters& ev) {
    if (inspected()) finish(ev);
    state_ = State::bypass;
  }

  State state() const { return state_; }
  bool inspected() const { return state_ == State::syn_sent || state_ == State::established; }
  bool client_is_a() const { return client_is_a_; }
  // The next sequence number expected from the client (true) or server.
  uint32_t next_seq(bool client) const { return dir_[client ? 0 : 1].next; }
  // Bytes retained now in both directions (for memory accounting).
  uint32_t retained_bytes() const;

 private:
  static constexpr unsigned kMaxHoles = 8;
  struct Range { uint32_t start, end; };  // absolute sequence numbers, [start, end)
  struct Dir {
    uint32_t next = 0;        // next byte to deliver (receiver's rcv_nxt as far as we know)
    uint32_t base = 0;        // first retained byte (receiver's last ACK, or next)
    uint32_t fin_seq = 0;
    uint32_t window = 65535;  // the receiver's advertised window, scaled
    uint8_t wscale = 0;
    bool started = false, fin = false, closed = false;
    uint8_t nranges = 0;
    Range ranges[kMaxHoles];  // buffered data ahead of next, sorted, disjoint
    uint8_t* buf = nullptr;   // ring of lim->buffer_bytes, indexed by seq
  };

  void deliver(int d, EventCounters& ev);
  void release(int d, uint32_t upto);
  bool ensure_buffer(int d, EventCounters& ev);
  // Adds [s, e) to the buffered ranges; false (and |x| unchanged) if that
  // would leave more than kMaxHoles separate ranges.
  static bool add_range(Dir& x, uint32_t s, uint32_t e);
  bool present(const Dir& x, uint32_t s) const;
  void finish(EventCounters& ev);
  uint8_t& at(Dir& x, uint32_t seq) { return x.buf[seq & (lim_->buffer_bytes - 1)]; }

  const Limits* lim_ = nullptr;
  BufferPool* pool_ = nullptr;
  StreamSink* sink_ = nullptr;
  Dir dir_[2];                // 0: client, 1: server
  State state_ = State::none;
  bool client_is_a_ = true;
  bool reported_close_ = false;
};

}  // namespace sekisho::tcp
