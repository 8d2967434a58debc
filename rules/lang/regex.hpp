// Perl regex literals as SpamAssassin writes them: /re/mods, m{re}mods,
// m!re!mods, ... and their PCRE2 form (the reference semantics).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "rules/lang/rule.hpp"

namespace sekisho::rules {

// Parses a literal; on failure returns false and sets |error|.
bool parse_regex_literal(std::string_view text, Regex& out, std::string& error);

// PCRE2 compile options for the modifiers (i, m, s, x; others ignored).
uint32_t pcre2_options(std::string_view mods);

// Context-implied flags (rules/README.md, "Matching model"): body and rawbody
// rules see ^ and $ at every line (SpamAssassin matches them line by line).
bool implies_multiline(RuleKind kind);

// Compiles |re| with PCRE2 (plus the context's implied flags) to check it;
// false with a reason such as "invalid regex: missing ) at offset 7".
// |too_large| (optional) is set when PCRE2's only complaint is the size of
// the compiled pattern (its 64 KiB link limit; Perl and Hyperscan may still
// take it): that is not a source error.
bool check_with_pcre2(const Regex& re, RuleKind kind, std::string& error, bool* too_large = nullptr);

}  // namespace sekisho::rules
