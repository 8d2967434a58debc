#include "journal/event.hpp"

#include <cmath>
#include <limits>

#include "journal/time.hpp"

namespace sekisho::journal {

using nlohmann::json;

namespace {

json opt(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }

json rule_hits(const std::vector<RuleHit>& hits) {
  json a = json::array();
  for (const auto& h : hits) a.push_back(to_json(h));
  return a;
}

json leaf_json(const Leaf& l) {
  json j = {{"type", l.type},     {"charset", l.charset}, {"encoding", l.encoding},
            {"filename", l.filename}, {"size", l.size},   {"sha256", l.sha256},
            {"text_sha256", opt(l.text_sha256)}, {"depth", l.depth}};
  if (!l.text.empty()) j["text"] = l.text;
  return j;
}

constexpr int64_t kLastTimeUs = 253402300799999999;  // 9999-12-31T23:59:59.999999Z

// ---- reading: every accessor checks the type and throws Bad, caught once
// in from_json (never out of it).

struct Bad {
  std::string text;
  bool newer = false;
};

// The value at k; nullptr when absent or null (the default applies).
const json* find(const json& o, const char* k) {
  auto it = o.find(k);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

[[noreturn]] void bad(const char* k, const char* what) { throw Bad{std::string("'") + k + "' " + what}; }

void read(const json& o, const char* k, std::string& out) {
  if (const json* v = find(o, k)) {
    if (!v->is_string()) bad(k, "is not a string");
    out = v->get_ref<const std::string&>();
  }
}

void read(const json& o, const char* k, std::optional<std::string>& out) {
  out.reset();
  if (const json* v = find(o, k)) {
    if (!v->is_string()) bad(k, "is not a string");
    out = v->get_ref<const std::string&>();
  }
}

void read(const json& o, const char* k, bool& out) {
  if (const json* v = find(o, k)) {
    if (!v->is_boolean()) bad(k, "is not true or false");
    out = v->get<bool>();
  }
}

template <typename T>
void read_uint(const json& o, const char* k, T& out) {
  if (const json* v = find(o, k)) {
    if (v->is_number_unsigned()) {
      uint64_t x = v->get<uint64_t>();
      if (x > std::numeric_limits<T>::max()) bad(k, "is out of range");
      out = T(x);
    } else if (v->is_number_integer()) {
      int64_t x = v->get<int64_t>();
      if (x < 0 || uint64_t(x) > std::numeric_limits<T>::max()) bad(k, "is out of range");
      out = T(x);
    } else {
      bad(k, "is not a whole number");
    }
  }
}
void read(const json& o, const char* k, uint64_t& out) { read_uint(o, k, out); }
void read(const json& o, const char* k, uint32_t& out) { read_uint(o, k, out); }

const json* array_at(const json& o, const char* k) {
  const json* v = find(o, k);
  if (!v) return nullptr;
  if (!v->is_array()) bad(k, "is not an array");
  if (v->size() > kMaxItems) bad(k, "has too many elements");
  return v;
}

const json* object_at(const json& o, const char* k) {
  const json* v = find(o, k);
  if (!v) return nullptr;
  if (!v->is_object()) bad(k, "is not an object");
  if (v->size() > kMaxItems) bad(k, "has too many keys");
  return v;
}

void read(const json& o, const char* k, std::vector<std::string>& out) {
  out.clear();
  if (const json* a = array_at(o, k)) {
    out.reserve(a->size());
    for (const json& x : *a) {
      if (!x.is_string()) bad(k, "is not an array of strings");
      out.push_back(x.get_ref<const std::string&>());
    }
  }
}

void read(const json& o, const char* k, std::map<std::string, uint32_t>& out) {
  out.clear();
  if (const json* m = object_at(o, k)) {
    for (auto it = m->begin(); it != m->end(); ++it) {
      uint32_t n = 0;
      read_uint(*m, it.key().c_str(), n);
      out.emplace(it.key(), n);
    }
  }
}

void read_ts(const json& o, const char* k, int64_t& out, bool required) {
  const json* v = find(o, k);
  if (!v) {
    if (required) bad(k, "is missing");
    return;
  }
  if (!v->is_string()) bad(k, "is not a string");
  auto t = parse_iso_time_us(v->get_ref<const std::string&>());
  if (!t) bad(k, "is not an ISO 8601 time with a zone");
  // 1970 to 9999: what to_json writes back as it was read.
  if (*t < 0 || *t > kLastTimeUs) bad(k, "is out of range");
  out = *t;
}

int read_version(const json& o) {
  const json* v = find(o, "v");
  if (!v) return 1;  // written before "v" existed: the same keys as version 1
  if (!v->is_number_integer() || v->get<int64_t>() < 1) bad("v", "is not a version number");
  int64_t n = v->get<int64_t>();
  if (n > kVersion)
    throw Bad{"version " + std::to_string(n) + " is newer than this reader's (" + std::to_string(kVersion) + ")", true};
  return int(n);
}

// The element of an array of objects, or Bad.
const json& element(const json& x, const char* k) {
  if (!x.is_object()) bad(k, "is not an array of objects");
  return x;
}

void read_mime(const json& j, MimePart& m) {
  read(j, "from", m.from);
  read(j, "from_name", m.from_name);
  read(j, "to", m.to);
  read(j, "cc", m.cc);
  read(j, "reply_to", m.reply_to);
  read(j, "subject", m.subject);
  read(j, "message_id", m.message_id);
  read(j, "date", m.date);
  read(j, "charset_errors", m.charset_errors);
  read(j, "header_fields", m.header_fields);
  read(j, "headers_truncated", m.headers_truncated);
  read(j, "parts", m.parts);
  read(j, "urls", m.urls);
  if (const json* a = array_at(j, "attachments")) {
    m.attachments.reserve(a->size());
    for (const json& x : *a) {
      const json& o = element(x, "attachments");
      Attachment t;
      read(o, "name", t.name);
      read(o, "type", t.type);
      read(o, "sniffed_type", t.sniffed_type);
      read(o, "size", t.size);
      read(o, "sha256", t.sha256);
      read(o, "macros", t.macros);
      read(o, "encrypted", t.encrypted);
      read(o, "executable", t.executable);
      read(o, "double_extension", t.double_extension);
      read(o, "rtlo", t.rtlo);
      read(o, "archive_entries", t.archive_entries);
      read(o, "depth", t.depth);
      read(o, "unpacked_bytes", t.unpacked_bytes);
      if (find(o, "budget_exceeded")) read(o, "budget_exceeded", t.budget_exceeded.emplace());
      m.attachments.push_back(std::move(t));
    }
  }
  read(j, "mime_anomalies", m.anomalies);
  if (const json* a = array_at(j, "leaves")) {
    m.leaves.reserve(a->size());
    for (const json& x : *a) {
      const json& o = element(x, "leaves");
      Leaf l;
      read(o, "type", l.type);
      read(o, "charset", l.charset);
      read(o, "encoding", l.encoding);
      read(o, "filename", l.filename);
      read(o, "size", l.size);
      read(o, "sha256", l.sha256);
      read(o, "text_sha256", l.text_sha256);
      read(o, "depth", l.depth);
      read(o, "text", l.text);
      m.leaves.push_back(std::move(l));
    }
  }
}

// The MIME engine's keys: any of them present means the part was written.
bool has_mime(const json& j) {
  for (const char* k : {"from", "from_name", "to", "cc", "reply_to", "subject", "message_id", "date",
                        "charset_errors", "header_fields", "headers_truncated", "parts", "urls", "attachments",
                        "mime_anomalies", "leaves"})
    if (j.contains(k)) return true;
  return false;
}

void read_verdict(const json& o, EventVerdict& v) {
  if (const json* a = find(o, "action")) {
    if (!a->is_string() || !verdict::action_from_name(a->get_ref<const std::string&>(), v.action))
      bad("action", "is not a verdict action");
  }
  read(o, "rule", v.rule);
  if (o.contains("score") || o.contains("rules") || o.contains("sender_class") || o.contains("categories")) {
    ContentScan& s = v.scan.emplace();
    if (const json* x = find(o, "score")) {
      if (!x->is_number()) bad("score", "is not a number");
      s.score = x->get<double>();
    } else if (o.contains("score")) {
      s.score = std::nan("");  // the writer's NaN is JSON null
    }
    if (const json* a = array_at(o, "rules")) {
      s.rules.reserve(a->size());
      for (const json& x : *a) {
        const json& h = element(x, "rules");
        RuleHit r;
        read(h, "rule", r.rule);
        read(h, "context", r.context);
        s.rules.push_back(std::move(r));
      }
    }
    read(o, "sender_class", s.sender_class);
    read(o, "categories", s.categories);
  }
}

// Whether o is an object of that "type".
void check_type(const json& o, const char* type) {
  if (!o.is_object()) throw Bad{"not a JSON object"};
  const json* t = find(o, "type");
  if (!t || !t->is_string() || t->get_ref<const std::string&>() != type)
    throw Bad{std::string("not a \"") + type + "\" event"};
}

}  // namespace

json to_json(const RuleHit& h) { return {{"rule", h.rule}, {"context", h.context}}; }

json to_json(const Attachment& a) {
  json j = {{"name", a.name},
            {"type", a.type},
            {"sniffed_type", a.sniffed_type},
            {"size", a.size},
            {"sha256", a.sha256},
            {"macros", a.macros},
            {"encrypted", a.encrypted},
            {"executable", a.executable},
            {"double_extension", a.double_extension},
            {"rtlo", a.rtlo},
            {"archive_entries", a.archive_entries},
            {"depth", a.depth},
            {"unpacked_bytes", a.unpacked_bytes}};
  if (a.budget_exceeded) j["budget_exceeded"] = *a.budget_exceeded;
  return j;
}

void add_mime_json(const MimePart& m, json& j) {
  j["from"] = m.from;
  j["from_name"] = m.from_name;
  j["to"] = m.to;
  j["cc"] = m.cc;
  j["reply_to"] = opt(m.reply_to);
  j["subject"] = m.subject;
  j["message_id"] = m.message_id;
  j["date"] = m.date;
  j["charset_errors"] = m.charset_errors;
  j["header_fields"] = m.header_fields;
  j["headers_truncated"] = m.headers_truncated;
  j["parts"] = m.parts;
  j["urls"] = m.urls;
  json atts = json::array();
  for (const auto& a : m.attachments) atts.push_back(to_json(a));
  j["attachments"] = std::move(atts);
  json an = json::object();
  for (const auto& [k, n] : m.anomalies) an[k] = n;
  j["mime_anomalies"] = std::move(an);
  if (!m.leaves.empty()) {
    json lv = json::array();
    for (const auto& l : m.leaves) lv.push_back(leaf_json(l));
    j["leaves"] = std::move(lv);
  }
}

json to_json(const MessageEvent& e) {
  json j;
  j["type"] = "message";
  j["v"] = e.version;
  j["ts"] = iso_time_us(e.ts_us);
  j["src"] = e.client;
  j["dst"] = e.server;
  j["helo"] = e.helo;
  j["mail_from"] = e.mail_from;
  j["rcpt_to"] = e.rcpt_to;
  j["rcpt_refused"] = e.rcpt_refused;
  j["tls"] = e.tls;
  j["auth"] = opt(e.auth);
  j["size"] = e.size;
  j["sha256"] = opt(e.sha256);
  j["server_reply"] = e.server_reply ? json(*e.server_reply) : json(nullptr);
  j["body_via"] = e.body_via == message::BodyVia::bdat ? "BDAT" : "DATA";
  j["complete"] = e.complete;
  j["gap"] = e.gap;
  if (e.mime) add_mime_json(*e.mime, j);
  json v = {{"action", verdict::action_name(e.verdict.action)}};
  if (!e.verdict.rule.empty()) v["rule"] = e.verdict.rule;
  if (const auto& s = e.verdict.scan) {
    v["score"] = s->score;
    v["rules"] = rule_hits(s->rules);
    v["sender_class"] = s->sender_class;
    v["categories"] = s->categories;
  }
  j["verdict"] = std::move(v);
  if (!e.id.empty()) j["id"] = e.id;
  j["spool"] = opt(e.spool);
  return j;
}

json to_json(const SessionEvent& e) {
  json j;
  j["type"] = "session";
  j["v"] = e.version;
  j["ts"] = iso_time_us(e.ts_us);
  j["end"] = iso_time_us(e.end_us);
  j["src"] = e.client;
  j["dst"] = e.server;
  j["helo"] = e.helo;
  j["greeting"] = e.greeting;
  j["capabilities"] = e.capabilities;
  j["tls"] = e.tls;
  j["auth"] = opt(e.auth);
  j["commands"] = e.commands;
  j["messages"] = e.messages;
  j["gaps"] = e.gaps;
  j["desync"] = opt(e.desync);
  json an = json::object();
  for (const auto& [k, n] : e.anomalies) an[k] = n;
  j["anomalies"] = std::move(an);
  return j;
}

std::string to_line(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::optional<ReadError> from_json(const json& j, MessageEvent& e) {
  try {
    check_type(j, "message");
    e = MessageEvent{};
    e.version = read_version(j);
    read_ts(j, "ts", e.ts_us, true);
    read(j, "src", e.client);
    read(j, "dst", e.server);
    read(j, "helo", e.helo);
    read(j, "mail_from", e.mail_from);
    read(j, "rcpt_to", e.rcpt_to);
    read(j, "rcpt_refused", e.rcpt_refused);
    read(j, "tls", e.tls);
    read(j, "auth", e.auth);
    read(j, "size", e.size);
    read(j, "sha256", e.sha256);
    if (const json* r = find(j, "server_reply")) {
      if (!r->is_number_integer() || r->get<int64_t>() < 0 || r->get<int64_t>() > 999)
        bad("server_reply", "is not a reply code");
      e.server_reply = int(r->get<int64_t>());
    }
    if (const json* b = find(j, "body_via")) {
      if (*b == "BDAT") e.body_via = message::BodyVia::bdat;
      else if (*b == "DATA") e.body_via = message::BodyVia::data;
      else bad("body_via", "is neither \"DATA\" nor \"BDAT\"");
    }
    read(j, "complete", e.complete);
    read(j, "gap", e.gap);
    if (has_mime(j)) read_mime(j, e.mime.emplace());
    if (const json* v = object_at(j, "verdict")) read_verdict(*v, e.verdict);
    read(j, "id", e.id);
    read(j, "spool", e.spool);
  } catch (const Bad& b) {
    return ReadError{b.newer, b.text};
  } catch (const std::exception& x) {  // a bound of the library (allocation): still an answer, not a throw
    return ReadError{false, x.what()};
  }
  return std::nullopt;
}

std::optional<ReadError> from_json(const json& j, SessionEvent& e) {
  try {
    check_type(j, "session");
    e = SessionEvent{};
    e.version = read_version(j);
    read_ts(j, "ts", e.ts_us, true);
    read_ts(j, "end", e.end_us, false);
    read(j, "src", e.client);
    read(j, "dst", e.server);
    read(j, "helo", e.helo);
    read(j, "greeting", e.greeting);
    read(j, "capabilities", e.capabilities);
    read(j, "tls", e.tls);
    read(j, "auth", e.auth);
    read(j, "commands", e.commands);
    read(j, "messages", e.messages);
    read(j, "gaps", e.gaps);
    read(j, "desync", e.desync);
    read(j, "anomalies", e.anomalies);
  } catch (const Bad& b) {
    return ReadError{b.newer, b.text};
  } catch (const std::exception& x) {
    return ReadError{false, x.what()};
  }
  return std::nullopt;
}

std::optional<ReadError> parse_json(std::string_view text, json& out) {
  if (text.size() > kMaxLineBytes) return ReadError{false, "longer than " + std::to_string(kMaxLineBytes) + " bytes"};
  // Bound what the parser will build before it builds it: nesting and the
  // number of values (every value but the first follows a ',' or opens a
  // container's first element).
  size_t depth = 0, values = 1;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > kMaxDepth) return ReadError{false, "nested deeper than " + std::to_string(kMaxDepth)};
        ++values;
        break;
      case ']':
      case '}':
        if (depth) --depth;
        break;
      case ',':
        if (++values > kMaxValues) return ReadError{false, "more than " + std::to_string(kMaxValues) + " values"};
        break;
      default: break;
    }
  }
  try {
    out = json::parse(text, nullptr, false);
  } catch (const std::exception& x) {
    return ReadError{false, x.what()};
  }
  if (out.is_discarded()) return ReadError{false, "not JSON"};
  if (!out.is_object()) return ReadError{false, "not a JSON object"};
  return std::nullopt;
}

LineType read_line(std::string_view line, MessageEvent* message, SessionEvent* session, ReadError& error) {
  json j;
  if (auto err = parse_json(line, j)) {
    error = std::move(*err);
    return LineType::bad;
  }
  auto t = j.find("type");
  if (t == j.end() || !t->is_string()) return LineType::other;
  const std::string& type = t->get_ref<const std::string&>();
  if (type == "message" && message) {
    if (auto err = from_json(j, *message)) {
      error = std::move(*err);
      return LineType::bad;
    }
    return LineType::message;
  }
  if (type == "session" && session) {
    if (auto err = from_json(j, *session)) {
      error = std::move(*err);
      return LineType::bad;
    }
    return LineType::session;
  }
  return LineType::other;
}

}  // namespace sekisho::journal
