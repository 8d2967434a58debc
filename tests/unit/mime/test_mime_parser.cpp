// The MIME engine on messages built here: decoders, charsets (Japanese
// bytes made with iconv from UTF-8 text), HTML to text, URLs, structure,
// attachments (real ZIPs written by libarchive, one password-protected),
// limits, and the rule that any chunking gives the same result.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <iconv.h>

#include <string>
#include <vector>

#include "scanners/mime/decode.hpp"
#include "journal/mime_part.hpp"
#include "scanners/mime/html_text.hpp"
#include "scanners/mime/mime_parser.hpp"
#include "scanners/mime/urls.hpp"

using namespace sekisho::mime;

namespace {

std::string conv(const std::string& utf8, const char* to) {
  iconv_t cd = iconv_open(to, "UTF-8");
  EXPECT_NE(cd, iconv_t(-1)) << to;
  std::string out(utf8.size() * 4 + 16, '\0');
  char* in = const_cast<char*>(utf8.data());
  size_t il = utf8.size(), ol = out.size();
  char* o = out.data();
  EXPECT_NE(iconv(cd, &in, &il, &o, &ol), size_t(-1));
  iconv(cd, nullptr, nullptr, &o, &ol);  // back to ASCII (ISO-2022-JP)
  iconv_close(cd);
  out.resize(out.size() - ol);
  return out;
}

std::string b64(const std::string& s) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8 | uint8_t(s[i + 2]);
    o += k[v >> 18], o += k[(v >> 12) & 63], o += k[(v >> 6) & 63], o += k[v & 63];
    if ((i / 3 + 1) % 19 == 0) o += "\r\n";
  }
  if (i + 1 == s.size()) {
    uint32_t v = uint32_t(uint8_t(s[i])) << 16;
    o += k[v >> 18], o += k[(v >> 12) & 63], o += "==";
  } else if (i + 2 == s.size()) {
    uint32_t v = uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8;
    o += k[v >> 18], o += k[(v >> 12) & 63], o += k[(v >> 6) & 63], o += '=';
  }
  return o + "\r\n";
}

MessageFacts parse(const std::string& msg, size_t chunk = 0, MimeLimits lim = {}) {
  MimeParser p(lim);
  auto* b = reinterpret_cast<const uint8_t*>(msg.data());
  if (chunk == 0) chunk = msg.size() ? msg.size() : 1;
  for (size_t i = 0; i < msg.size(); i += chunk) p.feed({b + i, std::min(chunk, msg.size() - i)});
  p.finish();
  return p.take_facts();
}

std::string json_of(const MessageFacts& f) {
  nlohmann::json j;
  sekisho::journal::add_facts_json(f, j);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Every chunk size from 1 to 17 and a few larger gives the same facts as the whole message.
void expect_chunk_invariant(const std::string& msg, MimeLimits lim = {}) {
  lim.leaf_digests = true;
  std::string whole = json_of(parse(msg, 0, lim));
  for (size_t c : {1, 2, 3, 4, 5, 7, 11, 13, 16, 17, 64, 100, 1460})
    ASSERT_EQ(json_of(parse(msg, c, lim)), whole) << "chunk " << c;
}

struct TextSink : MimeSink {
  std::string text;
  void on_text(std::string_view t) override { text.append(t); }
};

std::string text_of(const std::string& msg, size_t chunk = 0) {
  TextSink s;
  MimeParser p({}, &s);
  auto* b = reinterpret_cast<const uint8_t*>(msg.data());
  if (chunk == 0) chunk = msg.size();
  for (size_t i = 0; i < msg.size(); i += chunk) p.feed({b + i, std::min(chunk, msg.size() - i)});
  p.finish();
  return s.text;
}

std::string zip(const std::vector<std::pair<std::string, std::string>>& files, const char* password = nullptr) {
  archive* a = archive_write_new();
  archive_write_set_format_zip(a);
  if (password) {
    EXPECT_EQ(archive_write_set_options(a, "zip:encryption=traditional"), ARCHIVE_OK) << archive_error_string(a);
    EXPECT_EQ(archive_write_set_passphrase(a, password), ARCHIVE_OK);
  }
  std::vector<char> buf(1 << 20);
  size_t used = 0;
  archive_write_open_memory(a, buf.data(), buf.size(), &used);
  for (auto& [name, data] : files) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, la_int64_t(data.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buf.data(), used);
}

}  // namespace

TEST(Base64, EverySplitGivesTheSameBytes) {
  std::string data;
  for (int i = 0; i < 300; ++i) data.push_back(char(i * 37 + 11));
  std::string enc = b64(data);
  for (size_t split = 0; split <= enc.size(); ++split) {
    Base64Stream d;
    std::vector<uint8_t> out(enc.size() + kDecodeSlack);
    size_t n = d.feed(reinterpret_cast<const uint8_t*>(enc.data()), split, out.data());
    n += d.feed(reinterpret_cast<const uint8_t*>(enc.data()) + split, enc.size() - split, out.data() + n);
    n += d.finish(out.data() + n);
    ASSERT_EQ(std::string(reinterpret_cast<char*>(out.data()), n), data) << split;
    EXPECT_EQ(d.errors(), 0u);
  }
}

TEST(Base64, JunkIsSkippedAndCountedDataAfterPaddingIgnored) {
  std::string enc = "aGVs!bG8=\r\nd29ybGQ=";  // "hello" + junk, then data after the padding
  Base64Stream d;
  uint8_t out[64];
  size_t n = d.feed(reinterpret_cast<const uint8_t*>(enc.data()), enc.size(), out);
  n += d.finish(out + n);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), n), "hello");
  EXPECT_EQ(d.errors(), 2u);
}

TEST(QuotedPrintable, Rfc2045Rules) {
  auto qp = [](const std::string& s) {
    QpStream d;
    std::vector<uint8_t> out(s.size() + kDecodeSlack);
    size_t n = 0;
    for (char c : s) n += d.feed(reinterpret_cast<const uint8_t*>(&c), 1, out.data() + n);  // byte by byte
    n += d.finish(out.data() + n);
    return std::make_pair(std::string(reinterpret_cast<char*>(out.data()), n), d.errors());
  };
  EXPECT_EQ(qp("caf=C3=A9 ok\r\n").first, "caf\xc3\xa9 ok\r\n");
  EXPECT_EQ(qp("soft=\r\nbreak\r\n").first, "softbreak\r\n");
  EXPECT_EQ(qp("trailing   \r\nx").first, "trailing\r\nx");   // 6.7 (3): added by transport, deleted
  EXPECT_EQ(qp("kept=20\r\n").first, "kept \r\n");            // encoded space stays
  EXPECT_EQ(qp("lower=e9\r\n").first, "lower\xe9\r\n");       // robust: lower-case hex
  auto bad = qp("a=ZZb==c\r\n");                              // note (2): "=" and the next char kept
  EXPECT_EQ(bad.first, "a=ZZb==c\r\n");
  EXPECT_EQ(bad.second, 2u);
}

TEST(Charsets, JapaneseBodiesDecodeWhateverTheChunking) {
  const std::string ja = "お世話になっております。添付の請求書をご確認ください。半角ｶﾅと①②も。";
  for (const char* cs : {"ISO-2022-JP", "SHIFT_JIS", "EUC-JP"}) {
    std::string body = conv(cs == std::string("SHIFT_JIS") ? std::string("お世話になっております。添付の請求書をご確認ください。") : ja,
                            cs == std::string("SHIFT_JIS") ? "CP932" : cs == std::string("EUC-JP") ? "EUC-JP-MS" : "ISO-2022-JP-3");
    std::string label = cs == std::string("SHIFT_JIS") ? "Shift_JIS" : cs;
    std::string msg = "From: a@example.jp\r\nContent-Type: text/plain; charset=" + label + "\r\n\r\n" + body + "\r\n";
    std::string want = cs == std::string("SHIFT_JIS") ? "お世話になっております。添付の請求書をご確認ください。" : ja;
    for (size_t c : {0, 1, 2, 3, 5})
      EXPECT_EQ(text_of(msg, c), want + "\r\n\n") << cs << " chunk " << c;
    expect_chunk_invariant(msg);
    EXPECT_EQ(parse(msg).charset_errors, 0u) << cs;
  }
}

TEST(Charsets, InvalidBytesBecomeReplacementAndAreCounted) {
  std::string msg = "Content-Type: text/plain; charset=utf-8\r\n\r\nok \xff\xfe ok\r\n";
  EXPECT_EQ(text_of(msg), "ok \xef\xbf\xbd\xef\xbf\xbd ok\r\n\n");
  EXPECT_EQ(parse(msg).charset_errors, 2u);
}

TEST(Headers, JapaneseSubjectsAndRfc2231Names) {
  std::string subj = "【重要】アカウントの確認";
  std::string enc = conv(subj, "ISO-2022-JP");
  std::string word;
  {
    std::string b = b64(enc);
    b.erase(b.find_last_not_of("\r\n") + 1);
    word = "=?ISO-2022-JP?B?" + b + "?=";
  }
  std::string msg =
      "From: =?UTF-8?B?44K144Od44O844OI?= <support@example.jp>\r\n"
      "To: user@example.com, \"Last, First\" <first@example.com>, group: a@x.jp, b@x.jp;\r\n"
      "Subject: " + word + "\r\n"
      "Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n"
      "--=_b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nsee attached\r\n"
      "--=_b\r\nContent-Type: application/pdf\r\n"
      "Content-Disposition: attachment;\r\n filename*0*=UTF-8''%E8%AB%8B%E6%B1%82;\r\n filename*1*=%E6%9B%B8.pdf\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n" + b64("%PDF-1.4 fake") + "--=_b--\r\n";
  MessageFacts f = parse(msg);
  EXPECT_EQ(f.header.subject, subj);
  EXPECT_EQ(f.header.from, "support@example.jp");
  EXPECT_EQ(f.header.from_name, "サポート");
  EXPECT_EQ(f.header.to, (std::vector<std::string>{"user@example.com", "first@example.com", "a@x.jp", "b@x.jp"}));
  ASSERT_EQ(f.attachments.size(), 1u);
  EXPECT_EQ(f.attachments[0].name, "請求書.pdf");
  EXPECT_EQ(f.attachments[0].size, 13u);
  EXPECT_EQ(f.parts, 3u);
  expect_chunk_invariant(msg);
}

TEST(Headers, RawIso2022jpAndRawShiftJisInTheDeclaredCharset) {
  std::string msg = "Subject: " + conv("至急のご連絡", "ISO-2022-JP") + "\r\nContent-Type: text/plain\r\n\r\nx\r\n";
  EXPECT_EQ(parse(msg).header.subject, "至急のご連絡");
  std::string sj = "Subject: " + conv("お知らせ", "CP932") + "\r\nContent-Type: text/plain; charset=Shift_JIS\r\n\r\nx\r\n";
  EXPECT_EQ(parse(sj).header.subject, "お知らせ");
}

TEST(Html, ReducedToTextWithUrls) {
  std::string html =
      "<html><head><style>p{color:red}</style><script>var u='http://evil.test/js';</script></head>"
      "<body><!-- http://comment.test/ --><p>Dear&nbsp;customer,&#x20;please <a href=\"HTTP://WWW.Example.COM:80/a%7Eb?x=1#frag\">"
      "log&#105;n</a> &amp; verify</p><img src='https://img.test/p.gif'>Tom &lt;3 &unknown;<br>"
      "Visit www.bank.test. or http://xn--bcher-kva.example/ now</body></html>";
  std::string msg = "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n";
  std::string t = text_of(msg);
  EXPECT_NE(t.find("Dear customer, please login & verify"), std::string::npos) << t;
  EXPECT_NE(t.find("Tom <3 &unknown;"), std::string::npos) << t;
  EXPECT_EQ(t.find("color"), std::string::npos);
  EXPECT_EQ(t.find("evil"), std::string::npos);
  EXPECT_EQ(t.find("comment"), std::string::npos);
  MessageFacts f = parse(msg);
  EXPECT_EQ(f.urls, (std::vector<std::string>{"http://www.example.com/a~b?x=1", "https://img.test/p.gif",
                                              "http://www.bank.test/", "http://xn--bcher-kva.example/"}));
  for (size_t c : {1, 2, 7}) EXPECT_EQ(text_of(msg, c), t) << c;
  expect_chunk_invariant(msg);
}

TEST(Urls, Normalisation) {
  std::string o;
  ASSERT_TRUE(normalise_url("HTTPS://User:pw@Bücher.Example.:443/%41%2f?q#x", o));
  EXPECT_EQ(o, "https://xn--bcher-kva.example/A%2F?q");
  ASSERT_TRUE(normalise_url("http://example.com:8080", o));
  EXPECT_EQ(o, "http://example.com:8080/");
  ASSERT_TRUE(normalise_url("www.example.org/path", o));
  EXPECT_EQ(o, "http://www.example.org/path");
  EXPECT_FALSE(normalise_url("mailto:a@b.c", o));
  EXPECT_FALSE(normalise_url("javascript:alert(1)", o));
  EXPECT_FALSE(normalise_url("http://exa mple.com/", o));
  EXPECT_FALSE(normalise_url("http://a.com:80x/", o));
}

TEST(Urls, DeduplicatedAndCapped) {
  std::string body;
  for (int i = 0; i < 400; ++i) body += "http://h" + std::to_string(i % 300) + ".test/ ";
  MimeLimits lim;
  lim.max_urls = 256;
  MessageFacts f = parse("Content-Type: text/plain\r\n\r\n" + body + "\r\n", 0, lim);
  EXPECT_EQ(f.urls.size(), 256u);
  EXPECT_EQ(f.urls_seen, 400u);
  EXPECT_GT(f.urls_dropped, 0u);
}

TEST(Structure, NestingMessageRfc822PreambleEpilogue) {
  std::string msg =
      "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
      "preamble http://pre.test/\r\n"
      "--outer\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
      "--outer\r\nContent-Type: message/rfc822\r\n\r\n"
      "Subject: inner\r\nContent-Type: multipart/alternative; boundary=\"in ner\"\r\n\r\n"
      "--in ner\r\nContent-Type: text/plain\r\n\r\ninner text http://inner.test/\r\n--in ner\r\n"
      "Content-Type: text/html\r\n\r\n<b>inner html</b>\r\n--in ner--\r\n"
      "--outer\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\n"
      "raw\r\nbytes\r\n"
      "--outer--\r\nepilogue\r\n";
  MessageFacts f = parse(msg, 0, MimeLimits{.leaf_digests = true});
  // multipart, text, message/rfc822, inner multipart, 2 inner leaves, attachment
  EXPECT_EQ(f.parts, 7u);
  ASSERT_EQ(f.attachments.size(), 1u);
  EXPECT_EQ(f.attachments[0].size, 10u);  // "raw\r\nbytes": the CRLF before the delimiter is not content
  EXPECT_EQ(f.header.subject, "");        // the inner Subject is the inner message's
  EXPECT_EQ(f.missing_close_boundary, 0u);
  std::string t = text_of(msg);
  for (const char* want : {"first", "inner text", "inner html", "preamble", "epilogue"})
    EXPECT_NE(t.find(want), std::string::npos) << want;
  EXPECT_EQ(f.urls, (std::vector<std::string>{"http://pre.test/", "http://inner.test/"}));
  expect_chunk_invariant(msg);
}

TEST(Structure, MissingCloseBoundaryAndLenientDelimiters) {
  std::string msg =
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n-b is no delimiter\r\n"
      "--b \t\r\nContent-Type: text/plain\r\n\r\nlast part, never closed\r\n";
  MessageFacts f = parse(msg);
  EXPECT_EQ(f.parts, 3u);
  EXPECT_EQ(f.missing_close_boundary, 1u);
  EXPECT_EQ(f.boundary_junk, 0u);
  EXPECT_NE(text_of(msg).find("-b is no delimiter"), std::string::npos);
  expect_chunk_invariant(msg);
  // RFC 2046's note to implementors: the boundary need only begin the line.
  // What follows it is scanned as text (a strict reader shows that line).
  std::string lenient =
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--bx starts a part\r\n\r\nsecond\r\n"
      "--b-- x closes\r\nepilogue\r\n";
  MessageFacts g = parse(lenient);
  EXPECT_EQ(g.parts, 3u);
  EXPECT_EQ(g.missing_close_boundary, 0u);
  EXPECT_EQ(g.boundary_junk, 2u);
  std::string t = text_of(lenient);
  for (const char* want : {"first", "x starts a part", "second", " x closes", "epilogue"})
    EXPECT_NE(t.find(want), std::string::npos) << want;
  expect_chunk_invariant(lenient);
}

TEST(Structure, DepthAndPartLimitsAreCountedNotFatal) {
  std::string msg = "Content-Type: multipart/mixed; boundary=b0\r\n\r\n";
  for (int i = 1; i < 30; ++i)
    msg += "--b" + std::to_string(i - 1) + "\r\nContent-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\r\n\r\n";
  msg += "--b29\r\n\r\ndeep\r\n";
  MessageFacts f = parse(msg);
  EXPECT_GT(f.depth_exceeded, 0u);
  std::string many = "Content-Type: multipart/mixed; boundary=m\r\n\r\n";
  for (int i = 0; i < 50; ++i) many += "--m\r\n\r\npart\r\n";
  many += "--m--\r\n";
  MimeLimits lim;
  lim.max_parts = 10;
  MessageFacts g = parse(many, 0, lim);
  EXPECT_EQ(g.parts_exceeded, 1u);
  expect_chunk_invariant(msg);
  expect_chunk_invariant(many, lim);
}

TEST(Attachments, ZipMacrosEncryptionDoubleExtensionRtlo) {
  std::string docm = zip({{"[Content_Types].xml", "<Types/>"}, {"word/document.xml", "<w:document/>"},
                          {"word/vbaProject.bin", std::string("\xd0\xcf\x11\xe0 vba", 8)}});
  std::string ppap = zip({{"invoice.xlsx", std::string(5000, 'x')}}, "secret");
  std::string nested = zip({{"inner.zip", zip({{"payload.pdf.exe", "MZ..."}})}});
  std::string rtlo_name = "invoice\xe2\x80\xaegpj.exe";
  std::string msg =
      "From: x@y.test\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
      "--z\r\nContent-Type: application/vnd.ms-word.document.macroEnabled.12; name=report.docm\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n" + b64(docm) +
      "--z\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename=\"請求書.zip\"\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n" + b64(ppap) +
      "--z\r\nContent-Type: application/zip; name=n.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(nested) +
      "--z\r\nContent-Type: application/octet-stream; name=\"" + rtlo_name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
      b64("MZ\x90\x00") +
      "--z\r\nContent-Type: application/pdf; name=\"statement.pdf      .scr\"\r\n\r\nx\r\n"
      "--z--\r\n";
  MessageFacts f = parse(msg);
  ASSERT_EQ(f.attachments.size(), 5u);
  const auto& a = f.attachments;
  EXPECT_EQ(a[0].name, "report.docm");
  EXPECT_TRUE(a[0].macros);
  EXPECT_FALSE(a[0].encrypted);
  EXPECT_EQ(a[0].size, docm.size());
  EXPECT_EQ(a[0].sniffed_type.rfind("application/", 0), 0u) << a[0].sniffed_type;
  EXPECT_EQ(a[1].name, "請求書.zip");
  EXPECT_TRUE(a[1].encrypted);
  EXPECT_EQ(a[1].sniffed_type, "application/zip");
  EXPECT_TRUE(a[2].executable);        // payload.pdf.exe inside inner.zip inside n.zip
  EXPECT_TRUE(a[2].double_extension);
  EXPECT_EQ(a[2].archive_entries, 2u);
  EXPECT_TRUE(a[3].rtlo);
  EXPECT_TRUE(a[3].executable);
  EXPECT_TRUE(a[4].double_extension);
  EXPECT_TRUE(a[4].executable);
  // SHA-256 over the decoded bytes, the same whatever the chunking.
  EXPECT_EQ(a[1].sha256.size(), 64u);
  expect_chunk_invariant(msg);
}

TEST(Attachments, Ole2MacroMarkerSplitAcrossChunks) {
  std::string ole(4096, '\0');
  const unsigned char magic[8] = {0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1};
  ole.replace(0, 8, reinterpret_cast<const char*>(magic), 8);
  const char vba[] = "_\0V\0B\0A\0_\0P\0R\0O\0J\0E\0C\0T\0";
  ole.replace(3000, sizeof vba - 1, vba, sizeof vba - 1);
  std::string msg = "Content-Type: application/msword; name=a.doc\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(ole);
  for (size_t c : {0, 1, 3, 50, 77}) {
    MessageFacts f = parse(msg, c);
    ASSERT_EQ(f.attachments.size(), 1u);
    EXPECT_TRUE(f.attachments[0].macros) << c;
  }
}

TEST(Hostile, GarbageNeverCrashesAndIsBounded) {
  std::string junk;
  uint32_t x = 1;
  for (int i = 0; i < 200000; ++i) {
    x = x * 1664525u + 1013904223u;
    const char alphabet[] = "-\r\n=<>&;:\"'abc /b\x1b$B\xff";
    junk.push_back(alphabet[(x >> 24) % (sizeof alphabet - 1)]);
  }
  std::string msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n"
                    "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + junk;
  MessageFacts f = parse(msg, 7);
  EXPECT_LE(f.urls.size(), 256u);
  expect_chunk_invariant(msg);
}
