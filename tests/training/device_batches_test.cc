// DeviceBatches (core/training/device_batches.h) against the definition: each
// row written by WriteSample on the host, padding rows zero with weight 0;
// and training from batches gathered on the device (here the CPU) against
// training from host batches.
#include "core/training/device_batches.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "core/common/random.h"
#include "core/models/registry.h"
#include "core/training/archive.h"
#include "core/training/engine.h"
#include "core/training/recipe.h"
#include "gtest/gtest.h"
#include "tests/training/read_archive.h"
#include "tests/training/test_data.h"

namespace mia::training {
namespace {

using testing::Images;
using testing::Range;
using testing::ReadArchive;
using testing::SmallCnn;
using testing::Tabular;
using testing::TestDir;

// The batch by definition: WriteSample per real row, zeros and weight 0 for
// padding.
void ExpectBatchIsDefinition(const data::Dataset& d, const Normalization& norm,
                             const std::vector<std::vector<int64_t>>& rows_of_model,
                             const std::vector<ImageTransform>& transforms, const GroupBatch& b) {
  const int64_t models = static_cast<int64_t>(rows_of_model.size());
  int64_t batch = 0;
  for (const auto& r : rows_of_model) batch = std::max<int64_t>(batch, r.size());
  const int64_t numel = d.sample_numel();
  std::vector<int64_t> x_shape = {models, batch};
  x_shape.insert(x_shape.end(), d.sample_shape.begin(), d.sample_shape.end());
  ASSERT_EQ(b.x.sizes(), torch::IntArrayRef(x_shape));
  ASSERT_EQ(b.labels.sizes(), torch::IntArrayRef({models, batch}));
  ASSERT_EQ(b.weights.sizes(), torch::IntArrayRef({models, batch}));
  const torch::Tensor x = b.x.cpu().contiguous();
  const torch::Tensor labels = b.labels.cpu().contiguous();
  const torch::Tensor weights = b.weights.cpu().contiguous();
  std::vector<float> want(numel);
  for (int64_t k = 0; k < models; ++k) {
    const int64_t n = static_cast<int64_t>(rows_of_model[k].size());
    for (int64_t i = 0; i < batch; ++i) {
      const float* got = x.data_ptr<float>() + (k * batch + i) * numel;
      if (i < n) {
        const ImageTransform t = transforms.empty() ? ImageTransform{} : transforms[k * batch + i];
        WriteSample(d, rows_of_model[k][i], t, norm, want.data());
        for (int64_t j = 0; j < numel; ++j) {
          ASSERT_EQ(got[j], want[j]) << "model " << k << " row " << i << " element " << j
                                     << " (dx " << t.dx << ", dy " << t.dy << ", flip " << t.flip
                                     << ")";
        }
        EXPECT_EQ(labels[k][i].item<int64_t>(), d.labels[rows_of_model[k][i]]);
        EXPECT_EQ(weights[k][i].item<float>(), 1.0f / static_cast<float>(n));
      } else {
        for (int64_t j = 0; j < numel; ++j) ASSERT_EQ(got[j], 0.0f) << "padding " << k << "," << i;
        EXPECT_EQ(labels[k][i].item<int64_t>(), 0);
        EXPECT_EQ(weights[k][i].item<float>(), 0.0f);
      }
    }
  }
}

// Random crops up to `padding` pixels and flips, with per-channel
// normalization by mean and std when given.
TrainRecipe Augmented(int padding, std::vector<float> mean = {}, std::vector<float> std = {}) {
  TrainRecipe r;
  r.random_crop = true;
  r.crop_padding = padding;
  r.horizontal_flip = true;
  r.normalize_mean = std::move(mean);
  r.normalize_std = std::move(std);
  return r;
}

std::vector<const int64_t*> Starts(const std::vector<std::vector<int64_t>>& rows) {
  std::vector<const int64_t*> starts;
  for (const auto& r : rows) starts.push_back(r.data());
  return starts;
}

std::vector<int64_t> Counts(const std::vector<std::vector<int64_t>>& rows) {
  std::vector<int64_t> counts;
  for (const auto& r : rows) counts.push_back(static_cast<int64_t>(r.size()));
  return counts;
}

TEST(DeviceBatchesTest, CroppedFlippedNormalizedImagesEqualWriteSample) {
  // 3 channels, crops up to the padding in both directions, flips,
  // per-channel normalization.
  const data::Dataset d = Images(40, 3, 7, 31);
  const TrainRecipe r = Augmented(2, {0.2f, 0.5f, 0.7f}, {0.3f, 0.25f, 0.9f});
  auto norm = Normalization::FromRecipe(r, d);
  ASSERT_TRUE(norm.ok()) << norm.status();
  const DeviceBatches on_device(d, *norm, r.crop_padding, torch::kCPU);

  const std::vector<std::vector<int64_t>> rows = {{3, 9, 0, 39, 17}, {5, 5}, {}, {1, 2, 3, 4, 6}};
  Rng rng(7);
  std::vector<ImageTransform> transforms(rows.size() * 5);
  for (ImageTransform& t : transforms) t = DrawAugmentation(r, rng);
  // Every extreme offset at least once.
  transforms[0] = {true, -2, -2};
  transforms[1] = {false, 2, 2};
  transforms[2] = {true, 2, -2};
  transforms[3] = {false, -2, 2};
  ExpectBatchIsDefinition(d, *norm, rows, transforms,
                          on_device.Make(Starts(rows), Counts(rows), transforms));
  // No transforms: the plain rows, out of the padded copy.
  ExpectBatchIsDefinition(d, *norm, rows, {}, on_device.Make(Starts(rows), Counts(rows), {}));
}

TEST(DeviceBatchesTest, NonSquareImagesWithoutNormalizationEqualWriteSample) {
  data::Dataset d = Images(12, 2, 6, 32);
  // Reinterpret the 2 x 6 x 6 rows as 2 x 4 x 9.
  d.sample_shape = {2, 4, 9};
  const TrainRecipe r = Augmented(3);
  auto norm = Normalization::FromRecipe(r, d);
  ASSERT_TRUE(norm.ok());
  const DeviceBatches on_device(d, *norm, r.crop_padding, torch::kCPU);
  const std::vector<std::vector<int64_t>> rows = {{0, 1, 2, 3}, {11, 10, 9}};
  Rng rng(8);
  std::vector<ImageTransform> transforms(rows.size() * 4);
  for (ImageTransform& t : transforms) t = DrawAugmentation(r, rng);
  transforms[0] = {true, 3, -3};
  transforms[4] = {true, -3, 3};
  ExpectBatchIsDefinition(d, *norm, rows, transforms,
                          on_device.Make(Starts(rows), Counts(rows), transforms));
}

TEST(DeviceBatchesTest, NormalizedTabularRowsEqualWriteSample) {
  const data::Dataset d = Tabular(30, 5, 3, 1.0, 0.0, 33);
  TrainRecipe r;
  r.normalize_mean = {0.1f, -0.2f, 0.3f, 0.0f, 1.5f};
  r.normalize_std = {1.0f, 0.5f, 2.0f, 0.1f, 3.0f};
  auto norm = Normalization::FromRecipe(r, d);
  ASSERT_TRUE(norm.ok()) << norm.status();
  const DeviceBatches on_device(d, *norm, /*crop_padding=*/4, torch::kCPU);  // ignored: tabular
  const std::vector<std::vector<int64_t>> rows = {{29, 0, 7}, {4}, {8, 8, 8}};
  ExpectBatchIsDefinition(d, *norm, rows, {}, on_device.Make(Starts(rows), Counts(rows), {}));
  EXPECT_EQ(on_device.bytes(), 30 * 5 * 4 + 30 * 8);
}

// Trains three models on `device` from host batches, then from batches
// gathered on the device (the default there), and compares the parameters:
// bit for bit when atol is 0.
void ExpectSameModels(const data::Dataset& d, const ModelSpec& spec, const TrainRecipe& r,
                      const std::string& device, double atol) {
  const std::string dir = TestDir();
  const std::vector<std::vector<int64_t>> subsets = {Range(0, 150), Range(40, 130), Range(90, 240)};
  const std::vector<uint64_t> seeds = {11, 12, 13};
  std::vector<std::string> host_paths, device_paths;
  for (int k = 0; k < 3; ++k) {
    host_paths.push_back(dir + "/host" + std::to_string(k) + ".pt");
    device_paths.push_back(dir + "/device" + std::to_string(k) + ".pt");
  }
  TrainContext ctx;
  ctx.device = device;
  ctx.allow_batched = true;
  ctx.data_on_device = false;
  auto host_reports = TrainModels(d, spec, r, subsets, Range(250, 300), seeds, host_paths, ctx);
  ASSERT_TRUE(host_reports.ok()) << host_reports.status();
  ctx.data_on_device = true;
  auto reports = TrainModels(d, spec, r, subsets, Range(250, 300), seeds, device_paths, ctx);
  ASSERT_TRUE(reports.ok()) << reports.status();
  EXPECT_GT((*reports)[0].train_accuracy, 0.4);  // it learned something
  for (int k = 0; k < 3; ++k) {
    // The evaluation after training also reads the rows on the device.
    const ModelReport &h = (*host_reports)[k], &g = (*reports)[k];
    EXPECT_NEAR(g.train_loss, h.train_loss, atol) << k;
    EXPECT_NEAR(g.test_loss, h.test_loss, atol) << k;
    EXPECT_NEAR(g.train_accuracy, h.train_accuracy, 10 * atol) << k;
    EXPECT_NEAR(g.test_accuracy, h.test_accuracy, 10 * atol) << k;
    const auto host = ReadArchive(host_paths[k]);
    const auto gathered = ReadArchive(device_paths[k]);
    ASSERT_EQ(host.size(), gathered.size());
    for (const auto& [name, tensor] : host) {
      ASSERT_EQ(gathered.count(name), 1u) << name;
      EXPECT_LE((gathered.at(name) - tensor).abs().max().item<double>(), atol)
          << "model " << k << " tensor " << name;
    }
  }
}

TEST(DeviceBatchesTest, StackedCnnsWithAugmentationTrainTheSameAsFromHostBatches) {
  const data::Dataset d = Images(300, 1, 8, 34);
  TrainRecipe r = Augmented(1, {0.3f}, {0.25f});
  r.learning_rate = 0.05;
  r.epochs = 2;
  r.batch_size = 32;
  ExpectSameModels(d, SmallCnn(), r, "cpu", /*atol=*/0);
}

TEST(DeviceBatchesTest, MlpsWithDropoutTrainTheSameAsFromHostBatches) {
  const data::Dataset d = Tabular(300, 12, 4, 1.0, 0.05, 35);
  TrainRecipe r;
  r.optimizer = "adam";
  r.learning_rate = 3e-3;
  r.epochs = 2;
  r.batch_size = 40;
  ModelSpec spec;
  spec.architecture = "mlp";
  spec.hidden = {16};
  spec.activation = "relu";
  spec.dropout = 0.2;
  ExpectSameModels(d, spec, r, "cpu", /*atol=*/0);
}

// The audit's signal queries (plain, flip, shifts) gathered from the rows
// on the device give the host path's logits exactly, over several internal
// batches and several models.
TEST(DeviceBatchesTest, SignalQueriesFromDeviceRowsEqualHostQueries) {
  const data::Dataset d = Images(300, 2, 8, 39);
  const ModelSpec spec = SmallCnn();
  TrainRecipe recipe;
  recipe.normalize_mean = {0.4f, 0.5f};
  recipe.normalize_std = {0.3f, 0.2f};
  const std::string dir = TestDir();
  std::vector<std::string> paths;
  for (int m = 0; m < 2; ++m) {
    auto model = models::BuildModel(spec, {d.sample_shape, d.num_classes}, 10 + m);
    ASSERT_TRUE(model.ok());
    paths.push_back(dir + "/q" + std::to_string(m) + ".pt");
    ASSERT_TRUE(SaveModelState((*model)->State(), paths.back()).ok());
  }
  QueryAugmentation aug;
  aug.flip = true;
  aug.shift = 3;
  std::vector<int64_t> rows = Range(0, 300);
  std::reverse(rows.begin(), rows.end());
  auto logits = [&](bool on_device) {
    TrainContext ctx;
    ctx.device = "cpu";
    ctx.data_on_device = on_device;
    std::vector<std::vector<float>> out(2);
    EXPECT_TRUE(ComputeLogitsMany(paths, false, spec, recipe, d, rows, aug, ctx,
                                  [&](int m, std::vector<float> l, int classes) {
                                    EXPECT_EQ(classes, 4);
                                    out[m] = std::move(l);
                                    return absl::OkStatus();
                                  })
                    .ok());
    return out;
  };
  const auto host = logits(false), device = logits(true);
  for (int m = 0; m < 2; ++m) {
    ASSERT_EQ(host[m].size(), 300u * 6 * 4);
    EXPECT_EQ(host[m], device[m]) << "model " << m;
  }
  int classes = 0;
  TrainContext one;
  one.device = "cpu";
  one.data_on_device = true;
  auto single = ComputeLogits(paths[1], false, spec, recipe, d, rows, aug, one, &classes);
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(*single, host[1]);
}

// On a GPU (skipped without one: this machine and CI have none; run them
// where one is lent, ../shared/gpu and bench/gpu_check.sh): the batches
// gathered there equal WriteSample too (float32 subtraction and division are
// exact on CUDA as on the CPU), training from them matches training from
// host batches, and bf16 autocast learns.
class DeviceBatchesGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device here";
  }
};

TEST_F(DeviceBatchesGpuTest, GatheredBatchesEqualWriteSample) {
  const data::Dataset d = Images(40, 3, 7, 36);
  const TrainRecipe r = Augmented(2, {0.2f, 0.5f, 0.7f}, {0.3f, 0.25f, 0.9f});
  auto norm = Normalization::FromRecipe(r, d);
  ASSERT_TRUE(norm.ok());
  const DeviceBatches on_gpu(d, *norm, r.crop_padding, torch::Device(torch::kCUDA, 0));
  const std::vector<std::vector<int64_t>> rows = {{3, 9, 0, 39}, {5}, {}, {1, 2, 3}};
  Rng rng(9);
  std::vector<ImageTransform> transforms(rows.size() * 4);
  for (ImageTransform& t : transforms) t = DrawAugmentation(r, rng);
  const GroupBatch b = on_gpu.Make(Starts(rows), Counts(rows), transforms);
  EXPECT_TRUE(b.x.is_cuda());
  ExpectBatchIsDefinition(d, *norm, rows, transforms, b);
}

TEST_F(DeviceBatchesGpuTest, CnnsTrainFromGpuBatchesAsFromHostBatches) {
  at::globalContext().setDeterministicCuDNN(true);
  TrainRecipe r = Augmented(1);
  r.learning_rate = 0.05;
  r.epochs = 2;
  r.batch_size = 32;
  ExpectSameModels(Images(300, 1, 8, 37), SmallCnn(), r, "cuda", /*atol=*/1e-5);
}

TEST_F(DeviceBatchesGpuTest, Bf16AutocastLearnsOnTheGpu) {
  const data::Dataset d = Images(400, 1, 8, 38);
  TrainRecipe r;
  r.optimizer = "sgd";
  r.learning_rate = 0.05;
  r.epochs = 4;
  r.batch_size = 32;
  r.precision = "bf16";
  const ModelSpec spec = SmallCnn();
  TrainContext ctx;
  ctx.device = "cuda";
  const std::string dir = TestDir();
  auto reports = TrainModels(d, spec, r, {Range(0, 300), Range(50, 350)}, Range(350, 400), {3, 4},
                             {dir + "/bf0.pt", dir + "/bf1.pt"}, ctx);
  ASSERT_TRUE(reports.ok()) << reports.status();
  EXPECT_GT((*reports)[0].test_accuracy, 0.8);
  EXPECT_GT((*reports)[1].test_accuracy, 0.8);
  for (const auto& [name, tensor] : ReadArchive(dir + "/bf0.pt")) {
    EXPECT_EQ(tensor.scalar_type(), torch::kFloat32) << name;
  }
}

}  // namespace
}  // namespace mia::training
