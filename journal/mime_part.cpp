#include "journal/mime_part.hpp"

namespace sekisho::journal {

MimePart to_mime_part(const mime::MessageFacts& mf) {
  const mime::HeaderFacts& h = mf.header;
  MimePart m;
  m.from = h.from;
  m.from_name = h.from_name;
  m.to = h.to;
  m.cc = h.cc;
  m.reply_to = h.reply_to;
  m.subject = h.subject;
  m.message_id = h.message_id;
  m.date = h.date;
  m.charset_errors = mf.charset_errors;
  m.header_fields = h.headers;
  m.headers_truncated = h.truncated;
  m.parts = mf.parts;
  m.urls = mf.urls;
  m.attachments.reserve(mf.attachments.size());
  for (const auto& a : mf.attachments) {
    Attachment t{a.name,      a.type,    a.sniffed_type,     a.size,   a.sha256,
                 a.macros,    a.encrypted, a.executable,     a.double_extension, a.rtlo,
                 a.archive_entries, a.depth, a.unpacked_bytes, std::nullopt};
    if (a.budget_exceeded) {  // the archive walk stopped early: why, as rules name it
      auto& why = t.budget_exceeded.emplace();
      for (unsigned k = 0; k < mime::kBudgetReasonCount; ++k)
        if (a.exceeded(mime::BudgetReason(k))) why.push_back(mime::budget_reason_name(mime::BudgetReason(k)));
    }
    m.attachments.push_back(std::move(t));
  }
  auto put = [&](const char* k, uint32_t v) {
    if (v) m.anomalies[k] = v;
  };
  put("decode_errors", mf.decode_errors);
  put("missing_close_boundary", mf.missing_close_boundary);
  put("no_boundary", mf.no_boundary);
  put("depth_exceeded", mf.depth_exceeded);
  put("parts_exceeded", mf.parts_exceeded);
  put("header_truncated", mf.header_truncated);
  put("html_truncated", mf.html_truncated);
  put("urls_dropped", mf.urls_dropped);
  put("attachments_dropped", mf.attachments_dropped);
  put("header_block_garbage", mf.header_block_garbage);
  put("header_after_garbage", mf.header_after_garbage);
  put("encoded_message", mf.encoded_message);
  put("boundary_junk", mf.boundary_junk);
  put("long_boundary_line", mf.long_boundary_line);
  put("boundary_trailing_space", mf.boundary_trailing_space);
  put("conflicting_content_fields", mf.conflicting_content_fields);
  put("header_leading_continuation", mf.header_leading_continuation);
  put("encoding_junk", mf.encoding_junk);
  m.leaves.reserve(mf.leaves.size());
  for (const auto& l : mf.leaves)
    m.leaves.push_back({l.type, l.charset, l.encoding, l.filename, l.size, l.sha256,
                        l.text_sha256.empty() ? std::nullopt : std::optional<std::string>(l.text_sha256), l.depth,
                        l.text});
  return m;
}

void add_facts_json(const mime::MessageFacts& f, nlohmann::json& j) { add_mime_json(to_mime_part(f), j); }

}  // namespace sekisho::journal
