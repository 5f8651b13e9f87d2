#include "core/metrics/one_run_audit.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "core/common/random.h"
#include "gtest/gtest.h"

namespace mia::metrics {
namespace {

// The spec's definitions with plain loops in long double (small r only).
struct PlainTerms {
  long double tail = 0;
  long double alpha = 0;
  long double p = 0;
};

std::vector<long double> PlainPmf(int64_t r, double eps) {
  const long double q = expl(eps) / (1 + expl(eps));
  std::vector<long double> pmf;
  long double coeff = 1;  // C(r, k), built up incrementally
  for (int64_t k = 0; k <= r; ++k) {
    if (k > 0) coeff = coeff * (r - k + 1) / k;
    pmf.push_back(coeff * powl(q, k) * powl(1 - q, r - k));
  }
  return pmf;
}

PlainTerms PlainTest(int64_t m, int64_t r, int64_t v, double eps, double delta) {
  const std::vector<long double> pmf = PlainPmf(r, eps);
  PlainTerms t;
  for (int64_t k = v; k <= r; ++k) t.tail += pmf[k];
  for (int64_t i = 1; i <= v; ++i) {
    long double sum = 0;
    for (int64_t j = 1; j <= i; ++j) sum += pmf[v - j];
    t.alpha = std::max(t.alpha, sum / i);
  }
  t.p = std::min<long double>(1, t.tail + 2 * m * delta * t.alpha);
  return t;
}

// The largest eps with p < beta by the same bisection, on the plain p.
double PlainBound(int64_t m, int64_t r, int64_t v, double delta, double beta) {
  auto passes = [&](double eps) { return PlainTest(m, r, v, eps, delta).p < beta; };
  if (!passes(0)) return 0;
  double lo = 0, hi = 1;
  while (passes(hi)) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1e-5) {
    const double mid = 0.5 * (lo + hi);
    (passes(mid) ? lo : hi) = mid;
  }
  return lo;
}

double Bound(int64_t m, int64_t r, int64_t v, double delta, double beta = 0.05) {
  absl::StatusOr<double> eps = OneRunEpsilonLowerBound({m, r, v}, {delta, beta});
  EXPECT_TRUE(eps.ok()) << eps.status();
  return eps.ok() ? *eps : -1;
}

TEST(OneRunBoundTest, HalfRightGivesZero) {
  for (int64_t r : {2, 10, 100, 1000, 1000000}) {
    for (double delta : {0.0, 1e-5}) {
      EXPECT_EQ(Bound(r, r, r / 2, delta), 0.0) << r;
      EXPECT_EQ(Bound(2 * r, r, r / 3, delta), 0.0) << r;
    }
  }
  // No guesses, or none right: nothing to go on.
  EXPECT_EQ(Bound(0, 0, 0, 1e-5), 0.0);
  EXPECT_EQ(Bound(100, 10, 0, 0), 0.0);
}

TEST(OneRunBoundTest, GrowsWithCorrectAtFixedGuesses) {
  for (double delta : {0.0, 1e-5, 1e-3}) {
    double previous = 0;
    for (int64_t v = 50; v <= 100; ++v) {
      const double eps = Bound(1000, 100, v, delta);
      EXPECT_GE(eps, previous) << v << " " << delta;
      if (previous > 0) {
        EXPECT_GT(eps, previous) << v << " " << delta;
      }
      previous = eps;
    }
    // 2 m delta = 2 at delta = 1e-3 weighs alpha heavily.
    EXPECT_GT(previous, delta < 1e-4 ? 3 : 0.5) << delta;
  }
  // More delta, a weaker bound.
  EXPECT_LT(Bound(1000, 100, 90, 1e-3), Bound(1000, 100, 90, 1e-5));
  EXPECT_LE(Bound(1000, 100, 90, 1e-5), Bound(1000, 100, 90, 0));
}

TEST(OneRunBoundTest, DeltaZeroIsTheBinomialTail) {
  for (int64_t r = 1; r <= 30; ++r) {
    for (int64_t v = 0; v <= r; ++v) {
      for (double eps : {0.0, 0.3, 1.0, 2.5, 7.0}) {
        absl::StatusOr<OneRunTerms> t = OneRunTest({2 * r, r, v}, eps, {0.0, 0.05});
        ASSERT_TRUE(t.ok()) << t.status();
        const long double want = PlainTest(2 * r, r, v, eps, 0).tail;
        EXPECT_NEAR(t->p, static_cast<double>(want), 1e-13 * static_cast<double>(want) + 1e-300)
            << r << " " << v << " " << eps;
        EXPECT_EQ(t->p, t->tail);
      }
    }
  }
}

TEST(OneRunBoundTest, AllRightSolvesTheTailInClosedForm) {
  // P[Bin(r, q) >= r] = q^r < beta  <=>  q < beta^(1/r)  <=>  eps < log(q / (1 - q)).
  for (int64_t r : {1, 2, 5, 20, 100, 1000, 1000000}) {
    for (double beta : {0.05, 0.01, 0.2}) {
      const double q = std::pow(beta, 1.0 / static_cast<double>(r));
      const double exact = std::max(0.0, std::log(q / (1 - q)));
      const double eps = Bound(r, r, r, 0, beta);
      EXPECT_LE(eps, exact + 1e-9) << r << " " << beta;
      EXPECT_GT(eps, exact - 1e-5 - 1e-9) << r << " " << beta;
    }
  }
  // By hand: r = 100, beta = 0.05: q = 0.05^(1/100) = exp(-0.0299573) = 0.9704870,
  // eps = log(0.9704870 / 0.0295130) = 3.49297.
  EXPECT_NEAR(Bound(100, 100, 100, 0), 3.49297, 2e-5);
}

TEST(OneRunBoundTest, MatchesThePlainDefinitionOnRandomSmallCases) {
  Rng rng(20231);
  for (int trial = 0; trial < 400; ++trial) {
    const int64_t m = 1 + static_cast<int64_t>(rng.UniformInt(60));
    const int64_t r = static_cast<int64_t>(rng.UniformInt(static_cast<uint64_t>(m) + 1));
    const int64_t v = static_cast<int64_t>(rng.UniformInt(static_cast<uint64_t>(r) + 1));
    const double deltas[] = {0.0, 1e-5, 1e-3, 0.02};
    const double delta = deltas[rng.UniformInt(4)];
    const double eps = 6 * rng.Uniform01();
    absl::StatusOr<OneRunTerms> t = OneRunTest({m, r, v}, eps, {delta, 0.05});
    ASSERT_TRUE(t.ok()) << t.status();
    const PlainTerms want = PlainTest(m, r, v, eps, delta);
    const std::string where = "m=" + std::to_string(m) + " r=" + std::to_string(r) +
                              " v=" + std::to_string(v) + " eps=" + std::to_string(eps) +
                              " delta=" + std::to_string(delta);
    EXPECT_NEAR(t->tail, static_cast<double>(want.tail), 1e-12 * static_cast<double>(want.tail))
        << where;
    if (delta > 0) {
      EXPECT_NEAR(t->alpha, static_cast<double>(want.alpha),
                  1e-12 * static_cast<double>(want.alpha))
          << where;
    }
    EXPECT_NEAR(t->p, static_cast<double>(want.p), 1e-12 * static_cast<double>(want.p)) << where;
    if (trial % 8 == 0) {
      const double beta = 0.05;
      EXPECT_NEAR(Bound(m, r, v, delta, beta), PlainBound(m, r, v, delta, beta), 2e-5) << where;
    }
  }
}

TEST(OneRunBoundTest, MatchesThePlainDefinitionOnLargerCases) {
  // Thousands of guesses: the walks drop terms here, the plain loops do not.
  Rng rng(7);
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t r = 1000 + static_cast<int64_t>(rng.UniformInt(2000));
    const int64_t m = 2 * r;
    const int64_t v = r / 2 + static_cast<int64_t>(rng.UniformInt(static_cast<uint64_t>(r / 2)));
    const double eps = 3 * rng.Uniform01();
    const double delta = 1e-4;
    absl::StatusOr<OneRunTerms> t = OneRunTest({m, r, v}, eps, {delta, 0.05});
    ASSERT_TRUE(t.ok()) << t.status();
    const PlainTerms want = PlainTest(m, r, v, eps, delta);
    EXPECT_NEAR(t->tail, static_cast<double>(want.tail), 1e-10 * static_cast<double>(want.tail))
        << r << " " << v << " " << eps;
    EXPECT_NEAR(t->alpha, static_cast<double>(want.alpha), 1e-10 * static_cast<double>(want.alpha))
        << r << " " << v << " " << eps;
  }
}

TEST(OneRunBoundTest, LargeRunsAreConsistent) {
  // r = 10^6 guesses: the bound passes the test and 2e-5 above it does not.
  for (const OneRunCounts& c :
       {OneRunCounts{1000000, 1000000, 560000}, OneRunCounts{1000000, 200000, 150000},
        OneRunCounts{1000000, 1000000, 999990}}) {
    for (double delta : {0.0, 1e-6}) {
      const double eps = Bound(c.canaries, c.guesses, c.correct, delta);
      EXPECT_GT(eps, 0) << c.correct;
      EXPECT_LT(OneRunTest(c, eps, {delta, 0.05})->p, 0.05);
      EXPECT_GE(OneRunTest(c, eps + 2e-5, {delta, 0.05})->p, 0.05);
    }
  }
}

TEST(OneRunBoundTest, InputErrorsNameTheParameter) {
  auto message = [](const OneRunCounts& c, const OneRunOptions& o) {
    absl::StatusOr<double> eps = OneRunEpsilonLowerBound(c, o);
    EXPECT_EQ(eps.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(eps.status().message());
  };
  EXPECT_TRUE(absl::StartsWith(message({-1, 0, 0}, {}), "canaries:"));
  EXPECT_TRUE(absl::StartsWith(message({kMaxOneRunCanaries + 1, 0, 0}, {}), "canaries:"));
  EXPECT_TRUE(absl::StartsWith(message({10, 11, 0}, {}), "guesses:"));
  EXPECT_TRUE(absl::StartsWith(message({10, -1, 0}, {}), "guesses:"));
  EXPECT_TRUE(absl::StartsWith(message({10, 5, 6}, {}), "correct:"));
  EXPECT_TRUE(absl::StartsWith(message({10, 5, -1}, {}), "correct:"));
  EXPECT_TRUE(absl::StartsWith(message({10, 5, 5}, {1.0, 0.05}), "delta:"));
  EXPECT_TRUE(absl::StartsWith(message({10, 5, 5}, {-1e-9, 0.05}), "delta:"));
  EXPECT_TRUE(absl::StartsWith(message({10, 5, 5}, {0, 0}), "beta:"));
  EXPECT_TRUE(absl::StartsWith(message({10, 5, 5}, {0, 1}), "beta:"));
  EXPECT_TRUE(absl::StartsWith(message({10, 5, 5}, {0, std::nan("")}), "beta:"));
  EXPECT_EQ(OneRunTest({10, 5, 5}, -1, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OneRunGridTest, DefaultGrid) {
  auto ks = [](int64_t m) {
    std::vector<int64_t> out;
    for (const OneRunGuessSplit& s : DefaultOneRunGrid(m)) {
      EXPECT_EQ(s.k_plus, s.k_minus);
      out.push_back(s.k_plus);
    }
    return out;
  };
  EXPECT_EQ(ks(1000), (std::vector<int64_t>{25, 50, 100, 250, 500}));
  EXPECT_EQ(ks(10), (std::vector<int64_t>{1, 2, 5}));
  EXPECT_TRUE(ks(1).empty());
}

TEST(OneRunGridTest, TinyHandMadeScores) {
  // Order by score, ties by index: 0 (0.9), 1 (0.8), 2 (0.8), 3 (0.5), 4 (0.3),
  // 5 (0.3), 6 (0.1), 7 (0.0); included along it: 1 1 0 1 0 1 0 0.
  const std::vector<double> scores = {0.9, 0.8, 0.8, 0.5, 0.3, 0.3, 0.1, 0.0};
  const std::vector<uint8_t> included = {1, 1, 0, 1, 0, 1, 0, 0};
  const std::vector<OneRunGuessSplit> grid = {{1, 1}, {2, 2}, {3, 3}, {4, 2}, {0, 3}, {2, 0}};
  const OneRunOptions options{0.0, 0.2};
  absl::StatusOr<OneRunGridResult> result = OneRunAuditGrid(scores, included, grid, options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->entries.size(), grid.size());
  // (1,1): IN 0 right, OUT 7 right. (2,2): IN 0 1, OUT 6 7, all right.
  // (3,3): IN 0 1 2 (2 right), OUT 5 6 7 (5 is in: 2 right). (4,2): IN 0..3
  // (3 right), OUT 6 7. (0,3): OUT 5 6 7; of the tied 4 and 5 the higher index
  // is guessed OUT first, and 5 is in: 2 right. (2,0): of the tied 1 and 2 the
  // lower index is guessed IN first: 2 right.
  const int64_t want_r[] = {2, 4, 6, 6, 3, 2};
  const int64_t want_v[] = {2, 4, 4, 5, 2, 2};
  double best = -1;
  for (size_t i = 0; i < grid.size(); ++i) {
    const OneRunGridEntry& e = result->entries[i];
    EXPECT_EQ(e.split.k_plus, grid[i].k_plus);
    EXPECT_EQ(e.guesses, want_r[i]) << i;
    EXPECT_EQ(e.correct, want_v[i]) << i;
    EXPECT_EQ(e.epsilon, Bound(8, e.guesses, e.correct, 0.0, 0.2)) << i;
    best = std::max(best, e.epsilon);
  }
  // (1,1) and (2,0): q^2 < 0.2 needs q < 1/2, so 0. (2,2): q^4 < 0.2 at
  // eps < log(q / (1 - q)), q = 0.2^(1/4).
  EXPECT_EQ(result->entries[0].epsilon, 0.0);
  const double q = std::pow(0.2, 0.25);
  EXPECT_NEAR(result->entries[1].epsilon, std::log(q / (1 - q)), 1e-5);
  EXPECT_EQ(result->entries[result->best].epsilon, best);
  EXPECT_GT(best, 0);
  EXPECT_TRUE(absl::StrContains(result->note, "optimistic"));
  EXPECT_TRUE(absl::StrContains(result->note, "fixed before looking"));
}

TEST(OneRunGridTest, RejectsBadInput) {
  const std::vector<double> scores = {0.3, 0.1, 0.2};
  const std::vector<uint8_t> included = {1, 0, 1};
  const std::vector<OneRunGuessSplit> grid = {{1, 1}};
  EXPECT_FALSE(OneRunAuditGrid(scores, {1, 0}, grid, {}).ok());
  EXPECT_FALSE(OneRunAuditGrid({0.3, std::nan(""), 0.2}, included, grid, {}).ok());
  EXPECT_FALSE(OneRunAuditGrid(scores, included, {}, {}).ok());
  EXPECT_FALSE(OneRunAuditGrid(scores, included, {{2, 2}}, {}).ok());
  EXPECT_FALSE(OneRunAuditGrid(scores, included, {{-1, 1}}, {}).ok());
  EXPECT_FALSE(OneRunAuditGrid(scores, included, grid, {0.0, 1.5}).ok());
  EXPECT_TRUE(OneRunAuditGrid(scores, included, {{3, 0}}, {}).ok());
}

}  // namespace
}  // namespace mia::metrics
