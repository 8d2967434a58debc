#include "dataplane/pipeline/release_list.hpp"

namespace sekisho::pipeline {

bool ReleaseList::parse(std::string_view hex, std::array<uint8_t, 32>& out) {
  if (hex.size() != 64) return false;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < 32; ++i) {
    int h = nib(hex[2 * i]), l = nib(hex[2 * i + 1]);
    if (h < 0 || l < 0) return false;
    out[i] = uint8_t(h << 4 | l);
  }
  return true;
}

void ReleaseList::purge(uint64_t now_s) {
  for (Entry& e : entries_) {
    if (e.used && e.expires <= now_s) {
      e.used = false;
      count_.fetch_sub(1, std::memory_order_release);
    }
  }
}

ReleaseList::AddResult ReleaseList::add(std::string_view sha256_hex, uint64_t now_s, uint64_t ttl_s) {
  std::array<uint8_t, 32> h;
  if (!parse(sha256_hex, h)) return AddResult::bad_hash;
  std::lock_guard lock(mu_);
  Entry* free_slot = nullptr;
  for (Entry& e : entries_) {
    if (e.used && e.hash == h) {
      e.expires = now_s + ttl_s;
      return AddResult::refreshed;
    }
    if (!e.used && !free_slot) free_slot = &e;
  }
  if (!free_slot) {
    purge(now_s);
    for (Entry& e : entries_)
      if (!e.used) {
        free_slot = &e;
        break;
      }
    if (!free_slot) return AddResult::full;
  }
  free_slot->hash = h;
  free_slot->expires = now_s + ttl_s;
  free_slot->used = true;
  count_.fetch_add(1, std::memory_order_release);
  return AddResult::added;
}

bool ReleaseList::take(std::string_view sha256_hex, uint64_t now_s) {
  if (count_.load(std::memory_order_acquire) == 0) return false;
  std::array<uint8_t, 32> h;
  if (!parse(sha256_hex, h)) return false;
  std::lock_guard lock(mu_);
  for (Entry& e : entries_) {
    if (!e.used || e.hash != h) continue;
    e.used = false;
    count_.fetch_sub(1, std::memory_order_release);
    return e.expires > now_s;
  }
  return false;
}

}  // namespace sekisho::pipeline
