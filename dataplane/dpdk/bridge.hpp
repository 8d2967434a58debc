// The DPDK adapter: ports, lcores and the forwarding loops of the
// bump-in-the-wire bridge.
//
//   software dispatch (ports without symmetric RSS, e.g. net_af_packet):
//
//     port A rx --+                      +--> worker 0 --+
//                 +--> io lcore (hash) --+                +--> io lcore --> paired port tx
//     port B rx --+     symmetric 5-tuple +--> worker 1 --+    (tx rings)
//
//   rss dispatch (ports with RSS and enough queues): worker w polls queue w
//   of every port and transmits on queue w of the paired port; the NIC's
//   symmetric Toeplitz key keeps both directions of a flow on one queue.
//
// Thread-safety: Bridge is built and torn down on the main thread; the
// loops run one per lcore on per-lcore state; stats() may be called from
// the telemetry thread at any time.
#pragma once

#include <atomic>
#include <memory>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/config/dataplane_config.hpp"

struct rte_tel_data;

namespace sekisho::dataplane {

struct BridgeState;

class Bridge {
 public:
  // Initialises EAL (argv[0] is the program name), mempool, ports and rings.
  // Throws ConfigError pointing at the offending key on any failure that a
  // configuration can cause, std::runtime_error otherwise.
  Bridge(const DataplaneConfig& cfg, const std::string& argv0);
  ~Bridge();
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // Runs the loops until request_stop(); returns on the main lcore.
  void run();
  static void request_stop();

  // Counters as telemetry data (ports, workers, io lcore, totals).
  void stats(rte_tel_data* d) const;
  // Flow census summary (and up to |limit| flows of |worker|, -1: none).
  void flows(rte_tel_data* d, int worker, unsigned limit) const;
  // The same counters as one JSON object, for the final line on exit.
  std::string stats_json() const;

  const char* dispatch_name() const;

  // The appliance-wide bypass switch: when on, every frame is forwarded
  // without inspection (counted as "bypassed"). Safe from any thread.
  void set_bypass(bool on);
  // Lets the next message with this SHA-256 (hex) pass once, whatever its
  // verdict, within ttl_s seconds (a release from quarantine). Returns
  // "added" or "refreshed", or "error: ..."; pending gets the list size.
  std::string release(const std::string& sha256_hex, uint64_t ttl_s, size_t& pending);
  bool bypass() const;

  // Loads an envelope policy file and publishes it to the workers (RCU);
  // messages already streaming keep the set they started with. Returns ""
  // and the new version, or "FILE:LINE: reason" and changes nothing.
  // Call from one control thread at a time (the telemetry thread).
  std::string reload_policy(const std::string& path, uint64_t& version, size_t& rules);
  // Loads a content ruleset artifact (or "none" to drop content rules) and
  // publishes it with RCU, the envelope rules unchanged. "" or an error.
  std::string load_rules(const std::string& path, uint64_t& version, std::string& ruleset_version);

 private:
  std::unique_ptr<BridgeState> s_;
};

}  // namespace sekisho::dataplane
