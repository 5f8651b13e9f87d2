#include "core/training/trainer.h"

#include <algorithm>
#include <memory>

#include "absl/status/status.h"
#include "core/common/random.h"
#include "core/models/layers.h"
#include "core/training/autocast.h"
#include "core/training/optimizer.h"

namespace mia::training {
namespace {

constexpr int64_t kEvalRows = 512;  // rows per model per evaluation pass

// A padded batch for K models (GroupBatch, device_batches.h): x [K, B,
// sample...], labels [K, B], and the loss weight of each row (1 / rows[k]
// for real rows, 0 for padding).

// Fills the batch from rows[k] entries of each model's list starting at
// `starts[k]`; `transform(k)` gives the augmentation for model k's next sample.
template <typename TransformFn>
GroupBatch Assemble(const data::Dataset& dataset, const Normalization& norm,
                    const std::vector<const int64_t*>& starts, const std::vector<int64_t>& rows,
                    TransformFn transform) {
  const int64_t models = static_cast<int64_t>(rows.size());
  const int64_t batch = *std::max_element(rows.begin(), rows.end());
  const int64_t numel = dataset.sample_numel();
  std::vector<int64_t> shape = {models, batch};
  shape.insert(shape.end(), dataset.sample_shape.begin(), dataset.sample_shape.end());
  GroupBatch b;
  b.x = torch::empty(shape, torch::kFloat32);
  b.labels = torch::zeros({models, batch}, torch::kInt64);
  b.weights = torch::zeros({models, batch}, torch::kFloat32);
  float* x = b.x.data_ptr<float>();
  int64_t* labels = b.labels.data_ptr<int64_t>();
  float* weights = b.weights.data_ptr<float>();
  for (int64_t k = 0; k < models; ++k) {
    for (int64_t i = 0; i < rows[k]; ++i) {
      const int64_t row = starts[k][i];
      WriteSample(dataset, row, transform(k), norm, x + (k * batch + i) * numel);
      labels[k * batch + i] = dataset.labels[row];
      weights[k * batch + i] = 1.0f / static_cast<float>(rows[k]);
    }
    // Padding rows are zeros: finite inputs whose outputs get weight 0.
    std::fill(x + (k * batch + rows[k]) * numel, x + (k + 1) * batch * numel, 0.0f);
  }
  return b;
}

// The same batch with x as one CSR matrix per model (B rows, rows[k] real,
// the rest empty), copied from the dataset's CSR `all`; `xs` keeps its
// storage from step to step.
GroupBatch AssembleSparse(const data::Dataset& dataset, const models::sparse::Csr& all,
                          const std::vector<const int64_t*>& starts,
                          const std::vector<int64_t>& rows, std::vector<models::sparse::Csr>& xs) {
  const int64_t models = static_cast<int64_t>(rows.size());
  const int64_t batch = *std::max_element(rows.begin(), rows.end());
  if (static_cast<int64_t>(xs.size()) < models) xs.resize(models);
  GroupBatch b;
  b.labels = torch::zeros({models, batch}, torch::kInt64);
  b.weights = torch::zeros({models, batch}, torch::kFloat32);
  int64_t* labels = b.labels.data_ptr<int64_t>();
  float* weights = b.weights.data_ptr<float>();
  constexpr int64_t kAhead = 8;  // rows are random: fetch later ones' entries early
  for (int64_t k = 0; k < models; ++k) {
    models::sparse::Clear(all.cols, xs[k]);
    for (int64_t i = 0; i < rows[k]; ++i) {
      const int64_t row = starts[k][i];
      if (i + kAhead < rows[k]) {
        const int64_t later = starts[k][i + kAhead];
        const int64_t at = all.row_ptr[later];
        __builtin_prefetch(all.col.data() + at);
        __builtin_prefetch(all.val.data() + at);
        __builtin_prefetch(dataset.labels.data() + later);
      }
      if (i + 2 * kAhead < rows[k])
        __builtin_prefetch(all.row_ptr.data() + starts[k][i + 2 * kAhead]);
      models::sparse::AppendRow(all, row, xs[k]);
      labels[k * batch + i] = dataset.labels[row];
      weights[k * batch + i] = 1.0f / static_cast<float>(rows[k]);
    }
    while (xs[k].rows < batch) {  // padding rows: empty, weight 0
      xs[k].row_ptr.push_back(xs[k].row_ptr.back());
      ++xs[k].rows;
    }
  }
  return b;
}

// Per-row cross-entropy [K, B] of logits [K, B, C] against labels [K, B].
torch::Tensor RowLosses(const torch::Tensor& logits, const torch::Tensor& labels) {
  namespace F = torch::nn::functional;
  return F::cross_entropy(logits.flatten(0, 1), labels.flatten(),
                          F::CrossEntropyFuncOptions().reduction(torch::kNone))
      .view(labels.sizes());
}

void Shuffle(std::vector<int64_t>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.UniformInt(i)]);
}

}  // namespace

absl::Status TrainGroup(models::ModelGroup& group, const GroupJob& job) {
  const data::Dataset& dataset = *job.dataset;
  const TrainRecipe& recipe = *job.recipe;
  const int64_t models = group.size();
  const int64_t batch_size = recipe.batch_size;

  std::vector<Rng> order_rngs, augment_rngs;
  std::vector<torch::Generator> dropout_generators;
  std::vector<int64_t> batches(models);  // steps per epoch of model k
  for (int64_t k = 0; k < models; ++k) {
    order_rngs.emplace_back(DeriveSeed(job.seeds[k], kOrderStream));
    augment_rngs.emplace_back(DeriveSeed(job.seeds[k], kAugmentStream));
    dropout_generators.push_back(models::MakeGenerator(DeriveSeed(job.seeds[k], kDropoutStream)));
    const int64_t n = static_cast<int64_t>(job.train[k]->size());
    batches[k] = (n + batch_size - 1) / batch_size;
  }
  const int64_t steps = *std::max_element(batches.begin(), batches.end());
  group.SetDropoutGenerators(dropout_generators);

  auto optimizer = GroupOptimizer::Create(recipe, group.parameters(), models, group.stacked());
  if (!optimizer.ok()) return optimizer.status();
  const bool augment = dataset.is_image() && (recipe.random_crop || recipe.horizontal_flip);
  auto transform = [&](int64_t k) {
    return augment ? DrawAugmentation(recipe, augment_rngs[k]) : ImageTransform{};
  };

  // Binary tabular rows go to a model that takes them as CSR batches.
  // bf16 runs the forward pass under autocast: through autograd, never the
  // CPU's hand-written sparse and manual-gradient paths (float32 only).
  const bool bf16 = recipe.precision == "bf16";
  const bool sparse_input = job.sparse_rows != nullptr && !augment && !bf16 &&
                            group.TakesSparseRows() && job.device.is_cpu();
  std::vector<models::sparse::Csr> sparse_x;
  // A lone small model on the CPU computes its gradients without autograd.
  const bool manual = job.device.is_cpu() && !bf16 && group.HasManualGradients();
  // The rows are already on the device (device_batches.h): batches are
  // gathered there.
  const bool on_device = !sparse_input && !manual && job.device_batches != nullptr;
  std::vector<ImageTransform> transforms;

  group.train(true);
  std::vector<std::vector<int64_t>> order(models);
  std::vector<int64_t> rows(models);
  std::vector<const int64_t*> starts(models);
  std::vector<double> lr(models);
  std::vector<bool> active(models);
  for (int epoch = 0; epoch < recipe.epochs; ++epoch) {
    for (int64_t k = 0; k < models; ++k) {
      order[k] = *job.train[k];
      Shuffle(order[k], order_rngs[k]);
    }
    for (int64_t step = 0; step < steps; ++step) {
      if (job.ctx->cancel != nullptr && job.ctx->cancel->load()) {
        return absl::CancelledError("training cancelled");
      }
      if (job.stop != nullptr && job.stop->load()) {
        return absl::AbortedError("training stopped: another training lane failed");
      }
      for (int64_t k = 0; k < models; ++k) {
        const int64_t begin = std::min<int64_t>(step * batch_size, order[k].size());
        rows[k] = std::min<int64_t>(batch_size, order[k].size() - begin);
        starts[k] = order[k].data() + begin;
        active[k] = rows[k] > 0;
        lr[k] = LearningRate(recipe, epoch * batches[k] + step, batches[k]);
      }
      GroupBatch b;
      if (sparse_input) {
        b = AssembleSparse(dataset, *job.sparse_rows, starts, rows, sparse_x);
      } else if (on_device) {
        // The augmentations are drawn on the host in Assemble's order, so a
        // model sees the same crops and flips on either path.
        transforms.clear();
        if (augment) {
          const int64_t batch = *std::max_element(rows.begin(), rows.end());
          transforms.assign(models * batch, ImageTransform{});
          for (int64_t k = 0; k < models; ++k) {
            for (int64_t i = 0; i < rows[k]; ++i) transforms[k * batch + i] = transform(k);
          }
        }
        b = job.device_batches->Make(starts, rows, transforms);
      } else {
        b = Assemble(dataset, *job.norm, starts, rows, transform);
      }
      (*optimizer)->ZeroGrad();
      if (manual) {
        group.ManualGradients(sparse_input ? &sparse_x : nullptr, b.x, b.labels, b.weights);
      } else {
        torch::Tensor loss;
        {
          AutocastGuard autocast(job.device, bf16);
          torch::Tensor logits = sparse_input ? group.ForwardSparse(sparse_x, rows)
                                              : group.Forward(b.x.to(job.device), rows);  // [K, B, C]
          // Autocast computes the loss in float32 from the bfloat16 logits.
          torch::Tensor losses = RowLosses(logits, b.labels.to(job.device));  // [K, B]
          loss = (losses * b.weights.to(job.device)).sum();                  // sum_k mean_k
        }
        loss.backward();
      }
      (*optimizer)->Step(lr, active);
      if (job.ctx->progress) {
        for (int64_t k = 0; k < models; ++k) {
          if (active[k]) job.ctx->progress(job.first_model + k, epoch, step, batches[k]);
        }
      }
    }
  }
  group.train(false);
  return absl::OkStatus();
}

std::vector<std::pair<double, double>> EvaluateGroup(
    models::ModelGroup& group, const data::Dataset& dataset, const Normalization& norm,
    const std::vector<const std::vector<int64_t>*>& rows, const torch::Device& device,
    const models::sparse::Csr* sparse_rows, const DeviceBatches* device_batches) {
  const int64_t models = group.size();
  const bool sparse_input = sparse_rows != nullptr && group.TakesSparseRows() && device.is_cpu();
  std::vector<models::sparse::Csr> sparse_x;
  torch::NoGradGuard no_grad;
  group.train(false);
  int64_t longest = 0;
  for (const auto* r : rows) longest = std::max<int64_t>(longest, r->size());
  std::vector<double> loss_sum(models, 0.0);
  std::vector<int64_t> correct(models, 0);
  std::vector<int64_t> counts(models);
  std::vector<const int64_t*> starts(models);
  for (int64_t begin = 0; begin < longest; begin += kEvalRows) {
    for (int64_t k = 0; k < models; ++k) {
      const int64_t n = static_cast<int64_t>(rows[k]->size());
      counts[k] = std::clamp<int64_t>(n - begin, 0, kEvalRows);
      starts[k] = rows[k]->data() + std::min(begin, n);
    }
    GroupBatch b;
    torch::Tensor logits;  // [K, B, C]
    if (sparse_input) {
      b = AssembleSparse(dataset, *sparse_rows, starts, counts, sparse_x);
      logits = group.ForwardSparse(sparse_x, counts);
    } else if (device_batches != nullptr) {
      b = device_batches->Make(starts, counts, {});
      logits = group.Forward(b.x, counts);
    } else {
      b = Assemble(dataset, norm, starts, counts, [](int64_t) { return ImageTransform{}; });
      logits = group.Forward(b.x.to(device), counts);
    }
    const torch::Tensor losses =
        RowLosses(logits, b.labels.to(device)).cpu().contiguous();  // [K, B]
    const torch::Tensor hits =
        (logits.argmax(2).cpu() == b.labels.cpu()).to(torch::kInt64).contiguous();  // [K, B]
    const int64_t batch = losses.size(1);
    const float* loss_data = losses.data_ptr<float>();
    const int64_t* hit_data = hits.data_ptr<int64_t>();
    for (int64_t k = 0; k < models; ++k) {
      for (int64_t i = 0; i < counts[k]; ++i) {
        loss_sum[k] += loss_data[k * batch + i];
        correct[k] += hit_data[k * batch + i];
      }
    }
  }
  std::vector<std::pair<double, double>> out(models, {0.0, 0.0});
  for (int64_t k = 0; k < models; ++k) {
    const double n = static_cast<double>(rows[k]->size());
    if (n > 0) out[k] = {static_cast<double>(correct[k]) / n, loss_sum[k] / n};
  }
  return out;
}

}  // namespace mia::training
