#include "core/metrics/roc.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "core/common/random.h"
#include "gtest/gtest.h"

namespace mia::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Plain O(n^2) Mann-Whitney count: every (member, non-member) pair scores 1 when
// the member is higher, 1/2 when tied.
double PairCountAuc(const std::vector<double>& scores, const std::vector<uint8_t>& members) {
  double u = 0;
  double pairs = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!members[i]) continue;
    for (size_t j = 0; j < scores.size(); ++j) {
      if (members[j]) continue;
      pairs += 1;
      if (scores[i] > scores[j]) u += 1;
      if (scores[i] == scores[j]) u += 0.5;
    }
  }
  return u / pairs;
}

// Random scores rounded to `levels` distinct values (so ties across classes
// occur), members shifted up by `shift`.
void RandomData(uint64_t seed, int n, int levels, double shift, std::vector<double>* scores,
                std::vector<uint8_t>* members) {
  Rng rng(seed);
  scores->clear();
  members->clear();
  for (int i = 0; i < n; ++i) {
    const uint8_t m = static_cast<uint8_t>(rng.UniformInt(2));
    const double raw = rng.Normal() + (m ? shift : 0.0);
    members->push_back(m);
    scores->push_back(levels > 0 ? std::round(raw * levels) / levels : raw);
  }
  // Guarantee both classes.
  (*members)[0] = 1;
  (*members)[1] = 0;
}

TEST(AucTest, HandExample) {
  // Scores 0.9(m) 0.8(n) 0.7(m) 0.6(n). Pairs (member, non-member):
  // (0.9,0.8)=1, (0.9,0.6)=1, (0.7,0.8)=0, (0.7,0.6)=1 -> U = 3 of 4 -> 0.75.
  const std::vector<double> scores = {0.9, 0.8, 0.7, 0.6};
  const std::vector<uint8_t> members = {1, 0, 1, 0};
  auto auc = Auc(scores, members);
  ASSERT_TRUE(auc.ok()) << auc.status();
  EXPECT_DOUBLE_EQ(*auc, 0.75);
}

TEST(AucTest, TiesAcrossClassesCountHalf) {
  // Members {2, 1}, non-members {1, 0}. Pairs: (2,1)=1, (2,0)=1, (1,1)=1/2,
  // (1,0)=1 -> U = 3.5 of 4 -> 0.875.
  const std::vector<double> scores = {2, 1, 1, 0};
  const std::vector<uint8_t> members = {1, 1, 0, 0};
  auto auc = Auc(scores, members);
  ASSERT_TRUE(auc.ok());
  EXPECT_DOUBLE_EQ(*auc, 0.875);
  auto roc = ComputeRoc(scores, members);
  ASSERT_TRUE(roc.ok());
  EXPECT_DOUBLE_EQ(AreaUnder(*roc), 0.875);
}

TEST(RocTest, ExactPointsOfFivePointExample) {
  // Scores: 5(m) 4(n) 4(m) 2(m) 1(n); P = 3, N = 2. Thresholds and counts:
  //   +inf: tp 0, fp 0 -> (0, 0)
  //   5   : tp 1, fp 0 -> (0, 1/3)
  //   4   : tp 2, fp 1 -> (1/2, 2/3)   (tie group of a member and a non-member)
  //   2   : tp 3, fp 1 -> (1/2, 1)
  //   1   : tp 3, fp 2 -> (1, 1)
  const std::vector<double> scores = {4, 1, 5, 2, 4};
  const std::vector<uint8_t> members = {0, 0, 1, 1, 1};
  auto roc = ComputeRoc(scores, members);
  ASSERT_TRUE(roc.ok()) << roc.status();
  EXPECT_EQ(roc->positives, 3);
  EXPECT_EQ(roc->negatives, 2);
  EXPECT_EQ(roc->thresholds, (std::vector<double>{kInf, 5, 4, 2, 1}));
  EXPECT_EQ(roc->fpr, (std::vector<double>{0, 0, 0.5, 0.5, 1}));
  ASSERT_EQ(roc->tpr.size(), 5u);
  EXPECT_DOUBLE_EQ(roc->tpr[0], 0);
  EXPECT_DOUBLE_EQ(roc->tpr[1], 1.0 / 3);
  EXPECT_DOUBLE_EQ(roc->tpr[2], 2.0 / 3);
  EXPECT_DOUBLE_EQ(roc->tpr[3], 1);
  EXPECT_DOUBLE_EQ(roc->tpr[4], 1);
  // Area: trapezoids (0->0.5: (1/3+2/3)/2 * 0.5 = 0.25) + (0.5->1: 1 * 0.5) = 0.75.
  // Pairs: 5 beats both (2); 4m vs 4n = 1/2, 4m vs 1 = 1; 2 vs 4n = 0, 2 vs 1 = 1
  // -> 4.5 of 6 = 0.75.
  EXPECT_DOUBLE_EQ(AreaUnder(*roc), 0.75);
  EXPECT_DOUBLE_EQ(*Auc(scores, members), 0.75);
}

TEST(TprAtFprTest, HandExample) {
  // Same curve as above: (0,0) (0,1/3) (1/2,2/3) (1/2,1) (1,1), N = 2.
  //   alpha 0    -> resolved, best TPR with no false positive = 1/3
  //   alpha 0.1  -> unresolved (0.1 < 1/2), TPR at FPR <= 0.1 still 1/3
  //   alpha 0.5  -> resolved, 1
  //   alpha 0.49 -> unresolved
  //   alpha 1    -> 1
  const std::vector<double> scores = {4, 1, 5, 2, 4};
  const std::vector<uint8_t> members = {0, 0, 1, 1, 1};
  auto roc = ComputeRoc(scores, members);
  ASSERT_TRUE(roc.ok());
  const std::vector<double> alphas = {0, 0.1, 0.5, 0.49, 1};
  const std::vector<TprAtFpr> at = TprAtFprs(*roc, alphas);
  ASSERT_EQ(at.size(), 5u);
  EXPECT_TRUE(at[0].resolved);
  EXPECT_DOUBLE_EQ(at[0].tpr, 1.0 / 3);
  EXPECT_FALSE(at[1].resolved);
  EXPECT_DOUBLE_EQ(at[1].tpr, 1.0 / 3);
  EXPECT_TRUE(at[2].resolved);
  EXPECT_DOUBLE_EQ(at[2].tpr, 1);
  EXPECT_FALSE(at[3].resolved);
  EXPECT_TRUE(at[4].resolved);
  EXPECT_DOUBLE_EQ(at[4].tpr, 1);
  for (size_t k = 0; k < alphas.size(); ++k) EXPECT_EQ(at[k].fpr, alphas[k]);
}

TEST(TprAtFprTest, ResolutionBoundaryIsInclusive) {
  EXPECT_TRUE(FprResolvable(0.001, 1000));
  EXPECT_FALSE(FprResolvable(0.001, 999));
  EXPECT_TRUE(FprResolvable(0.0, 1));
  EXPECT_FALSE(FprResolvable(-0.1, 100));
  EXPECT_FALSE(FprResolvable(std::nan(""), 100));
}

TEST(TprAtFprTest, MonotoneInAlpha) {
  std::vector<double> scores;
  std::vector<uint8_t> members;
  RandomData(7, 3000, 20, 0.5, &scores, &members);
  auto roc = ComputeRoc(scores, members);
  ASSERT_TRUE(roc.ok());
  std::vector<double> alphas;
  for (double a = 0; a <= 1.0; a += 0.0007) alphas.push_back(a);
  const std::vector<TprAtFpr> at = TprAtFprs(*roc, alphas);
  for (size_t k = 1; k < at.size(); ++k) EXPECT_LE(at[k - 1].tpr, at[k].tpr) << k;
}

TEST(AucTest, InvariantsOnRandomData) {
  for (uint64_t seed : {1u, 2u, 3u, 4u}) {
    std::vector<double> scores;
    std::vector<uint8_t> members;
    // Seeds 3 and 4 use continuous scores; 1 and 2 are heavily tied.
    RandomData(seed, 400, seed <= 2 ? 4 : 0, 0.7, &scores, &members);
    auto auc = Auc(scores, members);
    ASSERT_TRUE(auc.ok());
    EXPECT_NEAR(*auc, PairCountAuc(scores, members), 1e-12);

    auto roc = ComputeRoc(scores, members);
    ASSERT_TRUE(roc.ok());
    EXPECT_NEAR(AreaUnder(*roc), *auc, 1e-12);

    // Strictly monotone transforms keep the order, ties included.
    std::vector<double> transformed_exp, transformed_affine;
    for (double s : scores) {
      transformed_exp.push_back(std::exp(s));
      transformed_affine.push_back(3 * s + 1);
    }
    EXPECT_NEAR(*Auc(transformed_exp, members), *auc, 1e-12);
    EXPECT_NEAR(*Auc(transformed_affine, members), *auc, 1e-12);

    // Swapping the classes mirrors the area.
    std::vector<uint8_t> swapped;
    for (uint8_t m : members) swapped.push_back(static_cast<uint8_t>(1 - m));
    EXPECT_NEAR(*Auc(scores, swapped), 1 - *auc, 1e-12);
  }
}

TEST(AucTest, AllTiedIsHalf) {
  const std::vector<double> scores(101, 0.25);
  std::vector<uint8_t> members;
  for (int i = 0; i < 101; ++i) members.push_back(static_cast<uint8_t>(i % 3 == 0));
  EXPECT_DOUBLE_EQ(*Auc(scores, members), 0.5);
  auto roc = ComputeRoc(scores, members);
  ASSERT_TRUE(roc.ok());
  EXPECT_EQ(roc->fpr.size(), 2u);  // (0,0) and (1,1) only
  EXPECT_DOUBLE_EQ(AreaUnder(*roc), 0.5);
}

TEST(ValidationTest, Errors) {
  const std::vector<double> nan_scores = {0.1, std::nan(""), 0.3};
  const std::vector<uint8_t> members3 = {1, 0, 1};
  auto nan_result = ComputeRoc(nan_scores, members3);
  EXPECT_EQ(nan_result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(nan_result.status().message().find("index 1"), std::string::npos);

  const std::vector<double> inf_scores = {0.1, 0.2, kInf};
  auto inf_result = Auc(inf_scores, members3);
  EXPECT_EQ(inf_result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(inf_result.status().message().find("index 2"), std::string::npos);

  const std::vector<double> two = {0.1, 0.2};
  EXPECT_EQ(ComputeRoc(two, members3).status().code(), absl::StatusCode::kInvalidArgument);

  const std::vector<double> three = {0.1, 0.2, 0.3};
  const std::vector<uint8_t> one_class = {1, 1, 1};
  EXPECT_EQ(ComputeRoc(three, one_class).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Auc(three, std::vector<uint8_t>{0, 0, 0}).status().code(),
            absl::StatusCode::kInvalidArgument);

  const std::vector<uint8_t> label_two = {1, 2, 0};
  auto bad_label = ComputeRoc(three, label_two);
  EXPECT_EQ(bad_label.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_label.status().message().find("index 1"), std::string::npos);

  // Messages never carry the score values themselves.
  const std::vector<double> secret = {0.123456, -kInf, 0.654321};
  auto leak = ComputeRoc(secret, members3);
  EXPECT_EQ(leak.status().message().find("0.12"), std::string::npos);
  EXPECT_EQ(leak.status().message().find("inf"), std::string::npos);
}

TEST(DownsampleTest, KeepsEndsAndLowFprAndIsMonotone) {
  std::vector<double> scores;
  std::vector<uint8_t> members;
  RandomData(11, 20000, 0, 1.0, &scores, &members);
  auto roc = ComputeRoc(scores, members);
  ASSERT_TRUE(roc.ok());
  ASSERT_GT(roc->fpr.size(), 1000u);
  const RocCurve small = DownsampleLogFpr(*roc, 200);
  EXPECT_LE(small.fpr.size(), 200u);
  EXPECT_GE(small.fpr.size(), 50u);
  ASSERT_EQ(small.tpr.size(), small.fpr.size());
  ASSERT_EQ(small.thresholds.size(), small.fpr.size());
  EXPECT_EQ(small.fpr.front(), 0);
  EXPECT_EQ(small.tpr.front(), 0);
  EXPECT_EQ(small.thresholds.front(), kInf);
  EXPECT_EQ(small.fpr.back(), 1);
  EXPECT_EQ(small.tpr.back(), 1);
  EXPECT_EQ(small.positives, roc->positives);
  EXPECT_EQ(small.negatives, roc->negatives);
  for (size_t i = 1; i < small.fpr.size(); ++i) {
    EXPECT_LE(small.fpr[i - 1], small.fpr[i]);
    EXPECT_LE(small.tpr[i - 1], small.tpr[i]);
    EXPECT_GT(small.thresholds[i - 1], small.thresholds[i]);
  }
  // At each FPR of the log grid (200 points = first, last and 198 grid FPRs
  // from 1e-5 to 1) the best TPR at or below it is the full curve's.
  for (int j = 0; j < 198; ++j) {
    const double g = std::exp(std::log(1e-5) * (1.0 - j / 197.0));
    const std::vector<double> alpha = {g};
    EXPECT_EQ(TprAtFprs(small, alpha)[0].tpr, TprAtFprs(*roc, alpha)[0].tpr) << g;
  }
  // Low-FPR region: several points at FPR < 1e-2.
  int low = 0;
  for (double f : small.fpr) low += f < 1e-2 ? 1 : 0;
  EXPECT_GE(low, 10);

  // Small curves come back unchanged.
  const RocCurve same = DownsampleLogFpr(small, 1000);
  EXPECT_EQ(same.fpr, small.fpr);
  EXPECT_EQ(same.tpr, small.tpr);
}

}  // namespace
}  // namespace mia::metrics
