// alexnet: AlexNet's layout (5 conv + 3 FC, ReLU, max-pooling, dropout before
// the first two FC layers) scaled for 32x32 images: 3x3 kernels with stride 1
// instead of 11x11/stride 4, three 2x2 poolings, FC widths 1024 and 512.
#include <memory>

#include "absl/status/status.h"
#include "core/models/layers.h"
#include "core/models/registry.h"

namespace mia::models {
namespace {

struct AlexNetConfig {
  int64_t channels = 0, height = 0, width = 0;  // input C, H, W
  int64_t classes = 0;
  double dropout = 0.0;
  int64_t features() const { return 256 * (height / 8) * (width / 8); }
};

class AlexNet : public Classifier {
 public:
  AlexNet(const AlexNetConfig& config, Initializer& init) : config_(config) {
    auto conv = [&](int64_t in, int64_t out) {
      return Conv(in, out, 3, 1, 1, true, ConvInit::kTorchDefault, init);
    };
    conv1_ = register_module("conv1", conv(config.channels, 64));
    conv2_ = register_module("conv2", conv(64, 192));
    conv3_ = register_module("conv3", conv(192, 384));
    conv4_ = register_module("conv4", conv(384, 256));
    conv5_ = register_module("conv5", conv(256, 256));
    fc1_ = register_module("fc1", Dense(config.features(), 1024, init));
    fc2_ = register_module("fc2", Dense(1024, 512, init));
    fc3_ = register_module("fc3", Dense(512, config.classes, init));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    torch::Tensor h = torch::relu(conv1_->forward(x));            // [B, 64, H, W]
    h = torch::max_pool2d(h, 2);                                  // [B, 64, H/2, W/2]
    h = torch::relu(conv2_->forward(h));                          // [B, 192, H/2, W/2]
    h = torch::max_pool2d(h, 2);                                  // [B, 192, H/4, W/4]
    h = torch::relu(conv3_->forward(h));                          // [B, 384, H/4, W/4]
    h = torch::relu(conv4_->forward(h));                          // [B, 256, H/4, W/4]
    h = torch::relu(conv5_->forward(h));                          // [B, 256, H/4, W/4]
    h = torch::max_pool2d(h, 2).flatten(1);                       // [B, 256 * H/8 * W/8]
    h = torch::relu(fc1_->forward(Dropout(h, config_.dropout)));  // [B, 1024]
    h = torch::relu(fc2_->forward(Dropout(h, config_.dropout)));  // [B, 512]
    return fc3_->forward(h);                                      // [B, C]
  }

 private:
  AlexNetConfig config_;
  Conv conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr}, conv4_{nullptr}, conv5_{nullptr};
  Dense fc1_{nullptr}, fc2_{nullptr}, fc3_{nullptr};
};

}  // namespace

absl::StatusOr<std::shared_ptr<Classifier>> BuildAlexNet(const ModelSpec& spec,
                                                         const InputSpec& input,
                                                         Initializer& init) {
  if (input.sample_shape.size() != 3) {
    return absl::InvalidArgumentError(
        "sample_shape: alexnet needs images shaped {C, H, W}, got tabular rows");
  }
  if (input.sample_shape[1] < 8 || input.sample_shape[2] < 8) {
    return absl::InvalidArgumentError("sample_shape: alexnet needs images of at least 8x8 pixels");
  }
  AlexNetConfig config;
  config.channels = input.sample_shape[0];
  config.height = input.sample_shape[1];
  config.width = input.sample_shape[2];
  config.classes = input.num_classes;
  config.dropout = spec.dropout;
  return std::shared_ptr<Classifier>(std::make_shared<AlexNet>(config, init));
}

}  // namespace mia::models
