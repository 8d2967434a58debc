// Messages the control plane has released from quarantine and is about to
// re-deliver through the wire: the dataplane must not catch them again.
//
// The control plane sends the spooled bytes unchanged (the server must get
// them byte-identical), so a release is named by the message's SHA-256 as
// the dataplane computes it (of the message as delivered, after
// dot-unstuffing): `/sekisho/release,HEX[,TTL_S]` adds it, and the first
// message with that hash whose verdict would not be pass is passed instead
// and the entry consumed (one release, one delivery; a second copy of the
// same bytes is judged again). Entries expire after their TTL.
//
// Capacity is fixed (kCapacity); adding to a full list first drops expired
// entries, then refuses. Hot path: take() reads one atomic count and returns
// at once while the list is empty; otherwise it locks a mutex, which
// happens only for a message with a non-pass verdict while releases are
// pending (per message, never per packet).
//
// Thread-safety: add() from the telemetry thread, take() from workers; any
// thread may call either.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace sekisho::pipeline {

class ReleaseList {
 public:
  static constexpr size_t kCapacity = 4096;

  enum class AddResult { added, refreshed, bad_hash, full };
  // sha256: 64 hex digits (either case). now_s/ttl_s: any monotonic seconds.
  AddResult add(std::string_view sha256_hex, uint64_t now_s, uint64_t ttl_s);
  // True (and the entry removed) when sha256_hex is pending and not expired.
  bool take(std::string_view sha256_hex, uint64_t now_s);
  size_t pending() const { return count_.load(std::memory_order_acquire); }

 private:
  struct Entry {
    std::array<uint8_t, 32> hash{};
    uint64_t expires = 0;
    bool used = false;
  };
  static bool parse(std::string_view hex, std::array<uint8_t, 32>& out);
  void purge(uint64_t now_s);  // under mu_
  std::mutex mu_;
  std::array<Entry, kCapacity> entries_{};
  std::atomic<size_t> count_{0};
};

}  // namespace sekisho::pipeline
