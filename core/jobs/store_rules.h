// Rules every JobStore implementation applies the same way (SqliteJobStore,
// PostgresJobStore): how ids appear in messages, state changes with their
// times, which records may change, valid progress. Internal to core/jobs.
#ifndef MIA_CORE_JOBS_STORE_RULES_H_
#define MIA_CORE_JOBS_STORE_RULES_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/jobs/job.h"

namespace mia::jobs::store_rules {

// The states a jobs row may have (the CHECK of both stores' jobs table). Rows
// with any other state (written past the CHECK, by hand or by another tool)
// are left out of listings and reported by ListUnreadable, so that one bad
// row does not hide every other job.
inline constexpr const char* kValidStates =
    "('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')";

// The columns both stores' ReadJob expect, in order.
inline constexpr const char* kJobColumns =
    "id, request_id, spec_json, spec_hash, state, version, progress_stage, progress_done, "
    "progress_total, progress_fraction, progress_detail, create_time, start_time, end_time, "
    "error_code, error_message, result_dir, priority, tenant";

// Longest request_id and unit name a store accepts.
constexpr size_t kMaxRequestIdBytes = 256;
constexpr size_t kMaxUnitBytes = 256;

// An id or request id as it may appear in a message: verbatim when it is a
// valid job id, else escaped and shortened (it may come from a client).
std::string Quoted(absl::string_view text);

// Moves `r` to `to` (legality checked) and sets the times the lifecycle
// implies: start_time the first time it runs, end_time when it ends.
absl::Status ApplyStateChange(JobRecord* r, JobState to, absl::Time now);

// FailedPrecondition for a finished job: it does not change any more.
absl::Status CheckWritable(const JobRecord& stored);

// InvalidArgument for a fraction outside [0, 1] or negative counts.
absl::Status ValidateProgress(const JobProgress& p);

// What JobStore::Update stores: `record` checked against the `stored` one
// (Aborted for another version, FailedPrecondition for a finished job or an
// illegal state change, InvalidArgument for a changed immutable field), its
// state change applied with its times, the version bumped.
absl::StatusOr<JobRecord> UpdatedRecord(const JobRecord& stored, const JobRecord& record,
                                        absl::Time now);

}  // namespace mia::jobs::store_rules

#endif  // MIA_CORE_JOBS_STORE_RULES_H_
