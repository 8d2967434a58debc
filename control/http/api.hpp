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

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "store/store.hpp"

namespace sekisho::control::http {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

Response handle_request(const Request& req, store::Store& store);
// As above with the wall clock given (the ingest lag in /metrics).
Response handle_request(const Request& req, store::Store& store, int64_t now_us);

// Splits and percent-decodes a query string ('+' is a space). nullopt on
// bad encoding or a repeated name.
std::optional<std::map<std::string, std::string>> parse_query(std::string_view query);

// One CSV field per RFC 4180: quoted when it holds a comma, quote, CR or LF
// (quotes doubled). Text from mail that a spreadsheet would run as a
// formula (starting with = + - @ TAB CR) is prefixed with a single quote.
std::string csv_field(std::string_view s, bool mail_text = true);

// "2024-05-01T09:30:00.123456Z".
std::string iso_time_us(int64_t us);

}  // namespace sekisho::control::http
