// sekisho-control -c sekisho.conf: ingests the dataplane's event journal
// into the tracking log every ingest_interval_ms (ingest/ingest_loop.hpp)
// and serves the HTTP API: each domain's routes mounted on one Router.
//
// Threads: one ingester (its own database connection, so a long search
// never delays ingestion), http_threads running the io_context (sharing a
// second connection). SIGINT/SIGTERM stop both; a pass in progress ends
// first (it commits or rolls back whole batches).
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>
#include <thread>
#include <vector>

#include "control/audit/audit.hpp"
#include "control/audit/audit_key.hpp"
#include "control/auth/admin_cli.hpp"
#include "control/auth/auth.hpp"
#include "control/config/control_config.hpp"
#include "control/db/db.hpp"
#include "control/http/server.hpp"
#include "control/ingest/ingest_loop.hpp"
#include "control/link/dataplane_link.hpp"
#include "control/notify/notifier.hpp"
#include "control/policy/policy_api.hpp"
#include "control/policy/policy_store.hpp"
#include "control/quarantine/quarantine_api.hpp"
#include "control/rulesets/rulesets_api.hpp"
#include "control/tracking/sql_store.hpp"
#include "control/tracking/tracking_api.hpp"
#include "control/web/pages.hpp"

namespace {

using namespace sekisho::control;

int usage(int rc) {
  (rc ? std::cerr : std::cout) << "usage: sekisho-control -c FILE\n"
                                  "  Reads the 'control' group of FILE (libconfig), ingests the event journal\n"
                                  "  and serves the HTTP API (/api/log, /api/log.csv, /metrics).\n"
                                  "       sekisho-control -c FILE user add|passwd|disable|enable|list ...\n"
                                  "       sekisho-control -c FILE token create|revoke|list ...\n"
                                  "  Manages users and API tokens (see control/README.md).\n";
  return rc;
}

quarantine::Options quarantine_options(const config::ControlConfig& cfg) {
  quarantine::Options o;
  o.spool_dir = cfg.spool;
  o.retention_s = int64_t(cfg.quarantine_retention_days) * 86400;
  o.relay_host = cfg.release_endpoint.host;
  o.relay_port = cfg.release_endpoint.port;
  o.smtp.helo = cfg.release_helo;
  o.smtp.timeout = std::chrono::seconds(cfg.release_timeout_s);
  o.smtp.tls = cfg.release_tls == "off"       ? smtp::TlsMode::off
               : cfg.release_tls == "require" ? smtp::TlsMode::require
                                              : smtp::TlsMode::opportunistic;
  if (!cfg.dataplane_socket.empty()) {
    std::string sock = cfg.dataplane_socket;
    o.announce_release = [sock](const std::string& sha) -> std::string {
      try {
        nlohmann::json r = link::DataplaneLink(sock).query("/sekisho/release", sha + ",600");
        if (r.is_object() && r.contains("error")) return r["error"].dump();
        if (!r.is_object() || !r.contains("release")) return "unexpected reply " + r.dump();
        return "";
      } catch (const std::exception& e) {
        return e.what();
      }
    };
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  std::string conf;
  std::vector<std::string> command;  // "user add NAME ...", "token create NAME" (auth/admin_cli.hpp)
  for (int i = 1; i < argc; ++i) {
    if ((!std::strcmp(argv[i], "-c") || !std::strcmp(argv[i], "--config")) && i + 1 < argc) conf = argv[++i];
    else if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) return usage(0);
    else if (argv[i][0] != '-') {
      command.assign(argv + i, argv + argc);
      break;
    } else return usage(2);
  }
  if (conf.empty()) return usage(2);

  config::ControlConfig cfg;
  try {
    cfg = config::load_control_config(conf);
  } catch (const config::ConfigError& e) {
    std::cerr << "sekisho-control: " << e.what() << "\n";
    return 2;
  }
  if (!command.empty()) {
    if (!auth::is_admin_command(command)) return usage(2);
    // User and token changes are audited like those made over the API.
    std::unique_ptr<db::Db> audit_db;
    std::optional<audit::AuditLog> audit;
    try {
      audit_db = db::open_db(cfg.database);
      audit.emplace(*audit_db, audit::load_or_create_key(cfg.audit_key), cfg.audit_anchor);
    } catch (const std::exception& e) {
      std::cerr << "sekisho-control: " << e.what() << "\n";
      return 1;
    }
    return auth::run_admin_command(cfg.database, command, std::cin, std::cout, std::cerr,
                                   [&audit](const std::string& actor, const std::string& action,
                                            const std::string& target, const nlohmann::json& details,
                                            int64_t now_us) { audit->append(actor, action, target, details, now_us); });
  }

  try {
    // One connection for the ingester, one for the HTTP threads.
    std::unique_ptr<db::Db> ingest_db = db::open_db(cfg.database);
    std::unique_ptr<db::Db> http_db = db::open_db(cfg.database);
    tracking::SqlStore ingest_store(*ingest_db);
    tracking::SqlStore http_store(*http_db);
    // Quarantine: the ingester's connection takes the spool and expires;
    // the HTTP connection lists, views, releases and deletes.
    quarantine::Options qopt = quarantine_options(cfg);
    quarantine::Quarantine ingest_quarantine(*ingest_db, qopt);
    quarantine::Quarantine http_quarantine(*http_db, qopt);
    audit::AuditLog audit(*http_db, audit::load_or_create_key(cfg.audit_key), cfg.audit_anchor);
    // Notifications of policy decisions, on the ingester's connection.
    policy::PolicyStore ingest_policies(*ingest_db);
    notify::Options nopt;
    nopt.relay_host = cfg.notify_endpoint.host;
    nopt.relay_port = cfg.notify_endpoint.port;
    nopt.from = cfg.notify_from;
    nopt.message_id_domain = cfg.notify_from.substr(cfg.notify_from.find('@') + 1);
    nopt.smtp = qopt.smtp;
    notify::Notifier notifier(*ingest_db, ingest_policies, nopt);
    ingest::IngestLoop loop(cfg.journal, std::chrono::milliseconds(cfg.ingest_interval_ms), ingest_store,
                            &ingest_quarantine, &notifier);

    http::Router router;
    tracking::add_log_routes(router, http_store);
    quarantine::add_quarantine_routes(router, http_quarantine, &audit);
    // Policy, notification templates and ruleset versions, on a connection of
    // their own (the background compiler writes to it).
    std::unique_ptr<db::Db> rules_db = db::open_db(cfg.database);
    policy::PolicyStore policies(*rules_db);
    audit::Hook audit_hook = [&audit](const std::string& actor, const std::string& action, const std::string& target,
                                              const nlohmann::json& details, int64_t now_us) {
      audit.append(actor, action, target, details, now_us);
    };
    rulesets::Options ruleset_opt;
    ruleset_opt.dir = cfg.rulesets_dir;
    if (!cfg.dataplane_socket.empty()) ruleset_opt.telemetry = cfg.dataplane_socket;
    ruleset_opt.limits.max_total_bytes = size_t(cfg.rulesets_max_upload_mb) << 20;
    rulesets::RulesetService ruleset_service(
        *rules_db, ruleset_opt,
        [&policies] {
          policy::PolicyRevision r = policies.current();
          return std::pair<int64_t, std::string>{r.id, policy::compile_policy(r.policy)};
        },
        audit_hook);
    rulesets::add_ruleset_routes(router, ruleset_service);
    policy::add_policy_routes(
        router, policies,
        [&ruleset_service](const std::string& actor, int64_t now_us, bool activate) {
          return ruleset_service.policy_changed(actor, now_us, activate);
        },
        audit_hook);
    // Login, sessions, CSRF, API tokens; the admin pages.
    auth::AuthOptions auth_opt;
    auth_opt.https = !cfg.tls_certificate.empty();
    auth::Auth authn(*http_db, auth_opt, audit_hook);
    authn.add_routes(router);
    web::add_web_routes(router);
    router.set_authenticator(authn.authenticator());

    boost::asio::io_context ioc(cfg.http_threads);
    std::optional<http::Server> server;
    try {
      http::ServerOptions opt;
      opt.timeout = std::chrono::seconds(cfg.http_timeout_s);
      // Rule pack uploads (JSON-escaped text is a little larger than the files).
      opt.body_limit = std::max(opt.body_limit, (size_t(cfg.rulesets_max_upload_mb) << 20) / 4 * 5);
      if (!cfg.tls_certificate.empty()) {
        try {
          opt.tls = http::make_tls_context(cfg.tls_certificate, cfg.tls_key);
        } catch (const http::TlsError& e) {
          bool cert = e.which == http::TlsError::Which::certificate;
          std::cerr << "sekisho-control: " << cfg.file << ":" << (cert ? cfg.tls_certificate_line : cfg.tls_key_line)
                    << ": " << e.what() << "\n";
          return 2;
        }
      }
      server.emplace(ioc, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(cfg.listen_address),
                                                          cfg.listen_port),
                     router, opt);
    } catch (const boost::system::system_error& e) {
      std::cerr << "sekisho-control: " << cfg.file << ":" << cfg.listen_line << ": cannot listen on "
                << cfg.listen_address << ":" << cfg.listen_port << ": " << e.code().message() << "\n";
      return 1;
    }
    server->start();
    auto ep = server->local_endpoint();
    std::cerr << "sekisho-control: listening on " << (cfg.tls_certificate.empty() ? "http" : "https") << "://" << (ep.address().is_v6() ? "[" : "")
              << ep.address().to_string() << (ep.address().is_v6() ? "]" : "") << ":" << ep.port()
              << ", journal " << cfg.journal << ", database " << cfg.database << "\n";

    boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      std::cerr << "sekisho-control: " << strsignal(sig) << ", stopping\n";
      loop.stop();
      ioc.stop();
    });

    std::thread ingest_thread([&] { loop.run(); });
    std::vector<std::thread> http_threads;
    for (int i = 1; i < cfg.http_threads; ++i) http_threads.emplace_back([&] { ioc.run(); });
    ioc.run();
    for (auto& t : http_threads) t.join();
    loop.stop();
    ingest_thread.join();
  } catch (const std::exception& e) {
    std::cerr << "sekisho-control: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
