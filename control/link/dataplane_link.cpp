#include "control/link/dataplane_link.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace sekisho::control::link {

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

std::string recv_packet(int fd, size_t max, std::chrono::milliseconds timeout, const char* what) {
  pollfd p{fd, POLLIN, 0};
  int r;
  do r = poll(&p, 1, static_cast<int>(timeout.count()));
  while (r < 0 && errno == EINTR);
  if (r == 0) throw LinkError(std::string("no ") + what + " within " + std::to_string(timeout.count()) + " ms");
  if (r < 0) throw LinkError(std::string("poll: ") + strerror(errno));
  std::vector<char> buf(max + 1);
  ssize_t n;
  do n = recv(fd, buf.data(), buf.size(), 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw LinkError(std::string("reading the ") + what + ": " + strerror(errno));
  if (n == 0) throw LinkError(std::string("the dataplane closed the connection before its ") + what);
  if (static_cast<size_t>(n) > max) throw LinkError(std::string("the ") + what + " is longer than " + std::to_string(max) + " bytes");
  return std::string(buf.data(), static_cast<size_t>(n));
}

}  // namespace

std::string socket_for_prefix(const std::string& prefix, const std::string& runtime_dir) {
  return runtime_dir + "/" + prefix + "/dpdk_telemetry.v2";
}

DataplaneLink::DataplaneLink(std::string socket_path, std::chrono::milliseconds timeout)
    : path_(std::move(socket_path)), timeout_(timeout) {}

nlohmann::json DataplaneLink::query(std::string_view command, std::string_view params) const {
  if (command.empty() || command[0] != '/' || command.size() > 56)
    throw LinkError("telemetry command must start with '/' and be at most 56 bytes");
  std::string msg(command);
  if (!params.empty()) msg += "," + std::string(params);
  if (msg.size() > 1000) throw LinkError("telemetry request longer than 1000 bytes");
  for (unsigned char c : msg)
    if (c < 0x20 || c == 0x7f) throw LinkError("telemetry request holds a control character");
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path_.size() >= sizeof sa.sun_path) throw LinkError("telemetry socket path too long: " + path_);
  memcpy(sa.sun_path, path_.c_str(), path_.size() + 1);
  Fd s;
  s.fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s.fd < 0) throw LinkError(std::string("socket: ") + strerror(errno));
  if (connect(s.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    throw LinkError("cannot connect to " + path_ + ": " + strerror(errno) + " (is sekisho-dataplane running?)");
  nlohmann::json greeting = nlohmann::json::parse(recv_packet(s.fd, 16384, timeout_, "greeting"), nullptr, false);
  if (!greeting.is_object()) throw LinkError("the telemetry greeting is not a JSON object");
  size_t max_out = 16384;
  if (greeting.contains("max_output_len") && greeting["max_output_len"].is_number_unsigned())
    max_out = std::min<size_t>(greeting["max_output_len"].get<size_t>(), 1u << 20);
  ssize_t n;
  do n = send(s.fd, msg.data(), msg.size(), MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(msg.size())) throw LinkError(std::string("sending the request: ") + strerror(errno));
  nlohmann::json reply = nlohmann::json::parse(recv_packet(s.fd, max_out, timeout_, "reply"), nullptr, false);
  if (!reply.is_object()) throw LinkError("the telemetry reply is not a JSON object");
  auto it = reply.find(std::string(command));
  if (it == reply.end()) throw LinkError("the telemetry reply has no '" + std::string(command) + "' (unknown command?)");
  return *it;
}

}  // namespace sekisho::control::link
