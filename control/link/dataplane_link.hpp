// The control plane's link to a running sekisho-dataplane: a client of the
// DPDK telemetry v2 socket (/var/run/dpdk/PREFIX/dpdk_telemetry.v2), the
// protocol of DPDK's usertools/dpdk-telemetry.py:
//
//   connect (AF_UNIX, SOCK_SEQPACKET)
//   <- greeting JSON {"version": ..., "pid": ..., "max_output_len": N}
//   -> "/command,params"            (one packet; params may be empty)
//   <- reply JSON {"/command": value}   (one packet of at most N bytes)
//
// One connection per query (the dataplane serves a bounded number of
// telemetry clients; none is held open). Used for /sekisho/rules,PATH
// (ruleset activation) and /sekisho/stats.
//
// Thread-safety: query() may be called from any thread; each call has its
// own socket. Errors: LinkError with what happened ("cannot connect to
// PATH: No such file or directory", "no reply within 5000 ms", "reply is
// not JSON", ...).
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sekisho::control::link {

class LinkError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "/var/run/dpdk/" + prefix + "/dpdk_telemetry.v2".
std::string socket_for_prefix(const std::string& prefix, const std::string& runtime_dir = "/var/run/dpdk");

class DataplaneLink {
 public:
  explicit DataplaneLink(std::string socket_path, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

  // Sends "command[,params]" and returns the reply's value for |command|
  // (the JSON under that key). Commands and parameters are bounded (the
  // dataplane reads at most 1024 bytes) and may not hold control characters.
  nlohmann::json query(std::string_view command, std::string_view params = {}) const;

  const std::string& socket_path() const { return path_; }

 private:
  std::string path_;
  std::chrono::milliseconds timeout_;
};

}  // namespace sekisho::control::link
