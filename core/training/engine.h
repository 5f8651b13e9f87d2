// The training engine's torch-free interface: train models of one
// architecture on given subsets of a dataset, save them as artifacts, and
// compute per-example logits (with test-time augmentation) from saved models.
// LibTorch stays behind this header (core/models, core/training, core/signals
// .cc files), so the pipeline and everything above it build without it.
//
// Thread-safety: functions are reentrant; concurrent calls must use distinct
// output paths. LibTorch's intra-op thread count is process-wide: set it once
// at start with SetComputeThreads.
#ifndef MIA_CORE_TRAINING_ENGINE_H_
#define MIA_CORE_TRAINING_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/models/model_spec.h"

namespace mia::training {

// The model spec lives below the trainer (core/models/model_spec.h); this
// name keeps the engine's callers unchanged.
using ModelSpec = models::ModelSpec;

// DP-SGD (ATTACKS.md, "DP-SGD and its accountant"; docs/dp.md): each step
// draws a Poisson batch (each training row with probability q = batch_size /
// n, n the model's training rows), clips each example's gradient to L2 norm
// max_grad_norm over all parameters together, sums, adds N(0, (sigma C)^2) to
// each coordinate and divides by the expected batch size q n; the optimizer
// then steps on that noisy gradient. Models train one at a time (never
// stacked); models with batch-norm statistics are refused.
struct DpSgdRecipe {
  bool enabled = false;
  // sigma, > 0. When target_epsilon > 0 it is ignored: each model's sigma is
  // solved from target_epsilon (the smallest one reaching it at its own q and
  // steps) by the RDP accountant.
  double noise_multiplier = 0;
  double target_epsilon = 0;  // > 0: solve sigma for this epsilon at delta
  double max_grad_norm = 1.0;  // C, > 0
  double delta = 1e-5;         // of the recorded (epsilon, delta), in (0, 1)
};

// How one model is trained. Every field matters for the model artifact key.
struct TrainRecipe {
  std::string optimizer = "sgd";  // sgd | adam | adamw
  double learning_rate = 0.01;    // used as given: no hidden extra factor
  double momentum = 0.9;          // sgd
  bool nesterov = false;          // sgd
  double weight_decay = 0.0;
  int epochs = 20;
  int batch_size = 256;
  std::string schedule = "constant";  // constant | cosine (cosine decays to 0 after warm-up)
  int warmup_epochs = 0;              // linear warm-up from 0 (both schedules)
  // Image augmentation during training.
  bool random_crop = false;  // random crop with `crop_padding` zero padding
  int crop_padding = 4;
  bool horizontal_flip = false;  // random horizontal flip with probability 1/2
  // Per-channel normalization applied to images (and tabular features if sizes
  // match); empty means none.
  std::vector<float> normalize_mean;
  std::vector<float> normalize_std;
  DpSgdRecipe dp;  // DP-SGD when dp.enabled
  // fp32, or bf16: the forward pass and loss under autocast (matrix products
  // and convolutions in bfloat16, weights and optimizer state in float32;
  // core/training/autocast.h). Signals are always computed in float32.
  std::string precision = "fp32";
};

struct ModelReport;

struct TrainContext {
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  // Called from the training thread: model index within the call (k of K),
  // epoch, batch, batches per epoch. Keep it cheap.
  std::function<void(int model, int epoch, int batch, int batches)> progress;
  // Checked between batches; when it becomes true training stops with Cancelled.
  const std::atomic<bool>* cancel = nullptr;
  bool allow_batched = true;  // train several models at once when the architecture allows
  // At most this many models per batched pass (memory grows linearly with
  // it); 0: all K in one pass.
  int max_batched_models = 0;
  // Keep the training rows on the device and gather batches there
  // (device_batches.h) instead of writing each batch on the host and copying
  // it; likewise for the queries of ComputeLogits*. Unset: on a GPU, not on
  // the CPU. Results are the same either way;
  // true on the CPU is for tests.
  std::optional<bool> data_on_device;
  // Convolutions in channels-last (NHWC) layout (image models: training and
  // the queries of ComputeLogits*); the same values up to float rounding.
  // Archives are written in the default layout either way.
  bool channels_last = false;
  // Called as soon as model k's archive is written (for a batched group, once
  // the group has finished), so a caller can record it durably before the
  // rest finish: a crash then loses only models still training. An error
  // stops training and is returned.
  std::function<absl::Status(int model, const ModelReport& report)> model_saved;
};

// Outcome of training one model.
struct ModelReport {
  double train_accuracy = 0, train_loss = 0;  // on its own training subset (eval mode)
  double test_accuracy = 0, test_loss = 0;    // on the held-out indices given
  double seconds = 0;                         // wall time attributed to this model
  bool batched = false;                       // trained together with others
  // DP-SGD models: the accountant's guarantee for the run actually made.
  struct Dp {
    bool enabled = false;
    double epsilon = 0;           // spec conversion at delta (+infinity if unbounded)
    double delta = 0;
    int order = 0;                // the RDP order attaining epsilon
    double noise_multiplier = 0;  // sigma used (solved when target_epsilon was given)
    double max_grad_norm = 0;     // C
    double sample_rate = 0;       // q = min(1, batch_size / training rows)
    int64_t steps = 0;            // optimizer steps taken (T)
  } dp;
};

// Sets LibTorch's intra-op threads (0: all cores). Call once at start.
void SetComputeThreads(int threads);
// The device "auto" resolves to: "cuda" if a CUDA device is usable, else "cpu".
std::string ResolveDevice(const std::string& device);
// The device to run on when `device` (a config's train.device or
// audit.device, named `key`) is asked for: `device` itself, or "cpu" when it
// names CUDA ("cuda", "cuda:N") and no CUDA device is usable here, with a
// warning for the report in *warning (empty otherwise). A shared config
// written for a GPU machine (Privacy Meter's `device: cuda:0`) then runs on a
// CPU, slower, instead of failing.
std::string UsableDevice(const std::string& device, const std::string& key, std::string* warning);

// Trains K = seeds.size() models of `spec` with `recipe`, model k on
// dataset rows train_indices[k], seeded by seeds[k] (initialization, data
// order, augmentation; never global RNG state), and writes model k's
// parameters to out_paths[k] atomically (a LibTorch archive of named tensors,
// not a pickle). test_indices are only evaluated. When the architecture
// supports it and ctx.allow_batched, the K models train together in one pass
// (stacked weights); otherwise one after another. On a CPU with T > 1
// intra-op threads (SetComputeThreads) the models are split into min(T, K)
// lanes that train in parallel, one thread each; ctx.progress and
// ctx.model_saved are then called from the lanes' threads, never two at once.
// Errors: InvalidArgument for
// bad specs/recipes/shapes, Cancelled, Internal for LibTorch failures (caught;
// messages never contain data).
absl::StatusOr<std::vector<ModelReport>> TrainModels(
    const data::Dataset& dataset, const ModelSpec& spec, const TrainRecipe& recipe,
    const std::vector<std::vector<int64_t>>& train_indices,
    const std::vector<int64_t>& test_indices, const std::vector<uint64_t>& seeds,
    const std::vector<std::string>& out_paths, const TrainContext& ctx);

// Test-time augmentation queries for signals: query 0 is always the plain
// input; then, for images, the horizontal flip (if flip) and shifts by +-shift
// pixels in x and y (if shift > 0), in a fixed documented order:
// plain, flip, (dx, dy) = (+s, 0), (-s, 0), (0, +s), (0, -s), where a shift
// moves the content right/down and zeros (in [0, 1] pixel space, before
// normalization) fill the uncovered border. Tabular data has only the plain
// query.
struct QueryAugmentation {
  bool flip = false;
  int shift = 0;
  int NumQueries(bool image) const;
};

// Logits of a saved model on dataset rows `indices`: [indices.size(), A, C]
// row-major, A = aug.NumQueries(). `model_path` is an archive written by
// TrainModels for `spec` (with `recipe` normalization), or, when
// `torchscript` is true, a TorchScript module trained elsewhere taking a
// float batch shaped like the dataset's samples and returning logits.
absl::StatusOr<std::vector<float>> ComputeLogits(const std::string& model_path, bool torchscript,
                                                 const ModelSpec& spec, const TrainRecipe& recipe,
                                                 const data::Dataset& dataset,
                                                 const std::vector<int64_t>& indices,
                                                 const QueryAugmentation& aug,
                                                 const TrainContext& ctx, int* classes);

// ComputeLogits for several models. On a CPU with T intra-op threads the
// models run in min(T, models) lanes of one thread each (as TrainModels
// trains them); on a GPU one after another. `done(m, logits, classes)` is
// called once per model as it finishes, in any order, never concurrently;
// the first error (its own or done's) stops the rest and is returned.
absl::Status ComputeLogitsMany(
    const std::vector<std::string>& model_paths, bool torchscript, const ModelSpec& spec,
    const TrainRecipe& recipe, const data::Dataset& dataset, const std::vector<int64_t>& indices,
    const QueryAugmentation& aug, const TrainContext& ctx,
    const std::function<absl::Status(int model, std::vector<float> logits, int classes)>& done);

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_ENGINE_H_
