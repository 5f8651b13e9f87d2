// Model archives and ComputeLogits: roundtrips, corrupt and mismatched
// archives, test-time augmentation queries, TorchScript modules.
#include <torch/script.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/models/registry.h"
#include "core/training/archive.h"
#include "core/training/engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/write_failures.h"
#include "tests/training/test_data.h"

namespace mia::training {
namespace {

using ::testing::HasSubstr;
using testing::Images;
using ::testing::Not;
using testing::Range;
using testing::Tabular;
using testing::TestDir;

TrainContext Cpu() {
  TrainContext ctx;
  ctx.device = "cpu";
  return ctx;
}

// Rows of `d` as a float tensor [n, sample...], optionally normalized per
// channel, computed here independently of the engine.
torch::Tensor Rows(const data::Dataset& d, const std::vector<int64_t>& rows, float mean = 0,
                   float stddev = 1) {
  std::vector<int64_t> shape = {static_cast<int64_t>(rows.size())};
  shape.insert(shape.end(), d.sample_shape.begin(), d.sample_shape.end());
  torch::Tensor all = torch::from_blob(const_cast<float*>(d.features.data()),
                                       {d.size(), d.sample_numel()}, torch::kFloat32);
  torch::Tensor picked = all.index_select(0, torch::tensor(rows, torch::kInt64));
  return ((picked - mean) / stddev).view(shape);
}

torch::Tensor AsTensor(const std::vector<float>& logits, int64_t rows, int64_t queries,
                       int64_t classes) {
  return torch::tensor(logits).view({rows, queries, classes});
}

// Builds a seeded model and writes it as TrainModels would.
std::shared_ptr<models::Classifier> SavedModel(const ModelSpec& spec, const data::Dataset& d,
                                               const std::string& path) {
  auto model = models::BuildModel(spec, {d.sample_shape, d.num_classes}, 3);
  EXPECT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE(SaveModelState((*model)->State(), path).ok());
  (*model)->eval();
  return *model;
}

TEST(ArchiveTest, RoundtripGivesIdenticalLogits) {
  const data::Dataset d = Images(20, 1, 8, 1);
  const std::string path = TestDir() + "/cnn.pt";
  ModelSpec spec;
  spec.architecture = "cnn";
  spec.width = 1;
  auto original = SavedModel(spec, d, path);
  auto loaded = LoadModel(spec, {d.sample_shape, d.num_classes}, path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  (*loaded)->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = Rows(d, Range(0, 20));
  EXPECT_TRUE(torch::equal(original->forward(x), (*loaded)->forward(x)));
  // No temporary file is left behind.
  for (const auto& entry : std::filesystem::directory_iterator(TestDir())) {
    EXPECT_THAT(entry.path().filename().string(), Not(HasSubstr(".tmp.")));
  }
}

// A full disk while a model is saved used to end the whole server: LibTorch's
// file writer threw from its destructor during unwinding (std::terminate).
// Now the save fails, names the file, and leaves nothing behind.
TEST(ArchiveTest, AWriteFailureIsResourceExhaustedAndNotACrash) {
  const data::Dataset d = Images(20, 1, 8, 1);
  const std::string dir = TestDir() + "/full";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/cnn.pt";
  ModelSpec spec;
  spec.architecture = "cnn";
  spec.width = 1;
  auto model = models::BuildModel(spec, {d.sample_shape, d.num_classes}, 3);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::Status saved;
  {
    testutil::ScopedFileSizeLimit limit(512);  // the disk fills after 512 bytes
    ASSERT_TRUE(limit.ok());
    saved = SaveModelState((*model)->State(), path);
  }
  EXPECT_EQ(saved.code(), absl::StatusCode::kResourceExhausted) << saved;
  EXPECT_THAT(saved.message(), HasSubstr(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir));  // no partial archive, no temporary
  // The disk has room again: the same save works.
  ASSERT_TRUE(SaveModelState((*model)->State(), path).ok());
  EXPECT_TRUE(LoadModel(spec, {d.sample_shape, d.num_classes}, path).ok());
}

TEST(ArchiveTest, BatchNormBuffersRoundtrip) {
  const data::Dataset d = Images(4, 3, 16, 2);
  const std::string path = TestDir() + "/wrn.pt";
  ModelSpec spec;
  spec.architecture = "wrn";
  spec.depth = 10;
  spec.width = 1;
  auto model = *models::BuildModel(spec, {d.sample_shape, d.num_classes}, 1);
  model->train();
  model->forward(Rows(d, Range(0, 4)));  // moves the running statistics
  ASSERT_TRUE(SaveModelState(model->State(), path).ok());
  auto loaded = LoadModel(spec, {d.sample_shape, d.num_classes}, path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  model->eval();
  (*loaded)->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(
      torch::equal(model->forward(Rows(d, Range(0, 4))), (*loaded)->forward(Rows(d, Range(0, 4)))));
}

TEST(ArchiveTest, CorruptArchiveIsAClearError) {
  const data::Dataset d = Tabular(10, 6, 4, 1.0, 0.0, 3);
  const std::string dir = TestDir();
  ModelSpec spec;
  spec.hidden = {8};
  SavedModel(spec, d, dir + "/m.pt");
  const auto size = std::filesystem::file_size(dir + "/m.pt");
  std::filesystem::resize_file(dir + "/m.pt", size / 2);
  auto s = LoadModel(spec, {d.sample_shape, d.num_classes}, dir + "/m.pt").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("not a readable LibTorch archive"));

  std::ofstream(dir + "/junk.pt") << "not a zip file";
  EXPECT_EQ(LoadModel(spec, {d.sample_shape, d.num_classes}, dir + "/junk.pt").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadModel(spec, {d.sample_shape, d.num_classes}, dir + "/none.pt").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ArchiveTest, MismatchedArchiveNamesTheTensor) {
  const data::Dataset d = Tabular(10, 6, 4, 1.0, 0.0, 3);
  const std::string dir = TestDir();
  ModelSpec small;
  small.hidden = {8};
  SavedModel(small, d, dir + "/m.pt");

  ModelSpec wider = small;
  wider.hidden = {16};
  auto s = LoadModel(wider, {d.sample_shape, d.num_classes}, dir + "/m.pt").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'hidden0.weight' has shape [8, 6]"));

  ModelSpec deeper = small;
  deeper.hidden = {8, 8};
  s = LoadModel(deeper, {d.sample_shape, d.num_classes}, dir + "/m.pt").status();
  EXPECT_THAT(s.message(), HasSubstr("'hidden1.weight' is missing"));

  ModelSpec none = small;
  none.hidden = {};
  s = LoadModel(none, {d.sample_shape, d.num_classes}, dir + "/m.pt").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'classifier.weight' has shape"));
}

TEST(ArchiveTest, ForeignTensorIsNamed) {
  const data::Dataset d = Tabular(10, 6, 4, 1.0, 0.0, 3);
  const std::string path = TestDir() + "/m.pt";
  ModelSpec spec;
  spec.hidden = {8};
  auto model = *models::BuildModel(spec, {d.sample_shape, d.num_classes}, 1);
  std::vector<models::NamedTensor> state = model->State();
  state.push_back({"bogus.weight", torch::zeros({2}), false});
  ASSERT_TRUE(SaveModelState(state, path).ok());
  const auto s = LoadModel(spec, {d.sample_shape, d.num_classes}, path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'bogus.weight' is not part of this model"));
}

TEST(ComputeLogitsTest, TabularHasOnlyThePlainQuery) {
  const data::Dataset d = Tabular(30, 6, 4, 1.0, 0.0, 4);
  const std::string path = TestDir() + "/m.pt";
  ModelSpec spec;
  spec.hidden = {8};
  auto model = SavedModel(spec, d, path);
  QueryAugmentation aug;
  aug.flip = true;
  aug.shift = 2;
  EXPECT_EQ(aug.NumQueries(false), 1);
  int classes = 0;
  const std::vector<int64_t> rows = {5, 0, 29, 5};
  auto logits = ComputeLogits(path, false, spec, TrainRecipe(), d, rows, aug, Cpu(), &classes);
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_EQ(classes, 4);
  ASSERT_EQ(logits->size(), rows.size() * 1 * 4);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(AsTensor(*logits, 4, 1, 4).select(1, 0),
                              model->forward(Rows(d, rows)), 1e-6, 1e-6));
}

TEST(ComputeLogitsTest, ImageQueriesInTheDocumentedOrder) {
  const data::Dataset d = Images(40, 1, 8, 5);
  const std::string path = TestDir() + "/m.pt";
  ModelSpec spec;
  spec.architecture = "cnn";
  spec.width = 1;
  auto model = SavedModel(spec, d, path);
  TrainRecipe recipe;
  recipe.normalize_mean = {0.4f};
  recipe.normalize_std = {0.3f};
  QueryAugmentation aug;
  aug.flip = true;
  aug.shift = 2;
  ASSERT_EQ(aug.NumQueries(true), 6);
  const std::vector<int64_t> rows = Range(0, 40);  // more than one internal batch is not needed
  int classes = 0;
  auto logits = ComputeLogits(path, false, spec, recipe, d, rows, aug, Cpu(), &classes);
  ASSERT_TRUE(logits.ok()) << logits.status();
  ASSERT_EQ(logits->size(), 40u * 6 * 4);
  const torch::Tensor got = AsTensor(*logits, 40, 6, 4);

  // The same queries built here: zero fill happens in pixel space, before
  // normalization.
  torch::NoGradGuard no_grad;
  const torch::Tensor raw = Rows(d, rows);  // [40, 1, 8, 8]
  auto shifted = [&](int dx, int dy) {
    torch::Tensor out = torch::zeros_like(raw);
    for (int y = 0; y < 8; ++y) {
      for (int x = 0; x < 8; ++x) {
        const int sy = y - dy, sx = x - dx;
        if (sy < 0 || sy >= 8 || sx < 0 || sx >= 8) continue;
        out.select(2, y).select(2, x).copy_(raw.select(2, sy).select(2, sx));
      }
    }
    return out;
  };
  const std::vector<torch::Tensor> expected_inputs = {
      raw, raw.flip({3}), shifted(2, 0), shifted(-2, 0), shifted(0, 2), shifted(0, -2)};
  for (int a = 0; a < 6; ++a) {
    const torch::Tensor want = model->forward((expected_inputs[a] - 0.4f) / 0.3f);
    EXPECT_TRUE(torch::allclose(got.select(1, a), want, 1e-5, 1e-5)) << "query " << a;
  }

  // Query 0 equals the logits without augmentation.
  auto plain =
      ComputeLogits(path, false, spec, recipe, d, rows, QueryAugmentation(), Cpu(), &classes);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(torch::equal(AsTensor(*plain, 40, 1, 4).select(1, 0), got.select(1, 0)));
}

TEST(ComputeLogitsTest, ManyRowsSpanSeveralBatches) {
  const data::Dataset d = Tabular(700, 6, 4, 1.0, 0.0, 6);
  const std::string path = TestDir() + "/m.pt";
  ModelSpec spec;
  spec.hidden = {8};
  auto model = SavedModel(spec, d, path);
  int classes = 0;
  auto logits = ComputeLogits(path, false, spec, TrainRecipe(), d, Range(0, 700),
                              QueryAugmentation(), Cpu(), &classes);
  ASSERT_TRUE(logits.ok());
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(AsTensor(*logits, 700, 1, 4).select(1, 0),
                              model->forward(Rows(d, Range(0, 700))), 1e-6, 1e-6));
}

TEST(ComputeLogitsTest, TorchScriptModule) {
  const data::Dataset d = Images(12, 1, 8, 7);
  const std::string path = TestDir() + "/scripted.pt";
  const torch::Tensor w = torch::linspace(-1, 1, 64 * 3).view({64, 3});
  {
    torch::jit::Module m("m");
    m.register_parameter("w", w.clone(), /*is_buffer=*/false);
    m.define(R"(
      def forward(self, x):
          return torch.matmul(x.flatten(1), self.w) + 0.5
    )");
    m.save(path);
  }
  TrainRecipe recipe;
  recipe.normalize_mean = {0.5f};
  recipe.normalize_std = {0.2f};
  QueryAugmentation aug;
  aug.flip = true;
  int classes = 0;
  auto logits =
      ComputeLogits(path, true, ModelSpec(), recipe, d, Range(0, 12), aug, Cpu(), &classes);
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_EQ(classes, 3);  // from the module's output, not the dataset
  const torch::Tensor got = AsTensor(*logits, 12, 2, 3);
  const torch::Tensor x = (Rows(d, Range(0, 12)) - 0.5f) / 0.2f;
  EXPECT_TRUE(torch::allclose(got.select(1, 0), torch::matmul(x.flatten(1), w) + 0.5, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(got.select(1, 1), torch::matmul(x.flip({3}).flatten(1), w) + 0.5,
                              1e-5, 1e-5));

  // Not a TorchScript file, and a missing one.
  std::ofstream(TestDir() + "/junk.pt") << "junk";
  EXPECT_EQ(ComputeLogits(TestDir() + "/junk.pt", true, ModelSpec(), recipe, d, Range(0, 2), aug,
                          Cpu(), &classes)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// Several models in parallel lanes give what each gives alone, every model
// is reported once and never concurrently, and an error from the callback
// stops the rest and comes back.
TEST(ComputeLogitsTest, ManyModelsInLanesMatchOneByOne) {
  const data::Dataset d = Images(60, 1, 8, 7);
  ModelSpec spec;
  spec.architecture = "cnn";
  spec.width = 1;
  const std::string dir = TestDir();
  std::vector<std::string> paths;
  for (int m = 0; m < 5; ++m) {
    paths.push_back(dir + "/m" + std::to_string(m) + ".pt");
    auto model = models::BuildModel(spec, {d.sample_shape, d.num_classes}, 10 + m);
    ASSERT_TRUE(model.ok()) << model.status();
    ASSERT_TRUE(SaveModelState((*model)->State(), paths.back()).ok());
  }
  TrainRecipe recipe;
  QueryAugmentation aug;
  aug.flip = true;
  const std::vector<int64_t> rows = Range(0, 60);
  std::vector<std::vector<float>> alone;
  for (const std::string& path : paths) {
    int classes = 0;
    auto logits = ComputeLogits(path, false, spec, recipe, d, rows, aug, Cpu(), &classes);
    ASSERT_TRUE(logits.ok()) << logits.status();
    alone.push_back(*logits);
  }
  SetComputeThreads(2);
  std::vector<int> calls(paths.size(), 0);
  std::atomic<int> inside{0};
  bool overlapped = false;
  absl::Status status = ComputeLogitsMany(
      paths, false, spec, recipe, d, rows, aug, Cpu(),
      [&](int m, std::vector<float> logits, int classes) {
        overlapped = overlapped || inside.fetch_add(1) != 0;
        ++calls[m];
        EXPECT_EQ(classes, 4);
        EXPECT_TRUE(torch::allclose(torch::tensor(logits), torch::tensor(alone[m]), 1e-5, 1e-6))
            << "model " << m;
        inside.fetch_sub(1);
        return absl::OkStatus();
      });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_FALSE(overlapped);
  for (int c : calls) EXPECT_EQ(c, 1);

  int reported = 0;
  status = ComputeLogitsMany(paths, false, spec, recipe, d, rows, aug, Cpu(),
                             [&](int, std::vector<float>, int) {
                               ++reported;
                               return absl::DataLossError("disk full");
                             });
  SetComputeThreads(1);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_LE(reported, 2);  // one per lane at most: the first error stops the rest
  // A missing model is its own error.
  paths[3] = dir + "/missing.pt";
  status = ComputeLogitsMany(paths, false, spec, recipe, d, rows, aug, Cpu(),
                             [](int, std::vector<float>, int) { return absl::OkStatus(); });
  EXPECT_FALSE(status.ok());
}

TEST(ComputeLogitsTest, BadArgumentsAndCancellation) {
  const data::Dataset d = Images(12, 1, 8, 8);
  const std::string path = TestDir() + "/m.pt";
  ModelSpec spec;
  spec.architecture = "cnn";
  spec.width = 1;
  SavedModel(spec, d, path);
  int classes = 0;
  QueryAugmentation aug;
  aug.shift = 8;
  EXPECT_THAT(ComputeLogits(path, false, spec, TrainRecipe(), d, Range(0, 2), aug, Cpu(), &classes)
                  .status()
                  .message(),
              HasSubstr("aug.shift"));
  EXPECT_THAT(
      ComputeLogits(path, false, spec, TrainRecipe(), d, {12}, QueryAugmentation(), Cpu(), &classes)
          .status()
          .message(),
      HasSubstr("indices"));
  std::atomic<bool> cancel{true};
  TrainContext ctx = Cpu();
  ctx.cancel = &cancel;
  EXPECT_EQ(ComputeLogits(path, false, spec, TrainRecipe(), d, Range(0, 2), QueryAugmentation(),
                          ctx, &classes)
                .status()
                .code(),
            absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace mia::training
