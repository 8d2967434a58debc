#include "control/rulesets/rulesets_api.hpp"

namespace sekisho::control::rulesets {

using http::Access;
using http::Call;
using http::Response;
using http::Status;
using http::Verb;
using nlohmann::json;

namespace {

Response error_of(const Call& c, const RulesetError& e) {
  Status s = e.kind == RulesetError::not_found ? Status::not_found
             : e.kind == RulesetError::conflict ? Status::conflict
             : e.kind == RulesetError::dataplane ? Status::bad_gateway
                                                : Status::bad_request;
  return http::json_error(c.req, s, e.what());
}

PackFiles files_of(const Call& c, const Limits& lim) {
  std::string ct(c.req[boost::beast::http::field::content_type]);
  if (ct.rfind("application/x-tar", 0) == 0 || ct.rfind("application/octet-stream", 0) == 0) return untar(c.req.body(), lim);
  json j = http::body_json(c);
  if (!j.is_object() || !j.contains("files") || !j["files"].is_object() || j.size() != 1)
    throw http::BadRequest("expected {\"files\": {\"name\": \"text\", ...}} or a tar (Content-Type application/x-tar)");
  PackFiles f;
  for (auto it = j["files"].begin(); it != j["files"].end(); ++it) {
    if (!it.value().is_string()) throw http::BadRequest("files['" + it.key().substr(0, 100) + "']: expected text");
    f[it.key()] = it.value().get<std::string>();
  }
  return f;
}

int64_t version_of(std::string_view s) {
  if (!s.empty() && s[0] == 'v') s.remove_prefix(1);
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string_view::npos)
    throw RulesetError(RulesetError::not_found, "no ruleset version '" + std::string(s.substr(0, 40)) + "'");
  return std::stoll(std::string(s));
}

}  // namespace

void add_ruleset_routes(http::Router& router, RulesetService& rs) {
  auto root = [&rs](const Call& c) -> Response {
    if (c.req.method() == Verb::get) {
      http::only_params(c, {"limit"});
      int64_t limit = c.params.count("limit") ? http::param_int("limit", c.params.at("limit"), 1, 1000) : 100;
      json v = json::array();
      for (const auto& x : rs.list(limit)) v.push_back(x.to_json());
      std::optional<int64_t> a = rs.active();
      return http::json_status(c, Status::ok, {{"active", a ? json(*a) : json()}, {"versions", v}});
    }
    http::only_params(c, {"activate"});
    CheckResult check;
    try {
      PackFiles files = files_of(c, rs.limits());
      int64_t v = rs.upload(files, http::actor(c), c.now_us, http::flag_param(c, "activate"), &check);
      return http::json_status(c, Status::accepted,
                         {{"version", v}, {"state", "compiling"}, {"check", {{"rules", check.rules}, {"lists", check.lists}}}});
    } catch (const RulesetError& e) {
      if (!check.errors.empty())
        return http::json_status(c, Status::unprocessable_entity, {{"error", e.what()}, {"errors", check.errors}});
      return error_of(c, e);
    }
  };
  router.add({Verb::get}, "/api/rulesets", Access::user, root);
  router.add({Verb::post}, "/api/rulesets", Access::admin, root);
  router.add({Verb::post}, "/api/rulesets/check", Access::admin, [&rs](const Call& c) -> Response {
    http::only_params(c, {});
    try {
      CheckResult r = rs.check(files_of(c, rs.limits()));
      return http::json_status(c, Status::ok, {{"ok", r.ok()}, {"errors", r.errors}, {"rules", r.rules}, {"lists", r.lists}});
    } catch (const RulesetError& e) {
      return error_of(c, e);
    }
  });
  router.add({Verb::post}, "/api/rulesets/rollback", Access::admin, [&rs](const Call& c) -> Response {
    http::only_params(c, {});
    try {
      ActivationResult r = rs.rollback(http::actor(c), c.now_us);
      return http::json_status(c, Status::ok, {{"version", r.version}, {"previous", r.previous}, {"dataplane", r.dataplane}});
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
        return http::json_status(c, Status::ok, j);
      }
      if (c.req.method() == Verb::post && tail == "/activate") {
        ActivationResult r = rs.activate(v, http::actor(c), c.now_us);
        return http::json_status(c, Status::ok, {{"version", r.version}, {"previous", r.previous}, {"dataplane", r.dataplane}});
      }
      return http::json_error(c.req, tail.empty() || tail == "/activate" ? Status::method_not_allowed : Status::not_found,
                              tail.empty() || tail == "/activate" ? "method not allowed here" : "no such resource");
    } catch (const RulesetError& e) {
      return error_of(c, e);
    }
  };
  router.add({Verb::get}, "/api/rulesets/", Access::user, one, true);
  router.add({Verb::post}, "/api/rulesets/", Access::admin, one, true);
}

}  // namespace sekisho::control::rulesets
