// Connection: one followed TCP connection, the glue of the message path:
// the TCP engine feeding the SMTP engine, the SMTP engine feeding the MIME
// engine and the content collector, the SHA-256 of each message as
// delivered, one bounded retained copy (spool), the verdict asked of the
// Events at the hold point, and the events that come out (one per
// message, one per session) as plain records. Shared by the dataplane
// workers, sekisho-replay and the benchmarks so all three run the same code.
//
// Thread-safety: a Connection belongs to the thread that owns its table.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "journal/event.hpp"
#include "scanners/mime/collect.hpp"
#include "scanners/mime/mime_parser.hpp"
#include "dataplane/smtp/smtp_session.hpp"
#include "dataplane/tcp/tcp_stream.hpp"
#include "scanners/verdict/evaluator.hpp"

namespace sekisho::pipeline {

using message::SessionFacts;
using message::Transaction;
using verdict::Action;

struct MessageRecord {
  double ts = 0;             // time of the packet that ended the transaction
  std::string client, server;  // "ip:port"
  const SessionFacts* session = nullptr;
  const Transaction* txn = nullptr;
  std::string sha256;        // hex, of the message as delivered ("" if no body)
  verdict::Verdict verdict;  // what was decided at the hold point (action, rule, reference id, scan findings)
  std::string spool;         // where a quarantined message was written
  const void* policy = nullptr;  // what message_started() returned for this message
  const mime::MessageFacts* mime = nullptr;  // what the MIME engine found: header fields, URLs, attachments
  // At the hold point only (on_message_end), when content collection is on:
  // the header fields and texts, bounded, for a content scan; and the
  // message as received ("full"), a prefix of the one retained copy (or
  // the collector's when nothing is retained), with whether it was cut.
  const mime::ContentCollector* content = nullptr;
  std::span<const uint8_t> message;
  bool message_truncated = false;
};

// What the evaluator reads about |m| (scanners/verdict), borrowed from it:
// the one mapping for the workers, sekisho-replay and the benchmarks.
inline verdict::Inputs verdict_inputs(const MessageRecord& m) {
  verdict::Inputs in;
  in.session = m.session;
  in.txn = m.txn;
  in.client_ip = verdict::host_of(m.client);
  in.content = m.content;
  in.mime = m.mime;
  in.message = m.message;
  in.message_truncated = m.message_truncated;
  return in;
}

struct SessionRecord {
  double start = 0, end = 0;
  std::string client, server;
  const SessionFacts* session = nullptr;
  uint64_t gaps = 0;
};

class FlowEvents {
 public:
  virtual ~FlowEvents() = default;
  virtual void on_message(const MessageRecord&) = 0;
  virtual void on_session(const SessionRecord&) {}
  // The end of a message was seen (the hold point): decide into m.verdict.
  // |m| has the envelope, the message's SHA-256, its MIME facts and (when
  // collected) its contents. Default: pass.
  virtual void on_message_end(MessageRecord& m) { (void)m; }
  // A message begins: returns the policy it will be judged by (kept by the
  // flow and handed back in on_message_end), so a policy swapped in while
  // the message streams does not change its verdict.
  virtual const void* message_started() { return nullptr; }
  // Whether a message judged by |policy| needs its contexts collected for a
  // content scan (a ruleset is loaded). Default: yes.
  virtual bool wants_content(const void* policy) {
    (void)policy;
    return true;
  }
  // The message ended or was abandoned: the policy is no longer needed.
  virtual void message_released(const void* policy) { (void)policy; }
};

class Connection : public tcp::StreamSink, public smtp::MessageSink {
 public:
  Connection() = default;
  Connection(const Connection&) : Connection() {}  // table slots are built empty; state is never copied
  Connection& operator=(const Connection&) { return *this; }
  ~Connection() override;

  // (Re)starts the flow for a new connection. |retain_bytes| > 0 keeps a
  // copy of each message (up to that size) for quarantine. That one copy
  // also serves the content scan's view of the raw message (its first
  // CollectLimits::message_bytes), so a message is never held twice.
  void start(const tcp::Limits* lim, tcp::BufferPool* pool, const smtp::Limits& smtp_limits, FlowEvents* events, double now,
             size_t retain_bytes = 0);
  // One TCP segment; see tcp::TcpFlow::on_segment. |now| stamps events.
  tcp::SegmentVerdict on_segment(bool from_a, const net::Packet& p, std::span<uint8_t> payload,
                                 tcp::EventCounters& ev, double now);
  // Ends the flow (idle timeout, table teardown): reports what is open.
  void close(tcp::EventCounters& ev);
  // Fail-open after a desync: reports what is open, inspects no more.
  void bypass(tcp::EventCounters& ev) {
    tcp_.bypass(ev);
    on_close();
  }
  // The reason the SMTP engine lost sync with the server (desync.def name),
  // once, after the segment that caused it; nullptr while in sync. The
  // caller must then keep that segment from the server (or, fail-open,
  // bypass the flow).
  const char* take_desync() {
    if (desync_reported_ || !smtp_ || smtp_->desync() == message::Desync::none) return nullptr;
    desync_reported_ = true;
    return desync_name(smtp_->desync());
  }

  void set_endpoints(std::string client, std::string server) {
    client_ = std::move(client);
    server_ = std::move(server);
  }
  bool has_endpoints() const { return !client_.empty(); }
  const std::string& client_endpoint() const { return client_; }
  const std::string& server_endpoint() const { return server_; }
  tcp::TcpFlow& tcp() { return tcp_; }
  const tcp::TcpFlow& tcp() const { return tcp_; }
  const smtp::SmtpSession* smtp() const { return smtp_ ? &*smtp_ : nullptr; }
  bool finished() const { return reported_; }
  double last_seen() const { return now_; }
  // The action decided during the last on_segment, if a message ended in it.
  Action take_action() {
    Action a = pending_action_;
    pending_action_ = Action::pass;
    return a;
  }
  const std::string& last_reference() const { return reference_; }
  // True once after a segment in which a message ended (the hold point).
  bool take_message_ended() {
    bool e = message_ended_;
    message_ended_ = false;
    return e;
  }
  const std::string& last_rule() const { return decided_rule_; }
  // The reply text the deciding rule gave for a reject/tempfail ("" = default).
  const std::string& last_reply_text() const { return reply_text_; }
  // Copies what was decided for the message that ended last (its MIME
  // facts by pointer, valid until the reply; its verdict) into rec, for the
  // spool header of a held message.
  void fill_last_verdict(MessageRecord& rec) const;
  // SHA-256 (hex) of the message that ended last and awaits its reply (at
  // the hold point: the whole message), else of the bytes seen so far.
  std::string sha256_so_far() const;
  // The retained copy of the message that just ended (moved out), and
  // whether it is complete (false: it outgrew the retention limit).
  std::string take_retained(bool& complete) {
    complete = !retain_overflow_;
    retain_overflow_ = false;
    return std::move(retained_);
  }
  // Content collection for a scan at the hold point (null: off). The limits
  // object must outlive the flow.
  void set_content_limits(const mime::CollectLimits* lim) { content_limits_ = lim; }
  // Overrides the decided action (e.g. quarantine that could not be kept).
  void set_outcome(Action a, std::string spool_path, const char* rule = nullptr) {
    if (ended_.empty()) return;
    ended_.back().verdict.action = a;
    ended_.back().spool = std::move(spool_path);
    if (rule) ended_.back().verdict.rule = rule;
  }

  // Enforcement state once a verdict has cut the server off: the dataplane
  // speaks for the server towards the client from then on.
  struct Enforced {
    bool active = false;
    uint32_t server_seq = 0;  // next sequence number we send as the server
    bool closing = false;     // our FIN is sent
    bool done = false;        // the client's FIN is acknowledged: the slot may go
    bool held = false;        // waiting for the spool: say nothing yet
  } enforced;

 private:
  void on_data(bool from_client, std::span<const uint8_t> b) override;
  void on_gap(bool from_client, uint64_t len) override;
  void on_close() override;
  void on_message_begin(const SessionFacts&, const Transaction&) override;
  void on_body(std::span<const uint8_t> b) override;
  void on_transaction_done(const SessionFacts& f, const Transaction& t) override;
  void on_message_end(const SessionFacts& f, const Transaction& t) override;
  std::string finish_sha256();  // ends the running hash: hex, "" if none

  tcp::TcpFlow tcp_;
  std::optional<smtp::SmtpSession> smtp_;
  FlowEvents* events_ = nullptr;
  EVP_MD_CTX* sha_ = nullptr;
  bool sha_open_ = false;
  std::string client_, server_;
  double start_ = 0, now_ = 0;
  uint64_t gaps_ = 0;
  bool reported_ = false;
  bool desync_reported_ = false;
  Action pending_action_ = Action::pass;
  bool message_ended_ = false;
  std::string decided_rule_, reference_;  // of the message that ended last
  std::string reply_text_;
  const void* policy_ = nullptr;  // held from message begin to message end
  // The MIME engine of the message streaming now; with the hash context,
  // held only while a message is open so idle flows stay small.
  std::unique_ptr<mime::MimeParser> mime_;
  std::unique_ptr<mime::ContentCollector> content_;
  const mime::CollectLimits* content_limits_ = nullptr;
  bool streaming_ = false;
  void release_message_state();
  // Messages whose end was seen, oldest first, until their reply: a
  // pipelining client may start the next one (BDAT) before it comes.
  struct Ended {
    std::string sha256;
    mime::MessageFacts mime;
    verdict::Verdict verdict;
    std::string spool;
  };
  std::vector<Ended> ended_;
  size_t retain_limit_ = 0;
  std::string retained_;         // the message as received, up to max(retain limit, scan limit)
  bool retain_overflow_ = false; // over the retain limit: not spoolable (a scan prefix may remain)
  uint64_t message_bytes_ = 0;   // of the message streaming now
  size_t scan_cap() const { return content_ && content_limits_ ? content_limits_->message_bytes : 0; }
};

// The records as the journal's events (journal/event.hpp): the one writer of
// the dataplane-to-control contract.
journal::MessageEvent to_event(const MessageRecord& m);
journal::SessionEvent to_event(const SessionRecord& s);
// Their JSON objects (journal::to_json), for the event journal, the spool
// header and sekisho-replay.
nlohmann::json message_json(const MessageRecord& m);
nlohmann::json session_json(const SessionRecord& s);
std::string iso_time(double unix_seconds);  // journal::iso_time_us of the time, truncated to µs

}  // namespace sekisho::pipeline
