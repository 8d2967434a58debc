// MIME decode throughput per core, next to memcpy and SHA-256 of the same
// bytes, in one run (ratios survive a noisy machine).
//
//   mime_bench [--passes N] [--chunk BYTES] [--large N] LIST_OR_DIR...
//
// Messages are read into memory once (CRLF line ends, as SMTP delivers
// them). Each pass runs, over every message:
//   memcpy        copy of the message bytes (the ceiling of any byte pass)
//   sha256        OpenSSL SHA-256 of the bytes (what hashing alone costs)
//   mime whole    MimeParser: headers, structure, QP/base64, charsets,
//                 HTML to text, URLs, attachment hashing and sniffing
//   mime chunked  the same, fed in --chunk byte pieces (TCP segment size)
// and prints GB/s per core and each figure as a fraction of memcpy.
// --large N adds a second set in the same run: N generated messages, each
// with a 4 MiB random attachment in base64 (where SHA-256 and base64 bound
// the engine), reported apart.
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "scanners/mime/eml_file.hpp"
#include "scanners/mime/mime_parser.hpp"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string large_message(uint32_t seed) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string m = "From: big@example.test\r\nTo: x@example.test\r\nSubject: large " + std::to_string(seed) +
                  "\r\nContent-Type: multipart/mixed; boundary=\"LB\"\r\n\r\n--LB\r\nContent-Type: text/plain\r\n\r\n"
                  "see attached\r\n--LB\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment;"
                  " filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n";
  uint32_t x = seed * 2654435761u + 1;
  for (size_t line = 0; line < (4u << 20) / 57; ++line) {
    for (int q = 0; q < 19; ++q) {
      x = x * 1664525u + 1013904223u;
      m += k[x >> 26], m += k[(x >> 20) & 63], m += k[(x >> 14) & 63], m += k[(x >> 8) & 63];
    }
    m += "\r\n";
  }
  return m + "--LB--\r\n";
}

struct Result {
  double copy = 1e30, sha = 1e30, whole = 1e30, chunked = 1e30;
};

Result measure(const std::vector<std::string>& msgs, int passes, size_t chunk, uint64_t& sink) {
  Result r;
  size_t biggest = 0;
  for (auto& m : msgs) biggest = std::max(biggest, m.size());
  std::vector<char> dst(biggest);
  sekisho::mime::MimeParser parser;
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  for (int p = 0; p < passes; ++p) {  // best of N passes for each, interleaved
    double t0 = now();
    for (auto& m : msgs) {
      std::memcpy(dst.data(), m.data(), m.size());
      sink += uint8_t(dst[m.size() / 2]);
    }
    double t1 = now();
    for (auto& m : msgs) {
      unsigned char md[32];
      unsigned len;
      EVP_DigestInit_ex(sha, EVP_sha256(), nullptr);
      EVP_DigestUpdate(sha, m.data(), m.size());
      EVP_DigestFinal_ex(sha, md, &len);
      sink += md[0];
    }
    double t2 = now();
    for (auto& m : msgs) {
      parser.reset();
      parser.feed({reinterpret_cast<const uint8_t*>(m.data()), m.size()});
      parser.finish();
      sink += parser.facts().parts;
    }
    double t3 = now();
    for (auto& m : msgs) {
      parser.reset();
      auto* b = reinterpret_cast<const uint8_t*>(m.data());
      for (size_t i = 0; i < m.size(); i += chunk) parser.feed({b + i, std::min(chunk, m.size() - i)});
      parser.finish();
      sink += parser.facts().parts;
    }
    double t4 = now();
    r.copy = std::min(r.copy, t1 - t0);
    r.sha = std::min(r.sha, t2 - t1);
    r.whole = std::min(r.whole, t3 - t2);
    r.chunked = std::min(r.chunked, t4 - t3);
  }
  EVP_MD_CTX_free(sha);
  return r;
}

void report(const char* title, const std::vector<std::string>& msgs, const Result& r, size_t chunk) {
  uint64_t total = 0;
  for (auto& m : msgs) total += m.size();
  auto gbs = [&](double t) { return double(total) / t / 1e9; };
  std::printf("%s: %zu messages, %.1f MB\n", title, msgs.size(), double(total) / 1e6);
  std::printf("  %-26s %10s %12s %12s\n", "pass (best of runs)", "GB/s", "msgs/s", "vs memcpy");
  auto row = [&](const char* name, double t) {
    std::printf("  %-26s %10.3f %12.0f %12.4f\n", name, gbs(t), double(msgs.size()) / t, r.copy / t);
  };
  row("memcpy", r.copy);
  row("sha256 (OpenSSL)", r.sha);
  row("mime whole messages", r.whole);
  char label[64];
  std::snprintf(label, sizeof label, "mime %zu-byte chunks", chunk);
  row(label, r.chunked);
  std::printf("  against the 1 GB/s per core target: %.2f (chunked)\n", gbs(r.chunked));
}

}  // namespace

int main(int argc, char** argv) {
  int passes = 5, large = 0;
  size_t chunk = 1460;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--passes" && i + 1 < argc) passes = std::stoi(argv[++i]);
    else if (a == "--chunk" && i + 1 < argc) chunk = std::stoul(argv[++i]);
    else if (a == "--large" && i + 1 < argc) large = std::stoi(argv[++i]);
    else if (std::filesystem::is_directory(a)) {
      for (auto& e : std::filesystem::recursive_directory_iterator(a))
        if (e.is_regular_file() && e.path().extension() == ".eml") files.push_back(e.path());
    } else if (a.size() > 4 && a.substr(a.size() - 4) == ".txt") {
      std::ifstream l(a);
      for (std::string line; std::getline(l, line);)
        if (!line.empty()) files.push_back(line);
    } else {
      files.push_back(a);
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> msgs;
  for (auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    msgs.push_back(sekisho::mime::eml_as_smtp(ss.str()));
  }
  if (msgs.empty()) {
    std::fprintf(stderr, "mime_bench: no messages (give .eml files, a directory of them, or a list .txt)\n");
    return 2;
  }
  uint64_t sink = 0;
  {  // what the engine finds in the corpus, once
    sekisho::mime::MimeParser parser;
    uint64_t urls = 0, atts = 0, text = 0;
    for (auto& m : msgs) {
      parser.reset();
      parser.feed({reinterpret_cast<const uint8_t*>(m.data()), m.size()});
      parser.finish();
      urls += parser.facts().urls.size();
      atts += parser.facts().attachments.size();
      text += parser.facts().text_bytes;
    }
    std::printf("corpus: %llu URLs, %llu attachments, %.1f MB of text produced\n", (unsigned long long)urls,
                (unsigned long long)atts, double(text) / 1e6);
  }
  report("corpus (CRLF)", msgs, measure(msgs, passes, chunk, sink), chunk);
  {  // what finish() costs: the MIME engine's share of the hold point (attachment sniffing, archives, flushes)
    sekisho::mime::MimeParser parser;
    std::vector<double> fin;
    for (auto& m : msgs) {
      parser.reset();
      auto* b = reinterpret_cast<const uint8_t*>(m.data());
      for (size_t i = 0; i < m.size(); i += chunk) parser.feed({b + i, std::min(chunk, m.size() - i)});
      double t0 = now();
      parser.finish();
      fin.push_back(now() - t0);
    }
    std::sort(fin.begin(), fin.end());
    auto pct = [&](double q) { return fin[std::min(fin.size() - 1, size_t(q * double(fin.size())))] * 1e6; };
    std::printf("  finish() per message (the hold point's MIME share): p50 %.1f us, p99 %.1f us, max %.1f us\n",
                pct(0.5), pct(0.99), fin.back() * 1e6);
  }
  if (large > 0) {
    std::vector<std::string> big;
    for (int k = 0; k < large; ++k) big.push_back(large_message(uint32_t(k)));
    report("large base64 attachments", big, measure(big, passes, chunk, sink), chunk);
  }
  return sink == 42 ? 1 : 0;  // keeps the work observable
}
