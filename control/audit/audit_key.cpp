#include "control/audit/audit_key.hpp"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <stdexcept>

namespace sekisho::control::audit {

std::string load_or_create_key(const std::string& path) {
  std::string key;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    unsigned char k[32];
    if (RAND_bytes(k, sizeof k) != 1) throw std::runtime_error("audit: no random bytes for a key");
    int w = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w < 0) throw std::runtime_error("audit: cannot create the key file " + path + ": " + strerror(errno));
    bool ok = ::write(w, k, sizeof k) == ssize_t(sizeof k) && ::fsync(w) == 0;
    ::close(w);
    if (!ok) throw std::runtime_error("audit: cannot write the key file " + path);
    std::cerr << "sekisho-control: created the audit key " << path << "\n";
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) throw std::runtime_error("audit: cannot read the key file " + path + ": " + strerror(errno));
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 && key.size() < 65536) key.append(buf, size_t(n));
  ::close(fd);
  return key;
}

}  // namespace sekisho::control::audit
