// The training loop for a ModelGroup: K models of one architecture, model k
// on its own rows with its own seed, in lockstep (one forward/backward for
// all K per step). K = 1 is ordinary training of one model.
//
// Per-model equivalence: each model draws its own permutation every epoch
// and runs ceil(n_k / batch) steps; a step runs max_k of those, and a model
// that has run out of rows sits the remaining steps out (its loss weight is
// zero and the optimizer skips it). Batches shorter than the longest are
// padded with zero rows of zero loss weight. Each model's loss is the mean
// over its own batch and the group loss is their sum, so model k's gradient
// is exactly what it would be alone.
//
// Throws LibTorch exceptions (the caller converts them). Not thread-safe.
// LibTorch header: include only from core/training and its tests.
#ifndef MIA_CORE_TRAINING_TRAINER_H_
#define MIA_CORE_TRAINING_TRAINER_H_

#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/models/classifier.h"
#include "core/training/device_batches.h"
#include "core/training/engine.h"
#include "core/training/recipe.h"

namespace mia::training {

struct GroupJob {
  const data::Dataset* dataset = nullptr;
  const TrainRecipe* recipe = nullptr;
  const Normalization* norm = nullptr;
  std::vector<const std::vector<int64_t>*> train;  // model k's training rows
  std::vector<uint64_t> seeds;                     // model k's seed
  int first_model = 0;                             // index of model 0 in the caller's list
  torch::Device device = torch::kCPU;
  const TrainContext* ctx = nullptr;  // progress and cancellation
  // Also checked between batches: set when a sibling lane failed (engine.cc).
  const std::atomic<bool>* stop = nullptr;
  // The dataset's rows in CSR form when they are sparse enough (binary
  // tabular data, no normalization; engine.cc): batches for a group that
  // takes sparse rows are then assembled from it, never as dense rows.
  const models::sparse::Csr* sparse_rows = nullptr;
  // The dataset on job.device (engine.cc: by default on a GPU): dense
  // batches are gathered there instead of assembled on the host.
  const DeviceBatches* device_batches = nullptr;
};

// Trains `group` (already on job.device) in place. Cancelled if ctx.cancel
// turns true between batches; InvalidArgument for a bad recipe.
absl::Status TrainGroup(models::ModelGroup& group, const GroupJob& job);

// Eval-mode (accuracy, mean cross-entropy) of model k on rows[k]; (0, 0) for
// no rows. Inputs are normalized, not augmented; with `device_batches` (the
// dataset on `device`) they are gathered there, the same values.
std::vector<std::pair<double, double>> EvaluateGroup(
    models::ModelGroup& group, const data::Dataset& dataset, const Normalization& norm,
    const std::vector<const std::vector<int64_t>*>& rows, const torch::Device& device,
    const models::sparse::Csr* sparse_rows = nullptr,
    const DeviceBatches* device_batches = nullptr);

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_TRAINER_H_
