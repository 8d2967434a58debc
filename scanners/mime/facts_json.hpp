// The MIME engine's facts as the JSON fields of a message event (shared by
// sekisho-replay, the event journal and sekisho-mime).
#pragma once

#include <nlohmann/json.hpp>

#include "scanners/mime/mime_parser.hpp"

namespace sekisho::mime {

// Adds from, from_name, to, cc, reply_to, subject, message_id, date, urls,
// attachments, parts, charset_errors, header_fields, headers_truncated and
// mime_anomalies to |j|; leaves too when they were collected.
void add_facts_json(const MessageFacts& f, nlohmann::json& j);

}  // namespace sekisho::mime
