#include "core/metrics/rdp_accountant.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace mia::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// log(A_a) straight from its definition, in long double with binomials built
// by the multiplicative recurrence: for small orders and moderate parameters,
// where nothing overflows.
long double DefinitionalLogA(long double q, long double sigma, int a) {
  long double total = 0;
  long double binom = 1;
  for (int k = 0; k <= a; ++k) {
    if (k > 0) binom = binom * (a - k + 1) / k;
    total += binom * std::pow(1 - q, static_cast<long double>(a - k)) *
             std::pow(q, static_cast<long double>(k)) *
             std::exp(static_cast<long double>(k * k - k) / (2 * sigma * sigma));
  }
  return std::log(total);
}

double Epsilon(double q, double sigma, int64_t steps, double delta, RdpConversion conversion) {
  absl::StatusOr<DpSgdEpsilon> e = ComputeDpSgdEpsilon({q, sigma, steps, delta, conversion});
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? e->epsilon : std::nan("");
}

TEST(SubsampledGaussianRdpTest, MatchesTheDefinitionalSum) {
  for (double q : {0.001, 0.01, 0.1, 0.37, 0.9}) {
    for (double sigma : {0.7, 1.0, 2.5, 8.0}) {
      for (int a : {2, 3, 5, 8, 13, 20}) {
        const long double want = DefinitionalLogA(q, sigma, a) / (a - 1);
        const absl::StatusOr<double> got = SubsampledGaussianRdp(q, sigma, a);
        ASSERT_TRUE(got.ok()) << got.status();
        // Both sums add numbers near 1: an absolute error of a few 1e-16 in
        // log(A_a), relative 1e-10 leaves room for the smallest values.
        EXPECT_NEAR(*got, static_cast<double>(want), 1e-10 * static_cast<double>(want) + 1e-15)
            << "q=" << q << " sigma=" << sigma << " a=" << a;
      }
    }
  }
}

TEST(SubsampledGaussianRdpTest, FullBatchIsTheGaussianMechanism) {
  for (double sigma : {0.3, 1.0, 1.1, 4.0, 100.0}) {
    for (int a : {2, 3, 10, 64, 256, 1000}) {
      const absl::StatusOr<double> got = SubsampledGaussianRdp(1.0, sigma, a);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_NEAR(*got, a / (2 * sigma * sigma), 1e-12 * a / (2 * sigma * sigma))
          << sigma << " " << a;
    }
  }
}

TEST(SubsampledGaussianRdpTest, NoSamplingIsNoLoss) {
  EXPECT_EQ(*SubsampledGaussianRdp(0.0, 1.0, 2), 0.0);
  EXPECT_EQ(*SubsampledGaussianRdp(0.0, 1e-3, 256), 0.0);
}

TEST(SubsampledGaussianRdpTest, HugeExponentsStayFinite) {
  // exp((a^2 - a) / (2 sigma^2)) is far beyond double here; the log is not.
  // Then the k = a term dominates: rdp ~ (a log q + (a^2 - a) / (2 sigma^2)) / (a - 1).
  const double q = 0.01, sigma = 0.05;
  const int a = 256;
  const absl::StatusOr<double> got = SubsampledGaussianRdp(q, sigma, a);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(std::isfinite(*got));
  const double dominant = (a * std::log(q) + (double{a} * a - a) / (2 * sigma * sigma)) / (a - 1);
  EXPECT_NEAR(*got, dominant, 1e-9 * dominant);
  // So small a sigma that 1 / (2 sigma^2) overflows: +infinity, not NaN.
  EXPECT_EQ(*SubsampledGaussianRdp(0.5, 1e-160, 2), kInf);
}

TEST(SubsampledGaussianRdpTest, RejectsBadInput) {
  for (double q : {-0.1, 1.5, std::nan("")}) {
    const absl::Status s = SubsampledGaussianRdp(q, 1, 2).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("q:"), absl::string_view::npos) << s;
  }
  for (double sigma : {0.0, -1.0, kInf, std::nan("")}) {
    const absl::Status s = SubsampledGaussianRdp(0.1, sigma, 2).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("sigma:"), absl::string_view::npos) << s;
  }
  for (int a : {-1, 0, 1, 1 << 20}) {
    const absl::Status s = SubsampledGaussianRdp(0.1, 1, a).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("order:"), absl::string_view::npos) << s;
  }
}

// The published example (TF-Privacy's compute_dp_sgd_privacy and Opacus's
// MNIST DP-SGD tutorial): 60000 examples, batches of 256, noise multiplier
// 1.1, 60 epochs, delta 1e-5: "eps = 3.01" with the classic conversion. Steps
// are ceil(60 * 60000 / 256) = ceil(14062.5) = 14063, as TF-Privacy counts
// them. TF-Privacy minimizes over fractional orders too (1.1, 1.2, ... and
// 12..63); over integer orders alone the minimum can only be as high or
// higher, and here it is 3.0092 at a = 9. The tolerance 0.05 covers that
// difference of order grids and the published value's two decimals.
TEST(RdpAccountantEpsilonTest, PublishedMnistExample) {
  const double q = 256.0 / 60000;
  const absl::StatusOr<int64_t> steps = StepsForEpochs(60, q);
  ASSERT_TRUE(steps.ok()) << steps.status();
  EXPECT_EQ(*steps, 14063);
  const absl::StatusOr<DpSgdEpsilon> classic =
      ComputeDpSgdEpsilon({q, 1.1, *steps, 1e-5, RdpConversion::kClassic});
  ASSERT_TRUE(classic.ok()) << classic.status();
  EXPECT_NEAR(classic->epsilon, 3.01, 0.05);
  EXPECT_EQ(classic->order, 9);
  const absl::StatusOr<DpSgdEpsilon> spec =
      ComputeDpSgdEpsilon({q, 1.1, *steps, 1e-5, RdpConversion::kSpec});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_LT(spec->epsilon, classic->epsilon);
  // Balle et al.'s conversion saves about 0.4 here (2.597 at a = 8).
  EXPECT_NEAR(spec->epsilon, 2.597, 0.005);
  EXPECT_EQ(spec->order, 8);
}

TEST(RdpAccountantEpsilonTest, SpecConversionNeverAboveClassic) {
  for (double q : {0.001, 0.02, 0.5, 1.0}) {
    for (double sigma : {0.5, 1.0, 3.0, 30.0}) {
      for (int64_t steps : {1, 100, 100000}) {
        for (double delta : {1e-9, 1e-5, 0.1}) {
          EXPECT_LE(Epsilon(q, sigma, steps, delta, RdpConversion::kSpec),
                    Epsilon(q, sigma, steps, delta, RdpConversion::kClassic));
        }
      }
    }
  }
}

TEST(RdpAccountantEpsilonTest, Monotone) {
  for (RdpConversion conversion : {RdpConversion::kSpec, RdpConversion::kClassic}) {
    // More noise: less epsilon.
    double previous = kInf;
    for (double sigma : {0.6, 0.8, 1.0, 1.5, 2.0, 4.0, 10.0}) {
      const double eps = Epsilon(0.01, sigma, 1000, 1e-5, conversion);
      EXPECT_LT(eps, previous) << sigma;
      previous = eps;
    }
    // More steps: more epsilon.
    previous = -1;
    for (int64_t steps : {1, 10, 100, 1000, 10000, 100000}) {
      const double eps = Epsilon(0.01, 1.0, steps, 1e-5, conversion);
      EXPECT_GT(eps, previous) << steps;
      previous = eps;
    }
    // A larger sampling rate: more epsilon.
    previous = -1;
    for (double q : {1e-4, 1e-3, 0.01, 0.1, 0.5, 1.0}) {
      const double eps = Epsilon(q, 1.0, 1000, 1e-5, conversion);
      EXPECT_GT(eps, previous) << q;
      previous = eps;
    }
    // A larger delta: less epsilon.
    previous = kInf;
    for (double delta : {1e-10, 1e-7, 1e-5, 1e-3}) {
      const double eps = Epsilon(0.01, 1.0, 1000, delta, conversion);
      EXPECT_LT(eps, previous) << delta;
      previous = eps;
    }
  }
}

// With q = 1 and one step the classic conversion has a closed form over real
// orders: min_a a / (2 sigma^2) - log(delta) / (a - 1); over integers, check
// it order by order.
TEST(RdpAccountantEpsilonTest, FullBatchClassicIsTheGaussianBound) {
  const double sigma = 3.0, delta = 1e-5;
  double want = kInf;
  int want_order = 0;
  for (int a = kRdpMinOrder; a <= kRdpMaxOrder; ++a) {
    const double eps = a / (2 * sigma * sigma) - std::log(delta) / (a - 1);
    if (eps < want) want = eps, want_order = a;
  }
  const absl::StatusOr<DpSgdEpsilon> got =
      ComputeDpSgdEpsilon({1.0, sigma, 1, delta, RdpConversion::kClassic});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_NEAR(got->epsilon, want, 1e-12);
  EXPECT_EQ(got->order, want_order);
}

TEST(RdpAccountantEpsilonTest, TinySigmaIsInfinite) {
  const absl::StatusOr<DpSgdEpsilon> got = ComputeDpSgdEpsilon({0.5, 1e-160, 10, 1e-5});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->epsilon, kInf);
}

TEST(RdpAccountantEpsilonTest, RejectsBadInputNamingTheField) {
  const DpSgdAccounting good{0.01, 1.0, 100, 1e-5, RdpConversion::kSpec};
  ASSERT_TRUE(ComputeDpSgdEpsilon(good).ok());
  auto expect_bad = [](const DpSgdAccounting& run, absl::string_view field) {
    const absl::Status s = ComputeDpSgdEpsilon(run).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_EQ(s.message().substr(0, field.size() + 1), absl::StrCat(field, ":")) << s;
  };
  for (double q : {0.0, -0.5, 1.01, std::nan("")}) {
    DpSgdAccounting run = good;
    run.sample_rate = q;
    expect_bad(run, "sample_rate");
  }
  for (double sigma : {0.0, -1.0, kInf, std::nan("")}) {
    DpSgdAccounting run = good;
    run.noise_multiplier = sigma;
    expect_bad(run, "noise_multiplier");
  }
  for (int64_t steps : {0, -3}) {
    DpSgdAccounting run = good;
    run.steps = steps;
    expect_bad(run, "steps");
  }
  for (double delta : {0.0, 1.0, -1e-5, 2.0, std::nan("")}) {
    DpSgdAccounting run = good;
    run.delta = delta;
    expect_bad(run, "delta");
  }
}

TEST(RdpConversionTest, NamesRoundTrip) {
  for (RdpConversion c : {RdpConversion::kSpec, RdpConversion::kClassic}) {
    EXPECT_EQ(*ParseRdpConversion(RdpConversionName(c)), c);
  }
  EXPECT_EQ(ParseRdpConversion("balle").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RdpAccountantStepsTest, CeilingWithIntegersKept) {
  EXPECT_EQ(*StepsForEpochs(1, 0.01), 100);
  EXPECT_EQ(*StepsForEpochs(0.9, 0.03), 30);  // 0.9 / 0.03 = 30.000000000000004 in double
  EXPECT_EQ(*StepsForEpochs(60, 256.0 / 60000), 14063);
  EXPECT_EQ(*StepsForEpochs(0.5, 0.3), 2);
  EXPECT_EQ(*StepsForEpochs(1e-6, 1.0), 1);
  EXPECT_EQ(StepsForEpochs(0, 0.1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StepsForEpochs(1, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StepsForEpochs(1e300, 1e-10).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RdpAccountantNoiseMultiplierTest, RoundTrips) {
  for (RdpConversion conversion : {RdpConversion::kSpec, RdpConversion::kClassic}) {
    for (double q : {0.001, 256.0 / 60000, 0.05, 1.0}) {
      for (int64_t steps : {1, 1000, 14063}) {
        for (double sigma : {0.6, 1.1, 5.0}) {
          const DpSgdAccounting run{q, sigma, steps, 1e-5, conversion};
          const double eps = ComputeDpSgdEpsilon(run)->epsilon;
          const absl::StatusOr<double> solved = NoiseMultiplierForEpsilon(run, eps);
          ASSERT_TRUE(solved.ok()) << solved.status();
          EXPECT_NEAR(*solved, sigma, 10 * kNoiseMultiplierTolerance * sigma)
              << "q=" << q << " steps=" << steps << " sigma=" << sigma;
          // The upper end of the bracket: never above the target.
          DpSgdAccounting at = run;
          at.noise_multiplier = *solved;
          EXPECT_LE(ComputeDpSgdEpsilon(at)->epsilon, eps);
        }
      }
    }
  }
}

TEST(RdpAccountantNoiseMultiplierTest, PublishedExampleBackwards) {
  const DpSgdAccounting run{256.0 / 60000, 0, 14063, 1e-5, RdpConversion::kClassic};
  const absl::StatusOr<double> sigma = NoiseMultiplierForEpsilon(run, 3.0092);
  ASSERT_TRUE(sigma.ok()) << sigma.status();
  EXPECT_NEAR(*sigma, 1.1, 1e-3);
}

TEST(RdpAccountantNoiseMultiplierTest, UnreachableAndBadTargets) {
  // As sigma grows, the classic eps falls to min_a -log(delta) / (a - 1) =
  // log(1e5) / 255 = 0.0451; no noise gets below it.
  const DpSgdAccounting run{0.01, 0, 1000, 1e-5, RdpConversion::kClassic};
  const absl::Status below = NoiseMultiplierForEpsilon(run, 0.04).status();
  EXPECT_EQ(below.code(), absl::StatusCode::kOutOfRange) << below;
  EXPECT_NE(below.message().find("target_epsilon:"), absl::string_view::npos) << below;
  EXPECT_TRUE(NoiseMultiplierForEpsilon(run, 0.2).ok());
  for (double target : {0.0, -1.0, kInf, std::nan("")}) {
    EXPECT_EQ(NoiseMultiplierForEpsilon(run, target).status().code(),
              absl::StatusCode::kInvalidArgument)
        << target;
  }
  DpSgdAccounting bad = run;
  bad.delta = 0;
  EXPECT_EQ(NoiseMultiplierForEpsilon(bad, 1).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mia::metrics
