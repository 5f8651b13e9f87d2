#include "core/metrics/bootstrap.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/common/random.h"
#include "core/metrics/roc.h"
#include "gtest/gtest.h"

namespace mia::metrics {
namespace {

// Scores on a coarse grid (ties within and across classes), members shifted up.
void TiedData(uint64_t seed, int n, std::vector<double>* scores, std::vector<uint8_t>* members) {
  Rng rng(seed);
  scores->clear();
  members->clear();
  for (int i = 0; i < n; ++i) {
    const uint8_t m = rng.Uniform01() < 0.4 ? 1 : 0;
    members->push_back(m);
    scores->push_back(std::round((rng.Normal() + (m ? 0.8 : 0.0)) * 5) / 5);
  }
  (*members)[0] = 1;
  (*members)[1] = 0;
}

void ExpectSameResult(const BootstrapResult& a, const BootstrapResult& b) {
  EXPECT_EQ(a.resamples, b.resamples);
  EXPECT_EQ(a.degenerate, b.degenerate);
  EXPECT_NEAR(a.auc.low, b.auc.low, 1e-12);
  EXPECT_NEAR(a.auc.high, b.auc.high, 1e-12);
  ASSERT_EQ(a.tpr_at_fpr.size(), b.tpr_at_fpr.size());
  EXPECT_EQ(a.tpr_resolved, b.tpr_resolved);
  for (size_t k = 0; k < a.tpr_at_fpr.size(); ++k) {
    EXPECT_EQ(a.tpr_at_fpr[k].low, b.tpr_at_fpr[k].low) << k;
    EXPECT_EQ(a.tpr_at_fpr[k].high, b.tpr_at_fpr[k].high) << k;
  }
}

TEST(BootstrapTest, FastEqualsNaive) {
  // Alphas unsorted and including 0, unresolvable ones, and 1.
  const std::vector<double> alphas = {0.1, 0.01, 0.001, 0.0001, 0.00001, 0.0, 0.3, 1.0, 0.05};
  for (uint64_t seed : {1u, 2u, 3u, 4u, 5u}) {
    std::vector<double> scores;
    std::vector<uint8_t> members;
    TiedData(seed, 200 + 75 * static_cast<int>(seed), &scores, &members);
    BootstrapOptions options;
    options.resamples = 200;
    options.seed = 1000 + seed;
    auto fast = BootstrapCi(scores, members, alphas, options);
    auto naive = BootstrapCiNaive(scores, members, alphas, options);
    ASSERT_TRUE(fast.ok()) << fast.status();
    ASSERT_TRUE(naive.ok()) << naive.status();
    ExpectSameResult(*fast, *naive);
    EXPECT_EQ(fast->resamples + fast->degenerate, 200);
    // The low-FPR entries are unresolved with a few hundred non-members.
    EXPECT_TRUE(fast->tpr_resolved[0]);
    EXPECT_FALSE(fast->tpr_resolved[3]);
    EXPECT_TRUE(fast->tpr_resolved[5]);
  }
}

TEST(BootstrapTest, FastEqualsNaiveWithDegenerateReplicates) {
  const std::vector<double> scores = {0.3, 0.3, 0.1, 0.5, 0.2, 0.3};
  const std::vector<uint8_t> members = {1, 0, 0, 0, 0, 0};
  const std::vector<double> alphas = {0.0, 0.2, 0.5};
  BootstrapOptions options;
  options.resamples = 300;
  options.seed = 9;
  auto fast = BootstrapCi(scores, members, alphas, options);
  auto naive = BootstrapCiNaive(scores, members, alphas, options);
  ASSERT_TRUE(fast.ok());
  ASSERT_TRUE(naive.ok());
  ExpectSameResult(*fast, *naive);
  EXPECT_GT(fast->degenerate, 0);
}

// Replicates computed on several threads are the same replicates, collected
// in the same order: identical to one thread and to the plain definition.
TEST(BootstrapTest, ThreadsDoNotChangeTheResult) {
  const std::vector<double> alphas = {0.1, 0.01, 0.0, 0.3, 1.0};
  std::vector<double> scores;
  std::vector<uint8_t> members;
  TiedData(11, 500, &scores, &members);
  BootstrapOptions options;
  options.resamples = 203;  // not a multiple of any thread count below
  options.seed = 17;
  auto naive = BootstrapCiNaive(scores, members, alphas, options);
  ASSERT_TRUE(naive.ok()) << naive.status();
  for (int threads : {1, 2, 3, 8, 0}) {
    options.threads = threads;
    auto fast = BootstrapCi(scores, members, alphas, options);
    ASSERT_TRUE(fast.ok()) << fast.status();
    ExpectSameResult(*fast, *naive);
    EXPECT_EQ(fast->resamples, 203) << threads;
  }
  // Degenerate replicates are counted by the replicate, not by the thread.
  const std::vector<double> tiny_scores = {0.3, 0.3, 0.1, 0.5, 0.2, 0.3};
  const std::vector<uint8_t> tiny_members = {1, 0, 0, 0, 0, 0};
  options.resamples = 300;
  options.threads = 1;
  auto one = BootstrapCi(tiny_scores, tiny_members, alphas, options);
  options.threads = 4;
  auto four = BootstrapCi(tiny_scores, tiny_members, alphas, options);
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE(four.ok());
  ExpectSameResult(*four, *one);
  EXPECT_GT(four->degenerate, 0);
}

TEST(BootstrapTest, CancelledOnEveryThread) {
  std::vector<double> scores;
  std::vector<uint8_t> members;
  TiedData(12, 300, &scores, &members);
  const std::atomic<bool> cancel{true};
  BootstrapOptions options;
  options.threads = 4;
  options.cancel = &cancel;
  auto result = BootstrapCi(scores, members, DefaultFprs(), options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
}

TEST(BootstrapTest, SeedDeterminesResult) {
  std::vector<double> scores;
  std::vector<uint8_t> members;
  TiedData(42, 400, &scores, &members);
  BootstrapOptions options;
  options.resamples = 200;
  options.seed = 5;
  auto a = BootstrapCi(scores, members, DefaultFprs(), options);
  auto b = BootstrapCi(scores, members, DefaultFprs(), options);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->auc.low, b->auc.low);
  EXPECT_EQ(a->auc.high, b->auc.high);
  for (size_t k = 0; k < DefaultFprs().size(); ++k) {
    EXPECT_EQ(a->tpr_at_fpr[k].low, b->tpr_at_fpr[k].low);
    EXPECT_EQ(a->tpr_at_fpr[k].high, b->tpr_at_fpr[k].high);
  }
  options.seed = 6;
  auto c = BootstrapCi(scores, members, DefaultFprs(), options);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->auc.low != a->auc.low || c->auc.high != a->auc.high);
}

TEST(BootstrapTest, IntervalContainsPointEstimate) {
  std::vector<double> scores;
  std::vector<uint8_t> members;
  TiedData(3, 2000, &scores, &members);
  auto auc = Auc(scores, members);
  ASSERT_TRUE(auc.ok());
  BootstrapOptions options;  // 1000 resamples, 95%
  auto result = BootstrapCi(scores, members, DefaultFprs(), options);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->resamples, 1000);
  EXPECT_EQ(result->degenerate, 0);
  EXPECT_LT(result->auc.low, *auc);
  EXPECT_GT(result->auc.high, *auc);
  // About +-2 standard errors; the AUC's standard error here is ~0.01.
  EXPECT_LT(result->auc.high - result->auc.low, 0.1);
  EXPECT_GT(result->auc.high - result->auc.low, 0.01);
  for (const Interval& iv : result->tpr_at_fpr) EXPECT_LE(iv.low, iv.high);

  // A narrower confidence gives a nested interval (same replicates).
  options.confidence = 0.5;
  auto narrow = BootstrapCi(scores, members, DefaultFprs(), options);
  ASSERT_TRUE(narrow.ok());
  EXPECT_GE(narrow->auc.low, result->auc.low);
  EXPECT_LE(narrow->auc.high, result->auc.high);
}

TEST(BootstrapTest, TinySampleCountsDegenerateReplicates) {
  // n = 3 with one member: a replicate misses the member with probability
  // (2/3)^3 = 8/27 and misses both non-members with (1/3)^3 = 1/27, so about a
  // third of 1000 replicates (~333) are skipped.
  const std::vector<double> scores = {0.9, 0.5, 0.1};
  const std::vector<uint8_t> members = {1, 0, 0};
  BootstrapOptions options;
  options.resamples = 1000;
  options.seed = 77;
  auto result = BootstrapCi(scores, members, DefaultFprs(), options);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->resamples + result->degenerate, 1000);
  EXPECT_GT(result->degenerate, 250);
  EXPECT_LT(result->degenerate, 420);
  // The member always tops every non-member that is drawn.
  EXPECT_EQ(result->auc.low, 1);
  EXPECT_EQ(result->auc.high, 1);
}

TEST(BootstrapTest, Errors) {
  const std::vector<double> scores = {0.9, 0.5, 0.1};
  const std::vector<uint8_t> members = {1, 0, 0};
  BootstrapOptions options;
  options.resamples = 0;
  EXPECT_EQ(BootstrapCi(scores, members, DefaultFprs(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.resamples = 10;
  options.confidence = 1.0;
  EXPECT_EQ(BootstrapCi(scores, members, DefaultFprs(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.confidence = 0.9;
  const std::vector<double> bad_alpha = {-0.1};
  EXPECT_EQ(BootstrapCi(scores, members, bad_alpha, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<double> nan_scores = {0.9, std::nan(""), 0.1};
  EXPECT_EQ(BootstrapCiNaive(nan_scores, members, DefaultFprs(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Two points, one replicate: if it misses a class there is nothing to report.
  const std::vector<double> two = {0.9, 0.1};
  const std::vector<uint8_t> two_members = {1, 0};
  options.resamples = 1;
  int failed = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    options.seed = seed;
    auto r = BootstrapCi(two, two_members, DefaultFprs(), options);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
      ++failed;
    }
  }
  EXPECT_GT(failed, 0);
  EXPECT_LT(failed, 20);
}

}  // namespace
}  // namespace mia::metrics
