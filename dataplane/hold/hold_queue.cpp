#include "dataplane/hold/hold_queue.hpp"

#include <algorithm>

namespace sekisho::hold {

HoldQueue::Settle HoldQueue::on_spool_done(SpoolJob* job) {
  parked_.erase(std::remove(parked_.begin(), parked_.end(), job), parked_.end());
  if (!job->timed_out) return job->ok ? Settle::answer_held : Settle::answer_failed;
  // Delivered by the fallback: no held copy may be released a second time.
  if (job->ok && timeout_pass_ && !job->path.empty()) return Settle::unlink_copy;
  return Settle::forget;
}

}  // namespace sekisho::hold
