// The .eml reader of sekishoctl explain and the rules tests: the MIME engine
// itself (scanners/mime), fed the whole file, with a ContentCollector
// keeping the contexts, so that explain decides as the dataplane does.
#include "tools/sekishoctl/eml.hpp"

#include "scanners/mime/collect.hpp"
#include "scanners/mime/mime_parser.hpp"

namespace sekisho::ctl {

EmlMessage parse_eml(std::string_view bytes) {
  mime::CollectLimits lim;
  lim.header_bytes = lim.text_bytes = lim.raw_text_bytes = lim.message_bytes = size_t(1) << 30;  // a file: no cap
  mime::ContentCollector c(lim);
  mime::MimeParser p({}, &c);
  std::string_view body = bytes;
  if (body.rfind("From ", 0) == 0) {  // an mbox separator line is not part of the message
    size_t nl = body.find('\n');
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
  }
  p.feed({reinterpret_cast<const uint8_t*>(body.data()), body.size()});
  p.finish();
  EmlMessage m;
  uint32_t last_part = 0;
  for (size_t i = 0; i < c.fields(); ++i) {
    EmlField f{std::string(c.field_name(i)), std::string(c.field_raw(i)), std::string(c.field_decoded(i))};
    uint32_t part = c.field_part(i);
    if (part == 0) {
      m.headers.push_back(std::move(f));
      continue;
    }
    if (m.part_headers.empty() || part != last_part) m.part_headers.emplace_back();
    last_part = part;
    m.part_headers.back().push_back(std::move(f));
  }
  m.body_text = c.text();
  m.rawbody = c.raw_text();
  m.full = std::string(body);
  const mime::MessageFacts& f = p.facts();
  m.uris = f.urls;
  for (const auto& a : f.attachments)
    m.attachments.push_back({a.name, a.type, a.sniffed_type, a.sha256, a.size, a.macros, a.encrypted,
                             a.budget_exceeded});
  return m;
}

void feed(match::MessageScan& scan, const EmlMessage& m, size_t chunk) {
  for (const auto& h : m.headers) scan.header(h.name, h.raw, h.decoded);
  for (const auto& part : m.part_headers)
    for (const auto& h : part) scan.part_header(h.name, h.raw, h.decoded);
  auto stream = [&](const std::string& s, void (match::MessageScan::*fn)(std::span<const uint8_t>)) {
    for (size_t i = 0; i < s.size(); i += chunk)
      (scan.*fn)({reinterpret_cast<const uint8_t*>(s.data()) + i, std::min(chunk, s.size() - i)});
  };
  stream(m.body_text, &match::MessageScan::body_text);
  stream(m.rawbody, &match::MessageScan::rawbody);
  stream(m.full, &match::MessageScan::full);
  for (const auto& u : m.uris) scan.uri(u);
  for (const auto& a : m.attachments) {
    match::AttachmentFacts af;
    af.name = a.name;
    af.type = a.type;
    af.sniffed_type = a.sniffed;
    af.size = a.size;
    af.sha256 = a.sha256;
    af.macros = a.macros;
    af.encrypted = a.encrypted;
    af.budget_exceeded = a.budget_exceeded;
    scan.attachment(af);
  }
}

}  // namespace sekisho::ctl
