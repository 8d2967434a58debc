#include "scanners/verdict/evaluator.hpp"

#include <fnmatch.h>

namespace sekisho::verdict {

const char* stage_name(Stage s) {
  switch (s) {
    case Stage::none: return "none";
    case Stage::smuggling: return "smuggling";
    case Stage::envelope: return "envelope";
    case Stage::content: return "content";
    case Stage::overflow: return "overflow";
    case Stage::mime: return "mime";
  }
  return "?";
}

const char* mime_outcome_name(MimeOutcome o) {
  switch (o) {
    case MimeOutcome::ok: return "ok";
    case MimeOutcome::limit: return "limit";
    case MimeOutcome::nesting: return "nesting";
    case MimeOutcome::malformed: return "malformed";
  }
  return "?";
}

MimeOutcome mime_outcome(const mime::MessageFacts& f) {
  if (f.depth_exceeded) return MimeOutcome::nesting;
  if (f.parts_exceeded || f.header_truncated || f.attachments_dropped || f.urls_dropped || f.html_truncated)
    return MimeOutcome::limit;
  if (f.no_boundary || f.missing_close_boundary || f.decode_errors) return MimeOutcome::malformed;
  return MimeOutcome::ok;
}

std::string_view host_of(std::string_view endpoint) {
  if (!endpoint.empty() && endpoint.front() == '[') {
    size_t rb = endpoint.find(']');
    return rb == std::string_view::npos ? endpoint : endpoint.substr(1, rb - 1);
  }
  size_t colon = endpoint.rfind(':');
  return colon == std::string_view::npos ? endpoint : endpoint.substr(0, colon);
}

namespace {

bool glob(const std::string& pattern, const std::string& value) {
  return pattern.empty() || fnmatch(pattern.c_str(), value.c_str(), FNM_CASEFOLD) == 0;
}

const EnvelopeRule* match_envelope(const std::vector<EnvelopeRule>& rules, const message::Transaction& t) {
  const std::string sender = t.mail_from.empty() ? "<>" : t.mail_from;
  for (const auto& r : rules) {
    if (!glob(r.mail_from, sender)) continue;
    bool rcpt = r.rcpt_to.empty();
    for (const auto& a : t.rcpt_to) rcpt = rcpt || glob(r.rcpt_to, a);
    for (const auto& a : t.rcpt_pending) rcpt = rcpt || (!a.empty() && glob(r.rcpt_to, a));
    if (rcpt) return &r;
  }
  return nullptr;
}

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

void feed(match::MessageScan& scan, const Inputs& in) {
  if (const message::Transaction* t = in.txn)
    scan.envelope(t->mail_from, t->rcpt_to, in.session ? std::string_view(in.session->helo) : std::string_view());
  if (!in.client_ip.empty()) scan.client_ip(in.client_ip);
  if (const mime::ContentCollector* c = in.content) {
    for (size_t i = 0; i < c->fields(); ++i)  // the message's own fields first: the body stream starts with its Subject
      if (c->field_part(i) == 0) scan.header(c->field_name(i), c->field_raw(i), c->field_decoded(i));
    for (size_t i = 0; i < c->fields(); ++i)
      if (c->field_part(i) != 0) scan.part_header(c->field_name(i), c->field_raw(i), c->field_decoded(i));
    scan.body_text(bytes(c->text()));
    scan.rawbody(bytes(c->raw_text()));
    scan.full(in.message.empty() ? bytes(c->message()) : in.message);
  }
  if (const mime::MessageFacts* f = in.mime) {
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
}

// The content stage: the scan's findings into v, and its action.
void content_stage(const Content& content, const Inputs& in, Verdict& v, match::Result* detail) {
  match::Result local;
  match::Result& r = detail ? *detail : local;
  match::MessageScan scan(*content.ruleset, *content.scratch);
  feed(scan, in);
  scan.finish(r);
  v.scanned = true;
  v.content_truncated = (in.content && in.content->truncated()) || in.message_truncated;
  v.score = r.score;
  const match::Hit* top = nullptr;
  for (const auto& h : r.hits) {
    v.rules_hit.emplace_back(std::string(h.rule), std::string(h.context));
    if (!top || h.score > top->score) top = &h;
  }
  v.sender_class = std::string(1, rules::sender_class_letter(r.sender_class));
  v.categories.assign(r.categories.begin(), r.categories.end());
  v.action = r.action;
  if (!r.decided_by.empty()) {
    if (v.action != Action::pass) v.rule = std::string(r.decided_by);
    v.reply = std::string(r.reply);
  } else if (v.action != Action::pass && v.action != Action::tag && top) {
    v.rule = std::string(top->rule);
  }
  if (v.action != Action::pass) v.stage = Stage::content;
}

Action mime_policy(const Policy& p, MimeOutcome o) {
  switch (o) {
    case MimeOutcome::limit: return p.mime_limit;
    case MimeOutcome::nesting: return p.mime_nesting;
    case MimeOutcome::malformed: return p.mime_malformed;
    default: return Action::pass;
  }
}

}  // namespace

Verdict evaluate(const Policy& policy, const Content& content, const Inputs& in, match::Result* detail) {
  Verdict v;
  static const message::Transaction kNoEnvelope;
  const message::Transaction& t = in.txn ? *in.txn : kNoEnvelope;
  if (t.bare_lf_end && policy.smuggling != Action::pass) {
    // Where this message ends depends on the server: refuse it whole.
    v.action = policy.smuggling;
    v.stage = Stage::smuggling;
    v.rule = "smtp_smuggling";
    return v;
  }
  if (const EnvelopeRule* r = match_envelope(policy.envelope, t)) {
    v.action = r->action;
    v.stage = Stage::envelope;
    v.rule = r->name;
    return v;
  }
  if (content.ruleset && content.scratch && in.content) content_stage(content, in, v, detail);
  if (!delivers(v.action)) return v;
  if (v.content_truncated && !delivers(policy.overflow)) {
    v.action = policy.overflow;
    v.stage = Stage::overflow;
    v.rule = "scan_overflow";
    v.reply.clear();
    return v;
  }
  if (in.mime) {
    MimeOutcome o = mime_outcome(*in.mime);
    Action a = mime_policy(policy, o);
    if (!delivers(a)) {
      v.action = a;
      v.stage = Stage::mime;
      v.rule = std::string("mime_") + mime_outcome_name(o);
      v.reply.clear();
    }
  }
  return v;
}

}  // namespace sekisho::verdict
