// The JobRunner of mia-server: jobs store their spec as the API's AuditSpec
// (proto3 JSON, so GetAudit can return it), while the core runners take the
// job-layer spec of core/jobs/job_spec.h. RoutingJobRunner converts one into
// the other with spec_convert.h, re-checking the spec against today's roots (an
// operator may have changed them since the job was accepted), puts the job's
// files in place, and hands the job to the bundle runner or, in builds with
// LibTorch, the pipeline runner, which gets the validated configuration as a
// typed value (PipelineConfigRunner), not JSON to parse again. The store keeps
// the spec's JSON, for restarts. A job that succeeds gets its report manifest
// (result_loader.h WriteReportManifest).
//
// Thread-safety: Run() may be called from several workers at once; the
// router holds only immutable settings and the runners, which allow that too.
#ifndef MIA_SERVER_JOB_ROUTER_H_
#define MIA_SERVER_JOB_ROUTER_H_

#include "core/jobs/job_manager.h"
#include "core/jobs/pipeline_runner.h"
#include "server/spec_convert.h"

namespace mia::server {

class RoutingJobRunner final : public jobs::JobRunner {
 public:
  // `bundle` runs signals-bundle audits; `pipeline` runs training audits and
  // is null in builds without LibTorch (such jobs then fail UNIMPLEMENTED).
  // Neither is owned; both must outlive the router.
  RoutingJobRunner(ServerRoots roots, jobs::JobRunner* bundle,
                   jobs::PipelineConfigRunner* pipeline);

  absl::StatusOr<jobs::RunOutcome> Run(const jobs::JobRecord& job,
                                       const jobs::RunContext& ctx) override;
  // Cluster mode: a unit of a training audit, converted as Run converts.
  absl::StatusOr<std::string> RunUnit(const jobs::JobRecord& job, const std::string& unit,
                                      const jobs::RunContext& ctx) override;

 private:
  const ServerRoots roots_;
  jobs::JobRunner* const bundle_;
  jobs::PipelineConfigRunner* const pipeline_;
};

}  // namespace mia::server

#endif  // MIA_SERVER_JOB_ROUTER_H_
