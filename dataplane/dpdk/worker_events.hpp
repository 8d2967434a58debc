// The verdict hook of a worker and the policy it reads: the published
// envelope rules and content ruleset (PolicySet, ContentRules), and
// WorkerEvents, which judges each message at its hold point and hands the
// message and session events to the journal ring.
//
// Moved whole out of bridge.cpp (issue 15): the verdict logic is replaced
// by the evaluator next; its counters are declared in message_counters.def.
//
// Thread-safety: a PolicySet is immutable once published (RCU, see
// policy_swap.cpp) except |inflight|, one slot per worker written by that
// worker only; a WorkerEvents belongs to one worker.
#pragma once


#include <rte_ring.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/config/dataplane_config.hpp"
#include "scanners/verdict/evaluator.hpp"
#include "dataplane/pipeline/release_list.hpp"
#include "dataplane/pipeline/connection.hpp"
#include "dataplane/spool/spool.hpp"
#include "scanners/match/match.hpp"

namespace sekisho::dataplane {

// A loaded content ruleset and one Hyperscan scratch per worker (a worker
// scans one message at a time, at its hold point). Shared by the policy
// sets that use it; freed with the last of them.
struct ContentRules {
  std::unique_ptr<match::Ruleset> ruleset;
  std::vector<std::unique_ptr<match::Scratch>> scratch;  // by worker index
  std::string path;
  uint64_t version = 0;  // of the load, counted by the bridge
};

// Loads an artifact off the fast path (never compiles) and gives every
// worker its scratch; null with |err| set when it cannot.
std::shared_ptr<ContentRules> load_content_rules(const std::string& path, unsigned workers, uint64_t version,
                                                 std::string& err);

// An immutable envelope policy, published to the workers with RCU. A
// message keeps the set it started with (inflight counts it per worker);
// a replaced set is freed once the grace period has passed and no message
// holds it.
struct PolicySet {
  verdict::Policy policy;  // smuggling, envelope rules, overflow and MIME caps (scanners/verdict)
  std::shared_ptr<ContentRules> content;  // null: no content rules
  std::string source;
  uint64_t version = 0;
  struct alignas(64) Count { uint64_t v = 0; };
  std::vector<Count> inflight;  // one per worker, written by that worker only
  uint64_t held() const {
    uint64_t n = 0;
    for (const auto& c : inflight) n += __atomic_load_n(&c.v, __ATOMIC_ACQUIRE);
    return n;
  }
};

// Message and session events of one worker, formatted off the packet loop's
// fast part (once per message) and handed to the journal thread by ring.
struct WorkerEvents : pipeline::FlowEvents {
  rte_ring* ring = nullptr;
  std::atomic<PolicySet*>* policy = nullptr;  // the published set
  unsigned worker = 0;
  unsigned lcore = 0;
  // Counters, written by the worker only (message_counters.def).
#define X(field, name, text) uint64_t field = 0;
#include "dataplane/dpdk/message_counters.def"
#undef X
  uint32_t next_id = 0;
  verdict::Action smuggling = verdict::Action::reject;  // before a policy set is published
  const void* message_started() override {
    if (!policy) return nullptr;
    PolicySet* p = policy->load(std::memory_order_acquire);
    auto& c = p->inflight[worker].v;
    __atomic_store_n(&c, c + 1, __ATOMIC_RELEASE);
    return p;
  }
  bool wants_content(const void* token) override {
    return token && static_cast<const PolicySet*>(token)->content != nullptr;
  }
  void message_released(const void* token) override {
    auto* p = const_cast<PolicySet*>(static_cast<const PolicySet*>(token));
    auto& c = p->inflight[worker].v;
    __atomic_store_n(&c, c - 1, __ATOMIC_RELEASE);
  }
  pipeline::ReleaseList* releases = nullptr;  // released from quarantine: pass once
  void on_message_end(pipeline::MessageRecord& m) override {
    verdict::Verdict& v = m.verdict;
    v = decide(m);
    if (!verdict::delivers(v.action)) v.id = spool::make_message_id(uint64_t(m.ts * 1e6), lcore, next_id++);
    if (verdict::delivers(v.action)) return;
    if (v.stage != verdict::Stage::smuggling && releases && !m.sha256.empty() && releases->pending() &&
        releases->take(m.sha256, uint64_t(std::chrono::duration_cast<std::chrono::seconds>(
                                               std::chrono::steady_clock::now().time_since_epoch())
                                               .count()))) {
      // Released by the control plane: delivered this once, not caught again.
      add(released_passed, 1);
      v.rule = "released:" + v.rule;
      v.action = verdict::Action::pass;
      v.id.clear();
      return;
    }
    if (v.action == verdict::Action::reject) add(rejected, 1);
    if (v.action == verdict::Action::tempfail) add(tempfailed, 1);
  }
  // The verdict before releases: the one evaluator (scanners/verdict), with
  // the set the message started with and this worker's scratch.
  verdict::Verdict decide(const pipeline::MessageRecord& m) {
    const auto* set = static_cast<const PolicySet*>(m.policy);
    verdict::Policy none;
    none.smuggling = smuggling;
    verdict::Content content;
    if (set && set->content && worker < set->content->scratch.size())
      content = {set->content->ruleset.get(), set->content->scratch[worker].get()};
    const verdict::Inputs in = pipeline::verdict_inputs(m);
    verdict::Verdict v = verdict::evaluate(set ? set->policy : none, content, in);
    if (v.stage == verdict::Stage::smuggling) add(smuggling_refused, 1);
    if (v.scanned) add(scanned, 1);
    if (v.action == verdict::Action::tag) add(scan_tagged, 1);
    if (v.content_truncated) add(scan_truncated, 1);
    if (v.stage == verdict::Stage::mime) add(mime_capped, 1);
    return v;
  }
  void push(const nlohmann::json& j) {
    auto* line = new std::string(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    if (rte_ring_sp_enqueue(ring, line) != 0) {
      delete line;
      add(dropped, 1);
    }
  }
  static void add(uint64_t& c, uint64_t d) { __atomic_store_n(&c, __atomic_load_n(&c, __ATOMIC_RELAXED) + d, __ATOMIC_RELAXED); }
  void on_message(const pipeline::MessageRecord& m) override {
    add(messages, 1);
    if (ring) push(pipeline::message_json(m));
  }
  void on_session(const pipeline::SessionRecord& s) override {
    add(sessions, 1);
    if (s.session->tls) add(tls_sessions, 1);  // encrypted after STARTTLS: not inspected
    if (ring) push(pipeline::session_json(s));
  }
};

}  // namespace sekisho::dataplane
