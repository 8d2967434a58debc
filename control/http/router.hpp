// Routing of the control plane's HTTP requests to the modules that own
// them. Each module (tracking log, quarantine, rulesets, policy, web pages,
// auth) adds its routes in its own file with Router::add(); main.cpp and the
// tests build one Router from the modules they need.
//
// A route is (methods, exact path or path prefix, access, handler). The
// router answers 404 for unknown paths, 405 with Allow for a known path and
// another method, HEAD like GET without a body, 400 for a malformed query
// string (BadRequest thrown by a handler also gives 400 with its reason),
// 500 for any other exception (reason on stderr only).
//
// Access: Access::open routes are served to anyone; Access::user and
// Access::admin routes go through the authenticator set with
// set_authenticator() (the auth module): it returns the principal or an
// answer to send instead (401, a redirect to the login page, 403 for a
// failed CSRF check). Without an authenticator every route is open (unit
// tests of one module).
//
// Thread-safety: add() and set_authenticator() before serving; handle() from
// any number of threads.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sekisho::control::http {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;
using Verb = boost::beast::http::verb;
using Status = boost::beast::http::status;

class BadRequest : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Access { open, user, admin };

// Who is asking, as the authenticator established it.
struct Principal {
  std::string user;    // "" when unauthenticated (open routes)
  bool admin = false;
  std::string csrf;    // the session's CSRF token ("" for API tokens)
};

// What a handler gets besides the request.
struct Call {
  const Request& req;
  std::string_view path;                      // without the query
  std::string_view rest;                      // path after a prefix route's prefix
  std::map<std::string, std::string> params;  // decoded query parameters
  Principal who;
  int64_t now_us;
  std::string client;                         // peer "IP:port" when known ("" in unit tests)
};

using Handler = std::function<Response(const Call&)>;
// Returns the principal, or a Response to send instead.
using Authenticator = std::function<std::variant<Principal, Response>(const Request&, Access, int64_t now_us)>;

class Router {
 public:
  // Exact path ("/api/log") or a prefix ending in '/' with prefix=true
  // ("/api/quarantine/" matches "/api/quarantine/ID/release").
  void add(std::initializer_list<Verb> methods, std::string path, Access access, Handler h, bool prefix = false);
  void set_authenticator(Authenticator a) { auth_ = std::move(a); }

  Response handle(const Request& req, int64_t now_us, std::string client = {}) const;
  Response handle(const Request& req) const;

 private:
  struct Route {
    std::vector<Verb> methods;
    std::string path;
    bool prefix;
    Access access;
    Handler handler;
  };
  std::vector<Route> routes_;
  Authenticator auth_;
};

// Response helpers shared by the modules. Every answer carries
// Cache-Control: no-store and X-Content-Type-Options: nosniff.
Response make_response(const Request& req, Status status, std::string content_type, std::string body);
Response json_error(const Request& req, Status status, const std::string& message);
// JSON body (already serialised) with 200.
Response json_ok(const Request& req, std::string body);

// Splits and percent-decodes a query string or an
// application/x-www-form-urlencoded body ('+' is a space). nullopt on bad
// encoding, an empty name or a repeated name.
std::optional<std::map<std::string, std::string>> parse_query(std::string_view query);

// Integer parameter within [lo, hi]; BadRequest naming the parameter otherwise.
int64_t param_int(const std::string& name, const std::string& value, int64_t lo, int64_t hi);
// Rejects parameters not in `known` (BadRequest "unknown parameter 'x'").
void only_params(const Call& c, std::initializer_list<std::string_view> known);
// A 1/true or 0/false parameter; false when absent; BadRequest otherwise.
bool flag_param(const Call& c, const char* name);

// The caller as the audit log names it: the principal, or "anonymous".
std::string actor(const Call& c);
// The body as JSON; BadRequest "the body is not JSON".
nlohmann::json body_json(const Call& c);
// `body` serialised (invalid UTF-8 replaced) with `status`.
Response json_status(const Call& c, Status status, const nlohmann::json& body);

// HTML text and attribute escaping (& < > " ').
std::string html_escape(std::string_view s);

}  // namespace sekisho::control::http
