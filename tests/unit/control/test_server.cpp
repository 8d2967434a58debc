// The Beast server on a real loopback socket: keep-alive, pipelining in
// order, 404, 413 for a body over the limit; HTTPS with a certificate made
// by the openssl command and a real TLS client (OpenSSL through Asio).
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdlib>
#include <thread>

#include "tests/unit/control/control_test_util.hpp"

#include "control/http/server.hpp"
#include "control/tracking/tracking_api.hpp"
#include "control/tracking/sql_store.hpp"
#include "control/db/sqlite_db.hpp"

namespace sekisho::control::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions opt;
    opt.body_limit = 1024;
    opt.timeout = std::chrono::seconds(5);
    tracking::add_log_routes(router, store);
    server.emplace(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0), router, opt);
    server->start();
    thread = std::thread([this] { ioc.run(); });
  }
  void TearDown() override {
    ioc.stop();
    thread.join();
  }
  tcp::socket connect() {
    tcp::socket s(client_ioc);
    s.connect(server->local_endpoint());
    return s;
  }
  db::SqliteDb db{":memory:"};
  tracking::SqlStore store{db};
  Router router;
  net::io_context ioc;
  net::io_context client_ioc;
  std::optional<Server> server;
  std::thread thread;
};

TEST_F(ServerTest, KeepAliveAndPipelinedRequestsAnsweredInOrder) {
  tcp::socket s = connect();
  std::string reqs =
      "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /api/log?limit=1 HTTP/1.1\r\nHost: t\r\n\r\n";
  net::write(s, net::buffer(reqs));
  beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> r1, r2, r3;
  bhttp::read(s, buf, r1);
  bhttp::read(s, buf, r2);
  bhttp::read(s, buf, r3);
  EXPECT_EQ(r1.result(), bhttp::status::ok);
  EXPECT_NE(r1.body().find("sekisho_control_events_ingested_total 0"), std::string::npos);
  EXPECT_EQ(r1["X-Frame-Options"], "DENY");
  EXPECT_EQ(r2["Referrer-Policy"], "no-referrer");
  EXPECT_EQ(r2.result(), bhttp::status::not_found);
  EXPECT_EQ(r3.result(), bhttp::status::ok);
  EXPECT_NE(r3.body().find("\"total\":0"), std::string::npos);
}

TEST_F(ServerTest, BodyOverTheLimitIs413AndCloses) {
  tcp::socket s = connect();
  std::string body(1 << 20, 'x');  // more than one read: unread bytes at close
  std::string req = "POST /api/log HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\n\r\n" + body;
  std::thread sender([&] {
    beast::error_code wec;
    net::write(s, net::buffer(req), wec);  // may fail once the server is done with us
  });
  beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> r;
  bhttp::read(s, buf, r);
  EXPECT_EQ(r.result(), bhttp::status::payload_too_large);
  EXPECT_FALSE(r.keep_alive());
  beast::error_code ec;
  bhttp::response<bhttp::string_body> again;
  bhttp::read(s, buf, again, ec);
  EXPECT_TRUE(ec);  // the server closed the connection
  sender.join();
}

// ---- HTTPS ----

// A self-signed certificate for "localhost" and its key, made by the
// openssl command in dir.
void make_certificate(const testing::TempDir& dir, const std::string& name) {
  std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "
                    "/CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
                    dir / (name + ".key") + " -out " + dir / (name + ".crt") + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    make_certificate(dir, "server");
    ServerOptions opt;
    opt.timeout = std::chrono::seconds(5);
    opt.tls = make_tls_context(dir / "server.crt", dir / "server.key");
    tracking::add_log_routes(router, store);
    server.emplace(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0), router, opt);
    server->start();
    thread = std::thread([this] { ioc.run(); });
  }
  void TearDown() override {
    ioc.stop();
    thread.join();
  }
  // A verifying client: trusts only the test's certificate, checks the name.
  net::ssl::context client_context() {
    net::ssl::context ctx(net::ssl::context::tls_client);
    ctx.load_verify_file(dir / "server.crt");
    ctx.set_verify_mode(net::ssl::verify_peer);
    return ctx;
  }
  testing::TempDir dir;
  db::SqliteDb db{":memory:"};
  tracking::SqlStore store{db};
  Router router;
  net::io_context ioc;
  net::io_context client_ioc;
  std::optional<Server> server;
  std::thread thread;
};

TEST_F(TlsServerTest, RealTlsClientGetsAnswersWithHsts) {
  net::ssl::context ctx = client_context();
  beast::ssl_stream<tcp::socket> s(client_ioc, ctx);
  s.set_verify_callback(net::ssl::host_name_verification("localhost"));
  ASSERT_TRUE(SSL_set_tlsext_host_name(s.native_handle(), "localhost"));
  s.next_layer().connect(server->local_endpoint());
  s.handshake(net::ssl::stream_base::client);
  EXPECT_GE(SSL_version(s.native_handle()), TLS1_2_VERSION);
  for (int i = 0; i < 2; ++i) {  // keep-alive over one TLS connection
    bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/metrics", 11};
    req.set(bhttp::field::host, "localhost");
    bhttp::write(s, req);
    beast::flat_buffer buf;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(s, buf, res);
    EXPECT_EQ(res.result(), bhttp::status::ok);
    EXPECT_NE(res.body().find("sekisho_control_events_ingested_total"), std::string::npos);
    EXPECT_EQ(res[bhttp::field::strict_transport_security], "max-age=31536000");
  }
  beast::error_code ec;
  s.shutdown(ec);  // close_notify both ways
  EXPECT_TRUE(!ec || ec == net::error::eof || ec == net::ssl::error::stream_truncated) << ec.message();
}

TEST_F(TlsServerTest, ClientThatDistrustsTheCertificateFails) {
  testing::TempDir other;
  make_certificate(other, "other");
  net::ssl::context ctx(net::ssl::context::tls_client);
  ctx.load_verify_file(other / "other.crt");
  ctx.set_verify_mode(net::ssl::verify_peer);
  beast::ssl_stream<tcp::socket> s(client_ioc, ctx);
  s.next_layer().connect(server->local_endpoint());
  beast::error_code ec;
  s.handshake(net::ssl::stream_base::client, ec);
  EXPECT_TRUE(ec);  // the server presented its own certificate, not another
}

TEST_F(TlsServerTest, Tls11IsRefused) {
  net::ssl::context ctx = client_context();
  // The client would speak TLS 1.1 (security level 0 lifts the client's own
  // floor), so only the server can refuse it.
  SSL_CTX_set_security_level(ctx.native_handle(), 0);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_VERSION);
  SSL_CTX_set_max_proto_version(ctx.native_handle(), TLS1_1_VERSION);
  SSL_CTX_set_cipher_list(ctx.native_handle(), "DEFAULT:@SECLEVEL=0");
  beast::ssl_stream<tcp::socket> s(client_ioc, ctx);
  s.next_layer().connect(server->local_endpoint());
  beast::error_code ec;
  s.handshake(net::ssl::stream_base::client, ec);
  EXPECT_TRUE(ec);
  // TLS 1.2 from the same kind of client works.
  net::ssl::context ctx12 = client_context();
  SSL_CTX_set_max_proto_version(ctx12.native_handle(), TLS1_2_VERSION);
  beast::ssl_stream<tcp::socket> s12(client_ioc, ctx12);
  s12.next_layer().connect(server->local_endpoint());
  s12.handshake(net::ssl::stream_base::client, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(SSL_version(s12.native_handle()), TLS1_2_VERSION);
}

TEST_F(TlsServerTest, PlainHttpOnTheTlsPortGetsNoAnswer) {
  tcp::socket s(client_ioc);
  s.connect(server->local_endpoint());
  net::write(s, net::buffer(std::string("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")));
  beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> res;
  beast::error_code ec;
  bhttp::read(s, buf, res, ec);
  EXPECT_TRUE(ec);  // no HTTP answer in the clear
}

TEST(TlsContext, ErrorsSayWhichFileAndWhy) {
  testing::TempDir dir;
  make_certificate(dir, "a");
  make_certificate(dir, "b");
  auto expect = [](const std::string& cert, const std::string& key, TlsError::Which which, const std::string& part) {
    try {
      make_tls_context(cert, key);
      ADD_FAILURE() << "no error for " << cert << " " << key;
    } catch (const TlsError& e) {
      EXPECT_EQ(e.which, which) << e.what();
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect(dir / "missing.crt", dir / "a.key", TlsError::Which::certificate, "cannot read");
  expect(dir / "a.crt", dir / "missing.key", TlsError::Which::key, "cannot read");
  expect(dir / "a.key", dir / "a.key", TlsError::Which::certificate, "not a usable PEM certificate");
  expect(dir / "a.crt", dir / "a.crt", TlsError::Which::key, "not a usable PEM private key");
  expect(dir / "a.crt", dir / "b.key", TlsError::Which::key, "does not match");
  EXPECT_TRUE(make_tls_context(dir / "a.crt", dir / "a.key"));
}

}  // namespace
}  // namespace sekisho::control::http
