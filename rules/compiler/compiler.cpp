#include "rules/compiler/compiler.hpp"

#include <hs/hs.h>
#include <openssl/evp.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>

#include "rules/lang/meta.hpp"
#include "rules/lang/regex.hpp"
#include "rules/compiler/translate.hpp"

namespace sekisho::rules {

double default_score(std::string_view name) {
  if (name.substr(0, 2) == "__") return 0;
  if (name.substr(0, 2) == "T_") return 0.01;
  return 1.0;
}

std::string reason_group(std::string_view reason) {
  static const std::string_view prefixes[] = {
      "meta depends on eval/network rule", "meta depends on unsupported rule",
      "meta depends on undefined rule", "pseudo-header", "header modifier"};
  for (auto p : prefixes)
    if (reason.substr(0, p.size()) == p) return std::string(p);
  std::string r(reason);
  for (const char* tail : {" at index ", " at offset ", " (expansion estimate"}) {
    size_t at = r.find(tail);
    if (at != std::string::npos) r = r.substr(0, at);
  }
  return r;
}

bool reason_documented(std::string_view reason) {
  // Keep in step with rules/README.md, "Refusal reasons".
  static const std::string_view prefixes[] = {
      "eval:",                               // SpamAssassin plugin code (Perl), not a pattern
      "network test:",                       // DNS/URI blocklists (askdns, urirhssub, ...)
      "meta depends on eval/network rule",   // the meta needs an eval/network result
      "meta depends on unsupported rule",    // ... or another refused rule
      "meta depends on undefined rule",      // SpamAssassin disables these too
      "meta: function",                      // rules_matching() (SpamAssassin 4)
      "header modifier :",                   // :first, :last, :host, :domain, :ip
      "pseudo-header",                       // X-Spam-DKIM-Signing-Domains, X-Spam-Auth-Results, ... (plugins)
      "mimeheader:",                         // MIME part headers (MIME engine, issue 4)
      "uri_detail:",                         // URIDetail plugin
      "capture tags",                        // %{tag} captures (SpamAssassin 4)
      "cannot translate:",                   // construct neither Hyperscan nor its prefilter has
      "cannot confirm:",                     // needs PCRE2 confirmation, PCRE2 refuses it (size)
      "invalid",                             // a source error (reported as file:line)
  };
  for (auto p : prefixes)
    if (reason.substr(0, p.size()) == p) return true;
  // Hyperscan refusals, even in prefilter mode, with the messages we know.
  static const std::string_view hs_known[] = {
      "Hyperscan: Pattern is too large", "Hyperscan: Resource limit exceeded",
      "Hyperscan: Expression is not valid UTF-8", "Hyperscan: Embedded start anchors not supported",
      "Hyperscan: Embedded end anchors not supported",
      "Hyperscan: Bounded repeat is too large", "Hyperscan: Pattern can never match",
  };
  for (auto p : hs_known)
    if (reason.substr(0, p.size()) == p) return true;
  return false;
}

namespace {

struct Pattern {
  uint32_t rule;
  std::string expr;
  unsigned flags;
};

struct DbPlan {
  DbContext context;
  uint32_t source = kNone;
  std::string label;
  std::vector<Pattern> patterns;
};

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return o;
}

hs_platform_info_t fixed_platform() {
  hs_platform_info_t p;
  memset(&p, 0, sizeof p);
  p.tune = HS_TUNE_FAMILY_GENERIC;
  p.cpu_features = 0;
  return p;
}

std::string hs_message(hs_compile_error_t* e) {
  std::string m = e && e->message ? e->message : "unknown error";
  return m;
}

bool hs_accepts(const std::string& expr, unsigned flags, std::string& why) {
  hs_expr_info_t* info = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_expression_info(expr.c_str(), flags, &info, &err) != HS_SUCCESS) {
    why = hs_message(err);
    hs_free_compile_error(err);
    return false;
  }
  free(info);
  return true;
}

std::string base_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

DbContext context_of(const Rule& r) {
  switch (r.kind) {
    case RuleKind::body: return DbContext::body;
    case RuleKind::rawbody: return DbContext::rawbody;
    case RuleKind::full: return DbContext::full;
    case RuleKind::uri: return DbContext::uri;
    case RuleKind::envelope:
      return r.envelope == EnvelopeField::mail_from ? DbContext::mail_from
             : r.envelope == EnvelopeField::rcpt_to ? DbContext::rcpt_to
                                                    : DbContext::helo;
    case RuleKind::attachment:
      return r.attachment == AttachmentField::name   ? DbContext::attachment_name
             : r.attachment == AttachmentField::type ? DbContext::attachment_type
                                                     : DbContext::attachment_sniffed;
    case RuleKind::mimeheader: return DbContext::mime_header;
    default: return DbContext::header;
  }
}

}  // namespace

bool compile_ruleset(const RuleSource& src, const CompileOptions& opts, std::string& artifact,
                     CompileReport& report, std::vector<Diagnostic>& errors) {
  auto t0 = std::chrono::steady_clock::now();
  errors = src.errors;
  if (!errors.empty()) return false;

  Artifact a;
  // Source hash: file name (not path) and bytes of every file read, in order.
  {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    for (const auto& [path, bytes] : src.sources) {
      std::string name = base_name(path);
      uint64_t len = bytes.size();
      EVP_DigestUpdate(ctx, name.data(), name.size() + 0);
      EVP_DigestUpdate(ctx, "\0", 1);
      EVP_DigestUpdate(ctx, &len, sizeof len);
      EVP_DigestUpdate(ctx, bytes.data(), bytes.size());
    }
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx, a.source_sha256.data(), &n);
    EVP_MD_CTX_free(ctx);
  }
  a.version = !opts.version.empty() ? opts.version
              : !src.version.empty() ? src.version
                                     : "sha256-" + sha256_hex(a.source_sha256).substr(0, 12);
  a.thresholds = src.thresholds;

  // Lists.
  std::map<std::string, uint32_t> list_index;
  for (const auto& l : src.lists) {
    list_index[l.name] = static_cast<uint32_t>(a.lists.size());
    a.lists.push_back(ArtifactList{l.name, l.type, l.entries});
  }
  for (const auto& c : src.classes)
    a.classes.emplace_back(c.cls, c.list == "brands" ? kNone : list_index.at(c.list));

  // Categories (sorted, so indexes do not depend on rule order).
  std::set<std::string> cats;
  for (const auto& [name, s] : src.settings)
    for (const auto& c : s.categories) cats.insert(c);
  a.categories.assign(cats.begin(), cats.end());

  // Rule table.
  std::map<std::string, uint32_t> rule_index;
  std::map<std::tuple<std::string, int, bool, std::string>, uint32_t> source_index;
  auto header_source = [&](const Rule& r) {
    std::string name = lower(r.header);
    auto key = std::make_tuple(name, static_cast<int>(r.form), r.has_unset, r.has_unset ? r.unset_value : std::string());
    auto it = source_index.find(key);
    if (it != source_index.end()) return it->second;
    uint32_t i = static_cast<uint32_t>(a.header_sources.size());
    HeaderSource h;
    h.name = name;
    h.form = r.form;
    h.has_unset = r.has_unset;
    h.unset = r.has_unset ? r.unset_value : "";
    a.header_sources.push_back(h);
    source_index.emplace(key, i);
    return i;
  };

  std::vector<Translation> trans(src.rules.size());
  for (size_t i = 0; i < src.rules.size(); ++i) {
    const Rule& r = src.rules[i];
    ArtifactRule x;
    x.name = r.name;
    x.kind = r.kind;
    x.file = base_name(r.file);
    x.line = static_cast<uint32_t>(r.line);
    x.negate = r.negate;
    x.unsupported = r.unsupported;
    x.score.fill(default_score(r.name));
    auto st = src.settings.find(r.name);
    if (st != src.settings.end()) {
      const RuleSettings& s = st->second;
      if (s.nice && x.score[0] > 0) x.score.fill(-x.score[0]);  // SpamAssassin: nice rules default to -1
      if (s.has_score) x.score = s.score;
      x.describe = s.describe;
      if (s.multiple) x.flags |= flag_multiple;
      if (s.nice) x.flags |= flag_nice;
      if (s.nosubject) x.flags |= flag_nosubject;
      x.maxhits = s.maxhits;
      x.action = s.action;
      x.decides = s.decide;
      x.decision = s.decision;
      x.reply = s.reply;
      for (const auto& c : s.categories)
        x.categories.push_back(static_cast<uint32_t>(std::lower_bound(a.categories.begin(), a.categories.end(), c) - a.categories.begin()));
    }
    if (r.name.substr(0, 2) == "__") x.flags |= flag_subrule;
    if (r.is_eval) x.flags |= flag_eval;
    switch (r.kind) {
      case RuleKind::header:
      case RuleKind::mimeheader:
      case RuleKind::exists: x.form = static_cast<uint8_t>(r.form); break;
      case RuleKind::envelope: x.form = static_cast<uint8_t>(r.envelope); break;
      case RuleKind::attachment: x.form = static_cast<uint8_t>(r.attachment); x.size_over = r.size_over; break;
      case RuleKind::listed: x.form = static_cast<uint8_t>(r.list_source); break;
      case RuleKind::compare:
        x.form = static_cast<uint8_t>(r.compare_left);
        x.arg = static_cast<uint8_t>(static_cast<uint8_t>(r.compare_right) | (r.compare_equal ? 0x80 : 0));
        break;
      case RuleKind::count: x.form = static_cast<uint8_t>(r.count); x.flags |= flag_multiple; break;
      case RuleKind::classed: x.arg = r.classes; break;
      case RuleKind::scored:
        x.form = static_cast<uint8_t>(r.score_op);
        x.value = r.score_value;
        x.flags |= flag_late;
        break;
      default: break;
    }
    if (x.unsupported.empty() && r.has_regex) {
      Translation t = translate_regex(r.regex.source, r.regex.mods, implies_multiline(r.kind));
      uint64_t cost = t.refused.empty() ? expansion_estimate(t.pattern) : 0;
      if (!t.refused.empty()) {
        x.unsupported = "cannot translate: " + t.refused;
      } else if (cost > opts.max_cost) {
        x.unsupported = "Hyperscan: Pattern is too large (expansion estimate " + std::to_string(cost) +
                        " over " + std::to_string(opts.max_cost) + ")";
      } else {
        unsigned f = t.flags | HS_FLAG_ALLOWEMPTY | HS_FLAG_SINGLEMATCH;
        std::string why;
        bool pre = t.prefilter;
        if (!hs_accepts(t.pattern, f | (pre ? HS_FLAG_PREFILTER : 0), why)) {
          std::string why2;
          if (!pre && hs_accepts(t.pattern, f | HS_FLAG_PREFILTER, why2)) {
            pre = true;
          } else {
            x.unsupported = "Hyperscan: " + (pre ? why : why2);
          }
        }
        t.prefilter = pre;
        if (pre) t.flags |= HS_FLAG_PREFILTER;
        bool needs_pcre = x.unsupported.empty() && (pre || t.superset || (x.flags & (flag_multiple | flag_nosubject)));
        bool too_large = false;
        if (needs_pcre && !check_with_pcre2(r.regex, r.kind, why, &too_large))
          x.unsupported = "cannot confirm: PCRE2 " + why.substr(std::string("invalid regex: ").size());
        trans[i] = t;
      }
    }
    rule_index[r.name] = static_cast<uint32_t>(a.rules.size());
    a.rules.push_back(std::move(x));
  }

  // Metas: a meta whose dependency was refused above (by translation) is refused too.
  for (int round = 0; round < 64; ++round) {
    bool changed = false;
    for (auto& x : a.rules) {
      if (x.kind != RuleKind::meta || !x.unsupported.empty()) continue;
      std::vector<std::string> names;
      std::string why;
      meta_names(src.rules[&x - a.rules.data()].meta, names, why);
      for (const auto& n : names) {
        const ArtifactRule& d = a.rules[rule_index.at(n)];
        if (!d.unsupported.empty()) {
          bool eval = (d.flags & flag_eval) || d.unsupported.rfind("meta depends on eval/network", 0) == 0;
          x.unsupported = (eval ? "meta depends on eval/network rule " : "meta depends on unsupported rule ") + n;
          changed = true;
          break;
        }
      }
    }
    if (!changed) break;
  }

  // Plan databases.
  std::vector<DbPlan> plans;
  std::map<std::pair<int, uint32_t>, size_t> plan_index;
  auto plan_for = [&](DbContext c, uint32_t source, const std::string& label) -> DbPlan& {
    auto key = std::make_pair(static_cast<int>(c), source);
    auto it = plan_index.find(key);
    if (it != plan_index.end()) return plans[it->second];
    plan_index.emplace(key, plans.size());
    plans.push_back(DbPlan{c, source, label, {}});
    return plans.back();
  };
  for (size_t i = 0; i < src.rules.size(); ++i) {
    const Rule& r = src.rules[i];
    ArtifactRule& x = a.rules[i];
    if (r.kind == RuleKind::exists && x.unsupported.empty()) x.source = header_source(r);
    if (r.kind == RuleKind::listed && x.unsupported.empty()) x.source = list_index.at(r.list);
    if (!x.unsupported.empty() || !r.has_regex) continue;
    DbContext c = context_of(r);
    uint32_t source = kNone;
    std::string label = db_context_name(c);
    if (c == DbContext::header || c == DbContext::mime_header) {
      source = x.source = header_source(r);
      const HeaderSource& h = a.header_sources[source];
      label = (c == DbContext::header ? "header:" : "mimeheader:") + h.name;
      if (h.form != HeaderForm::decoded) label += h.form == HeaderForm::raw ? ":raw" : h.form == HeaderForm::addr ? ":addr" : ":name";
      if (h.has_unset) label += "[if-unset]";
    }
    plan_for(c, source, label).patterns.push_back(Pattern{static_cast<uint32_t>(i), trans[i].pattern, trans[i].flags | HS_FLAG_ALLOWEMPTY | HS_FLAG_SINGLEMATCH});
  }
  if (!src.brands.empty()) {
    DbPlan& p = plan_for(DbContext::from_name, kNone, "from_name");
    for (size_t b = 0; b < src.brands.size(); ++b) {
      const BrandDef& bd = src.brands[b];
      Translation t = translate_regex(bd.display.source, bd.display.mods, false);
      std::string why;
      if (!t.refused.empty() || t.prefilter || t.superset ||
          !hs_accepts(t.pattern, t.flags | HS_FLAG_SINGLEMATCH, why)) {
        errors.push_back({bd.file, bd.line, "brand " + bd.name + ": display-name regex must be plain (no back-references, look-around, possessive or atomic groups)"});
        continue;
      }
      p.patterns.push_back(Pattern{static_cast<uint32_t>(b), t.pattern, t.flags | HS_FLAG_SINGLEMATCH});
      a.brands.push_back(ArtifactBrand{bd.name, bd.domains});
    }
    if (!errors.empty()) return false;
  }

  // Compile. A pattern Hyperscan refuses inside a database (limits only seen
  // at compile time) is retried with the prefilter, then refused.
  const hs_platform_info_t platform = fixed_platform();
  size_t total = plans.size();
  size_t done = 0;
  // Large databases first in the progress (they take the time).
  // Cost-aware partitioning: heavy patterns apart, then bounded shards.
  {
    std::vector<DbPlan> sharded;
    for (auto& p : plans) {
      std::sort(p.patterns.begin(), p.patterns.end(), [](const Pattern& x, const Pattern& y) { return x.rule < y.rule; });
      std::vector<Pattern> light, heavy;
      for (auto& pt : p.patterns) (expansion_estimate(pt.expr) >= opts.heavy_cost ? heavy : light).push_back(pt);
      auto emit = [&](std::vector<Pattern>& v, size_t per, const char* tag) {
        size_t shards = (v.size() + per - 1) / std::max<size_t>(per, 1);
        for (size_t k = 0; k < shards; ++k) {
          DbPlan q{p.context, p.source, p.label, {}};
          if (shards > 1 || !heavy.empty()) q.label += std::string("#") + tag + std::to_string(k + 1);
          // Round-robin keeps neighbouring (similar) rules apart, which keeps each shard cheaper.
          for (size_t i = k; i < v.size(); i += shards) q.patterns.push_back(v[i]);
          sharded.push_back(std::move(q));
        }
      };
      emit(light, opts.shard_patterns, "");
      emit(heavy, opts.heavy_shard, "heavy");
    }
    plans = std::move(sharded);
  }
  if (const char* dump = getenv("SEKISHO_COMPILE_DUMP")) {
    FILE* f = fopen(dump, "w");
    for (auto& p : plans)
      for (auto& pt : p.patterns) fprintf(f, "%s\t%u\t%u\t%s\n", p.label.c_str(), pt.rule, pt.flags, pt.expr.c_str());
    if (f) fclose(f);
  }
  for (auto& p : plans) {
    if (opts.progress) opts.progress(done, total, p.label);
    ++done;
    std::sort(p.patterns.begin(), p.patterns.end(), [](const Pattern& x, const Pattern& y) { return x.rule < y.rule; });
    hs_database_t* db = nullptr;
    for (int attempt = 0; attempt < 1000 && !p.patterns.empty(); ++attempt) {
      std::vector<const char*> exprs;
      std::vector<unsigned> flags, ids;
      for (auto& pt : p.patterns) {
        exprs.push_back(pt.expr.c_str());
        flags.push_back(pt.flags);
        ids.push_back(p.context == DbContext::from_name ? pt.rule : pt.rule);
      }
      hs_compile_error_t* err = nullptr;
      unsigned mode = is_stream(p.context) ? HS_MODE_STREAM : HS_MODE_BLOCK;
      if (hs_compile_multi(exprs.data(), flags.data(), ids.data(), static_cast<unsigned>(exprs.size()), mode,
                           &platform, &db, &err) == HS_SUCCESS)
        break;
      db = nullptr;
      std::string msg = hs_message(err);
      int bad = err ? err->expression : -1;
      hs_free_compile_error(err);
      if (bad < 0 || static_cast<size_t>(bad) >= p.patterns.size() || p.context == DbContext::from_name) {
        errors.push_back({"<compile>", 0, "Hyperscan cannot build the " + p.label + " database: " + msg});
        return false;
      }
      Pattern& pt = p.patterns[bad];
      if (!(pt.flags & HS_FLAG_PREFILTER)) {
        pt.flags |= HS_FLAG_PREFILTER;
        trans[pt.rule].prefilter = true;
        continue;
      }
      a.rules[pt.rule].unsupported = "Hyperscan: " + msg;
      p.patterns.erase(p.patterns.begin() + bad);
    }
    if (!db) continue;
    if (getenv("SEKISHO_COMPILE_TRACE")) {  // per-database sizes, for tuning the partitioning
      size_t sz = 0;
      hs_database_size(db, &sz);
      fprintf(stderr, "trace: %s %zu patterns %zu bytes\n", p.label.c_str(), p.patterns.size(), sz);
    }
    char* bytes = nullptr;
    size_t len = 0;
    if (hs_serialize_database(db, &bytes, &len) != HS_SUCCESS) {
      hs_free_database(db);
      errors.push_back({"<compile>", 0, "hs_serialize_database failed for " + p.label});
      return false;
    }
    ArtifactDb out;
    out.context = p.context;
    out.source = p.source;
    out.patterns = static_cast<uint32_t>(p.patterns.size());
    out.blob.assign(bytes, len);
    free(bytes);
    hs_free_database(db);
    uint32_t di = static_cast<uint32_t>(a.dbs.size());
    ContextCount cc{p.label, out.patterns, 0};
    for (auto& pt : p.patterns) {
      if (p.context == DbContext::from_name) continue;
      a.rules[pt.rule].db = di;
      if (pt.flags & HS_FLAG_PREFILTER) ++cc.prefilter;
    }
    if (p.context == DbContext::header && a.header_sources[p.source].db == kNone) a.header_sources[p.source].db = di;
    a.dbs.push_back(std::move(out));
    report.contexts.push_back(cc);
  }
  if (opts.progress) opts.progress(total, total, "done");

  // Rules refused while building databases take their metas with them.
  for (int round = 0; round < 64; ++round) {
    bool changed = false;
    for (size_t i = 0; i < a.rules.size(); ++i) {
      auto& x = a.rules[i];
      if (x.kind != RuleKind::meta || !x.unsupported.empty()) continue;
      std::vector<std::string> names;
      std::string why;
      meta_names(src.rules[i].meta, names, why);
      for (const auto& n : names) {
        if (!a.rules[rule_index.at(n)].unsupported.empty()) {
          x.unsupported = "meta depends on unsupported rule " + n;
          changed = true;
          break;
        }
      }
    }
    if (!changed) break;
  }

  // PCRE2 confirmations.
  std::vector<pcre2_code*> codes;
  for (size_t i = 0; i < src.rules.size(); ++i) {
    const Rule& r = src.rules[i];
    ArtifactRule& x = a.rules[i];
    if (!x.unsupported.empty() || !r.has_regex || x.db == kNone) continue;
    bool multiple = (x.flags & flag_multiple) != 0;
    // nosubject: PCRE2 decides from where the body starts (the Subject line is skipped).
    bool confirm = trans[i].prefilter || trans[i].superset || (x.flags & flag_nosubject);
    if (!multiple && !confirm) continue;
    x.confirm = multiple ? Confirm::count : Confirm::exists;
    PcreConfirm pc{r.regex.source, pcre2_options(r.regex.mods) | (implies_multiline(r.kind) ? PCRE2_MULTILINE : 0u)};
    int code = 0;
    PCRE2_SIZE off = 0;
    pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pc.pattern.data()), pc.pattern.size(), pc.options, &code, &off, nullptr);
    if (!c) {  // only when the prefilter was chosen while building the database
      x.unsupported = "cannot confirm: PCRE2 regular expression is too large";
      x.confirm = Confirm::none;
      continue;
    }
    if (multiple) ++report.pcre_counted;
    else ++report.pcre_confirmed;
    x.pcre = static_cast<uint32_t>(a.pcres.size());
    a.pcres.push_back(std::move(pc));
    codes.push_back(c);
  }
  if (!codes.empty()) {
    uint8_t* bytes = nullptr;
    PCRE2_SIZE size = 0;
    int32_t rc = pcre2_serialize_encode(const_cast<const pcre2_code**>(codes.data()), static_cast<int32_t>(codes.size()), &bytes, &size, nullptr);
    if (rc < 0) {
      errors.push_back({"<compile>", 0, "pcre2_serialize_encode failed"});
      for (auto* k : codes) pcre2_code_free(k);
      return false;
    }
    a.pcre_blob.assign(reinterpret_cast<char*>(bytes), size);
    pcre2_serialize_free(bytes);
  }
  for (auto* k : codes) pcre2_code_free(k);

  // Meta programs, dependencies first.
  std::vector<int> state(a.rules.size(), 0);
  std::function<void(uint32_t)> order = [&](uint32_t i) {
    if (state[i]) return;
    state[i] = 1;
    std::vector<std::string> names;
    std::string why;
    meta_names(src.rules[i].meta, names, why);
    for (const auto& n : names) {
      uint32_t d = rule_index.at(n);
      if (a.rules[d].kind == RuleKind::meta) order(d);
    }
    a.meta_order.push_back(i);
  };
  for (uint32_t i = 0; i < a.rules.size(); ++i) {
    ArtifactRule& x = a.rules[i];
    if (x.kind != RuleKind::meta || !x.unsupported.empty()) continue;
    std::vector<MetaInstr> code;
    uint32_t depth = 0;
    std::string why;
    compile_meta(src.rules[i].meta, [&](std::string_view n) { return rule_index.at(std::string(n)); }, code, depth, why);
    x.meta_begin = static_cast<uint32_t>(a.meta_code.size());
    x.meta_len = static_cast<uint32_t>(code.size());
    a.meta_code.insert(a.meta_code.end(), code.begin(), code.end());
    a.meta_depth = std::max(a.meta_depth, depth);
  }
  for (uint32_t i = 0; i < a.rules.size(); ++i)
    if (a.rules[i].kind == RuleKind::meta && a.rules[i].unsupported.empty()) order(i);
  // Late metas: those that depend (through other metas) on a scored rule.
  // meta_order is dependencies first, so one pass marks them all.
  for (uint32_t i : a.meta_order) {
    std::vector<std::string> names;
    std::string why;
    meta_names(src.rules[i].meta, names, why);
    for (const auto& n : names)
      if (a.rules[rule_index.at(n)].flags & flag_late) a.rules[i].flags |= flag_late;
  }
  for (const auto& n : src.decide_order) {
    auto it = rule_index.find(n);
    if (it != rule_index.end()) a.decide_order.push_back(it->second);
  }

  // Report.
  for (size_t i = 0; i < a.rules.size(); ++i) {
    ArtifactRule& x = a.rules[i];
    const std::string& d = src.rules[i].directive;
    ++report.defined[d];
    if (x.unsupported.empty()) {
      x.flags |= flag_active;
      ++report.active[d];
      continue;
    }
    report.refused.emplace_back(x.name, x.unsupported);
    bool eval = (x.flags & flag_eval) != 0;
    if (eval) {
      ++report.eval[d];
      ++report.eval_by_reason[reason_group(x.unsupported)];
    } else {
      ++report.refused_by_reason[reason_group(x.unsupported)];
    }
  }
  report.databases = static_cast<uint32_t>(a.dbs.size());
  report.version = a.version;
  report.sha256 = sha256_hex(a.source_sha256);
  artifact = write_artifact(a);
  report.artifact_bytes = artifact.size();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return true;
}

}  // namespace sekisho::rules
