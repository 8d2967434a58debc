// MIME decode throughput per core on a message corpus, next to memcpy of
// the same bytes, in one run (ratios survive a noisy machine).
//
//   mime_bench [--passes N] [--chunk BYTES] LIST_OR_DIR...
//
// Messages are read into memory once (CRLF line ends, as SMTP delivers
// them). Each pass runs, over every message:
//   memcpy        copy of the message bytes (the ceiling of any byte pass)
//   sha256        OpenSSL SHA-256 of the bytes (what hashing alone costs)
//   mime whole    MimeParser: headers, structure, QP/base64, charsets,
//                 HTML to text, URLs, attachment hashing and sniffing
//   mime chunked  the same, fed in --chunk byte pieces (TCP segment size)
// and prints GB/s per core and each figure as a fraction of memcpy.
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

#include "mime/mime_parser.hpp"

namespace {

std::string crlf(const std::string& s0) {
  std::string s = s0;
  if (s.rfind("From ", 0) == 0) {
    size_t nl = s.find('\n');
    s = nl == std::string::npos ? "" : s.substr(nl + 1);
  }
  std::string o;
  o.reserve(s.size() + s.size() / 32);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      o += "\r\n";
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else if (s[i] == '\n') {
      o += "\r\n";
    } else {
      o.push_back(s[i]);
    }
  }
  return o;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  int passes = 5;
  size_t chunk = 1460;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--passes" && i + 1 < argc) passes = std::stoi(argv[++i]);
    else if (a == "--chunk" && i + 1 < argc) chunk = std::stoul(argv[++i]);
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
  uint64_t total = 0;
  for (auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    msgs.push_back(crlf(ss.str()));
    total += msgs.back().size();
  }
  if (msgs.empty()) {
    std::fprintf(stderr, "mime_bench: no messages (give .eml files, a directory of them, or a list .txt)\n");
    return 2;
  }
  std::vector<char> dst(std::max_element(msgs.begin(), msgs.end(), [](auto& a, auto& b) { return a.size() < b.size(); })->size());
  sekisho::mime::MimeParser parser;
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  uint64_t sink = 0, urls = 0, atts = 0, text = 0;
  double t_copy = 1e30, t_sha = 1e30, t_whole = 1e30, t_chunk = 1e30;
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
    urls = atts = text = 0;
    for (auto& m : msgs) {
      parser.reset();
      parser.feed({reinterpret_cast<const uint8_t*>(m.data()), m.size()});
      parser.finish();
      urls += parser.facts().urls.size();
      atts += parser.facts().attachments.size();
      text += parser.facts().text_bytes;
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
    t_copy = std::min(t_copy, t1 - t0);
    t_sha = std::min(t_sha, t2 - t1);
    t_whole = std::min(t_whole, t3 - t2);
    t_chunk = std::min(t_chunk, t4 - t3);
  }
  EVP_MD_CTX_free(sha);
  auto gbs = [&](double t) { return double(total) / t / 1e9; };
  std::printf("corpus: %zu messages, %.1f MB (CRLF), %llu URLs, %llu attachments, %.1f MB of text produced\n",
              msgs.size(), double(total) / 1e6, (unsigned long long)urls, (unsigned long long)atts, double(text) / 1e6);
  std::printf("%-28s %10s %12s %12s\n", "pass (best of runs)", "GB/s", "msgs/s", "vs memcpy");
  auto row = [&](const char* name, double t) {
    std::printf("%-28s %10.3f %12.0f %12.4f\n", name, gbs(t), double(msgs.size()) / t, t_copy / t);
  };
  row("memcpy", t_copy);
  row("sha256 (OpenSSL)", t_sha);
  row("mime whole messages", t_whole);
  char label[64];
  std::snprintf(label, sizeof label, "mime %zu-byte chunks", chunk);
  row(label, t_chunk);
  std::printf("target: 1 GB/s per core for MIME decode; measured %.3f GB/s (%.2f of target)\n", gbs(t_chunk),
              gbs(t_chunk) / 1.0);
  return sink == 42 ? 1 : 0;  // keeps the work observable
}
