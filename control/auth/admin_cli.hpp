// Non-interactive administration of users and API tokens, as
// `sekisho-control -c CONF COMMAND ...` runs it (the first admin of a new
// installation, scripts, tests):
//
//   user add NAME [--admin] --password-stdin   password: first line of stdin
//   user passwd NAME --password-stdin          (ends the user's sessions)
//   user disable NAME | user enable NAME       (disable ends the sessions)
//   user list
//   token create NAME [--admin]                prints the token once, on stdout
//   token revoke NAME
//   token list
//
// Passwords are never taken from the command line (visible in ps and shell
// history). Exit status: 0 done; 1 refused or failed (exists, no such user,
// password too short, database error; the reason on stderr); 2 bad usage.
//
// Thread-safety: one call at a time (it opens its own Db).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "control/auth/auth.hpp"

namespace sekisho::control::auth {

// args: the words after the options ("user", "add", "alice", "--admin", ...).
int run_admin_command(const std::string& database, const std::vector<std::string>& args, std::istream& in,
                      std::ostream& out, std::ostream& err, audit::Hook audit = {});

// True when args start with a command word run_admin_command() knows.
bool is_admin_command(const std::vector<std::string>& args);

}  // namespace sekisho::control::auth
