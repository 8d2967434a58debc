// A real SMTP server for tests: appliance/wire/smtp-sink.py (Debian's
// aiosmtpd) on 127.0.0.1 and a free port, in a child process, optionally
// offering STARTTLS with a throw-away certificate; refuses
// nobody@inside.test. message(n)/meta(n): what it stored for the n-th
// message (1-based).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace sekisho::control::testing {

namespace fs = std::filesystem;

inline uint16_t free_port() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// smtp-sink.py in a child process; stopped on destruction.
class Sink {
 public:
  explicit Sink(bool tls) : dir_(fs::temp_directory_path() / ("sk-smtp-" + std::to_string(getpid()) + "-" +
                                                                std::to_string(counter_++))) {
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "mail");
    port_ = free_port();
    const char* root = getenv("SEKISHO_SOURCE_ROOT");
    std::string script = std::string(root ? root : ".") + "/appliance/wire/smtp-sink.py";
    std::string cert = (dir_ / "cert.pem").string(), key = (dir_ / "key.pem").string();
    if (tls) {
      std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " + key +
                        " -out " + cert + " >/dev/null 2>&1";
      if (system(cmd.c_str()) != 0) throw std::runtime_error("openssl req failed");
    }
    pid_ = fork();
    if (pid_ == 0) {
      std::string port = std::to_string(port_), mail = (dir_ / "mail").string(),
                  log = (dir_ / "sink.log").string();
      freopen(log.c_str(), "w", stdout);
      freopen(log.c_str(), "a", stderr);
      if (tls)
        execl("/usr/bin/python3", "python3", script.c_str(), "--listen", "127.0.0.1", "--port", port.c_str(),
              "--dir", mail.c_str(), "--refuse", "nobody@inside.test", "--tls", cert.c_str(), key.c_str(),
              (char*)nullptr);
      else
        execl("/usr/bin/python3", "python3", script.c_str(), "--listen", "127.0.0.1", "--port", port.c_str(),
              "--dir", mail.c_str(), "--refuse", "nobody@inside.test", (char*)nullptr);
      _exit(127);
    }
    for (int i = 0; i < 100; ++i) {
      if (slurp(dir_ / "sink.log").find("listening") != std::string::npos) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("smtp-sink did not start: " + slurp(dir_ / "sink.log"));
  }
  ~Sink() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    fs::remove_all(dir_);
  }
  uint16_t port() const { return port_; }
  std::string message(int n) const {
    char b[16];
    snprintf(b, sizeof b, "%06d", n);
    return slurp(dir_ / "mail" / (std::string(b) + ".eml"));
  }
  nlohmann::json meta(int n) const {
    char b[16];
    snprintf(b, sizeof b, "%06d", n);
    return nlohmann::json::parse(slurp(dir_ / "mail" / (std::string(b) + ".json")));
  }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};


}  // namespace sekisho::control::testing
