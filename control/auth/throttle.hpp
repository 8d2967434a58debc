// Login throttling: failed attempts counted per key (a user name, a client
// IP) in fixed windows. A key that reached `max_failures` within `window`
// is refused until its window ends, right password or not.
//
// Memory is bounded: at most `capacity` keys are tracked; when full, expired
// windows are dropped first, then the oldest window (an attacker spraying
// names can only push out the oldest entries, never grow the table).
// Counts are per process: control planes sharing a database each throttle
// on their own.
//
// Thread-safety: all methods lock an internal mutex.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace sekisho::control::auth {

class Throttle {
 public:
  Throttle(int max_failures, int64_t window_us, size_t capacity)
      : max_(max_failures), window_(window_us), capacity_(capacity) {}

  // 0 when an attempt may go ahead; else microseconds until it may.
  int64_t blocked_for(const std::string& key, int64_t now_us) const;
  void failure(const std::string& key, int64_t now_us);
  void reset(const std::string& key);
  size_t tracked() const;

 private:
  struct Window {
    int64_t start_us;
    int failures;
  };
  int max_;
  int64_t window_;
  size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Window> keys_;
};

}  // namespace sekisho::control::auth
