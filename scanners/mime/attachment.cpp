#include "scanners/mime/attachment.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <magic.h>

#include <algorithm>
#include <cstring>

namespace sekisho::mime {
namespace {

constexpr uint8_t kOle2Magic[8] = {0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1};
// Stream names in an OLE2 directory are UTF-16LE.
constexpr char kVbaProject16[] = "_\0V\0B\0A\0_\0P\0R\0O\0J\0E\0C\0T\0";
constexpr char kEncryptedPackage16[] = "E\0n\0c\0r\0y\0p\0t\0e\0d\0P\0a\0c\0k\0a\0g\0e\0";
constexpr char kVbaProjectBin[] = "vbaProject.bin";

inline char lc(char c) { return c >= 'A' && c <= 'Z' ? char(c + 32) : c; }

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = lc(c);
  return o;
}

bool has(const uint8_t* p, size_t n, const char* needle, size_t m) {
  return m <= n && std::search(p, p + n, needle, needle + m) != p + n;
}

struct Magic {
  magic_t m = nullptr;
  Magic() {
    // No decompression and no JSON/CSV/token tests: a type, not an analysis.
    // Builtin tests only (CDF/OLE2, ELF, tar, encodings): the "soft" database
    // costs 0.3 ms a call on unknown binary and 2.5 ms on text (measured),
    // too much at the hold point; the common types are recognised before.
    m = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_JSON | MAGIC_NO_CHECK_CSV |
                   MAGIC_NO_CHECK_TOKENS | MAGIC_NO_CHECK_SOFT);
    if (m && magic_load(m, nullptr) != 0) {
      magic_close(m);
      m = nullptr;
    }
  }
  ~Magic() {
    if (m) magic_close(m);
  }
};

// The common types by their signatures, without libmagic (which takes
// tens of microseconds to milliseconds a call, at the hold point): "" if
// none applies and libmagic must look (OLE2 among them: libmagic's CDF
// reader names the Office format).
std::string quick_sniff(const std::vector<uint8_t>& head) {
  const uint8_t* h = head.data();
  size_t n = head.size();
  auto starts = [&](const char* sig, size_t len, size_t at = 0) { return n >= at + len && std::memcmp(h + at, sig, len) == 0; };
  if (starts("%PDF-", 5)) return "application/pdf";
  if (starts("\x89PNG\r\n\x1a\n", 8)) return "image/png";
  if (starts("\xff\xd8\xff", 3)) return "image/jpeg";
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return "image/gif";
  if (starts("MZ", 2)) return "application/x-dosexec";
  if (starts("\x7f" "ELF", 4)) return "application/x-executable";
  if (starts("Rar!\x1a\x07", 6)) return "application/x-rar";
  if (starts("7z\xbc\xaf\x27\x1c", 6)) return "application/x-7z-compressed";
  if (starts("\x1f\x8b", 2)) return "application/gzip";
  if (starts("{\\rtf", 5)) return "text/rtf";
  if (starts("BM", 2) && n >= 26 && h[14] >= 12 && h[15] == 0 && h[16] == 0 && h[17] == 0) return "image/bmp";
  if (starts("II*\0", 4) || starts("MM\0*", 4)) return "image/tiff";
  if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return "image/webp";
  if (starts("MSCF", 4)) return "application/vnd.ms-cab-compressed";
  if (starts("ID3", 3)) return "audio/mpeg";
  if (starts("ustar", 5, 257)) return "application/x-tar";
  if (starts("PK\x03\x04", 4)) {  // OOXML and ODF are ZIPs: told apart by their member names
    std::string_view v(reinterpret_cast<const char*>(h), n);
    if (v.find("[Content_Types].xml") != std::string_view::npos || v.find("_rels/") != std::string_view::npos) {
      if (v.find("word/") != std::string_view::npos)
        return "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
      if (v.find("xl/") != std::string_view::npos) return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
      if (v.find("ppt/") != std::string_view::npos)
        return "application/vnd.openxmlformats-officedocument.presentationml.presentation";
    }
    if (starts("mimetypeapplication/vnd.oasis.opendocument.", 43, 30)) {
      size_t e = 30 + 8;
      while (e < n && e < 120 && h[e] > 0x20 && h[e] < 0x7f && h[e] != 'P') ++e;
      return std::string(reinterpret_cast<const char*>(h) + 38, e - 38);
    }
    return "application/zip";
  }
  // Text: no NUL and (nearly) all printable or valid UTF-8 in the head.
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = h[i];
    if (c == 0) return "";
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != 0x1b) ++bad;
  }
  if (bad * 50 > n) return "";
  size_t i = 0;
  while (i < n && (h[i] == ' ' || h[i] == '\t' || h[i] == '\r' || h[i] == '\n' || h[i] == 0xef || h[i] == 0xbb || h[i] == 0xbf)) ++i;
  std::string lead;
  for (size_t k = i; k < n && k < i + 14; ++k) lead.push_back(char(h[k] >= 'A' && h[k] <= 'Z' ? h[k] + 32 : h[k]));
  if (lead.rfind("<!doctype html", 0) == 0 || lead.rfind("<html", 0) == 0 || lead.rfind("<head", 0) == 0 ||
      lead.rfind("<body", 0) == 0)
    return "text/html";
  if (lead.rfind("<?xml", 0) == 0) return "text/xml";
  return "text/plain";
}

std::string sniff(const std::vector<uint8_t>& head) {
  if (head.empty()) return "";
  std::string quick = quick_sniff(head);
  if (!quick.empty()) return quick;
  thread_local Magic magic;
  if (!magic.m) return "";
  const char* t = magic_buffer(magic.m, head.data(), head.size());
  return t ? t : "";
}

// The size of a 7-Zip archive's header once decoded, from the start header
// and (for the usual compressed header) its StreamsInfo; 0 if it cannot be
// told. libarchive parses the whole header, every entry, in its first
// next_header call: 75 KB of 7z holding a million empty entries took
// 0.67 s in that one call, so the size is checked before.
uint64_t sevenzip_header_bytes(const uint8_t* p, size_t n) {
  static constexpr uint8_t kSig[6] = {'7', 'z', 0xbc, 0xaf, 0x27, 0x1c};
  if (n < 32 || std::memcmp(p, kSig, 6) != 0) return 0;
  auto le64 = [&](size_t at) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | p[at + i];
    return v;
  };
  uint64_t off = le64(12), size = le64(20);
  if (off > n - 32 || size > n - 32 - off || size == 0) return 0;
  const uint8_t* h = p + 32 + off;
  const uint8_t* end = h + size;
  if (h[0] == 0x01) return size;  // kHeader: stored as it is
  if (h[0] != 0x17) return 0;     // not kEncodedHeader
  ++h;
  bool ok = true;
  auto byte = [&]() -> uint8_t {
    if (h >= end) {
      ok = false;
      return 0;
    }
    return *h++;
  };
  auto number = [&]() -> uint64_t {  // 7z's variable-length number
    uint8_t first = byte();
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) {
      uint8_t mask = uint8_t(0x80 >> i);
      if (!(first & mask)) return v | (uint64_t(first & (mask - 1)) << (8 * i));
      v |= uint64_t(byte()) << (8 * i);
    }
    return v;
  };
  if (byte() == 0x06) {  // kPackInfo: position, streams, sizes, CRCs
    number();
    uint64_t streams = number();
    for (uint8_t id = byte(); ok && id != 0x00; id = byte()) {
      if (id == 0x09) {
        for (uint64_t i = 0; ok && i < streams; ++i) number();
      } else if (id == 0x0a) {
        bool all = byte() != 0;
        if (!all) h += std::min<uint64_t>((streams + 7) / 8, uint64_t(end - h));
        for (uint64_t i = 0; ok && i < streams; ++i) h += std::min<ptrdiff_t>(4, end - h);
      } else {
        return 0;
      }
    }
    if (byte() != 0x07) return 0;
  } else if (h[-1] != 0x07) {
    return 0;
  }
  // kUnpackInfo: folders (coders, bind pairs, packed streams), then every coder output's size.
  if (byte() != 0x0b) return 0;
  uint64_t folders = number();
  if (byte() != 0 || folders == 0 || folders > 64) return 0;
  uint64_t outputs = 0;
  for (uint64_t f = 0; ok && f < folders; ++f) {
    uint64_t coders = number(), ins = 0, outs = 0;
    if (coders == 0 || coders > 64) return 0;
    for (uint64_t c = 0; ok && c < coders; ++c) {
      uint8_t flags = byte();
      if (flags & 0x80) return 0;
      h += std::min<ptrdiff_t>(flags & 0x0f, end - h);
      uint64_t in = 1, out = 1;
      if (flags & 0x10) in = number(), out = number();
      if (in > 64 || out > 64) return 0;
      ins += in, outs += out;
      if (flags & 0x20) {
        uint64_t props = number();
        h += ptrdiff_t(std::min<uint64_t>(props, uint64_t(end - h)));
      }
    }
    if (outs == 0 || ins + 1 < outs) return 0;
    for (uint64_t b = 0; ok && b + 1 < outs; ++b) number(), number();
    uint64_t packed = ins - (outs - 1);
    if (packed > 1)
      for (uint64_t i = 0; ok && i < packed; ++i) number();
    outputs += outs;
  }
  if (byte() != 0x0c) return 0;
  uint64_t largest = 0;
  for (uint64_t i = 0; ok && i < outputs; ++i) largest = std::max(largest, number());
  return ok ? largest : 0;
}

// The entry count a ZIP's end of central directory declares (the larger of
// the classic and ZIP64 records): libarchive reads that many central
// directory entries in its first next_header call (about 8 us each here:
// an 80,000-entry zip of 7 MB held it 0.67 s). 0 if there is none.
uint64_t zip_directory_entries(const uint8_t* p, size_t n) {
  if (n < 22) return 0;
  size_t lo = n > 22 + 65535 ? n - 22 - 65535 : 0;
  for (size_t i = n - 22 + 1; i-- > lo;) {
    if (std::memcmp(p + i, "PK\5\6", 4) != 0) continue;
    auto le = [&](size_t at, int bytes) {
      uint64_t v = 0;
      for (int k = bytes - 1; k >= 0; --k) v = v << 8 | p[at + k];
      return v;
    };
    uint64_t count = le(i + 10, 2);
    if (i >= 20 && std::memcmp(p + i - 20, "PK\6\7", 4) == 0) {  // ZIP64 locator -> ZIP64 end record
      uint64_t at = le(i - 20 + 8, 8);
      if (at <= n - 56 && std::memcmp(p + at, "PK\6\6", 4) == 0) count = std::max(count, le(at + 32, 8));
    }
    return count;
  }
  return 0;
}

bool is_archive_name(std::string_view lname) {
  for (std::string_view ext : {".zip", ".7z", ".rar", ".tar", ".tgz", ".gz", ".lzh", ".cab", ".jar", ".docm",
                               ".xlsm", ".pptm", ".docx", ".xlsx", ".pptx", ".doc", ".xls", ".ppt"})
    if (lname.size() > ext.size() && lname.substr(lname.size() - ext.size()) == ext) return true;
  return false;
}

// Filters registered only when libarchive has them built in: without the
// library it runs an external program (fork and exec on a worker).
void add_filters(archive* a) {
  if (archive_zlib_version()) archive_read_support_filter_gzip(a);
  if (archive_bzlib_version()) archive_read_support_filter_bzip2(a);
  if (archive_liblzma_version()) {
    archive_read_support_filter_xz(a);
    archive_read_support_filter_lzma(a);
    archive_read_support_filter_lzip(a);
  }
  if (archive_libzstd_version()) archive_read_support_filter_zstd(a);
  if (archive_liblz4_version()) archive_read_support_filter_lz4(a);
  archive_read_support_filter_compress(a);
}

// The formats mail carries. Not mtree (it reads files named in it), xar
// (an XML table of contents), warc or raw. ZIP by its central directory:
// skipping an entry is then a seek, never an inflate.
void add_formats(archive* a, bool sevenzip) {
  archive_read_support_format_zip_seekable(a);
  if (sevenzip) archive_read_support_format_7zip(a);
  archive_read_support_format_rar(a);
  archive_read_support_format_rar5(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_cab(a);
  archive_read_support_format_lha(a);
}

constexpr size_t kBlock = 64 << 10;  // what one libarchive data call may produce

// One attachment's walk through its archive levels, charging every
// libarchive call to the attachment's, the message's and the worker's
// budgets. A spent budget halts the walk; depth only skips the level.
struct ArchiveWalk {
  ArchiveWalk(const AttachmentLimits& l, AttachmentFacts& facts, MessageUnpackBudget& m, WorkerUnpackBudget& w, uint64_t size)
      : lim(l), f(facts), msg(m), worker(w), attachment_bytes(size) {
    if (nested_bufs.size() < lim.max_archive_depth + 1) nested_bufs.resize(lim.max_archive_depth + 1);
    if (blocks.size() < lim.max_archive_depth + 1) blocks.resize(lim.max_archive_depth + 1, std::vector<uint8_t>(kBlock));
  }
  ArchiveWalk(const ArchiveWalk&) = delete;
  ArchiveWalk& operator=(const ArchiveWalk&) = delete;
  const AttachmentLimits& lim;
  AttachmentFacts& f;
  MessageUnpackBudget& msg;
  WorkerUnpackBudget& worker;
  uint64_t attachment_bytes;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  std::chrono::nanoseconds elapsed0 = msg.elapsed;
  bool halted = false;
  uint64_t declared = 0;  // entry sizes as the archives declare them, every level
  // The thread's buffers, kept between walks: allocated per walk (and per
  // nested entry), the heap top is trimmed and regrown, page faults each time.
  // Per depth: the reader of an outer level still points into its block
  // while a nested level is walked.
  struct Buffers {
    std::vector<std::vector<uint8_t>> blocks;  // a compressed stream's bytes for the reader
    std::vector<std::vector<uint8_t>> nested;  // a nested archive, read from the level above
  };
  static Buffers& buffers() {
    thread_local Buffers b;
    return b;
  }
  std::vector<std::vector<uint8_t>>& blocks = buffers().blocks;
  std::vector<std::vector<uint8_t>>& nested_bufs = buffers().nested;
  ~ArchiveWalk() {
    for (auto& b : nested_bufs) {
      b.clear();
      if (b.capacity() > (1 << 20)) b.shrink_to_fit();  // a big one is not kept for the next walk
    }
  }

  void note(BudgetReason r) { f.budget_exceeded |= 1u << unsigned(r); }
  bool halt(BudgetReason r) {
    note(r);
    halted = true;
    return false;
  }

  // Before any work: the message or the worker may have nothing left.
  bool can_start() {
    if (msg.unpacked_bytes >= lim.message_unpacked_bytes) return halt(BudgetReason::message_bytes);
    if (msg.steps >= lim.message_steps) return halt(BudgetReason::steps);
    if (msg.elapsed >= std::chrono::microseconds(lim.message_time_us)) return halt(BudgetReason::time);
    if (!worker.take(0, lim, t0)) return halt(BudgetReason::worker);
    return true;
  }

  // One libarchive call that produced n unpacked bytes; false once a budget is spent.
  bool charge(uint64_t n) {
    if (halted) return false;
    ++f.unpack_steps;
    ++msg.steps;
    f.unpacked_bytes += n;
    msg.unpacked_bytes += n;
    auto now = std::chrono::steady_clock::now();
    msg.elapsed = elapsed0 + (now - t0);
    if (f.unpacked_bytes > lim.ratio_floor && f.unpacked_bytes / std::max<uint64_t>(attachment_bytes, 1) >= lim.max_ratio)
      return halt(BudgetReason::ratio);
    if (f.unpacked_bytes > lim.max_unpacked_bytes) return halt(BudgetReason::bytes);
    if (msg.unpacked_bytes > lim.message_unpacked_bytes) return halt(BudgetReason::message_bytes);
    if (msg.steps > lim.message_steps) return halt(BudgetReason::steps);
    if (msg.elapsed > std::chrono::microseconds(lim.message_time_us)) return halt(BudgetReason::time);
    if (!worker.take(n, lim, now)) return halt(BudgetReason::worker);
    return true;
  }

  // A compressed stream's bytes handed to the archive reader in blocks: a
  // reader call that wants more than the budgets allow (a skip over a
  // 1 GiB entry is one call) gets a read error instead.
  struct Inflated {
    ArchiveWalk* walk;
    archive* raw;                 // raw format + filters over the compressed bytes
    std::vector<uint8_t>* block;  // this level's
  };
  static la_ssize_t inflated_read(archive*, void* ud, const void** out) {
    auto* s = static_cast<Inflated*>(ud);
    ArchiveWalk& w = *s->walk;
    if (w.halted) return -1;
    la_ssize_t got = archive_read_data(s->raw, s->block->data(), s->block->size());
    if (got < 0) return -1;
    if (!w.charge(uint64_t(got))) return -1;
    *out = s->block->data();
    return got;
  }

  // The entry's data read in blocks, charged; into `keep` (if not null)
  // while it fits max_archive_bytes. False on a read error or a spent budget.
  bool read_entry(archive* a, bool charged_by_callback, std::vector<uint8_t>* keep) {
    uint8_t scratch[16 << 10];
    size_t kept = 0;
    for (;;) {
      uint8_t* to = scratch;
      size_t room = sizeof scratch;
      if (keep) {
        if (keep->size() < kept + kBlock) keep->resize(std::min(kept + kBlock, lim.max_archive_bytes + 1));
        to = keep->data() + kept;
        room = keep->size() - kept;
      }
      la_ssize_t got = archive_read_data(a, to, room);
      if (got < 0 || !charge(charged_by_callback ? 0 : uint64_t(got))) {
        if (keep) keep->clear();
        return false;
      }
      if (got == 0) break;
      if (keep && (kept += size_t(got)) > lim.max_archive_bytes) {  // too big to list: read on, keep nothing
        keep->clear();
        keep = nullptr;
      }
    }
    if (keep) keep->resize(kept);
    return true;
  }

  void run(const uint8_t* p, size_t n, uint32_t depth) {
    if (halted) return;
    if (n >= 8 && std::memcmp(p, kOle2Magic, 8) == 0) {  // a nested Office document
      if (has(p, n, kVbaProject16, sizeof kVbaProject16 - 1)) f.macros = true;
      if (has(p, n, kEncryptedPackage16, sizeof kEncryptedPackage16 - 1)) f.encrypted = true;
      return;
    }
    // Compressed? The raw format with the filters tells (bidding reads a few bytes of each layer).
    archive* raw = archive_read_new();
    if (!raw) return;
    add_filters(raw);
    archive_read_support_format_raw(raw);
    archive_entry* e = nullptr;
    bool compressed = archive_read_open_memory(raw, p, n) == ARCHIVE_OK && archive_filter_count(raw) > 1;
    if (compressed && uint32_t(archive_filter_count(raw) - 1) > lim.max_filters) {
      note(BudgetReason::depth);
      archive_read_free(raw);
      return;
    }
    if (!compressed || archive_read_next_header(raw, &e) != ARCHIVE_OK) {
      archive_read_free(raw);
      raw = nullptr;
      compressed = false;
    }
    if (!charge(0)) {
      if (raw) archive_read_free(raw);
      return;
    }
    // 7-Zip only at offset 0 (not inside an SFX executable) and with a header libarchive can parse in time.
    bool sevenzip = !compressed && n >= 6 && std::memcmp(p, "7z\xbc\xaf\x27\x1c", 6) == 0;
    if (sevenzip) {
      uint64_t header = sevenzip_header_bytes(p, n);
      if (header == 0 || header > lim.max_7z_header_bytes) {  // a layout not understood here, or too many entries
        note(BudgetReason::entries);
        sevenzip = false;
      }
    }
    if (!compressed && zip_directory_entries(p, n) > lim.max_directory_entries) {
      note(BudgetReason::entries);
      if (raw) archive_read_free(raw);
      return;
    }
    Inflated src{this, raw, &blocks[depth]};
    bool zip_streaming = false;
    archive* a = nullptr;
    for (;;) {
      a = archive_read_new();
      if (!a) break;
      int r;
      if (compressed) {  // a .tar.gz and the like: tar and cpio over the callback
        archive_read_support_format_tar(a);
        archive_read_support_format_cpio(a);
        r = archive_read_open2(a, &src, nullptr, inflated_read, nullptr, nullptr);
      } else if (zip_streaming) {  // a ZIP without a usable central directory: by its local headers
        archive_read_support_format_zip_streamable(a);
        r = archive_read_open_memory(a, p, n);
      } else {
        add_formats(a, sevenzip);
        r = archive_read_open_memory(a, p, n);
      }
      if (r == ARCHIVE_OK) break;
      archive_read_free(a);
      a = nullptr;
      if (compressed || zip_streaming || halted || n < 4 || std::memcmp(p, "PK\3\4", 4) != 0) break;
      zip_streaming = true;
    }
    if (!a) {
      if (raw) archive_read_free(raw);
      return;
    }
    // Skipping is free only where it is a move through bytes already here:
    // ZIP by its central directory, uncompressed tar. Elsewhere (7z and RAR
    // solid blocks, LHA, CAB, a stream) skipping unpacks, so the walk reads.
    int r = ARCHIVE_OK;
    while (!halted) {
      r = archive_read_next_header(a, &e);
      if (!charge(0)) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) break;
      int fmt = archive_format(a) & ARCHIVE_FORMAT_BASE_MASK;
      bool free_skip = !compressed && ((fmt == ARCHIVE_FORMAT_ZIP && !zip_streaming) || fmt == ARCHIVE_FORMAT_TAR);
      if (f.archive_entries >= lim.max_archive_entries) {
        halt(BudgetReason::entries);
        break;
      }
      ++f.archive_entries;
      const char* nm = archive_entry_pathname_utf8(e);
      if (!nm) nm = archive_entry_pathname(e);
      std::string name = nm ? nm : "";
      bool exe = false, dbl = false, rtl = false;
      classify_name(name, exe, dbl, rtl);
      f.executable |= exe, f.double_extension |= dbl, f.rtlo |= rtl;
      if (archive_entry_is_encrypted(e)) {
        f.encrypted = true;
        continue;  // libarchive's skip: without the password it cannot unpack, so skipping costs nothing
      }
      // What the entries say they hold counts for the ratio too: a bomb
      // for whatever unpacks it next, even where this walk skips it.
      if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0) declared += uint64_t(archive_entry_size(e));
      if (declared > lim.ratio_floor && declared / std::max<uint64_t>(attachment_bytes, 1) >= lim.max_ratio)
        note(BudgetReason::ratio);
      std::string base_name = lower(name.substr(name.rfind('/') == std::string::npos ? 0 : name.rfind('/') + 1));
      if (base_name == "vbaproject.bin") f.macros = true;
      bool nested = is_archive_name(base_name) &&
                    !(archive_entry_size_is_set(e) && uint64_t(archive_entry_size(e)) > lim.max_archive_bytes);
      if (nested && depth + 1 > lim.max_archive_depth) {
        note(BudgetReason::depth);
        nested = false;
      }
      if (nested) {
        std::vector<uint8_t>& inner = nested_bufs[depth];
        inner.clear();
        if (archive_entry_size_is_set(e)) inner.reserve(size_t(archive_entry_size(e)) + 1);  // + 1: the read that sees the end
        if (!read_entry(a, compressed, &inner)) break;
        if (!inner.empty()) run(inner.data(), inner.size(), depth + 1);
      } else if (!free_skip) {
        if (!read_entry(a, compressed, nullptr)) break;
      }
    }
    if (r == ARCHIVE_FATAL && !halted) {
      const char* err = archive_error_string(a);
      if (err && (std::strstr(err, "ncrypt") || std::strstr(err, "assword"))) f.encrypted = true;
    }
    if (archive_read_has_encrypted_entries(a) > 0) f.encrypted = true;
    archive_read_free(a);
    if (raw) archive_read_free(raw);
  }
};

}  // namespace

void preload_sniffer() { (void)sniff(std::vector<uint8_t>{'x', 'y', 'z', 1, 2}); }

void classify_name(std::string_view name, bool& executable, bool& double_extension, bool& rtlo) {
  // Bidi overrides and isolates that can reverse how a name reads: U+202A..U+202E, U+2066..U+2069.
  for (size_t i = 0; i + 2 < name.size(); ++i) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(name[i + k]); };
    if (b(0) == 0xe2 && ((b(1) == 0x80 && b(2) >= 0xaa && b(2) <= 0xae) || (b(1) == 0x81 && b(2) >= 0xa6 && b(2) <= 0xa9)))
      rtlo = true;
  }
  std::string l = lower(name);
  while (!l.empty() && (l.back() == ' ' || l.back() == '.')) l.pop_back();  // "a.exe." and "a.exe " run as .exe
  static const char* const kExe[] = {"exe", "scr", "com", "pif", "bat", "cmd", "js",  "jse", "vbs", "vbe", "wsf",
                                     "wsh", "hta", "lnk", "msi", "jar", "ps1", "cpl", "reg", "iso", "img", "dll"};
  static const char* const kDoc[] = {"pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "jpg", "jpeg",
                                     "png", "gif", "rtf", "zip", "htm", "html", "csv", "mp3", "mp4", "avi"};
  size_t dot = l.rfind('.');
  if (dot == std::string::npos) return;
  std::string_view ext(l.data() + dot + 1, l.size() - dot - 1);
  bool exe = false;
  for (const char* e : kExe)
    if (ext == e) exe = true;
  if (!exe) return;
  executable = true;
  size_t dot2 = dot == 0 ? std::string::npos : l.rfind('.', dot - 1);
  if (dot2 == std::string::npos) return;
  std::string_view ext2(l.data() + dot2 + 1, dot - dot2 - 1);
  while (!ext2.empty() && ext2.back() == ' ') ext2.remove_suffix(1);  // "invoice.pdf      .exe"
  for (const char* d : kDoc)
    if (ext2 == d) double_extension = true;
}

const char* budget_reason_name(BudgetReason r) {
  static const char* const kNames[kBudgetReasonCount] = {"depth", "entries", "ratio", "bytes",
                                                         "message_bytes", "steps", "time", "worker"};
  return unsigned(r) < kBudgetReasonCount ? kNames[unsigned(r)] : "?";
}

WorkerUnpackBudget& WorkerUnpackBudget::for_this_thread() {
  thread_local WorkerUnpackBudget b;
  return b;
}

bool WorkerUnpackBudget::take(uint64_t n, const AttachmentLimits& lim, std::chrono::steady_clock::time_point now) {
  double burst = double(lim.worker_unpacked_burst);
  if (!started_) {
    started_ = true;
    tokens_ = burst;
  } else if (now > last_) {
    tokens_ = std::min(burst, tokens_ + double(lim.worker_unpacked_per_sec) * std::chrono::duration<double>(now - last_).count());
  }
  last_ = std::max(last_, now);
  if (tokens_ <= 0) return false;
  tokens_ -= double(n);
  spent_ += n;
  return true;
}

AttachmentAnalyzer::AttachmentAnalyzer(const AttachmentLimits& limits, MessageUnpackBudget* message,
                                       WorkerUnpackBudget* worker)
    : limits_(limits),
      message_(message ? message : &own_message_),
      worker_(worker ? worker : &WorkerUnpackBudget::for_this_thread()),
      sha_(EVP_MD_CTX_new()) {}

AttachmentAnalyzer::~AttachmentAnalyzer() { EVP_MD_CTX_free(sha_); }

void AttachmentAnalyzer::begin(std::string name, std::string type, uint32_t depth) {
  f_ = AttachmentFacts{};
  f_.name = std::move(name);
  f_.type = std::move(type);
  f_.depth = depth;
  kind_ = Kind::unknown;
  head_.clear();
  keep_.clear();
  tail_n_ = 0;
  ole_encrypted_package_ = false;
  if (sha_) EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr);
}

void AttachmentAnalyzer::classify_head() {
  const uint8_t* h = head_.data();
  size_t n = head_.size();
  if (n >= 4 && h[0] == 'P' && h[1] == 'K' && h[2] == 3 && h[3] == 4) kind_ = Kind::zip;
  else if (n >= 8 && std::memcmp(h, kOle2Magic, 8) == 0) kind_ = Kind::ole2;
  else if ((n >= 6 && std::memcmp(h, "7z\xbc\xaf\x27\x1c", 6) == 0) || (n >= 6 && std::memcmp(h, "Rar!\x1a\x07", 6) == 0) ||
           (n >= 2 && h[0] == 0x1f && h[1] == 0x8b) || (n >= 4 && std::memcmp(h, "MSCF", 4) == 0) ||
           (n >= 262 && std::memcmp(h + 257, "ustar", 5) == 0) || (n >= 7 && h[2] == '-' && h[3] == 'l' && h[4] == 'h'))
    kind_ = Kind::other_archive;
  else kind_ = Kind::plain;
}

void AttachmentAnalyzer::search_markers(const uint8_t* p, size_t n) {
  // Markers may straddle chunks: look at the seam (old tail + new head) too.
  auto look = [&](const uint8_t* q, size_t m) {
    if (kind_ == Kind::ole2) {
      if (!f_.macros && has(q, m, kVbaProject16, sizeof kVbaProject16 - 1)) f_.macros = true;
      if (!ole_encrypted_package_ && has(q, m, kEncryptedPackage16, sizeof kEncryptedPackage16 - 1))
        ole_encrypted_package_ = true;
    } else if (kind_ == Kind::zip) {
      if (!f_.macros && has(q, m, kVbaProjectBin, sizeof kVbaProjectBin - 1)) f_.macros = true;
    }
  };
  if (tail_n_) {
    uint8_t seam[64];
    size_t take = std::min(n, sizeof seam - tail_n_);
    std::memcpy(seam, tail_, tail_n_);
    std::memcpy(seam + tail_n_, p, take);
    look(seam, tail_n_ + take);
  }
  look(p, n);
  if (n >= sizeof tail_) {
    std::memcpy(tail_, p + n - sizeof tail_, sizeof tail_);
    tail_n_ = sizeof tail_;
  } else {
    size_t keep = std::min(tail_n_, sizeof tail_ - n);
    std::memmove(tail_, tail_ + tail_n_ - keep, keep);
    std::memcpy(tail_ + keep, p, n);
    tail_n_ = keep + n;
  }
}

void AttachmentAnalyzer::process(const uint8_t* p, size_t n) {
  if (kind_ == Kind::ole2 || kind_ == Kind::zip) search_markers(p, n);
  if ((kind_ == Kind::zip || kind_ == Kind::other_archive) && !f_.archive_truncated) {
    if (keep_.size() + n <= limits_.max_archive_bytes) {
      keep_.insert(keep_.end(), p, p + n);
    } else {
      f_.archive_truncated = true;
      keep_.clear();
      keep_.shrink_to_fit();
    }
  }
}

void AttachmentAnalyzer::feed(const uint8_t* p, size_t n) {
  if (n == 0) return;
  size_t before = f_.size;
  f_.size += n;
  if (sha_) EVP_DigestUpdate(sha_, p, n);
  if (head_.size() < kSniffBytes) head_.insert(head_.end(), p, p + std::min(n, kSniffBytes - head_.size()));
  if (kind_ == Kind::unknown) {
    if (head_.size() < 262) return;  // still classifying: the head holds everything so far
    classify_head();
    process(head_.data(), before);   // catch up on the bytes seen while classifying
  }
  if (kind_ != Kind::plain) process(p, n);
}

AttachmentFacts AttachmentAnalyzer::finish() {
  if (kind_ == Kind::unknown) {  // a small attachment: all of it is in the head
    classify_head();
    process(head_.data(), head_.size());
  }
  unsigned char md[32];
  unsigned int len = 0;
  if (sha_ && EVP_DigestFinal_ex(sha_, md, &len) == 1) {
    static const char kHex[] = "0123456789abcdef";
    f_.sha256.resize(len * 2);
    for (unsigned i = 0; i < len; ++i) f_.sha256[2 * i] = kHex[md[i] >> 4], f_.sha256[2 * i + 1] = kHex[md[i] & 15];
  }
  f_.sniffed_type = sniff(head_);
  bool exe = false, dbl = false, rtl = false;
  classify_name(f_.name, exe, dbl, rtl);
  f_.executable = exe || f_.sniffed_type == "application/x-dosexec" || f_.sniffed_type == "application/x-msi" ||
                  f_.sniffed_type == "application/x-executable" || f_.sniffed_type == "application/x-ms-shortcut";
  f_.double_extension = dbl;
  f_.rtlo = rtl;
  if (ole_encrypted_package_) f_.encrypted = true;  // a password-protected OOXML file is an OLE2 "EncryptedPackage"
  if (!keep_.empty()) {
    ArchiveWalk walk(limits_, f_, *message_, *worker_, f_.size);
    if (walk.can_start()) walk.run(keep_.data(), keep_.size(), 0);
  } else if (kind_ == Kind::zip && f_.archive_truncated) {
    // Too big to list: the first local header still says whether entry one is encrypted.
    if (head_.size() >= 8 && (head_[6] & 1)) f_.encrypted = true;
  }
  keep_.clear();
  if (keep_.capacity() > (1 << 20)) keep_.shrink_to_fit();
  head_.clear();
  return std::move(f_);
}

}  // namespace sekisho::mime
