#include "dataplane/spool/spool.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdio.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace sekisho::spool {
namespace {

std::string errtext(const char* what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

void ensure_dir(const std::string& d) {
  std::error_code ec;
  std::filesystem::create_directories(d, ec);
  if (ec) throw std::runtime_error("cannot create " + d + ": " + ec.message());
  struct stat st;
  if (stat(d.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw std::runtime_error("not a directory: " + d);
}

bool write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    c += w;
    n -= size_t(w);
  }
  return true;
}

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

}  // namespace

SpoolWriter::SpoolWriter(std::string dir) : dir_(std::move(dir)) {
  ensure_dir(dir_);
  ensure_dir(dir_ + "/tmp");
  ensure_dir(dir_ + "/new");
  new_fd_ = ::open((dir_ + "/new").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (new_fd_ < 0) throw std::runtime_error(errtext("cannot open", dir_ + "/new"));
}

SpoolResult SpoolWriter::write(std::string_view id, std::string_view header_json, std::span<const uint8_t> message) {
  SpoolResult r;
  if (!valid_id(id)) {
    r.error = "invalid message id";
    return r;
  }
  if (header_json.find('\n') != std::string_view::npos) {
    r.error = "header must be one line";
    return r;
  }
  std::string tmp = dir_ + "/tmp/" + std::string(id) + ".msg";
  std::string fin = dir_ + "/new/" + std::string(id) + ".msg";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) {
    r.error = errtext("cannot create", tmp);
    return r;
  }
  bool ok = write_all(fd, header_json.data(), header_json.size()) && write_all(fd, "\n", 1) &&
            write_all(fd, message.data(), message.size());
  if (!ok) r.error = errtext("cannot write", tmp);
  if (ok && ::fsync(fd) != 0) {
    ok = false;
    r.error = errtext("cannot fsync", tmp);
  }
  if (::close(fd) != 0 && ok) {
    ok = false;
    r.error = errtext("cannot close", tmp);
  }
  // RENAME_NOREPLACE: an id already in new/ is never overwritten.
  if (ok && ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, fin.c_str(), RENAME_NOREPLACE) != 0) {
    ok = false;
    r.error = errtext("cannot rename to", fin);
  }
  if (ok && ::fsync(new_fd_) != 0) {
    // The file is in new/ but its directory entry may not be durable: take
    // it back so the client is never told 250 for a message a crash could lose.
    r.error = errtext("cannot fsync", dir_ + "/new");
    ::unlink(fin.c_str());
    ok = false;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return r;
  }
  r.ok = true;
  r.path = fin;
  return r;
}

bool read_spool_file(const std::string& path, SpoolEntry& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string all;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    all.append(buf, size_t(n));
  }
  ::close(fd);
  auto nl = all.find('\n');
  if (nl == std::string::npos || nl == 0 || all[0] != '{') return false;
  out.header_json = all.substr(0, nl);
  out.message = all.substr(nl + 1);
  return true;
}

Journal::Journal(JournalOptions opt) : opt_(std::move(opt)) {
  ensure_dir(opt_.dir);
  // Continue after the highest existing sequence number: files are never reopened.
  if (DIR* d = opendir(opt_.dir.c_str())) {
    while (dirent* e = readdir(d)) {
      unsigned long long s;
      if (sscanf(e->d_name, "events-%llu.jsonl", &s) == 1 && s >= seq_) seq_ = s + 1;
    }
    closedir(d);
  }
  if (!open_next()) throw std::runtime_error(errtext("cannot open journal in", opt_.dir));
}

Journal::~Journal() {
  flush();
  if (fd_ >= 0) ::close(fd_);
}

bool Journal::open_next() {
  if (fd_ >= 0) {
    ::fdatasync(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  char name[64];
  snprintf(name, sizeof name, "/events-%012llu.jsonl", static_cast<unsigned long long>(seq_++));
  path_ = opt_.dir + name;
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  file_bytes_ = 0;
  opened_ = std::chrono::steady_clock::now();
  return fd_ >= 0;
}

bool Journal::append(std::string_view line) {
  if (pending_count_ == 0) oldest_pending_ = std::chrono::steady_clock::now();
  pending_.append(line.data(), line.size());
  pending_.push_back('\n');
  ++pending_count_;
  if (pending_count_ >= opt_.flush_count) return flush();
  return tick();
}

bool Journal::tick() {
  if (pending_count_ && std::chrono::steady_clock::now() - oldest_pending_ >= opt_.flush_interval) return flush();
  return true;
}

bool Journal::flush() {
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

std::string make_message_id(uint64_t unix_us, unsigned lcore, uint32_t counter) {
  static const char kB32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";  // Crockford
  std::string id = "SK";
  for (int shift = 60; shift >= 0; shift -= 5) id.push_back(kB32[(unix_us >> shift) & 31]);
  id.push_back(kB32[lcore & 31]);
  for (int shift = 30; shift >= 0; shift -= 5) id.push_back(kB32[(counter >> shift) & 31]);
  return id;
}

}  // namespace sekisho::spool
