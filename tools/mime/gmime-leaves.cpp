// gmime-leaves: GMime 3 (the parser mail clients such as Evolution and
// Balsa use) as a reference for the MIME engine: one JSON line per message
// file, listing the leaf parts GMime exposes, message/rfc822 parts followed
// into the message they carry:
//
//   {"file": F, "leaves": [{"type", "filename", "disposition", "size",
//                           "sha256" (of the transfer-decoded bytes),
//                           "text" (UTF-8, text/* parts only)}]}
//
//   gmime-leaves FILE...
// Test tooling (tests/replay/test_mime_conformance_gmime.py), not shipped.
#include <gmime/gmime.h>
#include <openssl/evp.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace {

std::string sha256_hex(const unsigned char* p, size_t n) {
  unsigned char md[32];
  unsigned len = 0;
  EVP_Digest(p, n, md, &len, EVP_sha256(), nullptr);
  static const char* k = "0123456789abcdef";
  std::string o;
  for (unsigned i = 0; i < len; ++i) o += k[md[i] >> 4], o += k[md[i] & 15];
  return o;
}

void walk(GMimeObject* obj, nlohmann::json& leaves, int depth) {
  if (!obj || depth > 32) return;
  if (GMIME_IS_MESSAGE_PART(obj)) {
    GMimeMessage* m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
    if (m) walk(g_mime_message_get_mime_part(m), leaves, depth + 1);
    return;
  }
  if (GMIME_IS_MULTIPART(obj)) {
    GMimeMultipart* mp = GMIME_MULTIPART(obj);
    int n = g_mime_multipart_get_count(mp);
    for (int i = 0; i < n; ++i) walk(g_mime_multipart_get_part(mp, i), leaves, depth + 1);
    return;
  }
  if (!GMIME_IS_PART(obj)) return;
  GMimePart* part = GMIME_PART(obj);
  nlohmann::json l;
  GMimeContentType* ct = g_mime_object_get_content_type(obj);
  char* mime = ct ? g_mime_content_type_get_mime_type(ct) : nullptr;
  l["type"] = mime ? mime : "";
  g_free(mime);
  const char* fn = g_mime_part_get_filename(part);
  l["filename"] = fn ? fn : "";
  const char* disp = g_mime_object_get_disposition(obj);
  l["disposition"] = disp ? disp : "";
  GByteArray* bytes = g_byte_array_new();
  GMimeStream* mem = g_mime_stream_mem_new_with_byte_array(bytes);
  g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
  if (GMimeDataWrapper* w = g_mime_part_get_content(part)) g_mime_data_wrapper_write_to_stream(w, mem);
  l["size"] = bytes->len;
  l["sha256"] = sha256_hex(bytes->data, bytes->len);
  if (GMIME_IS_TEXT_PART(obj)) {
    char* t = g_mime_text_part_get_text(GMIME_TEXT_PART(obj));
    l["text"] = t ? t : "";
    g_free(t);
  }
  g_object_unref(mem);
  g_byte_array_free(bytes, TRUE);
  leaves.push_back(std::move(l));
}

}  // namespace

int main(int argc, char** argv) {
  g_mime_init();
  for (int i = 1; i < argc; ++i) {
    GMimeStream* s = g_mime_stream_file_open(argv[i], "rb", nullptr);
    if (!s) {
      std::fprintf(stderr, "gmime-leaves: %s: cannot read\n", argv[i]);
      return 2;
    }
    GMimeParser* parser = g_mime_parser_new_with_stream(s);
    GMimeMessage* m = g_mime_parser_construct_message(parser, nullptr);
    nlohmann::json j;
    j["file"] = argv[i];
    j["leaves"] = nlohmann::json::array();
    if (m) walk(g_mime_message_get_mime_part(m), j["leaves"], 0);
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    if (m) g_object_unref(m);
    g_object_unref(parser);
    g_object_unref(s);
  }
  g_mime_shutdown();
  return 0;
}
