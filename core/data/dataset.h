// An in-memory labelled dataset, as every loader returns it and every later
// stage (splits, training, signals) reads it. Torch-free plain data.
//
// A Dataset is immutable once loaded and may be shared across threads.
#ifndef MIA_CORE_DATA_DATASET_H_
#define MIA_CORE_DATA_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

namespace mia::data {

struct Dataset {
  std::string name;                   // e.g. "fashion-mnist:train", for messages and reports
  std::vector<int64_t> sample_shape;  // per example: {D} tabular, {C, H, W} images
  std::vector<float> features;        // [size() * sample_numel()], row-major; images in [0, 1]
  std::vector<int64_t> labels;        // [size()], 0-based
  int num_classes = 0;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t sample_numel() const {
    int64_t n = 1;
    for (int64_t d : sample_shape) n *= d;
    return n;
  }
  bool is_image() const { return sample_shape.size() == 3; }
};

}  // namespace mia::data

#endif  // MIA_CORE_DATA_DATASET_H_
