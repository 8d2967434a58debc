#include "dataplane/smtp/content_policy.hpp"

namespace sekisho::smtp {
namespace {

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string_view host_of(std::string_view endpoint) {  // "1.2.3.4:25" or "[2001:db8::1]:25"
  if (!endpoint.empty() && endpoint.front() == '[') {
    size_t rb = endpoint.find(']');
    return rb == std::string_view::npos ? endpoint : endpoint.substr(1, rb - 1);
  }
  size_t colon = endpoint.rfind(':');
  return colon == std::string_view::npos ? endpoint : endpoint.substr(0, colon);
}

}  // namespace

ContentScan scan_content(const match::Ruleset& rs, match::Scratch& scratch, MessageRecord& m) {
  ContentScan out;
  match::MessageScan scan(rs, scratch);
  const Transaction& t = *m.txn;
  scan.envelope(t.mail_from, t.rcpt_to, m.session ? std::string_view(m.session->helo) : std::string_view());
  scan.client_ip(host_of(m.client));
  if (const mime::ContentCollector* c = m.content) {
    for (size_t i = 0; i < c->fields(); ++i)  // the message's own fields first: the body stream starts with its Subject
      if (c->field_part(i) == 0) scan.header(c->field_name(i), c->field_raw(i), c->field_decoded(i));
    for (size_t i = 0; i < c->fields(); ++i)
      if (c->field_part(i) != 0) scan.part_header(c->field_name(i), c->field_raw(i), c->field_decoded(i));
    scan.body_text(bytes(c->text()));
    scan.rawbody(bytes(c->raw_text()));
    scan.full(bytes(c->message()));
    out.content_truncated = c->truncated();
  }
  if (const mime::MessageFacts* f = m.mime) {
    for (const auto& u : f->urls) scan.uri(u);
    for (const auto& a : f->attachments) {
      match::AttachmentFacts af;
      af.name = a.name;
      af.type = a.type;
      af.sniffed_type = a.sniffed_type;
      af.size = a.size;
      af.sha256 = a.sha256;
      af.macros = a.macros;
      af.encrypted = a.encrypted;
      af.budget_exceeded = a.budget_exceeded;
      scan.attachment(af);
    }
  }
  match::Result r = scan.finish();
  m.score = r.score;
  m.rules_hit.clear();
  const match::Hit* top = nullptr;
  for (const auto& h : r.hits) {
    m.rules_hit.emplace_back(std::string(h.rule), std::string(h.context));
    if (!top || h.score > top->score) top = &h;
  }
  static const char* const kClass[] = {"P", "G", "H", "J", "E", "D"};
  m.sender_class = kClass[size_t(r.sender_class) < 6 ? size_t(r.sender_class) : 5];
  m.categories.assign(r.categories.begin(), r.categories.end());
  switch (r.action) {
    case rules::Action::reject: out.action = Action::reject; break;
    case rules::Action::quarantine: out.action = Action::quarantine; break;
    case rules::Action::tempfail: out.action = Action::tempfail; break;
    case rules::Action::tag: out.tagged = true; break;
    default: break;
  }
  if (!r.decided_by.empty()) {
    if (out.action != Action::pass || out.tagged) m.verdict_rule = std::string(r.decided_by);
    out.reply = std::string(r.reply);
  } else if (out.action != Action::pass && top) {
    m.verdict_rule = std::string(top->rule);
  }
  return out;
}

}  // namespace sekisho::smtp
