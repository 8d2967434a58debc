#include "tools/sekishoctl/rules_remote.hpp"

#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tools/sekishoctl/ctl_http.hpp"

namespace sekisho::ctl {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

int usage() {
  std::cerr << "usage: sekishoctl rules push DIR|FILE... [--activate] [--wait SECONDS]\n"
               "       sekishoctl rules activate VERSION\n"
               "       sekishoctl rules rollback\n"
               "       sekishoctl rules versions [--limit N]\n"
               "  (--url URL or SEKISHO_URL, --token TOKEN or SEKISHO_TOKEN)\n";
  return 2;
}

int refused(const HttpResult& r) {
  json j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("errors") && j["errors"].is_array()) {
    for (const auto& e : j["errors"]) {
      if (e.is_string()) std::cout << e.get<std::string>() << "\n";
      else if (e.is_object() && e.contains("text")) std::cout << e["text"].get<std::string>() << "\n";
    }
  }
  std::cerr << "sekishoctl: " << r.error_text() << "\n";
  return 1;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw CtlError("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string when(int64_t us) {
  if (!us) return "-";
  time_t s = static_cast<time_t>(us / 1000000);
  struct tm tm;
  gmtime_r(&s, &tm);
  char b[32];
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

void print_version(const json& v) {
  std::cout << "v" << v.value("version", 0) << "  " << v.value("state", std::string("?")) << "  "
            << when(v.value("created_us", int64_t(0))) << "  by " << v.value("created_by", std::string()) << "  ("
            << v.value("origin", std::string()) << ")  rules " << v["rules"].value("active", 0) << "/"
            << v["rules"].value("defined", 0) << " active";
  if (v["rules"].value("refused", 0)) std::cout << ", " << v["rules"].value("refused", 0) << " refused";
  if (v.contains("sha256") && v["sha256"].is_string() && !v["sha256"].get<std::string>().empty())
    std::cout << "  sha256 " << v["sha256"].get<std::string>().substr(0, 12);
  if (v.contains("error") && v["error"].is_string()) std::cout << "\n    error: " << v["error"].get<std::string>();
  std::cout << "\n";
}

// A ustar archive (files may hold any bytes; JSON could not carry non-UTF-8 packs).
std::string tar_of(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out;
  for (const auto& [path, data] : files) {
    std::string name = path, prefix;
    if (name.size() > 100) {
      size_t cut = name.rfind('/', 155);
      if (cut == std::string::npos || name.size() - cut - 1 > 100) throw CtlError(path + ": path too long for tar");
      prefix = name.substr(0, cut);
      name = name.substr(cut + 1);
    }
    std::string h(512, '\0');
    memcpy(h.data(), name.data(), name.size());
    snprintf(h.data() + 100, 8, "%07o", 0644);
    snprintf(h.data() + 108, 8, "%07o", 0);
    snprintf(h.data() + 116, 8, "%07o", 0);
    snprintf(h.data() + 124, 12, "%011llo", static_cast<unsigned long long>(data.size()));
    snprintf(h.data() + 136, 12, "%011o", 0);
    h[156] = '0';
    memcpy(h.data() + 257, "ustar\0" "00", 8);
    memcpy(h.data() + 345, prefix.data(), prefix.size());
    memset(h.data() + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char ch : h) sum += ch;
    snprintf(h.data() + 148, 8, "%06o", sum);
    out += h;
    out += data;
    out.append((512 - data.size() % 512) % 512, '\0');
  }
  out.append(1024, '\0');
  return out;
}

int push(Client& c, std::vector<std::string> args) {
  bool activate = false;
  long wait_s = 600;
  std::vector<std::string> paths;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--activate") activate = true;
    else if (args[i] == "--wait" && i + 1 < args.size()) {
      try {
        wait_s = std::stol(args[++i]);
      } catch (...) {
        return usage();
      }
      if (wait_s < 0 || wait_s > 86400) return usage();
    } else if (!args[i].empty() && args[i][0] == '-') return usage();
    else paths.push_back(args[i]);
  }
  if (paths.empty()) return usage();
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (auto it = fs::recursive_directory_iterator(p); it != fs::recursive_directory_iterator(); ++it) {
        std::string rel = fs::relative(it->path(), p).generic_string();
        bool hidden = false;
        for (const auto& part : fs::path(rel)) hidden = hidden || part.string().rfind('.', 0) == 0;
        if (hidden) {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file()) files.emplace_back(rel, read_all(it->path()));
      }
    } else if (fs::is_regular_file(p, ec)) {
      files.emplace_back(fs::path(p).filename().string(), read_all(p));
    } else {
      std::cerr << "sekishoctl: " << p << ": no such file or directory\n";
      return 2;
    }
  }
  HttpResult r = c.request("POST", std::string("/api/rulesets") + (activate ? "?activate=1" : ""),
                           tar_of(files), "application/x-tar");
  if (!r.ok()) return refused(r);
  json j = json::parse(r.body, nullptr, false);
  int64_t v = j.value("version", int64_t(0));
  std::cerr << "sekishoctl: uploaded " << files.size() << " files as v" << v << "; compiling\n";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  json cur;
  for (;;) {
    HttpResult g = c.request("GET", "/api/rulesets/" + std::to_string(v));
    if (!g.ok()) return refused(g);
    cur = json::parse(g.body, nullptr, false);
    std::string st = cur.value("state", std::string());
    bool settled = st == "failed" || st == "active" || (st == "compiled" && (!activate || cur["error"].is_string()));
    if (settled || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  print_version(cur);
  std::string st = cur.value("state", std::string());
  if (st == "compiling") {
    std::cerr << "sekishoctl: v" << v << " is still compiling after " << wait_s << " s (see `sekishoctl rules versions`)\n";
    return wait_s == 0 ? 0 : 1;
  }
  if (st == "failed" || (activate && st != "active")) return 1;
  return 0;
}

}  // namespace

bool is_remote_rules_command(const std::string& cmd) {
  return cmd == "push" || cmd == "activate" || cmd == "rollback" || cmd == "versions";
}

int run_remote_rules(const std::string& cmd, std::vector<std::string> args) {
  try {
    Client c = Client::from_args(args);
    if (cmd == "push") return push(c, args);
    if (cmd == "activate" || cmd == "rollback") {
      if ((cmd == "activate") != (args.size() == 1) || args.size() > 1) return usage();
      std::string target = cmd == "rollback" ? "/api/rulesets/rollback" : "/api/rulesets/" + url_encode(args[0]) + "/activate";
      HttpResult r = c.request("POST", target);
      if (!r.ok()) return refused(r);
      json j = json::parse(r.body, nullptr, false);
      std::cout << "v" << j.value("version", 0) << " active";
      if (j.value("previous", 0)) std::cout << " (was v" << j.value("previous", 0) << ")";
      if (j.contains("dataplane") && !j["dataplane"].is_null()) std::cout << "; dataplane: " << j["dataplane"].dump();
      std::cout << "\n";
      return 0;
    }
    if (cmd == "versions") {
      std::string limit = "50";
      if (args.size() == 2 && args[0] == "--limit") limit = args[1];
      else if (!args.empty()) return usage();
      HttpResult r = c.request("GET", "/api/rulesets?limit=" + url_encode(limit));
      if (!r.ok()) return refused(r);
      json j = json::parse(r.body, nullptr, false);
      for (const auto& v : j["versions"]) print_version(v);
      return 0;
    }
    return usage();
  } catch (const CtlError& e) {
    std::cerr << "sekishoctl: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "sekishoctl: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace sekisho::ctl
