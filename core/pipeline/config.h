// The audit configuration: what `mia audit --config FILE.yaml` runs. The YAML
// keeps Privacy Meter's sections (run, audit, train, data) and their meanings,
// plus what mia adds (attacks, splits, augmentation, metrics, models trained
// elsewhere). Every key, its default and an example: docs/config.md.
//
// Parsing is strict: an unknown key or a value of the wrong type or range is an
// error naming the key path ("train.learning_rate"). Plain data; no I/O besides
// reading the file in LoadConfigFile.
#ifndef MIA_CORE_PIPELINE_CONFIG_H_
#define MIA_CORE_PIPELINE_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/audit/scoring.h"
#include "core/data/loaders.h"
#include "core/training/engine.h"

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

  int num_models() const {
    return external.torchscript.empty() ? run.num_experiments + audit.num_ref_models
                                        : static_cast<int>(external.torchscript.size());
  }
};

// Parses YAML text; `path` is used in messages and to resolve relative paths.
absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& path);
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// Everything that determines how a model is trained (architecture and recipe)
// as canonical JSON: part of model artifact keys and of the echoed settings.
std::string TrainingJson(const training::ModelSpec& model, const training::TrainRecipe& recipe);

// The settings that matter for results, as JSON (echoed into result.json).
std::string ConfigJson(const Config& config);

}  // namespace mia::pipeline

#endif  // MIA_CORE_PIPELINE_CONFIG_H_
