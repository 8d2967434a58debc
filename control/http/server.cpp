#include "control/http/server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <type_traits>
#include <iostream>
#include <optional>

#include "control/http/router.hpp"

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
      ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == net::ssl::error::stream_truncated)
    return;
  std::cerr << "sekisho-control: http " << what << ": " << ec.message() << "\n";
}

// One connection. Stream is beast::tcp_stream (HTTP) or
// beast::ssl_stream<beast::tcp_stream> (HTTPS).
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  template <class... TlsArgs>
  Session(tcp::socket&& socket, const Router& router, const ServerOptions& opt, TlsArgs&... tls)
      : stream_(std::move(socket), tls...), buffer_(opt.read_buffer_limit), router_(router), opt_(opt) {
    beast::error_code ec;
    auto ep = tcp_layer().socket().remote_endpoint(ec);
    if (!ec)
      client_ = (ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string()) + ":" +
                std::to_string(ep.port());
  }

  void run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->tcp_layer().expires_after(self->opt_.timeout);
        self->stream_.async_handshake(net::ssl::stream_base::server,
                                      [self](beast::error_code ec) {
                                        if (ec) return;  // scanners and plain-HTTP clients: not worth a line
                                        self->read();
                                      });
      } else {
        self->read();
      }
    });
  }

 private:
  beast::tcp_stream& tcp_layer() { return beast::get_lowest_layer(stream_); }

  void read() {
    parser_.emplace();
    parser_->header_limit(std::uint32_t(opt_.header_limit));
    parser_->body_limit(opt_.body_limit);
    tcp_layer().expires_after(opt_.timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&Session::on_read, this->shared_from_this()));
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
    // Every answer, page or API: never framed, never a Referer to elsewhere.
    if (res_.find("X-Frame-Options") == res_.end()) res_.set("X-Frame-Options", "DENY");
    if (res_.find("Referrer-Policy") == res_.end()) res_.set("Referrer-Policy", "no-referrer");
    if constexpr (kTls) res_.set(bhttp::field::strict_transport_security, "max-age=31536000");
    tcp_layer().expires_after(opt_.timeout);
    bhttp::async_write(stream_, res_, beast::bind_front_handler(&Session::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return fail(ec, "write");
    if (!res_.keep_alive()) return close();
    res_ = {};
    read();
  }

  // TLS: close_notify first (bounded in time), then as plain TCP.
  void close() {
    if constexpr (kTls) {
      tcp_layer().expires_after(std::chrono::seconds(2));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->linger(); });
    } else {
      linger();
    }
  }

  // Lingering close: after our FIN, read and discard what the client still
  // sends (bounded in time and bytes) so that closing with unread bytes does
  // not send an RST that could destroy the response in the client's buffer.
  void linger() {
    beast::error_code ec;
    tcp_layer().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;
    tcp_layer().expires_after(std::chrono::seconds(2));
    drain();
  }
  void drain() {
    tcp_layer().async_read_some(net::buffer(discard_),
                                [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                                  self->drained_ += n;
                                  if (!ec && self->drained_ < kDrainLimit) self->drain();
                                });
  }

  Stream stream_;
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

std::string openssl_reason() {
  unsigned long e = ERR_get_error();
  std::string last;
  for (; e; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    const char* r = ERR_reason_error_string(e);
    last = r ? r : buf;
  }
  return last.empty() ? "unknown OpenSSL error" : last;
}

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
    else if (opt_.tls)
      std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(std::move(socket), router_, opt_, *opt_.tls)
          ->run();
    else
      std::make_shared<Session<beast::tcp_stream>>(std::move(socket), router_, opt_)->run();
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

std::shared_ptr<net::ssl::context> make_tls_context(const std::string& certificate_pem, const std::string& key_pem) {
  using Which = TlsError::Which;
  for (auto [path, which] : {std::pair{certificate_pem, Which::certificate}, std::pair{key_pem, Which::key}}) {
    std::ifstream f(path);
    if (!f) throw TlsError(which, "cannot read \"" + path + "\": " + std::strerror(errno));
  }
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_cipher_list(c, "ECDHE+AESGCM:ECDHE+CHACHA20");
  if (SSL_CTX_use_certificate_chain_file(c, certificate_pem.c_str()) != 1)
    throw TlsError(Which::certificate, "\"" + certificate_pem + "\" is not a usable PEM certificate: " + openssl_reason());
  if (SSL_CTX_use_PrivateKey_file(c, key_pem.c_str(), SSL_FILETYPE_PEM) != 1) {
    std::string why = openssl_reason();
    if (why.find("mismatch") != std::string::npos)
      throw TlsError(Which::key, "\"" + key_pem + "\" does not match the certificate \"" + certificate_pem + "\"");
    throw TlsError(Which::key, "\"" + key_pem + "\" is not a usable PEM private key: " + why);
  }
  if (SSL_CTX_check_private_key(c) != 1)
    throw TlsError(Which::key, "\"" + key_pem + "\" does not match the certificate \"" + certificate_pem +
                                   "\": " + openssl_reason());
  return ctx;
}

}  // namespace sekisho::control::http
