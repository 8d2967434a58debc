#include "rules/lang/parser.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "rules/lang/meta.hpp"
#include "rules/lang/regex.hpp"

namespace sekisho::rules {

const char* kind_name(RuleKind k) {
  switch (k) {
    case RuleKind::header: return "header";
    case RuleKind::body: return "body";
    case RuleKind::rawbody: return "rawbody";
    case RuleKind::full: return "full";
    case RuleKind::uri: return "uri";
    case RuleKind::meta: return "meta";
    case RuleKind::exists: return "exists";
    case RuleKind::envelope: return "envelope";
    case RuleKind::attachment: return "attachment";
    case RuleKind::listed: return "listed";
    case RuleKind::spoof: return "spoof";
    case RuleKind::mimeheader: return "mimeheader";
    case RuleKind::compare: return "compare";
    case RuleKind::count: return "count";
    case RuleKind::classed: return "classed";
    case RuleKind::scored: return "scored";
  }
  return "?";
}

const char* action_name(Action a) {
  switch (a) {
    case Action::pass: return "pass";
    case Action::tag: return "tag";
    case Action::quarantine: return "quarantine";
    case Action::reject: return "reject";
    case Action::tempfail: return "tempfail";
  }
  return "?";
}

char sender_class_letter(SenderClass c) { return "PGHJED"[static_cast<int>(c) % 6]; }

ParseOptions::ParseOptions() {
  // Debian 12's spamassassin 4.0: the plugins /etc/spamassassin/*.pre load.
  static const char* loaded[] = {
      "AskDNS", "AutoLearnThreshold", "Bayes", "BodyEval", "Check", "DKIM", "DMARC", "DNSEval",
      "FreeMail", "HTMLEval", "HTTPSMismatch", "HashBL", "HeaderEval", "ImageInfo", "MIMEEval",
      "MIMEHeader", "Pyzor", "Razor2", "RelayEval", "ReplaceTags", "SPF", "SpamCop", "URIDNSBL",
      "URIDetail", "URIEval", "VBounce", "WLBLEval", "WelcomeListSubject"};
  for (const char* p : loaded) plugins.insert(std::string("Mail::SpamAssassin::Plugin::") + p);
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Splits off the first whitespace-delimited word.
std::string_view word(std::string_view& s) {
  s = trim(s);
  size_t e = 0;
  while (e < s.size() && !isspace(static_cast<unsigned char>(s[e]))) ++e;
  std::string_view w = s.substr(0, e);
  s = trim(s.substr(e));
  return w;
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return o;
}

bool valid_rule_name(std::string_view n) {
  if (n.empty() || n.size() > 128) return false;
  if (!(isalpha(static_cast<unsigned char>(n[0])) || n[0] == '_')) return false;
  for (char c : n)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

bool parse_double(std::string_view s, double& v) {
  std::string t(s);
  if (t.empty()) return false;
  char* end = nullptr;
  v = strtod(t.c_str(), &end);
  return end && *end == 0;
}

// SpamAssassin settings accepted and ignored (counted, never errors).
bool ignored_sa_directive(std::string_view d) {
  static const std::set<std::string, std::less<>> known = {
      "def_whitelist_auth", "def_welcomelist_auth", "freemail_domains", "freemail_whitelist",
      "freemail_welcomelist", "util_rb_2tld", "util_rb_3tld", "util_rb_tld", "clear_util_rb",
      "bayes_ignore_header", "reuse", "priority", "test", "url_shortener", "url_shortener_get",
      "enlist_uri_host", "delist_uri_host", "enlist_addrlist", "delist_addrlist",
      "def_whitelist_from_dkim", "def_welcomelist_from_dkim", "def_whitelist_from_spf",
      "def_welcomelist_from_spf", "whitelist_from", "welcomelist_from", "blacklist_from",
      "blocklist_from", "whitelist_from_rcvd", "welcomelist_from_rcvd", "adsp_override",
      "uridnsbl_skip_domain", "dns_local_ports_avoid", "dns_local_ports_permit", "require_version",
      "report", "clear_report_template", "unsafe_report", "clear_unsafe_report_template",
      "redirector_pattern", "dns_block_rule", "add_header", "remove_header", "clear_headers",
      "originating_ip_headers", "clear_originating_ip_headers", "required_score", "required_hits",
      "report_safe", "report_contact", "ok_locales", "ok_languages", "fns_ignore_headers",
      "fns_ignore_dkim", "fns_check", "bayes_auto_learn", "bayes_auto_learn_threshold_spam",
      "bayes_auto_learn_threshold_nonspam", "asn_lookup", "loadplugin", "tryplugin",
      "trusted_networks", "internal_networks", "msa_networks", "use_bayes", "use_razor2",
      "use_pyzor", "use_dcc", "skip_rbl_checks", "dns_available", "normalize_charset",
      "body_part_scan_size", "rawbody_part_scan_size", "rewrite_header", "use_auto_whitelist",
      "use_auto_welcomelist", "bayes_path", "envelope_sender_header", "dkim_minimum_key_bits",
      "whitelist_auth", "welcomelist_auth", "uridnsbl_max_domains", "shortcircuit",
      "textcat_acceptable_languages", "dcc_home", "pyzor_options", "razor_config",
      "hashbl_ignore", "hashbl_acl_freemail", "check_hashbl_emails", "whitelist_subject",
      "welcomelist_subject", "blacklist_subject", "blocklist_subject", "lock_method",
      "bayes_learn_to_journal", "bayes_min_ham_num", "bayes_min_spam_num", "mimeheader_prefix",
  };
  if (known.count(d)) return true;
  return d.rfind("bayes_stopword_", 0) == 0;
}

// "if" expressions of SpamAssassin's config: !, (), &&, ||, version OP N,
// plugin(NAME), can(NAME), perl_version OP N, numbers.
struct IfEval {
  std::string_view s;
  size_t i = 0;
  const ParseOptions* opts;
  bool ok = true;

  void ws() {
    while (i < s.size() && isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool eat(std::string_view t) {
    ws();
    if (s.substr(i, t.size()) == t) {
      i += t.size();
      return true;
    }
    return false;
  }
  double number() {
    ws();
    size_t b = i;
    while (i < s.size() && (isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    double v = 0;
    if (b == i || !parse_double(s.substr(b, i - b), v)) ok = false;
    return v;
  }
  std::string_view arg() {
    if (!eat("(")) {
      ok = false;
      return {};
    }
    size_t b = i;
    while (i < s.size() && s[i] != ')') ++i;
    std::string_view a = trim(s.substr(b, i - b));
    if (!eat(")")) ok = false;
    return a;
  }
  bool can(std::string_view what) const {
    // Conf features this implementation honours; plugin methods follow the plugin.
    static const std::set<std::string, std::less<>> features = {
        "feature_originating_ip_headers", "feature_dns_local_ports_permit_avoid",
        "feature_bayes_auto_learn_on_error", "feature_uri_host_listed", "feature_yesno_takes_args",
        "feature_bug6558_free", "feature_edns", "feature_dns_query_restriction",
        "feature_registryboundaries", "feature_geodb", "feature_dns_block_rule",
        "feature_compile_regexp", "feature_subjprefix", "feature_bayes_stopwords",
        "feature_get_host", "feature_blocklist_welcomelist", "feature_welcomelist_blocklist",
        "feature_header_address_parser", "feature_local_tests_only", "perl_min_version_5010000"};
    // Not honoured: feature_capture_rules (%{tag} captures), feature_meta_rules_matching
    // (rules_matching()), feature_header_first_last (:first/:last).
    std::string_view conf = "Mail::SpamAssassin::Conf::";
    if (what.substr(0, conf.size()) == conf) return features.count(what.substr(conf.size())) > 0;
    size_t p = what.rfind("::");
    if (p == std::string_view::npos) return false;
    return opts->plugins.count(std::string(what.substr(0, p))) > 0;
  }
  double cmp(double a) {
    ws();
    if (eat(">=")) return a >= number();
    if (eat("<=")) return a <= number();
    if (eat("==")) return a == number();
    if (eat("!=")) return a != number();
    if (eat(">")) return a > number();
    if (eat("<")) return a < number();
    return a;
  }
  double primary() {
    ws();
    if (eat("!")) return primary() == 0;
    if (eat("(")) {
      double v = expr();
      if (!eat(")")) ok = false;
      return v;
    }
    if (eat("version")) return cmp(opts->sa_version);
    if (eat("perl_version")) return cmp(5.036);
    if (eat("plugin")) return opts->plugins.count(std::string(arg())) > 0;
    if (eat("can")) return can(arg());
    if (eat("local_tests_only")) return 1;
    if (i < s.size() && (isdigit(static_cast<unsigned char>(s[i])))) return cmp(number());
    ok = false;
    return 0;
  }
  double and_() {
    double v = primary();
    while (ok && eat("&&")) {
      double w = primary();
      v = (v != 0 && w != 0);
    }
    return v;
  }
  double expr() {
    double v = and_();
    while (ok && eat("||")) {
      double w = and_();
      v = (v != 0 || w != 0);
    }
    return v;
  }
};

struct Cond {
  bool active;       // this branch is taken
  bool parent;       // enclosing block is active
  bool had_else = false;
  std::string file;
  int line;
};

class Parser {
 public:
  Parser(RuleSource& src, const ParseOptions& opts) : src_(src), opts_(opts) {}

  void parse_file(const std::string& path, int depth) {
    if (depth > 16) {
      src_.errors.push_back({path, 0, "include nested too deeply"});
      return;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      src_.errors.push_back({path, 0, "cannot read file"});
      return;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    parse(path, ss.str(), depth);
  }

  void parse(const std::string& file, const std::string& text, int depth) {
    src_.sources.emplace_back(file, text);
    size_t conds_before = conds_.size();
    int lineno = 0;
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      std::string_view line(text.data() + pos, nl - pos);
      ++lineno;
      pos = nl + 1;
      if (line.find('\0') != std::string_view::npos) {
        error(file, lineno, "NUL byte in line");
        continue;
      }
      // Comments: '#' not escaped by a backslash (as SpamAssassin reads them).
      for (size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '#' && (i == 0 || line[i - 1] != '\\')) {
          line = line.substr(0, i);
          break;
        }
      }
      line = trim(line);
      if (line.empty()) continue;
      directive(file, lineno, line, depth);
      if (nl == text.size()) break;
    }
    while (conds_.size() > conds_before) {
      error(conds_.back().file, conds_.back().line, "if/ifplugin without endif");
      conds_.pop_back();
    }
  }

 private:
  RuleSource& src_;
  const ParseOptions& opts_;
  std::vector<Cond> conds_;

  bool active() const { return conds_.empty() || (conds_.back().active && conds_.back().parent); }

  void error(const std::string& file, int line, std::string reason) {
    if (src_.errors.size() < 10000) src_.errors.push_back({file, line, std::move(reason)});
  }

  Rule& define(const std::string& file, int line, std::string_view name, RuleKind kind,
               std::string_view directive) {
    Rule r;
    r.name = std::string(name);
    r.kind = kind;
    r.directive = std::string(directive);
    r.file = file;
    r.line = line;
    auto it = src_.index.find(r.name);
    if (it != src_.index.end()) {
      src_.rules[it->second] = std::move(r);
      return src_.rules[it->second];
    }
    src_.index.emplace(r.name, src_.rules.size());
    src_.rules.push_back(std::move(r));
    return src_.rules.back();
  }

  RuleSettings& settings(const std::string& file, int line, std::string_view name) {
    RuleSettings& s = src_.settings[std::string(name)];
    if (s.file.empty()) {
      s.file = file;
      s.line = line;
    }
    return s;
  }

  // "NAME rest" with a valid rule name; error otherwise.
  bool rule_head(const std::string& file, int line, std::string_view directive, std::string_view& rest,
                 std::string_view& name) {
    name = word(rest);
    if (name.empty()) {
      error(file, line, std::string(directive) + ": missing rule name");
      return false;
    }
    if (!valid_rule_name(name)) {
      error(file, line, std::string(directive) + ": invalid rule name '" + std::string(name) + "'");
      return false;
    }
    return true;
  }

  static std::string eval_reason(std::string_view spec) {
    std::string_view f = spec.substr(5);
    size_t p = f.find('(');
    return "eval:" + std::string(trim(f.substr(0, p))) + "()";
  }

  void regex_rule(const std::string& file, int line, std::string_view d, RuleKind kind,
                  std::string_view rest) {
    std::string_view name;
    if (!rule_head(file, line, d, rest, name)) return;
    if (rest.empty()) {
      error(file, line, std::string(d) + " " + std::string(name) + ": missing pattern");
      return;
    }
    if (rest.substr(0, 5) == "eval:") {
      Rule& r = define(file, line, name, kind, d);
      r.unsupported = eval_reason(rest);
      r.is_eval = true;
      return;
    }
    Rule& r = define(file, line, name, kind, d);
    std::string why;
    if (!parse_regex_literal(rest, r.regex, why)) {
      error(file, line, std::string(d) + " " + std::string(name) + ": " + why);
      r.unsupported = "invalid";
      return;
    }
    r.has_regex = true;
  }

  void header_rule(const std::string& file, int line, std::string_view d, std::string_view rest) {
    std::string_view name;
    if (!rule_head(file, line, d, rest, name)) return;
    RuleKind kind = d == "mimeheader" ? RuleKind::mimeheader : RuleKind::header;
    if (rest.substr(0, 5) == "eval:") {
      Rule& r = define(file, line, name, kind, d);
      r.unsupported = eval_reason(rest);
      r.is_eval = true;
      return;
    }
    if (rest.substr(0, 7) == "exists:") {
      Rule& r = define(file, line, name, RuleKind::exists, d);
      r.header = std::string(trim(rest.substr(7)));
      if (r.header.empty() || r.header.find_first_of(" \t") != std::string::npos) {
        error(file, line, "header " + std::string(name) + ": exists: needs one header name");
        r.unsupported = "invalid";
      }
      return;
    }
    std::string_view hdr = word(rest);
    std::string_view op = word(rest);
    if (hdr.empty() || (op != "=~" && op != "!~")) {
      error(file, line, std::string(d) + " " + std::string(name) + ": expected 'Header =~ /re/' or 'Header !~ /re/'");
      return;
    }
    Rule& r = define(file, line, name, kind, d);
    r.negate = op == "!~";
    // [if-unset: value] ends the line.
    size_t u = rest.rfind("[if-unset:");
    if (u != std::string_view::npos && !rest.empty() && rest.back() == ']') {
      r.has_unset = true;
      r.unset_value = std::string(trim(rest.substr(u + 10, rest.size() - u - 11)));
      rest = trim(rest.substr(0, u));
    }
    std::string why;
    if (!parse_regex_literal(rest, r.regex, why)) {
      error(file, line, std::string(d) + " " + std::string(name) + ": " + why);
      r.unsupported = "invalid";
      return;
    }
    r.has_regex = true;
    size_t colon = hdr.find(':');
    r.header = std::string(hdr.substr(0, colon));
    if (colon != std::string_view::npos) {
      std::string_view mod = hdr.substr(colon + 1);
      if (mod == "raw") r.form = HeaderForm::raw;
      else if (mod == "addr") r.form = HeaderForm::addr;
      else if (mod == "name") r.form = HeaderForm::name;
      else r.unsupported = "header modifier :" + std::string(mod);
    }
    std::string ln = lower(r.header);
    // X-Spam-Relays-* and ALL-* are built from the Received: fields at run time
    // (scanners/match/received.hpp); the DKIM/authentication ones need plugins.
    static const char* const kBuilt[] = {"x-spam-relays-trusted", "x-spam-relays-untrusted", "x-spam-relays-internal",
                                         "x-spam-relays-external", "all-trusted", "all-untrusted", "all-internal",
                                         "all-external"};
    bool built = false;
    for (const char* b : kBuilt) built = built || ln == b;
    if (r.unsupported.empty() && !built &&
        (ln.rfind("x-spam-relays-", 0) == 0 || ln.rfind("all-", 0) == 0 || ln == "x-spam-dkim-signing-domains" ||
         ln == "x-spam-auth-results"))
      r.unsupported = "pseudo-header " + r.header + " needs DKIM/authentication results (not built)";
  }

  void directive(const std::string& file, int line, std::string_view text, int depth) {
    std::string_view rest = text;
    std::string_view d = word(rest);

    // Conditionals are tracked even inside inactive blocks.
    if (d == "ifplugin" || d == "if") {
      bool v = false;
      if (d == "ifplugin") {
        v = opts_.plugins.count(std::string(trim(rest))) > 0;
      } else {
        IfEval e{rest, 0, &opts_};
        v = e.expr() != 0;
        e.ws();
        if (!e.ok || e.i != rest.size()) {
          if (active()) error(file, line, "if: cannot evaluate '" + std::string(rest) + "'");
          v = false;
        }
      }
      conds_.push_back(Cond{v, active(), false, file, line});
      return;
    }
    if (d == "else") {
      if (conds_.empty() || conds_.back().had_else) {
        error(file, line, "else without if");
        return;
      }
      conds_.back().active = !conds_.back().active;
      conds_.back().had_else = true;
      return;
    }
    if (d == "endif") {
      if (conds_.empty()) {
        error(file, line, "endif without if");
        return;
      }
      conds_.pop_back();
      return;
    }
    if (!active()) return;

    if (d == "lang") {
      std::string_view l = word(rest);
      if (l == "en") {
        directive(file, line, rest, depth);
      } else {
        ++src_.lang_skipped;
      }
      return;
    }
    if (d == "include") {
      std::string inc(trim(rest));
      if (inc.empty()) {
        error(file, line, "include: missing file name");
        return;
      }
      std::filesystem::path p(inc);
      if (p.is_relative()) p = std::filesystem::path(file).parent_path() / p;
      parse_file(p.string(), depth + 1);
      return;
    }
    if (d == "header" || d == "mimeheader") return header_rule(file, line, d, rest);
    if (d == "body") return regex_rule(file, line, d, RuleKind::body, rest);
    if (d == "rawbody") return regex_rule(file, line, d, RuleKind::rawbody, rest);
    if (d == "uri") return regex_rule(file, line, d, RuleKind::uri, rest);
    if (d == "full") return regex_rule(file, line, d, RuleKind::full, rest);
    if (d == "meta") {
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      if (rest.empty()) {
        error(file, line, "meta " + std::string(name) + ": missing expression");
        return;
      }
      Rule& r = define(file, line, name, RuleKind::meta, d);
      r.meta = std::string(rest);
      std::vector<std::string> names;
      std::string why;
      if (!meta_names(r.meta, names, why)) {
        if (why.find("function") != std::string::npos) {
          r.unsupported = why;  // e.g. rules_matching(): a SpamAssassin 4 feature not supported
        } else {
          error(file, line, "meta " + std::string(name) + ": " + why.substr(6));
          r.unsupported = "invalid";
        }
      }
      return;
    }
    if (d == "askdns" || d == "urirhssub" || d == "urirhsbl" || d == "uridnsbl" || d == "uridnssub" ||
        d == "hashbl") {
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      Rule& r = define(file, line, name, RuleKind::header, d);
      r.unsupported = "network test: " + std::string(d);
      r.is_eval = true;
      return;
    }
    if (d == "uri_detail") {
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      Rule& r = define(file, line, name, RuleKind::uri, d);
      r.unsupported = "uri_detail: URIDetail plugin (parsed URI fields) not supported";
      return;
    }
    if (d == "score") {
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      std::vector<double> v;
      std::string_view t;
      while (!(t = word(rest)).empty()) {
        if (t.front() == '(' && t.back() == ')') t = t.substr(1, t.size() - 2);  // SA's "(1.0)" form
        double x;
        if (!parse_double(t, x)) {
          error(file, line, "score " + std::string(name) + ": not a number: '" + std::string(t) + "'");
          return;
        }
        v.push_back(x);
      }
      if (v.size() != 1 && v.size() != 4) {
        error(file, line, "score " + std::string(name) + ": expected one or four values");
        return;
      }
      RuleSettings& s = settings(file, line, name);
      for (int i = 0; i < 4; ++i) s.score[i] = v.size() == 1 ? v[0] : v[i];
      s.has_score = true;
      return;
    }
    if (d == "describe") {
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      settings(file, line, name).describe = std::string(rest);
      return;
    }
    if (d == "tflags") {
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      RuleSettings& s = settings(file, line, name);
      s.tflags = std::string(rest);
      s.multiple = s.nice = s.nosubject = s.net = false;
      s.maxhits = 0;
      std::string_view t;
      while (!(t = word(rest)).empty()) {
        if (t == "multiple") s.multiple = true;
        else if (t == "nice") s.nice = true;
        else if (t == "nosubject") s.nosubject = true;
        else if (t == "net") s.net = true;
        else if (t.substr(0, 8) == "maxhits=") {
          double x;
          if (!parse_double(t.substr(8), x) || x < 1 || x > 1e6) {
            error(file, line, "tflags " + std::string(name) + ": bad maxhits");
            continue;
          }
          s.maxhits = static_cast<uint32_t>(x);
          s.multiple = true;  // SpamAssassin: maxhits implies multiple
        }
        // Others (publish, learn, userconf, noautolearn, ...) are kept as written.
      }
      return;
    }
    if (d == "replace_tag" || d == "replace_pre" || d == "replace_post" || d == "replace_inter") {
      std::string_view tag = word(rest);
      if (tag.empty() || rest.empty()) {
        error(file, line, std::string(d) + ": expected 'TAG expression'");
        return;
      }
      auto& m = d == "replace_tag" ? src_.replace_tag
                : d == "replace_pre" ? src_.replace_pre
                : d == "replace_post" ? src_.replace_post
                                      : src_.replace_inter;
      m[std::string(tag)] = std::string(rest);
      return;
    }
    if (d == "replace_rules") {
      std::string_view t;
      while (!(t = word(rest)).empty()) src_.replace_rules.insert(std::string(t));
      return;
    }
    if (d == "replace_start" || d == "replace_end") {
      if (trim(rest) != (d == "replace_start" ? "<" : ">"))
        error(file, line, std::string(d) + ": only the default tag delimiters < > are supported");
      return;
    }
    // ---- Sekisho extensions ----
    if (d == "list") return list_directive(file, line, rest);
    if (d == "listed") {
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      std::string_view source = word(rest);
      std::string_view list = word(rest);
      static const std::pair<std::string_view, ListSource> sources[] = {
          {"from_domain", ListSource::from_domain}, {"reply_to_domain", ListSource::reply_to_domain},
          {"envelope_from_domain", ListSource::envelope_from_domain}, {"helo", ListSource::helo},
          {"rcpt_domain", ListSource::rcpt_domain}, {"uri_host", ListSource::uri_host},
          {"uri", ListSource::uri}, {"attachment_sha256", ListSource::attachment_sha256},
          {"client_ip", ListSource::client_ip}, {"from_address", ListSource::from_address},
          {"envelope_from_address", ListSource::envelope_from_address}, {"rcpt_address", ListSource::rcpt_address}};
      const ListSource* src = nullptr;
      for (auto& s : sources)
        if (s.first == source) src = &s.second;
      if (!src || list.empty() || !rest.empty()) {
        error(file, line, "listed " + std::string(name) + ": expected 'listed NAME SOURCE LIST' (SOURCE: from_domain, reply_to_domain, envelope_from_domain, helo, rcpt_domain, uri_host, uri, attachment_sha256, client_ip, from_address, envelope_from_address, rcpt_address)");
        return;
      }
      Rule& r = define(file, line, name, RuleKind::listed, d);
      r.list_source = *src;
      r.list = std::string(list);
      return;
    }
    if (d == "envelope") {
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      std::string_view field = word(rest);
      std::string_view op = word(rest);
      EnvelopeField f;
      if (field == "mail_from") f = EnvelopeField::mail_from;
      else if (field == "rcpt_to") f = EnvelopeField::rcpt_to;
      else if (field == "helo") f = EnvelopeField::helo;
      else {
        error(file, line, "envelope " + std::string(name) + ": field must be mail_from, rcpt_to or helo");
        return;
      }
      if (op != "=~" && op != "!~") {
        error(file, line, "envelope " + std::string(name) + ": expected =~ or !~");
        return;
      }
      Rule& r = define(file, line, name, RuleKind::envelope, d);
      r.envelope = f;
      r.negate = op == "!~";
      std::string why;
      if (!parse_regex_literal(rest, r.regex, why)) {
        error(file, line, "envelope " + std::string(name) + ": " + why);
        r.unsupported = "invalid";
        return;
      }
      r.has_regex = true;
      return;
    }
    if (d == "attachment") {
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      std::string_view field = word(rest);
      Rule& r = define(file, line, name, RuleKind::attachment, d);
      if (field == "macros" || field == "encrypted") {
        r.attachment = field == "macros" ? AttachmentField::macros : AttachmentField::encrypted;
        if (!rest.empty()) error(file, line, "attachment " + std::string(name) + ": unexpected text after " + std::string(field));
        return;
      }
      if (field == "budget_exceeded") {
        r.attachment = AttachmentField::budget_exceeded;
        for (std::string_view why = word(rest); !why.empty(); why = word(rest)) {
          size_t k = 0;
          while (k < std::size(kBudgetReasons) && why != kBudgetReasons[k]) ++k;
          if (k == std::size(kBudgetReasons)) {
            error(file, line, "attachment " + std::string(name) + ": unknown budget '" + std::string(why) +
                                  "' (depth, entries, ratio, bytes, message_bytes, steps, time, worker)");
            r.unsupported = "invalid";
            return;
          }
          r.size_over |= uint64_t(1) << k;
        }
        return;
      }
      if (field == "size") {
        std::string_view op = word(rest);
        double x;
        if (op != ">" || !parse_double(trim(rest), x) || x < 0) {
          error(file, line, "attachment " + std::string(name) + ": expected 'size > BYTES'");
          r.unsupported = "invalid";
          return;
        }
        r.attachment = AttachmentField::size_over;
        r.size_over = static_cast<uint64_t>(x);
        return;
      }
      if (field == "name") r.attachment = AttachmentField::name;
      else if (field == "type") r.attachment = AttachmentField::type;
      else if (field == "sniffed") r.attachment = AttachmentField::sniffed;
      else {
        error(file, line, "attachment " + std::string(name) + ": field must be name, type, sniffed, macros, encrypted, size or budget_exceeded");
        r.unsupported = "invalid";
        return;
      }
      std::string_view op = word(rest);
      if (op != "=~" && op != "!~") {
        error(file, line, "attachment " + std::string(name) + ": expected =~ or !~");
        r.unsupported = "invalid";
        return;
      }
      r.negate = op == "!~";
      std::string why;
      if (!parse_regex_literal(rest, r.regex, why)) {
        error(file, line, "attachment " + std::string(name) + ": " + why);
        r.unsupported = "invalid";
        return;
      }
      r.has_regex = true;
      return;
    }
    if (d == "brand") {
      BrandDef b;
      b.name = std::string(word(rest));
      b.file = file;
      b.line = line;
      if (!valid_rule_name(b.name)) {
        error(file, line, "brand: expected 'brand NAME /display-name-re/i domain...'");
        return;
      }
      // The regex ends at the last delimiter before the domain list.
      size_t split = std::string_view::npos;
      if (!rest.empty() && rest[0] == '/') {
        size_t close = rest.find('/', 1);
        while (close != std::string_view::npos && rest[close - 1] == '\\') close = rest.find('/', close + 1);
        if (close != std::string_view::npos) {
          split = close + 1;
          while (split < rest.size() && isalpha(static_cast<unsigned char>(rest[split]))) ++split;
        }
      }
      std::string why;
      if (split == std::string_view::npos || !parse_regex_literal(rest.substr(0, split), b.display, why)) {
        error(file, line, "brand " + b.name + ": " + (why.empty() ? "expected /display-name-re/" : why));
        return;
      }
      rest = rest.substr(split);
      std::string_view t;
      while (!(t = word(rest)).empty()) {
        std::string dom;
        if (!normalise_list_entry(ListType::domains, t, dom, why)) {
          error(file, line, "brand " + b.name + ": " + why);
          return;
        }
        b.domains.push_back(dom);
      }
      if (b.domains.empty()) {
        error(file, line, "brand " + b.name + ": needs at least one real domain");
        return;
      }
      if (!check_with_pcre2(b.display, RuleKind::header, why)) {
        error(file, line, "brand " + b.name + ": " + why);
        return;
      }
      src_.brands.push_back(std::move(b));
      return;
    }
    if (d == "spoof") {
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      if (!rest.empty()) error(file, line, "spoof " + std::string(name) + ": takes no arguments");
      define(file, line, name, RuleKind::spoof, d);
      return;
    }
    if (d == "sender_class") {
      std::string_view c = word(rest);
      std::string_view list = word(rest);
      static const std::string_view letters = "PGHJ";
      if (c.size() != 1 || letters.find(c[0]) == std::string_view::npos || list.empty() || !rest.empty()) {
        error(file, line, "sender_class: expected 'sender_class P|G|H|J LIST' (E and D are built in)");
        return;
      }
      src_.classes.push_back(ClassDef{static_cast<SenderClass>(letters.find(c[0])), std::string(list), file, line});
      return;
    }
    if (d == "category") {
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      RuleSettings& s = settings(file, line, name);
      std::string_view t;
      while (!(t = word(rest)).empty()) s.categories.emplace_back(t);
      if (s.categories.empty()) error(file, line, "category " + std::string(name) + ": missing category");
      return;
    }
    if (d == "action") {
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      std::string_view a = trim(rest);
      Action act;
      if (!parse_action(a, act)) {
        error(file, line, "action " + std::string(name) + ": expected tag, quarantine or reject");
        return;
      }
      settings(file, line, name).action = act;
      return;
    }
    if (d == "threshold") {
      std::string_view a = word(rest);
      Action act;
      double v;
      if (!parse_action(a, act) || !parse_double(trim(rest), v)) {
        error(file, line, "threshold: expected 'threshold tag|quarantine|reject SCORE'");
        return;
      }
      src_.thresholds[static_cast<int>(act)] = v;
      return;
    }
    if (d == "compare") {
      // compare NAME LEFT ==|!= RIGHT
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      std::string_view l = word(rest), op = word(rest), rr = word(rest);
      AddressField lf, rf;
      if (!address_field(l, lf) || !address_field(rr, rf) || (op != "==" && op != "!=") || !rest.empty()) {
        error(file, line, "compare " + std::string(name) + ": expected 'compare NAME FIELD ==|!= FIELD' (FIELD: from_address, from_domain, reply_to_address, reply_to_domain, envelope_from_address, envelope_from_domain)");
        return;
      }
      Rule& r = define(file, line, name, RuleKind::compare, d);
      r.compare_left = lf;
      r.compare_right = rf;
      r.compare_equal = op == "==";
      return;
    }
    if (d == "count") {
      // count NAME rcpt_to|to_cc
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      std::string_view f = word(rest);
      if ((f != "rcpt_to" && f != "to_cc") || !rest.empty()) {
        error(file, line, "count " + std::string(name) + ": expected 'count NAME rcpt_to|to_cc'");
        return;
      }
      Rule& r = define(file, line, name, RuleKind::count, d);
      r.count = f == "rcpt_to" ? CountField::rcpt_to : CountField::to_cc;
      return;
    }
    if (d == "classed") {
      // classed NAME LETTER... (P G H J E D)
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      uint8_t bits = 0;
      bool ok = !rest.empty();
      std::string_view t;
      while (ok && !(t = word(rest)).empty()) {
        for (char c : t) {
          size_t k = std::string_view("PGHJED").find(c);
          if (k == std::string_view::npos) ok = false;
          else bits |= static_cast<uint8_t>(1u << k);
        }
      }
      if (!ok) {
        error(file, line, "classed " + std::string(name) + ": expected 'classed NAME CLASS...' (CLASS: P G H J E D)");
        return;
      }
      Rule& r = define(file, line, name, RuleKind::classed, d);
      r.classes = bits;
      return;
    }
    if (d == "scored") {
      // scored NAME >=|>|<=|<|==|!= NUMBER
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      std::string_view op = word(rest);
      static const std::pair<std::string_view, CompareOp> ops[] = {
          {">=", CompareOp::ge}, {">", CompareOp::gt}, {"<=", CompareOp::le},
          {"<", CompareOp::lt}, {"==", CompareOp::eq}, {"!=", CompareOp::ne}};
      const CompareOp* o = nullptr;
      for (auto& x : ops)
        if (x.first == op) o = &x.second;
      double v = 0;
      if (!o || !parse_double(trim(rest), v)) {
        error(file, line, "scored " + std::string(name) + ": expected 'scored NAME >=|>|<=|<|==|!= NUMBER'");
        return;
      }
      Rule& r = define(file, line, name, RuleKind::scored, d);
      r.score_op = *o;
      r.score_value = v;
      return;
    }
    if (d == "decide") {
      // decide NAME pass|tag|quarantine|reject|tempfail
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      std::string_view a = trim(rest);
      Action act;
      if (a == "pass") act = Action::pass;
      else if (a == "tempfail") act = Action::tempfail;
      else if (!parse_action(a, act)) {
        error(file, line, "decide " + std::string(name) + ": expected pass, tag, quarantine, reject or tempfail");
        return;
      }
      RuleSettings& s = settings(file, line, name);
      if (s.decide) {
        error(file, line, "decide " + std::string(name) + ": already decided at " + s.file + ":" + std::to_string(s.line));
        return;
      }
      s.decide = true;
      s.decision = act;
      src_.decide_order.emplace_back(name);
      return;
    }
    if (d == "reply") {
      // reply NAME TEXT  (printable ASCII, at most 200 characters)
      std::string_view name;
      if (!rule_head(file, line, d, rest, name)) return;
      std::string_view reply = trim(rest);
      bool ok = !reply.empty() && reply.size() <= 200;
      for (char c : reply)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) ok = false;
      if (!ok) {
        error(file, line, "reply " + std::string(name) + ": expected 1 to 200 printable ASCII characters");
        return;
      }
      settings(file, line, name).reply = std::string(reply);
      return;
    }
    if (d == "ruleset_version") {
      src_.version = std::string(trim(rest));
      if (src_.version.empty() || src_.version.size() > 64) error(file, line, "ruleset_version: expected a short string");
      return;
    }
    if (ignored_sa_directive(d)) {
      ++src_.ignored_directives[std::string(d)];
      return;
    }
    error(file, line, "unknown directive '" + std::string(d.substr(0, 64)) + "'");
  }

  static bool address_field(std::string_view s, AddressField& f) {
    static const std::pair<std::string_view, AddressField> fields[] = {
        {"from_address", AddressField::from_address}, {"from_domain", AddressField::from_domain},
        {"reply_to_address", AddressField::reply_to_address}, {"reply_to_domain", AddressField::reply_to_domain},
        {"envelope_from_address", AddressField::envelope_from_address},
        {"envelope_from_domain", AddressField::envelope_from_domain}};
    for (auto& x : fields)
      if (x.first == s) {
        f = x.second;
        return true;
      }
    return false;
  }

  static bool parse_action(std::string_view a, Action& act) {
    if (a == "tag") act = Action::tag;
    else if (a == "quarantine") act = Action::quarantine;
    else if (a == "reject") act = Action::reject;
    else return false;
    return true;
  }

  void list_directive(const std::string& file, int line, std::string_view rest) {
    // list NAME TYPE FILE            (entries one per line, '#' comments)
    // list NAME TYPE inline ENTRY... (entries on the line)
    ListDef l;
    l.name = std::string(word(rest));
    std::string_view type = word(rest);
    l.file = file;
    l.line = line;
    if (!valid_rule_name(l.name)) {
      error(file, line, "list: invalid list name");
      return;
    }
    if (type == "domains") l.type = ListType::domains;
    else if (type == "urls") l.type = ListType::urls;
    else if (type == "sha256") l.type = ListType::sha256;
    else if (type == "ip") l.type = ListType::ip;
    else if (type == "addresses") l.type = ListType::addresses;
    else {
      error(file, line, "list " + l.name + ": type must be domains, urls, sha256, ip or addresses");
      return;
    }
    auto add = [&](const std::string& f, int ln, std::string_view e) {
      std::string out, why;
      if (!normalise_list_entry(l.type, e, out, why)) {
        error(f, ln, "list " + l.name + ": " + why);
        return;
      }
      l.entries.push_back(std::move(out));
    };
    std::string_view first = word(rest);
    if (first == "inline") {
      std::string_view t;
      while (!(t = word(rest)).empty()) add(file, line, t);
    } else if (!first.empty() && rest.empty()) {
      std::filesystem::path p{std::string(first)};
      if (p.is_relative()) p = std::filesystem::path(file).parent_path() / p;
      std::ifstream in(p, std::ios::binary);
      if (!in) {
        error(file, line, "list " + l.name + ": cannot read " + p.string());
        return;
      }
      std::ostringstream ss;
      ss << in.rdbuf();
      std::string text = ss.str();
      src_.sources.emplace_back(p.string(), text);
      std::istringstream ls(text);
      std::string ln;
      int n = 0;
      while (std::getline(ls, ln)) {
        ++n;
        std::string_view v = ln;
        size_t h = v.find('#');
        if (h != std::string_view::npos) v = v.substr(0, h);
        v = trim(v);
        if (v.empty()) continue;
        if (v.find_first_of(" \t") != std::string_view::npos) {
          error(p.string(), n, "list " + l.name + ": one entry per line");
          continue;
        }
        add(p.string(), n, v);
      }
    } else {
      error(file, line, "list " + l.name + ": expected a file name or 'inline' entries");
      return;
    }
    std::sort(l.entries.begin(), l.entries.end());
    l.entries.erase(std::unique(l.entries.begin(), l.entries.end()), l.entries.end());
    for (auto& x : src_.lists) {
      if (x.name == l.name) {
        error(file, line, "list " + l.name + ": already defined at " + x.file + ":" + std::to_string(x.line));
        return;
      }
    }
    src_.lists.push_back(std::move(l));
  }
};

bool valid_domain(std::string_view d, std::string& why) {
  if (d.empty() || d.size() > 253) {
    why = "bad domain length";
    return false;
  }
  size_t label = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(d[i]);
    if (c >= 0x80) {
      why = "non-ASCII domain '" + std::string(d) + "' (write it in punycode, xn--)";
      return false;
    }
    if (c == '.') {
      if (label == 0) {
        why = "empty label in domain '" + std::string(d) + "'";
        return false;
      }
      label = 0;
      continue;
    }
    if (!(isalnum(c) || c == '-' || c == '_')) {
      why = "invalid character '" + std::string(1, static_cast<char>(c)) + "' in domain '" + std::string(d) + "'";
      return false;
    }
    if (++label > 63) {
      why = "label longer than 63 in '" + std::string(d) + "'";
      return false;
    }
  }
  if (label == 0) {
    why = "domain ends with '.'";
    return false;
  }
  return true;
}

}  // namespace

bool normalise_list_entry(ListType type, std::string_view in, std::string& out, std::string& why) {
  std::string v = lower(trim(in));
  switch (type) {
    case ListType::domains: {
      if (v.rfind("*.", 0) == 0) v = v.substr(2);  // a domain entry always covers its subdomains
      if (!valid_domain(v, why)) return false;
      out = v;
      return true;
    }
    case ListType::addresses: {
      size_t at = v.rfind('@');
      if (at == std::string::npos || at == 0) {
        why = "not an address: '" + v + "'";
        return false;
      }
      if (!valid_domain(std::string_view(v).substr(at + 1), why)) return false;
      out = v;
      return true;
    }
    case ListType::urls: {
      size_t s = v.find("://");
      if (s != std::string::npos) v = v.substr(s + 3);
      size_t slash = v.find('/');
      std::string host = v.substr(0, slash);
      if (!valid_domain(host, why)) return false;
      out = v;
      return true;
    }
    case ListType::sha256: {
      if (v.size() != 64 || v.find_first_not_of("0123456789abcdef") != std::string::npos) {
        why = "not a SHA-256 (64 hex digits): '" + v.substr(0, 80) + "'";
        return false;
      }
      out = v;
      return true;
    }
    case ListType::ip: {
      std::string addr = v;
      int len = -1;
      size_t sl = v.find('/');
      if (sl != std::string::npos) {
        addr = v.substr(0, sl);
        std::string l = v.substr(sl + 1);
        if (l.empty() || l.size() > 3 || l.find_first_not_of("0123456789") != std::string::npos) {
          why = "bad prefix length in '" + v + "'";
          return false;
        }
        len = atoi(l.c_str());
      }
      unsigned char buf[16];
      bool v6 = addr.find(':') != std::string::npos;
      if (inet_pton(v6 ? AF_INET6 : AF_INET, addr.c_str(), buf) != 1) {
        why = "not an IP address: '" + v + "'";
        return false;
      }
      int max = v6 ? 128 : 32;
      if (len < 0) len = max;
      if (len > max) {
        why = "prefix length over " + std::to_string(max) + " in '" + v + "'";
        return false;
      }
      // Canonical: address with host bits cleared, "/len".
      int bytes = v6 ? 16 : 4;
      for (int i = 0; i < bytes; ++i) {
        int keep = std::clamp(len - i * 8, 0, 8);
        buf[i] &= static_cast<unsigned char>(0xff00 >> keep);
      }
      char txt[INET6_ADDRSTRLEN];
      inet_ntop(v6 ? AF_INET6 : AF_INET, buf, txt, sizeof txt);
      out = std::string(txt) + "/" + std::to_string(len);
      return true;
    }
  }
  return false;
}

void parse_text(RuleSource& src, const std::string& file, std::string_view text, const ParseOptions& opts) {
  Parser p(src, opts);
  p.parse(file, std::string(text), 0);
}

namespace {

// ReplaceTags as SpamAssassin's plugin does it: <pre X>, <post X>, <inter X>
// markers, then every <TAG> replaced, up to 5 passes for nested tags.
std::string replace_tags(const RuleSource& src, std::string re) {
  for (int pass = 0; pass <= 5; ++pass) {
    auto take_marker = [&](std::string_view kind) {
      std::string pat = "<" + std::string(kind) + " ";
      size_t p = re.find(pat);
      if (p == std::string::npos) return std::string();
      size_t e = re.find('>', p);
      if (e == std::string::npos) return std::string();
      std::string name = re.substr(p + pat.size(), e - p - pat.size());
      re.erase(p, e - p + 1);
      return name;
    };
    std::string pre = take_marker("pre"), post = take_marker("post"), inter = take_marker("inter");
    // Split into text and <tag> pieces as Perl's split(/(<[^<>]+>)/) does:
    // a leading empty piece is kept, trailing empty pieces are dropped.
    std::vector<std::string> parts;
    size_t i = 0, text_from = 0;
    while (i < re.size()) {
      if (re[i] != '<') {
        ++i;
        continue;
      }
      size_t j = i + 1;
      while (j < re.size() && re[j] != '<' && re[j] != '>') ++j;
      if (j < re.size() && re[j] == '>' && j > i + 1) {
        parts.push_back(re.substr(text_from, i - text_from));
        parts.push_back(re.substr(i, j - i + 1));
        i = text_from = j + 1;
      } else {
        i = j;
      }
    }
    parts.push_back(re.substr(text_from));
    while (!parts.empty() && parts.back().empty()) parts.pop_back();
    auto is_tag = [](const std::string& s) { return s.size() > 2 && s.front() == '<' && s.back() == '>'; };
    auto find = [](const std::map<std::string, std::string>& m, const std::string& k) -> const std::string* {
      auto it = m.find(k);
      return it == m.end() ? nullptr : &it->second;
    };
    const std::string* pre_v = pre.empty() ? nullptr : find(src.replace_pre, pre);
    const std::string* post_v = post.empty() ? nullptr : find(src.replace_post, post);
    const std::string* inter_v = inter.empty() ? nullptr : find(src.replace_inter, inter);
    bool again = false;
    std::string outre;
    for (size_t k = 0; k < parts.size(); ++k) {
      std::string& s = parts[k];
      if (is_tag(s)) {
        std::string name = s.substr(1, s.size() - 2);
        const std::string* rep = find(src.replace_tag, name);
        std::string piece = rep ? *rep : s;
        if (rep && rep->find('<') != std::string::npos) again = true;
        if (pre_v) piece = *pre_v + piece;
        if (post_v) piece += *post_v;
        outre += piece;
      } else if (s.empty() && inter_v) {
        outre += *inter_v;
      } else {
        outre += s;
      }
    }
    re = outre;
    if (!again) break;
  }
  return re;
}

void refuse(Rule& r, std::string why) {
  if (r.unsupported.empty()) r.unsupported = std::move(why);
}

}  // namespace

void finish_source(RuleSource& src) {
  for (const auto& name : src.replace_rules) {
    auto it = src.index.find(name);
    if (it == src.index.end()) continue;  // SpamAssassin ignores these too
    Rule& r = src.rules[it->second];
    if (r.has_regex) r.regex.source = replace_tags(src, r.regex.source);
  }
  // Regexes: a rule that PCRE2 cannot compile is an error.
  for (Rule& r : src.rules) {
    if (!r.has_regex || !r.unsupported.empty()) continue;
    if (r.regex.source.find("%{") != std::string::npos) {
      refuse(r, "capture tags %{...} (SpamAssassin 4 capture rules) not supported");
      continue;
    }
    std::string why;
    bool too_large = false;
    if (!check_with_pcre2(r.regex, r.kind, why, &too_large)) {
      if (too_large) continue;  // Hyperscan may take it alone; the compiler decides
      src.errors.push_back({r.file, r.line, std::string(r.directive) + " " + r.name + ": " + why});
      r.unsupported = "invalid";
    }
  }
  // Lists referenced by rules and classes.
  auto has_list = [&](const std::string& n) {
    if (n == "brands") return true;
    for (auto& l : src.lists)
      if (l.name == n) return true;
    return false;
  };
  for (Rule& r : src.rules) {
    if (r.kind == RuleKind::listed && r.unsupported.empty() && !has_list(r.list)) {
      src.errors.push_back({r.file, r.line, "listed " + r.name + ": no list named '" + r.list + "'"});
      r.unsupported = "invalid";
    }
    if (r.kind == RuleKind::spoof && src.brands.empty()) {
      src.errors.push_back({r.file, r.line, "spoof " + r.name + ": no brand is defined"});
      r.unsupported = "invalid";
    }
  }
  for (auto& c : src.classes)
    if (!has_list(c.list)) src.errors.push_back({c.file, c.line, "sender_class: no list named '" + c.list + "'"});
  // decide/reply name rules that exist; a reply needs a reject or tempfail decision.
  for (const auto& [name, s] : src.settings) {
    if (s.decide && !src.index.count(name))
      src.errors.push_back({s.file, s.line, "decide " + name + ": no rule named '" + name + "'"});
    if (!s.reply.empty() && !(s.decide && (s.decision == Action::reject || s.decision == Action::tempfail)))
      src.errors.push_back({s.file, s.line, "reply " + name + ": needs 'decide " + name + " reject' or 'tempfail'"});
  }
  // Meta dependencies: undefined or unsupported rules disable the meta (as
  // SpamAssassin 4 disables metas with undefined dependencies); cycles are errors.
  for (int round = 0; round < 64; ++round) {
    bool changed = false;
    for (Rule& r : src.rules) {
      if (r.kind != RuleKind::meta || !r.unsupported.empty()) continue;
      std::vector<std::string> names;
      std::string why;
      if (!meta_names(r.meta, names, why)) continue;
      for (auto& n : names) {
        auto it = src.index.find(n);
        if (it == src.index.end()) {
          refuse(r, "meta depends on undefined rule " + n);
          changed = true;
          break;
        }
        const Rule& dep = src.rules[it->second];
        if (!dep.unsupported.empty()) {
          bool eval = dep.is_eval || dep.unsupported.rfind("meta depends on eval/network", 0) == 0;
          refuse(r, eval ? "meta depends on eval/network rule " + n
                         : "meta depends on unsupported rule " + n);
          changed = true;
          break;
        }
      }
    }
    if (!changed) break;
  }
  // Cycles among the remaining metas.
  std::map<std::string, int> state;  // 0 new, 1 visiting, 2 done
  std::function<bool(size_t)> visit = [&](size_t i) -> bool {
    Rule& r = src.rules[i];
    int& st = state[r.name];
    if (st == 2) return true;
    if (st == 1) return false;
    st = 1;
    std::vector<std::string> names;
    std::string why;
    meta_names(r.meta, names, why);
    for (auto& n : names) {
      auto it = src.index.find(n);
      if (it == src.index.end() || src.rules[it->second].kind != RuleKind::meta) continue;
      if (!src.rules[it->second].unsupported.empty()) continue;
      if (!visit(it->second)) {
        if (r.unsupported.empty()) {
          src.errors.push_back({r.file, r.line, "meta " + r.name + ": dependency cycle through " + n});
          r.unsupported = "invalid";
        }
        state[r.name] = 2;
        return false;
      }
    }
    state[r.name] = 2;
    return true;
  };
  for (size_t i = 0; i < src.rules.size(); ++i)
    if (src.rules[i].kind == RuleKind::meta && src.rules[i].unsupported.empty()) visit(i);
}

RuleSource parse_paths(const std::vector<std::string>& paths, const ParseOptions& opts) {
  RuleSource src;
  Parser p(src, opts);
  for (const auto& path : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      std::vector<std::string> files;
      for (auto& e : std::filesystem::recursive_directory_iterator(path, ec))
        if (e.path().extension() == ".cf" && e.is_regular_file()) files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
      if (files.empty()) src.errors.push_back({path, 0, "directory has no .cf files"});
      for (auto& f : files) p.parse_file(f, 0);
    } else {
      p.parse_file(path, 0);
    }
  }
  finish_source(src);
  return src;
}

}  // namespace sekisho::rules
