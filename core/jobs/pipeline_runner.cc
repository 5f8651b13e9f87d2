#include "core/jobs/pipeline_runner.h"

#include <cmath>
#include <filesystem>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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
  if (ctx.cluster != nullptr) {
    const std::vector<int> models = pipeline::UnitModels(config);
    if (!models.empty()) MIA_RETURN_IF_ERROR(RunUnits(config, models, ctx));
  }

  pipeline::PipelineContext pctx;
  pctx.cancel = ctx.cancel;
  pctx.artifact_remote = options_.artifact_remote;
  pctx.report_dir = (std::filesystem::path(ctx.work_dir) / "report").string();
  PipelineProgressMapper mapper;  // the pipeline's callback is serialized
  // The pipeline reports every batch of every model (tens of thousands of
  // events for small models); watchers need a change of stage or count at
  // once, and the rest ten times a second. Forwarding all of them cost more
  // than training small models (docs/benchmarks.md, "Several replicas").
  JobProgress last;
  absl::Time last_sent = absl::InfinitePast();
  pctx.progress = [&](const pipeline::Progress& p) {
    if (!ctx.progress) return;
    JobProgress mapped = mapper.Map(p);
    const absl::Time now = absl::Now();
    if (mapped.stage == last.stage && mapped.done == last.done && mapped.total == last.total &&
        now - last_sent < absl::Milliseconds(100)) {
      return;
    }
    last = mapped;
    last_sent = now;
    ctx.progress(mapped);
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

namespace {

constexpr absl::string_view kModelUnit = "model:";

// Retries a call to the shared queue while the database is unreachable
// (Unavailable), up to about a minute, checking for cancellation.
template <typename Call>
auto WithRetries(const RunContext& ctx, Call call) -> decltype(call()) {
  auto result = call();
  for (int attempt = 0; attempt < 60 && !ctx.cancelled(); ++attempt) {
    absl::Status status;
    if constexpr (std::is_same_v<decltype(result), absl::Status>) {
      status = result;
    } else {
      status = result.status();
    }
    if (!absl::IsUnavailable(status)) break;
    absl::SleepFor(absl::Seconds(1));
    result = call();
  }
  return result;
}

}  // namespace

absl::StatusOr<std::string> PipelineJobRunner::RunUnit(const JobRecord& job,
                                                       const std::string& unit,
                                                       const RunContext& ctx) {
  MIA_ASSIGN_OR_RETURN(pipeline::Config config, DecodePipelineSpec(job.spec_json));
  return RunUnitConfig(std::move(config), unit, ctx);
}

absl::StatusOr<std::string> PipelineJobRunner::RunUnitConfig(pipeline::Config config,
                                                             const std::string& unit,
                                                             const RunContext& ctx) {
  int model = -1;
  if (!absl::StartsWith(unit, kModelUnit) ||
      !absl::SimpleAtoi(absl::string_view(unit).substr(kModelUnit.size()), &model) || model < 0) {
    return absl::InvalidArgumentError(absl::StrCat("job ", ctx.job_id, ": no unit named ", unit));
  }
  if (!options_.artifact_dir.empty()) config.run.log_dir = options_.artifact_dir;
  if (config.run.threads == 0) config.run.threads = ctx.compute_threads;
  return RunModelUnit(std::move(config), model, ctx);
}

absl::StatusOr<std::string> PipelineJobRunner::RunModelUnit(pipeline::Config config, int model,
                                                            const RunContext& ctx) {
  pipeline::PipelineContext pctx;
  pctx.cancel = ctx.cancel;
  pctx.artifact_remote = options_.artifact_remote;
  pctx.only_models = {model};
  MIA_ASSIGN_OR_RETURN(pipeline::PipelineOutput output, pipeline::RunAudit(config, pctx));
  if (output.models.size() != 1) {
    return absl::InternalError("a unit of work ran other than its one model");
  }
  const pipeline::ModelRecord& record = output.models.front();
  if (record.source == "trained" && std::isfinite(record.report.seconds)) {
    ctx.metrics->OnModelTrained(record.report.seconds);
  }
  return record.key;
}

absl::Status PipelineJobRunner::RunUnits(const pipeline::Config& config,
                                         const std::vector<int>& models, const RunContext& ctx) {
  std::vector<std::string> names;
  for (int m : models) names.push_back(absl::StrCat(kModelUnit, m));
  MIA_RETURN_IF_ERROR(
      WithRetries(ctx, [&] { return ctx.cluster->AddUnits(ctx.job_id, names); }));
  const int64_t total = static_cast<int64_t>(names.size());
  int64_t reported = -1;
  PipelineProgressMapper mapper;
  while (true) {
    if (ctx.cancelled()) return absl::CancelledError("stopped while its units ran");
    // Run one of this audit's units here if one is waiting.
    if (ctx.claiming) ctx.claiming(true);
    absl::StatusOr<std::optional<ClaimedUnit>> claimed =
        ctx.cluster->ClaimUnit(ctx.replica, ctx.lease, ctx.job_id);
    if (claimed.ok() && claimed->has_value()) {
      const ClaimedUnit unit = **claimed;
      if (ctx.running) ctx.running(unit, true);
      if (ctx.claiming) ctx.claiming(false);
      // Marked not running once this iteration is over, however it ends.
      struct Done {
        const RunContext& ctx;
        const ClaimedUnit& unit;
        ~Done() {
          if (ctx.running) ctx.running(unit, false);
        }
      } done_marker{ctx, unit};
      int model = -1;
      absl::SimpleAtoi(absl::string_view(unit.unit).substr(kModelUnit.size()), &model);
      absl::StatusOr<std::string> value = RunModelUnit(config, model, ctx);
      if (value.ok()) {
        absl::Status done = WithRetries(
            ctx, [&] { return ctx.cluster->CompleteUnit(unit, ctx.replica, *value).status(); });
        if (!done.ok()) {  // never left held: back to the queue for another try
          ctx.cluster->FailUnit(unit, ctx.replica, absl::StatusCodeToString(done.code()), 3)
              .IgnoreError();
        }
      } else if (absl::IsCancelled(value.status()) || ctx.cancelled()) {
        // Not left held by this replica, whose heartbeat would renew it.
        ctx.cluster->ReleaseUnit(unit, ctx.replica).IgnoreError();
        return absl::CancelledError("stopped while its units ran");
      } else if (absl::IsUnavailable(value.status())) {
        // The shared store is down for now: tried again later, no attempt
        // counted (JobManager::RunClusterUnit does the same).
        for (int i = 0; i < 20 && !ctx.cancelled(); ++i) absl::SleepFor(absl::Milliseconds(100));
        ctx.cluster->ReleaseUnit(unit, ctx.replica).IgnoreError();
      } else {
        ctx.cluster
            ->FailUnit(unit, ctx.replica, absl::StatusCodeToString(value.status().code()), 3)
            .IgnoreError();
      }
      continue;
    }
    if (ctx.claiming) ctx.claiming(false);
    absl::StatusOr<UnitCounts> counts = ctx.cluster->CountUnits(ctx.job_id);
    if (counts.ok()) {
      if (counts->failed > 0) {
        return absl::AbortedError(absl::StrCat(counts->failed, " of ", total,
                                               " models failed on every attempt (see the "
                                               "replicas' logs)"));
      }
      if (counts->done != reported && ctx.progress) {
        reported = counts->done;
        pipeline::Progress p;
        p.stage = "train";
        p.done = counts->done;
        p.total = total;
        p.detail = absl::StrCat(counts->done, "/", total, " models done on the replicas");
        ctx.progress(mapper.Map(p));
      }
      if (counts->done >= total) return absl::OkStatus();
    }
    // Wait for the other replicas, checking for a cancel now and then.
    for (int i = 0; i < 5 && !ctx.cancelled(); ++i) absl::SleepFor(absl::Milliseconds(100));
  }
}

}  // namespace mia::jobs
