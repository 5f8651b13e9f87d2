// Range membership inference (RaMIA, Tao and Shokri 2025; ATTACKS.md, "Range
// membership"): the range samplers and the trimmed mean that turns the scores
// of a range's sampled points into the range's score. Torch-free plain
// functions on arrays; safe from any thread (each call owns its Rng).
//
// A range is a centre and a set around it:
//  - l2: the closed L2 ball of `radius` around the centre, in the input
//    space (rows' features, images' pixels in [0, 1] before normalisation).
//    Points are drawn uniformly from the ball: a direction g / |g| with g
//    standard normal in every coordinate, times radius * U^(1/d), U uniform
//    in [0, 1), d the number of features.
//  - missing_values: the rows that agree with the centre on every feature but
//    the last `num_missing_feats` (the incumbent's choice of which features
//    are missing). A point replaces those features with values drawn
//    independently per feature from its col_ranges entry [low, high]:
//    uniformly in [low, high) for numeric features, uniformly among the
//    integers low..high (inclusive) when is_categorical. The s points of a
//    range are distinct (drawn again until they are), as the incumbent's are.
//  - geometric (images): the centre under each listed transformation, in
//    order: horizontal_flip (mirror left-right), vertical_flip (mirror
//    top-bottom), rotate (by an angle drawn uniformly in [-30, 30] degrees,
//    about the image centre, nearest pixel, 0 outside: torchvision's
//    RandomRotation(30) with its defaults); preceded by the centre itself when
//    sample_size = transformations + 1.
#ifndef MIA_CORE_AUDIT_RAMIA_H_
#define MIA_CORE_AUDIT_RAMIA_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace mia::audit {

// The `ramia` section of an audit spec (docs/config.md, "Range membership").
struct RamiaOptions {
  std::string range_function = "l2";  // l2 | missing_values | geometric
  int sample_size = 10;               // points sampled per range (s)
  double radius = 0;                  // l2: the ball's radius, > 0
  double trim = 0.2;                  // fraction dropped at each end, in [0, 0.5)
  int num_missing_feats = 0;          // missing_values: the last k features
  std::vector<std::pair<double, double>> col_ranges;  // missing_values: [low, high] each
  bool is_categorical = false;        // missing_values: integers low..high
  std::vector<std::string> transformations;  // geometric: horizontal_flip | vertical_flip | rotate
};

// Degrees of the geometric `rotate`: uniform in [-kRamiaRotateDegrees, +...].
inline constexpr double kRamiaRotateDegrees = 30.0;

// Points dropped at each end of s sorted scores: floor(trim * s) (computed
// as floor(trim * s + 1e-9), so that 0.3 * 10 drops 3 whatever the rounding).
int TrimCount(int s, double trim);

// The mean of the scores left after dropping the TrimCount lowest and highest.
// NaN when any score is NaN (a point the attack could not score) or the span
// is empty.
double TrimmedMean(absl::Span<const double> scores, double trim);

// Range scores from point scores laid out range after range, s per range:
// [R * s] -> [R].
std::vector<double> RangeScores(absl::Span<const double> point_scores, int s, double trim);

// s points uniform in the L2 ball of `radius` around `centre`: [s * d].
std::vector<float> SampleL2Ball(absl::Span<const float> centre, double radius, int s,
                                uint64_t seed);

// s distinct points of the missing_values range of `centre` (its last
// col_ranges.size() features drawn from col_ranges): [s * d]. Fails when the
// centre has fewer features than col_ranges, or categorical ranges hold fewer
// than s combinations.
absl::StatusOr<std::vector<float>> SampleMissingValues(
    absl::Span<const float> centre, const std::vector<std::pair<double, double>>& col_ranges,
    bool is_categorical, int s, uint64_t seed);

// The geometric range of an image [channels, height, width]: `s` is
// transformations.size() (the transforms) or one more (the centre first).
absl::StatusOr<std::vector<float>> SampleGeometric(absl::Span<const float> centre,
                                                   const std::vector<int64_t>& shape,
                                                   const std::vector<std::string>& transformations,
                                                   int s, uint64_t seed);

// The single-transform building blocks, for tests: an image [C, H, W]
// mirrored left-right or top-bottom, and rotated by `degrees` (counter-
// clockwise as displayed, rows top to bottom) about its centre.
std::vector<float> FlipHorizontal(absl::Span<const float> image, const std::vector<int64_t>& shape);
std::vector<float> FlipVertical(absl::Span<const float> image, const std::vector<int64_t>& shape);
std::vector<float> Rotate(absl::Span<const float> image, const std::vector<int64_t>& shape,
                          double degrees);

// The number of distinct value combinations of categorical col_ranges,
// saturating at INT64_MAX (each range holds high - low + 1 integers).
int64_t CategoricalCombinations(const std::vector<std::pair<double, double>>& col_ranges);

// The points of one range: the sampler that options.range_function names,
// around `centre` (one dataset row, `shape` its sample shape). [s * d].
absl::StatusOr<std::vector<float>> SampleRange(const RamiaOptions& options,
                                               absl::Span<const float> centre,
                                               const std::vector<int64_t>& shape, uint64_t seed);

// The centre of a range built around the data point `x` for the range game:
// l2 moves x to a point drawn uniformly from the ball of `radius` around it
// (so the range still holds x); missing_values and geometric keep x (the
// range of rows agreeing with x but on the missing features, or of x's
// transforms, holds x itself).
std::vector<float> PerturbedCentre(const RamiaOptions& options, absl::Span<const float> x,
                                   uint64_t seed);

}  // namespace mia::audit

#endif  // MIA_CORE_AUDIT_RAMIA_H_
