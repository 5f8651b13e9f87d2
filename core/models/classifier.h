// The model interfaces of core/models.
//
// Classifier: one model, forward [B, sample...] -> logits [B, C]. Its
// parameters and buffers, by name, are what a model archive holds.
// ModelGroup: K models of one architecture trained in lockstep, forward
// [K, B, sample...] -> [K, B, C]. A group either wraps one Classifier (K = 1)
// or stacks K models' weights along a leading dimension (mlp, cnn), so that
// one kernel call (bmm, grouped convolution) serves all K.
//
// Not thread-safe: a model or group belongs to the thread that trains it.
// LibTorch header: include only from core/models, core/training and their tests.
#ifndef MIA_CORE_MODELS_CLASSIFIER_H_
#define MIA_CORE_MODELS_CLASSIFIER_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/models/sparse_kernels.h"

namespace mia::models {

// A tensor of a model's state as a single Classifier names it.
struct NamedTensor {
  std::string name;     // e.g. "hidden0.weight", "block1.0.bn1.running_mean"
  torch::Tensor value;  // layout of the single model
  bool buffer = false;  // a buffer (batch-norm statistics), not a parameter
};

class Classifier : public torch::nn::Module {
 public:
  // x: [B, sample_shape...] float -> logits [B, num_classes].
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;

  // Whether the model can take its input rows in CSR form (a first layer
  // that is linear over the flattened sample, on the CPU): binary tabular
  // data is then never expanded to dense rows.
  virtual bool TakesSparseRows() const { return false; }
  // x: B rows of the flattened sample, CSR -> logits [B, num_classes]; the
  // same as forward() of the dense rows up to float rounding.
  virtual torch::Tensor ForwardSparse(const sparse::Csr& x);

  // Whether ManualGradients is available: LibTorch's autograd costs more than
  // the arithmetic of a small model's step on a CPU (mlp).
  virtual bool HasManualGradients() const { return false; }
  // Sets every parameter's gradient (grad(), replacing what was there) to
  // that of sum_i weights[i] * cross_entropy(forward(x)[i], labels[i]) in
  // training mode, computed directly, without autograd. x is the batch as CSR
  // rows (sparse, may be null) or dense [B, sample...] (x_dense); labels [B]
  // int64, weights [B] float. Dropout masks come from the model's generator in
  // the order forward() draws them.
  virtual void ManualGradients(const sparse::Csr* x_sparse, const torch::Tensor& x_dense,
                               const torch::Tensor& labels, const torch::Tensor& weights);

  // Dropout masks in training mode are drawn from this CPU generator, never
  // from LibTorch's global one. Required before training a model with dropout.
  void set_dropout_generator(torch::Generator generator) { dropout_generator_ = generator; }

  // Every parameter and buffer, in registration order.
  std::vector<NamedTensor> State() const;

 protected:
  // Inverted dropout with probability p (identity in eval mode or for p = 0).
  torch::Tensor Dropout(const torch::Tensor& x, double p);

 private:
  std::optional<torch::Generator> dropout_generator_;
};

// Every 4-D parameter of `module` (convolution weights) in channels-last or
// the default layout, values unchanged.
void ConvWeightsChannelsLast(torch::nn::Module& module, bool on);

class ModelGroup : public torch::nn::Module {
 public:
  // K, the number of models.
  virtual int64_t size() const = 0;
  // Whether every parameter carries the models along a leading dimension of
  // size K (false for a wrapped single model, whose parameters are model 0's).
  virtual bool stacked() const = 0;
  // x: [K, B, sample_shape...] -> logits [K, B, C]. rows[k] <= B is how many
  // leading rows of x[k] are real; the rest is padding whose outputs are
  // ignored. Dropout masks are drawn for the real rows only, so model k sees
  // the same masks as when trained alone.
  virtual torch::Tensor Forward(const torch::Tensor& x, const std::vector<int64_t>& rows) = 0;
  // As Classifier: whether Forward can take model k's rows as x[k], a CSR
  // matrix of B rows (rows[k] real, the rest empty), giving [K, B, C].
  virtual bool TakesSparseRows() const { return false; }
  virtual torch::Tensor ForwardSparse(const std::vector<sparse::Csr>& x,
                                      const std::vector<int64_t>& rows);
  // As Classifier (a group of one only): labels and weights [1, B].
  virtual bool HasManualGradients() const { return false; }
  virtual void ManualGradients(const std::vector<sparse::Csr>* x_sparse,
                               const torch::Tensor& x_dense, const torch::Tensor& labels,
                               const torch::Tensor& weights);
  // Model k's parameters and buffers, named and laid out as the single
  // Classifier of this architecture has them (views or copies; read only).
  virtual std::vector<NamedTensor> ModelState(int64_t k) = 0;
  // One CPU generator per model for dropout masks.
  virtual void SetDropoutGenerators(const std::vector<torch::Generator>& generators) = 0;
  // Convolutions in channels-last (NHWC) memory layout, or back to the
  // default (train.channels_last): by default the 4-D parameters change
  // layout (a convolution whose weight is channels-last runs channels-last);
  // a stacked group that builds its weights on the fly does so itself.
  // Values are unchanged; call before creating the optimizer.
  virtual void SetChannelsLast(bool on) { ConvWeightsChannelsLast(*this, on); }
};

// Process-wide switch for Classifier::ManualGradients (on by default; tests
// compare it with autograd). Returns the previous setting.
bool SetManualGradients(bool enabled);
bool ManualGradientsEnabled();

// A group of one: trains `model` exactly as itself.
std::shared_ptr<ModelGroup> WrapSingle(std::shared_ptr<Classifier> model);

}  // namespace mia::models

#endif  // MIA_CORE_MODELS_CLASSIFIER_H_
