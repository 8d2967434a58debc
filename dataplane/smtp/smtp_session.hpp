// The SMTP protocol engine: both directions of one session, fed in order
// (the TCP engine delivers contiguous bytes), push-style and incremental.
// It models the receiver: a client byte means what the server will take it
// to mean, and a command's effect applies when the server's reply says so.
//
//   client bytes --> command parser ---------------> pending-command queue (PIPELINING)
//        |  DATA, AUTH, STARTTLS; EHLO/HELO, RSET <arg>,    |          ^
//        |  XCLIENT inside a transaction: the reply         |          | replies matched in order
//        v  decides how the bytes behind them read          |          |
//   hold buffer (64 KiB, 32 lines; a line that could end    |          |
//        |  a message there is a desync at once)            |          |
//        |  354 -> data mode, 334 -> one SASL line,         |          |
//        |  other replies -> replayed as commands           |          |
//        v                                                  v          |
//   data mode (dot-unstuffing) -> MessageSink::on_body                 |
//        |  CRLF.CRLF; LF.LF, CRLF.LF, LF.CRLF if lenient              |
//        |  (else a desync); CR.CRLF, CR.LF: a desync                  |
//        v                                                             |
//   on_message_end  ...  final reply -> on_transaction_done            |
//   server bytes --> reply parser (multi-line) ------------------------+
//
// BDAT n: the next n client bytes are message data whatever the server
// answers (RFC 3030), if the server advertised CHUNKING and the command is
// one every server parses alike; BDAT ... LAST ends the message. MAIL,
// RCPT, EHLO/HELO, RSET <arg> and XCLIENT change the envelope by their
// replies: a nested MAIL is expected to be refused (a MAIL accepted there
// is a desync), an EHLO/HELO resets the transaction only when accepted, a
// refused RCPT is refused. A bare RSET always succeeds (RFC 5321) and
// applies at once, so what is pipelined after it reads as the server will.
// After STARTTLS and its 220 the session is encrypted: nothing more is
// parsed. AUTH: the mechanism is recorded; a client line is a SASL response
// only after the server's 334, and is never stored.
//
// Desync (desync.def): where the engine cannot know what the server reads,
// it says why (desync(), sticky) while it processes the bytes that caused
// it, and stops parsing; the caller keeps that segment from the server.
// Anomalies (anomalies.def) are counted and never stop anything.
//
// Thread-safety: one instance per session, used by one thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "dataplane/smtp/message_sink.hpp"

namespace sekisho::smtp {

// Which end-of-data sequences end a message. lenient: CRLF.CRLF and the
// bare-LF variants (LF.LF, CRLF.LF, LF.CRLF) as Postfix (before 3.9) and
// other lenient servers read them, each counted and marked bare_lf_end;
// strict: only CRLF.CRLF, and a variant is a desync (ambiguous_end_of_data).
enum class EndOfData : uint8_t { strict, lenient };

struct Limits {
  size_t max_line = 4096;          // RFC 5321: 512 for commands, 1000 for text; be lenient
  size_t max_pending = 1100;       // pipelined commands awaiting replies (> max_recipients)
  size_t max_recipients = 1000;
  size_t max_commands = 100000;    // per session
  // Offline only (captures): if the server has sent nothing when the client
  // starts a message, its replies are assumed positive (counted as
  // server_silent); and after a desync the engine records the reason and
  // parses on, best effort (a capture has no segment to hold back). Never
  // inline: there the server is always seen, and a desync stops parsing.
  bool assume_silent_server_accepts = false;
  // The port masks STARTTLS in the server's EHLO reply: a client STARTTLS
  // is a desync (starttls_masked) before the server sees it.
  bool refuse_starttls = false;
  EndOfData end_of_data = EndOfData::lenient;
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
  // The first reason the engine's view may differ from the server's;
  // Desync::none while in sync. Set while on_client/on_server processes the
  // bytes that cause it; parsing stops there.
  Desync desync() const { return facts_.desync; }
  const Transaction& transaction() const { return txn_; }
  // The message that ended last and still waits for its reply, if any.
  const Transaction* last_ended() const { return awaiting_.empty() ? nullptr : &awaiting_.back(); }
  bool encrypted() const { return facts_.tls; }
  bool in_data() const { return msg_open_; }

 private:
  enum class ClientMode : uint8_t { command, hold, data, bdat, stopped, proxy_preamble };
  // The command whose reply decides how the held client bytes are read.
  enum class HoldFor : uint8_t { data, auth, starttls, helo, rset };
  enum class MailState : uint8_t { none, pending, accepted, refused };
  enum class Cmd : uint8_t {
    greeting, helo, ehlo, mail, mail_nested, rcpt, rcpt_over_limit, data, data_end,
    bdat, bdat_last, bdat_bad, rset, rset_args, starttls, auth, quit, other
  };
  struct Pending {
    Cmd cmd;
    uint32_t rcpt_index;  // rcpt: index into the transaction's rcpt_pending; ehlo/helo/rset_args: 1 if sent with a transaction open
    uint32_t txn_seq;     // the transaction the command belongs to
  };
  Transaction* find_transaction(uint32_t seq);

  void anomaly(Anomaly a) { ++facts_.anomalies[size_t(a)]; }
  void lose_sync(Desync d);
  // A dot-leading line after a bare LF (not an end of data): counted, a desync;
  // true when parsing stopped (|used| set to |n|).
  bool dot_after_bare_lf(size_t n, size_t& used);
  void client_line(std::string_view line);
  void bdat_command(std::string_view arg);
  void server_reply(int code, bool last, std::string_view text);
  void handle_reply(int code, std::string_view first_line);
  void push_pending(Cmd c, uint32_t idx = 0);
  void begin_message(BodyVia via);
  void finish_message();
  void end_transaction();
  void reset_transaction();
  void abandon_transaction();
  // The server has (or, by a pending reply, may have) a transaction open.
  bool transaction_open() const {
    return mail_ == MailState::pending || mail_ == MailState::accepted || nested_mail_pending_ || msg_open_;
  }  // the server dropped the open transaction (RSET, EHLO)
  void end_of_data(Anomaly variant);
  void feed_data(const uint8_t* p, size_t n, size_t& used);
  void start_hold(HoldFor why);
  void hold_bytes(const uint8_t* p, size_t n);
  void check_held_line(size_t begin, size_t end);
  bool take_sasl_line();
  void release_hold();

  MessageSink* sink_;
  Limits lim_;
  SessionFacts facts_;
  Transaction txn_;                // the transaction being built by the client
  MailState mail_ = MailState::none;  // txn_'s MAIL, by the server's reply
  uint32_t nested_mail_pending_ = 0;  // MAILs sent inside a transaction, reply not seen
  bool msg_open_ = false;          // txn_ has begun a message that has not ended
  std::vector<Transaction> awaiting_;  // ended messages waiting for their final reply (FIFO)
  ClientMode client_mode_ = ClientMode::command;
  std::vector<Pending> pending_;   // ring-like queue, front = oldest
  size_t pending_head_ = 0;
  std::string cline_, sline_;      // partial lines (bounded by max_line)
  bool cline_overflow_ = false, sline_overflow_ = false;
  std::string reply_text_;         // first line of the reply being assembled
  std::vector<std::string> ehlo_lines_;
  // Client bytes after a command whose reply decides how they are read
  // (bounded): DATA (354: message data), AUTH (334: one SASL line),
  // EHLO/HELO and RSET with arguments (reset or not), STARTTLS (none allowed).
  std::string hold_;
  HoldFor hold_for_ = HoldFor::data;
  size_t hold_line_ = 0;           // start of the first line of hold_ not yet checked
  size_t hold_lines_ = 0;          // complete lines held (bounded)
  bool sasl_owed_ = false;         // the server sent 334: the next held line is SASL
  bool hold_starttls_ = false;     // a held STARTTLS line: no byte may follow it
  bool auth_initial_response_ = false;  // the held AUTH carried one (RFC 4954 allows MAIL/RCPT/DATA behind it)
  std::string helo_arg_;           // the held EHLO/HELO's argument, applied on 250
  bool helo_is_ehlo_ = false;
  // dot-unstuffing state machine
  // cr: a bare CR was the last byte; cr_dot, cr_dot_cr: <CR>. and <CR>.<CR>
  // seen (an end of data for servers that take a bare CR as a line end).
  enum class DotState : uint8_t { line_start, in_line, dot, dot_cr, cr, cr_dot, cr_dot_cr };
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
