#include "control/policy/policy.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "rules/compiler/compiler.hpp"
#include "rules/lang/parser.hpp"

namespace sekisho::control::policy {

using nlohmann::json;

namespace {

constexpr size_t kMaxRules = 1000;
constexpr size_t kMaxNameLen = 64;
constexpr size_t kMaxListEntries = 10000;
constexpr size_t kMaxKeywords = 500;
constexpr size_t kMaxKeywordLen = 200;
constexpr size_t kMaxRegexLen = 2000;
constexpr size_t kMaxReplyLen = 200;

const char* kOps[] = {">=", ">", "<=", "<", "==", "!="};

bool printable_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

bool has_control(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

// Collects errors for one rule (or the policy's own fields).
struct Errors {
  std::vector<PolicyError>& out;
  int rule = -1;
  std::string name;
  void add(const std::string& field, const std::string& reason) { out.push_back({rule, name, field, reason}); }
};

// Object keys must be known.
void only_keys(const json& o, std::initializer_list<const char*> known, const std::string& where, Errors& e) {
  for (auto it = o.begin(); it != o.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok) e.add(where.empty() ? it.key() : where + "." + it.key(), "unknown field");
  }
}

std::optional<Comparison> comparison(const json& o, const std::string& where, Errors& e) {
  if (!o.is_object()) {
    e.add(where, "expected an object {\"op\": \">=\", \"value\": N}");
    return std::nullopt;
  }
  Comparison c;
  bool ok = true;
  if (!o.contains("op") || !o["op"].is_string() ||
      std::find(std::begin(kOps), std::end(kOps), o["op"].get<std::string>()) == std::end(kOps)) {
    e.add(where + ".op", "expected one of >= > <= < == !=");
    ok = false;
  } else {
    c.op = o["op"].get<std::string>();
  }
  if (!o.contains("value") || !o["value"].is_number() || !std::isfinite(o["value"].get<double>()) ||
      std::fabs(o["value"].get<double>()) > 1e6) {
    e.add(where + ".value", "expected a number");
    ok = false;
  } else {
    c.value = o["value"].get<double>();
  }
  return ok ? std::optional(c) : std::nullopt;
}

std::optional<AddressList> address_list(const json& o, const std::string& where, bool senders, Errors& e) {
  if (!o.is_object()) {
    e.add(where, "expected an object {\"list\": [...]}");
    return std::nullopt;
  }
  if (senders) only_keys(o, {"list", "match", "not"}, where, e);
  else only_keys(o, {"list", "not"}, where, e);
  AddressList l;
  bool ok = true;
  if (!o.contains("list") || !o["list"].is_array() || o["list"].empty()) {
    e.add(where + ".list", "expected a non-empty list of addresses and @domains");
    return std::nullopt;
  }
  if (o["list"].size() > kMaxListEntries) {
    e.add(where + ".list", "more than " + std::to_string(kMaxListEntries) + " entries");
    return std::nullopt;
  }
  for (size_t i = 0; i < o["list"].size(); ++i) {
    const json& v = o["list"][i];
    std::string f = where + ".list[" + std::to_string(i) + "]";
    if (!v.is_string()) {
      e.add(f, "expected a string");
      ok = false;
      continue;
    }
    std::string s = v.get<std::string>(), norm, why;
    if (s.size() > 320 || has_control(s)) {
      e.add(f, "not an address or @domain");
      ok = false;
      continue;
    }
    bool domain = s.find('@') == std::string::npos || s[0] == '@';
    if (domain) {
      if (!rules::normalise_list_entry(rules::ListType::domains, s[0] == '@' ? s.substr(1) : s, norm, why)) {
        e.add(f, why);
        ok = false;
        continue;
      }
      l.domains.push_back(norm);
    } else {
      if (!rules::normalise_list_entry(rules::ListType::addresses, s, norm, why) || !printable_ascii(norm) ||
          norm.find_first_of(" \t") != std::string::npos) {
        e.add(f, why.empty() ? "not an address: '" + s + "'" : why);
        ok = false;
        continue;
      }
      l.addresses.push_back(norm);
    }
  }
  if (senders && o.contains("match")) {
    if (o["match"] == "from") l.header_from = true;
    else if (o["match"] != "envelope") {
      e.add(where + ".match", "expected \"envelope\" or \"from\"");
      ok = false;
    }
  }
  if (o.contains("not")) {
    if (!o["not"].is_boolean()) {
      e.add(where + ".not", "expected true or false");
      ok = false;
    } else {
      l.negate = o["not"].get<bool>();
    }
  }
  for (auto* v : {&l.addresses, &l.domains}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  return ok ? std::optional(l) : std::nullopt;
}

std::optional<Compare> compare_kind(const json& v, const std::string& where, Errors& e) {
  if (v == "address") return Compare::address;
  if (v == "domain") return Compare::domain;
  e.add(where, "expected \"address\" or \"domain\"");
  return std::nullopt;
}

void parse_conditions(const json& c, Conditions& w, Errors& e) {
  const std::string p = "conditions";
  if (!c.is_object() || c.empty()) {
    e.add(p, "expected an object with at least one condition");
    return;
  }
  only_keys(c,
            {"null_sender", "from_differs_from_sender", "from_differs_from_reply_to", "header", "recipient_count",
             "senders", "recipients", "direction", "sender_class", "score"},
            p, e);
  if (c.contains("null_sender")) {
    if (c["null_sender"] != true) e.add(p + ".null_sender", "expected true (leave it out otherwise)");
    else w.null_sender = true;
  }
  if (c.contains("from_differs_from_sender"))
    w.from_differs_from_sender = compare_kind(c["from_differs_from_sender"], p + ".from_differs_from_sender", e);
  if (c.contains("from_differs_from_reply_to"))
    w.from_differs_from_reply_to = compare_kind(c["from_differs_from_reply_to"], p + ".from_differs_from_reply_to", e);
  if (c.contains("header")) {
    const json& h = c["header"];
    const std::string f = p + ".header";
    if (!h.is_object()) {
      e.add(f, "expected {\"name\": ..., \"keywords\": [...]} or {\"name\": ..., \"regex\": ...}");
    } else {
      only_keys(h, {"name", "keywords", "regex", "case_sensitive"}, f, e);
      HeaderMatch m;
      bool ok = true;
      std::string name = h.value("name", json()).is_string() ? h["name"].get<std::string>() : "";
      if (name.empty() || name.size() > 76 ||
          name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != std::string::npos) {
        e.add(f + ".name", "expected a header field name (letters, digits, '-')");
        ok = false;
      }
      m.name = name;
      bool kw = h.contains("keywords"), re = h.contains("regex");
      if (kw == re) {
        e.add(f, "give either keywords or regex");
        ok = false;
      } else if (kw) {
        const json& k = h["keywords"];
        if (!k.is_array() || k.empty() || k.size() > kMaxKeywords) {
          e.add(f + ".keywords", "expected 1 to " + std::to_string(kMaxKeywords) + " keywords");
          ok = false;
        } else {
          for (size_t i = 0; i < k.size(); ++i) {
            std::string kf = f + ".keywords[" + std::to_string(i) + "]";
            if (!k[i].is_string() || k[i].get<std::string>().empty() || k[i].get<std::string>().size() > kMaxKeywordLen ||
                has_control(k[i].get<std::string>())) {
              e.add(kf, "expected 1 to " + std::to_string(kMaxKeywordLen) + " characters without control characters");
              ok = false;
            } else {
              m.keywords.push_back(k[i].get<std::string>());
            }
          }
        }
      } else {
        if (!h["regex"].is_string() || h["regex"].get<std::string>().empty() ||
            h["regex"].get<std::string>().size() > kMaxRegexLen || has_control(h["regex"].get<std::string>())) {
          e.add(f + ".regex", "expected a regex of 1 to " + std::to_string(kMaxRegexLen) + " characters on one line");
          ok = false;
        } else {
          m.regex = h["regex"].get<std::string>();
        }
      }
      if (h.contains("case_sensitive")) {
        if (!h["case_sensitive"].is_boolean()) {
          e.add(f + ".case_sensitive", "expected true or false");
          ok = false;
        } else {
          m.case_sensitive = h["case_sensitive"].get<bool>();
        }
      }
      if (ok) w.header = m;
    }
  }
  if (c.contains("recipient_count")) {
    const json& r = c["recipient_count"];
    const std::string f = p + ".recipient_count";
    if (!r.is_object()) {
      e.add(f, "expected {\"of\": \"envelope\"|\"to_cc\", \"op\": \">=\", \"value\": N}");
    } else {
      only_keys(r, {"of", "op", "value"}, f, e);
      RecipientCount rc;
      bool ok = true;
      if (r.value("of", json("envelope")) == "to_cc") rc.to_cc = true;
      else if (r.value("of", json("envelope")) != "envelope") {
        e.add(f + ".of", "expected \"envelope\" or \"to_cc\"");
        ok = false;
      }
      auto cmp = comparison(r, f, e);
      if (cmp && (cmp->value < 0 || cmp->value != std::floor(cmp->value))) {
        e.add(f + ".value", "expected a whole number >= 0");
        cmp.reset();
      }
      if (ok && cmp) {
        rc.cmp = *cmp;
        w.recipient_count = rc;
      }
    }
  }
  if (c.contains("senders")) w.senders = address_list(c["senders"], p + ".senders", true, e);
  if (c.contains("recipients")) w.recipients = address_list(c["recipients"], p + ".recipients", false, e);
  if (c.contains("direction")) {
    const json& d = c["direction"];
    if (d == "inbound") w.direction = Direction::inbound;
    else if (d == "outbound") w.direction = Direction::outbound;
    else if (d == "internal") w.direction = Direction::internal;
    else e.add(p + ".direction", "expected \"inbound\", \"outbound\" or \"internal\"");
  }
  if (c.contains("sender_class")) {
    const json& s = c["sender_class"];
    std::string letters;
    bool ok = s.is_array() && !s.empty();
    if (ok)
      for (const auto& x : s) {
        if (!x.is_string() || x.get<std::string>().size() != 1 ||
            std::string_view("PGHJED").find(x.get<std::string>()[0]) == std::string_view::npos) {
          ok = false;
          break;
        }
        if (letters.find(x.get<std::string>()[0]) == std::string::npos) letters += x.get<std::string>()[0];
      }
    if (!ok) e.add(p + ".sender_class", "expected a list of classes: P, G, H, J, E, D");
    else w.sender_class = letters;
  }
  if (c.contains("score")) {
    only_keys(c["score"].is_object() ? c["score"] : json::object(), {"op", "value"}, p + ".score", e);
    w.score = comparison(c["score"], p + ".score", e);
  }
}

}  // namespace

std::string PolicyError::text() const {
  std::string s;
  if (rule >= 0) s = "rule " + std::to_string(rule + 1) + " \"" + name + "\": ";
  return s + field + ": " + reason;
}

const char* action_word(rules::Action a) { return rules::action_name(a); }

std::string compiled_name(const std::string& name) {
  std::string out = "POLICY_";
  for (unsigned char c : name) out += isalnum(c) && c < 0x80 ? static_cast<char>(toupper(c)) : '_';
  return out;
}

bool parse_policy(const json& j, Policy& out, std::vector<PolicyError>& errors) {
  out = Policy{};
  size_t before = errors.size();
  Errors top{errors};
  if (!j.is_object()) {
    top.add("policy", "expected a JSON object");
    return false;
  }
  only_keys(j, {"internal_domains", "internal_networks", "rules"}, "", top);
  if (j.contains("internal_domains")) {
    const json& d = j["internal_domains"];
    if (!d.is_array() || d.size() > kMaxListEntries) top.add("internal_domains", "expected a list of domains");
    else
      for (size_t i = 0; i < d.size(); ++i) {
        std::string norm, why;
        std::string s = d[i].is_string() ? d[i].get<std::string>() : "";
        if (!s.empty() && s[0] == '@') s = s.substr(1);
        if (!d[i].is_string() || !rules::normalise_list_entry(rules::ListType::domains, s, norm, why))
          top.add("internal_domains[" + std::to_string(i) + "]", why.empty() ? "expected a domain" : why);
        else out.internal_domains.push_back(norm);
      }
  }
  if (j.contains("internal_networks")) {
    const json& d = j["internal_networks"];
    if (!d.is_array() || d.size() > kMaxListEntries) top.add("internal_networks", "expected a list of networks");
    else
      for (size_t i = 0; i < d.size(); ++i) {
        std::string norm, why;
        if (!d[i].is_string() || !rules::normalise_list_entry(rules::ListType::ip, d[i].get<std::string>(), norm, why))
          top.add("internal_networks[" + std::to_string(i) + "]", why.empty() ? "expected an address or CIDR" : why);
        else out.internal_networks.push_back(norm);
      }
  }
  for (auto* v : {&out.internal_domains, &out.internal_networks}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  const json rules_j = j.value("rules", json::array());
  if (!rules_j.is_array() || rules_j.size() > kMaxRules) {
    top.add("rules", "expected a list of at most " + std::to_string(kMaxRules) + " rules");
    return false;
  }
  std::map<std::string, int> compiled;
  for (size_t i = 0; i < rules_j.size(); ++i) {
    const json& r = rules_j[i];
    Errors e{errors, static_cast<int>(i), ""};
    if (!r.is_object()) {
      e.add("rule", "expected an object");
      continue;
    }
    PolicyRule pr;
    if (r.contains("name") && r["name"].is_string()) e.name = pr.name = r["name"].get<std::string>();
    only_keys(r, {"name", "enabled", "order", "conditions", "action", "reply", "notify", "notify_to"}, "", e);
    if (pr.name.empty() || pr.name.size() > kMaxNameLen || !printable_ascii(pr.name) || pr.name.front() == ' ' ||
        pr.name.back() == ' ') {
      e.name = pr.name.size() <= kMaxNameLen && printable_ascii(pr.name) ? pr.name : "";
      e.add("name", "expected 1 to 64 printable ASCII characters");
    } else {
      auto [it, fresh] = compiled.emplace(compiled_name(pr.name), static_cast<int>(i));
      if (!fresh)
        e.add("name", "compiles to the same rule name (" + it->first + ") as rule " + std::to_string(it->second + 1));
    }
    if (r.contains("enabled")) {
      if (!r["enabled"].is_boolean()) e.add("enabled", "expected true or false");
      else pr.enabled = r["enabled"].get<bool>();
    }
    if (r.contains("order")) {
      if (!r["order"].is_number_integer() || std::llabs(r["order"].get<int64_t>()) > 1000000000LL)
        e.add("order", "expected an integer");
      else pr.order = r["order"].get<int64_t>();
    }
    if (!r.contains("conditions")) e.add("conditions", "missing");
    else parse_conditions(r["conditions"], pr.when, e);
    std::string act = r.value("action", json()).is_string() ? r["action"].get<std::string>() : "";
    if (act == "pass") pr.action = rules::Action::pass;
    else if (act == "tag") pr.action = rules::Action::tag;
    else if (act == "quarantine") pr.action = rules::Action::quarantine;
    else if (act == "reject") pr.action = rules::Action::reject;
    else if (act == "tempfail") pr.action = rules::Action::tempfail;
    else e.add("action", "expected pass, tag, quarantine, reject or tempfail");
    if (r.contains("reply") && !(r["reply"].is_string() && r["reply"].get<std::string>().empty())) {
      std::string rep = r["reply"].is_string() ? r["reply"].get<std::string>() : "";
      if (rep.empty() || rep.size() > kMaxReplyLen || !printable_ascii(rep))
        e.add("reply", "expected 1 to 200 printable ASCII characters (an SMTP reply line)");
      else if (pr.action != rules::Action::reject && pr.action != rules::Action::tempfail)
        e.add("reply", "only a reject or tempfail action has a reply text");
      else {
        size_t b = rep.find_first_not_of(' '), en = rep.find_last_not_of(' ');
        pr.reply = rep.substr(b, en - b + 1);
      }
    }
    if (r.contains("notify") && !(r["notify"].is_string() && r["notify"].get<std::string>().empty())) {
      std::string n = r["notify"].is_string() ? r["notify"].get<std::string>() : "";
      if (n.empty() || n.size() > 64 ||
          n.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != std::string::npos)
        e.add("notify", "expected a template name (letters, digits, - _ .)");
      else pr.notify = n;
    }
    if (r.contains("notify_to")) {
      const json& t = r["notify_to"];
      if (!t.is_array() || t.empty() || t.size() > 20) {
        e.add("notify_to", "expected a list of 1 to 20 entries: \"sender\", \"recipients\" or addresses");
      } else {
        for (size_t k = 0; k < t.size(); ++k) {
          std::string v = t[k].is_string() ? t[k].get<std::string>() : "";
          bool addr = v.size() <= 254 && v.find('@') != std::string::npos && v.find('@') == v.rfind('@') &&
                      v.front() != '@' && v.back() != '@' &&
                      v.find_first_of(" <>\"(),;:\\[]\r\n\t") == std::string::npos && printable_ascii(v);
          if (v != "sender" && v != "recipients" && !addr)
            e.add("notify_to[" + std::to_string(k) + "]", "expected \"sender\", \"recipients\" or an address");
          else pr.notify_to.push_back(v);
        }
      }
      if (pr.notify.empty()) e.add("notify_to", "needs 'notify' (a template name)");
    }
    if (!pr.notify.empty() && pr.notify_to.empty()) pr.notify_to = {"sender"};
    if (pr.when.direction && out.internal_domains.empty())
      e.add("conditions.direction", "needs internal_domains to be configured");
    out.rules.push_back(std::move(pr));
  }
  return errors.size() == before;
}

namespace {

json comparison_json(const Comparison& c) { return {{"op", c.op}, {"value", c.value}}; }

json list_json(const AddressList& l, bool senders) {
  json list = json::array();
  for (auto& a : l.addresses) list.push_back(a);
  for (auto& d : l.domains) list.push_back("@" + d);
  json o = {{"list", list}};
  if (senders) o["match"] = l.header_from ? "from" : "envelope";
  if (l.negate) o["not"] = true;
  return o;
}

}  // namespace

json policy_json(const Policy& p) {
  json rules_j = json::array();
  for (const auto& r : p.rules) {
    json c = json::object();
    const Conditions& w = r.when;
    if (w.null_sender) c["null_sender"] = true;
    if (w.from_differs_from_sender) c["from_differs_from_sender"] = *w.from_differs_from_sender == Compare::address ? "address" : "domain";
    if (w.from_differs_from_reply_to) c["from_differs_from_reply_to"] = *w.from_differs_from_reply_to == Compare::address ? "address" : "domain";
    if (w.header) {
      json h = {{"name", w.header->name}};
      if (w.header->regex.empty()) h["keywords"] = w.header->keywords;
      else h["regex"] = w.header->regex;
      if (w.header->case_sensitive) h["case_sensitive"] = true;
      c["header"] = h;
    }
    if (w.recipient_count) {
      json rc = comparison_json(w.recipient_count->cmp);
      rc["of"] = w.recipient_count->to_cc ? "to_cc" : "envelope";
      c["recipient_count"] = rc;
    }
    if (w.senders) c["senders"] = list_json(*w.senders, true);
    if (w.recipients) c["recipients"] = list_json(*w.recipients, false);
    if (w.direction)
      c["direction"] = *w.direction == Direction::inbound ? "inbound" : *w.direction == Direction::outbound ? "outbound" : "internal";
    if (!w.sender_class.empty()) {
      json s = json::array();
      for (char x : w.sender_class) s.push_back(std::string(1, x));
      c["sender_class"] = s;
    }
    if (w.score) c["score"] = comparison_json(*w.score);
    json o = {{"name", r.name}, {"enabled", r.enabled}, {"order", r.order}, {"conditions", c}, {"action", action_word(r.action)}};
    if (!r.reply.empty()) o["reply"] = r.reply;
    if (!r.notify.empty()) o["notify"] = r.notify;
    if (!r.notify.empty()) o["notify_to"] = r.notify_to;
    rules_j.push_back(o);
  }
  return {{"internal_domains", p.internal_domains}, {"internal_networks", p.internal_networks}, {"rules", rules_j}};
}

namespace {

// Compiled text with, per line, the rule and field that wrote it.
struct Emitter {
  std::string text;
  int lines = 0;
  std::vector<std::pair<int, std::string>> owner;            // by line - 1
  std::map<std::string, std::pair<int, std::string>> names;  // rule-language rule -> (policy rule, field)
  void line(int rule, const std::string& field, const std::string& s, const std::string& defines = {}) {
    text += s;
    text += '\n';
    ++lines;
    owner.emplace_back(rule, field);
    if (!defines.empty()) names[defines] = {rule, field};
  }
};

std::string regex_escape(std::string_view s) {
  std::string o;
  for (unsigned char c : s) {
    if (isalnum(c) || c >= 0x80 || c == ' ') o += static_cast<char>(c);
    else {
      o += '\\';
      o += static_cast<char>(c);
    }
  }
  return o;
}

std::string num(double v) {
  char b[64];
  snprintf(b, sizeof b, "%.10g", v);
  return b;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += " " + x;
  return s;
}

void compile_into(const Policy& p, Emitter& em) {
  std::vector<size_t> order(p.rules.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p.rules[a].order < p.rules[b].order; });
  em.line(-1, "", "# Policy rules compiled by sekisho-control (control/policy). First match decides.");
  bool direction = false;
  for (const auto& r : p.rules) direction = direction || (r.enabled && r.when.direction);
  if (direction) {
    // Where a message comes from: the internal networks when any are
    // configured, else the envelope sender's domain; recipients by domain.
    const std::string f = "internal_domains";
    em.line(-1, f, "list POLICY_INTERNAL_DOMAINS domains inline" + joined(p.internal_domains));
    if (!p.internal_networks.empty()) {
      em.line(-1, "internal_networks", "list POLICY_INTERNAL_NETWORKS ip inline" + joined(p.internal_networks));
      em.line(-1, "internal_networks", "listed __POLICY_FROM_INSIDE client_ip POLICY_INTERNAL_NETWORKS");
    } else {
      em.line(-1, f, "listed __POLICY_FROM_INSIDE envelope_from_domain POLICY_INTERNAL_DOMAINS");
    }
    em.line(-1, f, "listed __POLICY_RCPTS_INSIDE rcpt_domain POLICY_INTERNAL_DOMAINS");
    em.line(-1, f, "tflags __POLICY_RCPTS_INSIDE multiple");
    em.line(-1, f, "count __POLICY_RCPTS rcpt_to");
    em.line(-1, f, "meta __POLICY_INBOUND !__POLICY_FROM_INSIDE && __POLICY_RCPTS_INSIDE > 0");
    em.line(-1, f, "meta __POLICY_OUTBOUND __POLICY_FROM_INSIDE && __POLICY_RCPTS_INSIDE < __POLICY_RCPTS");
    em.line(-1, f, "meta __POLICY_INTERNAL __POLICY_FROM_INSIDE && __POLICY_RCPTS > 0 && __POLICY_RCPTS_INSIDE == __POLICY_RCPTS");
  }
  for (size_t idx : order) {
    const PolicyRule& r = p.rules[idx];
    if (!r.enabled) continue;
    const int ri = static_cast<int>(idx);
    const std::string n = compiled_name(r.name);
    const Conditions& w = r.when;
    std::vector<std::string> terms;
    em.line(ri, "", "");
    em.line(ri, "name", "# rule " + std::to_string(idx + 1) + " (order " + std::to_string(r.order) + "): " + r.name);
    if (w.null_sender) {
      em.line(ri, "conditions.null_sender", "envelope __" + n + "_NULL_SENDER mail_from !~ /[^<>\\s]/", "__" + n + "_NULL_SENDER");
      terms.push_back("__" + n + "_NULL_SENDER");
    }
    if (w.from_differs_from_sender) {
      bool a = *w.from_differs_from_sender == Compare::address;
      std::string rn = "__" + n + "_FROM_NOT_SENDER";
      em.line(ri, "conditions.from_differs_from_sender",
              "compare " + rn + (a ? " from_address != envelope_from_address" : " from_domain != envelope_from_domain"), rn);
      terms.push_back(rn);
    }
    if (w.from_differs_from_reply_to) {
      bool a = *w.from_differs_from_reply_to == Compare::address;
      std::string rn = "__" + n + "_FROM_NOT_REPLY_TO";
      em.line(ri, "conditions.from_differs_from_reply_to",
              "compare " + rn + (a ? " from_address != reply_to_address" : " from_domain != reply_to_domain"), rn);
      terms.push_back(rn);
    }
    if (w.header) {
      std::string rn = "__" + n + "_HEADER";
      std::string re, field;
      if (w.header->regex.empty()) {
        field = "conditions.header.keywords";
        re = "(?:";
        for (size_t i = 0; i < w.header->keywords.size(); ++i) re += (i ? "|" : "") + regex_escape(w.header->keywords[i]);
        re += ")";
      } else {
        field = "conditions.header.regex";
        re = w.header->regex;
      }
      em.line(ri, field, "header " + rn + " " + w.header->name + " =~ /" + re + "/" + (w.header->case_sensitive ? "" : "i"), rn);
      terms.push_back(rn);
    }
    if (w.recipient_count) {
      std::string rn = "__" + n + "_RCPT_COUNT";
      em.line(ri, "conditions.recipient_count", std::string("count ") + rn + (w.recipient_count->to_cc ? " to_cc" : " rcpt_to"), rn);
      terms.push_back("(" + rn + " " + w.recipient_count->cmp.op + " " + num(w.recipient_count->cmp.value) + ")");
    }
    auto lists = [&](const AddressList& l, const std::string& field, const std::string& tag, const char* addr_src,
                     const char* dom_src) {
      std::vector<std::string> any;
      if (!l.addresses.empty()) {
        std::string ln = n + "_" + tag + "_ADDRESSES", rn = "__" + ln;
        em.line(ri, field, "list " + ln + " addresses inline" + joined(l.addresses));
        em.line(ri, field, "listed " + rn + " " + addr_src + " " + ln, rn);
        any.push_back(rn);
      }
      if (!l.domains.empty()) {
        std::string ln = n + "_" + tag + "_DOMAINS", rn = "__" + ln;
        em.line(ri, field, "list " + ln + " domains inline" + joined(l.domains));
        em.line(ri, field, "listed " + rn + " " + dom_src + " " + ln, rn);
        any.push_back(rn);
      }
      std::string t = "(";
      for (size_t i = 0; i < any.size(); ++i) t += (i ? " || " : "") + any[i];
      t += ")";
      terms.push_back(l.negate ? "!" + t : t);
    };
    if (w.senders)
      lists(*w.senders, "conditions.senders", "SENDERS", w.senders->header_from ? "from_address" : "envelope_from_address",
            w.senders->header_from ? "from_domain" : "envelope_from_domain");
    if (w.recipients) lists(*w.recipients, "conditions.recipients", "RECIPIENTS", "rcpt_address", "rcpt_domain");
    if (w.direction)
      terms.push_back(*w.direction == Direction::inbound ? "__POLICY_INBOUND"
                      : *w.direction == Direction::outbound ? "__POLICY_OUTBOUND"
                                                             : "__POLICY_INTERNAL");
    if (!w.sender_class.empty()) {
      std::string rn = "__" + n + "_SENDER_CLASS", letters;
      for (char c : w.sender_class) letters += std::string(" ") + c;
      em.line(ri, "conditions.sender_class", "classed " + rn + letters, rn);
      terms.push_back(rn);
    }
    if (w.score) {
      std::string rn = "__" + n + "_SCORE";
      em.line(ri, "conditions.score", "scored " + rn + " " + w.score->op + " " + num(w.score->value), rn);
      terms.push_back(rn);
    }
    std::string expr;
    for (size_t i = 0; i < terms.size(); ++i) expr += (i ? " && " : "") + terms[i];
    em.line(ri, "conditions", "meta " + n + " " + expr, n);
    em.line(ri, "name", "describe " + n + " Policy: " + r.name);
    em.line(ri, "name", "score " + n + " 0");
    em.line(ri, "action", "decide " + n + " " + action_word(r.action));
    if (!r.reply.empty()) em.line(ri, "reply", "reply " + n + " " + r.reply);
  }
}

}  // namespace

std::string compile_policy(const Policy& p) {
  Emitter em;
  compile_into(p, em);
  return em.text;
}

std::vector<PolicyError> check_policy(const Policy& p) {
  Emitter em;
  compile_into(p, em);
  std::vector<PolicyError> out;
  auto who = [&](int rule, const std::string& field, const std::string& reason) {
    PolicyError e{rule, rule >= 0 ? p.rules[static_cast<size_t>(rule)].name : "", field.empty() ? "rule" : field, reason};
    out.push_back(e);
  };
  rules::RuleSource src;
  rules::parse_text(src, "policy.cf", em.text);
  rules::finish_source(src);
  for (const auto& d : src.errors) {
    if (d.line >= 1 && static_cast<size_t>(d.line) <= em.owner.size()) {
      auto [rule, field] = em.owner[static_cast<size_t>(d.line - 1)];
      // "header __POLICY_X_HEADER: invalid regex: ..." -> "invalid regex: ..." (the generated name means nothing to the author)
      std::string reason = d.reason;
      size_t colon = reason.find(": ");
      if (colon != std::string::npos && reason.substr(0, colon).find("POLICY_") != std::string::npos)
        reason = reason.substr(colon + 2);
      who(rule, field, reason);
    } else {
      who(-1, "policy", d.text());
    }
  }
  if (!out.empty()) return out;
  std::string art;
  rules::CompileReport rep;
  std::vector<rules::Diagnostic> errs;
  rules::CompileOptions opts;
  if (!rules::compile_ruleset(src, opts, art, rep, errs)) {
    for (const auto& d : errs) who(-1, "policy", d.text());
    return out;
  }
  // A refused sub-rule would make its policy rule never hold: an error here.
  std::set<int> seen;
  for (const auto& [rule, why] : rep.refused) {
    auto it = em.names.find(rule);
    if (it == em.names.end()) continue;
    if (why.rfind("meta depends on", 0) == 0) continue;  // reported through the sub-rule itself
    who(it->second.first, it->second.second, why);
  }
  return out;
}

}  // namespace sekisho::control::policy
