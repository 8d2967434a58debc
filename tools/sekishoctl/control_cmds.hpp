// sekishoctl's control-plane commands owned here:
//
//   sekishoctl audit verify -c CONF      recomputes the audit log's hash chain
//                                        (database, key and anchor from the
//                                        `control` group); exit 0 intact,
//                                        1 with every problem found, 2 usage
//   sekishoctl audit list -c CONF [--limit N]
//   sekishoctl log search [FILTER=VALUE...] [--csv] [--limit N] [--offset N]
//   sekishoctl quarantine list [FILTER=VALUE...] [--limit N] [--offset N]
//   sekishoctl quarantine show ID
//   sekishoctl quarantine release ID [--relay]
//   sekishoctl quarantine delete ID
//
// log and quarantine talk to sekisho-control's API (--url / SEKISHO_URL,
// --token / SEKISHO_TOKEN; tools/sekishoctl/ctl_http.hpp); audit reads the
// database directly, so it works with the control plane stopped.
#pragma once

#include <string>
#include <vector>

namespace sekisho::ctl {

// args: the words after "audit" / "log" / "quarantine".
int run_audit(const std::vector<std::string>& args);
int run_log(const std::vector<std::string>& args);
int run_quarantine(const std::vector<std::string>& args);

}  // namespace sekisho::ctl
