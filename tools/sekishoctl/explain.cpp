#include "tools/sekishoctl/explain.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "tools/sekishoctl/eml.hpp"
#include "scanners/match/match.hpp"

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
  auto t1 = std::chrono::steady_clock::now();
  match::MessageScan scan(*rs, scratch);
  if (!mail_from.empty() || !rcpts.empty() || !helo.empty()) scan.envelope(mail_from, rcpts, helo);
  if (!client.empty()) scan.client_ip(client);
  feed(scan, m);
  match::Result r = scan.finish();
  double scan_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t1).count();
  printf("ruleset %s (loaded in %.1f ms)\n", std::string(rs->version()).c_str(), load_ms);
  printf("message %s: %zu header fields, %zu parts, %zu bytes of text, %zu URLs, %zu attachments\n", eml.c_str(),
         m.headers.size(), m.part_headers.size() + 1, m.body_text.size(), m.uris.size(), m.attachments.size());
  for (const auto& h : r.hits)
    printf("  %-28s %-26s %6.3f%s  %s\n", std::string(h.rule).c_str(), std::string(h.context).c_str(), h.score,
           h.count > 1 ? (" x" + std::to_string(h.count)).c_str() : "", std::string(h.describe).c_str());
  printf("score %.3f, action %s, sender class %c", r.score, rules::action_name(r.action), rules::sender_class_letter(r.sender_class));
  if (!r.categories.empty()) {
    printf(", categories");
    for (auto c : r.categories) printf(" %s", std::string(c).c_str());
  }
  printf("\nscan %.0f us%s%s\n", scan_us, r.truncated ? " (some values exceeded the scratch limits)" : "",
         r.unconfirmed ? (", " + std::to_string(r.unconfirmed) + " candidates unconfirmed").c_str() : "");
  return 0;
}

}  // namespace sekisho::ctl
