#include "control/smtp/smtp_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <optional>
#include <set>

namespace sekisho::control::smtp {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

namespace {

constexpr size_t kMaxLine = 4096;
constexpr size_t kMaxLines = 100;

class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One SMTP connection: plain until STARTTLS, then TLS. Every operation runs
// the private io_context with a deadline.
class Conn {
 public:
  Conn(const ClientOptions& opt, DeliveryResult& r)
      : opt_(opt), res_(r), tls_ctx_(ssl::context::tls_client), stream_(ioc_, tls_ctx_) {}

  void connect(const std::string& host, uint16_t port) {
    tcp::resolver resolver(ioc_);
    boost::system::error_code ec;
    auto eps = resolver.resolve(host, std::to_string(port), ec);
    if (ec) throw Failure("connect: cannot resolve " + host + ": " + ec.message());
    auto& sock = stream_.next_layer();
    if (!opt_.bind_address.empty()) {
      auto local = net::ip::make_address(opt_.bind_address, ec);
      if (ec) throw Failure("connect: bad local address " + opt_.bind_address);
      sock.open(local.is_v6() ? tcp::v6() : tcp::v4());
      sock.bind(tcp::endpoint(local, 0), ec);
      if (ec) throw Failure("connect: cannot bind " + opt_.bind_address + ": " + ec.message());
    }
    host_ = host;
    run([&](auto done) {
      if (opt_.bind_address.empty()) {
        net::async_connect(sock, eps, [done](boost::system::error_code e, const tcp::endpoint&) { done(e); });
      } else {
        sock.async_connect(*eps.begin(), [done](boost::system::error_code e) { done(e); });
      }
    }, "connect to " + host + ":" + std::to_string(port));
  }

  void send(const std::string& line, bool log = true) {
    if (log) res_.transcript.push_back("C: " + line.substr(0, line.size() - 2));
    write_raw(line);
  }
  void write_raw(std::string_view bytes) {
    run([&](auto done) {
      auto h = [done](boost::system::error_code e, size_t) { done(e); };
      if (tls_) net::async_write(stream_, net::buffer(bytes), h);
      else net::async_write(stream_.next_layer(), net::buffer(bytes), h);
    }, "write");
  }

  // One reply, all its lines.
  Reply reply(std::vector<std::string>* lines_out = nullptr) {
    Reply r;
    for (size_t n = 0;; ++n) {
      if (n >= kMaxLines) throw Failure("protocol: reply of more than 100 lines");
      std::string line = read_line();
      res_.transcript.push_back("S: " + line);
      if (line.size() < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
          !isdigit((unsigned char)line[2]) || (line.size() > 3 && line[3] != ' ' && line[3] != '-'))
        throw Failure("protocol: not an SMTP reply: \"" + line.substr(0, 80) + "\"");
      int code = std::stoi(line.substr(0, 3));
      if (n && code != r.code) throw Failure("protocol: reply codes differ within one reply");
      r.code = code;
      std::string text = line.size() > 4 ? line.substr(4) : "";
      if (lines_out) lines_out->push_back(text);
      if (!r.text.empty()) r.text += "\n";
      r.text += text;
      if (line.size() <= 3 || line[3] == ' ') return r;
    }
  }

  void starttls() {
    if (opt_.verify_peer) {
      tls_ctx_.set_verify_mode(ssl::verify_peer);
      if (opt_.ca_file.empty()) tls_ctx_.set_default_verify_paths();
      else tls_ctx_.load_verify_file(opt_.ca_file);
      stream_.set_verify_callback(ssl::host_name_verification(host_));
    } else {
      tls_ctx_.set_verify_mode(ssl::verify_none);
    }
    SSL_CTX_set_min_proto_version(tls_ctx_.native_handle(), TLS1_2_VERSION);
    SSL_set_tlsext_host_name(stream_.native_handle(), host_.c_str());
    if (buf_.size()) throw Failure("protocol: data after the STARTTLS reply (command injection)");
    run([&](auto done) { stream_.async_handshake(ssl::stream_base::client, done); }, "TLS handshake");
    tls_ = true;
  }

  bool tls() const { return tls_; }

 private:
  std::string read_line() {
    size_t n = 0;
    run([&](auto done) {
      auto h = [done, &n](boost::system::error_code e, size_t got) {
        n = got;
        done(e);
      };
      if (tls_) net::async_read_until(stream_, buf_, "\n", h);
      else net::async_read_until(stream_.next_layer(), buf_, "\n", h);
    }, "read");
    std::string line(net::buffers_begin(buf_.data()), net::buffers_begin(buf_.data()) + std::ptrdiff_t(n));
    buf_.consume(n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    return line;
  }

  // Starts op(done) and runs the io_context until done or the deadline.
  template <class Op>
  void run(Op op, const std::string& what) {
    std::optional<boost::system::error_code> result;
    ioc_.restart();
    op([&result](boost::system::error_code e) { result = e; });
    ioc_.run_for(opt_.timeout);
    if (!result) {
      boost::system::error_code ignored;
      stream_.next_layer().close(ignored);
      ioc_.restart();
      ioc_.run_for(std::chrono::seconds(1));
      throw Failure("timeout: " + what + " took longer than " + std::to_string(opt_.timeout.count()) + " s");
    }
    if (*result == net::error::not_found) throw Failure("protocol: reply line longer than 4096 bytes");
    if (*result) throw Failure(what + ": " + result->message());
  }

  const ClientOptions& opt_;
  DeliveryResult& res_;
  net::io_context ioc_;
  ssl::context tls_ctx_;
  ssl::stream<tcp::socket> stream_;
  net::streambuf buf_{kMaxLine};
  std::string host_;
  bool tls_ = false;
};

bool has_8bit(std::string_view s) {
  for (unsigned char c : s)
    if (c & 0x80) return true;
  return false;
}

std::string upper(std::string s) {
  for (char& c : s) c = char(toupper((unsigned char)c));
  return s;
}

// Addresses go into the command line as given: refuse any that could
// inject a command (CR, LF, '<', '>').
void check_address(const std::string& a) {
  for (char c : a)
    if (c == '\r' || c == '\n' || c == '<' || c == '>' || c == '\0')
      throw Failure("protocol: address with a forbidden character: refused to send");
}

}  // namespace

std::vector<std::string> DeliveryResult::failed_permanently() const {
  std::vector<std::string> out;
  for (const auto& r : rcpts)
    if (r.reply.code >= 500) out.push_back(r.rcpt);
  if (delivered || final.code < 500) return out;
  out.clear();
  for (const auto& r : rcpts)
    if (r.reply.code < 300 || r.reply.code >= 500) out.push_back(r.rcpt);
  return out;
}

std::vector<std::string> DeliveryResult::failed_temporarily() const {
  std::vector<std::string> out;
  bool data_failed_temp = !delivered && final.code < 500;
  for (const auto& r : rcpts) {
    if (r.reply.code >= 500) continue;
    if ((r.reply.code >= 200 && r.reply.code < 300) && !data_failed_temp) continue;
    out.push_back(r.rcpt);
  }
  return out;
}

std::string dot_stuff(std::string_view m) {
  std::string out;
  out.reserve(m.size() + m.size() / 64 + 8);
  bool line_start = true;
  for (char c : m) {
    if (line_start && c == '.') out.push_back('.');
    out.push_back(c);
    line_start = c == '\n';
  }
  if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) out += "\r\n";
  out += ".\r\n";
  return out;
}

DeliveryResult deliver(const std::string& host, uint16_t port, const std::string& mail_from,
                       const std::vector<std::string>& rcpts, std::string_view message,
                       const ClientOptions& options) {
  DeliveryResult res;
  for (const auto& r : rcpts) res.rcpts.push_back({r, {}});
  try {
    if (rcpts.empty()) throw Failure("no recipients");
    check_address(mail_from == "<>" ? std::string() : mail_from);
    for (const auto& r : rcpts) check_address(r);
    Conn c(options, res);
    c.connect(host, port);
    Reply greet = c.reply();
    if (greet.code != 220) {
      res.final = greet;
      throw Failure("server refused the connection");
    }
    std::set<std::string> caps;
    auto ehlo = [&] {
      caps.clear();
      c.send("EHLO " + options.helo + "\r\n");
      std::vector<std::string> lines;
      Reply r = c.reply(&lines);
      if (r.code == 250) {
        for (size_t i = 1; i < lines.size(); ++i) caps.insert(upper(lines[i].substr(0, lines[i].find(' '))));
        return;
      }
      c.send("HELO " + options.helo + "\r\n");
      r = c.reply();
      if (r.code != 250) {
        res.final = r;
        throw Failure("server refused EHLO and HELO");
      }
    };
    ehlo();
    if (options.tls != TlsMode::off && caps.count("STARTTLS")) {
      c.send("STARTTLS\r\n");
      Reply r = c.reply();
      if (r.code == 220) {
        c.starttls();
        ehlo();
      } else if (options.tls == TlsMode::require) {
        res.final = r;
        throw Failure("STARTTLS refused and TLS is required");
      }
    } else if (options.tls == TlsMode::require) {
      throw Failure("the server does not offer STARTTLS and TLS is required");
    }
    res.tls = c.tls();

    std::string from = mail_from == "<>" ? "" : mail_from;
    std::string params;
    if (has_8bit(message) && caps.count("8BITMIME")) params += " BODY=8BITMIME";
    bool utf8_addr = has_8bit(from);
    for (const auto& r : rcpts) utf8_addr = utf8_addr || has_8bit(r);
    if (utf8_addr && caps.count("SMTPUTF8")) params += " SMTPUTF8";
    c.send("MAIL FROM:<" + from + ">" + params + "\r\n");
    Reply mr = c.reply();
    if (mr.code / 100 != 2) {
      res.final = mr;
      for (auto& r : res.rcpts) r.reply = mr;
      throw Failure("MAIL FROM refused");
    }
    size_t accepted = 0;
    for (auto& r : res.rcpts) {
      c.send("RCPT TO:<" + r.rcpt + ">\r\n");
      r.reply = c.reply();
      if (r.reply.code / 100 == 2) ++accepted;
    }
    if (!accepted) {
      res.final = res.rcpts.back().reply;
      c.send("QUIT\r\n");
      throw Failure("every recipient was refused");
    }
    c.send("DATA\r\n");
    Reply dr = c.reply();
    if (dr.code != 354) {
      res.final = dr;
      throw Failure("DATA refused");
    }
    res.transcript.push_back("C: <" + std::to_string(message.size()) + " message bytes>");
    c.write_raw(dot_stuff(message));
    res.final = c.reply();
    res.delivered = res.final.code / 100 == 2;
    if (!res.delivered) res.error = "message refused at end of DATA";
    try {
      c.send("QUIT\r\n");
      c.reply();
    } catch (const Failure&) {
      // The message is accepted or refused already; a lost QUIT changes nothing.
    }
  } catch (const Failure& e) {
    res.error = e.what();
    return res;
  } catch (const std::exception& e) {
    res.error = std::string("error: ") + e.what();
    return res;
  }
  return res;
}

}  // namespace sekisho::control::smtp
