// Times as the journal writes them and the control plane reads and shows
// them: ISO 8601 in UTC with microseconds ("2024-05-01T09:30:00.123456Z").
// One formatter and one parser for the dataplane's events, the tracking
// log and the API's time filters.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sekisho::journal {

// "2024-05-01T09:30:00.123456Z" (also without fraction, or with an offset
// "+09:00") to microseconds since the epoch; nullopt if malformed.
std::optional<int64_t> parse_iso_time_us(std::string_view s);

// "2024-05-01T09:30:00.123456Z".
std::string iso_time_us(int64_t us);

// A packet time (seconds since the epoch, as a double) in whole
// microseconds, truncated: the value the journal has always written.
int64_t unix_us(double unix_seconds);

}  // namespace sekisho::journal
