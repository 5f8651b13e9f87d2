#include "core/models/classifier.h"

#include <atomic>
#include <utility>

#include "core/models/layers.h"

namespace mia::models {
namespace {

class SingleModelGroup : public ModelGroup {
 public:
  explicit SingleModelGroup(std::shared_ptr<Classifier> model)
      : model_(register_module("model", std::move(model))) {}

  int64_t size() const override { return 1; }
  bool stacked() const override { return false; }

  torch::Tensor Forward(const torch::Tensor& x, const std::vector<int64_t>& rows) override {
    // Padding rows would change the dropout draws and batch-norm statistics
    // of a lone model, so they are cut off here.
    return model_->forward(x[0].narrow(0, 0, rows[0])).unsqueeze(0);  // [1, rows, C]
  }

  bool TakesSparseRows() const override { return model_->TakesSparseRows(); }

  torch::Tensor ForwardSparse(const std::vector<sparse::Csr>& x,
                              const std::vector<int64_t>& rows) override {
    TORCH_CHECK(!x.empty() && x[0].rows == rows[0], "a lone model's batch has no padding rows");
    return model_->ForwardSparse(x[0]).unsqueeze(0);  // [1, rows, C]
  }

  bool HasManualGradients() const override { return model_->HasManualGradients(); }

  void ManualGradients(const std::vector<sparse::Csr>* x_sparse, const torch::Tensor& x_dense,
                       const torch::Tensor& labels, const torch::Tensor& weights) override {
    model_->ManualGradients(x_sparse != nullptr ? &(*x_sparse)[0] : nullptr,
                            x_dense.defined() ? x_dense[0] : x_dense, labels[0], weights[0]);
  }

  std::vector<NamedTensor> ModelState(int64_t /*k*/) override { return model_->State(); }

  void SetDropoutGenerators(const std::vector<torch::Generator>& generators) override {
    model_->set_dropout_generator(generators.at(0));
  }

 private:
  std::shared_ptr<Classifier> model_;
};

}  // namespace

torch::Tensor Classifier::ForwardSparse(const sparse::Csr& /*x*/) {
  TORCH_CHECK(false, "this architecture does not take sparse rows");
}

torch::Tensor ModelGroup::ForwardSparse(const std::vector<sparse::Csr>& /*x*/,
                                        const std::vector<int64_t>& /*rows*/) {
  TORCH_CHECK(false, "this architecture does not take sparse rows");
}

namespace {
std::atomic<bool> g_manual_gradients{true};
}  // namespace

bool SetManualGradients(bool enabled) { return g_manual_gradients.exchange(enabled); }
bool ManualGradientsEnabled() { return g_manual_gradients.load(); }

void Classifier::ManualGradients(const sparse::Csr* /*x_sparse*/, const torch::Tensor& /*x_dense*/,
                                 const torch::Tensor& /*labels*/,
                                 const torch::Tensor& /*weights*/) {
  TORCH_CHECK(false, "this architecture has no manual gradients");
}

void ModelGroup::ManualGradients(const std::vector<sparse::Csr>* /*x_sparse*/,
                                 const torch::Tensor& /*x_dense*/, const torch::Tensor& /*labels*/,
                                 const torch::Tensor& /*weights*/) {
  TORCH_CHECK(false, "this group has no manual gradients");
}

std::vector<NamedTensor> Classifier::State() const {
  std::vector<NamedTensor> state;
  for (const auto& item : named_parameters(/*recurse=*/true)) {
    state.push_back({item.key(), item.value(), /*buffer=*/false});
  }
  for (const auto& item : named_buffers(/*recurse=*/true)) {
    state.push_back({item.key(), item.value(), /*buffer=*/true});
  }
  return state;
}

torch::Tensor Classifier::Dropout(const torch::Tensor& x, double p) {
  if (!is_training() || p <= 0.0) return x;
  TORCH_CHECK(dropout_generator_.has_value(), "dropout in training needs a seeded generator");
  return x * DropoutMask(x.sizes().vec(), p, *dropout_generator_, x.device());
}

void ConvWeightsChannelsLast(torch::nn::Module& module, bool on) {
  torch::NoGradGuard no_grad;
  const auto format = on ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  for (torch::Tensor& p : module.parameters()) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(format));
  }
}

std::shared_ptr<ModelGroup> WrapSingle(std::shared_ptr<Classifier> model) {
  return std::make_shared<SingleModelGroup>(std::move(model));
}

}  // namespace mia::models
