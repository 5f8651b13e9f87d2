// Parts shared by every JobStore implementation: page tokens and the rules of
// store_rules.h.
#include "core/jobs/job_store.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/jobs/store_rules.h"

namespace mia::jobs {
namespace {

// A version tag first, so the format can change without old tokens being
// misread: "p1|<create_time unix nanos>|<state name or empty>|<id>".
constexpr absl::string_view kTokenVersion = "p1";

absl::Status Malformed() {
  return absl::InvalidArgumentError("page_token: malformed (use the next_page_token of a page)");
}

}  // namespace

std::string EncodePageToken(const PageCursor& cursor) {
  const std::string raw =
      absl::StrCat(kTokenVersion, "|", absl::ToUnixNanos(cursor.create_time), "|",
                   cursor.state.has_value() ? JobStateName(*cursor.state) : "", "|", cursor.id);
  return absl::WebSafeBase64Escape(raw);
}

absl::StatusOr<PageCursor> DecodePageToken(absl::string_view token) {
  std::string raw;
  if (token.size() > 512 || !absl::WebSafeBase64Unescape(token, &raw)) return Malformed();
  const std::vector<absl::string_view> parts = absl::StrSplit(raw, absl::MaxSplits('|', 3));
  if (parts.size() != 4 || parts[0] != kTokenVersion) return Malformed();
  PageCursor cursor;
  int64_t nanos = 0;
  if (!absl::SimpleAtoi(parts[1], &nanos)) return Malformed();
  cursor.create_time = absl::FromUnixNanos(nanos);
  if (!parts[2].empty()) {
    cursor.state = ParseJobState(parts[2]);
    if (!cursor.state.has_value()) return Malformed();
  }
  if (!ValidateJobId(parts[3]).ok()) return Malformed();
  cursor.id = std::string(parts[3]);
  return cursor;
}

}  // namespace mia::jobs

namespace mia::jobs::store_rules {

std::string Quoted(absl::string_view text) {
  if (ValidateJobId(text).ok()) return std::string(text);
  constexpr size_t kMaxShown = 64;
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kMaxShown)),
                      text.size() > kMaxShown ? "...\"" : "\"");
}

absl::Status ApplyStateChange(JobRecord* r, JobState to, absl::Time now) {
  absl::Status legal = CheckTransition(r->id, r->state, to);
  if (!legal.ok()) return legal;
  r->state = to;
  if (to == JobState::kRunning && r->start_time == absl::InfinitePast()) r->start_time = now;
  if (IsTerminal(to) && r->end_time == absl::InfinitePast()) r->end_time = now;
  return absl::OkStatus();
}

absl::Status CheckWritable(const JobRecord& stored) {
  if (!IsTerminal(stored.state)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "job ", stored.id, " is ", JobStateName(stored.state), ": a finished job does not change"));
}

absl::Status ValidateProgress(const JobProgress& p) {
  if (!(p.fraction >= 0 && p.fraction <= 1)) {
    return absl::InvalidArgumentError("progress.fraction: must be in [0, 1]");
  }
  if (p.done < 0 || p.total < 0) {
    return absl::InvalidArgumentError("progress.done, progress.total: must be >= 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<JobRecord> UpdatedRecord(const JobRecord& stored, const JobRecord& record,
                                        absl::Time now) {
  if (stored.version != record.version) {
    return absl::AbortedError(absl::StrCat("job ", stored.id, " changed: version is ",
                                           stored.version, ", the update was based on ",
                                           record.version, " (re-read and retry)"));
  }
  if (absl::Status writable = CheckWritable(stored); !writable.ok()) return writable;
  if (record.request_id != stored.request_id || record.spec_json != stored.spec_json ||
      record.spec_hash != stored.spec_hash || record.create_time != stored.create_time ||
      record.tenant != stored.tenant) {
    return absl::InvalidArgumentError(
        absl::StrCat("job ", stored.id,
                     ": id, request_id, spec_json, spec_hash, create_time and tenant are "
                     "immutable"));
  }
  JobRecord next = record;
  next.state = stored.state;
  if (record.state != stored.state) {
    if (absl::Status changed = ApplyStateChange(&next, record.state, now); !changed.ok()) {
      return changed;
    }
  }
  next.version = stored.version + 1;
  return next;
}

absl::StatusOr<JobRecord> NewRecord(const JobRecord& record,
                                    const std::function<absl::Time()>& clock) {
  if (absl::Status id = ValidateJobId(record.id); !id.ok()) return id;
  if (record.spec_hash.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("job ", record.id, ": spec_hash is required"));
  }
  if (record.state != JobState::kPending) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job ", record.id, ": a new job must be PENDING, not ", JobStateName(record.state)));
  }
  if (record.request_id.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id: at most ", kMaxRequestIdBytes, " bytes"));
  }
  if (absl::Status progress = ValidateProgress(record.progress); !progress.ok()) return progress;
  JobRecord stored = record;
  stored.version = 1;
  if (stored.create_time == absl::InfinitePast()) stored.create_time = clock();
  return stored;
}

absl::StatusOr<CreateResult> RepeatedRequest(JobRecord existing, const JobRecord& record) {
  if (existing.spec_hash == record.spec_hash) return CreateResult{std::move(existing), false};
  return absl::AlreadyExistsError(absl::StrCat("request_id ", Quoted(record.request_id),
                                               " was already used for job ", existing.id,
                                               " with a different spec"));
}

absl::Status ValidateTransition(absl::string_view id, JobState to,
                                const TransitionDetails& details) {
  if (to == JobState::kFailed && details.error_code.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("job ", Quoted(id), ": a transition to FAILED needs an error code"));
  }
  return absl::OkStatus();
}

absl::Status ApplyTransition(JobRecord* job, JobState to, const TransitionDetails& details,
                             absl::Time now) {
  if (absl::Status changed = ApplyStateChange(job, to, now); !changed.ok()) return changed;
  if (to == JobState::kFailed || to == JobState::kCancelled) {
    job->error_code = details.error_code;
    job->error_message = details.error_message;
  }
  if (!details.result_dir.empty()) job->result_dir = details.result_dir;
  ++job->version;
  return absl::OkStatus();
}

absl::StatusOr<PageRequest> ReadPageRequest(const ListOptions& options) {
  PageRequest request;
  request.page_size = options.page_size;
  if (request.page_size <= 0) request.page_size = ListOptions::kDefaultPageSize;
  if (request.page_size > ListOptions::kMaxPageSize) request.page_size = ListOptions::kMaxPageSize;
  if (!options.page_token.empty()) {
    absl::StatusOr<PageCursor> cursor = DecodePageToken(options.page_token);
    if (!cursor.ok()) return cursor.status();
    if (cursor->state != options.state) {
      return absl::InvalidArgumentError(
          "page_token: issued for a different state filter (keep the filter while paging)");
    }
    request.cursor = *std::move(cursor);
  }
  return request;
}

JobPage MakePage(std::vector<JobRecord> rows, int page_size, const ListOptions& options) {
  JobPage page;
  page.jobs = std::move(rows);
  if (static_cast<int>(page.jobs.size()) > page_size) {
    page.jobs.pop_back();
    const JobRecord& last = page.jobs.back();
    page.next_page_token = EncodePageToken({last.create_time, last.id, options.state});
  }
  return page;
}

}  // namespace mia::jobs::store_rules
