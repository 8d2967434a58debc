#include "control/auth/throttle.hpp"

#include <algorithm>

namespace sekisho::control::auth {

int64_t Throttle::blocked_for(const std::string& key, int64_t now_us) const {
  std::lock_guard g(mu_);
  auto it = keys_.find(key);
  if (it == keys_.end() || it->second.failures < max_) return 0;
  int64_t end = it->second.start_us + window_;
  return end > now_us ? end - now_us : 0;
}

void Throttle::failure(const std::string& key, int64_t now_us) {
  std::lock_guard g(mu_);
  auto it = keys_.find(key);
  if (it != keys_.end()) {
    if (now_us - it->second.start_us >= window_) it->second = Window{now_us, 0};
    ++it->second.failures;
    return;
  }
  if (keys_.size() >= capacity_) {
    std::erase_if(keys_, [&](const auto& kv) { return now_us - kv.second.start_us >= window_; });
    if (keys_.size() >= capacity_) {
      auto oldest = std::min_element(keys_.begin(), keys_.end(), [](const auto& a, const auto& b) {
        return a.second.start_us < b.second.start_us;
      });
      keys_.erase(oldest);
    }
  }
  keys_.emplace(key, Window{now_us, 1});
}

void Throttle::reset(const std::string& key) {
  std::lock_guard g(mu_);
  keys_.erase(key);
}

size_t Throttle::tracked() const {
  std::lock_guard g(mu_);
  return keys_.size();
}

}  // namespace sekisho::control::auth
