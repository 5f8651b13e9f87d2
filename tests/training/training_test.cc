// TrainModels: learning, reproducibility, batched against sequential
// training, cancellation, validation, and one step of the large image nets.
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/models/layers.h"
#include "core/models/registry.h"
#include "core/training/archive.h"
#include "core/training/engine.h"
#include "core/training/optimizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/training/read_archive.h"
#include "tests/training/test_data.h"

namespace mia::training {
namespace {

using ::testing::HasSubstr;
using testing::Images;
using testing::Range;
using testing::ReadArchive;
using testing::SmallCnn;
using testing::SmallWrn;
using testing::Tabular;
using testing::TestDir;

std::vector<std::string> Paths(const std::string& dir, const std::string& stem, int n) {
  std::vector<std::string> paths;
  for (int k = 0; k < n; ++k) paths.push_back(dir + "/" + stem + std::to_string(k) + ".pt");
  return paths;
}

TrainContext Cpu() {
  TrainContext ctx;
  ctx.device = "cpu";
  return ctx;
}

ModelSpec Mlp(std::vector<int> hidden) {
  ModelSpec spec;
  spec.architecture = "mlp";
  spec.hidden = std::move(hidden);
  spec.activation = "tanh";
  return spec;
}

TrainRecipe Sgd(double lr, int epochs, int batch) {
  TrainRecipe r;
  r.optimizer = "sgd";
  r.learning_rate = lr;
  r.momentum = 0.9;
  r.epochs = epochs;
  r.batch_size = batch;
  return r;
}

TEST(TrainingTest, MlpLearnsAndOverfitsFewNoisyRows) {
  const data::Dataset d = Tabular(1200, 20, 4, 1.5, 0.3, 11);
  const std::string dir = TestDir();
  TrainRecipe r = Sgd(0.05, 150, 20);
  auto reports = TrainModels(d, Mlp({128}), r, {Range(0, 200)}, Range(200, 1200), {5},
                             Paths(dir, "m", 1), Cpu());
  ASSERT_TRUE(reports.ok()) << reports.status();
  const ModelReport& m = (*reports)[0];
  EXPECT_GT(m.train_accuracy, m.test_accuracy + 0.2);
  EXPECT_GT(m.test_accuracy, 0.35);  // better than chance (0.25) despite overfitting
  EXPECT_LT(m.train_loss, m.test_loss);
  EXPECT_FALSE(m.batched);
  EXPECT_TRUE(std::filesystem::exists(dir + "/m0.pt"));
}

TEST(TrainingTest, SameSeedSameParametersOtherSeedOthers) {
  const data::Dataset d = Images(120, 1, 8, 3);
  const std::string dir = TestDir();
  TrainRecipe r = Sgd(0.05, 2, 16);
  r.random_crop = true;
  r.crop_padding = 2;
  r.horizontal_flip = true;
  const auto paths = Paths(dir, "m", 3);
  TrainContext ctx;
  ctx.device = "cpu";
  ctx.allow_batched = false;
  auto reports = TrainModels(d, SmallCnn(), r, {Range(0, 100), Range(0, 100), Range(0, 100)},
                             Range(100, 120), {7, 7, 8}, paths, ctx);
  ASSERT_TRUE(reports.ok()) << reports.status();
  const auto a = ReadArchive(paths[0]), b = ReadArchive(paths[1]), c = ReadArchive(paths[2]);
  ASSERT_EQ(a.size(), 8u);
  bool any_different = false;
  for (const auto& [name, tensor] : a) {
    EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;  // bitwise
    any_different = any_different || !torch::equal(tensor, c.at(name));
  }
  EXPECT_TRUE(any_different);
}

// train.precision: bf16 runs the forward pass under autocast (here the
// CPU's): the models still learn, differ from fp32's (autocast was on),
// keep float32 weights, and leave autocast off afterwards.
TEST(TrainingTest, Bf16AutocastLearnsWithFloat32Weights) {
  const data::Dataset d = Images(400, 1, 8, 41);
  const std::string dir = TestDir();
  TrainRecipe r = Sgd(0.05, 4, 32);
  r.normalize_mean = {0.3f};
  r.normalize_std = {0.25f};
  TrainContext ctx = Cpu();
  ctx.allow_batched = true;
  const std::vector<std::vector<int64_t>> rows = {Range(0, 300), Range(50, 350)};
  auto fp32 = TrainModels(d, SmallCnn(), r, rows, Range(350, 400), {3, 4}, Paths(dir, "f", 2), ctx);
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  r.precision = "bf16";
  auto bf16 = TrainModels(d, SmallCnn(), r, rows, Range(350, 400), {3, 4}, Paths(dir, "h", 2), ctx);
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
  for (int k = 0; k < 2; ++k) {
    EXPECT_GT((*bf16)[k].test_accuracy, 0.8) << k;
    EXPECT_NEAR((*bf16)[k].test_accuracy, (*fp32)[k].test_accuracy, 0.1) << k;
    const auto a = ReadArchive(Paths(dir, "f", 2)[k]), b = ReadArchive(Paths(dir, "h", 2)[k]);
    bool any_different = false;
    for (const auto& [name, tensor] : b) {
      EXPECT_EQ(tensor.scalar_type(), torch::kFloat32) << name;
      any_different = any_different || !torch::equal(tensor, a.at(name));
    }
    EXPECT_TRUE(any_different) << "bf16 training gave fp32's parameters: autocast was off";
  }
  // A lone MLP would take the CPU's manual-gradient path, which is float32
  // only: bf16 goes through autograd instead, and differs from fp32.
  const data::Dataset t = Tabular(600, 10, 3, 1.0, 0.05, 42);
  TrainRecipe m = Sgd(0.05, 3, 50);
  auto lone32 = TrainModels(t, Mlp({16}), m, {Range(0, 500)}, Range(500, 600), {9},
                            Paths(dir, "l32_", 1), Cpu());
  m.precision = "bf16";
  auto lone16 = TrainModels(t, Mlp({16}), m, {Range(0, 500)}, Range(500, 600), {9},
                            Paths(dir, "l16_", 1), Cpu());
  ASSERT_TRUE(lone32.ok() && lone16.ok());
  EXPECT_GT((*lone16)[0].test_accuracy, 0.6);
  EXPECT_NE((*lone16)[0].train_loss, (*lone32)[0].train_loss);
}

TEST(TrainingTest, PrecisionIsCheckedAndNotForDpSgd) {
  const data::Dataset d = Tabular(100, 4, 2, 1.0, 0.0, 43);
  TrainRecipe r = Sgd(0.05, 1, 10);
  r.precision = "fp16";
  auto bad = TrainModels(d, Mlp({4}), r, {Range(0, 50)}, Range(50, 100), {1},
                         Paths(TestDir(), "p", 1), Cpu());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("recipe.precision"));
  r.precision = "bf16";
  r.dp.enabled = true;
  r.dp.noise_multiplier = 1.0;
  auto dp = TrainModels(d, Mlp({4}), r, {Range(0, 50)}, Range(50, 100), {1},
                        Paths(TestDir(), "q", 1), Cpu());
  ASSERT_FALSE(dp.ok());
  EXPECT_THAT(dp.status().message(), HasSubstr("recipe.precision"));
}

// The multi-tensor optimizer path (taken on GPUs) against the per-tensor one,
// for every optimizer: the same arithmetic, so the same models up to float
// rounding (fused multiply-adds in LibTorch's vectorized kernels).
TEST(TrainingTest, ForeachOptimizerUpdatesMatchPerTensorUpdates) {
  const data::Dataset d = Images(240, 1, 8, 44);
  const std::string dir = TestDir();
  for (const std::string optimizer : {"sgd", "adam", "adamw"}) {
    TrainRecipe r = Sgd(0.02, 2, 24);
    r.optimizer = optimizer;
    r.weight_decay = 0.01;
    r.nesterov = optimizer == "sgd";
    if (optimizer != "sgd") r.learning_rate = 3e-3;
    TrainContext ctx = Cpu();
    ctx.allow_batched = true;
    // Two stacked CNNs (rows of different lengths: some steps update one
    // model only, per model) and a lone one.
    const std::vector<std::vector<int64_t>> rows = {Range(0, 200), Range(20, 150), Range(40, 240)};
    const auto per_tensor = Paths(dir, optimizer + "_t", 3), foreach = Paths(dir, optimizer + "_f", 3);
    ASSERT_TRUE(TrainModels(d, SmallCnn(), r, rows, {}, {1, 2, 3}, per_tensor, ctx).ok());
    const bool before = SetForeachUpdatesOnCpu(true);
    auto reports = TrainModels(d, SmallCnn(), r, rows, {}, {1, 2, 3}, foreach, ctx);
    SetForeachUpdatesOnCpu(before);
    ASSERT_TRUE(reports.ok()) << reports.status();
    for (int k = 0; k < 3; ++k) {
      const auto a = ReadArchive(per_tensor[k]), b = ReadArchive(foreach[k]);
      for (const auto& [name, tensor] : a) {
        EXPECT_LE((tensor - b.at(name)).abs().max().item<double>(), 2e-5)
            << optimizer << " model " << k << " " << name;
      }
    }
  }
}

TEST(TrainingTest, SetChannelsLastChangesTheConvolutionWeightsLayoutOnly) {
  auto model = models::BuildModel(SmallWrn(), {{3, 8, 8}, 4}, 1);
  ASSERT_TRUE(model.ok());
  std::shared_ptr<models::ModelGroup> group = models::WrapSingle(*model);
  std::vector<torch::Tensor> before;
  for (const torch::Tensor& p : group->parameters()) before.push_back(p.detach().clone());
  group->SetChannelsLast(true);
  int convs = 0;
  const auto params = group->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::equal(params[i], before[i]));
    if (params[i].dim() == 4) {
      ++convs;
      EXPECT_TRUE(params[i].is_contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
  EXPECT_GT(convs, 3);
  group->SetChannelsLast(false);
  for (const torch::Tensor& p : group->parameters()) EXPECT_TRUE(p.is_contiguous());
}

// train.channels_last: the same models up to float rounding (a wide ResNet
// with batch norm and dropout alone, stacked CNNs), archives in the default
// layout, and the same signals. oneDNN's channels-last convolutions sum in
// another order (about 1e-5 relative per step here), which batch norm
// compounds: the wide ResNet is compared after 3 steps.
TEST(TrainingTest, ChannelsLastTrainsTheSameModels) {
  const data::Dataset d = Images(160, 3, 8, 45);
  const std::string dir = TestDir();
  for (const ModelSpec& spec : {SmallWrn(0.3), SmallCnn()}) {
    const bool is_wrn = spec.architecture == "wrn";
    TrainRecipe r = is_wrn ? Sgd(0.02, 1, 40) : Sgd(0.02, 2, 32);
    r.random_crop = true;
    r.crop_padding = 1;
    TrainContext ctx = Cpu();
    ctx.allow_batched = true;
    const std::vector<std::vector<int64_t>> rows = {Range(0, 120), Range(20, 140)};
    const auto plain = Paths(dir, spec.architecture + "_p", 2);
    const auto last = Paths(dir, spec.architecture + "_l", 2);
    ASSERT_TRUE(TrainModels(d, spec, r, rows, Range(140, 160), {5, 6}, plain, ctx).ok());
    ctx.channels_last = true;
    auto reports = TrainModels(d, spec, r, rows, Range(140, 160), {5, 6}, last, ctx);
    ASSERT_TRUE(reports.ok()) << reports.status();
    for (int k = 0; k < 2; ++k) {
      const auto a = ReadArchive(plain[k]), b = ReadArchive(last[k]);
      ASSERT_EQ(a.size(), b.size());
      for (const auto& [name, tensor] : a) {
        EXPECT_TRUE(torch::allclose(tensor, b.at(name), is_wrn ? 1e-3 : 1e-4, 1e-4))
            << spec.architecture << " model " << k << " " << name << ": differs by "
            << (tensor - b.at(name)).abs().max().item<double>();
      }
    }
    int classes = 0;
    TrainContext ictx = Cpu();
    QueryAugmentation aug;
    aug.flip = true;
    auto want = ComputeLogits(plain[0], false, spec, r, d, Range(0, 40), aug, ictx, &classes);
    ictx.channels_last = true;
    auto got = ComputeLogits(plain[0], false, spec, r, d, Range(0, 40), aug, ictx, &classes);
    ASSERT_TRUE(want.ok() && got.ok());
    EXPECT_TRUE(torch::allclose(torch::tensor(*want), torch::tensor(*got), 1e-5, 1e-5));
  }
}

// ClipGradNorm (no read-back of the norm) against LibTorch's
// clip_grad_norm_: the same gradients bit for bit, clipped or not, one
// tensor or several, parameters without gradients skipped.
TEST(TrainingTest, ClipGradNormEqualsLibTorchs) {
  torch::manual_seed(3);
  for (const double max_norm : {0.5, 1e6}) {
    for (const int tensors : {1, 4}) {
      std::vector<torch::Tensor> a, b;
      for (int i = 0; i < tensors; ++i) {
        const torch::Tensor g = torch::randn({7, 3}) * (i + 1);
        a.push_back(torch::zeros({7, 3}).requires_grad_());
        b.push_back(torch::zeros({7, 3}).requires_grad_());
        a.back().mutable_grad() = g.clone();
        b.back().mutable_grad() = g.clone();
      }
      a.push_back(torch::zeros({2}).requires_grad_());  // no gradient
      b.push_back(torch::zeros({2}).requires_grad_());
      torch::nn::utils::clip_grad_norm_(a, max_norm);
      ClipGradNorm(b, max_norm);
      for (int i = 0; i < tensors; ++i) {
        EXPECT_TRUE(torch::equal(a[i].grad(), b[i].grad())) << max_norm << " " << tensors << " " << i;
      }
      EXPECT_FALSE(b.back().grad().defined());
    }
  }
}

TEST(TrainingTest, DropoutTrainingIsReproducible) {
  const data::Dataset d = Tabular(300, 10, 4, 1.0, 0.1, 5);
  const std::string dir = TestDir();
  ModelSpec spec = Mlp({32});
  spec.dropout = 0.3;
  const auto paths = Paths(dir, "m", 2);
  for (const std::string& path : paths) {
    ASSERT_TRUE(
        TrainModels(d, spec, Sgd(0.05, 2, 32), {Range(0, 300)}, {}, {9}, {path}, Cpu()).ok());
  }
  const auto a = ReadArchive(paths[0]), b = ReadArchive(paths[1]);
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
}

// Trains the same K models batched and one after another and compares
// parameters and accuracies. Subset sizes differ so that some models sit out
// the last step of each epoch in the batched run.
void ExpectBatchedMatchesSequential(const data::Dataset& d, const ModelSpec& spec,
                                    const TrainRecipe& recipe,
                                    const std::vector<std::vector<int64_t>>& subsets,
                                    const std::vector<int64_t>& test, double atol) {
  const std::string dir = TestDir();
  const int k = static_cast<int>(subsets.size());
  std::vector<uint64_t> seeds;
  for (int i = 0; i < k; ++i) seeds.push_back(100 + i);
  TrainContext ctx;
  ctx.device = "cpu";
  ctx.allow_batched = true;
  auto batched = TrainModels(d, spec, recipe, subsets, test, seeds, Paths(dir, "b", k), ctx);
  ASSERT_TRUE(batched.ok()) << batched.status();
  ctx.allow_batched = false;
  auto sequential = TrainModels(d, spec, recipe, subsets, test, seeds, Paths(dir, "s", k), ctx);
  ASSERT_TRUE(sequential.ok()) << sequential.status();
  for (int i = 0; i < k; ++i) {
    EXPECT_TRUE((*batched)[i].batched);
    EXPECT_FALSE((*sequential)[i].batched);
    EXPECT_NEAR((*batched)[i].train_accuracy, (*sequential)[i].train_accuracy, 0.01) << i;
    EXPECT_NEAR((*batched)[i].test_accuracy, (*sequential)[i].test_accuracy, 0.01) << i;
    EXPECT_GT((*batched)[i].test_accuracy, 0.5) << i;  // it learned something
    const auto b = ReadArchive(Paths(dir, "b", k)[i]);
    const auto s = ReadArchive(Paths(dir, "s", k)[i]);
    ASSERT_EQ(b.size(), s.size());
    for (const auto& [name, tensor] : s) {
      ASSERT_EQ(b.count(name), 1u) << name;
      ASSERT_EQ(b.at(name).sizes(), tensor.sizes()) << name;
      const double diff = (b.at(name) - tensor).abs().max().item<double>();
      EXPECT_LE(diff, atol) << "model " << i << " tensor " << name;
    }
  }
}

std::vector<std::vector<int64_t>> Subsets(const std::vector<int64_t>& sizes, int64_t stride) {
  std::vector<std::vector<int64_t>> subsets;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t begin = static_cast<int64_t>(i) * stride;
    subsets.push_back(Range(begin, begin + sizes[i]));
  }
  return subsets;
}

TEST(BatchedTrainingTest, MlpSgdMatchesSequential) {
  const data::Dataset d = Tabular(2000, 20, 4, 1.5, 0.1, 21);
  TrainRecipe r = Sgd(0.05, 4, 50);
  r.weight_decay = 1e-3;
  r.nesterov = true;
  ExpectBatchedMatchesSequential(d, Mlp({32, 16}), r, Subsets({500, 497, 503, 510}, 300),
                                 Range(1600, 2000), 1e-4);
}

TEST(BatchedTrainingTest, MlpAdamWCosineMatchesSequential) {
  const data::Dataset d = Tabular(2000, 20, 4, 1.5, 0.1, 22);
  TrainRecipe r;
  r.optimizer = "adamw";
  r.learning_rate = 3e-3;
  r.weight_decay = 0.01;
  r.epochs = 4;
  r.batch_size = 50;
  r.schedule = "cosine";
  r.warmup_epochs = 1;
  ModelSpec spec = Mlp({32});
  spec.activation = "relu";
  spec.dropout = 0.2;
  ExpectBatchedMatchesSequential(d, spec, r, Subsets({500, 497, 503, 510}, 300), Range(1600, 2000),
                                 1e-4);
}

TEST(BatchedTrainingTest, CnnSgdWithAugmentationMatchesSequential) {
  const data::Dataset d = Images(400, 1, 8, 23);
  TrainRecipe r = Sgd(0.05, 3, 32);
  r.random_crop = true;
  r.crop_padding = 1;
  r.horizontal_flip = true;
  r.normalize_mean = {0.3f};
  r.normalize_std = {0.25f};
  ExpectBatchedMatchesSequential(d, SmallCnn(), r, Subsets({150, 146, 155, 150}, 60),
                                 Range(300, 400), 1e-4);
}

TEST(BatchedTrainingTest, GroupsAreCappedByMaxBatchedModels) {
  const data::Dataset d = Tabular(400, 10, 4, 1.0, 0.1, 24);
  const std::string dir = TestDir();
  TrainContext ctx;
  ctx.device = "cpu";
  ctx.max_batched_models = 2;
  std::vector<int> progress_models;
  ctx.progress = [&](int model, int, int, int) { progress_models.push_back(model); };
  auto reports = TrainModels(d, Mlp({16}), Sgd(0.05, 1, 100), Subsets({100, 100, 100}, 100), {},
                             {1, 2, 3}, Paths(dir, "m", 3), ctx);
  ASSERT_TRUE(reports.ok()) << reports.status();
  EXPECT_TRUE((*reports)[0].batched);
  EXPECT_TRUE((*reports)[1].batched);
  EXPECT_FALSE((*reports)[2].batched);  // the remainder trains alone
  // One call per model per step: 3 models x 1 epoch x 1 batch.
  EXPECT_THAT(progress_models, ::testing::UnorderedElementsAre(0, 1, 2));
}

// On a CPU with T intra-op threads the models train in T lanes of one thread
// each. Every model must come out as it does on one thread, each model is
// reported and saved exactly once, and the callbacks never overlap.
void ExpectLanesMatchOneThread(const data::Dataset& d, const ModelSpec& spec,
                               const TrainRecipe& recipe,
                               const std::vector<std::vector<int64_t>>& subsets,
                               const std::vector<int64_t>& test) {
  const std::string dir = TestDir();
  const int k = static_cast<int>(subsets.size());
  std::vector<uint64_t> seeds;
  for (int i = 0; i < k; ++i) seeds.push_back(7 + i);
  for (bool batched : {true, false}) {
    SetComputeThreads(1);
    TrainContext ctx = Cpu();
    ctx.allow_batched = batched;
    const std::string one = batched ? "one_b" : "one_s", lanes = batched ? "lane_b" : "lane_s";
    auto single = TrainModels(d, spec, recipe, subsets, test, seeds, Paths(dir, one, k), ctx);
    ASSERT_TRUE(single.ok()) << single.status();

    SetComputeThreads(2);
    std::atomic<int> in_callback{0};
    bool overlapped = false;
    std::vector<int> saved;
    std::vector<int> progressed(k, 0);
    ctx.progress = [&](int model, int, int, int) {
      overlapped = overlapped || in_callback.fetch_add(1) != 0;
      ++progressed[model];
      in_callback.fetch_sub(1);
    };
    ctx.model_saved = [&](int model, const ModelReport&) {
      overlapped = overlapped || in_callback.fetch_add(1) != 0;
      saved.push_back(model);
      in_callback.fetch_sub(1);
      return absl::OkStatus();
    };
    auto parallel = TrainModels(d, spec, recipe, subsets, test, seeds, Paths(dir, lanes, k), ctx);
    EXPECT_EQ(torch::get_num_threads(), 2);  // the lanes' one thread stays inside them
    SetComputeThreads(1);
    ASSERT_TRUE(parallel.ok()) << parallel.status();
    EXPECT_FALSE(overlapped);
    EXPECT_EQ(saved.size(), static_cast<size_t>(k));
    for (int i = 0; i < k; ++i) {
      EXPECT_EQ(std::count(saved.begin(), saved.end(), i), 1) << i;
      const int64_t batches =
          (static_cast<int64_t>(subsets[i].size()) + recipe.batch_size - 1) / recipe.batch_size;
      EXPECT_EQ(progressed[i], recipe.epochs * batches) << i;
      EXPECT_NEAR((*parallel)[i].test_accuracy, (*single)[i].test_accuracy, 1e-9) << i;
      const auto a = ReadArchive(Paths(dir, one, k)[i]);
      const auto b = ReadArchive(Paths(dir, lanes, k)[i]);
      ASSERT_EQ(a.size(), b.size());
      for (const auto& [name, tensor] : a) {
        ASSERT_EQ(b.count(name), 1u) << name;
        EXPECT_TRUE(b.at(name).isfinite().all().item<bool>()) << name;
        EXPECT_LE((b.at(name) - tensor).abs().max().item<double>(), 1e-5)
            << "model " << i << " tensor " << name << (batched ? " batched" : " sequential");
      }
    }
  }
}

TEST(BatchedTrainingTest, LanesTrainTheSameMlpsAsOneThread) {
  const data::Dataset d = Tabular(1200, 12, 4, 1.2, 0.1, 31);
  ExpectLanesMatchOneThread(d, Mlp({16}), Sgd(0.05, 3, 40), Subsets({300, 290, 310, 305, 300}, 150),
                            Range(1000, 1200));
}

TEST(BatchedTrainingTest, LanesTrainTheSameCnnsAsOneThread) {
  const data::Dataset d = Images(400, 1, 8, 33);
  TrainRecipe r;
  r.optimizer = "adam";
  r.learning_rate = 1e-3;
  r.epochs = 3;
  r.batch_size = 32;
  r.random_crop = true;
  r.crop_padding = 1;
  r.horizontal_flip = true;
  r.normalize_mean = {0.3f};
  r.normalize_std = {0.25f};
  ExpectLanesMatchOneThread(d, SmallCnn(), r, Subsets({150, 146, 155, 150}, 60), Range(300, 400));
}

// A lane that fails stops the others; its error, not theirs, is returned.
// Lane 0 (models 0, 1: 6,000 rows each) is still training when lane 1
// (models 2, 3: 50 rows each) fails to record model 2.
TEST(BatchedTrainingTest, AFailingLaneStopsTheOthers) {
  const data::Dataset d = Tabular(12100, 8, 4, 1.0, 0.1, 32);
  const std::string dir = TestDir();
  SetComputeThreads(2);
  TrainContext ctx = Cpu();
  ctx.model_saved = [](int model, const ModelReport&) {
    return model == 2 ? absl::DataLossError("cannot record model 2") : absl::OkStatus();
  };
  std::vector<std::vector<int64_t>> subsets = {Range(0, 6000), Range(6000, 12000),
                                               Range(12000, 12050), Range(12050, 12100)};
  const auto paths = Paths(dir, "f", 4);
  auto reports = TrainModels(d, Mlp({8}), Sgd(0.05, 20, 50), subsets, {}, {1, 2, 3, 4}, paths, ctx);
  SetComputeThreads(1);
  EXPECT_EQ(reports.status().code(), absl::StatusCode::kDataLoss) << reports.status();
  EXPECT_THAT(reports.status().message(), HasSubstr("cannot record model 2"));
  EXPECT_FALSE(std::filesystem::exists(paths[0]));  // lane 0 stopped before saving
  EXPECT_FALSE(std::filesystem::exists(paths[1]));
}

TEST(TrainingTest, ProgressReportsEveryBatch) {
  const data::Dataset d = Tabular(100, 5, 4, 1.0, 0.1, 25);
  const std::string dir = TestDir();
  TrainContext ctx;
  ctx.device = "cpu";
  int calls = 0, last_batches = 0;
  ctx.progress = [&](int model, int epoch, int batch, int batches) {
    EXPECT_EQ(model, 0);
    EXPECT_LT(epoch, 2);
    EXPECT_LT(batch, batches);
    last_batches = batches;
    ++calls;
  };
  ASSERT_TRUE(
      TrainModels(d, Mlp({8}), Sgd(0.1, 2, 30), {Range(0, 100)}, {}, {1}, Paths(dir, "m", 1), ctx)
          .ok());
  EXPECT_EQ(last_batches, 4);  // ceil(100 / 30)
  EXPECT_EQ(calls, 8);
}

TEST(TrainingTest, CancellationStopsWithoutWritingModels) {
  const data::Dataset d = Tabular(400, 10, 4, 1.0, 0.1, 26);
  const std::string dir = TestDir();
  std::atomic<bool> cancel{false};
  TrainContext ctx;
  ctx.device = "cpu";
  ctx.cancel = &cancel;
  int batches = 0;
  ctx.progress = [&](int, int, int, int) {
    if (++batches == 3) cancel = true;
  };
  const auto paths = Paths(dir, "m", 2);
  auto reports =
      TrainModels(d, Mlp({8}), Sgd(0.1, 5, 20), Subsets({200, 200}, 200), {}, {1, 2}, paths, ctx);
  EXPECT_EQ(reports.status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(std::filesystem::exists(paths[0]));
  EXPECT_FALSE(std::filesystem::exists(paths[1]));
}

TEST(TrainingTest, InvalidArgumentsNameTheField) {
  const data::Dataset d = Tabular(50, 5, 4, 1.0, 0.1, 27);
  const std::string dir = TestDir();
  const TrainContext ctx = Cpu();
  auto train = [&](const ModelSpec& spec, const TrainRecipe& r) {
    return TrainModels(d, spec, r, {Range(0, 40)}, Range(40, 50), {1}, Paths(dir, "m", 1), ctx)
        .status();
  };
  struct Case {
    ModelSpec spec;
    TrainRecipe recipe;
    std::string field;
  };
  auto with = [](auto edit) {
    TrainRecipe r;
    edit(r);
    return r;
  };
  ModelSpec unknown;
  unknown.architecture = "transformer";
  const std::vector<Case> cases = {
      {unknown, TrainRecipe(), "spec.architecture"},
      {SmallCnn(), TrainRecipe(), "sample_shape"},
      {Mlp({8}), with([](TrainRecipe& r) { r.epochs = 0; }), "recipe.epochs"},
      {Mlp({8}), with([](TrainRecipe& r) { r.optimizer = "rmsprop"; }), "recipe.optimizer"},
      {Mlp({8}), with([](TrainRecipe& r) { r.batch_size = 0; }), "recipe.batch_size"},
      {Mlp({8}), with([](TrainRecipe& r) { r.schedule = "step"; }), "recipe.schedule"},
      {Mlp({8}), with([](TrainRecipe& r) { r.learning_rate = -1; }), "recipe.learning_rate"},
      {Mlp({8}), with([](TrainRecipe& r) { r.horizontal_flip = true; }), "recipe.horizontal_flip"},
      {Mlp({8}), with([](TrainRecipe& r) {
         r.normalize_mean = {0.5f};
         r.normalize_std = {0.5f};
       }),
       "recipe.normalize_mean"},
  };
  for (const Case& c : cases) {
    const absl::Status s = train(c.spec, c.recipe);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.field));
  }
  // Mismatched list lengths and bad indices.
  EXPECT_EQ(
      TrainModels(d, Mlp({8}), TrainRecipe(), {Range(0, 40)}, {}, {1, 2}, Paths(dir, "m", 1), ctx)
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(TrainModels(d, Mlp({8}), TrainRecipe(), {{0, 50}}, {}, {1}, Paths(dir, "m", 1), ctx)
                  .status()
                  .message(),
              HasSubstr("train_indices[0]"));
  TrainContext tpu;
  tpu.device = "tpu";
  EXPECT_THAT(
      TrainModels(d, Mlp({8}), TrainRecipe(), {Range(0, 40)}, {}, {1}, Paths(dir, "m", 1), tpu)
          .status()
          .message(),
      HasSubstr("ctx.device"));
}

// The big image nets train through the same loop: one step each, with batch
// norm, dropout and augmentation, and their archives load back.
void TrainOneStep(const ModelSpec& spec) {
  const data::Dataset d = Images(4, 3, 32, 28);
  const std::string dir = TestDir();
  TrainRecipe r = Sgd(0.01, 1, 4);
  r.random_crop = true;
  r.horizontal_flip = true;
  auto reports = TrainModels(d, spec, r, {Range(0, 4)}, {}, {1}, Paths(dir, "m", 1), Cpu());
  ASSERT_TRUE(reports.ok()) << reports.status();
  auto model = LoadModel(spec, models::InputSpec{d.sample_shape, d.num_classes}, dir + "/m0.pt");
  ASSERT_TRUE(model.ok()) << model.status();
}

TEST(TrainingTest, WideResNetTrainsOneStep) { TrainOneStep(SmallWrn(0.3)); }

TEST(TrainingTest, AlexNetTrainsOneStep) {
  ModelSpec spec;
  spec.architecture = "alexnet";
  spec.dropout = 0.5;
  TrainOneStep(spec);
}

// vgg16 (Privacy Meter's, core/models/vgg16.cc) through the engine and back.
TEST(TrainingTest, Vgg16TrainsOneStep) {
  ModelSpec spec;
  spec.architecture = "vgg16";
  spec.dropout = 0.5;
  TrainOneStep(spec);
}

// A few SGD steps of vgg16 on one batch of random 3x32x32 images: logits
// [B, classes], and the loss (measured without dropout) goes down.
TEST(TrainingTest, Vgg16LossDecreasesOnRandomImages) {
  ModelSpec spec;
  spec.architecture = "vgg16";
  spec.dropout = 0.5;
  auto built = models::BuildModel(spec, models::InputSpec{{3, 32, 32}, 10}, 3);
  ASSERT_TRUE(built.ok()) << built.status();
  std::shared_ptr<models::Classifier> model = *built;
  model->set_dropout_generator(models::MakeGenerator(4));
  torch::manual_seed(5);
  const torch::Tensor x = torch::rand({8, 3, 32, 32});
  const torch::Tensor y = torch::randint(0, 10, {8}, torch::kLong);
  auto loss_now = [&] {
    torch::NoGradGuard no_grad;
    model->eval();
    const torch::Tensor logits = model->forward(x);
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{8, 10}));
    return torch::cross_entropy_loss(logits, y).item<double>();
  };
  const double before = loss_now();
  EXPECT_NEAR(before, std::log(10.0), 0.1);  // FC weights of std 0.01: near-uniform logits
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  for (int step = 0; step < 5; ++step) {
    model->train();
    sgd.zero_grad();
    torch::cross_entropy_loss(model->forward(x), y).backward();
    sgd.step();
  }
  const double after = loss_now();
  EXPECT_LT(after, before - 0.05) << "before " << before << " after " << after;
}

}  // namespace
}  // namespace mia::training
