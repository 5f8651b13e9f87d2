// DP-SGD (core/training/dp_sgd.h): per-example clipping against an
// independent loop over microbatches of one, the noise's scale and seeding,
// and the accountant's record of the steps taken.
#include "core/training/dp_sgd.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/common/random.h"
#include "core/metrics/rdp_accountant.h"
#include "core/models/registry.h"
#include "core/training/archive.h"
#include "core/training/engine.h"
#include "core/training/recipe.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/training/test_data.h"

namespace mia::training {
namespace {

using ::testing::HasSubstr;
using testing::Images;
using testing::Range;
using testing::Tabular;
using testing::TestDir;

ModelSpec Mlp() {
  ModelSpec spec;
  spec.architecture = "mlp";
  spec.hidden = {32, 16};
  spec.activation = "tanh";
  return spec;
}

ModelSpec Cnn() {
  ModelSpec spec;
  spec.architecture = "cnn";
  spec.width = 1;
  return spec;
}

TrainRecipe DpRecipe(double sigma, double clip, int epochs, int batch) {
  TrainRecipe r;
  r.optimizer = "sgd";
  r.learning_rate = 1.0;
  r.momentum = 0.0;
  r.epochs = epochs;
  r.batch_size = batch;
  r.dp.enabled = true;
  r.dp.noise_multiplier = sigma;
  r.dp.max_grad_norm = clip;
  r.dp.delta = 1e-5;
  return r;
}

TrainContext Cpu() {
  TrainContext ctx;
  ctx.device = "cpu";
  return ctx;
}

// Rows [0, b) of `d` as a batch x [b, sample...] and labels [b].
std::pair<torch::Tensor, torch::Tensor> Batch(const data::Dataset& d, int64_t b) {
  std::vector<int64_t> shape = {b};
  shape.insert(shape.end(), d.sample_shape.begin(), d.sample_shape.end());
  torch::Tensor x = torch::from_blob(const_cast<float*>(d.features.data()), shape).clone();
  torch::Tensor y = torch::from_blob(const_cast<int64_t*>(d.labels.data()), {b}, torch::kInt64)
                        .clone();
  return {x, y};
}

double NormOf(const std::vector<torch::Tensor>& grads) {
  double squared = 0;
  for (const torch::Tensor& g : grads) squared += g.to(torch::kFloat64).pow(2).sum().item<double>();
  return std::sqrt(squared);
}

// Plain definition: for each example alone, backward on the single model,
// clip the whole gradient to norm C, add up.
void CheckClippingAgainstMicrobatches(const ModelSpec& spec, const data::Dataset& d) {
  const int64_t b = 12;
  auto model = models::BuildModel(spec, {d.sample_shape, d.num_classes}, 3);
  ASSERT_TRUE(model.ok()) << model.status();
  std::shared_ptr<models::ModelGroup> group = models::WrapSingle(*model);
  group->train(false);  // deterministic (no dropout in these models anyway)
  const auto [x, y] = Batch(d, b);

  std::vector<torch::Tensor> reference;
  std::vector<double> norms;
  const std::vector<torch::Tensor> params = (*model)->parameters();
  for (const torch::Tensor& p : params) reference.push_back(torch::zeros_like(p));
  for (int64_t i = 0; i < b; ++i) {
    (*model)->zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(
        (*model)->forward(x.narrow(0, i, 1)), y.narrow(0, i, 1));
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (const torch::Tensor& p : params) grads.push_back(p.grad().clone());
    norms.push_back(NormOf(grads));
  }
  // A clip norm that clips about half of the examples.
  std::vector<double> sorted = norms;
  std::sort(sorted.begin(), sorted.end());
  const double clip = sorted[b / 2];
  ASSERT_GT(sorted.back(), clip * 1.01);
  for (int64_t i = 0; i < b; ++i) {
    (*model)->zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(
        (*model)->forward(x.narrow(0, i, 1)), y.narrow(0, i, 1));
    loss.backward();
    const double scale = std::min(1.0, clip / norms[i]);
    for (size_t p = 0; p < params.size(); ++p) reference[p] += params[p].grad() * scale;
  }

  std::vector<double> got_norms;
  const std::vector<torch::Tensor> sum = ClippedGradientSum(*group, x, y, clip, &got_norms);
  ASSERT_EQ(sum.size(), reference.size());
  for (size_t p = 0; p < sum.size(); ++p) {
    EXPECT_TRUE(torch::allclose(sum[p], reference[p], 1e-5, 1e-5))
        << "parameter " << p << " max diff "
        << (sum[p] - reference[p]).abs().max().item<double>();
  }
  ASSERT_EQ(got_norms.size(), norms.size());
  for (int64_t i = 0; i < b; ++i) EXPECT_NEAR(got_norms[i], norms[i], 1e-5 * norms[i]);

  // Each example's clipped gradient alone has norm at most C (equal to C
  // when it was clipped).
  for (int64_t i = 0; i < b; ++i) {
    const std::vector<torch::Tensor> one =
        ClippedGradientSum(*group, x.narrow(0, i, 1), y.narrow(0, i, 1), clip);
    const double n = NormOf(one);
    EXPECT_LE(n, clip * (1 + 1e-6)) << "example " << i;
    if (norms[i] > clip) {
      EXPECT_NEAR(n, clip, 1e-5 * clip);
    }
  }
}

TEST(DpSgdTest, MlpClippedSumMatchesMicrobatchesOfOne) {
  CheckClippingAgainstMicrobatches(Mlp(), Tabular(40, 10, 4, 1.0, 0.2, 1));
}

TEST(DpSgdTest, CnnClippedSumMatchesMicrobatchesOfOne) {
  CheckClippingAgainstMicrobatches(Cnn(), Images(40, 1, 8, 2));
}

// The trained archive's tensors minus the initial model's, flattened.
std::vector<double> Updates(const ModelSpec& spec, const data::Dataset& d, uint64_t seed,
                            const std::string& path) {
  auto initial = models::BuildModel(spec, {d.sample_shape, d.num_classes},
                                    DeriveSeed(seed, kInitStream));
  auto trained = models::BuildModel(spec, {d.sample_shape, d.num_classes}, 999);
  EXPECT_TRUE(initial.ok() && trained.ok());
  EXPECT_TRUE(LoadModelState(path, **trained).ok());
  std::vector<double> out;
  const auto a = (*initial)->State(), b = (*trained)->State();
  for (size_t t = 0; t < a.size(); ++t) {
    const torch::Tensor diff = (b[t].value - a[t].value).to(torch::kFloat64).flatten().contiguous();
    out.insert(out.end(), diff.data_ptr<double>(), diff.data_ptr<double>() + diff.numel());
  }
  return out;
}

TEST(DpSgdTest, NoiseHasStdSigmaCOverExpectedBatchAndIsSeeded) {
  // A tiny C makes the clipped sum negligible (at most n C / (q n) = 1e-5),
  // so one SGD step at learning rate 1 moves each parameter by the noise
  // alone: N(0, (sigma C / (q n))^2), here q = 1, n = 10: std 0.1.
  const data::Dataset d = Tabular(10, 20, 4, 1.0, 0.0, 4);
  const std::string dir = TestDir();
  const TrainRecipe r = DpRecipe(/*sigma=*/1e4, /*clip=*/1e-5, /*epochs=*/1, /*batch=*/10);
  const auto paths = std::vector<std::string>{dir + "/a.pt", dir + "/b.pt", dir + "/c.pt"};
  TrainContext ctx = Cpu();
  auto reports = TrainModels(d, Mlp(), r, {Range(0, 10), Range(0, 10), Range(0, 10)}, {},
                             {21, 21, 22}, paths, ctx);
  ASSERT_TRUE(reports.ok()) << reports.status();
  const std::vector<double> u = Updates(Mlp(), d, 21, paths[0]);
  ASSERT_GT(u.size(), 900u);
  double mean = 0, ss = 0;
  for (double v : u) mean += v;
  mean /= u.size();
  for (double v : u) ss += (v - mean) * (v - mean);
  const double sd = std::sqrt(ss / (u.size() - 1));
  const double expected = 1e4 * 1e-5 / 10.0;  // the update is -lr * noise / (q n)
  // Standard error of a sample sd: sd / sqrt(2 N), about 2% here; allow 5 of them.
  EXPECT_NEAR(sd, expected, 5 * expected / std::sqrt(2.0 * u.size()));
  EXPECT_NEAR(mean, 0.0, 5 * expected / std::sqrt(static_cast<double>(u.size())));
  // Same seed, same noise; another seed, other noise.
  const std::vector<double> same = Updates(Mlp(), d, 21, paths[1]);
  EXPECT_EQ(u, same);
  const std::vector<double> other = Updates(Mlp(), d, 22, paths[2]);
  EXPECT_NE(u, other);
  const ModelReport::Dp& dp = (*reports)[0].dp;
  EXPECT_TRUE(dp.enabled);
  EXPECT_EQ(dp.steps, 1);
  EXPECT_DOUBLE_EQ(dp.sample_rate, 1.0);
  EXPECT_FALSE((*reports)[0].batched);  // DP models never stack
}

TEST(DpSgdTest, RecordedEpsilonIsTheAccountantsForTheStepsTaken) {
  const data::Dataset d = Tabular(120, 10, 4, 1.0, 0.1, 5);
  const std::string dir = TestDir();
  TrainRecipe r = DpRecipe(/*sigma=*/1.3, /*clip=*/1.0, /*epochs=*/3, /*batch=*/15);
  r.learning_rate = 0.1;
  r.optimizer = "adam";
  TrainContext ctx = Cpu();
  int progress_calls = 0;
  ctx.progress = [&](int, int, int, int) { ++progress_calls; };
  // 100 rows, batch 15: q = 0.15, ceil(1 / q) = 7 steps per epoch, 21 in all.
  auto reports = TrainModels(d, Mlp(), r, {Range(0, 100)}, Range(100, 120), {3},
                             {dir + "/m.pt"}, ctx);
  ASSERT_TRUE(reports.ok()) << reports.status();
  const ModelReport::Dp& dp = (*reports)[0].dp;
  EXPECT_EQ(dp.steps, 21);
  EXPECT_EQ(progress_calls, 21);
  EXPECT_DOUBLE_EQ(dp.sample_rate, 0.15);
  EXPECT_DOUBLE_EQ(dp.noise_multiplier, 1.3);
  EXPECT_DOUBLE_EQ(dp.max_grad_norm, 1.0);
  EXPECT_DOUBLE_EQ(dp.delta, 1e-5);
  metrics::DpSgdAccounting run;
  run.sample_rate = 0.15;
  run.noise_multiplier = 1.3;
  run.steps = 21;
  run.delta = 1e-5;
  auto eps = metrics::ComputeDpSgdEpsilon(run);
  ASSERT_TRUE(eps.ok());
  EXPECT_DOUBLE_EQ(dp.epsilon, eps->epsilon);
  EXPECT_EQ(dp.order, eps->order);
  EXPECT_TRUE(std::isfinite(dp.epsilon));
  EXPECT_GT(dp.epsilon, 0);
}

TEST(DpSgdTest, TargetEpsilonSolvesSigmaPerModel) {
  const data::Dataset d = Tabular(200, 10, 4, 1.0, 0.1, 6);
  const std::string dir = TestDir();
  TrainRecipe r = DpRecipe(0, 1.0, 2, 20);
  r.learning_rate = 0.05;
  r.dp.target_epsilon = 4.0;
  // Two models of different sizes: different q, so different sigma.
  auto reports = TrainModels(d, Mlp(), r, {Range(0, 100), Range(0, 160)}, {}, {1, 2},
                             {dir + "/a.pt", dir + "/b.pt"}, Cpu());
  ASSERT_TRUE(reports.ok()) << reports.status();
  for (const ModelReport& m : *reports) {
    EXPECT_LE(m.dp.epsilon, 4.0);
    EXPECT_GT(m.dp.epsilon, 4.0 * 0.999);
    metrics::DpSgdAccounting run;
    run.sample_rate = m.dp.sample_rate;
    run.noise_multiplier = m.dp.noise_multiplier;
    run.steps = m.dp.steps;
    run.delta = m.dp.delta;
    EXPECT_DOUBLE_EQ(metrics::ComputeDpSgdEpsilon(run)->epsilon, m.dp.epsilon);
  }
  EXPECT_NE((*reports)[0].dp.noise_multiplier, (*reports)[1].dp.noise_multiplier);
  EXPECT_EQ((*reports)[0].dp.steps, 10);
  EXPECT_EQ((*reports)[1].dp.steps, 16);

  r.dp.target_epsilon = 1e-3;  // below what any sigma reaches at delta 1e-5
  auto unreachable =
      TrainModels(d, Mlp(), r, {Range(0, 100)}, {}, {1}, {dir + "/c.pt"}, Cpu());
  ASSERT_FALSE(unreachable.ok());
  EXPECT_EQ(unreachable.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(unreachable.status().message(), HasSubstr("train.dp.target_epsilon"));
}

TEST(DpSgdTest, BatchNormModelsAndBadSettingsAreRefused) {
  const data::Dataset d = Images(20, 3, 8, 7);
  const std::string dir = TestDir();
  auto refused =
      TrainModels(d, testing::SmallWrn(), DpRecipe(1.0, 1.0, 1, 4), {Range(0, 8)}, {}, {1}, {dir + "/w.pt"}, Cpu());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("batch-norm"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/w.pt"));

  TrainRecipe bad = DpRecipe(0.0, 1.0, 1, 4);
  auto no_sigma = TrainModels(d, Cnn(), bad, {Range(0, 8)}, {}, {1}, {dir + "/c.pt"}, Cpu());
  EXPECT_THAT(no_sigma.status().message(), HasSubstr("dp.noise_multiplier"));
  bad = DpRecipe(1.0, -1.0, 1, 4);
  auto bad_clip = TrainModels(d, Cnn(), bad, {Range(0, 8)}, {}, {1}, {dir + "/c.pt"}, Cpu());
  EXPECT_THAT(bad_clip.status().message(), HasSubstr("dp.max_grad_norm"));
}

TEST(DpSgdTest, CnnWithAugmentationTrainsReproducibly) {
  const data::Dataset d = Images(40, 1, 8, 8);
  const std::string dir = TestDir();
  TrainRecipe r = DpRecipe(1.0, 1.0, 1, 8);
  r.learning_rate = 0.1;
  r.random_crop = true;
  r.crop_padding = 1;
  r.horizontal_flip = true;
  auto reports = TrainModels(d, Cnn(), r, {Range(0, 32), Range(0, 32)}, Range(32, 40), {5, 5},
                             {dir + "/a.pt", dir + "/b.pt"}, Cpu());
  ASSERT_TRUE(reports.ok()) << reports.status();
  EXPECT_EQ(Updates(Cnn(), d, 5, dir + "/a.pt"), Updates(Cnn(), d, 5, dir + "/b.pt"));
  EXPECT_EQ((*reports)[0].dp.steps, 4);
}

}  // namespace
}  // namespace mia::training
