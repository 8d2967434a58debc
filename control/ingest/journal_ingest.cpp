#include "control/ingest/journal_ingest.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "journal/journal_file.hpp"
#include "journal/time.hpp"
#include "scanners/verdict/verdict.hpp"

namespace sekisho::control::ingest {

using nlohmann::json;
using tracking::LogEntry;

IngestStats& IngestStats::operator+=(const IngestStats& o) {
  lines += o.lines;
  events_new += o.events_new;
  events_seen += o.events_seen;
  other_lines += o.other_lines;
  bad_lines += o.bad_lines;
  abandoned_tails += o.abandoned_tails;
  newer_lines += o.newer_lines;
  return *this;
}

namespace {

std::string hex(const unsigned char* p, size_t n) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(k[p[i] >> 4]);
    s.push_back(k[p[i] & 15]);
  }
  return s;
}

// A pass event has no dataplane id: derive one from what makes the message
// unique and is identical each time its line is read (the text each key
// had in the line: strings as they are, other values as JSON).
std::string derive_event_id(const journal::MessageEvent& e) {
  std::string key;
  auto add = [&](const std::string& v) {
    key += v;
    key.push_back('\0');
  };
  add(journal::iso_time_us(e.ts_us));
  add(e.client);
  add(e.server);
  add(e.mail_from);
  add(journal::to_line(json(e.rcpt_to)));
  add(e.sha256 ? *e.sha256 : "null");
  add(std::to_string(e.size));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(key.data(), key.size(), md, &n, EVP_sha256(), nullptr);
  return "pass-" + hex(md, 16);
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

LogEntry tracking_event(const journal::MessageEvent& j) {
  LogEntry e;
  e.ts_us = j.ts_us;
  e.event_id = j.id.empty() ? derive_event_id(j) : j.id;
  e.envelope_sender = j.mail_from;
  e.recipients = j.rcpt_to;
  if (j.mime) {
    e.header_from = j.mime->from;
    e.to_json = journal::to_line(json(j.mime->to));
    e.cc_json = journal::to_line(json(j.mime->cc));
    e.reply_to = j.mime->reply_to;
    e.subject = j.mime->subject;
    e.message_id = j.mime->message_id;
    json atts = json::array();
    for (const auto& a : j.mime->attachments) atts.push_back(journal::to_json(a));
    e.attachments_json = journal::to_line(atts);
  }
  e.size = int64_t(std::min<uint64_t>(j.size, uint64_t(INT64_MAX)));
  e.client = j.client;
  e.server = j.server;
  e.tls = j.tls;
  e.action = verdict::action_name(j.verdict.action);
  e.rule = j.verdict.rule;
  if (j.verdict.scan) {
    e.score = j.verdict.scan->score;
    json rules = json::array();
    for (const auto& h : j.verdict.scan->rules) rules.push_back(journal::to_json(h));
    e.rules_json = journal::to_line(rules);
  }
  e.spool = j.spool;
  return e;
}

LineKind parse_event_line(std::string_view line, LogEntry& out, std::string& error) {
  journal::MessageEvent e;
  journal::ReadError err;
  switch (journal::read_line(line, &e, nullptr, err)) {
    case journal::LineType::message: out = tracking_event(e); return LineKind::message;
    case journal::LineType::bad:
      error = std::move(err.text);
      return err.newer_version ? LineKind::newer : LineKind::bad;
    default: return LineKind::other;
  }
}

JournalIngester::JournalIngester(std::string dir, tracking::Store& store, size_t batch_lines)
    : dir_(std::move(dir)), store_(store), batch_lines_(std::max<size_t>(1, batch_lines)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
}

IngestStats JournalIngester::pass() {
  // One pass: lines from the reader into batches, each batch stored with
  // the cursor past its last line.
  struct Pass : journal::JournalReader::Visitor {
    JournalIngester& in;
    IngestStats st;
    tracking::JournalCursor at;
    std::vector<LogEntry> batch;
    bool stopped = false;  // at a line of a newer version
    Pass(JournalIngester& i, tracking::JournalCursor from) : in(i), at(std::move(from)) {}
    void commit(bool caught_up) {
      if (caught_up) at.caught_up_us = now_us();
      size_t added = in.store_.ingest(batch, in.dir_, at);
      st.events_new += added;
      st.events_seen += batch.size() - added;
      batch.clear();
    }
    bool on_line(const journal::JournalLine& l) override {
      LogEntry e;
      std::string error;
      switch (parse_event_line(l.text, e, error)) {
        case LineKind::message: batch.push_back(std::move(e)); break;
        case LineKind::other: ++st.other_lines; break;
        case LineKind::bad:
          ++st.bad_lines;
          std::cerr << "sekisho-control: " << in.dir_ << "/" << l.file << ": bad line at byte " << l.offset << ": "
                    << error << "\n";
          break;
        case LineKind::newer:
          // Kept for a newer sekisho-control: the pass stops here, nothing is lost.
          ++st.newer_lines;
          stopped = true;
          if (in.waiting_at_ != journal::JournalPosition{l.file, l.offset}) {  // said once, not every pass
            in.waiting_at_ = {l.file, l.offset};
            std::cerr << "sekisho-control: " << in.dir_ << "/" << l.file << ": line at byte " << l.offset << ": "
                      << error << ": ingestion waits there until sekisho-control is upgraded\n";
          }
          return false;
      }
      ++st.lines;
      at.file = l.file;
      at.offset = l.next;
      if (batch.size() >= in.batch_lines_) commit(false);
      return true;
    }
    void on_file_end(const journal::JournalPosition& end) override {
      // The cursor names one file at a time: store this file's events with it.
      at.file = end.file;
      at.offset = end.offset;
      if (!batch.empty()) commit(false);
    }
    void on_abandoned_tail(const std::string& path, uint64_t offset, uint64_t bytes) override {
      // The writer moved to a newer file: this tail will never be completed.
      ++st.abandoned_tails;
      std::cerr << "sekisho-control: " << path << ": " << bytes << " bytes of an unfinished last line at byte "
                << offset << " skipped (the journal moved on to a newer file)\n";
    }
    void on_overlong_line(const std::string& path, uint64_t offset, uint64_t bytes) override {
      ++st.lines;
      ++st.bad_lines;
      std::cerr << "sekisho-control: " << path << ": bad line at byte " << offset << ": " << bytes
                << " bytes, over the journal's line bound\n";
    }
    void on_rewind(const std::string& path, uint64_t size, uint64_t offset) override {
      std::cerr << "sekisho-control: " << path << " is shorter (" << size << " bytes) than the cursor (" << offset
                << "): reading it again from the start\n";
    }
  };
  Pass p(*this, store_.cursor(dir_));
  const journal::JournalPosition end = journal::JournalReader(dir_).read({p.at.file, p.at.offset}, p);
  p.at.file = end.file;
  p.at.offset = end.offset;
  p.commit(!p.stopped);
  totals_ += p.st;
  return p.st;
}

}  // namespace sekisho::control::ingest
