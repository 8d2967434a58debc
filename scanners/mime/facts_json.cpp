#include "scanners/mime/facts_json.hpp"

namespace sekisho::mime {

void add_facts_json(const MessageFacts& mf, nlohmann::json& j) {
  using nlohmann::json;
  const HeaderFacts& h = mf.header;
  j["from"] = h.from;
  j["from_name"] = h.from_name;
  j["to"] = h.to;
  j["cc"] = h.cc;
  j["reply_to"] = h.reply_to ? json(*h.reply_to) : json(nullptr);
  j["subject"] = h.subject;
  j["message_id"] = h.message_id;
  j["date"] = h.date;
  j["charset_errors"] = mf.charset_errors;
  j["header_fields"] = h.headers;
  j["headers_truncated"] = h.truncated;
  j["parts"] = mf.parts;
  j["urls"] = mf.urls;
  json atts = json::array();
  for (const auto& a : mf.attachments) {
    atts.push_back({{"name", a.name}, {"type", a.type}, {"sniffed_type", a.sniffed_type}, {"size", a.size},
                    {"sha256", a.sha256}, {"macros", a.macros}, {"encrypted", a.encrypted},
                    {"executable", a.executable}, {"double_extension", a.double_extension}, {"rtlo", a.rtlo},
                    {"archive_entries", a.archive_entries}, {"depth", a.depth},
                    {"unpacked_bytes", a.unpacked_bytes}});
    if (a.budget_exceeded) {  // the archive walk stopped early: why, as rules name it
      json why = json::array();
      for (unsigned k = 0; k < kBudgetReasonCount; ++k)
        if (a.exceeded(BudgetReason(k))) why.push_back(budget_reason_name(BudgetReason(k)));
      atts.back()["budget_exceeded"] = why;
    }
  }
  j["attachments"] = atts;
  json an = json::object();
  auto put = [&](const char* k, uint32_t v) {
    if (v) an[k] = v;
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
  j["mime_anomalies"] = an;
  if (!mf.leaves.empty()) {
    json lv = json::array();
    for (const auto& l : mf.leaves) {
      lv.push_back({{"type", l.type}, {"charset", l.charset}, {"encoding", l.encoding}, {"filename", l.filename},
                    {"size", l.size}, {"sha256", l.sha256},
                    {"text_sha256", l.text_sha256.empty() ? json(nullptr) : json(l.text_sha256)},
                    {"depth", l.depth}});
      if (!l.text.empty()) lv.back()["text"] = l.text;
    }
    j["leaves"] = lv;
  }
}

}  // namespace sekisho::mime
