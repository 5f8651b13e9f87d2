// TrainLanguageModels and ComputeTokenSignalsMany (lm_engine.h): GPT models
// (core/models/gpt.h) trained on tokenized texts with AdamW, and their
// per-token signals. Everything LibTorch throws is caught and returned as
// Internal (torch_error.h).
//
// Artifacts are LibTorch archives of named tensors (archive.h), written
// atomically:
//   full model (from scratch, or a checkpoint fine-tuned fully): every
//     parameter under its Hugging Face name ("transformer.h.0.attn.c_attn.weight",
//     linear weights [out, in]);
//   LoRA: only the adapters ("transformer.h.0.attn.c_attn.lora_A" [r, in],
//     "...lora_B" [out, r]) plus "mia.lora.base_sha256" (the 64 hex digits of
//     the base checkpoint's model.safetensors as uint8), "mia.lora.alpha"
//     (float64 [1]) and "mia.lora.base_path" (the checkpoint folder as uint8,
//     for provenance). The base comes from LmSpec::checkpoint at load time and
//     must hash the same: a few MB per model instead of a full copy per
//     shadow model (gpt2: 500 MB each).
#include "core/training/lm_engine.h"

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/common/random.h"
#include "core/common/status_macros.h"
#include "core/models/gpt.h"
#include "core/models/safetensors.h"
#include "core/training/archive.h"
#include "core/training/device.h"
#include "core/training/lanes.h"
#include "core/training/lm_recipe.h"
#include "core/training/optimizer.h"
#include "core/training/recipe.h"
#include "core/training/torch_error.h"

namespace mia::training {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kBaseShaKey[] = "mia.lora.base_sha256";
constexpr char kAlphaKey[] = "mia.lora.alpha";
constexpr char kBasePathKey[] = "mia.lora.base_path";

// What a spec resolves to: the model's shape, the context length texts are
// cut to, and the checkpoint (null: from scratch).
struct LmSetup {
  models::GptConfig config;
  int64_t context = 0;
  std::shared_ptr<const models::Gpt2Checkpoint> checkpoint;
};

models::LoraConfig ToLora(const LoraSpec& lora) {
  models::LoraConfig c;
  c.rank = lora.rank;
  c.alpha = lora.alpha;
  c.dropout = lora.dropout;
  c.target_modules = lora.target_modules;
  return c;
}

// Resolves `spec`. With a checkpoint, n_layer/n_head/n_embd/vocab_size are
// the checkpoint's (config.json) and block_size only caps the context;
// `read_weights` false reads config.json alone (a full model's artifact
// carries every weight).
absl::StatusOr<LmSetup> ResolveSpec(const LmSpec& spec, const TokenizedCorpus& corpus,
                                    bool read_weights) {
  LmSetup setup;
  if (spec.lora.rank < 0) return absl::InvalidArgumentError("lora.rank must be >= 0");
  if (spec.lora.rank > 0 && spec.checkpoint.empty()) {
    return absl::InvalidArgumentError("lora needs a checkpoint to adapt (spec.checkpoint)");
  }
  if (!(spec.dropout >= 0.0 && spec.dropout < 1.0)) {
    return absl::InvalidArgumentError("dropout must be in [0, 1)");
  }
  if (spec.block_size <= 0) return absl::InvalidArgumentError("block_size must be positive");
  if (!spec.checkpoint.empty()) {
    if (read_weights) {
      MIA_ASSIGN_OR_RETURN(models::Gpt2Checkpoint ckpt,
                           models::ReadGpt2Checkpoint(spec.checkpoint));
      setup.config = ckpt.config;
      setup.checkpoint = std::make_shared<const models::Gpt2Checkpoint>(std::move(ckpt));
    } else {
      MIA_ASSIGN_OR_RETURN(models::Gpt2FileConfig file,
                           models::ReadGpt2Config(spec.checkpoint + "/config.json"));
      setup.config.n_layer = file.n_layer;
      setup.config.n_head = file.n_head;
      setup.config.n_embd = file.n_embd;
      setup.config.block_size = file.n_positions;
      setup.config.vocab_size = file.vocab_size;
      setup.config.layer_norm_eps = file.layer_norm_epsilon;
    }
    if (spec.vocab_size > 0 && spec.vocab_size != setup.config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("vocab_size ", spec.vocab_size,
                                                     " differs from the checkpoint's ",
                                                     setup.config.vocab_size));
    }
    setup.context = std::min<int64_t>(spec.block_size, setup.config.block_size);
  } else {
    if (spec.architecture == "gpt") {
      setup.config.n_layer = spec.n_layer;
      setup.config.n_head = spec.n_head;
      setup.config.n_embd = spec.n_embd;
    } else if (absl::StartsWith(spec.architecture, "gpt2")) {
      MIA_ASSIGN_OR_RETURN(setup.config, models::Gpt2Size(spec.architecture));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown language-model architecture '", spec.architecture,
                       "' (gpt, gpt2, gpt2-medium, gpt2-large, gpt2-xl)"));
    }
    setup.config.block_size = spec.block_size;
    setup.config.vocab_size = spec.vocab_size > 0 ? spec.vocab_size : corpus.vocab_size;
    setup.context = spec.block_size;
  }
  setup.config.dropout = spec.dropout;
  MIA_RETURN_IF_ERROR(models::ValidateGptConfig(setup.config));
  // The corpus must fit the model's vocabulary.
  const int64_t vocab = setup.config.vocab_size;
  if (corpus.vocab_size <= 0 || corpus.vocab_size > vocab) {
    return absl::InvalidArgumentError(absl::StrCat("corpus vocab_size ", corpus.vocab_size,
                                                   " must be in [1, the model's ", vocab, "]"));
  }
  if (corpus.bos_id < 0 || corpus.bos_id >= vocab) {
    return absl::InvalidArgumentError("corpus bos_id is outside the vocabulary");
  }
  for (size_t i = 0; i < corpus.tokens.size(); ++i) {
    const std::vector<int32_t>& text = corpus.tokens[i];
    if (text.empty()) return absl::InvalidArgumentError(absl::StrCat("text ", i, " is empty"));
    for (int32_t id : text) {
      if (id < 0 || id >= corpus.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("text ", i, " has a token id outside [0, vocab_size)"));
      }
    }
  }
  return setup;
}

int64_t ScoredLength(const TokenizedCorpus& corpus, int64_t text, int64_t context) {
  return std::min<int64_t>(static_cast<int64_t>(corpus.tokens[text].size()), context);
}

std::vector<TextLength> ScoredLengths(const TokenizedCorpus& corpus,
                                      const std::vector<int64_t>& texts, int64_t context) {
  std::vector<TextLength> out;
  out.reserve(texts.size());
  for (int64_t t : texts) out.push_back({t, ScoredLength(corpus, t, context)});
  return out;
}

// Inputs [B, T] = [bos, x_1..x_{T-1}] and targets [B, T] = x_1..x_T for texts
// `rows`, T the longest scored length; padding: input bos, target -1.
struct LmBatch {
  torch::Tensor input;    // [B, T] int64
  torch::Tensor targets;  // [B, T] int64, -1 at padding
};

// The batch on `device`: written on the host (pinned for a GPU) and copied
// without waiting.
LmBatch Assemble(const TokenizedCorpus& corpus, const int64_t* rows, int64_t count,
                 int64_t context, const torch::Device& device) {
  int64_t T = 1;
  for (int64_t i = 0; i < count; ++i) T = std::max(T, ScoredLength(corpus, rows[i], context));
  auto opts = torch::TensorOptions().dtype(torch::kInt64);
  if (device.is_cuda()) opts = opts.pinned_memory(true);
  LmBatch b;
  b.input = torch::full({count, T}, static_cast<int64_t>(corpus.bos_id), opts);
  b.targets = torch::full({count, T}, int64_t{-1}, opts);
  int64_t* in = b.input.data_ptr<int64_t>();
  int64_t* tg = b.targets.data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    const std::vector<int32_t>& text = corpus.tokens[rows[i]];
    const int64_t n = ScoredLength(corpus, rows[i], context);
    for (int64_t t = 0; t < n; ++t) {
      if (t + 1 < n) in[i * T + t + 1] = text[t];
      tg[i * T + t] = text[t];
    }
  }
  if (!device.is_cpu()) {
    b.input = b.input.to(device, /*non_blocking=*/true);
    b.targets = b.targets.to(device, /*non_blocking=*/true);
  }
  return b;
}

absl::Status CheckIndices(const std::vector<int64_t>& indices, int64_t texts,
                          const std::string& what) {
  for (int64_t i : indices) {
    if (i < 0 || i >= texts) {
      return absl::InvalidArgumentError(absl::StrCat(what, " has an index outside the corpus"));
    }
  }
  return absl::OkStatus();
}

// Builds model k's network: the checkpoint's weights or a seeded GPT-2
// initialization, then LoRA adapters (A drawn from the same seeded stream).
absl::StatusOr<std::shared_ptr<models::Gpt>> BuildModel(const LmSetup& setup, const LmSpec& spec,
                                                        uint64_t seed) {
  models::Initializer init(DeriveSeed(seed, kInitStream));
  std::shared_ptr<models::Gpt> model;
  if (setup.checkpoint != nullptr) {
    models::Initializer none = models::Initializer::None();
    model = std::make_shared<models::Gpt>(setup.config, none);
    MIA_RETURN_IF_ERROR(models::LoadGptState(setup.checkpoint->weights, *model));
  } else {
    model = std::make_shared<models::Gpt>(setup.config, init);
  }
  MIA_RETURN_IF_ERROR(model->AddLora(ToLora(spec.lora), init));
  return model;
}

// Mean per-token cross-entropy and next-token accuracy of `model` on `texts`,
// `batch` texts per pass (the training batch: memory sized for training fits).
std::pair<double, double> Evaluate(models::Gpt& model, const TokenizedCorpus& corpus,
                                   std::vector<int64_t> texts, int64_t context, int64_t batch,
                                   const torch::Device& device) {
  torch::NoGradGuard no_grad;
  model.eval();
  std::stable_sort(texts.begin(), texts.end(), [&](int64_t a, int64_t b) {
    return ScoredLength(corpus, a, context) < ScoredLength(corpus, b, context);
  });
  double loss_sum = 0;
  int64_t correct = 0, tokens = 0;
  for (int64_t begin = 0; begin < static_cast<int64_t>(texts.size()); begin += batch) {
    const int64_t count = std::min<int64_t>(batch, texts.size() - begin);
    LmBatch b = Assemble(corpus, texts.data() + begin, count, context, device);
    torch::Tensor targets = b.targets.to(device);                   // [B, T]
    torch::Tensor logits = model.forward(b.input.to(device));       // [B, T, V]
    torch::Tensor flat = logits.flatten(0, 1).to(torch::kFloat32);  // [B*T, V]
    torch::Tensor loss = torch::nn::functional::cross_entropy(
        flat, targets.flatten(),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1).reduction(torch::kSum));
    const torch::Tensor mask = targets >= 0;  // [B, T]
    loss_sum += loss.item<double>();
    correct += ((logits.argmax(2) == targets) & mask).sum().item<int64_t>();
    tokens += mask.sum().item<int64_t>();
  }
  if (tokens == 0) return {0.0, 0.0};
  return {loss_sum / static_cast<double>(tokens),
          static_cast<double>(correct) / static_cast<double>(tokens)};
}

absl::Status SaveLm(models::Gpt& model, const LmSetup& setup, const LmSpec& spec,
                    const std::string& path) {
  if (!model.has_lora()) return SaveModelState(model.State(), path);
  std::vector<models::NamedTensor> state = model.LoraState();
  const std::string& sha = setup.checkpoint->sha256;
  torch::Tensor digest = torch::empty({static_cast<int64_t>(sha.size())}, torch::kUInt8);
  std::copy(sha.begin(), sha.end(), digest.data_ptr<uint8_t>());
  state.push_back({kBaseShaKey, digest, false});
  state.push_back({kAlphaKey, torch::full({1}, spec.lora.alpha, torch::kFloat64), false});
  // Provenance only: loading takes the base from LmSpec::checkpoint (a folder
  // may move) and trusts the hash, not the path.
  const std::string& base = spec.checkpoint;
  torch::Tensor base_path = torch::empty({static_cast<int64_t>(base.size())}, torch::kUInt8);
  std::copy(base.begin(), base.end(), base_path.data_ptr<uint8_t>());
  state.push_back({kBasePathKey, base_path, false});
  return SaveModelState(state, path);
}

// One model: build, train, evaluate, save.
absl::StatusOr<ModelReport> TrainOne(int k, const TokenizedCorpus& corpus, const LmSetup& setup,
                                     const LmSpec& spec, const LmRecipe& recipe,
                                     const std::vector<int64_t>& train,
                                     const std::vector<int64_t>& test, uint64_t seed,
                                     const std::string& out_path, const TrainContext& ctx,
                                     const std::atomic<bool>& stop, const torch::Device& device) {
  const Clock::time_point start = Clock::now();
  MIA_ASSIGN_OR_RETURN(std::shared_ptr<models::Gpt> model, BuildModel(setup, spec, seed));
  model->to(device);
  model->set_dropout_generator(models::MakeGenerator(DeriveSeed(seed, kDropoutStream)));

  // AdamW. Weight decay only on the matrices that multiply activations
  // (c_attn, c_proj, c_fc weights and LoRA's A and B), as minGPT: not on
  // biases and LayerNorm gains (decaying them pulls toward 0, which is no
  // "simpler" function) nor on the embeddings (wte is also the head; rare
  // tokens' rows would shrink just for being rare).
  std::vector<torch::Tensor> decay, no_decay;
  for (const models::NamedTensor& p : model->State()) {
    if (!p.value.requires_grad()) continue;  // LoRA: the base is frozen
    const bool matrix = p.value.dim() == 2 && !absl::StartsWith(p.name, "transformer.wte") &&
                        !absl::StartsWith(p.name, "transformer.wpe");
    (matrix ? decay : no_decay).push_back(p.value);
  }
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(recipe.learning_rate)
            .betas({recipe.beta1, recipe.beta2})
            .eps(recipe.eps)
            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(recipe.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  torch::optim::AdamW optimizer(groups, torch::optim::AdamWOptions(recipe.learning_rate));
  std::vector<torch::Tensor> trainable = decay;
  trainable.insert(trainable.end(), no_decay.begin(), no_decay.end());

  Rng order_rng(DeriveSeed(seed, kOrderStream));
  const int64_t per_epoch =
      (static_cast<int64_t>(train.size()) + recipe.batch_size - 1) / recipe.batch_size;
  const int64_t total = per_epoch * recipe.epochs;
  const std::vector<TextLength> lengths = ScoredLengths(corpus, train, setup.context);
  int64_t step = 0;
  model->train();
  for (int epoch = 0; epoch < recipe.epochs; ++epoch) {
    const auto batches = LengthBucketedBatches(lengths, recipe.batch_size, order_rng);
    for (size_t bi = 0; bi < batches.size(); ++bi, ++step) {
      if (ctx.cancel != nullptr && ctx.cancel->load()) {
        return absl::CancelledError("training cancelled");
      }
      if (stop.load()) return absl::AbortedError("training stopped: another training lane failed");
      const double lr = LmLearningRate(recipe, step, total);
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      }
      LmBatch b = Assemble(corpus, batches[bi].data(), batches[bi].size(), setup.context, device);
      optimizer.zero_grad();
      torch::Tensor logits = model->forward(b.input.to(device));  // [B, T, V]
      torch::Tensor loss = torch::nn::functional::cross_entropy(
          logits.flatten(0, 1), b.targets.to(device).flatten(),
          torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1));  // mean per token
      loss.backward();
      if (recipe.grad_clip > 0) ClipGradNorm(trainable, recipe.grad_clip);
      optimizer.step();
      if (ctx.progress) ctx.progress(k, epoch, static_cast<int>(bi), static_cast<int>(per_epoch));
    }
  }
  model->eval();
  ModelReport report;
  std::tie(report.train_loss, report.train_accuracy) =
      Evaluate(*model, corpus, train, setup.context, recipe.batch_size, device);
  std::tie(report.test_loss, report.test_accuracy) =
      Evaluate(*model, corpus, test, setup.context, recipe.batch_size, device);
  MIA_RETURN_IF_ERROR(SaveLm(*model, setup, spec, out_path));
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

absl::StatusOr<std::vector<ModelReport>> TrainImpl(
    const TokenizedCorpus& corpus, const LmSpec& spec, const LmRecipe& recipe,
    const std::vector<std::vector<int64_t>>& train_indices,
    const std::vector<int64_t>& test_indices, const std::vector<uint64_t>& seeds,
    const std::vector<std::string>& out_paths, const TrainContext& ctx) {
  MIA_RETURN_IF_ERROR(ValidateLmRecipe(recipe));
  if (seeds.empty()) return absl::InvalidArgumentError("seeds: no models to train");
  if (train_indices.size() != seeds.size() || out_paths.size() != seeds.size()) {
    return absl::InvalidArgumentError(
        "train_indices, seeds and out_paths must have one entry per model");
  }
  const int64_t texts = static_cast<int64_t>(corpus.tokens.size());
  for (size_t k = 0; k < seeds.size(); ++k) {
    if (train_indices[k].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("train_indices[", k, "] is empty"));
    }
    MIA_RETURN_IF_ERROR(
        CheckIndices(train_indices[k], texts, absl::StrCat("train_indices[", k, "]")));
    if (out_paths[k].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("out_paths[", k, "] is empty"));
    }
  }
  MIA_RETURN_IF_ERROR(CheckIndices(test_indices, texts, "test_indices"));
  MIA_ASSIGN_OR_RETURN(const torch::Device device, ParseDevice(ctx.device));
  MIA_ASSIGN_OR_RETURN(const LmSetup setup, ResolveSpec(spec, corpus, /*read_weights=*/true));

  const int total = static_cast<int>(seeds.size());
  std::vector<ModelReport> reports(total);
  // Lanes as TrainModels (engine.cc): one model per intra-op thread on a CPU.
  const int lanes = LaneCount(device, total);
  std::mutex callback_mu;
  TrainContext lane_ctx = ctx;
  if (lanes > 1 && ctx.progress) {
    lane_ctx.progress = [&](int model, int epoch, int batch, int batches) {
      std::lock_guard<std::mutex> lock(callback_mu);
      ctx.progress(model, epoch, batch, batches);
    };
  }
  std::atomic<bool> stop{false};
  std::vector<absl::Status> lane_status(lanes);
  auto run_lane = [&](int lane) {
    absl::Status status;
    try {
      for (int k = lane; k < total && status.ok(); k += lanes) {
        absl::StatusOr<ModelReport> report =
            TrainOne(k, corpus, setup, spec, recipe, train_indices[k], test_indices, seeds[k],
                     out_paths[k], lane_ctx, stop, device);
        if (!report.ok()) {
          status = report.status();
          break;
        }
        reports[k] = *report;
        if (ctx.model_saved) {
          std::lock_guard<std::mutex> lock(callback_mu);
          status = ctx.model_saved(k, *report);
        }
      }
    } catch (const std::exception& e) {
      status = TorchFailure("training a language model", e);
    }
    if (!status.ok()) stop.store(true);
    lane_status[lane] = status;
  };
  RunLanes(lanes, run_lane);
  MIA_RETURN_IF_ERROR(FirstLaneFailure(lane_status));
  return reports;
}

// Inference -------------------------------------------------------------------

// The saved model `path` as a plain GPT (adapters merged), on the CPU.
absl::StatusOr<std::shared_ptr<models::Gpt>> LoadLm(const std::string& path, const LmSetup& setup,
                                                    const LmSpec& spec) {
  MIA_ASSIGN_OR_RETURN(std::vector<models::NamedTensor> stored, ReadModelState(path));
  models::Initializer none = models::Initializer::None();
  auto plain = std::make_shared<models::Gpt>(setup.config, none);
  if (spec.lora.rank == 0) {
    absl::Status s = models::LoadGptState(stored, *plain);
    if (!s.ok())
      return absl::InvalidArgumentError(absl::StrCat("model archive ", path, ": ", s.message()));
    return plain;
  }
  std::vector<models::NamedTensor> adapters;
  torch::Tensor sha, alpha;
  for (models::NamedTensor& t : stored) {
    if (t.name == kBaseShaKey) {
      sha = t.value;
    } else if (t.name == kAlphaKey) {
      alpha = t.value;
    } else if (t.name == kBasePathKey) {
      continue;
    } else {
      adapters.push_back(std::move(t));
    }
  }
  if (!sha.defined() || !alpha.defined() || sha.scalar_type() != torch::kUInt8 ||
      alpha.scalar_type() != torch::kFloat64 || alpha.numel() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model archive ", path, " is not a LoRA artifact (no base checkpoint hash)"));
  }
  const std::string stored_sha(reinterpret_cast<const char*>(sha.contiguous().data_ptr<uint8_t>()),
                               sha.numel());
  if (stored_sha != setup.checkpoint->sha256) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model archive ", path, ": the base checkpoint ", spec.checkpoint,
        "/model.safetensors is not the one the adapters were trained on (SHA-256 differs)"));
  }
  if (alpha.item<double>() != spec.lora.alpha) {
    return absl::InvalidArgumentError(
        absl::StrCat("model archive ", path, ": lora.alpha differs from the spec's"));
  }
  auto adapted = std::make_shared<models::Gpt>(setup.config, none);
  MIA_RETURN_IF_ERROR(adapted->AddLora(ToLora(spec.lora), none));
  if (adapters.size() != adapted->LoraState().size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model archive ", path, ": holds ", adapters.size(),
                     " adapter tensors, the spec implies ", adapted->LoraState().size()));
  }
  std::vector<models::NamedTensor> all = setup.checkpoint->weights;
  all.insert(all.end(), adapters.begin(), adapters.end());
  absl::Status s = models::LoadGptState(all, *adapted);
  if (!s.ok())
    return absl::InvalidArgumentError(absl::StrCat("model archive ", path, ": ", s.message()));
  MIA_RETURN_IF_ERROR(models::LoadGptState(adapted->MergedState(), *plain));
  return plain;
}

// Signals of one model on `indices`, texts processed in length-sorted
// batches; each batch's [B, T, V] tensors are dropped before the next.
absl::StatusOr<attacks::TokenSignals> SignalsOfModel(
    const std::string& path, const LmSetup& setup, const LmSpec& spec,
    const TokenizedCorpus& corpus, const std::vector<int64_t>& indices, bool with_stats,
    int64_t batch_size, const TrainContext& ctx, const torch::Device& device) {
  MIA_ASSIGN_OR_RETURN(std::shared_ptr<models::Gpt> model, LoadLm(path, setup, spec));
  model->to(device);
  model->eval();
  attacks::TokenSignals s;
  s.models = 1;
  s.points = static_cast<int64_t>(indices.size());
  for (int64_t text : indices) {
    s.lengths.push_back(ScoredLength(corpus, text, setup.context));
    s.max_length = std::max(s.max_length, s.lengths.back());
  }
  const int64_t L = s.max_length;
  s.logprobs.assign(s.points * L, 0.0f);
  if (with_stats) {
    s.mean.assign(s.points * L, 0.0f);
    s.var.assign(s.points * L, 0.0f);
  }
  std::vector<int64_t> order(indices.size());  // positions in `indices`, by length
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return s.lengths[a] < s.lengths[b]; });
  torch::InferenceMode inference;
  std::vector<int64_t> rows;
  for (int64_t begin = 0; begin < s.points; begin += batch_size) {
    if (ctx.cancel != nullptr && ctx.cancel->load()) {
      return absl::CancelledError("token signal computation cancelled");
    }
    const int64_t count = std::min(batch_size, s.points - begin);
    rows.clear();
    for (int64_t i = 0; i < count; ++i) rows.push_back(indices[order[begin + i]]);
    LmBatch b = Assemble(corpus, rows.data(), count, setup.context, device);
    const int64_t T = b.input.size(1);
    torch::Tensor targets = b.targets.clamp_min(0).to(device);  // [B, T]
    torch::Tensor logp = torch::log_softmax(model->forward(b.input.to(device)).to(torch::kFloat32),
                                            -1);  // [B, T, V]
    torch::Tensor lp =
        logp.gather(2, targets.unsqueeze(2)).squeeze(2).cpu().contiguous();  // [B, T]
    torch::Tensor mean, var;
    if (with_stats) {
      torch::Tensor plogp = logp.exp().mul_(logp);                      // [B, T, V]
      mean = plogp.sum(-1);                                             // [B, T]
      torch::Tensor second = plogp.mul_(logp).sum(-1);                  // [B, T]
      var = (second - mean * mean).clamp_min_(0.0).cpu().contiguous();  // [B, T]
      mean = mean.cpu().contiguous();
    }
    for (int64_t i = 0; i < count; ++i) {
      const int64_t at = order[begin + i];
      const int64_t n = s.lengths[at];
      std::copy_n(lp.data_ptr<float>() + i * T, n, s.logprobs.data() + at * L);
      if (with_stats) {
        std::copy_n(mean.data_ptr<float>() + i * T, n, s.mean.data() + at * L);
        std::copy_n(var.data_ptr<float>() + i * T, n, s.var.data() + at * L);
      }
    }
  }
  return s;
}

absl::Status SignalsImpl(
    const std::vector<std::string>& model_paths, const LmSpec& spec, const TokenizedCorpus& corpus,
    const std::vector<int64_t>& indices, bool with_stats, int batch_size, const TrainContext& ctx,
    const std::function<absl::Status(int model, attacks::TokenSignals signals)>& done) {
  if (batch_size < 1) return absl::InvalidArgumentError("batch_size must be >= 1");
  MIA_RETURN_IF_ERROR(CheckIndices(indices, static_cast<int64_t>(corpus.tokens.size()), "indices"));
  const int count = static_cast<int>(model_paths.size());
  if (count == 0) return absl::OkStatus();
  MIA_ASSIGN_OR_RETURN(const torch::Device device, ParseDevice(ctx.device));
  MIA_ASSIGN_OR_RETURN(const LmSetup setup,
                       ResolveSpec(spec, corpus, /*read_weights=*/spec.lora.rank > 0));
  const int lanes = LaneCount(device, count);
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::vector<absl::Status> lane_status(lanes);
  auto run_lane = [&](int lane) {
    absl::Status status;
    try {
      for (int m = lane; m < count && status.ok() && !stop.load(); m += lanes) {
        absl::StatusOr<attacks::TokenSignals> signals = SignalsOfModel(
            model_paths[m], setup, spec, corpus, indices, with_stats, batch_size, ctx, device);
        if (!signals.ok()) {
          status = signals.status();
          break;
        }
        std::lock_guard<std::mutex> lock(mu);
        if (stop.load()) break;
        status = done(m, std::move(*signals));
      }
    } catch (const std::exception& e) {
      status = TorchFailure("computing token signals", e);
    }
    if (!status.ok()) stop.store(true);
    lane_status[lane] = status;
  };
  RunLanes(lanes, run_lane);
  for (const absl::Status& status : lane_status) MIA_RETURN_IF_ERROR(status);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<ModelReport>> TrainLanguageModels(
    const TokenizedCorpus& corpus, const LmSpec& spec, const LmRecipe& recipe,
    const std::vector<std::vector<int64_t>>& train_indices,
    const std::vector<int64_t>& test_indices, const std::vector<uint64_t>& seeds,
    const std::vector<std::string>& out_paths, const TrainContext& ctx) {
  try {
    return TrainImpl(corpus, spec, recipe, train_indices, test_indices, seeds, out_paths, ctx);
  } catch (const std::exception& e) {
    return TorchFailure("training a language model", e);
  }
}

absl::Status ComputeTokenSignalsMany(
    const std::vector<std::string>& model_paths, const LmSpec& spec, const TokenizedCorpus& corpus,
    const std::vector<int64_t>& indices, bool with_stats, int batch_size, const TrainContext& ctx,
    const std::function<absl::Status(int model, attacks::TokenSignals signals)>& done) {
  try {
    return SignalsImpl(model_paths, spec, corpus, indices, with_stats, batch_size, ctx, done);
  } catch (const std::exception& e) {
    return TorchFailure("computing token signals", e);
  }
}

}  // namespace mia::training
