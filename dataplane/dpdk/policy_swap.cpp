// The policy swap (envelope rules and content ruleset) with DPDK RCU: the
// control side loads a new PolicySet off the fast path and publishes its
// pointer; workers report quiescence once per loop and never wait. A
// message keeps the set it started with (PolicySet::inflight), so a
// replaced set is freed once its grace period is over and no message holds
// it (reclaim_policies, called by the housekeeping thread of run()).
//
// Thread-safety: under BridgeState::policy_mu, on the telemetry thread, the
// housekeeping thread or the main thread.
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <stdexcept>

#include "dataplane/dpdk/bridge.hpp"
#include "dataplane/dpdk/bridge_state.hpp"

namespace sekisho::dataplane {

namespace {

// Publishes |next| and retires the set it replaces. Caller holds policy_mu.
void publish_locked(BridgeState& s, PolicySet* next) {
  next->version = ++s.policy_versions;
  PolicySet* old = s.policy.exchange(next, std::memory_order_acq_rel);
  s.retired.emplace_back(old, rte_rcu_qsbr_start(s.qs));
}

}  // namespace

void init_policy(BridgeState& s) {
  const DataplaneConfig& cfg = s.cfg;
  auto* first = new PolicySet;
  first->rules = cfg.envelope_policy;
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
}

// Frees replaced policy sets no worker can reach and no message holds.
void reclaim_policies(BridgeState& s) {
  std::lock_guard<std::mutex> lock(s.policy_mu);
  for (auto it = s.retired.begin(); it != s.retired.end();) {
    if (rte_rcu_qsbr_check(s.qs, it->second, false) == 1 && it->first->held() == 0) {
      delete it->first;
      ++s.policy_freed;
      it = s.retired.erase(it);
    } else {
      ++it;
    }
  }
}

// At shutdown, after the last reclaim.
void free_policies(BridgeState& s) {
  std::lock_guard<std::mutex> lock(s.policy_mu);
  for (auto& [set, token] : s.retired) delete set;
  s.retired.clear();
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
  next->rules = std::move(parsed);
  next->source = path;
  next->inflight.resize(s.workers.size());
  std::lock_guard<std::mutex> lock(s.policy_mu);
  next->content = s.policy.load()->content;  // the content ruleset stays
  publish_locked(s, next);
  version = next->version;
  rules = next->rules.size();
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
  next->rules = cur->rules;
  next->source = cur->source;
  next->content = std::move(rules);
  next->inflight.resize(s.workers.size());
  publish_locked(s, next);
  version = next->version;
  ruleset_version = next->content ? std::string(next->content->ruleset->version()) : "none";
  return "";
}

}  // namespace sekisho::dataplane
