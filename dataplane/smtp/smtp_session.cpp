#include "smtp/smtp_session.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string_view>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sekisho::smtp {
namespace {

// Index of the first '.' in p[from, n) that starts a line (follows a '\n'
// at index >= from), or n. Message lines rarely start with a dot, so the
// body is skipped 16 bytes at a time rather than line by line.
size_t find_line_dot(const uint8_t* p, size_t from, size_t n) {
  size_t i = from;
#if defined(__SSE2__)
  const __m128i nl = _mm_set1_epi8('\n'), dot = _mm_set1_epi8('.');
  while (i + 17 <= n) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 1));
    unsigned m = unsigned(_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, nl), _mm_cmpeq_epi8(b, dot))));
    if (m) return i + unsigned(__builtin_ctz(m)) + 1;
    i += 16;
  }
#endif
  while (i + 1 < n) {
    const void* hit = std::memchr(p + i, '\n', n - 1 - i);
    if (!hit) break;
    i = size_t(static_cast<const uint8_t*>(hit) - p) + 1;
    if (p[i] == '.') return i;
  }
  return n;
}

const char* const kAnomalyNames[] = {
#define X(name, text) #name,
#include "anomalies.def"
#undef X
};

constexpr size_t kMaxDataWait = 64 * 1024;  // client bytes held between DATA and its reply
constexpr size_t kMaxAwaiting = 16;         // ended messages waiting for a reply
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

}  // namespace

const char* anomaly_name(Anomaly a) { return size_t(a) < kAnomalyCount ? kAnomalyNames[size_t(a)] : "?"; }

SmtpSession::SmtpSession(MessageSink* sink, Limits limits) : sink_(sink), lim_(limits) {
  reset_transaction();
  push_pending(Cmd::greeting);
}

void SmtpSession::push_pending(Cmd c, uint32_t idx) {
  if (pending_.size() - pending_head_ >= lim_.max_pending) {
    anomaly(Anomaly::too_many_pending);
    ++pending_head_;
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
  dot_ = DotState::line_start;
  bare_lf_line_ = false;  // the body starts after "DATA\r\n" and its 354
  prev_byte_ = '\n';
  if (sink_) sink_->on_message_begin(facts_, txn_);
}

void SmtpSession::finish_message() {
  txn_.complete = true;
  ++facts_.transactions;
  if (sink_) sink_->on_message_end(facts_, txn_);
  if (awaiting_.size() >= kMaxAwaiting) {
    if (sink_) sink_->on_transaction_done(facts_, awaiting_.front());
    awaiting_.erase(awaiting_.begin());
  }
  awaiting_.push_back(std::move(txn_));
  // The envelope stays for BDAT/DATA retries? No: a new MAIL starts over.
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
      case ClientMode::data_wait: {
        size_t take = std::min(n, kMaxDataWait - data_wait_buf_.size());
        data_wait_buf_.append(reinterpret_cast<const char*>(p), take);
        p += take;
        n -= take;
        if (n) {  // a client that streams without waiting for 354: treat as data
          release_data_wait(true);
        }
        continue;
      }
      default:
        break;
    }
    // Line modes: command, auth, tls_wait.
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p, '\n', n));
    size_t chunk = nl ? size_t(nl - p) + 1 : n;
    if (!cline_overflow_) {
      if (cline_.size() + chunk > lim_.max_line + 2) {
        cline_overflow_ = true;
        anomaly(Anomaly::line_too_long);
        cline_.clear();
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

void SmtpSession::feed_data(const uint8_t* p, size_t n, size_t& used) {
  size_t i = 0;
  size_t run = 0;  // start of bytes to emit unchanged
  auto emit = [&](size_t end) {
    if (end > run && sink_) sink_->on_body({p + run, end - run});
    txn_.body_bytes += end > run ? end - run : 0;
  };
  // Whether the LF at |nl| ends a line without CR (the byte before it may be the previous call's last).
  auto bare_lf_at = [&](size_t nl) { return (nl ? p[nl - 1] : prev_byte_) != '\r'; };
  while (i < n) {
    switch (dot_) {
      case DotState::in_line: {
        size_t k = find_line_dot(p, i, n);
        if (k == n) {  // no line in the rest starts with a dot: where does the next one start?
          if (p[n - 1] == '\n') {
            dot_ = DotState::line_start;
            bare_lf_line_ = bare_lf_at(n - 1);
          }
          i = n;
          break;
        }
        bare_lf_line_ = bare_lf_at(k - 1);
        i = k;
        dot_ = DotState::line_start;
        break;
      }
      case DotState::line_start:
        if (p[i] == '.') {
          emit(i);
          ++i;
          run = i;  // the dot is not part of the message
          dot_ = DotState::dot;
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
        } else {
          if (p[i] == '\n') bare_lf_line_ = true;
          dot_ = p[i] == '\n' ? DotState::line_start : DotState::in_line;
          ++i;
        }
        break;
      case DotState::dot_cr:
        if (p[i] == '\n') {
          // <LF>.<CR><LF> ends the message here as lenient servers read it;
          // strict ones read on (SMTP smuggling): counted for the policy.
          if (bare_lf_line_) {
            anomaly(Anomaly::bare_lf_end_of_data);
            txn_.bare_lf_end = true;
          }
          ++i;
          used = i;
          client_mode_ = ClientMode::command;
          dot_ = DotState::line_start;
          push_pending(Cmd::data_end);
          finish_message();
          return;
        }
        // ".\r" then something else: the CR belongs to the message.
        if (sink_) sink_->on_body({reinterpret_cast<const uint8_t*>("\r"), 1});
        ++txn_.body_bytes;
        dot_ = DotState::in_line;
        run = i;
        break;
    }
  }
  if (n) prev_byte_ = p[n - 1];
  emit(n);
  used = n;
}

void SmtpSession::release_data_wait(bool accepted) {
  std::string buf;
  buf.swap(data_wait_buf_);
  if (accepted) {
    begin_message(BodyVia::data);
    client_mode_ = ClientMode::data;
  } else {
    if (!buf.empty()) anomaly(Anomaly::data_without_354);
    client_mode_ = ClientMode::command;
  }
  if (!buf.empty()) on_client({reinterpret_cast<const uint8_t*>(buf.data()), buf.size()});
}

void SmtpSession::client_line(std::string_view line) {
  if (++facts_.commands > lim_.max_commands) {
    anomaly(Anomaly::command_limit);
    client_mode_ = ClientMode::stopped;
    return;
  }
  if (client_mode_ == ClientMode::auth) {
    // A SASL response: never stored. "*" cancels; the reply ends the exchange.
    return;
  }
  if (client_mode_ == ClientMode::proxy_preamble) {
    if (line.empty()) client_mode_ = ClientMode::command;  // end of the CONNECT request headers
    return;
  }
  std::string_view verb = line.substr(0, line.find(' '));
  std::string_view arg = verb.size() < line.size() ? line.substr(verb.size() + 1) : std::string_view();
  auto is = [&](std::string_view v) { return verb.size() == v.size() && iequals_prefix(verb, v); };

  if (facts_.commands == 1 && is("CONNECT") && line.find(" HTTP/") != std::string_view::npos) {
    // SMTP through an HTTP proxy tunnel: the request and the proxy's
    // response come first; the SMTP session starts after them.
    client_mode_ = ClientMode::proxy_preamble;
    server_proxy_preamble_ = true;
    --facts_.commands;
    return;
  }
  if (is("EHLO") || is("HELO")) {
    facts_.helo.assign(trim(arg));
    facts_.ehlo = is("EHLO");
    reset_transaction();
    push_pending(facts_.ehlo ? Cmd::ehlo : Cmd::helo);
  } else if (is("MAIL") && iequals_prefix(arg, "FROM:")) {
    reset_transaction();
    parse_path(arg.substr(5), txn_.mail_from, txn_.mail_params);
    push_pending(Cmd::mail);
  } else if (is("RCPT") && iequals_prefix(arg, "TO:")) {
    std::string addr, params;
    parse_path(arg.substr(3), addr, params);
    if (txn_.rcpt_pending.size() >= lim_.max_recipients) {  // every RCPT sent in this transaction
      anomaly(Anomaly::too_many_recipients);
      push_pending(Cmd::other);
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
    client_mode_ = ClientMode::data_wait;
  } else if (is("BDAT")) {
    std::string_view a = trim(arg);
    std::string_view num = a.substr(0, a.find(' '));
    bool last = a.size() > num.size() && iequals_prefix(trim(a.substr(num.size())), "LAST");
    uint64_t size = 0;
    bool ok = !num.empty() && num.size() <= 15;
    for (char c : num) ok = ok && std::isdigit(static_cast<unsigned char>(c));
    if (!ok) {
      anomaly(Anomaly::bdat_bad_size);
      push_pending(Cmd::other);
      return;
    }
    for (char c : num) size = size * 10 + uint64_t(c - '0');
    if (txn_.body_via != BodyVia::bdat) {
      if (silent_server()) assume_accepted();
      begin_message(BodyVia::bdat);
    }
    push_pending(last ? Cmd::bdat_last : Cmd::bdat);
    bdat_left_ = size;
    bdat_last_ = last;
    if (size) client_mode_ = ClientMode::bdat;
    else if (last) finish_message();
  } else if (is("RSET")) {
    reset_transaction();
    push_pending(Cmd::rset);
  } else if (is("STARTTLS")) {
    push_pending(Cmd::starttls);
    client_mode_ = ClientMode::tls_wait;
  } else if (is("AUTH")) {
    std::string_view a = trim(arg);
    facts_.auth_mechanism.assign(a.substr(0, a.find(' ')));
    for (auto& c : facts_.auth_mechanism) c = char(std::toupper(static_cast<unsigned char>(c)));
    push_pending(Cmd::auth);
    client_mode_ = ClientMode::auth;
  } else if (is("QUIT")) {
    push_pending(Cmd::quit);
  } else if (is("NOOP") || is("VRFY") || is("EXPN") || is("HELP") || is("ETRN") || is("XCLIENT") || is("XFORWARD")) {
    push_pending(Cmd::other);
  } else {
    anomaly(Anomaly::unknown_command);
    push_pending(Cmd::other);
  }
}

void SmtpSession::assume_accepted() {
  anomaly(Anomaly::server_silent);
  pending_head_ = pending_.size();  // no reply will come to match them
  txn_.mail_accepted = true;
  for (auto& r : txn_.rcpt_pending) txn_.rcpt_to.push_back(std::move(r));
  txn_.rcpt_pending.clear();
}

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
    return;
  }
  Pending front = pending_[pending_head_];
  if (code == 334 && front.cmd == Cmd::auth) return;  // SASL continues
  ++pending_head_;
  const bool ok = code >= 200 && code < 300;
  switch (front.cmd) {
    case Cmd::greeting:
      facts_.greeting.assign(first.substr(0, 256));
      break;
    case Cmd::ehlo:
      if (ok) {
        facts_.capabilities.clear();
        for (auto& l : ehlo_lines_) {
          std::string kw(l.substr(0, l.find(' ')));
          for (auto& c : kw) c = char(std::toupper(static_cast<unsigned char>(c)));
          facts_.capabilities.push_back(std::move(kw));
        }
      }
      break;
    case Cmd::mail:
      if (Transaction* t = find_transaction(front.txn_seq)) t->mail_accepted = ok;
      break;
    case Cmd::rcpt:
      // With PIPELINING (and BDAT) the message may have ended before its
      // RCPT replies arrive: the reply goes to the command's transaction.
      if (Transaction* t = find_transaction(front.txn_seq); t && front.rcpt_index < t->rcpt_pending.size()) {
        auto& addr = t->rcpt_pending[front.rcpt_index];
        (ok ? t->rcpt_to : t->rcpt_refused).push_back(std::move(addr));
      }
      break;
    case Cmd::data:
      if (client_mode_ == ClientMode::data_wait) release_data_wait(code == 354);
      break;
    case Cmd::data_end:
    case Cmd::bdat_last:
      if (!awaiting_.empty()) {
        awaiting_.front().final_reply = code;
        end_transaction();
      }
      break;
    case Cmd::bdat:
      break;
    case Cmd::starttls:
      if (code == 220) {
        facts_.tls = true;
        client_mode_ = ClientMode::stopped;
      } else if (client_mode_ == ClientMode::tls_wait) {
        client_mode_ = ClientMode::command;
      }
      break;
    case Cmd::auth:
      facts_.auth_success = code == 235;
      if (client_mode_ == ClientMode::auth) client_mode_ = ClientMode::command;
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
  } else {
    cline_.clear();
  }
}

void SmtpSession::on_close() {
  if (client_mode_ == ClientMode::data || client_mode_ == ClientMode::bdat) {
    // Data without its end: report what was seen, never as complete.
    awaiting_.push_back(std::move(txn_));
    reset_transaction();
  }
  while (!awaiting_.empty()) end_transaction();
  client_mode_ = ClientMode::stopped;
}

}  // namespace sekisho::smtp
