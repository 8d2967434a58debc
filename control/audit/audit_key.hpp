// The audit log's HMAC key file (control.audit_key): read, or created with
// 32 random bytes (mode 0600, O_EXCL, fsync'd) when it does not exist, and
// "sekisho-control: created the audit key PATH" said on stderr. Keep it
// where the database's users cannot write (audit.hpp says why).
//
// Errors: std::runtime_error "audit: ..." when it cannot be created or read.
#pragma once

#include <string>

namespace sekisho::control::audit {

// The key's bytes (at most the first 64 KiB + 4 KiB of the file).
std::string load_or_create_key(const std::string& path);

}  // namespace sekisho::control::audit
