#include "journal/spool_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdio.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "journal/file_io.hpp"

namespace sekisho::journal {
namespace {

using detail::ensure_dir;
using detail::errtext;
using detail::write_all;

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

SpoolWriter::~SpoolWriter() {
  if (new_fd_ >= 0) ::close(new_fd_);
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

std::optional<ReadError> read_spool_header(std::string_view header_json, MessageEvent& out) {
  ReadError err;
  switch (read_line(header_json, &out, nullptr, err)) {
    case LineType::message: break;
    case LineType::bad: return err;
    default: return ReadError{false, "not a message event"};
  }
  if (out.id.empty()) return ReadError{false, "a spool header without an id"};
  return std::nullopt;
}

std::string make_message_id(uint64_t unix_us, unsigned lcore, uint32_t counter) {
  static const char kB32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";  // Crockford
  std::string id = "SK";
  for (int shift = 60; shift >= 0; shift -= 5) id.push_back(kB32[(unix_us >> shift) & 31]);
  id.push_back(kB32[lcore & 31]);
  for (int shift = 30; shift >= 0; shift -= 5) id.push_back(kB32[(counter >> shift) & 31]);
  return id;
}

}  // namespace sekisho::journal
