// gpt: the model top to bottom (embeddings, blocks of causal self-attention
// and MLP, final LayerNorm, tied head), LoRA, and the GPT-2 checkpoint loader.
#include "core/models/gpt.h"

#include <cerrno>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/file_util.h"
#include "core/common/sha256.h"
#include "core/models/safetensors.h"

namespace mia::models {
namespace {

constexpr double kInitStd = 0.02;  // GPT-2's initializer_range

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape.vec(), ", "), "]");
}

// A plain holder module, so that parameters get Hugging Face's dotted names.
std::shared_ptr<torch::nn::Module> Holder(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

}  // namespace

absl::StatusOr<GptConfig> Gpt2Size(const std::string& name) {
  struct Size {
    const char* name;
    int64_t n_layer, n_head, n_embd;
  };
  constexpr Size kSizes[] = {{"gpt2", 12, 12, 768},
                             {"gpt2-medium", 24, 16, 1024},
                             {"gpt2-large", 36, 20, 1280},
                             {"gpt2-xl", 48, 25, 1600}};
  for (const Size& s : kSizes) {
    if (name == s.name) {
      GptConfig c;
      c.n_layer = s.n_layer;
      c.n_head = s.n_head;
      c.n_embd = s.n_embd;
      c.block_size = 1024;
      c.vocab_size = 50257;
      return c;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown GPT-2 size '", name, "' (gpt2, gpt2-medium, gpt2-large, gpt2-xl)"));
}

absl::Status ValidateGptConfig(const GptConfig& c) {
  for (auto [field, value] : {std::pair<const char*, int64_t>{"n_layer", c.n_layer},
                              {"n_head", c.n_head},
                              {"n_embd", c.n_embd},
                              {"block_size", c.block_size},
                              {"vocab_size", c.vocab_size}}) {
    if (value <= 0) return absl::InvalidArgumentError(absl::StrCat(field, " must be positive"));
  }
  if (c.n_embd % c.n_head != 0) {
    return absl::InvalidArgumentError("n_embd must be divisible by n_head");
  }
  if (!(c.dropout >= 0.0 && c.dropout < 1.0)) {
    return absl::InvalidArgumentError("dropout must be in [0, 1)");
  }
  if (!(c.layer_norm_eps > 0.0)) return absl::InvalidArgumentError("layer_norm_eps must be > 0");
  return absl::OkStatus();
}

GptLinearImpl::GptLinearImpl(int64_t in, int64_t out, double init_std, Initializer& init) {
  weight = register_parameter("weight", init.Normal({out, in}, init_std));
  bias = register_parameter("bias", torch::zeros({out}));
}

Gpt::Gpt(const GptConfig& config, Initializer& init) : config_(config) {
  const int64_t C = config.n_embd;
  const double proj_std = kInitStd / std::sqrt(2.0 * static_cast<double>(config.n_layer));
  auto transformer = Holder(*this, "transformer");
  auto wte = Holder(*transformer, "wte");
  wte_ = wte->register_parameter("weight", init.Normal({config.vocab_size, C}, kInitStd));
  auto wpe = Holder(*transformer, "wpe");
  wpe_ = wpe->register_parameter("weight", init.Normal({config.block_size, C}, kInitStd));
  auto h = Holder(*transformer, "h");
  for (int64_t i = 0; i < config.n_layer; ++i) {
    auto block = Holder(*h, std::to_string(i));
    Block b;
    auto ln_1 = Holder(*block, "ln_1");
    b.ln_1_weight = ln_1->register_parameter("weight", torch::ones({C}));
    b.ln_1_bias = ln_1->register_parameter("bias", torch::zeros({C}));
    auto attn = Holder(*block, "attn");
    b.c_attn = attn->register_module("c_attn", GptLinear(C, 3 * C, kInitStd, init));
    b.attn_c_proj = attn->register_module("c_proj", GptLinear(C, C, proj_std, init));
    auto ln_2 = Holder(*block, "ln_2");
    b.ln_2_weight = ln_2->register_parameter("weight", torch::ones({C}));
    b.ln_2_bias = ln_2->register_parameter("bias", torch::zeros({C}));
    auto mlp = Holder(*block, "mlp");
    b.c_fc = mlp->register_module("c_fc", GptLinear(C, 4 * C, kInitStd, init));
    b.mlp_c_proj = mlp->register_module("c_proj", GptLinear(4 * C, C, proj_std, init));
    blocks_.push_back(std::move(b));
  }
  auto ln_f = Holder(*transformer, "ln_f");
  ln_f_weight_ = ln_f->register_parameter("weight", torch::ones({C}));
  ln_f_bias_ = ln_f->register_parameter("bias", torch::zeros({C}));
}

torch::Tensor Gpt::Dropout(const torch::Tensor& x, double p) {
  if (!is_training() || p <= 0.0) return x;
  TORCH_CHECK(generator_.has_value(), "dropout in training needs a dropout generator");
  return x * DropoutMask(x.sizes().vec(), p, *generator_, x.device());
}

torch::Tensor Gpt::LayerNorm(const torch::Tensor& x, const torch::Tensor& w,
                             const torch::Tensor& b) {
  return torch::layer_norm(x, {config_.n_embd}, w, b, config_.layer_norm_eps);
}

torch::Tensor Gpt::Linear(const GptLinear& layer, const torch::Tensor& x) {
  torch::Tensor y = torch::linear(x, layer->weight, layer->bias);  // [..., out]
  if (!layer->lora_a.defined()) return y;
  torch::Tensor a = torch::linear(Dropout(x, layer->lora_dropout), layer->lora_a);  // [..., r]
  return y + torch::linear(a, layer->lora_b) * layer->lora_scale;                   // [..., out]
}

torch::Tensor Gpt::Attention(const Block& block, const torch::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), C = config_.n_embd;
  const int64_t H = config_.n_head, D = C / H;
  std::vector<torch::Tensor> qkv = Linear(block.c_attn, x).split(C, 2);  // 3 x [B, T, C]
  torch::Tensor q = qkv[0].view({B, T, H, D}).transpose(1, 2);           // [B, H, T, D]
  torch::Tensor k = qkv[1].view({B, T, H, D}).transpose(1, 2);           // [B, H, T, D]
  torch::Tensor v = qkv[2].view({B, T, H, D}).transpose(1, 2);           // [B, H, T, D]
  torch::Tensor att = torch::matmul(q, k.transpose(-2, -1)) *
                      (1.0 / std::sqrt(static_cast<double>(D)));  // [B, H, T, T]
  torch::Tensor future =
      torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(x.device()))
          .triu(1);                                                        // [T, T]
  att = att.masked_fill(future, -std::numeric_limits<float>::infinity());  // [B, H, T, T]
  att = Dropout(torch::softmax(att, -1), config_.dropout);                 // [B, H, T, T]
  torch::Tensor y = torch::matmul(att, v);                                 // [B, H, T, D]
  y = y.transpose(1, 2).contiguous().view({B, T, C});                      // [B, T, C]
  return Dropout(Linear(block.attn_c_proj, y), config_.dropout);           // [B, T, C]
}

torch::Tensor Gpt::forward(const torch::Tensor& idx) {
  const int64_t T = idx.size(1);
  TORCH_CHECK(T <= config_.block_size, "sequence longer than block_size");
  torch::Tensor pos = torch::arange(T, idx.options().dtype(torch::kLong));      // [T]
  torch::Tensor x = torch::embedding(wte_, idx) + torch::embedding(wpe_, pos);  // [B, T, C]
  x = Dropout(x, config_.dropout);                                              // [B, T, C]
  for (const Block& b : blocks_) {
    x = x + Attention(b, LayerNorm(x, b.ln_1_weight, b.ln_1_bias));              // [B, T, C]
    torch::Tensor m = Linear(b.c_fc, LayerNorm(x, b.ln_2_weight, b.ln_2_bias));  // [B, T, 4C]
    m = torch::gelu(m, "tanh");                                 // [B, T, 4C], GPT-2's "gelu_new"
    x = x + Dropout(Linear(b.mlp_c_proj, m), config_.dropout);  // [B, T, C]
  }
  x = LayerNorm(x, ln_f_weight_, ln_f_bias_);  // [B, T, C]
  return torch::linear(x, wte_);               // [B, T, V]
}

std::vector<std::pair<std::string, GptLinear>> Gpt::Linears() const {
  std::vector<std::pair<std::string, GptLinear>> out;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const std::string prefix = absl::StrCat("transformer.h.", i, ".");
    out.emplace_back(prefix + "attn.c_attn", blocks_[i].c_attn);
    out.emplace_back(prefix + "attn.c_proj", blocks_[i].attn_c_proj);
    out.emplace_back(prefix + "mlp.c_fc", blocks_[i].c_fc);
    out.emplace_back(prefix + "mlp.c_proj", blocks_[i].mlp_c_proj);
  }
  return out;
}

absl::Status Gpt::AddLora(const LoraConfig& lora, Initializer& init) {
  if (lora.rank < 0) return absl::InvalidArgumentError("lora rank must be >= 0");
  if (lora.rank == 0) return absl::OkStatus();
  if (lora_rank_ > 0) return absl::InvalidArgumentError("the model already has LoRA adapters");
  if (!(lora.dropout >= 0.0 && lora.dropout < 1.0)) {
    return absl::InvalidArgumentError("lora dropout must be in [0, 1)");
  }
  if (!std::isfinite(lora.alpha)) return absl::InvalidArgumentError("lora alpha must be finite");
  if (lora.target_modules.empty()) {
    return absl::InvalidArgumentError("lora target_modules must not be empty");
  }
  auto linears = Linears();
  for (const std::string& target : lora.target_modules) {
    bool matched = false;
    for (const auto& [name, layer] : linears) {
      if (name == target || absl::EndsWith(name, "." + target)) matched = true;
    }
    if (!matched) {
      return absl::InvalidArgumentError(absl::StrCat("lora target module '", target,
                                                     "' matches no layer (c_attn, c_proj, c_fc)"));
    }
  }
  for (torch::Tensor& p : parameters()) p.requires_grad_(false);
  for (auto& [name, layer] : linears) {
    bool hit = false;
    for (const std::string& target : lora.target_modules) {
      if (name == target || absl::EndsWith(name, "." + target)) hit = true;
    }
    if (!hit) continue;
    const int64_t in = layer->weight.size(1), out = layer->weight.size(0);
    const torch::Device device = layer->weight.device();
    // kaiming_uniform(a = sqrt(5)) on [r, in]: bound 1 / sqrt(in), as peft.
    layer->lora_a = layer->register_parameter(
        "lora_A",
        init.Uniform({lora.rank, in}, 1.0 / std::sqrt(static_cast<double>(in))).to(device));
    layer->lora_b = layer->register_parameter(
        "lora_B", torch::zeros({out, lora.rank}, torch::TensorOptions().device(device)));
    layer->lora_scale = lora.alpha / static_cast<double>(lora.rank);
    layer->lora_dropout = lora.dropout;
  }
  lora_rank_ = lora.rank;
  return absl::OkStatus();
}

std::vector<NamedTensor> Gpt::State() const {
  std::vector<NamedTensor> out;
  for (const auto& item : named_parameters(true)) out.push_back({item.key(), item.value(), false});
  return out;
}

std::vector<NamedTensor> Gpt::LoraState() const {
  std::vector<NamedTensor> out;
  for (const NamedTensor& t : State()) {
    if (absl::EndsWith(t.name, ".lora_A") || absl::EndsWith(t.name, ".lora_B")) out.push_back(t);
  }
  return out;
}

std::vector<NamedTensor> Gpt::MergedState() const {
  torch::NoGradGuard no_grad;
  std::map<std::string, GptLinear> adapted;
  for (const auto& [name, layer] : Linears()) {
    if (layer->lora_a.defined()) adapted.emplace(name + ".weight", layer);
  }
  std::vector<NamedTensor> out;
  for (const NamedTensor& t : State()) {
    if (absl::EndsWith(t.name, ".lora_A") || absl::EndsWith(t.name, ".lora_B")) continue;
    torch::Tensor value = t.value.detach().clone();
    auto it = adapted.find(t.name);
    if (it != adapted.end()) {
      const GptLinear& l = it->second;
      value.add_(torch::mm(l->lora_b, l->lora_a), l->lora_scale);  // [out, in]
    }
    out.push_back({t.name, value, false});
  }
  return out;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> GptParameterShapes(const GptConfig& c) {
  const int64_t C = c.n_embd;
  std::vector<std::pair<std::string, std::vector<int64_t>>> out = {
      {"transformer.wte.weight", {c.vocab_size, C}}, {"transformer.wpe.weight", {c.block_size, C}}};
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = absl::StrCat("transformer.h.", i, ".");
    out.push_back({p + "ln_1.weight", {C}});
    out.push_back({p + "ln_1.bias", {C}});
    out.push_back({p + "attn.c_attn.weight", {3 * C, C}});
    out.push_back({p + "attn.c_attn.bias", {3 * C}});
    out.push_back({p + "attn.c_proj.weight", {C, C}});
    out.push_back({p + "attn.c_proj.bias", {C}});
    out.push_back({p + "ln_2.weight", {C}});
    out.push_back({p + "ln_2.bias", {C}});
    out.push_back({p + "mlp.c_fc.weight", {4 * C, C}});
    out.push_back({p + "mlp.c_fc.bias", {4 * C}});
    out.push_back({p + "mlp.c_proj.weight", {C, 4 * C}});
    out.push_back({p + "mlp.c_proj.bias", {C}});
  }
  out.push_back({"transformer.ln_f.weight", {C}});
  out.push_back({"transformer.ln_f.bias", {C}});
  return out;
}

absl::Status LoadGptState(const std::vector<NamedTensor>& source, Gpt& model) {
  std::map<std::string, const torch::Tensor*> by_name;
  for (const NamedTensor& t : source) by_name.emplace(t.name, &t.value);
  torch::NoGradGuard no_grad;
  size_t used = 0;
  for (const NamedTensor& t : model.State()) {
    const bool adapter = absl::EndsWith(t.name, ".lora_A") || absl::EndsWith(t.name, ".lora_B");
    auto it = by_name.find(t.name);
    if (it == by_name.end()) {
      if (adapter) continue;
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' is missing"));
    }
    if (it->second->sizes() != t.value.sizes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", t.name, "' has shape ", ShapeString(it->second->sizes()),
                       ", the model expects ", ShapeString(t.value.sizes())));
    }
    torch::Tensor target = t.value;
    target.copy_(*it->second);
    ++used;
  }
  if (used != by_name.size()) {
    std::set<std::string> known;
    for (const NamedTensor& t : model.State()) known.insert(t.name);
    for (const auto& [name, value] : by_name) {
      if (known.count(name) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", name, "' is not part of this model"));
      }
    }
  }
  return absl::OkStatus();
}

// The checkpoint loader ------------------------------------------------------

namespace {

bool IsConv1dWeight(const std::string& name) {
  return absl::EndsWith(name, ".attn.c_attn.weight") ||
         absl::EndsWith(name, ".attn.c_proj.weight") || absl::EndsWith(name, ".mlp.c_fc.weight") ||
         absl::EndsWith(name, ".mlp.c_proj.weight");
}

bool IsIgnoredBuffer(const std::string& name) {
  return absl::EndsWith(name, ".attn.bias") || absl::EndsWith(name, ".attn.masked_bias");
}

// Reads one stored tensor as float32 [shape].
absl::StatusOr<torch::Tensor> ReadStored(std::ifstream& in, const std::string& path,
                                         const std::string& name, const StoredTensor& t) {
  torch::ScalarType type;
  switch (t.type) {
    case StoredType::kF32:
      type = torch::kFloat32;
      break;
    case StoredType::kF16:
      type = torch::kFloat16;
      break;
    case StoredType::kBF16:
      type = torch::kBFloat16;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("safetensors ", path, ": tensor '", name,
                                                     "' at byte offset ", t.begin, " has dtype ",
                                                     t.dtype, " (F32, F16 or BF16 expected)"));
  }
  torch::Tensor raw = torch::empty(t.shape, torch::TensorOptions().dtype(type));
  in.seekg(t.begin);
  if (!in.read(static_cast<char*>(raw.data_ptr()), static_cast<std::streamsize>(t.bytes))) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors ", path, ": tensor '", name,
                                                   "' at byte offset ", t.begin,
                                                   " cannot be read (truncated file?)"));
  }
  return raw.to(torch::kFloat32);
}

}  // namespace

absl::StatusOr<Gpt2Checkpoint> ReadGpt2Checkpoint(const std::string& folder) {
  const std::string config_path = folder + "/config.json";
  const std::string weights_path = folder + "/model.safetensors";
  absl::StatusOr<Gpt2FileConfig> file_config = ReadGpt2Config(config_path);
  if (!file_config.ok()) return file_config.status();
  absl::StatusOr<SafetensorsIndex> index = ReadSafetensorsIndex(weights_path);
  if (!index.ok()) return index.status();
  absl::StatusOr<std::string> sha = Sha256OfFile(weights_path);
  if (!sha.ok()) return sha.status();

  Gpt2Checkpoint out;
  out.sha256 = *sha;
  GptConfig& c = out.config;
  c.n_layer = file_config->n_layer;
  c.n_head = file_config->n_head;
  c.n_embd = file_config->n_embd;
  c.block_size = file_config->n_positions;
  c.vocab_size = file_config->vocab_size;
  c.layer_norm_eps = file_config->layer_norm_epsilon;
  c.dropout = 0.0;
  if (absl::Status s = ValidateGptConfig(c); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": ", s.message()));
  }

  // The model's own names and shapes are what the checkpoint must provide.
  std::map<std::string, std::string> stored_name;  // mia name -> name in the file
  for (const auto& [name, t] : index->tensors) {
    const std::string full = absl::StartsWith(name, "transformer.") || name == "lm_head.weight"
                                 ? name
                                 : "transformer." + name;
    if (!stored_name.emplace(full, name).second) {
      return absl::InvalidArgumentError(absl::StrCat("safetensors ", weights_path, ": tensor '",
                                                     name, "' appears with and without prefix"));
    }
  }
  std::ifstream in(weights_path, std::ios::binary);
  if (!in) return FileErrnoStatus(errno, weights_path, "open");
  std::set<std::string> used;
  for (const auto& [param, shape] : GptParameterShapes(c)) {
    auto it = stored_name.find(param);
    if (it == stored_name.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors ", weights_path, ": tensor '", param, "' is missing"));
    }
    const StoredTensor& t = index->tensors.at(it->second);
    const bool conv1d = IsConv1dWeight(param);
    std::vector<int64_t> expected = shape;
    if (conv1d) std::swap(expected[0], expected[1]);  // Conv1D: [in, out]
    if (t.shape != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "safetensors ", weights_path, ": tensor '", it->second, "' at byte offset ", t.begin,
          " has shape ", ShapeString(t.shape), ", config.json implies ", ShapeString(expected)));
    }
    absl::StatusOr<torch::Tensor> value = ReadStored(in, weights_path, it->second, t);
    if (!value.ok()) return value.status();
    torch::Tensor v = conv1d ? value->t().contiguous() : *value;
    out.weights.push_back({param, v, false});
    used.insert(param);
  }
  for (const auto& [full, name] : stored_name) {
    if (used.count(full) > 0 || IsIgnoredBuffer(full)) continue;
    const StoredTensor& t = index->tensors.at(name);
    if (full == "lm_head.weight") {
      // Tied: the head must be the token embedding itself.
      absl::StatusOr<torch::Tensor> head = ReadStored(in, weights_path, name, t);
      if (!head.ok()) return head.status();
      const torch::Tensor& wte = out.weights[0].value;  // registration order: wte first
      if (head->sizes() != wte.sizes() || !torch::equal(*head, wte)) {
        return absl::InvalidArgumentError(
            absl::StrCat("safetensors ", weights_path, ": tensor 'lm_head.weight' at byte offset ",
                         t.begin, " is not tied to the token embedding"));
      }
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat("safetensors ", weights_path, ": tensor '", name,
                                                   "' at byte offset ", t.begin,
                                                   " is not part of a GPT-2 model"));
  }
  return out;
}

}  // namespace mia::models
