// Counters of the dataplane, written by exactly one lcore each and read by
// the telemetry thread. Writers store with relaxed atomics once per burst;
// readers load relaxed: a snapshot may be a burst old, never torn.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/net/packet.hpp"

namespace sekisho::dataplane {

enum class WorkerCounter : uint8_t {
#define X(name, text) name,
#include "dataplane/dpdk/counters.def"
#undef X
  count_
};
inline constexpr size_t kWorkerCounterCount = size_t(WorkerCounter::count_);
const char* worker_counter_name(size_t i);

struct CounterBlock {
  uint64_t v[kWorkerCounterCount] = {};
  uint64_t decode[net::kDecodeStatusCount] = {};
  uint64_t& operator[](WorkerCounter c) { return v[size_t(c)]; }
};

// Adds |delta| into |shared| with relaxed single-writer stores.
inline void publish(CounterBlock& shared, CounterBlock& delta) {
  for (size_t i = 0; i < kWorkerCounterCount; ++i) {
    if (delta.v[i]) {
      __atomic_store_n(&shared.v[i], __atomic_load_n(&shared.v[i], __ATOMIC_RELAXED) + delta.v[i], __ATOMIC_RELAXED);
      delta.v[i] = 0;
    }
  }
  for (size_t i = 0; i < net::kDecodeStatusCount; ++i) {
    if (delta.decode[i]) {
      __atomic_store_n(&shared.decode[i], __atomic_load_n(&shared.decode[i], __ATOMIC_RELAXED) + delta.decode[i], __ATOMIC_RELAXED);
      delta.decode[i] = 0;
    }
  }
}

inline uint64_t read_counter(const uint64_t& c) { return __atomic_load_n(&c, __ATOMIC_RELAXED); }

}  // namespace sekisho::dataplane
