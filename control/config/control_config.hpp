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
//     spool = "/var/lib/sekisho/spool";       # the dataplane's spool ("" = none)
//     quarantine_retention_days = 30;        # 1..3650
//     release_relay = "";                    # "" = the original server, else "HOST:PORT"
//     release_tls = "opportunistic";         # off | opportunistic | require
//     release_helo = "sekisho-control";
//     release_timeout_s = 60;                # 1..600, per SMTP step
//     notify_relay = "";                     # "" = release_relay
//     notify_from = "postmaster@localhost";
//     audit_key = "/var/lib/sekisho/audit.key";       # created when missing
//     audit_anchor = "/var/lib/sekisho/audit.anchor";
//     dataplane_socket = "/var/run/dpdk/sekisho/dpdk_telemetry.v2";
//     dataplane_prefix = "sekisho";           # or this: the socket of that DPDK file prefix
//     rulesets_dir = "/var/lib/sekisho/rulesets";
//     rulesets_max_upload_mb = 32;           # 1..256
//   };
//
// Errors: load_control_config() throws ConfigError whose what() reads
// "FILE:LINE: reason" (line 0 when the file cannot be read).
#pragma once

#include <cstdint>
#include <string>

#include "common/config/settings.hpp"

namespace sekisho::control::config {

using ConfigError = common::config::ConfigError;

// An SMTP relay, parsed once here from "HOST:PORT" ("[IPv6]:PORT").
struct RelayEndpoint {
  std::string host;  // without brackets; "" = none configured
  uint16_t port = 25;
  bool empty() const { return host.empty(); }
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
  // Quarantine and release (control/quarantine/): the dataplane's spool
  // ("" = none), how long held messages are kept, where releases go ("" =
  // the original server the dataplane recorded, else "HOST:PORT"), STARTTLS
  // use (off | opportunistic | require), the EHLO name, the per-step timeout.
  std::string spool = "/var/lib/sekisho/spool";
  int quarantine_retention_days = 30;
  std::string release_relay;
  std::string release_tls = "opportunistic";
  std::string release_helo = "sekisho-control";
  int release_timeout_s = 60;
  // Notifications of policy decisions (control/notify/): the relay
  // ("HOST:PORT"; "" = release_relay; neither = recorded, not sent) and
  // the From address of the notices.
  std::string notify_relay;
  std::string notify_from = "postmaster@localhost";
  // The relays as written above, parsed: release_endpoint from
  // release_relay; notify_endpoint from notify_relay, else release_relay's.
  RelayEndpoint release_endpoint, notify_endpoint;
  // Audit log (control/audit/): the HMAC key file (created with 32 random
  // bytes, mode 0600, when missing) and the anchor file (the chain head).
  std::string audit_key = "/var/lib/sekisho/audit.key";
  std::string audit_anchor = "/var/lib/sekisho/audit.anchor";
  // The running dataplane's DPDK telemetry socket (releases, ruleset activation).
  std::string dataplane_socket = "/var/run/dpdk/sekisho/dpdk_telemetry.v2";
  // Ruleset versions (control/rulesets/): artifacts and sources, DIR/vN/,
  // DIR/active.art the active one; uploads up to rulesets_max_upload_mb
  // (1..256, raises the HTTP body limit to it). dataplane_prefix = "P" is
  // the same as dataplane_socket = "/var/run/dpdk/P/dpdk_telemetry.v2".
  std::string rulesets_dir = "/var/lib/sekisho/rulesets";
  int rulesets_max_upload_mb = 32;
};

ControlConfig load_control_config(const std::string& path);

}  // namespace sekisho::control::config
