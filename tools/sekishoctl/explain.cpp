#include "tools/sekishoctl/explain.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "tools/sekishoctl/eml.hpp"
#include "scanners/match/match.hpp"
#include "scanners/mime/collect.hpp"
#include "scanners/mime/mime_parser.hpp"
#include "scanners/verdict/evaluator.hpp"

namespace sekisho::ctl {

int cmd_explain(const std::vector<std::string>& args) {
  std::string artifact, eml, mail_from, helo, client;
  std::vector<std::string> rcpts;
  std::vector<std::string> pos;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--mail-from" && i + 1 < args.size()) mail_from = args[++i];
    else if (args[i] == "--rcpt" && i + 1 < args.size()) rcpts.push_back(args[++i]);
    else if (args[i] == "--helo" && i + 1 < args.size()) helo = args[++i];
    else if (args[i] == "--client-ip" && i + 1 < args.size()) client = args[++i];
    else pos.push_back(args[i]);
  }
  if (pos.size() != 2) {
    fprintf(stderr, "usage: sekishoctl rules explain ARTIFACT MESSAGE.eml [--mail-from A] [--rcpt B]... [--helo H] [--client-ip IP]\n");
    return 2;
  }
  artifact = pos[0];
  eml = pos[1];
  auto t0 = std::chrono::steady_clock::now();
  std::string err;
  auto rs = match::Ruleset::load(artifact, err);
  if (!rs) {
    fprintf(stderr, "sekishoctl: %s\n", err.c_str());
    return 1;
  }
  double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::ifstream in(eml, std::ios::binary);
  if (!in) {
    fprintf(stderr, "sekishoctl: %s: cannot read\n", eml.c_str());
    return 1;
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EmlMessage m = parse_eml(bytes);
  match::Scratch scratch(*rs);
  if (!scratch.ok()) {
    fprintf(stderr, "sekishoctl: cannot allocate Hyperscan scratch\n");
    return 1;
  }
  // The message as the dataplane sees it: the MIME engine into a content
  // collector, then the one evaluator (scanners/verdict).
  std::string_view body = bytes;
  if (body.rfind("From ", 0) == 0) {  // an mbox separator line is not part of the message
    size_t nl = body.find('\n');
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
  }
  mime::CollectLimits lim;
  lim.header_bytes = lim.text_bytes = lim.raw_text_bytes = lim.message_bytes = size_t(1) << 30;  // a file: no cap
  auto t1 = std::chrono::steady_clock::now();
  mime::ContentCollector collector(lim);
  mime::MimeParser parser({}, &collector);
  parser.feed(match::bytes_of(body));
  collector.message_bytes(match::bytes_of(body));
  parser.finish();
  message::Transaction txn;
  message::SessionFacts session;
  txn.mail_from = mail_from;
  txn.rcpt_to = rcpts;
  session.helo = helo;
  verdict::Inputs inputs;
  const bool envelope = !mail_from.empty() || !rcpts.empty() || !helo.empty();
  inputs.txn = envelope ? &txn : nullptr;
  inputs.session = &session;
  inputs.client_ip = client;
  inputs.content = &collector;
  inputs.mime = &parser.facts();
  match::Result r;
  verdict::Verdict v = verdict::evaluate({}, {rs.get(), &scratch}, inputs, &r);
  double scan_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t1).count();
  printf("ruleset %s (loaded in %.1f ms)\n", std::string(rs->version()).c_str(), load_ms);
  printf("message %s: %zu header fields, %zu parts, %zu bytes of text, %zu URLs, %zu attachments\n", eml.c_str(),
         m.headers.size(), m.part_headers.size() + 1, m.body_text.size(), m.uris.size(), m.attachments.size());
  for (const auto& h : r.hits)
    printf("  %-28s %-26s %6.3f%s  %s\n", std::string(h.rule).c_str(), std::string(h.context).c_str(), h.score,
           h.count > 1 ? (" x" + std::to_string(h.count)).c_str() : "", std::string(h.describe).c_str());
  printf("score %.3f, action %s, sender class %c", v.score, verdict::action_name(v.action),
         rules::sender_class_letter(r.sender_class));
  if (!r.categories.empty()) {
    printf(", categories");
    for (auto c : r.categories) printf(" %s", std::string(c).c_str());
  }
  if (!v.rule.empty()) printf(", decided by %s (%s)", v.rule.c_str(), verdict::stage_name(v.stage));
  printf("\nparse and scan %.0f us%s%s\n", scan_us, r.truncated ? " (some values exceeded the scratch limits)" : "",
         r.unconfirmed ? (", " + std::to_string(r.unconfirmed) + " candidates unconfirmed").c_str() : "");
  return 0;
}

}  // namespace sekisho::ctl
