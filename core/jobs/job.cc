#include "core/jobs/job.h"

#include "absl/strings/str_cat.h"

namespace mia::jobs {

absl::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kPending:
      return "PENDING";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";  // unreachable for valid enum values
}

std::optional<JobState> ParseJobState(absl::string_view name) {
  for (JobState s : {JobState::kPending, JobState::kRunning, JobState::kSucceeded,
                     JobState::kFailed, JobState::kCancelled}) {
    if (JobStateName(s) == name) return s;
  }
  return std::nullopt;
}

bool IsTerminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

bool IsLegalTransition(JobState from, JobState to) {
  switch (from) {
    case JobState::kPending:
      return to == JobState::kRunning || to == JobState::kCancelled;
    case JobState::kRunning:
      // Back to PENDING: the server restarted (or drained) while it ran.
      return to == JobState::kSucceeded || to == JobState::kFailed || to == JobState::kCancelled ||
             to == JobState::kPending;
    case JobState::kSucceeded:
    case JobState::kFailed:
    case JobState::kCancelled:
      return false;
  }
  return false;
}

absl::Status CheckTransition(absl::string_view job_id, JobState from, JobState to) {
  if (IsLegalTransition(from, to)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("job ", job_id, ": cannot go from ",
                                                    JobStateName(from), " to ", JobStateName(to)));
}

absl::Status ValidateJobId(absl::string_view id) {
  constexpr size_t kMaxLength = 63;
  if (id.empty() || id.size() > kMaxLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("job id: must have 1 to ", kMaxLength, " characters (has ", id.size(), ")"));
  }
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          "job id: only lowercase letters, digits and '-' are allowed");
    }
  }
  if (id.front() == '-' || id.back() == '-') {
    return absl::InvalidArgumentError("job id: must not start or end with '-'");
  }
  return absl::OkStatus();
}

}  // namespace mia::jobs
