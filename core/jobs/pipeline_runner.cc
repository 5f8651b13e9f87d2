#include "core/jobs/pipeline_runner.h"

#include <cmath>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/jobs/job_spec.h"
#include "core/jobs/pipeline_progress.h"
#include "core/pipeline/pipeline.h"

namespace mia::jobs {

PipelineJobRunner::PipelineJobRunner(PipelineJobRunnerOptions options)
    : options_(std::move(options)) {}

absl::StatusOr<RunOutcome> PipelineJobRunner::Run(const JobRecord& job, const RunContext& ctx) {
  MIA_ASSIGN_OR_RETURN(pipeline::Config config, DecodePipelineSpec(job.spec_json));
  return RunConfig(std::move(config), ctx);
}

absl::StatusOr<RunOutcome> PipelineJobRunner::RunConfig(pipeline::Config config,
                                                        const RunContext& ctx) {
  if (ctx.work_dir.empty()) {
    return absl::FailedPreconditionError("pipeline audit: the job has no work folder");
  }
  if (!options_.artifact_dir.empty()) config.run.log_dir = options_.artifact_dir;
  if (config.run.threads == 0) config.run.threads = ctx.compute_threads;

  pipeline::PipelineContext pctx;
  pctx.cancel = ctx.cancel;
  pctx.artifact_remote = options_.artifact_remote;
  pctx.report_dir = (std::filesystem::path(ctx.work_dir) / "report").string();
  PipelineProgressMapper mapper;  // the pipeline's callback is serialized
  pctx.progress = [&ctx, &mapper](const pipeline::Progress& p) {
    if (ctx.progress) ctx.progress(mapper.Map(p));
  };
  MIA_ASSIGN_OR_RETURN(pipeline::PipelineOutput output, pipeline::RunAudit(config, pctx));

  for (const pipeline::ModelRecord& model : output.models) {
    if (model.source == "trained" && std::isfinite(model.report.seconds)) {
      ctx.metrics->OnModelTrained(model.report.seconds);
    }
    if (!model.key.empty() && ctx.unit_done) {
      MIA_RETURN_IF_ERROR(ctx.unit_done(absl::StrCat("model:", model.index), model.key));
    }
  }
  return RunOutcome{output.report_dir};
}

}  // namespace mia::jobs
