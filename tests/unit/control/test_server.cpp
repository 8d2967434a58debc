// The Beast server on a real loopback socket: keep-alive, pipelining in
// order, 404, 413 for a body over the limit.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "http/server.hpp"
#include "http/api.hpp"
#include "store/sql_store.hpp"
#include "store/sqlite_db.hpp"

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
    add_log_routes(router, store);
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
  store::SqliteDb db{":memory:"};
  store::SqlStore store{db};
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

}  // namespace
}  // namespace sekisho::control::http
