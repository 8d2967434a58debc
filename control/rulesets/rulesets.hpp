// Ruleset versions: rule packs uploaded through the API (or a policy
// change) become numbered versions; each is checked (file:line errors),
// compiled in the background with the rules compiler library, kept
// (artifact and sources on disk, a row and its files in the database),
// activated on the dataplane through its telemetry socket, and rolled back.
//
// A version's sources are the uploaded pack files under packs/ plus the
// policy compiled to policy/policy.cf (control/policy): one parse, one
// artifact. Its artifact is DIR/vN/ruleset.art; DIR/active.art is a
// symbolic link to the active one (for the dataplane's `ruleset` setting at
// start-up); the dataplane is told with /sekisho/rules,DIR/vN/ruleset.art.
//
// States:
//
//   compiling --> compiled <--> active        (activate / another activated)
//       |
//       +-------> failed                      (compile error: `error` says why)
//
// Rollback activates the version that was active before the current one's
// activation (and, done again, the one before that).
//
// Tables (migration component "rulesets"): ruleset_versions,
// ruleset_files(version, name, body), ruleset_activations(id, version,
// previous, at_us, by_user, kind).
//
// Thread-safety: every public call may come from any thread; one
// background thread compiles, one version at a time, in version order.
// Errors: RulesetError (with an HTTP-ish kind) for requests that cannot be
// done; db::StoreError from the database.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "control/audit/hook.hpp"
#include "control/link/dataplane_link.hpp"
#include "control/db/db.hpp"

namespace sekisho::control::rulesets {

class RulesetError : public std::runtime_error {
 public:
  enum Kind { bad_request, not_found, conflict, dataplane };
  RulesetError(Kind k, const std::string& what) : std::runtime_error(what), kind(k) {}
  Kind kind;
};

// Pack files by relative path ("senders/senders.cf", "senders/freemail.txt").
using PackFiles = std::map<std::string, std::string>;

struct Limits {
  size_t max_files = 2000;
  size_t max_file_bytes = 8u << 20;
  size_t max_total_bytes = 32u << 20;
};

// Validates names (relative, no "..", [A-Za-z0-9._-/], at most 200 bytes,
// at least one .cf) and sizes; "" or the reason.
std::string pack_files_problem(const PackFiles& files, const Limits& lim);
// A POSIX tar (ustar/GNU, regular files and directories only) -> files;
// RulesetError(bad_request) on anything else or over the limits.
PackFiles untar(std::string_view tar, const Limits& lim);

struct CheckResult {
  std::vector<std::string> errors;  // "packs/x.cf:12: reason"
  size_t rules = 0, lists = 0;
  bool ok() const { return errors.empty(); }
};

struct Version {
  int64_t version = 0;
  int64_t created_us = 0;
  std::string created_by;
  std::string origin;  // "upload" or "policy"
  std::string state;   // compiling | compiled | failed | active
  std::string error;   // compile failure, or why a requested activation failed
  std::string sha256;  // of the artifact file
  std::string source_sha256;
  int64_t artifact_bytes = 0;
  int64_t rules_defined = 0, rules_active = 0, rules_refused = 0, rules_eval = 0;
  double compile_seconds = 0;
  int64_t files = 0;
  int64_t policy_revision = 0;
  int64_t activated_us = 0;  // last activation, 0 if never
  bool activate_when_compiled = false;
  nlohmann::json report;     // refused rules by reason group, contexts, databases
  nlohmann::json to_json() const;
};

struct ActivationResult {
  int64_t version = 0, previous = 0;
  nlohmann::json dataplane;  // the telemetry reply, or null when no dataplane is configured
};

// The current policy compiled to rule-language text, and its revision.
using PolicySource = std::function<std::pair<int64_t, std::string>()>;

struct Options {
  std::string dir;                         // artifacts and sources
  std::optional<std::string> telemetry;    // dataplane telemetry socket; none: activation is recorded only
  Limits limits;
  bool start_worker = true;                // false: compile only when run_pending() is called (tests)
};

class RulesetService {
 public:
  // Migrates, creates |dir|, re-queues versions left compiling by a crash.
  RulesetService(db::Db& db, Options opts, PolicySource policy, audit::Hook audit = {});
  ~RulesetService();  // stops the worker after the version in progress
  RulesetService(const RulesetService&) = delete;
  RulesetService& operator=(const RulesetService&) = delete;

  // Parses |files| with the current policy (no compile); errors as file:line.
  CheckResult check(const PackFiles& files);
  // check(), then a new version (state compiling) queued for compilation.
  // Errors: RulesetError(bad_request) with the check's errors in |errors|.
  int64_t upload(const PackFiles& files, const std::string& who, int64_t now_us, bool activate_when_compiled,
                 CheckResult* check_out = nullptr);
  // A new version from the active version's packs (else the newest
  // version's, else none) and the current policy.
  int64_t policy_changed(const std::string& who, int64_t now_us, bool activate_when_compiled);

  std::vector<Version> list(int64_t limit = 100);
  std::optional<Version> get(int64_t version);
  std::vector<std::string> file_names(int64_t version);
  std::optional<int64_t> active();

  ActivationResult activate(int64_t version, const std::string& who, int64_t now_us);
  ActivationResult rollback(const std::string& who, int64_t now_us);

  // Compiles every queued version now, on this thread (tests, start_worker=false).
  void run_pending();
  // Waits until |version| is no longer compiling (tests, tools); false on timeout.
  bool wait_compiled(int64_t version, std::chrono::milliseconds timeout);

  std::string artifact_path(int64_t version) const;
  const Limits& limits() const { return opts_.limits; }

 private:
  int64_t create(const PackFiles& packs, const std::string& origin, const std::string& who, int64_t now_us,
                 bool activate_when_compiled);
  void compile(int64_t version);
  void worker();
  ActivationResult activate_locked(int64_t version, const std::string& who, int64_t now_us, const std::string& kind,
                                   std::optional<int64_t> previous_override);
  CheckResult check_dir(const std::string& dir);

  db::Db& db_;
  Options opts_;
  PolicySource policy_;
  audit::Hook audit_;
  std::mutex activate_mu_;  // one activation at a time
  std::mutex mu_;           // queue
  std::condition_variable cv_;
  std::deque<int64_t> queue_;
  int64_t compiling_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace sekisho::control::rulesets
