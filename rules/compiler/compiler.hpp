// The ruleset compiler: a parsed RuleSource -> one RulesetArtifact.
//
// One Hyperscan database per context (block mode for header sources, URIs,
// envelope fields, attachment names/types and brand display names;
// streaming mode for body, rawbody and full), every pattern with
// HS_FLAG_SINGLEMATCH (counts for tflags multiple come from PCRE2) and
// HS_FLAG_ALLOWEMPTY. Regexes Hyperscan refuses are retried with
// HS_FLAG_PREFILTER and confirmed by PCRE2; what neither takes is refused
// with a reason. All databases use one fixed platform (generic x86-64, no
// CPU-specific features) so that the artifact is the same bytes on every
// machine for the same packs.
//
// Thread-safety: compile_ruleset is reentrant.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "rules/artifact/artifact.hpp"
#include "rules/lang/rule.hpp"

namespace sekisho::rules {

struct CompileOptions {
  std::string version;  // overrides the packs' ruleset_version
  // Called before each database compile and once at the end (done == total).
  std::function<void(size_t done, size_t total, std::string_view what)> progress;
  // Cost-aware partitioning (rules/README.md, "Compile time"): a context's
  // patterns go into databases of at most |shard_patterns|; patterns whose
  // expansion estimate is at least |heavy_cost| into databases of at most
  // |heavy_shard|; above |max_cost| Hyperscan is not asked at all.
  size_t shard_patterns = 64;
  size_t heavy_shard = 8;
  uint64_t heavy_cost = 500;
  uint64_t max_cost = 3000;
};

struct ContextCount {
  std::string context;  // "header:subject", "body", ...
  uint32_t patterns = 0;
  uint32_t prefilter = 0;
};

struct CompileReport {
  std::map<std::string, uint32_t> defined;   // by directive (header, body, meta, ...)
  std::map<std::string, uint32_t> active;    // by directive
  std::map<std::string, uint32_t> eval;      // eval/network rules by directive (excluded from coverage)
  std::map<std::string, uint32_t> refused_by_reason;  // grouped reasons (excluding eval/network)
  std::map<std::string, uint32_t> eval_by_reason;
  std::vector<std::pair<std::string, std::string>> refused;  // (rule, full reason), all inactive rules
  std::vector<ContextCount> contexts;
  uint32_t pcre_confirmed = 0;  // prefilter or superset translations confirmed by PCRE2
  uint32_t pcre_counted = 0;    // tflags multiple counted by PCRE2
  uint32_t databases = 0;
  double seconds = 0;
  size_t artifact_bytes = 0;
  std::string version, sha256;
};

// Compiles; false (with errors) only when the sources have errors or a
// database cannot be built at all. Individual rules never fail the build:
// they are refused with a reason.
bool compile_ruleset(const RuleSource& src, const CompileOptions& opts, std::string& artifact,
                     CompileReport& report, std::vector<Diagnostic>& errors);

// A refusal reason reduced to its group ("meta depends on eval/network rule", "eval:check_rbl()", ...).
std::string reason_group(std::string_view reason);

// True when |reason| is one of the documented refusal reasons (rules/README.md).
bool reason_documented(std::string_view reason);

// SpamAssassin's default score for a rule without "score": 1.0, "__" 0, "T_" 0.01.
double default_score(std::string_view name);

}  // namespace sekisho::rules
