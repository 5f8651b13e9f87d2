// The torch-free parts of training and inference: validation of recipes and
// datasets, the learning-rate schedule, image augmentation and test-time
// queries, normalization, and writing one (transformed, normalized) sample
// into a batch buffer. Training and ComputeLogits share these, so a model
// sees its inputs prepared the same way in both.
//
// All functions are pure or touch only the Rng they are given; safe from any
// thread.
#ifndef MIA_CORE_TRAINING_RECIPE_H_
#define MIA_CORE_TRAINING_RECIPE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/random.h"
#include "core/data/dataset.h"
#include "core/training/engine.h"

namespace mia::training {

// Streams of a model's seed (mia::DeriveSeed(seed, stream)): one per use, so
// that e.g. turning augmentation on does not change the data order.
enum SeedStream : uint64_t {
  kInitStream = 0,     // weight initialization
  kOrderStream = 1,    // per-epoch permutation of the training rows
  kAugmentStream = 2,  // random crop offsets and flips
  kDropoutStream = 3,  // dropout masks
  kDpNoiseStream = 4,   // DP-SGD: the Gaussian noise added to each step's gradient
  kDpSampleStream = 5,  // DP-SGD: the Poisson batches
};

// Shape, labels and feature count agree; at least 2 classes; labels in range.
absl::Status ValidateDataset(const data::Dataset& dataset);
// Every recipe field is valid for `dataset` (errors name the field).
absl::Status ValidateRecipe(const TrainRecipe& recipe, const data::Dataset& dataset);
// Every index is a row of `dataset`; `what` names the list in errors.
absl::Status ValidateIndices(const std::vector<int64_t>& indices, int64_t rows,
                             const std::string& what);

// Learning rate of the optimizer step with 0-based index `step` (counted
// over all epochs) for a model with `steps_per_epoch` steps per epoch: linear
// warm-up from 0 over warmup_epochs, then recipe.learning_rate as given
// (constant) or decayed to 0 along a half cosine (cosine).
double LearningRate(const TrainRecipe& recipe, int64_t step, int64_t steps_per_epoch);

enum class OptimizerKind { kSgd, kAdam, kAdamW };
// recipe.optimizer by name (sgd, adam, adamw); InvalidArgument naming the field.
absl::StatusOr<OptimizerKind> ParseOptimizer(const std::string& name);

// A geometric image transform: horizontal flip first, then a shift of the
// content by (dx, dy) pixels (right, down), with zeros (in [0, 1] pixel
// space, i.e. before normalization) filling what comes in from outside. A
// random crop of a zero-padded image is such a shift.
struct ImageTransform {
  bool flip = false;
  int dx = 0;
  int dy = 0;
};

// One training augmentation from `rng`: crop offsets uniform in
// [-crop_padding, crop_padding] when random_crop, then a flip with
// probability 1/2 when horizontal_flip. Draws nothing when both are off.
ImageTransform DrawAugmentation(const TrainRecipe& recipe, Rng& rng);

// The test-time queries in their fixed order: plain; flip (if aug.flip);
// then, if aug.shift > 0, shifts (dx, dy) = (+s, 0), (-s, 0), (0, +s),
// (0, -s). Tabular data has only the plain query.
std::vector<ImageTransform> QueryTransforms(const QueryAugmentation& aug, bool image);

// Per-channel (images) or per-feature (tabular) (x - mean) / std.
class Normalization {
 public:
  // From recipe.normalize_mean/std: both empty (none), or one value per
  // channel (images) or per feature (tabular), std > 0.
  static absl::StatusOr<Normalization> FromRecipe(const TrainRecipe& recipe,
                                                  const data::Dataset& dataset);
  bool empty() const { return mean_.empty(); }
  float mean(int64_t i) const { return mean_[i]; }
  float stddev(int64_t i) const { return std_[i]; }

 private:
  std::vector<float> mean_, std_;
};

// Writes dataset row `row`, transformed (images only) and normalized, to
// out[0, sample_numel).
void WriteSample(const data::Dataset& dataset, int64_t row, const ImageTransform& transform,
                 const Normalization& norm, float* out);

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_RECIPE_H_
