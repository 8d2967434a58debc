#include "control/audit/audit.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace sekisho::control::audit {

using nlohmann::json;

namespace {

const db::Migration kMigrations[] = {
    {1, "hash-chained audit log",
     R"sql(
CREATE TABLE audit_log (
  seq       BIGINT PRIMARY KEY,
  ts_us     BIGINT NOT NULL,
  actor     TEXT NOT NULL,
  action    TEXT NOT NULL,
  target    TEXT NOT NULL,
  details   TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash      TEXT NOT NULL
);
CREATE INDEX audit_log_ts ON audit_log (ts_us);
)sql"},
};

std::string hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string o(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    o[2 * i] = d[p[i] >> 4];
    o[2 * i + 1] = d[p[i] & 15];
  }
  return o;
}

// The bytes an entry's hash covers: the previous hash and the entry as one
// compact JSON array (seq, time, actor, action, target, details).
std::string canonical(const std::string& prev, int64_t seq, int64_t ts, const std::string& actor,
                      const std::string& action, const std::string& target, const std::string& details) {
  json a = json::array({seq, ts, actor, action, target, details});
  return prev + "\n" + a.dump(-1, ' ', true, json::error_handler_t::replace);
}

std::string hmac(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!HMAC(EVP_sha256(), key.data(), int(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), out, &n))
    throw db::StoreError("audit: HMAC failed");
  return hex(out, n);
}

bool same(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

const char* kGenesis = "0000000000000000000000000000000000000000000000000000000000000000";

}  // namespace

AuditLog::AuditLog(db::Db& db, std::string key, std::string anchor_path)
    : db_(db), key_(std::move(key)), anchor_(std::move(anchor_path)) {
  if (key_.size() < 16) throw db::StoreError("audit: the key must have at least 16 bytes");
  db_.migrate("audit", kMigrations);
}

Entry AuditLog::append(const std::string& actor, const std::string& action, const std::string& target,
                       const json& details, int64_t now_us) {
  Entry e;
  e.ts_us = now_us;
  e.actor = actor;
  e.action = action;
  e.target = target;
  e.details = details.is_null() ? json::object() : details;
  std::string det = e.details.dump(-1, ' ', true, json::error_handler_t::replace);
  db::Transaction t(db_);
  // Several control planes on one PostgreSQL extend one chain: serialise
  // appends (SQLite's BEGIN IMMEDIATE already does).
  if (db_.dialect() == db::Dialect::postgres) db_.exec("SELECT pg_advisory_xact_lock(7341001)");
  std::string prev = kGenesis;
  int64_t seq = 0;
  db_.exec("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", {}, [&](const db::Row& r) {
    seq = r.i64(0);
    prev = r.text(1);
  });
  e.seq = seq + 1;
  e.hash = hmac(key_, canonical(prev, e.seq, e.ts_us, actor, action, target, det));
  db_.exec(
      "INSERT INTO audit_log (seq, ts_us, actor, action, target, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, "
      "?, ?)",
      {e.seq, e.ts_us, actor, action, target, det, prev, e.hash});
  t.commit();
  if (!anchor_.empty()) {
    // The head outside the database: truncating the table's tail shows.
    std::string tmp = anchor_ + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw db::StoreError("audit: cannot write the anchor " + tmp);
    std::string line = std::to_string(e.seq) + " " + e.hash + "\n";
    bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), anchor_.c_str()) != 0)
      throw db::StoreError("audit: cannot write the anchor " + anchor_);
  }
  return e;
}

std::vector<Entry> AuditLog::list(int64_t limit, int64_t before_seq) {
  std::vector<Entry> out;
  auto row = [&](const db::Row& r) {
    Entry e;
    e.seq = r.i64(0);
    e.ts_us = r.i64(1);
    e.actor = r.text(2);
    e.action = r.text(3);
    e.target = r.text(4);
    e.details = json::parse(r.text(5), nullptr, false);
    if (e.details.is_discarded()) e.details = r.text(5);
    e.hash = r.text(6);
    out.push_back(std::move(e));
  };
  const char* cols = "SELECT seq, ts_us, actor, action, target, details, hash FROM audit_log ";
  if (before_seq > 0)
    db_.exec(std::string(cols) + "WHERE seq < ? ORDER BY seq DESC LIMIT ?", {before_seq, limit}, row);
  else
    db_.exec(std::string(cols) + "ORDER BY seq DESC LIMIT ?", {limit}, row);
  return out;
}

VerifyResult AuditLog::verify() {
  VerifyResult v;
  std::string prev = kGenesis;
  int64_t expect = 1;
  std::map<int64_t, std::string> hashes;
  auto problem = [&](const std::string& p) {
    v.ok = false;
    if (v.problems.size() < 100) v.problems.push_back(p);
  };
  db_.exec("SELECT seq, ts_us, actor, action, target, details, prev_hash, hash FROM audit_log ORDER BY seq", {},
           [&](const db::Row& r) {
             int64_t seq = r.i64(0);
             ++v.entries;
             if (seq != expect) {
               problem("entries " + std::to_string(expect) + ".." + std::to_string(seq - 1) + " are missing");
               prev = r.text(6);  // resynchronise on the stored link to report later breaks separately
             }
             if (!same(r.text(6), prev))
               problem("entry " + std::to_string(seq) + ": its link does not match the hash of the entry before");
             std::string h = hmac(key_, canonical(prev, seq, r.i64(1), r.text(2), r.text(3), r.text(4), r.text(5)));
             if (!same(h, r.text(7)))
               problem("entry " + std::to_string(seq) + ": hash does not match its content (edited)");
             hashes[seq] = r.text(7);
             prev = r.text(7);
             expect = seq + 1;
           });
  if (!anchor_.empty()) {
    std::ifstream f(anchor_);
    int64_t aseq = 0;
    std::string ahash;
    if (f >> aseq >> ahash) {
      auto it = hashes.find(aseq);
      if (aseq >= expect)
        problem("the anchor names entry " + std::to_string(aseq) + " but the log ends at " +
                std::to_string(expect - 1) + " (entries removed from the end)");
      else if (it == hashes.end() || !same(it->second, ahash))
        problem("entry " + std::to_string(aseq) + " differs from the anchor's hash");
    } else if (v.entries > 0) {
      problem("the anchor " + anchor_ + " is missing or unreadable");
    }
  }
  return v;
}

}  // namespace sekisho::control::audit
