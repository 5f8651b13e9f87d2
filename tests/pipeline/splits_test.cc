#include "core/pipeline/splits.h"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia::pipeline {
namespace {

TEST(SplitsTest, BalancedPutsEachPointInHalfTheModels) {
  for (int models : {2, 5, 8}) {
    auto keep = MakeKeepMatrix(models, 1000, SplitScheme::kBalanced, 7);
    ASSERT_TRUE(keep.ok());
    std::vector<int> per_model(models, 0);
    for (int64_t i = 0; i < 1000; ++i) {
      int in = 0;
      for (int m = 0; m < models; ++m) {
        in += (*keep)[m * 1000 + i];
        per_model[m] += (*keep)[m * 1000 + i];
      }
      ASSERT_EQ(in, models / 2) << "point " << i;
    }
    // Each model gets about its share: 1000 * floor(M/2) / M, within noise.
    for (int m = 0; m < models; ++m) {
      EXPECT_NEAR(per_model[m], 1000.0 * (models / 2) / models, 80) << models;
    }
  }
}

TEST(SplitsTest, PairedHalvesAreComplementary) {
  auto keep = MakeKeepMatrix(4, 101, SplitScheme::kPaired, 3);
  ASSERT_TRUE(keep.ok());
  for (int pair = 0; pair < 2; ++pair) {
    int a_count = 0;
    for (int64_t i = 0; i < 101; ++i) {
      const int a = (*keep)[(2 * pair) * 101 + i], b = (*keep)[(2 * pair + 1) * 101 + i];
      EXPECT_EQ(a + b, 1);
      a_count += a;
    }
    EXPECT_EQ(a_count, 50);  // floor(101 / 2)
  }
  EXPECT_FALSE(MakeKeepMatrix(3, 100, SplitScheme::kPaired, 3).ok());
}

TEST(SplitsTest, DeterministicBySeed) {
  auto a = MakeKeepMatrix(6, 500, SplitScheme::kBalanced, 11);
  auto b = MakeKeepMatrix(6, 500, SplitScheme::kBalanced, 11);
  auto c = MakeKeepMatrix(6, 500, SplitScheme::kBalanced, 12);
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
}

TEST(SplitsTest, BalancedAuditSetHalfMembers) {
  auto keep = MakeKeepMatrix(4, 400, SplitScheme::kBalanced, 5);
  auto audit = BalancedAuditSet(*keep, 400, 1, 101, 9);
  ASSERT_TRUE(audit.ok()) << audit.status();
  ASSERT_EQ(audit->size(), 101u);
  EXPECT_TRUE(std::is_sorted(audit->begin(), audit->end()));
  EXPECT_EQ(std::set<int64_t>(audit->begin(), audit->end()).size(), 101u);
  int members = 0;
  for (int64_t i : *audit) members += (*keep)[400 + i];
  EXPECT_EQ(members, 50);
  EXPECT_EQ(*audit, *BalancedAuditSet(*keep, 400, 1, 101, 9));
  auto too_big = BalancedAuditSet(*keep, 400, 1, 401, 9);
  EXPECT_THAT(too_big.status().message(), ::testing::HasSubstr("audit.data_size"));
}

// Disjoint splits: targets only on the audit half A, references only on the
// reference half R, each group balanced among itself, seeded; audit points
// drawn from A only.
TEST(SplitsTest, DisjointKeepsTargetsAndReferencesApart) {
  for (const auto& [targets, references] :
       std::vector<std::pair<int, int>>{{1, 1}, {1, 4}, {2, 3}, {3, 2}}) {
    const int models = targets + references;
    const int64_t pool = 1001;
    auto split = MakeDisjointSplit(targets, references, pool, 17);
    ASSERT_TRUE(split.ok()) << split.status();
    const std::vector<uint8_t>& keep = split->keep;
    ASSERT_EQ(keep.size(), static_cast<size_t>(models) * pool);
    const std::set<int64_t> a(split->audit_half.begin(), split->audit_half.end());
    EXPECT_EQ(a.size(), static_cast<size_t>(pool - pool / 2));
    EXPECT_TRUE(std::is_sorted(split->audit_half.begin(), split->audit_half.end()));
    std::vector<int> per_model(models, 0);
    int64_t larger_in_a = 0, larger_in_r = 0;
    for (int64_t i = 0; i < pool; ++i) {
      int in_targets = 0, in_references = 0;
      for (int m = 0; m < models; ++m) {
        const int k = keep[static_cast<size_t>(m) * pool + i];
        per_model[m] += k;
        (m < targets ? in_targets : in_references) += k;
      }
      if (a.count(i) > 0) {
        ASSERT_EQ(in_references, 0) << "a reference trains on audit-half point " << i;
        ASSERT_TRUE(in_targets == targets / 2 || in_targets == (targets + 1) / 2) << i;
        larger_in_a += in_targets == (targets + 1) / 2 && targets % 2 != 0;
      } else {
        ASSERT_EQ(in_targets, 0) << "a target trains on reference-half point " << i;
        ASSERT_TRUE(in_references == references / 2 || in_references == (references + 1) / 2);
        larger_in_r += in_references == (references + 1) / 2 && references % 2 != 0;
      }
    }
    // With an odd count, exactly half of the points (rounded down) take the
    // larger count: one target (or reference) trains on half of its half.
    const int64_t a_size = pool - pool / 2, r_size = pool / 2;
    if (targets % 2 != 0) {
      EXPECT_EQ(larger_in_a, a_size / 2);
    }
    if (references % 2 != 0) {
      EXPECT_EQ(larger_in_r, r_size / 2);
    }
    if (targets == 1) {
      EXPECT_EQ(per_model[0], a_size / 2);
    }
    if (references == 1) {
      EXPECT_EQ(per_model[targets], r_size / 2);
    }
    // Each model gets about its share of its half.
    for (int m = 0; m < models; ++m) {
      const int count = m < targets ? targets : references;
      const double half = m < targets ? a_size : r_size;
      EXPECT_NEAR(per_model[m], half * count / 2.0 / count, 60) << targets << "+" << references;
    }
  }
}

TEST(SplitsTest, DisjointIsSeededAndChecked) {
  auto a = MakeDisjointSplit(1, 2, 500, 11);
  auto b = MakeDisjointSplit(1, 2, 500, 11);
  auto c = MakeDisjointSplit(1, 2, 500, 12);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->keep, b->keep);
  EXPECT_EQ(a->audit_half, b->audit_half);
  EXPECT_NE(a->keep, c->keep);
  EXPECT_NE(a->audit_half, c->audit_half);
  EXPECT_FALSE(MakeDisjointSplit(1, 0, 500, 1).ok());
  EXPECT_FALSE(MakeDisjointSplit(0, 1, 500, 1).ok());
  EXPECT_FALSE(MakeDisjointSplit(1, 1, 3, 1).ok());
  EXPECT_FALSE(MakeKeepMatrix(2, 500, SplitScheme::kDisjoint, 1).ok());
  auto scheme = ParseSplitScheme("disjoint");
  ASSERT_TRUE(scheme.ok());
  EXPECT_EQ(SplitSchemeName(*scheme), "disjoint");
  EXPECT_FALSE(ParseSplitScheme("auto").ok());  // resolved by the config, never here
}

TEST(SplitsTest, DisjointAuditSetComesFromTheAuditHalf) {
  auto split = MakeDisjointSplit(1, 1, 400, 5);
  ASSERT_TRUE(split.ok());
  const std::set<int64_t> a(split->audit_half.begin(), split->audit_half.end());
  auto audit = BalancedAuditSetFrom(split->keep, 400, 0, split->audit_half, 100, 9);
  ASSERT_TRUE(audit.ok()) << audit.status();
  ASSERT_EQ(audit->size(), 100u);
  EXPECT_TRUE(std::is_sorted(audit->begin(), audit->end()));
  int members = 0;
  for (int64_t i : *audit) {
    EXPECT_EQ(a.count(i), 1u) << "audit point " << i << " outside the audit half";
    members += split->keep[i];
    EXPECT_EQ(split->keep[400 + i], 0);  // the reference is OUT for every audit point
  }
  EXPECT_EQ(members, 50);
  // The whole audit half is 200 points, 100 members: 201 cannot be drawn.
  auto too_big = BalancedAuditSetFrom(split->keep, 400, 0, split->audit_half, 202, 9);
  EXPECT_THAT(too_big.status().message(), ::testing::HasSubstr("disjoint"));
  // Over the whole pool, the candidates version is BalancedAuditSet.
  auto keep = MakeKeepMatrix(4, 400, SplitScheme::kBalanced, 5);
  std::vector<int64_t> all(400);
  for (int64_t i = 0; i < 400; ++i) all[i] = i;
  EXPECT_EQ(*BalancedAuditSetFrom(*keep, 400, 1, all, 101, 9),
            *BalancedAuditSet(*keep, 400, 1, 101, 9));
}

TEST(SplitsTest, TrainingPoints) {
  std::vector<uint8_t> keep = {1, 0, 1, 0, 1, 0};
  EXPECT_EQ(TrainingPoints(keep, 3, 0), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(TrainingPoints(keep, 3, 1), (std::vector<int64_t>{1}));
}

}  // namespace
}  // namespace mia::pipeline
