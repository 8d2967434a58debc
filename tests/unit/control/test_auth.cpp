// Authentication of the control plane on real databases (SQLite and
// PostgreSQL, backends.hpp, for everything stored): scrypt hashes,
// users, sessions (idle and absolute expiry), CSRF and origin checks,
// API tokens, login throttling, the authenticator on API and page paths,
// the login/logout/me routes, audit entries, and the admin commands.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "control/auth/admin_cli.hpp"
#include "control/auth/auth.hpp"
#include "tests/unit/control/backends.hpp"
#include "tests/unit/control/control_test_util.hpp"
#include "control/db/db.hpp"

namespace sekisho::control::auth {
namespace {

namespace bhttp = boost::beast::http;
using nlohmann::json;
using testing::TempDir;

constexpr int64_t kSec = 1000000;
constexpr int64_t kT0 = int64_t(1700000000) * kSec;

AuthOptions fast_options() {
  AuthOptions o;
  o.scrypt.log2_n = 10;  // the default costs 0.1 s per hash; these tests hash often
  return o;
}

// ---- password hashing ----

TEST(Password, HashVerifiesAndCarriesItsParameters) {
  std::string h = hash_password("correct horse", ScryptParams{10, 8, 1});
  EXPECT_EQ(h.rfind("$scrypt$ln=10,r=8,p=1$", 0), 0u) << h;
  EXPECT_TRUE(verify_password("correct horse", h));
  EXPECT_FALSE(verify_password("correct hors", h));
  EXPECT_FALSE(verify_password("correct horse ", h));
  EXPECT_FALSE(verify_password("", h));
}

TEST(Password, DefaultParametersAreTheStrongOnes) {
  std::string h = hash_password("correct horse");
  EXPECT_EQ(h.rfind("$scrypt$ln=15,r=8,p=1$", 0), 0u) << h;
  EXPECT_TRUE(verify_password("correct horse", h));
  EXPECT_FALSE(needs_rehash(h, ScryptParams{}));
  EXPECT_TRUE(needs_rehash(h, ScryptParams{16, 8, 1}));
}

TEST(Password, SaltDiffersPerHash) {
  std::string a = hash_password("same password", ScryptParams{10, 8, 1});
  std::string b = hash_password("same password", ScryptParams{10, 8, 1});
  EXPECT_NE(a, b);
  EXPECT_TRUE(verify_password("same password", a));
  EXPECT_TRUE(verify_password("same password", b));
}

TEST(Password, TamperedOrMalformedHashesNeverVerify) {
  std::string h = hash_password("pw123456", ScryptParams{10, 8, 1});
  std::string tampered = h;
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verify_password("pw123456", tampered));
  // The same key with other parameters is another hash.
  std::string other = h;
  other.replace(other.find("ln=10"), 5, "ln=11");
  EXPECT_FALSE(verify_password("pw123456", other));
  for (std::string bad : {std::string(), std::string("pw123456"), std::string("$scrypt$"),
                          std::string("$scrypt$ln=10,r=8,p=1$$"), std::string("$argon2id$v=19$m=65536,t=3,p=4$x$y")})
    EXPECT_FALSE(verify_password("pw123456", bad)) << bad;
  // Parameters that would take gigabytes are refused, not computed.
  std::string huge = h;
  huge.replace(huge.find("ln=10"), 5, "ln=30");
  EXPECT_FALSE(verify_password("pw123456", huge));
}

TEST(Password, ConstantTimeCompareAndEncodings) {
  EXPECT_TRUE(equal_ct("abc", "abc"));
  EXPECT_FALSE(equal_ct("abc", "abd"));
  EXPECT_FALSE(equal_ct("abc", "abcd"));
  EXPECT_EQ(base64url(std::string("\xfb\xff\xfe", 3)), "-__-");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(random_bytes(32).size(), 32u);
  EXPECT_NE(random_bytes(32), random_bytes(32));
}

// ---- throttle ----

TEST(Throttle, BlocksAfterTheLimitUntilTheWindowEnds) {
  Throttle t(3, 60 * kSec, 100);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(t.blocked_for("u:a", kT0), 0);
    t.failure("u:a", kT0);
  }
  EXPECT_EQ(t.blocked_for("u:a", kT0 + kSec), 59 * kSec);
  EXPECT_EQ(t.blocked_for("u:b", kT0 + kSec), 0);
  EXPECT_EQ(t.blocked_for("u:a", kT0 + 60 * kSec), 0);
  t.failure("u:a", kT0 + 61 * kSec);  // a new window
  EXPECT_EQ(t.blocked_for("u:a", kT0 + 61 * kSec), 0);
  t.reset("u:a");
  EXPECT_EQ(t.tracked(), 0u);
}

TEST(Throttle, MemoryIsBounded) {
  Throttle t(3, 60 * kSec, 100);
  for (int i = 0; i < 10000; ++i) t.failure("ip:" + std::to_string(i), kT0 + i);
  EXPECT_LE(t.tracked(), 100u);
  // The newest keys are the ones kept.
  for (int i = 0; i < 2; ++i) t.failure("ip:9999", kT0 + 10000);
  EXPECT_GT(t.blocked_for("ip:9999", kT0 + 10001), 0);
}

// ---- the stored parts ----

class AuthTest : public testing::BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (IsSkipped()) return;
    auth.emplace(db(), fast_options(), [this](const std::string& actor, const std::string& action,
                                             const std::string& target, const json& details, int64_t) {
      audit.push_back({actor, action, target, details});
    });
    auth->add_user("alice", "alice-password", true, kT0);
    auth->add_user("bob", "bob-password", false, kT0);
    audit.clear();
    auth->add_routes(router);
    router.set_authenticator(auth->authenticator());
    for (auto [path, access] : {std::pair{"/api/thing", http::Access::user}, {"/api/admin-thing", http::Access::admin},
                                {"/page", http::Access::user}, {"/admin-page", http::Access::admin}}) {
      router.add({http::Verb::get, http::Verb::post}, path, access, [](const http::Call& c) {
        return http::json_ok(c.req, json{{"who", c.who.user}, {"admin", c.who.admin}}.dump());
      });
    }
  }

  struct AuditEntry {
    std::string actor, action, target;
    json details;
  };

  Session login_ok(const std::string& user, const std::string& pw, int64_t now = kT0) {
    LoginResult r = auth->login(user, pw, "192.0.2.7", now);
    EXPECT_EQ(r.status, LoginStatus::ok);
    return r.session;
  }

  http::Request request(http::Verb v, const std::string& target, const std::string& cookie_id = "",
                        const std::string& csrf = "") {
    http::Request r{v, target, 11};
    r.set(bhttp::field::host, "control.test:8025");
    if (!cookie_id.empty()) r.set(bhttp::field::cookie, "theme=dark; " + auth->cookie_name() + "=" + cookie_id);
    if (!csrf.empty()) r.set("X-CSRF-Token", csrf);
    return r;
  }

  http::Response send(const http::Request& r, int64_t now = kT0) { return router.handle(r, now, "192.0.2.7:5555"); }

  std::vector<std::string> actions() {
    std::vector<std::string> a;
    for (auto& e : audit) a.push_back(e.action);
    return a;
  }

  std::optional<Auth> auth;
  http::Router router;
  std::vector<AuditEntry> audit;
};

TEST_P(AuthTest, UsersAreStoredWithHashesNotPasswords) {
  auto u = auth->find_user("alice");
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->admin);
  EXPECT_FALSE(u->disabled);
  EXPECT_EQ(u->created_us, kT0);
  auto stored = db().query_text("SELECT password_hash FROM auth_users WHERE name = ?", {std::string("alice")});
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->find("alice-password"), std::string::npos);
  EXPECT_TRUE(verify_password("alice-password", *stored));
  EXPECT_EQ(auth->users().size(), 2u);
  EXPECT_EQ(db().schema_version("auth"), 1);
}

TEST_P(AuthTest, UserChangesAreCheckedAndAudited) {
  EXPECT_THROW(auth->add_user("alice", "another-password", false, kT0), AuthError);
  EXPECT_THROW(auth->add_user("carol", "short", false, kT0), AuthError);
  EXPECT_THROW(auth->add_user("", "long-enough", false, kT0), AuthError);
  EXPECT_THROW(auth->add_user("bad name", "long-enough", false, kT0), AuthError);
  EXPECT_THROW(auth->add_user("<script>", "long-enough", false, kT0), AuthError);
  EXPECT_THROW(auth->add_user(std::string(65, 'a'), "long-enough", false, kT0), AuthError);
  EXPECT_THROW(auth->set_password("nobody", "long-enough", kT0), AuthError);
  EXPECT_THROW(auth->set_disabled("nobody", true, kT0), AuthError);
  auth->add_user("carol@example.test", "carol-password", false, kT0, "alice");
  auth->set_password("carol@example.test", "carol-password-2", kT0, "alice");
  auth->set_disabled("carol@example.test", true, kT0, "alice");
  auth->set_disabled("carol@example.test", false, kT0, "alice");
  EXPECT_EQ(actions(), (std::vector<std::string>{"user.add", "user.passwd", "user.disable", "user.enable"}));
  EXPECT_EQ(audit[0].actor, "alice");
  EXPECT_EQ(audit[0].target, "carol@example.test");
}

TEST_P(AuthTest, LoginRightAndWrong) {
  Session s = login_ok("alice", "alice-password");
  EXPECT_EQ(s.id.size(), 43u);  // 256 random bits, base64url
  EXPECT_EQ(s.csrf.size(), 43u);
  EXPECT_NE(s.id, s.csrf);
  EXPECT_TRUE(s.admin);
  // The id itself is not stored, only its hash.
  EXPECT_FALSE(db().query_i64("SELECT count(*) FROM auth_sessions WHERE id_hash = ?", {s.id}).value_or(0));
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM auth_sessions WHERE id_hash = ?", {sha256_hex(s.id)}), 1);

  EXPECT_EQ(auth->login("alice", "alice-passwort", "192.0.2.7", kT0).status, LoginStatus::bad_credentials);
  EXPECT_EQ(auth->login("nobody", "alice-password", "192.0.2.7", kT0).status, LoginStatus::bad_credentials);
  EXPECT_EQ(auth->login("Alice", "alice-password", "192.0.2.7", kT0).status, LoginStatus::bad_credentials);
  EXPECT_EQ(actions(), (std::vector<std::string>{"login", "login.failed", "login.failed", "login.failed"}));
  EXPECT_EQ(audit[1].details["reason"], "wrong password");
  EXPECT_EQ(audit[1].actor, "anonymous");
  EXPECT_EQ(audit[1].target, "alice");
  EXPECT_EQ(audit[0].actor, "alice");
  EXPECT_EQ(audit[2].details["reason"], "no such user");
  EXPECT_EQ(audit[1].details["client"], "192.0.2.7");

  auto who = auth->check_session(s.id, kT0 + kSec);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->user, "alice");
  EXPECT_TRUE(who->admin);
  EXPECT_EQ(who->csrf, s.csrf);
  EXPECT_FALSE(auth->check_session("x", kT0));
  EXPECT_FALSE(auth->check_session(std::string(43, 'A'), kT0));
}

TEST_P(AuthTest, IdleExpiryIsExtendedByUse) {
  const int64_t idle = fast_options().session_idle_us;
  Session s = login_ok("bob", "bob-password");
  EXPECT_TRUE(auth->check_session(s.id, kT0 + idle - 1));  // used: idle counts from now
  EXPECT_TRUE(auth->check_session(s.id, kT0 + 2 * idle - 2));
  EXPECT_FALSE(auth->check_session(s.id, kT0 + 3 * idle));
  // Expired sessions are gone from the table, not only refused.
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM auth_sessions"), 0);

  Session t = login_ok("bob", "bob-password");
  EXPECT_FALSE(auth->check_session(t.id, kT0 + idle));
}

TEST_P(AuthTest, AbsoluteExpiryEvenWhenUsed) {
  const AuthOptions o = fast_options();
  Session s = login_ok("bob", "bob-password");
  int64_t now = kT0;
  int64_t exp = 0;
  while (now + o.session_idle_us / 2 < kT0 + o.session_absolute_us) {
    now += o.session_idle_us / 2;
    ASSERT_TRUE(auth->check_session(s.id, now, &exp)) << (now - kT0) / kSec;
    EXPECT_LE(exp, kT0 + o.session_absolute_us);
  }
  EXPECT_FALSE(auth->check_session(s.id, kT0 + o.session_absolute_us));
}

TEST_P(AuthTest, PasswordChangeAndDisablingEndSessions) {
  Session a = login_ok("bob", "bob-password");
  auth->set_password("bob", "bob-password-2", kT0);
  EXPECT_FALSE(auth->check_session(a.id, kT0 + 1));
  EXPECT_EQ(auth->login("bob", "bob-password", "192.0.2.7", kT0).status, LoginStatus::bad_credentials);
  Session b = login_ok("bob", "bob-password-2");
  auth->set_disabled("bob", true, kT0);
  EXPECT_FALSE(auth->check_session(b.id, kT0 + 1));
  LoginResult r = auth->login("bob", "bob-password-2", "192.0.2.7", kT0);
  EXPECT_EQ(r.status, LoginStatus::bad_credentials);
  EXPECT_EQ(audit.back().details["reason"], "user disabled");
  auth->set_disabled("bob", false, kT0);
  login_ok("bob", "bob-password-2");
}

TEST_P(AuthTest, AdminFlagIsReadOnEveryRequest) {
  Session s = login_ok("alice", "alice-password");
  EXPECT_EQ(send(request(http::Verb::get, "/api/admin-thing", s.id)).result(), http::Status::ok);
  db().exec("UPDATE auth_users SET is_admin = 0 WHERE name = 'alice'");
  EXPECT_EQ(send(request(http::Verb::get, "/api/admin-thing", s.id)).result(), http::Status::forbidden);
}

TEST_P(AuthTest, SessionsPerUserAreCapped) {
  std::vector<Session> all;
  for (int i = 0; i < 25; ++i) all.push_back(login_ok("bob", "bob-password", kT0 + i));
  EXPECT_EQ(db().query_i64("SELECT count(*) FROM auth_sessions WHERE user_name = 'bob'"), 20);
  EXPECT_FALSE(auth->check_session(all[0].id, kT0 + 30));
  EXPECT_TRUE(auth->check_session(all[24].id, kT0 + 30));
}

TEST_P(AuthTest, ThrottlesPerUserThenLetsGo) {
  const AuthOptions o = fast_options();
  for (int i = 0; i < o.user_max_failures; ++i)
    EXPECT_EQ(auth->login("bob", "wrong-password", "198.51.100." + std::to_string(i), kT0 + i).status,
              LoginStatus::bad_credentials);
  // Even the right password, from another address, waits for the window.
  LoginResult r = auth->login("bob", "bob-password", "203.0.113.9", kT0 + 10);
  EXPECT_EQ(r.status, LoginStatus::throttled);
  EXPECT_GT(r.retry_after_us, 0);
  EXPECT_EQ(audit.back().details["reason"], "throttled");
  // Another user is not affected.
  login_ok("alice", "alice-password", kT0 + 10);
  EXPECT_EQ(auth->login("bob", "bob-password", "203.0.113.9", kT0 + o.throttle_window_us).status, LoginStatus::ok);
}

TEST_P(AuthTest, ThrottlesPerClientAddress) {
  const AuthOptions o = fast_options();
  for (int i = 0; i < o.ip_max_failures; ++i)
    auth->login("user" + std::to_string(i), "whatever-password", "198.51.100.1", kT0 + i);
  EXPECT_EQ(auth->login("alice", "alice-password", "198.51.100.1", kT0 + 100).status, LoginStatus::throttled);
  EXPECT_EQ(auth->login("alice", "alice-password", "198.51.100.2", kT0 + 100).status, LoginStatus::ok);
}

TEST_P(AuthTest, ApiTokens) {
  std::string admin_tok = auth->create_token("deploy", true, kT0);
  std::string user_tok = auth->create_token("reader", false, kT0);
  EXPECT_EQ(admin_tok.rfind("sks_", 0), 0u);
  EXPECT_EQ(admin_tok.size(), 47u);
  EXPECT_THROW(auth->create_token("deploy", false, kT0), AuthError);
  EXPECT_FALSE(db().query_i64("SELECT count(*) FROM auth_tokens WHERE token_hash = ?", {admin_tok}).value_or(0));

  auto bearer = [&](http::Verb v, const std::string& path, const std::string& tok) {
    http::Request r = request(v, path);
    r.set(bhttp::field::authorization, "Bearer " + tok);
    return send(r, kT0 + kSec);
  };
  http::Response ok = bearer(http::Verb::post, "/api/admin-thing", admin_tok);  // no CSRF for tokens
  EXPECT_EQ(ok.result(), http::Status::ok) << ok.body();
  EXPECT_EQ(json::parse(ok.body())["who"], "token:deploy");
  EXPECT_EQ(bearer(http::Verb::get, "/api/thing", user_tok).result(), http::Status::ok);
  EXPECT_EQ(bearer(http::Verb::get, "/api/admin-thing", user_tok).result(), http::Status::forbidden);
  http::Response bad = bearer(http::Verb::get, "/api/thing", user_tok + "x");
  EXPECT_EQ(bad.result(), http::Status::unauthorized);
  EXPECT_NE(bad[bhttp::field::www_authenticate].find("invalid_token"), std::string::npos);
  EXPECT_EQ(bearer(http::Verb::get, "/api/thing", "sks_" + std::string(43, 'A')).result(), http::Status::unauthorized);
  {
    http::Request r = request(http::Verb::get, "/api/thing");
    r.set(bhttp::field::authorization, "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=");
    EXPECT_EQ(send(r).result(), http::Status::unauthorized);
  }
  auto listed = auth->tokens();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].name, "deploy");
  EXPECT_TRUE(listed[0].last_used_us);

  auth->revoke_token("deploy", kT0);
  EXPECT_THROW(auth->revoke_token("deploy", kT0), AuthError);
  EXPECT_EQ(bearer(http::Verb::get, "/api/thing", admin_tok).result(), http::Status::unauthorized);
  EXPECT_EQ(actions(), (std::vector<std::string>{"token.create", "token.create", "token.revoke"}));
}

TEST_P(AuthTest, AuthenticatorAnswersApiWith401AndPagesWithARedirect) {
  http::Response api = send(request(http::Verb::get, "/api/thing?x=1"));
  EXPECT_EQ(api.result(), http::Status::unauthorized);
  EXPECT_EQ(json::parse(api.body())["error"], "authentication required");
  EXPECT_EQ(api[bhttp::field::content_type], "application/json");

  http::Response page = send(request(http::Verb::get, "/page?q=a b&x=<y>"));
  EXPECT_EQ(page.result(), http::Status::see_other);
  EXPECT_EQ(page[bhttp::field::location], "/login?next=/page%3Fq%3Da%20b%26x%3D%3Cy%3E");
  EXPECT_EQ(page["X-Frame-Options"], "DENY");
  EXPECT_EQ(page["Referrer-Policy"], "no-referrer");
  EXPECT_EQ(send(request(http::Verb::head, "/page")).result(), http::Status::see_other);
  EXPECT_EQ(send(request(http::Verb::post, "/page")).result(), http::Status::unauthorized);

  // An unknown or expired cookie is the same as none.
  EXPECT_EQ(send(request(http::Verb::get, "/api/thing", std::string(43, 'Q'))).result(), http::Status::unauthorized);
  Session s = login_ok("bob", "bob-password");
  EXPECT_EQ(send(request(http::Verb::get, "/page", s.id)).result(), http::Status::ok);
  EXPECT_EQ(send(request(http::Verb::get, "/page", s.id), kT0 + fast_options().session_idle_us).result(),
            http::Status::see_other);
}

TEST_P(AuthTest, AdminRoutesNeedAnAdmin) {
  Session bob = login_ok("bob", "bob-password");
  Session alice = login_ok("alice", "alice-password");
  http::Response r = send(request(http::Verb::get, "/api/admin-thing", bob.id));
  EXPECT_EQ(r.result(), http::Status::forbidden);
  EXPECT_EQ(json::parse(r.body())["error"], "administrator rights required");
  EXPECT_EQ(send(request(http::Verb::get, "/admin-page", bob.id)).result(), http::Status::forbidden);
  EXPECT_EQ(send(request(http::Verb::get, "/api/admin-thing", alice.id)).result(), http::Status::ok);
  EXPECT_EQ(send(request(http::Verb::post, "/api/admin-thing", alice.id, alice.csrf)).result(), http::Status::ok);
  EXPECT_EQ(send(request(http::Verb::post, "/api/admin-thing", bob.id, bob.csrf)).result(), http::Status::forbidden);
}

TEST_P(AuthTest, CsrfTokenMissingWrongAndRight) {
  Session s = login_ok("bob", "bob-password");
  Session other = login_ok("alice", "alice-password");
  http::Response missing = send(request(http::Verb::post, "/api/thing", s.id));
  EXPECT_EQ(missing.result(), http::Status::forbidden);
  EXPECT_EQ(json::parse(missing.body())["error"], "missing X-CSRF-Token header");
  http::Response wrong = send(request(http::Verb::post, "/api/thing", s.id, other.csrf));
  EXPECT_EQ(wrong.result(), http::Status::forbidden);
  EXPECT_EQ(json::parse(wrong.body())["error"], "wrong X-CSRF-Token");
  EXPECT_EQ(send(request(http::Verb::post, "/api/thing", s.id, s.csrf.substr(0, 42))).result(),
            http::Status::forbidden);
  http::Response right = send(request(http::Verb::post, "/api/thing", s.id, s.csrf));
  EXPECT_EQ(right.result(), http::Status::ok) << right.body();
  // Reads need no token.
  EXPECT_EQ(send(request(http::Verb::get, "/api/thing", s.id)).result(), http::Status::ok);
  // DELETE is mutating too.
  router.add({http::Verb::delete_}, "/api/gone", http::Access::user,
             [](const http::Call& c) { return http::json_ok(c.req, "{}"); });
  EXPECT_EQ(send(request(http::Verb::delete_, "/api/gone", s.id)).result(), http::Status::forbidden);
  EXPECT_EQ(send(request(http::Verb::delete_, "/api/gone", s.id, s.csrf)).result(), http::Status::ok);
}

TEST_P(AuthTest, OriginAndFetchMetadataChecks) {
  Session s = login_ok("bob", "bob-password");
  auto post = [&](const char* header, const char* value) {
    http::Request r = request(http::Verb::post, "/api/thing", s.id, s.csrf);
    r.set(header, value);
    return send(r).result();
  };
  EXPECT_EQ(post("Origin", "http://control.test:8025"), http::Status::ok);
  EXPECT_EQ(post("Origin", "http://evil.test"), http::Status::forbidden);
  EXPECT_EQ(post("Origin", "https://control.test:8025"), http::Status::forbidden);  // scheme differs
  EXPECT_EQ(post("Origin", "null"), http::Status::forbidden);
  EXPECT_EQ(post("Sec-Fetch-Site", "same-origin"), http::Status::ok);
  EXPECT_EQ(post("Sec-Fetch-Site", "cross-site"), http::Status::forbidden);
  EXPECT_EQ(post("Sec-Fetch-Site", "same-site"), http::Status::forbidden);
}

http::Request login_request(const std::string& body, const std::string& type) {
  http::Request r{http::Verb::post, "/api/login", 11};
  r.set(bhttp::field::host, "control.test:8025");
  r.set(bhttp::field::content_type, type);
  r.body() = body;
  r.prepare_payload();
  return r;
}

TEST_P(AuthTest, LoginRouteJsonSetsAStrictCookie) {
  http::Response r = send(login_request(R"({"user":"alice","password":"alice-password"})", "application/json"));
  ASSERT_EQ(r.result(), http::Status::ok) << r.body();
  json j = json::parse(r.body());
  EXPECT_EQ(j["user"], "alice");
  EXPECT_EQ(j["admin"], true);
  std::string cookie(r[bhttp::field::set_cookie]);
  EXPECT_EQ(cookie.rfind("sekisho_session=", 0), 0u) << cookie;
  EXPECT_NE(cookie.find("; HttpOnly"), std::string::npos);
  EXPECT_NE(cookie.find("; SameSite=Strict"), std::string::npos);
  EXPECT_NE(cookie.find("; Path=/"), std::string::npos);
  EXPECT_EQ(cookie.find("Secure"), std::string::npos);  // plain HTTP here
  std::string id = cookie.substr(16, 43);
  auto who = auth->check_session(id, kT0 + 1);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->csrf, j["csrf"]);

  http::Response me = send(request(http::Verb::get, "/api/me", id));
  ASSERT_EQ(me.result(), http::Status::ok);
  EXPECT_EQ(json::parse(me.body())["csrf"], j["csrf"]);
  EXPECT_EQ(json::parse(me.body())["user"], "alice");

  http::Response bad = send(login_request(R"({"user":"alice","password":"nope-nope"})", "application/json"));
  EXPECT_EQ(bad.result(), http::Status::unauthorized);
  EXPECT_TRUE(bad[bhttp::field::set_cookie].empty());
  EXPECT_EQ(send(login_request(R"({"user":"alice"})", "application/json")).result(), http::Status::bad_request);
  EXPECT_EQ(send(login_request("user=alice", "text/plain")).result(), http::Status::unsupported_media_type);
  http::Request cross = login_request(R"({"user":"alice","password":"alice-password"})", "application/json");
  cross.set(bhttp::field::origin, "http://evil.test");
  EXPECT_EQ(send(cross).result(), http::Status::forbidden);  // login CSRF
}

TEST_P(AuthTest, LoginRouteFormRedirectsOnlyToLocalPaths) {
  auto form = [&](const std::string& body) {
    return send(login_request(body, "application/x-www-form-urlencoded; charset=UTF-8"));
  };
  http::Response ok = form("user=bob&password=bob-password&next=%2Fquarantine%3Fstate%3Dheld");
  EXPECT_EQ(ok.result(), http::Status::see_other);
  EXPECT_EQ(ok[bhttp::field::location], "/quarantine?state=held");
  EXPECT_FALSE(ok[bhttp::field::set_cookie].empty());
  for (std::string evil : {"%2F%2Fevil.test%2F", "https%3A%2F%2Fevil.test", "%2F%5Cevil.test", "javascript%3Aalert(1)"})
    EXPECT_EQ(form("user=bob&password=bob-password&next=" + evil)[bhttp::field::location], "/log") << evil;
  http::Response bad = form("user=bob&password=wrong-password");
  EXPECT_EQ(bad.result(), http::Status::see_other);
  EXPECT_EQ(bad[bhttp::field::location], "/login?error=failed");
}

TEST_P(AuthTest, LoginRouteThrottledIs429WithRetryAfter) {
  for (int i = 0; i < fast_options().user_max_failures; ++i)
    send(login_request(R"({"user":"bob","password":"wrong-password"})", "application/json"));
  http::Response r = send(login_request(R"({"user":"bob","password":"bob-password"})", "application/json"));
  EXPECT_EQ(r.result(), http::Status::too_many_requests);
  EXPECT_GT(std::stoi(std::string(r[bhttp::field::retry_after])), 0);
}

TEST_P(AuthTest, LogoutEndsTheSessionAndClearsTheCookie) {
  Session s = login_ok("bob", "bob-password");
  EXPECT_EQ(send(request(http::Verb::post, "/api/logout", s.id)).result(), http::Status::forbidden);  // CSRF
  http::Response r = send(request(http::Verb::post, "/api/logout", s.id, s.csrf));
  EXPECT_EQ(r.result(), http::Status::ok);
  EXPECT_NE(std::string(r[bhttp::field::set_cookie]).find("Max-Age=0"), std::string::npos);
  EXPECT_FALSE(auth->check_session(s.id, kT0 + 1));
  EXPECT_EQ(send(request(http::Verb::get, "/api/me", s.id)).result(), http::Status::unauthorized);
  EXPECT_EQ(actions(), (std::vector<std::string>{"login", "logout"}));
}

SEKISHO_INSTANTIATE_BACKENDS(AuthTest);

TEST(AuthHttps, CookieIsHostPrefixedAndSecure) {
  TempDir dir;
  auto db = db::open_db(dir / "c.db");
  AuthOptions o = fast_options();
  o.https = true;
  Auth a(*db, o);
  a.add_user("alice", "alice-password", true, kT0);
  LoginResult r = a.login("alice", "alice-password", "192.0.2.1", kT0);
  std::string c = a.session_cookie(r.session);
  EXPECT_EQ(c.rfind("__Host-sekisho_session=", 0), 0u) << c;
  EXPECT_NE(c.find("; Secure"), std::string::npos);
  EXPECT_NE(c.find("; Path=/"), std::string::npos);
  EXPECT_EQ(c.find("Domain"), std::string::npos);
  // The expected origin is https.
  http::Request req{http::Verb::post, "/x", 11};
  req.set(bhttp::field::host, "c.test");
  req.set(bhttp::field::origin, "https://c.test");
  EXPECT_EQ(origin_problem(req, true), "");
  EXPECT_NE(origin_problem(req, false), "");
}

TEST(AuthHelpers, CookiesAndClientAddresses) {
  EXPECT_EQ(cookie_value("a=1; sekisho_session=xyz; b=2", "sekisho_session"), "xyz");
  EXPECT_EQ(cookie_value("xsekisho_session=1", "sekisho_session"), "");
  EXPECT_EQ(cookie_value("", "sekisho_session"), "");
  EXPECT_EQ(client_ip("192.0.2.1:40000"), "192.0.2.1");
  EXPECT_EQ(client_ip("[2001:db8::1]:443"), "2001:db8::1");
}

// ---- the admin commands ----

struct Cli {
  int rc;
  std::string out, err;
};

Cli run(const std::string& db, std::vector<std::string> args, const std::string& stdin_text = "") {
  std::istringstream in(stdin_text);
  std::ostringstream out, err;
  int rc = run_admin_command(db, args, in, out, err);
  return {rc, out.str(), err.str()};
}

class AdminCli : public testing::BackendTest {};

TEST_P(AdminCli, UsersAndTokensWithExitCodes) {
  const std::string db = db_name();
  Cli c = run(db, {"user", "add", "root", "--admin", "--password-stdin"}, "first-admin-pw\n");
  EXPECT_EQ(c.rc, 0) << c.err;
  EXPECT_EQ(c.out, "user 'root' added (administrator)\n");
  c = run(db, {"user", "add", "root", "--password-stdin"}, "first-admin-pw\n");
  EXPECT_EQ(c.rc, 1);
  EXPECT_EQ(c.err, "sekisho-control: user 'root' already exists\n");
  c = run(db, {"user", "add", "eve", "--password-stdin"}, "");
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("no password on standard input"), std::string::npos);
  c = run(db, {"user", "add", "eve", "--password-stdin"}, "short\n");
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("at least 8"), std::string::npos);
  c = run(db, {"user", "add", "eve"}, "long-enough\n");
  EXPECT_EQ(c.rc, 2);
  EXPECT_NE(c.err.find("--password-stdin"), std::string::npos);
  EXPECT_EQ(run(db, {"user", "add", "--password-stdin"}, "long-enough\n").rc, 2);
  EXPECT_EQ(run(db, {"user", "add", "eve", "--colour", "--password-stdin"}, "long-enough\n").rc, 2);
  EXPECT_EQ(run(db, {"user", "frobnicate", "eve"}).rc, 2);
  EXPECT_EQ(run(db, {"user"}).rc, 2);
  EXPECT_EQ(run(db, {"user", "add", "eve", "--password-stdin"}, "eve-password\r\n").rc, 0);
  EXPECT_EQ(run(db, {"user", "passwd", "eve", "--password-stdin"}, "eve-password-2\n").rc, 0);
  EXPECT_EQ(run(db, {"user", "passwd", "nobody", "--password-stdin"}, "eve-password-2\n").rc, 1);
  c = run(db, {"user", "disable", "eve"});
  EXPECT_EQ(c.rc, 0);
  EXPECT_NE(c.out.find("disabled"), std::string::npos);
  EXPECT_EQ(run(db, {"user", "disable", "nobody"}).rc, 1);
  c = run(db, {"user", "list"});
  EXPECT_EQ(c.rc, 0);
  EXPECT_NE(c.out.find("eve\tuser\tdisabled\t"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("root\tadmin\tenabled\t"), std::string::npos) << c.out;

  c = run(db, {"token", "create", "ci", "--admin"});
  EXPECT_EQ(c.rc, 0);
  ASSERT_EQ(c.out.size(), 48u) << c.out;  // the token and a newline, nothing else on stdout
  std::string token = c.out.substr(0, 47);
  EXPECT_NE(c.err.find("shown only this once"), std::string::npos);
  EXPECT_EQ(run(db, {"token", "create", "ci"}).rc, 1);
  c = run(db, {"token", "list"});
  EXPECT_NE(c.out.find("ci\tadmin\t"), std::string::npos);
  EXPECT_EQ(c.out.find(token), std::string::npos);  // never shown again

  // What the commands did is what the server sees.
  {
    auto d = connect();
    Auth a(*d, fast_options());
    EXPECT_TRUE(a.check_token(token, kT0));
    EXPECT_EQ(a.login("eve", "eve-password-2", "192.0.2.1", kT0).status, LoginStatus::bad_credentials);  // disabled
    EXPECT_EQ(a.login("root", "first-admin-pw", "192.0.2.1", kT0).status, LoginStatus::ok);
  }
  EXPECT_EQ(run(db, {"token", "revoke", "ci"}).rc, 0);
  EXPECT_EQ(run(db, {"token", "revoke", "ci"}).rc, 1);
  {
    auto d = connect();
    Auth a(*d, fast_options());
    EXPECT_FALSE(a.check_token(token, kT0));
  }
}

SEKISHO_INSTANTIATE_BACKENDS(AdminCli);

TEST(AdminCliErrors, UnusableDatabaseIsExit1) {
  TempDir dir;
  Cli c = run(dir / "no-such-dir/c.db", {"user", "list"});
  EXPECT_EQ(c.rc, 1);
  EXPECT_EQ(c.err.rfind("sekisho-control: ", 0), 0u) << c.err;
}

}  // namespace
}  // namespace sekisho::control::auth
