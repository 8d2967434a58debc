#include "control/tracking/metrics.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

namespace sekisho::control::tracking {

namespace {

std::string label_value(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o.push_back(c);
  }
  return o;
}

}  // namespace

std::string metrics_text(Store& store, int64_t now_us) {
  Counts c = store.counts();
  std::string o;
  char num[64];
  o += "# HELP sekisho_control_events_ingested_total Message events stored in the tracking log.\n";
  o += "# TYPE sekisho_control_events_ingested_total counter\n";
  o += "sekisho_control_events_ingested_total " + std::to_string(c.events) + "\n";
  o += "# HELP sekisho_control_ingest_lag_seconds Seconds since ingestion last had read every complete line of "
       "the journal (+Inf before the first time).\n";
  o += "# TYPE sekisho_control_ingest_lag_seconds gauge\n";
  for (const auto& [source, cur] : c.cursors) {
    if (cur.caught_up_us == 0) snprintf(num, sizeof num, "+Inf");
    else snprintf(num, sizeof num, "%.3f", std::max<int64_t>(0, now_us - cur.caught_up_us) / 1e6);
    o += "sekisho_control_ingest_lag_seconds{journal=\"" + label_value(source) + "\"} " + num + "\n";
  }
  o += "# HELP sekisho_control_tracking_rows Tracking-log rows (one per envelope recipient) by verdict action.\n";
  o += "# TYPE sekisho_control_tracking_rows gauge\n";
  std::map<std::string, int64_t> by = {{"pass", 0}, {"reject", 0}, {"tempfail", 0}, {"quarantine", 0}};
  for (const auto& [a, n] : c.rows_by_action) by[a] = n;
  for (const auto& [a, n] : by)
    o += "sekisho_control_tracking_rows{action=\"" + label_value(a) + "\"} " + std::to_string(n) + "\n";
  if (c.newest_event_us) {
    o += "# HELP sekisho_control_newest_event_timestamp_seconds Time of the newest message event stored.\n";
    o += "# TYPE sekisho_control_newest_event_timestamp_seconds gauge\n";
    snprintf(num, sizeof num, "%.6f", *c.newest_event_us / 1e6);
    o += std::string("sekisho_control_newest_event_timestamp_seconds ") + num + "\n";
  }
  return o;
}

}  // namespace sekisho::control::tracking
