// Issue 14: no message reaches the server unjudged. Each test plays what a
// real server would see and checks that the engine either follows it (the
// same transactions and envelopes the server delivers) or says, while it
// reads the bytes that cause it, that it can no longer tell (desync).
//
// Built with -DSMTP_OLD_ENGINE against the engine before issue 14 (see
// tests/unit/smtp/README.md), the behaviour checks fail there: every test
// here fails on that engine.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/smtp/session_script.hpp"

using namespace sekisho::smtp;
using namespace sekisho::smtp::testing;

#ifdef SMTP_OLD_ENGINE
#define EXPECT_DESYNC(s, d) ADD_FAILURE() << "this engine has no desync; expected " #d
#define EXPECT_IN_SYNC(s) SUCCEED()
#define NEW_ANOMALY(s, a) 0u
inline Limits strict_limits() { return {}; }
inline Limits masked_limits() { return {}; }
#else
#define EXPECT_DESYNC(s, d) EXPECT_EQ(desync_name((s).desync()), std::string(desync_name(Desync::d)))
#define EXPECT_IN_SYNC(s) EXPECT_EQ(desync_name((s).desync()), std::string("none"))
#define NEW_ANOMALY(s, a) (s).facts().anomalies[size_t(Anomaly::a)]
inline Limits strict_limits() {
  Limits l;
  l.end_of_data = EndOfData::strict;
  return l;
}
inline Limits masked_limits() {
  Limits l;
  l.refuse_starttls = true;
  return l;
}
#endif

namespace {

const std::string kBanner = "220 mx.example ESMTP\r\n";
const std::string kEhloReply = "250-mx.example\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250-CHUNKING\r\n250 8BITMIME\r\n";
const std::string kIr = "AGFsaWNlAHMzY3JldA==";  // \0alice\0s3cret

const size_t kChunks[] = {0, 1, 2, 3, 7, 64};

}  // namespace

// ---- 1. AUTH: a client line is SASL only after the server's 334 ----

// The attack of issue 14: AUTH with an initial response and a whole message
// in one segment. The server refuses AUTH (538) and takes the message; the
// engine must stop the segment before the server sees it.
TEST(SmtpDesync, AuthPipelinedWithMessageIsStoppedInItsSegment) {
  for (size_t chunk : kChunks) {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', kEhloReply}}, chunk);
    EXPECT_IN_SYNC(s);
    play(s, {{'C', "AUTH PLAIN " + kIr + "\r\nMAIL FROM:<mallory@evil.example>\r\nRCPT TO:<bob@example.net>\r\n"
                   "DATA\r\nSubject: unjudged\r\n\r\nhi\r\n.\r\n"}},
         chunk);
    // The dot line that ends the message is on its way to the server before
    // the AUTH reply says how the server reads it.
    EXPECT_DESYNC(s, data_before_reply) << "chunk " << chunk;
    // What the server then does: refuses AUTH, takes the message.
    play(s, {{'S', "538 5.7.11 Encryption required\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n250 2.0.0 queued\r\n"}});
    s.on_close();
#ifdef SMTP_OLD_ENGINE
    // The engine before: every line after AUTH was SASL; nothing was journaled.
    ASSERT_EQ(sink.done.size(), 1u) << "chunk " << chunk << ": the message the server queued is not reported";
    EXPECT_EQ(sink.done[0].txn.mail_from, "mallory@evil.example");
#endif
  }
}

// RFC 4954 allows MAIL/RCPT behind AUTH with an initial response (and
// PIPELINING): they are held, then read as commands once AUTH is answered,
// whatever the answer.
TEST(SmtpDesync, MailAndRcptPipelinedBehindAuthAreReadAfterItsReply) {
  for (const char* auth_reply : {"235 2.7.0 Authentication successful\r\n", "538 5.7.11 Encryption required\r\n",
                                 "535 5.7.8 Authentication failed\r\n"}) {
    for (size_t chunk : kChunks) {
      RecordingSink sink;
      SmtpSession s(&sink);
      play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', kEhloReply},
               {'C', "AUTH PLAIN " + kIr + "\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\n"},
               {'S', std::string(auth_reply) + "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"},
               {'C', "DATA\r\n"}, {'S', "354 go\r\n"}, {'C', "Subject: x\r\n\r\nbody\r\n.\r\n"}, {'S', "250 queued\r\n"}},
           chunk);
      EXPECT_IN_SYNC(s);
      ASSERT_EQ(sink.done.size(), 1u) << auth_reply << " chunk " << chunk;
      const auto& t = sink.done[0].txn;
      EXPECT_EQ(t.mail_from, "alice@example.org");
      EXPECT_TRUE(t.mail_accepted);
      EXPECT_EQ(t.rcpt_to, std::vector<std::string>{"bob@example.net"});
      EXPECT_EQ(t.final_reply, 250);
      EXPECT_EQ(sink.done[0].body, "Subject: x\r\n\r\nbody\r\n");
      EXPECT_EQ(s.facts().auth_mechanism, "PLAIN");
      EXPECT_EQ(s.facts().auth_success, auth_reply[0] == '2');
      EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::unknown_command)], 0u);
    }
  }
}

// The held line after a 334 is the SASL response, never a command: here the
// client sent its LOGIN username before the server asked for it.
TEST(SmtpDesync, HeldLineAfter334IsTheSaslResponse) {
  for (size_t chunk : kChunks) {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', kEhloReply},
             {'C', "AUTH LOGIN\r\nTUFJTCBGUk9NOjxldmlsQHg+\r\n"},  // base64 that could be anything
             {'S', "334 VXNlcm5hbWU6\r\n"}, {'S', "334 UGFzc3dvcmQ6\r\n"}, {'C', "czNjcmV0\r\n"},
             {'S', "235 ok\r\n"}, {'C', "MAIL FROM:<a@b>\r\n"}, {'S', "250 ok\r\n"}},
         chunk);
    EXPECT_IN_SYNC(s);
    EXPECT_TRUE(s.facts().auth_success);
    EXPECT_EQ(s.transaction().mail_from, "a@b");
    EXPECT_TRUE(s.transaction().mail_accepted) << "chunk " << chunk;
    EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::unknown_command)], 0u);
    EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::reply_without_command)], 0u);
  }
  // A client that cancels with "*": the 501 ends the exchange, commands follow.
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', kBanner}, {'C', "AUTH LOGIN\r\n"}, {'S', "334 VXNlcm5hbWU6\r\n"}, {'C', "*\r\n"},
           {'S', "501 5.7.0 Authentication aborted\r\n"}, {'C', "MAIL FROM:<a@b>\r\n"}, {'S', "250 ok\r\n"}});
  EXPECT_IN_SYNC(s);
  EXPECT_FALSE(s.facts().auth_success);
  EXPECT_TRUE(s.transaction().mail_accepted);
}

// RFC 4954 4 + RFC 2920: behind AUTH with an initial response, MAIL, RCPT
// and, last, DATA are a legal group. The engine holds them and reads them
// once AUTH is answered; the body comes after 354.
TEST(SmtpDesync, DataLastInAGroupBehindAuthWithInitialResponseIsFollowed) {
  for (const char* auth_reply : {"235 2.7.0 ok\r\n", "538 5.7.11 Encryption required\r\n"}) {
    for (size_t chunk : kChunks) {
      RecordingSink sink;
      SmtpSession s(&sink);
      play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', kEhloReply},
               {'C', "AUTH PLAIN " + kIr + "\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n"}},
           chunk);
      EXPECT_IN_SYNC(s);
      play(s, {{'S', std::string(auth_reply) + "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"},
               {'C', "Subject: x\r\n\r\nbody\r\n.\r\n"}, {'S', "250 queued\r\n"}},
           chunk);
      EXPECT_IN_SYNC(s);
      ASSERT_EQ(sink.done.size(), 1u) << auth_reply << " chunk " << chunk;
      EXPECT_EQ(sink.done[0].txn.mail_from, "alice@example.org");
      EXPECT_EQ(sink.done[0].txn.rcpt_to, std::vector<std::string>{"bob@example.net"});
      EXPECT_EQ(sink.done[0].body, "Subject: x\r\n\r\nbody\r\n");
      EXPECT_EQ(sink.done[0].txn.final_reply, 250);
    }
  }
}

// A dot line or BDAT behind AUTH would end a message on the server before
// the engine knows how the server reads it; DATA behind AUTH without an
// initial response breaks RFC 4954 (AUTH ends the group): its lines may be
// SASL responses.
TEST(SmtpDesync, LinesThatCouldEndAMessageBehindAuthAreDesyncs) {
  {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "AUTH LOGIN\r\nDATA\r\n"}});
    EXPECT_DESYNC(s, data_behind_auth);
  }
  {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', kEhloReply},
             {'C', "AUTH PLAIN " + kIr + "\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 5 LAST\r\nhello"}});
    EXPECT_DESYNC(s, data_behind_auth);
  }
  {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "AUTH LOGIN\r\nx\r\n.\r\n"}});
    EXPECT_DESYNC(s, data_before_reply);
  }
}

// ---- 2. The envelope follows the server's replies ----

// A nested MAIL refused with 503 leaves the sender (and recipients) alone.
TEST(SmtpDesync, NestedMailRefusedKeepsTheEnvelope) {
  for (size_t chunk : kChunks) {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', kEhloReply},
             {'C', "MAIL FROM:<alice@example.org>\r\n"}, {'S', "250 ok\r\n"},
             {'C', "RCPT TO:<bob@example.net>\r\n"}, {'S', "250 ok\r\n"},
             {'C', "MAIL FROM:<ceo@example.net>\r\n"}, {'S', "503 5.5.1 Error: nested MAIL command\r\n"},
             {'C', "RCPT TO:<carol@example.net>\r\nDATA\r\n"}, {'S', "250 ok\r\n354 go\r\n"},
             {'C', "hi\r\n.\r\n"}, {'S', "250 queued\r\n"}},
         chunk);
    EXPECT_IN_SYNC(s);
    ASSERT_EQ(sink.done.size(), 1u);
    const auto& t = sink.done[0].txn;
    EXPECT_EQ(t.mail_from, "alice@example.org") << "chunk " << chunk;
    EXPECT_EQ(t.rcpt_to, (std::vector<std::string>{"bob@example.net", "carol@example.net"}));
    ASSERT_EQ(sink.at_hold.size(), 1u);
    EXPECT_EQ(sink.at_hold[0].mail_from, "alice@example.org") << "the policy judges the envelope the server delivers";
    EXPECT_EQ(sink.at_hold[0].rcpt_to, t.rcpt_to);
  }
}

// A server that accepts a nested MAIL does what the engine cannot follow
// safely: a desync at that reply.
TEST(SmtpDesync, NestedMailAcceptedIsADesync) {
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', kBanner}, {'C', "MAIL FROM:<a@x>\r\n"}, {'S', "250 ok\r\n"}, {'C', "MAIL FROM:<b@x>\r\n"}});
  EXPECT_IN_SYNC(s);
  play(s, {{'S', "250 ok\r\n"}});
  EXPECT_DESYNC(s, nested_mail_accepted);
  // With BDAT the data reaches the server before that reply: a desync at once.
  RecordingSink sink2;
  SmtpSession s2(&sink2);
  play(s2, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', kEhloReply}, {'C', "MAIL FROM:<a@x>\r\n"}, {'S', "250 ok\r\n"},
            {'C', "RCPT TO:<c@x>\r\n"}, {'S', "250 ok\r\n"}, {'C', "MAIL FROM:<b@x>\r\nBDAT 2 LAST\r\nhi"}});
  EXPECT_DESYNC(s2, envelope_unknown);
#ifdef SMTP_OLD_ENGINE
  EXPECT_EQ(s2.transaction().mail_from, "a@x") << "the envelope the server uses if it refuses the nested MAIL";
#endif
}

// An EHLO refused with 501 does not reset the envelope; an accepted one does.
TEST(SmtpDesync, EhloResetsTheEnvelopeOnlyWhenAccepted) {
  for (size_t chunk : kChunks) {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', kEhloReply},
             {'C', "MAIL FROM:<alice@example.org>\r\n"}, {'S', "250 ok\r\n"},
             {'C', "RCPT TO:<bob@example.net>\r\n"}, {'S', "250 ok\r\n"},
             {'C', "EHLO\r\n"}, {'S', "501 5.5.4 Syntax: EHLO hostname\r\n"},
             {'C', "DATA\r\n"}, {'S', "354 go\r\n"}, {'C', "hi\r\n.\r\n"}, {'S', "250 queued\r\n"}},
         chunk);
    EXPECT_IN_SYNC(s);
    ASSERT_EQ(sink.done.size(), 1u) << "chunk " << chunk;
    EXPECT_EQ(sink.done[0].txn.mail_from, "alice@example.org");
    EXPECT_EQ(sink.done[0].txn.rcpt_to, std::vector<std::string>{"bob@example.net"});
    EXPECT_EQ(s.facts().helo, "c") << "a refused EHLO changes nothing";
  }
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', kEhloReply},
           {'C', "MAIL FROM:<alice@example.org>\r\n"}, {'S', "250 ok\r\n"},
           {'C', "RCPT TO:<bob@example.net>\r\n"}, {'S', "250 ok\r\n"},
           {'C', "EHLO d\r\n"}, {'S', kEhloReply}, {'C', "DATA\r\n"}, {'S', "503 5.5.1 Error: need RCPT command\r\n"},
           {'C', "MAIL FROM:<x@y>\r\n"}, {'S', "250 ok\r\n"}});
  EXPECT_IN_SYNC(s);
  EXPECT_EQ(sink.begins, 0);
  EXPECT_EQ(s.facts().helo, "d");
  EXPECT_EQ(s.transaction().mail_from, "x@y");
  EXPECT_TRUE(s.transaction().mail_accepted) << "a new MAIL after the reset is not nested";
}

// RSET with an argument: Postfix and aiosmtpd refuse it (501) and keep the
// transaction; the engine waits for the reply.
TEST(SmtpDesync, RsetWithArgumentResetsOnlyWhenAccepted) {
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', kBanner}, {'C', "MAIL FROM:<a@x>\r\n"}, {'S', "250 ok\r\n"}, {'C', "RCPT TO:<b@x>\r\n"},
           {'S', "250 ok\r\n"}, {'C', "RSET now\r\nDATA\r\n"}, {'S', "501 5.5.4 Syntax: RSET\r\n354 go\r\n"},
           {'C', "hi\r\n.\r\n"}, {'S', "250 ok\r\n"}});
  EXPECT_IN_SYNC(s);
  ASSERT_EQ(sink.done.size(), 1u);
  EXPECT_EQ(sink.done[0].txn.mail_from, "a@x");
  EXPECT_EQ(sink.done[0].txn.rcpt_to, std::vector<std::string>{"b@x"});
}

// Postfix: an accepted XCLIENT (220) starts the session over and drops the
// transaction; a refused one (550, client not authorized) changes nothing.
TEST(SmtpDesync, XclientResetsTheEnvelopeOnlyWhenAccepted) {
  for (const bool accepted : {false, true}) {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "MAIL FROM:<a@x>\r\n"}, {'S', "250 ok\r\n"}, {'C', "RCPT TO:<b@x>\r\n"},
             {'S', "250 ok\r\n"}, {'C', "XCLIENT NAME=spike.porcupine.org\r\nDATA\r\n"},
             {'S', accepted ? "220 mx ESMTP\r\n503 5.5.1 Error: need RCPT command\r\n"
                            : "550 5.7.0 Error: insufficient authorization\r\n354 go\r\n"},
             {'C', accepted ? "" : "hi\r\n.\r\n"}, {'S', accepted ? "" : "250 ok\r\n"},
             {'C', "MAIL FROM:<n@x>\r\n"}, {'S', "250 ok\r\n"}});
    EXPECT_IN_SYNC(s) << "after an accepted XCLIENT a MAIL is not nested";
    EXPECT_EQ(sink.done.size(), accepted ? 0u : 1u);
    EXPECT_EQ(sink.begins, accepted ? 0 : 1);
    EXPECT_EQ(s.transaction().mail_from, "n@x");
    EXPECT_TRUE(s.transaction().mail_accepted);
  }
}

// A BDAT no server could parse (no size) is refused and reads no chunk: the
// reply queue and MAIL FROM stay; pipelined BDAT replies after the message
// ended still reach its transaction.
TEST(SmtpDesync, MalformedBdatInAPipelinedGroupKeepsTheEnvelope) {
  for (size_t chunk : kChunks) {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', kEhloReply},
             {'C', "MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nBDAT\r\n"
                   "RCPT TO:<carol@example.net>\r\nBDAT 5 LAST\r\nhello"},
             {'S', "250 ok\r\n250 ok\r\n501 5.5.4 Syntax: BDAT count [LAST]\r\n250 ok\r\n250 queued\r\n"}},
         chunk);
    EXPECT_IN_SYNC(s);
    ASSERT_EQ(sink.done.size(), 1u) << "chunk " << chunk;
    const auto& t = sink.done[0].txn;
    EXPECT_EQ(t.mail_from, "alice@example.org");
    EXPECT_TRUE(t.mail_accepted);
    EXPECT_EQ(t.rcpt_to, (std::vector<std::string>{"bob@example.net", "carol@example.net"}));
    EXPECT_EQ(t.final_reply, 250);
    EXPECT_EQ(sink.done[0].body, "hello");
    EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::bdat_bad_size)], 1u);
  }
}

// BDAT commands servers parse differently frame a chunk on some and not on
// others: desync. So is BDAT to a server without CHUNKING (aiosmtpd reads
// the chunk as commands: "RSET" here resets its envelope).
TEST(SmtpDesync, AmbiguousBdatIsADesync) {
  for (const char* bdat : {"BDAT\t5 LAST", "BDAT  5 LAST", "BDAT 5x LAST", "BDAT 5 LASTX", "BDAT 5 LAST X",
                           "BDAT 1234567890123456", "BDAT 5 LAST "}) {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', kEhloReply},
             {'C', "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n" + std::string(bdat) + "\r\nhello"}});
    EXPECT_DESYNC(s, bdat_ambiguous) << bdat;
  }
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', "250-aiosmtpd\r\n250 PIPELINING\r\n"},
           {'C', "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nBDAT 6\r\nRSET\r\n"}});
  EXPECT_DESYNC(s, bdat_unadvertised);
#ifdef SMTP_OLD_ENGINE
  // The engine before took "RSET\r\n" as message data.
  EXPECT_EQ(sink.begins, 0) << "a message began that the server never saw";
#endif
}

// ---- 3. EHLO before the banner ----

// The client speaks first; the banner and the EHLO reply arrive in one
// server segment. The session and its message are followed as usual.
TEST(SmtpDesync, EhloBeforeTheBannerWithBannerAndReplyInOneSegment) {
  for (size_t chunk : kChunks) {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'C', "EHLO client.example\r\n"},
             {'S', kBanner + kEhloReply},
             {'C', "MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n"},
             {'S', "250 ok\r\n250 ok\r\n354 go\r\n"},
             {'C', "Subject: early\r\n\r\nhi\r\n.\r\n"}, {'S', "250 queued\r\n"},
             {'C', "QUIT\r\n"}, {'S', "221 bye\r\n"}},
         chunk);
    EXPECT_IN_SYNC(s);
    ASSERT_EQ(sink.done.size(), 1u) << "chunk " << chunk;
    EXPECT_EQ(sink.done[0].txn.mail_from, "alice@example.org");
    EXPECT_EQ(sink.done[0].txn.rcpt_to, std::vector<std::string>{"bob@example.net"});
    EXPECT_EQ(sink.done[0].txn.final_reply, 250);
    EXPECT_EQ(s.facts().greeting, "mx.example ESMTP");
    EXPECT_EQ(s.facts().helo, "client.example");
    EXPECT_EQ(s.facts().capabilities, (std::vector<std::string>{"PIPELINING", "AUTH", "CHUNKING", "8BITMIME"}));
    EXPECT_EQ(s.facts().anomalies[size_t(Anomaly::reply_without_command)], 0u);
  }
}

// ---- 4. End of data: every variant a lenient server takes ----

namespace {
struct Variant {
  const char* ending;  // after "hello"
  const char* body;    // what the server stores
  Anomaly anomaly;
};
}  // namespace

TEST(SmtpDesync, LenientEndOfDataVariantsEndTheMessageAndAreMarked) {
#ifndef SMTP_OLD_ENGINE
  const Variant variants[] = {
      {"\n.\n", "Subject: a\r\n\r\nhello\n", Anomaly::lf_dot_lf_end_of_data},
      {"\r\n.\n", "Subject: a\r\n\r\nhello\r\n", Anomaly::crlf_dot_lf_end_of_data},
      {"\n.\r\n", "Subject: a\r\n\r\nhello\n", Anomaly::bare_lf_end_of_data},
  };
#else
  const Variant variants[] = {
      {"\n.\n", "Subject: a\r\n\r\nhello\n", Anomaly::bare_lf_end_of_data},
      {"\r\n.\n", "Subject: a\r\n\r\nhello\r\n", Anomaly::bare_lf_end_of_data},
  };
#endif
  for (const auto& v : variants) {
    const std::string body = std::string("Subject: a\r\n\r\nhello") + v.ending;
    for (size_t cut = 0; cut <= body.size(); ++cut) {
      RecordingSink sink;
      SmtpSession s(&sink);
      play(s, {{'S', kBanner}, {'C', "HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"},
               {'S', "250 x\r\n250 ok\r\n250 ok\r\n354 go\r\n"}});
      s.on_client(bytes(body.substr(0, cut)));
      s.on_client(bytes(body.substr(cut) + "MAIL FROM:<x@y>\r\n"));
      s.on_server(bytes("250 queued\r\n250 ok\r\n"));
      EXPECT_IN_SYNC(s);
      ASSERT_EQ(sink.done.size(), 1u) << "variant " << anomaly_name(v.anomaly) << " cut at " << cut;
      EXPECT_EQ(sink.done[0].body, v.body);
      EXPECT_TRUE(sink.done[0].txn.complete);
      EXPECT_TRUE(sink.done[0].txn.bare_lf_end) << "the smuggling policy sees it";
      EXPECT_EQ(sink.done[0].txn.final_reply, 250);
      EXPECT_EQ(s.facts().anomalies[size_t(v.anomaly)], 1u);
      EXPECT_EQ(s.transaction().mail_from, "x@y");
    }
  }
}

// strict: only CRLF.CRLF ends the message, and a variant is a desync at
// the byte that completes it; CRLF.CRLF is neither.
TEST(SmtpDesync, StrictEndOfDataMakesEveryVariantADesync) {
  for (const char* ending : {"\n.\n", "\r\n.\n", "\n.\r\n", "\r\n.\r\n"}) {
    const std::string body = std::string("Subject: a\r\n\r\nhello") + ending;
    for (size_t cut = 0; cut <= body.size(); ++cut) {
      RecordingSink sink;
      SmtpSession s(&sink, strict_limits());
      play(s, {{'S', kBanner}, {'C', "HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"},
               {'S', "250 x\r\n250 ok\r\n250 ok\r\n354 go\r\n"}});
      s.on_client(bytes(body.substr(0, cut)));
      if (cut < body.size()) {
        EXPECT_IN_SYNC(s);
      }
      s.on_client(bytes(body.substr(cut)));
      if (std::string(ending) == "\r\n.\r\n") {
        EXPECT_IN_SYNC(s);
        EXPECT_EQ(sink.ends, 1);
      } else {
        EXPECT_DESYNC(s, ambiguous_end_of_data) << "cut at " << cut;
        EXPECT_EQ(sink.ends, 0) << "the message did not end";
      }
    }
  }
}

// A bare CR before the dot: servers that take a bare CR as a line end stop
// there, the others read on. A desync in either strictness.
TEST(SmtpDesync, BareCrEndOfDataIsADesyncEitherWay) {
  for (const Limits& lim : {Limits{}, strict_limits()}) {
    for (const char* ending : {"\r.\r\n", "\r.\n"}) {
      const std::string body = std::string("Subject: a\r\n\r\nhello") + ending;
      for (size_t cut = 0; cut <= body.size(); ++cut) {
        RecordingSink sink;
        SmtpSession s(&sink, lim);
        play(s, {{'S', kBanner}, {'C', "HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"},
                 {'S', "250 x\r\n250 ok\r\n250 ok\r\n354 go\r\n"}});
        s.on_client(bytes(body.substr(0, cut)));
        s.on_client(bytes(body.substr(cut)));
        EXPECT_DESYNC(s, ambiguous_end_of_data) << "cut at " << cut;
        EXPECT_EQ(NEW_ANOMALY(s, cr_dot_end_of_data), 1u);
        EXPECT_EQ(sink.ends, 0);
      }
    }
  }
  // A bare CR followed by a dot inside a line is text.
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', kBanner}, {'C', "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"},
           {'S', "250 ok\r\n250 ok\r\n354 go\r\n"}, {'C', "a\r.b\r\n\r..\r\n.\r\n"}, {'S', "250 ok\r\n"}});
  EXPECT_IN_SYNC(s);
  ASSERT_EQ(sink.done.size(), 1u);
  EXPECT_EQ(sink.done[0].body, "a\r.b\r\n\r..\r\n");
}

// Found by tests/wire/diff_fuzz.py: "..x" after a bare LF is unstuffed by
// servers that end lines at LF (Postfix) and kept by CRLF-only ones
// (aiosmtpd), so the stored message and the inspected one differed by a dot.
TEST(SmtpDesync, DotLeadingLineAfterBareLfIsADesync) {
  for (const char* line : {"..leading\r\n", ".x\r\n", ".\rx\r\n"}) {
    const std::string body = std::string("Subject: a\r\n\r\nhello\n") + line + ".\r\n";
    for (size_t cut = 0; cut <= body.size(); ++cut) {
      RecordingSink sink;
      SmtpSession s(&sink);
      play(s, {{'S', kBanner}, {'C', "HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"},
               {'S', "250 x\r\n250 ok\r\n250 ok\r\n354 go\r\n"}});
      s.on_client(bytes(body.substr(0, cut)));
      s.on_client(bytes(body.substr(cut)));
      EXPECT_DESYNC(s, ambiguous_dot_stuffing) << line << " cut at " << cut;
      EXPECT_EQ(NEW_ANOMALY(s, bare_lf_dot_line), 1u);
      EXPECT_EQ(sink.ends, 0);
    }
  }
  // After CRLF the same line is ordinary dot-stuffing.
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', kBanner}, {'C', "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"},
           {'S', "250 ok\r\n250 ok\r\n354 go\r\n"}, {'C', "a\r\n..b\r\n.\r\n"}, {'S', "250 ok\r\n"}});
  EXPECT_IN_SYNC(s);
  ASSERT_EQ(sink.done.size(), 1u);
  EXPECT_EQ(sink.done[0].body, "a\r\n.b\r\n");
}

// ---- 5. STARTTLS on a port that masks it ----

TEST(SmtpDesync, StartTlsOnAMaskedPortIsADesync) {
  RecordingSink sink;
  SmtpSession s(&sink, masked_limits());
  play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', "250-mx\r\n250-XXXXXXXX\r\n250 PIPELINING\r\n"},
           {'C', "STARTTLS\r\n"}});
  EXPECT_DESYNC(s, starttls_masked);
  play(s, {{'S', "220 2.0.0 Ready to start TLS\r\n"}});
#ifdef SMTP_OLD_ENGINE
  EXPECT_FALSE(s.facts().tls) << "the session went encrypted past the mask";
#endif
}

// Bytes after STARTTLS before its reply: the server reads them as TLS or as
// commands (the command-injection bug of some servers).
TEST(SmtpDesync, BytesPipelinedAfterStartTlsAreADesync) {
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', "250-mx\r\n250 STARTTLS\r\n"},
           {'C', "STARTTLS\r\nMAIL FROM:<a@b>\r\n"}});
  EXPECT_DESYNC(s, starttls_pipelined);
#ifdef SMTP_OLD_ENGINE
  play(s, {{'S', "454 4.7.0 TLS not available\r\n250 ok\r\n"}});
  EXPECT_EQ(s.transaction().mail_from, "a@b") << "the engine before dropped the pipelined MAIL";
#endif
}

// ---- 1/6. DATA: the body before 354, and lost synchronisation ----

// Message bytes that end a message sent before 354 would reach the server
// before the engine could judge them. Bytes that cannot end a message are
// held and read as the reply decides.
TEST(SmtpDesync, EndOfDataBefore354IsADesync) {
  for (size_t chunk : kChunks) {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "MAIL FROM:<a@b>\r\n"}, {'S', "250 ok\r\n"}, {'C', "RCPT TO:<c@d>\r\n"},
             {'S', "250 ok\r\n"}, {'C', "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n"}},
         chunk);
    EXPECT_DESYNC(s, data_before_reply) << "chunk " << chunk;
  }
  // Body bytes without an end before 354: held, then data.
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', kBanner}, {'C', "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: x\r\n"},
           {'S', "250 ok\r\n250 ok\r\n354 go\r\n"}, {'C', "\r\nhi\r\n.\r\n"}, {'S', "250 ok\r\n"}});
  EXPECT_IN_SYNC(s);
  ASSERT_EQ(sink.done.size(), 1u);
  EXPECT_EQ(sink.done[0].body, "Subject: x\r\n\r\nhi\r\n");
  EXPECT_EQ(NEW_ANOMALY(s, held_for_reply), 1u);
}

TEST(SmtpDesync, HeldBytesOverTheLimitAreADesync) {
  RecordingSink sink;
  SmtpSession s(&sink);
  play(s, {{'S', kBanner}, {'C', "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"}, {'S', "250 ok\r\n250 ok\r\n"},
           {'C', "DATA\r\n" + std::string(70000, 'x')}});
  EXPECT_DESYNC(s, hold_overflow);
#ifdef SMTP_OLD_ENGINE
  EXPECT_EQ(sink.begins, 0) << "the engine before guessed the server's 354";
#endif
  // Lines: each reply would replay what is behind it (refused DATA after
  // refused DATA): bounded, so the work stays linear.
  std::string many;
  for (int i = 0; i < 40; ++i) many += "DATA\r\n";
  RecordingSink sink2;
  SmtpSession s2(&sink2);
  play(s2, {{'S', kBanner}, {'C', "MAIL FROM:<a@b>\r\n"}, {'S', "250 ok\r\n"}, {'C', many}});
  EXPECT_DESYNC(s2, hold_overflow);
  // Behind AUTH with an initial response, a legal group up to the recipient limit.
  std::string group = "AUTH PLAIN " + kIr + "\r\nMAIL FROM:<a@b>\r\n", replies = "235 ok\r\n250 ok\r\n";
  for (int i = 0; i < 200; ++i) {
    group += "RCPT TO:<r" + std::to_string(i) + "@x>\r\n";
    replies += "250 ok\r\n";
  }
  RecordingSink sink3;
  SmtpSession s3(&sink3);
  play(s3, {{'S', kBanner}, {'C', group + "DATA\r\n"}, {'S', replies + "354 go\r\n"}, {'C', "x\r\n.\r\n"},
            {'S', "250 ok\r\n"}});
  EXPECT_IN_SYNC(s3);
  ASSERT_EQ(sink3.done.size(), 1u);
  EXPECT_EQ(sink3.done[0].txn.rcpt_to.size(), 200u);
}

TEST(SmtpDesync, LostSynchronisationIsADesync) {
  {  // a reply nobody asked for
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner + "250 ok\r\n"}});
    EXPECT_DESYNC(s, reply_without_command);
  }
  {  // more pipelined commands than the queue keeps
    Limits lim;
    lim.max_pending = 4;
    RecordingSink sink;
    SmtpSession s(&sink, lim);
    play(s, {{'S', kBanner}, {'C', "NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n"}});
    EXPECT_DESYNC(s, too_many_pending);
  }
  {  // the command limit
    Limits lim;
    lim.max_commands = 3;
    RecordingSink sink;
    SmtpSession s(&sink, lim);
    play(s, {{'S', kBanner}, {'C', "NOOP\r\n"}, {'S', "250 ok\r\n"}, {'C', "NOOP\r\n"}, {'S', "250 ok\r\n"},
             {'C', "NOOP\r\n"}, {'S', "250 ok\r\n"}, {'C', "NOOP\r\n"}});
    EXPECT_DESYNC(s, command_limit);
  }
  {  // a server line that is no reply
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "NOOP\r\n"}, {'S', "hello there\r\n"}});
    EXPECT_DESYNC(s, bad_reply);
  }
  {  // a recipient over the limit that the server accepts
    Limits lim;
    lim.max_recipients = 2;
    RecordingSink sink;
    SmtpSession s(&sink, lim);
    play(s, {{'S', kBanner}, {'C', "MAIL FROM:<a@b>\r\nRCPT TO:<1@x>\r\nRCPT TO:<2@x>\r\nRCPT TO:<3@x>\r\n"},
             {'S', "250 ok\r\n250 ok\r\n250 ok\r\n"}});
    EXPECT_IN_SYNC(s);
    play(s, {{'S', "250 ok\r\n"}});
    EXPECT_DESYNC(s, recipient_limit);
  }
  {  // a RCPT accepted in a transaction the engine does not know (MAIL with a tab it could not read)
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "MAIL\tFROM:<a@b>\r\nRCPT TO:<c@d>\r\n"}, {'S', "250 ok\r\n250 ok\r\n"}});
    EXPECT_IN_SYNC(s) << "a tab separates the verb as Postfix reads it";
    EXPECT_EQ(s.transaction().mail_from, "a@b");
    RecordingSink sink2;
    SmtpSession s2(&sink2);
    play(s2, {{'S', kBanner}, {'C', "MAIL FROM <a@b>\r\nRCPT TO:<c@d>\r\n"}, {'S', "250 ok\r\n250 ok\r\n"}});
    EXPECT_DESYNC(s2, unexpected_reply);
  }
}

// Pipelined BDAT, replies after the message ended, several messages in a
// row, refused recipients: in sync, each reply to its transaction.
TEST(SmtpDesync, PipelinedBdatSessionsStayInSync) {
  std::string c1 = "Subject: 1\r\n\r\none\r\n", c2 = "Subject: 2\r\n\r\ntwo\r\n";
  for (size_t chunk : kChunks) {
    RecordingSink sink;
    SmtpSession s(&sink);
    play(s, {{'S', kBanner}, {'C', "EHLO c\r\n"}, {'S', kEhloReply},
             {'C', "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<no@x>\r\nBDAT " + std::to_string(c1.size()) +
                       " LAST\r\n" + c1},
             {'S', "250 ok\r\n250 ok\r\n550 no\r\n250 queued 1\r\n"},
             {'C', "MAIL FROM:<d@x>\r\nRCPT TO:<e@x>\r\nBDAT 3\r\nSubBDAT " + std::to_string(c2.size() - 3) +
                       " LAST\r\n" + c2.substr(3) + "QUIT\r\n"},
             {'S', "250 ok\r\n250 ok\r\n250 chunk\r\n250 queued 2\r\n221 bye\r\n"}},
         chunk);
    EXPECT_IN_SYNC(s);
    ASSERT_EQ(sink.done.size(), 2u) << "chunk " << chunk;
    EXPECT_EQ(sink.done[0].body, c1);
    EXPECT_EQ(sink.done[0].txn.rcpt_to, std::vector<std::string>{"b@x"});
    EXPECT_EQ(sink.done[0].txn.rcpt_refused, std::vector<std::string>{"no@x"});
    EXPECT_EQ(sink.done[1].body, c2);
    EXPECT_EQ(sink.done[1].txn.mail_from, "d@x");
    EXPECT_EQ(sink.done[1].txn.rcpt_to, std::vector<std::string>{"e@x"});
    EXPECT_EQ(sink.done[1].txn.final_reply, 250);
  }
}

// Offline (a capture: nothing to hold back) the desync is recorded and the
// engine parses on as before: Zeek's smtp-bdat-gap trace, where the server
// answers a BDAT twice and the capture then loses 1000 client bytes, still
// yields the message sent with DATA afterwards.
TEST(SmtpDesync, OfflineParsingGoesOnAfterADesync) {
  Limits lim;
  lim.assume_silent_server_accepts = true;
  RecordingSink sink;
  SmtpSession s(&sink, lim);
  const std::string body = "From: sender@example.com\r\nTo: recipient@example.com\r\nSubject: Test\r\n\r\nHello!\r\n";
  play(s, {{'S', "220 mail.example.com ESMTP\r\n"}, {'C', "EHLO sender.example.com\r\n"},
           {'S', "250-mail.example.com Hello\r\n250-CHUNKING\r\n250 OK\r\n"}, {'C', "MAIL FROM:<sender@example.com>\r\n"},
           {'S', "250 OK\r\n"}, {'C', "RCPT TO:<recipient@example.com>\r\n"}, {'S', "250 OK\r\n"},
           {'C', "BDAT 200\r\n"}, {'S', "250 OK\r\n"}, {'C', std::string(100, 'A')}, {'S', "250 OK\r\n"}});
  EXPECT_DESYNC(s, reply_without_command);
  s.on_gap(true, 1000);
  play(s, {{'C', "DATA\r\n"}, {'S', "354 End data with <CR><LF>.<CR><LF>\r\n"}, {'C', body + ".\r\n"},
           {'S', "250 OK: message queued\r\n"}, {'C', "QUIT\r\n"}, {'S', "221 Bye\r\n"}});
  s.on_close();
  ASSERT_FALSE(sink.done.empty());
  EXPECT_EQ(sink.done.back().body, body);
  EXPECT_EQ(sink.done.back().txn.final_reply, 250);
  EXPECT_EQ(sink.done.back().txn.mail_from, "sender@example.com");
}
