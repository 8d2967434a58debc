// libFuzzer differential target (issue 22): GMime 3, the parser mail
// clients use, against the MIME engine. For any input, every leaf part
// GMime exposes must be among what the engine scans:
//   - a part the engine analysed as an attachment or listed as a leaf, by
//     the SHA-256 of its decoded bytes; or
//   - for a text part, its words (ASCII letters and digits, 4 or more, found
//     both in GMime's text and in the part's decoded bytes) all among the
//     words the engine handed to its sink (header fields, text of every
//     part, preamble, epilogue), and every URL in it among the engine's.
// Left out, as documented conventions (tests/corpus/mime_gmime.tsv): GMime's
// message/* parts (the engine parses what they carry), how corner cases of
// base64 and quoted-printable decode (the part GMime cut is also decoded by
// the engine's decoders), the last line break of a multipart that never
// closes (GMime keeps it), and messages where the
// engine named an ambiguity it does not scan both ways (conflicting content
// fields, a boundary ending in white space) or hit a limit.
#include <gmime/gmime.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

#include "scanners/mime/decode.hpp"
#include "scanners/mime/html_text.hpp"
#include "scanners/mime/mime_parser.hpp"
#include "scanners/mime/urls.hpp"

using namespace sekisho::mime;

namespace {

struct Everything : MimeSink {
  std::string all;
  void on_header(std::string_view n, std::string_view r, std::string_view d) override { add(n, r, d); }
  void on_part_header(std::string_view n, std::string_view r, std::string_view d) override { add(n, r, d); }
  void on_rawbody(std::string_view t) override { all.append(t).append("\n"); }
  void on_text(std::string_view t) override { all.append(t).append("\n"); }
  void add(std::string_view n, std::string_view r, std::string_view d) {
    all.append(n).append(":").append(r).append("\n").append(d).append("\n");
  }
};

std::set<std::string> words(std::string_view s) {
  std::set<std::string> w;
  std::string cur;
  for (char c : s) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum) {
      cur.push_back(char(c >= 'A' && c <= 'Z' ? c + 32 : c));
      continue;
    }
    if (cur.size() >= 4) w.insert(cur);
    cur.clear();
  }
  if (cur.size() >= 4) w.insert(cur);
  return w;
}

std::string sha256_hex(const unsigned char* p, size_t n) {
  unsigned char md[32];
  unsigned len = 0;
  EVP_Digest(p, n, md, &len, EVP_sha256(), nullptr);
  static const char* k = "0123456789abcdef";
  std::string o;
  for (unsigned i = 0; i < len; ++i) o += k[md[i] >> 4], o += k[md[i] & 15];
  return o;
}

struct Check {
  const MessageFacts& f;
  const std::set<std::string>& scanned_words;
  std::string why;  // the first part GMime exposes that the engine does not scan

  // Same bytes; or, where the readings are known to differ by a byte or
  // two at the end, the same size give or take those: a base64 part's last
  // incomplete group (GMime drops it), a multipart that never closes (GMime
  // keeps the last line break, the engine gives it to the missing delimiter).
  bool has_bytes(const std::string& sha, size_t n, bool base64) const {
    auto close = [&](uint64_t size) {
      return (base64 && size >= n && size <= n + 2) || (f.missing_close_boundary && size + 2 >= n && size <= n);
    };
    for (const auto& a : f.attachments)
      if (a.sha256 == sha || close(a.size)) return true;
    for (const auto& l : f.leaves)
      if (l.sha256 == sha || close(l.size)) return true;
    return false;
  }

  void leaf(GMimeObject* obj) {
    GMimePart* part = GMIME_PART(obj);
    GMimeContentType* ct = g_mime_object_get_content_type(obj);
    if (ct && g_mime_content_type_is_type(ct, "message", "*")) return;
    GByteArray* bytes = g_byte_array_new();
    GMimeStream* mem = g_mime_stream_mem_new_with_byte_array(bytes);
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
    if (GMimeDataWrapper* w = g_mime_part_get_content(part)) g_mime_data_wrapper_write_to_stream(w, mem);
    bool base64 = g_mime_part_get_content_encoding(part) == GMIME_CONTENT_ENCODING_BASE64;
    std::string sha = sha256_hex(bytes->data, bytes->len);
    size_t n = bytes->len;
    std::set<std::string> raw_words = words({reinterpret_cast<const char*>(bytes->data), bytes->len});
    g_object_unref(mem);
    g_byte_array_free(bytes, TRUE);
    if (n == 0 || has_bytes(sha, n, base64)) return;  // an empty part shows nothing
    // The part's encoded bytes as GMime cut them, decoded by the engine's own
    // decoders: what is compared is where the part is, not how QP or base64
    // corner cases are decoded.
    std::string ours_dec;  // GMime's part through the engine's decoders
    if (GMimeDataWrapper* w = g_mime_part_get_content(part)) {
      GByteArray* enc = g_byte_array_new();
      GMimeStream* m2 = g_mime_stream_mem_new_with_byte_array(enc);
      g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(m2), FALSE);
      GMimeStream* raw = g_mime_data_wrapper_get_stream(w);
      g_mime_stream_reset(raw);
      g_mime_stream_write_to_stream(raw, m2);
      std::string dec(2 * enc->len + kDecodeSlack, '\0');
      auto* o = reinterpret_cast<uint8_t*>(dec.data());
      size_t k = 0;
      GMimeContentEncoding ce = g_mime_part_get_content_encoding(part);
      if (ce == GMIME_CONTENT_ENCODING_BASE64) {
        Base64Stream b;
        k = b.feed(enc->data, enc->len, o);
        k += b.finish(o + k);
      } else if (ce == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE) {
        QpStream q;
        k = q.feed(enc->data, enc->len, o);
        k += q.finish(o + k);
      } else {
        std::memcpy(o, enc->data, enc->len);
        k = enc->len;
      }
      g_object_unref(m2);
      g_byte_array_free(enc, TRUE);
      if (k == 0 || has_bytes(sha256_hex(o, k), k, false)) return;
      ours_dec.assign(dec.data(), k);
    }
    if (!GMIME_IS_TEXT_PART(obj)) {
      if (why.empty()) why = "a part of " + std::to_string(n) + " bytes, SHA-256 " + sha + ", not among the engine's";
      return;
    }
    char* t = g_mime_text_part_get_text(GMIME_TEXT_PART(obj));
    std::string text = t ? t : "";
    g_free(t);
    // A word in GMime's text, in its decoded bytes and in the bytes the
    // engine's decoders make of the part: not one GMime made by dropping
    // bytes it could not convert, nor charset escape noise, nor a QP or
    // base64 corner case decoded another way.
    std::set<std::string> dec_words = words(ours_dec);
    for (const auto& w : words(text))
      if (raw_words.count(w) && dec_words.count(w) && !scanned_words.count(w) && why.empty())
        why = "the word \"" + w + "\" of a text part was not scanned";
    text = ours_dec;  // URLs from the same bytes (ASCII URLs read the same in any ASCII charset)
    // URLs as the engine finds them in a text part of that type (the
    // extraction is shared; what is compared is which text reaches it).
    struct Attr : HtmlToText::UrlHandler {
      UrlCollector u{1024};
      void on_attribute_url(std::string_view url) override { u.attribute(url); }
    } attr;
    if (g_mime_content_type_is_type(ct, "text", "html")) {
      HtmlToText h(&attr);
      std::string reduced;
      h.feed(text.data(), text.size(), reduced);
      h.finish(reduced);
      attr.u.text(reduced.data(), reduced.size());
    } else {
      attr.u.text(text.data(), text.size());
    }
    attr.u.end_text();
    for (const auto& url : attr.u.take()) {
      // Non-ASCII in a URL comes from bytes the two read in different
      // charsets (or could not convert): not compared.
      bool nonascii = false;
      for (size_t i = 0; i + 2 < url.size(); ++i)
        if (url[i] == '%' && std::strchr("89ABCDEF", url[i + 1])) nonascii = true;
      if (nonascii) continue;
      bool found = false;
      for (const auto& mine : f.urls) found |= mine == url;
      if (!found && why.empty()) why = "the URL " + url + " of a text part is not among the engine's";
    }
  }

  void walk(GMimeObject* obj, int depth) {
    if (!obj || depth > 64) return;
    if (GMIME_IS_MESSAGE_PART(obj)) {
      GMimeMessage* m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
      if (m) walk(g_mime_message_get_mime_part(m), depth + 1);
    } else if (GMIME_IS_MULTIPART(obj)) {
      GMimeMultipart* mp = GMIME_MULTIPART(obj);
      for (int i = 0, n = g_mime_multipart_get_count(mp); i < n; ++i) walk(g_mime_multipart_get_part(mp, i), depth + 1);
    } else if (GMIME_IS_PART(obj)) {
      leaf(obj);
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_mime_init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  MimeLimits lim;
  lim.leaf_digests = true;
  lim.leaf_text = true;
  lim.attachment.message_time_us = UINT32_MAX;
  Everything sink;
  MimeParser p(lim, &sink);
  p.feed({data, size});
  p.finish();
  const MessageFacts& f = p.facts();
  if (f.conflicting_content_fields || f.boundary_trailing_space || f.depth_exceeded || f.parts_exceeded ||
      f.header_truncated || f.urls_dropped || f.attachments_dropped || f.html_truncated)
    return 0;
  std::set<std::string> scanned = words(sink.all);

  GMimeStream* s = g_mime_stream_mem_new_with_buffer(reinterpret_cast<const char*>(data), size);
  GMimeParser* gp = g_mime_parser_new_with_stream(s);
  GMimeMessage* m = g_mime_parser_construct_message(gp, nullptr);
  Check c{f, scanned, {}};
  if (m) c.walk(g_mime_message_get_mime_part(m), 0);
  if (m) g_object_unref(m);
  g_object_unref(gp);
  g_object_unref(s);
  if (!c.why.empty()) {
    std::fprintf(stderr, "GMime exposes what the engine does not scan: %s\n", c.why.c_str());
    std::abort();
  }
  return 0;
}
