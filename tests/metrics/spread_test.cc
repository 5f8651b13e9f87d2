#include "core/metrics/spread.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace mia::metrics {
namespace {

TEST(SpreadTest, Empty) {
  const Spread s = Summarize({});
  EXPECT_EQ(s.count, 0);
  EXPECT_EQ(s.mean, 0);
  EXPECT_EQ(s.stddev, 0);
}

TEST(SpreadTest, Single) {
  const std::vector<double> v = {0.7};
  const Spread s = Summarize(v);
  EXPECT_EQ(s.count, 1);
  EXPECT_DOUBLE_EQ(s.mean, 0.7);
  EXPECT_EQ(s.stddev, 0);
  EXPECT_DOUBLE_EQ(s.min, 0.7);
  EXPECT_DOUBLE_EQ(s.max, 0.7);
}

TEST(SpreadTest, HandExample) {
  // {2, 4, 4, 4, 5, 5, 7, 9}: mean 5, squared deviations sum 32,
  // sample variance 32 / 7, stddev sqrt(32 / 7) = 2.13809.
  const std::vector<double> v = {4, 2, 9, 4, 5, 4, 7, 5};
  const Spread s = Summarize(v);
  EXPECT_EQ(s.count, 8);
  EXPECT_DOUBLE_EQ(s.mean, 5);
  EXPECT_DOUBLE_EQ(s.stddev, std::sqrt(32.0 / 7));
  EXPECT_DOUBLE_EQ(s.min, 2);
  EXPECT_DOUBLE_EQ(s.max, 9);
}

TEST(SpreadTest, LargeOffsetKeepsPrecision) {
  // A naive sum-of-squares formula loses everything here.
  const std::vector<double> v = {1e9 + 1, 1e9 + 2, 1e9 + 3};
  EXPECT_NEAR(Summarize(v).stddev, 1.0, 1e-6);
}

}  // namespace
}  // namespace mia::metrics
