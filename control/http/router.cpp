#include "control/http/router.hpp"

#include <charconv>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

namespace sekisho::control::http {

namespace bhttp = boost::beast::http;

namespace {

int from_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      o.push_back(' ');
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int h = from_hex(s[i + 1]), l = from_hex(s[i + 2]);
      if (h < 0 || l < 0) return std::nullopt;
      o.push_back(char(h * 16 + l));
      i += 2;
    } else {
      o.push_back(s[i]);
    }
  }
  return o;
}

std::string allow_header(const std::vector<Verb>& methods) {
  std::string a;
  for (Verb v : methods) {
    if (!a.empty()) a += ", ";
    a += std::string(bhttp::to_string(v));
    if (v == Verb::get) a += ", HEAD";
  }
  return a;
}

}  // namespace

Response make_response(const Request& req, Status status, std::string content_type, std::string body) {
  Response res{status, req.version()};
  res.set(bhttp::field::server, "sekisho-control");
  res.set(bhttp::field::content_type, content_type);
  res.set(bhttp::field::cache_control, "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response json_error(const Request& req, Status status, const std::string& message) {
  nlohmann::json j = {{"error", message}};
  return make_response(req, status, "application/json",
                       j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

Response json_ok(const Request& req, std::string body) {
  return make_response(req, Status::ok, "application/json", std::move(body));
}

std::optional<std::map<std::string, std::string>> parse_query(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    auto k = percent_decode(pair.substr(0, eq));
    auto v = percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!k || !v || k->empty()) return std::nullopt;
    if (!out.emplace(std::move(*k), std::move(*v)).second) return std::nullopt;
  }
  return out;
}

int64_t param_int(const std::string& name, const std::string& value, int64_t lo, int64_t hi) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || p != value.data() + value.size() || v < lo || v > hi)
    throw BadRequest("'" + name + "' must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  return v;
}

bool flag_param(const Call& c, const char* name) {
  auto it = c.params.find(name);
  if (it == c.params.end()) return false;
  if (it->second == "1" || it->second == "true") return true;
  if (it->second == "0" || it->second == "false") return false;
  throw BadRequest(std::string("'") + name + "' must be 1 or 0");
}

std::string actor(const Call& c) { return c.who.user.empty() ? "anonymous" : c.who.user; }

nlohmann::json body_json(const Call& c) {
  nlohmann::json j = nlohmann::json::parse(c.req.body(), nullptr, false);
  if (j.is_discarded()) throw BadRequest("the body is not JSON");
  return j;
}

Response json_status(const Call& c, Status status, const nlohmann::json& body) {
  return make_response(c.req, status, "application/json",
                       body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

void only_params(const Call& c, std::initializer_list<std::string_view> known) {
  for (const auto& [k, v] : c.params) {
    bool ok = false;
    for (auto n : known) ok = ok || k == n;
    if (!ok) throw BadRequest("unknown parameter '" + k + "'");
  }
}

std::string html_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size() + 16);
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o.push_back(c);
    }
  }
  return o;
}

void Router::add(std::initializer_list<Verb> methods, std::string path, Access access, Handler h, bool prefix) {
  routes_.push_back(Route{std::vector<Verb>(methods), std::move(path), prefix, access, std::move(h)});
}

Response Router::handle(const Request& req) const {
  auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  return handle(req, now);
}

Response Router::handle(const Request& req, int64_t now_us, std::string client) const {
  std::string_view target(req.target().data(), req.target().size());
  size_t qpos = target.find('?');
  std::string_view path = target.substr(0, qpos);
  std::string_view query = qpos == std::string_view::npos ? std::string_view() : target.substr(qpos + 1);

  // The route for this path: an exact one first, else the longest prefix.
  std::vector<const Route*> matching;
  size_t best_len = 0;
  bool exact = false;
  for (const Route& r : routes_) {
    if (!r.prefix && path == r.path) {
      if (!exact) matching.clear();
      exact = true;
      matching.push_back(&r);
    } else if (!exact && r.prefix && path.size() > r.path.size() && path.substr(0, r.path.size()) == r.path) {
      if (r.path.size() > best_len) matching.clear(), best_len = r.path.size();
      if (r.path.size() == best_len) matching.push_back(&r);
    }
  }
  if (matching.empty()) return json_error(req, Status::not_found, "no such resource");
  Verb method = req.method() == Verb::head ? Verb::get : req.method();
  const Route* route = nullptr;
  std::vector<Verb> allowed;
  for (const Route* r : matching) {
    for (Verb v : r->methods) {
      allowed.push_back(v);
      if (v == method && !route) route = r;
    }
  }
  if (!route) {
    Response r = json_error(req, Status::method_not_allowed, "method not allowed here");
    r.set(bhttp::field::allow, allow_header(allowed));
    return r;
  }

  Response res;
  try {
    auto params = parse_query(query);
    if (!params) throw BadRequest("malformed query string (bad percent-encoding, empty or repeated name)");
    Principal who;
    if (auth_ && route->access != Access::open) {
      auto a = auth_(req, route->access, now_us);
      if (auto* stop = std::get_if<Response>(&a)) return std::move(*stop);
      who = std::get<Principal>(std::move(a));
    }
    Call call{req, path, route->prefix ? path.substr(route->path.size()) : std::string_view(), std::move(*params),
              std::move(who), now_us, std::move(client)};
    res = route->handler(call);
  } catch (const BadRequest& e) {
    return json_error(req, Status::bad_request, e.what());
  } catch (const std::exception& e) {
    std::cerr << "sekisho-control: " << req.method_string() << " " << target << ": " << e.what() << "\n";
    return json_error(req, Status::internal_server_error, "internal error");
  }
  if (req.method() == Verb::head) {
    auto n = res.body().size();
    res.body().clear();
    res.content_length(n);
  }
  return res;
}

}  // namespace sekisho::control::http
