// sekishoctl's ruleset commands against sekisho-control's API (through the
// shared client, ctl_http.hpp: --url / SEKISHO_URL, --token / SEKISHO_TOKEN):
//
//   sekishoctl rules push DIR|FILE... [--activate] [--wait SECONDS]
//       uploads the files (a directory: every file under it, named by its
//       path below DIR; dot files skipped) as a new version; rule errors are
//       printed as file:line: reason (exit 1); then waits for the background
//       compile (and, with --activate, the activation) and prints the result
//   sekishoctl rules activate VERSION
//   sekishoctl rules rollback
//   sekishoctl rules versions [--limit N]
//
// Exit codes: 0 done, 1 refused (the server's error is printed), 2 usage.
#pragma once

#include <string>
#include <vector>

namespace sekisho::ctl {

// True when |cmd| is one of push, activate, rollback, versions.
bool is_remote_rules_command(const std::string& cmd);
// args: the words after "rules CMD".
int run_remote_rules(const std::string& cmd, std::vector<std::string> args);

}  // namespace sekisho::ctl
