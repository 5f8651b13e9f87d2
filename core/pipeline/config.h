// The audit configuration: what `mia audit --config FILE.yaml` runs. The YAML
// keeps Privacy Meter's sections (run, audit, train, data) and their meanings,
// plus what mia adds (attacks, splits, augmentation, metrics, models trained
// elsewhere). Every key, its default and an example: docs/config.md.
//
// Parsing is strict: an unknown key or a value of the wrong type or range is an
// error naming the key path ("train.learning_rate"), and every problem of a
// file is reported, not only the first. This is the one validator of an audit
// spec: `mia audit`, `mia submit` and the server's CreateAudit (which maps its
// proto onto these keys, server/spec_convert.cc) all go through ParseConfig. Plain
// data; no I/O besides reading the file in LoadConfigFile.
#ifndef MIA_CORE_PIPELINE_CONFIG_H_
#define MIA_CORE_PIPELINE_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/audit/policy.h"
#include "core/audit/scoring.h"
#include "core/data/loaders.h"
#include "core/training/engine.h"
#include "core/training/lm_engine.h"

namespace mia::pipeline {

struct RunConfig {
  uint64_t random_seed = 12345;     // seeds splits, training, audit set, bootstrap
  std::string log_dir = "mia-runs/default";  // models, signals and reports; reused across runs
  bool time_log = true;             // write timing.log
  int num_experiments = 1;          // target models (each attacked with all others as references)
  int threads = 0;                  // compute threads (0: all cores)
};

struct DataConfig {
  std::string dataset;              // fashion-mnist | mnist | cifar10 | cifar100 | purchase100 | texas100 | csv | npy
  data::DataSource source;          // format and path resolved from dataset / data_dir
  int64_t pool_size = 0;            // rows models may train on (0: all rows not in the population)
  int64_t population_size = 0;      // rows no model trains on, for RMIA / Attack-P (0: none)
  bool shuffle = false;             // pick pool and population at random (seeded), not as
                                    // contiguous blocks [0, pool) and [pool, pool + population)
};

struct ExternalModels {
  std::vector<std::string> torchscript;  // one TorchScript file per model; targets first
  std::string keep;                      // .npy [models, pool] bool: who trained on which pool row
};

struct AuditConfig {
  int num_ref_models = 4;           // reference models besides the targets
  std::string device = "auto";      // inference device
  int batch_size = 1024;            // inference batch size
  int64_t data_size = 0;            // audit points (0: the whole pool), balanced for target 0
  std::string report_log = "report";  // report folder, under run.log_dir
  std::string splits = "balanced";  // balanced | paired
  training::QueryAugmentation augmentation;  // test-time queries for signals
  audit::ScoringOptions scoring;    // attacks, temperature, fprs, bootstrap, epsilon
  // The privacy gate (audit.policy); its FPRs are added to scoring.fprs.
  audit::PolicySpec policy;
};

// A language-model audit: data.dataset is a text format and train.model_name
// a causal LM (gpt, gpt2, gpt2-medium, gpt2-large, gpt2-xl). docs/config.md,
// "Language models".
struct LanguageModelConfig {
  std::string text_field = "text";  // jsonl: the key holding each text
  std::string label_field;          // jsonl: an optional label key
  // "bpe": a byte-level BPE trained on the pool's texts (vocab_size tokens);
  // otherwise a local folder with GPT-2's tokenizer files (vocab.json +
  // merges.txt, or encoder.json + vocab.bpe). Never downloaded.
  std::string tokenizer = "bpe";
  int vocab_size = 2048;            // bpe: tokens, 256 bytes + merges + end-of-text
  training::LmSpec spec;            // spec.vocab_size is the tokenizer's, set at run time
  training::LmRecipe recipe;
};

struct Config {
  std::string path;                 // the file it came from
  RunConfig run;
  DataConfig data;
  training::ModelSpec model;
  training::TrainRecipe recipe;
  std::string train_device = "auto";
  // Train several models at once with stacked weights (MLP, CNN). Unset:
  // stacked on a GPU; on a CPU one model at a time per lane, which measured
  // faster there (docs/benchmarks.md).
  std::optional<bool> batched_training;
  ExternalModels external;          // non-empty: audit these models, train nothing
  AuditConfig audit;
  // Set for a language-model audit (then `model`, `recipe` and the
  // classifier's data keys are unused).
  std::optional<LanguageModelConfig> lm;

  bool language_model() const { return lm.has_value(); }
  int num_models() const {
    return external.torchscript.empty() ? run.num_experiments + audit.num_ref_models
                                        : static_cast<int>(external.torchscript.size());
  }
};

// Limits on what one spec may ask for, checked before any work so that a
// request cannot buy unbounded memory, output or log lines with a long list
// (docs/config.md, "Limits", lists them; keep the two together).
inline constexpr int kMaxTargets = 1024;              // run.num_experiments
inline constexpr int kMaxReferenceModels = 4096;      // audit.num_ref_models
inline constexpr size_t kMaxModels = 5120;            // models in one audit (bundle targets too)
inline constexpr size_t kMaxModelFiles = kMaxModels;  // models.torchscript entries
inline constexpr size_t kMaxAttacks = 32;             // audit.attacks entries
inline constexpr size_t kMaxFprs = 64;                // audit.fprs entries (policy FPRs included)
inline constexpr size_t kMaxPolicyFprs =
    audit::kMaxPolicyFprs;  // audit.policy.max_tpr_at_fpr entries (each rule set)
inline constexpr size_t kMaxPolicyAttacks = audit::kMaxPolicyAttacks;  // audit.policy.attacks
inline constexpr size_t kMaxHiddenLayers = 16;        // train.hidden entries
inline constexpr int kMaxHiddenWidth = 65536;         // each train.hidden entry
inline constexpr size_t kMaxChannels = 16;            // train.normalize_mean / _std entries
inline constexpr int kMaxEpochs = 100000;             // train.epochs, train.warmup_epochs
inline constexpr int64_t kMaxRows =
    100'000'000;                                 // data.pool_size, population_size, audit.data_size
// Training work: train.epochs x the rows the models may train on (data.pool_size,
// or, when it is 0, the pool the data leaves once loaded), so that two
// in-range values cannot ask for 10^13 row passes per model together.
inline constexpr int64_t kMaxEpochRows = 10'000'000'000;
inline constexpr int kMaxShift = 16;             // audit.augmentation.shift (pixels)
// Language models (train.*): sizes bounded so that one spec cannot ask for
// more than the largest GPT-2 (gpt2-xl: 48 layers, 25 heads, 1600 wide, 1024
// positions) by much.
inline constexpr int kMaxLmLayers = 96;          // train.n_layer
inline constexpr int kMaxLmHeads = 128;          // train.n_head
inline constexpr int kMaxLmWidth = 8192;         // train.n_embd
inline constexpr int kMaxLmBlock = 8192;         // train.block_size (tokens per text)
inline constexpr int kMaxLmVocab = 1 << 20;      // train.vocab_size
inline constexpr int kMaxLoraRank = 1024;        // train.peft.r
inline constexpr int kMaxBootstrap = 1'000'000;  // audit.bootstrap resamples
// No list in a spec may be longer (the largest list limit above): a caller
// that copies a list into a spec may stop after kMaxListEntries + 1 entries
// and still have it refused.
inline constexpr size_t kMaxListEntries = kMaxModelFiles;

// One problem with a spec. `field` is the key path ("train.learning_rate",
// "audit.fprs[2]"; empty for the text as a whole, e.g. not YAML); `message`
// says what is wrong and quotes a value at most 100 bytes (mia::Quoted);
// `line` is 1-based in the text, 0 when unknown.
struct ConfigProblem {
  std::string field;
  std::string message;
  int line = 0;

  // "field: message (line N)".
  std::string ToString() const;
};

// Parses and validates YAML text; `path` is used in messages and to resolve
// relative paths. Every problem is collected: on failure the status is
// INVALID_ARGUMENT listing them all ("path: 3 problems: a: ...; b: ...; c:
// ..."), and `problems`, when given, receives them one by one (empty on
// success) for callers that report them as structured field violations.
absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& path,
                                   std::vector<ConfigProblem>* problems = nullptr);
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// The problem with training `epochs` passes over a pool of `pool_rows` rows
// when their product is above kMaxEpochRows (field "train.epochs", the
// message naming data.pool_size too); none otherwise. ParseConfig checks it
// when data.pool_size is given, the pipeline once the data fixes the pool.
std::optional<ConfigProblem> EpochRowsProblem(int epochs, int64_t pool_rows);

// audit.attacks when a file names neither attacks nor algorithm: for
// classifiers, and for language models.
const std::vector<std::string>& DefaultAttacks();
const std::vector<std::string>& DefaultLmAttacks();

// The checks of an attack list and an FPR list, for callers that take them
// from elsewhere than a config file (the server's signals-bundle spec). Each
// problem's field is `field` or `field[i]`; a list over its limit (kMaxAttacks,
// kMaxFprs) is one problem and its entries are not looked at.
std::vector<ConfigProblem> AttackListProblems(const std::vector<std::string>& specs,
                                              const std::string& field);
std::vector<ConfigProblem> FprListProblems(const std::vector<double>& fprs,
                                           const std::string& field);
// The ranges of the scoring options (temperature, fprs, bootstrap,
// confidence, delta, beta), each problem's field being `prefix` + the key
// ("audit." + "fprs[2]"). Attacks and targets are not looked at.
std::vector<ConfigProblem> ScoringProblems(const audit::ScoringOptions& scoring,
                                           const std::string& prefix);

// Everything that determines how a model is trained (architecture and recipe)
// as canonical JSON: part of model artifact keys and of the echoed settings.
std::string TrainingJson(const training::ModelSpec& model, const training::TrainRecipe& recipe);

// The same for a language model: architecture, tokenizer, checkpoint path,
// LoRA and recipe (the run adds the tokenizer's and checkpoint's hashes).
std::string LmTrainingJson(const LanguageModelConfig& lm);

// The settings that matter for results, as JSON (echoed into result.json).
std::string ConfigJson(const Config& config);

}  // namespace mia::pipeline

#endif  // MIA_CORE_PIPELINE_CONFIG_H_
