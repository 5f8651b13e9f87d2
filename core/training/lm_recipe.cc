#include "core/training/lm_recipe.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

namespace mia::training {
namespace {

template <typename T>
void Shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.UniformInt(i)]);
}

}  // namespace

absl::Status ValidateLmRecipe(const LmRecipe& r) {
  if (!(r.learning_rate > 0) || !std::isfinite(r.learning_rate)) {
    return absl::InvalidArgumentError("learning_rate must be positive");
  }
  if (!(r.weight_decay >= 0)) return absl::InvalidArgumentError("weight_decay must be >= 0");
  if (!(r.beta1 >= 0 && r.beta1 < 1) || !(r.beta2 >= 0 && r.beta2 < 1)) {
    return absl::InvalidArgumentError("beta1 and beta2 must be in [0, 1)");
  }
  if (!(r.eps > 0)) return absl::InvalidArgumentError("eps must be positive");
  if (r.epochs < 1) return absl::InvalidArgumentError("epochs must be >= 1");
  if (r.batch_size < 1) return absl::InvalidArgumentError("batch_size must be >= 1");
  if (!(r.warmup_fraction >= 0 && r.warmup_fraction <= 1)) {
    return absl::InvalidArgumentError("warmup_fraction must be in [0, 1]");
  }
  if (!(r.grad_clip >= 0)) return absl::InvalidArgumentError("grad_clip must be >= 0");
  return absl::OkStatus();
}

double LmLearningRate(const LmRecipe& recipe, int64_t step, int64_t total) {
  const int64_t warmup =
      static_cast<int64_t>(std::ceil(recipe.warmup_fraction * static_cast<double>(total)));
  if (step < warmup) {
    return recipe.learning_rate * static_cast<double>(step + 1) / static_cast<double>(warmup);
  }
  const int64_t decay = total - warmup;
  if (decay <= 1) return recipe.learning_rate;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(decay - 1);
  return recipe.learning_rate * 0.5 * (1.0 + std::cos(M_PI * progress));
}

std::vector<std::vector<int64_t>> LengthBucketedBatches(std::vector<TextLength> texts,
                                                        int64_t batch_size, Rng& rng) {
  Shuffle(texts, rng);
  const int64_t n = static_cast<int64_t>(texts.size());
  const int64_t window = batch_size * kBucketWindow;
  std::vector<std::vector<int64_t>> batches;
  for (int64_t begin = 0; begin < n; begin += window) {
    const auto first = texts.begin() + begin;
    const auto last = texts.begin() + std::min(begin + window, n);
    std::stable_sort(first, last,
                     [](const TextLength& a, const TextLength& b) { return a.length < b.length; });
    for (auto it = first; it < last;) {
      const auto end = it + std::min<int64_t>(batch_size, last - it);
      std::vector<int64_t>& batch = batches.emplace_back();
      for (; it < end; ++it) batch.push_back(it->text);
    }
  }
  Shuffle(batches, rng);
  return batches;
}

}  // namespace mia::training
