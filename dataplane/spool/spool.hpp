// The held-message spool and the event journal now live with the event
// contract (journal/spool_file.hpp, journal/journal_file.hpp). These names
// keep the dataplane's writer threads (dataplane/dpdk) compiling unchanged;
// new code includes journal/ directly.
#pragma once

#include "journal/journal_file.hpp"
#include "journal/spool_file.hpp"

namespace sekisho::spool {

using journal::JournalOptions;
using journal::make_message_id;
using journal::read_spool_file;
using journal::SpoolEntry;
using journal::SpoolResult;
using journal::SpoolWriter;
using Journal = journal::JournalWriter;

}  // namespace sekisho::spool
