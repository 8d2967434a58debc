// The `control` group of the appliance's libconfig file (the same file as
// the dataplane's; other groups are not read here):
//
//   control = {
//     listen = "127.0.0.1:8025";    # IPv4 "A.B.C.D:PORT" or "[IPv6]:PORT"
//     journal = "/var/lib/sekisho/journal";
//     database = "/var/lib/sekisho/control.db";
//     ingest_interval_ms = 1000;   # 50..60000
//     http_threads = 2;            # 1..64
//     http_timeout_s = 30;         # 1..3600, per read and write
//     tls_certificate = "/etc/sekisho/control.crt";  # PEM chain; with tls_key:
//     tls_key = "/etc/sekisho/control.key";          # HTTPS (both or neither)
//   };
//
// Errors: load_control_config() throws ConfigError whose what() reads
// "FILE:LINE: reason" (line 0 when the file cannot be read).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace sekisho::control::config {

class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, int line, const std::string& reason)
      : std::runtime_error(file + ":" + std::to_string(line) + ": " + reason), line_(line) {}
  int line() const { return line_; }

 private:
  int line_;
};

struct ControlConfig {
  std::string file;
  std::string listen_address = "127.0.0.1";  // an IP address
  uint16_t listen_port = 8025;               // 0: any free port
  int listen_line = 0;                       // for errors found later (bind)
  std::string journal = "/var/lib/sekisho/journal";
  std::string database = "/var/lib/sekisho/control.db";
  int ingest_interval_ms = 1000;
  int http_threads = 2;
  int http_timeout_s = 30;
  std::string tls_certificate, tls_key;  // "" = plain HTTP
  int tls_certificate_line = 0, tls_key_line = 0;
};

ControlConfig load_control_config(const std::string& path);

}  // namespace sekisho::control::config
