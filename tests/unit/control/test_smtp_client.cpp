// The release SMTP client against a real SMTP server (Debian's aiosmtpd,
// appliance/wire/smtp-sink.py) on loopback: the server stores exactly the
// bytes given (dot-stuffing undone, 8-bit kept), STARTTLS is used when
// offered, refused recipients are reported per recipient, and timeouts and
// non-SMTP peers end in errors rather than hangs.
#include "control/smtp/smtp_client.hpp"

#include "tests/unit/control/smtp_sink.hpp"

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
using testing::free_port;
using testing::Sink;

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
