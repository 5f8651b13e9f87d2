// Optimizers over the parameters of a ModelGroup that keep every model's math
// its own: SGD (momentum, Nesterov), Adam and AdamW with PyTorch's update
// rules. Updates are elementwise, so one optimizer over stacked [K, ...]
// parameters equals K optimizers over the unstacked ones; what stacking adds
// is per-model step state: a model that had no batch in a step (it ran out of
// rows this epoch) is not touched at all (no momentum drift, no decay), and
// each model keeps its own step count (Adam's bias correction) and learning
// rate. Models trained one at a time use the same class with K = 1, so
// batched and sequential training run the same update code.
//
// Not thread-safe; owned by the training loop.
// LibTorch header: include only from core/training and its tests.
#ifndef MIA_CORE_TRAINING_OPTIMIZER_H_
#define MIA_CORE_TRAINING_OPTIMIZER_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/training/engine.h"

namespace mia::training {

// torch::nn::utils::clip_grad_norm_ with norm 2 (the same arithmetic: the
// 2-norm of the tensors' 2-norms, then every gradient times
// min(1, max_norm / (norm + 1e-6))) without reading the norm back, so a step
// on a GPU does not wait for it. Parameters without a gradient are skipped.
void ClipGradNorm(const std::vector<torch::Tensor>& params, double max_norm);

// Process-wide: take the multi-tensor path (UpdateForeach) on the CPU too
// (it is taken on GPUs; tests compare it with the per-tensor one). Returns
// the previous setting.
bool SetForeachUpdatesOnCpu(bool enabled);

class GroupOptimizer {
 public:
  // recipe.optimizer over `params` of `models` models. stacked: every
  // parameter has a leading dimension of size `models`; otherwise models
  // must be 1.
  static absl::StatusOr<std::unique_ptr<GroupOptimizer>> Create(const TrainRecipe& recipe,
                                                                std::vector<torch::Tensor> params,
                                                                int64_t models, bool stacked);
  virtual ~GroupOptimizer() = default;

  void ZeroGrad();
  // One step: model k uses learning rate lr[k] and is updated only if active[k].
  void Step(const std::vector<double>& lr, const std::vector<bool>& active);

 protected:
  GroupOptimizer(std::vector<torch::Tensor> params, int64_t models, bool stacked, int slots);

  // Updates `param` in place from `grad` with the optimizer's state tensors
  // `slots` (same shape as param), at 1-based step `step`.
  virtual void Update(torch::Tensor param, const torch::Tensor& grad,
                      std::vector<torch::Tensor>& slots, double lr, int64_t step) = 0;
  // Whether Update reads `step` (models at different step counts then need
  // separate updates).
  virtual bool uses_step() const = 0;
  // Update of every parameter at once with LibTorch's multi-tensor
  // (_foreach) operations: on a GPU one kernel launch per operation for all
  // tensors instead of one per tensor (a wide ResNet has about 100), the
  // same arithmetic. slots[j] is slot j of every parameter.
  virtual void UpdateForeach(std::vector<torch::Tensor>& params,
                             const std::vector<torch::Tensor>& grads,
                             std::vector<std::vector<torch::Tensor>>& slots, double lr,
                             int64_t step) = 0;

 private:
  std::vector<torch::Tensor> params_;
  std::vector<std::vector<torch::Tensor>> slots_;  // per parameter
  std::vector<int64_t> steps_;                     // per model
  int64_t models_;
  bool stacked_;
};

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_OPTIMIZER_H_
