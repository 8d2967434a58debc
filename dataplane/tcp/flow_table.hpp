// FlowTable: a fixed-capacity, open-addressed table from net::FlowKey to a
// per-flow object T, owned by one thread (one per worker lcore, or the
// replay tool). No allocation after construction. Lookup probes at most
// kMaxProbes slots; a full neighbourhood is "table full" (counted by the
// caller). Idle flows are found by sweep(), a few slots per call.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/net/packet.hpp"

namespace sekisho::tcp {

template <class T>
class FlowTable {
 public:
  static constexpr unsigned kMaxProbes = 32;
  struct Slot {
    net::FlowKey key;
    uint64_t last_seen = 0;
    uint32_t hash = 0;
    bool used = false;
    T value;
  };

  explicit FlowTable(uint32_t capacity_pow2) : slots_(capacity_pow2), mask_(capacity_pow2 - 1) {}

  // Returns the flow's slot, creating it when |create|; nullptr if absent
  // (or the table is full). |created| tells which.
  Slot* find(const net::FlowKey& k, uint32_t hash, bool create, bool& created) {
    created = false;
    Slot* free_slot = nullptr;
    for (unsigned i = 0; i < kMaxProbes; ++i) {
      Slot& s = slots_[(hash + i) & mask_];
      if (!s.used) {
        if (!free_slot) free_slot = &s;
        continue;  // erase leaves holes: keep probing for the key
      }
      if (s.hash == hash && s.key == k) return &s;
    }
    if (!create || !free_slot) return nullptr;
    free_slot->used = true;
    free_slot->key = k;
    free_slot->hash = hash;
    created = true;
    ++size_;
    return free_slot;
  }

  void erase(Slot* s) {
    s->used = false;
    --size_;
  }

  // Visits up to |budget| slots from the sweep cursor; calls f(slot) for used ones.
  template <class F>
  void sweep(unsigned budget, F&& f) {
    for (unsigned i = 0; i < budget; ++i) {
      Slot& s = slots_[cursor_++ & mask_];
      if (s.used) f(s);
    }
  }
  template <class F>
  void for_each(F&& f) {
    for (auto& s : slots_)
      if (s.used) f(s);
  }

  uint32_t size() const { return size_; }
  uint32_t capacity() const { return mask_ + 1; }
  static constexpr size_t slot_bytes() { return sizeof(Slot); }

 private:
  std::vector<Slot> slots_;
  uint32_t mask_;
  uint32_t size_ = 0;
  uint32_t cursor_ = 0;
};

}  // namespace sekisho::tcp
