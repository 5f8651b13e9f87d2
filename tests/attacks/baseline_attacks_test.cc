#include "core/attacks/baseline_attacks.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/attacks/test_util.h"

namespace mia::attacks {
namespace {

using testing::Keep;
using testing::Tensor;

TEST(LossAttackTest, ScoreIsNegatedTargetLoss) {
  SignalSet audit;
  audit.loss = Tensor({{0.1, 2.0, 0.5}, {9, 9, 9}});
  std::vector<uint8_t> keep = Keep({{1, 0, 1}, {0, 1, 0}});
  AttackInput in{&audit, nullptr, keep, 0, {}};
  auto out = LossAttack(in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->scores, ::testing::ElementsAre(-0.1, -2.0, -0.5));
  EXPECT_EQ(out->excluded, 0);
  in.target = 1;
  EXPECT_THAT(LossAttack(in)->scores, ::testing::ElementsAre(-9, -9, -9));
}

TEST(PopulationAttackTest, HandWorkedRanks) {
  // Population p_t = {0.2, 0.5, 0.9}: #{z : p_t(z) <= p} / 3 for p = 0.5, 0.1,
  // 0.95, 0.9 is 2/3 (0.5 itself counts), 0, 1, 1.
  SignalSet audit, pop;
  audit.prob = Tensor({{0.5, 0.1, 0.95, 0.9}});
  pop.prob = Tensor({{0.2, 0.5, 0.9}});
  std::vector<uint8_t> keep = Keep({{1, 0, 1, 0}});
  auto out = PopulationAttack({&audit, &pop, keep, 0, {}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->scores, ::testing::ElementsAre(2.0 / 3, 0.0, 1.0, 1.0));
}

TEST(PopulationAttackTest, NeedsPopulation) {
  SignalSet audit;
  audit.prob = Tensor({{0.5}});
  std::vector<uint8_t> keep = {1};
  auto out = PopulationAttack({&audit, nullptr, keep, 0, {}});
  EXPECT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), ::testing::HasSubstr("population"));
}

TEST(ReferenceAttackTest, HandWorkedFractionWithTies) {
  // Point 0: target p = 0.6; OUT references 2 (p = 0.6, a tie: 1/2) and 3
  // (p = 0.3 < 0.6: 1); reference 1 is IN and ignored: (0.5 + 1) / 2 = 0.75.
  // Point 1: every reference trained on it: no OUT reference, excluded.
  // Point 2: OUT references 1 (0.9) and 3 (0.1): (0 + 1) / 2 = 0.5.
  SignalSet audit;
  audit.prob = Tensor({{0.6, 0.5, 0.4}, {0.1, 0.5, 0.9}, {0.6, 0.5, 0.2}, {0.3, 0.5, 0.1}});
  std::vector<uint8_t> keep = Keep({{1, 0, 0}, {1, 1, 0}, {0, 1, 1}, {0, 1, 0}});
  auto out = ReferenceAttack({&audit, nullptr, keep, 0, {1, 2, 3}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_DOUBLE_EQ(out->scores[0], 0.75);
  EXPECT_TRUE(std::isnan(out->scores[1]));
  EXPECT_DOUBLE_EQ(out->scores[2], 0.5);
  EXPECT_EQ(out->excluded, 1);
}

TEST(ReferenceAttackTest, QueriesAreAveraged) {
  // Two queries: per-query scores 1 and 0 average to 0.5.
  SignalSet audit;
  audit.prob.models = 2;
  audit.prob.points = 1;
  audit.prob.queries = 2;
  audit.prob.values = {0.5, 0.5, /*ref*/ 0.4, 0.6};
  std::vector<uint8_t> keep = {1, 0};
  auto out = ReferenceAttack({&audit, nullptr, keep, 0, {1}});
  ASSERT_TRUE(out.ok());
  EXPECT_DOUBLE_EQ(out->scores[0], 0.5);
}

TEST(ValidateInputTest, RejectsBadShapesAndModels) {
  SignalSet audit;
  audit.prob = Tensor({{0.5, 0.5}, {0.5, 0.5}});
  std::vector<uint8_t> short_keep = {1, 0, 1};
  EXPECT_FALSE(ReferenceAttack({&audit, nullptr, short_keep, 0, {1}}).ok());
  std::vector<uint8_t> keep = {1, 0, 0, 1};
  EXPECT_FALSE(ReferenceAttack({&audit, nullptr, keep, 2, {1}}).ok());
  EXPECT_FALSE(ReferenceAttack({&audit, nullptr, keep, 0, {0}}).ok());
  EXPECT_FALSE(ReferenceAttack({&audit, nullptr, keep, 0, {}}).ok());
  EXPECT_FALSE(LossAttack({&audit, nullptr, keep, 0, {}}).ok());  // no loss signal
}

}  // namespace
}  // namespace mia::attacks
