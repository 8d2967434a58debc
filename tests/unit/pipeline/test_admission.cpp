// The one flow-admission rule (dataplane/pipeline/admission.hpp) shared by
// the workers, sekisho-replay and the benchmarks: the SYN rule, port reuse,
// mid-stream segments and the table's memcap.
#include <gtest/gtest.h>

#include "dataplane/pipeline/admission.hpp"

using namespace sekisho;
using pipeline::Admission;
using pipeline::Midstream;

namespace {

// A table value with the flow interface admission uses; counts restarts.
struct Flow {
  tcp::TcpFlow t;
  int closes = 0;
  const tcp::TcpFlow& tcp() const { return t; }
  void close(tcp::EventCounters& ev) {
    ++closes;
    t.close(ev);
  }
};

net::Packet segment(uint16_t sport, uint8_t flags) {
  net::Packet p;
  p.l3 = net::L3::ipv4;
  p.ip_proto = net::kProtoTcp;
  p.src = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
  p.dst = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 2};
  p.sport = sport;
  p.dport = 25;
  p.tcp_flags = flags;
  return p;
}

Admission admit(tcp::FlowTable<Flow>& t, const net::Packet& p, Midstream m, tcp::FlowTable<Flow>::Slot*& slot) {
  tcp::EventCounters ev{};
  return pipeline::admit(t, p, net::flow_ref(p), m, ev, slot);
}

TEST(Admission, InlineOnlyASynStartsAFlow) {
  tcp::FlowTable<Flow> table(16);
  tcp::FlowTable<Flow>::Slot* slot = nullptr;
  EXPECT_EQ(admit(table, segment(40000, net::kTcpAck | net::kTcpPsh), Midstream::refuse, slot), Admission::midstream);
  EXPECT_EQ(slot, nullptr);
  EXPECT_EQ(admit(table, segment(40000, net::kTcpSyn), Midstream::refuse, slot), Admission::started);
  ASSERT_NE(slot, nullptr);
  auto* first = slot;
  EXPECT_EQ(admit(table, segment(40000, net::kTcpAck), Midstream::refuse, slot), Admission::existing);
  EXPECT_EQ(slot, first);
  EXPECT_EQ(slot->value.closes, 0);
}

TEST(Admission, OfflineTheFirstSegmentStartsAFlow) {
  tcp::FlowTable<Flow> table(16);
  tcp::FlowTable<Flow>::Slot* slot = nullptr;
  EXPECT_EQ(admit(table, segment(40001, net::kTcpAck), Midstream::follow, slot), Admission::started);
  EXPECT_NE(slot, nullptr);
}

TEST(Admission, ASynOnAClosedFlowIsANewConnection) {
  tcp::FlowTable<Flow> table(16);
  tcp::FlowTable<Flow>::Slot* slot = nullptr;
  ASSERT_EQ(admit(table, segment(40002, net::kTcpSyn), Midstream::refuse, slot), Admission::started);
  tcp::EventCounters ev{};
  slot->value.t.close(ev);  // the connection ended (FIN/RST seen)
  // A retransmitted SYN-ACK is not a new connection; a SYN is.
  EXPECT_EQ(admit(table, segment(40002, net::kTcpSyn | net::kTcpAck), Midstream::refuse, slot), Admission::existing);
  EXPECT_EQ(slot->value.closes, 0);
  EXPECT_EQ(admit(table, segment(40002, net::kTcpSyn), Midstream::refuse, slot), Admission::started);
  EXPECT_EQ(slot->value.closes, 1) << "the old connection is reported before the slot is reused";
}

TEST(Admission, AFullTableIsTheCapNotMidstream) {
  tcp::FlowTable<Flow> table(2);
  tcp::FlowTable<Flow>::Slot* slot = nullptr;
  int started = 0;
  Admission last = Admission::started;
  for (uint16_t port = 41000; port < 41064 && last == Admission::started; ++port) {
    last = admit(table, segment(port, net::kTcpSyn), Midstream::refuse, slot);
    if (last == Admission::started) ++started;
  }
  EXPECT_EQ(last, Admission::table_full);
  EXPECT_GE(started, 2);
  EXPECT_EQ(slot, nullptr);
  EXPECT_STREQ(pipeline::admission_name(Admission::table_full), "table_full");
}

}  // namespace
