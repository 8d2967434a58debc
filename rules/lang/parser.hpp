// The rule-pack parser: SpamAssassin .cf syntax plus Sekisho's extensions
// (rules/README.md documents both). Never throws on bad input: every problem
// becomes a Diagnostic "file:line: reason" in RuleSource::errors.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "rules/lang/rule.hpp"

namespace sekisho::rules {

struct ParseOptions {
  // Plugins "ifplugin" treats as loaded. Default: the set Debian's
  // SpamAssassin 4.0 loads from /etc/spamassassin/*.pre (rules inside them
  // that need the plugin's eval functions are then kept and reported as
  // unsupported by name, never dropped silently).
  std::set<std::string> plugins;
  double sa_version = 4.000001;  // what "if (version >= x)" compares with
  ParseOptions();
};

// Parses files and directories (a directory contributes its *.cf files,
// recursively, in path order; "include" is followed, relative to the including file).
RuleSource parse_paths(const std::vector<std::string>& paths, const ParseOptions& opts = {});

// Parses one file's text as if read from |file| (tests, tools).
void parse_text(RuleSource& src, const std::string& file, std::string_view text,
                const ParseOptions& opts = {});

// After all files: ReplaceTags substitution, meta and list references,
// regex validation. parse_paths calls it; call it after parse_text.
void finish_source(RuleSource& src);

// Normalises and validates one list entry; false with a reason.
bool normalise_list_entry(ListType type, std::string_view in, std::string& out, std::string& why);

}  // namespace sekisho::rules
