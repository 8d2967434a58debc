#include "dataplane/pipeline/connection.hpp"

#include "journal/mime_part.hpp"
#include "journal/time.hpp"

#include <algorithm>
#include <ctime>
#include <new>

namespace sekisho::pipeline {

namespace {
std::string hex(const unsigned char* md, unsigned n) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s.push_back(k[md[i] >> 4]);
    s.push_back(k[md[i] & 15]);
  }
  return s;
}
}  // namespace

Connection::~Connection() {
  if (sha_) EVP_MD_CTX_free(sha_);
}

void Connection::start(const tcp::Limits* lim, tcp::BufferPool* pool, const smtp::Limits& smtp_limits, FlowEvents* events,
                     double now, size_t retain_bytes) {
  retain_limit_ = retain_bytes;
  std::vector<Ended>().swap(ended_);
  streaming_ = false;
  release_message_state();
  retained_.clear();
  retain_overflow_ = false;
  tcp_.reset(lim, pool, this);
  smtp_.emplace(this, smtp_limits);
  events_ = events;
  client_.clear();
  server_.clear();
  start_ = now_ = now;
  gaps_ = 0;
  reported_ = false;
  desync_reported_ = false;
  sha_open_ = false;
  pending_action_ = Action::pass;
  if (policy_ && events_) events_->message_released(policy_);
  policy_ = nullptr;
  decided_rule_.clear();
  reference_.clear();
  enforced = Enforced{};
}

void Connection::on_message_end(const SessionFacts& f, const Transaction& t) {
  streaming_ = false;
  mime::MessageFacts facts;
  if (mime_) {
    mime_->finish();
    facts = mime_->take_facts();
  }
  ended_.push_back({finish_sha256(), std::move(facts)});
  MessageRecord m;
  m.policy = policy_;
  m.sha256 = ended_.back().sha256;
  m.mime = &ended_.back().mime;
  m.content = content_.get();
  if (content_) {
    if (retain_limit_) {
      m.message = {reinterpret_cast<const uint8_t*>(retained_.data()), std::min(retained_.size(), scan_cap())};
      m.message_truncated = message_bytes_ > scan_cap();
    } else {
      m.message = {reinterpret_cast<const uint8_t*>(content_->message().data()), content_->message().size()};
      m.message_truncated = content_->truncated();
    }
  }
  m.ts = now_;
  m.client = client_;
  m.server = server_;
  m.session = &f;
  m.txn = &t;
  message_ended_ = true;
  if (events_) events_->on_message_end(m);
  if (events_ && policy_) events_->message_released(policy_);
  policy_ = nullptr;
  decided_rule_ = m.verdict.rule;
  reference_ = m.verdict.id;
  reply_text_ = m.verdict.reply;
  pending_action_ = m.verdict.action;
  ended_.back().verdict = std::move(m.verdict);
}

void Connection::fill_last_verdict(MessageRecord& rec) const {
  if (ended_.empty()) return;
  const Ended& e = ended_.back();
  rec.mime = &e.mime;
  rec.verdict = e.verdict;
}

tcp::SegmentVerdict Connection::on_segment(bool from_a, const net::Packet& p, std::span<uint8_t> payload,
                                         tcp::EventCounters& ev, double now) {
  now_ = now;
  return tcp_.on_segment(from_a, p, payload, ev);
}

void Connection::close(tcp::EventCounters& ev) {
  tcp_.close(ev);
  on_close();
}

void Connection::on_data(bool from_client, std::span<const uint8_t> b) {
  from_client ? smtp_->on_client(b) : smtp_->on_server(b);
}

void Connection::on_gap(bool from_client, uint64_t len) {
  ++gaps_;
  smtp_->on_gap(from_client, len);
}

void Connection::on_message_begin(const SessionFacts&, const Transaction&) {
  if (!sha_) sha_ = EVP_MD_CTX_new();
  sha_open_ = sha_ && EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr) == 1;
  retained_.clear();
  retain_overflow_ = false;
  message_bytes_ = 0;
  if (mime_) mime_->reset();
  else mime_.reset(new (std::nothrow) mime::MimeParser());  // null if out of memory: no MIME facts
  streaming_ = true;
  if (events_) {
    if (policy_) events_->message_released(policy_);  // a message that never ended
    policy_ = events_->message_started();
  }
  if (content_limits_ && (!events_ || events_->wants_content(policy_))) {
    if (content_) content_->reset();
    else content_.reset(new (std::nothrow) mime::ContentCollector(*content_limits_));
  } else {
    content_.reset();
  }
  if (mime_) mime_->set_sink(content_.get());
}

void Connection::on_body(std::span<const uint8_t> b) {
  if (sha_open_) EVP_DigestUpdate(sha_, b.data(), b.size());
  if (mime_) mime_->feed(b);
  message_bytes_ += b.size();
  if (!retain_limit_) {
    if (content_) content_->message_bytes(b);  // nothing retained: the collector keeps the scan's copy
    return;
  }
  // One retained copy for the spool and the scan's raw message: up to the
  // retain limit (spoolable), and at least the scan's prefix.
  if (!retain_overflow_ && message_bytes_ > retain_limit_) {
    retain_overflow_ = true;  // too large to spool: only the scan's prefix stays
    if (retained_.size() > scan_cap()) retained_.resize(scan_cap());
    if (retained_.capacity() > 2 * scan_cap() + 4096) retained_.shrink_to_fit();
  }
  const size_t cap = retain_overflow_ ? scan_cap() : std::max(retain_limit_, scan_cap());
  if (retained_.size() < cap)
    retained_.append(reinterpret_cast<const char*>(b.data()), std::min(b.size(), cap - retained_.size()));
}


std::string Connection::finish_sha256() {
  if (!sha_open_) return "";
  sha_open_ = false;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  return EVP_DigestFinal_ex(sha_, md, &n) == 1 ? hex(md, n) : "";
}

std::string Connection::sha256_so_far() const {
  if (!ended_.empty()) return ended_.back().sha256;
  if (!sha_open_) return "";
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  bool ok = copy && EVP_MD_CTX_copy_ex(copy, sha_) == 1 && EVP_DigestFinal_ex(copy, md, &n) == 1;
  EVP_MD_CTX_free(copy);
  return ok ? hex(md, n) : "";
}

void Connection::on_transaction_done(const SessionFacts& f, const Transaction& t) {
  MessageRecord m;
  m.ts = now_;
  m.client = client_;
  m.server = server_;
  m.session = &f;
  m.txn = &t;
  Ended e;
  if (t.complete && !ended_.empty()) {
    e = std::move(ended_.front());
    ended_.erase(ended_.begin());
    if (ended_.empty()) std::vector<Ended>().swap(ended_);  // idle flows keep no capacity
    m.mime = &e.mime;
  } else {
    e.sha256 = finish_sha256();  // a message cut short: what was seen of it
    static const mime::MessageFacts kNone;
    if (mime_) mime_->finish();
    m.mime = mime_ ? &mime_->facts() : &kNone;
  }
  m.sha256 = std::move(e.sha256);
  m.verdict = std::move(e.verdict);
  m.spool = std::move(e.spool);
  if (events_) events_->on_message(m);
  if (!streaming_) release_message_state();
}

void Connection::release_message_state() {
  mime_.reset();
  content_.reset();
  sha_open_ = false;
  if (sha_) EVP_MD_CTX_free(sha_);
  sha_ = nullptr;
}

void Connection::on_close() {
  if (reported_ || !smtp_) return;
  reported_ = true;
  smtp_->on_close();
  if (policy_ && events_) events_->message_released(policy_);
  policy_ = nullptr;
  const auto& f = smtp_->facts();
  if (f.greeting.empty() && f.commands == 0) return;  // never spoke SMTP
  SessionRecord s{start_, now_, client_, server_, &f, gaps_};
  if (events_) events_->on_session(s);
}

std::string iso_time(double ts) { return journal::iso_time_us(journal::unix_us(ts)); }

journal::MessageEvent to_event(const MessageRecord& m) {
  const SessionFacts& f = *m.session;
  const Transaction& t = *m.txn;
  journal::MessageEvent e;
  e.ts_us = journal::unix_us(m.ts);
  e.client = m.client;
  e.server = m.server;
  e.helo = f.helo;
  e.mail_from = t.mail_from;
  e.rcpt_to = t.rcpt_to;
  e.rcpt_refused = t.rcpt_refused;
  e.tls = f.tls;
  if (!f.auth_mechanism.empty()) e.auth = f.auth_mechanism;
  e.size = t.body_bytes;
  if (!m.sha256.empty()) e.sha256 = m.sha256;
  if (t.final_reply) e.server_reply = t.final_reply;
  e.body_via = t.body_via == message::BodyVia::bdat ? message::BodyVia::bdat : message::BodyVia::data;
  e.complete = t.complete;
  e.gap = t.gap;
  if (m.mime) e.mime = journal::to_mime_part(*m.mime);
  const verdict::Verdict& v = m.verdict;
  // A tagged message is delivered: the event says pass, with the tagging rule.
  e.verdict.action = v.action == Action::tag ? Action::pass : v.action;
  e.verdict.rule = v.rule;
  if (!v.rules_hit.empty() || !v.sender_class.empty()) {
    journal::ContentScan& s = e.verdict.scan.emplace();
    s.score = v.score;
    s.rules.reserve(v.rules_hit.size());
    for (const auto& [rule, ctx] : v.rules_hit) s.rules.push_back({rule, ctx});
    s.sender_class = v.sender_class;
    s.categories = v.categories;
  }
  e.id = v.id;
  if (!m.spool.empty()) e.spool = m.spool;
  return e;
}

journal::SessionEvent to_event(const SessionRecord& s) {
  const SessionFacts& f = *s.session;
  journal::SessionEvent e;
  e.ts_us = journal::unix_us(s.start);
  e.end_us = journal::unix_us(s.end);
  e.client = s.client;
  e.server = s.server;
  e.helo = f.helo;
  e.greeting = f.greeting;
  e.capabilities = f.capabilities;
  e.tls = f.tls;
  if (!f.auth_mechanism.empty()) e.auth = f.auth_mechanism;
  e.commands = f.commands;
  e.messages = f.transactions;
  e.gaps = s.gaps;
  if (f.desync != message::Desync::none) e.desync = message::desync_name(f.desync);
  for (size_t i = 0; i < message::kAnomalyCount; ++i)
    if (f.anomalies[i]) e.anomalies[message::anomaly_name(message::Anomaly(i))] = f.anomalies[i];
  return e;
}

nlohmann::json message_json(const MessageRecord& m) { return journal::to_json(to_event(m)); }
nlohmann::json session_json(const SessionRecord& s) { return journal::to_json(to_event(s)); }

}  // namespace sekisho::pipeline
