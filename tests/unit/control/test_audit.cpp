// The hash-chained audit log: a clean chain verifies; an edited, removed or
// truncated entry, a wrong key or a lost anchor is reported, naming the
// entry.
#include "control/audit/audit.hpp"

#include <gtest/gtest.h>

#include "tests/unit/control/backends.hpp"
#include "tests/unit/control/control_test_util.hpp"
#include "control/db/db.hpp"

namespace sekisho::control::audit {
namespace {

using testing::TempDir;

const std::string kKey = "0123456789abcdef-audit-test-key";

class AuditTest : public testing::BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (IsSkipped()) return;
    log.emplace(db(), kKey, dir / "audit.anchor");
    for (int i = 1; i <= 5; ++i)
      log->append(i % 2 ? "admin" : "token:ci", "quarantine.release", "SK" + std::to_string(i),
                  {{"n", i}, {"subject", "日本語 <b>" + std::to_string(i) + "</b>"}}, 1000000 * i);
  }
  bool mentions(const VerifyResult& v, const std::string& s) {
    for (const auto& p : v.problems)
      if (p.find(s) != std::string::npos) return true;
    return false;
  }
  TempDir dir;
  std::optional<AuditLog> log;
};

TEST_P(AuditTest, CleanChainVerifies) {
  VerifyResult v = log->verify();
  EXPECT_TRUE(v.ok) << (v.problems.empty() ? "" : v.problems[0]);
  EXPECT_EQ(v.entries, 5);
  auto l = log->list(10);
  ASSERT_EQ(l.size(), 5u);
  EXPECT_EQ(l[0].seq, 5);
  EXPECT_EQ(l[0].actor, "admin");
  EXPECT_EQ(l[0].details["subject"], "日本語 <b>5</b>");
  EXPECT_EQ(log->list(2, 3).size(), 2u);
  // A second AuditLog on the same database (another control plane) extends the same chain.
  AuditLog other(db(), kKey, dir / "audit.anchor");
  EXPECT_EQ(other.append("bob", "login", "", nullptr, 9000000).seq, 6);
  EXPECT_TRUE(log->verify().ok);
}

TEST_P(AuditTest, EditedEntryIsFound) {
  db().exec("UPDATE audit_log SET details = ? WHERE seq = 3", {std::string("{\"n\":33}")});
  VerifyResult v = log->verify();
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "entry 3: hash does not match")) << v.problems[0];
  // Changing the actor is found too, and recomputing a plain SHA-256 does not help without the key.
  db().exec("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 4");
  EXPECT_TRUE(mentions(log->verify(), "entry 4: hash does not match"));
}

TEST_P(AuditTest, RemovedEntryIsFound) {
  db().exec("DELETE FROM audit_log WHERE seq = 2");
  VerifyResult v = log->verify();
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "entries 2..2 are missing"));
}

TEST_P(AuditTest, TruncatedTailIsFoundAgainstTheAnchor) {
  db().exec("DELETE FROM audit_log WHERE seq >= 4");
  VerifyResult v = log->verify();
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "anchor names entry 5")) << (v.problems.empty() ? "" : v.problems[0]);
  // Without an anchor the shortened chain is consistent: that is why the anchor exists.
  AuditLog no_anchor(db(), kKey, "");
  EXPECT_TRUE(no_anchor.verify().ok);
}

TEST_P(AuditTest, WrongKeyOrMissingAnchor) {
  AuditLog wrong(db(), "another-key-of-enough-length", dir / "audit.anchor");
  EXPECT_FALSE(wrong.verify().ok);
  std::filesystem::remove(dir / "audit.anchor");
  VerifyResult v = log->verify();
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "missing or unreadable"));
  EXPECT_THROW(AuditLog(db(), "short", ""), db::StoreError);
}

SEKISHO_INSTANTIATE_BACKENDS(AuditTest);

}  // namespace
}  // namespace sekisho::control::audit
