#include "server/job_router.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/jobs/job_spec.h"
#include "server/result_loader.h"
#include "server/shared_store.h"

namespace mia::server {
namespace {

// Models trained on a tenant's own upload are shared with no other tenant
// (pipeline::RunConfig::cache_scope); data under the server's data roots is
// readable by every tenant, so its models are shared.
void ScopeCache(const jobs::JobRecord& job, const ServerRoots& roots, pipeline::Config* config) {
  if (job.tenant.empty() || roots.artifact_dir.empty()) return;
  const std::string& path = config->data.source.path;
  const std::string& uploads = roots.artifact_dir;
  if (path.size() > uploads.size() && path.compare(0, uploads.size(), uploads) == 0 &&
      path[uploads.size()] == '/') {
    config->run.cache_scope = job.tenant;
  }
}

}  // namespace

RoutingJobRunner::RoutingJobRunner(ServerRoots roots, jobs::JobRunner* bundle,
                                   jobs::PipelineConfigRunner* pipeline)
    : roots_(std::move(roots)), bundle_(bundle), pipeline_(pipeline) {}

absl::StatusOr<jobs::RunOutcome> RoutingJobRunner::Run(const jobs::JobRecord& job,
                                                       const jobs::RunContext& ctx) {
  absl::StatusOr<mia::v1::AuditSpec> proto = SpecProtoFromJson(job.spec_json);
  if (!proto.ok()) return proto.status();
  absl::StatusOr<JobSpec> spec = SpecFromProto(*proto, roots_);
  if (!spec.ok()) return spec.status();

  jobs::JobRecord routed = job;
  absl::StatusOr<jobs::RunOutcome> outcome;
  if (spec->kind == JobSpec::Kind::kBundle) {
    routed.spec_json = jobs::EncodeBundleSpec(spec->bundle);
    outcome = bundle_->Run(routed, ctx);
  } else if (pipeline_ == nullptr) {
    return absl::UnimplementedError(
        "this server was built without LibTorch and cannot train models; audit a "
        "signals_bundle instead, or use a server built with LibTorch");
  } else {
    ScopeCache(job, roots_, &spec->config);
    outcome = pipeline_->RunConfig(std::move(spec->config), ctx);
  }
  // The report is complete: record its files, so that one deleted later is
  // reported missing (ListReportFiles) instead of the report passing as whole.
  if (outcome.ok()) {
    if (absl::Status listed = WriteReportManifest(outcome->result_dir); !listed.ok()) {
      return listed;
    }
    // Other replicas serve it from the shared store (an error, UNAVAILABLE
    // when the store is down, fails the run so that it is tried again).
    if (roots_.shared_store != nullptr) {
      if (absl::Status shared = PublishReport(*roots_.shared_store, job.id, outcome->result_dir);
          !shared.ok()) {
        return absl::Status(shared.code(),
                            absl::StrCat("the report could not be put in the shared artifact "
                                         "store (",
                                         absl::StatusCodeToString(shared.code()), ")"));
      }
    }
  }
  return outcome;
}

absl::StatusOr<std::string> RoutingJobRunner::RunUnit(const jobs::JobRecord& job,
                                                      const std::string& unit,
                                                      const jobs::RunContext& ctx) {
  absl::StatusOr<mia::v1::AuditSpec> proto = SpecProtoFromJson(job.spec_json);
  if (!proto.ok()) return proto.status();
  absl::StatusOr<JobSpec> spec = SpecFromProto(*proto, roots_);
  if (!spec.ok()) return spec.status();
  if (spec->kind == JobSpec::Kind::kBundle || pipeline_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("audit ", job.id, " has no units of work on this server"));
  }
  ScopeCache(job, roots_, &spec->config);
  return pipeline_->RunUnitConfig(std::move(spec->config), unit, ctx);
}

}  // namespace mia::server
