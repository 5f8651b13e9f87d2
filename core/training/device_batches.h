// The training rows kept on the training device, and batches gathered there.
//
// The host path (trainer.cc, Assemble) writes every batch of K x B samples
// on the CPU and copies it to the device: on a GPU that copy, from pageable
// memory, waits for the work queued before it, so every step synchronises
// the host with the GPU and the GPU idles while the next batch is written.
// DeviceBatches uploads the dataset once, normalized (and, for random crops,
// padded with the normalized value of a zero pixel), and builds each batch
// on the device from one small non-blocking copy (row indices, crop offsets,
// flips, rows per model) out of pinned memory. The batch equals the host
// path's value for value (tests/training/device_batches_test.cc): the same
// float operations in the same order, padding rows zero with weight 0.
//
// LibTorch header: include only from core/training and its tests.
#ifndef MIA_CORE_TRAINING_DEVICE_BATCHES_H_
#define MIA_CORE_TRAINING_DEVICE_BATCHES_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "core/data/dataset.h"
#include "core/training/recipe.h"

namespace mia::training {

// x [K, B, sample...], labels [K, B] (int64), weights [K, B] (1 / rows[k]
// for real rows, 0 for padding), all on one device.
struct GroupBatch {
  torch::Tensor x, labels, weights;
};

class DeviceBatches {
 public:
  // Copies the dataset to `device` (a copy also when it is the CPU, which
  // tests use), normalized by `norm`. `crop_padding` > 0 keeps images padded
  // by that many pixels on each side so that crops up to that offset are
  // gathered without branches.
  DeviceBatches(const data::Dataset& dataset, const Normalization& norm, int crop_padding,
                const torch::Device& device);

  // Model k's batch is its rows[k] rows starting at starts[k]; row i of
  // model k is transformed by transforms[k * B + i] (B = max rows; images
  // only; empty: none), |dx|, |dy| <= crop_padding.
  GroupBatch Make(const std::vector<const int64_t*>& starts, const std::vector<int64_t>& rows,
                  const std::vector<ImageTransform>& transforms) const;

  // Bytes held on the device.
  int64_t bytes() const;

 private:
  torch::Device device_;
  std::vector<int64_t> sample_shape_;  // unpadded
  int64_t pad_ = 0;
  torch::Tensor samples_;  // [N, sample...] (images: [N, C, H + 2 pad, W + 2 pad])
  torch::Tensor labels_;   // [N]
};

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_DEVICE_BATCHES_H_
