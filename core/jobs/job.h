// A job as the store keeps it: the transport-free record behind an API
// `Audit` (server/ converts between the two in one place). Plain data plus the
// lifecycle rules every store and the scheduler share.
//
// Lifecycle: PENDING -> RUNNING | CANCELLED; RUNNING -> SUCCEEDED | FAILED |
// CANCELLED | PENDING (requeued after a crash or a drain). SUCCEEDED, FAILED
// and CANCELLED are final.
//
// Free functions; safe from any thread.
#ifndef MIA_CORE_JOBS_JOB_H_
#define MIA_CORE_JOBS_JOB_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mia::jobs {

enum class JobState {
  kPending,    // accepted, waiting for a worker (or requeued)
  kRunning,    // a worker owns it
  kSucceeded,  // finished with a result
  kFailed,     // finished with an error
  kCancelled,  // stopped on request
};

// "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED": the API's enum
// value names, also how stores persist the state.
absl::string_view JobStateName(JobState state);
// The inverse of JobStateName; nullopt for any other text.
std::optional<JobState> ParseJobState(absl::string_view name);

// SUCCEEDED, FAILED and CANCELLED: nothing about the job changes any more.
bool IsTerminal(JobState state);

// Whether `from` -> `to` is a legal step of the lifecycle above. Staying in
// the same state is not a transition (false).
bool IsLegalTransition(JobState from, JobState to);

// OkStatus for a legal step, else FailedPrecondition naming the job and both
// states ("job abc: cannot go from SUCCEEDED to RUNNING").
absl::Status CheckTransition(absl::string_view job_id, JobState from, JobState to);

// Job ids become the `{id}` of "audits/{id}" and folder names under the data
// directory: 1 to 63 characters of lowercase letters, digits and '-',
// neither starting nor ending with '-'. InvalidArgument otherwise (the message
// does not echo the id).
absl::Status ValidateJobId(absl::string_view id);

// How far a job got; mirrors the API's Progress.
struct JobProgress {
  std::string stage;  // "queued", "load", "train", "signals", "attack", "metrics", "report", "done"
  int64_t done = 0;   // units finished in this job (e.g. models trained or reused)
  int64_t total = 0;  // units the job needs in all (0: unknown or none)
  double fraction = 0;  // overall completion estimate in [0, 1]
  std::string detail;   // one human-readable line; never data values
};

// Everything the store persists about one job. Times are absl::InfinitePast()
// while unset.
struct JobRecord {
  std::string id;          // the `{id}` of "audits/{id}" (see ValidateJobId); immutable
  std::string request_id;  // client idempotency key; empty when none; immutable
  std::string spec_json;   // the AuditSpec as JSON, as accepted; opaque to the store; immutable
  std::string spec_hash;   // SHA-256 hex of the canonical spec: idempotency compares it; immutable
  JobState state = JobState::kPending;  // lifecycle position
  int64_t version = 0;   // 1 after Create, +1 on every write; optimistic-concurrency token
  JobProgress progress;  // last reported progress
  absl::Time create_time = absl::InfinitePast();  // when created; immutable
  absl::Time start_time = absl::InfinitePast();   // first time it became RUNNING
  absl::Time end_time = absl::InfinitePast();     // when it reached a terminal state
  std::string error_code;     // FAILED (or CANCELLED): canonical code name, "INTERNAL", ...
  std::string error_message;  // FAILED (or CANCELLED): why, for humans; never data values
  std::string result_dir;     // SUCCEEDED: folder of the result and report files
  int priority = 0;           // higher runs first among pending jobs
  std::map<std::string, std::string> labels;  // client labels, stored verbatim
  // The tenant that owns the job (see server/auth); empty on a server without
  // authentication. Immutable. request_id is unique per tenant.
  std::string tenant;
};

}  // namespace mia::jobs

#endif  // MIA_CORE_JOBS_JOB_H_
