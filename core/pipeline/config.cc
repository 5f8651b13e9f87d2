#include "core/pipeline/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/attacks/registry.h"
#include "core/common/quote.h"
#include "core/common/status_macros.h"
#include "core/common/yaml_util.h"
#include "core/pipeline/splits.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace mia::pipeline {
namespace {

template <typename T>
std::string RangeMessage(T min, T max) {
  return absl::StrCat("must be in [", min, ", ", max, "]");
}

// Lowercase `value` if it is one of `allowed` (compared case-insensitively).
std::optional<std::string> MatchChoice(const std::string& value,
                                       const std::vector<std::string>& allowed) {
  const std::string lower = absl::AsciiStrToLower(value);
  for (const std::string& a : allowed) {
    if (lower == a) return a;
  }
  return std::nullopt;
}

// "auto", "cpu", "cuda" or "cuda:N".
bool IsDevice(const std::string& value) {
  const std::string d = absl::AsciiStrToLower(value);
  if (d == "auto" || d == "cpu" || d == "cuda") return true;
  int index = 0;
  return absl::StartsWith(d, "cuda:") && d.size() > 5 && d.size() < 9 &&
         std::all_of(d.begin() + 5, d.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
         absl::SimpleAtoi(d.substr(5), &index);
}

// One YAML mapping with its key path. Typed getters record which keys were
// read, so that Finish() can reject the rest, and record every problem in the
// shared list instead of stopping at the first: a file with three mistakes
// gets three messages. A getter that refuses a value leaves the default in
// place and marks the key invalid (Valid), so that rules across fields use
// only valid values and one mistake is reported once.
class Section {
 public:
  Section(YAML::Node node, std::string path, std::vector<ConfigProblem>* problems)
      : node_(std::move(node)), path_(std::move(path)), problems_(problems) {}

  bool IsMap() const { return node_ && !node_.IsNull() && node_.IsMap(); }

  bool Has(const std::string& key) const { return node_ && node_.IsMap() && node_[key]; }

  std::string Path(const std::string& key) const {
    return path_.empty() ? key : absl::StrCat(path_, ".", key);
  }

  // False when a getter refused the value of `key` or Add named it.
  bool Valid(const std::string& key) const { return invalid_.count(key) == 0; }

  // A problem with `key` (or, with a suffix such as "[2]", with an element
  // of it), at the key's line when it is present. A problem with an element
  // leaves the list's length valid for rules across fields.
  void Add(const std::string& key, std::string message, const std::string& suffix = "") {
    if (suffix.empty()) invalid_.insert(key);
    problems_->push_back({Path(key) + suffix, std::move(message), Has(key) ? Line(node_[key]) : 0});
  }

  template <typename T>
  bool Get(const std::string& key, T* out) {
    used_.insert(key);
    if (!Has(key)) return true;
    const YAML::Node v = node_[key];
    try {
      if (!v.IsScalar()) throw YAML::Exception(v.Mark(), "not a scalar");
      *out = v.as<T>();
    } catch (const YAML::Exception&) {
      Add(key, absl::StrCat("expected ", TypeName<T>()));
      return false;
    }
    return true;
  }

  template <typename T>
  bool GetInRange(const std::string& key, T* out, T min, T max) {
    T value = *out;
    if (!Get(key, &value)) return false;
    if (!(value >= min && value <= max)) {  // also refuses NaN
      Add(key, RangeMessage(min, max));
      return false;
    }
    *out = value;
    return true;
  }

  bool GetChoice(const std::string& key, std::string* out,
                 const std::vector<std::string>& allowed) {
    std::string value = *out;
    if (!Get(key, &value)) return false;
    const std::optional<std::string> match = MatchChoice(value, allowed);
    if (!match.has_value()) {
      Add(key, absl::StrCat(Quoted(value), " is not one of ", absl::StrJoin(allowed, ", ")));
      return false;
    }
    *out = *match;
    return true;
  }

  bool GetDevice(const std::string& key, std::string* out) {
    std::string value = *out;
    if (!Get(key, &value)) return false;
    if (!IsDevice(value)) {
      Add(key, absl::StrCat(Quoted(value), " is not one of auto, cpu, cuda, cuda:N"));
      return false;
    }
    *out = absl::AsciiStrToLower(value);
    return true;
  }

  // A scalar counts as a list of one. The length is checked against
  // `max_entries` before any entry is converted, so an oversized list costs
  // one message and no work.
  template <typename T>
  bool GetList(const std::string& key, std::vector<T>* out, size_t max_entries) {
    used_.insert(key);
    if (!Has(key)) return true;
    const YAML::Node v = node_[key];
    if (v.IsSequence() && v.size() > max_entries) {
      Add(key, absl::StrCat("must have at most ", max_entries, " entries"));
      return false;
    }
    std::vector<T> values;
    try {
      if (v.IsScalar()) {
        values.push_back(v.as<T>());
      } else if (v.IsSequence()) {
        for (const auto& item : v) values.push_back(item.as<T>());
      } else {
        throw YAML::Exception(v.Mark(), "not a list");
      }
    } catch (const YAML::Exception&) {
      Add(key, absl::StrCat("expected a list of ", TypeName<T>()));
      return false;
    }
    *out = std::move(values);
    return true;
  }

  // A nested mapping; a value that is not one is a problem, and the child
  // then reads as empty.
  Section Child(const std::string& key) {
    used_.insert(key);
    YAML::Node node = Has(key) ? node_[key] : YAML::Node();
    if (node && !node.IsNull() && !node.IsMap()) {
      Add(key, "must be a mapping of keys");
      node = YAML::Node();
    }
    return Section(node, Path(key), problems_);
  }

  // A list of mappings, each a Section named `key[i]`; the length is checked
  // against `max_entries` first. False (and a problem) when it is not a list
  // or too long; an entry that is not a mapping is a problem and reads empty.
  bool GetMapList(const std::string& key, size_t max_entries, std::vector<Section>* out) {
    used_.insert(key);
    if (!Has(key)) return true;
    const YAML::Node v = node_[key];
    if (!v.IsSequence()) {
      Add(key, "expected a list of mappings");
      return false;
    }
    if (v.size() > max_entries) {
      Add(key, absl::StrCat("must have at most ", max_entries, " entries"));
      return false;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string element = absl::StrCat(key, "[", i, "]");
      YAML::Node item = v[i];
      if (!item.IsMap()) {
        Add(key, "must be a mapping of keys", absl::StrCat("[", i, "]"));
        item = YAML::Node();
      }
      out->emplace_back(item, Path(element), problems_);
    }
    return true;
  }
  // A problem found by another parser, recorded as it is.
  void AddProblem(ConfigProblem problem) { problems_->push_back(std::move(problem)); }

  // Marks `key` invalid for rules across fields without a message of its own.
  void Invalidate(const std::string& key) { invalid_.insert(key); }

  // The node of `key` (null when absent), marked as read: for keys parsed by
  // a parser of their own (audit.policy).
  YAML::Node Raw(const std::string& key) {
    used_.insert(key);
    return Has(key) ? node_[key] : YAML::Node();
  }

  // Marks `key` as read without reading it (a key another rule refuses).
  void Use(const std::string& key) { used_.insert(key); }

  void Finish() {
    if (!IsMap()) return;
    std::vector<std::string> known(used_.begin(), used_.end());
    for (const auto& kv : node_) {
      if (!kv.first.IsScalar()) {
        problems_->push_back(
            {path_, "a key must be a plain name, not a list or mapping", Line(kv.first)});
        continue;
      }
      const std::string key = kv.first.Scalar();
      if (used_.count(key) == 0) {
        problems_->push_back(
            {Path(key), absl::StrCat("unknown key; known keys here: ", absl::StrJoin(known, ", ")),
             Line(kv.first)});
      }
    }
  }

 private:
  static int Line(const YAML::Node& n) { return n.Mark().line < 0 ? 0 : n.Mark().line + 1; }
  template <typename T>
  static const char* TypeName() {
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    if constexpr (std::is_integral_v<T>) return "an integer";
    if constexpr (std::is_floating_point_v<T>) return "a number";
    if constexpr (std::is_same_v<T, std::vector<double>>) return "[low, high] pairs";
    return "a string";
  }

  YAML::Node node_;
  std::string path_;
  std::vector<ConfigProblem>* problems_;
  std::set<std::string> used_;
  std::set<std::string> invalid_;
};

// dataset name -> loader format and default location.
struct DatasetDefaults {
  std::string format;
  std::string data_dir;
};

const std::map<std::string, DatasetDefaults>& KnownDatasets() {
  static const auto* const kDatasets = new std::map<std::string, DatasetDefaults>{
      {"fashion-mnist", {"idx", "/usr/share/datasets/fashion-mnist"}},
      {"mnist", {"idx", "data/mnist"}},
      {"cifar10", {"cifar10", "data/cifar-10-batches-bin"}},
      {"cifar100", {"cifar100", "data/cifar-100-binary"}},
      {"purchase100", {"purchase100", "data/dataset_purchase"}},
      {"texas100", {"texas100", "data/texas/100"}},
      {"csv", {"csv", ""}},
      {"npy", {"npy", ""}},
      // Text corpora for language models (docs/datasets.md, "Text").
      {"agnews", {"agnews", "data/ag_news_csv"}},
      {"fortunes", {"fortunes", "/usr/share/games/fortunes"}},
      {"lines", {"lines", ""}},
      {"jsonl", {"jsonl", ""}},
      {"txt-folder", {"txt-folder", ""}},
  };
  return *kDatasets;
}

bool IsTextDataset(const std::string& dataset) {
  return dataset == "agnews" || dataset == "fortunes" || dataset == "lines" ||
         dataset == "jsonl" || dataset == "txt-folder";
}

// The causal language models of train.model_name and their sizes (GPT-2's
// four published sizes; `gpt` takes n_layer, n_head, n_embd from the file).
struct LmSize {
  int n_layer, n_head, n_embd;
};
const std::map<std::string, LmSize>& LmModels() {
  static const auto* const kModels = new std::map<std::string, LmSize>{
      {"gpt", {2, 2, 64}},
      {"gpt2", {12, 12, 768}},
      {"gpt2-medium", {24, 16, 1024}},
      {"gpt2-large", {36, 20, 1280}},
      {"gpt2-xl", {48, 25, 1600}},
  };
  return *kModels;
}

void ParseRun(Section& s, RunConfig* run) {
  s.Get("random_seed", &run->random_seed);
  s.Get("log_dir", &run->log_dir);
  s.Get("time_log", &run->time_log);
  s.GetInRange("num_experiments", &run->num_experiments, 1, kMaxTargets);
  s.GetInRange("threads", &run->threads, 0, 1024);
  if (s.Valid("log_dir") && run->log_dir.empty()) s.Add("log_dir", "must not be empty");
  s.Finish();
}

void ParseData(Section& s, Config* c) {
  DataConfig* data = &c->data;
  std::vector<std::string> names;
  for (const auto& [name, d] : KnownDatasets()) names.push_back(name);
  if (!s.Has("dataset")) {
    s.Add("dataset", absl::StrCat("missing; one of ", absl::StrJoin(names, ", ")));
    s.Use("data_dir");
  } else if (s.GetChoice("dataset", &data->dataset, names)) {
    const DatasetDefaults& d = KnownDatasets().at(data->dataset);
    data->source.format = d.format;
    data->source.path = d.data_dir;
    if (s.Get("data_dir", &data->source.path) && data->source.path.empty()) {
      s.Add("data_dir", absl::StrCat("required for dataset ", data->dataset));
    }
  } else {
    s.Get("data_dir", &data->source.path);
  }
  s.GetChoice("split", &data->source.split, {"train", "test", "all"});
  if (IsTextDataset(data->dataset)) {
    // A language-model audit; train decides the model (ParseTrain).
    LanguageModelConfig& lm = c->lm.emplace();
    s.Get("text_field", &lm.text_field);
    s.Get("label_field", &lm.label_field);
    if (s.Valid("text_field") && lm.text_field.empty()) s.Add("text_field", "must not be empty");
    if ((s.Has("text_field") || s.Has("label_field")) && data->dataset != "jsonl") {
      s.Add(s.Has("text_field") ? "text_field" : "label_field", "only for dataset jsonl");
    }
    // Privacy Meter's keys: texts are always tokenized here, by the tokenizer
    // that train.tokenizer names (data.tokenizer may repeat it).
    bool tokenize = true;
    if (s.Get("tokenize", &tokenize) && !tokenize) {
      s.Add("tokenize", "must be true: a language model reads tokens (train.tokenizer)");
    }
    std::string tokenizer;
    if (s.Get("tokenizer", &tokenizer) && s.Has("tokenizer")) lm.tokenizer = tokenizer;
  } else {
    for (const char* key : {"text_field", "label_field", "tokenize", "tokenizer"}) {
      if (s.Has(key) && s.Valid("dataset")) {
        s.Use(key);
        s.Add(key, "only for text datasets (agnews, fortunes, lines, jsonl, txt-folder)");
      }
    }
  }
  s.GetInRange("label_column", &data->source.label_column, 0, 1 << 20);
  s.Get("header", &data->source.header);
  s.GetChoice("cifar100_labels", &data->source.cifar100_labels, {"fine", "coarse"});
  s.GetInRange<int64_t>("pool_size", &data->pool_size, 0, kMaxRows);
  s.GetInRange<int64_t>("population_size", &data->population_size, 0, kMaxRows);
  s.Get("shuffle", &data->shuffle);
  s.Finish();
}

// train for a causal language model (c->lm is set by ParseData, or here when
// the data section is not a text dataset, so that the keys are still read).
void ParseLmTrain(Section& s, const std::string& model_name, Config* c) {
  LanguageModelConfig& lm = c->lm.has_value() ? *c->lm : c->lm.emplace();
  training::LmSpec& m = lm.spec;
  const LmSize size = LmModels().at(model_name);
  m.architecture = model_name == "gpt" ? "gpt" : "gpt2";
  m.n_layer = size.n_layer;
  m.n_head = size.n_head;
  m.n_embd = size.n_embd;
  m.block_size = model_name == "gpt" ? 64 : 1024;
  // Tokenizer: train's key wins over data's only when they agree (Privacy
  // Meter's files give both, the same).
  const std::string from_data = lm.tokenizer;
  if (s.Get("tokenizer", &lm.tokenizer) && s.Has("tokenizer") && from_data != "bpe" &&
      from_data != lm.tokenizer) {
    s.Add("tokenizer", "differs from data.tokenizer: give one tokenizer");
  }
  if (s.Valid("tokenizer") && lm.tokenizer.empty()) s.Add("tokenizer", "must not be empty");
  s.GetInRange("vocab_size", &lm.vocab_size, 258, kMaxLmVocab);
  if (s.Has("vocab_size") && lm.tokenizer != "bpe") {
    s.Add("vocab_size", "only with tokenizer bpe (a GPT-2 tokenizer brings its own)");
  }
  s.Get("checkpoint", &m.checkpoint);
  if (s.Has("checkpoint") && s.Valid("checkpoint") && m.checkpoint.empty()) {
    s.Add("checkpoint", "must not be empty");
  }
  if (model_name != "gpt" && !s.Has("checkpoint") && lm.tokenizer != "bpe") {
    // Hugging Face's convention, which Privacy Meter's "gpt2" relies on: one
    // folder holds the tokenizer and the weights.
    m.checkpoint = lm.tokenizer;
  }
  if (model_name == "gpt") {
    s.GetInRange("n_layer", &m.n_layer, 1, kMaxLmLayers);
    s.GetInRange("n_head", &m.n_head, 1, kMaxLmHeads);
    s.GetInRange("n_embd", &m.n_embd, 1, kMaxLmWidth);
    if (s.Valid("n_head") && s.Valid("n_embd") && m.n_embd % m.n_head != 0) {
      s.Add("n_embd", absl::StrCat("must be a multiple of n_head (", m.n_head, ")"));
    }
    if (!m.checkpoint.empty()) s.Add("checkpoint", "only for gpt2 models (Hugging Face GPT-2)");
  } else {
    for (const char* key : {"n_layer", "n_head", "n_embd"}) {
      if (s.Has(key)) {
        s.Use(key);
        s.Add(key, absl::StrCat("only for model_name gpt; ", model_name, " has its own size"));
      }
    }
  }
  s.GetInRange("block_size", &m.block_size, 2, kMaxLmBlock);
  s.GetInRange("dropout", &m.dropout, 0.0, 0.95);
  s.GetDevice("device", &c->train_device);
  training::LmRecipe& r = lm.recipe;
  std::string optimizer = "adamw";
  // adamw_torch: Privacy Meter's (Hugging Face Trainer's) name for AdamW.
  s.GetChoice("optimizer", &optimizer, {"adamw", "adamw_torch"});
  s.GetInRange("learning_rate", &r.learning_rate, 1e-12, 100.0);
  s.GetInRange("weight_decay", &r.weight_decay, 0.0, 1.0);
  s.GetInRange("epochs", &r.epochs, 1, kMaxEpochs);
  s.GetInRange("batch_size", &r.batch_size, 1, 1 << 16);
  s.GetInRange("warmup_ratio", &r.warmup_fraction, 0.0, 0.99);
  s.GetInRange("max_grad_norm", &r.grad_clip, 0.0, 1e6);
  Section peft = s.Child("peft");
  if (peft.IsMap()) {
    training::LoraSpec& lora = m.lora;
    std::string type = "lora";
    peft.GetChoice("type", &type, {"lora"});
    lora.rank = 8;  // peft's LoraConfig defaults: r 8, lora_alpha 8, no dropout
    peft.GetInRange("r", &lora.rank, 1, kMaxLoraRank);
    peft.GetInRange("lora_alpha", &lora.alpha, 1e-6, 1e6);
    peft.GetInRange("lora_dropout", &lora.dropout, 0.0, 0.95);
    // GPT-2 keeps its projections as Conv1D ([in, out]); peft needs this
    // true for them and mia always handles the layout, so it is only read.
    bool fan_in_fan_out = true;
    peft.Get("fan_in_fan_out", &fan_in_fan_out);
    if (peft.GetList("target_modules", &lora.target_modules, 3)) {
      std::set<std::string> seen;
      for (size_t i = 0; i < lora.target_modules.size(); ++i) {
        const std::string& t = lora.target_modules[i];
        if (t != "c_attn" && t != "c_proj" && t != "c_fc") {
          peft.Add("target_modules",
                   absl::StrCat(Quoted(t), " is not one of c_attn, c_proj, c_fc"),
                   absl::StrCat("[", i, "]"));
        } else if (!seen.insert(t).second) {
          peft.Add("target_modules", "named twice", absl::StrCat("[", i, "]"));
        }
      }
      if (lora.target_modules.empty()) peft.Add("target_modules", "must name a module");
    }
    peft.Finish();
    if (m.checkpoint.empty() && peft.Valid("r")) {
      s.Add("peft", "LoRA adapts a pretrained model: needs train.checkpoint (a gpt2* model from "
                    "a Hugging Face folder)");
    }
  }
  s.Finish();
}

// A number in (0, max]; the problem names the range.
bool GetPositive(Section& s, const std::string& key, double* out, double max) {
  if (!s.Has(key)) {  // absent: the default stands (it may be "none")
    s.Use(key);
    return true;
  }
  double value = *out;
  if (!s.Get(key, &value)) return false;
  if (!(value > 0 && value <= max)) {  // also refuses NaN
    s.Add(key, absl::StrCat("must be in (0, ", max, "]"));
    return false;
  }
  *out = value;
  return true;
}

// train.dp: DP-SGD (docs/config.md, "DP-SGD"), read once train's model keys
// are (`s` is train).
void ParseDp(Section& s, Config* c) {
  training::DpSgdRecipe& dp = c->recipe.dp;
  Section d = s.Child("dp");
  if (!s.Valid("dp")) return;  // not a mapping
  dp.enabled = true;
  const bool has_sigma = d.Has("noise_multiplier");
  const bool has_target = d.Has("target_epsilon");
  GetPositive(d, "noise_multiplier", &dp.noise_multiplier, kMaxNoiseMultiplier);
  GetPositive(d, "target_epsilon", &dp.target_epsilon, kMaxTargetEpsilon);
  GetPositive(d, "max_grad_norm", &dp.max_grad_norm, kMaxGradNorm);
  if (d.Get("delta", &dp.delta) && !(dp.delta > 0 && dp.delta < 1)) d.Add("delta", "must be in (0, 1)");
  bool poisson = true;
  if (d.Get("poisson", &poisson) && !poisson) {
    d.Add("poisson",
          "only Poisson sampling (true) is supported: the accountant's epsilon holds only for "
          "Poisson batches");
  }
  if (has_sigma && has_target && d.Valid("noise_multiplier") && d.Valid("target_epsilon")) {
    d.Add("target_epsilon", "give noise_multiplier or target_epsilon, not both");
  } else if (!has_sigma && !has_target) {
    d.Add("noise_multiplier", "DP-SGD needs noise_multiplier or target_epsilon");
  }
  if (!has_target) dp.target_epsilon = 0;
  d.Finish();
  if (s.Valid("model_name") && c->model.architecture == "wrn") {
    s.Add("dp",
          "wide ResNets use batch normalization, whose batch statistics mix examples: "
          "per-example gradients (DP-SGD) are undefined; use mlp, cnn, alexnet or vgg16");
  }
  if (c->batched_training.value_or(false)) {
    s.Add("batched", "DP-SGD models train one at a time: leave batched unset or false");
  }
  if (c->recipe.precision != "fp32") {
    s.Add("precision", "DP-SGD trains in fp32 only: leave precision unset or fp32");
  }
}

// Returns whether the model is a language model.
bool ParseTrain(Section& s, Config* c) {
  // A text dataset's default model is the small GPT.
  std::string model_name = c->lm.has_value() ? "gpt" : "mlp";
  std::vector<std::string> names = {"mlp",     "cnn",      "alexnet", "wrn28-1",
                                    "wrn28-2", "wrn28-10", "vgg16"};
  for (const auto& [name, size] : LmModels()) names.push_back(name);
  // Privacy Meter's speedyresnet is its CUDA-only fast CIFAR-10 trainer
  // (hlb-CIFAR10), not an architecture: say so rather than "not one of".
  std::string requested;
  if (s.Has("model_name") && s.Get("model_name", &requested) &&
      absl::AsciiStrToLower(requested) == "speedyresnet") {
    s.Add("model_name",
          "'speedyresnet' (Privacy Meter's CUDA-only fast CIFAR-10 trainer) is not supported; "
          "use wrn28-2 or vgg16 for a CIFAR-sized image model");
  } else {
    s.GetChoice("model_name", &model_name, names);
  }
  if (LmModels().count(model_name) > 0) {
    ParseLmTrain(s, model_name, c);
    return true;
  }
  training::ModelSpec& m = c->model;
  if (model_name.rfind("wrn28-", 0) == 0) {
    m.architecture = "wrn";
    m.depth = 28;
    m.width = std::stoi(model_name.substr(6));
  } else {
    m.architecture = model_name;
    if (model_name == "cnn") m.width = 1;
    if (model_name == "vgg16") m.dropout = 0.5;  // torchvision's VGG classifier dropout
  }
  if (s.GetList("hidden", &m.hidden, kMaxHiddenLayers)) {
    for (size_t i = 0; i < m.hidden.size(); ++i) {
      if (m.hidden[i] < 1 || m.hidden[i] > kMaxHiddenWidth) {
        s.Add("hidden", RangeMessage(1, kMaxHiddenWidth), absl::StrCat("[", i, "]"));
      }
    }
  }
  s.GetChoice("activation", &m.activation, {"tanh", "relu"});
  s.GetInRange("dropout", &m.dropout, 0.0, 0.95);
  if (m.architecture == "cnn") {
    s.GetInRange("width", &m.width, 1, 64);
  } else if (s.Has("width") && s.Valid("model_name")) {
    s.Use("width");
    s.Add("width", "only for model_name cnn");
  }
  s.GetDevice("device", &c->train_device);
  if (s.Has("batched")) {
    bool batched = true;
    if (s.Get("batched", &batched)) c->batched_training = batched;
  }
  training::TrainRecipe& r = c->recipe;
  s.GetInRange("batch_size", &r.batch_size, 1, 1 << 20);
  s.GetChoice("optimizer", &r.optimizer, {"sgd", "adam", "adamw"});
  s.GetChoice("precision", &r.precision, {"fp32", "bf16"});
  s.Get("channels_last", &c->channels_last);
  if (s.Has("data_on_device")) {
    bool on = true;
    if (s.Get("data_on_device", &on)) c->data_on_device = on;
  }
  s.GetInRange("learning_rate", &r.learning_rate, 1e-12, 100.0);
  s.GetInRange("momentum", &r.momentum, 0.0, 0.9999);
  s.Get("nesterov", &r.nesterov);
  s.GetInRange("weight_decay", &r.weight_decay, 0.0, 1.0);
  s.GetInRange("epochs", &r.epochs, 1, kMaxEpochs);
  s.GetChoice("schedule", &r.schedule, {"constant", "cosine"});
  s.GetInRange("warmup_epochs", &r.warmup_epochs, 0, kMaxEpochs);
  s.Get("random_crop", &r.random_crop);
  s.GetInRange("crop_padding", &r.crop_padding, 0, 64);
  s.Get("horizontal_flip", &r.horizontal_flip);
  if (s.GetList("normalize_mean", &r.normalize_mean, kMaxChannels)) {
    for (size_t i = 0; i < r.normalize_mean.size(); ++i) {
      if (!std::isfinite(r.normalize_mean[i])) {
        s.Add("normalize_mean", "must be finite", absl::StrCat("[", i, "]"));
      }
    }
  }
  if (s.GetList("normalize_std", &r.normalize_std, kMaxChannels)) {
    for (size_t i = 0; i < r.normalize_std.size(); ++i) {
      const float v = r.normalize_std[i];
      if (!(v > 0) || !std::isfinite(v)) {
        s.Add("normalize_std", "must be finite and > 0", absl::StrCat("[", i, "]"));
      }
    }
  }
  if (s.Valid("normalize_mean") && s.Valid("normalize_std") &&
      r.normalize_mean.size() != r.normalize_std.size()) {
    s.Add("normalize_std", "must have as many entries as normalize_mean");
  }
  if (s.Valid("epochs") && s.Valid("warmup_epochs") && r.warmup_epochs > 0 &&
      r.warmup_epochs >= r.epochs) {
    s.Add("warmup_epochs", "must be less than epochs");
  }
  if (s.Valid("nesterov") && s.Valid("optimizer") && s.Valid("momentum") && r.nesterov &&
      (r.optimizer != "sgd" || r.momentum == 0)) {
    s.Add("nesterov", "needs optimizer sgd with momentum > 0");
  }
  if (s.Has("dp")) ParseDp(s, c);
  s.Finish();
  return false;
}

// Registry and duplicate checks of attack specs, recorded against `key`
// (each element named when `element_paths`; the single algorithm is not a
// list).
void CheckAttackSpecs(const std::vector<std::string>& specs, Section* s, const std::string& key,
                      bool element_paths) {
  for (const ConfigProblem& p : AttackListProblems(specs, "")) {
    s->Add(key, p.message, element_paths ? p.field : "");
    s->Invalidate(key);  // the reference counts need every attack known, once
  }
}

// ramia: a range audit (RaMIA), at the top level as Privacy Meter writes it,
// or under audit. Keys that belong to another range function are refused.
void ParseRamia(Section& s, audit::RamiaOptions* r) {
  std::string requested;
  if (s.Has("range_function") && s.Get("range_function", &requested) &&
      absl::AsciiStrToLower(requested) == "word_replace") {
    s.Add("range_function",
          "'word_replace' (Privacy Meter's text ranges) is not supported; supported: l2 and "
          "missing_values (tabular rows and images), geometric (images)");
  } else {
    s.GetChoice("range_function", &r->range_function, {"l2", "missing_values", "geometric"});
  }
  // Privacy Meter's keys of its word_replace (text) ranges: documented there,
  // not supported here yet.
  for (const char* key : {"mask_model", "mask_tokenizer", "num_masks"}) {
    if (!s.Has(key)) continue;
    s.Use(key);
    s.Add(key, "belongs to Privacy Meter's word_replace (text) ranges, which are not supported "
               "yet; use range_function l2, missing_values or geometric");
  }
  const bool fn_valid = s.Valid("range_function");
  const std::string& fn = r->range_function;
  s.GetInRange("sample_size", &r->sample_size, 1, kMaxRamiaSampleSize);
  if (s.Get("trim", &r->trim) && !(r->trim >= 0 && r->trim < 0.5)) {
    s.Add("trim", "must be in [0, 0.5): the fraction dropped at each end");
  }
  auto only_for = [&](const char* key, const char* function) {
    if (!s.Has(key)) return false;
    if (fn_valid && fn != function) {
      s.Use(key);
      s.Add(key, absl::StrCat("only for range_function ", function));
      return false;
    }
    return true;
  };
  if (only_for("radius", "l2")) {
    if (s.GetInRange("radius", &r->radius, 0.0, kMaxRamiaRadius) && !(r->radius > 0)) {
      s.Add("radius", "must be > 0");
    }
  } else if (fn_valid && fn == "l2") {
    s.Add("radius", "required for range_function l2: the L2 ball's radius");
  }
  if (only_for("is_categorical", "missing_values")) s.Get("is_categorical", &r->is_categorical);
  if (only_for("num_missing_feats", "missing_values")) {
    s.GetInRange("num_missing_feats", &r->num_missing_feats, 1, kMaxRamiaMissingFeatures);
  }
  if (only_for("col_ranges", "missing_values")) {
    std::vector<std::vector<double>> pairs;
    if (s.GetList("col_ranges", &pairs, kMaxRamiaMissingFeatures)) {
      bool ok = true;
      for (size_t i = 0; i < pairs.size(); ++i) {
        const std::vector<double>& p = pairs[i];
        const std::string at = absl::StrCat("[", i, "]");
        if (p.size() != 2 || !std::isfinite(p[0]) || !std::isfinite(p[1]) || p[0] > p[1]) {
          s.Add("col_ranges", "must be [low, high] with finite low <= high", at);
          ok = false;
        } else if (r->is_categorical && (p[0] != std::floor(p[0]) || p[1] != std::floor(p[1]))) {
          s.Add("col_ranges", "must be integers low..high with is_categorical", at);
          ok = false;
        } else {
          r->col_ranges.emplace_back(p[0], p[1]);
        }
      }
      if (!ok) s.Invalidate("col_ranges");
      if (pairs.empty()) s.Add("col_ranges", "must give one [low, high] per missing feature");
    }
    if (s.Valid("col_ranges") && s.Valid("num_missing_feats")) {
      const int given = static_cast<int>(r->col_ranges.size());
      if (s.Has("num_missing_feats") && r->num_missing_feats != given) {
        s.Add("col_ranges", absl::StrCat("has ", given, " entries; num_missing_feats is ",
                                         r->num_missing_feats,
                                         ": give one [low, high] per missing feature"));
      }
      r->num_missing_feats = given;
      if (s.Valid("col_ranges") && s.Valid("sample_size") && r->is_categorical &&
          audit::CategoricalCombinations(r->col_ranges) < r->sample_size) {
        s.Add("sample_size",
              absl::StrCat("exceeds the ", audit::CategoricalCombinations(r->col_ranges),
                           " distinct categorical values col_ranges allow (the points of a "
                           "range are distinct)"));
      }
    }
  } else if (fn_valid && fn == "missing_values") {
    s.Add("col_ranges",
          "required for range_function missing_values: one [low, high] per missing feature "
          "(the last num_missing_feats features)");
  }
  if (only_for("transformations", "geometric")) {
    if (s.GetList("transformations", &r->transformations, kMaxRamiaTransformations)) {
      for (size_t i = 0; i < r->transformations.size(); ++i) {
        std::optional<std::string> t =
            MatchChoice(r->transformations[i], {"horizontal_flip", "vertical_flip", "rotate"});
        if (!t.has_value()) {
          s.Add("transformations",
                absl::StrCat(Quoted(r->transformations[i]),
                             " is not one of horizontal_flip, vertical_flip, rotate"),
                absl::StrCat("[", i, "]"));
        } else {
          r->transformations[i] = *t;
        }
      }
      const int t = static_cast<int>(r->transformations.size());
      if (t == 0) {
        s.Add("transformations", "must name at least one transformation");
      } else if (!s.Has("sample_size")) {
        r->sample_size = t + 1;  // the centre and each transform
      } else if (s.Valid("sample_size") && r->sample_size != t && r->sample_size != t + 1) {
        s.Add("sample_size",
              absl::StrCat("must be the number of transformations (", t,
                           ") or one more (the centre itself first)"));
      }
    }
  } else if (fn_valid && fn == "geometric") {
    s.Add("transformations",
          "required for range_function geometric: horizontal_flip, vertical_flip, rotate");
  }
  s.Finish();
}

// dp_audit (under audit, or Privacy Meter's top-level section).
void ParseDpAudit(Section& s, DpAuditConfig* d) {
  std::string dataset = d->canary_dataset;
  // cifar10_canary and none: Privacy Meter's names.
  if (s.GetChoice("canary_dataset", &dataset,
                  {"mislabelled", "mislabeled", "cifar10_canary", "natural", "none"})) {
    d->canary_dataset = dataset == "natural" || dataset == "none" ? "natural" : "mislabelled";
  }
  if (!s.Has("canary_size")) {
    s.Add("canary_size", absl::StrCat("missing: the number of canaries m, in [2, ",
                                      kMaxDpAuditCanaries, "]"));
  } else {
    s.GetInRange<int64_t>("canary_size", &d->canary_size, 2, kMaxDpAuditCanaries);
  }
  // "dp" trains the target with train.dp's DP-SGD (Privacy Meter's defaults
  // when train.dp is absent: checked in ParseConfig, where train is known).
  s.GetChoice("training_alg", &d->training_alg, {"nondp", "dp"});
  std::vector<Section> entries;
  if (s.GetMapList("grid", kMaxDpAuditGrid, &entries)) {
    if (s.Has("grid") && entries.empty()) s.Add("grid", "must have at least one entry");
    for (size_t i = 0; i < entries.size(); ++i) {
      Section& e = entries[i];
      DpAuditGuess g;
      const bool plus = e.GetInRange<int64_t>("k_plus", &g.k_plus, 0, kMaxDpAuditCanaries);
      const bool minus = e.GetInRange<int64_t>("k_minus", &g.k_minus, 0, kMaxDpAuditCanaries);
      if (plus && minus && e.IsMap()) {
        if (g.k_plus + g.k_minus == 0) {
          s.Add("grid", "k_plus + k_minus must be at least 1", absl::StrCat("[", i, "]"));
        } else if (s.Valid("canary_size") && d->canary_size > 0 &&
                   g.k_plus + g.k_minus > d->canary_size) {
          s.Add("grid",
                absl::StrCat("k_plus + k_minus (", g.k_plus + g.k_minus,
                             ") must not exceed canary_size (", d->canary_size, ")"),
                absl::StrCat("[", i, "]"));
        }
      }
      e.Finish();
      d->grid.push_back(g);
    }
  }
  s.GetInRange("delta", &d->delta, 0.0, 0.5);
  s.GetInRange("beta", &d->beta, 1e-9, 0.5);
  s.Finish();
}

// audit.policy through the policy's own parser (core/audit/policy.h, shared
// with `mia score --policy FILE`), then its rules against the audit: the
// attacks it names must run, upper_ci needs intervals, and its FPRs are added
// to audit.fprs so that every rule can be judged.
void ParseAuditPolicy(Section& s, AuditConfig* a) {
  if (!s.Has("policy")) {
    s.Use("policy");
    return;
  }
  std::vector<audit::PolicyProblem> problems;
  a->policy = audit::ParsePolicy(s.Raw("policy"), s.Path("policy"), &problems);
  if (s.Valid("attacks") && s.Valid("algorithm") && s.Valid("bootstrap")) {
    std::vector<std::string> names;
    for (const std::string& spec : a->scoring.attacks) {
      absl::StatusOr<std::unique_ptr<attacks::Attack>> made = attacks::MakeAttack(spec);
      if (made.ok()) names.push_back((*made)->name());
    }
    for (audit::PolicyProblem& p : audit::PolicyAuditProblems(
             a->policy, names, a->scoring.bootstrap.resamples, s.Path("policy"))) {
      problems.push_back(std::move(p));
    }
  }
  if (s.Valid("fprs")) {
    std::vector<double> fprs = audit::WithPolicyFprs(a->scoring.fprs, a->policy);
    if (fprs.size() > kMaxFprs) {
      problems.push_back({s.Path("policy.max_tpr_at_fpr"),
                          absl::StrCat("its FPRs and audit.fprs together are ", fprs.size(),
                                       ", above the limit of ", kMaxFprs)});
    } else {
      a->scoring.fprs = std::move(fprs);
    }
  }
  if (!problems.empty()) s.Invalidate("policy");
  for (audit::PolicyProblem& p : problems) {
    s.AddProblem({std::move(p.field), std::move(p.message), p.line});
  }
}

void ParseAudit(Section& s, Config* c, bool language_model, bool data_population_given,
                bool duci_default) {
  AuditConfig* a = &c->audit;
  // Privacy Meter's language-model configs give the population size here.
  if (s.Has("population_size") && data_population_given) {
    s.Use("population_size");
    s.Add("population_size", "give data.population_size or audit.population_size, not both");
  } else {
    s.GetInRange<int64_t>("population_size", &c->data.population_size, 0, kMaxRows);
  }
  std::string game = "privacy_loss_model";
  s.GetChoice("privacy_game", &game, {"privacy_loss_model"});
  std::string algorithm;
  s.Get("algorithm", &algorithm);
  if (!algorithm.empty() && s.Has("attacks")) {
    s.Use("attacks");
    s.Add("algorithm", "give attacks or algorithm, not both");
  } else if (!algorithm.empty()) {
    // Privacy Meter's RMIA is offline RMIA: it averages the OUT references
    // only, ((1 + a) P_out + (1 - a)) / 2 (its rmia.py), whatever their count.
    std::string name = absl::AsciiStrToLower(algorithm);
    if (name == "rmia") name = "rmia-offline";
    a->scoring.attacks = {name};
    CheckAttackSpecs(a->scoring.attacks, &s, "algorithm", /*element_paths=*/false);
  } else if (!s.Has("attacks")) {
    a->scoring.attacks = language_model ? DefaultLmAttacks() : DefaultAttacks();
  } else if (s.GetList("attacks", &a->scoring.attacks, kMaxAttacks)) {
    if (a->scoring.attacks.empty()) s.Add("attacks", "must name at least one attack");
    CheckAttackSpecs(a->scoring.attacks, &s, "attacks", /*element_paths=*/true);
  }
  s.GetInRange("num_ref_models", &a->num_ref_models, 0, kMaxReferenceModels);
  s.GetDevice("device", &a->device);
  s.GetInRange("batch_size", &a->batch_size, 1, 1 << 20);
  s.GetInRange<int64_t>("data_size", &a->data_size, 0, kMaxRows);
  s.Get("report_log", &a->report_log);
  s.GetChoice("splits", &a->splits, {"auto", "balanced", "paired", "disjoint"});
  if (s.Has("ramia")) {
    Section ramia = s.Child("ramia");
    ParseRamia(ramia, &a->ramia.emplace());
  }
  if (s.Has("duci") || duci_default) {
    Section d = s.Child("duci");
    DuciConfig duci;
    if (d.GetList("fractions", &duci.fractions, kMaxDuciFractions)) {
      if (duci.fractions.empty()) d.Add("fractions", "must give at least one fraction");
      for (size_t i = 0; i < duci.fractions.size(); ++i) {
        if (!(duci.fractions[i] >= 0 && duci.fractions[i] <= 1)) {
          d.Add("fractions", "must be in [0, 1]", absl::StrCat("[", i, "]"));
        }
      }
    }
    d.Finish();
    if (!d.Valid("fractions")) s.Invalidate("duci");
    a->duci = std::move(duci);
  } else {
    s.Use("duci");
  }
  Section aug = s.Child("augmentation");
  aug.Get("flip", &a->augmentation.flip);
  aug.GetInRange("shift", &a->augmentation.shift, 0, kMaxShift);
  aug.Finish();
  // Read for their types here, checked by ScoringProblems (shared with the
  // server's signals-bundle spec).
  audit::ScoringOptions& sc = a->scoring;
  s.Get("temperature", &sc.temperature);
  s.GetList("fprs", &sc.fprs, kMaxFprs);
  s.Get("bootstrap", &sc.bootstrap.resamples);
  s.Get("confidence", &sc.bootstrap.confidence);
  s.Get("delta", &sc.epsilon.delta);
  s.Get("beta", &sc.epsilon.beta);
  if (s.Valid("fprs")) {
    for (const ConfigProblem& p : ScoringProblems(sc, "")) {
      const size_t bracket = p.field.find('[');
      s.Add(p.field.substr(0, bracket), p.message,
            bracket == std::string::npos ? "" : p.field.substr(bracket));
    }
  }
  if (s.Has("dp_audit")) {
    Section dp = s.Child("dp_audit");
    ParseDpAudit(dp, &c->dp_audit.emplace());
  } else {
    s.Use("dp_audit");
  }
  ParseAuditPolicy(s, a);
  s.Finish();
}

// Refuses, before any training, attacks that the splits cannot feed. Both
// schemes put each pool point in M/2 models (balanced: floor(M/2)), so
// against any target every point has at least floor(M/2) - 1 IN and
// ceil(M/2) - 1 OUT references (a member has one IN fewer, a non-member one
// OUT fewer), and every point is scored with those counts (ATTACKS.md,
// "Corrections"). An attack short of its minimum would train every model and
// then fail, losing the other attacks' results too.
// Attacks that compare with population points (RMIA, Attack-P) cannot run
// without them: refused before any training (they used to fail at scoring).
std::vector<std::string> AttacksNeedingPopulation(const Config& c) {
  std::vector<std::string> need;
  for (const std::string& spec : c.audit.scoring.attacks) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> attack = attacks::MakeAttack(spec);
    if (attack.ok() && (*attack)->needs().population) need.push_back((*attack)->name());
  }
  return need;
}

void CheckPopulationNeed(const Config& c, std::vector<ConfigProblem>* out) {
  const std::vector<std::string> need = AttacksNeedingPopulation(c);
  if (need.empty()) return;
  out->push_back({"data.population_size",
                  absl::StrCat("must be > 0: attack", need.size() > 1 ? "s " : " ",
                               absl::StrJoin(need, ", "), " need", need.size() > 1 ? "" : "s",
                               " population points (rows no model trains on)")});
}

// Sequence attacks read texts' per-token signals: only a language-model audit
// has them (refused before training, not when scoring).
void CheckSequenceAttacks(const Config& c, std::vector<ConfigProblem>* out) {
  if (c.language_model()) return;
  for (size_t i = 0; i < c.audit.scoring.attacks.size(); ++i) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> attack =
        attacks::MakeAttack(c.audit.scoring.attacks[i]);
    if (!attack.ok()) continue;
    const attacks::AttackNeeds needs = (*attack)->needs();
    if (needs.token_logprobs || needs.token_stats || needs.texts) {
      out->push_back({absl::StrCat("audit.attacks[", i, "]"),
                      absl::StrCat("'", (*attack)->name(),
                                   "' is for language models (a text dataset); this audit "
                                   "trains classifiers")});
    }
  }
}

// A DUCI audit: what its game can run (the counts its references need are
// met by DuciReferenceModels itself).
void CheckDuci(const Config& c, bool counts_valid, std::vector<ConfigProblem>* out) {
  if (c.language_model()) {
    out->push_back({"audit.duci", "not for language models (a classifier audit only)"});
  }
  if (!c.external.torchscript.empty()) {
    out->push_back({"models.torchscript",
                    "not with audit.duci: the DUCI game trains its own targets and references"});
  }
  if (!counts_valid) return;
  const int64_t targets =
      static_cast<int64_t>(c.audit.duci->fractions.size()) * c.run.num_experiments;
  if (targets > kMaxTargets) {
    out->push_back(
        {"audit.duci.fractions",
         absl::StrCat("with run.num_experiments (", c.run.num_experiments, ") it asks for ",
                      targets, " target models; at most ", kMaxTargets)});
  } else if (targets + DuciReferenceModels(c) > static_cast<int64_t>(kMaxModels)) {
    out->push_back({"audit.num_ref_models",
                    absl::StrCat("the DUCI game would train ", targets, " targets and ",
                                 DuciReferenceModels(c), " references; at most ", kMaxModels,
                                 " models in all")});
  }
}

// With dp_audit no reference trains on a canary: every canary has all
// audit.num_ref_models references OUT and none IN, so online attacks cannot
// run and the others need num_ref_models >= their minimum per side.
void CheckDpAuditAttacks(const Config& c, const std::string& field, bool element_paths,
                         std::vector<ConfigProblem>* out) {
  const std::vector<std::string>& specs = c.audit.scoring.attacks;
  for (size_t i = 0; i < specs.size(); ++i) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> attack = attacks::MakeAttack(specs[i]);
    if (!attack.ok()) continue;  // reported by ParseAudit
    const attacks::AttackNeeds needs = (*attack)->needs();
    const std::string path = element_paths ? absl::StrCat(field, "[", i, "]") : field;
    const std::string name = (*attack)->name();
    if (needs.in_references) {
      out->push_back({path, absl::StrCat("'", name,
                                         "' needs IN references; with dp_audit no reference "
                                         "model trains on a canary (use an offline attack: "
                                         "rmia-offline, lira-offline, reference, loss)")});
    } else if (needs.references && c.audit.num_ref_models < needs.min_per_side) {
      out->push_back({path, absl::StrCat("'", name, "' needs at least ", needs.min_per_side,
                                         " reference model", needs.min_per_side > 1 ? "s" : "",
                                         " (audit.num_ref_models)")});
    }
  }
}

// Resolves audit.splits "auto" and refuses attacks that the splits cannot
// feed (see the comment above CheckPopulationNeed for the counts).
// Disjoint splits give every audit point all num_ref_models references OUT
// (and no IN reference); the other targets may add OUT references, the
// scorer then uses the smallest count over the points.
void CheckReferenceCounts(Config& c, std::vector<ConfigProblem>* out) {
  const int m = c.num_models();
  const int refs = m - c.run.num_experiments;
  const int in_refs = m / 2 - 1;
  const int out_refs = (m + 1) / 2 - 1;
  struct Need {
    std::string name;
    int k;
    bool online;
  };
  std::vector<Need> needs_list;
  for (const std::string& spec : c.audit.scoring.attacks) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> attack = attacks::MakeAttack(spec);
    if (!attack.ok()) continue;  // reported by ParseAudit
    const attacks::AttackNeeds needs = (*attack)->needs();
    if (!needs.references) continue;
    needs_list.push_back({(*attack)->name(), needs.min_per_side, needs.in_references});
  }
  auto balanced_ok = [&](const Need& n) {
    return out_refs >= n.k && (!n.online || in_refs >= n.k);
  };
  auto disjoint_ok = [&](const Need& n) { return !n.online && refs >= n.k; };
  const bool all_balanced = std::all_of(needs_list.begin(), needs_list.end(), balanced_ok);
  const bool all_disjoint =
      refs >= 1 && std::all_of(needs_list.begin(), needs_list.end(), disjoint_ok);
  if (c.audit.splits == "auto") {
    if (all_balanced) {
      c.audit.splits = "balanced";
      return;
    }
    if (all_disjoint) {
      c.audit.splits = "disjoint";
      c.audit.splits_auto = true;
      return;
    }
  }
  std::vector<std::string> problems;
  if (c.audit.splits == "disjoint") {
    if (refs < 1) problems.push_back("disjoint splits need audit.num_ref_models >= 1");
    for (const Need& n : needs_list) {
      if (n.online) {
        problems.push_back(absl::StrCat(
            "'", n.name, "' needs IN references, which disjoint splits do not have (the "
            "references never train on audit points); use its offline form or splits: "
            "balanced with more models"));
      } else if (refs < n.k) {
        problems.push_back(absl::StrCat("'", n.name, "' needs at least ", n.k,
                                        " OUT reference model", n.k > 1 ? "s" : "",
                                        " per point; with disjoint splits that is "
                                        "audit.num_ref_models >= ",
                                        n.k));
      }
    }
    if (!problems.empty()) out->push_back({"audit.attacks", absl::StrJoin(problems, "; ")});
    return;
  }
  for (const Need& n : needs_list) {
    if (balanced_ok(n)) continue;
    const int k = n.k;
    // Least M with ceil(M/2) - 1 >= k (and floor(M/2) - 1 >= k online).
    int least = n.online ? 2 * (k + 1) : 2 * k + 1;
    if (c.audit.splits == "paired" && least % 2 != 0) ++least;  // paired needs an even count
    std::string problem = absl::StrCat(
        "'", n.name, "' needs at least ", n.online ? absl::StrCat(k, " IN and ") : "", k,
        " OUT reference model", k > 1 ? "s" : "", " per point; ", m, " models (",
        c.run.num_experiments, " target", c.run.num_experiments > 1 ? "s" : "", " + ", refs,
        " reference", refs != 1 ? "s" : "", ") give ",
        n.online ? absl::StrCat(in_refs, " IN and ") : "", out_refs,
        " OUT; it needs at least ", least, " models (audit.num_ref_models >= ",
        least - c.run.num_experiments, ")");
    if (!n.online) {
      absl::StrAppend(&problem, ", or audit.splits: disjoint with audit.num_ref_models >= ", k);
    }
    problems.push_back(std::move(problem));
  }
  if (!problems.empty()) out->push_back({"audit.attacks", absl::StrJoin(problems, "; ")});
}

// Range audits (RaMIA). The sampled points of a range were never trained on,
// so every model but the target is an OUT reference for every one of them:
// online attacks (which need IN references) cannot score them, and an offline
// attack needs only min_per_side models besides the target. Kept apart from
// CheckReferenceCounts, which counts the references of pool points.
void CheckRamiaReferenceCounts(const Config& c, std::vector<ConfigProblem>* out) {
  const int refs = c.num_models() - 1;
  for (size_t i = 0; i < c.audit.scoring.attacks.size(); ++i) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> attack =
        attacks::MakeAttack(c.audit.scoring.attacks[i]);
    if (!attack.ok()) continue;  // reported by ParseAudit
    const attacks::AttackNeeds needs = (*attack)->needs();
    const std::string field = absl::StrCat("audit.attacks[", i, "]");
    if (needs.in_references) {
      out->push_back({field, absl::StrCat("'", (*attack)->name(),
                                          "' is an online attack: a range's sampled points are "
                                          "OUT of every model, so it has no IN reference; use an "
                                          "offline attack (rmia-offline, lira-offline, loss, "
                                          "attack-p, attack-r)")});
    } else if (needs.references && refs < needs.min_per_side) {
      out->push_back({field, absl::StrCat("'", (*attack)->name(), "' needs at least ",
                                          needs.min_per_side, " models besides the target; ",
                                          c.num_models(), " models give ", refs)});
    }
  }
}

// The rest of a range audit's rules across sections. `field`: where the
// ramia section is ("ramia" or "audit.ramia").
void CheckRamia(const Config& c, const std::string& field, bool population_valid,
                std::vector<ConfigProblem>* out) {
  const audit::RamiaOptions& r = *c.audit.ramia;
  if (c.language_model()) {
    out->push_back({field, "ranges of texts are not supported; supported: l2 and missing_values "
                           "(tabular rows and images), geometric (images)"});
    return;
  }
  if (r.range_function == "geometric" &&
      (c.data.dataset == "purchase100" || c.data.dataset == "texas100")) {
    out->push_back({field + ".range_function",
                    absl::StrCat("geometric ranges transform images; ", c.data.dataset,
                                 " holds tabular rows (use l2 or missing_values)")});
  }
  if (c.audit.data_size % 2 != 0) {
    out->push_back({"audit.data_size", "must be even in a range audit: half member ranges, "
                                       "half non-member ranges"});
  }
  if (c.audit.data_size > 0 && r.sample_size > kMaxRows / c.audit.data_size) {
    out->push_back({field + ".sample_size",
                    absl::StrCat("audit.data_size x sample_size is above the limit of ",
                                 kMaxRows, " sampled points")});
  }
  if (!population_valid) return;
  bool need_population = false;
  for (const std::string& spec : c.audit.scoring.attacks) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> attack = attacks::MakeAttack(spec);
    if (attack.ok() && (*attack)->needs().population) need_population = true;
  }
  const int64_t z = c.data.population_size;
  if (z == 0) {
    // With an attack that needs a population, CheckPopulationNeed says so.
    if (!need_population) {
      out->push_back({"data.population_size",
                      "must be > 0 in a range audit: non-member ranges are centred on "
                      "population points"});
    }
    return;
  }
  const int64_t least = c.audit.data_size / 2 + (need_population ? 1 : 0);
  if (c.audit.data_size > 0 && z < least) {
    out->push_back({"data.population_size",
                    absl::StrCat("must be at least ", least, " in this range audit: ",
                                 c.audit.data_size / 2, " non-member range centres",
                                 need_population ? ", and at least 1 point for the attacks to "
                                                   "compare with"
                                                 : "")});
  }
}

// In a range audit, an attack chosen by Privacy Meter's `algorithm` key or by
// default is taken offline (its RMIA with the sampled points is offline):
// rmia -> rmia-offline, lira -> lira-offline, options kept.
void RamiaOfflineAttacks(std::vector<std::string>* specs) {
  for (std::string& spec : *specs) {
    const size_t colon = spec.find(':');
    const std::string base = absl::AsciiStrToLower(spec.substr(0, colon));
    const std::string rest = colon == std::string::npos ? "" : spec.substr(colon);
    if (base == "rmia" || base == "rmia-online") spec = "rmia-offline" + rest;
    if (base == "lira" || base == "lira-online") spec = "lira-offline" + rest;
  }
}

}  // namespace

std::string ConfigProblem::ToString() const {
  std::string out = field.empty() ? message : absl::StrCat(field, ": ", message);
  if (line > 0) absl::StrAppend(&out, " (line ", line, ")");
  return out;
}

const std::vector<std::string>& DefaultAttacks() {
  // The default audit (1 target + 4 references) feeds both: online LiRA
  // would need 6 models (2 IN references per point).
  static const auto* const kDefault = new std::vector<std::string>{"rmia", "lira-offline"};
  return *kDefault;
}

const std::vector<std::string>& DefaultDpAuditAttacks() {
  // Offline only (no reference trains on a canary), and nothing that needs
  // population points, which a dp_audit spec need not give.
  static const auto* const kDefault = new std::vector<std::string>{"loss", "lira-offline"};
  return *kDefault;
}

const std::vector<std::string>& DefaultLmAttacks() {
  // The sequence attacks of ATTACKS.md ("Sequences"), all offline: the
  // default 1 target + 4 references feed lm-reference.
  static const auto* const kDefault = new std::vector<std::string>{
      "loss", "zlib", "min-k", "min-k++", "lm-reference", "lira-offline"};
  return *kDefault;
}

std::vector<ConfigProblem> AttackListProblems(const std::vector<std::string>& specs,
                                              const std::string& field) {
  std::vector<ConfigProblem> problems;
  if (specs.size() > kMaxAttacks) {
    problems.push_back({field, absl::StrCat("must have at most ", kMaxAttacks, " entries")});
    return problems;
  }
  // By the attack's canonical name, as scoring does: an alias (rmia and
  // rmia-online) or options in another order are the same attack.
  std::set<std::string> seen;
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string element = absl::StrCat(field, "[", i, "]");
    absl::StatusOr<std::unique_ptr<attacks::Attack>> made = attacks::MakeAttack(specs[i]);
    if (!made.ok()) {
      problems.push_back({element, std::string(made.status().message())});
    } else if (!seen.insert((*made)->name()).second) {
      problems.push_back({element, "the same attack is given twice"});
    }
  }
  return problems;
}

std::vector<ConfigProblem> FprListProblems(const std::vector<double>& fprs,
                                           const std::string& field) {
  std::vector<ConfigProblem> problems;
  if (fprs.size() > kMaxFprs) {
    problems.push_back({field, absl::StrCat("must have at most ", kMaxFprs, " entries")});
    return problems;
  }
  for (size_t i = 0; i < fprs.size(); ++i) {
    if (!(fprs[i] >= 0 && fprs[i] <= 1)) {
      problems.push_back({absl::StrCat(field, "[", i, "]"), "must be in [0, 1]"});
    }
  }
  return problems;
}

std::vector<ConfigProblem> ScoringProblems(const audit::ScoringOptions& s,
                                           const std::string& prefix) {
  std::vector<ConfigProblem> problems;
  auto range = [&](const char* key, auto value, auto min, auto max) {
    if (!(value >= min && value <= max)) {  // also refuses NaN
      problems.push_back({prefix + key, RangeMessage<decltype(min)>(min, max)});
    }
  };
  range("temperature", s.temperature, 1e-6, 1e6);
  for (ConfigProblem& p : FprListProblems(s.fprs, prefix + "fprs")) problems.push_back(p);
  range("bootstrap", s.bootstrap.resamples, 0, kMaxBootstrap);
  range("confidence", s.bootstrap.confidence, 0.5, 0.9999);
  range("delta", s.epsilon.delta, 0.0, 0.5);
  range("beta", s.epsilon.beta, 1e-9, 0.5);
  return problems;
}

absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& path,
                                   std::vector<ConfigProblem>* problems_out, bool duci_default) {
  if (problems_out != nullptr) problems_out->clear();
  absl::StatusOr<YAML::Node> root =
      LoadYamlMapping(yaml_text, path, " with run, data, train, audit");
  if (!root.ok()) {
    // Not YAML at all: one problem with the file as a whole.
    if (problems_out != nullptr) {
      problems_out->push_back({"", std::string(root.status().message())});
    }
    return root.status();
  }
  Config c;
  c.path = path;
  std::vector<ConfigProblem> problems;
  Section top(*root, "", &problems);
  Section run = top.Child("run");
  ParseRun(run, &c.run);
  Section data = top.Child("data");
  ParseData(data, &c);
  const bool text_data = c.lm.has_value();
  Section train = top.Child("train");
  const bool lm_model = ParseTrain(train, &c);
  Section audit = top.Child("audit");
  ParseAudit(audit, &c, lm_model, data.Has("population_size"), duci_default);
  // Privacy Meter writes ramia at the top level; mia reads it there or under audit.
  const std::string ramia_field = audit.Has("ramia") ? "audit.ramia" : "ramia";
  if (top.Has("ramia") && audit.Has("ramia")) {
    top.Use("ramia");
    top.Add("ramia", "give ramia (top level) or audit.ramia, not both");
  } else if (top.Has("ramia")) {
    Section ramia = top.Child("ramia");
    ParseRamia(ramia, &c.audit.ramia.emplace());
  }
  if (c.audit.ramia.has_value() && !audit.Has("attacks")) {
    RamiaOfflineAttacks(&c.audit.scoring.attacks);
  }
  Section models = top.Child("models");
  models.GetList("torchscript", &c.external.torchscript, kMaxModelFiles);
  models.Get("keep", &c.external.keep);
  models.Finish();
  if (top.Has("dp_audit")) {
    // Privacy Meter's place for the section; mia's is audit.dp_audit.
    if (c.dp_audit.has_value()) {
      top.Use("dp_audit");
      top.Add("dp_audit", "give audit.dp_audit or dp_audit, not both");
    } else {
      Section dp = top.Child("dp_audit");
      ParseDpAudit(dp, &c.dp_audit.emplace());
    }
  } else {
    top.Use("dp_audit");
  }
  top.Finish();
  const bool attacks_given = audit.Has("attacks") || audit.Has("algorithm");
  if (c.dp_audit.has_value() && !attacks_given) c.audit.scoring.attacks = DefaultDpAuditAttacks();
  if (c.dp_audit.has_value() && train.Valid("dp")) {
    const std::string alg_field =
        audit.Has("dp_audit") ? "audit.dp_audit.training_alg" : "dp_audit.training_alg";
    if (c.dp_audit->training_alg == "dp" && !c.recipe.dp.enabled) {
      // Privacy Meter's dpaudit configs say `training_alg: dp` and nothing
      // more: its DP-SGD defaults (Opacus, noise multiplier 0.5, clipping
      // norm 1.0, epsilon at delta 1e-5) apply, said in the report.
      c.recipe.dp.enabled = true;
      c.recipe.dp.noise_multiplier = kDpAuditDefaultNoiseMultiplier;
      c.recipe.dp.max_grad_norm = kDpAuditDefaultMaxGradNorm;
      c.recipe.dp.delta = 1e-5;
      c.dp_audit->dp_defaults = true;
      if (train.Valid("model_name") && c.model.architecture == "wrn") {
        problems.push_back(
            {alg_field, "dp trains with DP-SGD, which wide ResNets (batch normalization) do not "
                        "allow: use mlp, cnn, alexnet or vgg16"});
      }
    } else if (c.dp_audit->training_alg == "nondp" && c.recipe.dp.enabled) {
      problems.push_back({alg_field, "is nondp, but train.dp asks for DP-SGD: set training_alg: "
                                     "dp or remove train.dp"});
    }
  }

  // Rules across sections, on valid values only (one mistake, one message).
  if (data.Valid("dataset") && train.Valid("model_name") && text_data && !lm_model) {
    train.Add("model_name", "a classifier cannot train on a text dataset (gpt or gpt2*)");
  } else if (data.Valid("dataset") && train.Valid("model_name") && !text_data && lm_model) {
    train.Add("model_name",
              absl::StrCat("a language model needs a text dataset (agnews, fortunes, lines, "
                           "jsonl, txt-folder), not ",
                           c.data.dataset));
  }
  if (c.lm.has_value() && !c.external.torchscript.empty()) {
    models.Add("torchscript", "not for language models: score their signals as a bundle");
  }
  if (c.lm.has_value() && (c.audit.augmentation.flip || c.audit.augmentation.shift > 0)) {
    audit.Add("augmentation", "only for image classifiers");
  }
  const bool counts_valid =
      run.Valid("num_experiments") && audit.Valid("num_ref_models") && models.Valid("torchscript");
  if (!c.external.torchscript.empty()) {
    if (c.external.keep.empty() && models.Valid("keep")) {
      models.Add("keep", "required with torchscript (which pool row each model trained on)");
    }
    if (counts_valid && static_cast<int>(c.external.torchscript.size()) <= c.run.num_experiments) {
      models.Add("torchscript",
                 "needs more models than run.num_experiments (targets first, then references)");
    }
  } else if (!c.external.keep.empty()) {
    models.Add("keep", "only meaningful with torchscript");
  }
  if (counts_valid && c.num_models() < 2 && !c.dp_audit.has_value() &&
      !c.audit.duci.has_value()) {
    audit.Add("num_ref_models", "with run.num_experiments it must give at least 2 models");
  }
  if (counts_valid && audit.Valid("splits") && c.audit.splits == "paired" &&
      c.num_models() % 2 != 0 && !c.dp_audit.has_value()) {  // dp_audit: no splits
    audit.Add("splits", absl::StrCat("paired halves need an even number of models ("
                                     "num_experiments + num_ref_models = ",
                                     c.num_models(), ")"));
  }
  const bool duci = c.audit.duci.has_value();
  if (duci && audit.Valid("duci")) {
    CheckDuci(c, counts_valid && audit.Valid("attacks") && audit.Valid("algorithm"), &problems);
  }
  // A DUCI game sizes its references for the attacks and sets aside a
  // population when they need one (core/pipeline/duci_game.cc).
  // One game per audit: a range audit, a DP audit in one run and a DUCI game
  // each decide what is trained and scored.
  {
    std::vector<std::string> games;
    if (c.audit.ramia.has_value()) games.push_back(ramia_field);
    if (c.dp_audit.has_value()) games.push_back("dp_audit");
    if (duci) games.push_back("audit.duci");
    if (games.size() > 1) {
      problems.push_back({games[1], absl::StrCat("give one of ", absl::StrJoin(games, ", "),
                                                 ": each is a game of its own")});
    }
  }
  if (duci && c.audit.policy.enabled) {
    problems.push_back({"audit.policy", "not for a DUCI audit: it estimates dataset usage and "
                                        "has no membership figures (AUC, TPR, epsilon) to judge"});
  }
  if (c.dp_audit.has_value()) {
    if (run.Valid("num_experiments") && c.run.num_experiments != 1) {
      run.Add("num_experiments",
              "must be 1 with dp_audit: one target, trained once on one draw of the canaries");
    }
    if (!c.external.torchscript.empty()) {
      models.Add("torchscript", "not with dp_audit: the audit trains the target on its canaries");
    }
    if (c.lm.has_value() && data.Valid("dataset")) {
      data.Add("dataset", "dp_audit needs a classifier dataset (canaries are labelled rows)");
    }
    if (audit.Valid("data_size") && c.audit.data_size > 0) {
      audit.Add("data_size", "must be 0 with dp_audit: the canaries are the audit points");
    }
    if (data.Valid("pool_size") && c.data.pool_size > 0 &&
        c.dp_audit->canary_size > c.data.pool_size) {
      problems.push_back({"audit.dp_audit.canary_size",
                          absl::StrCat("(", c.dp_audit->canary_size,
                                       ") must not exceed data.pool_size (", c.data.pool_size,
                                       "): canaries are pool rows")});
    }
    if (audit.Valid("attacks") && audit.Valid("algorithm") && audit.Valid("num_ref_models")) {
      CheckDpAuditAttacks(c, audit.Has("algorithm") ? "audit.algorithm" : "audit.attacks",
                          !audit.Has("algorithm"), &problems);
    }
  } else if (counts_valid && c.num_models() >= 2 && c.audit.ramia.has_value() &&
             audit.Valid("attacks") && audit.Valid("algorithm")) {
    CheckRamiaReferenceCounts(c, &problems);  // every reference is OUT for a sampled point
  } else if (!duci && counts_valid && c.num_models() >= 2 && c.external.torchscript.empty() &&
             audit.Valid("attacks") && audit.Valid("algorithm")) {
    CheckReferenceCounts(c, &problems);
  }
  // Models trained elsewhere bring their own keep matrix; an audit that the
  // rule above did not resolve has problems and is not run.
  if (c.audit.splits == "auto") c.audit.splits = "balanced";
  if (c.audit.ramia.has_value() && audit.Valid("data_size") && audit.Valid("attacks") &&
      audit.Valid("algorithm") && data.Valid("dataset")) {
    CheckRamia(c, ramia_field,
               data.Valid("population_size") && audit.Valid("population_size"), &problems);
  }
  if (audit.Valid("attacks") && audit.Valid("algorithm") && train.Valid("model_name")) {
    CheckSequenceAttacks(c, &problems);
  }
  if (!duci && audit.Valid("attacks") && audit.Valid("algorithm") &&
      data.Valid("population_size") &&
      audit.Valid("population_size") && c.data.population_size == 0) {
    // A Privacy Meter config (its single-attack key) that sizes neither the
    // population nor the pool: its data comes with a population set, mia's
    // does not. The last quarter of the rows become the population (reported
    // as a warning); any other file must size it.
    if (audit.Has("algorithm") && !data.Has("population_size") &&
        !audit.Has("population_size") && !data.Has("pool_size") &&
        !AttacksNeedingPopulation(c).empty()) {
      c.data.population_quarter = true;
    } else {
      CheckPopulationNeed(c, &problems);
    }
  }
  // Training work, when the pool is given (models given as files train nothing).
  if (c.external.torchscript.empty() && train.Valid("epochs") && data.Valid("pool_size") &&
      c.data.pool_size > 0) {
    const int epochs = lm_model ? c.lm->recipe.epochs : c.recipe.epochs;
    if (std::optional<ConfigProblem> p = EpochRowsProblem(epochs, c.data.pool_size)) {
      train.Add("epochs", std::move(p->message));
    }
  }

  if (problems_out != nullptr) *problems_out = problems;
  if (problems.empty()) return c;
  std::vector<std::string> lines;
  for (const ConfigProblem& p : problems) lines.push_back(p.ToString());
  return absl::InvalidArgumentError(
      problems.size() == 1
          ? absl::StrCat(path, ": ", lines[0])
          : absl::StrCat(path, ": ", problems.size(), " problems: ", absl::StrJoin(lines, "; ")));
}

std::optional<ConfigProblem> EpochRowsProblem(int epochs, int64_t pool_rows) {
  const int64_t e = std::max(epochs, 0);
  const int64_t rows = std::max<int64_t>(pool_rows, 0);
  int64_t product = 0;
  if (!__builtin_mul_overflow(e, rows, &product) && product <= kMaxEpochRows) return std::nullopt;
  return ConfigProblem{
      "train.epochs",
      absl::StrCat("train.epochs (", e, ") x data.pool_size (", rows,
                   " rows the models may train on) is above the limit of ", kMaxEpochRows,
                   " row passes per model; lower train.epochs or data.pool_size")};
}

int DuciTargetModels(const Config& c) {
  if (!c.audit.duci.has_value()) return 0;
  return static_cast<int>(c.audit.duci->fractions.size()) * c.run.num_experiments;
}

int DuciReferenceModels(const Config& c) {
  // Each reference r, attacked with the R - 1 others, has R/2 - 1 IN others on
  // its members and R/2 - 1 OUT others on its non-members: R >= 2k + 2 for an
  // attack that needs k a side.
  int refs = std::max(4, 2 * c.audit.num_ref_models);
  for (const std::string& spec : c.audit.scoring.attacks) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> attack = attacks::MakeAttack(spec);
    if (!attack.ok() || !(*attack)->needs().references) continue;
    refs = std::max(refs, 2 * (*attack)->needs().min_per_side + 2);
  }
  return refs;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path, bool duci) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the config file"));
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path, nullptr, duci);
}

std::string TrainingJson(const training::ModelSpec& m, const training::TrainRecipe& r) {
  nlohmann::json j = {{"architecture", m.architecture},
                      {"hidden", m.hidden},
                      {"activation", m.activation},
                      {"depth", m.depth},
                      {"width", m.width},
                      {"dropout", m.dropout},
                      {"optimizer", r.optimizer},
                      {"learning_rate", r.learning_rate},
                      {"momentum", r.momentum},
                      {"nesterov", r.nesterov},
                      {"weight_decay", r.weight_decay},
                      {"epochs", r.epochs},
                      {"batch_size", r.batch_size},
                      {"schedule", r.schedule},
                      {"warmup_epochs", r.warmup_epochs},
                      {"random_crop", r.random_crop},
                      {"crop_padding", r.crop_padding},
                      {"horizontal_flip", r.horizontal_flip},
                      {"normalize_mean", r.normalize_mean},
                      {"normalize_std", r.normalize_std}};
  // Only when not the default, so that the keys of models trained before stay
  // as they were.
  if (r.precision != "fp32") j["precision"] = r.precision;
  if (r.dp.enabled) {
    nlohmann::json dp = {{"max_grad_norm", r.dp.max_grad_norm},
                         {"delta", r.dp.delta},
                         {"poisson", true}};
    if (r.dp.target_epsilon > 0) {
      dp["target_epsilon"] = r.dp.target_epsilon;
    } else {
      dp["noise_multiplier"] = r.dp.noise_multiplier;
    }
    j["dp"] = std::move(dp);
  }
  return j.dump();  // keys sorted: canonical
}

std::string LmTrainingJson(const LanguageModelConfig& lm) {
  const training::LmSpec& m = lm.spec;
  const training::LmRecipe& r = lm.recipe;
  nlohmann::json j = {{"architecture", m.architecture},
                      {"n_layer", m.n_layer},
                      {"n_head", m.n_head},
                      {"n_embd", m.n_embd},
                      {"block_size", m.block_size},
                      {"dropout", m.dropout},
                      {"vocab_size", m.vocab_size},
                      {"checkpoint", m.checkpoint},
                      {"tokenizer", lm.tokenizer},
                      {"bpe_vocab_size", lm.tokenizer == "bpe" ? lm.vocab_size : 0},
                      {"learning_rate", r.learning_rate},
                      {"weight_decay", r.weight_decay},
                      {"betas", {r.beta1, r.beta2}},
                      {"eps", r.eps},
                      {"epochs", r.epochs},
                      {"batch_size", r.batch_size},
                      {"warmup_ratio", r.warmup_fraction},
                      {"max_grad_norm", r.grad_clip}};
  if (m.lora.rank > 0) {
    j["peft"] = {{"type", "lora"},
                 {"r", m.lora.rank},
                 {"lora_alpha", m.lora.alpha},
                 {"lora_dropout", m.lora.dropout},
                 {"target_modules", m.lora.target_modules}};
  }
  return j.dump();  // keys sorted: canonical
}

std::string ConfigJson(const Config& c) {
  nlohmann::json j;
  j["kind"] = "audit";
  j["config_file"] = c.path;
  j["run"] = {{"random_seed", c.run.random_seed},
              {"log_dir", c.run.log_dir},
              {"num_experiments", c.run.num_experiments}};
  j["data"] = {{"dataset", c.data.dataset},      {"format", c.data.source.format},
               {"data_dir", c.data.source.path}, {"split", c.data.source.split},
               {"pool_size", c.data.pool_size},  {"population_size", c.data.population_size},
               {"shuffle", c.data.shuffle}};
  if (c.data.population_quarter) j["data"]["population"] = "last quarter of the rows";
  j["train"] = nlohmann::json::parse(c.lm.has_value() ? LmTrainingJson(*c.lm)
                                                      : TrainingJson(c.model, c.recipe));
  if (c.lm.has_value()) {
    j["data"]["text_field"] = c.lm->text_field;
    j["data"]["label_field"] = c.lm->label_field;
  }
  if (!c.external.torchscript.empty()) {
    j["models"] = {{"torchscript", c.external.torchscript}, {"keep", c.external.keep}};
  }
  const audit::ScoringOptions& s = c.audit.scoring;
  j["audit"] = {{"attacks", s.attacks},
                {"num_ref_models", c.audit.num_ref_models},
                {"data_size", c.audit.data_size},
                {"splits", c.audit.splits},
                {"augmentation",
                 {{"flip", c.audit.augmentation.flip}, {"shift", c.audit.augmentation.shift}}},
                {"temperature", s.temperature},
                {"fprs", s.fprs},
                {"bootstrap", s.bootstrap.resamples},
                {"confidence", s.bootstrap.confidence},
                {"delta", s.epsilon.delta},
                {"beta", s.epsilon.beta}};
  if (c.audit.ramia.has_value()) {
    const audit::RamiaOptions& r = *c.audit.ramia;
    nlohmann::json ranges = nlohmann::json::array();
    for (const auto& [low, high] : r.col_ranges) ranges.push_back({low, high});
    j["audit"]["ramia"] = {{"range_function", r.range_function},
                           {"sample_size", r.sample_size},
                           {"trim", r.trim},
                           {"radius", r.radius},
                           {"num_missing_feats", r.num_missing_feats},
                           {"col_ranges", ranges},
                           {"is_categorical", r.is_categorical},
                           {"transformations", r.transformations}};
  }
  if (c.dp_audit.has_value()) {
    const DpAuditConfig& d = *c.dp_audit;
    nlohmann::json grid = nlohmann::json::array();
    for (const DpAuditGuess& g : d.grid) {
      grid.push_back({{"k_plus", g.k_plus}, {"k_minus", g.k_minus}});
    }
    j["audit"]["dp_audit"] = {{"canary_dataset", d.canary_dataset},
                              {"canary_size", d.canary_size},
                              {"training_alg", d.training_alg},
                              {"grid", grid},
                              {"delta", d.delta},
                              {"beta", d.beta}};
  }
  if (c.audit.duci.has_value()) {
    j["audit"]["duci"] = {{"fractions", c.audit.duci->fractions},
                          {"targets", DuciTargetModels(c)},
                          {"reference_models", DuciReferenceModels(c)}};
  }
  if (c.audit.policy.enabled) {
    auto rules_json = [](const audit::PolicyRules& r) {
      nlohmann::json out = nlohmann::json::object();
      if (r.max_auc.has_value()) out["max_auc"] = *r.max_auc;
      if (!r.max_tpr_at_fpr.empty()) {
        nlohmann::json tprs = nlohmann::json::object();
        for (const auto& [fpr, tpr] : r.max_tpr_at_fpr) tprs[absl::StrCat(fpr)] = tpr;
        out["max_tpr_at_fpr"] = std::move(tprs);
      }
      if (r.max_epsilon_lower_bound.has_value()) {
        out["max_epsilon_lower_bound"] = *r.max_epsilon_lower_bound;
      }
      return out;
    };
    nlohmann::json policy = rules_json(c.audit.policy.all_attacks);
    policy["use"] = c.audit.policy.use;
    for (const auto& [attack, rules] : c.audit.policy.per_attack) {
      policy["attacks"][attack] = rules_json(rules);
    }
    j["audit"]["policy"] = std::move(policy);
  }
  return j.dump();
}

}  // namespace mia::pipeline
