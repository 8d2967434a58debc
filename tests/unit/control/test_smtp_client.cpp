// The release SMTP client against a real SMTP server (Debian's aiosmtpd,
// appliance/wire/smtp-sink.py) on loopback: the server stores exactly the
// bytes given (dot-stuffing undone, 8-bit kept), STARTTLS is used when
// offered, refused recipients are reported per recipient, and timeouts and
// non-SMTP peers end in errors rather than hangs.
#include "smtp/smtp_client.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

namespace sekisho::control::smtp {
namespace {

namespace fs = std::filesystem;

uint16_t free_port() {
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

std::string slurp(const fs::path& p) {
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

const std::string kMessage =
    "From: alice@outside.test\r\nTo: bob@inside.test\r\nSubject: =?UTF-8?B?5pel5pys6Kqe?=\r\n\r\n"
    ".a line starting with a dot\r\n..two dots\r\n.\r\nraw 8-bit: \xe6\x97\xa5\xe6\x9c\xac\r\nend\r\n";

TEST(SmtpClient, DotStuffing) {
  EXPECT_EQ(dot_stuff("a\r\n.b\r\n"), "a\r\n..b\r\n.\r\n");
  EXPECT_EQ(dot_stuff(".x"), "..x\r\n.\r\n");
  EXPECT_EQ(dot_stuff(""), "\r\n.\r\n");
  EXPECT_EQ(dot_stuff("a\r\n.\r\n"), "a\r\n..\r\n.\r\n");
}

TEST(SmtpClient, DeliversByteIdenticalOverStartTls) {
  Sink sink(true);
  ClientOptions o;
  o.timeout = std::chrono::seconds(10);
  DeliveryResult r = deliver("127.0.0.1", sink.port(), "alice@outside.test",
                             {"bob@inside.test", "nobody@inside.test", "carol@inside.test"}, kMessage, o);
  ASSERT_TRUE(r.delivered) << r.error;
  EXPECT_TRUE(r.tls);
  EXPECT_EQ(r.final.code, 250);
  ASSERT_EQ(r.rcpts.size(), 3u);
  EXPECT_EQ(r.rcpts[0].reply.code, 250);
  EXPECT_EQ(r.rcpts[1].reply.code, 550);
  EXPECT_EQ(r.rcpts[2].reply.code, 250);
  EXPECT_EQ(r.failed_permanently(), std::vector<std::string>{"nobody@inside.test"});
  EXPECT_TRUE(r.failed_temporarily().empty());
  EXPECT_EQ(sink.message(1), kMessage);
  auto m = sink.meta(1);
  EXPECT_EQ(m["mail_from"], "alice@outside.test");
  EXPECT_EQ(m["rcpt_to"], (nlohmann::json{"bob@inside.test", "carol@inside.test"}));
  EXPECT_EQ(m["tls"], true);
}

TEST(SmtpClient, NullSenderAndPlainWhenTlsNotOffered) {
  Sink sink(false);
  DeliveryResult r = deliver("127.0.0.1", sink.port(), "<>", {"bob@inside.test"}, kMessage);
  ASSERT_TRUE(r.delivered) << r.error;
  EXPECT_FALSE(r.tls);
  EXPECT_EQ(sink.meta(1)["mail_from"], "");
  EXPECT_EQ(sink.message(1), kMessage);
  ClientOptions must;
  must.tls = TlsMode::require;
  DeliveryResult r2 = deliver("127.0.0.1", sink.port(), "a@b.test", {"bob@inside.test"}, kMessage, must);
  EXPECT_FALSE(r2.delivered);
  EXPECT_NE(r2.error.find("TLS is required"), std::string::npos) << r2.error;
}

TEST(SmtpClient, AllRecipientsRefusedMeansNoData) {
  Sink sink(false);
  DeliveryResult r = deliver("127.0.0.1", sink.port(), "a@b.test", {"nobody@inside.test"}, kMessage);
  EXPECT_FALSE(r.delivered);
  EXPECT_EQ(r.final.code, 550);
  EXPECT_EQ(r.failed_permanently(), std::vector<std::string>{"nobody@inside.test"});
  bool data_sent = false;
  for (const auto& l : r.transcript) data_sent = data_sent || l == "C: DATA";
  EXPECT_FALSE(data_sent);
}

TEST(SmtpClient, InjectionInAddressesRefused) {
  DeliveryResult r = deliver("127.0.0.1", 1, "a@b.test>\r\nRCPT TO:<x@y", {"bob@inside.test"}, "x\r\n");
  EXPECT_FALSE(r.delivered);
  EXPECT_NE(r.error.find("forbidden character"), std::string::npos);
}

// A peer that accepts and says nothing, and one that talks garbage.
TEST(SmtpClient, SilentAndNonSmtpPeersFailWithinTheDeadline) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  listen(s, 4);
  ClientOptions o;
  o.timeout = std::chrono::seconds(1);
  auto t0 = std::chrono::steady_clock::now();
  DeliveryResult r = deliver("127.0.0.1", ntohs(a.sin_port), "a@b.test", {"c@d.test"}, "x\r\n", o);
  EXPECT_FALSE(r.delivered);
  EXPECT_NE(r.error.find("timeout"), std::string::npos) << r.error;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));

  // The first connection is still in the backlog (never accepted): drain it.
  close(accept(s, nullptr, nullptr));
  std::thread peer([&] {
    int c = accept(s, nullptr, nullptr);
    const char* junk = "HTTP/1.1 400 Bad Request\r\n\r\n";
    write(c, junk, strlen(junk));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    close(c);
  });
  DeliveryResult r2 = deliver("127.0.0.1", ntohs(a.sin_port), "a@b.test", {"c@d.test"}, "x\r\n", o);
  peer.join();
  close(s);
  EXPECT_FALSE(r2.delivered);
  EXPECT_NE(r2.error.find("protocol"), std::string::npos) << r2.error;
}

}  // namespace
}  // namespace sekisho::control::smtp
