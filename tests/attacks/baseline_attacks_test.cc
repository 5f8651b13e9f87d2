#include "core/attacks/baseline_attacks.h"

#include <algorithm>
#include <cmath>
#include <set>

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

// ATTACKS.md, "Corrections": every scorable point gets the same number of OUT
// (and, online, IN) references: the smallest count over the scorable points,
// a seeded subset of its own references.
TEST(ReferenceSelectionTest, EqualCountsSeededSubsets) {
  auto g = testing::MakeRandomGame(9, 300, 10, 1, 0.0, 4);
  AttackInput input{&g.audit, &g.population, g.keep, 0, {1, 2, 3, 4, 5, 6, 7, 8}};
  input.seed = 17;
  for (bool online : {false, true}) {
    const ReferenceSelection sel = ReferenceSelection::Choose(input, online);
    std::vector<int> in_refs, out_refs;
    int min_out = 100, min_in = 100;
    for (int64_t i = 0; i < 300; ++i) {
      SplitReferences(input, i, &in_refs, &out_refs);
      ASSERT_TRUE(sel.scorable(i));  // 4 of 9 models train on each point
      min_out = std::min<int>(min_out, out_refs.size());
      min_in = std::min<int>(min_in, in_refs.size());
      std::set<int> chosen_out(sel.out(i).begin(), sel.out(i).end());
      EXPECT_EQ(chosen_out.size(), sel.out(i).size());
      for (int r : sel.out(i)) EXPECT_FALSE(g.keep[r * 300 + i]) << "OUT ref " << r;
      for (int r : sel.in(i)) EXPECT_TRUE(g.keep[r * 300 + i]) << "IN ref " << r;
    }
    EXPECT_EQ(sel.out_count(), min_out);
    EXPECT_EQ(sel.in_count(), online ? min_in : 0);
    // Deterministic in the seed, and the seed matters.
    const ReferenceSelection again = ReferenceSelection::Choose(input, online);
    AttackInput other = input;
    other.seed = 18;
    const ReferenceSelection reseeded = ReferenceSelection::Choose(other, online);
    int differ = 0;
    for (int64_t i = 0; i < 300; ++i) {
      EXPECT_TRUE(std::equal(sel.out(i).begin(), sel.out(i).end(), again.out(i).begin()));
      differ += !std::equal(sel.out(i).begin(), sel.out(i).end(), reseeded.out(i).begin());
    }
    EXPECT_GT(differ, 0);
  }
}

TEST(ReferenceSelectionTest, SeededPrefixIsAShuffledSubset) {
  const std::vector<int> refs = {3, 5, 7, 9};
  std::vector<int> chosen;
  SeededPrefix(refs, 2, 1, 0, &chosen);
  ASSERT_EQ(chosen.size(), 2u);
  for (int r : chosen) EXPECT_NE(std::find(refs.begin(), refs.end(), r), refs.end());
  SeededPrefix(refs, 10, 1, 0, &chosen);
  EXPECT_EQ(std::set<int>(chosen.begin(), chosen.end()), std::set<int>(refs.begin(), refs.end()));
  // Over many streams every reference is taken about equally often.
  std::vector<int> taken(10, 0);
  for (uint64_t stream = 0; stream < 4000; ++stream) {
    SeededPrefix(refs, 1, 9, stream, &chosen);
    ++taken[chosen[0]];
  }
  for (int r : refs) EXPECT_NEAR(taken[r], 1000, 150) << r;
}

// Attack-R on a model that leaks nothing: before equal counts a member had one
// more OUT reference than a non-member, and the score's possible values
// (multiples of 1 / (2 count)) alone separated them.
TEST(ReferenceAttackTest, NoLeakageGivesChance) {
  auto g = testing::MakeRandomGame(8, 4000, 10, 1, 0.0, 12);
  auto out = ReferenceAttack({&g.audit, nullptr, g.keep, 0, {1, 2, 3, 4, 5, 6, 7}});
  ASSERT_TRUE(out.ok());
  EXPECT_NEAR(testing::AucAgainst(out->scores, g.keep, 0), 0.5, 0.03);
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
