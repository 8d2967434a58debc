// An SMTP client for re-delivery (quarantine release, notifications):
// one message, one connection, the envelope given, the message bytes sent
// unchanged (dot-stuffed on the wire only, so the server stores exactly
// these bytes).
//
// Dialogue: greeting, EHLO (HELO if EHLO is refused), STARTTLS when the
// server offers it (required when tls = require; then EHLO again), MAIL
// FROM (BODY=8BITMIME when the message has 8-bit bytes and the server offers
// it, SMTPUTF8 for non-ASCII addresses when offered), one RCPT TO per
// recipient, DATA when at least one was accepted, QUIT. Every reply is
// bounded (512-byte lines by RFC 5321, accepted up to 4096; at most 100
// lines); every read and write has a deadline.
//
// Thread-safety: deliver() is reentrant (its own io_context per call).
// Errors: never throws for network or protocol failures; they are in the
// result.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sekisho::control::smtp {

enum class TlsMode { off, opportunistic, require };

struct ClientOptions {
  std::string helo = "sekisho-control";
  std::chrono::seconds timeout{60};  // per read, write, connect and handshake
  TlsMode tls = TlsMode::opportunistic;
  bool verify_peer = false;          // verify the server certificate (and its name)
  std::string ca_file;               // "" = the system's default paths
  std::string bind_address;          // local address to connect from ("" = any)
};

struct Reply {
  int code = 0;
  std::string text;  // the lines joined with "\n", without codes
};

struct RcptResult {
  std::string rcpt;
  Reply reply;
};

struct DeliveryResult {
  bool delivered = false;         // DATA accepted (2xx) for at least one recipient
  bool tls = false;               // the message went over TLS
  std::vector<RcptResult> rcpts;  // per recipient, in order
  Reply final;                    // the reply to the end of DATA (or to the failing command)
  std::string error;              // "" or what failed: connect, timeout, protocol, TLS
  std::vector<std::string> transcript;  // "C: ..." / "S: ..." lines, the message body omitted
  // Recipients refused for good (5xx) / for now (4xx or no answer).
  std::vector<std::string> failed_permanently() const;
  std::vector<std::string> failed_temporarily() const;
};

// host: IP address or name; mail_from "" or "<>" is the null sender.
DeliveryResult deliver(const std::string& host, uint16_t port, const std::string& mail_from,
                       const std::vector<std::string>& rcpts, std::string_view message,
                       const ClientOptions& options = {});

// The message as DATA sends it: a '.' added at the start of every line that
// starts with one, CRLF added at the end when missing, then ".\r\n".
std::string dot_stuff(std::string_view message);

}  // namespace sekisho::control::smtp
