#include "control/policy/policy_store.hpp"

#include <stdexcept>

namespace sekisho::control::policy {

namespace {

const db::Migration kMigrations[] = {
    {1, "policy revisions and notification templates",
     "CREATE TABLE policy_revisions (id {{id}}, created_us BIGINT NOT NULL, created_by TEXT NOT NULL, doc TEXT NOT NULL);"
     "CREATE TABLE notification_templates (name TEXT PRIMARY KEY, subject TEXT NOT NULL, body TEXT NOT NULL,"
     " updated_us BIGINT NOT NULL, updated_by TEXT NOT NULL)"},
};

}  // namespace

PolicyStore::PolicyStore(db::Db& db) : db_(db) { db_.migrate("policy", kMigrations); }

PolicyRevision PolicyStore::current() {
  PolicyRevision r;
  std::string doc;
  db_.exec("SELECT id, created_us, created_by, doc FROM policy_revisions ORDER BY id DESC LIMIT 1", {},
           [&](const db::Row& row) {
             r.id = row.i64(0);
             r.created_us = row.i64(1);
             r.created_by = row.text(2);
             doc = row.text(3);
           });
  if (r.id) {
    std::vector<PolicyError> errors;
    nlohmann::json j = nlohmann::json::parse(doc, nullptr, false);
    if (!parse_policy(j, r.policy, errors))
      throw db::StoreError("stored policy revision " + std::to_string(r.id) + " does not parse: " +
                              (errors.empty() ? std::string("not JSON") : errors[0].text()));
  }
  return r;
}

int64_t PolicyStore::save(const Policy& p, const std::string& who, int64_t now_us) {
  std::optional<int64_t> id =
      db_.query_i64("INSERT INTO policy_revisions (created_us, created_by, doc) VALUES (?, ?, ?) RETURNING id",
                    {now_us, who, policy_json(p).dump()});
  if (!id) throw db::StoreError("policy revision: no id returned");
  return *id;
}

std::vector<StoredTemplate> PolicyStore::templates() {
  std::vector<StoredTemplate> out;
  db_.exec("SELECT name, subject, body, updated_us, updated_by FROM notification_templates ORDER BY name", {},
           [&](const db::Row& r) {
             out.push_back({{r.text(0), r.text(1), r.text(2)}, r.i64(3), r.text(4)});
           });
  return out;
}

std::optional<StoredTemplate> PolicyStore::get_template(const std::string& name) {
  std::optional<StoredTemplate> out;
  db_.exec("SELECT name, subject, body, updated_us, updated_by FROM notification_templates WHERE name = ?", {name},
           [&](const db::Row& r) { out = StoredTemplate{{r.text(0), r.text(1), r.text(2)}, r.i64(3), r.text(4)}; });
  return out;
}

void PolicyStore::put_template(const NotificationTemplate& t, const std::string& who, int64_t now_us) {
  std::string why = template_problem(t);
  if (!why.empty()) throw std::invalid_argument(why);
  db_.exec(
      "INSERT INTO notification_templates (name, subject, body, updated_us, updated_by) VALUES (?, ?, ?, ?, ?) "
      "ON CONFLICT (name) DO UPDATE SET subject = excluded.subject, body = excluded.body, "
      "updated_us = excluded.updated_us, updated_by = excluded.updated_by",
      {t.name, t.subject, t.body, now_us, who});
}

bool PolicyStore::delete_template(const std::string& name) {
  return db_.exec("DELETE FROM notification_templates WHERE name = ?", {name}) > 0;
}

}  // namespace sekisho::control::policy
