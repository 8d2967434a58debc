// The tracking log's HTTP routes, as pure functions of a Request (no
// sockets, no clock unless asked), so every endpoint is unit-tested directly.
//
//   GET /api/log       tracking log search, JSON
//       q, sender ("<>" = null sender), rcpt, from, subject: substring, ASCII
//       case-insensitive; verdict: pass|tag|reject|tempfail|quarantine;
//       since, until: ISO 8601 with zone, YYYY-MM-DD (UTC) or Unix seconds,
//       range [since, until); limit 1..1000 (default 100); offset >= 0.
//   GET /api/log/ID    one message: its fields and every envelope recipient.
//   GET /api/log.csv   the same search as RFC 4180 CSV (CRLF, quoted where
//       needed); limit 1..100000 (default 10000).
//   GET /metrics       Prometheus text format 0.0.4 (tracking/metrics.hpp).
// HEAD is answered like GET without a body. Unknown or repeated parameters,
// bad values and bad percent-encoding give 400 with {"error": "..."};
// unknown paths 404; other methods 405 with Allow. A store failure gives
// 500 (the reason goes to stderr, not to the client).
//
// Thread-safety: as the Store's.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "control/http/router.hpp"
#include "control/tracking/store.hpp"

namespace sekisho::control::tracking {

// Adds /metrics (open) and /api/log, /api/log/ID, /api/log.csv (with `access`).
void add_log_routes(http::Router& router, Store& store, http::Access access = http::Access::user);

// A Router with the log routes only, answering one request (unit tests).
http::Response handle_request(const http::Request& req, Store& store);
http::Response handle_request(const http::Request& req, Store& store, int64_t now_us);

// The log search parameters (q, sender, rcpt, from, subject, verdict,
// since, until, limit, offset) as a query; BadRequest on a bad value or an
// unknown parameter.
LogQuery log_query(const std::map<std::string, std::string>& params, int64_t default_limit, int64_t max_limit);
// One tracking-log row as the API shows it.
nlohmann::json row_json(const TrackingRow& r);

// One CSV field per RFC 4180: quoted when it holds a comma, quote, CR or LF
// (quotes doubled). Text from mail that a spreadsheet would run as a
// formula (starting with = + - @ TAB CR) is prefixed with a single quote.
std::string csv_field(std::string_view s, bool mail_text = true);

// ISO 8601 with zone, YYYY-MM-DD (UTC) or Unix seconds; BadRequest naming `name`.
int64_t parse_time(const std::string& name, const std::string& v);

}  // namespace sekisho::control::tracking
