// The dataplane's section of the appliance configuration (libconfig syntax,
// appliance/sekisho.conf documents every key). Parsing is plain C++ with no
// DPDK so that bad configurations are tested without EAL.
//
// Errors: load_dataplane_config() throws ConfigError whose what() reads
// "FILE:LINE: reason" (line 0 when the file cannot be read at all).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "common/config/settings.hpp"
#include "scanners/verdict/policy.hpp"

namespace sekisho::dataplane {

// FILE:LINE: reason, as every configuration loader reports (common/config).
using ConfigError = common::config::ConfigError;

enum class MalformedPolicy { forward, drop };
enum class DispatchMode { automatic, software, rss };

struct PortConfig {
  std::string name;    // the operator's name for the port ("outside")
  std::string device;  // DPDK device: "net_af_packet0,iface=veth0" (vdev) or a PCI address
  int line = 0;        // where it was declared, for later errors
  // DPDK's device name: the part of |device| before the first comma.
  std::string dpdk_name() const { return device.substr(0, device.find(',')); }
  bool is_vdev() const { return device.rfind("net_", 0) == 0; }
};

struct PortPair {
  unsigned a = 0, b = 0;  // indices into DataplaneConfig::ports
  int line = 0;
};

// An envelope rule: the first that matches a message decides its action at
// the hold point (the evaluator's envelope stage).
using verdict::EnvelopeRule;

struct DataplaneConfig {
  std::string file;
  std::vector<std::string> eal;
  int eal_line = 0;
  std::vector<PortConfig> ports;
  std::vector<PortPair> pairs;
  unsigned workers = 1;
  int workers_line = 0;
  unsigned burst = 32;
  unsigned idle_sleep_us = 50;
  unsigned ring_size = 1024;
  unsigned mbufs = 16383;
  unsigned rx_descriptors = 1024;
  unsigned tx_descriptors = 1024;
  unsigned flow_table_size = 65536;
  MalformedPolicy malformed = MalformedPolicy::forward;
  DispatchMode dispatch = DispatchMode::automatic;
  int dispatch_line = 0;
  // Stream inspection (TCP reassembly + SMTP) on these server ports.
  std::vector<unsigned> smtp_ports = {25, 587};
  // Server ports whose STARTTLS capability is masked (same-length bytes) so
  // sessions stay in clear and are inspected; elsewhere STARTTLS passes and
  // the session is counted as encrypted, uninspected.
  std::vector<unsigned> starttls_mask_ports;
  unsigned reassembly_buffer_bytes = 256 * 1024;  // per direction of a flow with data in flight
  unsigned reassembly_buffers = 4096;             // per worker: the reassembly memcap is bytes x buffers
  bool conflict_drop = false;                     // "rewrite" (default) or "drop" differing retransmissions
  bool cap_fail_open = false;                     // on a cap: "drop" the segment (default) or "bypass" the flow
  unsigned flow_idle_timeout_s = 300;
  std::string journal_dir = "/var/lib/sekisho/journal";  // "" turns the event journal off
  unsigned journal_flush_ms = 200;
  unsigned journal_flush_count = 64;
  std::vector<EnvelopeRule> envelope_policy;
  std::string spool_dir = "/var/lib/sekisho/spool";  // held (quarantined) messages
  unsigned retain_bytes = 32u << 20;  // largest message kept for quarantine; larger ones are tempfailed
  unsigned hold_timeout_ms = 2000;    // a held packet waits this long for the spool, then the fallback
  bool hold_timeout_pass = false;     // the fallback: "tempfail" (451, default) or "pass" (deliver the message)
  unsigned spool_fault_delay_ms = 0;  // fault injection for tests: the spool thread waits this long before a write
  // Content rules: a compiled ruleset artifact (sekishoctl rules compile), ""
  // for none; swapped at run time with /sekisho/rules,PATH.
  std::string ruleset;
  unsigned scan_bytes = 256 * 1024;  // per context kept for the content scan (text, raw text, message)
  bool scan_overflow_tempfail = false;
  // A message ended by <LF>.<CR><LF> (SMTP smuggling: a strict server reads
  // on, and what follows may be a second, uninspected message): "pass",
  // "tempfail" or "reject".
  std::string smuggling_action = "reject";
  // Where Sekisho's view of a session and the server's may differ (the SMTP
  // engine lost the dialogue, pipelining around AUTH/DATA/STARTTLS, data on
  // an SMTP port for a connection not followed: mid-stream, expired idle,
  // or reset): "tempfail" (drop the segment, 451 to the client when the
  // session is followed, RST to the server; else RSTs both ways), "reset"
  // (RSTs both ways) or "pass" (stop inspecting the flow, forward). Counted
  // per reason and journaled.
  std::string desync_action = "tempfail";
  // TCP in IP fragments (no Linux stack fragments TCP with path MTU
  // discovery; the ports are in the first fragment only): "drop" or "forward".
  std::string ip_fragments = "drop";
  // Frames whose L4 header the decoder cannot reach (more than two VLAN
  // tags, too long an IPv6 extension chain, PPPoE or MPLS carrying IP):
  // "drop" or "forward".
  std::string undecodable = "drop";
  // End of DATA: "lenient" ends a message at every variant a lenient server
  // takes (<LF>.<LF>, <CR><LF>.<LF>, <LF>.<CR><LF>; the smuggling action then
  // applies); "strict" ends it only at <CR><LF>.<CR><LF> and treats the
  // other variants as a desync. Either way nothing passes unjudged.
  std::string end_of_data = "lenient";
  // The MIME engine stopped at a cap (header block, parts, attachments,
  // URLs, HTML), at the nesting cap, or had to guess at a malformed
  // structure: "pass" (scan what was parsed, default), "tempfail",
  // "reject" or "quarantine".
  verdict::Action mime_limit = verdict::Action::pass;
  verdict::Action mime_nesting = verdict::Action::pass;
  verdict::Action mime_malformed = verdict::Action::pass;  // a message over scan_bytes: "pass" (scan what was kept) or "tempfail"
};

DataplaneConfig load_dataplane_config(const std::string& path);

// The evaluator's policy from a configuration (smuggling, envelope rules,
// collection overflow, MIME caps): the workers, sekisho-replay --config.
verdict::Policy evaluator_policy(const DataplaneConfig& c);

// A policy file for /sekisho/reload: only `envelope_policy = ( ... );`.
// Throws ConfigError (FILE:LINE: reason).
std::vector<EnvelopeRule> load_envelope_policy(const std::string& path);

const char* to_string(MalformedPolicy p);
const char* to_string(DispatchMode d);

}  // namespace sekisho::dataplane
