// mlp: a fully connected classifier, and its stacked form for training K
// models in one pass with batched matrix products.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/models/layers.h"
#include "core/models/registry.h"
#include "core/models/sparse_linear.h"

namespace mia::models {
namespace {

using ActivationFn = torch::Tensor (*)(const torch::Tensor&);

torch::Tensor Tanh(const torch::Tensor& x) { return torch::tanh(x); }
torch::Tensor Relu(const torch::Tensor& x) { return torch::relu(x); }

struct ActivationEntry {
  const char* name;
  ActivationFn fn;
};
constexpr ActivationEntry kActivations[] = {{"tanh", &Tanh}, {"relu", &Relu}};

struct MlpConfig {
  int64_t inputs = 0;           // D, the flattened sample size
  std::vector<int64_t> hidden;  // widths of the hidden layers
  int64_t classes = 0;          // C
  ActivationFn activation = nullptr;
  double dropout = 0.0;  // after every hidden activation
};

class Mlp : public Classifier {
 public:
  Mlp(const MlpConfig& config, Initializer& init) : config_(config) {
    int64_t in = config.inputs;
    for (size_t i = 0; i < config.hidden.size(); ++i) {
      hidden_.push_back(
          register_module(absl::StrCat("hidden", i), Dense(in, config.hidden[i], init)));
      in = config.hidden[i];
    }
    classifier_ = register_module("classifier", Dense(in, config.classes, init));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    torch::Tensor h = x.flatten(1);  // [B, D]
    for (Dense& layer : hidden_) {
      h = config_.activation(layer->forward(h));  // [B, H_i]
      h = Dropout(h, config_.dropout);            // [B, H_i]
    }
    return classifier_->forward(h);  // [B, C]
  }

  bool TakesSparseRows() const override {
    const Dense& first = hidden_.empty() ? classifier_ : hidden_[0];
    return first->weight.device().is_cpu();
  }

  torch::Tensor ForwardSparse(const sparse::Csr& x) override {
    TORCH_CHECK(x.cols == config_.inputs, "sparse rows have ", x.cols, " columns, expected ",
                config_.inputs);
    if (hidden_.empty()) return SparseLinear(x, classifier_->weight, classifier_->bias);
    torch::Tensor h = config_.activation(SparseLinear(x, hidden_[0]->weight, hidden_[0]->bias));
    h = Dropout(h, config_.dropout);
    for (size_t i = 1; i < hidden_.size(); ++i) {
      h = config_.activation(hidden_[i]->forward(h));  // [B, H_i]
      h = Dropout(h, config_.dropout);                 // [B, H_i]
    }
    return classifier_->forward(h);  // [B, C]
  }

  bool HasManualGradients() const override {
    return ManualGradientsEnabled() && classifier_->weight.device().is_cpu() &&
           classifier_->weight.scalar_type() == torch::kFloat32;
  }

  // Forward and backward by hand (see Classifier): per layer the products
  // autograd would run, without its graph.
  void ManualGradients(const sparse::Csr* x_sparse, const torch::Tensor& x_dense,
                       const torch::Tensor& labels, const torch::Tensor& weights) override {
    torch::NoGradGuard no_grad;
    const size_t layers = hidden_.size() + 1;
    auto layer = [&](size_t i) -> Dense& { return i < hidden_.size() ? hidden_[i] : classifier_; };
    const torch::Tensor x = x_sparse != nullptr ? torch::Tensor() : x_dense.flatten(1);
    // inputs[i]: what layer i multiplies (its input after dropout);
    // acts[i]: hidden i's activation before dropout; masks[i]: its mask.
    std::vector<torch::Tensor> inputs(layers), acts(hidden_.size()), masks(hidden_.size());
    inputs[0] = x;
    torch::Tensor h;
    for (size_t i = 0; i < layers; ++i) {
      Dense& d = layer(i);
      if (i == 0 && x_sparse != nullptr) {
        h = SparseLinear(*x_sparse, d->weight, d->bias);
      } else {
        h = torch::addmm(d->bias, inputs[i], d->weight.t());
      }
      if (i + 1 == layers) break;
      acts[i] = config_.activation(h);
      h = acts[i];
      if (config_.dropout > 0.0) {
        masks[i] = Dropout(torch::ones_like(h), config_.dropout);  // the mask forward() draws
        h = h * masks[i];
      }
      inputs[i + 1] = h;
    }
    // d(sum_i w_i CE_i)/d logits = w_i (softmax_i - onehot(y_i)).
    torch::Tensor grad = torch::softmax(h, 1);
    grad.scatter_add_(1, labels.view({-1, 1}), torch::full({labels.size(0), 1}, -1.0f));
    grad.mul_(weights.view({-1, 1}));
    for (size_t i = layers; i-- > 0;) {
      Dense& d = layer(i);
      if (i == 0 && x_sparse != nullptr) {
        d->weight.mutable_grad() = SparseWeightGradient(*x_sparse, grad);
      } else {
        d->weight.mutable_grad() = torch::mm(grad.t(), inputs[i]);
      }
      d->bias.mutable_grad() = grad.sum(0);
      if (i == 0) break;
      grad = torch::mm(grad, d->weight);  // d input of layer i = d output of hidden i - 1
      if (masks[i - 1].defined()) grad.mul_(masks[i - 1]);
      const torch::Tensor& a = acts[i - 1];
      if (config_.activation == &Tanh) {
        grad.mul_(1.0 - a * a);
      } else {
        grad.mul_(a > 0);
      }
    }
  }

  const MlpConfig& config() const { return config_; }
  const std::vector<Dense>& hidden() const { return hidden_; }
  const Dense& classifier() const { return classifier_; }

 private:
  MlpConfig config_;
  std::vector<Dense> hidden_;
  Dense classifier_{nullptr};
};

// K MLPs with weights stacked as [K, in, out] and biases as [K, 1, out]:
// layer i of all models is one baddbmm. The transposed weight layout (in,
// out) makes x @ W a plain batched product without a transpose per call.
class StackedMlp : public ModelGroup {
 public:
  explicit StackedMlp(const std::vector<std::shared_ptr<Mlp>>& models)
      : config_(models[0]->config()), size_(static_cast<int64_t>(models.size())) {
    const size_t layers = config_.hidden.size() + 1;
    for (size_t i = 0; i < layers; ++i) {
      std::vector<torch::Tensor> w, b;
      for (const auto& m : models) {
        const Dense& d = i < config_.hidden.size() ? m->hidden()[i] : m->classifier();
        w.push_back(d->weight.detach().t());         // [in, out]
        b.push_back(d->bias.detach().unsqueeze(0));  // [1, out]
      }
      weights_.push_back(register_parameter(absl::StrCat("w", i), torch::stack(w).contiguous()));
      biases_.push_back(register_parameter(absl::StrCat("b", i), torch::stack(b).contiguous()));
    }
  }

  int64_t size() const override { return size_; }
  bool stacked() const override { return true; }

  torch::Tensor Forward(const torch::Tensor& x, const std::vector<int64_t>& rows) override {
    // The first layer over binary tabular data takes the sparse kernels.
    torch::Tensor h = StackedLinearMaybeSparse(biases_[0], x.flatten(2), weights_[0]);
    return Continue(h, 1, rows);
  }

  bool TakesSparseRows() const override { return weights_[0].device().is_cpu(); }

  torch::Tensor ForwardSparse(const std::vector<sparse::Csr>& x,
                              const std::vector<int64_t>& rows) override {
    TORCH_CHECK(static_cast<int64_t>(x.size()) >= size_ && x[0].cols == config_.inputs,
                "sparse rows: one CSR batch of ", config_.inputs, " columns per model");
    torch::Tensor h = StackedSparseLinear(x, biases_[0], weights_[0]);  // [K, B, H_0] or [K, B, C]
    return Continue(h, 1, rows);
  }

  std::vector<NamedTensor> ModelState(int64_t k) override {
    std::vector<NamedTensor> state;
    for (size_t i = 0; i < weights_.size(); ++i) {
      const std::string name =
          i < config_.hidden.size() ? absl::StrCat("hidden", i) : std::string("classifier");
      state.push_back({name + ".weight", weights_[i][k].t(), false});  // [out, in]
      state.push_back({name + ".bias", biases_[i][k][0], false});      // [out]
    }
    return state;
  }

  void SetDropoutGenerators(const std::vector<torch::Generator>& generators) override {
    generators_ = generators;
  }

 private:
  // The rest of the forward pass from h, the output of layer `next` - 1
  // before its activation: [K, B, C].
  torch::Tensor Continue(torch::Tensor h, size_t next, const std::vector<int64_t>& rows) {
    const size_t layers = config_.hidden.size() + 1;
    for (size_t i = next;; ++i) {
      if (i == layers) return h;  // the classifier's logits
      h = config_.activation(h);  // hidden layer i - 1
      if (is_training() && config_.dropout > 0.0) {
        h = h * StackedMask(rows, h.size(1), h.size(2), h.device());  // [K, B, H_i]
      }
      h = torch::baddbmm(biases_[i], h, weights_[i]);
    }
  }

  // [K, B, width]: model k's mask over its real rows, as Mlp draws it alone;
  // padding rows get zeros.
  torch::Tensor StackedMask(const std::vector<int64_t>& rows, int64_t batch, int64_t width,
                            const torch::Device& device) {
    TORCH_CHECK(generators_.size() == static_cast<size_t>(size_),
                "dropout in training needs one seeded generator per model");
    torch::Tensor mask = torch::zeros({size_, batch, width});
    for (int64_t k = 0; k < size_; ++k) {
      if (rows[k] == 0) continue;
      mask[k]
          .narrow(0, 0, rows[k])
          .copy_(DropoutMask({rows[k], width}, config_.dropout, generators_[k], torch::kCPU));
    }
    return mask.to(device);
  }

  MlpConfig config_;
  int64_t size_;
  std::vector<torch::Tensor> weights_;  // [K, in, out] per layer
  std::vector<torch::Tensor> biases_;   // [K, 1, out] per layer
  std::vector<torch::Generator> generators_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<Classifier>> BuildMlp(const ModelSpec& spec, const InputSpec& input,
                                                     Initializer& init) {
  MlpConfig config;
  for (const ActivationEntry& entry : kActivations) {
    if (spec.activation == entry.name) config.activation = entry.fn;
  }
  if (config.activation == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.activation: unknown activation '", spec.activation, "' (tanh, relu)"));
  }
  for (int width : spec.hidden) {
    if (width <= 0) return absl::InvalidArgumentError("spec.hidden: widths must be positive");
    config.hidden.push_back(width);
  }
  config.inputs = 1;
  for (int64_t d : input.sample_shape) config.inputs *= d;
  config.classes = input.num_classes;
  config.dropout = spec.dropout;
  return std::shared_ptr<Classifier>(std::make_shared<Mlp>(config, init));
}

absl::StatusOr<std::shared_ptr<ModelGroup>> StackMlps(
    const std::vector<std::shared_ptr<Classifier>>& models) {
  std::vector<std::shared_ptr<Mlp>> mlps;
  for (const auto& model : models) {
    auto mlp = std::dynamic_pointer_cast<Mlp>(model);
    if (mlp == nullptr) return absl::InvalidArgumentError("StackMlps: not an mlp");
    if (!mlps.empty() && (mlp->config().inputs != mlps[0]->config().inputs ||
                          mlp->config().hidden != mlps[0]->config().hidden ||
                          mlp->config().classes != mlps[0]->config().classes)) {
      return absl::InvalidArgumentError("StackMlps: models differ in shape");
    }
    mlps.push_back(std::move(mlp));
  }
  if (mlps.empty()) return absl::InvalidArgumentError("StackMlps: no models");
  torch::NoGradGuard no_grad;
  return std::shared_ptr<ModelGroup>(std::make_shared<StackedMlp>(mlps));
}

}  // namespace mia::models
