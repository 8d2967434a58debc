// The SMTP protocol engine: both directions of one session, fed in order
// (the TCP engine delivers contiguous bytes), push-style and incremental.
//
//   client bytes --> command parser ----+----> pending-command queue (PIPELINING)
//                        |  DATA + 354   |                 ^
//                        v               |                 | replies matched in order
//                   data mode (dot-unstuffing) -> MessageSink::on_body
//                        |  "."            |
//                        v                 v
//                   on_body_end  ...  final reply -> on_transaction_done
//   server bytes --> reply parser (multi-line) --------------+
//
// BDAT n: the next n client bytes are message data whatever the server
// answers (RFC 3030); BDAT ... LAST ends the message. After STARTTLS and
// its 220 the session is encrypted: nothing more is parsed. AUTH: the
// mechanism is recorded; SASL lines are skipped and never stored.
//
// Thread-safety: one instance per session, used by one thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "smtp/message_sink.hpp"

namespace sekisho::smtp {

struct Limits {
  size_t max_line = 4096;          // RFC 5321: 512 for commands, 1000 for text; be lenient
  size_t max_pending = 1100;       // pipelined commands awaiting replies (> max_recipients)
  size_t max_recipients = 1000;
  size_t max_commands = 100000;    // per session
  // Offline only (one-sided captures): if the server has sent nothing when
  // the client starts a message, its replies are assumed positive (counted
  // as server_silent). Never inline: there the server is always seen.
  bool assume_silent_server_accepts = false;
};

class SmtpSession {
 public:
  SmtpSession(MessageSink* sink, Limits limits = {});

  // Contiguous in-order bytes of one direction. Return the number of bytes
  // consumed: always all of them (partial lines are kept, bounded).
  void on_client(std::span<const uint8_t> bytes);
  void on_server(std::span<const uint8_t> bytes);
  // |len| bytes of one direction are missing (capture gap, cap reached).
  void on_gap(bool client, uint64_t len);
  // The connection ended: any open transaction with data is reported.
  void on_close();

  const SessionFacts& facts() const { return facts_; }
  const Transaction& transaction() const { return txn_; }
  // The message that ended last and still waits for its reply, if any.
  const Transaction* last_ended() const { return awaiting_.empty() ? nullptr : &awaiting_.back(); }
  bool encrypted() const { return facts_.tls; }
  bool in_data() const { return client_mode_ == ClientMode::data || client_mode_ == ClientMode::bdat; }

 private:
  enum class ClientMode : uint8_t { command, data_wait, data, bdat, auth, tls_wait, stopped, proxy_preamble };
  enum class Cmd : uint8_t { greeting, helo, ehlo, mail, rcpt, data, data_end, bdat, bdat_last, rset, starttls, auth, quit, other };
  struct Pending {
    Cmd cmd;
    uint32_t rcpt_index;  // for rcpt: index into the transaction's rcpt_pending
    uint32_t txn_seq;     // the transaction the command belongs to
  };
  Transaction* find_transaction(uint32_t seq);

  void anomaly(Anomaly a) { ++facts_.anomalies[size_t(a)]; }
  void client_line(std::string_view line);
  void server_reply(int code, bool last, std::string_view text);
  void handle_reply(int code, std::string_view first_line);
  void push_pending(Cmd c, uint32_t idx = 0);
  void begin_message(BodyVia via);
  void finish_message();
  void end_transaction();
  void reset_transaction();
  void feed_data(const uint8_t* p, size_t n, size_t& used);
  void release_data_wait(bool accepted);

  MessageSink* sink_;
  Limits lim_;
  SessionFacts facts_;
  Transaction txn_;                // the transaction being built by the client
  std::vector<Transaction> awaiting_;  // ended messages waiting for their final reply (FIFO)
  ClientMode client_mode_ = ClientMode::command;
  std::vector<Pending> pending_;   // ring-like queue, front = oldest
  size_t pending_head_ = 0;
  std::string cline_, sline_;      // partial lines (bounded by max_line)
  bool cline_overflow_ = false, sline_overflow_ = false;
  std::string reply_text_;         // first line of the reply being assembled
  std::vector<std::string> ehlo_lines_;
  std::string data_wait_buf_;      // client bytes after DATA before its reply (bounded)
  // dot-unstuffing state machine
  enum class DotState : uint8_t { line_start, in_line, dot, dot_cr };
  DotState dot_ = DotState::line_start;
  bool bare_lf_line_ = false;  // the current line began after an LF without CR
  uint8_t prev_byte_ = '\n';  // last message byte of the previous call
  uint64_t bdat_left_ = 0;
  bool bdat_last_ = false;
  uint32_t next_seq_ = 1;
  bool server_proxy_preamble_ = false;
  bool server_spoke_ = false;      // any server byte seen
  bool silent_server() const { return lim_.assume_silent_server_accepts && !server_spoke_; }
  void assume_accepted();  // skipping an HTTP CONNECT response
};

}  // namespace sekisho::smtp
