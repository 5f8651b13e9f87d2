#include "core/attacks/token_signals.h"

#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia::attacks {
namespace {

using ::testing::HasSubstr;

// One model on 2 texts of lengths 2 and 1, L = `length`, values from `base`.
TokenSignals OneModel(int64_t length, float base, bool stats) {
  TokenSignals s;
  s.models = 1;
  s.points = 2;
  s.max_length = length;
  s.lengths = {2, 1};
  for (int64_t k = 0; k < 2 * length; ++k) s.logprobs.push_back(base - static_cast<float>(k));
  if (stats) {
    s.mean.assign(2 * length, -1.0f);
    s.var.assign(2 * length, 0.5f);
  }
  return s;
}

TEST(TokenSignalsTest, StackKeepsModelOrderAndPadsToTheLongest) {
  const std::vector<TokenSignals> parts = {OneModel(2, -1, true), OneModel(3, -10, true)};
  auto s = StackTokenSignals(parts);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->models, 2);
  EXPECT_EQ(s->points, 2);
  EXPECT_EQ(s->max_length, 3);
  EXPECT_EQ(s->lengths, (std::vector<int64_t>{2, 1}));
  // Model 0 (L = 2 padded to 3): text 0 = {-1, -2, 0}, text 1 = {-3, -4, 0};
  // model 1: text 0 = {-10, -11, -12}, text 1 = {-13, -14, -15}.
  EXPECT_EQ(s->logprobs, (std::vector<float>{-1, -2, 0, -3, -4, 0, -10, -11, -12, -13, -14, -15}));
  EXPECT_TRUE(s->has_stats());
  EXPECT_EQ(s->var[s->offset(1, 1)], 0.5f);
  EXPECT_TRUE(ValidateTokenSignals(*s).ok());
}

TEST(TokenSignalsTest, StackRefusesDisagreeingParts) {
  TokenSignals other_lengths = OneModel(2, -1, false);
  other_lengths.lengths = {1, 1};
  EXPECT_THAT(StackTokenSignals({OneModel(2, -1, false), other_lengths}).status().message(),
              HasSubstr("other texts or lengths"));
  EXPECT_THAT(StackTokenSignals({OneModel(2, -1, false), OneModel(2, -1, true)}).status().message(),
              HasSubstr("mean and variance"));
  EXPECT_FALSE(StackTokenSignals({}).ok());
}

TEST(TokenSignalsTest, ValidateChecksOnlyScoredPositions) {
  TokenSignals s = OneModel(3, -1, true);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  s.logprobs[2] = nan;  // text 0 has 2 tokens: position 2 is padding
  s.var[5] = -9;        // text 1 has 1 token: position 2 is padding
  EXPECT_TRUE(ValidateTokenSignals(s).ok());
  s.logprobs[1] = nan;
  EXPECT_THAT(ValidateTokenSignals(s, "population_").message(),
              HasSubstr("array 'population_token_logprobs': non-finite value (NaN or inf) at "
                        "[0, 0, 1]"));
  s.logprobs[1] = 2e-4f;
  EXPECT_THAT(ValidateTokenSignals(s).message(), HasSubstr("value above 0 at [0, 0, 1]"));
  s.logprobs[1] = 5e-5f;  // rounding: accepted, then clamped
  EXPECT_TRUE(ValidateTokenSignals(s).ok());
  ClampTokenSignals(&s);
  EXPECT_EQ(s.logprobs[1], 0.0f);
  s.lengths[1] = 4;
  EXPECT_THAT(ValidateTokenSignals(s).message(), HasSubstr("entry 1 is outside [1, 3]"));
  s.lengths[1] = 1;
  s.var.clear();
  EXPECT_THAT(ValidateTokenSignals(s).message(), HasSubstr("give both or neither"));
}

}  // namespace
}  // namespace mia::attacks
