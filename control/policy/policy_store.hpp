// Where the policy and the notification templates live: two tables in the
// control plane's database (migration component "policy"), written with
// db::Db's portable SQL so that SQLite and PostgreSQL behave alike.
//
//   policy_revisions(id, created_us, created_by, doc)  every saved policy;
//                                                      the newest is current
//   notification_templates(name, subject, body, updated_us, updated_by)
//
// Thread-safety: as the Db's (calls are serialised by its driver).
// Errors: db::StoreError from the database; std::invalid_argument for a
// template that fails validation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "control/policy/policy.hpp"
#include "control/policy/templates.hpp"
#include "control/db/db.hpp"

namespace sekisho::control::policy {

struct PolicyRevision {
  int64_t id = 0;  // 0: nothing saved yet (the empty policy)
  int64_t created_us = 0;
  std::string created_by;
  Policy policy;
};

struct StoredTemplate {
  NotificationTemplate t;
  int64_t updated_us = 0;
  std::string updated_by;
};

class PolicyStore {
 public:
  explicit PolicyStore(db::Db& db);  // migrates

  PolicyRevision current();
  // Stores a validated policy as the newest revision; returns its id.
  int64_t save(const Policy& p, const std::string& who, int64_t now_us);

  std::vector<StoredTemplate> templates();
  std::optional<StoredTemplate> get_template(const std::string& name);
  void put_template(const NotificationTemplate& t, const std::string& who, int64_t now_us);
  bool delete_template(const std::string& name);

 private:
  db::Db& db_;
};

}  // namespace sekisho::control::policy
