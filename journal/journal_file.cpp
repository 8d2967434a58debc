#include "journal/journal_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "journal/file_io.hpp"

namespace sekisho::journal {

using detail::ensure_dir;
using detail::errtext;
using detail::write_all;

std::string journal_file_name(uint64_t seq) {
  char name[64];
  snprintf(name, sizeof name, "events-%012llu.jsonl", static_cast<unsigned long long>(seq));
  return name;
}

std::optional<uint64_t> journal_file_seq(std::string_view name) {
  constexpr std::string_view kPrefix = "events-", kSuffix = ".jsonl";
  if (name.size() <= kPrefix.size() + kSuffix.size() || !name.starts_with(kPrefix) || !name.ends_with(kSuffix))
    return std::nullopt;
  std::string_view digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  if (digits.size() > 19) return std::nullopt;
  uint64_t seq = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    seq = seq * 10 + uint64_t(c - '0');
  }
  return seq;
}

// ---- writer

JournalWriter::JournalWriter(JournalOptions opt) : opt_(std::move(opt)) {
  ensure_dir(opt_.dir);
  // Continue after the highest existing sequence number: files are never reopened.
  if (DIR* d = opendir(opt_.dir.c_str())) {
    while (dirent* e = readdir(d))
      if (auto s = journal_file_seq(e->d_name); s && *s >= seq_) seq_ = *s + 1;
    closedir(d);
  }
  if (!open_next()) throw std::runtime_error(errtext("cannot open journal in", opt_.dir));
}

JournalWriter::~JournalWriter() {
  flush();
  if (fd_ >= 0) ::close(fd_);
}

bool JournalWriter::open_next() {
  if (fd_ >= 0) {
    ::fdatasync(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  path_ = opt_.dir + "/" + journal_file_name(seq_++);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  file_bytes_ = 0;
  opened_ = std::chrono::steady_clock::now();
  return fd_ >= 0;
}

bool JournalWriter::append(std::string_view line) {
  if (pending_count_ == 0) oldest_pending_ = std::chrono::steady_clock::now();
  pending_.append(line.data(), line.size());
  pending_.push_back('\n');
  ++pending_count_;
  if (pending_count_ >= opt_.flush_count) return flush();
  return tick();
}

bool JournalWriter::tick() {
  if (pending_count_ && std::chrono::steady_clock::now() - oldest_pending_ >= opt_.flush_interval) return flush();
  return true;
}

bool JournalWriter::flush() {
  if (!pending_count_) return true;
  auto now = std::chrono::steady_clock::now();
  if (fd_ < 0 || file_bytes_ >= opt_.max_bytes || now - opened_ >= opt_.max_age) {
    if (!open_next()) {
      ++flush_failures_;
      return false;
    }
  }
  if (!write_all(fd_, pending_.data(), pending_.size()) || ::fdatasync(fd_) != 0) {
    // A short write may have left a partial line: start a new file so every
    // file stays a sequence of whole lines up to its end.
    ++flush_failures_;
    open_next();
    return false;
  }
  file_bytes_ += pending_.size();
  written_ += pending_count_;
  pending_.clear();
  pending_count_ = 0;
  return true;
}

// ---- reader

namespace {

struct JournalFile {
  uint64_t seq;
  std::string name;
};

std::vector<JournalFile> list_journal(const std::string& dir) {
  std::vector<JournalFile> files;
  DIR* d = opendir(dir.c_str());
  if (!d) return files;
  while (dirent* e = readdir(d))
    if (auto seq = journal_file_seq(e->d_name)) files.push_back({*seq, e->d_name});
  closedir(d);
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.seq < b.seq; });
  return files;
}

}  // namespace

JournalReader::JournalReader(std::string dir, uint64_t max_line_bytes)
    : dir_(std::move(dir)), max_line_(std::max<uint64_t>(1, max_line_bytes)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
}

JournalPosition JournalReader::read(const JournalPosition& from, Visitor& v) {
  const std::vector<JournalFile> files = list_journal(dir_);
  size_t i = 0;
  uint64_t offset = 0;
  if (!from.file.empty()) {
    auto cseq = journal_file_seq(from.file);
    while (i < files.size() && cseq && files[i].seq < *cseq) ++i;
    if (i < files.size() && files[i].name == from.file) offset = from.offset;
  }
  JournalPosition at = from;
  std::string buf;
  std::vector<char> chunk(1 << 20);
  for (; i < files.size(); ++i, offset = 0) {
    const JournalFile& f = files[i];
    const bool last = i + 1 == files.size();
    const std::string path = dir_ + "/" + f.name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // removed since the listing
      throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    }
    struct stat sb {};
    if (fstat(fd, &sb) == 0 && uint64_t(sb.st_size) < offset) {
      v.on_rewind(path, uint64_t(sb.st_size), offset);
      offset = 0;
    }
    at = {f.name, offset};
    buf.clear();
    uint64_t buf_offset = offset;  // file offset of buf[0]
    bool skipping = false;         // inside a line over max_line_, dropped as it is read
    uint64_t skip_start = 0;
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
        const uint64_t next = buf_offset + nl + 1;
        if (skipping) {
          skipping = false;
          v.on_overlong_line(path, skip_start, next - 1 - skip_start);
        } else if (nl - start > max_line_) {
          v.on_overlong_line(path, buf_offset + start, nl - start);
        } else if (nl > start) {
          if (!v.on_line({f.name, buf_offset + start, next, std::string_view(buf.data() + start, nl - start)})) {
            ::close(fd);
            return at;
          }
        }
        at.offset = next;
      }
      buf.erase(0, start);
      buf_offset += start;
      if (buf.size() > max_line_) {  // no newline within the bound: drop it as it comes
        if (!skipping) skip_start = buf_offset;
        skipping = true;
        buf_offset += buf.size();
        buf.clear();
      }
    }
    ::close(fd);
    if (!last) {
      if (skipping || !buf.empty()) {
        // The writer moved to a newer file: this tail will never be completed.
        uint64_t tail = skipping ? skip_start : buf_offset;
        v.on_abandoned_tail(path, tail, buf_offset + buf.size() - tail);
        at.offset = buf_offset + buf.size();
      }
      v.on_file_end(at);
    }
  }
  return at;
}

}  // namespace sekisho::journal
