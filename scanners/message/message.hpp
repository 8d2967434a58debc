// The message model, below both the dataplane and the control plane: what
// an SMTP transaction and its session carried (envelope, EHLO, TLS, AUTH,
// the engine's anomalies and desync), independent of how it was read. The
// SMTP engine (dataplane/smtp) fills it; the evaluator (scanners/verdict),
// the journal's events and the tools read it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sekisho::message {

enum class Anomaly : uint8_t {
#define X(name, text) name,
#include "scanners/message/anomalies.def"
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
#include "scanners/message/desync.def"
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

}  // namespace sekisho::message
