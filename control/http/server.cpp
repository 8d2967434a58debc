#include "http/server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <iostream>
#include <optional>

#include "http/router.hpp"

namespace sekisho::control::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void fail(beast::error_code ec, const char* what) {
  // A peer going away or our own shutdown is not worth a line.
  if (ec == net::error::operation_aborted || ec == beast::error::timeout || ec == net::error::connection_reset ||
      ec == bhttp::error::end_of_stream || ec == net::error::eof)
    return;
  std::cerr << "sekisho-control: http " << what << ": " << ec.message() << "\n";
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, const Router& router, const ServerOptions& opt)
      : stream_(std::move(socket)), buffer_(opt.read_buffer_limit), router_(router), opt_(opt) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec)
      client_ = (ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string()) + ":" +
                std::to_string(ep.port());
  }

  void run() { net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::read, shared_from_this())); }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(std::uint32_t(opt_.header_limit));
    parser_->body_limit(opt_.body_limit);
    stream_.expires_after(opt_.timeout);
    bhttp::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == bhttp::error::end_of_stream) return close();
    if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit) {
      bool body = ec == bhttp::error::body_limit;
      res_ = Response{body ? bhttp::status::payload_too_large : bhttp::status::request_header_fields_too_large, 11};
      res_.set(bhttp::field::server, "sekisho-control");
      res_.set(bhttp::field::content_type, "application/json");
      res_.body() = body ? "{\"error\":\"request body too large\"}\n" : "{\"error\":\"request header too large\"}\n";
      res_.keep_alive(false);
      res_.prepare_payload();
      return write();
    }
    if (ec) return fail(ec, "read");
    Request req = parser_->release();
    res_ = router_.handle(req, now_us(), client_);
    if (++served_ >= opt_.max_requests) res_.keep_alive(false);
    write();
  }

  void write() {
    stream_.expires_after(opt_.timeout);
    bhttp::async_write(stream_, res_, beast::bind_front_handler(&Session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return fail(ec, "write");
    if (!res_.keep_alive()) return close();
    res_ = {};
    read();
  }

  // Lingering close: after our FIN, read and discard what the client still
  // sends (bounded in time and bytes) so that closing with unread bytes does
  // not send an RST that could destroy the response in the client's buffer.
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;
    stream_.expires_after(std::chrono::seconds(2));
    drain();
  }
  void drain() {
    stream_.async_read_some(net::buffer(discard_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->drained_ += n;
      if (!ec && self->drained_ < kDrainLimit) self->drain();
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  const Router& router_;
  std::string client_;
  const ServerOptions opt_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Response res_;
  unsigned served_ = 0;
  static constexpr std::size_t kDrainLimit = 1 << 20;
  std::array<char, 4096> discard_{};
  std::size_t drained_ = 0;
};

}  // namespace

struct Server::Listener : std::enable_shared_from_this<Server::Listener> {
  Listener(net::io_context& io, const tcp::endpoint& ep, const Router& r, ServerOptions options)
      : ioc_(io), acceptor_(net::make_strand(io)), router_(r), opt_(options) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(net::socket_base::max_listen_connections);
  }
  void accept() {
    acceptor_.async_accept(net::make_strand(ioc_),
                           beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }
  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (ec) fail(ec, "accept");
    else std::make_shared<Session>(std::move(socket), router_, opt_)->run();
    accept();
  }
  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  const Router& router_;
  ServerOptions opt_;  // copied into each session
};

Server::Server(net::io_context& ioc, const tcp::endpoint& endpoint, const Router& router, ServerOptions options)
    : listener_(std::make_shared<Listener>(ioc, endpoint, router, options)) {}

Server::~Server() = default;

void Server::start() { listener_->accept(); }

tcp::endpoint Server::local_endpoint() const { return listener_->acceptor_.local_endpoint(); }

}  // namespace sekisho::control::http
