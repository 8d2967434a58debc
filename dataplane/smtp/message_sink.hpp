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

#include <span>

#include "scanners/message/message.hpp"

namespace sekisho::smtp {

using message::Anomaly;
using message::BodyVia;
using message::Desync;
using message::SessionFacts;
using message::Transaction;
using message::anomaly_name;
using message::anomaly_text;
using message::desync_name;
using message::desync_text;
using message::kAnomalyCount;
using message::kDesyncCount;

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
