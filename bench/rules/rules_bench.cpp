// Rules matching throughput per core, in one run, next to its ceilings:
//
//   rules_bench [--passes N] [--limit N] [--packs DIR] [--sa DIR] [--no-sa] CORPUS_DATA_DIR
//
// The corpus is the npm SpamAssassin corpus (NAME.json files with a "text"
// field; a sibling NAME.txt, where there is one, holds the raw bytes and is
// preferred). Every message is read into its matching contexts once, by the
// MIME engine (tools/sekishoctl/eml.hpp parse_eml, as sekishoctl explain and
// the rules tests do); parsing is not timed. For each rule set (the shipped
// packs, rules/packs; Debian's SpamAssassin rules, /usr/share/spamassassin)
// the set is compiled (compile time, artifact size), written, loaded (load
// time), and each pass then runs over every message:
//
//   memcpy     copy of the message's context bytes (the ceiling of any pass)
//   raw hs     every database of the artifact over the buffers of its
//              context, nothing else: hs_scan for block databases (header
//              sources, URLs, envelope, ...), one hs_scan_stream call over
//              the whole buffer for the streaming body/rawbody/full ones;
//              no confirmation, no evaluation, a no-op callback
//   pipeline   MessageScan: headers, part headers, body/rawbody/full fed in
//              4 KiB chunks, URLs, attachments, finish() (streams flushed,
//              PCRE2 confirmations, metas, score, classes, verdict)
//
// Context bytes (the MB/s base for every row): Subject + body text, raw
// body, the message, every URL, every header field (name and raw value).
// Prints MB/s and messages/s per core, and pipeline / raw hs.
#include <hs/hs.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tools/sekishoctl/eml.hpp"
#include "scanners/match/match.hpp"
#include "scanners/match/received.hpp"
#include "rules/artifact/artifact.hpp"
#include "rules/compiler/compiler.hpp"
#include "rules/lang/parser.hpp"

namespace fs = std::filesystem;
using namespace sekisho;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return o;
}

struct Msg {
  ctl::EmlMessage m;
  std::string body;  // Subject "\n" body text: the body stream as the runtime builds it
  size_t bytes = 0;  // context bytes
};

std::vector<Msg> load_corpus(const std::string& dir, size_t limit) {
  std::vector<std::string> files;
  std::error_code ec;
  for (auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.path().extension() == ".json" && e.path().filename() != "file_list.json") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  if (limit && files.size() > limit) files.resize(limit);
  std::vector<Msg> out;
  out.reserve(files.size());
  for (const auto& f : files) {
    std::string text;
    std::string txt = f.substr(0, f.size() - 5) + ".txt";
    if (fs::exists(txt)) {
      std::ifstream in(txt, std::ios::binary);
      text.assign(std::istreambuf_iterator<char>(in), {});
    } else {
      std::ifstream in(f, std::ios::binary);
      try {
        text = nlohmann::json::parse(in).at("text").get<std::string>();
      } catch (const std::exception&) {
        continue;
      }
    }
    Msg m;
    m.m = ctl::parse_eml(text);
    std::string subject;
    for (const auto& h : m.m.headers)
      if (lower(h.name) == "subject") {
        subject = h.decoded;
        break;
      }
    m.body = subject + "\n" + m.m.body_text;
    m.bytes = m.body.size() + m.m.rawbody.size() + m.m.full.size();
    for (const auto& u : m.m.uris) m.bytes += u.size();
    for (const auto& h : m.m.headers) m.bytes += h.name.size() + h.raw.size();
    out.push_back(std::move(m));
  }
  return out;
}

// The value of a header source for the raw-Hyperscan pass (the runtime's
// rules: instances joined, each followed by "\n"; ALL as "Name: value\n").
std::string source_value(const rules::HeaderSource& h, const ctl::EmlMessage& m, match::RelayParser& rp, match::Relays& rl) {
  std::string out;
  auto val = [&](const ctl::EmlField& f) -> const std::string& { return h.form == rules::HeaderForm::raw ? f.raw : f.decoded; };
  if (h.name.rfind("x-spam-relays-", 0) == 0 || h.name.rfind("all-", 0) == 0) {
    std::vector<std::string_view> rc;
    for (const auto& f : m.headers)
      if (lower(f.name) == "received") rc.push_back(f.raw);
    rp.build([&](size_t i, std::string_view& v) {
      if (i >= rc.size()) return false;
      v = rc[i];
      return true;
    }, rl);
    if (h.name == "x-spam-relays-trusted") return rl.trusted;
    if (h.name == "x-spam-relays-untrusted") return rl.untrusted;
    if (h.name == "x-spam-relays-internal") return rl.internal;
    if (h.name == "x-spam-relays-external") return rl.external;
  }
  if (h.name == "all" || h.name.rfind("all-", 0) == 0) {
    for (const auto& f : m.headers) out += f.name + ": " + val(f) + "\n";
    return out;
  }
  std::vector<std::string> names = {h.name};
  if (h.name == "tocc") names = {"to", "cc"};
  if (h.name == "messageid") names = {"message-id", "resent-message-id", "x-message-id"};
  for (const auto& n : names)
    for (const auto& f : m.headers)
      if (lower(f.name) == n) out += val(f) + "\n";
  if (out.empty() && h.has_unset) out = h.unset;
  return out;
}

int noop(unsigned int, unsigned long long, unsigned long long, unsigned int, void*) { return 0; }

struct SetResult {
  std::string name;
  double compile_s = 0, load_ms = 0;
  size_t artifact = 0;
  uint32_t dbs = 0, stream_dbs = 0, header_dbs = 0;
  double raw_s = 0, pipe_s = 0;
  bool ok = false;
};

SetResult run_set(const std::string& name, const std::vector<std::string>& paths, std::vector<Msg>& msgs, int passes,
                  double& memcpy_s, bool do_memcpy) {
  SetResult r;
  r.name = name;
  double t0 = now();
  rules::RuleSource src = rules::parse_paths(paths);
  if (!src.errors.empty()) {
    fprintf(stderr, "%s: %s\n", name.c_str(), src.errors[0].text().c_str());
    return r;
  }
  std::string art;
  rules::CompileReport rep;
  std::vector<rules::Diagnostic> errs;
  if (!rules::compile_ruleset(src, {}, art, rep, errs)) {
    fprintf(stderr, "%s: compile failed\n", name.c_str());
    return r;
  }
  r.compile_s = now() - t0;
  r.artifact = art.size();
  std::string path = (fs::temp_directory_path() / ("rules_bench_" + std::to_string(getpid()) + ".art")).string();
  std::ofstream(path, std::ios::binary).write(art.data(), static_cast<std::streamsize>(art.size()));
  double t1 = now();
  std::string err;
  auto rs = match::Ruleset::load(path, err);
  r.load_ms = (now() - t1) * 1000;
  fs::remove(path);
  if (!rs) {
    fprintf(stderr, "%s: load: %s\n", name.c_str(), err.c_str());
    return r;
  }

  // The same databases, deserialized for the raw pass.
  rules::Artifact a;
  if (!rules::read_artifact({reinterpret_cast<const uint8_t*>(art.data()), art.size()}, a, err)) return r;
  std::vector<hs_database_t*> dbs(a.dbs.size(), nullptr);
  hs_scratch_t* hs = nullptr;
  for (size_t i = 0; i < a.dbs.size(); ++i) {
    const auto& d = a.dbs[i];
    hs_deserialize_database(reinterpret_cast<const char*>(d.blob_ref.data()), d.blob_ref.size(), &dbs[i]);
    hs_alloc_scratch(dbs[i], &hs);
    if (rules::is_stream(d.context)) ++r.stream_dbs;
    if (d.context == rules::DbContext::header) ++r.header_dbs;
  }
  r.dbs = static_cast<uint32_t>(a.dbs.size());
  // Header-source values per message (built outside the timed loop).
  match::RelayParser rp;
  match::Relays rl;
  rl.reserve(64 * 1024);
  std::vector<std::vector<std::string>> values(msgs.size(), std::vector<std::string>(a.header_sources.size()));
  std::vector<uint8_t> used(a.header_sources.size(), 0);
  for (const auto& d : a.dbs)
    if ((d.context == rules::DbContext::header) && d.source < used.size()) used[d.source] = 1;
  for (size_t k = 0; k < msgs.size(); ++k)
    for (size_t s = 0; s < a.header_sources.size(); ++s)
      if (used[s]) values[k][s] = source_value(a.header_sources[s], msgs[k].m, rp, rl);

  auto scan_block = [&](hs_database_t* db, std::string_view v) {
    hs_scan(db, v.data(), static_cast<unsigned>(v.size()), 0, hs, noop, nullptr);
  };
  auto scan_stream = [&](hs_database_t* db, std::string_view v) {
    hs_stream_t* st = nullptr;
    if (hs_open_stream(db, 0, &st) != HS_SUCCESS) return;
    hs_scan_stream(st, v.data(), static_cast<unsigned>(v.size()), 0, hs, noop, nullptr);
    hs_close_stream(st, hs, noop, nullptr);
  };
  std::vector<char> sink(64 << 20);
  volatile char keep = 0;
  for (int p = 0; p < passes; ++p) {
    if (do_memcpy) {
      double tm = now();
      for (const auto& m : msgs) {
        size_t off = 0;
        auto cp = [&](std::string_view v) {
          if (off + v.size() > sink.size()) off = 0;
          memcpy(sink.data() + off, v.data(), std::min(v.size(), sink.size()));
          off += v.size();
        };
        cp(m.body);
        cp(m.m.rawbody);
        cp(m.m.full);
        for (const auto& u : m.m.uris) cp(u);
        for (const auto& h : m.m.headers) {
          cp(h.name);
          cp(h.raw);
        }
        keep = keep + sink[off / 2];
      }
      memcpy_s += now() - tm;
    }
    double tr = now();
    for (size_t k = 0; k < msgs.size(); ++k) {
      const auto& m = msgs[k].m;
      for (size_t i = 0; i < a.dbs.size(); ++i) {
        const auto& d = a.dbs[i];
        switch (d.context) {
          case rules::DbContext::body: scan_stream(dbs[i], msgs[k].body); break;
          case rules::DbContext::rawbody: if (!m.rawbody.empty()) scan_stream(dbs[i], m.rawbody); break;
          case rules::DbContext::full: scan_stream(dbs[i], m.full); break;
          case rules::DbContext::uri:
            for (const auto& u : m.uris) scan_block(dbs[i], u);
            break;
          case rules::DbContext::header: scan_block(dbs[i], values[k][d.source]); break;
          case rules::DbContext::mime_header:
            for (const auto& h : m.headers)
              if (lower(h.name) == a.header_sources[d.source].name) scan_block(dbs[i], h.decoded + "\n");
            for (const auto& part : m.part_headers)
              for (const auto& h : part)
                if (lower(h.name) == a.header_sources[d.source].name) scan_block(dbs[i], h.decoded + "\n");
            break;
          case rules::DbContext::mail_from:
          case rules::DbContext::helo: scan_block(dbs[i], ""); break;
          case rules::DbContext::attachment_name:
            for (const auto& at : m.attachments) scan_block(dbs[i], at.name);
            break;
          case rules::DbContext::attachment_type:
            for (const auto& at : m.attachments) scan_block(dbs[i], at.type);
            break;
          case rules::DbContext::attachment_sniffed:
            for (const auto& at : m.attachments) scan_block(dbs[i], at.sniffed);
            break;
          default: break;  // rcpt_to (no recipients here), from_name (brands: a few bytes)
        }
      }
    }
    r.raw_s += now() - tr;
    double tp = now();
    match::Scratch scratch(*rs);
    match::Result res;
    for (const auto& m : msgs) {
      match::MessageScan scan(*rs, scratch);
      ctl::feed(scan, m.m);
      scan.finish(res);
    }
    r.pipe_s += now() - tp;
  }
  for (auto* d : dbs) hs_free_database(d);
  hs_free_scratch(hs);
  r.ok = true;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int passes = 2;
  size_t limit = 0;
  std::string packs = "rules/packs", sa = "/usr/share/spamassassin", corpus;
  bool no_sa = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--passes" && i + 1 < argc) passes = std::max(1, atoi(argv[++i]));
    else if (a == "--limit" && i + 1 < argc) limit = static_cast<size_t>(atol(argv[++i]));
    else if (a == "--packs" && i + 1 < argc) packs = argv[++i];
    else if (a == "--sa" && i + 1 < argc) sa = argv[++i];
    else if (a == "--no-sa") no_sa = true;
    else corpus = a;
  }
  if (corpus.empty()) {
    fprintf(stderr, "usage: rules_bench [--passes N] [--limit N] [--packs DIR] [--sa DIR] [--no-sa] CORPUS_DATA_DIR\n");
    return 2;
  }
  double t0 = now();
  std::vector<Msg> msgs = load_corpus(corpus, limit);
  size_t bytes = 0;
  for (const auto& m : msgs) bytes += m.bytes;
  printf("corpus: %zu messages, %.1f MB of context bytes per pass (read and MIME-parsed in %.1f s, not timed), %d passes\n",
         msgs.size(), bytes / 1e6, now() - t0, passes);
  if (msgs.empty()) return 1;
  std::vector<SetResult> results;
  double memcpy_s = 0;
  results.push_back(run_set("shipped packs", {packs}, msgs, passes, memcpy_s, true));
  if (!no_sa && fs::is_directory(sa)) results.push_back(run_set("SpamAssassin", {sa}, msgs, passes, memcpy_s, false));
  double total = static_cast<double>(bytes) * passes;
  double n = static_cast<double>(msgs.size()) * passes;
  printf("\n%-14s %10s %12s %8s %8s %9s %6s\n", "set", "compile s", "artifact MB", "load ms", "dbs", "(stream)", "");
  for (const auto& r : results)
    if (r.ok)
      printf("%-14s %10.1f %12.1f %8.1f %8u %9u\n", r.name.c_str(), r.compile_s, r.artifact / 1e6, r.load_ms, r.dbs,
             r.stream_dbs);
  printf("\nper core, MB/s of context bytes (messages/s):\n");
  printf("  %-28s %10.0f MB/s\n", "memcpy", total / 1e6 / memcpy_s);
  for (const auto& r : results) {
    if (!r.ok) continue;
    printf("  %-28s %10.1f MB/s  %8.0f msg/s\n", (r.name + ": raw hs").c_str(), total / 1e6 / r.raw_s, n / r.raw_s);
    printf("  %-28s %10.1f MB/s  %8.0f msg/s   pipeline / raw hs = %.2f\n", (r.name + ": pipeline").c_str(),
           total / 1e6 / r.pipe_s, n / r.pipe_s, r.raw_s / r.pipe_s);
  }
  return 0;
}
