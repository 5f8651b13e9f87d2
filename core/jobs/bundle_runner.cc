#include "core/jobs/bundle_runner.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/audit/bundle.h"
#include "core/audit/policy.h"
#include "core/audit/scoring.h"
#include "core/common/status_macros.h"
#include "core/common/version.h"
#include "core/jobs/job_spec.h"

namespace mia::jobs {
namespace {

// Shares of the overall fraction: loading is I/O, scoring dominates.
constexpr double kLoadEnd = 0.1;
constexpr double kAttackEnd = 0.9;

absl::Status CheckCancel(const RunContext& ctx) {
  if (ctx.cancelled()) return absl::CancelledError("bundle audit stopped");
  return absl::OkStatus();
}

void Report(const RunContext& ctx, const std::string& stage, int64_t done, int64_t total,
            double fraction, std::string detail) {
  if (!ctx.progress) return;
  JobProgress p;
  p.stage = stage;
  p.done = done;
  p.total = total;
  p.fraction = fraction;
  p.detail = std::move(detail);
  ctx.progress(p);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

BundleJobRunner::BundleJobRunner(BundleJobRunnerOptions options) : options_(std::move(options)) {}

absl::StatusOr<RunOutcome> BundleJobRunner::Run(const JobRecord& job, const RunContext& ctx) {
  if (ctx.work_dir.empty()) {
    return absl::FailedPreconditionError("bundle audit: the job has no work folder");
  }
  MIA_ASSIGN_OR_RETURN(BundleAuditSpec spec, DecodeBundleSpec(job.spec_json));
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));

  const auto load_start = std::chrono::steady_clock::now();
  Report(ctx, "load", 0, 0, 0, "reading the bundle");
  MIA_ASSIGN_OR_RETURN(const audit::Bundle bundle,
                       audit::LoadBundle(spec.bundle_path, options_.limits));
  const double load_seconds = SecondsSince(load_start);
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));

  audit::ScoringOptions scoring = spec.scoring;
  scoring.cancel = ctx.cancel;
  if (spec.all_targets) {
    scoring.targets.clear();
    for (int m = 0; m < bundle.models(); ++m) scoring.targets.push_back(m);
  }
  const int64_t targets = static_cast<int64_t>(scoring.targets.empty() ? bundle.targets.size()
                                                                       : scoring.targets.size());
  const int64_t total = targets * static_cast<int64_t>(scoring.attacks.size());
  Report(ctx, "attack", 0, 0, kLoadEnd,
         absl::StrCat(bundle.models(), " models, ", bundle.points(), " audit points"));
  int64_t done = 0;
  // ScoreBundle reports once per (attack, target) it finished, plus stage
  // notes; only the former count as units.
  // The job's units (done/total) count models, and a bundle audit trains
  // none: the attack count goes into the detail line only.
  auto on_stage = [&](const std::string& stage) {
    if (absl::StartsWith(stage, "attack ")) ++done;
    const double share = total > 0 ? static_cast<double>(done) / total : 0;
    Report(ctx, "attack", 0, 0, kLoadEnd + (kAttackEnd - kLoadEnd) * share,
           absl::StrCat(done, "/", total, " attack runs; ", stage));
  };
  MIA_ASSIGN_OR_RETURN(audit::AuditResult result, audit::ScoreBundle(bundle, scoring, on_stage));
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));

  Report(ctx, "report", 0, 0, kAttackEnd, "writing the report");
  result.tool_version = options_.tool_version.empty() ? MIA_VERSION : options_.tool_version;
  result.spec_json = job.spec_json;
  result.timings.insert(result.timings.begin(), {"load", load_seconds});
  // The privacy gate, judged as the pipeline judges audit.policy.
  if (spec.policy.enabled) {
    MIA_ASSIGN_OR_RETURN(audit::PolicyVerdict verdict, audit::Judge(result, spec.policy));
    result.policy = std::move(verdict);
  }
  const std::string out_dir = (std::filesystem::path(ctx.work_dir) / "report").string();
  MIA_RETURN_IF_ERROR(report::WriteReport(result, out_dir, options_.report));
  return RunOutcome{out_dir};
}

}  // namespace mia::jobs
