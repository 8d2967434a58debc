#include "eml.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

#include "mime/header_scan.hpp"

namespace sekisho::ctl {

namespace {

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return o;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Splits a part into its header fields and body (after the blank line).
void split_part(std::string_view part, std::vector<EmlField>& fields, std::string_view& body) {
  size_t pos = 0;
  body = {};
  std::string cur_name, cur_raw;
  auto flush = [&] {
    if (cur_name.empty()) return;
    EmlField f;
    f.name = cur_name;
    // raw: as received minus the trailing line end; decoded: unfolded, RFC 2047.
    std::string raw = cur_raw;
    while (!raw.empty() && (raw.back() == '\n' || raw.back() == '\r')) raw.pop_back();
    f.raw = raw;
    std::string unfolded;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\r') continue;
      if (raw[i] == '\n') continue;
      unfolded += raw[i];
    }
    uint32_t errs = 0;
    f.decoded = std::string(trim(mime::decode_words(trim(unfolded), errs)));
    f.raw = std::string(trim(f.raw));
    fields.push_back(std::move(f));
    cur_name.clear();
    cur_raw.clear();
  };
  while (pos < part.size()) {
    size_t nl = part.find('\n', pos);
    size_t end = nl == std::string_view::npos ? part.size() : nl + 1;
    std::string_view line = part.substr(pos, end - pos);
    std::string_view bare = line;
    while (!bare.empty() && (bare.back() == '\n' || bare.back() == '\r')) bare.remove_suffix(1);
    if (bare.empty()) {
      flush();
      body = part.substr(end);
      return;
    }
    if ((line[0] == ' ' || line[0] == '\t') && !cur_name.empty()) {
      cur_raw += line;
    } else {
      flush();
      size_t colon = bare.find(':');
      if (colon != std::string_view::npos && colon > 0) {
        cur_name = std::string(trim(bare.substr(0, colon)));
        cur_raw = std::string(line.substr(colon + 1));
      }
    }
    pos = end;
  }
  flush();
}

std::string header_of(const std::vector<EmlField>& f, std::string_view name) {
  for (const auto& x : f)
    if (lower(x.name) == name) return x.decoded;
  return {};
}

// Content-Type "type/sub; a=b; c="d"" -> type and a parameter.
std::string ct_type(std::string_view ct) {
  std::string t = lower(trim(ct.substr(0, ct.find(';'))));
  return t.empty() ? "text/plain" : t;
}
std::string ct_param(std::string_view ct, std::string_view name) {
  std::string l = lower(ct);
  size_t p = 0;
  while ((p = l.find(name, p)) != std::string::npos) {
    bool start = p == 0 || l[p - 1] == ';' || isspace(static_cast<unsigned char>(l[p - 1]));
    size_t e = p + name.size();
    while (e < l.size() && isspace(static_cast<unsigned char>(l[e]))) ++e;
    if (start && e < l.size() && l[e] == '=') {
      ++e;
      while (e < l.size() && isspace(static_cast<unsigned char>(l[e]))) ++e;
      if (e < ct.size() && ct[e] == '"') {
        size_t q = ct.find('"', e + 1);
        return std::string(ct.substr(e + 1, q == std::string_view::npos ? std::string_view::npos : q - e - 1));
      }
      size_t q = ct.find_first_of("; \t\r\n", e);
      return std::string(ct.substr(e, q == std::string_view::npos ? std::string_view::npos : q - e));
    }
    p = e;
  }
  return {};
}

std::string decode_base64(std::string_view s) {
  static int8_t t[256];
  static bool init = false;
  if (!init) {
    std::fill(std::begin(t), std::end(t), -1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(a[i])] = static_cast<int8_t>(i);
    init = true;
  }
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : s) {
    if (c == '=') break;
    if (t[c] < 0) continue;
    acc = (acc << 6) | static_cast<uint32_t>(t[c]);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string decode_qp(std::string_view s) {
  std::string out;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '=' && i + 1 < s.size()) {
      if (s[i + 1] == '\n') {
        ++i;
        continue;
      }
      if (s[i + 1] == '\r' && i + 2 < s.size() && s[i + 2] == '\n') {
        i += 2;
        continue;
      }
      if (i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
        out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// HTML -> text: tags dropped (block tags become line breaks), a few entities.
std::string html_to_text(std::string_view h) {
  std::string out;
  size_t i = 0;
  while (i < h.size()) {
    if (h[i] == '<') {
      size_t e = h.find('>', i);
      if (e == std::string_view::npos) break;
      std::string tag = lower(h.substr(i + 1, std::min<size_t>(e - i - 1, 10)));
      bool skip_content = tag.rfind("style", 0) == 0 || tag.rfind("script", 0) == 0;
      if (tag.rfind("br", 0) == 0 || tag.rfind("p", 0) == 0 || tag.rfind("/p", 0) == 0 || tag.rfind("div", 0) == 0 ||
          tag.rfind("/div", 0) == 0 || tag.rfind("tr", 0) == 0 || tag.rfind("li", 0) == 0)
        out += '\n';
      i = e + 1;
      if (skip_content) {
        std::string close = "</" + tag.substr(0, tag.rfind("style", 0) == 0 ? 5 : 6);
        std::string lh = lower(h.substr(i));
        size_t c = lh.find(close);
        i = c == std::string::npos ? h.size() : i + c;
      }
      continue;
    }
    if (h[i] == '&') {
      static const std::pair<std::string_view, std::string_view> ents[] = {
          {"&nbsp;", " "}, {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}};
      bool done = false;
      for (auto& [e, r] : ents)
        if (h.substr(i, e.size()) == e) {
          out += r;
          i += e.size();
          done = true;
          break;
        }
      if (done) continue;
    }
    out += h[i++];
  }
  return out;
}

void find_uris(std::string_view text, std::vector<std::string>& out) {
  std::string l = lower(text);
  for (const char* scheme : {"http://", "https://", "www."}) {
    size_t p = 0;
    while ((p = l.find(scheme, p)) != std::string::npos) {
      if (std::string_view(scheme) == "www." && p >= 3 && l.compare(p - 3, 3, "://") == 0) {
        p += 4;
        continue;
      }
      size_t e = p;
      while (e < text.size() && !isspace(static_cast<unsigned char>(text[e])) &&
             std::string_view("\"'<>()[]{}").find(text[e]) == std::string_view::npos)
        ++e;
      std::string u(text.substr(p, e - p));
      while (!u.empty() && std::string_view(".,;:!?").find(u.back()) != std::string_view::npos) u.pop_back();
      if (u.size() > 8) {
        if (u.rfind("www.", 0) == 0) u = "http://" + u;
        // Lower-case scheme and host.
        size_t hs = u.find("://") + 3;
        size_t he = u.find_first_of("/?#", hs);
        for (size_t k = 0; k < (he == std::string::npos ? u.size() : he); ++k)
          u[k] = static_cast<char>(tolower(static_cast<unsigned char>(u[k])));
        if (std::find(out.begin(), out.end(), u) == out.end()) out.push_back(u);
      }
      p = e;
    }
  }
}

std::string sha256_hex(std::string_view data) {
  unsigned char d[32];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s += hex[d[i] >> 4];
    s += hex[d[i] & 15];
  }
  return s;
}

std::string sniff(std::string_view b) {
  if (b.substr(0, 4) == "PK\x03\x04") return "application/zip";
  if (b.substr(0, 4) == "%PDF") return "application/pdf";
  if (b.substr(0, 2) == "MZ") return "application/x-dosexec";
  if (b.substr(0, 8) == std::string_view("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8)) return "application/x-ole-storage";
  if (b.substr(0, 3) == "GIF") return "image/gif";
  if (b.substr(0, 4) == "\x89PNG") return "image/png";
  if (b.substr(0, 3) == "\xff\xd8\xff") return "image/jpeg";
  if (b.substr(0, 4) == "Rar!") return "application/x-rar";
  if (b.substr(0, 6) == std::string_view("7z\xbc\xaf\x27\x1c", 6)) return "application/x-7z-compressed";
  return "";
}

struct Walker {
  EmlMessage& m;
  int depth = 0;

  void part(std::string_view bytes, bool top, int level) {
    std::vector<EmlField> fields;
    std::string_view body;
    split_part(bytes, fields, body);
    if (top) m.headers = fields;
    else m.part_headers.push_back(fields);
    leaf_or_multi(fields, body, level);
  }

  void leaf_or_multi(const std::vector<EmlField>& fields, std::string_view body, int level) {
    std::string ct = header_of(fields, "content-type");
    std::string type = ct_type(ct);
    if (type.rfind("multipart/", 0) == 0 && level < 20) {
      std::string boundary = ct_param(ct, "boundary");
      if (!boundary.empty()) {
        std::string delim = "--" + boundary;
        size_t p = body.find(delim);
        while (p != std::string_view::npos) {
          size_t start = body.find('\n', p);
          if (start == std::string_view::npos) break;
          if (body.substr(p + delim.size(), 2) == "--") break;
          ++start;
          size_t next = body.find("\n" + delim, start);
          std::string_view sub = body.substr(start, next == std::string_view::npos ? std::string_view::npos : next - start + 1);
          part(sub, false, level + 1);
          if (next == std::string_view::npos) break;
          p = next + 1;
        }
        return;
      }
    }
    if (type == "message/rfc822" && level < 20) {
      part(body, false, level + 1);
      return;
    }
    std::string cte = lower(trim(header_of(fields, "content-transfer-encoding")));
    std::string decoded = cte == "base64" ? decode_base64(body) : cte == "quoted-printable" ? decode_qp(body) : std::string(body);
    std::string disp = header_of(fields, "content-disposition");
    std::string name = ct_param(disp, "filename");
    if (name.empty()) name = ct_param(ct, "name");
    uint32_t errs = 0;
    if (!name.empty()) name = mime::decode_words(name, errs);
    bool text = type.rfind("text/", 0) == 0;
    if (text && name.empty()) {
      std::string charset = lower(ct_param(ct, "charset"));
      std::string utf8;
      if (!charset.empty() && charset != "us-ascii" && charset != "utf-8" && mime::to_utf8(charset, decoded, utf8))
        decoded = utf8;
      m.rawbody += decoded;
      if (!m.rawbody.empty() && m.rawbody.back() != '\n') m.rawbody += '\n';
      std::string rendered = type == "text/html" ? html_to_text(decoded) : decoded;
      m.body_text += rendered;
      if (!m.body_text.empty() && m.body_text.back() != '\n') m.body_text += '\n';
      find_uris(decoded, m.uris);
      return;
    }
    EmlAttachment a;
    a.name = name;
    a.type = type;
    a.sniffed = sniff(decoded);
    a.size = decoded.size();
    a.sha256 = sha256_hex(decoded);
    if (a.sniffed == "application/zip" && decoded.size() > 8) a.encrypted = (static_cast<unsigned char>(decoded[6]) & 1) != 0;
    a.macros = decoded.find("vbaProject.bin") != std::string::npos || decoded.find("_VBA_PROJECT") != std::string::npos;
    m.attachments.push_back(std::move(a));
  }
};

}  // namespace

EmlMessage parse_eml(std::string_view bytes) {
  EmlMessage m;
  m.full = std::string(bytes);
  Walker w{m};
  w.part(bytes, true, 0);
  return m;
}

void feed(match::MessageScan& scan, const EmlMessage& m, size_t chunk) {
  for (const auto& f : m.headers) scan.header(f.name, f.raw, f.decoded);
  for (const auto& p : m.part_headers)
    for (const auto& f : p) scan.part_header(f.name, f.raw, f.decoded);
  auto stream = [&](const std::string& s, auto fn) {
    for (size_t i = 0; i < s.size(); i += chunk) (scan.*fn)(match::bytes_of(std::string_view(s).substr(i, chunk)));
  };
  stream(m.body_text, &match::MessageScan::body_text);
  stream(m.rawbody, &match::MessageScan::rawbody);
  stream(m.full, &match::MessageScan::full);
  for (const auto& u : m.uris) scan.uri(u);
  for (const auto& a : m.attachments) {
    match::AttachmentFacts f;
    f.name = a.name;
    f.type = a.type;
    f.sniffed_type = a.sniffed;
    f.size = a.size;
    f.sha256 = a.sha256;
    f.macros = a.macros;
    f.encrypted = a.encrypted;
    scan.attachment(f);
  }
}

}  // namespace sekisho::ctl
