// What the SMTP engine tells a message consumer: the envelope of each
// transaction, the session's facts, and the message bytes as the server
// stores them. This is the seam the MIME engine (scanners/mime) plugs into;
// it needs nothing else from the SMTP engine.
//
// Call order per message, all from the thread feeding the session:
//   on_message_begin -> on_body* -> on_message_end (the hold point)
//   -> on_transaction_done (the server's reply to end of data: final_reply)
// A message cut short (gap, RST, close) gets on_transaction_done without
// on_message_end, with complete == false. Spans are valid during the call only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sekisho::smtp {

enum class Anomaly : uint8_t {
#define X(name, text) name,
#include "anomalies.def"
#undef X
  count_
};
inline constexpr size_t kAnomalyCount = size_t(Anomaly::count_);
const char* anomaly_name(Anomaly a);
const char* anomaly_text(Anomaly a);

// Why the engine's view of the dialogue may differ from the server's
// (desync.def): the dataplane keeps the segment that caused it from the
// server and answers by its desync policy. none while in sync.
enum class Desync : uint8_t {
  none,
#define X(name, text) name,
#include "desync.def"
#undef X
  count_
};
inline constexpr size_t kDesyncCount = size_t(Desync::count_);
const char* desync_name(Desync d);  // "none" for Desync::none
const char* desync_text(Desync d);

enum class BodyVia : uint8_t { none, data, bdat };

struct Transaction {
  uint32_t seq = 0;                // order in the session, from 1
  std::string mail_from;           // "" for the null sender <>
  std::string mail_params;         // SIZE=, BODY=, SMTPUTF8 ... as sent
  bool mail_accepted = false;
  std::vector<std::string> rcpt_to;       // accepted by the server, in order
  std::vector<std::string> rcpt_refused;  // refused by the server, in order
  std::vector<std::string> rcpt_pending;  // sent, reply not seen yet
  BodyVia body_via = BodyVia::none;
  uint64_t body_bytes = 0;         // after dot-unstuffing
  bool complete = false;           // end of data seen
  bool gap = false;                // bytes missing inside the message
  bool bare_lf_end = false;        // ended by a bare-LF variant of CRLF.CRLF: servers disagree where (SMTP smuggling)
  int final_reply = 0;             // reply code to end of data (0: none seen)
};

struct SessionFacts {
  std::string helo;                // EHLO/HELO argument
  bool ehlo = false;
  std::string greeting;            // server's 220 line
  std::vector<std::string> capabilities;  // EHLO keywords, upper case
  bool tls = false;                // STARTTLS accepted: encrypted from there on
  std::string auth_mechanism;      // "" if no AUTH
  bool auth_success = false;
  uint64_t commands = 0;
  uint32_t transactions = 0;
  std::array<uint32_t, kAnomalyCount> anomalies{};
  Desync desync = Desync::none;    // the first reason the engine lost sync; parsing stopped there
};

// Receives what the engine finds. Called synchronously from feed calls.
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  // The first byte of message data is about to come (after 354, or BDAT).
  virtual void on_message_begin(const SessionFacts&, const Transaction&) {}
  // Message bytes as the server will store them (dot-unstuffed), in order.
  virtual void on_body(std::span<const uint8_t> bytes) = 0;
  // End of data seen (CRLF.CRLF or BDAT LAST): the dataplane's hold point.
  virtual void on_message_end(const SessionFacts&, const Transaction&) {}
  // The transaction is over: the server replied to end of data, or the
  // session ended first (final_reply 0).
  virtual void on_transaction_done(const SessionFacts&, const Transaction&) = 0;
};

}  // namespace sekisho::smtp
