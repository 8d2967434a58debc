// RulesetArtifact: the compiled, versioned ruleset file.
//
//   "SEKISHOR" magic, u32 format version, then length-prefixed sections:
//   ruleset version, SHA-256 of the sources, the rule table, meta programs
//   in evaluation order, header sources, lists, brands, sender classes,
//   thresholds, categories, PCRE2 confirmations (pcre2_serialize), and one
//   hs_serialize_database blob per context database. All integers are
//   little-endian; nothing in it depends on time or on paths, so the same
//   packs give the same bytes.
//
// Reading validates every length and index and never trusts the file; it
// does not deserialize the Hyperscan blobs (scanners/match does).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "rules/lang/meta.hpp"
#include "rules/lang/rule.hpp"

namespace sekisho::rules {

inline constexpr char kArtifactMagic[8] = {'S', 'E', 'K', 'I', 'S', 'H', 'O', 'R'};
// 2: compare/count/classed/scored rules, decide and reply (format 1 is still read).
inline constexpr uint32_t kArtifactFormat = 2;
inline constexpr uint32_t kNone = 0xffffffffu;

// What a database scans. Values are part of the format.
enum class DbContext : uint8_t {
  header = 0,  // one HeaderSource (block)
  body = 1, rawbody = 2, full = 3,  // streams
  uri = 4, mail_from = 5, rcpt_to = 6, helo = 7,
  attachment_name = 8, attachment_type = 9, attachment_sniffed = 10,
  from_name = 11,  // brand display names (block); ids are brand indexes
  mime_header = 12,  // one HeaderSource over the headers of each MIME part (block)
};
const char* db_context_name(DbContext c);
inline bool is_stream(DbContext c) { return c == DbContext::body || c == DbContext::rawbody || c == DbContext::full; }

enum class Confirm : uint8_t {
  none = 0,
  exists = 1,  // Hyperscan hit is a candidate: PCRE2 decides
  count = 2,   // tflags multiple: PCRE2 counts matches (Perl's //g loop)
};

enum RuleFlag : uint8_t {
  flag_subrule = 1,    // name starts with "__": never scored or reported
  flag_multiple = 2,
  flag_nice = 4,
  flag_nosubject = 8,
  flag_active = 16,    // compiled and evaluated (unsupported rules are listed but inactive)
  flag_eval = 32,      // eval:/network (excluded from coverage)
  flag_late = 64,      // scored, or a meta depending on one: evaluated after the others' score
};

struct ArtifactRule {
  std::string name, describe, unsupported, file;
  uint32_t line = 0;
  RuleKind kind = RuleKind::header;
  uint8_t flags = 0;
  uint8_t form = 0;     // HeaderForm / EnvelopeField / AttachmentField / ListSource / CountField /
                        // compare: left AddressField / scored: CompareOp, by kind
  uint8_t arg = 0;      // compare: right AddressField | 0x80 for ==; classed: class bits
  double value = 0;     // scored: the number compared with
  Action decision = Action::pass;  // decide: the verdict (only when flag decides below)
  bool decides = false;
  std::string reply;    // decide reject/tempfail: SMTP reply text ("" = the dataplane's)
  bool negate = false;
  Action action = Action::pass;
  Confirm confirm = Confirm::none;
  uint32_t db = kNone;       // database index for regex rules
  uint32_t source = kNone;   // header source (header/exists), list (listed)
  uint32_t pcre = kNone;     // PCRE2 confirmation index
  uint32_t maxhits = 0;
  uint64_t size_over = 0;
  std::array<double, 4> score{};
  uint32_t meta_begin = 0, meta_len = 0;  // into Artifact::meta_code
  std::vector<uint32_t> categories;       // into Artifact::categories
};

struct HeaderSource {
  std::string name;  // lower-case header name or all, tocc, envelopefrom, messageid
  HeaderForm form = HeaderForm::decoded;
  bool has_unset = false;
  std::string unset;
  uint32_t db = kNone;
};

struct ArtifactList {
  std::string name;
  ListType type = ListType::domains;
  std::vector<std::string> entries;  // sorted
};

struct ArtifactBrand {
  std::string name;
  std::vector<std::string> domains;
};

struct ArtifactDb {
  DbContext context = DbContext::header;
  uint32_t source = kNone;  // header source for DbContext::header
  uint32_t patterns = 0;
  std::string blob;         // hs_serialize_database output (written)
  std::span<const uint8_t> blob_ref;  // read: points into the bytes given to read_artifact
};

struct PcreConfirm {
  std::string pattern;  // as PCRE2 compiles it (Perl source after ReplaceTags)
  uint32_t options = 0;
};

struct Artifact {
  uint32_t format = kArtifactFormat;
  std::string version;
  std::array<uint8_t, 32> source_sha256{};
  std::vector<ArtifactRule> rules;
  std::vector<uint32_t> meta_order;  // meta rules, dependencies first (late ones after the rest)
  std::vector<uint32_t> decide_order;  // deciding rules, first match wins
  std::vector<MetaInstr> meta_code;
  uint32_t meta_depth = 0;
  std::vector<HeaderSource> header_sources;
  std::vector<ArtifactList> lists;
  std::vector<ArtifactBrand> brands;
  std::vector<std::pair<SenderClass, uint32_t>> classes;  // class -> list index (kNone: brands)
  std::array<double, 4> thresholds{};
  std::vector<std::string> categories;
  std::vector<PcreConfirm> pcres;
  std::string pcre_blob;  // pcre2_serialize_encode of all pcres, in order
  std::vector<ArtifactDb> dbs;
};

std::string write_artifact(const Artifact& a);
// Database blobs are not copied: ArtifactDb::blob_ref points into |bytes|,
// which must outlive their use (loading copies them into Hyperscan).
bool read_artifact(std::span<const uint8_t> bytes, Artifact& a, std::string& error);
std::string sha256_hex(const std::array<uint8_t, 32>& d);

}  // namespace sekisho::rules
