#include "control/quarantine/quarantine_api.hpp"

#include <set>

namespace sekisho::control::quarantine {

using nlohmann::json;
using http::BadRequest;
using http::Call;
using http::Response;
using http::Status;
using http::Verb;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void audit_append(audit::AuditLog* a, const Call& c, const std::string& action, const std::string& id,
                  const json& details) {
  if (!a) return;
  json d = details;
  if (!c.client.empty()) d["client"] = c.client;
  a->append(http::actor(c), action, id, d, c.now_us);
}

}  // namespace

void add_quarantine_routes(http::Router& router, Quarantine& q, audit::AuditLog* audit) {
  router.add({Verb::get}, "/api/quarantine", http::Access::user, [&q](const Call& c) {
    http::only_params(c, {"q", "rcpt", "sender", "category", "state", "limit", "offset"});
    static const std::set<std::string> kStates = {"held", "releasing", "released", "deleted", "expired"};
    ItemQuery iq;
    for (const auto& [k, v] : c.params) {
      if (k == "q") iq.q = v;
      else if (k == "rcpt") iq.rcpt = v;
      else if (k == "sender") iq.sender = v;
      else if (k == "category") iq.category = v;
      else if (k == "state") {
        if (!v.empty() && !kStates.count(v))
          throw BadRequest("'state' must be held, releasing, released, deleted or expired");
        iq.state = v;
      } else if (k == "limit") iq.limit = http::param_int(k, v, 1, 1000);
      else if (k == "offset") iq.offset = http::param_int(k, v, 0, int64_t(1) << 40);
    }
    ItemPage page = q.list(iq);
    json rows = json::array();
    for (const auto& it : page.rows) rows.push_back(item_json(it));
    return http::json_ok(c.req, dump({{"total", page.total}, {"limit", iq.limit}, {"offset", iq.offset},
                                      {"rows", std::move(rows)}}) +
                                    "\n");
  });

  router.add(
      {Verb::get, Verb::post}, "/api/quarantine/", http::Access::user,
      [&q, audit](const Call& c) -> Response {
        std::string rest(c.rest);
        std::string id = rest.substr(0, rest.find('/'));
        std::string op = rest.size() > id.size() ? rest.substr(id.size() + 1) : "";
        if (id.empty() || id.size() > 128) return http::json_error(c.req, Status::not_found, "no such resource");
        bool post = c.req.method() == Verb::post;
        if (!post) {
          http::only_params(c, {});
          if (op == "message") {
            auto it = q.get(id);
            auto bytes = q.message(id);
            if (!it || !bytes)
              return http::json_error(c.req, Status::not_found, "no stored message (not found, deleted or expired)");
            Response r = http::make_response(c.req, Status::ok, "message/rfc822", std::move(*bytes));
            r.set(boost::beast::http::field::content_disposition, "attachment; filename=\"" + id + ".eml\"");
            return r;
          }
          if (!op.empty()) return http::json_error(c.req, Status::not_found, "no such resource");
          auto it = q.get(id);
          if (!it) return http::json_error(c.req, Status::not_found, "no such quarantined message");
          json j = item_json(*it);
          json headers = json::array();
          j["text"] = nullptr;
          j["text_truncated"] = false;
          if (auto v = q.view(id)) {
            for (const auto& [n, val] : v->headers) headers.push_back({n, val});
            j["text"] = v->text;
            j["text_truncated"] = v->text_truncated;
          }
          j["headers"] = headers;
          return http::json_ok(c.req, dump(j) + "\n");
        }
        // Actions: admins only.
        if (!c.who.user.empty() && !c.who.admin)
          return http::json_error(c.req, Status::forbidden, "releasing and deleting need an administrator");
        json body = json::object();
        if (!c.req.body().empty()) {
          body = json::parse(c.req.body(), nullptr, false);
          if (body.is_discarded() || !body.is_object()) throw BadRequest("the body must be a JSON object");
        }
        if (op == "release") {
          for (const auto& [k, v] : body.items())
            if (k != "relay") throw BadRequest("unknown field '" + k + "'");
          bool relay = body.contains("relay") && body["relay"].is_boolean() && body["relay"].get<bool>();
          ReleaseOutcome r = q.release(id, http::actor(c), relay, c.now_us);
          audit_append(audit, c, r.ok ? "quarantine.release" : "quarantine.release_failed", id,
                       {{"relay", relay}, {"result", r.result}, {"error", r.error}});
          if (!r.ok) {
            Response res = http::make_response(
                c.req, Status(r.http_status), "application/json",
                dump({{"error", r.error}, {"id", id}, {"release", r.result}}) + "\n");
            return res;
          }
          return http::json_ok(c.req, dump({{"id", id}, {"state", "released"}, {"release", r.result}}) + "\n");
        }
        if (op == "delete") {
          if (!body.empty()) throw BadRequest("delete takes no fields");
          auto it = q.get(id);
          if (!it) return http::json_error(c.req, Status::not_found, "no such quarantined message");
          if (!q.remove(id, http::actor(c), c.now_us))
            return http::json_error(c.req, Status::conflict, "not held (" + it->state + ")");
          audit_append(audit, c, "quarantine.delete", id, {{"subject", it->subject}, {"sender", it->envelope_sender}});
          return http::json_ok(c.req, dump({{"id", id}, {"state", "deleted"}}) + "\n");
        }
        return http::json_error(c.req, Status::not_found, "no such action");
      },
      true);
}

}  // namespace sekisho::control::quarantine
