// sekishoctl's client of sekisho-control's HTTP API (Boost.Beast, sync):
// http:// and https:// base URLs, Authorization: Bearer TOKEN, JSON in and
// out, a deadline per request.
//
// Where it points: --url URL (or SEKISHO_URL, default
// http://127.0.0.1:8025); the token: --token TOKEN (or SEKISHO_TOKEN).
// HTTPS verifies the server certificate against the system's CAs, or
// --ca FILE (SEKISHO_CA); --insecure skips verification (test setups).
//
// Errors: request() throws CtlError for transport failures (cannot
// connect, TLS, timeout); HTTP error statuses are returned, and
// error_text() gives the server's {"error": ...} reason.
//
// Thread-safety: a Client is used by one thread.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace sekisho::ctl {

class CtlError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct HttpResult {
  int status = 0;
  std::string body;
  std::string content_type;
  bool ok() const { return status >= 200 && status < 300; }
  // The server's {"error": "..."} reason, or the status and body.
  std::string error_text() const;
};

class Client {
 public:
  // Takes --url, --token, --ca, --insecure (and their values) out of args;
  // the rest stays. Throws CtlError on a malformed URL.
  static Client from_args(std::vector<std::string>& args);

  Client(std::string url, std::string token);

  // method: "GET", "POST", "PUT", "DELETE"; target: "/api/..." with query.
  HttpResult request(const std::string& method, const std::string& target, const std::string& body = "",
                     const std::string& content_type = "application/json") const;

  const std::string& url() const { return url_; }
  std::chrono::seconds timeout{120};
  std::string ca_file;
  bool insecure = false;

 private:
  std::string url_, token_;
  bool tls_ = false;
  std::string host_, port_, prefix_;
};

// Percent-encodes a query value.
std::string url_encode(const std::string& s);

}  // namespace sekisho::ctl
