// ReleaseList: one release lets one copy of the message through, once, and
// only before it expires; bad hashes and a full list are refused.
#include "dataplane/pipeline/release_list.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cctype>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace sekisho::pipeline {
namespace {

std::string hash_of(unsigned n) {
  char b[65];
  snprintf(b, sizeof b, "%064x", n);
  return b;
}

TEST(ReleaseList, OneReleaseLetsOneCopyThrough) {
  ReleaseList r;
  const std::string h = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
  EXPECT_FALSE(r.take(h, 100));
  EXPECT_EQ(r.add(h, 100, 60), ReleaseList::AddResult::added);
  EXPECT_EQ(r.pending(), 1u);
  EXPECT_FALSE(r.take(hash_of(1), 101));  // another message is still judged
  std::string lower = h;
  for (char& c : lower) c = char(std::tolower(c));
  EXPECT_TRUE(r.take(lower, 101));  // hex case does not matter
  EXPECT_FALSE(r.take(h, 102));     // consumed: a second copy is judged again
  EXPECT_EQ(r.pending(), 0u);
}

TEST(ReleaseList, ExpiredReleaseDoesNotPass) {
  ReleaseList r;
  ASSERT_EQ(r.add(hash_of(7), 100, 10), ReleaseList::AddResult::added);
  EXPECT_FALSE(r.take(hash_of(7), 110));
  EXPECT_EQ(r.pending(), 0u);  // and it is gone
  ASSERT_EQ(r.add(hash_of(7), 200, 10), ReleaseList::AddResult::added);
  EXPECT_EQ(r.add(hash_of(7), 205, 10), ReleaseList::AddResult::refreshed);
  EXPECT_TRUE(r.take(hash_of(7), 212));  // refreshed at 205: valid until 215
}

TEST(ReleaseList, BadHashesRefused) {
  ReleaseList r;
  EXPECT_EQ(r.add("", 0, 10), ReleaseList::AddResult::bad_hash);
  EXPECT_EQ(r.add(hash_of(1).substr(1), 0, 10), ReleaseList::AddResult::bad_hash);
  EXPECT_EQ(r.add(hash_of(1) + "0", 0, 10), ReleaseList::AddResult::bad_hash);
  std::string g = hash_of(1);
  g[10] = 'g';
  EXPECT_EQ(r.add(g, 0, 10), ReleaseList::AddResult::bad_hash);
  EXPECT_EQ(r.pending(), 0u);
}

TEST(ReleaseList, FullListRefusesUntilEntriesExpire) {
  ReleaseList r;
  for (unsigned i = 0; i < ReleaseList::kCapacity; ++i)
    ASSERT_EQ(r.add(hash_of(i), 0, i < 10 ? 5 : 1000), ReleaseList::AddResult::added);
  EXPECT_EQ(r.add(hash_of(99999), 1, 100), ReleaseList::AddResult::full);
  EXPECT_EQ(r.add(hash_of(99999), 6, 100), ReleaseList::AddResult::added);  // the first ten expired
  EXPECT_EQ(r.pending(), ReleaseList::kCapacity - 9);
  EXPECT_TRUE(r.take(hash_of(500), 7));
}

TEST(ReleaseList, ConcurrentTakeConsumesEachReleaseOnce) {
  ReleaseList r;
  for (unsigned i = 0; i < 1000; ++i) r.add(hash_of(i), 0, 1000);
  std::atomic<int> taken{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (unsigned i = 0; i < 1000; ++i)
        if (r.take(hash_of(i), 1)) taken.fetch_add(1);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(taken.load(), 1000);
  EXPECT_EQ(r.pending(), 0u);
}

}  // namespace
}  // namespace sekisho::pipeline
