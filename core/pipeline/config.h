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
#include "core/audit/ramia.h"
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
  // Who may reuse the models this audit trains (part of their cache key):
  // empty for everyone who can read the data; the server sets the tenant
  // when the data is that tenant's own upload, so that another tenant never
  // gets a model trained on data it cannot read. Not a YAML key.
  std::string cache_scope;
};

struct DataConfig {
  std::string dataset;              // fashion-mnist | mnist | cifar10 | cifar100 | purchase100 | texas100 | csv | npy
  data::DataSource source;          // format and path resolved from dataset / data_dir
  int64_t pool_size = 0;            // rows models may train on (0: all rows not in the population)
  int64_t population_size = 0;      // rows no model trains on, for RMIA / Attack-P (0: none)
  bool shuffle = false;             // pick pool and population at random (seeded), not as
                                    // contiguous blocks [0, pool) and [pool, pool + population)
  // Set by ParseConfig for a Privacy Meter config (audit.algorithm) whose
  // attack needs a population and that sizes neither it nor the pool: the
  // last quarter of the rows (rows / 4) are the population.
  bool population_quarter = false;
};

struct ExternalModels {
  std::vector<std::string> torchscript;  // one TorchScript file per model; targets first
  std::string keep;                      // .npy [models, pool] bool: who trained on which pool row
};

// A dataset usage audit (DUCI, audit.duci; docs/duci.md): instead of the
// membership game, a game that trains one target per fraction (times
// run.num_experiments) on that known fraction of a candidate dataset X (the
// audit points) and estimates each fraction from the attacks, debiased on the
// references.
struct DuciConfig {
  std::vector<double> fractions = {0, 0.25, 0.5, 0.75, 1};  // each in [0, 1]
};

struct AuditConfig {
  int num_ref_models = 4;           // reference models besides the targets
  std::string device = "auto";      // inference device
  int batch_size = 1024;            // inference batch size
  int64_t data_size = 0;            // audit points (0: the whole pool), balanced for target 0
  std::string report_log = "report";  // report folder, under run.log_dir
  // auto | balanced | paired | disjoint. ParseConfig resolves auto (the
  // default): balanced when every attack has its references under balanced
  // splits, else disjoint when every attack is offline and num_ref_models
  // feeds it (Privacy Meter's 1 target + 1 reference); a parsed Config never
  // holds "auto".
  std::string splits = "auto";
  bool splits_auto = false;         // true when auto chose `splits`
  training::QueryAugmentation augmentation;  // test-time queries for signals
  audit::ScoringOptions scoring;    // attacks, temperature, fprs, bootstrap, epsilon
  // Set for a range audit (RaMIA): YAML `ramia` (top level, as Privacy Meter
  // writes it) or `audit.ramia`. docs/config.md, "Range membership".
  std::optional<audit::RamiaOptions> ramia;
  std::optional<DuciConfig> duci;   // set: a DUCI audit (audit.duci)
  // The privacy gate (audit.policy); its FPRs are added to scoring.fprs.
  audit::PolicySpec policy;
};

// DP auditing in one run (Steinke, Nasr, Jagielski 2023; ATTACKS.md, "DP
// auditing in one run"): `audit.dp_audit` (or Privacy Meter's top-level
// `dp_audit`). m canaries from the pool, each in the target's training set
// with probability 1/2 (seeded); references never train on a canary; the
// canaries' scores from each attack turn into guesses and epsilon lower
// bounds for a grid of (k+, k-). docs/dp.md, "DP auditing in one run".
struct DpAuditGuess {
  int64_t k_plus = 0;   // guess IN for the k+ highest scores
  int64_t k_minus = 0;  // guess OUT for the k- lowest scores
};

struct DpAuditConfig {
  // "mislabelled": canaries are pool rows relabelled (seeded) to another
  // class (Privacy Meter's cifar10_canary, for any classifier dataset);
  // "natural": pool rows as they are (Privacy Meter's none).
  std::string canary_dataset = "mislabelled";
  int64_t canary_size = 0;  // m: canaries drawn from the pool (seeded); required
  // "nondp" or "dp" (the target trains with DP-SGD: train.dp, or Privacy
  // Meter's defaults when train.dp is absent).
  std::string training_alg = "nondp";
  // (k+, k-) splits to bound; empty: metrics::DefaultOneRunGrid(m). The
  // largest bound over Privacy Meter's own grid (steps of floor(sqrt(m)),
  // chosen after looking at the scores) is always added and marked so.
  std::vector<DpAuditGuess> grid;
  double delta = 1e-5;  // delta of the (epsilon, delta) claim audited, in [0, 0.5]
  double beta = 0.05;   // the bounds hold with probability 1 - beta, in [1e-9, 0.5]
  // Set when training_alg is dp and train.dp is absent: the target trains
  // with Privacy Meter's DP-SGD defaults (kDpAuditDefault*), said in the report.
  bool dp_defaults = false;
};
// Privacy Meter's DP-SGD settings for `dp_audit.training_alg: dp` (Opacus).
inline constexpr double kDpAuditDefaultNoiseMultiplier = 0.5;
inline constexpr double kDpAuditDefaultMaxGradNorm = 1.0;

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
  // train.data_on_device (TrainContext::data_on_device); unset: on a GPU.
  std::optional<bool> data_on_device;
  bool channels_last = false;  // train.channels_last (TrainContext::channels_last)
  ExternalModels external;          // non-empty: audit these models, train nothing
  AuditConfig audit;
  // Set for a DP audit in one run (audit.dp_audit or top-level dp_audit).
  std::optional<DpAuditConfig> dp_audit;
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
// Range audits (ramia.*; docs/config.md, "Range membership").
inline constexpr int kMaxRamiaSampleSize = 1024;         // ramia.sample_size
inline constexpr int kMaxRamiaMissingFeatures = 4096;    // ramia.num_missing_feats, col_ranges
inline constexpr size_t kMaxRamiaTransformations = 16;   // ramia.transformations entries
inline constexpr double kMaxRamiaRadius = 1e6;           // ramia.radius
// Sampled feature values held at once (ranges x sample_size x features per
// row), checked once the data is loaded, before any training (2 GB of floats).
inline constexpr int64_t kMaxRamiaSampledValues = 500'000'000;
// DP-SGD (train.dp.*): each in (0, max].
inline constexpr double kMaxNoiseMultiplier = 1e6;  // train.dp.noise_multiplier
inline constexpr double kMaxTargetEpsilon = 1e3;    // train.dp.target_epsilon
inline constexpr double kMaxGradNorm = 1e6;         // train.dp.max_grad_norm
// DP auditing in one run: canaries (dp_audit.canary_size; Privacy Meter's own
// grid of (k+, k-) has about m/2 entries, each bounded by bisection) and
// dp_audit.grid entries.
inline constexpr int64_t kMaxDpAuditCanaries = 100'000;
inline constexpr size_t kMaxDpAuditGrid = 64;
inline constexpr size_t kMaxDuciFractions = 64;  // audit.duci.fractions entries
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
// `duci`: the file is run as a DUCI audit (`mia duci`, as Privacy Meter's
// run_duci.py runs an ordinary config): audit.duci with its defaults when the
// file has none.
absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& path,
                                   std::vector<ConfigProblem>* problems = nullptr,
                                   bool duci = false);
absl::StatusOr<Config> LoadConfigFile(const std::string& path, bool duci = false);

// The problem with training `epochs` passes over a pool of `pool_rows` rows
// when their product is above kMaxEpochRows (field "train.epochs", the
// message naming data.pool_size too); none otherwise. ParseConfig checks it
// when data.pool_size is given, the pipeline once the data fixes the pool.
std::optional<ConfigProblem> EpochRowsProblem(int epochs, int64_t pool_rows);

// A DUCI audit's models: its targets (one per audit.duci.fractions entry,
// each run.num_experiments times) and its references, 2 x
// audit.num_ref_models as Privacy Meter's run_duci.py takes, raised to the
// least even count at which each reference, attacked with the others, has
// the references every attack needs on each side (at least 4; 6 for LiRA).
int DuciTargetModels(const Config& config);
int DuciReferenceModels(const Config& config);

// audit.attacks when a file names neither attacks nor algorithm: for
// classifiers, and for language models.
const std::vector<std::string>& DefaultAttacks();
const std::vector<std::string>& DefaultLmAttacks();
// audit.attacks of a dp_audit spec that names none: offline attacks only.
const std::vector<std::string>& DefaultDpAuditAttacks();

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
