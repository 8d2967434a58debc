// Times as the tracking log shows and accepts them: ISO 8601 in UTC with
// microseconds. The journal's "ts" is read with the same parser (ingest/).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sekisho::control::tracking {

// "2024-05-01T09:30:00.123456Z" (also without fraction, or with an offset
// "+09:00") to microseconds since the epoch; nullopt if malformed.
std::optional<int64_t> parse_iso_time_us(std::string_view s);

// "2024-05-01T09:30:00.123456Z".
std::string iso_time_us(int64_t us);

}  // namespace sekisho::control::tracking
