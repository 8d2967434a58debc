// The held-message spool: one file per message the dataplane holds
// (verdict quarantine), written before the client is told 250, taken by
// the control plane's quarantine.
//
// Layout (maildir-like, atomic by rename):
//   DIR/tmp/ID.msg   being written
//   DIR/new/ID.msg   durable: fsync'ed file and directory; the control plane
//                    takes it from here
// File: the message event as one line (to_line(to_json(MessageEvent)) with
// its "id" and "spool"), "\n", then the message bytes exactly as the client
// sent them (after dot-unstuffing).
//
// Thread-safety: one SpoolWriter per writer thread (never a worker lcore:
// it makes syscalls); the readers are pure.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "journal/event.hpp"

namespace sekisho::journal {

struct SpoolResult {
  bool ok = false;
  std::string path;   // DIR/new/ID.msg when ok
  std::string error;  // what failed (errno text), when not ok
};

class SpoolWriter {
 public:
  // Creates DIR/tmp and DIR/new when missing. Throws std::runtime_error if
  // DIR cannot be used at all (start-up only).
  explicit SpoolWriter(std::string dir);
  ~SpoolWriter();
  SpoolWriter(const SpoolWriter&) = delete;
  SpoolWriter& operator=(const SpoolWriter&) = delete;

  // Writes one held message durably. Returns only after file and directory
  // are fsync'ed; on any failure nothing is left in new/. An id already in
  // new/ is never overwritten.
  SpoolResult write(std::string_view id, std::string_view header_json, std::span<const uint8_t> message);

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int new_fd_ = -1;  // DIR/new, kept open for fsync
};

struct SpoolEntry {
  std::string header_json;
  std::string message;
};
// Reads a spool file back. Returns false on a file that is not a complete
// spool entry (no header line).
bool read_spool_file(const std::string& path, SpoolEntry& out);
// The entry's header as the message event it is: a "message" with an "id"
// (a spool entry always has one), else an error.
std::optional<ReadError> read_spool_header(std::string_view header_json, MessageEvent& out);

// A message id: "SK" + 13 base32 characters of time (µs) + lcore + counter.
// Unique per process run and sortable by time; the spool file's name.
std::string make_message_id(uint64_t unix_us, unsigned lcore, uint32_t counter);

}  // namespace sekisho::journal
