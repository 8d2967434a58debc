// Where MIME parsers disagree, the engine scans what any common reader
// could display (issue 22). For each of the four readings it used to miss:
// the conformance-corpus message that shows it (../shared/testdata/
// conformance/mime), and a crafted phishing message that hid a URL or an
// attachment through it, which must now reach the facts; each with the
// ambiguity counted and the result the same for any chunking.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "scanners/mime/collect.hpp"
#include "journal/mime_part.hpp"
#include "scanners/mime/mime_parser.hpp"

using namespace sekisho::mime;

namespace {

std::string corpus(const std::string& rel) {
  const char* env = std::getenv("SEKISHO_TESTDATA");
  std::string root = env ? env : SEKISHO_TESTDATA_DIR;
  std::ifstream in(root + "/conformance/mime/" + rel, std::ios::binary);
  EXPECT_TRUE(in.good()) << rel;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string sha256(const std::string& s) {
  unsigned char md[32];
  unsigned len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
  static const char* k = "0123456789abcdef";
  std::string o;
  for (unsigned i = 0; i < len; ++i) o += k[md[i] >> 4], o += k[md[i] & 15];
  return o;
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

MessageFacts parse(const std::string& msg, size_t chunk = 0, MimeLimits lim = {}, MimeSink* sink = nullptr) {
  MimeParser p(lim, sink);
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

void expect_chunk_invariant(const std::string& msg, std::vector<size_t> extra = {}) {
  MimeLimits lim;
  lim.leaf_digests = true;
  std::string whole = json_of(parse(msg, 0, lim));
  std::vector<size_t> sizes = {1, 2, 3, 5, 7, 13, 64, 1000, 1023, 1024, 1025, 1100, 4096};
  sizes.insert(sizes.end(), extra.begin(), extra.end());
  for (size_t c : sizes) ASSERT_EQ(json_of(parse(msg, c, lim)), whole) << "chunk " << c;
}

struct Sink : MimeSink {
  std::string text, headers;
  std::vector<std::string> attachments;
  void on_text(std::string_view t) override { text.append(t); }
  void on_header(std::string_view n, std::string_view, std::string_view d) override {
    headers.append(n).append(": ").append(d).append("\n");
  }
  void on_attachment(const AttachmentFacts& a) override { attachments.push_back(a.name); }
};

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

const AttachmentFacts* attachment(const MessageFacts& f, const std::string& name) {
  for (const auto& a : f.attachments)
    if (a.name == name) return &a;
  return nullptr;
}

// A small PE header is enough for an executable by content and by name.
const std::string kExe = std::string("MZ\x90\x00\x03\x00\x00\x00", 8) + std::string(120, 'A') + "PE";

}  // namespace

// 1. A line that is no header field inside a header block.

TEST(HeaderGarbage, CorpusBodyStartsAtTheFirstLineThatIsNoField) {
  // CPython msg_47: each part's header is followed by its content with no
  // blank line; Python reads "bar" and the HTML as the parts' bodies.
  MessageFacts f = parse(corpus("cpython/data/msg_47.txt"), 0, MimeLimits{.leaf_digests = true});
  ASSERT_EQ(f.leaves.size(), 2u);
  EXPECT_EQ(f.leaves[0].size, 4u);   // "bar\n"
  EXPECT_EQ(f.leaves[1].type, "text/html");
  EXPECT_EQ(f.leaves[1].size, 37u);  // "<html><body><p>baz</p></body></html>\n", as Python decodes it
  EXPECT_EQ(f.header_block_garbage, 2u);
  Sink s;
  parse(corpus("cpython/data/msg_47.txt"), 0, {}, &s);
  EXPECT_NE(s.text.find("baz"), std::string::npos);
  // mime4j hdr-fakeout: a "blank" line holding a space continues the last
  // field; the text after it is the body (Python), not dropped.
  Sink t;
  MessageFacts g = parse(corpus("mime4j/mimetools-testmsgs/hdr-fakeout.msg"), 0, {}, &t);
  EXPECT_EQ(g.header_block_garbage, 1u);
  EXPECT_NE(t.text.find("The header is not properly terminated"), std::string::npos);
  EXPECT_EQ(g.header.subject, "test message 1");
  expect_chunk_invariant(corpus("cpython/data/msg_47.txt"));
  expect_chunk_invariant(corpus("mime4j/mimetools-testmsgs/hdr-fakeout.msg"));
}

TEST(HeaderGarbage, CorpusFieldsAfterTheLineAreReadToo) {
  // mime4j malformedHeader-nocrlfcrlf: mime4j keeps "AnotherHeader" as a
  // field, Python makes it body text: both readings are scanned.
  std::string msg = corpus("mime4j/testmsgs/malformedHeader-nocrlfcrlf.msg");
  Sink s;
  MessageFacts f = parse(msg, 0, {}, &s);
  EXPECT_EQ(f.header_block_garbage, 1u);
  EXPECT_NE(s.headers.find("AnotherHeader: is this an header"), std::string::npos);
  EXPECT_NE(s.text.find("This is an invalid header"), std::string::npos);
  EXPECT_NE(s.text.find("Body text"), std::string::npos);
  EXPECT_EQ(f.header.headers, 2u);
  expect_chunk_invariant(msg);
}

TEST(HeaderGarbage, PhishingHtmlRightAfterItsContentType) {
  std::string msg =
      "From: \"IT Service Desk\" <helpdesk@corp.example>\r\n"
      "Subject: Password expires today\r\n"
      "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
      "--alt\r\nContent-Type: text/plain\r\n\r\nPlease see the HTML version.\r\n"
      "--alt\r\nContent-Type: text/html; charset=utf-8\r\n"
      "<html><body><a href=\"https://login.phish.example/reset\">Keep my password</a></body></html>\r\n"
      "--alt--\r\n";
  MessageFacts f = parse(msg);
  EXPECT_TRUE(has(f.urls, "https://login.phish.example/reset"));
  EXPECT_EQ(f.header_block_garbage, 1u);
  nlohmann::json j;
  sekisho::journal::add_facts_json(f, j);
  EXPECT_EQ(j["mime_anomalies"]["header_block_garbage"], 1);
  expect_chunk_invariant(msg);
}

TEST(HeaderGarbage, PhishingBase64AttachmentRightAfterItsHeaders) {
  // Python decodes the lines after the CTE field as the part's body.
  std::string msg =
      "Subject: Invoice 4471\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain\r\n\r\nThe invoice is attached.\r\n"
      "--b\r\nContent-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\n"
      "Content-Transfer-Encoding: base64\r\n" + b64(kExe) + "--b--\r\n";
  MessageFacts f = parse(msg);
  const AttachmentFacts* a = attachment(f, "invoice.pdf.exe");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->sha256, sha256(kExe));
  EXPECT_TRUE(a->executable);
  EXPECT_TRUE(a->double_extension);
  expect_chunk_invariant(msg);
}

TEST(HeaderGarbage, ContentFieldsAfterTheLineDecideTheRestOfTheBody) {
  // The block before the stray line declares nothing; the fields after it
  // make the message a multipart (mime4j's reading) whose attachment must
  // be seen, while the stray line is scanned as text (Python's).
  std::string msg =
      "From: billing@vendor.example\r\nSubject: Statement\r\n"
      "Dear customer, visit http://stray.phish.example/now\r\n"
      "To: victim@corp.example\r\n"
      "Content-Type: multipart/mixed; boundary=X\r\n\r\n"
      "--X\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n"
      "--X\r\nContent-Type: application/octet-stream; name=\"statement.scr\"\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n" + b64(kExe) + "--X--\r\n";
  Sink s;
  MessageFacts f = parse(msg, 0, {}, &s);
  EXPECT_EQ(f.header_block_garbage, 1u);
  EXPECT_EQ(f.header_after_garbage, 1u);
  EXPECT_TRUE(has(f.urls, "http://stray.phish.example/now"));
  ASSERT_NE(attachment(f, "statement.scr"), nullptr);
  EXPECT_EQ(attachment(f, "statement.scr")->sha256, sha256(kExe));
  EXPECT_EQ(f.header.from, "billing@vendor.example");
  EXPECT_EQ(f.header.to, (std::vector<std::string>{"victim@corp.example"}));  // a field after the stray line
  EXPECT_NE(s.text.find("See attachment."), std::string::npos);
  expect_chunk_invariant(msg);
}

TEST(HeaderGarbage, StrayLineBeforeTheBlankLineOfAnAttachment) {
  // GMime reads the stray line as a header line and decodes the base64
  // after the blank line; Python decodes from the stray line on, which
  // shifts the executable's bytes. Both readings are analysed. (Found by
  // fuzz_mime_gmime.)
  std::string msg =
      "Subject: Invoice\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain\r\n\r\nattached\r\n"
      "--b\r\nContent-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\n"
      "Content-Transfer-Encoding: base64\r\nX-Scanned by nothing\r\n\r\n" + b64(kExe) + "--b--\r\n";
  MessageFacts f = parse(msg);
  EXPECT_EQ(f.header_block_garbage, 1u);
  EXPECT_EQ(f.header_after_garbage, 1u);
  bool exe = false;
  for (const auto& a : f.attachments) exe |= a.sha256 == sha256(kExe) && a.executable;
  EXPECT_TRUE(exe);
  expect_chunk_invariant(msg);
}

TEST(HeaderGarbage, StrayLineInAForwardedMessagePart) {
  // GMime reads the stray line as the message/rfc822 part's and parses the
  // message after the blank line; Python makes it all text. Both are
  // scanned: the attachment inside is analysed. (Found by fuzz_mime_gmime.)
  std::string msg =
      "Subject: Fwd\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n"
      "--o\r\nContent-Type: message/rfc822\r\nContent-Disposition\xbd inline\r\n\r\n"
      "Subject: inner\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n"
      "--i\r\nContent-Type: application/octet-stream; name=\"inner.exe\"\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n" + b64(kExe) + "--i--\r\n--o--\r\n";
  MessageFacts f = parse(msg);
  EXPECT_GE(f.header_after_garbage, 1u);
  ASSERT_NE(attachment(f, "inner.exe"), nullptr);
  EXPECT_EQ(attachment(f, "inner.exe")->sha256, sha256(kExe));
  expect_chunk_invariant(msg);
}

TEST(HeaderGarbage, NoFieldsAtAllMakeTheWholeMessageBody) {
  // CPython msg_19 starts with text: no header block at all.
  std::string msg = corpus("cpython/data/msg_19.txt");
  MessageFacts f = parse(msg, 0, MimeLimits{.leaf_digests = true});
  ASSERT_EQ(f.leaves.size(), 1u);
  EXPECT_EQ(f.leaves[0].size, msg.size());
  EXPECT_TRUE(has(f.urls, "http://www.zzz.org/mailman/listinfo/ppp"));
  expect_chunk_invariant(msg);
}

// 2. message/rfc822 in base64 or quoted-printable.

TEST(EncodedMessage, CorpusTwoGifsInsideBase64Rfc822) {
  std::string msg = corpus("mime4j/mimetools-testmsgs/multi-2gifs-base64.msg");
  MessageFacts f = parse(msg);
  EXPECT_EQ(f.encoded_message, 1u);
  const AttachmentFacts* a = attachment(f, "3d-compress.gif");
  const AttachmentFacts* b = attachment(f, "3d-eye.gif");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // mime4j's decoded files
  EXPECT_EQ(a->sha256, sha256(corpus("mime4j/mimetools-testmsgs/multi-2gifs-base64_decoded_1_1_2.bin")));
  EXPECT_EQ(b->sha256, sha256(corpus("mime4j/mimetools-testmsgs/multi-2gifs-base64_decoded_1_1_3.bin")));
  EXPECT_EQ(a->depth, 1u);
  expect_chunk_invariant(msg);
}

TEST(EncodedMessage, PhishingForwardedInBase64) {
  std::string inner =
      "From: ceo@corp.example\r\nSubject: urgent wire\r\n"
      "Content-Type: multipart/mixed; boundary=in\r\n\r\n"
      "--in\r\nContent-Type: text/html\r\n\r\n<a href=\"http://wire.phish.example/pay\">pay now</a>\r\n"
      "--in\r\nContent-Type: application/octet-stream; name=\"payment.exe\"\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n" + b64(kExe) + "--in--\r\n";
  std::string msg =
      "Subject: Fwd: urgent wire\r\nContent-Type: multipart/mixed; boundary=out\r\n\r\n"
      "--out\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
      "--out\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(inner) +
      "--out--\r\n";
  Sink s;
  MessageFacts f = parse(msg, 0, {}, &s);
  EXPECT_EQ(f.encoded_message, 1u);
  EXPECT_TRUE(has(f.urls, "http://wire.phish.example/pay"));
  const AttachmentFacts* a = attachment(f, "payment.exe");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->sha256, sha256(kExe));
  EXPECT_TRUE(a->executable);
  EXPECT_EQ(s.attachments, (std::vector<std::string>{"payment.exe"}));
  EXPECT_NE(s.text.find("pay now"), std::string::npos);
  EXPECT_EQ(f.header.subject, "Fwd: urgent wire");  // the nested Subject is the nested message's
  EXPECT_EQ(f.parts, 6u);  // multipart, text, message/rfc822, and inside it (as Python's walk() counts): multipart, html, exe
  expect_chunk_invariant(msg);
}

TEST(EncodedMessage, QuotedPrintableAndDepthBound) {
  std::string inner = "Subject: q\r\nContent-Type: text/html\r\n\r\n<a href=3D\"http://qp.phish.example/\">x</a>\r\n";
  std::string msg = "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + inner;
  MessageFacts f = parse(msg);
  EXPECT_TRUE(has(f.urls, "http://qp.phish.example/"));
  expect_chunk_invariant(msg);
  // Base64 inside base64 inside ...: bounded by max_depth, counted.
  std::string m = "Subject: bottom\r\n\r\nhttp://deep.example/\r\n";
  for (int i = 0; i < 20; ++i) m = "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(m);
  MessageFacts g = parse(m);
  EXPECT_GT(g.depth_exceeded, 0u);
  EXPECT_LE(g.encoded_message, 16u);
  EXPECT_FALSE(has(g.urls, "http://deep.example/"));
  expect_chunk_invariant(m);
}

// 3. A delimiter followed by text on its line.

TEST(BoundaryJunk, CorpusEndingBoundaries) {
  std::string msg = corpus("mime4j/testmsgs/ending-boundaries.msg");
  Sink s;
  MessageFacts f = parse(msg, 0, MimeLimits{.leaf_digests = true}, &s);
  ASSERT_EQ(f.leaves.size(), 1u);  // as mime4j: one part, "first part"
  EXPECT_EQ(f.leaves[0].sha256, sha256(corpus("mime4j/testmsgs/ending-boundaries_decoded_1_1.txt")));
  EXPECT_EQ(f.boundary_junk, 2u);
  // what a strict reader shows as content is scanned as text
  EXPECT_NE(s.text.find("This should be ignored Content-Type: message/rfc822"), std::string::npos);
  expect_chunk_invariant(msg);
}

TEST(BoundaryJunk, PhishingPartBehindAJunkDelimiter) {
  // Before: the junk delimiter was content, so the HTML part and the
  // executable were swallowed by the image's base64 and never seen.
  std::string msg =
      "Subject: Your parcel\r\nContent-Type: multipart/mixed; boundary=\"=_p\"\r\n\r\n"
      "--=_p\r\nContent-Type: image/png; name=logo.png\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
      b64("\x89PNG\r\n\x1a\n....") +
      "--=_p tracking\r\nContent-Type: text/html\r\n\r\n<a href=\"https://parcel.phish.example/track\">track</a>\r\n"
      "--=_p\tx\r\nContent-Type: application/octet-stream; name=\"label.exe\"\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n" + b64(kExe) + "--=_p--\r\n";
  MessageFacts f = parse(msg);
  EXPECT_TRUE(has(f.urls, "https://parcel.phish.example/track"));
  ASSERT_NE(attachment(f, "label.exe"), nullptr);
  EXPECT_EQ(attachment(f, "label.exe")->sha256, sha256(kExe));
  EXPECT_EQ(f.boundary_junk, 2u);
  expect_chunk_invariant(msg);
}

TEST(BoundaryJunk, InsideAnUnencodedAttachmentTheLineIsTheFiles) {
  // The attacker picks a boundary that their file contains at a line start:
  // strict readers (GMime, Python) keep the whole file; splitting it there
  // would hide the macro project at its end.
  std::string docm = "PK\x03\x04 word/document.xml ...\r\n--=_q and the rest of the zip\r\n word/vbaProject.bin PK\x05\x06";
  std::string msg =
      "Subject: contract\r\nContent-Type: multipart/mixed; boundary=\"=_q\"\r\n\r\n"
      "--=_q\r\nContent-Type: application/octet-stream; name=\"contract.docm\"\r\n"
      "Content-Transfer-Encoding: binary\r\n\r\n" + docm + "\r\n--=_q--\r\n";
  MessageFacts f = parse(msg);
  ASSERT_NE(attachment(f, "contract.docm"), nullptr);
  EXPECT_EQ(attachment(f, "contract.docm")->sha256, sha256(docm));
  EXPECT_EQ(f.attachments.size(), 1u);
  EXPECT_EQ(f.boundary_junk, 1u);
  expect_chunk_invariant(msg);
}

TEST(BoundaryJunk, StrictMatchOnAnyOpenMultipartWinsOverALenientOne) {
  // The inner boundary "X" is a prefix of the outer "X-out": "--X-out" is
  // the outer delimiter (exact), not the inner one with junk.
  std::string msg =
      "Content-Type: multipart/mixed; boundary=X-out\r\n\r\n"
      "--X-out\r\nContent-Type: multipart/alternative; boundary=X\r\n\r\n"
      "--X\r\nContent-Type: text/plain\r\n\r\ninner\r\n"
      "--X-out\r\nContent-Type: text/plain\r\n\r\nouter second\r\n--X-out--\r\n";
  MessageFacts f = parse(msg, 0, MimeLimits{.leaf_digests = true});
  EXPECT_EQ(f.boundary_junk, 0u);
  EXPECT_EQ(f.missing_close_boundary, 1u);  // the inner multipart never closed
  ASSERT_EQ(f.leaves.size(), 2u);
  expect_chunk_invariant(msg);
}

TEST(BoundaryJunk, PhishingAttachmentBehindABoundaryEndingInASpace) {
  // For mime4j "--=_b" is content of the text part; Python strips the
  // boundary's space and shows an attachment: the engine analyses it.
  std::string msg =
      "Subject: remittance\r\nContent-Type: multipart/mixed; boundary=\"=_b \"\r\n\r\n"
      "--=_b \r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
      "--=_b\r\nContent-Type: application/octet-stream; name=\"remit.exe\"\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n" + b64(kExe) + "--=_b --\r\n";
  MessageFacts f = parse(msg);
  ASSERT_NE(attachment(f, "remit.exe"), nullptr);
  EXPECT_EQ(attachment(f, "remit.exe")->sha256, sha256(kExe));
  EXPECT_EQ(f.boundary_trailing_space, 1u);
  expect_chunk_invariant(msg);
}

// 4. Delimiter lines over 1,024 bytes.

TEST(LongBoundary, CorpusVeryVeryLongBoundary) {
  // Delimiter lines of about 7,000 bytes. The boundary also ends in two
  // spaces: the line without them is a delimiter for Python (which strips
  // them) and content for mime4j; the engine splits there as Python does
  // and scans the same text either way.
  std::string msg = corpus("mime4j/testmsgs/very-very-long-boundary.msg");
  Sink s;
  MessageFacts f = parse(msg, 0, MimeLimits{.leaf_digests = true}, &s);
  ASSERT_EQ(f.leaves.size(), 2u);
  EXPECT_EQ(f.leaves[0].size, 9u);  // "Text body", Python's first part
  EXPECT_EQ(f.long_boundary_line, 3u);
  EXPECT_EQ(f.boundary_trailing_space, 1u);
  EXPECT_EQ(f.missing_close_boundary, 0u);
  for (const char* want : {"Text body", "should be part of the body", "epilogue"})
    EXPECT_NE(s.text.find(want), std::string::npos) << want;
  expect_chunk_invariant(msg, {7000, 7100});
}

TEST(LongBoundary, PhishingAttachmentBehindAFiveKilobyteBoundary) {
  std::string bnd(5000, 'q');
  std::string msg =
      "Subject: scan\r\nContent-Type: multipart/mixed; boundary=\"" + bnd + "\"\r\n\r\n"
      "--" + bnd + "\r\nContent-Type: text/html\r\n\r\n<a href=\"http://long.phish.example/\">open</a>\r\n"
      "--" + bnd + std::string(3000, ' ') + "\r\nContent-Type: application/octet-stream; name=\"scan.exe\"\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n" + b64(kExe) + "--" + bnd + "--\r\n";
  MessageFacts f = parse(msg);
  EXPECT_TRUE(has(f.urls, "http://long.phish.example/"));
  ASSERT_NE(attachment(f, "scan.exe"), nullptr);
  EXPECT_EQ(attachment(f, "scan.exe")->sha256, sha256(kExe));
  EXPECT_EQ(f.long_boundary_line, 3u);
  EXPECT_EQ(f.missing_close_boundary, 0u);
  expect_chunk_invariant(msg, {5001, 5003, 6023, 6025, 8000});
}

// 5. Two content fields that differ (GMime reads the last, Python and
// mime4j the first): not scanned both ways yet, but named for policies.

TEST(ConflictingFields, CorpusMultiBadAndACraftedEncodingSwitch) {
  MessageFacts f = parse(corpus("mime4j/mimetools-testmsgs/multi-bad.msg"));
  EXPECT_EQ(f.conflicting_content_fields, 1u);  // multipart/mixed, then text/plain
  std::string msg =
      "Subject: notice\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: 7bit\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n" + b64("<a href=\"http://gmime.phish.example/\">x</a>");
  MessageFacts g = parse(msg);
  EXPECT_EQ(g.conflicting_content_fields, 1u);
  nlohmann::json j;
  sekisho::journal::add_facts_json(g, j);
  EXPECT_EQ(j["mime_anomalies"]["conflicting_content_fields"], 1);
  std::string same = "Content-Type: text/plain\r\nContent-type: TEXT/PLAIN\r\n\r\nhi\r\n";
  EXPECT_EQ(parse(same).conflicting_content_fields, 0u);  // the same value twice is no conflict
  // Also across a stray line: GMime reads both blocks as one header.
  std::string split = "Content-Type: text/plain\r\nstray line\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n";
  MessageFacts h = parse(split);
  EXPECT_EQ(h.conflicting_content_fields, 1u);
  EXPECT_EQ(h.header_block_garbage, 1u);
  expect_chunk_invariant(split);
  expect_chunk_invariant(msg);
}

TEST(EncodingJunk, FirstTokenOfTheTransferEncodingIsRead) {
  // GMime decodes "base64 <anything>" as base64; Python compares the whole
  // value and decodes nothing. Found by fuzz_mime_gmime.
  std::string msg =
      "Subject: doc\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: application/octet-stream; name=\"doc.exe\"\r\n"
      "Content-Transfer-Encoding: base64 multipart/mixed; boundary=\"b1\"\r\n\r\n" + b64(kExe) + "--b--\r\n";
  MessageFacts f = parse(msg);
  ASSERT_NE(attachment(f, "doc.exe"), nullptr);
  EXPECT_EQ(attachment(f, "doc.exe")->sha256, sha256(kExe));
  EXPECT_EQ(f.encoding_junk, 1u);
  expect_chunk_invariant(msg);
}
