// Rules every JobStore implementation applies the same way (SqliteJobStore,
// PostgresJobStore): how ids appear in messages, state changes with their
// times, which records may change, valid progress. Internal to core/jobs.
#ifndef MIA_CORE_JOBS_STORE_RULES_H_
#define MIA_CORE_JOBS_STORE_RULES_H_

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/jobs/job.h"
#include "core/jobs/job_store.h"

namespace mia::jobs::store_rules {

// The states a jobs row may have (the CHECK of both stores' jobs table). Rows
// with any other state (written past the CHECK, by hand or by another tool)
// are left out of listings and reported by ListUnreadable, so that one bad
// row does not hide every other job.
inline constexpr const char* kValidStates =
    "('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')";

// One schema step of a store. Steps are applied in order, each once, inside
// the transaction that records it in schema_migrations; a released step is
// never edited: changes are new steps.
struct Migration {
  int version;
  const char* name;
  const char* sql;
};

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

// What JobStore::Create stores: `record` checked (id, spec_hash, PENDING,
// request_id length, progress) with version 1 and, when unset, create_time
// from `clock`.
absl::StatusOr<JobRecord> NewRecord(const JobRecord& record,
                                    const std::function<absl::Time()>& clock);

// A Create whose (tenant, request_id) is taken by `existing`: that job
// (created = false) when the specs match, else AlreadyExists naming the
// request id and the job, never the spec.
absl::StatusOr<CreateResult> RepeatedRequest(JobRecord existing, const JobRecord& record);

// JobStore::Transition on the stored `job`: the state change with its times,
// the details it records, the version bumped. InvalidArgument for FAILED
// without an error code (check it before reading: ValidateTransition).
absl::Status ValidateTransition(absl::string_view id, JobState to,
                                const TransitionDetails& details);
absl::Status ApplyTransition(JobRecord* job, JobState to, const TransitionDetails& details,
                             absl::Time now);

// List's paging: the page size clamped to ListOptions' limits and the cursor
// of options.page_token (InvalidArgument for a token of another state
// filter); then the page from the rows read (page_size + 1 of them at most)
// with its next_page_token.
struct PageRequest {
  int page_size = ListOptions::kDefaultPageSize;
  std::optional<PageCursor> cursor;
};
absl::StatusOr<PageRequest> ReadPageRequest(const ListOptions& options);
JobPage MakePage(std::vector<JobRecord> rows, int page_size, const ListOptions& options);

}  // namespace mia::jobs::store_rules

#endif  // MIA_CORE_JOBS_STORE_RULES_H_
