// Helpers shared by the control-plane unit tests: a temporary directory
// removed at the end, and message event lines as the dataplane writes them.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sekisho::control::testing {

class TempDir {
 public:
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "sekisho-control-XXXXXX").string();
    if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A "type":"message" event with the fields the journal carries.
inline nlohmann::json message_event(const std::string& ts, const std::string& mail_from,
                                    std::vector<std::string> rcpts, const std::string& subject,
                                    const std::string& action = "pass", const std::string& id = "") {
  nlohmann::json j = {
      {"type", "message"},     {"ts", ts},
      {"src", "192.0.2.1:40000"}, {"dst", "192.0.2.2:25"},
      {"helo", "client.test"}, {"mail_from", mail_from},
      {"rcpt_to", rcpts},      {"rcpt_refused", nlohmann::json::array()},
      {"tls", false},          {"auth", nullptr},
      {"size", 1234},          {"sha256", "ab" + std::string(62, '0')},
      {"from", mail_from.empty() ? "MAILER-DAEMON@outside.test" : mail_from},
      {"from_name", ""},       {"to", rcpts},
      {"cc", nlohmann::json::array()}, {"reply_to", nullptr},
      {"subject", subject},    {"message_id", "<" + ts + "@client.test>"},
      {"attachments", nlohmann::json::array()},
      {"verdict", {{"action", action}}},
      {"spool", nullptr},
  };
  if (!id.empty()) j["id"] = id;
  return j;
}

inline void append_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::app);
  f << bytes;
}

}  // namespace sekisho::control::testing
