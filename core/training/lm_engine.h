// The language-model engine's torch-free interface: train GPT-class causal
// LMs on subsets of a tokenized corpus (from scratch or from a GPT-2
// checkpoint, fully or with LoRA), save them as artifacts, and compute each
// text's per-token log-probs (and the next-token distribution's mean and
// variance of log p) from saved models. LibTorch stays behind this header.
//
// Thread-safety and lanes as core/training/engine.h.
#ifndef MIA_CORE_TRAINING_LM_ENGINE_H_
#define MIA_CORE_TRAINING_LM_ENGINE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/attacks/token_signals.h"
#include "core/training/engine.h"

namespace mia::training {

// Texts as token ids (no special tokens); the model sees [bos, x_1..x_{T-1}]
// and predicts x_1..x_T. A text longer than the model's block_size is
// truncated to its first block_size tokens.
struct TokenizedCorpus {
  std::vector<std::vector<int32_t>> tokens;  // [texts][T], T >= 1
  int32_t vocab_size = 0;
  int32_t bos_id = 0;  // the tokenizer's end-of-text id
};

// LoRA adapters (Hu et al. 2021) on the named Linear/Conv1D modules; rank 0: off.
struct LoraSpec {
  int rank = 0;
  double alpha = 8;                                      // scale = alpha / rank
  double dropout = 0.0;                                  // on the adapter's input
  std::vector<std::string> target_modules = {"c_attn"};  // c_attn | c_proj | c_fc
};

// From scratch, architecture "gpt" takes n_layer/n_head/n_embd as given and
// a GPT-2 size name (gpt2, gpt2-medium, gpt2-large, gpt2-xl) takes that
// size's; block_size is then the position table and the context. With a
// checkpoint, the architecture is the checkpoint's (config.json: n_layer,
// n_head, n_embd, n_positions, vocab_size; the fields here are ignored) and
// block_size only caps the context (min(block_size, n_positions)). LoRA
// needs a checkpoint (rank > 0 without one is InvalidArgument).
struct LmSpec {
  std::string architecture = "gpt";  // gpt | gpt2 | gpt2-medium | gpt2-large | gpt2-xl
  int n_layer = 2, n_head = 2, n_embd = 64, block_size = 64;
  double dropout = 0.0;
  int vocab_size = 0;      // 0: the corpus's; with a checkpoint, 0 or its vocab_size
  std::string checkpoint;  // Hugging Face GPT-2 folder (config.json, model.safetensors); empty:
                           // from scratch
  LoraSpec lora;
};

// AdamW with weight decay on the weight matrices of c_attn, c_proj, c_fc and
// LoRA's A and B only: not on biases, LayerNorm gains or the embeddings (wte
// is also the output head, and decay would shrink rare tokens' rows for being
// rare), as minGPT does. The loss is the mean cross-entropy over a batch's
// text tokens (padding masked).
struct LmRecipe {
  double learning_rate = 1e-3;  // AdamW, peak (after warm-up)
  double weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  int epochs = 1;
  int batch_size = 8;            // texts per step
  double warmup_fraction = 0.1;  // linear warm-up over this fraction of the steps, then cosine to 0
  double grad_clip = 1.0;        // global L2 norm; 0: none
};

// Trains K = seeds.size() models, model k on corpus texts train_indices[k],
// writing model k to out_paths[k] atomically. test_indices are evaluated
// (ModelReport: loss = mean per-token cross-entropy, accuracy = next-token
// accuracy). Errors as TrainModels.
//
// Seeded per model, never from global RNG state: seeds[k] gives the
// initialization (and LoRA's A), each epoch's batches and the dropout masks.
// Batches are length-bucketed: the texts are shuffled, cut into windows of
// 32 batches, sorted by length within a window and cut into batches, whose
// order is shuffled again, so padding stays small. On a CPU with T > 1
// intra-op threads the models train in min(T, K) lanes of one thread each, as
// TrainModels; progress and model_saved are serialized.
//
// The artifact is a LibTorch archive of named tensors (never a pickle): the
// full model under Hugging Face's names (linear weights [out, in]), or, with
// LoRA, only the adapters ("<module>.lora_A" [r, in], "<module>.lora_B"
// [out, r]) plus "mia.lora.base_sha256" (uint8, the 64 hex digits of the base
// model.safetensors), "mia.lora.alpha" (float64 [1]) and
// "mia.lora.base_path" (spec.checkpoint as uint8, provenance only): the base
// is read from spec.checkpoint when the model is loaded and must hash the same.
absl::StatusOr<std::vector<ModelReport>> TrainLanguageModels(
    const TokenizedCorpus& corpus, const LmSpec& spec, const LmRecipe& recipe,
    const std::vector<std::vector<int64_t>>& train_indices,
    const std::vector<int64_t>& test_indices, const std::vector<uint64_t>& seeds,
    const std::vector<std::string>& out_paths, const TrainContext& ctx);

// Per-token signals of saved models on corpus texts `indices`, no gradients,
// batched (memory bounded by batch x block_size x vocabulary, never by all
// texts: about 3 float32 copies of [batch_size, T, V] at a time, e.g. 4.8 GB
// for GPT-2's vocabulary at batch 8 and T 1024, plus the model). `done(m, signals)` gets model m's TokenSignals (models = 1, points =
// indices.size(), mean/var filled when with_stats), once per model, never
// concurrently; models run in lanes on a CPU as ComputeLogitsMany. lp at
// scored position t is log_softmax(logits at t - 1)[x_t]; mean and var are
// computed in float32 from the same log_softmax, var clamped at 0. A LoRA
// artifact whose base checkpoint no longer hashes the same is
// FailedPrecondition; a missing artifact NotFound.
absl::Status ComputeTokenSignalsMany(
    const std::vector<std::string>& model_paths, const LmSpec& spec, const TokenizedCorpus& corpus,
    const std::vector<int64_t>& indices, bool with_stats, int batch_size, const TrainContext& ctx,
    const std::function<absl::Status(int model, attacks::TokenSignals signals)>& done);

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_LM_ENGINE_H_
