// Test helpers for the SMTP engine: a sink that records every message and
// a player for scripted dialogues, optionally cut into small writes.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "dataplane/smtp/smtp_session.hpp"

namespace sekisho::smtp::testing {

struct Recorded {
  Transaction txn;
  std::string body;
  bool ended = false;  // on_message_end was called for it
};

class RecordingSink : public MessageSink {
 public:
  void on_message_begin(const SessionFacts&, const Transaction&) override {
    current.clear();
    ended_current = false;
    ++begins;
  }
  void on_body(std::span<const uint8_t> b) override { current.append(reinterpret_cast<const char*>(b.data()), b.size()); }
  void on_message_end(const SessionFacts&, const Transaction& t) override {
    ++ends;
    ended_current = true;
    at_hold.push_back(t);
  }
  void on_transaction_done(const SessionFacts&, const Transaction& t) override { done.push_back({t, current, ended_current}); }
  std::string current;
  bool ended_current = false;
  int begins = 0, ends = 0;
  std::vector<Transaction> at_hold;  // each message's transaction at its hold point
  std::vector<Recorded> done;
};

inline std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

using Script = std::vector<std::pair<char, std::string>>;

// Plays a dialogue; |chunk| > 0 splits every write into pieces of that size.
inline void play(SmtpSession& s, const Script& script, size_t chunk = 0) {
  for (auto& [who, text] : script) {
    size_t step = chunk ? chunk : text.size();
    for (size_t i = 0; i < text.size(); i += step) {
      auto piece = bytes(text).subspan(i, std::min(step, text.size() - i));
      who == 'C' ? s.on_client(piece) : s.on_server(piece);
    }
  }
}

}  // namespace sekisho::smtp::testing
