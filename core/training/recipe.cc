#include "core/training/recipe.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mia::training {
namespace {

struct OptimizerEntry {
  const char* name;
  OptimizerKind kind;
};
constexpr OptimizerEntry kOptimizers[] = {
    {"sgd", OptimizerKind::kSgd},
    {"adam", OptimizerKind::kAdam},
    {"adamw", OptimizerKind::kAdamW},
};

// Learning-rate factor after warm-up; t in [0, 1) is the fraction of the
// post-warm-up steps already taken.
using DecayFn = double (*)(double t);
double Constant(double /*t*/) { return 1.0; }
constexpr double kPi = 3.14159265358979323846;
double Cosine(double t) { return 0.5 * (1.0 + std::cos(kPi * t)); }

struct ScheduleEntry {
  const char* name;
  DecayFn decay;
};
constexpr ScheduleEntry kSchedules[] = {{"constant", &Constant}, {"cosine", &Cosine}};

const ScheduleEntry* FindSchedule(const std::string& name) {
  for (const ScheduleEntry& entry : kSchedules) {
    if (name == entry.name) return &entry;
  }
  return nullptr;
}

template <typename Table>
std::string Names(const Table& table) {
  std::vector<std::string> names;
  for (const auto& entry : table) names.push_back(entry.name);
  return absl::StrJoin(names, ", ");
}

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

}  // namespace

absl::Status ValidateDataset(const data::Dataset& dataset) {
  if (dataset.sample_shape.empty() || dataset.sample_shape.size() == 2 ||
      dataset.sample_shape.size() > 3) {
    return Invalid("dataset.sample_shape must be {D} (tabular) or {C, H, W} (images)");
  }
  for (int64_t d : dataset.sample_shape) {
    if (d <= 0) return Invalid("dataset.sample_shape has a non-positive dimension");
  }
  if (static_cast<int64_t>(dataset.features.size()) != dataset.size() * dataset.sample_numel()) {
    return Invalid("dataset.features size does not match labels x sample_shape");
  }
  if (dataset.num_classes < 2) return Invalid("dataset.num_classes must be at least 2");
  for (int64_t label : dataset.labels) {
    // The label itself is data: the message names only the problem.
    if (label < 0 || label >= dataset.num_classes) {
      return Invalid("dataset.labels has a label outside [0, num_classes)");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<OptimizerKind> ParseOptimizer(const std::string& name) {
  for (const OptimizerEntry& entry : kOptimizers) {
    if (name == entry.name) return entry.kind;
  }
  return Invalid(absl::StrCat("recipe.optimizer: unknown optimizer '", name,
                              "' (known: ", Names(kOptimizers), ")"));
}

absl::Status ValidateRecipe(const TrainRecipe& recipe, const data::Dataset& dataset) {
  auto kind = ParseOptimizer(recipe.optimizer);
  if (!kind.ok()) return kind.status();
  if (!(std::isfinite(recipe.learning_rate) && recipe.learning_rate > 0)) {
    return Invalid("recipe.learning_rate must be positive and finite");
  }
  if (!(recipe.momentum >= 0 && recipe.momentum < 1)) {
    return Invalid("recipe.momentum must be in [0, 1)");
  }
  if (recipe.nesterov && (*kind != OptimizerKind::kSgd || recipe.momentum == 0)) {
    return Invalid("recipe.nesterov needs optimizer sgd with momentum > 0");
  }
  if (!(std::isfinite(recipe.weight_decay) && recipe.weight_decay >= 0)) {
    return Invalid("recipe.weight_decay must be >= 0 and finite");
  }
  if (recipe.epochs < 1) return Invalid("recipe.epochs must be at least 1");
  if (recipe.batch_size < 1) return Invalid("recipe.batch_size must be at least 1");
  if (FindSchedule(recipe.schedule) == nullptr) {
    return Invalid(absl::StrCat("recipe.schedule: unknown schedule '", recipe.schedule,
                                "' (known: ", Names(kSchedules), ")"));
  }
  if (recipe.precision != "fp32" && recipe.precision != "bf16") {
    return Invalid(absl::StrCat("recipe.precision: unknown precision '", recipe.precision,
                                "' (known: fp32, bf16)"));
  }
  if (recipe.precision != "fp32" && recipe.dp.enabled) {
    return Invalid("recipe.precision: DP-SGD trains in fp32 only (its per-example gradients and "
                   "noise are calibrated in float32)");
  }
  if (recipe.warmup_epochs < 0 || recipe.warmup_epochs > recipe.epochs) {
    return Invalid("recipe.warmup_epochs must be in [0, epochs]");
  }
  if (!dataset.is_image() && (recipe.random_crop || recipe.horizontal_flip)) {
    return Invalid(recipe.random_crop
                       ? "recipe.random_crop: image augmentation needs image data"
                       : "recipe.horizontal_flip: image augmentation needs image data");
  }
  if (recipe.random_crop &&
      (recipe.crop_padding < 0 || recipe.crop_padding >= dataset.sample_shape[1] ||
       recipe.crop_padding >= dataset.sample_shape[2])) {
    return Invalid("recipe.crop_padding must be in [0, image height and width)");
  }
  if (recipe.dp.enabled) {
    const DpSgdRecipe& dp = recipe.dp;
    if (!(std::isfinite(dp.max_grad_norm) && dp.max_grad_norm > 0)) {
      return Invalid("recipe.dp.max_grad_norm must be positive and finite");
    }
    if (!(dp.delta > 0 && dp.delta < 1)) return Invalid("recipe.dp.delta must be in (0, 1)");
    const bool target = dp.target_epsilon != 0;
    if (target && !(std::isfinite(dp.target_epsilon) && dp.target_epsilon > 0)) {
      return Invalid("recipe.dp.target_epsilon must be positive and finite");
    }
    if (!target && !(std::isfinite(dp.noise_multiplier) && dp.noise_multiplier > 0)) {
      return Invalid("recipe.dp.noise_multiplier must be positive and finite");
    }
  }
  auto norm = Normalization::FromRecipe(recipe, dataset);
  return norm.status();
}

absl::Status ValidateIndices(const std::vector<int64_t>& indices, int64_t rows,
                             const std::string& what) {
  for (int64_t i : indices) {
    if (i < 0 || i >= rows) {
      return Invalid(absl::StrCat(what, ": an index is outside the dataset (", rows, " rows)"));
    }
  }
  return absl::OkStatus();
}

double LearningRate(const TrainRecipe& recipe, int64_t step, int64_t steps_per_epoch) {
  const int64_t warmup = static_cast<int64_t>(recipe.warmup_epochs) * steps_per_epoch;
  const int64_t total = static_cast<int64_t>(recipe.epochs) * steps_per_epoch;
  if (step < warmup) {
    return recipe.learning_rate * static_cast<double>(step + 1) / static_cast<double>(warmup);
  }
  const ScheduleEntry* schedule = FindSchedule(recipe.schedule);
  const double t = total > warmup
                       ? static_cast<double>(step - warmup) / static_cast<double>(total - warmup)
                       : 0.0;
  return recipe.learning_rate * schedule->decay(std::min(t, 1.0));
}

ImageTransform DrawAugmentation(const TrainRecipe& recipe, Rng& rng) {
  ImageTransform t;
  if (recipe.random_crop && recipe.crop_padding > 0) {
    const uint64_t span = 2 * static_cast<uint64_t>(recipe.crop_padding) + 1;
    t.dx = static_cast<int>(rng.UniformInt(span)) - recipe.crop_padding;
    t.dy = static_cast<int>(rng.UniformInt(span)) - recipe.crop_padding;
  }
  if (recipe.horizontal_flip) t.flip = rng.UniformInt(2) == 1;
  return t;
}

int QueryAugmentation::NumQueries(bool image) const {
  if (!image) return 1;
  return 1 + (flip ? 1 : 0) + (shift > 0 ? 4 : 0);
}

std::vector<ImageTransform> QueryTransforms(const QueryAugmentation& aug, bool image) {
  std::vector<ImageTransform> queries = {ImageTransform{}};
  if (!image) return queries;
  if (aug.flip) queries.push_back({true, 0, 0});
  if (aug.shift > 0) {
    const int s = aug.shift;
    queries.push_back({false, s, 0});
    queries.push_back({false, -s, 0});
    queries.push_back({false, 0, s});
    queries.push_back({false, 0, -s});
  }
  return queries;
}

absl::StatusOr<Normalization> Normalization::FromRecipe(const TrainRecipe& recipe,
                                                        const data::Dataset& dataset) {
  Normalization norm;
  if (recipe.normalize_mean.empty() && recipe.normalize_std.empty()) return norm;
  const int64_t expected = dataset.is_image() ? dataset.sample_shape[0] : dataset.sample_numel();
  const char* unit = dataset.is_image() ? "channels" : "features";
  if (static_cast<int64_t>(recipe.normalize_mean.size()) != expected) {
    return Invalid(absl::StrCat("recipe.normalize_mean has ", recipe.normalize_mean.size(),
                                " values; the dataset has ", expected, " ", unit));
  }
  if (static_cast<int64_t>(recipe.normalize_std.size()) != expected) {
    return Invalid(absl::StrCat("recipe.normalize_std has ", recipe.normalize_std.size(),
                                " values; the dataset has ", expected, " ", unit));
  }
  for (float s : recipe.normalize_std) {
    if (!(std::isfinite(s) && s > 0)) return Invalid("recipe.normalize_std must be positive");
  }
  for (float m : recipe.normalize_mean) {
    if (!std::isfinite(m)) return Invalid("recipe.normalize_mean must be finite");
  }
  norm.mean_ = recipe.normalize_mean;
  norm.std_ = recipe.normalize_std;
  return norm;
}

void WriteSample(const data::Dataset& dataset, int64_t row, const ImageTransform& transform,
                 const Normalization& norm, float* out) {
  const int64_t numel = dataset.sample_numel();
  const float* src = dataset.features.data() + row * numel;
  if (!dataset.is_image()) {
    if (norm.empty()) {
      std::memcpy(out, src, sizeof(float) * numel);
      return;
    }
    for (int64_t j = 0; j < numel; ++j) out[j] = (src[j] - norm.mean(j)) / norm.stddev(j);
    return;
  }
  const int64_t channels = dataset.sample_shape[0];
  const int64_t height = dataset.sample_shape[1];
  const int64_t width = dataset.sample_shape[2];
  for (int64_t c = 0; c < channels; ++c) {
    const float mean = norm.empty() ? 0.0f : norm.mean(c);
    const float stddev = norm.empty() ? 1.0f : norm.stddev(c);
    const float fill = (0.0f - mean) / stddev;
    const float* plane = src + c * height * width;
    float* dst = out + c * height * width;
    for (int64_t y = 0; y < height; ++y) {
      const int64_t sy = y - transform.dy;
      float* dst_row = dst + y * width;
      if (sy < 0 || sy >= height) {
        std::fill(dst_row, dst_row + width, fill);
        continue;
      }
      const float* src_row = plane + sy * width;
      for (int64_t x = 0; x < width; ++x) {
        const int64_t sx = x - transform.dx;
        if (sx < 0 || sx >= width) {
          dst_row[x] = fill;
        } else {
          dst_row[x] = (src_row[transform.flip ? width - 1 - sx : sx] - mean) / stddev;
        }
      }
    }
  }
}

}  // namespace mia::training
