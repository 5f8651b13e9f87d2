// The torch-free parts of language-model training (lm_engine.cc): recipe
// checks, the learning-rate schedule and length-bucketed batches. Pure
// functions (or touching only the Rng given); safe from any thread.
#ifndef MIA_CORE_TRAINING_LM_RECIPE_H_
#define MIA_CORE_TRAINING_LM_RECIPE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/common/random.h"
#include "core/training/lm_engine.h"

namespace mia::training {

// Every LmRecipe field is valid (InvalidArgument naming the field).
absl::Status ValidateLmRecipe(const LmRecipe& recipe);

// Learning rate of 0-based step `step` of `total`: linear warm-up over the
// first W = ceil(warmup_fraction * total) steps (lr (s + 1) / W, reaching lr
// at step W - 1), then a half cosine from lr at step W down to 0 at the last
// step, total - 1.
double LmLearningRate(const LmRecipe& recipe, int64_t step, int64_t total);

// Batches per length-sorting window.
inline constexpr int64_t kBucketWindow = 32;

struct TextLength {
  int64_t text = 0;    // corpus index
  int64_t length = 0;  // scored tokens (after truncation)
};

// One epoch's batches of corpus indices: `texts` shuffled, cut into windows
// of kBucketWindow batches, each window sorted by length (stable) and cut
// into batches of `batch_size` (the window's last one may be smaller), and
// the batches' order shuffled: a batch holds texts of similar length (little
// padding) while what goes together still varies per epoch and seed. Every
// text appears exactly once.
std::vector<std::vector<int64_t>> LengthBucketedBatches(std::vector<TextLength> texts,
                                                        int64_t batch_size, Rng& rng);

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_LM_RECIPE_H_
