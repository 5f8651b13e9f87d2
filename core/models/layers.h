// Layers and initialization shared by the architectures in core/models.
//
// Parameters are created and filled here from a caller's seeded Rng, never from
// LibTorch's global generator: the same seed gives the same initial weights on
// every machine and in every thread, and a model's initial weights do not
// depend on what else the process did before. Layouts and default ranges
// follow torch::nn (Linear weight [out, in], Conv2d weight [out, in, k, k]) so
// archives read like ordinary PyTorch state dicts.
//
// LibTorch header: include only from core/models, core/training and their tests.
#ifndef MIA_CORE_MODELS_LAYERS_H_
#define MIA_CORE_MODELS_LAYERS_H_

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "core/common/random.h"

namespace mia::models {

// Where initial weights come from: a seeded Rng, or nowhere (zeros) for a
// model whose weights are about to be loaded from an archive, which saves
// drawing e.g. WRN-28-10's 36M normals (about 2 s) for nothing.
class Initializer {
 public:
  explicit Initializer(uint64_t seed) : rng_(Rng(seed)) {}
  static Initializer None() { return Initializer(); }

  // A float32 CPU tensor of `shape` with entries uniform in [-bound, bound).
  torch::Tensor Uniform(const std::vector<int64_t>& shape, double bound);
  // A float32 CPU tensor of `shape` with entries normal(0, stddev^2).
  torch::Tensor Normal(const std::vector<int64_t>& shape, double stddev);

 private:
  Initializer() = default;
  std::optional<Rng> rng_;
};

// How a convolution's weight is initialized.
enum class ConvInit {
  kTorchDefault,  // uniform +-1/sqrt(fan_in), as torch::nn::Conv2d
  kHeFanOut,      // normal, std sqrt(2 / fan_out): the usual ResNet/WRN choice
};

// y = x W^T + b. weight [out, in], bias [out], both uniform +-1/sqrt(in)
// (torch::nn::Linear's default range).
class DenseImpl : public torch::nn::Module {
 public:
  DenseImpl(int64_t in, int64_t out, Initializer& init);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in] -> [B, out]

  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out]
};
TORCH_MODULE(Dense);

// 2-D convolution with square kernels. weight [out, in, k, k]; bias [out]
// when `with_bias` (uniform +-1/sqrt(fan_in)).
class ConvImpl : public torch::nn::Module {
 public:
  ConvImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, bool with_bias,
           ConvInit scheme, Initializer& init);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, H, W] -> [B, out, H', W']

  torch::Tensor weight;  // [out, in, k, k]
  torch::Tensor bias;    // [out], undefined without bias

 private:
  int64_t stride_;
  int64_t padding_;
};
TORCH_MODULE(Conv);

// A dropout keep-mask shaped `shape`, scaled by 1 / (1 - p), drawn from
// `generator` (a CPU generator) and moved to `device`. Masks are drawn on the
// CPU so that one seeded CPU generator serves every device.
torch::Tensor DropoutMask(const std::vector<int64_t>& shape, double p, torch::Generator& generator,
                          const torch::Device& device);

// A CPU generator seeded with `seed`, for dropout masks.
torch::Generator MakeGenerator(uint64_t seed);

}  // namespace mia::models

#endif  // MIA_CORE_MODELS_LAYERS_H_
