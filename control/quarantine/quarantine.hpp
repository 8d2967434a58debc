// The quarantine: messages the dataplane held (verdict quarantine), taken
// from its spool into the control plane's database, listed, viewed safely,
// released (re-delivered over SMTP with the original envelope), deleted and
// expired.
//
// Spool ingestion, exactly once: each DIR/new/ID.msg (the message event as
// one line, then the message bytes; journal/spool_file.hpp), read once into
// a journal::MessageEvent, is stored with its bytes in one transaction
// (idempotent by ID), and only then removed from the spool. A crash between
// the two stores nothing twice. Files that are not spool entries are moved
// to DIR/bad/ and counted; an entry of a newer event version stays in
// new/ (counted) until sekisho-control is upgraded.
//
// Release: the item moves held -> releasing in one conditional update (a
// second release of the same item at the same time gets "not held"), the
// dataplane is told to let the message's SHA-256 pass once (announce; the
// control plane's own delivery crosses the wire when the server sits behind
// the appliance), the SMTP client delivers the stored bytes unchanged to
// the original server (the dataplane's recorded destination) or the
// configured relay, with the original envelope sender and the recipients
// the client had given. Accepted by the server: state released with the
// per-recipient replies; refused or failed: back to held with the error
// (the API answers 502). Delete and expiry keep the row (state deleted /
// expired, who and when) and erase the message bytes.
//
// Thread-safety: one Quarantine per Db connection; calls may come from any
// thread (the Db serialises them).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "control/smtp/smtp_client.hpp"
#include "control/db/db.hpp"

namespace sekisho::control::quarantine {

struct Options {
  std::string spool_dir;                 // the dataplane's spool ("" = no spool ingestion)
  int64_t retention_s = 30 * 86400;      // held items expire after this
  std::string relay_host;                // "" = deliver to the original server
  uint16_t relay_port = 25;
  smtp::ClientOptions smtp;
  // Tells the dataplane to pass this SHA-256 once; returns "" or an error.
  // Unset: nothing is announced (delivery does not cross the appliance).
  std::function<std::string(const std::string& sha256)> announce_release;
};

struct Item {
  std::string id;
  int64_t ts_us = 0;
  std::string envelope_sender;  // "" = null sender
  std::vector<std::string> recipients;
  std::string header_from, to_json = "[]", cc_json = "[]";
  std::optional<std::string> reply_to;
  std::string subject, message_id;
  int64_t size = 0;
  std::string sha256, client, server;
  bool tls = false;
  std::string rule, category;
  std::optional<double> score;
  std::string rules_json = "[]", attachments_json = "[]";
  std::string state;  // held, releasing, released, deleted, expired
  int64_t expires_us = 0;
  std::optional<int64_t> changed_us;  // released / deleted / expired at
  std::string changed_by;
  std::string release_json;           // last release attempt ("" if none)
};

struct ItemQuery {
  std::string q, rcpt, sender, category, state;  // substring (ASCII case-insensitive); state exact
  int64_t limit = 100, offset = 0;
};

struct ItemPage {
  std::vector<Item> rows;
  int64_t total = 0;
};

// What a person sees of a held message: never its raw HTML.
struct View {
  std::vector<std::pair<std::string, std::string>> headers;  // top-level fields, decoded
  std::string text;       // text parts as UTF-8, HTML reduced to text
  bool text_truncated = false;
};

struct SpoolStats {
  uint64_t stored = 0, already = 0, bad = 0;
  uint64_t newer = 0;   // written by a newer dataplane: left in the spool
  uint64_t failed = 0;  // the database refused: left in the spool, retried next pass
};

struct ReleaseOutcome {
  bool ok = false;
  std::string error;          // "not found", "not held (released)", SMTP error, ...
  int http_status = 200;      // what the API answers
  nlohmann::json result;      // {target, tls, smtp: [{rcpt, code, text}], final: {...}}
};

// A spool header of an event version newer than this program reads.
struct NewerVersion : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Quarantine {
 public:
  Quarantine(db::Db& db, Options opt);

  SpoolStats ingest_spool(int64_t now_us);
  // Adds one item (the spool header JSON and the bytes); false if stored
  // before. Throws std::invalid_argument for a header that is not a
  // message event with an id, NewerVersion, db::StoreError.
  bool add(const std::string& header_json, const std::string& message, int64_t now_us);

  ItemPage list(const ItemQuery& q);
  std::optional<Item> get(const std::string& id);
  std::optional<std::string> message(const std::string& id);  // the stored bytes (held items)
  std::optional<View> view(const std::string& id);

  ReleaseOutcome release(const std::string& id, const std::string& actor, bool via_relay, int64_t now_us);
  // false when not found or not held.
  bool remove(const std::string& id, const std::string& actor, int64_t now_us);
  // Held items past their expiry: state expired, bytes erased. Returns how many.
  size_t expire(int64_t now_us);
  std::map<std::string, int64_t> counts_by_state();

  const Options& options() const { return opt_; }

 private:
  db::Db& db_;
  Options opt_;
};

// The row as the API shows it (sender "<>" for the null sender).
nlohmann::json item_json(const Item& it);

}  // namespace sekisho::control::quarantine
