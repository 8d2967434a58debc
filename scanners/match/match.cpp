#include "scanners/match/match.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <hs/hs.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "scanners/match/received.hpp"
#include "scanners/mime/address.hpp"
#include "rules/lang/meta.hpp"

namespace sekisho::match {

using rules::ArtifactRule;
using rules::Confirm;
using rules::DbContext;
using rules::HeaderForm;
using rules::kNone;
using rules::ListSource;
using rules::ListType;
using rules::RuleKind;

namespace {

constexpr int kStreams = 3;  // body, rawbody, full
constexpr int kContexts = 13;
int stream_slot(DbContext c) {
  return c == DbContext::body ? 0 : c == DbContext::rawbody ? 1 : c == DbContext::full ? 2 : -1;
}
constexpr DbContext kStreamCtx[kStreams] = {DbContext::body, DbContext::rawbody, DbContext::full};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (tolower(static_cast<unsigned char>(a[i])) != tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

struct Cidr {
  int family = 0;
  unsigned char addr[16]{};
  int len = 0;
};

bool parse_ip(std::string_view s, int& family, unsigned char* out) {
  char buf[64];
  if (s.size() >= sizeof buf) return false;
  memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  if (inet_pton(AF_INET, buf, out) == 1) {
    family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, buf, out) == 1) {
    family = AF_INET6;
    return true;
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------- Ruleset

struct Ruleset::Impl {
  std::vector<hs_database_t*> dbs;
  std::vector<pcre2_code*> pcres;
  pcre2_match_context* mctx = nullptr;
  std::vector<uint32_t> ctx_dbs[kContexts];          // non-header contexts
  std::vector<std::vector<uint32_t>> source_dbs;     // header sources -> header dbs
  std::vector<std::vector<uint32_t>> mime_dbs;       // header sources -> mimeheader dbs
  std::vector<uint32_t> mime_sources;                // sources with mimeheader dbs
  std::vector<std::string> labels;                   // per rule
  bool stream_pcre[kStreams] = {false, false, false};
  std::vector<uint32_t> exists_rules, listed_rules, spoof_rules, attach_flag_rules;
  std::vector<uint32_t> compare_rules, count_rules, classed_rules, scored_rules;
  std::vector<std::vector<Cidr>> ip_lists;           // by list index (ip lists only)
  bool need_relays = false;                          // X-Spam-Relays-* or ALL-TRUSTED & co. are scanned
  ~Impl() {
    for (auto* d : dbs) hs_free_database(d);
    for (auto* c : pcres) pcre2_code_free(c);
    if (mctx) pcre2_match_context_free(mctx);
  }
};

Ruleset::Ruleset() : impl_(std::make_unique<Impl>()) {}
Ruleset::~Ruleset() = default;

uint32_t Ruleset::find(std::string_view name) const {
  for (uint32_t i = 0; i < a_.rules.size(); ++i)
    if (a_.rules[i].name == name) return i;
  return kNone;
}

std::unique_ptr<Ruleset> Ruleset::load(const std::string& path, std::string& error) {
  // mmap: the Hyperscan blobs are copied once, straight from the page cache.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = path + ": cannot read: " + strerror(errno);
    return nullptr;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || sb.st_size <= 0) {
    close(fd);
    error = path + ": empty or unreadable";
    return nullptr;
  }
  size_t size = static_cast<size_t>(sb.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) {
    error = path + ": mmap failed: " + strerror(errno);
    return nullptr;
  }
  std::span<const uint8_t> bytes(static_cast<const uint8_t*>(map), size);
  auto rs = load_bytes(bytes, error);
  munmap(map, size);
  if (!rs) error = path + ": " + error;
  return rs;
}

std::unique_ptr<Ruleset> Ruleset::load_bytes(std::span<const uint8_t> bytes, std::string& error) {
  std::unique_ptr<Ruleset> rs(new Ruleset());
  rules::Artifact& a = rs->a_;
  if (!rules::read_artifact(bytes, a, error)) return nullptr;
  // The blobs point into |bytes|: they are copied into Hyperscan below and forgotten.
  Impl& im = *rs->impl_;
  im.dbs.reserve(a.dbs.size());
  im.source_dbs.resize(a.header_sources.size());
  im.mime_dbs.resize(a.header_sources.size());
  for (size_t i = 0; i < a.dbs.size(); ++i) {
    const auto& d = a.dbs[i];
    hs_database_t* db = nullptr;
    const char* blob = d.blob_ref.empty() ? d.blob.data() : reinterpret_cast<const char*>(d.blob_ref.data());
    size_t blob_len = d.blob_ref.empty() ? d.blob.size() : d.blob_ref.size();
    if (hs_deserialize_database(blob, blob_len, &db) != HS_SUCCESS) {
      error = "database " + std::to_string(i) + " (" + rules::db_context_name(d.context) +
              ") does not deserialize (built for another Hyperscan version or platform?)";
      return nullptr;
    }
    im.dbs.push_back(db);
    uint32_t di = static_cast<uint32_t>(i);
    if (d.context == DbContext::header && d.source < a.header_sources.size()) {
      const std::string& n = a.header_sources[d.source].name;
      if (n.rfind("x-spam-relays-", 0) == 0 || n.rfind("all-", 0) == 0) im.need_relays = true;
    }
    if (d.context == DbContext::header || d.context == DbContext::mime_header) {
      if (d.source >= a.header_sources.size()) {
        error = "database header source out of range";
        return nullptr;
      }
      (d.context == DbContext::header ? im.source_dbs : im.mime_dbs)[d.source].push_back(di);
      if (d.context == DbContext::mime_header &&
          std::find(im.mime_sources.begin(), im.mime_sources.end(), d.source) == im.mime_sources.end())
        im.mime_sources.push_back(d.source);
    } else {
      im.ctx_dbs[static_cast<int>(d.context)].push_back(di);
    }
  }
  // Hyperscan ids must be rule indexes (brand indexes for from_name).
  for (const auto& r : a.rules)
    if (r.db != kNone && a.dbs[r.db].context == DbContext::from_name) {
      error = "rule in the brand database";
      return nullptr;
    }
  if (!a.pcres.empty()) {
    std::vector<pcre2_code*> codes(a.pcres.size(), nullptr);
    int32_t n = pcre2_serialize_decode(codes.data(), static_cast<int32_t>(codes.size()),
                                       reinterpret_cast<const uint8_t*>(a.pcre_blob.data()), nullptr);
    if (n != static_cast<int32_t>(codes.size())) {
      for (auto* c : codes)
        if (c) pcre2_code_free(c);
      error = "PCRE2 confirmations do not decode (another PCRE2 build?)";
      return nullptr;
    }
    im.pcres = std::move(codes);
  }
  for (auto& d : a.dbs) d.blob_ref = {};
  im.mctx = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(im.mctx, 2000000);
  pcre2_set_depth_limit(im.mctx, 10000);
  pcre2_set_heap_limit(im.mctx, 64 * 1024);  // KiB
  im.labels.resize(a.rules.size());
  for (uint32_t i = 0; i < a.rules.size(); ++i) {
    const ArtifactRule& r = a.rules[i];
    std::string& l = im.labels[i];
    switch (r.kind) {
      case RuleKind::header:
      case RuleKind::exists:
      case RuleKind::mimeheader:
        l = r.kind == RuleKind::mimeheader ? "mimeheader" : "header";
        if (r.source != kNone) {
          const auto& h = a.header_sources[r.source];
          l += ":" + h.name;
          if (h.form == HeaderForm::raw) l += ":raw";
          if (h.form == HeaderForm::addr) l += ":addr";
          if (h.form == HeaderForm::name) l += ":name";
        }
        if (r.kind == RuleKind::exists) l = "exists:" + l.substr(7);
        break;
      case RuleKind::envelope:
        l = std::string("envelope:") + (r.form == 0 ? "mail_from" : r.form == 1 ? "rcpt_to" : "helo");
        break;
      case RuleKind::attachment: {
        static const char* f[] = {"name", "type", "sniffed", "macros", "encrypted", "size", "budget_exceeded"};
        l = std::string("attachment:") + (r.form < std::size(f) ? f[r.form] : "?");
        break;
      }
      case RuleKind::listed: l = "listed:" + (r.source != kNone ? a.lists[r.source].name : std::string()); break;
      case RuleKind::count: l = r.form == 0 ? "count:rcpt_to" : "count:to_cc"; break;
      default: l = rules::kind_name(r.kind); break;
    }
    if (!(r.flags & rules::flag_active)) continue;
    if (r.db != kNone && r.pcre != kNone) {
      int s = stream_slot(a.dbs[r.db].context);
      if (s >= 0) im.stream_pcre[s] = true;
    }
    if (r.kind == RuleKind::exists) im.exists_rules.push_back(i);
    if (r.kind == RuleKind::listed) im.listed_rules.push_back(i);
    if (r.kind == RuleKind::spoof) im.spoof_rules.push_back(i);
    if (r.kind == RuleKind::attachment && r.db == kNone) im.attach_flag_rules.push_back(i);
    if (r.kind == RuleKind::compare) im.compare_rules.push_back(i);
    if (r.kind == RuleKind::count) im.count_rules.push_back(i);
    if (r.kind == RuleKind::classed) im.classed_rules.push_back(i);
    if (r.kind == RuleKind::scored) im.scored_rules.push_back(i);
  }
  im.ip_lists.resize(a.lists.size());
  for (size_t i = 0; i < a.lists.size(); ++i) {
    if (a.lists[i].type != ListType::ip) continue;
    for (const auto& e : a.lists[i].entries) {
      size_t sl = e.find('/');
      Cidr c;
      if (sl == std::string::npos || !parse_ip(std::string_view(e).substr(0, sl), c.family, c.addr)) continue;
      c.len = atoi(e.c_str() + sl + 1);
      im.ip_lists[i].push_back(c);
    }
  }
  return rs;
}

// ---------------------------------------------------------------- Scratch

struct Scratch::State {
  const Ruleset* rs = nullptr;
  const ArtifactRule* rules = nullptr;
  ScratchLimits lim;
  hs_scratch_t* hs = nullptr;
  std::vector<hs_stream_t*> streams;  // by database index
  pcre2_match_data* md = nullptr;

  // Per message.
  std::vector<uint32_t> counts;
  std::vector<uint8_t> cand;
  std::vector<uint32_t> stream_cands[kStreams];
  std::vector<uint32_t> block_cands;
  std::vector<double> values, stack;
  std::vector<uint8_t> brand_hit, cat_seen;
  std::string arena;  // header names/values, envelope, client ip (never grows past its reserve)
  struct Field {
    uint32_t name_off, name_len, raw_off, raw_len, dec_off, dec_len;
  };
  std::vector<Field> fields;
  std::vector<std::pair<uint32_t, uint32_t>> rcpts;
  std::pair<uint32_t, uint32_t> mail_from{0, 0}, helo{0, 0}, client{0, 0};
  bool envelope_seen = false;
  std::string value;  // a header source's value being scanned
  RelayParser relay_parser;
  Relays relays;      // X-Spam-Relays-* of the message (built in finish() when a rule needs them)
  std::vector<uint8_t> retained[kStreams];
  bool started[kStreams] = {false, false, false};
  bool retained_cut[kStreams] = {false, false, false};
  uint64_t body_offset = 0;  // where the body text starts after "Subject\n"
  int cur_stream = -1;
  bool in_brands = false;
  bool truncated = false;
  uint32_t unconfirmed = 0;

  std::string_view view(std::pair<uint32_t, uint32_t> r) const { return {arena.data() + r.first, r.second}; }
  // Copies into the arena; false (and truncated) when it does not fit.
  bool keep(std::string_view s, std::pair<uint32_t, uint32_t>& out) {
    if (arena.capacity() - arena.size() < s.size()) {
      truncated = true;
      out = {0, 0};
      return false;
    }
    out = {static_cast<uint32_t>(arena.size()), static_cast<uint32_t>(s.size())};
    arena.append(s);
    return true;
  }
  void reset() {
    std::fill(counts.begin(), counts.end(), 0);
    std::fill(cand.begin(), cand.end(), 0);
    for (auto& c : stream_cands) c.clear();
    block_cands.clear();
    std::fill(brand_hit.begin(), brand_hit.end(), 0);
    arena.clear();
    fields.clear();
    rcpts.clear();
    mail_from = helo = client = {0, 0};
    envelope_seen = false;
    for (int s = 0; s < kStreams; ++s) {
      retained[s].clear();
      started[s] = false;
      retained_cut[s] = false;
    }
    body_offset = 0;
    cur_stream = -1;
    in_brands = false;
    truncated = false;
    unconfirmed = 0;
  }
};

Scratch::Scratch(const Ruleset& rs, ScratchLimits limits) : st_(std::make_unique<State>()) {
  State& s = *st_;
  s.rs = &rs;
  s.rules = rs.artifact().rules.data();
  s.lim = limits;
  const auto& im = rs.impl();
  for (auto* db : im.dbs)
    if (hs_alloc_scratch(db, &s.hs) != HS_SUCCESS) return;
  s.streams.assign(im.dbs.size(), nullptr);
  for (size_t i = 0; i < im.dbs.size(); ++i) {
    if (!rules::is_stream(rs.artifact().dbs[i].context)) continue;
    if (hs_open_stream(im.dbs[i], 0, &s.streams[i]) != HS_SUCCESS) return;
  }
  s.md = pcre2_match_data_create(1, nullptr);
  size_t n = rs.rule_count();
  s.counts.assign(n, 0);
  s.cand.assign(n, 0);
  for (auto& c : s.stream_cands) c.reserve(n);
  s.block_cands.reserve(n);
  s.values.assign(n, 0);
  s.stack.assign(rs.artifact().meta_depth + 2, 0);
  s.brand_hit.assign(rs.artifact().brands.size(), 0);
  s.cat_seen.assign(rs.artifact().categories.size(), 0);
  s.arena.reserve(limits.header_bytes);
  s.value.reserve(limits.header_bytes);
  if (im.need_relays) s.relays.reserve(64 * 1024);
  s.fields.reserve(limits.max_headers);
  s.rcpts.reserve(1024);
  for (int k = 0; k < kStreams; ++k)
    if (im.stream_pcre[k]) s.retained[k].reserve(limits.retain_bytes);
  ok_ = s.hs != nullptr || im.dbs.empty();
  ok_ = ok_ && s.md != nullptr;
}

Scratch::~Scratch() {
  State& s = *st_;
  for (auto* st : s.streams)
    if (st) hs_close_stream(st, s.hs, nullptr, nullptr);
  if (s.hs) hs_free_scratch(s.hs);
  if (s.md) pcre2_match_data_free(s.md);
}

// ---------------------------------------------------------------- scanning

namespace {

using State = Scratch::State;

int on_match(unsigned int id, unsigned long long, unsigned long long, unsigned int, void* ctx) {
  State& st = *static_cast<State*>(ctx);
  if (st.in_brands) {
    if (id < st.brand_hit.size()) st.brand_hit[id] = 1;
    return 0;
  }
  if (id >= st.counts.size()) return 0;
  const ArtifactRule& r = st.rules[id];
  if (!(r.flags & rules::flag_active)) return 0;
  if (r.confirm != Confirm::none) {
    if (!st.cand[id]) {
      st.cand[id] = 1;
      auto& list = st.cur_stream >= 0 ? st.stream_cands[st.cur_stream] : st.block_cands;
      if (list.size() < list.capacity()) list.push_back(id);
    }
    return 0;
  }
  ++st.counts[id];
  return 0;
}

// PCRE2 on |data| from |start|: confirms a candidate or counts matches as
// Perl's while (//g) does (an empty match advances by one byte).
void confirm(State& st, uint32_t id, const uint8_t* data, size_t len, size_t start) {
  const ArtifactRule& r = st.rules[id];
  const auto& im = st.rs->impl();
  pcre2_code* code = im.pcres[r.pcre];
  if (r.confirm == Confirm::exists) {
    int rc = pcre2_match(code, data, len, start, 0, st.md, im.mctx);
    if (rc >= 0) ++st.counts[id];
    else if (rc != PCRE2_ERROR_NOMATCH) ++st.unconfirmed;
    return;
  }
  uint32_t cap = r.maxhits ? r.maxhits : 10000;
  size_t pos = start;
  while (st.counts[id] < cap && pos <= len) {
    int rc = pcre2_match(code, data, len, pos, 0, st.md, im.mctx);
    if (rc < 0) {
      if (rc != PCRE2_ERROR_NOMATCH) ++st.unconfirmed;
      break;
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
    ++st.counts[id];
    pos = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
  }
}

void block_scan(State& st, const std::vector<uint32_t>& dbs, std::string_view data) {
  if (dbs.empty()) return;
  const auto& im = st.rs->impl();
  st.cur_stream = -1;
  for (uint32_t d : dbs)
    hs_scan(im.dbs[d], data.data(), static_cast<unsigned>(std::min<size_t>(data.size(), UINT32_MAX)), 0, st.hs,
            on_match, &st);
  for (uint32_t id : st.block_cands) {
    confirm(st, id, reinterpret_cast<const uint8_t*>(data.data()), data.size(), 0);
    st.cand[id] = 0;
  }
  st.block_cands.clear();
}

void stream_feed(State& st, int s, const uint8_t* data, size_t len);

void start_stream(State& st, int s) {
  if (st.started[s]) return;
  st.started[s] = true;
  if (s != 0) return;
  // body: the decoded Subject first, as SpamAssassin does.
  for (const auto& f : st.fields) {
    if (!iequals(std::string_view(st.arena.data() + f.name_off, f.name_len), "subject")) continue;
    stream_feed(st, 0, reinterpret_cast<const uint8_t*>(st.arena.data() + f.dec_off), f.dec_len);
    break;
  }
  stream_feed(st, 0, reinterpret_cast<const uint8_t*>("\n"), 1);
  st.body_offset = 0;
  for (const auto& f : st.fields)
    if (iequals(std::string_view(st.arena.data() + f.name_off, f.name_len), "subject")) {
      st.body_offset = f.dec_len;
      break;
    }
  st.body_offset += 1;
}

void stream_feed(State& st, int s, const uint8_t* data, size_t len) {
  if (len == 0) return;
  const auto& im = st.rs->impl();
  if (im.stream_pcre[s]) {
    auto& r = st.retained[s];
    size_t room = r.capacity() - r.size();
    size_t take = std::min(room, len);
    r.insert(r.end(), data, data + take);
    if (take < len) st.retained_cut[s] = true;
  }
  st.cur_stream = s;
  for (uint32_t d : im.ctx_dbs[static_cast<int>(kStreamCtx[s])]) {
    const char* p = reinterpret_cast<const char*>(data);
    size_t left = len;
    while (left) {  // Hyperscan takes 32-bit lengths
      unsigned n = static_cast<unsigned>(std::min<size_t>(left, 1u << 30));
      hs_scan_stream(st.streams[d], p, n, 0, st.hs, on_match, &st);
      p += n;
      left -= n;
    }
  }
  st.cur_stream = -1;
}

// SpamAssassin's :name presentation of a display name rendered at the end of
// |out| from |from|: every white space run one space, one level of single
// quotes off ('Foo Blah' -> Foo Blah), as PerMsgStatus::_get does. In place.
void sa_name_tidy(std::string& out, size_t from) {
  size_t w = from;
  bool space = false;
  for (size_t r = from; r < out.size(); ++r) {
    char c = out[r];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') {
      space = w > from;
      continue;
    }
    if (space) out[w++] = ' ';
    space = false;
    out[w++] = c;
  }
  out.resize(w);
  if (w - from >= 2 && out[from] == '\'' && out[w - 1] == '\'') {
    out.erase(w - 1);
    out.erase(from, 1);
  }
}

std::string_view domain_of(std::string_view addr) {
  size_t at = addr.rfind('@');
  std::string_view d = at == std::string_view::npos ? std::string_view() : addr.substr(at + 1);
  while (!d.empty() && (d.back() == '>' || d.back() == '.')) d.remove_suffix(1);
  return d;
}

std::string_view strip_angle(std::string_view a) {
  if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = a.substr(1, a.size() - 2);
  return a;
}

// Domain or any parent in a sorted list of lower-case domains.
bool domain_listed(const std::vector<std::string>& entries, std::string_view domain) {
  char buf[256];
  if (domain.empty() || domain.size() >= sizeof buf) return false;
  for (size_t i = 0; i < domain.size(); ++i) buf[i] = static_cast<char>(tolower(static_cast<unsigned char>(domain[i])));
  std::string_view d(buf, domain.size());
  for (;;) {
    if (std::binary_search(entries.begin(), entries.end(), d, [](const auto& a, const auto& b) {
          return std::string_view(a) < std::string_view(b);
        }))
      return true;
    size_t dot = d.find('.');
    if (dot == std::string_view::npos) return false;
    d.remove_prefix(dot + 1);
  }
}

bool exact_listed(const std::vector<std::string>& entries, std::string_view v) {
  char buf[512];
  if (v.empty() || v.size() >= sizeof buf) return false;
  for (size_t i = 0; i < v.size(); ++i) buf[i] = static_cast<char>(tolower(static_cast<unsigned char>(v[i])));
  std::string_view d(buf, v.size());
  return std::binary_search(entries.begin(), entries.end(), d,
                            [](const auto& a, const auto& b) { return std::string_view(a) < std::string_view(b); });
}

// URL list entries are "host" or "host/path-prefix"; the URL's host may be a subdomain.
bool url_listed(const std::vector<std::string>& entries, std::string_view url) {
  size_t s = url.find("://");
  if (s != std::string_view::npos) url.remove_prefix(s + 3);
  size_t slash = url.find_first_of("/?#");
  std::string_view host = url.substr(0, slash);
  size_t at = host.rfind('@');
  if (at != std::string_view::npos) host.remove_prefix(at + 1);
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(']') == std::string_view::npos) host = host.substr(0, colon);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : url.substr(slash);
  for (const auto& e : entries) {
    std::string_view ev = e;
    size_t es = ev.find('/');
    std::string_view eh = ev.substr(0, es);
    if (host.size() < eh.size()) continue;
    std::string_view tail = host.substr(host.size() - eh.size());
    if (!iequals(tail, eh)) continue;
    if (host.size() > eh.size() && host[host.size() - eh.size() - 1] != '.') continue;
    if (es == std::string_view::npos) return true;
    std::string_view ep = ev.substr(es);
    if (path.substr(0, ep.size()) == ep) return true;
  }
  return false;
}

bool ip_listed(const std::vector<Cidr>& list, std::string_view ip) {
  int fam;
  unsigned char a[16];
  if (!parse_ip(ip, fam, a)) return false;
  for (const auto& c : list) {
    if (c.family != fam) continue;
    int full = c.len / 8, rest = c.len % 8;
    if (memcmp(a, c.addr, full) != 0) continue;
    if (rest && ((a[full] ^ c.addr[full]) & (0xff00 >> rest) & 0xff)) continue;
    return true;
  }
  return false;
}

bool value_listed(const Ruleset& rs, uint32_t list, std::string_view v) {
  const auto& l = rs.artifact().lists[list];
  switch (l.type) {
    case ListType::domains: return domain_listed(l.entries, v);
    case ListType::addresses:
    case ListType::sha256: return exact_listed(l.entries, v);
    case ListType::urls: return url_listed(l.entries, v);
    case ListType::ip: return ip_listed(rs.impl().ip_lists[list], v);
  }
  return false;
}

std::string_view url_host(std::string_view url) {
  size_t s = url.find("://");
  if (s != std::string_view::npos) url.remove_prefix(s + 3);
  std::string_view host = url.substr(0, url.find_first_of("/?#"));
  size_t at = host.rfind('@');
  if (at != std::string_view::npos) host.remove_prefix(at + 1);
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(']') == std::string_view::npos) host = host.substr(0, colon);
  return host;
}

}  // namespace

// ---------------------------------------------------------------- MessageScan

MessageScan::MessageScan(const Ruleset& rs, Scratch& scratch) : rs_(rs), st_(scratch.state()) { st_.reset(); }
MessageScan::~MessageScan() = default;

void MessageScan::reset() { st_.reset(); }

void MessageScan::envelope(std::string_view mail_from, std::span<const std::string> rcpt_to, std::string_view helo) {
  State& st = st_;
  const auto& im = rs_.impl();
  st.envelope_seen = true;
  st.keep(mail_from, st.mail_from);
  st.keep(helo, st.helo);
  block_scan(st, im.ctx_dbs[static_cast<int>(DbContext::mail_from)], mail_from);
  block_scan(st, im.ctx_dbs[static_cast<int>(DbContext::helo)], helo);
  for (const auto& r : rcpt_to) {
    std::pair<uint32_t, uint32_t> k;
    if (st.rcpts.size() < st.rcpts.capacity() && st.keep(r, k)) st.rcpts.push_back(k);
    block_scan(st, im.ctx_dbs[static_cast<int>(DbContext::rcpt_to)], r);
  }
}

void MessageScan::client_ip(std::string_view ip) { st_.keep(ip, st_.client); }

namespace {
void scan_mime_header(State& st, const Ruleset& rs, std::string_view name, std::string_view raw, std::string_view dec) {
  const auto& im = rs.impl();
  for (uint32_t src : im.mime_sources) {
    const auto& h = rs.artifact().header_sources[src];
    if (!iequals(h.name, name)) continue;
    std::string_view v = h.form == HeaderForm::raw ? raw : dec;
    st.value.clear();
    size_t room = st.value.capacity();
    st.value.append(v.substr(0, room > 1 ? room - 1 : 0));
    st.value.push_back('\n');
    block_scan(st, im.mime_dbs[src], st.value);
  }
}
}  // namespace

void MessageScan::header(std::string_view name, std::string_view raw_value, std::string_view decoded_value) {
  State& st = st_;
  State::Field f{};
  std::pair<uint32_t, uint32_t> n, r, d;
  if (st.fields.size() >= st.fields.capacity()) {
    st.truncated = true;
  } else if (st.keep(name, n) && st.keep(raw_value, r) && st.keep(decoded_value, d)) {
    f = {n.first, n.second, r.first, r.second, d.first, d.second};
    st.fields.push_back(f);
  }
  scan_mime_header(st, rs_, name, raw_value, decoded_value);
}

void MessageScan::part_header(std::string_view name, std::string_view raw_value, std::string_view decoded_value) {
  scan_mime_header(st_, rs_, name, raw_value, decoded_value);
}

void MessageScan::body_text(std::span<const uint8_t> b) {
  start_stream(st_, 0);
  stream_feed(st_, 0, b.data(), b.size());
}
void MessageScan::rawbody(std::span<const uint8_t> b) {
  start_stream(st_, 1);
  stream_feed(st_, 1, b.data(), b.size());
}
void MessageScan::full(std::span<const uint8_t> b) {
  start_stream(st_, 2);
  stream_feed(st_, 2, b.data(), b.size());
}

void MessageScan::uri(std::string_view url) {
  State& st = st_;
  const auto& im = rs_.impl();
  block_scan(st, im.ctx_dbs[static_cast<int>(DbContext::uri)], url);
  for (uint32_t i : im.listed_rules) {
    const ArtifactRule& r = st.rules[i];
    auto src = static_cast<ListSource>(r.form);
    if (src == ListSource::uri && value_listed(rs_, r.source, url)) ++st.counts[i];
    if (src == ListSource::uri_host && value_listed(rs_, r.source, url_host(url))) ++st.counts[i];
  }
}

void MessageScan::attachment(const AttachmentFacts& a) {
  State& st = st_;
  const auto& im = rs_.impl();
  block_scan(st, im.ctx_dbs[static_cast<int>(DbContext::attachment_name)], a.name);
  block_scan(st, im.ctx_dbs[static_cast<int>(DbContext::attachment_type)], a.type);
  block_scan(st, im.ctx_dbs[static_cast<int>(DbContext::attachment_sniffed)], a.sniffed_type);
  for (uint32_t i : im.attach_flag_rules) {
    const ArtifactRule& r = st.rules[i];
    auto f = static_cast<rules::AttachmentField>(r.form);
    bool hit = (f == rules::AttachmentField::macros && a.macros) ||
               (f == rules::AttachmentField::encrypted && a.encrypted) ||
               (f == rules::AttachmentField::size_over && a.size > r.size_over) ||
               (f == rules::AttachmentField::budget_exceeded && a.budget_exceeded &&
                (r.size_over == 0 || (a.budget_exceeded & r.size_over)));
    if (hit) ++st.counts[i];
  }
  for (uint32_t i : im.listed_rules) {
    const ArtifactRule& r = st.rules[i];
    if (static_cast<ListSource>(r.form) == ListSource::attachment_sha256 && value_listed(rs_, r.source, a.sha256))
      ++st.counts[i];
  }
}

Result MessageScan::finish() {
  Result r;
  finish(r);
  return r;
}

void MessageScan::finish(Result& out, std::vector<double>& values) {
  values_out_ = &values;
  finish(out);
  values_out_ = nullptr;
}

void MessageScan::finish(Result& out) {
  State& st = st_;
  const auto& a = rs_.artifact();
  const auto& im = rs_.impl();
  out.hits.clear();
  out.categories.clear();
  out.score = 0;
  out.action = Action::pass;
  out.sender_class = SenderClass::D;

  // 1. Streams: the body always has at least the Subject line.
  start_stream(st, 0);
  for (int s = 0; s < kStreams; ++s) {
    if (!st.started[s]) continue;
    st.cur_stream = s;
    for (uint32_t d : im.ctx_dbs[static_cast<int>(kStreamCtx[s])])
      hs_reset_stream(st.streams[d], 0, st.hs, on_match, &st);  // end-of-data matches, then clean
    st.cur_stream = -1;
    const auto& buf = st.retained[s];
    for (uint32_t id : st.stream_cands[s]) {
      size_t start = (s == 0 && (st.rules[id].flags & rules::flag_nosubject)) ? std::min<size_t>(st.body_offset, buf.size()) : 0;
      uint32_t before = st.counts[id];
      confirm(st, id, buf.data(), buf.size(), start);
      if (st.counts[id] == before && st.retained_cut[s]) ++st.unconfirmed;
      st.cand[id] = 0;
    }
    st.stream_cands[s].clear();
    if (st.retained_cut[s]) st.truncated = true;
  }

  // 2. Envelope never given: scan empty values so that negated rules decide.
  if (!st.envelope_seen) envelope("", {}, "");

  // 3. Header sources.
  auto field_name = [&](const State::Field& f) { return std::string_view(st.arena.data() + f.name_off, f.name_len); };
  auto field_raw = [&](const State::Field& f) { return std::string_view(st.arena.data() + f.raw_off, f.raw_len); };
  auto field_dec = [&](const State::Field& f) { return std::string_view(st.arena.data() + f.dec_off, f.dec_len); };
  auto append = [&](std::string_view v) {
    size_t room = st.value.capacity() - st.value.size();
    if (v.size() > room) st.truncated = true;
    st.value.append(v.substr(0, room));
  };
  if (im.need_relays) {
    size_t k = 0;
    st.relay_parser.build(
        [&](size_t, std::string_view& v) {
          for (; k < st.fields.size(); ++k)
            if (iequals(field_name(st.fields[k]), "received")) {
              v = field_raw(st.fields[k++]);
              return true;
            }
          return false;
        },
        st.relays);
    if (st.relays.cut) st.truncated = true;
  }
  for (uint32_t si = 0; si < a.header_sources.size(); ++si) {
    const auto& dbs = im.source_dbs[si];
    if (dbs.empty()) continue;
    const auto& h = a.header_sources[si];
    st.value.clear();
    bool any = false;
    if (h.name.rfind("x-spam-relays-", 0) == 0) {
      // SpamAssassin's pseudo-header: one value, no trailing newline, "" when no relay.
      std::string_view which = std::string_view(h.name).substr(14);
      append(which == "trusted" ? st.relays.trusted : which == "untrusted" ? st.relays.untrusted
             : which == "internal" ? st.relays.internal : st.relays.external);
      block_scan(st, dbs, st.value);
      continue;
    }
    if (h.name == "all-trusted" || h.name == "all-internal" || h.name == "all-untrusted" || h.name == "all-external") {
      // The header block cut at the trust (or internal) boundary, as SpamAssassin's
      // get_all_hdrs_in_rcvd_index_range: the trusted part ends with the first
      // Received: field outside it (included); the untrusted part starts there.
      bool upper = h.name == "all-trusted" || h.name == "all-internal";
      int boundary = 1 + (h.name == "all-trusted" || h.name == "all-untrusted" ? st.relays.last_trusted : st.relays.last_internal);
      int idx = -1;
      for (const auto& f : st.fields) {
        bool rcvd = iequals(field_name(f), "received");
        if (rcvd) ++idx;
        bool take = upper ? idx <= boundary : idx >= boundary;
        if (!take) {
          if (upper) break;
          continue;
        }
        any = true;
        append(field_name(f));
        append(": ");
        append(h.form == HeaderForm::raw ? field_raw(f) : field_dec(f));
        append("\n");
        if (upper && rcvd && idx == boundary) break;
      }
      if (!any && h.has_unset) append(h.unset);
      block_scan(st, dbs, st.value);
      continue;
    }
    auto add_instance = [&](const State::Field& f) {
      any = true;
      if (h.form == HeaderForm::raw) {
        append(field_raw(f));
        append("\n");
      } else if (h.form == HeaderForm::decoded) {
        append(field_dec(f));
        append("\n");
      } else if (h.form == HeaderForm::addr) {
        // Mailboxes split on the raw value, as SpamAssassin 4 does: an
        // encoded word can hide no ',' or '<' that would make one.
        mime::for_each_address(field_raw(f), [&](const mime::Mailbox& m) {
          if (!st.value.empty()) append("\n");
          mime::render_address(m.address, append);
        });
      } else {
        // Display names need decoding, which the matcher does not do per
        // message: they come from the decoded value (where an encoded ','
        // splits a name, SpamAssassin decodes after splitting). Only
        // non-empty names, as SpamAssassin's :name.
        mime::for_each_address(field_dec(f), [&](const mime::Mailbox& m) {
          size_t mark = st.value.size();
          if (!st.value.empty()) append("\n");
          size_t from = st.value.size();
          if (m.angle) mime::render_phrase(m.phrase, append);
          else mime::render_comments(m.comments, append);
          sa_name_tidy(st.value, from);
          if (st.value.size() == from) st.value.resize(mark);
        });
      }
    };
    if (h.name == "all") {
      for (const auto& f : st.fields) {
        any = true;
        append(field_name(f));
        append(": ");
        append(h.form == HeaderForm::raw ? field_raw(f) : field_dec(f));
        append("\n");
      }
    } else if (h.name == "tocc") {
      for (const auto& f : st.fields)
        if (iequals(field_name(f), "to")) add_instance(f);
      for (const auto& f : st.fields)
        if (iequals(field_name(f), "cc")) add_instance(f);
    } else if (h.name == "messageid") {
      for (const char* n : {"message-id", "resent-message-id", "x-message-id"})
        for (const auto& f : st.fields)
          if (iequals(field_name(f), n)) add_instance(f);
    } else if (h.name == "envelopefrom") {
      if (st.envelope_seen && st.mail_from.second) {
        any = true;
        append(st.view(st.mail_from));
        if (h.form == HeaderForm::decoded || h.form == HeaderForm::raw) append("\n");
      }
    } else {
      for (const auto& f : st.fields)
        if (iequals(field_name(f), h.name)) add_instance(f);
    }
    if (!any && h.has_unset) append(h.unset);
    block_scan(st, dbs, st.value);
  }
  for (uint32_t i : im.exists_rules) {
    const auto& h = a.header_sources[a.rules[i].source];
    for (const auto& f : st.fields)
      if (iequals(field_name(f), h.name)) {
        st.counts[i] = 1;
        break;
      }
  }

  // 4. From, lists, brands.
  // The first mailbox of From: and Reply-To: (addresses from the raw value,
  // the name from the decoded one, as for :addr and :name above), rendered
  // into the arena.
  std::string_view from_addr, from_name, reply_addr;
  auto kept = [&](auto&& render) {
    size_t start = st.arena.size();
    render([&](std::string_view p) {
      size_t room = st.arena.capacity() - st.arena.size();
      if (p.size() > room) st.truncated = true;
      st.arena.append(p.substr(0, room));
    });
    return std::string_view(st.arena.data() + start, st.arena.size() - start);
  };
  bool have_from = false, have_from_name = false, have_reply = false;
  for (const auto& f : st.fields) {
    bool from = iequals(field_name(f), "from");
    if (from && !have_from)
      mime::for_each_address(field_raw(f), [&](const mime::Mailbox& m) {
        if (have_from) return;
        have_from = true;
        from_addr = kept([&](auto&& put) { mime::render_address(m.address, put); });
      });
    if (from && !have_from_name)
      mime::for_each_address(field_dec(f), [&](const mime::Mailbox& m) {
        if (have_from_name) return;
        have_from_name = true;
        from_name = kept([&](auto&& put) {
          if (m.angle) mime::render_phrase(m.phrase, put);
          else mime::render_comments(m.comments, put);
        });
      });
    if (!have_reply && iequals(field_name(f), "reply-to"))
      mime::for_each_address(field_raw(f), [&](const mime::Mailbox& m) {
        if (have_reply) return;
        have_reply = true;
        reply_addr = kept([&](auto&& put) { mime::render_address(m.address, put); });
      });
  }
  std::string_view env_from = st.view(st.mail_from);
  if (env_from.size() >= 2 && env_from.front() == '<' && env_from.back() == '>') env_from = env_from.substr(1, env_from.size() - 2);
  std::string_view from_domain = domain_of(from_addr);
  for (uint32_t i : im.listed_rules) {
    const ArtifactRule& r = st.rules[i];
    bool hit = false;
    switch (static_cast<ListSource>(r.form)) {
      case ListSource::from_domain: hit = value_listed(rs_, r.source, from_domain); break;
      case ListSource::reply_to_domain: hit = value_listed(rs_, r.source, domain_of(reply_addr)); break;
      case ListSource::envelope_from_domain: hit = value_listed(rs_, r.source, domain_of(env_from)); break;
      case ListSource::helo: hit = value_listed(rs_, r.source, st.view(st.helo)); break;
      case ListSource::from_address: hit = value_listed(rs_, r.source, from_addr); break;
      case ListSource::envelope_from_address: hit = value_listed(rs_, r.source, env_from); break;
      case ListSource::client_ip: hit = value_listed(rs_, r.source, st.view(st.client)); break;
      case ListSource::rcpt_domain:
      case ListSource::rcpt_address:
        // One count per listed recipient (tflags multiple sees how many).
        for (auto& rc : st.rcpts) {
          std::string_view ad = strip_angle(st.view(rc));
          if (value_listed(rs_, r.source, static_cast<ListSource>(r.form) == ListSource::rcpt_domain ? domain_of(ad) : ad))
            ++st.counts[i];
        }
        continue;
      default: continue;  // uri, uri_host, attachment_sha256: counted as they arrived
    }
    if (hit) ++st.counts[i];
  }
  // compare: both sides present and equal (==) or different (!=), ASCII case-insensitive.
  for (uint32_t i : im.compare_rules) {
    const ArtifactRule& r = st.rules[i];
    auto field = [&](uint8_t f) -> std::string_view {
      switch (static_cast<rules::AddressField>(f & 0x7f)) {
        case rules::AddressField::from_address: return from_addr;
        case rules::AddressField::from_domain: return domain_of(from_addr);
        case rules::AddressField::reply_to_address: return reply_addr;
        case rules::AddressField::reply_to_domain: return domain_of(reply_addr);
        case rules::AddressField::envelope_from_address: return env_from;
        case rules::AddressField::envelope_from_domain: return domain_of(env_from);
      }
      return {};
    };
    std::string_view l = field(r.form), rr = field(r.arg);
    if (l.empty() || rr.empty()) continue;
    bool eq = iequals(l, rr);
    if (eq == ((r.arg & 0x80) != 0)) st.counts[i] = 1;
  }
  // count: envelope recipients, or To and Cc addresses (elements with an '@').
  if (!im.count_rules.empty()) {
    uint32_t tocc = 0;
    for (const auto& f : st.fields)
      if (iequals(field_name(f), "to") || iequals(field_name(f), "cc"))
        mime::for_each_address(field_raw(f), [&](const mime::Mailbox& m) {
          if (m.address.find('@') != std::string_view::npos) ++tocc;
        });
    for (uint32_t i : im.count_rules)
      st.counts[i] = st.rules[i].form == 0 ? static_cast<uint32_t>(st.rcpts.size()) : tocc;
  }
  const auto& brand_dbs = im.ctx_dbs[static_cast<int>(DbContext::from_name)];
  bool spoofed = false, brand_sender = false;
  if (!a.brands.empty()) {
    for (size_t b = 0; b < a.brands.size() && !brand_sender; ++b) brand_sender = domain_listed(a.brands[b].domains, from_domain);
    if (!brand_dbs.empty() && !from_name.empty()) {
      st.in_brands = true;
      for (uint32_t d : brand_dbs)
        hs_scan(im.dbs[d], from_name.data(), static_cast<unsigned>(from_name.size()), 0, st.hs, on_match, &st);
      st.in_brands = false;
      for (size_t b = 0; b < a.brands.size(); ++b)
        if (st.brand_hit[b] && !domain_listed(a.brands[b].domains, from_domain)) spoofed = true;
    }
  }
  if (spoofed)
    for (uint32_t i : im.spoof_rules) st.counts[i] = 1;

  // Sender class (before the values: classed rules see it): P, G, H, J from lists (G also from brand domains), E .jp, D.
  std::string_view dom = !from_domain.empty() ? from_domain : domain_of(env_from);
  out.sender_class = SenderClass::D;
  bool found = false;
  for (int cls = 0; cls < 4 && !found; ++cls) {
    if (cls == static_cast<int>(SenderClass::G) && brand_sender && dom == from_domain) {
      out.sender_class = SenderClass::G;
      found = true;
      break;
    }
    for (const auto& c : a.classes) {
      if (static_cast<int>(c.first) != cls) continue;
      bool in = c.second == kNone ? [&] {
        for (const auto& b : a.brands)
          if (domain_listed(b.domains, dom)) return true;
        return false;
      }()
                                  : value_listed(rs_, c.second, dom);
      if (in) {
        out.sender_class = c.first;
        found = true;
        break;
      }
    }
  }
  if (!found) {
    std::string_view d = dom;
    while (!d.empty() && d.back() == '.') d.remove_suffix(1);
    if (d.size() >= 3 && iequals(d.substr(d.size() - 3), ".jp")) out.sender_class = SenderClass::E;
  }
  for (uint32_t i : im.classed_rules)
    if (st.rules[i].arg & (1u << static_cast<unsigned>(out.sender_class))) st.counts[i] = 1;

  // 5. Values, metas, score.
  for (uint32_t i = 0; i < a.rules.size(); ++i) {
    const ArtifactRule& r = st.rules[i];
    double v = 0;
    if (r.flags & rules::flag_active) {
      uint32_t c = st.counts[i];
      if (!(r.flags & rules::flag_multiple)) c = std::min<uint32_t>(c, 1);
      else if (r.maxhits) c = std::min(c, r.maxhits);
      if (r.negate) c = c ? 0 : 1;
      v = c;
    }
    st.values[i] = v;
  }
  auto eval_metas = [&](bool late) {
    for (uint32_t i : a.meta_order) {
      const ArtifactRule& r = st.rules[i];
      if (((r.flags & rules::flag_late) != 0) != late) continue;
      double v = rules::eval_meta(a.meta_code.data() + r.meta_begin, r.meta_len, st.values.data(), st.stack.data());
      st.values[i] = v != 0 ? 1 : 0;
    }
  };
  eval_metas(false);
  // Late rules: "scored" compares the score of every other rule (late
  // ones excluded, so nothing depends on itself), then the metas over them.
  if (!im.scored_rules.empty()) {
    double early = 0;
    for (uint32_t i = 0; i < a.rules.size(); ++i) {
      const ArtifactRule& r = st.rules[i];
      if (st.values[i] != 0 && !(r.flags & (rules::flag_subrule | rules::flag_late))) early += r.score[0];
    }
    for (uint32_t i : im.scored_rules) {
      const ArtifactRule& r = st.rules[i];
      bool h = false;
      switch (static_cast<rules::CompareOp>(r.form)) {
        case rules::CompareOp::ge: h = early >= r.value; break;
        case rules::CompareOp::gt: h = early > r.value; break;
        case rules::CompareOp::le: h = early <= r.value; break;
        case rules::CompareOp::lt: h = early < r.value; break;
        case rules::CompareOp::eq: h = early == r.value; break;
        case rules::CompareOp::ne: h = early != r.value; break;
      }
      st.values[i] = (r.negate ? !h : h) ? 1 : 0;
    }
    eval_metas(true);
  }
  // The first deciding rule that hit.
  uint32_t decider = kNone;
  for (uint32_t i : a.decide_order)
    if (st.values[i] != 0 && (st.rules[i].flags & rules::flag_active)) {
      decider = i;
      break;
    }
  std::fill(st.cat_seen.begin(), st.cat_seen.end(), 0);
  Action forced = Action::pass;
  for (uint32_t i = 0; i < a.rules.size(); ++i) {
    if (st.values[i] == 0) continue;
    const ArtifactRule& r = st.rules[i];
    if (r.flags & rules::flag_subrule) continue;
    double sc = r.score[0];
    // Disabled (SpamAssassin: score 0) unless it carries categories, an
    // action, or is the rule that decided.
    if (sc == 0 && r.categories.empty() && r.action == Action::pass && i != decider) continue;
    out.score += sc;
    out.hits.push_back(Hit{r.name, im.labels[i], r.describe, static_cast<uint32_t>(st.values[i]), sc});
    for (uint32_t c : r.categories) st.cat_seen[c] = 1;
    forced = std::max(forced, r.action);
  }
  for (size_t c = 0; c < st.cat_seen.size(); ++c)
    if (st.cat_seen[c]) out.categories.push_back(a.categories[c]);
  Action by_score = Action::pass;
  for (int k = 1; k <= 3; ++k)
    if (a.thresholds[k] != 0 && out.score >= a.thresholds[k]) by_score = static_cast<Action>(k);
  out.action = std::max(forced, by_score);
  out.decided_by = {};
  out.reply = {};
  if (decider != kNone) {
    out.action = st.rules[decider].decision;
    out.decided_by = st.rules[decider].name;
    out.reply = st.rules[decider].reply;
  }

  out.unconfirmed = st.unconfirmed;
  out.truncated = st.truncated;
  if (values_out_) *values_out_ = st.values;
  st.reset();
}

}  // namespace sekisho::match
