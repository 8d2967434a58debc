#include "rules/artifact/artifact.hpp"

#include <cstring>

namespace sekisho::rules {

const char* db_context_name(DbContext c) {
  switch (c) {
    case DbContext::header: return "header";
    case DbContext::body: return "body";
    case DbContext::rawbody: return "rawbody";
    case DbContext::full: return "full";
    case DbContext::uri: return "uri";
    case DbContext::mail_from: return "mail_from";
    case DbContext::rcpt_to: return "rcpt_to";
    case DbContext::helo: return "helo";
    case DbContext::attachment_name: return "attachment_name";
    case DbContext::attachment_type: return "attachment_type";
    case DbContext::attachment_sniffed: return "attachment_sniffed";
    case DbContext::from_name: return "from_name";
    case DbContext::mime_header: return "mimeheader";
  }
  return "?";
}

std::string sha256_hex(const std::array<uint8_t, 32>& d) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (uint8_t b : d) {
    s += hex[b >> 4];
    s += hex[b & 15];
  }
  return s;
}

namespace {

class Writer {
 public:
  std::string out;
  void u8(uint8_t v) { out += static_cast<char>(v); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  }
  void f64(double d) {
    uint64_t v;
    memcpy(&v, &d, 8);
    u64(v);
  }
  void str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    out += s;
  }
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}
  bool ok = true;
  bool u8(uint8_t& v) {
    if (!need(1)) return false;
    v = b_[p_++];
    return true;
  }
  bool u32(uint32_t& v) {
    if (!need(4)) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(b_[p_ + i]) << (8 * i);
    p_ += 4;
    return true;
  }
  bool u64(uint64_t& v) {
    if (!need(8)) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(b_[p_ + i]) << (8 * i);
    p_ += 8;
    return true;
  }
  bool f64(double& d) {
    uint64_t v;
    if (!u64(v)) return false;
    memcpy(&d, &v, 8);
    return true;
  }
  bool str(std::string& s) {
    uint32_t n;
    if (!u32(n) || !need(n)) return false;
    s.assign(reinterpret_cast<const char*>(b_.data() + p_), n);
    p_ += n;
    return true;
  }
  // A count of items each taking at least |min_size| bytes (bounds allocations).
  bool count(uint32_t& n, size_t min_size) {
    if (!u32(n)) return false;
    if (static_cast<uint64_t>(n) * min_size > b_.size() - p_) return ok = false;
    return true;
  }
  bool raw(void* dst, size_t n) {
    if (!need(n)) return false;
    memcpy(dst, b_.data() + p_, n);
    p_ += n;
    return true;
  }
  bool at_end() const { return p_ == b_.size(); }
  bool ref(std::span<const uint8_t>& out) {
    uint32_t n;
    if (!u32(n) || !need(n)) return false;
    out = b_.subspan(p_, n);
    p_ += n;
    return true;
  }

 private:
  bool need(size_t n) {
    if (!ok || b_.size() - p_ < n) return ok = false;
    return true;
  }
  std::span<const uint8_t> b_;
  size_t p_ = 0;
};

}  // namespace

std::string write_artifact(const Artifact& a) {
  Writer w;
  w.out.append(kArtifactMagic, 8);
  w.u32(a.format);
  w.str(a.version);
  w.out.append(reinterpret_cast<const char*>(a.source_sha256.data()), 32);
  w.u32(static_cast<uint32_t>(a.rules.size()));
  for (const auto& r : a.rules) {
    w.str(r.name);
    w.str(r.describe);
    w.str(r.unsupported);
    w.str(r.file);
    w.u32(r.line);
    w.u8(static_cast<uint8_t>(r.kind));
    w.u8(r.flags);
    w.u8(r.form);
    w.u8(r.negate);
    w.u8(static_cast<uint8_t>(r.action));
    w.u8(static_cast<uint8_t>(r.confirm));
    w.u32(r.db);
    w.u32(r.source);
    w.u32(r.pcre);
    w.u32(r.maxhits);
    w.u64(r.size_over);
    for (double s : r.score) w.f64(s);
    w.u32(r.meta_begin);
    w.u32(r.meta_len);
    w.u32(static_cast<uint32_t>(r.categories.size()));
    for (uint32_t c : r.categories) w.u32(c);
    w.u8(r.arg);
    w.f64(r.value);
    w.u8(r.decides);
    w.u8(static_cast<uint8_t>(r.decision));
    w.str(r.reply);
  }
  w.u32(static_cast<uint32_t>(a.meta_order.size()));
  for (uint32_t i : a.meta_order) w.u32(i);
  w.u32(static_cast<uint32_t>(a.meta_code.size()));
  for (const auto& m : a.meta_code) {
    w.u8(static_cast<uint8_t>(m.op));
    w.u32(m.rule);
    w.f64(m.value);
  }
  w.u32(a.meta_depth);
  w.u32(static_cast<uint32_t>(a.decide_order.size()));
  for (uint32_t i : a.decide_order) w.u32(i);
  w.u32(static_cast<uint32_t>(a.header_sources.size()));
  for (const auto& h : a.header_sources) {
    w.str(h.name);
    w.u8(static_cast<uint8_t>(h.form));
    w.u8(h.has_unset);
    w.str(h.unset);
    w.u32(h.db);
  }
  w.u32(static_cast<uint32_t>(a.lists.size()));
  for (const auto& l : a.lists) {
    w.str(l.name);
    w.u8(static_cast<uint8_t>(l.type));
    w.u32(static_cast<uint32_t>(l.entries.size()));
    for (const auto& e : l.entries) w.str(e);
  }
  w.u32(static_cast<uint32_t>(a.brands.size()));
  for (const auto& b : a.brands) {
    w.str(b.name);
    w.u32(static_cast<uint32_t>(b.domains.size()));
    for (const auto& d : b.domains) w.str(d);
  }
  w.u32(static_cast<uint32_t>(a.classes.size()));
  for (const auto& c : a.classes) {
    w.u8(static_cast<uint8_t>(c.first));
    w.u32(c.second);
  }
  for (double t : a.thresholds) w.f64(t);
  w.u32(static_cast<uint32_t>(a.categories.size()));
  for (const auto& c : a.categories) w.str(c);
  w.u32(static_cast<uint32_t>(a.pcres.size()));
  for (const auto& p : a.pcres) {
    w.str(p.pattern);
    w.u32(p.options);
  }
  w.str(a.pcre_blob);
  w.u32(static_cast<uint32_t>(a.dbs.size()));
  for (const auto& d : a.dbs) {
    w.u8(static_cast<uint8_t>(d.context));
    w.u32(d.source);
    w.u32(d.patterns);
    w.str(d.blob);
  }
  return std::move(w.out);
}

bool read_artifact(std::span<const uint8_t> bytes, Artifact& a, std::string& error) {
  a = Artifact{};
  Reader r(bytes);
  char magic[8];
  if (!r.raw(magic, 8) || memcmp(magic, kArtifactMagic, 8) != 0) {
    error = "not a Sekisho ruleset artifact (bad magic)";
    return false;
  }
  if (!r.u32(a.format) || a.format < 1 || a.format > kArtifactFormat) {
    error = "unsupported artifact format version " + std::to_string(a.format);
    return false;
  }
  r.str(a.version);
  r.raw(a.source_sha256.data(), 32);
  uint32_t n = 0;
  auto bad = [&](const char* what) {
    error = std::string("corrupt artifact: ") + what;
    return false;
  };
  if (!r.count(n, 60)) return bad("rule table");
  a.rules.resize(n);
  for (auto& x : a.rules) {
    uint8_t kind = 0, flags = 0, form = 0, neg = 0, act = 0, conf = 0;
    r.str(x.name);
    r.str(x.describe);
    r.str(x.unsupported);
    r.str(x.file);
    r.u32(x.line);
    r.u8(kind);
    r.u8(flags);
    r.u8(form);
    r.u8(neg);
    r.u8(act);
    r.u8(conf);
    r.u32(x.db);
    r.u32(x.source);
    r.u32(x.pcre);
    r.u32(x.maxhits);
    r.u64(x.size_over);
    for (double& s : x.score) r.f64(s);
    r.u32(x.meta_begin);
    r.u32(x.meta_len);
    uint32_t nc = 0;
    if (!r.count(nc, 4)) return bad("rule categories");
    x.categories.resize(nc);
    for (auto& c : x.categories) r.u32(c);
    uint8_t decides = 0, decision = 0;
    if (a.format >= 2) {
      r.u8(x.arg);
      r.f64(x.value);
      r.u8(decides);
      r.u8(decision);
      r.str(x.reply);
    }
    if (!r.ok) return bad("rule table");
    if (kind > static_cast<uint8_t>(RuleKind::scored) || act > 3 || conf > 2 || decides > 1 || decision > 4)
      return bad("rule enum");
    x.decides = decides != 0;
    x.decision = static_cast<Action>(decision);
    x.kind = static_cast<RuleKind>(kind);
    x.flags = flags;
    x.form = form;
    x.negate = neg != 0;
    x.action = static_cast<Action>(act);
    x.confirm = static_cast<Confirm>(conf);
  }
  if (!r.count(n, 4)) return bad("meta order");
  a.meta_order.resize(n);
  for (auto& i : a.meta_order) r.u32(i);
  if (!r.count(n, 13)) return bad("meta code");
  a.meta_code.resize(n);
  for (auto& m : a.meta_code) {
    uint8_t op = 0;
    r.u8(op);
    r.u32(m.rule);
    r.f64(m.value);
    if (op > static_cast<uint8_t>(MetaOp::ne)) return bad("meta op");
    m.op = static_cast<MetaOp>(op);
  }
  r.u32(a.meta_depth);
  if (a.format >= 2) {
    if (!r.count(n, 4)) return bad("decide order");
    a.decide_order.resize(n);
    for (auto& i : a.decide_order) r.u32(i);
  }
  if (!r.count(n, 14)) return bad("header sources");
  a.header_sources.resize(n);
  for (auto& h : a.header_sources) {
    uint8_t form = 0, unset = 0;
    r.str(h.name);
    r.u8(form);
    r.u8(unset);
    r.str(h.unset);
    r.u32(h.db);
    if (form > 3) return bad("header form");
    h.form = static_cast<HeaderForm>(form);
    h.has_unset = unset != 0;
  }
  if (!r.count(n, 9)) return bad("lists");
  a.lists.resize(n);
  for (auto& l : a.lists) {
    uint8_t t = 0;
    r.str(l.name);
    r.u8(t);
    if (t > 4) return bad("list type");
    l.type = static_cast<ListType>(t);
    uint32_t ne = 0;
    if (!r.count(ne, 4)) return bad("list entries");
    l.entries.resize(ne);
    for (auto& e : l.entries) r.str(e);
  }
  if (!r.count(n, 8)) return bad("brands");
  a.brands.resize(n);
  for (auto& b : a.brands) {
    r.str(b.name);
    uint32_t nd = 0;
    if (!r.count(nd, 4)) return bad("brand domains");
    b.domains.resize(nd);
    for (auto& d : b.domains) r.str(d);
  }
  if (!r.count(n, 5)) return bad("classes");
  a.classes.resize(n);
  for (auto& c : a.classes) {
    uint8_t k = 0;
    r.u8(k);
    r.u32(c.second);
    if (k > 5) return bad("class");
    c.first = static_cast<SenderClass>(k);
  }
  for (double& t : a.thresholds) r.f64(t);
  if (!r.count(n, 4)) return bad("categories");
  a.categories.resize(n);
  for (auto& c : a.categories) r.str(c);
  if (!r.count(n, 8)) return bad("pcre table");
  a.pcres.resize(n);
  for (auto& p : a.pcres) {
    r.str(p.pattern);
    r.u32(p.options);
  }
  r.str(a.pcre_blob);
  if (!r.count(n, 13)) return bad("databases");
  a.dbs.resize(n);
  for (auto& d : a.dbs) {
    uint8_t c = 0;
    r.u8(c);
    r.u32(d.source);
    r.u32(d.patterns);
    r.ref(d.blob_ref);
    if (c > static_cast<uint8_t>(DbContext::mime_header)) return bad("database context");
    d.context = static_cast<DbContext>(c);
  }
  if (!r.ok) return bad("truncated");
  if (!r.at_end()) return bad("trailing bytes");
  // Cross-references.
  const uint32_t nr = static_cast<uint32_t>(a.rules.size());
  for (auto& x : a.rules) {
    if (x.db != kNone && x.db >= a.dbs.size()) return bad("rule database index");
    if (x.pcre != kNone && x.pcre >= a.pcres.size()) return bad("rule pcre index");
    if ((x.kind == RuleKind::header || x.kind == RuleKind::exists || x.kind == RuleKind::mimeheader) && x.source != kNone &&
        x.source >= a.header_sources.size())
      return bad("rule header source");
    if (x.kind == RuleKind::listed && x.source != kNone && x.source >= a.lists.size()) return bad("rule list");
    if (static_cast<uint64_t>(x.meta_begin) + x.meta_len > a.meta_code.size()) return bad("meta range");
    for (uint32_t c : x.categories)
      if (c >= a.categories.size()) return bad("category index");
  }
  for (auto& m : a.meta_code)
    if (m.op == MetaOp::rule && m.rule >= nr) return bad("meta rule index");
  for (uint32_t i : a.meta_order)
    if (i >= nr) return bad("meta order index");
  for (uint32_t i : a.decide_order)
    if (i >= nr || !a.rules[i].decides) return bad("decide order index");
  for (auto& x : a.rules) {
    if (x.kind == RuleKind::compare && ((x.form > 5) || (x.arg & 0x7f) > 5)) return bad("compare field");
    if (x.kind == RuleKind::count && x.form > 1) return bad("count field");
    if (x.kind == RuleKind::scored && x.form > 5) return bad("scored operator");
    if (x.kind == RuleKind::listed && x.form > static_cast<uint8_t>(ListSource::rcpt_address)) return bad("list source");
  }
  for (auto& h : a.header_sources)
    if (h.db != kNone && h.db >= a.dbs.size()) return bad("header source database");
  for (auto& c : a.classes)
    if (c.second != kNone && c.second >= a.lists.size()) return bad("class list");
  if (a.meta_depth > 100000) return bad("meta depth");
  return true;
}

}  // namespace sekisho::rules
