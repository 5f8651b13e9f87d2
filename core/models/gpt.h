// gpt: a GPT-2-style causal language model (Radford et al. 2019; the layout
// of nanoGPT and of Hugging Face's GPT2LMHeadModel), optional LoRA adapters
// (Hu et al. 2021) on its linear layers, and loading of GPT-2 checkpoints in
// the Hugging Face layout (config.json + model.safetensors) from a folder.
//
// Parameter names are Hugging Face's ("transformer.h.0.attn.c_attn.weight"),
// so a checkpoint maps one to one. One difference of layout: mia keeps every
// linear weight as [out, in] (torch::nn::Linear, as the rest of core/models);
// Hugging Face's Conv1D stores [in, out], and the loader transposes it. The
// output head is tied to the token embedding (no lm_head.weight of its own).
//
// Not thread-safe: a model belongs to the thread that runs it.
// LibTorch header: include only from core/models, core/training and their tests.
#ifndef MIA_CORE_MODELS_GPT_H_
#define MIA_CORE_MODELS_GPT_H_

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/models/classifier.h"
#include "core/models/layers.h"

namespace mia::models {

struct GptConfig {
  int64_t n_layer = 2;           // transformer blocks
  int64_t n_head = 2;            // attention heads per block; n_embd % n_head == 0
  int64_t n_embd = 64;           // width of the residual stream
  int64_t block_size = 64;       // longest sequence: rows of the position table wpe
  int64_t vocab_size = 0;        // token ids [0, vocab_size): rows of wte and the head
  double dropout = 0.0;          // on embeddings, attention weights and residual branches
  double layer_norm_eps = 1e-5;  // every LayerNorm
};

// The GPT-2 sizes by Hugging Face name: gpt2 (124M: 12 layers, 12 heads,
// 768 wide), gpt2-medium (24/16/1024), gpt2-large (36/20/1280), gpt2-xl
// (48/25/1600); block 1024, vocabulary 50257. InvalidArgument otherwise.
absl::StatusOr<GptConfig> Gpt2Size(const std::string& name);

// InvalidArgument naming the field: positive sizes, n_embd % n_head == 0,
// dropout in [0, 1).
absl::Status ValidateGptConfig(const GptConfig& config);

struct LoraConfig {
  int64_t rank = 0;    // r; 0: no adapters
  double alpha = 8;    // the adapter's output is scaled by alpha / rank
  double dropout = 0;  // on the adapter's input only
  // Module names matched by suffix as Hugging Face peft does: "c_proj"
  // matches attn.c_proj and mlp.c_proj, "attn.c_proj" only the former.
  std::vector<std::string> target_modules = {"c_attn"};
};

// A linear layer y = x W^T + b with an optional low-rank adapter:
// y += (alpha / r) * B A dropout(x), A [r, in], B [out, r].
class GptLinearImpl : public torch::nn::Module {
 public:
  GptLinearImpl(int64_t in, int64_t out, double init_std, Initializer& init);

  torch::Tensor weight;     // [out, in]
  torch::Tensor bias;       // [out]
  torch::Tensor lora_a;     // [r, in], registered as "lora_A" when adapted
  torch::Tensor lora_b;     // [out, r], registered as "lora_B" when adapted
  double lora_scale = 0;    // alpha / r
  double lora_dropout = 0;  // on the adapter's input
};
TORCH_MODULE(GptLinear);

class Gpt : public torch::nn::Module {
 public:
  // Weights as GPT-2 initializes them: normal(0, 0.02) for embeddings and
  // linear weights, residual projections (c_proj) at 0.02 / sqrt(2 n_layer),
  // zero biases, LayerNorm 1 and 0. Initializer::None(): zeros, to load into.
  Gpt(const GptConfig& config, Initializer& init);

  // idx [B, T] int64 token ids, T <= block_size -> logits [B, T, vocab_size].
  // Causal: position t sees positions <= t only, so right padding never
  // changes the logits of the real positions before it.
  torch::Tensor forward(const torch::Tensor& idx);

  // Adds LoRA adapters (A from init, kaiming-uniform as peft; B zero, so the
  // model is unchanged) to every linear layer a target matches, and freezes
  // everything else (requires_grad false). InvalidArgument for rank < 0, a
  // target that matches nothing, or adapters already present.
  absl::Status AddLora(const LoraConfig& lora, Initializer& init);
  bool has_lora() const { return lora_rank_ > 0; }

  // Every parameter by name in registration order (adapters included, as
  // "<module>.lora_A" / "<module>.lora_B").
  std::vector<NamedTensor> State() const;
  // The adapters only.
  std::vector<NamedTensor> LoraState() const;
  // State without adapters, each adapted weight replaced by
  // W + (alpha / r) B A: the plain model that computes what this one does
  // (in eval mode). Fresh tensors; this model is unchanged.
  std::vector<NamedTensor> MergedState() const;

  // Dropout masks in training mode come from this CPU generator, never from
  // LibTorch's global one; required before training with dropout.
  void set_dropout_generator(torch::Generator generator) { generator_ = generator; }

  const GptConfig& config() const { return config_; }

 private:
  struct Block {
    torch::Tensor ln_1_weight, ln_1_bias, ln_2_weight, ln_2_bias;  // [C] each
    GptLinear c_attn{nullptr}, attn_c_proj{nullptr}, c_fc{nullptr}, mlp_c_proj{nullptr};
  };

  torch::Tensor Linear(const GptLinear& layer, const torch::Tensor& x);
  torch::Tensor Dropout(const torch::Tensor& x, double p);
  torch::Tensor LayerNorm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b);
  torch::Tensor Attention(const Block& block, const torch::Tensor& x);
  // (full name, layer) of every linear layer, in order.
  std::vector<std::pair<std::string, GptLinear>> Linears() const;

  GptConfig config_;
  torch::Tensor wte_;                      // [V, C], tied to the output head
  torch::Tensor wpe_;                      // [block_size, C]
  torch::Tensor ln_f_weight_, ln_f_bias_;  // [C] each
  std::vector<Block> blocks_;
  int64_t lora_rank_ = 0;
  std::optional<torch::Generator> generator_;
};

// Every parameter's name and shape of a plain GPT of `config` (no adapters),
// in registration order, as Gpt::State() lists them: without building one
// (a gpt2-xl would be 6 GB of zeros).
std::vector<std::pair<std::string, std::vector<int64_t>>> GptParameterShapes(
    const GptConfig& config);

// Copies `source` tensors into `model`'s parameters by name (no autograd).
// Every parameter of the model except adapters must be present with its
// shape (InvalidArgument naming the first that is not); extra names are
// InvalidArgument too.
absl::Status LoadGptState(const std::vector<NamedTensor>& source, Gpt& model);

// A GPT-2 checkpoint in the Hugging Face layout, read into memory: its
// config and its weights in mia's names and layout (float32, CPU).
struct Gpt2Checkpoint {
  GptConfig config;  // dropout 0
  std::vector<NamedTensor> weights;
  std::string sha256;  // of model.safetensors, hex
};

// Reads folder/config.json and folder/model.safetensors (no network, ever).
// Tensor names with or without the "transformer." prefix; lm_head.weight
// absent or equal to the token embedding; attn.bias / attn.masked_bias
// (causal-mask buffers) ignored; F32, F16 and BF16 data read as float32;
// Conv1D weights transposed to [out, in]. NotFound for missing files;
// InvalidArgument naming the tensor and its byte offset for a bad or missing
// tensor, a wrong shape or type, or an unknown name.
absl::StatusOr<Gpt2Checkpoint> ReadGpt2Checkpoint(const std::string& folder);

}  // namespace mia::models

#endif  // MIA_CORE_MODELS_GPT_H_
