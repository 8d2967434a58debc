// FlowCensus: a fixed-capacity, open-addressed table that counts packets per
// direction for every flow a worker sees. One writer (the owning worker);
// the telemetry thread may read entries concurrently (relaxed loads; an
// entry is published with a release store of |used| after its key).
//
// It proves the dispatch invariant (both directions of a flow on one worker)
// and sizes the flow table the stream engine replaces it with.
#pragma once

#include <cstdint>
#include <cstring>

#include "dataplane/net/packet.hpp"

namespace sekisho::net {

class FlowCensus {
 public:
  struct Entry {
    FlowKey key;
    uint64_t pkts[2];   // [0]: a -> b, [1]: b -> a
    uint32_t hash;
    uint8_t used;
  };
  enum class Touch { existing, created, full };
  static constexpr unsigned kMaxProbes = 64;

  // |slots| points to |capacity| zeroed entries, capacity a power of two.
  FlowCensus(Entry* slots, uint32_t capacity) : slots_(slots), mask_(capacity - 1) {}

  Touch touch(const FlowRef& ref, uint32_t hash) {
    for (unsigned i = 0; i < kMaxProbes; ++i) {
      Entry& e = slots_[(hash + i) & mask_];
      if (!__atomic_load_n(&e.used, __ATOMIC_RELAXED)) {
        e.key = ref.key;
        e.hash = hash;
        e.pkts[0] = e.pkts[1] = 0;
        bump(e, ref.src_is_a);
        __atomic_store_n(&e.used, uint8_t(1), __ATOMIC_RELEASE);
        ++size_;
        return Touch::created;
      }
      if (e.hash == hash && e.key == ref.key) {
        bump(e, ref.src_is_a);
        return Touch::existing;
      }
    }
    return Touch::full;
  }

  uint32_t capacity() const { return mask_ + 1; }
  uint32_t size() const { return size_; }
  const Entry& slot(uint32_t i) const { return slots_[i]; }

  static bool used(const Entry& e) { return __atomic_load_n(&e.used, __ATOMIC_ACQUIRE); }
  static uint64_t pkts(const Entry& e, int dir) { return __atomic_load_n(&e.pkts[dir], __ATOMIC_RELAXED); }

 private:
  static void bump(Entry& e, bool a_to_b) {
    uint64_t& c = e.pkts[a_to_b ? 0 : 1];
    __atomic_store_n(&c, c + 1, __ATOMIC_RELAXED);
  }
  Entry* slots_;
  uint32_t mask_;
  uint32_t size_ = 0;
};

}  // namespace sekisho::net
