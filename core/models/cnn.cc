// cnn: a small convolutional classifier (two 3x3 conv layers with ReLU and
// 2x2 max-pooling, a 128-unit hidden layer, the classifier), and its stacked
// form: K models as one network with grouped convolutions (groups = K).
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/models/layers.h"
#include "core/models/registry.h"

namespace mia::models {
namespace {

constexpr int64_t kHiddenUnits = 128;

struct CnnConfig {
  int64_t channels = 0, height = 0, width = 0;  // input C, H, W
  int64_t conv1 = 32, conv2 = 64;               // output channels (times spec.width)
  int64_t classes = 0;
  // Flattened size after two 2x2 poolings.
  int64_t features() const { return conv2 * (height / 4) * (width / 4); }
};

class Cnn : public Classifier {
 public:
  Cnn(const CnnConfig& config, Initializer& init) : config_(config) {
    conv1_ = register_module(
        "conv1", Conv(config.channels, config.conv1, 3, 1, 1, true, ConvInit::kTorchDefault, init));
    conv2_ = register_module(
        "conv2", Conv(config.conv1, config.conv2, 3, 1, 1, true, ConvInit::kTorchDefault, init));
    fc_ = register_module("fc", Dense(config.features(), kHiddenUnits, init));
    classifier_ = register_module("classifier", Dense(kHiddenUnits, config.classes, init));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    torch::Tensor h = torch::relu(conv1_->forward(x));  // [B, c1, H, W]
    h = torch::max_pool2d(h, 2);                        // [B, c1, H/2, W/2]
    h = torch::relu(conv2_->forward(h));                // [B, c2, H/2, W/2]
    h = torch::max_pool2d(h, 2);                        // [B, c2, H/4, W/4]
    h = torch::relu(fc_->forward(h.flatten(1)));        // [B, 128]
    return classifier_->forward(h);                     // [B, C]
  }

  const CnnConfig& config() const { return config_; }
  const Conv& conv1() const { return conv1_; }
  const Conv& conv2() const { return conv2_; }
  const Dense& fc() const { return fc_; }
  const Dense& classifier() const { return classifier_; }

 private:
  CnnConfig config_;
  Conv conv1_{nullptr}, conv2_{nullptr};
  Dense fc_{nullptr}, classifier_{nullptr};
};

// K CNNs as one: the input's models go to the channel axis ([B, K*C, H, W]),
// each convolution has groups = K (model k's filters see only model k's
// channels), and the dense layers are batched products over k. Parameters
// keep the models on a leading axis (conv weight [K, out, in, 3, 3]) and are
// reshaped into the grouped layout on the fly.
class StackedCnn : public ModelGroup {
 public:
  explicit StackedCnn(const std::vector<std::shared_ptr<Cnn>>& models)
      : config_(models[0]->config()), size_(static_cast<int64_t>(models.size())) {
    auto stack = [&](auto get) {
      std::vector<torch::Tensor> parts;
      for (const auto& m : models) parts.push_back(get(*m).detach());
      return torch::stack(parts).contiguous();
    };
    conv1_w_ = register_parameter("conv1_w", stack([](Cnn& m) { return m.conv1()->weight; }));
    conv1_b_ = register_parameter("conv1_b", stack([](Cnn& m) { return m.conv1()->bias; }));
    conv2_w_ = register_parameter("conv2_w", stack([](Cnn& m) { return m.conv2()->weight; }));
    conv2_b_ = register_parameter("conv2_b", stack([](Cnn& m) { return m.conv2()->bias; }));
    fc_w_ = register_parameter("fc_w", stack([](Cnn& m) { return m.fc()->weight.t(); }));
    fc_b_ = register_parameter("fc_b", stack([](Cnn& m) { return m.fc()->bias.unsqueeze(0); }));
    out_w_ = register_parameter("out_w", stack([](Cnn& m) { return m.classifier()->weight.t(); }));
    out_b_ = register_parameter("out_b",
                                stack([](Cnn& m) { return m.classifier()->bias.unsqueeze(0); }));
  }

  int64_t size() const override { return size_; }
  bool stacked() const override { return true; }

  torch::Tensor Forward(const torch::Tensor& x, const std::vector<int64_t>& /*rows*/) override {
    const int64_t k = size_, b = x.size(1);
    torch::Tensor h = x.transpose(0, 1).reshape(
        {b, k * config_.channels, config_.height, config_.width});  // [B, K*C, H, W]
    h = torch::conv2d(h, Grouped(conv1_w_), conv1_b_.flatten(), 1, 1, 1, k);
    h = torch::max_pool2d(torch::relu(h), 2);  // [B, K*c1, H/2, W/2]
    h = torch::conv2d(h, Grouped(conv2_w_), conv2_b_.flatten(), 1, 1, 1, k);
    h = torch::max_pool2d(torch::relu(h), 2);                   // [B, K*c2, H/4, W/4]
    h = h.reshape({b, k, config_.features()}).transpose(0, 1);  // [K, B, F]
    h = torch::relu(torch::baddbmm(fc_b_, h, fc_w_));           // [K, B, 128]
    return torch::baddbmm(out_b_, h, out_w_);                   // [K, B, C]
  }

  std::vector<NamedTensor> ModelState(int64_t k) override {
    return {
        {"conv1.weight", conv1_w_[k], false},        {"conv1.bias", conv1_b_[k], false},
        {"conv2.weight", conv2_w_[k], false},        {"conv2.bias", conv2_b_[k], false},
        {"fc.weight", fc_w_[k].t(), false},          {"fc.bias", fc_b_[k][0], false},
        {"classifier.weight", out_w_[k].t(), false}, {"classifier.bias", out_b_[k][0], false},
    };
  }

  // The CNN has no dropout.
  void SetDropoutGenerators(const std::vector<torch::Generator>& /*generators*/) override {}
  // The stacked weights are 5-D [K, out, in, 3, 3]: their grouped 4-D form
  // is made channels-last at each forward pass (a small copy) instead.
  void SetChannelsLast(bool on) override { channels_last_ = on; }

 private:
  CnnConfig config_;
  int64_t size_;
  // [K, out, in, 3, 3] -> the grouped convolution's [K*out, in, 3, 3].
  torch::Tensor Grouped(const torch::Tensor& w) const {
    torch::Tensor g = w.flatten(0, 1);
    return channels_last_ ? g.contiguous(at::MemoryFormat::ChannelsLast) : g;
  }

  bool channels_last_ = false;
  torch::Tensor conv1_w_, conv1_b_;  // [K, c1, C, 3, 3], [K, c1]
  torch::Tensor conv2_w_, conv2_b_;  // [K, c2, c1, 3, 3], [K, c2]
  torch::Tensor fc_w_, fc_b_;        // [K, F, 128], [K, 1, 128]
  torch::Tensor out_w_, out_b_;      // [K, 128, C], [K, 1, C]
};

}  // namespace

absl::StatusOr<std::shared_ptr<Classifier>> BuildCnn(const ModelSpec& spec, const InputSpec& input,
                                                     Initializer& init) {
  if (input.sample_shape.size() != 3) {
    return absl::InvalidArgumentError(
        "sample_shape: cnn needs images shaped {C, H, W}, got tabular rows");
  }
  if (input.sample_shape[1] < 4 || input.sample_shape[2] < 4) {
    return absl::InvalidArgumentError("sample_shape: cnn needs images of at least 4x4 pixels");
  }
  if (spec.width < 1 || spec.width > 64) {
    return absl::InvalidArgumentError("spec.width: cnn channel multiplier must be in [1, 64]");
  }
  if (spec.dropout != 0.0) {
    return absl::InvalidArgumentError("spec.dropout: cnn has no dropout; set it to 0");
  }
  CnnConfig config;
  config.channels = input.sample_shape[0];
  config.height = input.sample_shape[1];
  config.width = input.sample_shape[2];
  config.conv1 = 32 * spec.width;
  config.conv2 = 64 * spec.width;
  config.classes = input.num_classes;
  return std::shared_ptr<Classifier>(std::make_shared<Cnn>(config, init));
}

absl::StatusOr<std::shared_ptr<ModelGroup>> StackCnns(
    const std::vector<std::shared_ptr<Classifier>>& models) {
  std::vector<std::shared_ptr<Cnn>> cnns;
  for (const auto& model : models) {
    auto cnn = std::dynamic_pointer_cast<Cnn>(model);
    if (cnn == nullptr) return absl::InvalidArgumentError("StackCnns: not a cnn");
    cnns.push_back(std::move(cnn));
  }
  if (cnns.empty()) return absl::InvalidArgumentError("StackCnns: no models");
  torch::NoGradGuard no_grad;
  return std::shared_ptr<ModelGroup>(std::make_shared<StackedCnn>(cnns));
}

}  // namespace mia::models
