// DP-SGD training of one model (ATTACKS.md, "DP-SGD and its accountant";
// docs/dp.md, "DP-SGD training"): Poisson batches, per-example gradients
// clipped to L2 norm C over all parameters together, Gaussian noise of
// standard deviation sigma C on the sum, division by the expected batch size
// q n, then an ordinary optimizer step (sgd, adam, adamw) on that gradient.
//
// Per-example gradients are computed by microbatches of one: a forward and
// backward pass per example of the batch. It is the general method (any
// architecture without batch statistics, dropout and augmentation included)
// and the reference the spec's definition reads as; its cost against
// ordinary training is measured in docs/benchmarks.md.
//
// Throws LibTorch exceptions (the caller converts them). Not thread-safe.
// LibTorch header: include only from core/training and its tests.
#ifndef MIA_CORE_TRAINING_DP_SGD_H_
#define MIA_CORE_TRAINING_DP_SGD_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/models/classifier.h"
#include "core/training/engine.h"

namespace mia::training {

struct GroupJob;

// What one DP-SGD run of a model on n training rows does, fixed before it
// starts: the accountant's inputs and its guarantee.
struct DpSgdPlan {
  double sample_rate = 0;       // q = min(1, batch_size / n)
  double expected_batch = 0;    // q n, the divisor of the noisy sum
  int64_t steps_per_epoch = 0;  // ceil(1 / q) (1 when q = 1)
  int64_t steps = 0;            // T = epochs * steps_per_epoch
  double noise_multiplier = 0;  // sigma, given or solved for target_epsilon
  ModelReport::Dp report;       // epsilon at delta for (q, sigma, T), and the rest
};

// The plan of recipe.dp for a model with `n` training rows; the noise
// multiplier is recipe.dp.noise_multiplier, or, with target_epsilon, the
// smallest one whose epsilon is at most the target (metrics::
// NoiseMultiplierForEpsilon). Errors: InvalidArgument (bad recipe, n < 1),
// OutOfRange for an unreachable target_epsilon (named in the message).
absl::StatusOr<DpSgdPlan> PlanDpSgd(const TrainRecipe& recipe, int64_t n);

// The sum over the B examples of x [B, sample...] (labels [B]) of each
// example's cross-entropy gradient, clipped to L2 norm `clip` over all of
// `group`'s parameters together, by microbatches of one (group is a single
// model, K = 1, in whatever train/eval mode the caller set). Returns one
// tensor per parameter of group.parameters(), in that order; when `norms` is
// given it receives each example's unclipped gradient norm. Leaves the
// parameters' grad() in an unspecified state.
std::vector<torch::Tensor> ClippedGradientSum(models::ModelGroup& group, const torch::Tensor& x,
                                              const torch::Tensor& labels, double clip,
                                              std::vector<double>* norms = nullptr);

// Trains the single model `group` (K = 1, already on job.device) with
// DP-SGD as `plan` says, seeded by job.seeds[0] (Poisson batches from
// kDpSampleStream, noise from kDpNoiseStream, augmentation and dropout as
// ordinary training). Cancelled / Aborted as TrainGroup.
absl::Status TrainGroupDpSgd(models::ModelGroup& group, const GroupJob& job,
                             const DpSgdPlan& plan);

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_DP_SGD_H_
