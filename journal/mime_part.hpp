// The MIME engine's facts (scanners/mime) as the message event's MIME part:
// the one place they become event keys, for the dataplane's events,
// sekisho-replay, sekisho-mime and the MIME tests alike.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include "journal/event.hpp"
#include "scanners/mime/mime_parser.hpp"

namespace sekisho::journal {

MimePart to_mime_part(const mime::MessageFacts& f);

// Adds from, from_name, to, cc, reply_to, subject, message_id, date, urls,
// attachments, parts, charset_errors, header_fields, headers_truncated and
// mime_anomalies to |j|; leaves too when they were collected.
void add_facts_json(const mime::MessageFacts& f, nlohmann::json& j);

}  // namespace sekisho::journal
