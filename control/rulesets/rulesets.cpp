#include "control/rulesets/rulesets.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "rules/compiler/compiler.hpp"
#include "rules/lang/parser.hpp"

namespace sekisho::control::rulesets {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const db::Migration kMigrations[] = {
    {1, "ruleset versions, their files and activations",
     "CREATE TABLE ruleset_versions (id {{id}}, created_us BIGINT NOT NULL, created_by TEXT NOT NULL,"
     " origin TEXT NOT NULL, state TEXT NOT NULL, error TEXT, sha256 TEXT, source_sha256 TEXT,"
     " artifact_bytes BIGINT NOT NULL DEFAULT 0, rules_defined BIGINT NOT NULL DEFAULT 0,"
     " rules_active BIGINT NOT NULL DEFAULT 0, rules_refused BIGINT NOT NULL DEFAULT 0,"
     " rules_eval BIGINT NOT NULL DEFAULT 0, compile_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,"
     " files BIGINT NOT NULL DEFAULT 0, policy_revision BIGINT NOT NULL DEFAULT 0,"
     " activated_us BIGINT NOT NULL DEFAULT 0, activate_when_compiled BIGINT NOT NULL DEFAULT 0, report TEXT);"
     "CREATE TABLE ruleset_files (version BIGINT NOT NULL, name TEXT NOT NULL, body {{blob}} NOT NULL,"
     " PRIMARY KEY (version, name));"
     "CREATE TABLE ruleset_activations (id {{id}}, version BIGINT NOT NULL, previous BIGINT, at_us BIGINT NOT NULL,"
     " by_user TEXT NOT NULL, kind TEXT NOT NULL);"
     "CREATE INDEX ruleset_activations_version ON ruleset_activations (version, id)"},
};

const char* kVersionColumns =
    "id, created_us, created_by, origin, state, error, sha256, source_sha256, artifact_bytes, rules_defined,"
    " rules_active, rules_refused, rules_eval, compile_seconds, files, policy_revision, activated_us,"
    " activate_when_compiled, report";

Version version_of(const db::Row& r) {
  Version v;
  v.version = r.i64(0);
  v.created_us = r.i64(1);
  v.created_by = r.text(2);
  v.origin = r.text(3);
  v.state = r.text(4);
  v.error = r.opt_text(5).value_or("");
  v.sha256 = r.opt_text(6).value_or("");
  v.source_sha256 = r.opt_text(7).value_or("");
  v.artifact_bytes = r.i64(8);
  v.rules_defined = r.i64(9);
  v.rules_active = r.i64(10);
  v.rules_refused = r.i64(11);
  v.rules_eval = r.i64(12);
  v.compile_seconds = r.dbl(13);
  v.files = r.i64(14);
  v.policy_revision = r.i64(15);
  v.activated_us = r.i64(16);
  v.activate_when_compiled = r.i64(17) != 0;
  v.report = r.null(18) ? json() : json::parse(r.text(18), nullptr, false);
  return v;
}

std::string sha256_hex(std::string_view data) {
  unsigned char d[32];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s += hex[d[i] >> 4];
    s += hex[d[i] & 15];
  }
  return s;
}

void write_file(const fs::path& p, std::string_view bytes) {
  fs::create_directories(p.parent_path());
  fs::path tmp = p;
  tmp += ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp.string() + ": " + strerror(errno));
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      throw std::runtime_error("cannot write " + tmp.string() + ": " + strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) throw std::runtime_error("cannot write " + tmp.string() + ": " + strerror(errno));
  fs::rename(tmp, p);
}

std::string random_hex(size_t bytes) {
  std::vector<unsigned char> b(bytes);
  RAND_bytes(b.data(), static_cast<int>(b.size()));
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

bool safe_relative(std::string_view p) {
  if (p.empty() || p.size() > 200 || p.front() == '/' || p.back() == '/') return false;
  if (p.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") != std::string_view::npos)
    return false;
  size_t b = 0;
  while (b <= p.size()) {
    size_t e = p.find('/', b);
    if (e == std::string_view::npos) e = p.size();
    std::string_view part = p.substr(b, e - b);
    if (part.empty() || part == "." || part == "..") return false;
    b = e + 1;
  }
  return true;
}

// include/list file references must stay inside the pack: a pack must not
// make the control plane read (and echo in its errors) files of its own.
std::vector<std::string> reference_problems(const PackFiles& files) {
  std::vector<std::string> out;
  for (const auto& [name, text] : files) {
    if (name.size() < 3 || name.substr(name.size() - 3) != ".cf") continue;
    std::istringstream in(text);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      std::istringstream ws(line);
      std::vector<std::string> w;
      std::string t;
      while (w.size() < 4 && ws >> t) w.push_back(t);
      std::string ref;
      if (w.size() >= 2 && w[0] == "include") ref = w[1];
      else if (w.size() >= 4 && w[0] == "list" && w[3] != "inline") ref = w[3];
      else continue;
      fs::path base = fs::path(name).parent_path();
      fs::path joined = (base / ref).lexically_normal();
      if (ref.empty() || ref[0] == '/' || !safe_relative(joined.string()) || joined.string().rfind("..", 0) == 0)
        out.push_back("packs/" + name + ":" + std::to_string(n) + ": " + w[0] + " path '" + ref.substr(0, 100) +
                      "' must name a file inside the pack");
    }
  }
  return out;
}

void materialise(const fs::path& dir, const PackFiles& packs, const std::string& policy_text) {
  for (const auto& [name, text] : packs) write_file(dir / "packs" / name, text);
  write_file(dir / "policy" / "policy.cf", policy_text);
}

}  // namespace

std::string pack_files_problem(const PackFiles& files, const Limits& lim) {
  if (files.size() > lim.max_files) return "more than " + std::to_string(lim.max_files) + " files";
  size_t total = 0;
  bool cf = false;
  for (const auto& [name, text] : files) {
    if (!safe_relative(name)) return "file name '" + name.substr(0, 100) + "': expected a relative path of [A-Za-z0-9._-/]";
    if (text.size() > lim.max_file_bytes) return name + ": larger than " + std::to_string(lim.max_file_bytes) + " bytes";
    total += text.size();
    cf = cf || (name.size() > 3 && name.substr(name.size() - 3) == ".cf");
  }
  if (total > lim.max_total_bytes) return "more than " + std::to_string(lim.max_total_bytes) + " bytes in all";
  if (!cf) return "no .cf file";
  return "";
}

PackFiles untar(std::string_view tar, const Limits& lim) {
  PackFiles out;
  size_t off = 0, total = 0;
  auto octal = [](std::string_view f) -> std::optional<uint64_t> {
    uint64_t v = 0;
    size_t i = 0;
    while (i < f.size() && f[i] == ' ') ++i;
    bool any = false;
    for (; i < f.size() && f[i] >= '0' && f[i] <= '7'; ++i) {
      v = v * 8 + static_cast<uint64_t>(f[i] - '0');
      any = true;
      if (v > (1ull << 40)) return std::nullopt;
    }
    for (; i < f.size(); ++i)
      if (f[i] != ' ' && f[i] != '\0') return std::nullopt;
    return any ? std::optional(v) : std::nullopt;
  };
  std::string long_name;
  while (off + 512 <= tar.size()) {
    std::string_view h = tar.substr(off, 512);
    if (h.find_first_not_of('\0') == std::string_view::npos) break;  // end of archive
    auto cstr = [&](size_t at, size_t n) {
      std::string_view f = h.substr(at, n);
      size_t z = f.find('\0');
      return std::string(f.substr(0, z));
    };
    auto size = octal(h.substr(124, 12));
    if (!size) throw RulesetError(RulesetError::bad_request, "tar: bad header at byte " + std::to_string(off));
    char type = h[156];
    std::string name = cstr(0, 100);
    if (h.substr(257, 5) == "ustar") {
      std::string prefix = cstr(345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    if (!long_name.empty()) {
      name = long_name;
      long_name.clear();
    }
    size_t data = off + 512;
    if (*size > tar.size() - data) throw RulesetError(RulesetError::bad_request, "tar: truncated member " + name.substr(0, 100));
    std::string_view body = tar.substr(data, *size);
    off = data + ((*size + 511) / 512) * 512;
    if (type == 'L') {  // GNU long name
      if (*size > 4096) throw RulesetError(RulesetError::bad_request, "tar: long name too long");
      long_name = std::string(body.substr(0, body.find('\0')));
      continue;
    }
    if (type == 'x' || type == 'g' || type == '5') continue;  // pax headers, directories
    if (type != '0' && type != '\0')
      throw RulesetError(RulesetError::bad_request, "tar: " + name.substr(0, 100) + ": only regular files and directories are accepted");
    while (name.rfind("./", 0) == 0) name = name.substr(2);
    if (out.size() >= lim.max_files) throw RulesetError(RulesetError::bad_request, "tar: more than " + std::to_string(lim.max_files) + " files");
    total += body.size();
    if (total > lim.max_total_bytes) throw RulesetError(RulesetError::bad_request, "tar: more than " + std::to_string(lim.max_total_bytes) + " bytes");
    out[name] = std::string(body);
  }
  return out;
}

json Version::to_json() const {
  json j = {{"version", version},
            {"created_us", created_us},
            {"created_by", created_by},
            {"origin", origin},
            {"state", state},
            {"sha256", sha256},
            {"source_sha256", source_sha256},
            {"artifact_bytes", artifact_bytes},
            {"rules", {{"defined", rules_defined}, {"active", rules_active}, {"refused", rules_refused}, {"eval", rules_eval}}},
            {"compile_seconds", compile_seconds},
            {"files", files},
            {"policy_revision", policy_revision},
            {"activated_us", activated_us},
            {"activate_when_compiled", activate_when_compiled}};
  j["error"] = error.empty() ? json() : json(error);
  return j;
}

RulesetService::RulesetService(db::Db& db, Options opts, PolicySource policy, audit::Hook audit)
    : db_(db), opts_(std::move(opts)), policy_(std::move(policy)), audit_(std::move(audit)) {
  db_.migrate("rulesets", kMigrations);
  fs::create_directories(opts_.dir);
  db_.exec("SELECT id FROM ruleset_versions WHERE state = 'compiling' ORDER BY id", {},
           [&](const db::Row& r) { queue_.push_back(r.i64(0)); });
  if (opts_.start_worker) thread_ = std::thread([this] { worker(); });
}

RulesetService::~RulesetService() {
  {
    std::lock_guard g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string RulesetService::artifact_path(int64_t version) const {
  return (fs::absolute(opts_.dir) / ("v" + std::to_string(version)) / "ruleset.art").lexically_normal().string();
}

CheckResult RulesetService::check_dir(const std::string& dir) {
  CheckResult out;
  rules::RuleSource src = rules::parse_paths({dir});
  std::string prefix = dir + "/";
  for (const auto& d : src.errors) {
    std::string file = d.file.rfind(prefix, 0) == 0 ? d.file.substr(prefix.size()) : d.file;
    std::string reason = d.reason;
    size_t p;
    while ((p = reason.find(prefix)) != std::string::npos) reason.erase(p, prefix.size());
    out.errors.push_back(file + ":" + std::to_string(d.line) + ": " + reason);
  }
  out.rules = src.rules.size();
  out.lists = src.lists.size();
  return out;
}

CheckResult RulesetService::check(const PackFiles& files) {
  std::string why = pack_files_problem(files, opts_.limits);
  if (!why.empty()) throw RulesetError(RulesetError::bad_request, why);
  CheckResult out;
  out.errors = reference_problems(files);
  if (!out.errors.empty()) return out;
  fs::path tmp = fs::path(opts_.dir) / "tmp" / ("check-" + random_hex(8));
  try {
    materialise(tmp, files, policy_ ? policy_().second : std::string());
    out = check_dir(tmp.string());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return out;
}

int64_t RulesetService::upload(const PackFiles& files, const std::string& who, int64_t now_us,
                               bool activate_when_compiled, CheckResult* check_out) {
  CheckResult c = check(files);
  if (check_out) *check_out = c;
  if (!c.ok()) throw RulesetError(RulesetError::bad_request, "the packs have " + std::to_string(c.errors.size()) + " error(s)");
  int64_t v = create(files, "upload", who, now_us, activate_when_compiled);
  if (audit_)
    audit_(who, "rules.upload", "v" + std::to_string(v),
           {{"files", files.size()}, {"rules", c.rules}, {"activate_when_compiled", activate_when_compiled}}, now_us);
  return v;
}

int64_t RulesetService::policy_changed(const std::string& who, int64_t now_us, bool activate_when_compiled) {
  std::optional<int64_t> base = active();
  if (!base) base = db_.query_i64("SELECT id FROM ruleset_versions ORDER BY id DESC LIMIT 1");
  PackFiles packs;
  if (base)
    db_.exec("SELECT name, body FROM ruleset_files WHERE version = ? ORDER BY name", {*base}, [&](const db::Row& r) {
      std::string name = r.text(0);
      if (name.rfind("packs/", 0) == 0) packs[name.substr(6)] = r.text(1);
    });
  return create(packs, "policy", who, now_us, activate_when_compiled);
}

int64_t RulesetService::create(const PackFiles& packs, const std::string& origin, const std::string& who,
                               int64_t now_us, bool activate_when_compiled) {
  auto [revision, text] = policy_ ? policy_() : std::pair<int64_t, std::string>{0, ""};
  int64_t v = 0;
  {
    db::Transaction tx(db_);
    std::optional<int64_t> id = db_.query_i64(
        "INSERT INTO ruleset_versions (created_us, created_by, origin, state, files, policy_revision, "
        "activate_when_compiled) VALUES (?, ?, ?, 'compiling', ?, ?, ?) RETURNING id",
        {now_us, who, origin, static_cast<int64_t>(packs.size()), revision, int64_t(activate_when_compiled ? 1 : 0)});
    if (!id) throw db::StoreError("ruleset version: no id returned");
    v = *id;
    for (const auto& [name, body] : packs)
      db_.exec("INSERT INTO ruleset_files (version, name, body) VALUES (?, ?, ?)", {v, "packs/" + name, db::Blob{body}});
    db_.exec("INSERT INTO ruleset_files (version, name, body) VALUES (?, ?, ?)",
             {v, std::string("policy/policy.cf"), db::Blob{text}});
    fs::path src = fs::path(opts_.dir) / ("v" + std::to_string(v)) / "src";
    std::error_code ec;
    fs::remove_all(src, ec);  // a leftover of a rolled-back transaction with the same id
    materialise(src, packs, text);
    tx.commit();
  }
  {
    std::lock_guard g(mu_);
    queue_.push_back(v);
  }
  cv_.notify_all();
  return v;
}

void RulesetService::compile(int64_t v) {
  fs::path dir = fs::path(opts_.dir) / ("v" + std::to_string(v));
  auto t0 = std::chrono::steady_clock::now();
  std::string error;
  rules::CompileReport rep;
  std::string art;
  try {
    if (!fs::exists(dir / "src")) {
      // Sources on another machine's disk (shared PostgreSQL): rebuild them from the database.
      db_.exec("SELECT name, body FROM ruleset_files WHERE version = ?", {v}, [&](const db::Row& r) {
        std::string name = r.text(0);
        if (safe_relative(name)) write_file(dir / "src" / name, r.text(1));
      });
    }
    CheckResult c = check_dir((dir / "src").string());
    if (!c.ok()) {
      error = c.errors.front() + (c.errors.size() > 1 ? " (and " + std::to_string(c.errors.size() - 1) + " more)" : "");
    } else {
      rules::RuleSource src = rules::parse_paths({(dir / "src").string()});
      rules::CompileOptions opts;
      opts.version = "v" + std::to_string(v);
      std::vector<rules::Diagnostic> errs;
      if (!rules::compile_ruleset(src, opts, art, rep, errs))
        error = errs.empty() ? "compile failed" : errs.front().text();
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!error.empty()) {
    db_.exec("UPDATE ruleset_versions SET state = 'failed', error = ?, compile_seconds = ? WHERE id = ?", {error, secs, v});
    std::cerr << "sekisho-control: ruleset v" << v << ": " << error << "\n";
    return;
  }
  write_file(artifact_path(v), art);
  int64_t defined = 0, active = 0, refused = 0, eval = 0;
  for (auto& [k, n] : rep.defined) defined += n;
  for (auto& [k, n] : rep.active) active += n;
  for (auto& [k, n] : rep.refused_by_reason) refused += n;
  for (auto& [k, n] : rep.eval) eval += n;
  json report = {{"refused_by_reason", rep.refused_by_reason}, {"eval_by_reason", rep.eval_by_reason},
                 {"databases", rep.databases}, {"pcre_confirmed", rep.pcre_confirmed}, {"pcre_counted", rep.pcre_counted},
                 {"version", rep.version}};
  json refused_rules = json::array();
  for (auto& [rule, why] : rep.refused)
    if (refused_rules.size() < 500) refused_rules.push_back({{"rule", rule}, {"reason", why}});
  report["refused"] = refused_rules;
  db_.exec(
      "UPDATE ruleset_versions SET state = 'compiled', error = NULL, sha256 = ?, source_sha256 = ?, artifact_bytes = ?,"
      " rules_defined = ?, rules_active = ?, rules_refused = ?, rules_eval = ?, compile_seconds = ?, report = ? WHERE id = ?",
      {sha256_hex(art), rep.sha256, static_cast<int64_t>(art.size()), defined, active, refused, eval, secs, report.dump(), v});
}

void RulesetService::worker() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    int64_t v = queue_.front();
    queue_.pop_front();
    compiling_ = v;
    lock.unlock();
    try {
      compile(v);
      std::optional<Version> ver = get(v);
      if (ver && ver->state == "compiled" && ver->activate_when_compiled) {
        try {
          activate(v, ver->created_by, std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::system_clock::now().time_since_epoch()).count());
        } catch (const std::exception& e) {
          db_.exec("UPDATE ruleset_versions SET error = ? WHERE id = ?", {std::string("activation failed: ") + e.what(), v});
        }
      }
    } catch (const std::exception& e) {
      std::cerr << "sekisho-control: ruleset v" << v << ": " << e.what() << "\n";
    }
    lock.lock();
    compiling_ = 0;
    cv_.notify_all();
  }
}

void RulesetService::run_pending() {
  for (;;) {
    int64_t v;
    {
      std::lock_guard g(mu_);
      if (queue_.empty()) return;
      v = queue_.front();
      queue_.pop_front();
    }
    compile(v);
    std::optional<Version> ver = get(v);
    if (ver && ver->state == "compiled" && ver->activate_when_compiled) {
      try {
        activate(v, ver->created_by, ver->created_us);
      } catch (const std::exception& e) {
        db_.exec("UPDATE ruleset_versions SET error = ? WHERE id = ?", {std::string("activation failed: ") + e.what(), v});
      }
    }
  }
}

bool RulesetService::wait_compiled(int64_t version, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::optional<Version> v = get(version);
    bool queued;
    {
      std::lock_guard g(mu_);
      queued = compiling_ == version || std::find(queue_.begin(), queue_.end(), version) != queue_.end();
    }
    if (!v || (v->state != "compiling" && !queued)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
}

std::vector<Version> RulesetService::list(int64_t limit) {
  std::vector<Version> out;
  db_.exec(std::string("SELECT ") + kVersionColumns + " FROM ruleset_versions ORDER BY id DESC LIMIT ?", {limit},
           [&](const db::Row& r) { out.push_back(version_of(r)); });
  return out;
}

std::optional<Version> RulesetService::get(int64_t version) {
  std::optional<Version> out;
  db_.exec(std::string("SELECT ") + kVersionColumns + " FROM ruleset_versions WHERE id = ?", {version},
           [&](const db::Row& r) { out = version_of(r); });
  return out;
}

std::vector<std::string> RulesetService::file_names(int64_t version) {
  std::vector<std::string> out;
  db_.exec("SELECT name FROM ruleset_files WHERE version = ? ORDER BY name", {version},
           [&](const db::Row& r) { out.push_back(r.text(0)); });
  return out;
}

std::optional<int64_t> RulesetService::active() {
  return db_.query_i64("SELECT id FROM ruleset_versions WHERE state = 'active' ORDER BY id DESC LIMIT 1");
}

ActivationResult RulesetService::activate(int64_t version, const std::string& who, int64_t now_us) {
  std::lock_guard g(activate_mu_);
  return activate_locked(version, who, now_us, "activate", std::nullopt);
}

ActivationResult RulesetService::rollback(const std::string& who, int64_t now_us) {
  std::lock_guard g(activate_mu_);
  std::optional<int64_t> cur = active();
  if (!cur) throw RulesetError(RulesetError::conflict, "no version is active");
  std::optional<int64_t> prev;
  bool found = false;
  db_.exec("SELECT previous FROM ruleset_activations WHERE version = ? ORDER BY id DESC LIMIT 1", {*cur},
           [&](const db::Row& r) {
             found = true;
             if (!r.null(0)) prev = r.i64(0);
           });
  if (!found || !prev) throw RulesetError(RulesetError::conflict, "no earlier version to roll back to");
  std::optional<int64_t> before;
  db_.exec("SELECT previous FROM ruleset_activations WHERE version = ? ORDER BY id DESC LIMIT 1", {*prev},
           [&](const db::Row& r) {
             if (!r.null(0)) before = r.i64(0);
           });
  return activate_locked(*prev, who, now_us, "rollback", before.value_or(0));
}

ActivationResult RulesetService::activate_locked(int64_t version, const std::string& who, int64_t now_us,
                                                 const std::string& kind, std::optional<int64_t> previous_override) {
  std::optional<Version> v = get(version);
  if (!v) throw RulesetError(RulesetError::not_found, "no ruleset version " + std::to_string(version));
  if (v->state != "compiled" && v->state != "active")
    throw RulesetError(RulesetError::conflict, "version " + std::to_string(version) + " is " + v->state +
                                                   (v->error.empty() ? "" : ": " + v->error));
  std::string path = artifact_path(version);
  if (!fs::exists(path)) throw RulesetError(RulesetError::conflict, "the artifact of version " + std::to_string(version) + " is missing on this machine");
  ActivationResult res;
  res.version = version;
  std::optional<int64_t> cur = active();
  res.previous = cur.value_or(0);
  if (opts_.telemetry) {
    try {
      link::DataplaneLink dp(*opts_.telemetry);
      res.dataplane = dp.query("/sekisho/rules", path);
    } catch (const link::LinkError& e) {
      throw RulesetError(RulesetError::dataplane, std::string("dataplane: ") + e.what());
    }
    if (!res.dataplane.is_object())
      throw RulesetError(RulesetError::dataplane, "dataplane: unexpected reply " + res.dataplane.dump());
    if (res.dataplane.contains("error"))
      throw RulesetError(RulesetError::dataplane, "dataplane refused the ruleset: " + res.dataplane["error"].dump());
  }
  int64_t recorded_previous = previous_override ? *previous_override : res.previous;
  {
    db::Transaction tx(db_);
    db_.exec("UPDATE ruleset_versions SET state = 'compiled' WHERE state = 'active'");
    db_.exec("UPDATE ruleset_versions SET state = 'active', activated_us = ?, error = NULL WHERE id = ?", {now_us, version});
    db_.exec("INSERT INTO ruleset_activations (version, previous, at_us, by_user, kind) VALUES (?, ?, ?, ?, ?)",
             {version, recorded_previous ? db::Value(recorded_previous) : db::Value(), now_us, who, kind});
    tx.commit();
  }
  // DIR/active.art -> vN/ruleset.art, replaced atomically.
  fs::path link = fs::path(opts_.dir) / "active.art", tmp = fs::path(opts_.dir) / ("active.art." + random_hex(4));
  std::error_code ec;
  fs::create_symlink(fs::path("v" + std::to_string(version)) / "ruleset.art", tmp, ec);
  if (!ec) fs::rename(tmp, link, ec);
  if (ec) std::cerr << "sekisho-control: cannot point " << link << " at v" << version << ": " << ec.message() << "\n";
  if (audit_)
    audit_(who, kind == "rollback" ? "rules.rollback" : "rules.activate", "v" + std::to_string(version),
           {{"previous", res.previous ? json(res.previous) : json()}, {"dataplane", res.dataplane}}, now_us);
  return res;
}

}  // namespace sekisho::control::rulesets
