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

#include <fnmatch.h>

#include <rte_ring.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/config/dataplane_config.hpp"
#include "dataplane/smtp/content_policy.hpp"
#include "dataplane/smtp/release_list.hpp"
#include "dataplane/smtp/smtp_flow.hpp"
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
  std::vector<EnvelopeRule> rules;
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
struct WorkerEvents : smtp::FlowEvents {
  rte_ring* ring = nullptr;
  std::atomic<PolicySet*>* policy = nullptr;  // the published set
  unsigned worker = 0;
  unsigned lcore = 0;
  // Counters, written by the worker only (message_counters.def).
#define X(field, name, text) uint64_t field = 0;
#include "dataplane/dpdk/message_counters.def"
#undef X
  uint32_t next_id = 0;
  smtp::Action smuggling = smtp::Action::reject;  // for messages ended by <LF>.<CR><LF>
  bool scan_overflow_tempfail = false;
  static bool glob(const std::string& pattern, const std::string& value) {
    return pattern.empty() || fnmatch(pattern.c_str(), value.c_str(), FNM_CASEFOLD) == 0;
  }
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
  smtp::ReleaseList* releases = nullptr;  // released from quarantine: pass once
  smtp::Action on_message_end(smtp::MessageRecord& m) override {
    smtp::Action a = decide(m);
    if (a == smtp::Action::pass || m.verdict_rule == "smtp_smuggling") return a;
    if (releases && !m.sha256.empty() && releases->pending() &&
        releases->take(m.sha256, uint64_t(std::chrono::duration_cast<std::chrono::seconds>(
                                               std::chrono::steady_clock::now().time_since_epoch())
                                               .count()))) {
      // Released by the control plane: delivered this once, not caught again.
      add(released_passed, 1);
      m.verdict_rule = "released:" + m.verdict_rule;
      return smtp::Action::pass;
    }
    if (a == smtp::Action::reject) add(rejected, 1);
    if (a == smtp::Action::tempfail) add(tempfailed, 1);
    return a;
  }
  // The verdict before releases: smuggling refusal, envelope rules, content.
  smtp::Action decide(smtp::MessageRecord& m) {
    if (m.txn->bare_lf_end && smuggling != smtp::Action::pass) {
      // Where this message ends depends on the server: refuse it whole.
      add(smuggling_refused, 1);
      m.verdict_rule = "smtp_smuggling";
      m.id = spool::make_message_id(uint64_t(m.ts * 1e6), lcore, next_id++);
      if (smuggling == smtp::Action::reject) add(rejected, 1);
      else add(tempfailed, 1);
      return smuggling;
    }
    const auto* set = static_cast<const PolicySet*>(m.policy);
    if (!set) return smtp::Action::pass;
    const std::string sender = m.txn->mail_from.empty() ? "<>" : m.txn->mail_from;
    for (const auto& r : set->rules) {
      if (!glob(r.mail_from, sender)) continue;
      bool rcpt = r.rcpt_to.empty();
      for (const auto& a : m.txn->rcpt_to) rcpt = rcpt || glob(r.rcpt_to, a);
      for (const auto& a : m.txn->rcpt_pending) rcpt = rcpt || (!a.empty() && glob(r.rcpt_to, a));
      if (!rcpt) continue;
      m.verdict_rule = r.name;
      if (r.action == "pass") return smtp::Action::pass;
      m.id = spool::make_message_id(uint64_t(m.ts * 1e6), lcore, next_id++);
      if (r.action == "reject") return smtp::Action::reject;
      if (r.action == "quarantine") return smtp::Action::quarantine;
      return smtp::Action::tempfail;
    }
    if (set->content && m.content && worker < set->content->scratch.size()) {
      // The content verdict: one scan of what the message's collector kept.
      smtp::ContentScan c = smtp::scan_content(*set->content->ruleset, *set->content->scratch[worker], m);
      add(scanned, 1);
      if (c.tagged) add(scan_tagged, 1);
      smtp::Action a = c.action;
      m.reply_text = std::move(c.reply);
      if (c.content_truncated) {
        add(scan_truncated, 1);
        if (scan_overflow_tempfail && a == smtp::Action::pass) {
          a = smtp::Action::tempfail;
          m.verdict_rule = "scan_overflow";
        }
      }
      if (a == smtp::Action::pass) return a;
      m.id = spool::make_message_id(uint64_t(m.ts * 1e6), lcore, next_id++);
      return a;
    }
    return smtp::Action::pass;
  }
  void push(const nlohmann::json& j) {
    auto* line = new std::string(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    if (rte_ring_sp_enqueue(ring, line) != 0) {
      delete line;
      add(dropped, 1);
    }
  }
  static void add(uint64_t& c, uint64_t d) { __atomic_store_n(&c, __atomic_load_n(&c, __ATOMIC_RELAXED) + d, __ATOMIC_RELAXED); }
  void on_message(const smtp::MessageRecord& m) override {
    add(messages, 1);
    if (ring) push(smtp::message_json(m));
  }
  void on_session(const smtp::SessionRecord& s) override {
    add(sessions, 1);
    if (s.session->tls) add(tls_sessions, 1);  // encrypted after STARTTLS: not inspected
    if (ring) push(smtp::session_json(s));
  }
};

}  // namespace sekisho::dataplane
