// The matching runtime: a loaded ruleset artifact, per-thread scratch, and
// a push-style scan of one message that ends in a verdict.
//
//   Ruleset  (shared, read-only, any number of threads)
//     Scratch  (one per thread per ruleset: Hyperscan scratch, streams,
//               retention buffers, counters; allocated once)
//       MessageScan  (one per message, on that thread)
//          envelope -> header* -> part_header* -> body_text/rawbody/full* (streamed)
//          -> uri* / attachment* (any time) -> finish()
//
// Callbacks never allocate: values are copied into the Scratch's fixed
// buffers (what does not fit is dropped and flagged in the Result), and
// Hyperscan streams are opened once per Scratch and reset per message.
// Nothing here throws.
//
// Matching model (SpamAssassin compatibility; rules/README.md):
//  - header rules see all instances of the header, each followed by "\n";
//    an absent header is "" (or its [if-unset: ...] value); ALL is every
//    field as "Name: value\n"; ToCc, MESSAGEID, EnvelopeFrom are built in;
//    X-Spam-Relays-* and ALL-TRUSTED & co. come from the Received: fields
//    (received.hpp), as SpamAssassin builds them.
//  - body rules see the decoded Subject, "\n", then the body text, as one
//    stream; ^ and $ match at every line (implicit /m), "." never crosses a
//    newline unless /s. rawbody likewise; full sees the raw message as is.
//  - a rule hits once (tflags multiple: PCRE2 counts matches, up to maxhits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rules/artifact/artifact.hpp"

namespace sekisho::match {

using rules::Action;
using rules::SenderClass;

struct AttachmentFacts {
  std::string_view name;          // file name (RFC 2231 decoded), "" if none
  std::string_view type;          // declared Content-Type, lower-case, no parameters
  std::string_view sniffed_type;  // from the bytes (libmagic MIME type), "" if unknown
  uint64_t size = 0;              // decoded bytes
  std::string_view sha256;        // lower-case hex of the decoded bytes
  bool macros = false;            // Office document with VBA macros
  bool encrypted = false;         // encrypted archive or document
  uint32_t budget_exceeded = 0;   // bit k: unpacking stopped on rules::kBudgetReasons[k] (mime::BudgetReason)
};

struct Hit {
  std::string_view rule;      // rule name
  std::string_view context;   // "header:subject", "body", "uri", "meta", "attachment:name", ...
  std::string_view describe;
  uint32_t count = 0;         // 1, or the count for tflags multiple
  double score = 0;
};

struct Result {
  std::vector<Hit> hits;  // scored rules that hit (never "__" sub-rules), in rule order
  double score = 0;
  std::vector<std::string_view> categories;  // sorted, unique
  SenderClass sender_class = SenderClass::D;
  Action action = Action::pass;
  // Set when a "decide" rule hit: the first one in decide order chose
  // |action| (thresholds and forced actions do not apply then); |reply| is
  // its SMTP reply text ("" = the dataplane's default for the action).
  std::string_view decided_by;
  std::string_view reply;
  uint32_t unconfirmed = 0;        // PCRE2 candidates beyond the retention limit (not counted as hits)
  bool truncated = false;          // a value did not fit the Scratch limits (headers, retention)
};

class Ruleset;

struct ScratchLimits {
  size_t retain_bytes = 4u << 20;  // per stream context with PCRE2 rules (body, rawbody, full)
  size_t header_bytes = 1u << 20;  // header names, values, envelope, derived values
  size_t max_headers = 4096;
};

// Per-thread state for one Ruleset. Not thread-safe; reuse it for every
// message of its thread. ok() is false if Hyperscan could not allocate.
class Scratch {
 public:
  explicit Scratch(const Ruleset& rs, ScratchLimits limits = {});
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  bool ok() const { return ok_; }
  struct State;
  State& state() { return *st_; }

 private:
  std::unique_ptr<State> st_;
  bool ok_ = false;
};

// A loaded artifact. load() deserializes the Hyperscan databases and the
// PCRE2 confirmations; it never compiles a pattern. Immutable afterwards:
// share it between threads (each with its own Scratch).
class Ruleset {
 public:
  static std::unique_ptr<Ruleset> load(const std::string& path, std::string& error);
  static std::unique_ptr<Ruleset> load_bytes(std::span<const uint8_t> bytes, std::string& error);
  ~Ruleset();
  Ruleset(const Ruleset&) = delete;
  Ruleset& operator=(const Ruleset&) = delete;

  const rules::Artifact& artifact() const { return a_; }
  std::string_view version() const { return a_.version; }
  size_t rule_count() const { return a_.rules.size(); }
  // Index of a rule by name, or rules::kNone.
  uint32_t find(std::string_view name) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  Ruleset();
  rules::Artifact a_;
  std::unique_ptr<Impl> impl_;
};

// One message. Construct, feed, finish; then destroy (or reset() and reuse).
// The per-message state lives in the Scratch (constructing a MessageScan
// allocates nothing), so a Scratch serves one MessageScan at a time.
class MessageScan {
 public:
  MessageScan(const Ruleset& rs, Scratch& scratch);
  ~MessageScan();
  MessageScan(const MessageScan&) = delete;
  MessageScan& operator=(const MessageScan&) = delete;

  void envelope(std::string_view mail_from, std::span<const std::string> rcpt_to, std::string_view helo);
  void client_ip(std::string_view ip);
  // Every header field of the top-level message, in order. raw_value is as
  // received (folded, undecoded), decoded_value unfolded and RFC 2047-decoded.
  // Top-level fields also count as the root part's headers for mimeheader rules.
  void header(std::string_view name, std::string_view raw_value, std::string_view decoded_value);
  // Header fields of nested MIME parts (mimeheader rules).
  void part_header(std::string_view name, std::string_view raw_value, std::string_view decoded_value);
  void body_text(std::span<const uint8_t> bytes);  // rendered UTF-8 text of text parts, streamed
  void rawbody(std::span<const uint8_t> bytes);    // transfer-decoded body, not rendered, streamed
  void full(std::span<const uint8_t> bytes);       // the raw message as received, streamed
  void uri(std::string_view normalised_url);
  void attachment(const AttachmentFacts& facts);
  // Ends the message: flushes the streams, confirms candidates, evaluates
  // header, list, meta and brand rules, scores, classes and decides.
  void finish(Result& out);
  Result finish();
  // As finish(), and copies every rule's value (by rule index: hit count
  // after negation and maxhits; 0/1 for metas; 0 for inactive rules) into
  // |values|, "__" sub-rules and unscored rules included (explain, tests).
  void finish(Result& out, std::vector<double>& values);
  // Ready for the next message (finish() also leaves it ready).
  void reset();

 private:
  const Ruleset& rs_;
  Scratch::State& st_;
  std::vector<double>* values_out_ = nullptr;
};

// Convenience for tools and tests: the text of a string as bytes.
inline std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace sekisho::match
