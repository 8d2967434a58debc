// The control group of the libconfig file: values, defaults, FILE:LINE errors.
#include <gtest/gtest.h>

#include "control/config/control_config.hpp"
#include "tests/unit/control/control_test_util.hpp"

namespace sekisho::control::config {
namespace {

using testing::TempDir;

std::string write(const TempDir& d, const std::string& text) {
  std::string p = d / "sekisho.conf";
  std::ofstream(p, std::ios::trunc) << text;
  return p;
}

TEST(ControlConfig, ReadsTheControlGroupAndIgnoresTheDataplanes) {
  TempDir d;
  auto p = write(d,
                 "dataplane = { workers = 1; };\n"
                 "control = {\n"
                 "  listen = \"127.0.0.1:8025\";\n"
                 "  journal = \"/srv/journal\";\n"
                 "  database = \"/srv/control.db\";\n"
                 "  ingest_interval_ms = 250;\n"
                 "};\n");
  ControlConfig c = load_control_config(p);
  EXPECT_EQ(c.listen_address, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 8025);
  EXPECT_EQ(c.listen_line, 3);
  EXPECT_EQ(c.journal, "/srv/journal");
  EXPECT_EQ(c.database, "/srv/control.db");
  EXPECT_EQ(c.ingest_interval_ms, 250);
  EXPECT_EQ(c.http_threads, 2);
}

TEST(ControlConfig, Ipv6Listen) {
  TempDir d;
  ControlConfig c = load_control_config(write(d, "control = { listen = \"[::1]:0\"; };\n"));
  EXPECT_EQ(c.listen_address, "::1");
  EXPECT_EQ(c.listen_port, 0);
}

void expect_error(const std::string& text, int line, const std::string& part) {
  TempDir d;
  auto p = write(d, text);
  try {
    load_control_config(p);
    FAIL() << "no error for: " << text;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), line) << e.what();
    EXPECT_EQ(std::string(e.what()).rfind(p + ":" + std::to_string(line) + ": ", 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(ControlConfig, ErrorsNameFileAndLine) {
  expect_error("dataplane = {};\n", 1, "missing section 'control'");
  expect_error("control = {\n  listen = \"localhost:8025\";\n};\n", 2, "not an IP address");
  expect_error("control = {\n\n  listen = \"127.0.0.1:99999\";\n};\n", 3, "not a port");
  expect_error("control = {\n  listen = \"127.0.0.1\";\n};\n", 2, "ADDRESS:PORT");
  expect_error("control = {\n  journal = 5;\n};\n", 2, "must be a string");
  expect_error("control = {\n  database = \"\";\n};\n", 2, "must not be empty");
  expect_error("control = {\n  ingest_interval_ms = 10;\n};\n", 2, "from 50 to 60000");
  expect_error("control = {\n  colour = \"red\";\n};\n", 2, "unknown key 'control.colour'");
  expect_error("control = {\n  listen = ;\n};\n", 2, "syntax error");
  expect_error("control = 5;\n", 1, "must be a group");
}

TEST(ControlConfig, TlsNeedsBothFiles) {
  TempDir d;
  ControlConfig c = load_control_config(
      write(d, "control = {\n  tls_certificate = \"/c.pem\";\n  tls_key = \"/k.pem\";\n};\n"));
  EXPECT_EQ(c.tls_certificate, "/c.pem");
  EXPECT_EQ(c.tls_key, "/k.pem");
  EXPECT_EQ(c.tls_certificate_line, 2);
  EXPECT_EQ(c.tls_key_line, 3);
  EXPECT_TRUE(load_control_config(write(d, "control = { };\n")).tls_certificate.empty());
  expect_error("control = {\n  tls_certificate = \"/c.pem\";\n};\n", 2, "needs 'control.tls_key'");
  expect_error("control = {\n\n  tls_key = \"/k.pem\";\n};\n", 3, "needs 'control.tls_certificate'");
  expect_error("control = {\n  tls_key = \"\";\n};\n", 2, "must not be empty");
}

TEST(ControlConfig, UnreadableFile) {
  try {
    load_control_config("/nonexistent/sekisho.conf");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), 0);
  }
}

}  // namespace
}  // namespace sekisho::control::config

namespace sekisho::control::config {
namespace {

TEST(ControlConfig, RulesetKeys) {
  TempDir d;
  ControlConfig c = load_control_config(write(d, "control = { journal = \"/j\"; };\n"));
  EXPECT_EQ(c.rulesets_dir, "/var/lib/sekisho/rulesets");
  EXPECT_EQ(c.rulesets_max_upload_mb, 32);
  c = load_control_config(write(d,
                                "control = {\n  rulesets_dir = \"/srv/rs\";\n  dataplane_prefix = \"sekisho-test.1\";\n"
                                "  rulesets_max_upload_mb = 100;\n};\n"));
  EXPECT_EQ(c.rulesets_dir, "/srv/rs");
  EXPECT_EQ(c.dataplane_socket, "/var/run/dpdk/sekisho-test.1/dpdk_telemetry.v2");
  EXPECT_EQ(c.rulesets_max_upload_mb, 100);
  auto err = [&](const std::string& text) {
    try {
      load_control_config(write(d, text));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(err("control = {\n  dataplane_prefix = \"../x\";\n};\n").find("sekisho.conf:2: 'control.dataplane_prefix' must be"),
            std::string::npos);
  EXPECT_NE(err("control = {\n\n  rulesets_max_upload_mb = 0;\n};\n").find("sekisho.conf:3: "), std::string::npos);
  EXPECT_NE(err("control = { rulesets_dir = \"\"; };\n").find("'control.rulesets_dir' must not be empty"), std::string::npos);
}

TEST(ControlConfig, QuarantineReleaseAndAuditKeys) {
  TempDir d;
  ControlConfig c = load_control_config(write(d,
      "control = {\n  spool = \"/s\";\n  quarantine_retention_days = 7;\n  release_relay = \"[::1]:2525\";\n"
      "  release_tls = \"require\";\n  release_helo = \"gw.example\";\n  release_timeout_s = 5;\n"
      "  audit_key = \"/k\";\n  audit_anchor = \"/a\";\n  dataplane_socket = \"/t.sock\";\n};\n"));
  EXPECT_EQ(c.spool, "/s");
  EXPECT_EQ(c.quarantine_retention_days, 7);
  EXPECT_EQ(c.release_relay, "[::1]:2525");
  EXPECT_EQ(c.release_tls, "require");
  EXPECT_EQ(c.release_helo, "gw.example");
  EXPECT_EQ(c.release_timeout_s, 5);
  EXPECT_EQ(c.audit_key, "/k");
  EXPECT_EQ(c.audit_anchor, "/a");
  EXPECT_EQ(c.dataplane_socket, "/t.sock");
  ControlConfig def = load_control_config(write(d, "control = { };\n"));
  EXPECT_EQ(def.release_relay, "");
  EXPECT_EQ(def.release_tls, "opportunistic");
  EXPECT_EQ(def.quarantine_retention_days, 30);
  expect_error("control = {\n  release_relay = \"relay.example\";\n};\n", 2, "HOST:PORT");
  expect_error("control = {\n\n  release_relay = \"relay.example:0\";\n};\n", 3, "HOST:PORT");
  expect_error("control = {\n  release_relay = \"relay.example:x25\";\n};\n", 2, "HOST:PORT");
  expect_error("control = {\n  release_tls = \"maybe\";\n};\n", 2, "opportunistic");
  expect_error("control = {\n  notify_relay = \"relay\";\n};\n", 2, "HOST:PORT");
  expect_error("control = {\n  notify_from = \"Postmaster <pm@x.example>\";\n};\n", 2, "plain address");
  EXPECT_EQ(load_control_config(write(d, "control = { notify_from = \"pm@x.example\"; notify_relay = \"r:25\"; };\n"))
                .notify_relay,
            "r:25");
  expect_error("control = {\n  quarantine_retention_days = 0;\n};\n", 2, "from 1 to 3650");
}

TEST(ControlConfig, RelaysAreParsedOnce) {
  TempDir d;
  ControlConfig c = load_control_config(write(d, "control = { release_relay = \"[::1]:2525\"; };\n"));
  EXPECT_EQ(c.release_endpoint.host, "::1");
  EXPECT_EQ(c.release_endpoint.port, 2525);
  EXPECT_EQ(c.notify_endpoint.host, "::1") << "notify_relay falls back to release_relay";
  EXPECT_EQ(c.notify_endpoint.port, 2525);
  c = load_control_config(write(d, "control = { notify_relay = \"mx.example:587\"; release_relay = \"10.0.0.1:25\"; };\n"));
  EXPECT_EQ(c.release_endpoint.host, "10.0.0.1");
  EXPECT_EQ(c.release_endpoint.port, 25);
  EXPECT_EQ(c.notify_endpoint.host, "mx.example");
  EXPECT_EQ(c.notify_endpoint.port, 587);
  c = load_control_config(write(d, "control = { };\n"));
  EXPECT_TRUE(c.release_endpoint.empty());
  EXPECT_TRUE(c.notify_endpoint.empty());
}

// The shared readers (common/config/settings.hpp) word messages as before.
TEST(ControlConfig, MessagesNameTheKey) {
  expect_error("control = {\n  journal = 5;\n};\n", 2, "'control.journal' must be a string");
  expect_error("control = {\n  http_threads = \"2\";\n};\n", 2, "'control.http_threads' must be an integer");
  expect_error("control = {\n  http_threads = 65;\n};\n", 2, "'control.http_threads' must be from 1 to 64");
  TempDir d;
  EXPECT_EQ(load_control_config(write(d, "control = { http_threads = 3L; };\n")).http_threads, 3);  // int64 too
}

}  // namespace
}  // namespace sekisho::control::config
