// Received-header relay parsing: SpamAssassin's X-Spam-Relays-Trusted,
// -Untrusted, -Internal and -External pseudo-headers.
//
// Each Received: field (newest first) is read into one relay
//   [ ip=IP rdns=RDNS helo=HELO by=BY ident=IDENT envfrom=ENVFROM intl=0|1 id=ID auth=AUTH msa=0 ]
// and the relays are joined by one space, newest first, as SpamAssassin 4
// prints them. Fields SpamAssassin flags as invalid ([ ] ( ) < > | # NUL and
// white space inside a value) become '!', so a HELO of "[1.2.3.4]" reads
// "!1.2.3.4!".
//
// The parser is Sekisho's own: it reads the from-clause structurally (the
// first word, then the parenthesised and bracketed groups before " by ")
// and knows the shapes Postfix, Sendmail, qmail, Exim, Microsoft (SMTPSVC,
// Exchange/SMTP Server), CommuniGate and webmail front ends write. Headers
// that describe no TCP handover (local delivery, "with local", BSMTP, a
// from-clause without an address) give no relay; "with POP3/IMAP" fetcher
// hops restart the trusted and external lists as SpamAssassin does.
// tests/rules/relays_vs_spamassassin.py measures agreement with
// SpamAssassin's own strings over the public corpus.
//
// Trust (SpamAssassin's default with no trusted_networks/internal_networks
// configured): relays are trusted, and internal, from the newest while the
// connecting address is private (10/8, 127/8, 169.254/16, 172.16/12,
// 192.168/16, 100.64/10, fe80::/10, ::1) or the hop was authenticated; from
// the first other relay on, every relay is untrusted and external.
//
// Bounded: at most |max_headers| Received fields, each read up to
// |max_line| bytes; the parser is linear in its input and never throws.
// build() allocates nothing once the buffers have grown to their reserve.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sekisho::match {

struct Relay {
  std::string_view ip, rdns, helo, by, ident, envfrom, id, auth;
  bool has_envfrom = false;
  bool ip_private = false;
};

struct Relays {
  std::string trusted, untrusted, internal, external;  // the pseudo-header values
  // SpamAssassin's last_trusted_relay_index / last_internal_relay_index:
  // index (0 = newest) of the last Received field still inside the trusted
  // (internal) part, -1 when none. ALL-TRUSTED and friends cut the header
  // block there.
  int last_trusted = -1, last_internal = -1;
  uint32_t relays = 0, unparseable = 0, skipped = 0;
  bool cut = false;  // a field or the relay strings hit a bound
  void clear();
  void reserve(size_t bytes);
};

class RelayParser {
 public:
  explicit RelayParser(size_t max_line = 4096, size_t max_headers = 128, size_t max_out = 64 * 1024);
  // Parses one Received value (folded or not). 1: a relay (fields view this
  // parser's buffer until the next call); 0: a field that describes no
  // handover (skipped); -1: unparseable. |fetch_marker| is set for
  // POP3/IMAP fetcher hops.
  int parse(std::string_view value, Relay& out, bool& fetch_marker);
  // Builds the four pseudo-headers from the Received values, newest first.
  // |next(i, value)| returns false past the last field.
  template <class Next>
  void build(Next&& next, Relays& out) {
    begin(out);
    std::string_view v;
    for (size_t i = 0; next(i, v); ++i) {
      if (i >= max_headers_) {
        out.cut = true;
        break;
      }
      add(v, out);
    }
  }

 private:
  void begin(Relays& out);
  void add(std::string_view value, Relays& out);
  void append(std::string& dst, const Relay& r, bool internal, Relays& out);
  size_t max_line_, max_headers_, max_out_;
  std::string line_;   // normalised field
  std::string work_;   // values rewritten (envfrom, ip)
  bool in_trusted_ = true, in_internal_ = true, allow_fetch_ = true;
};

}  // namespace sekisho::match
