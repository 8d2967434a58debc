// The one RFC 5322 address-list splitter (scanners/mime/address.hpp): each
// reading it makes, and the decisions where RFC 5322, SpamAssassin 4
// (Util::parse_header_addresses, PerMsgStatus::_get :addr/:name) and
// Python's email.utils.getaddresses disagree.
#include "scanners/mime/address.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "scanners/mime/header_scan.hpp"

using namespace sekisho::mime;

namespace {

struct Got {
  std::string address, name, group;
  bool angle;
};

std::vector<Got> split(std::string_view v) {
  std::vector<Got> out;
  for_each_address(v, [&](const Mailbox& m) {
    Got g{"", "", std::string(m.group), m.angle};
    render_address(m.address, [&](std::string_view p) { g.address.append(p); });
    if (m.angle) render_phrase(m.phrase, [&](std::string_view p) { g.name.append(p); });
    else render_comments(m.comments, [&](std::string_view p) { g.name.append(p); });
    out.push_back(std::move(g));
  });
  return out;
}

std::vector<std::string> addrs(std::string_view v) {
  std::vector<std::string> o;
  for (auto& g : split(v)) o.push_back(g.address);
  return o;
}

using V = std::vector<std::string>;

}  // namespace

TEST(Address, QuotedCommaIsOneMailbox) {
  auto a = split("\"Last, First\" <a@b>, c@d");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].address, "a@b");
  EXPECT_EQ(a[0].name, "Last, First");
  EXPECT_EQ(a[1].address, "c@d");
  EXPECT_EQ(a[1].name, "");
}

TEST(Address, QuotedPairsInDisplayName) {
  auto a = split(R"("Say \"hi\", \\ me" <a@b>)");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].name, R"(Say "hi", \ me)");
}

TEST(Address, CommentIsTheNameOfABareAddress) {
  auto a = split("a@b (Name)");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].address, "a@b");
  EXPECT_EQ(a[0].name, "Name");
  EXPECT_FALSE(a[0].angle);
  // Several comments joined by a space (Python: "Name More").
  EXPECT_EQ(split("a@b (Name) (More)")[0].name, "Name More");
  // A comment with a comma and nested parentheses stays in its mailbox.
  a = split("a@b (Smith, J (jr)), c@d");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].name, "Smith, J (jr)");
  // Comments inside an address go.
  EXPECT_EQ(addrs("a(x)@b"), V{"a@b"});
}

TEST(Address, CommentAfterAngleAddressIsNoName) {
  // RFC 5322 and Python: the phrase is the display name; SpamAssassin uses
  // the comment when there is no phrase. Decided for RFC and Python.
  auto a = split("<a@b> (Comment)");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].name, "");
  // Comments inside a phrase are dropped, white space runs become one space.
  EXPECT_EQ(split("John (x)  Smith <a@b>")[0].name, "John Smith");
}

TEST(Address, Groups) {
  EXPECT_TRUE(split("undisclosed-recipients:;").empty());
  EXPECT_TRUE(split("undisclosed-recipients: ;").empty());
  auto a = split("Team: a@b, \"C\" <c@d>;, e@f");
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].group, "Team");
  EXPECT_EQ(a[1].group, "Team");
  EXPECT_EQ(a[1].name, "C");
  EXPECT_EQ(a[2].group, "") << "';' closes the group";
  EXPECT_EQ(addrs("x:y@z"), V{"y@z"}) << "as Python";
  // A group name in angle brackets is not a mailbox (Python, SpamAssassin).
  EXPECT_TRUE(split("<Undisclosed-Recipient:;>").empty());
}

TEST(Address, SourceRouteDropped) {
  EXPECT_EQ(addrs("<@r1,@r2:u@c>"), V{"u@c"});
  EXPECT_EQ(addrs("Name <@r1:u@c>, d@e"), (V{"u@c", "d@e"}));
}

TEST(Address, NestedAndRepeatedAngleBrackets) {
  // <<a@b>>: the innermost address (SpamAssassin's last-ditch reading; Python
  // refuses the mailbox). Text after the '>' is ignored.
  EXPECT_EQ(addrs("<<a@b>>"), V{"a@b"});
  EXPECT_EQ(addrs("Name <a@b>junk"), V{"a@b"});
  // Two angle addresses: the first (SpamAssassin, "duplicate enclosures";
  // Python refuses; both old splitters took the last).
  auto a = split("\"Bank\" <x@bank.example> <y@evil.example>");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].address, "x@bank.example");
  EXPECT_EQ(a[0].name, "Bank");
}

TEST(Address, ObsLocalPartWhiteSpace) {
  EXPECT_EQ(addrs("<john smith@x>"), V{"john smith@x"}) << "between words: kept, as Python";
  EXPECT_EQ(addrs("<a @ b . c>"), V{"a@b.c"}) << "around '@' and '.': folding";
  EXPECT_EQ(addrs("< a@b\r\n >"), V{"a@b"});
  EXPECT_EQ(addrs("\"a b\"@x"), V{"\"a b\"@x"});
  EXPECT_EQ(addrs(R"("a\"b"@x)"), V{R"("a\"b"@x)"}) << "quoted pairs as written";
}

TEST(Address, BareWordsPickTheAddress) {
  // Lenient: Python keeps "John Smith john@x" as one address, SpamAssassin
  // and RFC 5322 find none; the word with the '@' is what a reader sees.
  EXPECT_EQ(addrs("John Smith john@x"), V{"john@x"});
  EXPECT_EQ(addrs("John"), V{"John"}) << "a local name, as Python";
  EXPECT_TRUE(addrs("John Smith").empty());
}

TEST(Address, NotMailboxes) {
  EXPECT_TRUE(split("").empty());
  EXPECT_TRUE(split(" , ,, ").empty());
  EXPECT_TRUE(split("<>").empty());
  EXPECT_TRUE(split("(comment only)").empty());
  EXPECT_TRUE(split("a@b@c").empty()) << "two unquoted '@'";
  EXPECT_TRUE(split("[x]@host").empty());
  EXPECT_EQ(addrs("a@[192.0.2.1]"), V{"a@[192.0.2.1]"}) << "a domain literal is fine";
  EXPECT_EQ(addrs("a@b, , c@d"), (V{"a@b", "c@d"}));
}

TEST(Address, UnbalancedQuotesAndBrackets) {
  // A quote, comment or '<' that never closes swallows the rest of the value:
  // no mailbox from it (Python refuses the first and still splits the
  // third; SpamAssassin finds <a@b> in the first by its last-ditch regex).
  EXPECT_TRUE(split("\"unbalanced <a@b>, c@d").empty());
  EXPECT_EQ(addrs("x@y, \"open"), V{"x@y"});
  EXPECT_EQ(addrs("x@y, (open a@b"), V{"x@y"});
  EXPECT_EQ(addrs("x@y, <a@b, c@d"), V{"x@y"});
  EXPECT_EQ(addrs("a@b>, c@d"), V{"c@d"}) << "a stray '>' is no address character";
  // Trailing backslashes and lone specials terminate.
  for (std::string_view s : {"\\", "\"\\", "(\\", "<\\", "<\"", "<(", "((", "\"", "<", "(", ":", ";", ">", ")", "a@b\\"})
    (void)split(s);
}

TEST(Address, EveryPrefixTerminatesInBounds) {
  // Each prefix of awkward values is split from a string with no bytes
  // after it (ASan catches a read past the end).
  const char* vals[] = {
      R"(A (B "C) <@x,@y:"a\"b"@[1.2.3.4]>, g: (c\) d) e@f;, <<x>>, "q\\" <r@s> (t)  ,)",
      "=?UTF-8?Q?a,b?= <a@b>, \"x\\\" y\" z@w (c (d \\) e) f)",
  };
  for (const char* v : vals) {
    std::string s(v);
    for (size_t n = 0; n <= s.size(); ++n) {
      std::string cut = s.substr(0, n);
      std::vector<char> buf(cut.begin(), cut.end());
      (void)split(std::string_view(buf.data(), buf.size()));
    }
  }
}

TEST(Address, ParseAddressesDecodesNames) {
  uint32_t err = 0;
  auto a = parse_addresses("=?UTF-8?B?TGFzdCwgRmlyc3Q=?= <a@b>, \"=?UTF-8?Q?J=C3=B6rg?=\" <j@x>, \"john\"@x (=?UTF-8?Q?J?=)", err);
  ASSERT_EQ(a.size(), 3u);
  // Split before decoding: the encoded ',' stays in the name.
  EXPECT_EQ(a[0].name, "Last, First");
  EXPECT_EQ(a[0].address, "a@b");
  EXPECT_EQ(a[1].name, "J\xc3\xb6rg");
  EXPECT_EQ(a[2].address, "john@x") << "quotes only where needed, as Python renders";
  EXPECT_EQ(a[2].name, "J");
  EXPECT_EQ(err, 0u);
}

TEST(Address, LinearOnLongValues) {
  // Many comments, quotes or brackets in one value: one pass each, no
  // rescans (1 MiB values reach the matcher).
  std::string comments = "a@b " + std::string(1 << 19, '(') + std::string(1 << 19, ')');
  std::string tail = "a@b";
  for (int i = 0; i < (1 << 18); ++i) tail += " ()";
  std::string angles(1 << 20, '<');
  std::string commas(1 << 20, ',');
  std::string mixed;
  while (mixed.size() < (1 << 20)) mixed += "\"x\" (y) <z@w>, g:;";
  size_t n = 0;
  for (const std::string* s : {&comments, &tail, &angles, &commas, &mixed}) n += split(*s).size();
  EXPECT_GT(n, 1u);
  EXPECT_EQ(addrs(tail), V{"a@b"});
}

TEST(Address, DisplayNameWhiteSpace) {
  // Quoted text as written, ends included (Python: "IQ ", " Angles  Puglisi";
  // the old parse_addresses trimmed them, SpamAssassin's :name trims, which
  // the matcher does on its own); unquoted runs one space (Python, SpamAssassin).
  EXPECT_EQ(split("\"IQ \" <nlv@x>")[0].name, "IQ ");
  EXPECT_EQ(split("\"\" Angles \" Puglisi\" <a@x>")[0].name, " Angles  Puglisi");
  EXPECT_EQ(split("CNET Virus  Security\tNews <a@x>")[0].name, "CNET Virus Security News");
  EXPECT_EQ(split("<x@y>knoshaug.com")[0].name, "") << "text after '>' is no name";
}
