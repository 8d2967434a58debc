// sekishoctl: the operator CLI.
//
//   sekishoctl rules check PATH...                 every error as file:line: reason; exit 1 on any
//   sekishoctl rules compile -o OUT [--version V] PATH...
//   sekishoctl rules explain ARTIFACT MESSAGE.eml [--mail-from A] [--rcpt B]... [--helo H]
//
// Exit codes: 0 ok, 1 rule errors (check/compile) or load failure, 2 usage.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "tools/sekishoctl/explain.hpp"
#include "tools/sekishoctl/rules_remote.hpp"
#include "tools/sekishoctl/control_cmds.hpp"
#include "rules/compiler/compiler.hpp"
#include "rules/lang/parser.hpp"

namespace {

using namespace sekisho::rules;

int usage() {
  fprintf(stderr,
          "usage: sekishoctl rules check PATH...\n"
          "       sekishoctl rules compile -o OUT [--version V] [--quiet] PATH...\n"
          "       sekishoctl rules explain ARTIFACT MESSAGE.eml [--mail-from A] [--rcpt B]... [--helo H] [--client-ip IP]\n"
          "       sekishoctl rules push DIR|FILE... [--activate] [--wait S] | activate V | rollback | versions\n"
          "       sekishoctl audit verify|list -c CONF\n"
          "       sekishoctl log search [FILTER=VALUE]... [--csv]\n"
          "       sekishoctl quarantine list|show|release|delete ...\n");
  return 2;
}

void print_errors(const std::vector<Diagnostic>& errs) {
  for (const auto& e : errs) printf("%s\n", e.text().c_str());
}

int cmd_check(const std::vector<std::string>& paths) {
  if (paths.empty()) return usage();
  RuleSource src = parse_paths(paths);
  print_errors(src.errors);
  size_t active = 0, unsupported = 0;
  for (const auto& r : src.rules) (r.unsupported.empty() ? active : unsupported)++;
  fprintf(stderr, "%zu rules, %zu lists, %zu brands; %zu not supported here; %zu error%s\n", src.rules.size(),
          src.lists.size(), src.brands.size(), unsupported, src.errors.size(), src.errors.size() == 1 ? "" : "s");
  return src.errors.empty() ? 0 : 1;
}

int cmd_compile(const std::vector<std::string>& args) {
  std::string out, version;
  bool quiet = false;
  std::vector<std::string> paths;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-o" && i + 1 < args.size()) out = args[++i];
    else if (args[i] == "--version" && i + 1 < args.size()) version = args[++i];
    else if (args[i] == "--quiet") quiet = true;
    else if (!args[i].empty() && args[i][0] == '-') return usage();
    else paths.push_back(args[i]);
  }
  if (out.empty() || paths.empty()) return usage();
  auto t0 = std::chrono::steady_clock::now();
  RuleSource src = parse_paths(paths);
  if (!src.errors.empty()) {
    print_errors(src.errors);
    return 1;
  }
  CompileOptions opts;
  opts.version = version;
  bool tty = isatty(2);
  opts.progress = [&](size_t done, size_t total, std::string_view what) {
    if (quiet) return;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int width = 30;
    int filled = total ? static_cast<int>(width * done / total) : width;
    std::string bar(filled, '#');
    bar.resize(width, '.');
    if (tty) {
      fprintf(stderr, "\r[%s] %zu/%zu databases %5.1fs %-40.40s", bar.c_str(), done, total, s, std::string(what).c_str());
      if (done == total) fprintf(stderr, "\n");
    } else if (done == total || s > 2) {
      fprintf(stderr, "[%s] %zu/%zu databases %.1fs %s\n", bar.c_str(), done, total, s, std::string(what).c_str());
    }
  };
  std::string artifact;
  CompileReport rep;
  std::vector<Diagnostic> errs;
  if (!compile_ruleset(src, opts, artifact, rep, errs)) {
    print_errors(errs);
    return 1;
  }
  std::string tmp = out + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(artifact.data(), static_cast<std::streamsize>(artifact.size()));
    if (!f) {
      fprintf(stderr, "sekishoctl: cannot write %s\n", tmp.c_str());
      return 1;
    }
  }
  if (rename(tmp.c_str(), out.c_str()) != 0) {
    fprintf(stderr, "sekishoctl: cannot rename to %s: %s\n", out.c_str(), strerror(errno));
    return 1;
  }
  printf("artifact %s: version %s, sources sha256 %s, %zu bytes, %u databases\n", out.c_str(), rep.version.c_str(),
         rep.sha256.c_str(), rep.artifact_bytes, rep.databases);
  printf("rules by kind (active/defined; eval and network tests apart):\n");
  for (const auto& [d, n] : rep.defined) {
    uint32_t act = rep.active.count(d) ? rep.active.at(d) : 0;
    uint32_t ev = rep.eval.count(d) ? rep.eval.at(d) : 0;
    printf("  %-12s %5u/%-5u eval/network %u\n", d.c_str(), act, n, ev);
  }
  // Per-context pattern counts: header sources summed, the rest one line each.
  uint32_t hdr_n = 0, hdr_pre = 0, hdr_db = 0;
  printf("patterns per context (prefilter+PCRE2 in brackets):\n");
  for (const auto& c : rep.contexts) {
    if (c.context.rfind("header:", 0) == 0) {
      hdr_n += c.patterns;
      hdr_pre += c.prefilter;
      ++hdr_db;
      continue;
    }
    printf("  %-20s %5u [%u]\n", c.context.c_str(), c.patterns, c.prefilter);
  }
  if (hdr_db) printf("  %-20s %5u [%u] in %u header-source databases\n", "header", hdr_n, hdr_pre, hdr_db);
  printf("PCRE2: %u rules confirmed (prefilter or superset translation), %u counted (tflags multiple)\n",
         rep.pcre_confirmed, rep.pcre_counted);
  if (!rep.refused_by_reason.empty()) {
    printf("not active, by reason:\n");
    for (const auto& [r, n] : rep.refused_by_reason) printf("  %5u  %s\n", n, r.c_str());
  }
  if (!rep.eval_by_reason.empty()) {
    uint32_t total = 0;
    for (const auto& [r, n] : rep.eval_by_reason) total += n;
    printf("eval/network rules (SpamAssassin plugin code, not patterns): %u in %zu functions\n", total, rep.eval_by_reason.size());
  }
  printf("compile time %.2f s\n", rep.seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "audit" || args[0] == "log" || args[0] == "quarantine")) {
    std::vector<std::string> words(args.begin() + 1, args.end());
    if (args[0] == "audit") return sekisho::ctl::run_audit(words);
    if (args[0] == "log") return sekisho::ctl::run_log(words);
    return sekisho::ctl::run_quarantine(words);
  }
  if (args.size() < 2 || args[0] != "rules") return usage();
  std::string cmd = args[1];
  std::vector<std::string> rest(args.begin() + 2, args.end());
  if (sekisho::ctl::is_remote_rules_command(cmd)) return sekisho::ctl::run_remote_rules(cmd, rest);
  if (cmd == "check") return cmd_check(rest);
  if (cmd == "compile") return cmd_compile(rest);
  if (cmd == "explain") return sekisho::ctl::cmd_explain(rest);
  return usage();
}
