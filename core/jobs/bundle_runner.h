// Runs bundle audits (JobSpecKind::kBundle, see job_spec.h): load a signals
// bundle, score it with the spec's attacks, judge the spec's policy (when it
// has one, as the pipeline judges audit.policy: the result carries the
// verdict), write the report into the job's work folder. No training, no
// LibTorch: the runner of torch-free servers.
//
// Thread-safety: Run() may be called from several workers at once; the runner
// holds only its options.
#ifndef MIA_CORE_JOBS_BUNDLE_RUNNER_H_
#define MIA_CORE_JOBS_BUNDLE_RUNNER_H_

#include <string>

#include "core/io/npy.h"
#include "core/jobs/job_manager.h"
#include "core/report/report.h"

namespace mia::jobs {

struct BundleJobRunnerOptions {
  // Size limits for reading bundles (the server sets them from its flags).
  io::ReadLimits limits;
  // How the report's plots are drawn.
  report::ReportOptions report;
  // Recorded in result.json; empty: this build's version.
  std::string tool_version;
};

class BundleJobRunner final : public JobRunner {
 public:
  explicit BundleJobRunner(BundleJobRunnerOptions options = {});

  // Stages: "load", "attack", "report", then the manager's "done". Checks the
  // cancel flag between stages (scoring itself takes seconds, not minutes).
  // Writes the report files into ctx.work_dir/report and returns that folder.
  // Errors: the spec's (InvalidArgument), the bundle's (NotFound,
  // InvalidArgument, ResourceExhausted), scoring's, the report writer's.
  absl::StatusOr<RunOutcome> Run(const JobRecord& job, const RunContext& ctx) override;

 private:
  const BundleJobRunnerOptions options_;
};

}  // namespace mia::jobs

#endif  // MIA_CORE_JOBS_BUNDLE_RUNNER_H_
