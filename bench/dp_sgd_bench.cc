// DP-SGD's cost per epoch against ordinary training of the same model
// (core/training/dp_sgd.h: per-example gradients by microbatches of one).
//
//   mia_dp_sgd_bench [rows=2000] [epochs=2] [threads=1]
//
// Two cases, one model each, `rows` training rows, batch 256 (DP-SGD: Poisson
// batches of expected size 256), SGD lr 0.01:
//   mlp: Purchase-shaped MLP 600 -> 128 (tanh) -> 100 on random binary rows
//        (16.5% ones) with random labels;
//   cnn: the 2-conv CNN (32, 64 channels) on random 1 x 28 x 28 images, 10
//        classes (Fashion-MNIST's shape).
// Ordinary training is the engine's default path (for the MLP on a CPU that
// is the sparse first layer and hand-computed gradients). Prints seconds per
// epoch of each (the whole TrainModels call over `epochs`, which also
// evaluates the model and writes its archive) and the ratio.
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/common/random.h"
#include "core/data/dataset.h"
#include "core/training/engine.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

mia::data::Dataset Random(int64_t rows, std::vector<int64_t> shape, int classes, bool binary) {
  mia::Rng rng(7);
  mia::data::Dataset d;
  d.name = "random";
  d.sample_shape = shape;
  d.num_classes = classes;
  d.features.resize(rows * d.sample_numel());
  for (float& f : d.features) {
    f = binary ? (rng.Uniform01() < 0.165 ? 1.0f : 0.0f) : static_cast<float>(rng.Uniform01());
  }
  for (int64_t i = 0; i < rows; ++i) d.labels.push_back(static_cast<int64_t>(rng.UniformInt(classes)));
  return d;
}

// Seconds per epoch of training one model, or -1 on error.
double PerEpoch(const mia::data::Dataset& d, const mia::training::ModelSpec& spec, bool dp,
                int epochs, const std::string& dir) {
  mia::training::TrainRecipe r;
  r.optimizer = "sgd";
  r.learning_rate = 0.01;
  r.momentum = 0.9;
  r.epochs = epochs;
  r.batch_size = 256;
  if (dp) {
    r.dp.enabled = true;
    r.dp.noise_multiplier = 1.0;
    r.dp.max_grad_norm = 1.0;
  }
  std::vector<int64_t> rows(d.size());
  for (int64_t i = 0; i < d.size(); ++i) rows[i] = i;
  mia::training::TrainContext ctx;
  ctx.device = "cpu";
  const Clock::time_point start = Clock::now();
  auto reports = mia::training::TrainModels(d, spec, r, {rows}, {}, {1},
                                            {dir + (dp ? "/dp.pt" : "/plain.pt")}, ctx);
  const double seconds = Seconds(start);
  if (!reports.ok()) {
    std::fprintf(stderr, "%s\n", std::string(reports.status().message()).c_str());
    return -1;
  }
  return seconds / epochs;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 2000;
  const int epochs = argc > 2 ? std::atoi(argv[2]) : 2;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 1;
  mia::training::SetComputeThreads(threads);
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("mia_dp_sgd_bench." + std::to_string(getpid())))
          .string();
  std::filesystem::create_directories(dir);

  mia::training::ModelSpec mlp;
  mlp.architecture = "mlp";
  mlp.hidden = {128};
  mlp.activation = "tanh";
  mia::training::ModelSpec cnn;
  cnn.architecture = "cnn";
  cnn.width = 1;
  struct Case {
    const char* name;
    mia::data::Dataset data;
    mia::training::ModelSpec spec;
  };
  std::vector<Case> cases = {{"mlp", Random(rows, {600}, 100, true), mlp},
                             {"cnn", Random(rows, {1, 28, 28}, 10, false), cnn}};
  std::printf("rows %lld, epochs %d, threads %d, batch 256\n", static_cast<long long>(rows),
              epochs, threads);
  std::printf("%-5s %14s %14s %8s %14s\n", "model", "plain s/epoch", "dp-sgd s/epoch", "ratio",
              "dp us/example");
  for (const Case& c : cases) {
    const double plain = PerEpoch(c.data, c.spec, false, epochs, dir);
    const double dp = PerEpoch(c.data, c.spec, true, epochs, dir);
    if (plain < 0 || dp < 0) return 1;
    std::printf("%-5s %14.3f %14.3f %8.1f %14.1f\n", c.name, plain, dp, dp / plain,
                dp / static_cast<double>(rows) * 1e6);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
