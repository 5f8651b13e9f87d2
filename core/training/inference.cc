// ComputeLogits: per-example logits of a saved model (a mia archive or a
// TorchScript module), with test-time augmentation queries, for signals.
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/models/registry.h"
#include "core/training/archive.h"
#include "core/training/device.h"
#include "core/training/device_batches.h"
#include "core/training/engine.h"
#include "core/training/lanes.h"
#include "core/training/recipe.h"
#include "core/training/torch_error.h"

namespace mia::training {
namespace {

constexpr int64_t kRowsPerBatch = 256;

using ForwardFn = std::function<torch::Tensor(const torch::Tensor&)>;

absl::Status ValidateQueries(const data::Dataset& dataset, const QueryAugmentation& aug) {
  if (aug.shift < 0 || (dataset.is_image() && (aug.shift >= dataset.sample_shape[1] ||
                                               aug.shift >= dataset.sample_shape[2]))) {
    return absl::InvalidArgumentError("aug.shift must be in [0, image height and width)");
  }
  return absl::OkStatus();
}

// The dataset on `device` for the queries' shifts (device_batches.h), when
// ctx.data_on_device (by default on a GPU): each batch of queries is then
// gathered there instead of written on the host and copied. Empty when off,
// or when the dataset does not fit on the device.
std::unique_ptr<DeviceBatches> RowsOnDevice(const data::Dataset& dataset, const Normalization& norm,
                                            const QueryAugmentation& aug,
                                            const torch::Device& device, const TrainContext& ctx) {
  if (!ctx.data_on_device.value_or(!device.is_cpu())) return nullptr;
  try {
    return std::make_unique<DeviceBatches>(dataset, norm, aug.shift, device);
  } catch (const c10::Error&) {
    return nullptr;
  }
}

absl::StatusOr<std::vector<float>> ComputeLogitsImpl(
    const std::string& model_path, bool torchscript, const ModelSpec& spec,
    const TrainRecipe& recipe, const data::Dataset& dataset, const std::vector<int64_t>& indices,
    const QueryAugmentation& aug, const TrainContext& ctx, const DeviceBatches* on_device,
    int* classes) {
  MIA_RETURN_IF_ERROR(ValidateDataset(dataset));
  MIA_RETURN_IF_ERROR(ValidateIndices(indices, dataset.size(), "indices"));
  MIA_RETURN_IF_ERROR(ValidateQueries(dataset, aug));
  MIA_ASSIGN_OR_RETURN(const Normalization norm, Normalization::FromRecipe(recipe, dataset));
  MIA_ASSIGN_OR_RETURN(const torch::Device device, ParseDevice(ctx.device));

  // The model as a function [B, sample...] -> [B, C].
  ForwardFn forward;
  std::shared_ptr<models::Classifier> model;
  torch::jit::Module script;
  if (torchscript) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(model_path, ec)) {
      return absl::NotFoundError(absl::StrCat("TorchScript module not found: ", model_path));
    }
    try {
      script = torch::jit::load(model_path, device);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(model_path, " is not a loadable TorchScript module"));
    }
    script.eval();
    forward = [&script](const torch::Tensor& x) {
      torch::jit::IValue out = script.forward({x});
      TORCH_CHECK(out.isTensor(), "TorchScript forward must return a tensor of logits");
      return out.toTensor();
    };
  } else {
    const models::InputSpec input{dataset.sample_shape, dataset.num_classes};
    MIA_ASSIGN_OR_RETURN(model, LoadModel(spec, input, model_path));
    model->to(device);
    if (ctx.channels_last && dataset.is_image()) models::ConvWeightsChannelsLast(*model, true);
    model->eval();
    forward = [&model](const torch::Tensor& x) { return model->forward(x); };
  }

  const std::vector<ImageTransform> queries = QueryTransforms(aug, dataset.is_image());
  const int64_t num_queries = static_cast<int64_t>(queries.size());
  const int64_t total = static_cast<int64_t>(indices.size());
  const int64_t numel = dataset.sample_numel();
  int64_t num_classes = torchscript ? -1 : dataset.num_classes;
  std::vector<float> out;
  if (num_classes > 0) out.resize(total * num_queries * num_classes);

  torch::NoGradGuard no_grad;
  for (int64_t begin = 0; begin < total; begin += kRowsPerBatch) {
    if (ctx.cancel != nullptr && ctx.cancel->load()) {
      return absl::CancelledError("logit computation cancelled");
    }
    const int64_t rows = std::min(kRowsPerBatch, total - begin);
    std::vector<int64_t> shape = {rows};
    shape.insert(shape.end(), dataset.sample_shape.begin(), dataset.sample_shape.end());
    for (int64_t a = 0; a < num_queries; ++a) {
      torch::Tensor x;  // [B, sample...]
      if (on_device != nullptr) {
        const bool plain = !queries[a].flip && queries[a].dx == 0 && queries[a].dy == 0;
        x = on_device
                ->Make({indices.data() + begin}, {rows},
                       plain ? std::vector<ImageTransform>{}
                             : std::vector<ImageTransform>(rows, queries[a]))
                .x[0];
      } else {
        x = torch::empty(shape, torch::kFloat32);
        float* data = x.data_ptr<float>();
        for (int64_t i = 0; i < rows; ++i) {
          WriteSample(dataset, indices[begin + i], queries[a], norm, data + i * numel);
        }
      }
      torch::Tensor logits =
          forward(x.to(device)).to(torch::kCPU, torch::kFloat32).contiguous();  // [B, C]
      if (logits.dim() != 2 || logits.size(0) != rows || logits.size(1) < 1) {
        return absl::InvalidArgumentError(
            "the model's forward must return logits shaped [batch, classes]");
      }
      if (num_classes < 0) {
        num_classes = logits.size(1);
        out.resize(total * num_queries * num_classes);
      } else if (logits.size(1) != num_classes) {
        return absl::InvalidArgumentError(absl::StrCat("the model returned ", logits.size(1),
                                                       " classes, expected ", num_classes));
      }
      const float* src = logits.data_ptr<float>();
      for (int64_t i = 0; i < rows; ++i) {
        std::copy(src + i * num_classes, src + (i + 1) * num_classes,
                  out.data() + ((begin + i) * num_queries + a) * num_classes);
      }
    }
  }
  *classes = static_cast<int>(std::max<int64_t>(num_classes, 0));
  return out;
}

// ComputeLogitsImpl with LibTorch's exceptions as a status.
absl::StatusOr<std::vector<float>> ComputeLogitsCaught(
    const std::string& model_path, bool torchscript, const ModelSpec& spec,
    const TrainRecipe& recipe, const data::Dataset& dataset, const std::vector<int64_t>& indices,
    const QueryAugmentation& aug, const TrainContext& ctx, const DeviceBatches* on_device,
    int* classes) {
  if (classes == nullptr) return absl::InvalidArgumentError("classes must not be null");
  try {
    return ComputeLogitsImpl(model_path, torchscript, spec, recipe, dataset, indices, aug, ctx,
                             on_device, classes);
  } catch (const std::exception& e) {
    return TorchFailure("computing logits", e);
  }
}

// The rows on the device for a ComputeLogits* call, or none; errors are
// those ComputeLogitsImpl reports first.
absl::StatusOr<std::unique_ptr<DeviceBatches>> RowsOnDeviceFor(const TrainRecipe& recipe,
                                                               const data::Dataset& dataset,
                                                               const QueryAugmentation& aug,
                                                               const TrainContext& ctx) {
  MIA_RETURN_IF_ERROR(ValidateDataset(dataset));
  MIA_RETURN_IF_ERROR(ValidateQueries(dataset, aug));
  MIA_ASSIGN_OR_RETURN(const Normalization norm, Normalization::FromRecipe(recipe, dataset));
  MIA_ASSIGN_OR_RETURN(const torch::Device device, ParseDevice(ctx.device));
  try {
    return RowsOnDevice(dataset, norm, aug, device, ctx);
  } catch (const std::exception& e) {
    return TorchFailure("computing logits", e);
  }
}

}  // namespace

absl::StatusOr<std::vector<float>> ComputeLogits(const std::string& model_path, bool torchscript,
                                                 const ModelSpec& spec, const TrainRecipe& recipe,
                                                 const data::Dataset& dataset,
                                                 const std::vector<int64_t>& indices,
                                                 const QueryAugmentation& aug,
                                                 const TrainContext& ctx, int* classes) {
  absl::StatusOr<std::unique_ptr<DeviceBatches>> on_device =
      RowsOnDeviceFor(recipe, dataset, aug, ctx);
  if (!on_device.ok()) return on_device.status();
  return ComputeLogitsCaught(model_path, torchscript, spec, recipe, dataset, indices, aug, ctx,
                             on_device->get(), classes);
}

absl::Status ComputeLogitsMany(
    const std::vector<std::string>& model_paths, bool torchscript, const ModelSpec& spec,
    const TrainRecipe& recipe, const data::Dataset& dataset, const std::vector<int64_t>& indices,
    const QueryAugmentation& aug, const TrainContext& ctx,
    const std::function<absl::Status(int model, std::vector<float> logits, int classes)>& done) {
  const int count = static_cast<int>(model_paths.size());
  if (count == 0) return absl::OkStatus();
  absl::StatusOr<torch::Device> device = ParseDevice(ctx.device);
  if (!device.ok()) return device.status();
  // Lanes as in TrainModels (engine.cc): small products scale badly over
  // threads, independent models scale well.
  // TorchScript modules are of unknown architecture: one lane.
  const int lanes = !torchscript && LanesSuit(spec.architecture) ? LaneCount(*device, count) : 1;
  // The rows go to the device once for all the models.
  absl::StatusOr<std::unique_ptr<DeviceBatches>> on_device =
      RowsOnDeviceFor(recipe, dataset, aug, ctx);
  if (!on_device.ok()) return on_device.status();
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::vector<absl::Status> lane_status(lanes);
  auto run_lane = [&](int lane) {
    absl::Status status;
    for (int m = lane; m < count && status.ok() && !stop.load(); m += lanes) {
      int classes = 0;
      absl::StatusOr<std::vector<float>> logits =
          ComputeLogitsCaught(model_paths[m], torchscript, spec, recipe, dataset, indices, aug, ctx,
                              on_device->get(), &classes);
      if (!logits.ok()) {
        status = logits.status();
        break;
      }
      std::lock_guard<std::mutex> lock(mu);
      if (stop.load()) break;
      status = done(m, std::move(*logits), classes);
    }
    if (!status.ok()) stop.store(true);
    lane_status[lane] = status;
  };
  RunLanes(lanes, run_lane);
  for (const absl::Status& status : lane_status) MIA_RETURN_IF_ERROR(status);
  return absl::OkStatus();
}

}  // namespace mia::training
