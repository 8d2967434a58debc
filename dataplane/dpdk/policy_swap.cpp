// The policy swap (envelope rules and content ruleset) with DPDK RCU, as
// rte_rcu_qsbr.h describes it: the control side loads a new PolicySet off
// the fast path, publishes its pointer, and hands the old one to a defer
// queue (rte_rcu_qsbr_dq_*); workers report quiescence once per loop and
// never wait.
//
//   reload ──> publish new ──> dq_enqueue(old) ──grace period──> free_fn
//                                                                  │
//                  held() == 0: delete  <──────────────────────────┤
//                  held() > 0:  draining ──(last message ends)──> delete
//
// A message keeps the set it started with (PolicySet::inflight), so a set
// past its grace period may still be held: it waits in |draining|. Both are
// reclaimed on the control side's own calls (each reload, each stats
// query, shutdown): no housekeeping thread sleeps for it.
//
// Thread-safety: everything here runs under BridgeState::policy_mu, on the
// telemetry thread or the main thread (the defer queue is MT-unsafe).
#define ALLOW_EXPERIMENTAL_API 1  // the defer queue is experimental in DPDK 22.11

#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_pause.h>
#include <rte_rcu_qsbr.h>

#include <climits>
#include <cstring>
#include <stdexcept>

#include "dataplane/dpdk/bridge.hpp"
#include "dataplane/dpdk/bridge_state.hpp"

namespace sekisho::dataplane {

namespace {

constexpr uint32_t kDeferQueueSize = 64;  // replaced sets inside their grace period

// The defer queue's free function: the grace period of |e| is over, so no
// worker can load it any more; a message may still hold it.
void policy_grace_over(void* p, void* e, unsigned int n) {
  auto& s = *static_cast<BridgeState*>(p);
  for (unsigned i = 0; i < n; ++i) {
    PolicySet* set;
    std::memcpy(&set, static_cast<const char*>(e) + i * sizeof set, sizeof set);
    if (set->held() == 0) {
      delete set;
      ++s.policy_freed;
    } else {
      s.draining.push_back(set);
    }
  }
}

// Frees what no worker can reach and no message holds. Caller holds policy_mu.
void reclaim_locked(BridgeState& s) {
  unsigned freed = 0, pending = 0, available = 0;
  rte_rcu_qsbr_dq_reclaim(s.dq, UINT_MAX, &freed, &pending, &available);
  for (auto it = s.draining.begin(); it != s.draining.end();) {
    if ((*it)->held() == 0) {
      delete *it;
      ++s.policy_freed;
      it = s.draining.erase(it);
    } else {
      ++it;
    }
  }
}

// Publishes |next| and retires the set it replaces. Caller holds policy_mu.
void publish_locked(BridgeState& s, PolicySet* next) {
  next->version = ++s.policy_versions;
  PolicySet* old = s.policy.exchange(next, std::memory_order_acq_rel);
  ++s.policy_retired;
  // Full only while 64 sets are inside their grace period: workers end it
  // within a loop, so this spins for microseconds at most.
  while (rte_rcu_qsbr_dq_enqueue(s.dq, &old) != 0) {
    reclaim_locked(s);
    rte_pause();
  }
  reclaim_locked(s);
}

}  // namespace

void init_policy(BridgeState& s) {
  const DataplaneConfig& cfg = s.cfg;
  auto* first = new PolicySet;
  first->policy = evaluator_policy(cfg);
  if (!cfg.ruleset.empty()) {
    std::string err;
    first->content = load_content_rules(cfg.ruleset, cfg.workers, ++s.ruleset_loads, err);
    if (!first->content) {
      delete first;
      throw ConfigError(cfg.file, 0, "dataplane.ruleset: " + err);
    }
  }
  first->source = cfg.file;
  first->version = ++s.policy_versions;
  first->inflight.resize(cfg.workers);
  s.policy.store(first);
  size_t qs_size = rte_rcu_qsbr_get_memsize(cfg.workers);
  s.qs = static_cast<rte_rcu_qsbr*>(rte_zmalloc("sk_rcu", qs_size, RTE_CACHE_LINE_SIZE));
  if (!s.qs || rte_rcu_qsbr_init(s.qs, cfg.workers) != 0) throw std::runtime_error("cannot set up RCU");
  rte_rcu_qsbr_dq_parameters params{};
  params.name = "sk_policy_dq";
  params.flags = RTE_RCU_QSBR_DQ_MT_UNSAFE;
  params.size = kDeferQueueSize;
  params.esize = sizeof(PolicySet*);
  params.trigger_reclaim_limit = 0;  // reclaim on every enqueue
  params.max_reclaim_size = kDeferQueueSize;
  params.free_fn = policy_grace_over;
  params.p = &s;
  params.v = s.qs;
  s.dq = rte_rcu_qsbr_dq_create(&params);
  if (!s.dq) throw std::runtime_error(std::string("cannot create the RCU defer queue: ") + rte_strerror(rte_errno));
}

void reclaim_policies(BridgeState& s) {
  std::lock_guard<std::mutex> lock(s.policy_mu);
  if (s.dq) reclaim_locked(s);
}

// At shutdown, workers offline (every grace period is over) and every flow
// closed (no message holds a set).
void free_policies(BridgeState& s) {
  std::lock_guard<std::mutex> lock(s.policy_mu);
  if (s.dq) {
    reclaim_locked(s);
    if (rte_rcu_qsbr_dq_delete(s.dq) == 0) s.dq = nullptr;
  }
  for (PolicySet* set : s.draining) delete set;
  s.draining.clear();
  delete s.policy.load();
  s.policy.store(nullptr);
  rte_free(s.qs);
  s.qs = nullptr;
}

std::string Bridge::reload_policy(const std::string& path, uint64_t& version, size_t& rules) {
  BridgeState& s = *s_;
  std::vector<EnvelopeRule> parsed;
  try {
    parsed = load_envelope_policy(path);  // off the fast path: the telemetry thread
  } catch (const ConfigError& e) {
    return e.what();
  }
  auto* next = new PolicySet;
  next->source = path;
  next->inflight.resize(s.workers.size());
  std::lock_guard<std::mutex> lock(s.policy_mu);
  next->policy = s.policy.load()->policy;  // the configured stages stay; the envelope rules are replaced
  next->policy.envelope = std::move(parsed);
  next->content = s.policy.load()->content;  // the content ruleset stays
  publish_locked(s, next);
  version = next->version;
  rules = next->policy.envelope.size();
  return "";
}

std::string Bridge::load_rules(const std::string& path, uint64_t& version, std::string& ruleset_version) {
  BridgeState& s = *s_;
  uint64_t load_no;
  {
    std::lock_guard<std::mutex> lock(s.policy_mu);
    load_no = ++s.ruleset_loads;
  }
  std::string err;
  std::shared_ptr<ContentRules> rules;
  if (!path.empty() && path != "none") {
    rules = load_content_rules(path, unsigned(s.workers.size()), load_no, err);  // off the fast path
    if (!rules) return path + ": " + err;
  }
  std::lock_guard<std::mutex> lock(s.policy_mu);
  const PolicySet* cur = s.policy.load();
  auto* next = new PolicySet;
  next->policy = cur->policy;
  next->source = cur->source;
  next->content = std::move(rules);
  next->inflight.resize(s.workers.size());
  publish_locked(s, next);
  version = next->version;
  ruleset_version = next->content ? std::string(next->content->ruleset->version()) : "none";
  return "";
}

}  // namespace sekisho::dataplane
