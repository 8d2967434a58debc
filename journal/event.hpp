// The dataplane-to-control contract: what one message and one session were,
// as the event journal and the spool header carry them. The dataplane
// builds these from its records (dataplane/pipeline: to_event) and writes
// them with to_json; the control plane reads every line and spool header
// with from_json, once, and maps the event to its rows. Nobody else reads
// or writes the keys (README.md: the keys, the version rule).
//
// The JSON is one object per event, keys as they have always been written
// (nlohmann's object keeps them sorted), plus "v" (kVersion).
//
// Thread-safety: plain data and pure functions.
// Errors: from_json and read_line never throw; they return a ReadError that
// names the key. to_json does not fail (invalid UTF-8 is replaced when the
// object is dumped with to_line).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "scanners/message/message.hpp"
#include "scanners/verdict/verdict.hpp"

namespace sekisho::journal {

// The version this program writes and the newest it reads. Lines without
// "v" were written before the key existed: version 1 (the same keys).
inline constexpr int kVersion = 1;

// Bounds on what a reader accepts (a line is rejected, never truncated).
inline constexpr size_t kMaxLineBytes = 64u << 20;   // one line (JSON text)
inline constexpr size_t kMaxDepth = 16;              // nesting of arrays and objects
inline constexpr size_t kMaxValues = 1u << 20;       // values in one line
inline constexpr size_t kMaxItems = 1u << 18;        // elements of one array, keys of one map

struct RuleHit {
  std::string rule, context;
  bool operator==(const RuleHit&) const = default;
};

// What the content scan found ("score", "rules", "sender_class",
// "categories" of the verdict object, present together when a rule hit or
// a sender class was found).
struct ContentScan {
  double score = 0;
  std::vector<RuleHit> rules;
  std::string sender_class;
  std::vector<std::string> categories;
  bool operator==(const ContentScan&) const = default;
};

struct EventVerdict {
  verdict::Action action = verdict::Action::pass;  // as the event states it: a tagged message says pass
  std::string rule;                                // the deciding (or tagging) rule; "" = key absent
  std::optional<ContentScan> scan;
  bool operator==(const EventVerdict&) const = default;
};

struct Attachment {
  std::string name, type, sniffed_type;
  uint64_t size = 0;
  std::string sha256;
  bool macros = false, encrypted = false, executable = false, double_extension = false, rtlo = false;
  uint32_t archive_entries = 0, depth = 0;
  uint64_t unpacked_bytes = 0;
  // Why the archive walk stopped early (mime::budget_reason_name), present
  // only when it did.
  std::optional<std::vector<std::string>> budget_exceeded;
  bool operator==(const Attachment&) const = default;
};

struct Leaf {
  std::string type, charset, encoding, filename;
  uint64_t size = 0;
  std::string sha256;
  std::optional<std::string> text_sha256;  // text parts that are not attachments
  uint32_t depth = 0;
  std::string text;                        // "" = key absent
  bool operator==(const Leaf&) const = default;
};

// What the MIME engine found (scanners/mime MessageFacts), as top-level keys
// of the message event.
struct MimePart {
  std::string from, from_name;                  // first From mailbox
  std::vector<std::string> to, cc;
  std::optional<std::string> reply_to;
  std::string subject, message_id, date;        // subject decoded to UTF-8
  uint32_t charset_errors = 0;
  uint32_t header_fields = 0;
  bool headers_truncated = false;
  uint32_t parts = 0;
  std::vector<std::string> urls;
  std::vector<Attachment> attachments;
  std::map<std::string, uint32_t> anomalies;    // "mime_anomalies": the counters that are not 0
  std::vector<Leaf> leaves;                     // only when collected; empty = key absent
  bool operator==(const MimePart&) const = default;
};

// "type":"message": one SMTP transaction that reached its end (or the end
// of the connection).
struct MessageEvent {
  int version = kVersion;                   // "v"
  int64_t ts_us = 0;                        // "ts": the packet that ended the transaction
  std::string client, server;               // "src", "dst": "ip:port"
  std::string helo;
  std::string mail_from;                    // "" = the null sender
  std::vector<std::string> rcpt_to;         // accepted by the server, in order
  std::vector<std::string> rcpt_refused;
  bool tls = false;
  std::optional<std::string> auth;         // AUTH mechanism
  uint64_t size = 0;                        // message bytes after dot-unstuffing
  std::optional<std::string> sha256;        // hex, of the message as delivered
  std::optional<int> server_reply;          // reply code to the end of data
  message::BodyVia body_via = message::BodyVia::data;  // "DATA" or "BDAT"
  bool complete = false, gap = false;
  std::optional<MimePart> mime;
  EventVerdict verdict;
  std::string id;                           // reference of a non-pass verdict ("SK..."); "" = key absent
  std::optional<std::string> spool;         // "new/ID.msg" of a held message
  bool operator==(const MessageEvent&) const = default;
};

// "type":"session": one SMTP connection, at its end.
struct SessionEvent {
  int version = kVersion;
  int64_t ts_us = 0, end_us = 0;            // "ts", "end"
  std::string client, server;
  std::string helo, greeting;
  std::vector<std::string> capabilities;
  bool tls = false;
  std::optional<std::string> auth;
  uint64_t commands = 0;
  uint32_t messages = 0;
  uint64_t gaps = 0;
  std::optional<std::string> desync;        // desync.def name
  std::map<std::string, uint32_t> anomalies;  // anomalies.def names, the counters that are not 0
  bool operator==(const SessionEvent&) const = default;
};

struct ReadError {
  bool newer_version = false;  // "v" is newer than kVersion: upgrade the reader, keep the line
  std::string text;            // what is wrong, naming the key
};

nlohmann::json to_json(const MessageEvent& e);
nlohmann::json to_json(const SessionEvent& e);
// The object as one journal line (no newline); invalid UTF-8 becomes U+FFFD.
std::string to_line(const nlohmann::json& j);
// Adds the MIME part's keys to an event object.
void add_mime_json(const MimePart& m, nlohmann::json& j);
// The elements of "attachments" and of the verdict's "rules".
nlohmann::json to_json(const Attachment& a);
nlohmann::json to_json(const RuleHit& h);

// From an object of that type. Missing keys and null take the default; a
// key of the wrong type or value, an array over kMaxItems, "v" newer than
// kVersion: an error, and `out` is unspecified. Unknown keys are ignored.
std::optional<ReadError> from_json(const nlohmann::json& j, MessageEvent& out);
std::optional<ReadError> from_json(const nlohmann::json& j, SessionEvent& out);

// The JSON text of one line, within kMaxLineBytes, kMaxDepth and kMaxValues.
std::optional<ReadError> parse_json(std::string_view text, nlohmann::json& out);

enum class LineType { message, session, other, bad };
// One journal line (without its newline): parsed once, its "type" read, and
// the event filled when the caller asked for that type (a null pointer:
// that type is `other`, not checked further). Lines of other types
// (replay's "summary") are `other`; `bad` sets error.
LineType read_line(std::string_view line, MessageEvent* message, SessionEvent* session, ReadError& error);

}  // namespace sekisho::journal
