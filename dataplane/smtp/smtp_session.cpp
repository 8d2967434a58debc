#include "dataplane/smtp/smtp_session.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string_view>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sekisho::smtp {
namespace {

// Index of the first '.' in p[from, n) that follows a '\n' or a '\r' at
// index >= from, or n. Message lines rarely start with a dot, so the body
// is skipped 16 bytes at a time rather than line by line.
size_t find_line_dot(const uint8_t* p, size_t from, size_t n) {
  size_t i = from;
#if defined(__SSE2__)
  const __m128i nl = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r'), dot = _mm_set1_epi8('.');
  while (i + 17 <= n) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 1));
    __m128i eol = _mm_or_si128(_mm_cmpeq_epi8(a, nl), _mm_cmpeq_epi8(a, cr));
    unsigned m = unsigned(_mm_movemask_epi8(_mm_and_si128(eol, _mm_cmpeq_epi8(b, dot))));
    if (m) return i + unsigned(__builtin_ctz(m)) + 1;
    i += 16;
  }
#endif
  for (; i + 1 < n; ++i)
    if ((p[i] == '\n' || p[i] == '\r') && p[i + 1] == '.') return i + 1;
  return n;
}

constexpr size_t kMaxHold = 64 * 1024;  // client bytes held until the reply that decides how to read them
constexpr size_t kMaxHeldLines = 32;    // lines held behind DATA, EHLO/HELO, RSET with arguments, XCLIENT
constexpr size_t kMaxAwaiting = 16;     // ended messages waiting for a reply
constexpr size_t kMaxCapabilities = 64;

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The verb of a client line ends at the first space, tab or CR.
std::string_view verb_of(std::string_view line) {
  size_t e = 0;
  while (e < line.size() && line[e] != ' ' && line[e] != '\t' && line[e] != '\r' && line[e] != '\n') ++e;
  return line.substr(0, e);
}

bool is_verb(std::string_view verb, std::string_view v) { return verb.size() == v.size() && iequals_prefix(verb, v); }

// "FROM:<a@b> SIZE=1" -> address "a@b", params "SIZE=1". Tolerates a space
// after the colon and a missing pair of angle brackets.
void parse_path(std::string_view arg, std::string& addr, std::string& params) {
  arg = trim(arg);
  if (!arg.empty() && arg.front() == '<') {
    size_t close = arg.find('>');
    if (close == std::string_view::npos) {
      addr.assign(arg.substr(1));
      params.clear();
      return;
    }
    addr.assign(arg.substr(1, close - 1));
    params.assign(trim(arg.substr(close + 1)));
  } else {
    size_t sp = arg.find(' ');
    addr.assign(arg.substr(0, sp));
    params.assign(sp == std::string_view::npos ? std::string_view() : trim(arg.substr(sp + 1)));
  }
  // Source routes (@a,@b:user@c) are obsolete: keep the mailbox.
  if (!addr.empty() && addr.front() == '@') {
    size_t colon = addr.find(':');
    if (colon != std::string::npos) addr.erase(0, colon + 1);
  }
}

bool has_capability(const SessionFacts& f, std::string_view kw) {
  for (const auto& c : f.capabilities)
    if (c == kw) return true;
  return false;
}

}  // namespace

SmtpSession::SmtpSession(MessageSink* sink, Limits limits) : sink_(sink), lim_(limits) {
  reset_transaction();
  push_pending(Cmd::greeting);
}

bool SmtpSession::dot_after_bare_lf(size_t n, size_t& used) {
  anomaly(Anomaly::bare_lf_dot_line);
  lose_sync(Desync::ambiguous_dot_stuffing);
  if (client_mode_ != ClientMode::stopped) return false;
  used = n;
  return true;
}

void SmtpSession::lose_sync(Desync d) {
  if (facts_.desync == Desync::none) facts_.desync = d;
  // Offline (a capture: no segment to hold back) the reason is recorded and
  // parsing goes on, best effort, as the engine did before it had desyncs.
  if (!lim_.assume_silent_server_accepts) client_mode_ = ClientMode::stopped;
}

void SmtpSession::push_pending(Cmd c, uint32_t idx) {
  if (pending_.size() - pending_head_ >= lim_.max_pending) {
    anomaly(Anomaly::too_many_pending);
    lose_sync(Desync::too_many_pending);
    if (client_mode_ == ClientMode::stopped) return;
    ++pending_head_;  // offline: the oldest is dropped
  }
  if (pending_head_ > 64 && pending_head_ * 2 > pending_.size()) {
    pending_.erase(pending_.begin(), pending_.begin() + long(pending_head_));
    pending_head_ = 0;
  }
  pending_.push_back({c, idx, txn_.seq});
}

void SmtpSession::reset_transaction() {
  txn_ = Transaction{};
  txn_.seq = next_seq_++;
  mail_ = MailState::none;
  msg_open_ = false;
}

void SmtpSession::abandon_transaction() {
  // A BDAT message the server dropped before its last chunk: reported, incomplete.
  if (msg_open_ && sink_) sink_->on_transaction_done(facts_, txn_);
  reset_transaction();
}

Transaction* SmtpSession::find_transaction(uint32_t seq) {
  if (txn_.seq == seq) return &txn_;
  for (auto& t : awaiting_)
    if (t.seq == seq) return &t;
  return nullptr;  // reported already
}

void SmtpSession::begin_message(BodyVia via) {
  txn_.body_via = via;
  txn_.body_bytes = 0;
  msg_open_ = true;
  dot_ = DotState::line_start;
  bare_lf_line_ = false;  // the body starts after "DATA\r\n" and its 354
  prev_byte_ = '\n';
  if (sink_) sink_->on_message_begin(facts_, txn_);
}

void SmtpSession::finish_message() {
  txn_.complete = true;
  msg_open_ = false;
  ++facts_.transactions;
  if (sink_) sink_->on_message_end(facts_, txn_);
  if (awaiting_.size() >= kMaxAwaiting) {
    lose_sync(Desync::too_many_unanswered);
    if (sink_) sink_->on_transaction_done(facts_, awaiting_.front());
    awaiting_.erase(awaiting_.begin());
  }
  awaiting_.push_back(std::move(txn_));
  // The server closes the transaction at the end of data, whatever it answers.
  reset_transaction();
}

void SmtpSession::end_transaction() {
  if (awaiting_.empty()) return;
  if (sink_) sink_->on_transaction_done(facts_, awaiting_.front());
  awaiting_.erase(awaiting_.begin());
}

void SmtpSession::on_client(std::span<const uint8_t> bytes) {
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  while (n) {
    switch (client_mode_) {
      case ClientMode::stopped:
        return;
      case ClientMode::data: {
        size_t used = 0;
        feed_data(p, n, used);
        p += used;
        n -= used;
        continue;
      }
      case ClientMode::bdat: {
        size_t take = size_t(std::min<uint64_t>(bdat_left_, n));
        if (take) {
          txn_.body_bytes += take;
          if (sink_) sink_->on_body({p, take});
        }
        p += take;
        n -= take;
        bdat_left_ -= take;
        if (bdat_left_ == 0) {
          client_mode_ = ClientMode::command;
          if (bdat_last_) finish_message();
        }
        continue;
      }
      case ClientMode::hold:
        hold_bytes(p, n);
        return;
      default:
        break;
    }
    // Line modes: command, proxy_preamble.
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p, '\n', n));
    size_t chunk = nl ? size_t(nl - p) + 1 : n;
    if (!cline_overflow_) {
      if (cline_.size() + chunk > lim_.max_line + 2) {
        cline_overflow_ = true;
        anomaly(Anomaly::line_too_long);
        cline_.clear();
        // The server may cut the line into commands the engine never sees.
        if (client_mode_ == ClientMode::command) {
          lose_sync(Desync::command_too_long);
          if (client_mode_ == ClientMode::stopped) return;
        }
      } else {
        cline_.append(reinterpret_cast<const char*>(p), chunk);
      }
    }
    p += chunk;
    n -= chunk;
    if (nl) {
      if (!cline_overflow_) {
        std::string line;
        line.swap(cline_);
        line.pop_back();  // '\n'
        if (!line.empty() && line.back() == '\r') line.pop_back();
        client_line(line);
        line.clear();
        if (cline_.empty()) cline_.swap(line);  // keep the capacity
      }
      cline_overflow_ = false;
    }
  }
}

// ---- holding client bytes until the reply that decides how to read them ----

void SmtpSession::start_hold(HoldFor why) {
  client_mode_ = ClientMode::hold;
  hold_for_ = why;
  hold_.clear();
  hold_line_ = 0;
  hold_lines_ = 0;
  sasl_owed_ = false;
  hold_starttls_ = false;
}

void SmtpSession::hold_bytes(const uint8_t* p, size_t n) {
  if (!n) return;
  // RFC 3207: nothing may follow STARTTLS before its reply.
  if (hold_for_ == HoldFor::starttls || hold_starttls_) {
    lose_sync(Desync::starttls_pipelined);
    if (client_mode_ == ClientMode::stopped) return;
  }
  // Up to the bound, then checked as if the rest had not come: the reason
  // given does not depend on how the bytes were cut into segments.
  const size_t take = std::min(n, kMaxHold - hold_.size());
  size_t from = hold_.size();
  hold_.append(reinterpret_cast<const char*>(p), take);
  // Check each line as it completes: the bytes are on their way to the
  // server, so whatever could end a message there must stop here.
  for (size_t i = from; i < hold_.size() && client_mode_ == ClientMode::hold; ++i) {
    if (hold_[i] != '\n') continue;
    if (sasl_owed_ && hold_line_ == 0) {  // the client's answer to a 334
      sasl_owed_ = false;
      take_sasl_line();
      i = size_t(-1);  // the buffer moved: rescan from its start
      continue;
    }
    check_held_line(hold_line_, i + 1);
    hold_line_ = i + 1;
    // Each reply replays what is held behind it: bounded lines keep a
    // client that pipelines refused DATA commands from costing quadratic
    // work. Legitimately only an AUTH with an initial response has lines
    // behind it (MAIL, the RCPTs, DATA).
    const size_t max_lines = hold_for_ == HoldFor::auth ? lim_.max_recipients + 8 : kMaxHeldLines;
    if (++hold_lines_ > max_lines) lose_sync(Desync::hold_overflow);
  }
  if (client_mode_ == ClientMode::hold && hold_starttls_ && hold_line_ < hold_.size())
    lose_sync(Desync::starttls_pipelined);
  if (client_mode_ == ClientMode::hold && take < n) lose_sync(Desync::hold_overflow);
}

// One complete held line [begin, end) (ending in LF).
void SmtpSession::check_held_line(size_t begin, size_t end) {
  std::string_view line(hold_.data() + begin, end - begin);
  line.remove_suffix(1);  // LF
  std::string_view content = line;
  if (!content.empty() && content.back() == '\r') content.remove_suffix(1);
  // A dot line ends a message if the server reads these bytes as data (any
  // line-end variant; a bare CR as line end too, as some servers take it).
  const bool dot_line = content == "." || (content.size() >= 2 && content.substr(content.size() - 2) == "\r.");
  std::string_view verb = verb_of(content);
  const bool bdat = is_verb(verb, "BDAT"), data = is_verb(verb, "DATA");
  switch (hold_for_) {
    case HoldFor::data:
      if (dot_line || bdat) lose_sync(Desync::data_before_reply);
      break;
    case HoldFor::auth:
      // RFC 4954 4: AUTH ends a pipelined group, except with an initial
      // response that completes in one round trip (PLAIN, EXTERNAL): then
      // MAIL, RCPT and, last (RFC 2920), DATA may follow. A BDAT chunk
      // would reach the server before the AUTH reply is known.
      if (bdat || (data && !auth_initial_response_)) lose_sync(Desync::data_behind_auth);
      else if (dot_line) lose_sync(Desync::data_before_reply);
      break;
    case HoldFor::helo:
    case HoldFor::rset:
      // DATA waits for its 354 and is replayed after the reply; a BDAT chunk
      // would reach the server with it.
      if (bdat) lose_sync(Desync::data_behind_helo);
      else if (dot_line) lose_sync(Desync::data_before_reply);
      break;
    case HoldFor::starttls:
      break;
  }
  if (client_mode_ != ClientMode::hold) return;
  if (hold_for_ != HoldFor::data && is_verb(verb, "STARTTLS")) {
    if (lim_.refuse_starttls) lose_sync(Desync::starttls_masked);
    else hold_starttls_ = true;
  }
}

// Drops the first held line, a SASL response: never kept, never parsed.
bool SmtpSession::take_sasl_line() {
  size_t nl = hold_.find('\n');
  if (nl == std::string::npos) return false;
  std::memset(hold_.data(), 0, nl + 1);
  hold_.erase(0, nl + 1);
  hold_line_ = 0;
  return true;
}

// The held command's final reply came: the held bytes are read again, as
// commands or message data, now that the server's choice is known.
void SmtpSession::release_hold() {
  std::string buf;
  buf.swap(hold_);
  hold_line_ = 0;
  sasl_owed_ = false;
  hold_starttls_ = false;
  if (client_mode_ == ClientMode::hold) client_mode_ = ClientMode::command;
  if (!buf.empty()) {
    anomaly(Anomaly::held_for_reply);
    on_client({reinterpret_cast<const uint8_t*>(buf.data()), buf.size()});
  }
}

// ---- message data ----

void SmtpSession::end_of_data(Anomaly variant) {
  anomaly(variant);
  if (lim_.end_of_data == EndOfData::strict) {
    // A strict server reads on, a lenient one ends here: only a desync is safe.
    lose_sync(Desync::ambiguous_end_of_data);
    if (client_mode_ == ClientMode::stopped) return;
  }
  txn_.bare_lf_end = true;
}

void SmtpSession::feed_data(const uint8_t* p, size_t n, size_t& used) {
  size_t i = 0;
  size_t run = 0;  // start of bytes to emit unchanged
  auto emit = [&](size_t end) {
    if (end > run && sink_) sink_->on_body({p + run, end - run});
    txn_.body_bytes += end > run ? end - run : 0;
  };
  // Whether the LF at |nl| ends a line without CR (the byte before it may be the previous call's last).
  auto bare_lf_at = [&](size_t nl) { return (nl ? p[nl - 1] : prev_byte_) != '\r'; };
  auto finish = [&](size_t after) {
    used = after;
    client_mode_ = ClientMode::command;
    dot_ = DotState::line_start;
    push_pending(Cmd::data_end);
    finish_message();
  };
  while (i < n) {
    switch (dot_) {
      case DotState::in_line: {
        size_t k = find_line_dot(p, i, n);
        if (k == n) {  // no line in the rest starts with a dot: where does the next one start?
          if (p[n - 1] == '\n') {
            dot_ = DotState::line_start;
            bare_lf_line_ = bare_lf_at(n - 1);
          } else if (p[n - 1] == '\r') {
            dot_ = DotState::cr;
          }
          i = n;
          break;
        }
        if (p[k - 1] == '\r') {  // a dot after a bare CR: message text, unless it ends the data
          i = k + 1;
          dot_ = DotState::cr_dot;
          break;
        }
        bare_lf_line_ = bare_lf_at(k - 1);
        i = k;
        dot_ = DotState::line_start;
        break;
      }
      case DotState::cr:  // a CR was the last byte seen
        if (p[i] == '\n') {
          bare_lf_line_ = false;
          dot_ = DotState::line_start;
          ++i;
        } else if (p[i] == '.') {
          dot_ = DotState::cr_dot;
          ++i;
        } else {
          dot_ = DotState::in_line;
        }
        break;
      case DotState::cr_dot:
      case DotState::cr_dot_cr:
        if (p[i] == '\n') {
          // <CR>.<LF> or <CR>.<CR><LF>: servers that take a bare CR as a line
          // end stop here, the others read on. Neither reading is safe.
          anomaly(Anomaly::cr_dot_end_of_data);
          lose_sync(Desync::ambiguous_end_of_data);
          if (client_mode_ == ClientMode::stopped) {
            used = n;
            return;
          }
          bare_lf_line_ = dot_ == DotState::cr_dot;
          dot_ = DotState::line_start;
          ++i;
        } else if (p[i] == '\r' && dot_ == DotState::cr_dot) {
          dot_ = DotState::cr_dot_cr;
          ++i;
        } else {
          // Not an end: after <CR>.<CR> the second CR may begin another one.
          dot_ = dot_ == DotState::cr_dot_cr ? DotState::cr : DotState::in_line;
        }
        break;
      case DotState::line_start:
        if (p[i] == '.') {
          emit(i);
          ++i;
          run = i;  // the dot is not part of the message
          dot_ = DotState::dot;
        } else if (p[i] == '\r') {
          dot_ = DotState::cr;
          ++i;
        } else {
          if (p[i] == '\n') bare_lf_line_ = bare_lf_at(i);
          dot_ = p[i] == '\n' ? DotState::line_start : DotState::in_line;
          ++i;
        }
        break;
      case DotState::dot:
        if (p[i] == '\r') {
          ++i;
          run = i;
          dot_ = DotState::dot_cr;
        } else if (p[i] == '\n') {
          // <LF>.<LF> or <CR><LF>.<LF>: lenient servers end the message here.
          end_of_data(bare_lf_line_ ? Anomaly::lf_dot_lf_end_of_data : Anomaly::crlf_dot_lf_end_of_data);
          if (client_mode_ == ClientMode::stopped) {
            used = n;
            return;
          }
          finish(i + 1);
          return;
        } else {
          // A dot-stuffed line after a bare LF: servers that end lines at
          // LF too remove the dot, CRLF-only ones (aiosmtpd) keep it: they
          // store different bytes. Found by tests/wire/diff_fuzz.py.
          if (bare_lf_line_ && dot_after_bare_lf(n, used)) return;
          dot_ = DotState::in_line;
          ++i;
        }
        break;
      case DotState::dot_cr:
        if (p[i] == '\n') {
          // <LF>.<CR><LF> ends the message here as lenient servers read it;
          // strict ones read on (SMTP smuggling): counted for the policy.
          if (bare_lf_line_) {
            end_of_data(Anomaly::bare_lf_end_of_data);
            if (client_mode_ == ClientMode::stopped) {
              used = n;
              return;
            }
          }
          finish(i + 1);
          return;
        }
        // ".\r" then something else: the CR belongs to the message.
        if (bare_lf_line_ && dot_after_bare_lf(n, used)) return;
        if (sink_) sink_->on_body({reinterpret_cast<const uint8_t*>("\r"), 1});
        ++txn_.body_bytes;
        dot_ = DotState::cr;  // and may start <CR>.<CR><LF>
        run = i;
        break;
    }
  }
  if (n) prev_byte_ = p[n - 1];
  emit(n);
  used = n;
}

// ---- client commands ----

void SmtpSession::client_line(std::string_view line) {
  if (++facts_.commands > lim_.max_commands) {
    anomaly(Anomaly::command_limit);
    lose_sync(Desync::command_limit);
    client_mode_ = ClientMode::stopped;  // a resource bound: offline too
    return;
  }
  if (client_mode_ == ClientMode::proxy_preamble) {
    if (line.empty()) client_mode_ = ClientMode::command;  // end of the CONNECT request headers
    return;
  }
  // Servers split a command at any run of whitespace (Postfix's tokenizer).
  std::string_view verb = verb_of(line);
  std::string_view raw_arg = line.substr(verb.size());  // with its separator
  std::string_view arg = trim(raw_arg);
  auto is = [&](std::string_view v) { return is_verb(verb, v); };

  if (facts_.commands == 1 && is("CONNECT") && line.find(" HTTP/") != std::string_view::npos) {
    // SMTP through an HTTP proxy tunnel: the request and the proxy's
    // response come first; the SMTP session starts after them.
    client_mode_ = ClientMode::proxy_preamble;
    server_proxy_preamble_ = true;
    --facts_.commands;
    return;
  }
  if (is("EHLO") || is("HELO")) {
    // Applied when the server accepts it: a refused EHLO changes nothing.
    // With a transaction open the reply decides whether it is reset, so
    // what follows is held until then (RFC 2920: EHLO ends a group).
    helo_arg_.assign(arg.substr(0, 255));
    helo_is_ehlo_ = is("EHLO");
    const bool resets = transaction_open();
    push_pending(helo_is_ehlo_ ? Cmd::ehlo : Cmd::helo, resets);
    if (resets && client_mode_ != ClientMode::stopped) start_hold(HoldFor::helo);
  } else if (is("MAIL") && iequals_prefix(arg, "FROM:")) {
    if (transaction_open()) {
      // RFC 5321 4.1.4: servers refuse a MAIL inside a transaction (503) and
      // keep the envelope; one that accepts it is a desync at its reply.
      anomaly(Anomaly::nested_mail);
      ++nested_mail_pending_;
      push_pending(Cmd::mail_nested);
      return;
    }
    reset_transaction();
    parse_path(arg.substr(5), txn_.mail_from, txn_.mail_params);
    mail_ = MailState::pending;
    push_pending(Cmd::mail);
  } else if (is("RCPT") && iequals_prefix(arg, "TO:")) {
    std::string addr, params;
    parse_path(arg.substr(3), addr, params);
    if (txn_.rcpt_pending.size() >= lim_.max_recipients) {  // every RCPT sent in this transaction
      anomaly(Anomaly::too_many_recipients);
      push_pending(Cmd::rcpt_over_limit);
      return;
    }
    txn_.rcpt_pending.push_back(std::move(addr));
    push_pending(Cmd::rcpt, uint32_t(txn_.rcpt_pending.size() - 1));
  } else if (is("DATA")) {
    if (silent_server()) {
      assume_accepted();
      begin_message(BodyVia::data);
      client_mode_ = ClientMode::data;
      return;
    }
    push_pending(Cmd::data);
    if (client_mode_ != ClientMode::stopped) start_hold(HoldFor::data);
  } else if (is("BDAT")) {
    bdat_command(raw_arg);
  } else if (is("RSET")) {
    if (!arg.empty()) {
      // RSET with arguments: Postfix and aiosmtpd refuse it (501) and keep
      // the transaction; others may reset. The reply decides.
      const bool resets = transaction_open();
      push_pending(Cmd::rset_args, resets);
      if (resets && client_mode_ != ClientMode::stopped) start_hold(HoldFor::rset);
      return;
    }
    // A bare RSET always succeeds (RFC 5321 4.1.1.5): applied now, so what
    // is pipelined after it reads as the server will; refused = desync.
    abandon_transaction();
    nested_mail_pending_ = 0;
    push_pending(Cmd::rset);
  } else if (is("STARTTLS")) {
    if (lim_.refuse_starttls) {
      lose_sync(Desync::starttls_masked);
      if (client_mode_ == ClientMode::stopped) return;
    }
    push_pending(Cmd::starttls);
    if (client_mode_ != ClientMode::stopped) start_hold(HoldFor::starttls);
  } else if (is("AUTH")) {
    std::string_view a = trim(arg);
    facts_.auth_mechanism.assign(a.substr(0, std::min(a.find(' '), size_t(32))));
    for (auto& c : facts_.auth_mechanism) c = char(std::toupper(static_cast<unsigned char>(c)));
    // A client line is a SASL response only after the server's 334. A
    // one-sided capture has no 334: an initial response is taken as all.
    auth_initial_response_ = a.find(' ') != std::string_view::npos;
    if (silent_server() && auth_initial_response_) return;
    push_pending(Cmd::auth);
    if (client_mode_ != ClientMode::stopped) start_hold(HoldFor::auth);
  } else if (is("QUIT")) {
    push_pending(Cmd::quit);
  } else if (is("XCLIENT")) {
    // Postfix: an accepted XCLIENT (220) starts the session over and drops
    // the open transaction, like RSET with arguments decided by the reply.
    const bool resets = transaction_open();
    push_pending(Cmd::rset_args, resets);
    if (resets && client_mode_ != ClientMode::stopped) start_hold(HoldFor::rset);
  } else if (is("NOOP") || is("VRFY") || is("EXPN") || is("HELP") || is("ETRN") || is("XFORWARD")) {
    push_pending(Cmd::other);
  } else {
    anomaly(Anomaly::unknown_command);
    push_pending(Cmd::other);
  }
}

// BDAT: the chunk is framed by its size whatever the server answers, but
// only on a server that does BDAT and only if it parses the command as the
// engine does. Postfix hangs up (521) on a malformed BDAT; a server without
// CHUNKING (aiosmtpd) reads the chunk as commands.
void SmtpSession::bdat_command(std::string_view raw) {
  if (!silent_server() && !has_capability(facts_, "CHUNKING")) {
    lose_sync(Desync::bdat_unadvertised);
    if (client_mode_ == ClientMode::stopped) return;
  }
  std::string_view arg = trim(raw);
  if (arg.empty() || !std::isdigit(static_cast<unsigned char>(arg[0]))) {
    // No size at all: every server refuses it and reads no chunk.
    anomaly(Anomaly::bdat_bad_size);
    push_pending(Cmd::bdat_bad);
    return;
  }
  // The canonical form: "BDAT" SP 1*15DIGIT [SP "LAST"], nothing else.
  bool canonical = raw.size() >= 2 && raw[0] == ' ';
  if (canonical) raw.remove_prefix(1);
  std::string_view num = raw.substr(0, raw.find(' '));
  std::string_view tail = num.size() < raw.size() ? raw.substr(num.size() + 1) : std::string_view();
  canonical = canonical && !num.empty() && num.size() <= 15 &&
              (tail.empty() || (tail.size() == 4 && iequals_prefix(tail, "LAST")));
  for (char c : num) canonical = canonical && std::isdigit(static_cast<unsigned char>(c));
  if (!canonical) {
    lose_sync(Desync::bdat_ambiguous);
    if (client_mode_ == ClientMode::stopped) return;
    // Offline: read it as a lenient server would, leading digits and LAST.
    raw = trim(raw);
    num = raw.substr(0, std::min(raw.find_first_not_of("0123456789"), size_t(15)));
    tail = trim(raw.substr(num.size()));
    if (!iequals_prefix(tail, "LAST")) tail = {};
  }
  if (nested_mail_pending_) {  // old or new envelope: only the reply knows
    lose_sync(Desync::envelope_unknown);
    if (client_mode_ == ClientMode::stopped) return;
  }
  uint64_t size = 0;
  for (char c : num) size = size * 10 + uint64_t(c - '0');
  const bool last = !tail.empty();
  if (!msg_open_) {
    if (silent_server()) assume_accepted();
    begin_message(BodyVia::bdat);
  }
  push_pending(last ? Cmd::bdat_last : Cmd::bdat);
  if (client_mode_ == ClientMode::stopped) return;
  bdat_left_ = size;
  bdat_last_ = last;
  if (size) client_mode_ = ClientMode::bdat;
  else if (last) finish_message();
}

void SmtpSession::assume_accepted() {
  anomaly(Anomaly::server_silent);
  if (facts_.helo.empty() && !helo_arg_.empty()) {  // its EHLO/HELO too
    facts_.helo = helo_arg_;
    facts_.ehlo = helo_is_ehlo_;
  }
  pending_head_ = pending_.size();  // no reply will come to match them
  txn_.mail_accepted = true;
  mail_ = MailState::accepted;
  for (auto& r : txn_.rcpt_pending) txn_.rcpt_to.push_back(std::move(r));
  txn_.rcpt_pending.clear();
}

// ---- server replies ----

void SmtpSession::on_server(std::span<const uint8_t> bytes) {
  if (client_mode_ == ClientMode::stopped) return;
  if (!bytes.empty()) server_spoke_ = true;
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  while (n) {
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p, '\n', n));
    size_t chunk = nl ? size_t(nl - p) + 1 : n;
    if (!sline_overflow_) {
      if (sline_.size() + chunk > lim_.max_line + 2) {
        sline_overflow_ = true;
        anomaly(Anomaly::line_too_long);
        sline_.clear();
        if (!server_proxy_preamble_) {
          lose_sync(Desync::reply_too_long);
          if (client_mode_ == ClientMode::stopped) return;
        }
      } else {
        sline_.append(reinterpret_cast<const char*>(p), chunk);
      }
    }
    p += chunk;
    n -= chunk;
    if (!nl) break;
    if (!sline_overflow_ && server_proxy_preamble_) {
      std::string_view line(sline_);
      if (line == "\r\n" || line == "\n") server_proxy_preamble_ = false;  // end of the proxy's headers
      sline_.clear();
      continue;
    }
    if (!sline_overflow_) {
      std::string_view line(sline_);
      line.remove_suffix(1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      bool ok = line.size() >= 3 && std::isdigit(static_cast<unsigned char>(line[0])) &&
                std::isdigit(static_cast<unsigned char>(line[1])) && std::isdigit(static_cast<unsigned char>(line[2])) &&
                (line.size() == 3 || line[3] == ' ' || line[3] == '-');
      if (!ok) {
        anomaly(Anomaly::bad_reply);
        lose_sync(Desync::bad_reply);
      } else {
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        bool last = line.size() == 3 || line[3] == ' ';
        server_reply(code, last, line.size() > 4 ? line.substr(4) : std::string_view());
      }
    }
    sline_.clear();
    sline_overflow_ = false;
    if (client_mode_ == ClientMode::stopped) return;
  }
}

void SmtpSession::server_reply(int code, bool last, std::string_view text) {
  if (reply_text_.empty() && ehlo_lines_.empty()) reply_text_.assign(text);
  else if (ehlo_lines_.size() < kMaxCapabilities) ehlo_lines_.emplace_back(text);
  if (!last) return;
  handle_reply(code, reply_text_);
  reply_text_.clear();
  if (!ehlo_lines_.empty()) std::vector<std::string>().swap(ehlo_lines_);  // once per EHLO: keep idle sessions small
}

void SmtpSession::handle_reply(int code, std::string_view first) {
  if (pending_head_ >= pending_.size()) {
    anomaly(Anomaly::reply_without_command);
    lose_sync(Desync::reply_without_command);
    return;
  }
  Pending front = pending_[pending_head_];
  const bool ok = code >= 200 && code < 300;
  if (front.cmd == Cmd::auth && code == 334) {  // SASL continues: the next client line is the response
    if (client_mode_ == ClientMode::hold && hold_for_ == HoldFor::auth) {
      if (hold_line_ > 0 || hold_.find('\n') != std::string::npos) {
        anomaly(Anomaly::held_for_reply);  // the client answered before it was asked
        take_sasl_line();
      } else {
        sasl_owed_ = true;
      }
      // Lines after the response were held already: check them again as
      // commands (the response is gone from the front).
      size_t from = 0;
      hold_line_ = 0;
      for (size_t i = 0; i < hold_.size() && client_mode_ == ClientMode::hold; ++i) {
        if (hold_[i] != '\n') continue;
        check_held_line(from, i + 1);
        from = hold_line_ = i + 1;
      }
    }
    return;
  }
  ++pending_head_;
  switch (front.cmd) {
    case Cmd::greeting:
      facts_.greeting.assign(first.substr(0, 256));
      break;
    case Cmd::helo:
    case Cmd::ehlo:
      if (ok) {
        facts_.helo = helo_arg_;
        facts_.ehlo = front.cmd == Cmd::ehlo;
        if (facts_.ehlo) {
          facts_.capabilities.clear();
          for (auto& l : ehlo_lines_) {
            std::string kw(l.substr(0, l.find(' ')));
            for (auto& c : kw) c = char(std::toupper(static_cast<unsigned char>(c)));
            facts_.capabilities.push_back(std::move(kw));
          }
        }
        // RFC 5321 4.1.4: an accepted EHLO/HELO aborts the open transaction
        // (one sent with none open was not held: what followed it is newer).
        if (front.rcpt_index) {
          abandon_transaction();
          nested_mail_pending_ = 0;
        }
      }
      if (client_mode_ == ClientMode::hold && hold_for_ == HoldFor::helo) release_hold();
      break;
    case Cmd::mail:
      if (Transaction* t = find_transaction(front.txn_seq)) t->mail_accepted = ok;
      if (front.txn_seq == txn_.seq) mail_ = ok ? MailState::accepted : MailState::refused;
      break;
    case Cmd::mail_nested:
      if (nested_mail_pending_) --nested_mail_pending_;
      if (ok) lose_sync(Desync::nested_mail_accepted);
      break;
    case Cmd::rcpt:
      // With PIPELINING (and BDAT) the message may have ended before its
      // RCPT replies arrive: the reply goes to the command's transaction.
      if (Transaction* t = find_transaction(front.txn_seq); t && front.rcpt_index < t->rcpt_pending.size()) {
        if (ok && !t->mail_accepted) {  // the server has a transaction the engine does not
          lose_sync(Desync::unexpected_reply);
          if (client_mode_ == ClientMode::stopped) break;
        }
        auto& addr = t->rcpt_pending[front.rcpt_index];
        (ok ? t->rcpt_to : t->rcpt_refused).push_back(std::move(addr));
      }
      break;
    case Cmd::rcpt_over_limit:
      if (ok) lose_sync(Desync::recipient_limit);
      break;
    case Cmd::data:
      if (client_mode_ == ClientMode::hold && hold_for_ == HoldFor::data) {
        if (code == 354) {
          if (!txn_.mail_accepted || txn_.rcpt_to.empty()) {  // data for an envelope the engine does not know
            lose_sync(Desync::unexpected_reply);
            if (client_mode_ == ClientMode::stopped) break;
          }
          begin_message(BodyVia::data);
          client_mode_ = ClientMode::data;
        } else if (!hold_.empty()) {
          anomaly(Anomaly::data_without_354);
        }
        release_hold();
      }
      break;
    case Cmd::data_end:
    case Cmd::bdat_last:
      if (!awaiting_.empty()) {
        awaiting_.front().final_reply = code;
        end_transaction();
      }
      break;
    case Cmd::rset:
      if (!ok) lose_sync(Desync::unexpected_reply);
      break;
    case Cmd::rset_args:
      if (ok && front.rcpt_index) {
        abandon_transaction();
        nested_mail_pending_ = 0;
      }
      if (client_mode_ == ClientMode::hold && hold_for_ == HoldFor::rset) release_hold();
      break;
    case Cmd::starttls:
      if (code == 220) {
        facts_.tls = true;
        client_mode_ = ClientMode::stopped;
      } else if (client_mode_ == ClientMode::hold && hold_for_ == HoldFor::starttls) {
        release_hold();
      }
      break;
    case Cmd::auth:
      facts_.auth_success = code == 235;
      if (client_mode_ == ClientMode::hold && hold_for_ == HoldFor::auth) release_hold();
      break;
    default:
      break;
  }
}

void SmtpSession::on_gap(bool client, uint64_t len) {
  anomaly(Anomaly::gap);
  if (!client) {
    sline_.clear();
    return;
  }
  if (client_mode_ == ClientMode::bdat) {
    txn_.gap = true;
    uint64_t skip = std::min(bdat_left_, len);
    bdat_left_ -= skip;
    if (bdat_left_ == 0) {
      client_mode_ = ClientMode::command;
      if (bdat_last_) finish_message();
    }
  } else if (client_mode_ == ClientMode::data) {
    txn_.gap = true;
    dot_ = DotState::in_line;
  } else if (client_mode_ == ClientMode::hold) {
    hold_.resize(hold_line_);  // the held line cut by the gap is lost
  } else {
    cline_.clear();
  }
}

void SmtpSession::on_close() {
  if (msg_open_) {
    // Data without its end: report what was seen, never as complete.
    msg_open_ = false;
    awaiting_.push_back(std::move(txn_));
    reset_transaction();
  }
  while (!awaiting_.empty()) end_transaction();
  if (!hold_.empty()) {
    std::memset(hold_.data(), 0, hold_.size());  // may hold SASL
    hold_.clear();
  }
  client_mode_ = ClientMode::stopped;
}

}  // namespace sekisho::smtp
