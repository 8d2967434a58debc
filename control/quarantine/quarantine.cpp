#include "control/quarantine/quarantine.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "control/ingest/journal_ingest.hpp"
#include "scanners/mime/collect.hpp"
#include "control/tracking/store.hpp"
#include "journal/spool_file.hpp"

namespace sekisho::control::quarantine {

using nlohmann::json;
using db::Value;

namespace {

const db::Migration kMigrations[] = {
    {1, "quarantine: held messages and their bytes",
     R"sql(
CREATE TABLE quarantine (
  id              TEXT PRIMARY KEY,
  ts_us           BIGINT NOT NULL,
  envelope_sender TEXT NOT NULL,
  recipients      TEXT NOT NULL,
  header_from     TEXT NOT NULL,
  header_to       TEXT NOT NULL,
  header_cc       TEXT NOT NULL,
  reply_to        TEXT,
  subject         TEXT NOT NULL,
  message_id      TEXT NOT NULL,
  size            BIGINT NOT NULL,
  sha256          TEXT NOT NULL,
  client          TEXT NOT NULL,
  server          TEXT NOT NULL,
  tls             BIGINT NOT NULL,
  rule            TEXT NOT NULL,
  category        TEXT NOT NULL,
  score           DOUBLE PRECISION,
  rules_hit       TEXT NOT NULL,
  attachments     TEXT NOT NULL,
  state           TEXT NOT NULL,
  expires_us      BIGINT NOT NULL,
  changed_us      BIGINT,
  changed_by      TEXT NOT NULL,
  release_result  TEXT NOT NULL,
  stored_us       BIGINT NOT NULL
);
CREATE INDEX quarantine_state_ts ON quarantine (state, ts_us);
CREATE INDEX quarantine_expiry ON quarantine (state, expires_us);
CREATE TABLE quarantine_messages (
  id      TEXT PRIMARY KEY REFERENCES quarantine (id),
  message {{blob}} NOT NULL
);
)sql"},
};

const char* kColumns =
    "id, ts_us, envelope_sender, recipients, header_from, header_to, header_cc, reply_to, subject, message_id, size, "
    "sha256, client, server, tls, rule, category, score, rules_hit, attachments, state, expires_us, changed_us, "
    "changed_by, release_result";

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::vector<std::string> json_strings(const std::string& text) {
  std::vector<std::string> out;
  json j = json::parse(text, nullptr, false);
  if (j.is_array())
    for (const auto& x : j)
      if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

Item read_item(const db::Row& r) {
  Item it;
  it.id = r.text(0);
  it.ts_us = r.i64(1);
  it.envelope_sender = r.text(2);
  it.recipients = json_strings(r.text(3));
  it.header_from = r.text(4);
  it.to_json = r.text(5);
  it.cc_json = r.text(6);
  it.reply_to = r.opt_text(7);
  it.subject = r.text(8);
  it.message_id = r.text(9);
  it.size = r.i64(10);
  it.sha256 = r.text(11);
  it.client = r.text(12);
  it.server = r.text(13);
  it.tls = r.i64(14) != 0;
  it.rule = r.text(15);
  it.category = r.text(16);
  if (!r.null(17)) it.score = r.dbl(17);
  it.rules_json = r.text(18);
  it.attachments_json = r.text(19);
  it.state = r.text(20);
  it.expires_us = r.i64(21);
  if (!r.null(22)) it.changed_us = r.i64(22);
  it.changed_by = r.text(23);
  it.release_json = r.text(24);
  return it;
}

// "IP:port" or "[IPv6]:port".
bool split_endpoint(const std::string& ep, std::string& host, uint16_t& port) {
  size_t colon = ep.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = ep.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  try {
    int p = std::stoi(ep.substr(colon + 1));
    if (p <= 0 || p > 65535) return false;
    port = uint16_t(p);
  } catch (...) {
    return false;
  }
  return true;
}

// The category a gateway groups held mail by: the rule packs' category of
// the verdict, else the sender class, else "policy" (an envelope rule).
std::string category_of(const journal::EventVerdict& v) {
  if (!v.scan) return "policy";
  if (!v.scan->categories.empty()) return v.scan->categories[0];
  if (!v.scan->sender_class.empty()) return v.scan->sender_class;
  return "content";
}

}  // namespace

json item_json(const Item& it) {
  json release = json::parse(it.release_json.empty() ? "null" : it.release_json, nullptr, false);
  if (release.is_discarded()) release = nullptr;
  auto arr = [](const std::string& t) {
    json j = json::parse(t, nullptr, false);
    return j.is_discarded() ? json::array() : j;
  };
  return {{"id", it.id},
          {"time_us", it.ts_us},
          {"sender", it.envelope_sender.empty() ? "<>" : it.envelope_sender},
          {"recipients", it.recipients},
          {"from", it.header_from},
          {"to", arr(it.to_json)},
          {"cc", arr(it.cc_json)},
          {"reply_to", it.reply_to ? json(*it.reply_to) : json(nullptr)},
          {"subject", it.subject},
          {"message_id", it.message_id},
          {"size", it.size},
          {"sha256", it.sha256},
          {"client", it.client},
          {"server", it.server},
          {"tls", it.tls},
          {"rule", it.rule},
          {"category", it.category},
          {"score", it.score ? json(*it.score) : json(nullptr)},
          {"rules", arr(it.rules_json)},
          {"attachments", arr(it.attachments_json)},
          {"state", it.state},
          {"expires_us", it.expires_us},
          {"changed_us", it.changed_us ? json(*it.changed_us) : json(nullptr)},
          {"changed_by", it.changed_by},
          {"release", release}};
}

Quarantine::Quarantine(db::Db& db, Options opt) : db_(db), opt_(std::move(opt)) {
  db_.migrate("quarantine", kMigrations);
}

bool Quarantine::add(const std::string& header_json, const std::string& message, int64_t now_us) {
  // One parse of the header into the event; the tracking log's mapping of it.
  journal::MessageEvent ev;
  if (auto err = journal::read_spool_header(header_json, ev)) {
    if (err->newer_version) throw NewerVersion("spool header: " + err->text);
    throw std::invalid_argument("not a spool header: " + err->text);
  }
  const tracking::LogEntry e = ingest::tracking_event(ev);
  // Mail-derived text as the databases accept it (valid UTF-8, no NUL):
  // one hostile subject must not stop the quarantine.
  auto u = [](const std::string& t) { return db::valid_utf8(t); };
  if (e.event_id != u(e.event_id) || e.event_id.size() > 128)
    throw std::invalid_argument("spool header with an unusable id");
  const std::string sha = ev.sha256.value_or("");
  db::Transaction t(db_);
  int64_t n = db_.exec(
      std::string("INSERT INTO quarantine (") + kColumns +
          ", stored_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (id) DO NOTHING",
      {e.event_id, e.ts_us, u(e.envelope_sender), u(dump(json(e.recipients))), u(e.header_from), u(e.to_json),
       u(e.cc_json), e.reply_to ? Value(u(*e.reply_to)) : Value(), u(e.subject), u(e.message_id),
       int64_t(message.size()), u(sha), u(e.client), u(e.server), int64_t(e.tls), u(e.rule), u(category_of(ev.verdict)),
       db::opt(e.score), u(e.rules_json), u(e.attachments_json), std::string("held"),
       now_us + opt_.retention_s * 1000000, Value(), std::string(), std::string(), now_us});
  if (n == 0) return false;  // stored before: exactly once
  db_.exec("INSERT INTO quarantine_messages (id, message) VALUES (?, ?)", {e.event_id, db::Blob{message}});
  t.commit();
  return true;
}

SpoolStats Quarantine::ingest_spool(int64_t now_us) {
  SpoolStats st;
  if (opt_.spool_dir.empty()) return st;
  std::string dir = opt_.spool_dir + "/new";
  DIR* d = opendir(dir.c_str());
  if (!d) return st;  // the dataplane creates it when it starts
  std::vector<std::string> names;
  while (dirent* de = readdir(d)) {
    std::string n = de->d_name;
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".msg") == 0) names.push_back(n);
  }
  closedir(d);
  for (const auto& n : names) {
    std::string path = dir + "/" + n;
    journal::SpoolEntry entry;
    bool stored = false;
    try {
      if (!journal::read_spool_file(path, entry)) throw std::invalid_argument("not a complete spool entry");
      stored = add(entry.header_json, entry.message, now_us);
    } catch (const db::StoreError& e) {
      // Left in place for the next pass; the others are still taken.
      ++st.failed;
      std::cerr << "sekisho-control: quarantine: " << path << ": " << e.what() << " (retried next pass)\n";
      continue;
    } catch (const NewerVersion& e) {
      // Written by a newer dataplane: left in place for an upgraded control plane.
      ++st.newer;
      std::cerr << "sekisho-control: quarantine: " << path << ": " << e.what()
                << " (left in the spool until sekisho-control is upgraded)\n";
      continue;
    } catch (const std::invalid_argument& e) {
      // Not a spool entry: keep it aside for a person, never lose it.
      ++st.bad;
      mkdir((opt_.spool_dir + "/bad").c_str(), 0750);
      std::cerr << "sekisho-control: quarantine: " << path << ": " << e.what() << ", moved to bad/\n";
      rename(path.c_str(), (opt_.spool_dir + "/bad/" + n).c_str());
      continue;
    }
    // Stored (now or before): the database holds it, the spool copy goes.
    stored ? ++st.stored : ++st.already;
    unlink(path.c_str());
  }
  return st;
}

ItemPage Quarantine::list(const ItemQuery& q) {
  std::string where = " WHERE TRUE";
  std::vector<Value> binds;
  auto like = [&](const char* col, const std::string& v) {
    where += " AND " + db_.ci_like(col);
    binds.emplace_back(std::in_place_type<std::string>, db::like_pattern(v));
  };
  if (!q.q.empty()) {
    where += " AND (" + db_.ci_like("envelope_sender") + " OR " + db_.ci_like("recipients") + " OR " +
             db_.ci_like("header_from") + " OR " + db_.ci_like("subject") + " OR " + db_.ci_like("id") + ")";
    for (int i = 0; i < 5; ++i) binds.emplace_back(std::in_place_type<std::string>, db::like_pattern(q.q));
  }
  if (q.sender == "<>") where += " AND envelope_sender = ''";
  else if (!q.sender.empty()) like("envelope_sender", q.sender);
  if (!q.rcpt.empty()) like("recipients", q.rcpt);
  if (!q.category.empty()) like("category", q.category);
  if (!q.state.empty()) {
    where += " AND state = ?";
    binds.emplace_back(std::in_place_type<std::string>, q.state);
  }
  ItemPage page;
  db_.exec("SELECT count(*) FROM quarantine" + where, binds, [&](const db::Row& r) { page.total = r.i64(0); });
  binds.emplace_back(std::in_place_type<int64_t>, q.limit);
  binds.emplace_back(std::in_place_type<int64_t>, q.offset);
  db_.exec(std::string("SELECT ") + kColumns + " FROM quarantine" + where + " ORDER BY ts_us DESC, id DESC LIMIT ? OFFSET ?",
           binds, [&](const db::Row& r) { page.rows.push_back(read_item(r)); });
  return page;
}

std::optional<Item> Quarantine::get(const std::string& id) {
  std::optional<Item> it;
  db_.exec(std::string("SELECT ") + kColumns + " FROM quarantine WHERE id = ?", {id},
           [&](const db::Row& r) { it = read_item(r); });
  return it;
}

std::optional<std::string> Quarantine::message(const std::string& id) {
  return db_.query_text("SELECT message FROM quarantine_messages WHERE id = ?", {id});
}

std::optional<View> Quarantine::view(const std::string& id) {
  auto bytes = message(id);
  if (!bytes) return std::nullopt;
  mime::CollectLimits lim;
  lim.text_bytes = 512 * 1024;
  lim.raw_text_bytes = 0;
  lim.message_bytes = 0;
  mime::ContentCollector c(lim);
  mime::MimeParser p({}, &c);
  p.feed({reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()});
  p.finish();
  View v;
  for (size_t i = 0; i < c.fields(); ++i)
    if (c.field_part(i) == 0) v.headers.emplace_back(c.field_name(i), c.field_decoded(i));
  v.text = c.text();
  v.text_truncated = c.truncated();
  return v;
}

ReleaseOutcome Quarantine::release(const std::string& id, const std::string& actor, bool via_relay,
                                   int64_t now_us) {
  ReleaseOutcome out;
  auto it = get(id);
  if (!it) {
    out.error = "no such quarantined message";
    out.http_status = 404;
    return out;
  }
  // held -> releasing: exactly one release runs.
  if (db_.exec("UPDATE quarantine SET state = 'releasing' WHERE id = ? AND state = 'held'", {id}) != 1) {
    out.error = "not held (" + it->state + ")";
    out.http_status = 409;
    return out;
  }
  auto back_to_held = [&](const json& result) {
    db_.exec("UPDATE quarantine SET state = 'held', release_result = ? WHERE id = ?", {dump(result), id});
  };
  std::string host;
  uint16_t port = 0;
  if (via_relay || !opt_.relay_host.empty()) {
    if (opt_.relay_host.empty()) {
      back_to_held({{"error", "no relay is configured"}});
      out.error = "no relay is configured";
      out.http_status = 400;
      return out;
    }
    host = opt_.relay_host;
    port = opt_.relay_port;
  } else if (!split_endpoint(it->server, host, port)) {
    back_to_held({{"error", "no original server recorded"}});
    out.error = "the original server \"" + it->server + "\" is not an address; configure a relay";
    out.http_status = 409;
    return out;
  }
  auto bytes = message(id);
  if (!bytes) {
    back_to_held({{"error", "message bytes missing"}});
    out.error = "message bytes missing";
    out.http_status = 500;
    return out;
  }
  json result = {{"target", host + ":" + std::to_string(port)}, {"by", actor}, {"at_us", now_us}};
  if (opt_.announce_release) {
    std::string err = opt_.announce_release(it->sha256);
    if (!err.empty()) {
      // Without the announcement the appliance would hold the message again.
      result["error"] = "the dataplane did not accept the release: " + err;
      back_to_held(result);
      out.error = result["error"];
      out.result = result;
      out.http_status = 502;
      return out;
    }
    result["announced"] = true;
  }
  smtp::DeliveryResult d = smtp::deliver(host, port, it->envelope_sender, it->recipients, *bytes, opt_.smtp);
  json rc = json::array();
  for (const auto& r : d.rcpts) rc.push_back({{"rcpt", r.rcpt}, {"code", r.reply.code}, {"text", r.reply.text}});
  result["tls"] = d.tls;
  result["smtp"] = rc;
  result["final"] = {{"code", d.final.code}, {"text", d.final.text}};
  if (!d.error.empty()) result["error"] = d.error;
  out.result = result;
  if (!d.delivered) {
    back_to_held(result);
    out.error = d.error.empty() ? "delivery failed" : d.error;
    out.http_status = 502;
    return out;
  }
  db::Transaction t(db_);
  db_.exec("UPDATE quarantine SET state = 'released', changed_us = ?, changed_by = ?, release_result = ? WHERE id = ?",
           {now_us, actor, dump(result), id});
  t.commit();
  out.ok = true;
  return out;
}

bool Quarantine::remove(const std::string& id, const std::string& actor, int64_t now_us) {
  db::Transaction t(db_);
  int64_t n = db_.exec(
      "UPDATE quarantine SET state = 'deleted', changed_us = ?, changed_by = ? WHERE id = ? AND state = 'held'",
      {now_us, actor, id});
  if (n != 1) return false;
  db_.exec("DELETE FROM quarantine_messages WHERE id = ?", {id});
  t.commit();
  return true;
}

size_t Quarantine::expire(int64_t now_us) {
  db::Transaction t(db_);
  db_.exec(
      "DELETE FROM quarantine_messages WHERE id IN (SELECT id FROM quarantine WHERE state = 'held' AND expires_us <= ?)",
      {now_us});
  int64_t n = db_.exec(
      "UPDATE quarantine SET state = 'expired', changed_us = ?, changed_by = 'system' WHERE state = 'held' AND "
      "expires_us <= ?",
      {now_us, now_us});
  t.commit();
  return size_t(n);
}

std::map<std::string, int64_t> Quarantine::counts_by_state() {
  std::map<std::string, int64_t> m;
  db_.exec("SELECT state, count(*) FROM quarantine GROUP BY state", {},
           [&](const db::Row& r) { m[r.text(0)] = r.i64(1); });
  return m;
}

}  // namespace sekisho::control::quarantine
