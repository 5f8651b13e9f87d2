#include "core/models/layers.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "core/models/sparse_linear.h"

namespace mia::models {
namespace {

int64_t Numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

torch::Tensor Initializer::Uniform(const std::vector<int64_t>& shape, double bound) {
  if (!rng_.has_value()) return torch::zeros(shape, torch::kFloat32);
  torch::Tensor t = torch::empty(shape, torch::kFloat32);
  float* data = t.data_ptr<float>();
  const int64_t n = Numel(shape);
  for (int64_t i = 0; i < n; ++i) {
    data[i] = static_cast<float>((2.0 * rng_->Uniform01() - 1.0) * bound);
  }
  return t;
}

torch::Tensor Initializer::Normal(const std::vector<int64_t>& shape, double stddev) {
  if (!rng_.has_value()) return torch::zeros(shape, torch::kFloat32);
  torch::Tensor t = torch::empty(shape, torch::kFloat32);
  float* data = t.data_ptr<float>();
  const int64_t n = Numel(shape);
  for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>(rng_->Normal() * stddev);
  return t;
}

DenseImpl::DenseImpl(int64_t in, int64_t out, Initializer& init) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = register_parameter("weight", init.Uniform({out, in}, bound));
  bias = register_parameter("bias", init.Uniform({out}, bound));
}

// A first layer over binary tabular data takes the sparse kernels.
torch::Tensor DenseImpl::forward(const torch::Tensor& x) {
  return LinearMaybeSparse(x, weight, bias);
}

ConvImpl::ConvImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                   bool with_bias, ConvInit scheme, Initializer& init)
    : stride_(stride), padding_(padding) {
  const double fan_in = static_cast<double>(in * kernel * kernel);
  const double fan_out = static_cast<double>(out * kernel * kernel);
  switch (scheme) {
    case ConvInit::kTorchDefault:
      weight = init.Uniform({out, in, kernel, kernel}, 1.0 / std::sqrt(fan_in));
      break;
    case ConvInit::kHeFanOut:
      weight = init.Normal({out, in, kernel, kernel}, std::sqrt(2.0 / fan_out));
      break;
  }
  weight = register_parameter("weight", weight);
  if (with_bias) {
    bias = register_parameter("bias", init.Uniform({out}, 1.0 / std::sqrt(fan_in)));
  }
}

torch::Tensor ConvImpl::forward(const torch::Tensor& x) {
  return torch::conv2d(x, weight, bias, stride_, padding_);
}

torch::Tensor DropoutMask(const std::vector<int64_t>& shape, double p, torch::Generator& generator,
                          const torch::Device& device) {
  // Drawn on the CPU from the model's own generator (the same masks on any
  // device). For a GPU it is written to pinned memory and copied without
  // waiting: a copy from pageable memory would wait for every kernel queued
  // before it, once per forward pass.
  auto opts = torch::TensorOptions().dtype(torch::kFloat32);
  if (device.is_cuda()) opts = opts.pinned_memory(true);
  torch::Tensor keep = torch::empty(shape, opts);
  keep.bernoulli_(1.0 - p, generator).div_(1.0 - p);
  return device.is_cpu() ? keep : keep.to(device, /*non_blocking=*/true);
}

torch::Generator MakeGenerator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

}  // namespace mia::models
