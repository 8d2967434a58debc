#include "tools/sekishoctl/control_cmds.hpp"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "control/audit/audit.hpp"
#include "tools/sekishoctl/ctl_http.hpp"
#include "control/config/control_config.hpp"
#include "control/db/db.hpp"

namespace sekisho::ctl {

namespace {

int audit_usage() {
  std::cerr << "usage: sekishoctl audit verify -c CONF\n"
               "       sekishoctl audit list -c CONF [--limit N]\n";
  return 2;
}

}  // namespace

int run_audit(const std::vector<std::string>& args) {
  if (args.empty()) return audit_usage();
  std::string conf;
  long limit = 50;
  for (size_t i = 1; i < args.size(); ++i) {
    if ((args[i] == "-c" || args[i] == "--config") && i + 1 < args.size()) conf = args[++i];
    else if (args[i] == "--limit" && i + 1 < args.size()) {
      try {
        limit = std::stol(args[++i]);
      } catch (...) {
        return audit_usage();
      }
      if (limit < 1 || limit > 100000) return audit_usage();
    } else return audit_usage();
  }
  if (conf.empty() || (args[0] != "verify" && args[0] != "list")) return audit_usage();
  try {
    auto cfg = control::config::load_control_config(conf);
    std::ifstream kf(cfg.audit_key, std::ios::binary);
    if (!kf) {
      std::cerr << "sekishoctl: cannot read the audit key " << cfg.audit_key << "\n";
      return 1;
    }
    std::stringstream key;
    key << kf.rdbuf();
    auto db = control::db::open_db(cfg.database);
    control::audit::AuditLog log(*db, key.str(), cfg.audit_anchor);
    if (args[0] == "list") {
      for (const auto& e : log.list(limit))
        std::cout << e.seq << "\t" << e.ts_us << "\t" << e.actor << "\t" << e.action << "\t" << e.target << "\t"
                  << e.details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      return 0;
    }
    control::audit::VerifyResult v = log.verify();
    if (v.ok) {
      std::cout << "audit log " << db->name() << ": " << v.entries << " entries, chain intact, ok\n";
      return 0;
    }
    std::cout << "audit log " << db->name() << ": " << v.entries << " entries, NOT intact:\n";
    for (const auto& p : v.problems) std::cout << "  " << p << "\n";
    return 1;
  } catch (const control::config::ConfigError& e) {
    std::cerr << "sekishoctl: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "sekishoctl: " << e.what() << "\n";
    return 1;
  }
}

namespace {

using nlohmann::json;

int api_usage() {
  std::cerr << "usage: sekishoctl log search [FILTER=VALUE]... [--csv|--json] [--limit N] [--offset N]\n"
               "         filters: q sender rcpt from subject verdict since until (sender=<> is the null sender)\n"
               "       sekishoctl quarantine list [FILTER=VALUE]... [--json] [--limit N] [--offset N]\n"
               "         filters: q sender rcpt category state\n"
               "       sekishoctl quarantine show ID\n"
               "       sekishoctl quarantine release ID [--relay]\n"
               "       sekishoctl quarantine delete ID\n"
               "  common: --url URL (SEKISHO_URL) --token TOKEN (SEKISHO_TOKEN) --ca FILE --insecure\n";
  return 2;
}

// One line of text for a table cell: control characters shown as spaces.
std::string cell(const json& v) {
  std::string s = v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump();
  for (char& c : s)
    if ((unsigned char)c < 0x20 || c == 0x7f) c = ' ';
  return s;
}

std::string joined(const json& a) {
  std::string o;
  if (!a.is_array()) return cell(a);
  for (const auto& x : a) o += (o.empty() ? "" : ",") + cell(x);
  return o;
}

// FILTER=VALUE words and --limit/--offset into a query string.
bool query_of(std::vector<std::string>& words, const std::vector<std::string>& filters, std::string& query,
              bool& as_json, bool* as_csv) {
  std::vector<std::string> rest;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w == "--json") as_json = true;
    else if (as_csv && w == "--csv") *as_csv = true;
    else if ((w == "--limit" || w == "--offset") && i + 1 < words.size())
      query += (query.empty() ? "?" : "&") + w.substr(2) + "=" + url_encode(words[++i]);
    else if (size_t eq = w.find('='); eq != std::string::npos && eq > 0) {
      std::string k = w.substr(0, eq);
      bool known = false;
      for (const auto& f : filters) known = known || f == k;
      if (!known) {
        std::cerr << "sekishoctl: unknown filter '" << k << "'\n";
        return false;
      }
      query += (query.empty() ? "?" : "&") + k + "=" + url_encode(w.substr(eq + 1));
    } else rest.push_back(w);
  }
  words = rest;
  return true;
}

int fail(const HttpResult& r) {
  std::cerr << "sekishoctl: " << r.error_text() << "\n";
  return 1;
}

}  // namespace

int run_log(const std::vector<std::string>& args_in) {
  std::vector<std::string> args = args_in;
  try {
    Client c = Client::from_args(args);
    if (args.empty() || args[0] != "search") return api_usage();
    args.erase(args.begin());
    std::string query;
    bool as_json = false, as_csv = false;
    if (!query_of(args, {"q", "sender", "rcpt", "from", "subject", "verdict", "since", "until"}, query, as_json,
                  &as_csv) ||
        !args.empty())
      return api_usage();
    HttpResult r = c.request("GET", std::string(as_csv ? "/api/log.csv" : "/api/log") + query);
    if (!r.ok()) return fail(r);
    if (as_csv || as_json) {
      std::cout << r.body;
      return 0;
    }
    json j = json::parse(r.body);
    std::cout << "time\tsender\trecipient\tfrom\tverdict\tsubject\n";
    for (const auto& row : j["rows"])
      std::cout << cell(row["time"]) << "\t" << cell(row["sender"]) << "\t" << cell(row["recipient"]) << "\t"
                << cell(row["from"]) << "\t" << cell(row["verdict"]["action"])
                << (row["verdict"]["rule"].is_string() ? " (" + cell(row["verdict"]["rule"]) + ")" : "") << "\t"
                << cell(row["subject"]) << "\n";
    std::cerr << j["rows"].size() << " of " << j["total"] << " rows\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "sekishoctl: " << e.what() << "\n";
    return 1;
  }
}

int run_quarantine(const std::vector<std::string>& args_in) {
  std::vector<std::string> args = args_in;
  try {
    Client c = Client::from_args(args);
    if (args.empty()) return api_usage();
    std::string cmd = args[0];
    args.erase(args.begin());
    if (cmd == "list") {
      std::string query;
      bool as_json = false;
      if (!query_of(args, {"q", "sender", "rcpt", "category", "state"}, query, as_json, nullptr) || !args.empty())
        return api_usage();
      HttpResult r = c.request("GET", "/api/quarantine" + query);
      if (!r.ok()) return fail(r);
      if (as_json) {
        std::cout << r.body;
        return 0;
      }
      json j = json::parse(r.body);
      std::cout << "id\tstate\tcategory\tsender\trecipients\tsubject\n";
      for (const auto& row : j["rows"])
        std::cout << cell(row["id"]) << "\t" << cell(row["state"]) << "\t" << cell(row["category"]) << "\t"
                  << cell(row["sender"]) << "\t" << joined(row["recipients"]) << "\t" << cell(row["subject"]) << "\n";
      std::cerr << j["rows"].size() << " of " << j["total"] << " held messages listed\n";
      return 0;
    }
    if (args.empty()) return api_usage();
    std::string id = args[0];
    args.erase(args.begin());
    if (cmd == "show" && args.empty()) {
      HttpResult r = c.request("GET", "/api/quarantine/" + url_encode(id));
      if (!r.ok()) return fail(r);
      json j = json::parse(r.body);
      for (const char* k : {"id", "state", "category", "rule", "sender", "from", "subject", "size", "server"})
        std::cout << k << ": " << cell(j[k]) << "\n";
      std::cout << "recipients: " << joined(j["recipients"]) << "\n";
      std::cout << "--- headers\n";
      for (const auto& h : j["headers"]) std::cout << cell(h[0]) << ": " << cell(h[1]) << "\n";
      std::cout << "--- text\n" << (j["text"].is_string() ? j["text"].get<std::string>() : "") << "\n";
      return 0;
    }
    if (cmd == "release" && (args.empty() || (args.size() == 1 && args[0] == "--relay"))) {
      json body = json::object();
      if (!args.empty()) body["relay"] = true;
      HttpResult r = c.request("POST", "/api/quarantine/" + url_encode(id) + "/release", body.dump());
      if (!r.ok()) return fail(r);
      json j = json::parse(r.body);
      std::cout << id << ": released to " << cell(j["release"]["target"])
                << (j["release"]["tls"].is_boolean() && j["release"]["tls"].get<bool>() ? " (TLS)" : "") << "\n";
      for (const auto& x : j["release"]["smtp"])
        std::cout << "  " << cell(x["rcpt"]) << ": " << cell(x["code"]) << " " << cell(x["text"]) << "\n";
      std::cout << "  end of data: " << cell(j["release"]["final"]["code"]) << " " << cell(j["release"]["final"]["text"])
                << "\n";
      return 0;
    }
    if (cmd == "delete" && args.empty()) {
      HttpResult r = c.request("POST", "/api/quarantine/" + url_encode(id) + "/delete", "{}");
      if (!r.ok()) return fail(r);
      std::cout << id << ": deleted\n";
      return 0;
    }
    return api_usage();
  } catch (const std::exception& e) {
    std::cerr << "sekishoctl: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace sekisho::ctl
