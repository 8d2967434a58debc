#include "tools/sekishoctl/ctl_http.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace sekisho::ctl {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

std::string HttpResult::error_text() const {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string())
    return "HTTP " + std::to_string(status) + ": " + j["error"].get<std::string>();
  return "HTTP " + std::to_string(status) + (body.empty() ? "" : ": " + body.substr(0, 300));
}

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string o;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') o.push_back(char(c));
    else {
      o.push_back('%');
      o.push_back(hex[c >> 4]);
      o.push_back(hex[c & 15]);
    }
  }
  return o;
}

Client Client::from_args(std::vector<std::string>& args) {
  const char* env_url = getenv("SEKISHO_URL");
  const char* env_token = getenv("SEKISHO_TOKEN");
  const char* env_ca = getenv("SEKISHO_CA");
  std::string url = env_url && *env_url ? env_url : "http://127.0.0.1:8025";
  std::string token = env_token ? env_token : "";
  std::string ca = env_ca ? env_ca : "";
  bool insecure = false;
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--url" && i + 1 < args.size()) url = args[++i];
    else if (args[i] == "--token" && i + 1 < args.size()) token = args[++i];
    else if (args[i] == "--ca" && i + 1 < args.size()) ca = args[++i];
    else if (args[i] == "--insecure") insecure = true;
    else rest.push_back(args[i]);
  }
  args = rest;
  Client c(url, token);
  c.ca_file = ca;
  c.insecure = insecure;
  return c;
}

Client::Client(std::string url, std::string token) : url_(std::move(url)), token_(std::move(token)) {
  std::string rest;
  if (url_.rfind("http://", 0) == 0) rest = url_.substr(7);
  else if (url_.rfind("https://", 0) == 0) rest = url_.substr(8), tls_ = true;
  else throw CtlError("the URL must start with http:// or https://: " + url_);
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  prefix_ = slash == std::string::npos ? "" : rest.substr(slash);
  while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string::npos) throw CtlError("bad IPv6 address in " + url_);
    host_ = hostport.substr(1, close - 1);
    port_ = close + 1 < hostport.size() && hostport[close + 1] == ':' ? hostport.substr(close + 2) : "";
  } else {
    size_t colon = hostport.rfind(':');
    host_ = hostport.substr(0, colon);
    port_ = colon == std::string::npos ? "" : hostport.substr(colon + 1);
  }
  if (port_.empty()) port_ = tls_ ? "443" : "80";
  if (host_.empty()) throw CtlError("no host in " + url_);
}

HttpResult Client::request(const std::string& method, const std::string& target, const std::string& body,
                           const std::string& content_type) const {
  net::io_context ioc;
  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), prefix_ + target, 11};
  req.set(bhttp::field::host, host_);
  req.set(bhttp::field::user_agent, "sekishoctl");
  req.set(bhttp::field::accept, "application/json");
  if (!token_.empty()) req.set(bhttp::field::authorization, "Bearer " + token_);
  if (!body.empty() || method == "POST" || method == "PUT") {
    req.set(bhttp::field::content_type, content_type);
    req.body() = body;
    req.prepare_payload();
  }
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(1ull << 30);
  beast::flat_buffer buf;
  beast::error_code ec;
  try {
    tcp::resolver resolver(ioc);
    auto eps = resolver.resolve(host_, port_);
    if (tls_) {
      ssl::context ctx(ssl::context::tls_client);
      if (insecure) {
        ctx.set_verify_mode(ssl::verify_none);
      } else {
        ctx.set_verify_mode(ssl::verify_peer);
        if (ca_file.empty()) ctx.set_default_verify_paths();
        else ctx.load_verify_file(ca_file);
      }
      beast::ssl_stream<beast::tcp_stream> s(ioc, ctx);
      if (!insecure) s.set_verify_callback(ssl::host_name_verification(host_));
      SSL_set_tlsext_host_name(s.native_handle(), host_.c_str());
      beast::get_lowest_layer(s).expires_after(timeout);
      beast::get_lowest_layer(s).connect(eps);
      s.handshake(ssl::stream_base::client);
      bhttp::write(s, req);
      bhttp::read(s, buf, parser);
      s.shutdown(ec);
    } else {
      beast::tcp_stream s(ioc);
      s.expires_after(timeout);
      s.connect(eps);
      bhttp::write(s, req);
      bhttp::read(s, buf, parser);
      s.socket().shutdown(tcp::socket::shutdown_both, ec);
    }
  } catch (const boost::system::system_error& e) {
    throw CtlError(url_ + ": " + e.code().message());
  }
  HttpResult r;
  auto& res = parser.get();
  r.status = res.result_int();
  r.body = res.body();
  r.content_type = std::string(res[bhttp::field::content_type]);
  return r;
}

}  // namespace sekisho::ctl
