#include "control/rulesets/rulesets_api.hpp"

#include "scanners/match/match.hpp"
#include "rules/compiler/compiler.hpp"
#include "rules/lang/parser.hpp"

namespace sekisho::control::rulesets {

using http::Access;
using http::Call;
using http::Response;
using http::Status;
using http::Verb;
using nlohmann::json;

namespace {

std::string who(const Call& c) { return c.who.user.empty() ? "anonymous" : c.who.user; }

Response json_status(const Call& c, Status s, const json& body) {
  return http::make_response(c.req, s, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
}

Response error_of(const Call& c, const RulesetError& e) {
  Status s = e.kind == RulesetError::not_found ? Status::not_found
             : e.kind == RulesetError::conflict ? Status::conflict
             : e.kind == RulesetError::dataplane ? Status::bad_gateway
                                                : Status::bad_request;
  return http::json_error(c.req, s, e.what());
}

json body_json(const Call& c) {
  json j = json::parse(c.req.body(), nullptr, false);
  if (j.is_discarded()) throw http::BadRequest("the body is not JSON");
  return j;
}

bool flag(const Call& c, const char* name) {
  auto it = c.params.find(name);
  if (it == c.params.end()) return false;
  if (it->second == "1" || it->second == "true") return true;
  if (it->second == "0" || it->second == "false") return false;
  throw http::BadRequest(std::string("'") + name + "' must be 1 or 0");
}

PackFiles files_of(const Call& c, const Limits& lim) {
  std::string ct(c.req[boost::beast::http::field::content_type]);
  if (ct.rfind("application/x-tar", 0) == 0 || ct.rfind("application/octet-stream", 0) == 0) return untar(c.req.body(), lim);
  json j = body_json(c);
  if (!j.is_object() || !j.contains("files") || !j["files"].is_object() || j.size() != 1)
    throw http::BadRequest("expected {\"files\": {\"name\": \"text\", ...}} or a tar (Content-Type application/x-tar)");
  PackFiles f;
  for (auto it = j["files"].begin(); it != j["files"].end(); ++it) {
    if (!it.value().is_string()) throw http::BadRequest("files['" + it.key().substr(0, 100) + "']: expected text");
    f[it.key()] = it.value().get<std::string>();
  }
  return f;
}

json errors_json(const std::vector<policy::PolicyError>& errs) {
  json a = json::array();
  for (const auto& e : errs)
    a.push_back({{"rule", e.rule >= 0 ? json(e.rule + 1) : json()}, {"name", e.name}, {"field", e.field},
                 {"reason", e.reason}, {"text", e.text()}});
  return a;
}

int64_t version_of(std::string_view s) {
  if (!s.empty() && s[0] == 'v') s.remove_prefix(1);
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string_view::npos)
    throw RulesetError(RulesetError::not_found, "no ruleset version '" + std::string(s.substr(0, 40)) + "'");
  return std::stoll(std::string(s));
}

// The policy alone against one message given as fields.
json preview(const policy::Policy& p, const json& m) {
  std::string text = policy::compile_policy(p);
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
    uint32_t i = rs->find(policy::compiled_name(pr.name));
    rules_j.push_back({{"name", pr.name}, {"holds", i != rules::kNone && values[i] != 0}});
  }
  return {{"action", rules::action_name(r.action)},
          {"decided_by", std::string(r.decided_by)},
          {"reply", std::string(r.reply)},
          {"sender_class", std::string(1, rules::sender_class_letter(r.sender_class))},
          {"rules", rules_j}};
}

}  // namespace

void add_ruleset_routes(http::Router& router, RulesetService& rs, policy::PolicyStore& ps, AuditHook audit) {
  auto root = [&rs](const Call& c) -> Response {
    if (c.req.method() == Verb::get) {
      http::only_params(c, {"limit"});
      int64_t limit = c.params.count("limit") ? http::param_int("limit", c.params.at("limit"), 1, 1000) : 100;
      json v = json::array();
      for (const auto& x : rs.list(limit)) v.push_back(x.to_json());
      std::optional<int64_t> a = rs.active();
      return json_status(c, Status::ok, {{"active", a ? json(*a) : json()}, {"versions", v}});
    }
    http::only_params(c, {"activate"});
    CheckResult check;
    try {
      PackFiles files = files_of(c, rs.limits());
      int64_t v = rs.upload(files, who(c), c.now_us, flag(c, "activate"), &check);
      return json_status(c, Status::accepted,
                         {{"version", v}, {"state", "compiling"}, {"check", {{"rules", check.rules}, {"lists", check.lists}}}});
    } catch (const RulesetError& e) {
      if (!check.errors.empty())
        return json_status(c, Status::unprocessable_entity, {{"error", e.what()}, {"errors", check.errors}});
      return error_of(c, e);
    }
  };
  router.add({Verb::get}, "/api/rulesets", Access::user, root);
  router.add({Verb::post}, "/api/rulesets", Access::admin, root);
  router.add({Verb::post}, "/api/rulesets/check", Access::admin, [&rs](const Call& c) -> Response {
    http::only_params(c, {});
    try {
      CheckResult r = rs.check(files_of(c, rs.limits()));
      return json_status(c, Status::ok, {{"ok", r.ok()}, {"errors", r.errors}, {"rules", r.rules}, {"lists", r.lists}});
    } catch (const RulesetError& e) {
      return error_of(c, e);
    }
  });
  router.add({Verb::post}, "/api/rulesets/rollback", Access::admin, [&rs](const Call& c) -> Response {
    http::only_params(c, {});
    try {
      ActivationResult r = rs.rollback(who(c), c.now_us);
      return json_status(c, Status::ok, {{"version", r.version}, {"previous", r.previous}, {"dataplane", r.dataplane}});
    } catch (const RulesetError& e) {
      return error_of(c, e);
    }
  });
  auto one = [&rs](const Call& c) -> Response {
    http::only_params(c, {});
    try {
      std::string_view rest = c.rest;
      size_t slash = rest.find('/');
      int64_t v = version_of(rest.substr(0, slash));
      std::string_view tail = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
      if (c.req.method() == Verb::get && tail.empty()) {
        std::optional<Version> x = rs.get(v);
        if (!x) throw RulesetError(RulesetError::not_found, "no ruleset version " + std::to_string(v));
        json j = x->to_json();
        j["report"] = x->report;
        j["file_names"] = rs.file_names(v);
        return json_status(c, Status::ok, j);
      }
      if (c.req.method() == Verb::post && tail == "/activate") {
        ActivationResult r = rs.activate(v, who(c), c.now_us);
        return json_status(c, Status::ok, {{"version", r.version}, {"previous", r.previous}, {"dataplane", r.dataplane}});
      }
      return http::json_error(c.req, tail.empty() || tail == "/activate" ? Status::method_not_allowed : Status::not_found,
                              tail.empty() || tail == "/activate" ? "method not allowed here" : "no such resource");
    } catch (const RulesetError& e) {
      return error_of(c, e);
    }
  };
  router.add({Verb::get}, "/api/rulesets/", Access::user, one, true);
  router.add({Verb::post}, "/api/rulesets/", Access::admin, one, true);

  auto pol = [&rs, &ps, audit](const Call& c) -> Response {
    if (c.req.method() == Verb::get) {
      http::only_params(c, {});
      policy::PolicyRevision r = ps.current();
      return json_status(c, Status::ok,
                         {{"revision", r.id}, {"created_us", r.created_us}, {"created_by", r.created_by},
                          {"policy", policy::policy_json(r.policy)}, {"compiled", policy::compile_policy(r.policy)}});
    }
    http::only_params(c, {"activate"});
    bool activate = flag(c, "activate");
    policy::Policy p;
    std::vector<policy::PolicyError> errs;
    if (!policy::parse_policy(body_json(c), p, errs) || !(errs = policy::check_policy(p)).empty())
      return json_status(c, Status::unprocessable_entity,
                         {{"error", "the policy has " + std::to_string(errs.size()) + " error(s): " + errs.front().text()},
                          {"errors", errors_json(errs)}});
    int64_t revision = ps.save(p, who(c), c.now_us);
    int64_t version = rs.policy_changed(who(c), c.now_us, activate);
    if (audit)
      audit(who(c), "policy.update", "revision " + std::to_string(revision),
            {{"rules", p.rules.size()}, {"ruleset_version", version}, {"activate_when_compiled", activate}}, c.now_us);
    return json_status(c, Status::accepted, {{"revision", revision}, {"version", version}, {"state", "compiling"}});
  };
  router.add({Verb::get}, "/api/policy", Access::user, pol);
  router.add({Verb::put, Verb::post}, "/api/policy", Access::admin, pol);  // POST: the same, for forms
  router.add({Verb::post}, "/api/policy/preview", Access::user, [&ps](const Call& c) -> Response {
    http::only_params(c, {});
    json j = c.req.body().empty() ? json::object() : body_json(c);
    if (!j.is_object()) throw http::BadRequest("expected {\"policy\": ..., \"message\": ...}");
    for (auto it = j.begin(); it != j.end(); ++it)
      if (it.key() != "policy" && it.key() != "message") throw http::BadRequest("unknown field '" + it.key().substr(0, 64) + "'");
    policy::Policy p;
    std::vector<policy::PolicyError> errs;
    if (j.contains("policy")) {
      if (policy::parse_policy(j["policy"], p, errs)) errs = policy::check_policy(p);
    } else {
      p = ps.current().policy;
    }
    json out = {{"errors", errors_json(errs)}};
    if (errs.empty()) {
      out["compiled"] = policy::compile_policy(p);
      if (j.contains("message")) out["result"] = preview(p, j["message"]);
    }
    return json_status(c, Status::ok, out);
  });

  router.add({Verb::get}, "/api/templates", Access::user, [&ps](const Call& c) -> Response {
    http::only_params(c, {});
    json a = json::array();
    for (const auto& t : ps.templates())
      a.push_back({{"name", t.t.name}, {"subject", t.t.subject}, {"body", t.t.body}, {"updated_us", t.updated_us},
                   {"updated_by", t.updated_by}});
    return json_status(c, Status::ok, a);
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
                 json j = body_json(c);
                 if (!j.is_object()) throw http::BadRequest("expected an object");
                 policy::NoticeFacts f;
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
                 policy::RenderedNotice r = policy::render(t->t, f);
                 return json_status(c, Status::ok,
                                    {{"subject", r.subject}, {"body", r.body}, {"recipients", policy::visible_recipients(f)}});
               }
               if (!tail.empty()) return http::json_error(c.req, Status::not_found, "no such resource");
               if (c.req.method() == Verb::get) {
                 auto t = ps.get_template(name);
                 if (!t) return http::json_error(c.req, Status::not_found, "no template '" + name.substr(0, 64) + "'");
                 return json_status(c, Status::ok, {{"name", t->t.name}, {"subject", t->t.subject}, {"body", t->t.body},
                                                    {"updated_us", t->updated_us}, {"updated_by", t->updated_by}});
               }
               if (c.req.method() == Verb::delete_) {
                 if (!ps.delete_template(name)) return http::json_error(c.req, Status::not_found, "no template '" + name.substr(0, 64) + "'");
                 if (audit) audit(who(c), "template.delete", name, json::object(), c.now_us);
                 return json_status(c, Status::ok, {{"deleted", name}});
               }
               if (c.req.method() == Verb::put) {
                 json j = body_json(c);
                 if (!j.is_object() || !j.contains("subject") || !j["subject"].is_string() ||
                     (j.contains("body") && !j["body"].is_string()))
                   throw http::BadRequest("expected {\"subject\": \"...\", \"body\": \"...\"}");
                 policy::NotificationTemplate t{name, j["subject"].get<std::string>(), j.value("body", std::string())};
                 std::string why = policy::template_problem(t);
                 if (!why.empty()) return http::json_error(c.req, Status::unprocessable_entity, why);
                 ps.put_template(t, who(c), c.now_us);
                 if (audit) audit(who(c), "template.update", name, {{"subject", t.subject}}, c.now_us);
                 return json_status(c, Status::ok, {{"name", name}});
               }
               return http::json_error(c.req, Status::method_not_allowed, "method not allowed here");
  };
  router.add({Verb::get, Verb::post}, "/api/templates/", Access::user, tpl, true);  // read, render
  router.add({Verb::put, Verb::delete_}, "/api/templates/", Access::admin, tpl, true);
}

}  // namespace sekisho::control::rulesets
