// Ruleset versions and their API (control/rulesets), on SQLite and on a
// real PostgreSQL: upload with file:line errors, background compilation,
// versions, activation through the dataplane's telemetry protocol, rollback,
// policy changes making versions, templates. The real dataplane is driven by
// tests/wire/test_ruleset_push.py; here the telemetry peer is a socket
// speaking the DPDK telemetry v2 protocol.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/unit/control/backends.hpp"
#include "control/http/router.hpp"
#include "control/link/dataplane_link.hpp"
#include "scanners/match/match.hpp"
#include "control/policy/policy_store.hpp"
#include "control/rulesets/rulesets.hpp"
#include "control/policy/policy_api.hpp"
#include "control/rulesets/rulesets_api.hpp"

using namespace sekisho;
using namespace sekisho::control;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* kPack =
    "header T_SUBJ_WIN Subject =~ /winner/i\n"
    "score T_SUBJ_WIN 6\n"
    "threshold reject 5\n";

struct AuditEntry {
  std::string actor, action, target;
};

// A telemetry v2 peer: greeting, then one reply per connection, as
// sekisho-dataplane's telemetry thread answers.
class TelemetryPeer {
 public:
  explicit TelemetryPeer(std::string path) : path_(std::move(path)) {
    fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    strncpy(sa.sun_path, path_.c_str(), sizeof sa.sun_path - 1);
    unlink(path_.c_str());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    EXPECT_EQ(listen(fd_, 4), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~TelemetryPeer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    unlink(path_.c_str());
  }
  std::vector<std::string> requests() {
    std::lock_guard g(mu_);
    return requests_;
  }
  std::atomic<bool> refuse{false};

 private:
  void serve() {
    while (!stop_) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string hello = R"({"version": "DPDK 22.11.1", "pid": 1, "max_output_len": 16384})";
      send(c, hello.data(), hello.size(), MSG_NOSIGNAL);
      char buf[1024];
      ssize_t n = recv(c, buf, sizeof buf - 1, 0);
      if (n > 0) {
        std::string req(buf, static_cast<size_t>(n));
        {
          std::lock_guard g(mu_);
          requests_.push_back(req);
        }
        std::string cmd = req.substr(0, req.find(','));
        json value = refuse ? json{{"error", "cannot load: not a Sekisho ruleset artifact"}}
                            : json{{"version", ++swaps_}, {"ruleset", "v?"}};
        std::string reply = json{{cmd, value}}.dump();
        send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      }
      close(c);
    }
  }
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> requests_;
  int swaps_ = 0;
};

class RulesetsTest : public control::testing::BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (IsSkipped()) return;
    dir_ = fs::temp_directory_path() / ("rulesets-" + std::to_string(getpid()) + "-" + std::to_string(++n_));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    policies_ = std::make_unique<policy::PolicyStore>(db());
  }
  void TearDown() override {
    service_.reset();
    peer_.reset();
    policies_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
    BackendTest::TearDown();
  }
  rulesets::RulesetService& service(bool telemetry = false) {
    rulesets::Options o;
    o.dir = (dir_ / "rs").string();
    o.start_worker = false;
    if (telemetry) {
      peer_ = std::make_unique<TelemetryPeer>((dir_ / "tel.sock").string());
      o.telemetry = (dir_ / "tel.sock").string();
    }
    auto* ps = policies_.get();
    service_ = std::make_unique<rulesets::RulesetService>(
        db(), o,
        [ps] {
          auto r = ps->current();
          return std::pair<int64_t, std::string>{r.id, policy::compile_policy(r.policy)};
        },
        [this](const std::string& a, const std::string& act, const std::string& t, const json&, int64_t) {
          audit_.push_back({a, act, t});
        });
    return *service_;
  }
  match::Result scan_subject(int64_t version, const std::string& subject, const std::string& mail_from = "<a@b.example>") {
    std::string err;
    loaded_.push_back(match::Ruleset::load(service_->artifact_path(version), err));  // the Result points into it
    auto& rs = loaded_.back();
    EXPECT_TRUE(rs) << err;
    match::Scratch sc(*rs);
    match::MessageScan s(*rs, sc);
    std::vector<std::string> rc{"bob@corp.example"};
    s.envelope(mail_from, rc, "h");
    s.header("Subject", subject, subject);
    return s.finish();
  }

  fs::path dir_;
  std::unique_ptr<policy::PolicyStore> policies_;
  std::unique_ptr<TelemetryPeer> peer_;
  std::unique_ptr<rulesets::RulesetService> service_;
  std::vector<AuditEntry> audit_;
  std::vector<std::unique_ptr<match::Ruleset>> loaded_;
  static inline int n_ = 0;
};

http::Request request(http::Verb v, const std::string& target, const std::string& body = "",
                      const std::string& type = "application/json") {
  http::Request r{v, target, 11};
  r.set(boost::beast::http::field::content_type, type);
  r.body() = body;
  r.prepare_payload();
  return r;
}

json body(const http::Response& r) { return json::parse(r.body(), nullptr, false); }

// A ustar archive of |files| (as `tar --format=ustar` writes one).
std::string tar_of(const std::vector<std::pair<std::string, std::string>>& files, char type = '0') {
  std::string out;
  for (auto& [name, data] : files) {
    std::string h(512, '\0');
    memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 100));
    snprintf(h.data() + 100, 8, "%07o", 0644);
    snprintf(h.data() + 108, 8, "%07o", 0);
    snprintf(h.data() + 116, 8, "%07o", 0);
    snprintf(h.data() + 124, 12, "%011o", static_cast<unsigned>(data.size()));
    snprintf(h.data() + 136, 12, "%011o", 0);
    h[156] = type;
    memcpy(h.data() + 257, "ustar\0" "00", 8);
    memset(h.data() + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    snprintf(h.data() + 148, 8, "%06o", sum);
    out += h;
    out += data;
    out.append((512 - data.size() % 512) % 512, '\0');
  }
  out.append(1024, '\0');
  return out;
}

}  // namespace

TEST_P(RulesetsTest, UploadErrorsCarryFileAndLineAndMakeNoVersion) {
  if (IsSkipped()) return;
  auto& s = service();
  rulesets::CheckResult c;
  EXPECT_THROW(s.upload({{"a/ok.cf", kPack}, {"a/bad.cf", "header X Subject =~ /x/\nbogus_directive 1\nlist L domains nope.txt\n"}},
                        "admin", 1, false, &c),
               rulesets::RulesetError);
  ASSERT_GE(c.errors.size(), 2u);
  EXPECT_EQ(c.errors[0], "packs/a/bad.cf:2: unknown directive 'bogus_directive'");
  EXPECT_NE(c.errors[1].find("packs/a/bad.cf:3: list L: cannot read packs/a/nope.txt"), std::string::npos) << c.errors[1];
  EXPECT_EQ(c.errors[1].find(dir_.string()), std::string::npos) << "no server path in errors";
  // A pack cannot make the control plane read its own files.
  c = s.check({{"x.cf", "include /etc/passwd\nlist L domains ../../../etc/hosts\n"}});
  ASSERT_EQ(c.errors.size(), 2u);
  EXPECT_EQ(c.errors[0], "packs/x.cf:1: include path '/etc/passwd' must name a file inside the pack");
  EXPECT_EQ(c.errors[1], "packs/x.cf:2: list path '../../../etc/hosts' must name a file inside the pack");
  EXPECT_THROW(s.check({{"../x.cf", kPack}}), rulesets::RulesetError);
  EXPECT_THROW(s.check({{"x.txt", "example.com\n"}}), rulesets::RulesetError) << "no .cf file";
  EXPECT_THROW(s.check({{"x.cf", std::string(9u << 20, '#')}}), rulesets::RulesetError) << "over the size limit";
  EXPECT_TRUE(s.list().empty());
}

TEST_P(RulesetsTest, VersionsCompileActivateAndRollBack) {
  if (IsSkipped()) return;
  auto& s = service();
  int64_t v1 = s.upload({{"test/t.cf", kPack}}, "alice", 100, false);
  EXPECT_EQ(s.get(v1)->state, "compiling");
  s.run_pending();
  auto x = s.get(v1);
  ASSERT_TRUE(x);
  EXPECT_EQ(x->state, "compiled") << x->error;
  EXPECT_EQ(x->created_by, "alice");
  EXPECT_EQ(x->rules_active, x->rules_defined);
  EXPECT_GE(x->rules_defined, 1);
  EXPECT_EQ(x->sha256.size(), 64u);
  EXPECT_EQ(fs::file_size(s.artifact_path(v1)), static_cast<uintmax_t>(x->artifact_bytes));
  EXPECT_EQ(scan_subject(v1, "You are a WINNER").action, rules::Action::reject);
  EXPECT_THROW(s.rollback("alice", 150), rulesets::RulesetError) << "nothing active";
  s.activate(v1, "alice", 200);
  EXPECT_EQ(s.active(), v1);
  EXPECT_EQ(fs::read_symlink(dir_ / "rs" / "active.art"), fs::path("v" + std::to_string(v1)) / "ruleset.art");

  int64_t v2 = s.upload({{"test/t.cf", "header T_OTHER Subject =~ /other/\nscore T_OTHER 6\nthreshold quarantine 5\n"}}, "bob", 300, false);
  try {
    s.activate(v2, "bob", 310);
    ADD_FAILURE() << "a compiling version was activated";
  } catch (const rulesets::RulesetError& e) {
    EXPECT_EQ(e.kind, rulesets::RulesetError::conflict);
    EXPECT_NE(std::string(e.what()).find("is compiling"), std::string::npos);
  }
  s.run_pending();
  auto r = s.activate(v2, "bob", 320);
  EXPECT_EQ(r.previous, v1);
  EXPECT_EQ(s.get(v1)->state, "compiled");
  EXPECT_EQ(s.get(v2)->state, "active");
  int64_t v3 = s.upload({{"test/t.cf", "meta T_META T_NONE\n"}}, "bob", 330, false);
  s.run_pending();
  EXPECT_EQ(s.get(v3)->state, "compiled") << "a meta on an undefined rule is refused, not an error";
  s.activate(v3, "bob", 340);

  auto back = s.rollback("carol", 400);
  EXPECT_EQ(back.version, v2);
  EXPECT_EQ(back.previous, v3);
  EXPECT_EQ(s.active(), v2);
  back = s.rollback("carol", 410);
  EXPECT_EQ(back.version, v1) << "rolling back again goes one further";
  EXPECT_EQ(s.active(), v1);
  try {
    s.rollback("carol", 420);
    ADD_FAILURE() << "rolled back past the first activation";
  } catch (const rulesets::RulesetError& e) {
    EXPECT_EQ(e.kind, rulesets::RulesetError::conflict);
  }
  EXPECT_THROW(s.activate(999, "x", 1), rulesets::RulesetError);
  // Versions are listed newest first; every action is audited.
  auto l = s.list();
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[0].version, v3);
  std::vector<std::string> actions;
  for (auto& a : audit_) actions.push_back(a.action + " " + a.target + " " + a.actor);
  EXPECT_EQ(actions, (std::vector<std::string>{
                         "rules.upload v" + std::to_string(v1) + " alice", "rules.activate v" + std::to_string(v1) + " alice",
                         "rules.upload v" + std::to_string(v2) + " bob", "rules.activate v" + std::to_string(v2) + " bob",
                         "rules.upload v" + std::to_string(v3) + " bob", "rules.activate v" + std::to_string(v3) + " bob",
                         "rules.rollback v" + std::to_string(v2) + " carol", "rules.rollback v" + std::to_string(v1) + " carol"}));
}

TEST_P(RulesetsTest, FailedCompileAndRestartResumesCompiling) {
  if (IsSkipped()) return;
  int64_t v;
  {
    auto& s = service();
    v = s.upload({{"t.cf", kPack}}, "alice", 1, false);
    service_.reset();  // "crash" before compiling
  }
  auto& s = service();
  EXPECT_EQ(s.get(v)->state, "compiling");
  s.run_pending();
  EXPECT_EQ(s.get(v)->state, "compiled") << "re-queued at start-up";
  // Sources removed from this disk (another machine's version): rebuilt from the database.
  int64_t w = s.upload({{"t.cf", kPack}}, "alice", 2, true);
  fs::remove_all(dir_ / "rs" / ("v" + std::to_string(w)) / "src");
  s.run_pending();
  EXPECT_EQ(s.get(w)->state, "active") << s.get(w)->error << " (activate_when_compiled)";
}

TEST_P(RulesetsTest, ActivationTellsTheDataplaneAndStopsWhenItRefuses) {
  if (IsSkipped()) return;
  auto& s = service(true);
  int64_t v1 = s.upload({{"t.cf", kPack}}, "alice", 1, false);
  s.run_pending();
  auto r = s.activate(v1, "alice", 2);
  ASSERT_EQ(peer_->requests().size(), 1u);
  EXPECT_EQ(peer_->requests()[0], "/sekisho/rules," + s.artifact_path(v1));
  EXPECT_EQ(r.dataplane["version"], 1);
  int64_t v2 = s.upload({{"t.cf", kPack}}, "alice", 3, false);
  s.run_pending();
  peer_->refuse = true;
  try {
    s.activate(v2, "alice", 4);
    ADD_FAILURE() << "activated although the dataplane refused";
  } catch (const rulesets::RulesetError& e) {
    EXPECT_EQ(e.kind, rulesets::RulesetError::dataplane);
    EXPECT_NE(std::string(e.what()).find("not a Sekisho ruleset artifact"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s.active(), v1) << "nothing changes when the dataplane refuses";
  // No dataplane listening: the same, with the reason.
  peer_.reset();
  try {
    s.activate(v2, "alice", 5);
    ADD_FAILURE();
  } catch (const rulesets::RulesetError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot connect to"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s.active(), v1);
}

TEST_P(RulesetsTest, PolicyChangeMakesAVersionWithTheActivePacks) {
  if (IsSkipped()) return;
  auto& s = service();
  int64_t v1 = s.upload({{"t.cf", kPack}, {"lists/partners.txt", "partner.example\n"}}, "alice", 1, false);
  s.run_pending();
  s.activate(v1, "alice", 2);
  policy::Policy p;
  std::vector<policy::PolicyError> errs;
  ASSERT_TRUE(policy::parse_policy(
      {{"rules", {{{"name", "Allow partner"}, {"conditions", {{"senders", {{"list", {"@partner.example"}}}}}}, {"action", "pass"}}}}}, p, errs));
  policies_->save(p, "alice", 3);
  int64_t v2 = s.policy_changed("alice", 4, true);
  s.run_pending();
  auto x = s.get(v2);
  EXPECT_EQ(x->origin, "policy");
  EXPECT_EQ(x->state, "active") << x->error;
  EXPECT_EQ(s.file_names(v2), (std::vector<std::string>{"packs/lists/partners.txt", "packs/t.cf", "policy/policy.cf"}));
  EXPECT_EQ(scan_subject(v2, "winner").action, rules::Action::reject) << "the packs still run";
  match::Result r = scan_subject(v2, "winner", "<news@partner.example>");
  EXPECT_EQ(r.action, rules::Action::pass) << "the policy's pass decides over the packs";
  EXPECT_EQ(r.decided_by, "POLICY_ALLOW_PARTNER");
}

TEST_P(RulesetsTest, Api) {
  if (IsSkipped()) return;
  auto& s = service();
  http::Router router;
  std::vector<std::string> audited;
  rulesets::add_ruleset_routes(router, s);
  policy::add_policy_routes(
      router, *policies_,
      [&s](const std::string& a, int64_t now_us, bool activate) { return s.policy_changed(a, now_us, activate); },
      [&](const std::string& a, const std::string& act, const std::string& t, const json&, int64_t) {
        audited.push_back(act + " " + t + " " + a);
      });
  auto call = [&](http::Verb v, const std::string& target, const std::string& b = "", const std::string& type = "application/json") {
    return router.handle(request(v, target, b, type), 1700000000000000);
  };
  // Upload with errors: 422 and file:line.
  auto r = call(http::Verb::post, "/api/rulesets", json{{"files", {{"x.cf", "header A Subject =~ /(/\n"}}}}.dump());
  EXPECT_EQ(r.result_int(), 422) << r.body();
  EXPECT_EQ(body(r)["errors"][0].get<std::string>().rfind("packs/x.cf:1: ", 0), 0u) << r.body();
  EXPECT_EQ(call(http::Verb::post, "/api/rulesets", "{\"files\": 1}").result_int(), 400);
  EXPECT_EQ(call(http::Verb::post, "/api/rulesets", "not json").result_int(), 400);
  // Check only.
  r = call(http::Verb::post, "/api/rulesets/check", json{{"files", {{"x.cf", kPack}}}}.dump());
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(body(r)["ok"], true);
  EXPECT_TRUE(s.list().empty());
  // A tar upload.
  r = call(http::Verb::post, "/api/rulesets", tar_of({{"./pack/t.cf", kPack}}), "application/x-tar");
  ASSERT_EQ(r.result_int(), 202) << r.body();
  int64_t v = body(r)["version"];
  EXPECT_EQ(s.file_names(v), (std::vector<std::string>{"packs/pack/t.cf", "policy/policy.cf"}));
  EXPECT_EQ(call(http::Verb::post, "/api/rulesets", tar_of({{"pack/link", ""}}, '2'), "application/x-tar").result_int(), 400)
      << "symbolic links are refused";
  // Activation before the compile: 409; after: 200.
  r = call(http::Verb::post, "/api/rulesets/" + std::to_string(v) + "/activate");
  EXPECT_EQ(r.result_int(), 409) << r.body();
  s.run_pending();
  r = call(http::Verb::get, "/api/rulesets/v" + std::to_string(v));
  EXPECT_EQ(body(r)["state"], "compiled");
  EXPECT_EQ(body(r)["file_names"].size(), 2u);
  r = call(http::Verb::post, "/api/rulesets/" + std::to_string(v) + "/activate");
  EXPECT_EQ(r.result_int(), 200) << r.body();
  EXPECT_EQ(body(call(http::Verb::get, "/api/rulesets"))["active"], v);
  EXPECT_EQ(call(http::Verb::get, "/api/rulesets/99").result_int(), 404);
  EXPECT_EQ(call(http::Verb::get, "/api/rulesets/abc").result_int(), 404);
  EXPECT_EQ(call(http::Verb::post, "/api/rulesets/rollback").result_int(), 409);
  EXPECT_EQ(call(http::Verb::get, "/api/rulesets?limit=0").result_int(), 400);

  // Policy: errors name rule and field; a good one makes a version.
  r = call(http::Verb::put, "/api/policy",
           json{{"rules", {{{"name", "Bulk"}, {"conditions", {{"recipient_count", {{"op", ">="}, {"value", -1}}}}}, {"action", "reject"}}}}}.dump());
  EXPECT_EQ(r.result_int(), 422);
  EXPECT_EQ(body(r)["errors"][0]["rule"], 1);
  EXPECT_EQ(body(r)["errors"][0]["name"], "Bulk");
  EXPECT_EQ(body(r)["errors"][0]["field"], "conditions.recipient_count.value");
  json pol = {{"rules", {{{"name", "Bulk"}, {"conditions", {{"recipient_count", {{"op", ">="}, {"value", 50}}}}}, {"action", "reject"},
                          {"reply", "Too many recipients"}}}}};
  r = call(http::Verb::put, "/api/policy?activate=1", pol.dump());
  ASSERT_EQ(r.result_int(), 202) << r.body();
  int64_t pv = body(r)["version"];
  s.run_pending();
  EXPECT_EQ(s.active(), pv);
  r = call(http::Verb::get, "/api/policy");
  EXPECT_EQ(body(r)["policy"]["rules"][0]["name"], "Bulk");
  EXPECT_NE(body(r)["compiled"].get<std::string>().find("reply POLICY_BULK Too many recipients"), std::string::npos);
  EXPECT_EQ(call(http::Verb::post, "/api/rulesets/rollback").result_int(), 200);
  EXPECT_EQ(s.active(), v);
  // Preview of a policy on a message, without saving.
  json many = json::array();
  for (int i = 0; i < 3; ++i) many.push_back("r" + std::to_string(i) + "@corp.example");
  r = call(http::Verb::post, "/api/policy/preview",
           json{{"policy", {{"rules", {{{"name", "Wide"}, {"conditions", {{"recipient_count", {{"op", ">="}, {"value", 3}}}}}, {"action", "tempfail"}}}}}},
                {"message", {{"mail_from", "a@x.example"}, {"rcpt_to", many}, {"headers", json::array({json::array({"Subject", "hi"})})}}}}
               .dump());
  EXPECT_EQ(r.result_int(), 200) << r.body();
  EXPECT_EQ(body(r)["result"]["action"], "tempfail") << r.body();
  EXPECT_EQ(body(r)["result"]["decided_by"], "POLICY_WIDE");
  EXPECT_EQ(body(r)["result"]["rules"][0]["holds"], true);
  EXPECT_EQ(body(call(http::Verb::get, "/api/policy"))["policy"]["rules"][0]["name"], "Bulk") << "preview saves nothing";

  // Templates.
  r = call(http::Verb::put, "/api/templates/held", json{{"subject", "Held: %SUBJECT%"}, {"body", "To %RCPTS% from %SENDER% (%RULE%)\n"}}.dump());
  EXPECT_EQ(r.result_int(), 200) << r.body();
  EXPECT_EQ(call(http::Verb::put, "/api/templates/held", json{{"subject", "a\nb"}}.dump()).result_int(), 422);
  EXPECT_EQ(call(http::Verb::put, "/api/templates/bad%20name", json{{"subject", "x"}}.dump()).result_int(), 422);
  r = call(http::Verb::post, "/api/templates/held/render",
           json{{"sender", "a@x.example"}, {"rcpts", {"bob@corp.example", "hidden@corp.example"}}, {"to", "Bob <bob@corp.example>"},
                {"subject", "Q3\r\nBcc: all@corp.example"}, {"rule", "Bulk"}}
               .dump());
  EXPECT_EQ(body(r)["subject"], "Held: Q3  Bcc: all@corp.example");
  EXPECT_EQ(body(r)["body"], "To bob@corp.example from a@x.example (Bulk)\r\n");
  EXPECT_EQ(body(call(http::Verb::get, "/api/templates")).size(), 1u);
  EXPECT_EQ(call(http::Verb::delete_, "/api/templates/held").result_int(), 200);
  EXPECT_EQ(call(http::Verb::get, "/api/templates/held").result_int(), 404);
  // Every mutation was audited: rulesets by the service, policy and templates by the routes.
  std::vector<std::string> kinds;
  for (auto& a : audit_) kinds.push_back(a.action);
  EXPECT_EQ(kinds, (std::vector<std::string>{"rules.upload", "rules.activate", "rules.activate", "rules.rollback"}));
  kinds.clear();
  for (auto& a : audited) kinds.push_back(a.substr(0, a.find(' ')));
  EXPECT_EQ(kinds, (std::vector<std::string>{"policy.update", "template.update", "template.delete"}));
}

TEST(DataplaneLink, ProtocolAndErrors) {
  std::string path = (fs::temp_directory_path() / ("tel-" + std::to_string(getpid()))).string();
  {
    TelemetryPeer peer(path);
    link::DataplaneLink l(path, std::chrono::milliseconds(2000));
    json v = l.query("/sekisho/rules", "/tmp/x.art");
    EXPECT_EQ(v["version"], 1);
    EXPECT_EQ(peer.requests(), (std::vector<std::string>{"/sekisho/rules,/tmp/x.art"}));
    EXPECT_THROW(l.query("/sekisho/rules", "a\nb"), link::LinkError) << "control characters";
    EXPECT_THROW(l.query("no-slash"), link::LinkError);
    EXPECT_THROW(l.query("/x", std::string(2000, 'a')), link::LinkError);
  }
  link::DataplaneLink gone(path, std::chrono::milliseconds(200));
  EXPECT_THROW(gone.query("/sekisho/stats"), link::LinkError);
  EXPECT_EQ(link::socket_for_prefix("sekisho"), "/var/run/dpdk/sekisho/dpdk_telemetry.v2");
  // A peer that accepts and never greets: a timeout, not a hang.
  int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  unlink(path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  try {
    gone.query("/sekisho/stats");
    ADD_FAILURE();
  } catch (const link::LinkError& e) {
    EXPECT_NE(std::string(e.what()).find("no greeting within 200 ms"), std::string::npos) << e.what();
  }
  close(fd);
  unlink(path.c_str());
}

SEKISHO_INSTANTIATE_BACKENDS(RulesetsTest);
