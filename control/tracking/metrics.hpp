// The tracking log's metrics in the Prometheus text format 0.0.4, served
// at /metrics (tracking_api.hpp):
//   sekisho_control_events_ingested_total            message events stored
//   sekisho_control_ingest_lag_seconds{journal}      seconds since ingestion last had
//                                                    read every complete line (+Inf before)
//   sekisho_control_tracking_rows{action}            rows by verdict action
//   sekisho_control_newest_event_timestamp_seconds   the newest event's time (when any)
//
// Thread-safety: as the Store's (one counts() call per scrape).
#pragma once

#include <cstdint>
#include <string>

#include "control/tracking/store.hpp"

namespace sekisho::control::tracking {

std::string metrics_text(Store& store, int64_t now_us);

}  // namespace sekisho::control::tracking
