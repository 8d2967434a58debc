#include "dataplane/config/dataplane_config.hpp"

#include <libconfig.h++>

#include <algorithm>
#include <initializer_list>
#include <set>

#include "common/config/settings.hpp"

namespace sekisho::dataplane {
namespace {

using libconfig::Setting;

// Top-level groups other components own; the dataplane ignores their keys.
const std::set<std::string> kOtherSections = {"control", "scanners", "rules", "spool", "journal"};

const std::set<std::string> kDataplaneKeys = {
    "eal", "ports", "bridges", "workers", "burst", "idle_sleep_us", "ring_size", "mbufs",
    "rx_descriptors", "tx_descriptors", "flow_table_size", "malformed", "dispatch", "smtp_ports",
    "reassembly_buffer_bytes", "reassembly_buffers", "starttls_mask_ports", "conflict_policy", "cap_policy", "flow_idle_timeout_s",
    "journal", "journal_flush_ms", "journal_flush_count", "envelope_policy", "spool", "retain_bytes",
    "hold_timeout_ms", "hold_timeout_action", "smuggling_action", "spool_fault_delay_ms", "ruleset", "scan_bytes", "scan_overflow",
    "desync_action", "ip_fragments", "undecodable", "end_of_data", "mime_limit", "mime_nesting", "mime_malformed"};

// The shared readers (common/config/settings.hpp), throwing this loader's ConfigError.
[[noreturn]] void fail(const std::string& file, const Setting& s, const std::string& reason) {
  common::config::fail<ConfigError>(file, s, reason);
}

std::string get_string(const std::string& file, const Setting& s) {
  return common::config::get_string<ConfigError>(file, s);
}

unsigned get_uint(const std::string& file, const Setting& s, unsigned lo, unsigned hi) {
  return unsigned(common::config::get_int<ConfigError>(file, s, lo, hi, common::config::RangeWording::out_of_range));
}

bool is_pow2(unsigned v) { return v && !(v & (v - 1)); }

std::vector<EnvelopeRule> parse_envelope_policy(const std::string& path, const Setting& pol) {
  std::vector<EnvelopeRule> out;
  if (!pol.isList()) fail(path, pol, "'envelope_policy' must be a list ( { ... }, ... )");
  for (int i = 0; i < pol.getLength(); ++i) {
    const Setting& r = pol[i];
    if (!r.isGroup()) fail(path, r, "each envelope rule is a group { name = ...; mail_from = ...; action = ...; }");
    EnvelopeRule er;
    std::string action;
    er.line = int(r.getSourceLine());
    for (int k = 0; k < r.getLength(); ++k) {
      std::string key = r[k].getName();
      if (key == "name") er.name = get_string(path, r[k]);
      else if (key == "mail_from") er.mail_from = get_string(path, r[k]);
      else if (key == "rcpt_to") er.rcpt_to = get_string(path, r[k]);
      else if (key == "action") action = get_string(path, r[k]);
      else fail(path, r[k], "unknown key '" + key + "' in an envelope rule");
    }
    if (action == "tag" || !verdict::action_from_name(action, er.action))
      fail(path, r, "envelope rule action must be \"pass\", \"reject\", \"tempfail\" or \"quarantine\", not \"" +
                        action + "\"");
    if (er.name.empty()) er.name = "envelope_policy[" + std::to_string(i) + "]";
    out.push_back(std::move(er));
  }
  return out;
}

}  // namespace

std::vector<EnvelopeRule> load_envelope_policy(const std::string& path) {
  libconfig::Config cfg;
  common::config::read_file<ConfigError>(cfg, path, "policy file");
  const Setting& root = cfg.getRoot();
  for (int i = 0; i < root.getLength(); ++i)
    if (std::string(root[i].getName()) != "envelope_policy")
      fail(path, root[i], std::string("unknown key '") + root[i].getName() + "' (a policy file holds envelope_policy)");
  if (!root.exists("envelope_policy")) throw ConfigError(path, 1, "missing 'envelope_policy'");
  return parse_envelope_policy(path, root["envelope_policy"]);
}

namespace {
}  // namespace

const char* to_string(MalformedPolicy p) { return p == MalformedPolicy::drop ? "drop" : "forward"; }
const char* to_string(DispatchMode d) {
  switch (d) {
    case DispatchMode::software: return "software";
    case DispatchMode::rss: return "rss";
    default: return "auto";
  }
}

DataplaneConfig load_dataplane_config(const std::string& path) {
  libconfig::Config cfg;
  common::config::read_file<ConfigError>(cfg, path, "configuration file");
  DataplaneConfig c;
  c.file = path;
  const Setting& root = cfg.getRoot();
  for (int i = 0; i < root.getLength(); ++i) {
    const Setting& s = root[i];
    std::string name = s.getName() ? s.getName() : "";
    if (name != "dataplane" && !kOtherSections.count(name))
      fail(path, s, "unknown section '" + name + "'");
  }
  if (!root.exists("dataplane")) throw ConfigError(path, 1, "missing section 'dataplane'");
  const Setting& dp = root["dataplane"];
  if (!dp.isGroup()) fail(path, dp, "'dataplane' must be a group { ... }");
  for (int i = 0; i < dp.getLength(); ++i) {
    const Setting& s = dp[i];
    if (!kDataplaneKeys.count(s.getName()))
      fail(path, s, std::string("unknown key 'dataplane.") + s.getName() + "'");
  }

  if (dp.exists("eal")) {
    const Setting& e = dp["eal"];
    if (!e.isArray() && !e.isList()) fail(path, e, "'dataplane.eal' must be a list of strings");
    c.eal_line = int(e.getSourceLine());
    for (int i = 0; i < e.getLength(); ++i) c.eal.push_back(get_string(path, e[i]));
  }

  if (!dp.exists("ports")) fail(path, dp, "missing key 'dataplane.ports'");
  const Setting& ports = dp["ports"];
  if (!ports.isList()) fail(path, ports, "'dataplane.ports' must be a list ( { name = ...; device = ...; }, ... )");
  for (int i = 0; i < ports.getLength(); ++i) {
    const Setting& p = ports[i];
    if (!p.isGroup()) fail(path, p, "each port must be a group { name = ...; device = ...; }");
    PortConfig pc;
    pc.line = int(p.getSourceLine());
    for (int k = 0; k < p.getLength(); ++k) {
      std::string key = p[k].getName();
      if (key == "name") pc.name = get_string(path, p[k]);
      else if (key == "device") pc.device = get_string(path, p[k]);
      else fail(path, p[k], "unknown key '" + key + "' in a port");
    }
    if (pc.name.empty()) fail(path, p, "port without a name");
    if (pc.device.empty()) fail(path, p, "port '" + pc.name + "' has no device");
    for (const auto& other : c.ports) {
      if (other.name == pc.name) fail(path, p, "port name '" + pc.name + "' used twice");
      if (other.dpdk_name() == pc.dpdk_name())
        fail(path, p, "device '" + pc.dpdk_name() + "' used by two ports");
    }
    c.ports.push_back(pc);
  }
  if (c.ports.size() < 2) fail(path, ports, "at least two ports are needed to bridge");

  if (!dp.exists("bridges")) fail(path, dp, "missing key 'dataplane.bridges'");
  const Setting& br = dp["bridges"];
  if (!br.isList()) fail(path, br, "'dataplane.bridges' must be a list ( [\"a\", \"b\"], ... )");
  std::vector<bool> used(c.ports.size(), false);
  auto index_of = [&](const Setting& s) -> unsigned {
    std::string n = get_string(path, s);
    for (unsigned j = 0; j < c.ports.size(); ++j)
      if (c.ports[j].name == n) return j;
    fail(path, s, "bridge names unknown port '" + n + "'");
  };
  for (int i = 0; i < br.getLength(); ++i) {
    const Setting& b = br[i];
    if (!b.isArray() || b.getLength() != 2)
      fail(path, b, "each bridge is a pair of port names [\"a\", \"b\"]");
    PortPair pp{index_of(b[0]), index_of(b[1]), int(b.getSourceLine())};
    if (pp.a == pp.b) fail(path, b, "a port cannot be bridged to itself");
    if (used[pp.a] || used[pp.b]) fail(path, b, "a port belongs to two bridges");
    used[pp.a] = used[pp.b] = true;
    c.pairs.push_back(pp);
  }
  if (c.pairs.empty()) fail(path, br, "no bridge declared");
  for (unsigned j = 0; j < c.ports.size(); ++j)
    if (!used[j])
      throw ConfigError(path, c.ports[j].line, "port '" + c.ports[j].name + "' is in no bridge");

  if (dp.exists("workers")) {
    c.workers = get_uint(path, dp["workers"], 1, 128);
    c.workers_line = int(dp["workers"].getSourceLine());
  }
  if (dp.exists("burst")) c.burst = get_uint(path, dp["burst"], 1, 256);
  if (dp.exists("idle_sleep_us")) c.idle_sleep_us = get_uint(path, dp["idle_sleep_us"], 0, 100000);
  if (dp.exists("ring_size")) {
    c.ring_size = get_uint(path, dp["ring_size"], 64, 1u << 20);
    if (!is_pow2(c.ring_size)) fail(path, dp["ring_size"], "'dataplane.ring_size' must be a power of two");
  }
  if (dp.exists("mbufs")) c.mbufs = get_uint(path, dp["mbufs"], 1024, 1u << 24);
  if (dp.exists("rx_descriptors")) c.rx_descriptors = get_uint(path, dp["rx_descriptors"], 64, 65536);
  if (dp.exists("tx_descriptors")) c.tx_descriptors = get_uint(path, dp["tx_descriptors"], 64, 65536);
  if (dp.exists("flow_table_size")) {
    c.flow_table_size = get_uint(path, dp["flow_table_size"], 1024, 1u << 24);
    if (!is_pow2(c.flow_table_size))
      fail(path, dp["flow_table_size"], "'dataplane.flow_table_size' must be a power of two");
  }
  if (dp.exists("malformed")) {
    std::string m = get_string(path, dp["malformed"]);
    if (m == "forward") c.malformed = MalformedPolicy::forward;
    else if (m == "drop") c.malformed = MalformedPolicy::drop;
    else fail(path, dp["malformed"], "'dataplane.malformed' must be \"forward\" or \"drop\", not \"" + m + "\"");
  }
  if (dp.exists("dispatch")) {
    std::string d = get_string(path, dp["dispatch"]);
    c.dispatch_line = int(dp["dispatch"].getSourceLine());
    if (d == "auto") c.dispatch = DispatchMode::automatic;
    else if (d == "software") c.dispatch = DispatchMode::software;
    else if (d == "rss") c.dispatch = DispatchMode::rss;
    else fail(path, dp["dispatch"], "'dataplane.dispatch' must be \"auto\", \"software\" or \"rss\", not \"" + d + "\"");
  }
  if (dp.exists("smtp_ports")) {
    const Setting& sp = dp["smtp_ports"];
    if (!sp.isArray() && !sp.isList()) fail(path, sp, "'dataplane.smtp_ports' must be a list of port numbers");
    c.smtp_ports.clear();
    for (int i = 0; i < sp.getLength(); ++i) c.smtp_ports.push_back(get_uint(path, sp[i], 1, 65535));
  }
  if (dp.exists("starttls_mask_ports")) {
    const Setting& sp = dp["starttls_mask_ports"];
    if (!sp.isArray() && !sp.isList()) fail(path, sp, "'dataplane.starttls_mask_ports' must be a list of port numbers");
    for (int i = 0; i < sp.getLength(); ++i) c.starttls_mask_ports.push_back(get_uint(path, sp[i], 1, 65535));
  }
  if (dp.exists("reassembly_buffer_bytes")) {
    c.reassembly_buffer_bytes = get_uint(path, dp["reassembly_buffer_bytes"], 4096, 1u << 26);
    if (!is_pow2(c.reassembly_buffer_bytes))
      fail(path, dp["reassembly_buffer_bytes"], "'dataplane.reassembly_buffer_bytes' must be a power of two");
  }
  if (dp.exists("reassembly_buffers")) c.reassembly_buffers = get_uint(path, dp["reassembly_buffers"], 1, 1u << 24);
  if (dp.exists("conflict_policy")) {
    std::string v = get_string(path, dp["conflict_policy"]);
    if (v != "rewrite" && v != "drop")
      fail(path, dp["conflict_policy"], "'dataplane.conflict_policy' must be \"rewrite\" or \"drop\", not \"" + v + "\"");
    c.conflict_drop = v == "drop";
  }
  if (dp.exists("cap_policy")) {
    std::string v = get_string(path, dp["cap_policy"]);
    if (v != "drop" && v != "bypass")
      fail(path, dp["cap_policy"], "'dataplane.cap_policy' must be \"drop\" (fail-closed) or \"bypass\" (fail-open), not \"" + v + "\"");
    c.cap_fail_open = v == "bypass";
  }
  if (dp.exists("flow_idle_timeout_s")) c.flow_idle_timeout_s = get_uint(path, dp["flow_idle_timeout_s"], 1, 86400);
  if (dp.exists("journal")) c.journal_dir = get_string(path, dp["journal"]);
  if (dp.exists("journal_flush_ms")) c.journal_flush_ms = get_uint(path, dp["journal_flush_ms"], 0, 60000);
  if (dp.exists("journal_flush_count")) c.journal_flush_count = get_uint(path, dp["journal_flush_count"], 1, 1u << 20);
  if (dp.exists("spool")) c.spool_dir = get_string(path, dp["spool"]);
  if (dp.exists("retain_bytes")) c.retain_bytes = get_uint(path, dp["retain_bytes"], 0, 1u << 30);
  if (dp.exists("hold_timeout_ms")) c.hold_timeout_ms = get_uint(path, dp["hold_timeout_ms"], 1, 600000);
  if (dp.exists("envelope_policy")) c.envelope_policy = parse_envelope_policy(path, dp["envelope_policy"]);
  if (dp.exists("hold_timeout_action")) {
    std::string v = get_string(path, dp["hold_timeout_action"]);
    if (v != "pass" && v != "tempfail")
      fail(path, dp["hold_timeout_action"], "'dataplane.hold_timeout_action' must be \"tempfail\" (fail-closed) or \"pass\" (fail-open), not \"" + v + "\"");
    c.hold_timeout_pass = v == "pass";
  }
  if (dp.exists("smuggling_action")) {
    std::string v = get_string(path, dp["smuggling_action"]);
    if (v != "pass" && v != "tempfail" && v != "reject")
      fail(path, dp["smuggling_action"], "'dataplane.smuggling_action' must be \"pass\", \"tempfail\" or \"reject\", not \"" + v + "\"");
    c.smuggling_action = v;
  }
  auto choice = [&](const char* key, std::initializer_list<const char*> allowed, std::string& out) {
    if (!dp.exists(key)) return;
    std::string v = get_string(path, dp[key]);
    std::string list;
    for (const char* a : allowed) {
      if (v == a) { out = v; return; }
      list += std::string(list.empty() ? "" : " or ") + "\"" + a + "\"";
    }
    fail(path, dp[key], "'dataplane." + std::string(key) + "' must be " + list + ", not \"" + v + "\"");
  };
  choice("desync_action", {"tempfail", "reset", "pass"}, c.desync_action);
  choice("ip_fragments", {"drop", "forward"}, c.ip_fragments);
  choice("undecodable", {"drop", "forward"}, c.undecodable);
  choice("end_of_data", {"lenient", "strict"}, c.end_of_data);
  // What the MIME engine's caps lead to (verdict::MimeOutcome): pass scans what was parsed.
  auto mime_cap = [&](const char* key, verdict::Action& out) {
    std::string v = "pass";
    choice(key, {"pass", "tempfail", "reject", "quarantine"}, v);
    verdict::action_from_name(v, out);
  };
  mime_cap("mime_limit", c.mime_limit);
  mime_cap("mime_nesting", c.mime_nesting);
  mime_cap("mime_malformed", c.mime_malformed);
  if (dp.exists("spool_fault_delay_ms")) c.spool_fault_delay_ms = get_uint(path, dp["spool_fault_delay_ms"], 0, 600000);
  if (dp.exists("ruleset")) c.ruleset = get_string(path, dp["ruleset"]);
  if (dp.exists("scan_bytes")) c.scan_bytes = get_uint(path, dp["scan_bytes"], 4096, 64u << 20);
  if (dp.exists("scan_overflow")) {
    std::string v = get_string(path, dp["scan_overflow"]);
    if (v != "pass" && v != "tempfail")
      fail(path, dp["scan_overflow"], "'dataplane.scan_overflow' must be \"pass\" (fail-open) or \"tempfail\" (fail-closed), not \"" + v + "\"");
    c.scan_overflow_tempfail = v == "tempfail";
  }
  if (c.mbufs < (c.rx_descriptors + c.tx_descriptors) * c.ports.size() + c.ring_size * 2 * c.workers)
    fail(path, dp, "'dataplane.mbufs' = " + std::to_string(c.mbufs) +
                       " cannot fill the rings and descriptors; raise it or lower ring_size/descriptors");
  return c;
}

verdict::Policy evaluator_policy(const DataplaneConfig& c) {
  verdict::Policy p;
  verdict::action_from_name(c.smuggling_action, p.smuggling);
  p.envelope = c.envelope_policy;
  p.overflow = c.scan_overflow_tempfail ? verdict::Action::tempfail : verdict::Action::pass;
  p.mime_limit = c.mime_limit;
  p.mime_nesting = c.mime_nesting;
  p.mime_malformed = c.mime_malformed;
  return p;
}

}  // namespace sekisho::dataplane
