// The quarantine's HTTP routes (Access::user to read, Access::admin to act):
//   GET  /api/quarantine?q=&rcpt=&sender=&category=&state=&limit=&offset=
//        {total, limit, offset, rows: [item]}; sender "<>" = null sender;
//        state held|releasing|released|deleted|expired; limit 1..1000 (100)
//   GET  /api/quarantine/ID          item + {headers: [[name, value]], text, text_truncated}
//   GET  /api/quarantine/ID/message  the stored bytes (message/rfc822, as a download)
//   POST /api/quarantine/ID/release  body {} or {"relay": true}: 200 {id, state, release}
//        or 404 / 409 (not held) / 502 (delivery failed, the item stays held)
//   POST /api/quarantine/ID/delete   200 {id, state} or 404 / 409
// Every release and delete (and each failed attempt) is appended to the audit log.
#pragma once

#include "control/audit/audit.hpp"
#include "control/http/router.hpp"
#include "control/quarantine/quarantine.hpp"

namespace sekisho::control::quarantine {

// audit may be null (unit tests of one module).
void add_quarantine_routes(http::Router& router, Quarantine& q, audit::AuditLog* audit);

}  // namespace sekisho::control::quarantine
