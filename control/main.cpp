// sekisho-control -c sekisho.conf: ingests the dataplane's event journal
// into the tracking log every ingest_interval_ms and serves the HTTP API.
//
// Threads: one ingester (its own database connection, so a long search
// never delays ingestion), http_threads running the io_context (sharing a
// second connection). SIGINT/SIGTERM stop both; a pass in progress ends
// first (it commits or rolls back whole batches).
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <condition_variable>
#include <cstring>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "auth/admin_cli.hpp"
#include "auth/auth.hpp"
#include "config/control_config.hpp"
#include "http/api.hpp"
#include "http/server.hpp"
#include "ingest/journal_ingest.hpp"
#include "web/pages.hpp"
#include "store/db.hpp"
#include "store/sql_store.hpp"

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

// Runs passes until stopped; errors are reported and the next pass retries.
class IngestLoop {
 public:
  IngestLoop(const config::ControlConfig& c, store::Store& s)
      : ingester_(c.journal, s), interval_(c.ingest_interval_ms) {}
  void run() {
    std::string last_error;
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      try {
        ingest::IngestStats st = ingester_.pass();
        if (st.events_new || st.bad_lines || st.abandoned_tails)
          std::cerr << "sekisho-control: ingested " << st.events_new << " events (" << st.events_seen
                    << " already stored, " << st.bad_lines << " bad lines)\n";
        last_error.clear();
      } catch (const std::exception& e) {
        if (last_error != e.what()) std::cerr << "sekisho-control: ingest: " << e.what() << "\n";
        last_error = e.what();
      }
      lock.lock();
      cv_.wait_for(lock, interval_, [&] { return stop_; });
    }
  }
  void stop() {
    std::lock_guard g(mu_);
    stop_ = true;
    cv_.notify_all();
  }

 private:
  ingest::JournalIngester ingester_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

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
    return auth::run_admin_command(cfg.database, command, std::cin, std::cout, std::cerr);
  }

  try {
    // One connection for the ingester, one for the HTTP threads.
    std::unique_ptr<store::Db> ingest_db = store::open_db(cfg.database);
    std::unique_ptr<store::Db> http_db = store::open_db(cfg.database);
    store::SqlStore ingest_store(*ingest_db);
    store::SqlStore http_store(*http_db);
    IngestLoop loop(cfg, ingest_store);

    http::Router router;
    http::add_log_routes(router, http_store);
    // Login, sessions, CSRF, API tokens; the admin pages.
    auth::AuthOptions auth_opt;
    auth_opt.https = !cfg.tls_certificate.empty();
    auth::Auth authn(*http_db, auth_opt);
    authn.add_routes(router);
    web::add_web_routes(router);
    router.set_authenticator(authn.authenticator());

    boost::asio::io_context ioc(cfg.http_threads);
    std::optional<http::Server> server;
    try {
      http::ServerOptions opt;
      opt.timeout = std::chrono::seconds(cfg.http_timeout_s);
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
