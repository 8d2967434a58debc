// Authentication of the control plane: users, browser sessions with CSRF
// tokens, API tokens, login throttling, and the Router's authenticator.
//
// Everything that must be shared by several control planes on one
// PostgreSQL is in the database (migration component "auth"):
//   auth_users    name, scrypt hash (auth/password.hpp), is_admin, created,
//                 disabled
//   auth_sessions SHA-256 of the session id (the id itself is only in the
//                 browser's cookie), user, CSRF token, created, last use
//   auth_tokens   name, SHA-256 of the token, is_admin, created, last use
// Login throttling (auth/throttle.hpp) is per process.
//
// Sessions: a random 256-bit id in a cookie (`__Host-sekisho_session` with
// Secure when the server speaks HTTPS, `sekisho_session` otherwise;
// HttpOnly, SameSite=Strict, Path=/), valid until idle for session_idle_us
// or older than session_absolute_us; a password change or disabling the
// user ends the user's sessions; the admin flag is read from the user on
// every request. Each session has a random CSRF token, given by POST
// /api/login and GET /api/me, that every mutating request (not GET/HEAD/
// OPTIONS) authenticated by the cookie must send in X-CSRF-Token (compared
// in constant time); such requests and logins are also refused when an
// Origin header names another origin than the request's Host or when
// Sec-Fetch-Site is present and neither "same-origin" nor "none".
//
// API tokens: `Authorization: Bearer sks_...`, for scripts and sekishoctl;
// no cookie, no CSRF (a browser never sends it on its own). The principal
// is "token:NAME".
//
// Authenticator (set on the Router): no or bad credentials give 401 JSON
// on /api/ paths and a 303 redirect to /login?next=PATH on page paths
// (GET/HEAD; other methods 401); a user without admin rights on an admin
// route 403; a failed CSRF/origin check 403.
//
// Routes: POST /api/login (JSON {"user","password"} or an HTML form with
// user, password and next), POST /api/logout, GET /api/me.
//
// Audit: login, login.failed (actor "anonymous", target the name tried),
// logout, user.add, user.passwd, user.disable, user.enable, token.create,
// token.revoke go to the audit::Hook when one is given.
//
// Thread-safety: all methods may be called from any thread (the Db
// serialises its calls; the throttle has its own lock).
// Errors: AuthError (message for the administrator) for a bad name or
// password, a user or token that exists or does not; StoreError from the
// database.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "control/audit/hook.hpp"
#include "control/auth/password.hpp"
#include "control/auth/throttle.hpp"
#include "control/http/router.hpp"
#include "control/db/db.hpp"

namespace sekisho::control::auth {

class AuthError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct User {
  std::string name;
  bool admin = false;
  int64_t created_us = 0;
  bool disabled = false;
};

struct TokenInfo {
  std::string name;
  bool admin = false;
  int64_t created_us = 0;
  std::optional<int64_t> last_used_us;
};

struct AuthOptions {
  bool https = false;                                 // cookie name and Secure; expected Origin scheme
  int64_t session_idle_us = int64_t(3600) * 1000000;  // 1 h without a request
  int64_t session_absolute_us = int64_t(12) * 3600 * 1000000;
  int max_sessions_per_user = 20;                     // the oldest are ended beyond
  ScryptParams scrypt;
  int user_max_failures = 5;   // per user name and window
  int ip_max_failures = 20;    // per client IP and window
  int64_t throttle_window_us = int64_t(15) * 60 * 1000000;
  size_t throttle_capacity = 10000;  // keys tracked per kind
};

struct Session {
  std::string id;    // the cookie value (never stored)
  std::string csrf;
  std::string user;
  bool admin = false;
  int64_t expires_us = 0;  // when it ends if used no more
};

enum class LoginStatus { ok, bad_credentials, throttled };
struct LoginResult {
  LoginStatus status = LoginStatus::bad_credentials;
  Session session;             // when ok
  int64_t retry_after_us = 0;  // when throttled
};

class Auth {
 public:
  // Applies the "auth" migrations.
  Auth(db::Db& db, AuthOptions options = {}, audit::Hook audit = {});

  // Users. Names: 1..64 of [A-Za-z0-9._@-]; passwords 8..1024 bytes.
  void add_user(const std::string& name, std::string_view password, bool admin, int64_t now_us,
                const std::string& actor = "system");
  void set_password(const std::string& name, std::string_view password, int64_t now_us,
                    const std::string& actor = "system");
  void set_disabled(const std::string& name, bool disabled, int64_t now_us, const std::string& actor = "system");
  std::optional<User> find_user(const std::string& name);
  std::vector<User> users();

  // API tokens. create_token() returns the secret (shown once; only its hash
  // is kept).
  std::string create_token(const std::string& name, bool admin, int64_t now_us, const std::string& actor = "system");
  void revoke_token(const std::string& name, int64_t now_us, const std::string& actor = "system");
  std::vector<TokenInfo> tokens();

  // client: the peer's IP (throttling and audit).
  LoginResult login(const std::string& user, std::string_view password, const std::string& client, int64_t now_us);
  void logout(const std::string& session_id, int64_t now_us);
  // The session's principal (and its expiry) if valid now; refreshes its last use.
  std::optional<http::Principal> check_session(const std::string& session_id, int64_t now_us,
                                               int64_t* expires_us = nullptr);
  std::optional<http::Principal> check_token(const std::string& secret, int64_t now_us);
  // Ends expired sessions; returns how many.
  int64_t purge_expired(int64_t now_us);

  http::Authenticator authenticator();
  void add_routes(http::Router& router);

  std::string cookie_name() const { return opt_.https ? "__Host-sekisho_session" : "sekisho_session"; }
  std::string session_cookie(const Session& s) const;  // Set-Cookie value
  std::string clear_cookie() const;
  const AuthOptions& options() const { return opt_; }

 private:
  void audit(const std::string& actor, const std::string& action, const std::string& target,
             const nlohmann::json& details, int64_t now_us);
  const std::string& dummy_hash();

  db::Db& db_;
  AuthOptions opt_;
  audit::Hook audit_;
  Throttle user_throttle_, ip_throttle_;
  std::once_flag dummy_once_;
  std::string dummy_hash_;
};

// Helpers shared with the tests and the web pages.
// The value of cookie `name` in a Cookie header ("" if absent).
std::string cookie_value(std::string_view cookie_header, std::string_view name);
// "IP" from "IP:port" or "[IPv6]:port" (as Call::client has it).
std::string client_ip(std::string_view client);
// Is this an origin check failure? (Origin other than scheme://Host, or
// Sec-Fetch-Site cross-site/same-site.) Returns the reason, "" when fine.
std::string origin_problem(const http::Request& req, bool https);
// Adds X-Frame-Options: DENY and Referrer-Policy: no-referrer.
void frame_and_referrer_headers(http::Response& res);

}  // namespace sekisho::control::auth
