// TrainModels, SetComputeThreads, ResolveDevice: the engine.h entry points
// for training. Everything LibTorch throws is caught here and returned as
// Internal (see torch_error.h).
#include "core/training/engine.h"

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/models/registry.h"
#include "core/models/sparse_linear.h"
#include "core/training/archive.h"
#include "core/training/device.h"
#include "core/training/device_batches.h"
#include "core/training/dp_sgd.h"
#include "core/training/lanes.h"
#include "core/training/recipe.h"
#include "core/training/torch_error.h"
#include "core/training/trainer.h"

namespace mia::training {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

absl::Status ValidateCall(const data::Dataset& dataset, const TrainRecipe& recipe,
                          const std::vector<std::vector<int64_t>>& train_indices,
                          const std::vector<int64_t>& test_indices,
                          const std::vector<uint64_t>& seeds,
                          const std::vector<std::string>& out_paths, const TrainContext& ctx) {
  MIA_RETURN_IF_ERROR(ValidateDataset(dataset));
  MIA_RETURN_IF_ERROR(ValidateRecipe(recipe, dataset));
  if (seeds.empty()) return absl::InvalidArgumentError("seeds: no models to train");
  if (train_indices.size() != seeds.size() || out_paths.size() != seeds.size()) {
    return absl::InvalidArgumentError(
        "train_indices, seeds and out_paths must have one entry per model");
  }
  for (size_t k = 0; k < train_indices.size(); ++k) {
    if (train_indices[k].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("train_indices[", k, "] is empty"));
    }
    MIA_RETURN_IF_ERROR(
        ValidateIndices(train_indices[k], dataset.size(), absl::StrCat("train_indices[", k, "]")));
    if (out_paths[k].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("out_paths[", k, "] is empty"));
    }
  }
  MIA_RETURN_IF_ERROR(ValidateIndices(test_indices, dataset.size(), "test_indices"));
  if (ctx.max_batched_models < 0) {
    return absl::InvalidArgumentError("ctx.max_batched_models must be >= 0");
  }
  return absl::OkStatus();
}

// Trains models [first, first + count) as one group (stacked when `stack`)
// and writes their archives.
absl::Status TrainAndSave(const models::Architecture& arch, bool stack, int first, int count,
                          const data::Dataset& dataset, const ModelSpec& spec,
                          const TrainRecipe& recipe, const Normalization& norm,
                          const std::vector<std::vector<int64_t>>& train_indices,
                          const std::vector<int64_t>& test_indices,
                          const std::vector<uint64_t>& seeds,
                          const std::vector<std::string>& out_paths, const TrainContext& ctx,
                          const std::atomic<bool>* stop, const torch::Device& device,
                          const models::sparse::Csr* sparse_rows,
                          const DeviceBatches* device_batches,
                          std::vector<ModelReport>& reports) {
  const Clock::time_point start = Clock::now();
  const models::InputSpec input{dataset.sample_shape, dataset.num_classes};
  std::vector<std::shared_ptr<models::Classifier>> built;
  GroupJob job;
  job.dataset = &dataset;
  job.recipe = &recipe;
  job.norm = &norm;
  job.first_model = first;
  job.device = device;
  job.ctx = &ctx;
  job.stop = stop;
  job.sparse_rows = sparse_rows;
  job.device_batches = device_batches;
  for (int k = first; k < first + count; ++k) {
    MIA_ASSIGN_OR_RETURN(auto model,
                         models::BuildModel(spec, input, DeriveSeed(seeds[k], kInitStream)));
    built.push_back(std::move(model));
    job.train.push_back(&train_indices[k]);
    job.seeds.push_back(seeds[k]);
  }
  std::shared_ptr<models::ModelGroup> group;
  if (stack) {
    MIA_ASSIGN_OR_RETURN(group, arch.stack(built));
  } else {
    group = models::WrapSingle(built[0]);
  }
  built.clear();  // the stacked group holds its own copies
  group->to(device);
  const bool channels_last = ctx.channels_last && dataset.is_image();
  if (channels_last) group->SetChannelsLast(true);  // before the optimizer's state exists

  std::optional<DpSgdPlan> dp_plan;
  if (recipe.dp.enabled) {
    // Batch statistics mix the examples of a batch: a per-example gradient
    // is not defined for them (docs/dp.md).
    for (const models::NamedTensor& t : group->ModelState(0)) {
      if (t.buffer) {
        return absl::InvalidArgumentError(absl::StrCat(
            "train.dp: architecture ", spec.architecture,
            " has batch-norm statistics, which mix the examples of a batch, so per-example "
            "gradients are not defined; use mlp, cnn, alexnet or vgg16 for DP-SGD"));
      }
    }
    MIA_ASSIGN_OR_RETURN(dp_plan,
                         PlanDpSgd(recipe, static_cast<int64_t>(train_indices[first].size())));
    MIA_RETURN_IF_ERROR(TrainGroupDpSgd(*group, job, *dp_plan));
  } else {
    MIA_RETURN_IF_ERROR(TrainGroup(*group, job));
  }

  const auto train_metrics =
      EvaluateGroup(*group, dataset, norm, job.train, device, sparse_rows, device_batches);
  const std::vector<const std::vector<int64_t>*> test(count, &test_indices);
  const auto test_metrics =
      EvaluateGroup(*group, dataset, norm, test, device, sparse_rows, device_batches);
  if (channels_last) group->SetChannelsLast(false);  // archives in the default layout
  for (int i = 0; i < count; ++i) {
    MIA_RETURN_IF_ERROR(SaveModelState(group->ModelState(i), out_paths[first + i]));
  }
  const double seconds = SecondsSince(start) / count;
  for (int i = 0; i < count; ++i) {
    ModelReport& r = reports[first + i];
    r.train_accuracy = train_metrics[i].first;
    r.train_loss = train_metrics[i].second;
    r.test_accuracy = test_metrics[i].first;
    r.test_loss = test_metrics[i].second;
    r.seconds = seconds;
    r.batched = stack;
    if (dp_plan.has_value()) r.dp = dp_plan->report;
    if (ctx.model_saved) MIA_RETURN_IF_ERROR(ctx.model_saved(first + i, r));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ModelReport>> TrainModelsImpl(
    const data::Dataset& dataset, const ModelSpec& spec, const TrainRecipe& recipe,
    const std::vector<std::vector<int64_t>>& train_indices,
    const std::vector<int64_t>& test_indices, const std::vector<uint64_t>& seeds,
    const std::vector<std::string>& out_paths, const TrainContext& ctx) {
  MIA_RETURN_IF_ERROR(
      ValidateCall(dataset, recipe, train_indices, test_indices, seeds, out_paths, ctx));
  MIA_ASSIGN_OR_RETURN(const models::Architecture* arch,
                       models::FindArchitecture(spec.architecture));
  MIA_ASSIGN_OR_RETURN(const torch::Device device, ParseDevice(ctx.device));
  MIA_ASSIGN_OR_RETURN(const Normalization norm, Normalization::FromRecipe(recipe, dataset));

  const int total = static_cast<int>(seeds.size());
  // DP-SGD models train one at a time (per-example gradients of a single model).
  const bool stack =
      ctx.allow_batched && arch->stack != nullptr && total > 1 && !recipe.dp.enabled;
  const int per_pass =
      !stack ? 1 : (ctx.max_batched_models > 0 ? std::min(ctx.max_batched_models, total) : total);
  std::vector<ModelReport> reports(total);

  // On a CPU the models are split into lanes, one per intra-op thread, and
  // each lane trains its share on a single thread. Small matrix products
  // scale badly over threads (and collapse when another process holds a
  // core: OpenMP threads spin); independent models scale well. Inside the
  // parallel region LibTorch and OpenBLAS run single-threaded. On a GPU one
  // lane runs everything. The lanes' callbacks are serialized.
  const int lanes = LanesSuit(spec.architecture) ? LaneCount(device, total) : 1;
  std::mutex callback_mu;
  TrainContext lane_ctx = ctx;
  if (lanes > 1) {
    if (ctx.progress) {
      lane_ctx.progress = [&](int model, int epoch, int batch, int batches) {
        std::lock_guard<std::mutex> lock(callback_mu);
        ctx.progress(model, epoch, batch, batches);
      };
    }
    if (ctx.model_saved) {
      lane_ctx.model_saved = [&](int model, const ModelReport& report) {
        std::lock_guard<std::mutex> lock(callback_mu);
        return ctx.model_saved(model, report);
      };
    }
  }
  // Binary tabular data (Purchase-100, Texas-100: about 1 in 6 features is
  // 1) is kept as CSR, once for all lanes: batches are assembled from it and
  // the first layer multiplies only the nonzeros (core/models/sparse_linear.h).
  models::sparse::Csr sparse_rows;
  const bool sparse = device.is_cpu() && !dataset.is_image() && norm.empty() &&
                      models::CompressIfSparse(dataset.features.data(), dataset.size(),
                                               dataset.sample_numel(), sparse_rows);

  // On a GPU the rows go to the device once and batches are gathered there
  // (device_batches.h); DP-SGD draws its own Poisson batches on the host.
  // A dataset too large for the device's memory trains from the host.
  std::optional<DeviceBatches> device_batches;
  if (!sparse && !recipe.dp.enabled && ctx.data_on_device.value_or(!device.is_cpu())) {
    try {
      device_batches.emplace(dataset, norm, recipe.random_crop ? recipe.crop_padding : 0, device);
    } catch (const c10::Error&) {
      device_batches.reset();
    }
  }

  std::atomic<bool> stop{false};
  std::vector<absl::Status> lane_status(lanes);
  auto run_lane = [&](int lane) {
    const int begin = static_cast<int>(int64_t{total} * lane / lanes);
    const int end = static_cast<int>(int64_t{total} * (lane + 1) / lanes);
    absl::Status status;
    try {
      for (int first = begin; first < end && status.ok(); first += per_pass) {
        const int count = std::min(per_pass, end - first);
        status = TrainAndSave(*arch, stack && count > 1, first, count, dataset, spec, recipe, norm,
                              train_indices, test_indices, seeds, out_paths, lane_ctx, &stop,
                              device, sparse ? &sparse_rows : nullptr,
                              device_batches ? &*device_batches : nullptr, reports);
      }
    } catch (const std::exception& e) {
      status = TorchFailure("training", e);
    }
    if (!status.ok()) stop.store(true);
    lane_status[lane] = status;
  };
  RunLanes(lanes, run_lane);
  MIA_RETURN_IF_ERROR(FirstLaneFailure(lane_status));
  return reports;
}

}  // namespace

void SetComputeThreads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
}

std::string ResolveDevice(const std::string& device) {
  if (device != "auto") return device;
  return torch::cuda::is_available() ? "cuda" : "cpu";
}

std::string UsableDevice(const std::string& device, const std::string& key,
                         std::string* warning) {
  warning->clear();
  if (device.rfind("cuda", 0) != 0 || torch::cuda::is_available()) return device;
  *warning = absl::StrCat(key, " '", device,
                          "' asked for, but no CUDA device is usable here: ran on the CPU");
  return "cpu";
}

absl::StatusOr<std::vector<ModelReport>> TrainModels(
    const data::Dataset& dataset, const ModelSpec& spec, const TrainRecipe& recipe,
    const std::vector<std::vector<int64_t>>& train_indices,
    const std::vector<int64_t>& test_indices, const std::vector<uint64_t>& seeds,
    const std::vector<std::string>& out_paths, const TrainContext& ctx) {
  try {
    return TrainModelsImpl(dataset, spec, recipe, train_indices, test_indices, seeds, out_paths,
                           ctx);
  } catch (const std::exception& e) {
    return TorchFailure("training", e);
  }
}

}  // namespace mia::training
