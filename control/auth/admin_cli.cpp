#include "control/auth/admin_cli.hpp"

#include <chrono>
#include <ctime>
#include <iostream>
#include <istream>
#include <ostream>

namespace sekisho::control::auth {

namespace {

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string utc(int64_t us) {
  time_t t = time_t(us / 1000000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct Usage {
  std::string why;
};

// The command's words: NAME and the flags it allows.
struct Parsed {
  std::string name;
  bool admin = false, password_stdin = false;
};

Parsed parse(const std::vector<std::string>& args, size_t from, bool allow_admin, bool allow_stdin, bool want_name) {
  Parsed p;
  for (size_t i = from; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (allow_admin && a == "--admin") p.admin = true;
    else if (allow_stdin && a == "--password-stdin") p.password_stdin = true;
    else if (!a.empty() && a[0] == '-') throw Usage{"unknown option '" + a + "'"};
    else if (want_name && p.name.empty()) p.name = a;
    else throw Usage{"unexpected argument '" + a + "'"};
  }
  if (want_name && p.name.empty()) throw Usage{"missing NAME"};
  return p;
}

std::string read_password(std::istream& in) {
  std::string line;
  if (!std::getline(in, line) && line.empty()) throw AuthError("no password on standard input");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

const char* kUsage =
    "usage: sekisho-control -c FILE user add NAME [--admin] --password-stdin\n"
    "       sekisho-control -c FILE user passwd NAME --password-stdin\n"
    "       sekisho-control -c FILE user disable|enable NAME\n"
    "       sekisho-control -c FILE user list\n"
    "       sekisho-control -c FILE token create NAME [--admin]\n"
    "       sekisho-control -c FILE token revoke NAME\n"
    "       sekisho-control -c FILE token list\n";

}  // namespace

bool is_admin_command(const std::vector<std::string>& args) {
  return !args.empty() && (args[0] == "user" || args[0] == "token");
}

int run_admin_command(const std::string& database, const std::vector<std::string>& args, std::istream& in,
                      std::ostream& out, std::ostream& err, audit::Hook audit) {
  const std::string me = "sekisho-control: ";
  try {
    if (args.size() < 2) throw Usage{"missing subcommand"};
    const std::string& what = args[0];
    const std::string& verb = args[1];
    const std::string actor = "cli";
    auto open = [&] {
      auto db = db::open_db(database);
      return db;
    };
    if (what == "user") {
      if (verb == "add" || verb == "passwd") {
        Parsed p = parse(args, 2, verb == "add", true, true);
        if (!p.password_stdin) throw Usage{"give the password on standard input with --password-stdin"};
        std::string pw = read_password(in);
        auto db = open();
        Auth a(*db, {}, audit);
        if (verb == "add") {
          a.add_user(p.name, pw, p.admin, now_us(), actor);
          out << "user '" << p.name << "' added" << (p.admin ? " (administrator)" : "") << "\n";
        } else {
          a.set_password(p.name, pw, now_us(), actor);
          out << "password of '" << p.name << "' changed; the user's sessions are ended\n";
        }
        return 0;
      }
      if (verb == "disable" || verb == "enable") {
        Parsed p = parse(args, 2, false, false, true);
        auto db = open();
        Auth a(*db, {}, audit);
        a.set_disabled(p.name, verb == "disable", now_us(), actor);
        out << "user '" << p.name << "' " << verb << "d" << (verb == "disable" ? "; the user's sessions are ended" : "")
            << "\n";
        return 0;
      }
      if (verb == "list") {
        parse(args, 2, false, false, false);
        auto db = open();
        Auth a(*db, {}, audit);
        for (const User& u : a.users())
          out << u.name << "\t" << (u.admin ? "admin" : "user") << "\t" << (u.disabled ? "disabled" : "enabled")
              << "\t" << utc(u.created_us) << "\n";
        return 0;
      }
    } else if (what == "token") {
      if (verb == "create") {
        Parsed p = parse(args, 2, true, false, true);
        auto db = open();
        Auth a(*db, {}, audit);
        std::string secret = a.create_token(p.name, p.admin, now_us(), actor);
        out << secret << "\n";
        err << me << "token '" << p.name << "' created" << (p.admin ? " (administrator)" : "")
            << "; it is shown only this once\n";
        return 0;
      }
      if (verb == "revoke") {
        Parsed p = parse(args, 2, false, false, true);
        auto db = open();
        Auth a(*db, {}, audit);
        a.revoke_token(p.name, now_us(), actor);
        out << "token '" << p.name << "' revoked\n";
        return 0;
      }
      if (verb == "list") {
        parse(args, 2, false, false, false);
        auto db = open();
        Auth a(*db, {}, audit);
        for (const TokenInfo& t : a.tokens())
          out << t.name << "\t" << (t.admin ? "admin" : "user") << "\t" << utc(t.created_us) << "\t"
              << (t.last_used_us ? utc(*t.last_used_us) : "never used") << "\n";
        return 0;
      }
    } else {
      throw Usage{"unknown command '" + what + "'"};
    }
    throw Usage{"unknown subcommand '" + what + " " + verb + "'"};
  } catch (const Usage& u) {
    err << me << u.why << "\n" << kUsage;
    return 2;
  } catch (const AuthError& e) {
    err << me << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    err << me << e.what() << "\n";
    return 1;
  }
}

}  // namespace sekisho::control::auth
