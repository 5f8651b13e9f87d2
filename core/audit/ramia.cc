#include "core/audit/ramia.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/common/random.h"

namespace mia::audit {
namespace {

// Per-point streams of a range's seed.
constexpr uint64_t kPointStream = 1;

bool IsImageShape(const std::vector<int64_t>& shape) { return shape.size() == 3; }

}  // namespace

int TrimCount(int s, double trim) {
  if (s <= 0 || !(trim > 0)) return 0;
  const int k = static_cast<int>(std::floor(trim * s + 1e-9));
  return std::clamp(k, 0, (s - 1) / 2);
}

double TrimmedMean(absl::Span<const double> scores, double trim) {
  const int s = static_cast<int>(scores.size());
  if (s == 0) return std::nan("");
  for (double v : scores) {
    if (std::isnan(v)) return std::nan("");
  }
  std::vector<double> sorted(scores.begin(), scores.end());
  std::sort(sorted.begin(), sorted.end());
  const int k = TrimCount(s, trim);
  double sum = 0;
  for (int i = k; i < s - k; ++i) sum += sorted[i];
  return sum / (s - 2 * k);
}

std::vector<double> RangeScores(absl::Span<const double> point_scores, int s, double trim) {
  std::vector<double> out;
  if (s <= 0) return out;
  const size_t ranges = point_scores.size() / static_cast<size_t>(s);
  out.reserve(ranges);
  for (size_t r = 0; r < ranges; ++r) {
    out.push_back(TrimmedMean(point_scores.subspan(r * s, s), trim));
  }
  return out;
}

std::vector<float> SampleL2Ball(absl::Span<const float> centre, double radius, int s,
                                uint64_t seed) {
  const size_t d = centre.size();
  std::vector<float> out;
  out.reserve(static_cast<size_t>(std::max(s, 0)) * d);
  std::vector<double> g(d);
  for (int p = 0; p < s; ++p) {
    Rng rng(DeriveSeed(seed, kPointStream + static_cast<uint64_t>(p)));
    double norm2 = 0;
    do {  // a zero vector has no direction (probability 0, but never divide by it)
      norm2 = 0;
      for (size_t j = 0; j < d; ++j) {
        g[j] = rng.Normal();
        norm2 += g[j] * g[j];
      }
    } while (d > 0 && !(norm2 > 0));
    const double r = radius * std::pow(rng.Uniform01(), 1.0 / static_cast<double>(d));
    const double scale = d > 0 ? r / std::sqrt(norm2) : 0;
    for (size_t j = 0; j < d; ++j) {
      out.push_back(static_cast<float>(static_cast<double>(centre[j]) + scale * g[j]));
    }
  }
  return out;
}

int64_t CategoricalCombinations(const std::vector<std::pair<double, double>>& col_ranges) {
  int64_t total = 1;
  for (const auto& [low, high] : col_ranges) {
    const double count = std::floor(high) - std::ceil(low) + 1;
    if (!(count >= 1)) return 0;
    if (count > static_cast<double>(std::numeric_limits<int64_t>::max() / total)) {
      return std::numeric_limits<int64_t>::max();
    }
    total *= static_cast<int64_t>(count);
  }
  return total;
}

absl::StatusOr<std::vector<float>> SampleMissingValues(
    absl::Span<const float> centre, const std::vector<std::pair<double, double>>& col_ranges,
    bool is_categorical, int s, uint64_t seed) {
  const size_t d = centre.size();
  const size_t k = col_ranges.size();
  if (k > d) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ramia.num_missing_feats (", k, ") exceeds the data's ", d, " features per row"));
  }
  if (is_categorical && CategoricalCombinations(col_ranges) < s) {
    return absl::InvalidArgumentError(
        absl::StrCat("ramia.col_ranges hold fewer than ramia.sample_size (", s,
                     ") distinct categorical combinations"));
  }
  Rng rng(DeriveSeed(seed, kPointStream));
  std::set<std::vector<float>> seen;
  std::vector<float> out;
  out.reserve(static_cast<size_t>(std::max(s, 0)) * d);
  std::vector<float> missing(k);
  // Continuous draws repeat with probability ~0; categorical ones are bounded
  // by the combinations (>= s), so the loop ends; the cap only guards rounding.
  const int64_t max_draws = 1000 * static_cast<int64_t>(std::max(s, 1)) + 100000;
  int64_t draws = 0;
  while (static_cast<int>(seen.size()) < s) {
    if (++draws > max_draws) {
      return absl::InvalidArgumentError(
          "ramia: could not draw sample_size distinct points from ramia.col_ranges");
    }
    for (size_t j = 0; j < k; ++j) {
      const auto [low, high] = col_ranges[j];
      if (is_categorical) {
        const double lo = std::ceil(low);
        const uint64_t count = static_cast<uint64_t>(std::floor(high) - lo + 1);
        missing[j] = static_cast<float>(lo + static_cast<double>(rng.UniformInt(count)));
      } else {
        missing[j] = static_cast<float>(low + (high - low) * rng.Uniform01());
      }
    }
    if (!seen.insert(missing).second) continue;
    out.insert(out.end(), centre.begin(), centre.end() - static_cast<std::ptrdiff_t>(k));
    out.insert(out.end(), missing.begin(), missing.end());
  }
  return out;
}

std::vector<float> FlipHorizontal(absl::Span<const float> image,
                                  const std::vector<int64_t>& shape) {
  const int64_t c = shape[0], h = shape[1], w = shape[2];
  std::vector<float> out(image.size());
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        out[(ch * h + y) * w + x] = image[(ch * h + y) * w + (w - 1 - x)];
      }
    }
  }
  return out;
}

std::vector<float> FlipVertical(absl::Span<const float> image, const std::vector<int64_t>& shape) {
  const int64_t c = shape[0], h = shape[1], w = shape[2];
  std::vector<float> out(image.size());
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        out[(ch * h + y) * w + x] = image[(ch * h + (h - 1 - y)) * w + x];
      }
    }
  }
  return out;
}

std::vector<float> Rotate(absl::Span<const float> image, const std::vector<int64_t>& shape,
                          double degrees) {
  const int64_t c = shape[0], h = shape[1], w = shape[2];
  const double theta = degrees * 3.14159265358979323846 / 180.0;
  const double cos_t = std::cos(theta), sin_t = std::sin(theta);
  const double cx = (static_cast<double>(w) - 1) / 2, cy = (static_cast<double>(h) - 1) / 2;
  std::vector<float> out(image.size(), 0.0f);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      // The source of output pixel (x, y): the inverse rotation, y pointing down.
      const double dx = static_cast<double>(x) - cx, dy = static_cast<double>(y) - cy;
      const double sx = cos_t * dx - sin_t * dy + cx;
      const double sy = sin_t * dx + cos_t * dy + cy;
      const int64_t ix = static_cast<int64_t>(std::floor(sx + 0.5));
      const int64_t iy = static_cast<int64_t>(std::floor(sy + 0.5));
      if (ix < 0 || ix >= w || iy < 0 || iy >= h) continue;
      for (int64_t ch = 0; ch < c; ++ch) {
        out[(ch * h + y) * w + x] = image[(ch * h + iy) * w + ix];
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<float>> SampleGeometric(absl::Span<const float> centre,
                                                   const std::vector<int64_t>& shape,
                                                   const std::vector<std::string>& transformations,
                                                   int s, uint64_t seed) {
  if (!IsImageShape(shape)) {
    return absl::InvalidArgumentError(
        "ramia.range_function geometric needs images ([channels, height, width] samples); "
        "use l2 or missing_values for tabular rows");
  }
  const int t = static_cast<int>(transformations.size());
  if (s != t && s != t + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ramia.sample_size (", s, ") must be the number of transformations (", t,
        ") or one more (the centre itself first)"));
  }
  std::vector<float> out;
  out.reserve(static_cast<size_t>(s) * centre.size());
  if (s == t + 1) out.insert(out.end(), centre.begin(), centre.end());
  Rng rng(DeriveSeed(seed, kPointStream));
  for (const std::string& name : transformations) {
    std::vector<float> img;
    if (name == "horizontal_flip") {
      img = FlipHorizontal(centre, shape);
    } else if (name == "vertical_flip") {
      img = FlipVertical(centre, shape);
    } else if (name == "rotate") {
      const double degrees = kRamiaRotateDegrees * (2 * rng.Uniform01() - 1);
      img = Rotate(centre, shape, degrees);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "ramia.transformations: unknown transformation; known: horizontal_flip, "
          "vertical_flip, rotate"));
    }
    out.insert(out.end(), img.begin(), img.end());
  }
  return out;
}

absl::StatusOr<std::vector<float>> SampleRange(const RamiaOptions& options,
                                               absl::Span<const float> centre,
                                               const std::vector<int64_t>& shape, uint64_t seed) {
  if (options.range_function == "l2") {
    return SampleL2Ball(centre, options.radius, options.sample_size, seed);
  }
  if (options.range_function == "missing_values") {
    return SampleMissingValues(centre, options.col_ranges, options.is_categorical,
                               options.sample_size, seed);
  }
  if (options.range_function == "geometric") {
    return SampleGeometric(centre, shape, options.transformations, options.sample_size, seed);
  }
  return absl::InvalidArgumentError(
      "ramia.range_function must be one of l2, missing_values, geometric");
}

std::vector<float> PerturbedCentre(const RamiaOptions& options, absl::Span<const float> x,
                                   uint64_t seed) {
  if (options.range_function == "l2") return SampleL2Ball(x, options.radius, 1, seed);
  return std::vector<float>(x.begin(), x.end());
}

}  // namespace mia::audit
