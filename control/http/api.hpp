// The control plane's HTTP API as a pure function: no sockets, no clock
// unless asked, so every endpoint is unit-tested directly.
//
//   GET /api/log       tracking log search, JSON
//       q, sender ("<>" = null sender), rcpt, from, subject: substring, ASCII
//       case-insensitive; verdict: pass|tag|reject|tempfail|quarantine;
//       since, until: ISO 8601 with zone, YYYY-MM-DD (UTC) or Unix seconds,
//       range [since, until); limit 1..1000 (default 100); offset >= 0.
//   GET /api/log.csv   the same search as RFC 4180 CSV (CRLF, quoted where
//       needed); limit 1..100000 (default 10000).
//   GET /metrics       Prometheus text format 0.0.4.
// HEAD is answered like GET without a body. Unknown or repeated parameters,
// bad values and bad percent-encoding give 400 with {"error": "..."};
// unknown paths 404; other methods 405 with Allow. A store failure gives
// 500 (the reason goes to stderr, not to the client).
//
// Thread-safety: as the Store's.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "control/http/router.hpp"
#include "control/store/store.hpp"

namespace sekisho::control::http {

// Adds /metrics (open) and /api/log, /api/log.csv (with `access`).
void add_log_routes(Router& router, store::Store& store, Access access = Access::user);

// A Router with the log routes only, answering one request (unit tests).
Response handle_request(const Request& req, store::Store& store);
Response handle_request(const Request& req, store::Store& store, int64_t now_us);

// The log search parameters (q, sender, rcpt, from, subject, verdict,
// since, until, limit, offset) as a query; BadRequest on a bad value or an
// unknown parameter.
store::LogQuery log_query(const std::map<std::string, std::string>& params, int64_t default_limit,
                          int64_t max_limit);
// One tracking-log row as the API shows it.
nlohmann::json row_json(const store::TrackingRow& r);

// One CSV field per RFC 4180: quoted when it holds a comma, quote, CR or LF
// (quotes doubled). Text from mail that a spreadsheet would run as a
// formula (starting with = + - @ TAB CR) is prefixed with a single quote.
std::string csv_field(std::string_view s, bool mail_text = true);

// "2024-05-01T09:30:00.123456Z".
std::string iso_time_us(int64_t us);
// ISO 8601 with zone, YYYY-MM-DD (UTC) or Unix seconds; BadRequest naming `name`.
int64_t parse_time(const std::string& name, const std::string& v);

}  // namespace sekisho::control::http
