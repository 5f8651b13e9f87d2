#include "core/pipeline/memory_estimate.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/common/memory_budget.h"
#include "core/io/npy.h"
#include "core/metrics/bootstrap.h"
#include "core/metrics/roc.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia::pipeline {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

training::ModelSpec Mlp(std::vector<int> hidden) {
  training::ModelSpec spec;
  spec.architecture = "mlp";
  spec.hidden = std::move(hidden);
  return spec;
}

training::ModelSpec Arch(const std::string& name, int width, int depth = 28) {
  training::ModelSpec spec;
  spec.architecture = name;
  spec.width = width;
  spec.depth = depth;
  return spec;
}

std::string TempDir() {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir =
      fs::path(env != nullptr ? env : ::testing::TempDir()) / "memory_estimate_test" / info->name();
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// Parameter counts worked out by hand from the layer lists in core/models.
TEST(ParameterCount, MlpIsItsDenseLayers) {
  EXPECT_EQ(*ParameterCount(Mlp({128}), {600}, 100), 600 * 128 + 128 + 128 * 100 + 100);
  EXPECT_EQ(*ParameterCount(Mlp({}), {600}, 100), 600 * 100 + 100);
  // Images are flattened.
  EXPECT_EQ(*ParameterCount(Mlp({10, 5}), {1, 28, 28}, 10),
            784 * 10 + 10 + 10 * 5 + 5 + 5 * 10 + 10);
  // The review's spec: about 8.6 billion parameters.
  const uint64_t huge = *ParameterCount(Mlp({65536, 65536, 65536}), {600}, 100);
  EXPECT_EQ(huge, uint64_t{600} * 65536 + 65536 + 2 * (uint64_t{65536} * 65536 + 65536) +
                      65536 * 100 + 100);
}

TEST(ParameterCount, ConvolutionalArchitectures) {
  // cnn, width 1, CIFAR-10: conv 3->32, conv 32->64 (3x3, bias), fc 64*8*8->128, 128->10.
  EXPECT_EQ(*ParameterCount(Arch("cnn", 1), {3, 32, 32}, 10),
            (3 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (4096 * 128 + 128) + (128 * 10 + 10));
  // alexnet on 3x32x32: five 3x3 convs, fc 256*4*4->1024->512->10.
  EXPECT_EQ(*ParameterCount(Arch("alexnet", 1), {3, 32, 32}, 10),
            (3 * 64 * 9 + 64) + (64 * 192 * 9 + 192) + (192 * 384 * 9 + 384) +
                (384 * 256 * 9 + 256) + (256 * 256 * 9 + 256) + (4096 * 1024 + 1024) +
                (1024 * 512 + 512) + (512 * 10 + 10));
  // wrn depth 10 (one block per group), width 1: stem 3->16; blocks 16->16,
  // 16->32 and 32->64 with 1x1 shortcuts where the shape changes; BN scale
  // and shift per channel; final BN and classifier 64->10.
  EXPECT_EQ(*ParameterCount(Arch("wrn", 1, 10), {3, 32, 32}, 10),
            432 + (32 + 2304 + 32 + 2304) + (32 + 4608 + 64 + 9216 + 512) +
                (64 + 18432 + 128 + 36864 + 2048) + 128 + 650);
  const absl::StatusOr<uint64_t> tabular = ParameterCount(Arch("cnn", 1), {600}, 100);
  EXPECT_EQ(tabular.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tabular.status().message(), HasSubstr("train.architecture"));
  // vgg16 (torchvision's) on CIFAR-10: 13 convs with bias, fc 25088->4096->4096->10,
  // whatever the image size (7x7 adaptive pooling).
  const uint64_t vgg16 = 14714688 + (25088 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 10 + 10);
  EXPECT_EQ(*ParameterCount(Arch("vgg16", 1), {3, 32, 32}, 10), vgg16);
  EXPECT_EQ(*ParameterCount(Arch("vgg16", 1), {3, 64, 64}, 10), vgg16);
  for (const auto& count : {ParameterCount(Arch("vgg16", 1), {600}, 100),
                            ActivationsPerExample(Arch("vgg16", 1), {600}, 100)}) {
    EXPECT_EQ(count.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(count.status().message(), HasSubstr("'vgg16' needs images"));
  }
  // Activations: 3x32x32 input; per conv output and ReLU; pooled maps; 7x7
  // features; three tensors per hidden FC; logits.
  EXPECT_EQ(*ActivationsPerExample(Arch("vgg16", 1), {3, 32, 32}, 10),
            3072 + 2 * 2 * 64 * 1024 + 64 * 256 + 2 * 2 * 128 * 256 + 128 * 64 + 3 * 2 * 256 * 64 +
                256 * 16 + 3 * 2 * 512 * 16 + 512 * 4 + 3 * 2 * 512 * 4 + 512 + 25088 + 6 * 4096 +
                10);
}

TEST(TrainingBytes, WeightsGradientsOptimizerAndActivations) {
  training::TrainRecipe sgd;  // momentum 0.9: one state copy
  sgd.batch_size = 256;
  const uint64_t params = 600 * 128 + 128 + 128 * 100 + 100;
  const uint64_t acts = 600 + 2 * 128 + 100;
  EXPECT_EQ(*TrainingBytesPerModel(Mlp({128}), sgd, {600}, 100), params * 4 * 3 + acts * 256 * 8);
  training::TrainRecipe adam = sgd;
  adam.optimizer = "adam";
  EXPECT_EQ(*TrainingBytesPerModel(Mlp({128}), adam, {600}, 100), params * 4 * 4 + acts * 256 * 8);
  training::TrainRecipe plain = sgd;
  plain.momentum = 0;
  EXPECT_EQ(*TrainingBytesPerModel(Mlp({128}), plain, {600}, 100), params * 4 * 2 + acts * 256 * 8);
}

Config SmallConfig() {
  Config c;
  c.data.dataset = "purchase100";
  c.model = Mlp({128});
  c.run.num_experiments = 1;
  c.audit.num_ref_models = 3;
  c.data.population_size = 100;
  return c;
}

const DataShape kPurchase{{600}, 100, 1100};

TEST(PipelineEstimate, SumsDataTrainingAndSignals) {
  const Config c = SmallConfig();
  const MemoryEstimate one = *EstimatePipelineMemory(c, kPurchase, 1);
  const uint64_t data = 1100 * (600 * 4 + 8);
  const uint64_t training = *TrainingBytesPerModel(c.model, c.recipe, {600}, 100);
  // 4 models on 1000 pool points + 100 population points, 1 query, 100
  // classes: float logits, 3 double signals, the keep bytes.
  const uint64_t values = 4 * 1100;
  const uint64_t signals = values * 100 * 4 + values * 24 + 4 * 1100;
  // Metrics on the 1000 audited points: score copies and the bootstrap.
  const uint64_t metrics_bytes =
      1000 * 10 + metrics::BootstrapPeakBytes(1000, c.audit.scoring.bootstrap.resamples,
                                              metrics::DefaultFprs().size(), c.run.threads);
  EXPECT_GT(metrics_bytes, 1000u * 28);
  EXPECT_EQ(one.bytes, data + training + signals + metrics_bytes);
  EXPECT_THAT(one.what, HasSubstr("training 'mlp' with hidden [128]"));
  EXPECT_THAT(one.what, HasSubstr("1 model at once"));
  EXPECT_THAT(one.what, HasSubstr("4 models x 1100 points x 1 query x 100 classes"));
  // Models in parallel lanes are in memory together.
  EXPECT_EQ(EstimatePipelineMemory(c, kPurchase, 3)->bytes, one.bytes + 2 * training);
  EXPECT_EQ(EstimatePipelineMemory(c, kPurchase, 64)->bytes, one.bytes + 3 * training);
  // data_size bounds the audited points.
  Config fewer = c;
  fewer.audit.data_size = 10;
  EXPECT_LT(EstimatePipelineMemory(fewer, kPurchase, 1)->bytes, one.bytes);
}

// A range audit queries sample_size generated points per range and holds
// them (and the population rows) as a dataset of their own.
TEST(PipelineEstimate, RangeAuditsCountTheirSampledPoints) {
  Config c = SmallConfig();
  c.audit.data_size = 100;
  c.audit.ramia.emplace();
  c.audit.ramia->sample_size = 10;
  const MemoryEstimate e = *EstimatePipelineMemory(c, kPurchase, 1);
  const uint64_t data = 1100 * (600 * 4 + 8);
  const uint64_t training = *TrainingBytesPerModel(c.model, c.recipe, {600}, 100);
  const uint64_t points = 100 * 10 + 100;  // ranges x s + population
  const uint64_t values = 4 * points;
  const uint64_t signals = values * 100 * 4 + values * 24 + 4 * points;
  const uint64_t metrics_bytes =
      100 * 10 + metrics::BootstrapPeakBytes(100, c.audit.scoring.bootstrap.resamples,
                                             metrics::DefaultFprs().size(), c.run.threads);
  const uint64_t generated = points * (600 * 4 + 8);
  EXPECT_EQ(e.bytes, data + training + signals + metrics_bytes + generated);
  EXPECT_THAT(e.what, HasSubstr("4 models x 1100 points"));
  EXPECT_THAT(e.what, HasSubstr("of points sampled from ranges"));
}

TEST(PipelineEstimate, RefusesTheReviewsSpecs) {
  Config wide = SmallConfig();
  wide.model = Mlp({65536, 65536, 65536});
  const MemoryEstimate huge = *EstimatePipelineMemory(wide, kPurchase, 1);
  EXPECT_GT(huge.bytes, uint64_t{100'000'000'000});
  const absl::Status s = CheckMemoryBudget(huge.bytes, huge.what, 19'200'000'000, "the server's",
                                           "see --memory_budget_bytes");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("for training 'mlp' with hidden [65536, 65536, 65536]"));
  EXPECT_THAT(s.message(), HasSubstr("exceeds the server's memory budget 19.2 GB"));

  // 1,024 experiments and 4,096 references on Purchase-100: the logits and
  // signals alone are hundreds of gigabytes.
  Config many = SmallConfig();
  many.run.num_experiments = 1024;
  many.audit.num_ref_models = 4096;
  const MemoryEstimate crowd = *EstimatePipelineMemory(many, {{600}, 100, 197'324}, 1);
  EXPECT_GT(crowd.bytes, uint64_t{400'000'000'000});
  EXPECT_THAT(crowd.what, HasSubstr("5120 models x 197324 points"));
}

// Language models: the demo fits in well under a gigabyte; GPT-2 XL trained
// fully in 4 lanes with large batches is refused from its settings alone.
TEST(PipelineEstimate, LanguageModels) {
  auto demo = LoadConfigFile(std::string(MIA_SOURCE_DIR) + "/configs/llm-demo.yaml");
  ASSERT_TRUE(demo.ok()) << demo.status();
  const MemoryEstimate small = *EstimatePipelineMemory(*demo, DataShape{}, 2);
  EXPECT_LT(small.bytes, uint64_t{1} << 30);
  EXPECT_GT(small.bytes, uint64_t{20} << 20);
  EXPECT_THAT(small.what, HasSubstr("training gpt with 2 layers of 128"));
  EXPECT_THAT(small.what, HasSubstr("5 models x 1500 texts x 64 positions"));

  Config xl = *demo;
  xl.lm->spec =
      ParseConfig("data: {dataset: fortunes}\ntrain: {model_name: gpt2-xl}\n", "x.yaml")->lm->spec;
  xl.lm->recipe.batch_size = 64;
  const MemoryEstimate huge = *EstimatePipelineMemory(xl, DataShape{}, 4);
  EXPECT_GT(huge.bytes, uint64_t{100'000'000'000});
  EXPECT_THAT(huge.what, HasSubstr("training gpt2 with 48 layers of 1600"));
  // LoRA keeps no gradients or optimizer state for the frozen base.
  Config lora = xl;
  lora.lm->spec.lora.rank = 8;
  EXPECT_LT(EstimatePipelineMemory(lora, DataShape{}, 4)->bytes, huge.bytes);
}

TEST(ProbeDataShape, NamedDatasetsCsvAndNpy) {
  const std::string dir = TempDir();
  Config c = SmallConfig();
  c.data.source.format = "purchase100";
  c.data.source.path = dir + "/purchase.csv";
  {
    std::ofstream out(c.data.source.path);
    for (int row = 0; row < 3; ++row) {
      out << "1";
      for (int f = 0; f < 600; ++f) out << ",0";
      out << "\n";
    }
  }
  DataShape shape = ProbeDataShape(c);
  EXPECT_EQ(shape.sample_shape, std::vector<int64_t>{600});
  EXPECT_EQ(shape.classes, 100);
  EXPECT_EQ(shape.rows, 3);

  c.data.dataset = "csv";
  c.data.source.format = "csv";
  c.data.source.path = dir + "/table.csv";
  {
    std::ofstream out(c.data.source.path);
    for (int row = 0; row < 10; ++row) out << "0,1,0,1,1\n";
  }
  shape = ProbeDataShape(c);
  EXPECT_EQ(shape.sample_shape, std::vector<int64_t>{4});
  EXPECT_EQ(shape.rows, 10);

  c.data.dataset = "npy";
  c.data.source.format = "npy";
  c.data.source.path = dir + "/arrays.npz";
  io::NpyMap arrays;
  arrays["features"] = io::NpyArray::FromFloat({7, 3, 2, 2}, std::vector<float>(7 * 12, 0.5f));
  arrays["labels"] = io::NpyArray::FromInt64({7}, std::vector<int64_t>(7, 1));
  ASSERT_TRUE(io::WriteNpz(c.data.source.path, arrays, /*compress=*/true).ok());
  shape = ProbeDataShape(c);
  EXPECT_EQ(shape.sample_shape, (std::vector<int64_t>{3, 2, 2}));
  EXPECT_EQ(shape.rows, 7);

  // Gzipped files count by their decompressed size (the gzip trailer).
  c.data.dataset = "purchase100";
  c.data.source.format = "purchase100";
  c.data.source.path = dir + "/purchase.csv";
  ASSERT_EQ(std::system(("gzip -k -f '" + c.data.source.path + "'").c_str()), 0);
  c.data.source.path += ".gz";
  ASSERT_LT(fs::file_size(c.data.source.path), 1200u);
  EXPECT_EQ(ProbeDataShape(c).rows, 3);

  // Nothing there: no rows, and the loader reports the problem later.
  c.data.source.path = dir + "/missing";
  EXPECT_EQ(ProbeDataShape(c).rows, 0);
}

}  // namespace


// A DUCI game counts its own models: 5 targets and 2 x 3 references (at
// least 4; rmia and lira-offline need 6) instead of 1 + 3.
TEST(PipelineEstimate, DuciCountsTheGamesModels) {
  Config c = SmallConfig();
  c.audit.duci = DuciConfig{};
  const MemoryEstimate duci = *EstimatePipelineMemory(c, kPurchase, 1);
  EXPECT_THAT(duci.what, HasSubstr("11 models x 1100 points"));
  c.data.population_size = 0;  // the game sets aside a fifth of the rows
  EXPECT_THAT(EstimatePipelineMemory(c, kPurchase, 1)->what,
              HasSubstr("11 models x 1100 points"));
}
}  // namespace mia::pipeline
