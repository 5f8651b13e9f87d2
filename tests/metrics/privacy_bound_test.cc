#include "core/metrics/privacy_bound.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "core/common/random.h"
#include "gtest/gtest.h"

namespace mia::metrics {
namespace {

// P(Binomial(n, p) >= a) by direct summation (small n only): equals I_p(a, n - a + 1).
double BinomialUpperSum(int a, int n, double p) {
  double total = 0;
  double coeff = 1;  // C(n, j), built up incrementally
  for (int j = 0; j <= n; ++j) {
    if (j > 0) coeff = coeff * (n - j + 1) / j;
    if (j >= a) total += coeff * std::pow(p, j) * std::pow(1 - p, n - j);
  }
  return total;
}

TEST(IncompleteBetaTest, ClosedForms) {
  for (double x : {0.0, 1e-9, 0.01, 0.2, 0.5, 0.77, 0.999, 1.0}) {
    EXPECT_NEAR(RegularizedIncompleteBeta(1, 1, x), x, 1e-13) << x;
    for (double a : {0.5, 2.0, 3.7, 40.0}) {
      EXPECT_NEAR(RegularizedIncompleteBeta(a, 1, x), std::pow(x, a), 1e-12) << a << " " << x;
      EXPECT_NEAR(RegularizedIncompleteBeta(1, a, x), 1 - std::pow(1 - x, a), 1e-12)
          << a << " " << x;
    }
  }
}

TEST(IncompleteBetaTest, SymmetryAndBinomialSums) {
  for (double a : {0.3, 1.5, 7.0, 120.0}) {
    for (double b : {0.7, 2.5, 9.0, 300.0}) {
      for (double x : {0.001, 0.1, 0.35, 0.6, 0.95}) {
        EXPECT_NEAR(RegularizedIncompleteBeta(a, b, x), 1 - RegularizedIncompleteBeta(b, a, 1 - x),
                    1e-12)
            << a << " " << b << " " << x;
      }
    }
  }
  // Integer parameters: I_x(a, b) = P(Bin(a + b - 1, x) >= a).
  for (int a = 1; a <= 12; a += 3) {
    for (int b = 1; b <= 15; b += 2) {
      for (double x : {0.05, 0.3, 0.5, 0.8}) {
        EXPECT_NEAR(RegularizedIncompleteBeta(a, b, x), BinomialUpperSum(a, a + b - 1, x), 1e-12)
            << a << " " << b << " " << x;
      }
    }
  }
  // Large equal parameters: the median is 1/2 by symmetry.
  EXPECT_NEAR(RegularizedIncompleteBeta(5000, 5000, 0.5), 0.5, 1e-9);
  EXPECT_NEAR(RegularizedIncompleteBeta(25000.5, 25000.5, 0.5), 0.5, 1e-9);
  EXPECT_TRUE(std::isnan(RegularizedIncompleteBeta(0, 1, 0.5)));
  EXPECT_TRUE(std::isnan(RegularizedIncompleteBeta(1, -2, 0.5)));
}

TEST(ClopperPearsonTest, KnownValues) {
  for (int n : {1, 10, 1000, 100000}) {
    for (double alpha : {0.025, 0.05, 1e-6}) {
      EXPECT_NEAR(ClopperPearsonUpper(0, n, alpha), 1 - std::pow(alpha, 1.0 / n), 1e-12);
      EXPECT_EQ(ClopperPearsonUpper(n, n, alpha), 1.0);
    }
  }
  // The two-sided 95% interval for 5 of 10 is [0.1871, 0.8129].
  EXPECT_NEAR(ClopperPearsonUpper(5, 10, 0.025), 0.81290, 1e-4);
}

TEST(ClopperPearsonTest, SolvesTheBinomialTailEquation) {
  // At the upper bound p, P(Bin(n, p) <= k) = alpha.
  for (int n : {2, 7, 30, 100}) {
    for (int k = 1; k < n; k += (n > 10 ? 7 : 1)) {
      for (double alpha : {0.025, 0.1, 1e-4}) {
        const double p = ClopperPearsonUpper(k, n, alpha);
        EXPECT_GT(p, static_cast<double>(k) / n);
        EXPECT_NEAR(1 - BinomialUpperSum(k + 1, n, p), alpha, 1e-10 * std::max(1.0, alpha * 1e4))
            << k << "/" << n;
      }
    }
  }
}

TEST(ClopperPearsonTest, MonotoneInK) {
  for (int n : {10, 1000, 50000}) {
    double previous = 0;
    const int step = std::max(1, n / 200);
    for (int k = 0; k <= n; k += step) {
      const double p = ClopperPearsonUpper(k, n, 0.025);
      EXPECT_GT(p, previous) << k << "/" << n;
      EXPECT_LE(p, 1.0);
      previous = p;
    }
  }
}

TEST(EpsilonTest, HandComputedAtThreshold) {
  // 10 members at 1, 10 non-members at 0, threshold 0.5: no errors at all.
  // FPR+ = FNR+ = 1 - 0.025^(1/10) = 0.308497..., and with delta = 0
  // eps = log((1 - 0.308497) / 0.308497) = log(2.24152) = 0.807155.
  // The exact rates (0 and 0) would give an infinite bound: the CP correction
  // is what makes it finite and conservative.
  std::vector<double> scores;
  std::vector<uint8_t> members;
  for (int i = 0; i < 10; ++i) {
    scores.push_back(1);
    members.push_back(1);
    scores.push_back(0);
    members.push_back(0);
  }
  double fpr_up = 0, fnr_up = 0;
  const double eps = EpsilonAtThreshold(scores, members, 0.5, 0.0, 0.05, &fpr_up, &fnr_up);
  EXPECT_NEAR(fpr_up, 0.308497, 1e-6);
  EXPECT_NEAR(fnr_up, 0.308497, 1e-6);
  EXPECT_NEAR(eps, 0.807155, 1e-6);
}

TEST(EpsilonTest, BelowTheExactRateValue) {
  // 100 members, 100 non-members; at threshold 0.5 there is 1 false positive
  // and 2 false negatives. Exact rates FPR = 0.01, FNR = 0.02 would give
  // max(log(0.99 / 0.02), log(0.98 / 0.01)) = log(98) = 4.585; the bound uses
  // FPR+ = CP(1, 100) and FNR+ = CP(2, 100) at level 0.025 each, so it is
  // positive but smaller.
  std::vector<double> scores;
  std::vector<uint8_t> members;
  for (int i = 0; i < 100; ++i) {
    scores.push_back(i < 2 ? 0.0 : 1.0);
    members.push_back(1);
    scores.push_back(i < 1 ? 1.0 : 0.0);
    members.push_back(0);
  }
  double fpr_up = 0, fnr_up = 0;
  const double eps = EpsilonAtThreshold(scores, members, 0.5, 0.0, 0.05, &fpr_up, &fnr_up);
  EXPECT_DOUBLE_EQ(fpr_up, ClopperPearsonUpper(1, 100, 0.025));
  EXPECT_DOUBLE_EQ(fnr_up, ClopperPearsonUpper(2, 100, 0.025));
  EXPECT_DOUBLE_EQ(eps, std::max(std::log((1 - fpr_up) / fnr_up), std::log((1 - fnr_up) / fpr_up)));
  EXPECT_GT(eps, 1.0);
  EXPECT_LT(eps, std::log(98.0));
}

TEST(EpsilonTest, PerfectSeparationGivesClearBound) {
  // 2000 members all at 1, 2000 non-members in [-2, -1); each split holds 1000
  // of each class. The chosen threshold is a selection score, here 1 (members
  // are tied so that evaluation members cannot fall below it), which makes no
  // error on evaluation: FPR+ = FNR+ = 1 - 0.025^(1/1000) = 0.0036821, so
  // eps = log((1 - 1e-5 - 0.0036821) / 0.0036821) = 5.6006.
  Rng rng(3);
  std::vector<double> scores;
  std::vector<uint8_t> members;
  for (int i = 0; i < 4000; ++i) {
    const uint8_t m = static_cast<uint8_t>(i % 2);
    members.push_back(m);
    scores.push_back(m ? 1.0 : -2.0 + rng.Uniform01());
  }
  EpsilonOptions options;
  auto bound = EpsilonLowerBound(scores, members, options);
  ASSERT_TRUE(bound.ok()) << bound.status();
  EXPECT_EQ(bound->selection_points, 2000);
  EXPECT_EQ(bound->evaluation_points, 2000);
  EXPECT_NEAR(bound->fpr_upper, 0.0036821, 1e-6);
  EXPECT_NEAR(bound->fnr_upper, 0.0036821, 1e-6);
  EXPECT_NEAR(bound->epsilon, 5.6006, 1e-3);
  EXPECT_EQ(bound->threshold, 1.0);

  // Continuous member scores: the threshold sits at the lowest selection
  // member, so a few evaluation members may fall below it; still a clear bound,
  // and never above the error-free value.
  for (size_t i = 0; i < scores.size(); ++i) {
    if (members[i]) scores[i] = 1.0 + rng.Uniform01();
  }
  auto loose = EpsilonLowerBound(scores, members, options);
  ASSERT_TRUE(loose.ok());
  EXPECT_GT(loose->epsilon, 4.0);
  EXPECT_LE(loose->epsilon, bound->epsilon + 1e-12);
}

TEST(EpsilonTest, NoLeakageGivesNearZero) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    Rng rng(seed);
    std::vector<double> scores;
    std::vector<uint8_t> members;
    for (int i = 0; i < 2000; ++i) {
      members.push_back(static_cast<uint8_t>(rng.UniformInt(2)));
      scores.push_back(rng.Normal());
    }
    EpsilonOptions options;
    options.seed = seed;
    auto bound = EpsilonLowerBound(scores, members, options);
    ASSERT_TRUE(bound.ok());
    EXPECT_GE(bound->epsilon, 0);
    EXPECT_LT(bound->epsilon, 0.5);
  }
}

TEST(EpsilonTest, SeedReproducible) {
  Rng rng(8);
  std::vector<double> scores;
  std::vector<uint8_t> members;
  for (int i = 0; i < 1500; ++i) {
    const uint8_t m = rng.Uniform01() < 0.3 ? 1 : 0;
    members.push_back(m);
    scores.push_back(rng.Normal() + (m ? 1.5 : 0.0));
  }
  EpsilonOptions options;
  options.seed = 12;
  options.selection_fraction = 0.4;
  auto a = EpsilonLowerBound(scores, members, options);
  auto b = EpsilonLowerBound(scores, members, options);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->epsilon, b->epsilon);
  EXPECT_EQ(a->threshold, b->threshold);
  EXPECT_EQ(a->fpr_upper, b->fpr_upper);
  EXPECT_EQ(a->selection_points, b->selection_points);
  EXPECT_GT(a->epsilon, 0);
  // Stratified: 40% of each class, rounded, goes to selection.
  int64_t positives = 0;
  for (uint8_t m : members) positives += m;
  const int64_t expected = std::llround(0.4 * static_cast<double>(positives)) +
                           std::llround(0.4 * static_cast<double>(1500 - positives));
  EXPECT_EQ(a->selection_points, expected);
  EXPECT_EQ(a->selection_points + a->evaluation_points, 1500);

  options.seed = 13;
  auto c = EpsilonLowerBound(scores, members, options);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->epsilon != a->epsilon || c->threshold != a->threshold);
}

TEST(EpsilonTest, ChosenThresholdMatchesBruteForce) {
  // The sweep (with dominated thresholds skipped) must reach the best bound any
  // single threshold gives on the same points.
  struct Config {
    uint64_t seed;
    int n;
    double shift;  // member score shift: the leakage
    double grid;   // scores rounded to 1 / grid (ties); 0 for continuous
  };
  for (const Config& config :
       {Config{4, 300, 1.2, 4}, Config{5, 300, 1.2, 4}, Config{6, 300, 0.5, 10},
        Config{7, 2000, 2.0, 0}, Config{8, 2000, 0.3, 0}, Config{9, 1000, 3.0, 2}}) {
    Rng rng(config.seed);
    std::vector<double> scores;
    std::vector<uint8_t> members;
    for (int i = 0; i < config.n; ++i) {
      const uint8_t m = static_cast<uint8_t>(rng.UniformInt(2));
      members.push_back(m);
      const double raw = rng.Normal() + (m ? config.shift : 0.0);
      scores.push_back(config.grid > 0 ? std::round(raw * config.grid) / config.grid : raw);
    }
    const double chosen = ChooseEpsilonThreshold(scores, members, 1e-5, 0.05);
    const double at_chosen =
        EpsilonAtThreshold(scores, members, chosen, 1e-5, 0.05, nullptr, nullptr);
    double best = 0;
    for (double t : scores) {
      best = std::max(best, EpsilonAtThreshold(scores, members, t, 1e-5, 0.05, nullptr, nullptr));
    }
    EXPECT_GT(best, 0) << config.seed;
    EXPECT_DOUBLE_EQ(at_chosen, best) << config.seed;
  }
}

TEST(EpsilonTest, Errors) {
  const std::vector<double> scores = {0.1, 0.2, 0.3, 0.4, 0.5};
  const std::vector<uint8_t> members = {1, 0, 1, 0, 0};
  EpsilonOptions options;
  EXPECT_TRUE(EpsilonLowerBound(scores, members, options).ok());

  const std::vector<double> nan_scores = {0.1, 0.2, std::nan(""), 0.4, 0.5};
  EXPECT_EQ(EpsilonLowerBound(nan_scores, members, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<uint8_t> one_member = {1, 0, 0, 0, 0};
  EXPECT_EQ(EpsilonLowerBound(scores, one_member, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<uint8_t> short_members = {1, 0, 1};
  EXPECT_EQ(EpsilonLowerBound(scores, short_members, options).status().code(),
            absl::StatusCode::kInvalidArgument);

  EpsilonOptions bad = options;
  bad.delta = 1;
  EXPECT_EQ(EpsilonLowerBound(scores, members, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = options;
  bad.beta = 0;
  EXPECT_EQ(EpsilonLowerBound(scores, members, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = options;
  bad.selection_fraction = 1;
  EXPECT_EQ(EpsilonLowerBound(scores, members, bad).status().code(),
            absl::StatusCode::kInvalidArgument);

  double fpr_up = 0, fnr_up = 0;
  EXPECT_EQ(EpsilonAtThreshold(nan_scores, members, 0.3, 0, 0.05, &fpr_up, &fnr_up), 0);
  EXPECT_EQ(fpr_up, 1);
  EXPECT_EQ(fnr_up, 1);
}

}  // namespace
}  // namespace mia::metrics
