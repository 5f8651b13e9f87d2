#include "core/audit/duci.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <set>
#include <vector>

#include "core/audit/synthetic.h"
#include "core/common/random.h"
#include "gtest/gtest.h"

namespace mia::audit {
namespace {

// Hand-worked: scores 0.9 .. 0.4 with members {0.9, 0.8, 0.6}. Thresholds:
// 0.9 -> TPR 1/3, FPR 0; 0.8 -> 2/3, 0; 0.7 -> 2/3, 1/3; 0.6 -> 1, 1/3 (a tie
// with 0.8 at 2/3: the higher stays); 0.5 -> 1, 2/3; 0.4 -> 1, 1.
TEST(DuciTest, ThresholdHandWorked) {
  const std::vector<double> s = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4};
  const std::vector<uint8_t> y = {1, 1, 0, 1, 0, 0};
  absl::StatusOr<DuciThreshold> t = ChooseDuciThreshold(s, y);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->threshold, 0.8);
  EXPECT_DOUBLE_EQ(t->tpr, 2.0 / 3);
  EXPECT_EQ(t->fpr, 0.0);
  EXPECT_EQ(t->members, 3);
  EXPECT_EQ(t->non_members, 3);
  // Target scores on X: 2 of 4 at or above 0.8 -> mean pred 0.5 ->
  // p_hat = (0.5 - 0) / (2/3) = 0.75.
  int64_t predicted = 0, scored = 0;
  EXPECT_DOUBLE_EQ(DuciEstimate({0.85, 0.8, 0.1, 0.2}, *t, &predicted, &scored), 0.75);
  EXPECT_EQ(predicted, 2);
  EXPECT_EQ(scored, 4);
  // All 4 above: (1 - 0) / (2/3) = 1.5, unclipped.
  EXPECT_DOUBLE_EQ(DuciEstimate({0.9, 0.9, 0.9, 0.9}, *t), 1.5);
}

TEST(DuciTest, EstimateHandWorkedWithFalsePositives) {
  DuciThreshold t;
  t.threshold = 0.5;
  t.tpr = 0.8;
  t.fpr = 0.2;
  // 1 of 4 predicted: (0.25 - 0.2) / 0.6 = 1/12; none: -0.2 / 0.6 = -1/3.
  EXPECT_DOUBLE_EQ(DuciEstimate({0.6, 0.1, 0.2, 0.3}, t), 0.05 / 0.6);
  EXPECT_DOUBLE_EQ(DuciEstimate({0.1, 0.1}, t), -0.2 / 0.6);
  // NaN scores are left out: 1 of 2 scored -> (0.5 - 0.2) / 0.6 = 0.5.
  int64_t scored = 0;
  EXPECT_DOUBLE_EQ(DuciEstimate({0.6, std::nan(""), 0.1}, t, nullptr, &scored), 0.5);
  EXPECT_EQ(scored, 2);
  EXPECT_TRUE(std::isnan(DuciEstimate({std::nan("")}, t)));
}

TEST(DuciTest, NoSignalGivesNaN) {
  // Members score lower: the best threshold (0.1) predicts everyone, TPR =
  // FPR = 1, and nothing can be estimated.
  absl::StatusOr<DuciThreshold> t = ChooseDuciThreshold({0.9, 0.1}, {0, 1});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->tpr, 1.0);
  EXPECT_EQ(t->fpr, 1.0);
  EXPECT_TRUE(std::isnan(DuciEstimate({0.5, 0.2}, *t)));
}

TEST(DuciTest, RefusesPairsWithoutBothClasses) {
  EXPECT_FALSE(ChooseDuciThreshold({0.1, 0.2}, {1, 1}).ok());
  EXPECT_FALSE(ChooseDuciThreshold({0.1, std::nan("")}, {0, 1}).ok());  // the member is NaN
  EXPECT_FALSE(ChooseDuciThreshold({0.1}, {0, 1}).ok());
}

// The plain definition: every distinct score as a threshold, rates counted
// afresh, TPR - FPR = tp/P - fp/N maximised (compared exactly, as the
// fractions tp N - fp P over P N), the highest threshold on a tie.
DuciThreshold Definitional(const std::vector<double>& s, const std::vector<uint8_t>& y) {
  std::set<double> distinct(s.begin(), s.end());
  DuciThreshold best;
  int64_t best_j = INT64_MIN;
  for (auto it = distinct.rbegin(); it != distinct.rend(); ++it) {
    int64_t tp = 0, fp = 0, p = 0, n = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      (y[i] ? p : n) += 1;
      if (s[i] >= *it) (y[i] ? tp : fp) += 1;
    }
    if (tp * n - fp * p > best_j) {
      best_j = tp * n - fp * p;
      best = {*it, static_cast<double>(tp) / p, static_cast<double>(fp) / n, p, n};
    }
  }
  return best;
}

TEST(DuciTest, MatchesDefinitionOnRandomPairsWithTies) {
  Rng rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const int n = 2 + static_cast<int>(rng.UniformInt(60));
    std::vector<double> s(n);
    std::vector<uint8_t> y(n);
    for (int i = 0; i < n; ++i) {
      y[i] = rng.UniformInt(2);
      // Few distinct values, shifted up for members: ties and signal.
      s[i] = std::round(4 * (rng.Normal() + 0.7 * y[i])) / 4;
    }
    y[0] = 1;
    y[1] = 0;
    absl::StatusOr<DuciThreshold> fast = ChooseDuciThreshold(s, y);
    ASSERT_TRUE(fast.ok());
    const DuciThreshold def = Definitional(s, y);
    EXPECT_EQ(fast->threshold, def.threshold) << "trial " << trial;
    EXPECT_DOUBLE_EQ(fast->tpr, def.tpr);
    EXPECT_DOUBLE_EQ(fast->fpr, def.fpr);
    // The estimator against its per-point definition.
    if (def.tpr > def.fpr) {
      double sum = 0;
      for (int i = 0; i < n; ++i) {
        sum += ((s[i] >= def.threshold ? 1.0 : 0.0) - def.fpr) / (def.tpr - def.fpr);
      }
      EXPECT_NEAR(DuciEstimate(s, *fast), sum / n, 1e-12);
    }
  }
}

// The synthetic game: R references in balanced halves of X, one target per
// fraction f trained on round(f |X|) points of X (a seeded random subset).
struct Game {
  Bundle bundle;
  std::vector<int> targets, references;
  std::vector<double> truth;
};

Game MakeGame(const std::vector<double>& fractions, int refs, int64_t points, double leak,
              uint64_t seed) {
  const int t_count = static_cast<int>(fractions.size());
  const int m = t_count + refs;
  std::vector<uint8_t> keep(static_cast<size_t>(m) * points, 0);
  Rng rng(seed);
  std::vector<int64_t> order(points);
  for (int t = 0; t < t_count; ++t) {
    for (int64_t i = 0; i < points; ++i) order[i] = i;
    for (int64_t i = points - 1; i > 0; --i) std::swap(order[i], order[rng.UniformInt(i + 1)]);
    const auto k = static_cast<int64_t>(std::llround(fractions[t] * points));
    for (int64_t j = 0; j < k; ++j) keep[static_cast<size_t>(t) * points + order[j]] = 1;
  }
  std::vector<int> ref_order(refs);
  for (int64_t i = 0; i < points; ++i) {
    for (int r = 0; r < refs; ++r) ref_order[r] = r;
    for (int r = refs - 1; r > 0; --r) std::swap(ref_order[r], ref_order[rng.UniformInt(r + 1)]);
    for (int r = 0; r < refs / 2; ++r) {
      keep[static_cast<size_t>(t_count + ref_order[r]) * points + i] = 1;
    }
  }
  SyntheticOptions o;
  o.models = m;
  o.points = points;
  o.population = 1000;
  o.leak = leak;
  o.targets = t_count;
  o.seed = seed;
  o.keep = keep;
  absl::StatusOr<io::NpyMap> arrays = MakeSyntheticBundle(o);
  EXPECT_TRUE(arrays.ok()) << arrays.status();
  absl::StatusOr<Bundle> bundle = BundleFromArrays(std::move(*arrays), "synthetic");
  EXPECT_TRUE(bundle.ok()) << bundle.status();
  Game g;
  g.bundle = std::move(*bundle);
  for (int t = 0; t < t_count; ++t) g.targets.push_back(t);
  for (int r = 0; r < refs; ++r) g.references.push_back(t_count + r);
  g.truth = fractions;
  return g;
}

TEST(DuciTest, SyntheticGameWithinATenthOfTheTruth) {
  const std::vector<double> fractions = {0, 0.25, 0.5, 0.75, 1};
  Game g = MakeGame(fractions, /*refs=*/8, /*points=*/2000, /*leak=*/3.0, /*seed=*/11);
  DuciOptions o;
  o.attacks = {"rmia-offline", "lira-offline", "loss", "rmia"};
  o.targets = g.targets;
  o.references = g.references;
  o.true_fractions = g.truth;
  o.seed = 5;
  o.threads = 2;
  absl::StatusOr<DuciResult> r = RunDuci(g.bundle, o);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->attacks.size(), 4u);
  EXPECT_EQ(r->candidate_points, 2000);
  for (const DuciAttackResult& a : r->attacks) {
    EXPECT_TRUE(a.signal) << a.attack;
    EXPECT_GT(a.tpr, a.fpr);
    // Pairs: every reference on every point of X (balanced: half members).
    EXPECT_EQ(a.reference_members + a.reference_non_members, 8 * 2000) << a.attack;
    EXPECT_EQ(a.reference_members, 4 * 2000) << a.attack;
    ASSERT_EQ(a.targets.size(), fractions.size());
    double sum = 0;
    for (size_t k = 0; k < fractions.size(); ++k) {
      const DuciTargetEstimate& e = a.targets[k];
      EXPECT_EQ(e.target, static_cast<int>(k));
      EXPECT_EQ(e.true_fraction, fractions[k]);
      EXPECT_EQ(e.points, 2000);
      EXPECT_EQ(e.excluded, 0);
      EXPECT_NEAR(e.estimate, fractions[k], 0.1) << a.attack << " fraction " << fractions[k];
      EXPECT_DOUBLE_EQ(e.error, std::fabs(e.estimate - fractions[k]));
      EXPECT_GE(e.estimate_clipped, 0.0);
      EXPECT_LE(e.estimate_clipped, 1.0);
      EXPECT_LE(e.error_clipped, e.error + 1e-15);
      sum += e.error;
    }
    EXPECT_NEAR(a.mean_error, sum / fractions.size(), 1e-12);
    std::cerr << a.attack << ": TPR " << a.tpr << " FPR " << a.fpr << " mean |error| "
              << a.mean_error << "\n";
  }
}

TEST(DuciTest, NoLeakageHasNoUsefulSignal) {
  // Models that leak nothing: the references' best TPR - FPR is small (noise)
  // and the estimates say nothing, which shows as a large spread or no signal.
  Game g = MakeGame({0, 1}, 8, 2000, /*leak=*/0.0, 3);
  DuciOptions o;
  o.attacks = {"lira-offline"};
  o.targets = g.targets;
  o.references = g.references;
  o.threads = 2;
  absl::StatusOr<DuciResult> r = RunDuci(g.bundle, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(r->attacks[0].tpr - r->attacks[0].fpr, 0.05);
  EXPECT_TRUE(std::isnan(r->attacks[0].mean_error));  // no truth given
  EXPECT_TRUE(std::isnan(r->attacks[0].targets[0].true_fraction));
}

TEST(DuciTest, RefusesBadModelLists) {
  Game g = MakeGame({0.5}, 4, 100, 1.0, 1);
  DuciOptions o;
  o.attacks = {"loss"};
  o.targets = {0};
  o.references = {0, 1, 2};  // the target as a reference
  EXPECT_FALSE(RunDuci(g.bundle, o).ok());
  o.references = {1};  // one reference has no others
  EXPECT_FALSE(RunDuci(g.bundle, o).ok());
  o.references = {1, 2, 9};
  EXPECT_FALSE(RunDuci(g.bundle, o).ok());
  o.references = {1, 2, 3, 4};
  o.true_fractions = {0.5, 0.5};
  EXPECT_FALSE(RunDuci(g.bundle, o).ok());
  o.true_fractions = {0.5};
  EXPECT_TRUE(RunDuci(g.bundle, o).ok());
}

}  // namespace
}  // namespace mia::audit
