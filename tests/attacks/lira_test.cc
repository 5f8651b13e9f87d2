#include "core/attacks/lira.h"

#include <cmath>

#include "core/attacks/signals.h"
#include "core/metrics/roc.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/attacks/test_util.h"

namespace mia::attacks {
namespace {

using testing::Keep;
using testing::Tensor;

// Target 0 and references 1..4 on three points (phi values):
//   point 0: target 4 (member); IN refs 1, 2: {4, 6} (mean 5, sd 1);
//            OUT refs 3, 4: {1, 3} (mean 2, sd 1).
//   point 1: target 0; OUT refs 1, 2: {0, 2} (mean 1, sd 1);
//            IN refs 3, 4: {2, 6} (mean 4, sd 2).
//   point 2: target 1; every reference OUT: {0, 0, 0, 0}; no IN reference.
struct HandCase {
  SignalSet audit;
  std::vector<uint8_t> keep;
  HandCase() {
    audit.logit_scaled = Tensor({{4, 0, 1}, {4, 0, 0}, {6, 2, 0}, {1, 2, 0}, {3, 6, 0}});
    keep = Keep({{1, 0, 0}, {1, 0, 0}, {1, 0, 0}, {0, 1, 0}, {0, 1, 0}});
  }
  AttackInput input() const { return {&audit, nullptr, keep, 0, {1, 2, 3, 4}}; }
};

TEST(LiraTest, OnlinePerExampleHandWorked) {
  HandCase c;
  LiraOptions o{true, LiraOptions::Variance::kPerExample, LiraOptions::Center::kMean};
  auto out = LiraAttack(c.input(), o);
  ASSERT_TRUE(out.ok()) << out.status();
  // point 0: -(4-5)^2/2 + (4-2)^2/2 = -0.5 + 2 = 1.5 (both sd 1).
  EXPECT_NEAR(out->scores[0], 1.5, 1e-12);
  // point 1: [-(0-4)^2/(2*4) - log 2] - [-(0-1)^2/2] = -2 - 0.693147 + 0.5.
  EXPECT_NEAR(out->scores[1], -2.0 - std::log(2.0) + 0.5, 1e-12);
  // point 2: no IN reference: excluded from the online attack.
  EXPECT_TRUE(std::isnan(out->scores[2]));
  EXPECT_EQ(out->excluded, 1);
  EXPECT_EQ(out->chosen.at("fixed_variance"), 0);
}

TEST(LiraTest, OnlineFixedVarianceHandWorked) {
  // Pooled over the scorable points 0 and 1: IN residuals {-1, 1, -2, 2}:
  // s_in = sqrt(10 / 4) = sqrt(2.5); OUT residuals {-1, 1, -1, 1}: s_out = 1.
  HandCase c;
  LiraOptions o{true, LiraOptions::Variance::kFixed, LiraOptions::Center::kMean};
  auto out = LiraAttack(c.input(), o);
  ASSERT_TRUE(out.ok());
  const double log_s_in = 0.5 * std::log(2.5);
  // point 0: [-(1)/(2 * 2.5) - log s_in] - [-(4)/2] = -0.2 - log s_in + 2.
  EXPECT_NEAR(out->scores[0], -0.2 - log_s_in + 2.0, 1e-12);
  // point 1: [-(16)/(2 * 2.5) - log s_in] - [-(1)/2] = -3.2 - log s_in + 0.5.
  EXPECT_NEAR(out->scores[1], -3.2 - log_s_in + 0.5, 1e-12);
  EXPECT_EQ(out->chosen.at("fixed_variance"), 1);
}

TEST(LiraTest, OfflineHandWorked) {
  HandCase c;
  LiraOptions per{false, LiraOptions::Variance::kPerExample, LiraOptions::Center::kMean};
  auto out = LiraAttack(c.input(), per);
  ASSERT_TRUE(out.ok());
  EXPECT_NEAR(out->scores[0], (4.0 - 2.0) / 1.0, 1e-12);
  EXPECT_NEAR(out->scores[1], (0.0 - 1.0) / 1.0, 1e-12);
  EXPECT_EQ(out->excluded, 0);  // offline needs no IN reference
  // Fixed: equal counts give point 2 two of its four OUT references (all 0),
  // like points 0 and 1: OUT residuals {-1, 1, -1, 1, 0, 0}: s_out =
  // sqrt(4 / 6); point 2: (1 - 0) / sqrt(2 / 3).
  LiraOptions fixed{false, LiraOptions::Variance::kFixed, LiraOptions::Center::kMean};
  out = LiraAttack(c.input(), fixed);
  ASSERT_TRUE(out.ok());
  const double s_out = std::sqrt(4.0 / 6.0);
  EXPECT_NEAR(out->scores[0], 2.0 / s_out, 1e-12);
  EXPECT_NEAR(out->scores[1], -1.0 / s_out, 1e-12);
  EXPECT_NEAR(out->scores[2], 1.0 / s_out, 1e-12);
}

TEST(LiraTest, OneReferencePerPointIsRefused) {
  // Target 0, references 1..3: point 0 has one OUT reference, point 1 two, so
  // with equal counts every point gets one, and no deviation can be estimated
  // (every residual about a one-value mean is 0): refused, for both variances
  // and online too, instead of z-scores divided by the 1e-30 floor.
  SignalSet audit;
  audit.logit_scaled = Tensor({{4, 0}, {4, 0}, {6, 2}, {1, 2}});
  std::vector<uint8_t> keep = Keep({{1, 0}, {1, 0}, {1, 0}, {0, 1}});
  for (bool online : {false, true}) {
    for (auto variance : {LiraOptions::Variance::kPerExample, LiraOptions::Variance::kFixed}) {
      LiraOptions o{online, variance, LiraOptions::Center::kMean};
      auto out = LiraAttack({&audit, nullptr, keep, 0, {1, 2, 3}}, o);
      ASSERT_FALSE(out.ok());
      EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_THAT(std::string(out.status().message()), ::testing::HasSubstr("only 1"));
    }
  }
}

TEST(LiraTest, MedianCenter) {
  // Three OUT references {1, 3, 10}: median 3, standard deviation about the
  // mean 14/3: sqrt(((1-14/3)^2 + (3-14/3)^2 + (10-14/3)^2) / 3).
  SignalSet audit;
  audit.logit_scaled = Tensor({{5}, {1}, {3}, {10}});
  std::vector<uint8_t> keep = Keep({{1}, {0}, {0}, {0}});
  LiraOptions o{false, LiraOptions::Variance::kPerExample, LiraOptions::Center::kMedian};
  auto out = LiraAttack({&audit, nullptr, keep, 0, {1, 2, 3}}, o);
  ASSERT_TRUE(out.ok());
  const double m = 14.0 / 3;
  const double sd = std::sqrt(((1 - m) * (1 - m) + (3 - m) * (3 - m) + (10 - m) * (10 - m)) / 3);
  EXPECT_NEAR(out->scores[0], (5.0 - 3.0) / sd, 1e-12);
}

TEST(LiraTest, AutoVarianceSwitchesAtThirtyTwoPerSide) {
  auto game = testing::MakeRandomGame(/*models=*/66, 200, 10, 1, 1.0, 7);
  SignalSet audit;
  audit.logit_scaled = ConvertSignal(game.audit.prob, SignalKind::kProb, SignalKind::kLogitScaled);
  std::vector<int> refs;
  for (int m = 1; m < 66; ++m) refs.push_back(m);
  // 65 references, each point IN for 33 models: 32 or 33 IN references, 32 or 33 OUT.
  auto many = LiraAttack({&audit, nullptr, game.keep, 0, refs}, LiraOptions{});
  ASSERT_TRUE(many.ok());
  EXPECT_EQ(many->chosen.at("fixed_variance"), 0);
  refs.resize(20);
  auto few = LiraAttack({&audit, nullptr, game.keep, 0, refs}, LiraOptions{});
  ASSERT_TRUE(few.ok());
  EXPECT_EQ(few->chosen.at("fixed_variance"), 1);
}

TEST(LiraTest, IdenticalQueriesEqualOneQuery) {
  auto game = testing::MakeRandomGame(8, 100, 10, 1, 1.0, 3);
  SignalSet one, two;
  one.logit_scaled = ConvertSignal(game.audit.prob, SignalKind::kProb, SignalKind::kLogitScaled);
  two.logit_scaled = one.logit_scaled;
  two.logit_scaled.queries = 2;
  two.logit_scaled.values.clear();
  for (double v : one.logit_scaled.values) {
    two.logit_scaled.values.push_back(v);
    two.logit_scaled.values.push_back(v);
  }
  std::vector<int> refs = {1, 2, 3, 4, 5, 6, 7};
  for (bool online : {true, false}) {
    LiraOptions o;
    o.online = online;
    auto a = LiraAttack({&one, nullptr, game.keep, 0, refs}, o);
    auto b = LiraAttack({&two, nullptr, game.keep, 0, refs}, o);
    ASSERT_TRUE(a.ok() && b.ok());
    for (size_t i = 0; i < a->scores.size(); ++i) {
      if (std::isnan(a->scores[i])) {
        EXPECT_TRUE(std::isnan(b->scores[i]));
      } else {
        EXPECT_NEAR(a->scores[i], b->scores[i], 1e-9);
      }
    }
  }
}

TEST(LiraTest, DetectsLeakageAndNotItsAbsence) {
  for (double leak : {2.0, 0.0}) {
    auto game = testing::MakeRandomGame(16, 2000, 10, 1, leak, 11);
    SignalSet audit;
    audit.logit_scaled =
        ConvertSignal(game.audit.prob, SignalKind::kProb, SignalKind::kLogitScaled);
    std::vector<int> refs;
    for (int m = 1; m < 16; ++m) refs.push_back(m);
    auto out = LiraAttack({&audit, nullptr, game.keep, 0, refs}, LiraOptions{});
    ASSERT_TRUE(out.ok());
    const double auc = testing::AucAgainst(out->scores, game.keep, 0);
    if (leak > 0) {
      EXPECT_GT(auc, 0.8);
    } else {
      EXPECT_NEAR(auc, 0.5, 0.05);
    }
  }
}

}  // namespace
}  // namespace mia::attacks
