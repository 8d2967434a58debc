// Times as the tracking log shows and accepts them: ISO 8601 in UTC with
// microseconds. The one parser and formatter live with the journal's
// events (journal/time.hpp); the tracking log uses them by these names.
#pragma once

#include "journal/time.hpp"

namespace sekisho::control::tracking {

using journal::iso_time_us;
using journal::parse_iso_time_us;

}  // namespace sekisho::control::tracking
