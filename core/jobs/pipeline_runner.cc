#include "core/jobs/pipeline_runner.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/jobs/job_spec.h"
#include "core/pipeline/pipeline.h"

namespace mia::jobs {
namespace {

// Where each pipeline stage sits in the overall fraction, and its job-level
// name (JobProgress::stage). Training dominates an audit that trains.
struct StageSpan {
  const char* pipeline_stage;
  const char* job_stage;
  double begin;
  double end;
};
constexpr StageSpan kStages[] = {
    {"data", "load", 0.0, 0.03},     {"split", "load", 0.03, 0.05},
    {"train", "train", 0.05, 0.80},  {"signals", "signals", 0.80, 0.90},
    {"audit", "attack", 0.90, 0.97}, {"report", "report", 0.97, 1.0},
};

JobProgress ToJobProgress(const pipeline::Progress& p) {
  JobProgress out;
  out.stage = p.stage;
  out.done = p.done;
  out.total = p.total;
  out.detail = p.detail;
  for (const StageSpan& span : kStages) {
    if (p.stage != span.pipeline_stage) continue;
    out.stage = span.job_stage;
    const double share = p.total > 0 ? static_cast<double>(p.done) / p.total : 0;
    out.fraction = span.begin + (span.end - span.begin) * std::min(1.0, std::max(0.0, share));
    break;
  }
  // Outside "train" and "signals" the counts are steps of a stage, not
  // models; reporting them as the job's units would mislead.
  if (out.stage != "train" && out.stage != "signals") out.done = out.total = 0;
  return out;
}

}  // namespace

PipelineJobRunner::PipelineJobRunner(PipelineJobRunnerOptions options)
    : options_(std::move(options)) {}

absl::StatusOr<RunOutcome> PipelineJobRunner::Run(const JobRecord& job, const RunContext& ctx) {
  if (ctx.work_dir.empty()) {
    return absl::FailedPreconditionError("pipeline audit: the job has no work folder");
  }
  MIA_ASSIGN_OR_RETURN(pipeline::Config config, DecodePipelineSpec(job.spec_json));
  if (!options_.artifact_dir.empty()) config.run.log_dir = options_.artifact_dir;
  if (config.run.threads == 0) config.run.threads = ctx.compute_threads;

  pipeline::PipelineContext pctx;
  pctx.cancel = ctx.cancel;
  pctx.report_dir = (std::filesystem::path(ctx.work_dir) / "report").string();
  pctx.progress = [&ctx](const pipeline::Progress& p) {
    if (ctx.progress) ctx.progress(ToJobProgress(p));
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
