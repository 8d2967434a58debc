// The audit log: every admin action, release and delete, appended to a
// hash-chained table (audit_log) in the control plane's database, so that
// several control planes sharing one PostgreSQL share one chain.
//
// Entry n stores hash_n = HMAC-SHA256(key, hash_{n-1} || canonical(entry_n))
// where canonical() covers seq, time, actor, action, target and details.
// verify() recomputes the chain: an edited entry breaks its own hash, a
// removed one breaks the link of the next, and truncation of the tail is
// found against the head (seq and hash) kept outside the database in the
// anchor file, written on every append.
//
// Thread-safety: append() is one transaction (the chain head is read and
// extended under it); any thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "control/db/db.hpp"

namespace sekisho::control::audit {

struct Entry {
  int64_t seq = 0;
  int64_t ts_us = 0;
  std::string actor;    // user name, "token:NAME", or "system"
  std::string action;   // "login", "quarantine.release", "rules.activate", ...
  std::string target;   // what it acted on (quarantine id, ruleset version, user), "" if none
  nlohmann::json details = nlohmann::json::object();
  std::string hash;     // hex
};

struct VerifyResult {
  bool ok = true;
  int64_t entries = 0;
  std::vector<std::string> problems;  // "entry 17: hash does not match its content", ...
};

class AuditLog {
 public:
  // key: the HMAC key (raw bytes, from the configured key file); anchor:
  // the file that keeps the chain head ("" = none: tail truncation is then
  // not detectable). Creates the table (migration component "audit").
  AuditLog(db::Db& db, std::string key, std::string anchor_path);

  Entry append(const std::string& actor, const std::string& action, const std::string& target,
               const nlohmann::json& details, int64_t now_us);
  std::vector<Entry> list(int64_t limit, int64_t before_seq = 0);  // newest first
  VerifyResult verify();

 private:
  db::Db& db_;
  std::string key_;
  std::string anchor_;
};

}  // namespace sekisho::control::audit
