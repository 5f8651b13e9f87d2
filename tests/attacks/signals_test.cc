#include "core/attacks/signals.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia::attacks {
namespace {

using ::testing::HasSubstr;

// Rows split between threads give the same values, bit for bit, and the
// same first bad logit, as one thread.
TEST(SignalFromLogitsTest, ThreadsGiveTheSameValues) {
  const LogitsShape shape{3, 20000, 2, 5};  // 120,000 rows: several shares
  const int64_t rows = 3 * 20000 * 2;
  std::vector<float> logits(static_cast<size_t>(rows * 5));
  for (size_t k = 0; k < logits.size(); ++k) {
    logits[k] = static_cast<float>(std::sin(0.37 * static_cast<double>(k)) * 6);
  }
  std::vector<int64_t> labels(20000);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 5);
  for (SignalKind kind : {SignalKind::kProb, SignalKind::kLogitScaled, SignalKind::kLoss}) {
    auto serial = SignalFromLogits(logits, shape, labels, kind, 1.5, "logits", 1);
    ASSERT_TRUE(serial.ok()) << serial.status();
    for (int threads : {2, 3, 7}) {
      auto parallel = SignalFromLogits(logits, shape, labels, kind, 1.5, "logits", threads);
      ASSERT_TRUE(parallel.ok()) << parallel.status();
      EXPECT_EQ(parallel->values, serial->values) << threads;
    }
  }
  // Two bad logits in different shares: the first is reported either way.
  logits[7 * 5 + 1] = std::numeric_limits<float>::infinity();
  logits[100000 * 5 + 3] = std::numeric_limits<float>::quiet_NaN();
  for (int threads : {1, 2, 7}) {
    auto bad = SignalFromLogits(logits, shape, labels, SignalKind::kProb, 1.0, "logits", threads);
    ASSERT_FALSE(bad.ok());
    EXPECT_THAT(bad.status().message(), HasSubstr("non-finite value at flat index 36")) << threads;
  }
}

TEST(SignalFromLogitsTest, HandWorkedThreeClasses) {
  // logits (2, 0, 0), label 0: p = e^2 / (e^2 + 2) = 7.389056 / 9.389056 = 0.786986;
  // phi = 2 - log(e^0 + e^0) = 2 - log 2 = 1.306853; loss = -log p = log(9.389056 / 7.389056) =
  // 0.239545.
  const std::vector<float> logits = {2, 0, 0};
  const std::vector<int64_t> labels = {0};
  LogitsShape shape{1, 1, 1, 3};
  auto p = SignalFromLogits(logits, shape, labels, SignalKind::kProb, 1.0, "logits");
  auto phi = SignalFromLogits(logits, shape, labels, SignalKind::kLogitScaled, 1.0, "logits");
  auto loss = SignalFromLogits(logits, shape, labels, SignalKind::kLoss, 1.0, "logits");
  ASSERT_TRUE(p.ok() && phi.ok() && loss.ok());
  EXPECT_NEAR(p->values[0], 0.786986, 1e-6);
  EXPECT_NEAR(phi->values[0], 1.306853, 1e-6);
  EXPECT_NEAR(loss->values[0], 0.239545, 1e-6);
  // phi is log p - log(1 - p).
  EXPECT_NEAR(phi->values[0], std::log(p->values[0]) - std::log1p(-p->values[0]), 1e-12);
}

TEST(SignalFromLogitsTest, TemperatureScalesLogits) {
  // T = 2: logits become (1, 0, 0): p = e / (e + 2) = 0.576117.
  const std::vector<float> logits = {2, 0, 0};
  const std::vector<int64_t> labels = {0};
  auto p = SignalFromLogits(logits, {1, 1, 1, 3}, labels, SignalKind::kProb, 2.0, "logits");
  ASSERT_TRUE(p.ok());
  EXPECT_NEAR(p->values[0], 0.576117, 1e-6);
  // Loss is the model's cross-entropy, at T = 1, whatever T is.
  auto loss = SignalFromLogits(logits, {1, 1, 1, 3}, labels, SignalKind::kLoss, 2.0, "logits");
  EXPECT_NEAR(loss->values[0], 0.239545, 1e-6);
}

TEST(SignalFromLogitsTest, StableForConfidentModels) {
  // p rounds to 1 in double, but phi = 1000 - 0 exactly with the stable formula.
  const std::vector<float> logits = {1000, 0, -5, 3};
  const std::vector<int64_t> labels = {0, 1};
  auto phi = SignalFromLogits(logits, {1, 2, 1, 2}, labels, SignalKind::kLogitScaled, 1.0, "l");
  ASSERT_TRUE(phi.ok());
  EXPECT_DOUBLE_EQ(phi->values[0], 1000.0);  // exact: no clamp from logits
  EXPECT_DOUBLE_EQ(phi->values[1], 3.0 - (-5.0));
  const std::vector<float> moderate = {700, 0};
  auto phi2 = SignalFromLogits(moderate, {1, 1, 1, 2}, {0}, SignalKind::kLogitScaled, 1.0, "l");
  EXPECT_DOUBLE_EQ(phi2->values[0], 700.0);
  // Margins far beyond 745 (logits scaled by 1e4) stay exact.
  const std::vector<float> huge = {2.5e4f, -1.0e4f, 0.0f};
  auto phi3 = SignalFromLogits(huge, {1, 1, 1, 3}, {0}, SignalKind::kLogitScaled, 1.0, "l");
  ASSERT_TRUE(phi3.ok());
  EXPECT_DOUBLE_EQ(phi3->values[0], 2.5e4);  // 25000 - logsumexp(-1e4, 0) = 25000 - 0
  auto phi4 = SignalFromLogits(huge, {1, 1, 1, 3}, {1}, SignalKind::kLogitScaled, 1.0, "l");
  EXPECT_DOUBLE_EQ(phi4->values[0], -1.0e4 - 2.5e4);
}

TEST(SignalFromLogitsTest, AugmentationAxisUsesThePointsLabel) {
  // [M=1, N=2, A=2, C=2]: the label of point 1 applies to both of its queries.
  const std::vector<float> logits = {0, 1, 1, 0, 3, 0, 0, 3};
  const std::vector<int64_t> labels = {1, 0};
  auto phi = SignalFromLogits(logits, {1, 2, 2, 2}, labels, SignalKind::kLogitScaled, 1.0, "l");
  ASSERT_TRUE(phi.ok());
  EXPECT_EQ(phi->queries, 2);
  EXPECT_DOUBLE_EQ(phi->at(0, 0, 0), 1.0);
  EXPECT_DOUBLE_EQ(phi->at(0, 0, 1), -1.0);
  EXPECT_DOUBLE_EQ(phi->at(0, 1, 0), 3.0);
  EXPECT_DOUBLE_EQ(phi->at(0, 1, 1), -3.0);
}

TEST(SignalFromLogitsTest, ErrorsNameArrayAndIndex) {
  const std::vector<float> logits = {0, 1, 2, 3};
  auto bad_label = SignalFromLogits(logits, {1, 2, 1, 2}, {0, 2}, SignalKind::kProb, 1, "logits");
  EXPECT_FALSE(bad_label.ok());
  EXPECT_THAT(bad_label.status().message(), HasSubstr("entry 1"));
  const std::vector<float> nan = {0, std::numeric_limits<float>::quiet_NaN(), 2, 3};
  auto bad_value = SignalFromLogits(nan, {1, 2, 1, 2}, {0, 1}, SignalKind::kProb, 1, "logits");
  EXPECT_THAT(bad_value.status().message(), HasSubstr("flat index 1"));
  EXPECT_THAT(bad_value.status().message(), HasSubstr("logits"));
  auto one_class = SignalFromLogits(logits, {1, 4, 1, 1}, {0, 0, 0, 0}, SignalKind::kProb, 1, "x");
  EXPECT_FALSE(one_class.ok());
  auto bad_t = SignalFromLogits(logits, {1, 2, 1, 2}, {0, 1}, SignalKind::kProb, 0, "x");
  EXPECT_FALSE(bad_t.ok());
}

TEST(ConvertSignalTest, RoundTripsBetweenKinds) {
  SignalTensor p;
  p.models = 1;
  p.points = 5;
  p.values = {1e-12, 0.1, 0.5, 0.9, 1 - 1e-12};
  for (SignalKind to : {SignalKind::kLogitScaled, SignalKind::kLoss}) {
    SignalTensor there = ConvertSignal(p, SignalKind::kProb, to);
    SignalTensor back = ConvertSignal(there, to, SignalKind::kProb);
    for (size_t k = 0; k < p.values.size(); ++k) {
      EXPECT_NEAR(back.values[k], p.values[k], 1e-9) << SignalKindName(to) << " " << k;
    }
  }
  SignalTensor loss = ConvertSignal(p, SignalKind::kProb, SignalKind::kLoss);
  SignalTensor phi_from_loss = ConvertSignal(loss, SignalKind::kLoss, SignalKind::kLogitScaled);
  EXPECT_NEAR(phi_from_loss.values[2], 0.0, 1e-12);
  EXPECT_NEAR(phi_from_loss.values[3], std::log(9.0), 1e-9);
}

TEST(ConvertSignalTest, ExtremeProbabilitiesGiveFiniteLogitScaled) {
  SignalTensor p;
  p.models = 1;
  p.points = 2;
  p.values = {0.0, 1.0};
  SignalTensor phi = ConvertSignal(p, SignalKind::kProb, SignalKind::kLogitScaled);
  EXPECT_DOUBLE_EQ(phi.values[0], -kMaxLogitScaled);
  EXPECT_DOUBLE_EQ(phi.values[1], kMaxLogitScaled);
}

TEST(ValidateSignalTest, RejectsOutOfRangeAndNonFinite) {
  SignalTensor t;
  t.models = 1;
  t.points = 3;
  t.values = {0.5, 1.5, 0.2};
  EXPECT_THAT(ValidateSignal(t, SignalKind::kProb, "signals").message(), HasSubstr("flat index 1"));
  EXPECT_TRUE(ValidateSignal(t, SignalKind::kLogitScaled, "signals").ok());
  t.values[2] = std::numeric_limits<double>::infinity();
  EXPECT_THAT(ValidateSignal(t, SignalKind::kLogitScaled, "signals").message(),
              HasSubstr("flat index 2"));
  t.values = {0.5, -0.1, 0};
  EXPECT_FALSE(ValidateSignal(t, SignalKind::kLoss, "signals").ok());
}

}  // namespace
}  // namespace mia::attacks
