#include <algorithm>
#include <cmath>
#include <limits>

#include "client/compare_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia::client {
namespace {

using ::testing::ElementsAre;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

audit::AttackTargetResult Row(const std::string& attack, int target, double auc,
                              metrics::Interval ci, double tpr, bool resolved, double epsilon) {
  audit::AttackTargetResult r;
  r.attack = attack;
  r.target = target;
  r.auc = auc;
  r.auc_ci = ci;
  r.tpr_at_fpr = {{0.01, resolved, tpr}};
  r.tpr_ci = {resolved ? metrics::Interval{tpr - 0.01, tpr + 0.01} : metrics::Interval{kNaN, kNaN}};
  r.epsilon.epsilon = epsilon;
  return r;
}

audit::AuditResult Audit(std::vector<audit::AttackTargetResult> rows) {
  audit::AuditResult r;
  r.confidence = 0.95;
  r.fprs = {0.01};
  for (const auto& x : rows) {
    if (std::find(r.targets.begin(), r.targets.end(), x.target) == r.targets.end()) {
      r.targets.push_back(x.target);
    }
  }
  r.results = std::move(rows);
  return r;
}

// Worked by hand at 95% (z = 1.959964): A's AUC 0.60 [0.55, 0.65] has
// se 0.05 / z, B's 0.70 [0.62, 0.78] se 0.08 / z; B - A = 0.10 and its
// interval 0.10 +- sqrt(0.05^2 + 0.08^2) = 0.10 +- 0.0943398.
TEST(CompareTest, DifferenceAndItsIntervalByHand) {
  const audit::AuditResult a = Audit({Row("rmia", 0, 0.60, {0.55, 0.65}, 0.05, true, 0.5)});
  const audit::AuditResult b = Audit({Row("rmia", 0, 0.70, {0.62, 0.78}, 0.08, true, 1.5)});
  CompareOptions options;
  const Comparison c = CompareResults(a, b, options);
  ASSERT_EQ(c.attacks.size(), 1u);
  const ComparedAttack& rmia = c.attacks[0];
  ASSERT_EQ(rmia.figures.size(), 3u);  // auc, tpr@0.01, epsilon
  const ComparedFigure& auc = rmia.figures[0];
  EXPECT_EQ(auc.figure, "auc");
  EXPECT_DOUBLE_EQ(auc.diff, 0.10);
  EXPECT_NEAR(auc.diff_ci.low, 0.10 - 0.0943398, 1e-6);
  EXPECT_NEAR(auc.diff_ci.high, 0.10 + 0.0943398, 1e-6);
  EXPECT_TRUE(auc.worse);  // 0.10 > 0.02
  EXPECT_TRUE(c.worse);
  EXPECT_EQ(rmia.figures[1].figure, "tpr@0.01");
  EXPECT_FALSE(rmia.figures[1].threshold.has_value());  // not judged unless asked
  EXPECT_FALSE(rmia.figures[1].worse);
  EXPECT_EQ(rmia.figures[2].figure, "epsilon");
  EXPECT_DOUBLE_EQ(rmia.figures[2].diff, 1.0);
  EXPECT_TRUE(std::isnan(rmia.figures[2].diff_ci.low));  // one target: no interval

  // Judged on the lower end of the interval: 0.0057 is under 0.02.
  options.use = "lower_ci";
  EXPECT_FALSE(CompareResults(a, b, options).worse);
  options.auc_threshold = 0.005;
  EXPECT_TRUE(CompareResults(a, b, options).worse);
  // B better than A is never worse; A against itself neither.
  EXPECT_FALSE(CompareResults(b, a, CompareOptions()).worse);
  EXPECT_FALSE(CompareResults(a, a, CompareOptions()).worse);
  EXPECT_DOUBLE_EQ(CompareResults(a, a, CompareOptions()).attacks[0].figures[0].diff, 0);
  // A threshold equal to the difference is not exceeded.
  options = CompareOptions();
  options.epsilon_threshold = 1.0;
  options.auc_threshold = 0.2;
  EXPECT_FALSE(CompareResults(a, b, options).worse);
  options.epsilon_threshold = 0.99;
  EXPECT_TRUE(CompareResults(a, b, options).worse);
}

TEST(CompareTest, MeanOverTargetsAndUnmatchedAttacks) {
  // A: two targets, AUC 0.6 and 0.7: mean 0.65, sd 0.0707107, half-width
  // z sd / sqrt(2) = 0.0979982. B has a single target and an extra attack.
  const audit::AuditResult a = Audit({Row("rmia", 0, 0.6, {0.5, 0.7}, 0.02, false, 0.1),
                                      Row("rmia", 1, 0.7, {0.6, 0.8}, 0.03, true, 0.3),
                                      Row("loss", 0, 0.55, {0.5, 0.6}, 0.01, true, 0)});
  const audit::AuditResult b = Audit({Row("rmia", 0, 0.66, {0.6, 0.72}, 0.2, false, 0.2),
                                      Row("lira", 0, 0.9, {0.85, 0.95}, 0.5, true, 3)});
  CompareOptions options;
  options.tpr_threshold = 0.0;
  const Comparison c = CompareResults(a, b, options);
  ASSERT_EQ(c.attacks.size(), 1u);
  EXPECT_EQ(c.attacks[0].targets_a, 2);
  EXPECT_EQ(c.attacks[0].targets_b, 1);
  const ComparedFigure& auc = c.attacks[0].figures[0];
  EXPECT_DOUBLE_EQ(auc.a, 0.65);
  EXPECT_NEAR(auc.a_ci.low, 0.65 - 0.0979982, 1e-6);
  EXPECT_NEAR(auc.a_ci.high, 0.65 + 0.0979982, 1e-6);
  EXPECT_NEAR(auc.diff, 0.01, 1e-12);
  EXPECT_FALSE(auc.worse);
  // TPR: A's mean over the target where it was resolved (0.03); B's is
  // unresolved: no difference, not judged worse.
  const ComparedFigure& tpr = c.attacks[0].figures[1];
  EXPECT_DOUBLE_EQ(tpr.a, 0.03);
  EXPECT_TRUE(std::isnan(tpr.b));
  EXPECT_TRUE(std::isnan(tpr.diff));
  EXPECT_FALSE(tpr.worse);
  EXPECT_FALSE(c.worse);
  EXPECT_THAT(c.only_in_a, ElementsAre("loss"));
  EXPECT_THAT(c.only_in_b, ElementsAre("lira"));
}

}  // namespace
}  // namespace mia::client
