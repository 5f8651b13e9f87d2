// wrn: Wide ResNet (Zagoruyko & Komodakis 2016) for small images. Depth
// 6n + 4: a 3x3 stem conv, three groups of n pre-activation basic blocks at
// 16k, 32k, 64k channels (strides 1, 2, 2), batch norm + ReLU, global average
// pooling and the classifier. WRN-28-10 has n = 4, k = 10.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/models/layers.h"
#include "core/models/registry.h"

namespace mia::models {
namespace {

using DropoutFn = std::function<torch::Tensor(const torch::Tensor&)>;

// Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3 plus a
// shortcut, which is a 1x1 conv of the pre-activated input when the shape
// changes (as in the reference implementation) and the identity otherwise.
class WideBlockImpl : public torch::nn::Module {
 public:
  WideBlockImpl(int64_t in, int64_t out, int64_t stride, Initializer& init) {
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(in));
    conv1_ =
        register_module("conv1", Conv(in, out, 3, stride, 1, false, ConvInit::kHeFanOut, init));
    bn2_ = register_module("bn2", torch::nn::BatchNorm2d(out));
    conv2_ = register_module("conv2", Conv(out, out, 3, 1, 1, false, ConvInit::kHeFanOut, init));
    if (in != out || stride != 1) {
      shortcut_ = register_module("shortcut",
                                  Conv(in, out, 1, stride, 0, false, ConvInit::kHeFanOut, init));
    }
  }

  torch::Tensor forward(const torch::Tensor& x, const DropoutFn& dropout) {
    torch::Tensor a = torch::relu(bn1_->forward(x));             // [B, in, H, W]
    torch::Tensor skip = shortcut_ ? shortcut_->forward(a) : x;  // [B, out, H/s, W/s]
    torch::Tensor h = conv1_->forward(a);                        // [B, out, H/s, W/s]
    h = dropout(torch::relu(bn2_->forward(h)));                  // [B, out, H/s, W/s]
    return conv2_->forward(h) + skip;                            // [B, out, H/s, W/s]
  }

 private:
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  Conv conv1_{nullptr}, conv2_{nullptr}, shortcut_{nullptr};
};
TORCH_MODULE(WideBlock);

struct WrnConfig {
  int64_t channels = 0;  // input C
  int64_t blocks = 4;    // n per group
  int64_t widen = 1;     // k
  int64_t classes = 0;
  double dropout = 0.0;
};

class WideResNet : public Classifier {
 public:
  WideResNet(const WrnConfig& config, Initializer& init) : config_(config) {
    const int64_t widths[] = {16, 16 * config.widen, 32 * config.widen, 64 * config.widen};
    stem_ = register_module(
        "conv1", Conv(config.channels, widths[0], 3, 1, 1, false, ConvInit::kHeFanOut, init));
    int64_t in = widths[0];
    for (int g = 0; g < 3; ++g) {
      auto group = register_module(absl::StrCat("group", g + 1), torch::nn::ModuleList());
      for (int64_t i = 0; i < config.blocks; ++i) {
        const int64_t stride = (g > 0 && i == 0) ? 2 : 1;
        WideBlock block(in, widths[g + 1], stride, init);
        group->push_back(block);
        blocks_.push_back(block);
        in = widths[g + 1];
      }
    }
    bn_ = register_module("bn", torch::nn::BatchNorm2d(in));
    classifier_ = register_module("classifier", Dense(in, config.classes, init));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const DropoutFn dropout = [this](const torch::Tensor& t) {
      return Dropout(t, config_.dropout);
    };
    torch::Tensor h = stem_->forward(x);  // [B, 16, H, W]
    for (WideBlock& block : blocks_) {
      h = block->forward(h, dropout);  // [B, 16k|32k|64k, H|H/2|H/4, ..]
    }
    h = torch::relu(bn_->forward(h));                      // [B, 64k, H/4, W/4]
    h = torch::adaptive_avg_pool2d(h, {1, 1}).flatten(1);  // [B, 64k]
    return classifier_->forward(h);                        // [B, C]
  }

 private:
  WrnConfig config_;
  Conv stem_{nullptr};
  std::vector<WideBlock> blocks_;
  torch::nn::BatchNorm2d bn_{nullptr};
  Dense classifier_{nullptr};
};

}  // namespace

absl::StatusOr<std::shared_ptr<Classifier>> BuildWideResNet(const ModelSpec& spec,
                                                            const InputSpec& input,
                                                            Initializer& init) {
  if (input.sample_shape.size() != 3) {
    return absl::InvalidArgumentError(
        "sample_shape: wrn needs images shaped {C, H, W}, got tabular rows");
  }
  if (input.sample_shape[1] < 4 || input.sample_shape[2] < 4) {
    return absl::InvalidArgumentError("sample_shape: wrn needs images of at least 4x4 pixels");
  }
  if (spec.depth < 10 || (spec.depth - 4) % 6 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.depth: wrn depth must be 6n + 4 with n >= 1 (e.g. 28), got ", spec.depth));
  }
  if (spec.width < 1 || spec.width > 32) {
    return absl::InvalidArgumentError("spec.width: wrn widening factor must be in [1, 32]");
  }
  WrnConfig config;
  config.channels = input.sample_shape[0];
  config.blocks = (spec.depth - 4) / 6;
  config.widen = spec.width;
  config.classes = input.num_classes;
  config.dropout = spec.dropout;
  return std::shared_ptr<Classifier>(std::make_shared<WideResNet>(config, init));
}

}  // namespace mia::models
