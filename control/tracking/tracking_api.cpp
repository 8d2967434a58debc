#include "control/tracking/tracking_api.hpp"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "control/tracking/metrics.hpp"
#include "control/tracking/time.hpp"

namespace sekisho::control::tracking {

namespace bhttp = boost::beast::http;
using nlohmann::json;
using http::Access;
using http::BadRequest;
using http::Call;
using http::Request;
using http::Response;
using http::Router;
using http::Status;
using http::Verb;
using http::json_error;
using http::json_ok;
using http::make_response;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::optional<int64_t> parse_int(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

// ISO 8601 with zone, a UTC date, or Unix seconds.
int64_t parse_time(const std::string& name, const std::string& v) {
  if (auto t = parse_iso_time_us(v)) return *t;
  if (v.size() == 10 && v[4] == '-' && v[7] == '-')
    if (auto t = parse_iso_time_us(v + "T00:00:00Z")) return *t;
  if (auto s = parse_int(v); s && *s >= 0 && *s < (int64_t(1) << 40)) return *s * 1000000;
  throw BadRequest("'" + name + "' must be an ISO 8601 time with zone, YYYY-MM-DD or Unix seconds, not \"" + v +
                   "\"");
}

namespace {

int64_t parse_bounded(const std::string& name, const std::string& v, int64_t lo, int64_t hi) {
  auto n = parse_int(v);
  if (!n || *n < lo || *n > hi)
    throw BadRequest("'" + name + "' must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  return *n;
}

}  // namespace

LogQuery log_query(const std::map<std::string, std::string>& params, int64_t default_limit,
                          int64_t max_limit) {
  static const std::set<std::string> kVerdicts = {"pass", "tag", "reject", "tempfail", "quarantine"};
  LogQuery q;
  q.limit = default_limit;
  for (const auto& [k, v] : params) {
    if (k == "q") q.q = v;
    else if (k == "sender") q.sender = v;
    else if (k == "rcpt") q.rcpt = v;
    else if (k == "from") q.from = v;
    else if (k == "subject") q.subject = v;
    else if (k == "verdict") {
      if (!v.empty() && !kVerdicts.count(v))
        throw BadRequest("'verdict' must be pass, tag, reject, tempfail or quarantine, not \"" + v + "\"");
      q.verdict = v;
    } else if (k == "since") {
      if (!v.empty()) q.since_us = parse_time(k, v);
    } else if (k == "until") {
      if (!v.empty()) q.until_us = parse_time(k, v);
    } else if (k == "limit") {
      q.limit = parse_bounded(k, v, 1, max_limit);
    } else if (k == "offset") {
      q.offset = parse_bounded(k, v, 0, int64_t(1) << 40);
    } else {
      throw BadRequest("unknown parameter '" + k + "'");
    }
  }
  if (q.since_us && q.until_us && *q.since_us > *q.until_us) throw BadRequest("'since' is after 'until'");
  return q;
}

namespace {

std::string shown_sender(const std::string& s) { return s.empty() ? "<>" : s; }

json parse_stored(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json::array() : j;
}

}  // namespace

json row_json(const TrackingRow& r) {
  const LogEntry& e = r.event;
  json v = {{"action", e.action},
            {"rule", e.rule.empty() ? json(nullptr) : json(e.rule)},
            {"score", e.score ? json(*e.score) : json(nullptr)}};
  return {{"event_id", e.event_id},
          {"time", iso_time_us(e.ts_us)},
          {"sender", shown_sender(e.envelope_sender)},
          {"recipient", r.recipient},
          {"from", e.header_from},
          {"to", parse_stored(e.to_json)},
          {"cc", parse_stored(e.cc_json)},
          {"reply_to", e.reply_to ? json(*e.reply_to) : json(nullptr)},
          {"subject", e.subject},
          {"size", e.size},
          {"message_id", e.message_id},
          {"client", e.client},
          {"server", e.server},
          {"tls", e.tls},
          {"verdict", v},
          {"rules", parse_stored(e.rules_json)},
          {"attachments", parse_stored(e.attachments_json)},
          {"spool", e.spool ? json(*e.spool) : json(nullptr)}};
}

namespace {

// Joins one string member (or the strings themselves) of a stored array.
std::string join(const std::string& stored, const char* member, const char* sep) {
  std::string out;
  for (const json& x : parse_stored(stored)) {
    std::string s;
    if (member && x.is_object() && x.contains(member) && x[member].is_string()) s = x[member].get<std::string>();
    else if (x.is_string()) s = x.get<std::string>();
    else continue;
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

std::string log_csv(const LogPage& page) {
  std::string out =
      "time,event_id,sender,recipient,from,to,cc,reply_to,subject,size,message_id,client,server,tls,action,rule,"
      "score,rules,attachments,spool\r\n";
  for (const auto& r : page.rows) {
    const LogEntry& e = r.event;
    char score[32] = "";
    if (e.score) snprintf(score, sizeof score, "%g", *e.score);
    std::string fields[] = {
        csv_field(iso_time_us(e.ts_us), false),
        csv_field(e.event_id, false),
        csv_field(shown_sender(e.envelope_sender)),
        csv_field(r.recipient),
        csv_field(e.header_from),
        csv_field(join(e.to_json, nullptr, ", ")),
        csv_field(join(e.cc_json, nullptr, ", ")),
        csv_field(e.reply_to.value_or("")),
        csv_field(e.subject),
        std::to_string(e.size),
        csv_field(e.message_id),
        csv_field(e.client, false),
        csv_field(e.server, false),
        e.tls ? "yes" : "no",
        csv_field(e.action, false),
        csv_field(e.rule),
        score,
        csv_field(join(e.rules_json, "rule", " ")),
        csv_field(join(e.attachments_json, "name", "; ")),
        csv_field(e.spool.value_or(""), false),
    };
    bool first = true;
    for (const auto& f : fields) {
      if (!first) out += ',';
      out += f;
      first = false;
    }
    out += "\r\n";
  }
  return out;
}

}  // namespace

std::string csv_field(std::string_view s, bool mail_text) {
  std::string v;
  if (mail_text && !s.empty() && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' ||
                                  s[0] == '\r'))
    v.push_back('\'');
  v.append(s);
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string o = "\"";
  for (char c : v) {
    if (c == '"') o.push_back('"');
    o.push_back(c);
  }
  o.push_back('"');
  return o;
}

void add_log_routes(Router& router, Store& store, Access access) {
  router.add({Verb::get}, "/metrics", Access::open, [&store](const Call& c) {
    if (!c.params.empty()) throw BadRequest("/metrics takes no parameters");
    return make_response(c.req, Status::ok, "text/plain; version=0.0.4; charset=utf-8", metrics_text(store, c.now_us));
  });
  router.add({Verb::get}, "/api/log", access, [&store](const Call& c) {
    LogQuery q = log_query(c.params, 100, 1000);
    LogPage page = store.search(q);
    json rows = json::array();
    for (const auto& r : page.rows) rows.push_back(row_json(r));
    json body = {{"total", page.total}, {"limit", q.limit}, {"offset", q.offset}, {"rows", std::move(rows)}};
    return json_ok(c.req, dump(body) + "\n");
  });
  // One message: its event fields and every recipient row.
  router.add(
      {Verb::get}, "/api/log/", access,
      [&store](const Call& c) -> Response {
        if (!c.params.empty()) throw BadRequest("this resource takes no parameters");
        std::string id(c.rest);
        if (id.empty() || id.size() > 128 || id.find('/') != std::string::npos)
          return json_error(c.req, Status::not_found, "no such message");
        std::vector<TrackingRow> rows = store.event_rows(id);  // exact id, envelope order
        if (rows.empty()) return json_error(c.req, Status::not_found, "no such message");
        json body = row_json(rows.front());
        body.erase("recipient");
        json rcpts = json::array();
        for (const auto& r : rows)
          if (!r.recipient.empty()) rcpts.push_back(r.recipient);
        body["recipients"] = rcpts;
        return json_ok(c.req, dump(body) + "\n");
      },
      true);
  router.add({Verb::get}, "/api/log.csv", access, [&store](const Call& c) {
    LogQuery q = log_query(c.params, 10000, 100000);
    Response res = make_response(c.req, Status::ok, "text/csv; charset=utf-8; header=present", log_csv(store.search(q)));
    res.set(bhttp::field::content_disposition, "attachment; filename=\"sekisho-tracking-log.csv\"");
    return res;
  });
}

Response handle_request(const Request& req, Store& store) {
  Router r;
  add_log_routes(r, store);
  return r.handle(req);
}

Response handle_request(const Request& req, Store& store, int64_t now_us) {
  Router r;
  add_log_routes(r, store);
  return r.handle(req, now_us);
}

}  // namespace sekisho::control::tracking
