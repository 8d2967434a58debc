// The hold/spool state machine of one worker: messages to quarantine whose
// last segment is held while the spool thread writes them durably.
//
//            park()                      on_spool_done(): answer_held (250 + 421)
//   held ----------> parked ----------+-------------------------------------->
//                      |              +-- not written:  answer_failed (451)
//                      | expire(now) past the deadline
//                      v
//                  timed_out --(hold_timeout = "pass")--> release_to_server
//                      |        (otherwise)            --> answer_failed (451)
//                      | on_spool_done(): the spool thread gives the job back
//                      v
//                    gone: unlink_copy if the fallback delivered a message
//                          the spool also wrote, else forget
//
// The worker owns the queue; a parked job is owned by the spool thread from
// park() until on_spool_done() (a timed-out job too: it comes back on the
// done ring). "now" and the deadlines are in the caller's clock (the worker
// uses the TSC), so the machine runs in unit tests without EAL.
// Not thread-safe: one worker, one queue.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/net/packet.hpp"

struct rte_mbuf;  // the held frame; opaque here

namespace sekisho::hold {

// A quarantined message on its way to the spool. The worker parks the held
// segment here; the spool thread fills the result and hands it back.
struct SpoolJob {
  std::string id, header, message;
  rte_mbuf* held = nullptr;   // the segment that ended the message
  net::FlowKey key;
  uint32_t server_seq = 0;    // the server's next sequence number at the hold
  uint64_t deadline = 0;      // in the worker's clock
  bool timed_out = false;     // the worker answered already (451) or passed it on
  bool ok = false;            // written and fsync'ed
  std::string path, error;
};

class HoldQueue {
 public:
  // What the worker does for a job now.
  enum class Settle : uint8_t {
    answer_held,        // the message is durable: 250 + 421 to the client, reset the server
    answer_failed,      // 451 to the client, reset the server
    release_to_server,  // the deadline's fail-open fallback: the held segment goes on
    unlink_copy,        // the fallback delivered it and the spool wrote it too: remove the copy
    forget,             // answered already: nothing left to do
  };

  // |timeout_pass|: at the deadline the held segment goes on to the server
  // (hold_timeout = "pass") instead of a 451.
  explicit HoldQueue(bool timeout_pass = false) : timeout_pass_(timeout_pass) {}

  // |job| was handed to the spool thread; its deadline is set.
  void park(SpoolJob* job) { parked_.push_back(job); }

  // The spool thread gave |job| back (written or not). It leaves the queue;
  // the caller acts on the result, then deletes it.
  Settle on_spool_done(SpoolJob* job);

  // Marks the jobs whose deadline has passed at |now| timed out and calls
  // |on_expired(job, settle)| with release_to_server or answer_failed for
  // each. They stay parked (the spool thread still owns them). Returns how
  // many expired.
  template <class F>
  unsigned expire(uint64_t now, F&& on_expired) {
    unsigned n = 0;
    for (SpoolJob* job : parked_) {
      if (job->timed_out || now <= job->deadline) continue;
      job->timed_out = true;
      ++n;
      on_expired(job, timeout_pass_ ? Settle::release_to_server : Settle::answer_failed);
    }
    return n;
  }

  bool empty() const { return parked_.empty(); }
  size_t size() const { return parked_.size(); }

 private:
  std::vector<SpoolJob*> parked_;
  bool timeout_pass_;
};

}  // namespace sekisho::hold
