#include "core/training/device_batches.h"

#include <algorithm>

namespace mia::training {

DeviceBatches::DeviceBatches(const data::Dataset& dataset, const Normalization& norm,
                             int crop_padding, const torch::Device& device)
    : device_(device), sample_shape_(dataset.sample_shape) {
  const bool image = dataset.is_image();
  pad_ = image ? std::max(crop_padding, 0) : 0;
  std::vector<int64_t> shape = {dataset.size()};
  shape.insert(shape.end(), sample_shape_.begin(), sample_shape_.end());
  // from_blob does not copy: clone (CPU) or copy (GPU) before any change.
  torch::Tensor host = torch::from_blob(const_cast<float*>(dataset.features.data()), shape,
                                        torch::kFloat32);
  torch::Tensor x = device.is_cpu() ? host.clone() : host.to(device);
  if (pad_ > 0) x = torch::constant_pad_nd(x, {pad_, pad_, pad_, pad_}, 0.0);
  if (!norm.empty()) {
    // (x - mean) / std per channel or feature, in float as WriteSample does;
    // a zero pixel of the padding becomes WriteSample's fill value.
    const int64_t n = image ? sample_shape_[0] : dataset.sample_numel();
    std::vector<float> mean(n), stddev(n);
    for (int64_t i = 0; i < n; ++i) {
      mean[i] = norm.mean(i);
      stddev[i] = norm.stddev(i);
    }
    const std::vector<int64_t> view =
        image ? std::vector<int64_t>{1, n, 1, 1} : std::vector<int64_t>{1, n};  // tabular: [N, D]
    const auto opts = torch::TensorOptions().dtype(torch::kFloat32);
    const torch::Tensor m = torch::from_blob(mean.data(), {n}, opts).to(device).view(view);
    const torch::Tensor s = torch::from_blob(stddev.data(), {n}, opts).to(device).view(view);
    x = x.sub_(m).div_(s);
  }
  samples_ = x.contiguous();
  torch::Tensor labels = torch::from_blob(const_cast<int64_t*>(dataset.labels.data()),
                                          {dataset.size()}, torch::kInt64);
  labels_ = device.is_cpu() ? labels.clone() : labels.to(device);
}

int64_t DeviceBatches::bytes() const {
  return samples_.numel() * samples_.element_size() + labels_.numel() * labels_.element_size();
}

GroupBatch DeviceBatches::Make(const std::vector<const int64_t*>& starts,
                               const std::vector<int64_t>& rows,
                               const std::vector<ImageTransform>& transforms) const {
  const int64_t models = static_cast<int64_t>(rows.size());
  const int64_t batch = *std::max_element(rows.begin(), rows.end());
  const int64_t n = models * batch;
  const bool image = sample_shape_.size() == 3;
  const bool transformed = image && !transforms.empty();
  // One host buffer, one copy: row indices, then (transformed) dx, dy and
  // flip per row, then rows per model. Pinned memory makes the copy
  // asynchronous; LibTorch's pinned allocator keeps the buffer from reuse
  // until the copy has run.
  const int64_t fields = transformed ? 4 : 1;
  auto host_opts = torch::TensorOptions().dtype(torch::kInt64);
  if (device_.is_cuda()) host_opts = host_opts.pinned_memory(true);
  torch::Tensor meta = torch::empty({fields * n + models}, host_opts);
  int64_t* m = meta.data_ptr<int64_t>();
  std::fill(m, m + fields * n, 0);  // padding rows: row 0, no transform (masked below)
  for (int64_t k = 0; k < models; ++k) {
    for (int64_t i = 0; i < rows[k]; ++i) {
      const int64_t at = k * batch + i;
      m[at] = starts[k][i];
      if (transformed) {
        const ImageTransform& t = transforms[at];
        m[n + at] = t.dx;
        m[2 * n + at] = t.dy;
        m[3 * n + at] = t.flip ? 1 : 0;
      }
    }
    m[fields * n + k] = rows[k];
  }
  torch::Tensor dev = device_.is_cpu() ? meta : meta.to(device_, /*non_blocking=*/true);
  const torch::Tensor index = dev.slice(0, 0, n);
  const torch::Tensor counts = dev.slice(0, fields * n, fields * n + models);
  const auto long_opts = torch::TensorOptions().dtype(torch::kInt64).device(device_);

  GroupBatch b;
  const torch::Tensor valid = torch::arange(batch, long_opts).view({1, batch}) <
                              counts.view({models, 1});  // [K, B]
  // 1 / rows[k] for real rows, 0 for padding: a model with no rows left in
  // this step (rows[k] = 0) gets 0, not 0 / 0.
  b.weights = valid.to(torch::kFloat32) /
              counts.clamp_min(1).to(torch::kFloat32).view({models, 1});
  b.labels = labels_.index_select(0, index).view({models, batch}).masked_fill(~valid, 0);

  torch::Tensor x;
  if (!transformed) {
    x = samples_.index_select(0, index);
    if (pad_ > 0) x = x.narrow(2, pad_, sample_shape_[1]).narrow(3, pad_, sample_shape_[2]);
  } else {
    // Output pixel (y, x) of a row is its source pixel (y - dy, x - dx),
    // mirrored (W - 1 - column) when flipped: WriteSample's rule, in the
    // padded frame where out-of-image sources are fill pixels.
    const int64_t channels = sample_shape_[0], height = sample_shape_[1], width = sample_shape_[2];
    const torch::Tensor dx = dev.slice(0, n, 2 * n).view({n, 1});
    const torch::Tensor dy = dev.slice(0, 2 * n, 3 * n).view({n, 1});
    const torch::Tensor flip = dev.slice(0, 3 * n, 4 * n).view({n, 1}).to(torch::kBool);
    const torch::Tensor sy = torch::arange(height, long_opts).view({1, height}) - dy + pad_;
    const torch::Tensor sx = torch::arange(width, long_opts).view({1, width}) - dx;
    const torch::Tensor col = torch::where(flip, (width - 1) - sx, sx) + pad_;
    x = samples_.index({index.view({n, 1, 1, 1}),
                        torch::arange(channels, long_opts).view({1, channels, 1, 1}),
                        sy.view({n, 1, height, 1}), col.view({n, 1, 1, width})});
  }
  std::vector<int64_t> shape = {models, batch};
  shape.insert(shape.end(), sample_shape_.begin(), sample_shape_.end());
  std::vector<int64_t> mask_shape = {models, batch};
  mask_shape.insert(mask_shape.end(), sample_shape_.size(), 1);
  b.x = x.reshape(shape).masked_fill(~valid.view(mask_shape), 0.0f);
  return b;
}

}  // namespace mia::training
