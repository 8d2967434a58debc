// Flow admission: which TCP segment of an SMTP port gets a followed
// connection. One rule for the dataplane's workers, sekisho-replay and the
// benchmarks:
//   - a SYN creates a flow; so does any segment when mid-stream connections
//     are followed (offline captures that begin mid-way);
//   - a SYN without ACK on a flow whose connection has closed is a new
//     connection on a reused key: the old one is reported and restarted;
//   - inline, a segment of a connection not followed (begun before us,
//     expired after an idle gap, reset) is mid-stream: the caller applies
//     its desync policy to it (forward without bytes, reset or pass);
//   - the flow table's memcap: table_full, the cap policy decides.
#pragma once

#include <cstdint>

#include "dataplane/net/packet.hpp"
#include "dataplane/tcp/flow_table.hpp"
#include "dataplane/tcp/tcp_stream.hpp"

namespace sekisho::pipeline {

enum class Midstream : uint8_t {
  refuse,  // inline: only a SYN starts a flow
  follow,  // offline: the first segment seen starts it
};

enum class Admission : uint8_t {
  existing,   // a followed connection
  started,    // a new connection (or a reused key): start() the flow
  midstream,  // no flow and not a SYN (Midstream::refuse): not followed
  table_full, // no slot free
};
const char* admission_name(Admission a);

namespace detail {
template <class F>
const tcp::TcpFlow& tcp_of(F& f) {
  if constexpr (requires { f.tcp(); }) return f.tcp();
  else return f;
}
}  // namespace detail

// Finds or makes |p|'s flow in |table|. On started, a reused slot has been
// closed (its events reported through |ev| and the flow's sinks) and the
// caller must start() it; slot is null for midstream and table_full.
template <class T>
Admission admit(tcp::FlowTable<T>& table, const net::Packet& p, const net::FlowRef& ref, Midstream midstream,
                tcp::EventCounters& ev, typename tcp::FlowTable<T>::Slot*& slot) {
  const bool syn = p.tcp_flags & net::kTcpSyn;
  bool created = false;
  slot = table.find(ref.key, net::symmetric_hash(ref.key), syn || midstream == Midstream::follow, created);
  if (!slot) return syn || midstream == Midstream::follow ? Admission::table_full : Admission::midstream;
  if (created) return Admission::started;
  if (syn && !(p.tcp_flags & net::kTcpAck) && detail::tcp_of(slot->value).state() == tcp::TcpFlow::State::closed) {
    slot->value.close(ev);  // the key is reused by a new connection
    return Admission::started;
  }
  return Admission::existing;
}

}  // namespace sekisho::pipeline
