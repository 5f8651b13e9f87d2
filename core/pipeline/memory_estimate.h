// Torch-free estimates of the peak memory of an audit, for admission checks
// before a job is queued (the server's memory budget, see
// core/common/memory_budget.h). An estimate is a sizing, not an account: it
// counts what dominates (the dataset as floats, each model's weights,
// gradients, optimizer state and activations for models trained at once, the
// logits and signals of every model on every audited point) so that a spec
// asking for tens of gigabytes is refused with a number instead of running
// the machine out of memory.
//
// Free functions on plain values; safe from any thread.
#ifndef MIA_CORE_PIPELINE_MEMORY_ESTIMATE_H_
#define MIA_CORE_PIPELINE_MEMORY_ESTIMATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/pipeline/config.h"
#include "core/training/engine.h"

namespace mia::pipeline {

// What the models are built for, and how many rows the dataset has.
struct DataShape {
  std::vector<int64_t> sample_shape;  // {D} tabular, {C, H, W} images
  int64_t classes = 2;
  int64_t rows = 0;  // examples the loader will hold (an estimate from file sizes)
};

// Learnable parameters of `spec` for the input, as core/models builds it
// (weights and biases; batch-norm scales and shifts). InvalidArgument naming
// the field for an architecture that does not take this input.
absl::StatusOr<uint64_t> ParameterCount(const training::ModelSpec& spec,
                                        const std::vector<int64_t>& sample_shape, int64_t classes);

// Floats of activations one training example keeps for the backward pass
// (layer outputs, before and after their nonlinearity), approximately.
absl::StatusOr<uint64_t> ActivationsPerExample(const training::ModelSpec& spec,
                                               const std::vector<int64_t>& sample_shape,
                                               int64_t classes);

// Bytes to train one model: 4-byte parameters, their gradients and the
// optimizer's state (SGD with momentum: 1 copy, Adam/AdamW: 2), plus the
// activations of a batch and their gradients.
absl::StatusOr<uint64_t> TrainingBytesPerModel(const training::ModelSpec& spec,
                                               const training::TrainRecipe& recipe,
                                               const std::vector<int64_t>& sample_shape,
                                               int64_t classes);

struct MemoryEstimate {
  uint64_t bytes = 0;  // the estimated peak
  // What was estimated, by settings and sizes only (never data), for the
  // message of a refusal: "training 'mlp' with hidden [65536, 65536] (...)".
  std::string what;
};

// The peak of a pipeline audit of `config` on data of `shape` with
// `concurrent_models` models trained at once (lanes, or a batched group):
// the dataset as floats + the models in training + the logits (4 bytes) and
// signals (8 bytes per kind) of every model on the audited and population
// points + the metrics of one attack's scores (10 bytes per audited point and
// metrics::BootstrapPeakBytes for audit.bootstrap on run.threads). InvalidArgument when the
// architecture does not take the data.
absl::StatusOr<MemoryEstimate> EstimatePipelineMemory(const Config& config, const DataShape& shape,
                                                      int concurrent_models);

// The data's shape without loading it: sample shape and classes of the named
// datasets; for npy the arrays' headers (io::ReadArrayInfos); for csv the
// first line (classes are then unknown until loaded and taken as 2). Rows are
// estimated from the size of the files (the smallest a row can be on disk;
// gzip files by the decompressed size their trailer records),
// so a missing or unreadable path gives 0 rows, and the loader reports the
// problem when the job runs.
DataShape ProbeDataShape(const Config& config);

}  // namespace mia::pipeline

#endif  // MIA_CORE_PIPELINE_MEMORY_ESTIMATE_H_
