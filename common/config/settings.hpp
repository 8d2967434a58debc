// Reading typed settings from the appliance's libconfig file with errors
// that name the file and line: "FILE:LINE: reason" (line 0 when the file
// cannot be read at all). The one copy behind every config loader
// (dataplane/config/, control/config/); each loader keeps its own keys,
// defaults and checks.
//
// Errors are thrown as `Error(file, line, reason)`: ConfigError below by
// default (control::config::ConfigError is it), or a loader's own type
// with that constructor (dataplane::ConfigError).
// Key names in messages are the setting's full path, quoted:
// 'control.journal', 'dataplane.burst'.
//
// Header-only: templates over the error type.
#pragma once

#include <libconfig.h++>
#include <stdexcept>
#include <string>

namespace sekisho::common::config {

class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, int line, const std::string& reason)
      : std::runtime_error(file + ":" + std::to_string(line) + ": " + reason), file_(file), line_(line) {}
  const std::string& file() const { return file_; }
  int line() const { return line_; }

 private:
  std::string file_;
  int line_;
};

// Reads and parses `path` into cfg: "cannot read the WHAT" at line 0 when
// it cannot be read, "syntax error: ..." at the parser's file and line.
template <class Error = ConfigError>
void read_file(libconfig::Config& cfg, const std::string& path, const std::string& what) {
  try {
    cfg.readFile(path.c_str());
  } catch (const libconfig::FileIOException&) {
    throw Error(path, 0, "cannot read the " + what);
  } catch (const libconfig::ParseException& e) {
    throw Error(e.getFile() ? e.getFile() : path, e.getLine(), std::string("syntax error: ") + e.getError());
  }
}

// An error at s's line.
template <class Error = ConfigError>
[[noreturn]] void fail(const std::string& file, const libconfig::Setting& s, const std::string& reason) {
  throw Error(file, int(s.getSourceLine()), reason);
}

// A string setting, else "'PATH' must be a string".
template <class Error = ConfigError>
std::string get_string(const std::string& file, const libconfig::Setting& s) {
  if (s.getType() != libconfig::Setting::TypeString) fail<Error>(file, s, "'" + s.getPath() + "' must be a string");
  return s.c_str();
}

// How an integer out of range is worded; each loader keeps the words its
// tests and operators know.
enum class RangeWording {
  from_to,       // "'PATH' must be from LO to HI"
  out_of_range,  // "'PATH' = V is out of range [LO, HI]"
};

// An integer setting (int or int64) within [lo, hi], else "'PATH' must be
// an integer" or the range message.
template <class Error = ConfigError>
long long get_int(const std::string& file, const libconfig::Setting& s, long long lo, long long hi,
                  RangeWording wording) {
  using libconfig::Setting;
  if (s.getType() != Setting::TypeInt && s.getType() != Setting::TypeInt64)
    fail<Error>(file, s, "'" + s.getPath() + "' must be an integer");
  long long v = s.getType() == Setting::TypeInt64 ? (long long)s : (long long)(int)s;
  if (v < lo || v > hi) {
    if (wording == RangeWording::from_to)
      fail<Error>(file, s, "'" + s.getPath() + "' must be from " + std::to_string(lo) + " to " + std::to_string(hi));
    fail<Error>(file, s, "'" + s.getPath() + "' = " + std::to_string(v) + " is out of range [" + std::to_string(lo) +
                             ", " + std::to_string(hi) + "]");
  }
  return v;
}

}  // namespace sekisho::common::config
