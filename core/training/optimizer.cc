#include "core/training/optimizer.h"

#include <atomic>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "core/training/recipe.h"

namespace mia::training {
namespace {

std::atomic<bool> g_foreach_on_cpu{false};

// torch.optim.SGD with dampening 0: d = g + wd p; b = m b + d; p -= lr (d + m b
// if Nesterov, else b). The buffer starts at zero, which makes the first step
// b = d as in PyTorch.
class Sgd : public GroupOptimizer {
 public:
  Sgd(std::vector<torch::Tensor> params, int64_t models, bool stacked, const TrainRecipe& r)
      : GroupOptimizer(std::move(params), models, stacked, r.momentum > 0 ? 1 : 0),
        momentum_(r.momentum),
        weight_decay_(r.weight_decay),
        nesterov_(r.nesterov) {}

 protected:
  void Update(torch::Tensor param, const torch::Tensor& grad, std::vector<torch::Tensor>& slots,
              double lr, int64_t /*step*/) override {
    if (Fusable(param, grad, slots)) return FusedUpdate(param, grad, slots, lr);
    torch::Tensor d = weight_decay_ != 0 ? grad.add(param, weight_decay_) : grad;
    if (momentum_ != 0) {
      torch::Tensor& buffer = slots[0];
      buffer.mul_(momentum_).add_(d);
      d = nesterov_ ? d.add(buffer, momentum_) : buffer;
    }
    param.add_(d, -lr);
  }
  void UpdateForeach(std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                     std::vector<std::vector<torch::Tensor>>& slots, double lr,
                     int64_t /*step*/) override {
    std::vector<torch::Tensor> d =
        weight_decay_ != 0 ? at::_foreach_add(grads, params, weight_decay_) : grads;
    if (momentum_ != 0) {
      std::vector<torch::Tensor>& buffers = slots[0];
      at::_foreach_mul_(buffers, momentum_);
      at::_foreach_add_(buffers, d);
      d = nesterov_ ? at::_foreach_add(d, buffers, momentum_) : buffers;
    }
    at::_foreach_add_(params, d, -lr);
  }
  bool uses_step() const override { return false; }

 private:
  // Contiguous CPU float32 tensors of one size: the update is one pass over
  // plain arrays instead of three to five LibTorch calls per tensor (small
  // models: the calls cost more than the arithmetic).
  static bool Fusable(const torch::Tensor& param, const torch::Tensor& grad,
                      const std::vector<torch::Tensor>& slots) {
    auto ok = [&](const torch::Tensor& t) {
      return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat32 &&
             t.is_contiguous() && t.numel() == param.numel();
    };
    if (!ok(param) || !ok(grad)) return false;
    for (const torch::Tensor& s : slots) {
      if (!ok(s)) return false;
    }
    return true;
  }

  // The same arithmetic as the LibTorch calls, element by element, in float.
  void FusedUpdate(torch::Tensor& param, const torch::Tensor& grad,
                   std::vector<torch::Tensor>& slots, double lr) const {
    float* p = param.data_ptr<float>();
    const float* g = grad.data_ptr<float>();
    const int64_t n = param.numel();
    const float wd = static_cast<float>(weight_decay_);
    const float m = static_cast<float>(momentum_);
    const float step = static_cast<float>(-lr);
    if (momentum_ == 0) {
      for (int64_t i = 0; i < n; ++i) {
        const float d = wd != 0 ? g[i] + wd * p[i] : g[i];
        p[i] += step * d;
      }
      return;
    }
    float* b = slots[0].data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      const float d = wd != 0 ? g[i] + wd * p[i] : g[i];
      b[i] = b[i] * m + d;
      p[i] += step * (nesterov_ ? d + m * b[i] : b[i]);
    }
  }

  double momentum_, weight_decay_;
  bool nesterov_;
};

// torch.optim.Adam (L2 penalty in the gradient) and AdamW (decoupled decay,
// p *= 1 - lr wd), betas (0.9, 0.999), eps 1e-8.
class Adam : public GroupOptimizer {
 public:
  Adam(std::vector<torch::Tensor> params, int64_t models, bool stacked, const TrainRecipe& r,
       bool decoupled)
      : GroupOptimizer(std::move(params), models, stacked, 2),
        weight_decay_(r.weight_decay),
        decoupled_(decoupled) {}

 protected:
  void Update(torch::Tensor param, const torch::Tensor& grad, std::vector<torch::Tensor>& slots,
              double lr, int64_t step) override {
    torch::Tensor g = grad;
    if (weight_decay_ != 0) {
      if (decoupled_) {
        param.mul_(1.0 - lr * weight_decay_);
      } else {
        g = grad.add(param, weight_decay_);
      }
    }
    torch::Tensor& exp_avg = slots[0];
    torch::Tensor& exp_avg_sq = slots[1];
    exp_avg.mul_(kBeta1).add_(g, 1.0 - kBeta1);
    exp_avg_sq.mul_(kBeta2).addcmul_(g, g, 1.0 - kBeta2);
    const double bias_correction1 = 1.0 - std::pow(kBeta1, static_cast<double>(step));
    const double bias_correction2 = 1.0 - std::pow(kBeta2, static_cast<double>(step));
    torch::Tensor denom = (exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(kEps);
    param.addcdiv_(exp_avg, denom, -lr / bias_correction1);
  }
  void UpdateForeach(std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                     std::vector<std::vector<torch::Tensor>>& slots, double lr,
                     int64_t step) override {
    std::vector<torch::Tensor> g = grads;
    if (weight_decay_ != 0) {
      if (decoupled_) {
        at::_foreach_mul_(params, 1.0 - lr * weight_decay_);
      } else {
        g = at::_foreach_add(grads, params, weight_decay_);
      }
    }
    std::vector<torch::Tensor>& exp_avg = slots[0];
    std::vector<torch::Tensor>& exp_avg_sq = slots[1];
    at::_foreach_mul_(exp_avg, kBeta1);
    at::_foreach_add_(exp_avg, g, 1.0 - kBeta1);
    at::_foreach_mul_(exp_avg_sq, kBeta2);
    at::_foreach_addcmul_(exp_avg_sq, g, g, 1.0 - kBeta2);
    const double bias_correction1 = 1.0 - std::pow(kBeta1, static_cast<double>(step));
    const double bias_correction2 = 1.0 - std::pow(kBeta2, static_cast<double>(step));
    std::vector<torch::Tensor> denom = at::_foreach_sqrt(exp_avg_sq);
    at::_foreach_div_(denom, std::sqrt(bias_correction2));
    at::_foreach_add_(denom, kEps);
    at::_foreach_addcdiv_(params, exp_avg, denom, -lr / bias_correction1);
  }
  bool uses_step() const override { return true; }

 private:
  static constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
  double weight_decay_;
  bool decoupled_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GroupOptimizer>> GroupOptimizer::Create(
    const TrainRecipe& recipe, std::vector<torch::Tensor> params, int64_t models, bool stacked) {
  if (models < 1 || (!stacked && models != 1)) {
    return absl::InvalidArgumentError("GroupOptimizer: an unstacked group has one model");
  }
  auto kind = ParseOptimizer(recipe.optimizer);
  if (!kind.ok()) return kind.status();
  switch (*kind) {
    case OptimizerKind::kSgd:
      return std::unique_ptr<GroupOptimizer>(new Sgd(std::move(params), models, stacked, recipe));
    case OptimizerKind::kAdam:
      return std::unique_ptr<GroupOptimizer>(
          new Adam(std::move(params), models, stacked, recipe, /*decoupled=*/false));
    case OptimizerKind::kAdamW:
      return std::unique_ptr<GroupOptimizer>(
          new Adam(std::move(params), models, stacked, recipe, /*decoupled=*/true));
  }
  return absl::InternalError("GroupOptimizer: unhandled optimizer kind");
}

GroupOptimizer::GroupOptimizer(std::vector<torch::Tensor> params, int64_t models, bool stacked,
                               int slots)
    : params_(std::move(params)), steps_(models, 0), models_(models), stacked_(stacked) {
  for (const torch::Tensor& p : params_) {
    std::vector<torch::Tensor> state;
    for (int i = 0; i < slots; ++i) state.push_back(torch::zeros_like(p));
    slots_.push_back(std::move(state));
  }
}

// Gradients are dropped rather than zeroed (PyTorch's set_to_none): the
// next backward pass then stores its gradient instead of adding it to zeros.
void GroupOptimizer::ZeroGrad() {
  for (torch::Tensor& p : params_) {
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
  }
}

void ClipGradNorm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads, norms;
  for (const torch::Tensor& p : params) {
    if (!p.grad().defined()) continue;
    grads.push_back(p.grad());
    norms.push_back(p.grad().norm(2));
  }
  if (grads.empty()) return;
  const torch::Tensor total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
  const torch::Tensor coef = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  for (torch::Tensor& g : grads) g.mul_(coef);
}

bool SetForeachUpdatesOnCpu(bool enabled) { return g_foreach_on_cpu.exchange(enabled); }

void GroupOptimizer::Step(const std::vector<double>& lr, const std::vector<bool>& active) {
  torch::NoGradGuard no_grad;
  bool uniform = true;  // one update over whole tensors serves every model
  for (int64_t k = 0; k < models_; ++k) {
    if (active[k]) ++steps_[k];
    uniform = uniform && active[k] && lr[k] == lr[0] && (!uses_step() || steps_[k] == steps_[0]);
  }
  if ((uniform || !stacked_) && !params_.empty() &&
      (params_[0].is_cuda() || g_foreach_on_cpu.load())) {
    if (!active[0]) return;
    std::vector<torch::Tensor> params, grads;
    std::vector<std::vector<torch::Tensor>> slots(slots_.empty() ? 0 : slots_[0].size());
    for (size_t i = 0; i < params_.size(); ++i) {
      if (!params_[i].grad().defined()) continue;
      params.push_back(params_[i]);
      grads.push_back(params_[i].grad());
      for (size_t j = 0; j < slots.size(); ++j) slots[j].push_back(slots_[i][j]);
    }
    if (!params.empty()) UpdateForeach(params, grads, slots, lr[0], steps_[0]);
    return;
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    if (uniform || !stacked_) {
      if (active[0]) Update(p, p.grad(), slots_[i], lr[0], steps_[0]);
      continue;
    }
    for (int64_t k = 0; k < models_; ++k) {
      if (!active[k]) continue;
      std::vector<torch::Tensor> slots;
      for (torch::Tensor& s : slots_[i]) slots.push_back(s.select(0, k));
      Update(p.select(0, k), p.grad().select(0, k), slots, lr[k], steps_[k]);
    }
  }
}

}  // namespace mia::training
