#include "control/ingest/journal_ingest.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "control/tracking/time.hpp"

namespace sekisho::control::ingest {

using nlohmann::json;
using tracking::MessageEvent;

IngestStats& IngestStats::operator+=(const IngestStats& o) {
  lines += o.lines;
  events_new += o.events_new;
  events_seen += o.events_seen;
  other_lines += o.other_lines;
  bad_lines += o.bad_lines;
  abandoned_tails += o.abandoned_tails;
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
// unique and is identical each time its line is read.
std::string derive_event_id(const json& j) {
  std::string key;
  auto add = [&](const json& v) {
    key += v.is_string() ? v.get<std::string>() : v.dump();
    key.push_back('\0');
  };
  for (const char* k : {"ts", "src", "dst", "mail_from", "rcpt_to", "sha256", "size"})
    add(j.contains(k) ? j[k] : json());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(key.data(), key.size(), md, &n, EVP_sha256(), nullptr);
  return "pass-" + hex(md, 16);
}

std::string string_or(const json& j, const char* k, std::string d = {}) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return d;
  return it->get<std::string>();  // throws type_error on a non-string
}

std::string array_json(const json& j, const char* k) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return "[]";
  if (!it->is_array()) throw std::invalid_argument(std::string("'") + k + "' is not an array");
  return it->dump();
}

struct JournalFile {
  uint64_t seq;
  std::string name;
};

std::vector<JournalFile> list_journal(const std::string& dir) {
  std::vector<JournalFile> files;
  DIR* d = opendir(dir.c_str());
  if (!d) return files;
  while (dirent* e = readdir(d)) {
    unsigned long long seq;
    int end = 0;
    if (sscanf(e->d_name, "events-%llu.jsonl%n", &seq, &end) == 1 && e->d_name[end] == '\0')
      files.push_back({seq, e->d_name});
  }
  closedir(d);
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.seq < b.seq; });
  return files;
}

std::optional<uint64_t> seq_of(const std::string& name) {
  unsigned long long seq;
  int end = 0;
  if (sscanf(name.c_str(), "events-%llu.jsonl%n", &seq, &end) == 1 && name[size_t(end)] == '\0') return seq;
  return std::nullopt;
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

LineKind parse_event_line(std::string_view line, MessageEvent& e, std::string& error) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    error = "not a JSON object";
    return LineKind::bad;
  }
  try {
    if (string_or(j, "type") != "message") return LineKind::other;
    e = MessageEvent{};
    auto ts = tracking::parse_iso_time_us(string_or(j, "ts"));
    if (!ts) throw std::invalid_argument("'ts' missing or not an ISO 8601 UTC time");
    e.ts_us = *ts;
    e.event_id = string_or(j, "id");
    if (e.event_id.empty()) e.event_id = derive_event_id(j);
    e.envelope_sender = string_or(j, "mail_from");
    if (auto it = j.find("rcpt_to"); it != j.end() && !it->is_null())
      e.recipients = it->get<std::vector<std::string>>();
    e.header_from = string_or(j, "from");
    e.to_json = array_json(j, "to");
    e.cc_json = array_json(j, "cc");
    if (auto it = j.find("reply_to"); it != j.end() && !it->is_null()) e.reply_to = it->get<std::string>();
    e.subject = string_or(j, "subject");
    e.size = j.value("size", int64_t(0));
    e.message_id = string_or(j, "message_id");
    e.client = string_or(j, "src");
    e.server = string_or(j, "dst");
    e.tls = j.value("tls", false);
    if (auto it = j.find("verdict"); it != j.end() && it->is_object()) {
      const json& v = *it;
      e.action = string_or(v, "action", "pass");
      e.rule = string_or(v, "rule");
      if (auto s = v.find("score"); s != v.end() && s->is_number()) e.score = s->get<double>();
      e.rules_json = array_json(v, "rules");
    }
    e.attachments_json = array_json(j, "attachments");
    if (auto it = j.find("spool"); it != j.end() && !it->is_null()) e.spool = it->get<std::string>();
  } catch (const std::exception& ex) {
    error = ex.what();
    return LineKind::bad;
  }
  return LineKind::message;
}

JournalIngester::JournalIngester(std::string dir, tracking::Store& store, size_t batch_lines)
    : dir_(std::move(dir)), store_(store), batch_lines_(std::max<size_t>(1, batch_lines)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
}

IngestStats JournalIngester::pass() {
  IngestStats st;
  tracking::JournalCursor cur = store_.cursor(dir_);
  const std::vector<JournalFile> files = list_journal(dir_);

  size_t i = 0;
  uint64_t offset = 0;
  if (!cur.file.empty()) {
    auto cseq = seq_of(cur.file);
    while (i < files.size() && cseq && files[i].seq < *cseq) ++i;
    if (i < files.size() && files[i].name == cur.file) offset = cur.offset;
  }

  std::vector<MessageEvent> batch;
  tracking::JournalCursor at = cur;
  auto commit = [&](bool caught_up) {
    if (caught_up) at.caught_up_us = now_us();
    size_t added = store_.ingest(batch, dir_, at);
    st.events_new += added;
    st.events_seen += batch.size() - added;
    batch.clear();
  };

  std::string buf;
  std::vector<char> chunk(1 << 20);
  for (; i < files.size(); ++i) {
    const JournalFile& f = files[i];
    const bool last = i + 1 == files.size();
    std::string path = dir_ + "/" + f.name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // removed since the listing
      throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    }
    struct stat sb {};
    if (fstat(fd, &sb) == 0 && uint64_t(sb.st_size) < offset) {
      std::cerr << "sekisho-control: " << path << " is shorter (" << sb.st_size << " bytes) than the cursor ("
                << offset << "): reading it again from the start\n";
      offset = 0;
    }
    if (at.file != f.name) at = {f.name, offset, at.caught_up_us};
    buf.clear();
    uint64_t buf_offset = offset;  // file offset of buf[0]
    for (;;) {
      ssize_t n = ::pread(fd, chunk.data(), chunk.size(), off_t(buf_offset + buf.size()));
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        throw std::runtime_error("cannot read " + path + ": " + std::strerror(err));
      }
      if (n == 0) break;
      buf.append(chunk.data(), size_t(n));
      size_t start = 0;
      for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
        std::string_view line(buf.data() + start, nl - start);
        if (line.empty()) continue;
        ++st.lines;
        MessageEvent e;
        std::string error;
        switch (parse_event_line(line, e, error)) {
          case LineKind::message: batch.push_back(std::move(e)); break;
          case LineKind::other: ++st.other_lines; break;
          case LineKind::bad:
            ++st.bad_lines;
            std::cerr << "sekisho-control: " << path << ": bad line at byte " << buf_offset + start << ": " << error
                      << "\n";
            break;
        }
        at.offset = buf_offset + nl + 1;
        if (batch.size() >= batch_lines_) commit(false);
      }
      buf.erase(0, start);
      buf_offset += start;
    }
    ::close(fd);
    if (!buf.empty() && !last) {
      // The writer moved to a newer file: this tail will never be completed.
      ++st.abandoned_tails;
      std::cerr << "sekisho-control: " << path << ": " << buf.size() << " bytes of an unfinished last line at byte "
                << buf_offset << " skipped (the journal moved on to a newer file)\n";
      at.offset = buf_offset + buf.size();
    }
    offset = 0;
    if (!last && !batch.empty()) commit(false);  // the cursor names one file at a time
  }
  commit(true);
  totals_ += st;
  return st;
}

}  // namespace sekisho::control::ingest
