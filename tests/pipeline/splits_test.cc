#include "core/pipeline/splits.h"

#include <set>

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

TEST(SplitsTest, TrainingPoints) {
  std::vector<uint8_t> keep = {1, 0, 1, 0, 1, 0};
  EXPECT_EQ(TrainingPoints(keep, 3, 0), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(TrainingPoints(keep, 3, 1), (std::vector<int64_t>{1}));
}

}  // namespace
}  // namespace mia::pipeline
