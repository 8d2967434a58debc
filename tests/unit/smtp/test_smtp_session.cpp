#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/smtp/smtp_session.hpp"

using namespace sekisho::smtp;

namespace {

struct Recorded {
  Transaction txn;
  std::string body;
};

class RecordingSink : public MessageSink {
 public:
  void on_message_begin(const SessionFacts&, const Transaction&) override { current.clear(); ++begins; }
  void on_body(std::span<const uint8_t> b) override { current.append(reinterpret_cast<const char*>(b.data()), b.size()); }
  void on_message_end(const SessionFacts&, const Transaction&) override { ++ends; }
  void on_transaction_done(const SessionFacts&, const Transaction& t) override { done.push_back({t, current}); }
  std::string current;
  int begins = 0, ends = 0;
  std::vector<Recorded> done;
};

std::span<const uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

// Plays a dialogue; |chunk| > 0 splits every write into pieces of that size.
void play(SmtpSession& s, const std::vector<std::pair<char, std::string>>& script, size_t chunk = 0) {
  for (auto& [who, text] : script) {
    size_t step = chunk ? chunk : text.size();
    for (size_t i = 0; i < text.size(); i += step) {
      auto piece = bytes(text).subspan(i, std::min(step, text.size() - i));
      who == 'C' ? s.on_client(piece) : s.on_server(piece);
    }
  }
}

const std::vector<std::pair<char, std::string>> kPipelined = {
    {'S', "220 mx.example ESMTP\r\n"},
    {'C', "EHLO client.example\r\n"},
    {'S', "250-mx.example\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 STARTTLS\r\n"},
    {'C', "MAIL FROM:<alice@example.org> SIZE=120 BODY=8BITMIME\r\nRCPT TO:<bob@example.net>\r\n"
          "RCPT TO:<nobody@example.net>\r\nRCPT TO:<carol@example.net>\r\nDATA\r\n"},
    {'S', "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 unknown\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"},
    {'C', "Subject: hi\r\n\r\n..leading dot\r\n.\r\n"},
    {'S', "250 2.0.0 queued\r\n"},
    {'C', "QUIT\r\n"},
    {'S', "221 bye\r\n"},
};

}  // namespace

TEST(SmtpSession, PipelinedTransactionWithRefusedRecipient) {
  for (size_t chunk : {0, 1, 2, 3, 7, 64}) {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, kPipelined, chunk);
    ASSERT_EQ(sink.done.size(), 1u) << "chunk " << chunk;
    const auto& t = sink.done[0].txn;
    EXPECT_EQ(t.mail_from, "alice@example.org");
    EXPECT_EQ(t.mail_params, "SIZE=120 BODY=8BITMIME");
    EXPECT_EQ(t.rcpt_to, (std::vector<std::string>{"bob@example.net", "carol@example.net"}));
    EXPECT_EQ(t.rcpt_refused, (std::vector<std::string>{"nobody@example.net"}));
    EXPECT_EQ(t.final_reply, 250);
    EXPECT_EQ(t.body_via, BodyVia::data);
    EXPECT_EQ(sink.done[0].body, "Subject: hi\r\n\r\n.leading dot\r\n");
    EXPECT_EQ(t.body_bytes, sink.done[0].body.size());
    EXPECT_EQ(s.facts().helo, "client.example");
    EXPECT_EQ(s.facts().capabilities, (std::vector<std::string>{"PIPELINING", "CHUNKING", "STARTTLS"}));
    EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::unknown_command)], 0u);
    EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::reply_without_command)], 0u) << "QUIT matched its 221";
  }
}

TEST(SmtpSession, NullSenderAndSeveralTransactions) {
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', "220 x\r\n"}, {'C', "HELO a\r\n"}, {'S', "250 x\r\n"},
           {'C', "MAIL FROM:<>\r\n"}, {'S', "250 ok\r\n"}, {'C', "RCPT TO:<b@x>\r\n"}, {'S', "250 ok\r\n"},
           {'C', "DATA\r\n"}, {'S', "354 go\r\n"}, {'C', "one\r\n.\r\n"}, {'S', "250 ok\r\n"},
           {'C', "RSET\r\n"}, {'S', "250 ok\r\n"},
           {'C', "MAIL FROM: <c@y>\r\n"}, {'S', "250 ok\r\n"}, {'C', "RCPT TO:<d@x>\r\n"}, {'S', "250 ok\r\n"},
           {'C', "DATA\r\n"}, {'S', "354 go\r\n"}, {'C', "two\r\n.\r\n"}, {'S', "451 later\r\n"}});
  ASSERT_EQ(sink.done.size(), 2u);
  EXPECT_EQ(sink.done[0].txn.mail_from, "");
  EXPECT_EQ(sink.done[0].body, "one\r\n");
  EXPECT_EQ(sink.done[1].txn.mail_from, "c@y");
  EXPECT_EQ(sink.done[1].txn.final_reply, 451);
  EXPECT_EQ(sink.done[1].body, "two\r\n");
  EXPECT_EQ(s.facts().transactions, 2u);
}

TEST(SmtpSession, BdatChunksWithPipelining) {
  RecordingSink sink;
  SmtpSession s(&sink);
  std::string c1 = "Subject: x\r\n\r\n.not stuffed\r\n", c2 = "end\r\n";
  play(s, {{'S', "220 x\r\n"}, {'C', "EHLO a\r\n"}, {'S', "250-x\r\n250 CHUNKING\r\n"},
           {'C', "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nBDAT " + std::to_string(c1.size()) + "\r\n" + c1 +
                     "BDAT " + std::to_string(c2.size()) + " LAST\r\n" + c2 + "QUIT\r\n"},
           {'S', "250 ok\r\n250 ok\r\n250 chunk\r\n250 done\r\n221 bye\r\n"}},
       5);
  ASSERT_EQ(sink.done.size(), 1u);
  EXPECT_EQ(sink.done[0].body, c1 + c2);
  EXPECT_EQ(sink.done[0].txn.body_via, BodyVia::bdat);
  EXPECT_EQ(sink.done[0].txn.final_reply, 250);
  EXPECT_EQ(sink.done[0].txn.rcpt_to, std::vector<std::string>{"b@x"});
}

TEST(SmtpSession, StartTlsStopsParsing) {
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', "220 x\r\n"}, {'C', "EHLO a\r\n"}, {'S', "250-x\r\n250 STARTTLS\r\n"}, {'C', "STARTTLS\r\n"},
           {'S', "220 ready\r\n"}, {'C', std::string("\x16\x03\x01\x02\x00MAIL FROM:<x@y>\r\n", 23)},
           {'S', "\x16\x03\x03 garbage\r\n"}});
  EXPECT_TRUE(s.facts().tls);
  EXPECT_TRUE(sink.done.empty());
  EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::bad_reply)], 0u);
}

TEST(SmtpSession, StartTlsRefusedKeepsParsing) {
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', "220 x\r\n"}, {'C', "STARTTLS\r\n"}, {'S', "454 no tls\r\n"}, {'C', "MAIL FROM:<a@b>\r\n"},
           {'S', "250 ok\r\n"}, {'C', "RCPT TO:<c@d>\r\n"}, {'S', "250 ok\r\n"}, {'C', "DATA\r\n"},
           {'S', "354 go\r\n"}, {'C', "x\r\n.\r\n"}, {'S', "250 ok\r\n"}});
  EXPECT_FALSE(s.facts().tls);
  ASSERT_EQ(sink.done.size(), 1u);
}

TEST(SmtpSession, AuthRecordsMechanismOnly) {
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', "220 x\r\n"}, {'C', "AUTH LOGIN\r\n"}, {'S', "334 VXNlcm5hbWU6\r\n"}, {'C', "YWxpY2U=\r\n"},
           {'S', "334 UGFzc3dvcmQ6\r\n"}, {'C', "czNjcmV0\r\n"}, {'S', "235 ok\r\n"}, {'C', "MAIL FROM:<a@b>\r\n"},
           {'S', "250 ok\r\n"}});
  EXPECT_EQ(s.facts().auth_mechanism, "LOGIN");
  EXPECT_TRUE(s.facts().auth_success);
  EXPECT_EQ(s.transaction().mail_from, "a@b");
  EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::unknown_command)], 0u) << "SASL lines are not commands";
}

TEST(SmtpSession, DataRefusedTurnsBufferedBytesBackIntoCommands) {
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', "220 x\r\n"}, {'C', "MAIL FROM:<a@b>\r\n"}, {'S', "250 ok\r\n"}, {'C', "RCPT TO:<c@d>\r\n"},
           {'S', "550 no\r\n"}, {'C', "DATA\r\nQUIT\r\n"}, {'S', "554 no valid recipients\r\n221 bye\r\n"}});
  EXPECT_EQ(sink.begins, 0);
  EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::data_without_354)], 1u);
  EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::reply_without_command)], 0u) << "QUIT was seen as a command";
}

// A command line over the limit is counted, and it is a desync: the server
// may cut it into commands the engine never saw (issue 14). A reply line
// over the limit likewise. Message data has no line limit.
TEST(SmtpSession, LongLinesAreBoundedAndCounted) {
  Limits lim;
  lim.max_line = 100;
  {
    RecordingSink sink;
    SmtpSession s(&sink, lim);
    s.on_server(bytes("220 x\r\n"));
    s.on_client(bytes(std::string(10000, 'A')));
    EXPECT_EQ(s.desync(), Desync::command_too_long);
    s.on_client(bytes("\r\nMAIL FROM:<a@b>\r\n"));
    s.on_server(bytes("500 too long\r\n250 ok\r\n"));
    EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::line_too_long)], 1u);
    EXPECT_EQ(s.transaction().mail_from, "") << "nothing parsed after the desync";
    EXPECT_EQ(s.facts().desync, Desync::command_too_long);
  }
  {
    RecordingSink sink;
    SmtpSession s(&sink, lim);
    s.on_server(bytes("220 " + std::string(200, 'x') + "\r\n"));
    EXPECT_EQ(s.desync(), Desync::reply_too_long);
  }
  {
    RecordingSink sink;
    SmtpSession s(&sink, lim);
    play(s, {{'S', "220 x\r\n"}, {'C', "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"},
             {'S', "250 ok\r\n250 ok\r\n354 go\r\n"}, {'C', std::string(10000, 'A') + "\r\n.\r\n"},
             {'S', "250 ok\r\n"}});
    EXPECT_EQ(s.desync(), Desync::none);
    ASSERT_EQ(sink.done.size(), 1u);
    EXPECT_EQ(sink.done[0].txn.body_bytes, 10002u);
  }
}

TEST(SmtpSession, UnterminatedDataReportedIncompleteOnClose) {
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', "220 x\r\n"}, {'C', "MAIL FROM:<a@b>\r\n"}, {'S', "250 ok\r\n"}, {'C', "RCPT TO:<c@d>\r\n"},
           {'S', "250 ok\r\n"}, {'C', "DATA\r\n"}, {'S', "354 go\r\n"}, {'C', "partial body\r\n"}});
  s.on_close();
  ASSERT_EQ(sink.done.size(), 1u);
  EXPECT_FALSE(sink.done[0].txn.complete);
  EXPECT_EQ(sink.done[0].txn.final_reply, 0);
  EXPECT_EQ(sink.done[0].body, "partial body\r\n");
}

TEST(SmtpSession, GarbageNeverCrashes) {
  RecordingSink sink;
  SmtpSession s(&sink);
  uint32_t x = 12345;
  std::string g;
  for (int i = 0; i < 200000; ++i) {
    x = x * 1103515245 + 12345;
    g.push_back(char("MAILFROM:<>RCPTDATABDAT 3 LAST.\r\n250 354 \x00\xff"[(x >> 16) % 44]));
  }
  for (size_t i = 0; i < g.size(); i += 97) {
    s.on_client(bytes(g.substr(i, 97)));
    s.on_server(bytes(g.substr(g.size() - i - 1 > 97 ? g.size() - i - 97 : 0, 97)));
  }
  s.on_close();
  SUCCEED();
}

// Dot-unstuffing against a byte-wise reference, with dot lines at every
// offset of the 16-byte scan, and the DATA bytes cut at every position.
TEST(SmtpSession, DotUnstuffingMatchesReferenceAtEverySplit) {
  std::string wire;
  for (int len = 0; len < 40; ++len) {
    std::string line(size_t(len), char('a' + len % 26));
    if (len % 3 == 0) line.insert(0, "..");  // a line the client stuffed
    if (len % 7 == 1) line += "\nx.y";      // a bare LF, then a dot inside the line (a dot right
                                             // after a bare LF is a desync: SmtpDesync tests)
    wire += line + "\r\n";
  }
  // Dot-stuffing is undone after CRLF (a dot after a bare LF is a desync).
  std::string expected;
  bool line_start = true;
  for (char c : wire) {
    if (line_start && c == '.') {
      line_start = false;
      continue;
    }
    expected += c;
    line_start = c == '\n';
  }
  wire += ".\r\n";
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', "220 mx\r\n"}, {'C', "HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"},
             {'S', "250 x\r\n250 ok\r\n250 ok\r\n354 go\r\n"}});
    s.on_client(bytes(wire.substr(0, cut)));
    s.on_client(bytes(wire.substr(cut)));
    s.on_server(bytes("250 queued\r\n"));
    ASSERT_EQ(sink.done.size(), 1u) << "cut at " << cut << ", desync " << desync_name(s.desync());
    EXPECT_EQ(sink.done[0].body, expected) << "cut at " << cut;
    EXPECT_EQ(sink.done[0].txn.body_bytes, expected.size());
    EXPECT_EQ(sink.done[0].txn.final_reply, 250);
    EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::bare_lf_end_of_data)], 0u);
  }
}

// <LF>.<CR><LF> (SMTP smuggling): the engine ends the message there, as
// lenient servers do, and counts it so the policy can refuse the session;
// CRLF.CRLF is not counted. Every cut position gives the same result.
TEST(SmtpSession, BareLfEndOfDataIsCounted) {
  for (const bool bare : {true, false}) {
    const std::string body = std::string("Subject: a\r\n\r\nhello") + (bare ? "\n" : "\r\n") + ".\r\n";
    for (size_t cut = 0; cut <= body.size(); ++cut) {
      RecordingSink sink;
      SmtpSession s(&sink);
      play(s, {{'S', "220 mx\r\n"}, {'C', "HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"},
               {'S', "250 x\r\n250 ok\r\n250 ok\r\n354 go\r\n"}});
      s.on_client(bytes(body.substr(0, cut)));
      s.on_client(bytes(body.substr(cut) + "MAIL FROM:<x@y>\r\n"));
      s.on_server(bytes("250 queued\r\n250 ok\r\n"));
      ASSERT_EQ(sink.done.size(), 1u) << "cut at " << cut;
      EXPECT_EQ(sink.done[0].body, bare ? "Subject: a\r\n\r\nhello\n" : "Subject: a\r\n\r\nhello\r\n");
      EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::bare_lf_end_of_data)], bare ? 1u : 0u) << "cut at " << cut;
      EXPECT_EQ(s.transaction().mail_from, "x@y");
    }
  }
}

// One-sided capture (offline only): with nothing ever seen from the server,
// the option assumes its replies were positive; without it, or once the
// server has spoken, only real replies count.
TEST(SmtpSession, SilentServerIsAssumedToAcceptOnlyWhenAsked) {
  const std::string client = "EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n";
  for (const bool assume : {false, true}) {
    RecordingSink sink;
    Limits lim;
    lim.assume_silent_server_accepts = assume;
    SmtpSession s(&sink, lim);
    s.on_client(bytes(client));
    s.on_close();
    if (!assume) {
      EXPECT_TRUE(sink.done.empty() || sink.done[0].txn.body_bytes == 0);
      continue;
    }
    ASSERT_EQ(sink.done.size(), 1u);
    EXPECT_EQ(sink.done[0].body, "hello\r\n");
    EXPECT_EQ(sink.done[0].txn.rcpt_to, (std::vector<std::string>{"c@d", "e@f"}));
    EXPECT_EQ(sink.done[0].txn.final_reply, 0);
    EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::server_silent)], 1u);
  }
  // The server spoke: its refusal stands even with the option on.
  RecordingSink sink;
  Limits lim;
  lim.assume_silent_server_accepts = true;
  SmtpSession s(&sink, lim);
  play(s, {{'S', "220 mx\r\n"}, {'C', "HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"},
           {'S', "250 x\r\n250 ok\r\n550 no\r\n554 no valid recipients\r\n"}});
  s.on_close();
  EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::server_silent)], 0u);
  for (auto& d : sink.done) EXPECT_TRUE(d.txn.rcpt_to.empty());
  EXPECT_EQ(sink.begins, 0);
}
