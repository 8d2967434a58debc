// Perl (SpamAssassin) regex -> Hyperscan expression.
//
// Hyperscan takes most of PCRE's syntax. What it lacks is rewritten here:
//   /x                      whitespace and # comments removed outside classes
//   \Q...\E                 each character escaped
//   \R, \N, \K, \G, (?#..)  rewritten (\K dropped, \G -> \A) or removed
//   (?<name>..), (?|..)     become non-capturing groups
//   a*+ a++ a?+ {n,m}+      possessive -> greedy        (superset: confirm)
//   (?>...)                 atomic -> non-capturing     (superset: confirm)
// Back-references and look-around stay as written: Hyperscan refuses them in
// normal mode and approximates them with HS_FLAG_PREFILTER; PCRE2 then
// confirms each candidate (the compiler decides, see compiler.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sekisho::rules {

struct Translation {
  std::string pattern;     // Hyperscan expression (no delimiters)
  unsigned flags = 0;      // HS_FLAG_CASELESS / DOTALL / MULTILINE from the modifiers
  bool superset = false;   // the translation may match where Perl would not: confirm with PCRE2
  bool prefilter = false;  // uses constructs only HS_FLAG_PREFILTER accepts (back-references, look-around)
  std::string refused;     // non-empty: cannot be translated (reason)
};

Translation translate_regex(std::string_view source, std::string_view mods, bool multiline);

}  // namespace sekisho::rules

namespace sekisho::rules {

// A rough size of the automaton a Hyperscan expression expands to: atoms
// count 1, groups sum their alternatives, bounded repeats multiply. Used to
// refuse patterns Hyperscan would spend seconds on only to report "Pattern
// is too large", and to shard heavy patterns apart (compiler.cpp).
uint64_t expansion_estimate(std::string_view hs_pattern);

}  // namespace sekisho::rules
