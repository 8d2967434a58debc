#include "scanners/mime/mime_parser.hpp"

#include <algorithm>
#include <cstring>

namespace sekisho::mime {
namespace {

// RFC 2046: a boundary is at most 70 characters; "--" before, "--" after,
// then transport padding. Senders exceed all of that: a delimiter candidate
// is kept up to the longest open delimiter plus this much, and a longer line
// is judged by that prefix alone (so the answer does not depend on where
// chunks are cut).
constexpr size_t kMaxBoundaryLine = 1024;
// Lines after a non-field line in a header block are also read as fields
// when they are at most this long.
constexpr size_t kMaxShadowLine = 4096;
constexpr size_t kSlice = 64 * 1024;  // decode in slices of this much input

bool pad_only(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t'; });
}

// Content-Type, -Transfer-Encoding, -Disposition: 0, 1, 2; else -1.
int content_field_index(std::string_view name) {
  return name_is(name, "content-type") ? 0 : name_is(name, "content-transfer-encoding") ? 1
       : name_is(name, "content-disposition") ? 2 : -1;
}

// A content field's value compared for conflicts: unfolded, lower case,
// without white space.
std::string content_key(std::string_view raw) {
  std::string k;
  for (char c : unfold(raw))
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') k.push_back(c >= 'A' && c <= 'Z' ? char(c + 32) : c);
  return k;
}

std::string_view trim_end(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Hands a nested (encoded) message's output to the parent's sink: its
// header fields are those of a part.
class NestedSink final : public MimeSink {
 public:
  MimeSink* up = nullptr;
  void on_header(std::string_view n, std::string_view r, std::string_view d) override { up->on_part_header(n, r, d); }
  void on_part_begin() override { up->on_part_begin(); }
  void on_part_header(std::string_view n, std::string_view r, std::string_view d) override { up->on_part_header(n, r, d); }
  void on_text(std::string_view t) override { up->on_text(t); }
  void on_rawbody(std::string_view t) override { up->on_rawbody(t); }
  void on_attachment(const AttachmentFacts& a) override { up->on_attachment(a); }
};

// The first "\n-" in p[i..n) (its '\n'), or null. '-' is rare in encoded
// bodies (not in the base64 alphabet), so memchr on it beats memmem.
const uint8_t* nl_dash(const uint8_t* p, size_t i, size_t n) {
  for (size_t k = i + 1; k < n;) {
    const uint8_t* d = static_cast<const uint8_t*>(std::memchr(p + k, '-', n - k));
    if (!d) return nullptr;
    if (d[-1] == '\n') return d - 1;
    k = size_t(d - p) + 1;
  }
  return nullptr;
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o)
    if (c >= 'A' && c <= 'Z') c = char(c + 32);
  return o;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

std::string hex(const unsigned char* md, unsigned len) {
  static const char kHex[] = "0123456789abcdef";
  std::string s(len * 2, '0');
  for (unsigned i = 0; i < len; ++i) s[2 * i] = kHex[md[i] >> 4], s[2 * i + 1] = kHex[md[i] & 15];
  return s;
}

std::string digest_hex(EVP_MD_CTX* c) {
  unsigned char md[32];
  unsigned len = 0;
  if (!c || EVP_DigestFinal_ex(c, md, &len) != 1) return "";
  return hex(md, len);
}

}  // namespace

MimeParser::MimeParser(const MimeLimits& limits, MimeSink* sink)
    : limits_(limits), sink_(sink), html_(this), own_urls_(limits.max_urls) {
  if (limits_.leaf_digests) {
    leaf_sha_ = EVP_MD_CTX_new();
    text_sha_ = EVP_MD_CTX_new();
  }
}

MimeParser::~MimeParser() {
  EVP_MD_CTX_free(leaf_sha_);
  EVP_MD_CTX_free(text_sha_);
}

void MimeParser::reset() {
  facts_ = MessageFacts{};
  if (att_) att_->begin_message();  // the next message's attachments share a fresh unpacking budget
  mode_ = Mode::headers;
  top_ = true;
  finished_ = false;
  msg_depth_ = 0;
  default_rfc822_ = false;
  frames_.clear();
  hdr_.clear();
  if (hdr_.capacity() > 65536) hdr_.shrink_to_fit();
  hdr_over_ = false;
  line_.clear();
  mid_line_ = false;
  skip_line_ = false;
  shadow_ = false;
  shadow_nested_ = false;
  shadow_pre_.clear();
  shadow_hdr_.clear();
  pending_n_ = 0;
  leaf_ = Leaf::discard;
  own_urls_.reset();
  urls_ = &own_urls_;
}

void MimeParser::on_attribute_url(std::string_view url) { urls_->attribute(url); }

size_t MimeParser::max_delim_line() const {
  size_t m = 0;
  for (const Frame& f : frames_) m = std::max(m, f.delim.size());
  return m + kMaxBoundaryLine;
}

int MimeParser::match_boundary(const uint8_t* p, size_t n, bool& close, std::string_view& junk) {
  // p[0..n) is a line without its EOL, starting with "--". Tried on every
  // open multipart, in this order: strict (only padding after the boundary,
  // as Python and GMime read); strict with the boundary's trailing white
  // space removed (RFC 2046 forbids it; Python strips it, GMime and mime4j
  // do not); lenient (the boundary begins the line: RFC 2046's note to
  // implementors, mime4j), innermost first. A line longer than
  // max_delim_line() is judged by that prefix, leniently.
  // Inside an attachment or an encoded message that is not base64 only the
  // first applies: such a line can be the file's own bytes, which strict
  // readers (GMime, Python, most clients) keep, so they stay in it and the
  // ambiguity is counted (boundary_junk). In base64 ('-' is no base64
  // character) the line cannot be file content, and the lenient rule keeps
  // the parts mime4j would show.
  size_t keep = max_delim_line();
  stripped_match_ = false;
  junk = {};
  bool whole = n <= keep;
  bool strict_only =
      mode_ == Mode::leaf && !hidden_ && (leaf_ == Leaf::attachment || leaf_ == Leaf::message) && cte_ != Cte::base64;
  std::string_view l(reinterpret_cast<const char*>(p), whole ? n : keep);
  auto rest_of = [&](std::string_view d, bool& c) {
    std::string_view rest = l.substr(d.size());
    c = rest.size() >= 2 && rest[0] == '-' && rest[1] == '-';
    if (c) rest.remove_prefix(2);
    return rest;
  };
  auto starts = [&](std::string_view d) { return l.size() >= d.size() && l.compare(0, d.size(), d) == 0; };
  if (whole) {
    for (int k = int(frames_.size()) - 1; k >= 0; --k) {
      const std::string& d = frames_[size_t(k)].delim;
      if (starts(d) && pad_only(rest_of(d, close))) return k;
    }
    for (int k = int(frames_.size()) - 1; k >= 0; --k) {
      std::string_view ds = trim_end(frames_[size_t(k)].delim);
      if (ds.size() < frames_[size_t(k)].delim.size() && starts(ds) && pad_only(rest_of(ds, close))) {
        if (strict_only) {
          ++facts_.boundary_junk;
          return -1;
        }
        stripped_match_ = true;
        return k;
      }
    }
  }
  for (int k = int(frames_.size()) - 1; k >= 0; --k) {
    const std::string& d = frames_[size_t(k)].delim;
    if (!starts(d)) continue;
    if (strict_only) {
      ++facts_.boundary_junk;
      return -1;
    }
    junk = pad_only(rest_of(d, close)) ? std::string_view{} : l;  // the whole line, as a strict reader shows it
    return k;
  }
  return -1;
}

bool MimeParser::long_delimiter(const uint8_t* p, size_t n) {
  bool close = false;
  std::string_view junk;
  int k = match_boundary(p, n, close, junk);
  if (k < 0) return false;
  pending_n_ = 0;
  if (mode_ == Mode::headers) end_headers();
  boundary(k, close, junk, true);
  skip_line_ = true;
  mid_line_ = false;
  return true;
}

void MimeParser::feed(std::span<const uint8_t> bytes) {
  if (finished_) return;
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    if (skip_line_) {  // the rest of an over-long delimiter line
      const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p + i, '\n', n - i));
      if (!nl) return;
      i = size_t(nl - p) + 1;
      skip_line_ = false;
      continue;
    }
    // No multipart open and inside a leaf (a single-part message, or an
    // epilogue): no line can change anything, so no line is looked at.
    if (frames_.empty() && line_.empty() && !shadow_ && (mode_ == Mode::leaf || mode_ == Mode::epilogue)) {
      if (mode_ == Mode::leaf) {
        if (pending_n_) body(pending_eol_, pending_n_), pending_n_ = 0;
        body(p + i, n - i);
      }
      mid_line_ = n > i && p[n - 1] != '\n';
      return;
    }
    if (mode_ == Mode::leaf && line_.empty() && !shadow_) {
      // A leaf inside a multipart: only lines starting with '-' can end it.
      // Content between them is passed on in runs found by a memchr for '-', not
      // line by line; each content line's EOL is held (see pending_eol_).
      if (!mid_line_ && p[i] == '-') {  // a line start that may be a delimiter
        const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p + i, '\n', n - i));
        if (!nl) {  // cut by the chunk's end
          size_t keep = max_delim_line();
          if ((n - i < 2 || p[i + 1] == '-') && n - i <= keep) line_.assign(reinterpret_cast<const char*>(p + i), n - i);
          else if (!(p[i + 1] == '-' && n - i > keep && long_delimiter(p + i, n - i))) fragment(p + i, n - i);
          return;
        }
        size_t len = size_t(nl - (p + i)) + 1;
        size_t eol = len >= 2 && p[i + len - 2] == '\r' ? 2 : 1;
        if (len - eol >= 2 && p[i + 1] == '-') {
          bool close = false;
          std::string_view junk;
          int k = match_boundary(p + i, len - eol, close, junk);
          if (k >= 0) {
            pending_n_ = 0;  // the EOL before the delimiter is the delimiter's
            boundary(k, close, junk, len - eol > kMaxBoundaryLine);
            i += len;
            continue;  // the mode changed
          }
        }
        if (pending_n_) body(pending_eol_, pending_n_);
        body(p + i, len - eol);
        std::memcpy(pending_eol_, p + i + len - eol, eol);
        pending_n_ = uint8_t(eol);
        i += len;
        continue;
      }
      const uint8_t* q = nl_dash(p, i, n);
      const uint8_t* last = q ? q : static_cast<const uint8_t*>(memrchr(p + i, '\n', n - i));
      if (last) {  // complete lines up to |last|: one run
        size_t stop = size_t(last - p) + 1;
        size_t eol = stop - i >= 2 && p[stop - 2] == '\r' ? 2 : 1;
        if (pending_n_) body(pending_eol_, pending_n_);
        body(p + i, stop - i - eol);
        std::memcpy(pending_eol_, p + stop - eol, eol);
        pending_n_ = uint8_t(eol);
        mid_line_ = false;
        i = stop;
        continue;
      }
      fragment(p + i, n - i);  // the start of a line that is not a delimiter, or more of one
      return;
    }
    // Everything else goes line by line: header blocks, bytes no one reads,
    // and lines cut by chunk boundaries.
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p + i, '\n', n - i));
    size_t take = nl ? size_t(nl - (p + i)) + 1 : n - i;
    if (!nl) {
      // Incomplete: keep it if it can still matter (headers, a delimiter candidate).
      bool keep;
      std::string_view sofar = line_;
      bool candidate = !mid_line_ && (sofar.size() >= 2 ? sofar[0] == '-' && sofar[1] == '-'
                                                        : (sofar.empty() ? (p[i] == '-' && (take < 2 || p[i + 1] == '-'))
                                                                         : (p[i] == '-')));
      size_t delim_keep = max_delim_line();
      bool delim_fits = candidate && line_.size() + take <= delim_keep;
      if (mode_ == Mode::headers) {
        size_t cap = top_ ? limits_.max_header_bytes : limits_.max_part_header_bytes;
        keep = hdr_.size() + line_.size() + take <= cap + kMaxBoundaryLine || delim_fits;
      } else {
        keep = delim_fits || (shadow_ && !mid_line_ && line_.size() + take <= kMaxShadowLine);
      }
      if (keep) {
        line_.append(reinterpret_cast<const char*>(p + i), take);
      } else {
        if (candidate && line_.size() + take > delim_keep) {
          std::string l;
          l.swap(line_);
          l.append(reinterpret_cast<const char*>(p + i), take);
          if (long_delimiter(reinterpret_cast<const uint8_t*>(l.data()), l.size())) return;
          line_.swap(l);
          line_.resize(line_.size() - take);
        }
        if (mode_ == Mode::leaf) {
          std::string frag;
          frag.swap(line_);
          frag.append(reinterpret_cast<const char*>(p + i), take);
          fragment(reinterpret_cast<const uint8_t*>(frag.data()), frag.size());
          i = n;
          break;
        } else if (mode_ == Mode::headers && !hdr_over_) {
          ++facts_.header_truncated;
          hdr_over_ = true;
        }
        line_.clear();
        mid_line_ = true;
      }
      i = n;
      break;
    }
    if (!line_.empty()) {
      line_.append(reinterpret_cast<const char*>(p + i), take);
      i += take;
      std::string l;
      l.swap(line_);
      size_t eol = l.size() >= 2 && l[l.size() - 2] == '\r' ? 2 : 1;
      line(reinterpret_cast<const uint8_t*>(l.data()), l.size(), eol);
      if (line_.empty()) line_.swap(l), line_.clear();  // keep the capacity
    } else {
      size_t eol = take >= 2 && p[i + take - 2] == '\r' ? 2 : 1;
      line(p + i, take, eol);
      i += take;
    }
  }
}

// Part of a line that cannot be a delimiter, passed on before its end is
// seen. A trailing CR is held back: with the LF after it, it is the line's
// EOL, which belongs to a delimiter on the next line.
void MimeParser::fragment(const uint8_t* p, size_t n) {
  if (pending_n_ && !mid_line_) body(pending_eol_, pending_n_);
  pending_n_ = 0;
  size_t k = n && p[n - 1] == '\r' ? n - 1 : n;
  body(p, k);
  line_.assign(reinterpret_cast<const char*>(p + k), n - k);
  mid_line_ = true;
}

// One complete line (with its EOL), in any mode.
void MimeParser::line(const uint8_t* p, size_t n, size_t eol) {
  bool cont = mid_line_;
  mid_line_ = false;
  size_t text = n - eol;
  if (!cont && !frames_.empty() && text >= 2 && p[0] == '-' && p[1] == '-') {
    bool close = false;
    std::string_view junk;
    int k = match_boundary(p, text, close, junk);
    if (k >= 0) {
      pending_n_ = 0;
      if (mode_ == Mode::headers) end_headers();  // a part with no blank line after its headers
      boundary(k, close, junk, text > kMaxBoundaryLine);
      return;
    }
  }
  switch (mode_) {
    case Mode::headers: {
      if (cont) return;  // the rest of an over-long header line
      if (text == 0) {
        end_headers();
        return;
      }
      size_t cap = top_ ? limits_.max_header_bytes : limits_.max_part_header_bytes;
      if (!hdr_over_ && hdr_.size() + n <= cap && garbage_line(p, text)) {
        // Python starts the body here; what follows up to the blank line is
        // read as fields too (shadow_), as GMime and mime4j do.
        ++facts_.header_block_garbage;
        shadow_pre_ = hdr_;
        bool was_top = top_;
        end_headers();
        bool nested = mode_ == Mode::headers;  // a message/rfc822 part: its message begins
        if (mode_ == Mode::leaf) {
          shadow_ = true;
          shadow_nested_ = false;
          shadow_top_ = was_top;
          shadow_hdr_.clear();
        }
        line(p, n, eol);  // the body's first line (or a nested message's first header line)
        // For GMime the line was the part's, and its message begins after the blank line.
        if (nested && shadow_) shadow_nested_ = true;
        return;
      }
      if (!hdr_over_ && hdr_.size() + n <= cap) {
        hdr_.append(reinterpret_cast<const char*>(p), n);
      } else if (!hdr_over_) {  // over the limit: the rest of the block is dropped
        hdr_over_ = true;
        ++facts_.header_truncated;
      }
      return;
    }
    case Mode::leaf:
      if (shadow_) {
        if (!cont && text == 0) {
          if (shadow_end(true)) return;  // the blank line ended the second reading's header block
        } else if (!cont && n <= kMaxShadowLine) {
          size_t cap = (shadow_top_ ? limits_.max_header_bytes : limits_.max_part_header_bytes);
          if (shadow_pre_.size() + shadow_hdr_.size() + n <= cap) shadow_hdr_.append(reinterpret_cast<const char*>(p), n);
          else shadow_end(false);
        }
      }
      if (pending_n_ && !cont) body(pending_eol_, pending_n_);
      pending_n_ = 0;
      body(p, text);
      std::memcpy(pending_eol_, p + text, eol);
      pending_n_ = uint8_t(eol);
      return;
    case Mode::epilogue:
      return;
  }
}

bool MimeParser::garbage_line(const uint8_t* p, size_t text) const {
  // Python's test (email.feedparser headerRE): a field name is printable
  // ASCII without ':' and runs up to a ':'; a line starting with white
  // space continues a field; an mbox "From " line is no body.
  if (text == 0 || p[0] == ' ' || p[0] == '\t') return false;
  if (text >= 5 && std::memcmp(p, "From ", 5) == 0) return false;
  for (size_t i = 0; i < text; ++i) {
    if (p[i] == ':') return false;
    if (p[i] < 0x21 || p[i] > 0x7e) return true;
  }
  return true;
}

// The header block that began at a non-field line ended (at a blank line,
// a delimiter or the end of the message). Its fields are added to what was
// read. The body after the blank line is read afresh, as GMime and mime4j
// read it, when those fields declare how the content is encoded or typed and
// the block before did not, or when the part is encoded or an attachment
// (the stray lines would shift its bytes: an executable no longer looks like
// one); the lines before it were already scanned as the first reading's body.
// A text part is one reading: the second is its tail.
bool MimeParser::shadow_end(bool blank) {
  shadow_ = false;
  // The first value of each content field (as end_headers reads them): a
  // later one that differs is a conflict, as in one block.
  std::string first[3];
  bool seen[3] = {false, false, false}, content = false;
  auto content_field = [&](std::string_view name, std::string_view raw, bool later) {
    int k = content_field_index(name);
    if (k < 0) return;
    std::string v = content_key(raw);
    if (!seen[k]) {
      seen[k] = true;
      first[k] = std::move(v);
      content |= later;
    } else if (later && v != first[k]) {
      ++facts_.conflicting_content_fields;
    }
  };
  for_each_field(shadow_pre_, [&](std::string_view name, std::string_view raw) { content_field(name, raw, false); });
  FactsBuilder b{facts_.header, top_flags_.fallback};
  b.have_from = top_flags_.from, b.have_subject = top_flags_.subject, b.have_mid = top_flags_.mid,
  b.have_date = top_flags_.date;
  uint32_t errors_before = facts_.header.charset_errors;
  for_each_field(shadow_hdr_, [&](std::string_view name, std::string_view raw) {
    if (shadow_top_) {
      b.field(name, raw);
      if (sink_) {
        uint32_t e = 0;
        sink_->on_header(name, raw, decode_words(trim(unfold(raw)), e, top_flags_.fallback));
      }
    } else if (sink_) {
      uint32_t e = 0;
      sink_->on_part_header(name, raw, decode_words(trim(unfold(raw)), e));
    }
    content_field(name, raw, true);
  });
  if (shadow_top_) {
    top_flags_.from = b.have_from, top_flags_.subject = b.have_subject, top_flags_.mid = b.have_mid,
    top_flags_.date = b.have_date;
    facts_.charset_errors += facts_.header.charset_errors - errors_before;
  }
  if (blank && shadow_nested_ && mode_ == Mode::leaf && leaf_ != Leaf::discard && !hidden_) {
    ++facts_.header_after_garbage;
    end_leaf();
    mode_ = Mode::headers;  // the message of the message/rfc822 part, as GMime reads it
    top_ = false;
    hdr_.clear();
    hdr_over_ = false;
    shadow_nested_ = false;
    shadow_pre_.clear();
    shadow_hdr_.clear();
    return true;
  }
  shadow_nested_ = false;
  bool shifted = leaf_ == Leaf::attachment || leaf_ == Leaf::message || cte_ != Cte::identity;
  if (blank && (content || shifted) && mode_ == Mode::leaf && leaf_ != Leaf::discard && !hidden_) {
    ++facts_.header_after_garbage;
    end_leaf();
    hdr_ = shadow_pre_;
    hdr_.append(shadow_hdr_);
    end_headers(true);
    shadow_pre_.clear();
    shadow_hdr_.clear();
    return true;
  }
  shadow_pre_.clear();
  shadow_hdr_.clear();
  return false;
}

// junk: a delimiter line with text after the boundary (lenient match). A
// strict reader shows that line as content, so it is scanned as text.
void MimeParser::boundary(int k, bool close, std::string_view junk, bool long_line) {
  facts_.long_boundary_line += long_line;
  facts_.boundary_trailing_space += stripped_match_;
  stripped_match_ = false;
  if (shadow_) shadow_end(false);
  if (mode_ == Mode::leaf) end_leaf();
  if (!junk.empty()) {
    ++facts_.boundary_junk;
    loose_text(junk);
  }
  // Multiparts inside frame k that never closed.
  while (int(frames_.size()) - 1 > k) {
    ++facts_.missing_close_boundary;
    frames_.pop_back();
  }
  const Frame& f = frames_[size_t(k)];
  msg_depth_ = f.msg_depth;
  if (close) {
    frames_.pop_back();
    begin_hidden();
    return;
  }
  default_rfc822_ = f.digest;
  mode_ = Mode::headers;
  top_ = false;
  hdr_.clear();
  hdr_over_ = false;
}

// reread: the same entity's header block again, longer (shadow_end): only
// how its content is read is decided again.
// Text that belongs to no part in the engine's reading but that another
// reader shows: scanned as a text part of its own (UTF-8, invalid bytes
// replaced).
void MimeParser::loose_text(std::string_view raw) {
  TextDecoder d;
  d.begin("");
  std::string t;
  d.feed(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), t);
  d.finish(t);
  facts_.text_bytes += t.size();
  urls_->text(t.data(), t.size());
  urls_->end_text();
  if (sink_) sink_->on_text(t), sink_->on_text("\n");
}

void MimeParser::end_headers(bool reread) {
  if (reread) top_ = false;
  else ++facts_.parts;
  if (!reread && !hdr_.empty() && (hdr_[0] == ' ' || hdr_[0] == '\t')) {
    // Lines of white space-led text before the first field continue no
    // field: Python and the engine ignore them as fields, a reader that
    // cut the parts elsewhere shows them. Scanned as text.
    size_t e = 0;
    while (e < hdr_.size() && (hdr_[e] == ' ' || hdr_[e] == '\t')) {
      size_t nl = hdr_.find('\n', e);
      e = nl == std::string::npos ? hdr_.size() : nl + 1;
    }
    ++facts_.header_leading_continuation;
    loose_text(std::string_view(hdr_).substr(0, e));
  }
  bool over_parts = facts_.parts > limits_.max_parts;
  if (!reread && over_parts && facts_.parts == limits_.max_parts + 1) ++facts_.parts_exceeded;
  ContentField ctype, disp;
  std::string cte;
  bool have_ctype = false;
  std::string first_content[3];
  bool seen_content[3] = {false, false, false};
  FactsBuilder top_facts{facts_.header, {}};
  bool eight_bit = false;
  if (top_)
    for (unsigned char c : hdr_)
      if (c >= 0x80 || c == 0x1b) {
        eight_bit = true;
        break;
      }
  if (eight_bit) {  // raw 8-bit header text is read in the charset the message declares
    for_each_field(hdr_, [&](std::string_view name, std::string_view raw) {
      if (name_is(name, "content-type") && top_facts.fallback.empty()) {
        uint32_t e = 0;
        ContentField cf = parse_content_field(raw, e);
        if (const std::string* cs = cf.param("charset")) top_facts.fallback = *cs;
      }
    });
  }
  const bool top = top_;
  if (!top && sink_ && !reread) sink_->on_part_begin();
  for_each_field(hdr_, [&](std::string_view name, std::string_view raw) {
    if (reread) {
    } else if (top) {
      top_facts.field(name, raw);
      if (sink_) {
        uint32_t e = 0;
        sink_->on_header(name, raw, decode_words(trim(unfold(raw)), e, top_facts.fallback));
      }
    } else if (sink_) {
      uint32_t e = 0;
      sink_->on_part_header(name, raw, decode_words(trim(unfold(raw)), e));
    }
    if (name_is(name, "content-type") && !have_ctype) {
      have_ctype = true;
      ctype = parse_content_field(raw, facts_.charset_errors);
    } else if (name_is(name, "content-transfer-encoding") && cte.empty()) {
      // The first token ("base64 (comment)", "base64; junk"): GMime reads
      // it so, Python compares the whole value and decodes nothing.
      std::string v = lower(trim(unfold(raw)));
      size_t end = v.find_first_of(" \t;(\"");
      cte = v.substr(0, end);
      if (end != std::string::npos && !reread) ++facts_.encoding_junk;
    } else if (name_is(name, "content-disposition") && disp.value.empty()) {
      disp = parse_content_field(raw, facts_.charset_errors);
    }
    // A second one that differs: the first is read (Python, mime4j), GMime reads the last.
    if (int k = content_field_index(name); k >= 0 && !reread) {
      std::string v = content_key(raw);
      if (!seen_content[k]) seen_content[k] = true, first_content[k] = std::move(v);
      else if (v != first_content[k]) ++facts_.conflicting_content_fields;
    }
  });
  if (top_) {
    facts_.header.complete = true;
    facts_.header.truncated = hdr_over_;
    facts_.charset_errors += facts_.header.charset_errors;
    top_flags_ = TopFlags{top_facts.have_from, top_facts.have_subject, top_facts.have_mid, top_facts.have_date,
                          top_facts.fallback};
  }
  top_ = false;
  hdr_.clear();
  hdr_over_ = false;
  if (!reread) entity_rfc822_ = default_rfc822_;
  std::string type = ctype.value;
  if (type.empty() || type.find('/') == std::string::npos) type = entity_rfc822_ ? "message/rfc822" : "text/plain";
  default_rfc822_ = false;
  uint32_t depth = uint32_t(frames_.size()) + msg_depth_;
  Cte enc = cte == "base64" ? Cte::base64 : cte == "quoted-printable" ? Cte::qp : Cte::identity;

  if (over_parts) {
    begin_leaf(Leaf::discard, Cte::identity, type, "", "");
    return;
  }
  if (type.compare(0, 10, "multipart/") == 0) {
    const std::string* b = ctype.param("boundary");
    if (!b || b->empty()) {
      ++facts_.no_boundary;
      begin_leaf(Leaf::text, enc, "text/plain", "", "");  // as Python does: the body is text
      return;
    }
    if (depth >= limits_.max_depth) {
      ++facts_.depth_exceeded;
      begin_leaf(Leaf::discard, Cte::identity, type, "", "");
      return;
    }
    frames_.push_back(Frame{"--" + *b, msg_depth_, type == "multipart/digest"});
    begin_hidden();
    return;
  }
  const std::string* fname = disp.param("filename");
  if (!fname || fname->empty()) fname = ctype.param("name");
  std::string filename = fname ? *fname : "";
  bool attachment = disp.value == "attachment" || !filename.empty();
  // A forwarded message is parsed, attached or not, in any transfer
  // encoding (mime4j decodes; Python and GMime read the encoded text, which
  // shows nothing): what it carries is scanned.
  if (type == "message/rfc822" || type == "message/global") {
    if (depth >= limits_.max_depth) {
      ++facts_.depth_exceeded;
      begin_leaf(Leaf::discard, Cte::identity, type, "", "");
      return;
    }
    if (enc != Cte::identity) {
      begin_nested(enc);
      return;
    }
    ++msg_depth_;  // the encapsulated message's own header block comes next
    mode_ = Mode::headers;
    return;
  }
  const std::string* cs = ctype.param("charset");
  std::string charset = cs ? *cs : "";
  Leaf kind;
  if (attachment) kind = Leaf::attachment;
  else if (type == "text/html") kind = Leaf::html;
  else if (type.compare(0, 5, "text/") == 0 || type.compare(0, 8, "message/") == 0) kind = Leaf::text;
  else kind = Leaf::attachment;
  begin_leaf(kind, enc, std::move(type), std::move(charset), std::move(filename));
  leaf_info_.encoding = cte;
}

// Preambles and epilogues are no part of the message a reader sees, but a
// multipart whose boundary never comes is all preamble, and some clients show
// it: their text is scanned (not listed as a part).
void MimeParser::begin_hidden() {
  begin_leaf(Leaf::text, Cte::identity, "text/plain", "", "");
  hidden_ = true;
}

void MimeParser::begin_leaf(Leaf kind, Cte cte, std::string type, std::string charset, std::string filename) {
  mode_ = Mode::leaf;
  hidden_ = false;
  leaf_ = kind;
  cte_ = cte;
  b64_.reset();
  qp_.reset();
  pending_n_ = 0;
  if (kind == Leaf::text || kind == Leaf::html) text_dec_.begin(charset);
  if (kind == Leaf::html) html_.reset();
  if (kind == Leaf::attachment) {
    if (!att_) att_ = std::make_unique<AttachmentAnalyzer>(limits_.attachment);
    att_->begin(filename, type, msg_depth_);
  }
  if (limits_.leaf_digests) {
    leaf_info_ = LeafInfo{};
    leaf_info_.type = std::move(type);
    leaf_info_.charset = std::move(charset);
    leaf_info_.filename = std::move(filename);
    leaf_info_.depth = msg_depth_;
    EVP_DigestInit_ex(leaf_sha_, EVP_sha256(), nullptr);
    EVP_DigestInit_ex(text_sha_, EVP_sha256(), nullptr);
  }
}

// An encoded message is parsed by a child parser fed the decoded bytes; it
// shares the URL collector and the sink, and its facts join these at the
// end. Children nest at most max_depth deep (each is one level deeper).
void MimeParser::begin_nested(Cte cte) {
  ++facts_.encoded_message;
  begin_leaf(Leaf::message, cte, "message/rfc822", "", "");
  if (!child_) {
    child_ = std::make_unique<MimeParser>(limits_);
    child_sink_ = std::make_unique<NestedSink>();
  }
  MimeParser& c = *child_;
  c.reset();
  c.limits_.max_depth = limits_.max_depth > frames_.size() ? limits_.max_depth - uint32_t(frames_.size()) : 0;
  c.limits_.max_parts = limits_.max_parts > facts_.parts ? limits_.max_parts - facts_.parts : 0;
  c.nested_ = true;
  c.urls_ = urls_;
  c.msg_depth_ = msg_depth_ + 1;
  static_cast<NestedSink*>(child_sink_.get())->up = sink_;
  c.sink_ = sink_ ? child_sink_.get() : nullptr;
  if (sink_) sink_->on_part_begin();
}

void MimeParser::end_nested() {
  MimeParser& c = *child_;
  c.finish();
  MessageFacts& f = c.facts_;
  facts_.parts += f.parts;
  for (auto& a : f.attachments) {
    if (facts_.attachments.size() < limits_.max_attachments) facts_.attachments.push_back(std::move(a));
    else ++facts_.attachments_dropped;
  }
  for (auto& l : f.leaves) facts_.leaves.push_back(std::move(l));
  facts_.text_bytes += f.text_bytes;
  facts_.charset_errors += f.charset_errors;
  facts_.decode_errors += f.decode_errors;
  facts_.attachments_dropped += f.attachments_dropped;
  facts_.missing_close_boundary += f.missing_close_boundary;
  facts_.no_boundary += f.no_boundary;
  facts_.depth_exceeded += f.depth_exceeded;
  facts_.parts_exceeded += f.parts_exceeded;
  facts_.header_truncated += f.header_truncated;
  facts_.html_truncated += f.html_truncated;
  facts_.header_block_garbage += f.header_block_garbage;
  facts_.header_after_garbage += f.header_after_garbage;
  facts_.encoded_message += f.encoded_message;
  facts_.boundary_junk += f.boundary_junk;
  facts_.long_boundary_line += f.long_boundary_line;
  facts_.boundary_trailing_space += f.boundary_trailing_space;
  facts_.conflicting_content_fields += f.conflicting_content_fields;
  facts_.header_leading_continuation += f.header_leading_continuation;
  facts_.encoding_junk += f.encoding_junk;
  f = MessageFacts{};
}

void MimeParser::body(const uint8_t* p, size_t n) {
  if (leaf_ == Leaf::discard || n == 0) return;
  if (cte_ == Cte::identity) {
    decoded(p, n);
    return;
  }
  while (n > 0) {
    size_t take = std::min(n, kSlice);
    if (dec_buf_.size() < 2 * take + kDecodeSlack) dec_buf_.resize(2 * take + kDecodeSlack);
    size_t m = cte_ == Cte::base64 ? b64_.feed(p, take, dec_buf_.data()) : qp_.feed(p, take, dec_buf_.data());
    decoded(dec_buf_.data(), m);
    p += take, n -= take;
  }
}

void MimeParser::decoded(const uint8_t* p, size_t n) {
  if (n == 0) return;
  if (limits_.leaf_digests) {
    EVP_DigestUpdate(leaf_sha_, p, n);
    leaf_info_.size += n;
  }
  if (leaf_ == Leaf::attachment) {
    att_->feed(p, n);
    return;
  }
  if (leaf_ == Leaf::message) {
    child_->feed({p, n});
    return;
  }
  utf8_.clear();
  text_dec_.feed(p, n, utf8_);
  text_out(utf8_);
}

void MimeParser::text_out(const std::string& utf8) {
  if (utf8.empty()) return;
  if (limits_.leaf_digests) {
    EVP_DigestUpdate(text_sha_, utf8.data(), utf8.size());
    if (limits_.leaf_text && leaf_info_.text.size() < (1u << 20)) leaf_info_.text.append(utf8);
  }
  if (sink_) sink_->on_rawbody(utf8);
  if (leaf_ == Leaf::html) {
    text_.clear();
    html_.feed(utf8.data(), utf8.size(), text_);
    if (text_.empty()) return;
    facts_.text_bytes += text_.size();
    urls_->text(text_.data(), text_.size());
    if (sink_) sink_->on_text(text_);
  } else {
    facts_.text_bytes += utf8.size();
    urls_->text(utf8.data(), utf8.size());
    if (sink_) sink_->on_text(utf8);
  }
}

void MimeParser::end_leaf() {
  if (leaf_ == Leaf::discard) {
    mode_ = Mode::epilogue;
    return;
  }
  uint8_t tail[kDecodeSlack];
  size_t m = cte_ == Cte::base64 ? b64_.finish(tail) : cte_ == Cte::qp ? qp_.finish(tail) : 0;
  decoded(tail, m);
  facts_.decode_errors += b64_.errors() + qp_.errors();
  if (leaf_ == Leaf::text || leaf_ == Leaf::html) {
    utf8_.clear();
    text_dec_.finish(utf8_);
    text_out(utf8_);
    if (leaf_ == Leaf::html) {
      text_.clear();
      html_.finish(text_);
      facts_.html_truncated += html_.truncated();
      if (!text_.empty()) {
        urls_->text(text_.data(), text_.size());
        if (sink_) sink_->on_text(text_);
      }
    }
    urls_->end_text();
    facts_.charset_errors += text_dec_.errors();
    if (sink_) sink_->on_text("\n");  // parts do not run into each other
  } else if (leaf_ == Leaf::attachment) {
    AttachmentFacts a = att_->finish();
    if (sink_) sink_->on_attachment(a);
    if (facts_.attachments.size() < limits_.max_attachments) facts_.attachments.push_back(std::move(a));
    else ++facts_.attachments_dropped;
  } else if (leaf_ == Leaf::message) {
    end_nested();
  }
  if (limits_.leaf_digests && !hidden_ && leaf_ != Leaf::message) {
    leaf_info_.sha256 = digest_hex(leaf_sha_);
    std::string t = digest_hex(text_sha_);
    if (leaf_ == Leaf::text || leaf_ == Leaf::html) leaf_info_.text_sha256 = t;
    facts_.leaves.push_back(std::move(leaf_info_));
    leaf_info_ = LeafInfo{};
  }
  leaf_ = Leaf::discard;
  hidden_ = false;
  mode_ = Mode::epilogue;
}

void MimeParser::finish() {
  if (finished_) return;
  // A last line without EOL.
  skip_line_ = false;
  if (!line_.empty()) {  // as a line with an empty EOL
    std::string l;
    l.swap(line_);
    line(reinterpret_cast<const uint8_t*>(l.data()), l.size(), 0);
  }
  if (mode_ == Mode::headers && (top_ || !hdr_.empty())) {  // the message ended inside a header block
    bool was_top = top_;
    end_headers();
    if (was_top) facts_.header.complete = false;
  }
  if (shadow_) shadow_end(false);
  if (mode_ == Mode::leaf) {
    // Inside a multipart the end of the message stands for the missing
    // delimiter, and the EOL before it is the delimiter's (as in Python).
    if (pending_n_ && frames_.empty()) body(pending_eol_, pending_n_);
    pending_n_ = 0;
    end_leaf();
  }
  facts_.missing_close_boundary += uint32_t(frames_.size());
  frames_.clear();
  if (!nested_) {
    facts_.urls_seen = urls_->seen();
    facts_.urls_dropped = urls_->dropped();
    facts_.urls = urls_->take();
  }
  finished_ = true;
}

}  // namespace sekisho::mime
