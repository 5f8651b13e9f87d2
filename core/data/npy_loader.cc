// NumPy input: a folder of .npy files or an .npz archive holding `features`
// [N, ...] (any numeric dtype) and `labels` [N] (integers). Other arrays are
// ignored, so a richer bundle can double as a dataset.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/data/internal.h"
#include "core/io/npy.h"

namespace mia::data::internal {
namespace {

// The io conversions name the array but not the file.
absl::Status WithPath(const std::string& path, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
}

}  // namespace

absl::StatusOr<Dataset> LoadNpy(const DataSource& source, const LoadLimits& limits) {
  MIA_RETURN_IF_ERROR(CheckNoSplit(source));
  io::ReadLimits read_limits;
  read_limits.max_array_bytes = limits.max_bytes;
  read_limits.max_total_bytes = limits.max_bytes;
  MIA_ASSIGN_OR_RETURN(io::NpyMap arrays, io::ReadArrays(source.path, read_limits));

  auto features_it = arrays.find("features");
  auto labels_it = arrays.find("labels");
  if (features_it == arrays.end() || labels_it == arrays.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source.path, ": needs arrays 'features' and 'labels' (features.npy and labels.npy)"));
  }
  const io::NpyArray& features = features_it->second;
  const io::NpyArray& labels = labels_it->second;
  if (features.shape.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source.path, ": 'features' is 0-d; expected [N, ...]"));
  }
  if (labels.shape.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(source.path, ": 'labels' has shape [",
                                                   absl::StrJoin(labels.shape, ", "),
                                                   "]; expected [N]"));
  }
  const int64_t rows = features.shape[0];
  if (labels.shape[0] != rows) {
    return absl::InvalidArgumentError(absl::StrCat(source.path, ": 'features' has ", rows,
                                                   " rows but 'labels' has ", labels.shape[0]));
  }
  if (rows == 0) return absl::InvalidArgumentError(absl::StrCat(source.path, ": no rows"));
  std::vector<int64_t> sample_shape(features.shape.begin() + 1, features.shape.end());
  // A 1-d features array is one scalar feature per example.
  if (sample_shape.empty()) sample_shape.push_back(1);
  int64_t numel = 1;
  for (int64_t d : sample_shape) numel *= d;  // bounded: io validated the array size
  if (numel == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source.path, ": 'features' has no elements per example"));
  }
  MIA_RETURN_IF_ERROR(CheckSize(absl::StrCat("npy:", source.path), static_cast<uint64_t>(rows),
                                static_cast<uint64_t>(numel), limits));

  Dataset dataset;
  dataset.name = absl::StrCat("npy:", source.path);
  dataset.sample_shape = std::move(sample_shape);
  absl::StatusOr<std::vector<int64_t>> label_values = labels.ToInt64("labels");
  if (!label_values.ok()) return WithPath(source.path, label_values.status());
  dataset.labels = *std::move(label_values);
  int64_t max_label = -1;
  for (size_t i = 0; i < dataset.labels.size(); ++i) {
    const int64_t label = dataset.labels[i];
    if (label < 0 || label >= kMaxClasses) {
      return absl::InvalidArgumentError(absl::StrCat(source.path, ": labels element ", i,
                                                     " is out of range 0..", kMaxClasses - 1));
    }
    max_label = std::max(max_label, label);
  }
  dataset.num_classes = static_cast<int>(max_label + 1);
  arrays.erase(labels_it);
  absl::StatusOr<std::vector<float>> feature_values = features.ToFloat("features");
  if (!feature_values.ok()) return WithPath(source.path, feature_values.status());
  dataset.features = *std::move(feature_values);
  for (size_t i = 0; i < dataset.features.size(); ++i) {
    // float64 input beyond the float32 range, or NaN/Inf in any float input.
    if (!std::isfinite(dataset.features[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(source.path, ": features element ", i, " is not a finite float32 number"));
    }
  }
  return dataset;
}

}  // namespace mia::data::internal
