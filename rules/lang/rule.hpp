// The rule model: what a parsed rule pack says, before compilation.
//
// A RuleSource is the parser's output for a set of files (SpamAssassin .cf
// syntax plus Sekisho's extensions, rules/README.md). It keeps every rule
// with the file and line that defined it, the rules that cannot run here
// (with a reason), and every error as "file:line: reason".
//
// Thread-safety: plain values; no shared state.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace sekisho::rules {

// Where a rule looks. The numeric values are part of the artifact format.
enum class RuleKind : uint8_t {
  header = 0,      // one header (or pseudo-header) value, block mode
  body = 1,        // rendered text of text parts, Subject first, stream
  rawbody = 2,     // transfer-decoded body, not rendered, stream
  full = 3,        // the raw message, stream
  uri = 4,         // each normalised URL, block mode
  meta = 5,        // expression over other rules
  exists = 6,      // header present (exists:Name)
  envelope = 7,    // MAIL FROM / RCPT TO / HELO, block mode
  attachment = 8,  // attachment name/type/sniffed type (regex) or a flag
  listed = 9,      // a value looked up in a list file
  spoof = 10,      // display name names a brand, domain is not the brand's
  mimeheader = 11, // a header of a MIME part (needs the MIME engine's part headers)
  compare = 12,    // two addresses/domains of the message compared (From vs envelope sender, ...)
  count = 13,      // value: number of envelope recipients or To+Cc addresses
  classed = 14,    // the message's sender class is one of a set
  scored = 15,     // the score of the other rules compared with a number (evaluated last)
};
const char* kind_name(RuleKind k);

// Header value flavours (SpamAssassin ":raw", ":addr", ":name").
enum class HeaderForm : uint8_t { decoded = 0, raw = 1, addr = 2, name = 3 };

enum class EnvelopeField : uint8_t { mail_from = 0, rcpt_to = 1, helo = 2 };

enum class AttachmentField : uint8_t {
  name = 0, type = 1, sniffed = 2, macros = 3, encrypted = 4, size_over = 5, budget_exceeded = 6,
};

// Why the MIME engine stopped unpacking an attachment's archives: bit k of
// match::AttachmentFacts::budget_exceeded is kBudgetReasons[k], the order of
// mime::BudgetReason (scanners/mime/attachment.hpp; tests/unit/rules/
// test_rules_attachment_budget.cpp checks the two agree).
inline constexpr const char* kBudgetReasons[] = {"depth", "entries", "ratio", "bytes",
                                                 "message_bytes", "steps", "time", "worker"};

// What a list value is looked up from.
enum class ListSource : uint8_t {
  from_domain = 0, reply_to_domain = 1, envelope_from_domain = 2, helo = 3,
  rcpt_domain = 4, uri_host = 5, uri = 6, attachment_sha256 = 7, client_ip = 8,
  from_address = 9, envelope_from_address = 10, rcpt_address = 11,
};

// What "compare" rules compare: the first address of the header field (or
// the envelope sender), whole or its domain.
enum class AddressField : uint8_t {
  from_address = 0, from_domain = 1, reply_to_address = 2, reply_to_domain = 3,
  envelope_from_address = 4, envelope_from_domain = 5,
};

// What "count" rules count.
enum class CountField : uint8_t { rcpt_to = 0, to_cc = 1 };

// Comparison of "scored" rules. Values are part of the artifact format.
enum class CompareOp : uint8_t { ge = 0, gt = 1, le = 2, lt = 3, eq = 4, ne = 5 };

enum class ListType : uint8_t { domains = 0, urls = 1, sha256 = 2, ip = 3, addresses = 4 };

// Verdicts, mildest first. Values are part of the artifact format.
// tempfail exists only as a "decide" action (a policy decision), never as a
// threshold or a forced action, so "the highest action wins" never sees it.
enum class Action : uint8_t { pass = 0, tag = 1, quarantine = 2, reject = 3, tempfail = 4 };
const char* action_name(Action a);

// Sender classes (DESIGN.md): P blacklist, G well-known brand, H marketing,
// J abused free-mail, E .jp, D other.
enum class SenderClass : uint8_t { P = 0, G = 1, H = 2, J = 3, E = 4, D = 5 };
char sender_class_letter(SenderClass c);

struct Regex {
  std::string source;  // as written between the delimiters
  std::string mods;    // modifiers as written (i, s, m, x, ...)
};

struct Rule {
  std::string name;
  RuleKind kind = RuleKind::header;
  std::string directive;  // as written (header, body, askdns, uri_detail, ...)
  std::string file;
  int line = 0;

  // Regex rules (header, body, rawbody, full, uri, envelope, attachment name/type/sniffed).
  Regex regex;
  bool has_regex = false;
  bool negate = false;  // header !~

  // header / exists / mimeheader
  std::string header;           // header name as written, or ALL, ToCc, EnvelopeFrom, MESSAGEID
  HeaderForm form = HeaderForm::decoded;
  bool has_unset = false;
  std::string unset_value;      // [if-unset: ...]

  EnvelopeField envelope = EnvelopeField::mail_from;
  AttachmentField attachment = AttachmentField::name;
  uint64_t size_over = 0;  // size > BYTES; for budget_exceeded the kBudgetReasons bits asked for (0: any)

  // listed
  std::string list;
  ListSource list_source = ListSource::from_domain;

  std::string meta;  // meta expression as written

  // compare: left OP right (OP == or !=)
  AddressField compare_left = AddressField::from_address, compare_right = AddressField::envelope_from_address;
  bool compare_equal = false;
  CountField count = CountField::rcpt_to;          // count
  uint8_t classes = 0;                             // classed: bit (1 << SenderClass)
  CompareOp score_op = CompareOp::ge;              // scored
  double score_value = 0;

  // Unsupported rules keep their definition but never run.
  std::string unsupported;  // empty when supported; else the reason
  bool is_eval = false;     // eval: or a network test (excluded from coverage)
};

struct RuleSettings {
  std::array<double, 4> score{1.0, 1.0, 1.0, 1.0};
  bool has_score = false;
  std::string describe;
  std::string tflags;  // as written
  bool multiple = false, nice = false, nosubject = false, net = false;
  uint32_t maxhits = 0;  // 0 = no limit
  std::vector<std::string> categories;
  Action action = Action::pass;  // forced action when the rule hits (Sekisho)
  bool decide = false;           // "decide": the first deciding rule that hits sets the verdict
  Action decision = Action::pass;
  std::string reply;             // "reply": SMTP reply text for a reject/tempfail decision
  std::string file;
  int line = 0;
};

struct ListDef {
  std::string name;
  ListType type = ListType::domains;
  std::string file;  // definition site
  int line = 0;
  std::vector<std::string> entries;  // normalised (lower-case domains, hashes; canonical CIDR)
};

struct BrandDef {
  std::string name;
  Regex display;                 // matched against the From display name
  std::vector<std::string> domains;
  std::string file;
  int line = 0;
};

struct ClassDef {
  SenderClass cls = SenderClass::D;
  std::string list;  // a list of domains (or "brands" for every brand's domains)
  std::string file;
  int line = 0;
};

struct Diagnostic {
  std::string file;
  int line = 0;
  std::string reason;
  std::string text() const { return file + ":" + std::to_string(line) + ": " + reason; }
};

struct RuleSource {
  std::vector<Rule> rules;                      // in definition order (redefinitions replace)
  std::map<std::string, size_t> index;          // name -> rules[i]
  std::map<std::string, RuleSettings> settings; // score/describe/tflags by rule name
  std::vector<ListDef> lists;
  std::vector<BrandDef> brands;
  std::vector<ClassDef> classes;
  std::array<double, 4> thresholds{0, 0, 0, 0};  // by Action; 0 = not set
  std::string version;                           // "ruleset_version" directive, if any
  std::vector<std::string> decide_order;         // rules with "decide", in the order of those lines
  std::vector<Diagnostic> errors;
  std::map<std::string, uint32_t> ignored_directives;  // SpamAssassin settings we accept and ignore
  uint32_t lang_skipped = 0;                     // "lang xx ..." lines (not English)
  std::vector<std::pair<std::string, std::string>> sources;  // (path, bytes) of every file read, in order
  // ReplaceTags (SpamAssassin plugin): applied by finish_source.
  std::map<std::string, std::string> replace_tag, replace_pre, replace_post, replace_inter;
  std::set<std::string> replace_rules;
};

}  // namespace sekisho::rules
