// Private to journal/: the file helpers the journal and spool writers share.
#pragma once

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace sekisho::journal::detail {

inline std::string errtext(const char* what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

// Creates d (and its parents) when missing. Throws std::runtime_error.
inline void ensure_dir(const std::string& d) {
  std::error_code ec;
  std::filesystem::create_directories(d, ec);
  if (ec) throw std::runtime_error("cannot create " + d + ": " + ec.message());
  struct stat st;
  if (stat(d.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw std::runtime_error("not a directory: " + d);
}

inline bool write_all(int fd, const void* p, size_t n) {
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

}  // namespace sekisho::journal::detail
