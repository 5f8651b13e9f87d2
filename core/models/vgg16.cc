// vgg16: VGG-16 (Simonyan & Zisserman 2015, configuration D) as Privacy
// Meter trains it on CIFAR-sized images. Privacy Meter's `vgg16` is
// torchvision's vgg16 built untrained (models/utils.py, get_model:
// torchvision.models.vgg16(pretrained=False)), which this matches:
//   - 13 3x3 convs (padding 1, with bias), each followed by ReLU and no batch
//     norm, in blocks 64,64 | 128,128 | 256,256,256 | 512,512,512 |
//     512,512,512, each block closed by a 2x2 max-pool (stride 2);
//   - adaptive average pooling to 7x7 (a 32x32 image leaves 1x1, which the
//     pooling repeats 49 times), so the first FC layer is 25088 -> 4096 for
//     any input size;
//   - classifier FC 4096, ReLU, dropout, FC 4096, ReLU, dropout, FC classes;
//     dropout is `spec.dropout` (train.model_name vgg16 defaults it to
//     torchvision's 0.5);
//   - torchvision's initialization: conv weights normal with std
//     sqrt(2 / fan_out) and zero biases, FC weights normal(0, 0.01) and zero
//     biases.
// One difference: Privacy Meter leaves torchvision's 1000 outputs whatever
// the dataset; here the classifier has the dataset's number of classes.
// With 10 classes VGG-16 has about 134.3M parameters (102.8M in the first FC).
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/models/layers.h"
#include "core/models/registry.h"

namespace mia::models {
namespace {

// Output channels of the 13 convs, block by block; a max-pool closes each block.
const std::vector<std::vector<int64_t>>& VggBlocks() {
  static const std::vector<std::vector<int64_t>>* const kBlocks =
      new std::vector<std::vector<int64_t>>{
          {64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}};
  return *kBlocks;
}

constexpr int64_t kPooledSide = 7;  // adaptive average pooling to 7x7
constexpr int64_t kHidden = 4096;   // classifier width

// A fully connected layer with torchvision VGG's initialization: weight
// normal(0, 0.01), bias zero. weight [out, in], bias [out].
class VggLinearImpl : public torch::nn::Module {
 public:
  VggLinearImpl(int64_t in, int64_t out, Initializer& init) {
    weight = register_parameter("weight", init.Normal({out, in}, 0.01));
    bias = register_parameter("bias", torch::zeros({out}, torch::kFloat32));
  }
  torch::Tensor forward(const torch::Tensor& x) { return torch::linear(x, weight, bias); }

  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(VggLinear);

struct Vgg16Config {
  int64_t channels = 0;  // input C
  int64_t classes = 0;
  double dropout = 0.0;
};

class Vgg16 : public Classifier {
 public:
  Vgg16(const Vgg16Config& config, Initializer& init) : config_(config) {
    int64_t in = config.channels;
    for (size_t b = 0; b < VggBlocks().size(); ++b) {
      for (size_t i = 0; i < VggBlocks()[b].size(); ++i) {
        const int64_t out = VggBlocks()[b][i];
        Conv conv(in, out, 3, 1, 1, true, ConvInit::kHeFanOut, init);
        {
          torch::NoGradGuard no_grad;
          conv->bias.zero_();
        }
        convs_.push_back(register_module(absl::StrCat("conv", b + 1, "_", i + 1), conv));
        in = out;
      }
    }
    fc1_ = register_module("fc1", VggLinear(in * kPooledSide * kPooledSide, kHidden, init));
    fc2_ = register_module("fc2", VggLinear(kHidden, kHidden, init));
    fc3_ = register_module("fc3", VggLinear(kHidden, config.classes, init));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    torch::Tensor h = x;  // [B, C, H, W]
    size_t next = 0;
    for (const std::vector<int64_t>& block : VggBlocks()) {
      for (size_t i = 0; i < block.size(); ++i) {
        h = torch::relu(convs_[next++]->forward(h));  // [B, width, H', W']
      }
      h = torch::max_pool2d(h, 2);  // [B, width, H'/2, W'/2]
    }
    // [B, 512, H/32, W/32] -> [B, 512, 7, 7] -> [B, 25088]
    h = torch::adaptive_avg_pool2d(h, {kPooledSide, kPooledSide}).flatten(1);
    h = Dropout(torch::relu(fc1_->forward(h)), config_.dropout);  // [B, 4096]
    h = Dropout(torch::relu(fc2_->forward(h)), config_.dropout);  // [B, 4096]
    return fc3_->forward(h);                                      // [B, classes]
  }

 private:
  Vgg16Config config_;
  std::vector<Conv> convs_;
  VggLinear fc1_{nullptr}, fc2_{nullptr}, fc3_{nullptr};
};

}  // namespace

absl::StatusOr<std::shared_ptr<Classifier>> BuildVgg16(const ModelSpec& spec,
                                                       const InputSpec& input, Initializer& init) {
  if (input.sample_shape.size() != 3) {
    return absl::InvalidArgumentError(
        "sample_shape: vgg16 needs images shaped {C, H, W}, got tabular rows");
  }
  if (input.sample_shape[1] < 32 || input.sample_shape[2] < 32) {
    return absl::InvalidArgumentError(
        "sample_shape: vgg16 needs images of at least 32x32 pixels (five 2x2 poolings)");
  }
  Vgg16Config config;
  config.channels = input.sample_shape[0];
  config.classes = input.num_classes;
  config.dropout = spec.dropout;
  return std::shared_ptr<Classifier>(std::make_shared<Vgg16>(config, init));
}

}  // namespace mia::models
