// Timed driver for the training engine: K reference MLPs trained batched
// (one pass, stacked weights) against one after another.
//
//   mia_training_bench [models=8] [epochs=3] [threads=0] [density=0.165] [sparse=auto|off]
//                      [device=cpu] [precision=fp32|bf16] [data_on_device=auto|on|off]
//
// device cuda (or cuda:N) runs the same comparison on a GPU (after one
// untimed warm-up model: CUDA context, cuBLAS handles), the sgemm there too;
// precision and data_on_device are train.precision and train.data_on_device.
// The case is Privacy Meter's Purchase setup: MLP 600 -> 128 (tanh) -> 100,
// SGD lr 0.01 momentum 0.9, batch 256, each model on 15,000 random rows of a
// 30,000 x 600 binary dataset (random features, a `density` fraction of ones
// as in Purchase-100, and random labels: only the timing matters). sparse=off
// forces the dense first layer (core/models/sparse_linear.h). Prints wall seconds of both, the
// speedup, and achieved GFLOP/s (6 x parameters x samples per epoch for forward + backward, the
// usual dense convention, over the whole TrainModels call, which also evaluates each model on its
// rows and writes its archive) against the measured 2048^3 sgemm rate of this machine, and the
// rate of the arithmetic actually done (no input gradient for the first layer; only its nonzeros
// when the sparse path runs).
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
#include "core/models/sparse_linear.h"
#include "core/training/engine.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Best-of-5 GFLOP/s of a 2048 x 2048 x 2048 float matrix product on `device`.
double SgemmGflops(const torch::Device& device) {
  const auto opts = torch::TensorOptions().device(device);
  const torch::Tensor a = torch::randn({2048, 2048}, opts), b = torch::randn({2048, 2048}, opts);
  torch::Tensor c = torch::mm(a, b);  // warm-up: thread pool, packing buffers, cuBLAS
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const Clock::time_point start = Clock::now();
    c = torch::mm(a, b);
    (void)c.sum().item<float>();  // waits for a GPU's product (negligible on the CPU)
    best = std::min(best, Seconds(start));
  }
  return 2.0 * 2048.0 * 2048.0 * 2048.0 / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const int models = argc > 1 ? std::atoi(argv[1]) : 8;
  const int epochs = argc > 2 ? std::atoi(argv[2]) : 3;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 0;
  const double density = argc > 4 ? std::atof(argv[4]) : 0.165;
  const std::string sparse = argc > 5 ? argv[5] : "auto";
  const std::string device = argc > 6 ? argv[6] : "cpu";
  const std::string precision = argc > 7 ? argv[7] : "fp32";
  const std::string on_device = argc > 8 ? argv[8] : "auto";
  if (sparse != "auto" && sparse != "off") {
    std::fprintf(stderr, "sparse must be auto or off\n");
    return 2;
  }
  if (on_device != "auto" && on_device != "on" && on_device != "off") {
    std::fprintf(stderr, "data_on_device must be auto, on or off\n");
    return 2;
  }
  if (device.rfind("cuda", 0) == 0 && !torch::cuda::is_available()) {
    std::fprintf(stderr, "device %s: no CUDA device is usable\n", device.c_str());
    return 2;
  }
  mia::models::SetSparseInputMode(sparse == "off" ? mia::models::SparseInputMode::kOff
                                                  : mia::models::SparseInputMode::kAuto);
  constexpr int64_t kRows = 30000, kFeatures = 600, kClasses = 100, kSubset = 15000;

  mia::training::SetComputeThreads(threads);
  mia::Rng rng(2024);
  mia::data::Dataset dataset;
  dataset.name = "purchase-shaped-random";
  dataset.sample_shape = {kFeatures};
  dataset.num_classes = kClasses;
  dataset.features.resize(kRows * kFeatures);
  for (float& f : dataset.features) f = rng.Uniform01() < density ? 1.0f : 0.0f;
  for (int64_t i = 0; i < kRows; ++i) {
    dataset.labels.push_back(static_cast<int64_t>(rng.UniformInt(kClasses)));
  }
  std::vector<std::vector<int64_t>> subsets;
  std::vector<uint64_t> seeds;
  for (int k = 0; k < models; ++k) {
    std::vector<int64_t> all(kRows);
    for (int64_t i = 0; i < kRows; ++i) all[i] = i;
    for (int64_t i = kRows - 1; i > 0; --i) std::swap(all[i], all[rng.UniformInt(i + 1)]);
    all.resize(kSubset);
    subsets.push_back(std::move(all));
    seeds.push_back(1000 + k);
  }

  mia::training::ModelSpec spec;
  spec.architecture = "mlp";
  spec.hidden = {128};
  spec.activation = "tanh";
  mia::training::TrainRecipe recipe;
  recipe.optimizer = "sgd";
  recipe.learning_rate = 0.01;
  recipe.momentum = 0.9;
  recipe.batch_size = 256;
  recipe.epochs = epochs;
  recipe.precision = precision;

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("mia_training_bench." + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto paths = [&](const std::string& stem) {
    std::vector<std::string> out;
    for (int k = 0; k < models; ++k) out.push_back((dir / (stem + std::to_string(k))).string());
    return out;
  };

  const double sgemm = SgemmGflops(torch::Device(device));
  mia::training::TrainContext ctx;
  ctx.device = device;
  if (on_device != "auto") ctx.data_on_device = on_device == "on";
  if (device != "cpu") {  // untimed: the CUDA context, cuBLAS handles, the allocator's first blocks
    mia::training::TrainRecipe one = recipe;
    one.epochs = 1;
    auto warm = mia::training::TrainModels(dataset, spec, one, {subsets[0]}, {}, {seeds[0]},
                                           {(dir / "warm").string()}, ctx);
    if (!warm.ok()) {
      std::fprintf(stderr, "warm-up failed: %s\n", warm.status().ToString().c_str());
      return 1;
    }
  }
  double seconds[2];
  for (int batched = 1; batched >= 0; --batched) {
    ctx.allow_batched = batched == 1;
    const Clock::time_point start = Clock::now();
    auto reports = mia::training::TrainModels(dataset, spec, recipe, subsets, {}, seeds,
                                              paths(batched ? "b" : "s"), ctx);
    seconds[batched] = Seconds(start);
    if (!reports.ok()) {
      std::fprintf(stderr, "training failed: %s\n", reports.status().ToString().c_str());
      return 1;
    }
  }
  std::filesystem::remove_all(dir);

  const double params = kFeatures * 128 + 128 + 128 * kClasses + kClasses;
  const double gflop = 6.0 * params * kSubset * epochs * models / 1e9;
  // The multiply-adds actually done per sample: the first layer's product and
  // weight gradient (never its input gradient) over the nonzeros when the
  // sparse path runs, over all 600 inputs when not; the second layer's
  // product and both gradients.
  const double first_inputs = sparse == "auto" && density <= 0.3 ? density * kFeatures : kFeatures;
  const double real_gflop =
      (4.0 * first_inputs * 128 + 6.0 * 128 * kClasses) * kSubset * epochs * models / 1e9;
  std::printf("device %s, precision %s, data_on_device %s, threads %d, sgemm 2048^3: %.1f GFLOP/s\n",
              device.c_str(), precision.c_str(), on_device.c_str(), torch::get_num_threads(),
              sgemm);
  std::printf("input density %.3f, sparse first layer: %s (%lld sparse products)\n", density,
              sparse.c_str(), static_cast<long long>(mia::models::SparseProductCount()));
  std::printf("%d MLPs 600-128-100, %d epochs, 15000 rows each: %.1f GFLOP of training\n", models,
              epochs, gflop);
  std::printf("batched:    %7.2f s  %6.1f GFLOP/s  (%.0f%% of sgemm)\n", seconds[1],
              gflop / seconds[1], 100.0 * gflop / seconds[1] / sgemm);
  std::printf("sequential: %7.2f s  %6.1f GFLOP/s  (%.0f%% of sgemm)\n", seconds[0],
              gflop / seconds[0], 100.0 * gflop / seconds[0] / sgemm);
  std::printf("speedup:    %7.2fx\n", seconds[0] / seconds[1]);
  std::printf(
      "arithmetic actually done: %.1f GFLOP: batched %.1f GFLOP/s, sequential %.1f GFLOP/s\n",
      real_gflop, real_gflop / seconds[1], real_gflop / seconds[0]);
  return 0;
}
