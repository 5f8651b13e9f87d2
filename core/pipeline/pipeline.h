// The whole audit, as `mia audit --config` runs it:
//   load dataset -> split -> train (or load) models -> signals -> attacks ->
//   metrics -> report
// Trained models and signals are reused from the artifact store under
// run.log_dir whenever their key matches.
//
// RunAudit blocks its calling thread; progress and cancellation go through
// the context. Not reentrant for the same log_dir.
#ifndef MIA_CORE_PIPELINE_PIPELINE_H_
#define MIA_CORE_PIPELINE_PIPELINE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/audit/result.h"
#include "core/pipeline/config.h"

namespace mia::storage {
class ObjectStore;  // core/storage/object_store.h
}  // namespace mia::storage

namespace mia::pipeline {

// One progress event. Stages: "data", "split", "train", "signals", "audit", "report".
struct Progress {
  std::string stage;
  int64_t done = 0;      // e.g. models trained so far
  int64_t total = 0;     // e.g. models to train
  std::string detail;    // e.g. "epoch 3/20 batch 12/59" (never data values)
  // Share of this stage done, in [0, 1], when finer than done/total (training
  // reports it per batch of every model); negative: use done/total.
  double stage_fraction = -1;
};

struct PipelineContext {
  std::function<void(const Progress&)> progress;
  const std::atomic<bool>* cancel = nullptr;
  std::string report_dir;  // overrides run.log_dir/audit.report_log when non-empty
  // Non-empty: run only these models' unit of work (indices from UnitModels):
  // train each (or find it in the artifact store) and compute its signals
  // into the store, then return without attacking or reporting;
  // PipelineOutput::models then lists only these models. Replicas that share
  // an audit run its units this way, and the scoring run that follows finds
  // every model and its signals in the shared store.
  std::vector<int> only_models;
  // A store shared with other servers (--artifact_store) that the model cache
  // under run.log_dir mirrors (artifact_store.h); null: local only.
  std::shared_ptr<storage::ObjectStore> artifact_remote;
};

// Per-model record for models.json.
struct ModelRecord {
  int index = 0;               // model index in the audit (targets first)
  bool target = false;
  std::string key;             // artifact key (empty for TorchScript models)
  std::string source;          // "trained", "cache" or the TorchScript path
  int64_t train_rows = 0;
  training::ModelReport report;
};

struct PipelineOutput {
  audit::AuditResult result;
  std::vector<ModelRecord> models;
  std::string report_dir;
  int models_trained = 0;      // trained in this run (not from the cache)
};

absl::StatusOr<PipelineOutput> RunAudit(const Config& config, const PipelineContext& ctx);

// The models of an audit that can be trained as separate units of work
// (PipelineContext::only_models), by index: every model of a classifier
// audit (targets first). Empty when the audit runs as one piece: language
// models, external TorchScript models, and the DP-audit, DUCI and range
// games.
std::vector<int> UnitModels(const Config& config);

}  // namespace mia::pipeline

#endif  // MIA_CORE_PIPELINE_PIPELINE_H_
