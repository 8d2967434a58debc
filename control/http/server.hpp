// The Boost.Beast HTTP server around a Router (http/router.hpp).
//
// Per connection (a Session on its own strand): a request is read with a
// header limit and a body limit, answered by the Router, written, and
// only then is the next one read, so pipelined requests wait in the
// connection's bounded read buffer (one in service at a time). Every read
// and write has a deadline (idle connections are closed); a connection is
// closed after max_requests. Over-long headers get 431 and bodies over the
// limit 413, then the connection closes.
// Every answer gets X-Frame-Options: DENY and Referrer-Policy: no-referrer
// unless the handler set them.
//
// HTTPS: when ServerOptions::tls holds a context (make_tls_context()), every
// connection starts with a TLS handshake (TLS 1.2 or later, under the same
// read deadline) and answers carry Strict-Transport-Security; a connection
// ends with close_notify. Without it the server speaks plain HTTP.
//
// Thread-safety: run the io_context on any number of threads; sessions are
// serialised by their strands, the Router's handlers may run on several at
// once. The Router must outlive the Server.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

#include "control/http/router.hpp"

namespace sekisho::control::http {

struct ServerOptions {
  std::chrono::seconds timeout{30};   // per read and per write
  std::size_t header_limit = 8 * 1024;
  std::size_t body_limit = 64 * 1024;
  std::size_t read_buffer_limit = 64 * 1024;  // bounds pipelined bytes waiting
  unsigned max_requests = 1000;               // per connection
  std::shared_ptr<boost::asio::ssl::context> tls;  // null: plain HTTP
};

// A TLS server context from PEM files: the certificate chain (server
// certificate first) and its private key; TLS 1.2 and later, forward-secret
// AEAD ciphers for TLS 1.2. Throws TlsError saying which file and why (the
// caller adds the configuration's FILE:LINE).
class TlsError : public std::runtime_error {
 public:
  enum class Which { certificate, key };
  TlsError(Which w, const std::string& reason) : std::runtime_error(reason), which(w) {}
  Which which;
};
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const std::string& certificate_pem,
                                                            const std::string& key_pem);

class Server {
 public:
  // Binds and listens; throws boost::system::system_error (e.g. address in
  // use). Call start() to accept.
  Server(boost::asio::io_context& ioc, const boost::asio::ip::tcp::endpoint& endpoint, const Router& router,
         ServerOptions options = {});
  ~Server();
  void start();
  // The bound endpoint (the real port when 0 was asked for).
  boost::asio::ip::tcp::endpoint local_endpoint() const;

 private:
  struct Listener;
  std::shared_ptr<Listener> listener_;
};

}  // namespace sekisho::control::http
