#include "core/training/dp_sgd.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/random.h"
#include "core/common/status_macros.h"
#include "core/metrics/rdp_accountant.h"
#include "core/models/layers.h"
#include "core/training/optimizer.h"
#include "core/training/recipe.h"
#include "core/training/trainer.h"

namespace mia::training {

absl::StatusOr<DpSgdPlan> PlanDpSgd(const TrainRecipe& recipe, int64_t n) {
  const DpSgdRecipe& dp = recipe.dp;
  if (!dp.enabled) return absl::InvalidArgumentError("recipe.dp is not enabled");
  if (n < 1) return absl::InvalidArgumentError("DP-SGD needs at least one training row");
  if (recipe.batch_size < 1 || recipe.epochs < 1) {
    return absl::InvalidArgumentError("recipe.batch_size and recipe.epochs must be at least 1");
  }
  DpSgdPlan plan;
  plan.sample_rate = std::min(1.0, static_cast<double>(recipe.batch_size) / static_cast<double>(n));
  plan.expected_batch = plan.sample_rate * static_cast<double>(n);
  // ceil(1 / q), an integer quotient counted exactly (the accountant's rule).
  MIA_ASSIGN_OR_RETURN(plan.steps_per_epoch, metrics::StepsForEpochs(1.0, plan.sample_rate));
  plan.steps = plan.steps_per_epoch * recipe.epochs;
  metrics::DpSgdAccounting run;
  run.sample_rate = plan.sample_rate;
  run.steps = plan.steps;
  run.delta = dp.delta;
  run.conversion = metrics::RdpConversion::kSpec;
  if (dp.target_epsilon > 0) {
    absl::StatusOr<double> sigma = metrics::NoiseMultiplierForEpsilon(run, dp.target_epsilon);
    if (!sigma.ok()) {
      return absl::Status(sigma.status().code(),
                          absl::StrCat("train.dp.target_epsilon: ", sigma.status().message(),
                                       " (sample rate ", plan.sample_rate, ", ", plan.steps,
                                       " steps)"));
    }
    plan.noise_multiplier = *sigma;
  } else {
    plan.noise_multiplier = dp.noise_multiplier;
  }
  run.noise_multiplier = plan.noise_multiplier;
  MIA_ASSIGN_OR_RETURN(const metrics::DpSgdEpsilon eps, metrics::ComputeDpSgdEpsilon(run));
  ModelReport::Dp& r = plan.report;
  r.enabled = true;
  r.epsilon = eps.epsilon;
  r.delta = dp.delta;
  r.order = eps.order;
  r.noise_multiplier = plan.noise_multiplier;
  r.max_grad_norm = dp.max_grad_norm;
  r.sample_rate = plan.sample_rate;
  r.steps = plan.steps;
  return plan;
}

std::vector<torch::Tensor> ClippedGradientSum(models::ModelGroup& group, const torch::Tensor& x,
                                              const torch::Tensor& labels, double clip,
                                              std::vector<double>* norms) {
  namespace F = torch::nn::functional;
  const std::vector<torch::Tensor> params = group.parameters();
  std::vector<torch::Tensor> sum;
  sum.reserve(params.size());
  for (const torch::Tensor& p : params) sum.push_back(torch::zeros_like(p));
  if (norms != nullptr) norms->clear();
  const int64_t batch = x.size(0);
  std::vector<torch::Tensor> inputs(params.begin(), params.end());
  for (int64_t i = 0; i < batch; ++i) {
    // One example as a group batch [1, 1, sample...].
    const torch::Tensor xi = x.narrow(0, i, 1).unsqueeze(0);
    const torch::Tensor logits = group.Forward(xi, {1});  // [1, 1, C]
    const torch::Tensor loss = F::cross_entropy(logits.flatten(0, 1), labels.narrow(0, i, 1));
    const std::vector<torch::Tensor> grads = torch::autograd::grad({loss}, inputs);
    torch::Tensor squared = torch::zeros({}, x.options().dtype(torch::kFloat64));
    for (const torch::Tensor& g : grads) squared = squared + g.to(torch::kFloat64).pow(2).sum();
    const torch::Tensor norm = squared.sqrt();
    // min(1, C / norm), on the device (no synchronisation per example); a
    // zero gradient keeps factor 1.
    const torch::Tensor factor =
        torch::clamp_max(torch::reciprocal(torch::clamp_min(norm, 1e-300)) * clip, 1.0)
            .to(torch::kFloat32);
    for (size_t p = 0; p < grads.size(); ++p) sum[p].add_(grads[p] * factor);
    if (norms != nullptr) norms->push_back(norm.item<double>());
  }
  return sum;
}

absl::Status TrainGroupDpSgd(models::ModelGroup& group, const GroupJob& job,
                             const DpSgdPlan& plan) {
  if (group.size() != 1 || job.train.size() != 1) {
    return absl::InvalidArgumentError("DP-SGD trains one model at a time");
  }
  const data::Dataset& dataset = *job.dataset;
  const TrainRecipe& recipe = *job.recipe;
  const double clip = recipe.dp.max_grad_norm;
  const double noise_std = plan.noise_multiplier * clip;
  const std::vector<int64_t>& rows = *job.train[0];
  const int64_t numel = dataset.sample_numel();

  Rng sample_rng(DeriveSeed(job.seeds[0], kDpSampleStream));
  Rng augment_rng(DeriveSeed(job.seeds[0], kAugmentStream));
  torch::Generator noise_gen = models::MakeGenerator(DeriveSeed(job.seeds[0], kDpNoiseStream));
  group.SetDropoutGenerators({models::MakeGenerator(DeriveSeed(job.seeds[0], kDropoutStream))});
  MIA_ASSIGN_OR_RETURN(auto optimizer,
                       GroupOptimizer::Create(recipe, group.parameters(), 1, group.stacked()));
  const bool augment = dataset.is_image() && (recipe.random_crop || recipe.horizontal_flip);

  torch::TensorOptions host;
  if (job.device.is_cuda()) host = host.pinned_memory(true);
  std::vector<int64_t> shape = {0};
  shape.insert(shape.end(), dataset.sample_shape.begin(), dataset.sample_shape.end());
  std::vector<int64_t> chosen;
  std::vector<double> lr(1);
  const std::vector<bool> active = {true};
  group.train(true);
  for (int epoch = 0; epoch < recipe.epochs; ++epoch) {
    for (int64_t step = 0; step < plan.steps_per_epoch; ++step) {
      if (job.ctx->cancel != nullptr && job.ctx->cancel->load()) {
        return absl::CancelledError("training cancelled");
      }
      if (job.stop != nullptr && job.stop->load()) {
        return absl::AbortedError("training stopped: another training lane failed");
      }
      // The Poisson batch: each row independently with probability q.
      chosen.clear();
      for (int64_t row : rows) {
        if (plan.sample_rate >= 1.0 || sample_rng.Uniform01() < plan.sample_rate) {
          chosen.push_back(row);
        }
      }
      const int64_t b = static_cast<int64_t>(chosen.size());
      shape[0] = b;
      // On a GPU the host tensors are pinned and copied without waiting.
      torch::Tensor x = torch::empty(shape, host.dtype(torch::kFloat32));
      torch::Tensor labels = torch::empty({b}, host.dtype(torch::kInt64));
      float* xd = x.data_ptr<float>();
      int64_t* ld = labels.data_ptr<int64_t>();
      for (int64_t i = 0; i < b; ++i) {
        const ImageTransform t = augment ? DrawAugmentation(recipe, augment_rng) : ImageTransform{};
        WriteSample(dataset, chosen[i], t, *job.norm, xd + i * numel);
        ld[i] = dataset.labels[chosen[i]];
      }
      std::vector<torch::Tensor> sum =
          ClippedGradientSum(group, x.to(job.device, /*non_blocking=*/true),
                             labels.to(job.device, /*non_blocking=*/true), clip);
      optimizer->ZeroGrad();
      const std::vector<torch::Tensor> params = group.parameters();
      for (size_t p = 0; p < params.size(); ++p) {
        // Drawn from the model's own CPU generator: the same noise on every
        // device.
        const torch::Tensor noise =
            torch::randn(params[p].sizes(), noise_gen, host.dtype(torch::kFloat32))
                .to(job.device, /*non_blocking=*/true);
        torch::Tensor g = (sum[p] + noise * noise_std) / plan.expected_batch;
        params[p].mutable_grad() = g.detach();
      }
      lr[0] = LearningRate(recipe, epoch * plan.steps_per_epoch + step, plan.steps_per_epoch);
      optimizer->Step(lr, active);
      if (job.ctx->progress) {
        job.ctx->progress(job.first_model, epoch, static_cast<int>(step),
                          static_cast<int>(plan.steps_per_epoch));
      }
    }
  }
  group.train(false);
  return absl::OkStatus();
}

}  // namespace mia::training
