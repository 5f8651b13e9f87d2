#include "server/job_router.h"

#include <utility>

#include "core/jobs/job_spec.h"

namespace mia::server {

RoutingJobRunner::RoutingJobRunner(ServerRoots roots, jobs::JobRunner* bundle,
                                   jobs::JobRunner* pipeline)
    : roots_(std::move(roots)), bundle_(bundle), pipeline_(pipeline) {}

absl::StatusOr<jobs::RunOutcome> RoutingJobRunner::Run(const jobs::JobRecord& job,
                                                       const jobs::RunContext& ctx) {
  absl::StatusOr<mia::v1::AuditSpec> proto = SpecProtoFromJson(job.spec_json);
  if (!proto.ok()) return proto.status();
  absl::StatusOr<JobSpec> spec = SpecFromProto(*proto, roots_);
  if (!spec.ok()) return spec.status();
  PlaceJobFiles(&*spec, ctx.work_dir);

  jobs::JobRecord routed = job;
  if (spec->kind == JobSpec::Kind::kBundle) {
    jobs::BundleAuditSpec bundle;
    bundle.bundle_path = spec->bundle.bundle_path;
    bundle.scoring = spec->bundle.scoring;
    bundle.all_targets = spec->bundle.all_targets;
    routed.spec_json = jobs::EncodeBundleSpec(bundle);
    return bundle_->Run(routed, ctx);
  }
  if (pipeline_ == nullptr) {
    return absl::UnimplementedError(
        "this server was built without LibTorch and cannot train models; audit a "
        "signals_bundle instead, or use a server built with LibTorch");
  }
  routed.spec_json = spec->config_json;
  return pipeline_->Run(routed, ctx);
}

}  // namespace mia::server
