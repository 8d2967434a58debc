#include "control/policy/policy_api.hpp"

#include "rules/compiler/compiler.hpp"
#include "rules/lang/parser.hpp"
#include "scanners/match/match.hpp"

namespace sekisho::control::policy {

using http::Access;
using http::Call;
using http::Response;
using http::Status;
using http::Verb;
using nlohmann::json;

namespace {

json errors_json(const std::vector<PolicyError>& errs) {
  json a = json::array();
  for (const auto& e : errs)
    a.push_back({{"rule", e.rule >= 0 ? json(e.rule + 1) : json()}, {"name", e.name}, {"field", e.field},
                 {"reason", e.reason}, {"text", e.text()}});
  return a;
}

// The policy alone against one message given as fields.
json preview(const Policy& p, const json& m) {
  std::string text = compile_policy(p);
  rules::RuleSource src;
  rules::parse_text(src, "policy.cf", text);
  rules::finish_source(src);
  std::string art;
  rules::CompileReport rep;
  std::vector<rules::Diagnostic> errs;
  if (!src.errors.empty() || !rules::compile_ruleset(src, {}, art, rep, errs))
    throw http::BadRequest("the policy does not compile");
  std::string err;
  auto rs = match::Ruleset::load_bytes({reinterpret_cast<const uint8_t*>(art.data()), art.size()}, err);
  if (!rs) throw std::runtime_error("preview artifact: " + err);
  if (!m.is_object()) throw http::BadRequest("message: expected an object");
  auto str = [&](const char* k) -> std::string {
    if (!m.contains(k)) return "";
    if (!m[k].is_string()) throw http::BadRequest(std::string("message.") + k + ": expected a string");
    return m[k].get<std::string>();
  };
  std::vector<std::string> rcpts;
  if (m.contains("rcpt_to")) {
    if (!m["rcpt_to"].is_array() || m["rcpt_to"].size() > 1000) throw http::BadRequest("message.rcpt_to: expected a list");
    for (auto& r : m["rcpt_to"]) {
      if (!r.is_string()) throw http::BadRequest("message.rcpt_to: expected strings");
      rcpts.push_back(r.get<std::string>());
    }
  }
  match::Scratch scratch(*rs);
  match::MessageScan scan(*rs, scratch);
  scan.envelope(str("mail_from"), rcpts, str("helo"));
  if (!str("client_ip").empty()) scan.client_ip(str("client_ip"));
  if (m.contains("headers")) {
    if (!m["headers"].is_array() || m["headers"].size() > 1000) throw http::BadRequest("message.headers: expected [[name, value], ...]");
    for (auto& h : m["headers"]) {
      if (!h.is_array() || h.size() != 2 || !h[0].is_string() || !h[1].is_string())
        throw http::BadRequest("message.headers: expected [[name, value], ...]");
      scan.header(h[0].get<std::string>(), h[1].get<std::string>(), h[1].get<std::string>());
    }
  }
  std::string body = str("body");
  scan.body_text(match::bytes_of(body));
  match::Result r;
  std::vector<double> values;
  scan.finish(r, values);
  json rules_j = json::array();
  for (const auto& pr : p.rules) {
    if (!pr.enabled) continue;
    uint32_t i = rs->find(compiled_name(pr.name));
    rules_j.push_back({{"name", pr.name}, {"holds", i != rules::kNone && values[i] != 0}});
  }
  return {{"action", rules::action_name(r.action)},
          {"decided_by", std::string(r.decided_by)},
          {"reply", std::string(r.reply)},
          {"sender_class", std::string(1, rules::sender_class_letter(r.sender_class))},
          {"rules", rules_j}};
}

}  // namespace

void add_policy_routes(http::Router& router, PolicyStore& ps, PolicySaved on_saved, audit::Hook audit) {
  auto pol = [&ps, on_saved, audit](const Call& c) -> Response {
    if (c.req.method() == Verb::get) {
      http::only_params(c, {});
      PolicyRevision r = ps.current();
      return http::json_status(c, Status::ok,
                         {{"revision", r.id}, {"created_us", r.created_us}, {"created_by", r.created_by},
                          {"policy", policy_json(r.policy)}, {"compiled", compile_policy(r.policy)}});
    }
    http::only_params(c, {"activate"});
    bool activate = http::flag_param(c, "activate");
    Policy p;
    std::vector<PolicyError> errs;
    if (!parse_policy(http::body_json(c), p, errs) || !(errs = check_policy(p)).empty())
      return http::json_status(c, Status::unprocessable_entity,
                         {{"error", "the policy has " + std::to_string(errs.size()) + " error(s): " + errs.front().text()},
                          {"errors", errors_json(errs)}});
    int64_t revision = ps.save(p, http::actor(c), c.now_us);
    int64_t version = on_saved(http::actor(c), c.now_us, activate);
    if (audit)
      audit(http::actor(c), "policy.update", "revision " + std::to_string(revision),
            {{"rules", p.rules.size()}, {"ruleset_version", version}, {"activate_when_compiled", activate}}, c.now_us);
    return http::json_status(c, Status::accepted, {{"revision", revision}, {"version", version}, {"state", "compiling"}});
  };
  router.add({Verb::get}, "/api/policy", Access::user, pol);
  router.add({Verb::put, Verb::post}, "/api/policy", Access::admin, pol);  // POST: the same, for forms
  router.add({Verb::post}, "/api/policy/preview", Access::user, [&ps](const Call& c) -> Response {
    http::only_params(c, {});
    json j = c.req.body().empty() ? json::object() : http::body_json(c);
    if (!j.is_object()) throw http::BadRequest("expected {\"policy\": ..., \"message\": ...}");
    for (auto it = j.begin(); it != j.end(); ++it)
      if (it.key() != "policy" && it.key() != "message") throw http::BadRequest("unknown field '" + it.key().substr(0, 64) + "'");
    Policy p;
    std::vector<PolicyError> errs;
    if (j.contains("policy")) {
      if (parse_policy(j["policy"], p, errs)) errs = check_policy(p);
    } else {
      p = ps.current().policy;
    }
    json out = {{"errors", errors_json(errs)}};
    if (errs.empty()) {
      out["compiled"] = compile_policy(p);
      if (j.contains("message")) out["result"] = preview(p, j["message"]);
    }
    return http::json_status(c, Status::ok, out);
  });

  router.add({Verb::get}, "/api/templates", Access::user, [&ps](const Call& c) -> Response {
    http::only_params(c, {});
    json a = json::array();
    for (const auto& t : ps.templates())
      a.push_back({{"name", t.t.name}, {"subject", t.t.subject}, {"body", t.t.body}, {"updated_us", t.updated_us},
                   {"updated_by", t.updated_by}});
    return http::json_status(c, Status::ok, a);
  });
  auto tpl = [&ps, audit](const Call& c) -> Response {
               http::only_params(c, {});
               std::string_view rest = c.rest;
               size_t slash = rest.find('/');
               std::string name(rest.substr(0, slash));
               std::string_view tail = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
               if (c.req.method() == Verb::post && tail == "/render") {
                 auto t = ps.get_template(name);
                 if (!t) return http::json_error(c.req, Status::not_found, "no template '" + name.substr(0, 64) + "'");
                 json j = http::body_json(c);
                 if (!j.is_object()) throw http::BadRequest("expected an object");
                 NoticeFacts f;
                 auto s = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
                 auto list = [&](const char* k) {
                   std::vector<std::string> v;
                   if (j.contains(k) && j[k].is_array())
                     for (auto& x : j[k])
                       if (x.is_string()) v.push_back(x.get<std::string>());
                   return v;
                 };
                 f.envelope_sender = s("sender");
                 f.envelope_rcpts = list("rcpts");
                 if (!s("to").empty()) f.header_to_cc.push_back(s("to"));
                 if (!s("cc").empty()) f.header_to_cc.push_back(s("cc"));
                 f.subject = s("subject");
                 f.rule = s("rule");
                 RenderedNotice r = render(t->t, f);
                 return http::json_status(c, Status::ok,
                                    {{"subject", r.subject}, {"body", r.body}, {"recipients", visible_recipients(f)}});
               }
               if (!tail.empty()) return http::json_error(c.req, Status::not_found, "no such resource");
               if (c.req.method() == Verb::get) {
                 auto t = ps.get_template(name);
                 if (!t) return http::json_error(c.req, Status::not_found, "no template '" + name.substr(0, 64) + "'");
                 return http::json_status(c, Status::ok, {{"name", t->t.name}, {"subject", t->t.subject}, {"body", t->t.body},
                                                    {"updated_us", t->updated_us}, {"updated_by", t->updated_by}});
               }
               if (c.req.method() == Verb::delete_) {
                 if (!ps.delete_template(name)) return http::json_error(c.req, Status::not_found, "no template '" + name.substr(0, 64) + "'");
                 if (audit) audit(http::actor(c), "template.delete", name, json::object(), c.now_us);
                 return http::json_status(c, Status::ok, {{"deleted", name}});
               }
               if (c.req.method() == Verb::put) {
                 json j = http::body_json(c);
                 if (!j.is_object() || !j.contains("subject") || !j["subject"].is_string() ||
                     (j.contains("body") && !j["body"].is_string()))
                   throw http::BadRequest("expected {\"subject\": \"...\", \"body\": \"...\"}");
                 NotificationTemplate t{name, j["subject"].get<std::string>(), j.value("body", std::string())};
                 std::string why = template_problem(t);
                 if (!why.empty()) return http::json_error(c.req, Status::unprocessable_entity, why);
                 ps.put_template(t, http::actor(c), c.now_us);
                 if (audit) audit(http::actor(c), "template.update", name, {{"subject", t.subject}}, c.now_us);
                 return http::json_status(c, Status::ok, {{"name", name}});
               }
               return http::json_error(c.req, Status::method_not_allowed, "method not allowed here");
  };
  router.add({Verb::get, Verb::post}, "/api/templates/", Access::user, tpl, true);  // read, render
  router.add({Verb::put, Verb::delete_}, "/api/templates/", Access::admin, tpl, true);
}

}  // namespace sekisho::control::policy
