// The EAL-free enforcement of the worker: reply texts, the segments it
// injects (and at which sequence numbers), and the hold/spool state machine
// driven with an explicit "now".
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/enforce/tcp_inject.hpp"
#include "dataplane/hold/answers.hpp"
#include "dataplane/hold/hold_queue.hpp"
#include "dataplane/hold/replies.hpp"
#include "dataplane/net/packet.hpp"

using namespace sekisho;
using enforce::Towards;
using Settle = hold::HoldQueue::Settle;

namespace {

// The flow's half as pipeline::Connection::Enforced has it.
struct Half {
  bool active = false;
  uint32_t server_seq = 0;
  bool closing = false;
  bool done = false;
  bool held = false;
};
static_assert(hold::ServerHalf<Half>);

// A client segment 192.0.2.1:40000 -> 192.0.2.2:25, seq 1000, ack 5000.
std::vector<uint8_t> client_segment(const std::string& payload, uint8_t flags = net::kTcpAck | net::kTcpPsh) {
  std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 0x22, 0x02, 0, 0, 0, 0, 0x11, 0x08, 0x00};
  uint16_t tot = uint16_t(20 + 20 + payload.size());
  f.insert(f.end(), {0x45, 0, uint8_t(tot >> 8), uint8_t(tot), 0, 0, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2});
  f.insert(f.end(), {0x9c, 0x40, 0x00, 0x19, 0, 0, 0x03, 0xe8, 0, 0, 0x13, 0x88, 0x50, flags, 0x01, 0xf6, 0, 0, 0, 0});
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

net::Packet decoded(const std::vector<uint8_t>& f) {
  net::Packet p;
  EXPECT_EQ(net::decode(f, p), net::DecodeStatus::ok);
  return p;
}

// Builds the frame of one injection and decodes it.
net::Packet built(const std::vector<uint8_t>& seen, const net::Packet& p, const hold::Injection& in, std::string* payload) {
  std::vector<uint8_t> out(enforce::kMaxInjectFrame);
  size_t n = enforce::build_tcp_frame(seen, p, in.towards, in.spec, out);
  EXPECT_GT(n, 0u);
  out.resize(n);
  net::Packet r;
  EXPECT_EQ(net::decode(out, r), net::DecodeStatus::ok);
  if (payload) *payload = std::string(out.begin() + r.payload_offset, out.begin() + r.payload_offset + r.payload_len);
  return r;
}

}  // namespace

TEST(Replies, RuleTextIsPrintableAndBounded) {
  EXPECT_EQ(hold::reply_text("", "fallback"), "fallback");
  EXPECT_EQ(hold::reply_text("bad\r\nRCPT\x01", "x"), "bad  RCPT ");
  EXPECT_EQ(hold::reply_text(std::string(300, 'a'), "x").size(), 200u);
}

TEST(Replies, Wording) {
  EXPECT_EQ(hold::verdict_reply(true, "", "SK-1"), "550 5.7.1 Message rejected by policy (ref SK-1)\r\n");
  EXPECT_EQ(hold::verdict_reply(false, "", "SK-2"), "451 4.7.1 Message deferred by policy, try later (ref SK-2)\r\n");
  EXPECT_EQ(hold::verdict_reply(true, "No phish", "SK-3"), "550 5.7.1 No phish (ref SK-3)\r\n");
  EXPECT_EQ(hold::desync_reply("bdat_size"),
            "451 4.7.0 sekisho: session cannot be inspected (bdat_size), try again later\r\n");
  EXPECT_EQ(hold::hold_failed_reply("SK-4"), "451 4.3.0 Message cannot be held now, try later (ref SK-4)\r\n");
  EXPECT_EQ(hold::held_reply("SK-5"), "250 2.0.0 Ok: held as SK-5\r\n421 4.3.0 sekisho: closing connection\r\n");
}

TEST(Answers, ResetBothAtEachEndsNextSequence) {
  auto f = client_segment("DATA\r\n");
  net::Packet p = decoded(f);
  hold::Injections plan = hold::reset_both(p);
  ASSERT_EQ(plan.n, 2u);
  net::Packet to_server = built(f, p, plan.v[0], nullptr);
  EXPECT_EQ(to_server.dport, 25);
  EXPECT_EQ(to_server.seq, 1000u);
  EXPECT_EQ(to_server.tcp_flags, net::kTcpRst);
  net::Packet to_client = built(f, p, plan.v[1], nullptr);
  EXPECT_EQ(to_client.dport, 40000);
  EXPECT_EQ(to_client.seq, 5000u);  // what the client acknowledged
  EXPECT_EQ(to_client.tcp_flags, net::kTcpRst);

  auto syn = client_segment("", net::kTcpSyn);
  EXPECT_EQ(hold::reset_both(decoded(syn)).n, 1u) << "no ACK: the sender's next sequence is unknown";
}

TEST(Answers, HeldReplyGoesToTheClientAndResetsTheServer) {
  const std::string data = "\r\n.\r\n";
  auto f = client_segment(data);
  net::Packet p = decoded(f);
  Half h;
  const std::string reply = hold::verdict_reply(true, "", "SK-9");
  hold::Injections plan = hold::answer_held(p, 5000, reply, false, &h);
  ASSERT_EQ(plan.n, 2u);
  std::string got;
  net::Packet c = built(f, p, plan.v[0], &got);
  EXPECT_EQ(c.dport, 40000);
  EXPECT_EQ(c.seq, 5000u);
  EXPECT_EQ(c.ack, 1000u + data.size());
  EXPECT_EQ(c.tcp_flags, net::kTcpAck | net::kTcpPsh);
  EXPECT_EQ(got, reply);
  net::Packet s = built(f, p, plan.v[1], nullptr);
  EXPECT_EQ(s.dport, 25);
  EXPECT_EQ(s.seq, 1000u);
  EXPECT_EQ(s.tcp_flags, net::kTcpRst);
  EXPECT_TRUE(h.active);
  EXPECT_FALSE(h.closing);
  EXPECT_EQ(h.server_seq, 5000u + reply.size());

  Half closed;
  hold::Injections close = hold::answer_held(p, 7000, hold::held_reply("SK-10"), true, &closed);
  EXPECT_EQ(close.v[0].spec.flags, net::kTcpAck | net::kTcpPsh | net::kTcpFin);
  EXPECT_TRUE(closed.closing);
  EXPECT_EQ(closed.server_seq, 7000u + hold::held_reply("SK-10").size() + 1) << "the FIN takes a sequence number";

  EXPECT_EQ(hold::answer_held(p, 1, reply, false, static_cast<Half*>(nullptr)).n, 2u) << "the flow may be gone";
}

TEST(Answers, DesyncInAServerSegmentReplacesIt) {
  auto f = client_segment("250 OK\r\n");  // stands for a server segment: only seq/ack/direction matter
  net::Packet p = decoded(f);
  Half h;
  const std::string reply = hold::desync_reply("reply_unpaired");
  hold::Injections plan = hold::answer_desync_in_server_segment(p, 4242, reply, h);
  ASSERT_EQ(plan.n, 2u);
  EXPECT_EQ(plan.v[0].towards, Towards::receiver);
  EXPECT_EQ(plan.v[0].spec.seq, p.seq);
  EXPECT_EQ(plan.v[0].spec.ack, 4242u);
  EXPECT_EQ(plan.v[1].towards, Towards::sender);
  EXPECT_EQ(plan.v[1].spec.seq, 4242u);
  EXPECT_EQ(plan.v[1].spec.flags, net::kTcpRst);
  EXPECT_TRUE(h.active);
  EXPECT_EQ(h.server_seq, p.seq + reply.size());
}

TEST(Answers, SpeakingForTheServerClosesOnceThenAcknowledges) {
  Half h;
  h.active = true;
  h.server_seq = 9000;
  auto quit = client_segment("QUIT\r\n");
  net::Packet p = decoded(quit);
  EXPECT_EQ(hold::speak_for_server(p, h, false).n, 0u) << "server segments get no answer";
  hold::Injections first = hold::speak_for_server(p, h, true);
  ASSERT_EQ(first.n, 1u);
  std::string got;
  net::Packet r = built(quit, p, first.v[0], &got);
  EXPECT_EQ(r.seq, 9000u);
  EXPECT_EQ(r.ack, 1000u + 6);
  EXPECT_EQ(r.tcp_flags, net::kTcpAck | net::kTcpPsh | net::kTcpFin);
  EXPECT_EQ(got, std::string(hold::kClosingReply));
  EXPECT_TRUE(h.closing);
  EXPECT_EQ(h.server_seq, 9000u + hold::kClosingReply.size() + 1);
  EXPECT_FALSE(h.done);

  auto ack = client_segment("");
  EXPECT_EQ(hold::speak_for_server(decoded(ack), h, true).n, 0u) << "a bare ACK needs no answer";
  auto fin = client_segment("", net::kTcpAck | net::kTcpFin);
  net::Packet pf = decoded(fin);
  hold::Injections last = hold::speak_for_server(pf, h, true);
  ASSERT_EQ(last.n, 1u);
  EXPECT_EQ(last.v[0].spec.flags, net::kTcpAck);
  EXPECT_EQ(last.v[0].spec.ack, 1000u + 1);
  EXPECT_TRUE(h.done);
}

TEST(Answers, AFinFirstGetsFinWithoutText) {
  Half h;
  h.active = true;
  h.server_seq = 100;
  auto fin = client_segment("", net::kTcpAck | net::kTcpFin);
  hold::Injections plan = hold::speak_for_server(decoded(fin), h, true);
  ASSERT_EQ(plan.n, 1u);
  EXPECT_EQ(plan.v[0].spec.payload.size(), 0u);
  EXPECT_EQ(plan.v[0].spec.flags, net::kTcpAck | net::kTcpPsh | net::kTcpFin);
  EXPECT_EQ(h.server_seq, 101u);
  EXPECT_TRUE(h.done);
}

TEST(HoldQueue, WrittenInTimeIsAnsweredHeld) {
  hold::HoldQueue q;
  hold::SpoolJob job;
  job.deadline = 1000;
  q.park(&job);
  EXPECT_EQ(q.size(), 1u);
  unsigned called = 0;
  EXPECT_EQ(q.expire(1000, [&](hold::SpoolJob*, Settle) { ++called; }), 0u) << "not past the deadline yet";
  EXPECT_EQ(called, 0u);
  job.ok = true;
  EXPECT_EQ(q.on_spool_done(&job), Settle::answer_held);
  EXPECT_TRUE(q.empty());
}

TEST(HoldQueue, SpoolFailureIsAnswered451) {
  hold::HoldQueue q;
  hold::SpoolJob job;
  job.deadline = 50;
  q.park(&job);
  job.ok = false;
  EXPECT_EQ(q.on_spool_done(&job), Settle::answer_failed);
  EXPECT_TRUE(q.empty());
}

TEST(HoldQueue, DeadlineFailsClosedByDefault) {
  hold::HoldQueue q;
  hold::SpoolJob a, b;
  a.deadline = 100;
  b.deadline = 200;
  q.park(&a);
  q.park(&b);
  std::vector<std::pair<hold::SpoolJob*, Settle>> seen;
  auto rec = [&](hold::SpoolJob* j, Settle s) { seen.emplace_back(j, s); };
  EXPECT_EQ(q.expire(150, rec), 1u);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].first, &a);
  EXPECT_EQ(seen[0].second, Settle::answer_failed);
  EXPECT_TRUE(a.timed_out);
  EXPECT_EQ(q.size(), 2u) << "the spool thread still owns it";
  EXPECT_EQ(q.expire(160, rec), 0u) << "expired once";
  // The spool gives the job back later: the client was answered already.
  a.ok = true;
  a.path = "/spool/new/a.msg";
  EXPECT_EQ(q.on_spool_done(&a), Settle::forget);
  EXPECT_EQ(q.expire(201, rec), 1u);
  EXPECT_EQ(seen.back().first, &b);
  EXPECT_EQ(q.on_spool_done(&b), Settle::forget);
  EXPECT_TRUE(q.empty());
}

TEST(HoldQueue, DeadlinePassesOnWhenTheOperatorSaysSo) {
  hold::HoldQueue q(true);
  hold::SpoolJob written, failed;
  written.deadline = failed.deadline = 10;
  q.park(&written);
  q.park(&failed);
  unsigned released = 0;
  q.expire(11, [&](hold::SpoolJob*, Settle s) { released += s == Settle::release_to_server; });
  EXPECT_EQ(released, 2u);
  // Delivered by the fallback: a copy the spool wrote meanwhile must go.
  written.ok = true;
  written.path = "/spool/new/w.msg";
  EXPECT_EQ(q.on_spool_done(&written), Settle::unlink_copy);
  failed.ok = false;
  EXPECT_EQ(q.on_spool_done(&failed), Settle::forget);
  EXPECT_TRUE(q.empty());
}
