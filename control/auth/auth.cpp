#include "control/auth/auth.hpp"

#include <boost/beast/http/field.hpp>

#include "control/db/error.hpp"

namespace sekisho::control::auth {

namespace bhttp = boost::beast::http;
using nlohmann::json;
using db::Value;

namespace {

const db::Migration kMigrations[] = {
    {1, "users, sessions and API tokens",
     "CREATE TABLE auth_users ("
     " name TEXT PRIMARY KEY,"
     " password_hash TEXT NOT NULL,"
     " is_admin BIGINT NOT NULL,"
     " created_us BIGINT NOT NULL,"
     " disabled BIGINT NOT NULL,"
     " password_us BIGINT NOT NULL);"
     "CREATE TABLE auth_sessions ("
     " id_hash TEXT PRIMARY KEY,"
     " user_name TEXT NOT NULL,"
     " csrf TEXT NOT NULL,"
     " created_us BIGINT NOT NULL,"
     " last_us BIGINT NOT NULL,"
     " client TEXT NOT NULL);"
     "CREATE INDEX auth_sessions_user ON auth_sessions (user_name);"
     "CREATE TABLE auth_tokens ("
     " name TEXT PRIMARY KEY,"
     " token_hash TEXT NOT NULL UNIQUE,"
     " is_admin BIGINT NOT NULL,"
     " created_us BIGINT NOT NULL,"
     " last_used_us BIGINT)"},
};

constexpr size_t kSecretBytes = 32;             // 256 bits
constexpr size_t kSecretChars = 43;             // base64url of 32 bytes
constexpr std::string_view kTokenPrefix = "sks_";
constexpr int64_t kTouchEveryUs = 60 * 1000000;  // last use is written at most once a minute

void check_name(const std::string& what, const std::string& name) {
  if (name.empty() || name.size() > 64)
    throw AuthError(what + " name must be 1 to 64 characters");
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '@' || c == '-'))
      throw AuthError(what + " name '" + name + "' may only hold letters, digits and . _ @ -");
}

void check_password(std::string_view pw) {
  if (pw.size() < 8) throw AuthError("password must be at least 8 characters");
  if (pw.size() > 1024) throw AuthError("password must be at most 1024 bytes");
}

bool well_formed_secret(std::string_view s) {
  if (s.size() != kSecretChars) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

bool mutating(http::Verb v) { return v != http::Verb::get && v != http::Verb::head && v != http::Verb::options; }

std::string url_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string o;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') o.push_back(char(c));
    else o += '%', o += hex[c >> 4], o += hex[c & 15];
  }
  return o;
}

// A redirect target the login form may follow: a local absolute path.
bool local_path(std::string_view p) {
  if (p.empty() || p[0] != '/' || p.size() > 2048) return false;
  if (p.size() > 1 && (p[1] == '/' || p[1] == '\\')) return false;
  for (char c : p)
    if (static_cast<unsigned char>(c) < 0x21 || c == '\\' || c == 0x7f) return false;
  return true;
}

}  // namespace

std::string cookie_value(std::string_view h, std::string_view name) {
  while (!h.empty()) {
    size_t semi = h.find(';');
    std::string_view part = h.substr(0, semi);
    h = semi == std::string_view::npos ? std::string_view() : h.substr(semi + 1);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    size_t eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) return std::string(part.substr(eq + 1));
  }
  return {};
}

std::string client_ip(std::string_view c) {
  if (!c.empty() && c[0] == '[') {
    size_t e = c.find(']');
    return std::string(c.substr(1, e == std::string_view::npos ? std::string_view::npos : e - 1));
  }
  size_t colon = c.rfind(':');
  return std::string(c.substr(0, colon));
}

std::string origin_problem(const http::Request& req, bool https) {
  auto site = req["Sec-Fetch-Site"];
  if (!site.empty() && site != "same-origin" && site != "none")
    return "cross-site request refused (Sec-Fetch-Site: " + std::string(site) + ")";
  auto origin = req[bhttp::field::origin];
  if (req.find(bhttp::field::origin) != req.end()) {
    std::string expected = std::string(https ? "https://" : "http://") + std::string(req[bhttp::field::host]);
    if (req[bhttp::field::host].empty() || origin != expected)
      return "cross-origin request refused (Origin: " + std::string(origin) + ")";
  }
  return {};
}

void frame_and_referrer_headers(http::Response& res) {
  res.set("X-Frame-Options", "DENY");
  res.set("Referrer-Policy", "no-referrer");
}

Auth::Auth(db::Db& db, AuthOptions options, audit::Hook audit)
    : db_(db),
      opt_(options),
      audit_(std::move(audit)),
      user_throttle_(options.user_max_failures, options.throttle_window_us, options.throttle_capacity),
      ip_throttle_(options.ip_max_failures, options.throttle_window_us, options.throttle_capacity) {
  db_.migrate("auth", kMigrations);
}

void Auth::audit(const std::string& actor, const std::string& action, const std::string& target,
                 const json& details, int64_t now_us) {
  if (audit_) audit_(actor, action, target, details, now_us);
}

const std::string& Auth::dummy_hash() {
  std::call_once(dummy_once_, [&] { dummy_hash_ = hash_password(random_bytes(16), opt_.scrypt); });
  return dummy_hash_;
}

void Auth::add_user(const std::string& name, std::string_view password, bool admin, int64_t now_us,
                    const std::string& actor) {
  check_name("user", name);
  check_password(password);
  std::string hash = hash_password(password, opt_.scrypt);
  int64_t n = db_.exec(
      "INSERT INTO auth_users (name, password_hash, is_admin, created_us, disabled, password_us)"
      " VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (name) DO NOTHING",
      {name, hash, int64_t(admin), now_us, now_us});
  if (n == 0) throw AuthError("user '" + name + "' already exists");
  audit(actor, "user.add", name, {{"admin", admin}}, now_us);
}

void Auth::set_password(const std::string& name, std::string_view password, int64_t now_us,
                        const std::string& actor) {
  check_password(password);
  std::string hash = hash_password(password, opt_.scrypt);
  db::Transaction t(db_);
  if (db_.exec("UPDATE auth_users SET password_hash = ?, password_us = ? WHERE name = ?", {hash, now_us, name}) == 0)
    throw AuthError("no user '" + name + "'");
  int64_t ended = db_.exec("DELETE FROM auth_sessions WHERE user_name = ?", {name});
  t.commit();
  audit(actor, "user.passwd", name, {{"sessions_ended", ended}}, now_us);
}

void Auth::set_disabled(const std::string& name, bool disabled, int64_t now_us, const std::string& actor) {
  db::Transaction t(db_);
  if (db_.exec("UPDATE auth_users SET disabled = ? WHERE name = ?", {int64_t(disabled), name}) == 0)
    throw AuthError("no user '" + name + "'");
  int64_t ended = disabled ? db_.exec("DELETE FROM auth_sessions WHERE user_name = ?", {name}) : 0;
  t.commit();
  audit(actor, disabled ? "user.disable" : "user.enable", name, {{"sessions_ended", ended}}, now_us);
}

std::optional<User> Auth::find_user(const std::string& name) {
  std::optional<User> u;
  db_.exec("SELECT name, is_admin, created_us, disabled FROM auth_users WHERE name = ?", {name},
           [&](const db::Row& r) { u = User{r.text(0), r.i64(1) != 0, r.i64(2), r.i64(3) != 0}; });
  return u;
}

std::vector<User> Auth::users() {
  std::vector<User> out;
  db_.exec("SELECT name, is_admin, created_us, disabled FROM auth_users ORDER BY name", {},
           [&](const db::Row& r) { out.push_back(User{r.text(0), r.i64(1) != 0, r.i64(2), r.i64(3) != 0}); });
  return out;
}

std::string Auth::create_token(const std::string& name, bool admin, int64_t now_us, const std::string& actor) {
  check_name("token", name);
  std::string secret = std::string(kTokenPrefix) + base64url(random_bytes(kSecretBytes));
  int64_t n = db_.exec(
      "INSERT INTO auth_tokens (name, token_hash, is_admin, created_us) VALUES (?, ?, ?, ?)"
      " ON CONFLICT (name) DO NOTHING",
      {name, sha256_hex(secret), int64_t(admin), now_us});
  if (n == 0) throw AuthError("token '" + name + "' already exists (revoke it first)");
  audit(actor, "token.create", name, {{"admin", admin}}, now_us);
  return secret;
}

void Auth::revoke_token(const std::string& name, int64_t now_us, const std::string& actor) {
  if (db_.exec("DELETE FROM auth_tokens WHERE name = ?", {name}) == 0) throw AuthError("no token '" + name + "'");
  audit(actor, "token.revoke", name, json::object(), now_us);
}

std::vector<TokenInfo> Auth::tokens() {
  std::vector<TokenInfo> out;
  db_.exec("SELECT name, is_admin, created_us, last_used_us FROM auth_tokens ORDER BY name", {},
           [&](const db::Row& r) {
             out.push_back(TokenInfo{r.text(0), r.i64(1) != 0, r.i64(2),
                                     r.null(3) ? std::nullopt : std::optional<int64_t>(r.i64(3))});
           });
  return out;
}

LoginResult Auth::login(const std::string& user, std::string_view password, const std::string& client,
                        int64_t now_us) {
  LoginResult res;
  std::string shown = user.substr(0, 64);
  std::string ukey = "u:" + shown, ikey = "ip:" + client;
  int64_t wait = std::max(user_throttle_.blocked_for(ukey, now_us), ip_throttle_.blocked_for(ikey, now_us));
  if (wait > 0) {
    res.status = LoginStatus::throttled;
    res.retry_after_us = wait;
    audit("anonymous", "login.failed", shown, {{"client", client}, {"reason", "throttled"}}, now_us);
    return res;
  }

  std::optional<std::string> hash;
  bool admin = false, disabled = false;
  db_.exec("SELECT password_hash, is_admin, disabled FROM auth_users WHERE name = ?", {user},
           [&](const db::Row& r) {
             hash = r.text(0);
             admin = r.i64(1) != 0;
             disabled = r.i64(2) != 0;
           });
  // The same work whether or not the user exists (no timing oracle).
  bool ok = verify_password(password, hash ? *hash : dummy_hash()) && hash && !disabled;
  if (!ok) {
    user_throttle_.failure(ukey, now_us);
    ip_throttle_.failure(ikey, now_us);
    audit("anonymous", "login.failed", shown,
          {{"client", client}, {"reason", !hash ? "no such user" : disabled ? "user disabled" : "wrong password"}},
          now_us);
    return res;
  }
  user_throttle_.reset(ukey);
  if (needs_rehash(*hash, opt_.scrypt))
    db_.exec("UPDATE auth_users SET password_hash = ? WHERE name = ?", {hash_password(password, opt_.scrypt), user});

  purge_expired(now_us);
  Session s;
  s.id = base64url(random_bytes(kSecretBytes));
  s.csrf = base64url(random_bytes(kSecretBytes));
  s.user = user;
  s.admin = admin;
  s.expires_us = now_us + std::min(opt_.session_idle_us, opt_.session_absolute_us);
  {
    db::Transaction t(db_);
    db_.exec(
        "INSERT INTO auth_sessions (id_hash, user_name, csrf, created_us, last_us, client) VALUES (?, ?, ?, ?, ?, ?)",
        {sha256_hex(s.id), user, s.csrf, now_us, now_us, client});
    db_.exec(
        "DELETE FROM auth_sessions WHERE user_name = ? AND id_hash NOT IN"
        " (SELECT id_hash FROM auth_sessions WHERE user_name = ? ORDER BY created_us DESC, id_hash LIMIT ?)",
        {user, user, int64_t(opt_.max_sessions_per_user)});
    t.commit();
  }
  audit(user, "login", "", {{"client", client}}, now_us);
  res.status = LoginStatus::ok;
  res.session = std::move(s);
  return res;
}

void Auth::logout(const std::string& session_id, int64_t now_us) {
  if (!well_formed_secret(session_id)) return;
  std::optional<std::string> user =
      db_.query_text("SELECT user_name FROM auth_sessions WHERE id_hash = ?", {sha256_hex(session_id)});
  db_.exec("DELETE FROM auth_sessions WHERE id_hash = ?", {sha256_hex(session_id)});
  if (user) audit(*user, "logout", "", json::object(), now_us);
}

int64_t Auth::purge_expired(int64_t now_us) {
  return db_.exec("DELETE FROM auth_sessions WHERE last_us < ? OR created_us < ?",
                  {now_us - opt_.session_idle_us, now_us - opt_.session_absolute_us});
}

std::optional<http::Principal> Auth::check_session(const std::string& session_id, int64_t now_us,
                                                   int64_t* expires_us) {
  if (!well_formed_secret(session_id)) return std::nullopt;
  std::string id_hash = sha256_hex(session_id);
  std::optional<http::Principal> who;
  int64_t created = 0, last = 0;
  bool disabled = false;
  db_.exec(
      "SELECT s.user_name, s.csrf, s.created_us, s.last_us, u.is_admin, u.disabled"
      " FROM auth_sessions s JOIN auth_users u ON u.name = s.user_name WHERE s.id_hash = ?",
      {id_hash}, [&](const db::Row& r) {
        who = http::Principal{r.text(0), r.i64(4) != 0, r.text(1)};
        created = r.i64(2);
        last = r.i64(3);
        disabled = r.i64(5) != 0;
      });
  if (!who) return std::nullopt;
  if (disabled || now_us - last >= opt_.session_idle_us || now_us - created >= opt_.session_absolute_us) {
    db_.exec("DELETE FROM auth_sessions WHERE id_hash = ?", {id_hash});
    return std::nullopt;
  }
  if (now_us - last >= kTouchEveryUs) {
    db_.exec("UPDATE auth_sessions SET last_us = ? WHERE id_hash = ?", {now_us, id_hash});
    last = now_us;
  }
  if (expires_us) *expires_us = std::min(last + opt_.session_idle_us, created + opt_.session_absolute_us);
  return who;
}

std::optional<http::Principal> Auth::check_token(const std::string& secret, int64_t now_us) {
  if (!secret.starts_with(kTokenPrefix) || !well_formed_secret(std::string_view(secret).substr(kTokenPrefix.size())))
    return std::nullopt;
  std::string h = sha256_hex(secret);
  std::optional<http::Principal> who;
  std::optional<int64_t> last;
  db_.exec("SELECT name, is_admin, last_used_us FROM auth_tokens WHERE token_hash = ?", {h},
           [&](const db::Row& r) {
             who = http::Principal{"token:" + r.text(0), r.i64(1) != 0, ""};
             if (!r.null(2)) last = r.i64(2);
           });
  if (who && (!last || now_us - *last >= kTouchEveryUs))
    db_.exec("UPDATE auth_tokens SET last_used_us = ? WHERE token_hash = ?", {now_us, h});
  return who;
}

std::string Auth::session_cookie(const Session& s) const {
  return cookie_name() + "=" + s.id + "; Path=/; Max-Age=" + std::to_string(opt_.session_absolute_us / 1000000) +
         "; HttpOnly; SameSite=Strict" + (opt_.https ? "; Secure" : "");
}

std::string Auth::clear_cookie() const {
  return cookie_name() + "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" + (opt_.https ? "; Secure" : "");
}

http::Authenticator Auth::authenticator() {
  return [this](const http::Request& req, http::Access access, int64_t now_us)
             -> std::variant<http::Principal, http::Response> {
    std::string_view target(req.target().data(), req.target().size());
    bool api = target.starts_with("/api/");
    auto deny = [&](http::Status st, const std::string& why) {
      http::Response r = http::json_error(req, st, why);
      frame_and_referrer_headers(r);
      return r;
    };

    std::optional<http::Principal> who;
    bool by_cookie = false;
    auto authz = req[bhttp::field::authorization];
    if (!authz.empty()) {
      if (authz.size() > 7 && (authz.substr(0, 7) == "Bearer " || authz.substr(0, 7) == "bearer "))
        who = check_token(std::string(authz.substr(7)), now_us);
      if (!who) {
        http::Response r = deny(http::Status::unauthorized, "invalid API token");
        r.set(bhttp::field::www_authenticate, "Bearer realm=\"sekisho-control\", error=\"invalid_token\"");
        return r;
      }
    } else {
      std::string id = cookie_value(sv(req[bhttp::field::cookie]), cookie_name());
      if (!id.empty()) who = check_session(id, now_us);
      by_cookie = true;
    }
    if (!who) {
      bool navigation = req.method() == http::Verb::get || req.method() == http::Verb::head;
      if (api || !navigation) {
        http::Response r = deny(http::Status::unauthorized, "authentication required");
        r.set(bhttp::field::www_authenticate, "Bearer realm=\"sekisho-control\"");
        return r;
      }
      http::Response r = http::make_response(req, http::Status::see_other, "text/plain; charset=utf-8",
                                             "login required\n");
      r.set(bhttp::field::location, "/login?next=" + url_encode(target));
      frame_and_referrer_headers(r);
      return r;
    }
    if (by_cookie && mutating(req.method())) {
      if (std::string why = origin_problem(req, opt_.https); !why.empty())
        return deny(http::Status::forbidden, why);
      auto sent = req["X-CSRF-Token"];
      if (sent.empty()) return deny(http::Status::forbidden, "missing X-CSRF-Token header");
      if (!equal_ct(sv(sent), who->csrf)) return deny(http::Status::forbidden, "wrong X-CSRF-Token");
    }
    if (access == http::Access::admin && !who->admin)
      return deny(http::Status::forbidden, "administrator rights required");
    return *who;
  };
}

void Auth::add_routes(http::Router& router) {
  router.add({http::Verb::post}, "/api/login", http::Access::open, [this](const http::Call& c) {
    const http::Request& req = c.req;
    if (std::string why = origin_problem(req, opt_.https); !why.empty())
      return http::json_error(req, http::Status::forbidden, why);
    std::string ctype(req[bhttp::field::content_type]);
    std::string mime = ctype.substr(0, ctype.find(';'));
    for (char& ch : mime) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    while (!mime.empty() && mime.back() == ' ') mime.pop_back();
    std::string user, password, next;
    bool form = false;
    if (mime == "application/json") {
      json j = json::parse(req.body(), nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("user") || !j.contains("password") ||
          !j["user"].is_string() || !j["password"].is_string())
        throw http::BadRequest("expected JSON {\"user\": \"...\", \"password\": \"...\"}");
      user = j["user"].get<std::string>();
      password = j["password"].get<std::string>();
    } else if (mime == "application/x-www-form-urlencoded") {
      form = true;
      auto f = http::parse_query(req.body());
      if (!f || !f->count("user") || !f->count("password"))
        throw http::BadRequest("expected form fields user and password");
      user = (*f)["user"];
      password = (*f)["password"];
      next = f->count("next") ? (*f)["next"] : "";
    } else {
      return http::json_error(req, http::Status::unsupported_media_type,
                              "send application/json or application/x-www-form-urlencoded");
    }
    LoginResult lr = login(user, password, client_ip(c.client), c.now_us);
    http::Response r;
    if (lr.status == LoginStatus::ok) {
      if (form) {
        r = http::make_response(req, http::Status::see_other, "text/plain; charset=utf-8", "logged in\n");
        r.set(bhttp::field::location, local_path(next) ? next : "/log");
      } else {
        r = http::json_ok(req, json{{"user", lr.session.user},
                                    {"admin", lr.session.admin},
                                    {"csrf", lr.session.csrf},
                                    {"expires_us", lr.session.expires_us}}
                                   .dump() +
                                   "\n");
      }
      r.set(bhttp::field::set_cookie, session_cookie(lr.session));
    } else if (lr.status == LoginStatus::throttled) {
      int64_t secs = (lr.retry_after_us + 999999) / 1000000;
      if (form) {
        r = http::make_response(req, http::Status::see_other, "text/plain; charset=utf-8", "throttled\n");
        r.set(bhttp::field::location, "/login?error=throttled");
      } else {
        r = http::json_error(req, http::Status::too_many_requests,
                             "too many failed logins; try again in " + std::to_string(secs) + " s");
      }
      r.set(bhttp::field::retry_after, std::to_string(secs));
    } else if (form) {
      r = http::make_response(req, http::Status::see_other, "text/plain; charset=utf-8", "login failed\n");
      r.set(bhttp::field::location, "/login?error=failed");
    } else {
      r = http::json_error(req, http::Status::unauthorized, "wrong user name or password");
    }
    frame_and_referrer_headers(r);
    return r;
  });

  router.add({http::Verb::post}, "/api/logout", http::Access::user, [this](const http::Call& c) {
    std::string id = cookie_value(sv(c.req[bhttp::field::cookie]), cookie_name());
    if (!id.empty()) logout(id, c.now_us);
    http::Response r = http::json_ok(c.req, "{\"logged_out\":true}\n");
    r.set(bhttp::field::set_cookie, clear_cookie());
    frame_and_referrer_headers(r);
    return r;
  });

  router.add({http::Verb::get}, "/api/me", http::Access::user, [this](const http::Call& c) {
    json j = {{"user", c.who.user}, {"admin", c.who.admin}, {"csrf", c.who.csrf}};
    if (!c.who.csrf.empty()) {
      int64_t exp = 0;
      std::string id = cookie_value(sv(c.req[bhttp::field::cookie]), cookie_name());
      if (check_session(id, c.now_us, &exp)) j["expires_us"] = exp;
    }
    http::Response r = http::json_ok(c.req, j.dump() + "\n");
    frame_and_referrer_headers(r);
    return r;
  });
}

}  // namespace sekisho::control::auth
