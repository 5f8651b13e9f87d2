// Results, jobs and error codes as API messages: plain conversions from
// core's types (audit results, job records, canonical status code names).
// Nothing here depends on gRPC. Free functions; safe from any thread.
#ifndef MIA_SERVER_RESULT_CONVERT_H_
#define MIA_SERVER_RESULT_CONVERT_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/audit/result.h"
#include "core/jobs/job.h"
#include "mia/v1/audit.pb.h"

namespace mia::server {

// The figures of `result` as an API message. Conventions, for values core
// marks as missing:
// - an Interval (auc_ci, tpr_at_fpr[].ci) is set only when both ends are
//   finite (the bootstrap off or failed: unset);
// - an unresolved TPR has resolved = false and neither tpr nor ci set;
// - `epsilon` is unset when no bound could be computed (NaN); its threshold
//   may be +Infinity; its delta comes from result.spec_json when stated there
//   (audit.delta, epsilon.delta or delta);
// - any other NaN stays NaN (proto3 doubles and their JSON carry it).
// Each ROC is downsampled with metrics::DownsampleLogFpr to about roc_points
// points on a log-spaced FPR grid from 1e-5, so the low-FPR region survives.
void ResultToProto(const audit::AuditResult& result, mia::v1::AuditResult* out,
                   int roc_points = 300);

// JobState <-> Audit.State.
mia::v1::Audit::State StateToProto(jobs::JobState state);
// STATE_UNSPECIFIED (and unknown values) give nullopt: "any state" as a filter.
std::optional<jobs::JobState> StateFromProto(mia::v1::Audit::State state);

// The API view of a job. `result` (may be null) is set only for a SUCCEEDED
// job; `error` only for a FAILED one (its field_path taken from a message that
// starts with "spec.<path>: ", its stage from the job's last progress stage).
// `view`: BASIC omits the spec and the ROC curves; FULL and UNSPECIFIED
// include them (callers resolve a method's default before calling). INTERNAL
// when the stored spec does not parse; `out` is then complete but for it.
absl::Status JobToProto(const jobs::JobRecord& job, const audit::AuditResult* result,
                        mia::v1::AuditView view, mia::v1::Audit* out);

// Canonical code names, as google.rpc.Code and Error.code spell them:
// "INVALID_ARGUMENT", "NOT_FOUND", ... (kOk: "OK").
std::string StatusCodeName(absl::StatusCode code);
// The inverse; nullopt for any other text.
std::optional<absl::StatusCode> StatusCodeFromName(absl::string_view name);
// The status a stored error stands for (an unknown code name reads UNKNOWN).
absl::Status StatusFromError(absl::string_view code_name, absl::string_view message);

}  // namespace mia::server

#endif  // MIA_SERVER_RESULT_CONVERT_H_
