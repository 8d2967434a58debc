#include <gtest/gtest.h>

#include <string>

#include "scanners/mime/header_scan.hpp"

using namespace sekisho::mime;

namespace {

HeaderFacts scan(const std::string& msg, size_t chunk = 0) {
  HeaderScanner h;
  size_t step = chunk ? chunk : msg.size();
  for (size_t i = 0; i < msg.size() && !h.done(); i += step)
    h.feed({reinterpret_cast<const uint8_t*>(msg.data()) + i, std::min(step, msg.size() - i)});
  h.finish();
  return h.facts();
}

const std::string kMsg =
    "Received: from x\r\n\tby y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    "From: \"Yamada, Taro\" <taro@example.jp>\r\n"
    "To: bob@example.net, \"Carol (QA)\" <carol@example.net>,\r\n"
    " undisclosed-recipients:;\r\n"
    "Cc: Team: dave@example.net, erin@example.net;, frank@example.net (Frank)\r\n"
    "Reply-To: <billing@example.org>\r\n"
    "Subject: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=\r\n =?UTF-8?Q?_caf=C3=A9?= plain\r\n"
    "Message-ID: <abc@example.jp>\r\n"
    "Date: Mon, 1 Jan 2024 09:00:00 +0900\r\n"
    "\r\n"
    "Subject: this is the body, not a header\r\n";

}  // namespace

TEST(HeaderScan, FieldsDecodedAndAddressesParsed) {
  HeaderFacts f = scan(kMsg);
  EXPECT_TRUE(f.complete);
  EXPECT_EQ(f.from, "taro@example.jp");
  EXPECT_EQ(f.from_name, "Yamada, Taro");
  EXPECT_EQ(f.to, (std::vector<std::string>{"bob@example.net", "carol@example.net"}));
  EXPECT_EQ(f.cc, (std::vector<std::string>{"dave@example.net", "erin@example.net", "frank@example.net"}));
  ASSERT_TRUE(f.reply_to.has_value());
  EXPECT_EQ(*f.reply_to, "billing@example.org");
  // ISO-2022-JP "こんにちは", then an adjacent Q word (the space between words is dropped)
  EXPECT_EQ(f.subject, "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf caf\xc3\xa9 plain");
  EXPECT_EQ(f.message_id, "<abc@example.jp>");
  EXPECT_EQ(f.date, "Mon, 1 Jan 2024 09:00:00 +0900");
  EXPECT_EQ(f.headers, 8u);
  EXPECT_EQ(f.charset_errors, 0u);
}

TEST(HeaderScan, AnyChunkingGivesTheSameFacts) {
  HeaderFacts whole = scan(kMsg);
  for (size_t chunk : {1, 2, 3, 5, 7, 13, 64}) {
    HeaderFacts f = scan(kMsg, chunk);
    EXPECT_EQ(f.subject, whole.subject) << chunk;
    EXPECT_EQ(f.to, whole.to) << chunk;
    EXPECT_EQ(f.cc, whole.cc) << chunk;
    EXPECT_EQ(f.from_name, whole.from_name) << chunk;
  }
}

TEST(HeaderScan, JapaneseCharsets) {
  uint32_t err = 0;
  // Shift_JIS "日本" (93 fa 96 7b), EUC-JP "日本" (c6 fc cb dc), both as B words
  EXPECT_EQ(decode_words("=?Shift_JIS?B?k/qWew==?=", err), "\xe6\x97\xa5\xe6\x9c\xac");
  EXPECT_EQ(decode_words("=?EUC-JP?B?xvzL3A==?=", err), "\xe6\x97\xa5\xe6\x9c\xac");
  EXPECT_EQ(err, 0u);
  // RFC 6532: raw UTF-8 in a header is kept
  EXPECT_EQ(decode_words("\xe6\x97\xa5\xe6\x9c\xac mail", err), "\xe6\x97\xa5\xe6\x9c\xac mail");
  EXPECT_EQ(err, 0u);
}

TEST(HeaderScan, BrokenWordsAreToleratedAndCounted) {
  uint32_t err = 0;
  EXPECT_EQ(decode_words("=?x-unknown?Q?abc?= tail", err), "abc tail");
  EXPECT_EQ(err, 1u);
  err = 0;
  EXPECT_EQ(decode_words("=?UTF-8?B?not closed", err), "=?UTF-8?B?not closed");
  EXPECT_EQ(decode_words("caf\xe9", err), "caf\xc3\xa9") << "8-bit Latin-1 taken as such";
  EXPECT_EQ(err, 1u);
}

TEST(HeaderScan, HeaderBlockIsBounded) {
  std::string big = "From: a@b\r\nX-Pad: " + std::string(300000, 'x') + "\r\nSubject: late\r\n\r\nbody";
  HeaderFacts f = scan(big, 4096);
  EXPECT_TRUE(f.truncated);
  EXPECT_FALSE(f.complete);
  EXPECT_EQ(f.from, "a@b");
  EXPECT_EQ(f.subject, "") << "beyond the limit";
}

TEST(HeaderScan, NoHeaderBlockEndStillParsesAtFinish) {
  HeaderFacts f = scan("From: x@y\r\nSubject: cut");
  EXPECT_FALSE(f.complete);
  EXPECT_EQ(f.from, "x@y");
  EXPECT_EQ(f.subject, "cut");
}

TEST(HeaderScan, AddressListEdgeCases) {
  uint32_t err = 0;
  auto a = parse_addresses("=?UTF-8?B?5bGx55Sw?= <yamada@example.jp>, (comment only), <>, x@y (X Y)", err);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].name, "\xe5\xb1\xb1\xe7\x94\xb0");
  EXPECT_EQ(a[0].address, "yamada@example.jp");
  EXPECT_EQ(a[1].address, "x@y");
  EXPECT_EQ(a[1].name, "X Y");
  EXPECT_TRUE(parse_addresses("", err).empty());
  EXPECT_TRUE(parse_addresses("undisclosed-recipients:;", err).empty());
}
