#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "dataplane/config/dataplane_config.hpp"

using namespace sekisho::dataplane;
namespace verdict = sekisho::verdict;

namespace {

class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text) {
    char tmpl[] = "/tmp/sekisho-conf-XXXXXX";
    int fd = mkstemp(tmpl);
    path_ = tmpl;
    std::ofstream(path_) << text;
    close(fd);
  }
  ~ConfigFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const char* kGood = R"(dataplane = {
  eal = ["--no-huge"];
  ports = ( { name = "outside"; device = "net_af_packet0,iface=a"; },
            { name = "inside"; device = "net_af_packet1,iface=b"; } );
  bridges = ( ["outside", "inside"] );
  workers = 2;
  malformed = "drop";
};
)";

// Returns "line: reason" of the error, or "ok".
std::string error_of(const std::string& text) {
  ConfigFile f(text);
  try {
    load_dataplane_config(f.path());
    return "ok";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), f.path());
    std::string what = e.what();
    EXPECT_EQ(what.rfind(f.path() + ":", 0), 0u) << what;
    return std::to_string(e.line()) + ": " + what.substr(what.find(": ") + 2);
  }
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto p = s.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  return s.replace(p, from.size(), to);
}

}  // namespace

TEST(DataplaneConfig, GoodFileLoads) {
  ConfigFile f(kGood);
  DataplaneConfig c = load_dataplane_config(f.path());
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_EQ(c.ports[0].dpdk_name(), "net_af_packet0");
  EXPECT_TRUE(c.ports[0].is_vdev());
  EXPECT_EQ(c.ports[1].line, 4);
  ASSERT_EQ(c.pairs.size(), 1u);
  EXPECT_EQ(c.pairs[0].a, 0u);
  EXPECT_EQ(c.pairs[0].b, 1u);
  EXPECT_EQ(c.workers, 2u);
  EXPECT_EQ(c.workers_line, 6);
  EXPECT_EQ(c.malformed, MalformedPolicy::drop);
  EXPECT_EQ(c.burst, 32u);  // default
  EXPECT_EQ(c.eal.size(), 1u);
}

TEST(DataplaneConfig, ShippedDefaultLoads) {
  const char* src = std::getenv("SEKISHO_SOURCE_ROOT");
  if (!src) GTEST_SKIP() << "SEKISHO_SOURCE_ROOT not set";
  DataplaneConfig c = load_dataplane_config(std::string(src) + "/appliance/sekisho.conf");
  EXPECT_EQ(c.ports.size(), 2u);
  EXPECT_EQ(c.workers, 1u);
}

TEST(DataplaneConfig, MissingFile) {
  try {
    load_dataplane_config("/nonexistent/sekisho.conf");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/sekisho.conf:0: cannot read the configuration file");
  }
}

TEST(DataplaneConfig, SyntaxErrorNamesLine) {
  std::string bad = replace(kGood, "workers = 2;", "workers = = 2;");
  EXPECT_EQ(error_of(bad).substr(0, 16), "6: syntax error:");
}

TEST(DataplaneConfig, UnknownKeyNamesLine) {
  EXPECT_EQ(error_of(replace(kGood, "workers = 2;", "workers = 2;\n  wrokers = 3;")),
            "7: unknown key 'dataplane.wrokers'");
  EXPECT_EQ(error_of(std::string(kGood) + "telemetry = { };\n"), "9: unknown section 'telemetry'");
  EXPECT_EQ(error_of(replace(kGood, "iface=b\";", "iface=b\"; speed = 10;")),
            "4: unknown key 'speed' in a port");
}

TEST(DataplaneConfig, BadValues) {
  EXPECT_EQ(error_of(replace(kGood, "workers = 2;", "workers = 0;")),
            "6: 'dataplane.workers' = 0 is out of range [1, 128]");
  EXPECT_EQ(error_of(replace(kGood, "workers = 2;", "workers = \"two\";")),
            "6: 'dataplane.workers' must be an integer");
  EXPECT_EQ(error_of(replace(kGood, "malformed = \"drop\";", "malformed = \"eat\";")),
            "7: 'dataplane.malformed' must be \"forward\" or \"drop\", not \"eat\"");
  EXPECT_EQ(error_of(replace(kGood, "workers = 2;", "workers = 2; ring_size = 1000;")),
            "6: 'dataplane.ring_size' must be a power of two");
}

// Desync policies (issue 14): fail-closed by default, each a named choice.
TEST(DataplaneConfig, DesyncPolicies) {
  ConfigFile f(kGood);
  DataplaneConfig c = load_dataplane_config(f.path());
  EXPECT_EQ(c.desync_action, "tempfail");
  EXPECT_EQ(c.ip_fragments, "drop");
  EXPECT_EQ(c.undecodable, "drop");
  EXPECT_EQ(c.end_of_data, "lenient");
  ConfigFile g(replace(kGood, "workers = 2;", "workers = 2; desync_action = \"pass\"; ip_fragments = \"forward\";"
                                              " undecodable = \"forward\"; end_of_data = \"strict\";"));
  c = load_dataplane_config(g.path());
  EXPECT_EQ(c.desync_action, "pass");
  EXPECT_EQ(c.ip_fragments, "forward");
  EXPECT_EQ(c.undecodable, "forward");
  EXPECT_EQ(c.end_of_data, "strict");
  EXPECT_EQ(error_of(replace(kGood, "workers = 2;", "workers = 2;\n  desync_action = \"ignore\";")),
            "7: 'dataplane.desync_action' must be \"tempfail\" or \"reset\" or \"pass\", not \"ignore\"");
  EXPECT_EQ(error_of(replace(kGood, "workers = 2;", "workers = 2;\n  ip_fragments = \"reassemble\";")),
            "7: 'dataplane.ip_fragments' must be \"drop\" or \"forward\", not \"reassemble\"");
}

TEST(DataplaneConfig, EvaluatorPolicy) {
  // The verdict's inputs that are policy (scanners/verdict/policy.hpp), from the file.
  DataplaneConfig c = load_dataplane_config(ConfigFile(kGood).path());
  verdict::Policy p = evaluator_policy(c);
  EXPECT_EQ(p.smuggling, verdict::Action::reject);
  EXPECT_EQ(p.overflow, verdict::Action::pass);
  EXPECT_EQ(p.mime_limit, verdict::Action::pass);
  EXPECT_EQ(p.mime_nesting, verdict::Action::pass);
  EXPECT_EQ(p.mime_malformed, verdict::Action::pass);
  ConfigFile g(replace(kGood, "workers = 2;",
                       "workers = 2; smuggling_action = \"tempfail\"; scan_overflow = \"tempfail\";"
                       " mime_limit = \"quarantine\"; mime_nesting = \"reject\"; mime_malformed = \"tempfail\";"
                       " envelope_policy = ( { name = \"x\"; mail_from = \"*@evil.test\"; action = \"quarantine\"; } );"));
  p = evaluator_policy(load_dataplane_config(g.path()));
  EXPECT_EQ(p.smuggling, verdict::Action::tempfail);
  EXPECT_EQ(p.overflow, verdict::Action::tempfail);
  EXPECT_EQ(p.mime_limit, verdict::Action::quarantine);
  EXPECT_EQ(p.mime_nesting, verdict::Action::reject);
  EXPECT_EQ(p.mime_malformed, verdict::Action::tempfail);
  ASSERT_EQ(p.envelope.size(), 1u);
  EXPECT_EQ(p.envelope[0].action, verdict::Action::quarantine);
  EXPECT_EQ(p.envelope[0].name, "x");
  EXPECT_EQ(error_of(replace(kGood, "workers = 2;", "workers = 2;\n  mime_nesting = \"tag\";")),
            "7: 'dataplane.mime_nesting' must be \"pass\" or \"tempfail\" or \"reject\" or \"quarantine\", not \"tag\"");
  EXPECT_NE(error_of(replace(kGood, "workers = 2;",
                             "workers = 2;\n  envelope_policy = ( { mail_from = \"a\"; action = \"tag\"; } );"))
                .find("envelope rule action must be"),
            std::string::npos);
}

TEST(DataplaneConfig, BridgeErrors) {
  EXPECT_EQ(error_of(replace(kGood, "[\"outside\", \"inside\"]", "[\"outside\", \"dmz\"]")),
            "5: bridge names unknown port 'dmz'");
  EXPECT_EQ(error_of(replace(kGood, "[\"outside\", \"inside\"]", "[\"outside\", \"outside\"]")),
            "5: a port cannot be bridged to itself");
  EXPECT_EQ(error_of(replace(kGood, "device = \"net_af_packet1,iface=b\"", "device = \"net_af_packet0,iface=c\"")),
            "4: device 'net_af_packet0' used by two ports");
  EXPECT_EQ(error_of(replace(kGood, "name = \"inside\";", "name = \"outside\";")),
            "4: port name 'outside' used twice");
}

TEST(DataplaneConfig, MissingSections) {
  EXPECT_EQ(error_of("control = { };\n"), "1: missing section 'dataplane'");
  EXPECT_EQ(error_of("dataplane = { workers = 1; };\n"), "1: missing key 'dataplane.ports'");
}
