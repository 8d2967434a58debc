// Facts about one attachment, computed while its decoded bytes stream by:
// size and SHA-256 over every byte; the type sniffed from the content
// (libmagic on the first bytes); Office macros (OLE2 "_VBA_PROJECT"
// storage in .doc/.xls, "vbaProject.bin" in OOXML zips); encrypted content
// (password-protected ZIP/7z/RAR entries through libarchive, encrypted
// OOXML packages, the PPAP case); executables behind double extensions or
// a right-to-left override in the name; archives listed to a bounded depth.
//
// Memory: the first kSniffBytes are kept; an archive is kept up to
// max_archive_bytes for listing (beyond that only the streaming checks apply,
// and archive_truncated is set).
//
// Work: listing an archive costs what libarchive unpacks, which a few KB of
// input can make unbounded (a 1.9 KB .tar.gz.gz holding 1 GiB of zeros took
// 2.5 s of a worker). Every unpacked byte and every libarchive call is
// charged, between calls, to three budgets: the attachment's (bytes, ratio,
// depth, entries), the message's (MessageUnpackBudget: bytes, calls, time;
// shared by all its attachments) and the worker thread's (a token bucket of
// bytes per second). No call is left to run long: compressed streams reach
// the archive reader through a read callback that refuses bytes once a
// budget is spent; skips that would unpack are done by reading in 64 KiB
// blocks; filters that run external programs are not registered; a ZIP
// central directory or 7z header that libarchive would read whole in one
// call is sized first and not opened when too big. A spent budget ends the
// walk and sets a bit of budget_exceeded (depth only leaves the deeper
// archive unopened, and a ratio the entries declare is noted while the walk
// goes on): an input to the verdict (rule field `attachment R
// budget_exceeded`), never a stall.
//
// Thread-safety: one instance per part, one thread. libmagic handles and the
// default WorkerUnpackBudget are per thread.
#pragma once

#include <openssl/evp.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sekisho::mime {

// Why an archive walk was cut short: bit (1 << k) of
// AttachmentFacts::budget_exceeded. The names (budget_reason_name) are the
// event JSON's and the rule language's (rules::kBudgetReasons, same order).
enum class BudgetReason : uint8_t {
  depth = 0,          // an archive nested deeper than max_archive_depth, or more compression layers than max_filters
  entries = 1,        // more than max_archive_entries entries
  ratio = 2,          // unpacked bytes over max_ratio times the attachment's size
  bytes = 3,          // unpacked bytes of the attachment over max_unpacked_bytes
  message_bytes = 4,  // unpacked bytes of the message's attachments over message_unpacked_bytes
  steps = 5,          // libarchive calls for the message over message_steps
  time = 6,           // time spent unpacking for the message over message_time_us
  worker = 7,         // the worker thread's allowance (WorkerUnpackBudget) is spent
};
inline constexpr unsigned kBudgetReasonCount = 8;
const char* budget_reason_name(BudgetReason r);

struct AttachmentFacts {
  std::string name;          // file name, decoded (RFC 2231 / 2047), "" if none
  std::string type;          // declared Content-Type (lower case)
  std::string sniffed_type;  // from the content (libmagic), "" if empty
  uint64_t size = 0;         // decoded bytes
  std::string sha256;        // hex of the decoded bytes
  bool macros = false;
  bool encrypted = false;
  bool executable = false;        // executable by name or by content
  bool double_extension = false;  // "invoice.pdf.exe"
  bool rtlo = false;              // U+202E (or another bidi override) in the name
  uint32_t archive_entries = 0;   // entries listed, nested ones included
  bool archive_truncated = false; // the archive exceeded the retention bound
  uint32_t depth = 0;             // message/rfc822 nesting it was found in
  uint32_t budget_exceeded = 0;   // BudgetReason bits: the listing stopped (or skipped a level) there
  uint64_t unpacked_bytes = 0;    // bytes libarchive produced for this attachment, every level
  uint32_t unpack_steps = 0;      // libarchive calls made for it
  bool exceeded(BudgetReason r) const { return budget_exceeded >> unsigned(r) & 1; }
};

// Unpacking runs at the hold point, in the worker, while the other flows of
// that worker wait: the defaults keep one message under about 0.25 s of a
// core and a worker's inflating under a fifth of its time (inflate runs at
// 300-1000 MB/s here, bzip2 and xz far slower: hence the time backstop).
// time and worker depend on the clock and the load, the others only on the
// message.
struct AttachmentLimits {
  size_t max_archive_bytes = 8 << 20;      // an archive kept for listing; a nested one read for it
  uint32_t max_archive_depth = 2;          // archives inside the attachment's archive
  uint32_t max_archive_entries = 1000;     // entries listed per attachment, nested ones included
  // libarchive reads a ZIP's central directory and a 7z's header whole in
  // one call: too big, the archive is not opened (reason "entries").
  uint32_t max_directory_entries = 8192;   // a ZIP's declared entries (about 8 us each here)
  uint64_t max_7z_header_bytes = 1 << 20;  // a 7z's decoded header (~50k short names, 0.7 us each)
  uint32_t max_filters = 2;                // compression layers around one archive (.tar.gz is 1)
  uint64_t max_unpacked_bytes = 32 << 20;  // per attachment, every level
  uint32_t max_ratio = 250;                // unpacked bytes / attachment bytes (deflate tops out near 1,030) ...
  uint64_t ratio_floor = 4 << 20;          // ... checked once this much is unpacked (small files compress well)
  // Per message, shared by all its attachments (MessageUnpackBudget).
  uint64_t message_unpacked_bytes = 64 << 20;
  uint32_t message_steps = 65536;          // libarchive calls (each bounded by a 64 KiB block or one header)
  uint32_t message_time_us = 250000;       // monotonic time unpacking: the backstop for slow codecs
  // Per worker thread (WorkerUnpackBudget): a bucket of unpacked bytes.
  uint64_t worker_unpacked_per_sec = 64 << 20;
  uint64_t worker_unpacked_burst = 128 << 20;
};

// What one message's attachments have spent unpacking. Shared by the
// attachments of one message, reset for the next (AttachmentAnalyzer::
// begin_message). One thread.
struct MessageUnpackBudget {
  uint64_t unpacked_bytes = 0;
  uint32_t steps = 0;
  std::chrono::nanoseconds elapsed{0};
  void reset() { *this = MessageUnpackBudget{}; }
};

// A worker thread's unpacking allowance: a token bucket of unpacked bytes
// refilled on the monotonic clock (worker_unpacked_per_sec, at most
// worker_unpacked_burst). The per-message budget bounds one message; this
// bounds many messages at once, each under its own budget, on one worker.
// for_this_thread() is the calling thread's (the dataplane's workers each
// get their own). One thread.
class WorkerUnpackBudget {
 public:
  static WorkerUnpackBudget& for_this_thread();
  // Takes n bytes; false if the bucket was empty (the caller stops).
  bool take(uint64_t n, const AttachmentLimits& lim, std::chrono::steady_clock::time_point now);
  uint64_t spent() const { return spent_; }  // bytes taken in all

 private:
  bool started_ = false;
  double tokens_ = 0;
  std::chrono::steady_clock::time_point last_{};
  uint64_t spent_ = 0;
};

// Loads libmagic's database for the calling thread now (it takes tens of
// milliseconds): dataplane workers call it before their loop.
void preload_sniffer();

// Name-only checks (also applied to archive entries).
void classify_name(std::string_view name, bool& executable, bool& double_extension, bool& rtlo);

class AttachmentAnalyzer {
 public:
  static constexpr size_t kSniffBytes = 16384;
  // message: the budget shared with the message's other attachments (null:
  // the analyzer's own, reset by begin_message). worker: null for the
  // calling thread's.
  explicit AttachmentAnalyzer(const AttachmentLimits& limits = {}, MessageUnpackBudget* message = nullptr,
                              WorkerUnpackBudget* worker = nullptr);
  ~AttachmentAnalyzer();
  AttachmentAnalyzer(const AttachmentAnalyzer&) = delete;
  AttachmentAnalyzer& operator=(const AttachmentAnalyzer&) = delete;

  // A new message: its attachments start a fresh MessageUnpackBudget.
  void begin_message() { message_->reset(); }
  const MessageUnpackBudget& message_budget() const { return *message_; }
  void begin(std::string name, std::string type, uint32_t depth);
  void feed(const uint8_t* p, size_t n);
  AttachmentFacts finish();

 private:
  enum class Kind : uint8_t { unknown, zip, ole2, other_archive, plain };
  void classify_head();
  void search_markers(const uint8_t* p, size_t n);
  void process(const uint8_t* p, size_t n);
  AttachmentLimits limits_;
  MessageUnpackBudget own_message_;
  MessageUnpackBudget* message_;
  WorkerUnpackBudget* worker_;
  EVP_MD_CTX* sha_;
  AttachmentFacts f_;
  Kind kind_ = Kind::unknown;
  std::vector<uint8_t> head_;   // first kSniffBytes
  std::vector<uint8_t> keep_;   // the archive, while it fits
  uint8_t tail_[32];            // last bytes of the previous chunk, for markers cut by a boundary
  size_t tail_n_ = 0;
  bool ole_encrypted_package_ = false;
};

}  // namespace sekisho::mime
