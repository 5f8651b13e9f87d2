// Runs pipeline audits (JobSpecKind::kPipeline, see job_spec.h) with
// pipeline::RunAudit: load the dataset, train or reuse models, compute
// signals, attack, report. Needs LibTorch: the target exists only when
// MIA_WITH_TORCH is ON (this header itself includes no torch header).
//
// Resuming: RunAudit keeps trained models in an artifact store keyed by what
// determines them, so a resumed or repeated job retrains nothing that was
// committed there; that store, not RunContext::units_done, is what lets it
// skip work. The runner still records "model:<i>" -> artifact key units when
// a run ends, for operators and for jobs that inspect them.
//
// Thread-safety: Run() may be called from several workers at once. Jobs that
// share an artifact folder may train the same model concurrently (the files
// are written atomically, so the result is right, only work is repeated).
#ifndef MIA_CORE_JOBS_PIPELINE_RUNNER_H_
#define MIA_CORE_JOBS_PIPELINE_RUNNER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/jobs/job_manager.h"
#include "core/pipeline/config.h"

namespace mia::storage {
class ObjectStore;  // core/storage/object_store.h
}  // namespace mia::storage

namespace mia::jobs {

// Runs a pipeline audit handed over as a validated configuration, a typed
// value: a caller that has validated a spec (the server's router) does not
// encode it as JSON for the runner to parse and validate again. An interface,
// torch-free, so that code built without LibTorch can hold a null one.
class PipelineConfigRunner {
 public:
  virtual ~PipelineConfigRunner() = default;

  // `config` comes from pipeline::ParseConfig. Safe from several workers at
  // once.
  virtual absl::StatusOr<RunOutcome> RunConfig(pipeline::Config config, const RunContext& ctx) = 0;
  // One unit of work of such an audit (JobRunner::RunUnit), on its validated
  // configuration.
  virtual absl::StatusOr<std::string> RunUnitConfig(pipeline::Config config,
                                                    const std::string& unit,
                                                    const RunContext& ctx) = 0;
};

struct PipelineJobRunnerOptions {
  // Non-empty: replaces every spec's run.log_dir, so that all jobs share one
  // artifact store (the server's data directory) instead of writing where a
  // client said. Empty: the spec's run.log_dir is used as given.
  std::string artifact_dir;
  // A store shared with other servers (--artifact_store) that the model
  // cache mirrors: models and signals found there are downloaded instead of
  // recomputed, and those made here are put there (pipeline::ArtifactStore).
  // Null: the local cache only.
  std::shared_ptr<storage::ObjectStore> artifact_remote;
};

class PipelineJobRunner final : public JobRunner, public PipelineConfigRunner {
 public:
  explicit PipelineJobRunner(PipelineJobRunnerOptions options = {});

  // Stages (mapped from the pipeline's): "load" (data, split), "train",
  // "signals", "attack", "report", then the manager's "done"; done/total count
  // models in "train" and "signals". The report goes to ctx.work_dir/report.
  // run.threads 0 becomes ctx.compute_threads. Cancellation is checked
  // between batches and models (by the pipeline) and ends with CANCELLED.
  absl::StatusOr<RunOutcome> Run(const JobRecord& job, const RunContext& ctx) override;

  // What Run does once job.spec_json is decoded (DecodePipelineSpec).
  // Cluster mode (ctx.cluster set) and an audit that splits
  // (pipeline::UnitModels): first hands one unit per model ("model:<i>") to
  // the shared queue and runs units of this audit itself while other
  // replicas run the rest; once every unit is done, scores (every model and
  // its signals then come from the shared artifact store). Progress: stage
  // "train", done/total counting units done on any replica.
  absl::StatusOr<RunOutcome> RunConfig(pipeline::Config config, const RunContext& ctx) override;

  // Trains model <i> of "model:<i>" (or finds it in the artifact store) and
  // computes its signals; returns its artifact key.
  absl::StatusOr<std::string> RunUnit(const JobRecord& job, const std::string& unit,
                                      const RunContext& ctx) override;
  absl::StatusOr<std::string> RunUnitConfig(pipeline::Config config, const std::string& unit,
                                            const RunContext& ctx) override;

 private:
  // The pipeline run of one unit, on an already decoded config.
  absl::StatusOr<std::string> RunModelUnit(pipeline::Config config, int model,
                                           const RunContext& ctx);
  // Cluster mode: adds the audit's units and waits until all are done,
  // running its units here meanwhile.
  absl::Status RunUnits(const pipeline::Config& config, const std::vector<int>& models,
                        const RunContext& ctx);

  const PipelineJobRunnerOptions options_;
};

}  // namespace mia::jobs

#endif  // MIA_CORE_JOBS_PIPELINE_RUNNER_H_
