// Durable storage of jobs: their records, their lifecycle and the units of
// work they completed, so that a restarted server resumes where it stopped.
//
// JobStore is the interface the scheduler and the service use; SqliteJobStore
// is the embedded default (one file, WAL, every write durable before the call
// returns). A PostgreSQL store for several replicas can implement the same
// interface later.
//
// Errors are absl::Status with canonical codes: NotFound (no such job),
// InvalidArgument (a bad record, id or page token), AlreadyExists (an id in
// use, or a request_id reused with a different spec), FailedPrecondition (an
// illegal state change, a write to a finished job, deleting an unfinished
// one, a file that is not a job store), Aborted (optimistic-concurrency
// conflict: re-read and retry), Unavailable (the database is busy or the disk
// failed: retry later), DataLoss (corruption). Messages name job ids, request
// ids and states only; never spec contents or labels.
#ifndef MIA_CORE_JOBS_JOB_STORE_H_
#define MIA_CORE_JOBS_JOB_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/jobs/job.h"

struct sqlite3;  // from <sqlite3.h>, kept out of this header

namespace mia::jobs {

// What Create returns: the job and whether this call created it.
struct CreateResult {
  JobRecord job;         // as stored (version, create_time filled in)
  bool created = false;  // false: an earlier Create with the same request_id made it
};

// Paging and filtering for List.
struct ListOptions {
  // Most jobs per page; <= 0 means kDefaultPageSize, more than kMaxPageSize
  // means kMaxPageSize.
  int page_size = 0;
  // next_page_token of the previous page; empty for the first page.
  std::string page_token;
  // Only jobs in this state; nullopt: all. Must not change between pages.
  std::optional<JobState> state;
  // Only jobs of this tenant; nullopt: every tenant's. Must not change
  // between pages.
  std::optional<std::string> tenant;

  static constexpr int kDefaultPageSize = 50;
  static constexpr int kMaxPageSize = 1000;
};

// One page of List.
struct JobPage {
  std::vector<JobRecord> jobs;  // in (create_time, id) order
  std::string next_page_token;  // empty on the last page
};

// What a state change records besides the state.
struct TransitionDetails {
  std::string error_code;     // required for FAILED, optional for CANCELLED
  std::string error_message;  // FAILED / CANCELLED: why
  std::string result_dir;     // SUCCEEDED: where the result is; empty keeps the stored one
};

// Thread-safety: implementations are safe to call from any number of threads
// at once; each call is atomic (all of it happens or none does).
class JobStore {
 public:
  virtual ~JobStore() = default;

  // Stores a new job in state PENDING with version 1. `record.create_time`
  // is filled from the store's clock when it is InfinitePast. Idempotent by
  // (tenant, request_id): when a job of the same tenant with the same
  // non-empty request_id exists, returns
  // it (created = false) if its spec_hash matches, else AlreadyExists naming
  // the request_id. A new job whose id is taken is AlreadyExists.
  // InvalidArgument for a bad id, an empty spec_hash, a state other than
  // PENDING or a request_id over 256 bytes.
  virtual absl::StatusOr<CreateResult> Create(const JobRecord& record) = 0;

  // The job with this id, or NotFound.
  virtual absl::StatusOr<JobRecord> Get(absl::string_view id) = 0;

  // Jobs in (create_time, id) order, a page at a time. Page tokens are opaque
  // (base64 of the last job's create_time and id, and the filter); one that
  // does not decode, or was issued for another state filter, is
  // InvalidArgument. Jobs created after a listing started appear on later
  // pages; none is returned twice.
  virtual absl::StatusOr<JobPage> List(const ListOptions& options) = 0;

  // Replaces the mutable fields of a job (state, progress, start and end
  // times, error, result_dir, priority, labels) if `record.version` equals
  // the stored version, and bumps the version; returns the stored record.
  // Aborted when the versions differ (someone else wrote first: re-read and
  // retry). A state change must be legal (FailedPrecondition) and sets the
  // start/end time as Transition does. A finished job cannot be updated
  // (FailedPrecondition); changing an immutable field is InvalidArgument.
  virtual absl::StatusOr<JobRecord> Update(const JobRecord& record) = 0;

  // Moves a job to `to` if the lifecycle allows it (else FailedPrecondition)
  // and bumps its version. RUNNING sets start_time the first time; a terminal
  // state sets end_time. FAILED needs details.error_code (InvalidArgument).
  virtual absl::StatusOr<JobRecord> Transition(absl::string_view id, JobState to,
                                               const TransitionDetails& details) = 0;

  // Records progress and bumps the version. FailedPrecondition for a finished
  // job (a late report after a cancel must not change it). Each call is one
  // durable write: report per model or every few seconds, not per batch.
  virtual absl::StatusOr<JobRecord> UpdateProgress(absl::string_view id,
                                                   const JobProgress& progress) = 0;

  // Removes a finished job with its labels and units. FailedPrecondition for
  // a PENDING or RUNNING job; NotFound when there is none.
  virtual absl::Status Delete(absl::string_view id) = 0;

  // Every PENDING and RUNNING job, highest priority first, then in creation
  // order: what a restarted server must resume.
  virtual absl::StatusOr<std::vector<JobRecord>> ListUnfinished() = 0;

  // Records that a unit of work of an unfinished job is done ("model:3") with
  // a value (e.g. the artifact key of the trained model); marking a unit
  // again replaces its value. Does not change the job's version. NotFound for
  // an unknown job, FailedPrecondition for a finished one, InvalidArgument for
  // an empty unit name.
  virtual absl::Status MarkUnitDone(absl::string_view job_id, absl::string_view unit,
                                    absl::string_view value) = 0;

  // The units a job has done, unit -> value. NotFound for an unknown job.
  virtual absl::StatusOr<std::map<std::string, std::string>> ListUnitsDone(
      absl::string_view job_id) = 0;

  // How many jobs of `tenant` (nullopt: of every tenant) are in `state`:
  // for per-tenant quotas.
  // (Every store implements these; the defaults serve test doubles.)
  virtual absl::StatusOr<int64_t> CountJobs(const std::optional<std::string>& /*tenant*/,
                                            JobState /*state*/) {
    return absl::UnimplementedError("CountJobs");
  }

  // Uploads: which tenant uploaded which content-addressed artifact
  // ("sha256:<hex>"), so that a tenant reads and references only its own
  // uploads, and how many bytes each tenant's uploads hold (a quota). Recording
  // the same (tenant, digest) again changes nothing. InvalidArgument for an
  // empty digest or negative size.
  virtual absl::Status RecordUpload(absl::string_view /*tenant*/, absl::string_view /*digest*/,
                                    int64_t /*bytes*/) {
    return absl::UnimplementedError("RecordUpload");
  }
  virtual absl::StatusOr<bool> HasUpload(absl::string_view /*tenant*/,
                                         absl::string_view /*digest*/) {
    return absl::UnimplementedError("HasUpload");
  }
  virtual absl::StatusOr<int64_t> UploadBytes(absl::string_view /*tenant*/) {
    return absl::UnimplementedError("UploadBytes");
  }

  // Ids of stored jobs that cannot be read as jobs (e.g. a state the
  // lifecycle does not know, written by hand). List and ListUnfinished leave
  // them out so that the rest is served; Get of one is DataLoss. The server
  // reports them at start.
  virtual absl::StatusOr<std::vector<std::string>> ListUnreadable() {
    return std::vector<std::string>();
  }
  // False while writes fail because the store cannot be written at all (a
  // read-only file or file system), true again after a write succeeds. A
  // full disk does not count: it fails each write with ResourceExhausted and
  // heals without help. For readiness: such a store still serves reads.
  virtual bool writable() const { return true; }
  // A write that changes no job: whether the store can be written now. Like
  // any write it updates writable(), so a store that became writable again
  // says so without waiting for a job to be written (the server probes a
  // store that is not writable() this way, periodically, for readiness).
  virtual absl::Status ProbeWrite() { return absl::OkStatus(); }
};

// Settings of SqliteJobStore::Open.
struct SqliteJobStoreOptions {
  // How long a call waits for a lock held by another connection (another
  // process with the same file open) before failing with Unavailable.
  absl::Duration busy_timeout = absl::Seconds(5);
  // The clock for create, start and end times. Injected so tests control
  // time; must be safe to call from any thread.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Open the file for reading only (to inspect a store; every write is then
  // FailedPrecondition "... is read-only"). A file the process may not write
  // is opened this way too, without being asked.
  bool read_only = false;
  // Most bytes the database may grow to (a quota on a shared disk); a write
  // beyond it fails as on a full disk, ResourceExhausted. 0: no limit.
  int64_t max_bytes = 0;
  // Called when writable() changes, on the thread whose write changed it, with
  // no lock of the store held; must be cheap and must not call the store.
  std::function<void(bool writable)> on_writable_change;
};

// JobStore on one SQLite database file.
//
// Durability: WAL journal with synchronous=FULL, and every write in its own
// transaction, so a call that returned OK survives a crash or power loss of
// the process or machine (kill -9 included).
//
// Thread-safety: one connection, guarded by one absl::Mutex: calls from many
// threads are serialized (SQLite writes serialize anyway). Another process
// may open the same file (e.g. the sqlite3 shell to inspect it); its locks
// are waited for up to busy_timeout. Two servers must not share one file:
// use the PostgreSQL store for replicas.
//
// Schema: versioned migrations recorded in the schema_migrations table and
// applied at Open; the file is marked with a mia application_id, so another
// application's database is refused rather than modified.
class SqliteJobStore final : public JobStore {
 public:
  // Opens (creating if missing) the database at `path` and brings its schema
  // up to date. FailedPrecondition when the file is not an SQLite database,
  // belongs to another application, or has a newer schema than this build
  // knows; Unavailable when it cannot be opened now.
  static absl::StatusOr<std::unique_ptr<SqliteJobStore>> Open(
      const std::string& path, const SqliteJobStoreOptions& options = {});

  ~SqliteJobStore() override;
  SqliteJobStore(const SqliteJobStore&) = delete;
  SqliteJobStore& operator=(const SqliteJobStore&) = delete;

  // The schema version this build creates and understands.
  static int LatestSchemaVersion();

  absl::StatusOr<CreateResult> Create(const JobRecord& record) override;
  absl::StatusOr<JobRecord> Get(absl::string_view id) override;
  absl::StatusOr<JobPage> List(const ListOptions& options) override;
  absl::StatusOr<JobRecord> Update(const JobRecord& record) override;
  absl::StatusOr<JobRecord> Transition(absl::string_view id, JobState to,
                                       const TransitionDetails& details) override;
  absl::StatusOr<JobRecord> UpdateProgress(absl::string_view id,
                                           const JobProgress& progress) override;
  absl::Status Delete(absl::string_view id) override;
  absl::StatusOr<std::vector<JobRecord>> ListUnfinished() override;
  absl::Status MarkUnitDone(absl::string_view job_id, absl::string_view unit,
                            absl::string_view value) override;
  absl::StatusOr<std::map<std::string, std::string>> ListUnitsDone(
      absl::string_view job_id) override;
  absl::StatusOr<int64_t> CountJobs(const std::optional<std::string>& tenant,
                                    JobState state) override;
  absl::Status RecordUpload(absl::string_view tenant, absl::string_view digest,
                            int64_t bytes) override;
  absl::StatusOr<bool> HasUpload(absl::string_view tenant, absl::string_view digest) override;
  absl::StatusOr<int64_t> UploadBytes(absl::string_view tenant) override;
  absl::StatusOr<std::vector<std::string>> ListUnreadable() override;
  bool writable() const override { return writable_.load(); }
  // A write transaction that rewrites the latest schema_migrations row with
  // its own values. FailedPrecondition without writing for a store opened
  // for reading only (it never becomes writable: reopen it).
  absl::Status ProbeWrite() override;

 private:
  SqliteJobStore(sqlite3* db, std::string path, SqliteJobStoreOptions options);

  // The writes; the public methods run them through Tracked.
  absl::StatusOr<CreateResult> CreateImpl(const JobRecord& record);
  absl::StatusOr<JobRecord> UpdateImpl(const JobRecord& record);
  absl::StatusOr<JobRecord> TransitionImpl(absl::string_view id, JobState to,
                                           const TransitionDetails& details);
  absl::StatusOr<JobRecord> UpdateProgressImpl(absl::string_view id, const JobProgress& progress);
  absl::Status DeleteImpl(absl::string_view id);
  absl::Status ProbeWriteImpl();
  absl::Status MarkUnitDoneImpl(absl::string_view job_id, absl::string_view unit,
                                absl::string_view value);
  absl::Status RecordUploadImpl(absl::string_view tenant, absl::string_view digest,
                                int64_t bytes);
  // Keeps writable_ current from the outcome of a write (called without mu_):
  // false after a read-only failure, true after a success.
  void Track(const absl::Status& status);
  template <typename T>
  absl::StatusOr<T> Tracked(absl::StatusOr<T> result) {
    Track(result.status());
    return result;
  }
  absl::Status Tracked(absl::Status status) {
    Track(status);
    return status;
  }

  const std::string path_;  // for messages
  const SqliteJobStoreOptions options_;
  absl::Mutex mu_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);  // owned; closed by the destructor
  std::atomic<bool> writable_{true};
  bool read_only_ = false;  // opened for reading only: never writable
};

// Page tokens shared by JobStore implementations: the position after the last
// job of a page plus the filter it was issued for, as unpadded web-safe
// base64. Decode returns InvalidArgument for anything Encode did not produce
// (the message never echoes the token).
struct PageCursor {
  absl::Time create_time;         // of the last job returned
  std::string id;                 // of the last job returned
  std::optional<JobState> state;  // the filter of the listing
};
std::string EncodePageToken(const PageCursor& cursor);
absl::StatusOr<PageCursor> DecodePageToken(absl::string_view token);

}  // namespace mia::jobs

#endif  // MIA_CORE_JOBS_JOB_STORE_H_
