// JobStore and ClusterQueue on one PostgreSQL database (libpq), shared by
// several mia-server replicas: the jobs, their labels, states, progress and
// idempotency keys as SqliteJobStore keeps them (same contract, same error
// codes, see job_store.h), plus the work queue of cluster_queue.h (audits and
// their units claimed with SELECT ... FOR UPDATE SKIP LOCKED under leases
// timed by the database's clock, never the replicas').
//
// Connections: a small pool (PostgresJobStoreOptions::pool_size), opened from
// a URL "postgresql://user:password@host:port/db?param=value" (or
// "postgres://"; libpq's URI form). A connection the server closed (a restart,
// a failover) is re-established on the next call that uses it; while the
// database cannot be reached calls fail with Unavailable and nothing is lost.
// The password never appears in a message: the store names itself by the
// redacted URL "postgresql://user@host:port/db" (Describe).
//
// Schema: versioned migrations in postgres_job_store.cc, recorded in
// schema_migrations and applied at Open in one transaction under
// pg_advisory_xact_lock, so replicas starting at once apply each step once;
// a database whose schema is newer than this build is refused
// (FailedPrecondition naming both versions).
//
// Thread-safety: every method is safe from any number of threads; each call
// runs in one transaction on one pooled connection.
#ifndef MIA_CORE_JOBS_POSTGRES_JOB_STORE_H_
#define MIA_CORE_JOBS_POSTGRES_JOB_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/jobs/cluster_queue.h"
#include "core/jobs/job_store.h"

namespace mia::jobs {

// Settings of PostgresJobStore::Open.
struct PostgresJobStoreOptions {
  // Connections kept open (at most this many calls run at once; more wait).
  int pool_size = 4;
  // How long opening a connection may take before the call fails with
  // Unavailable (libpq's connect_timeout; a URL parameter overrides it).
  absl::Duration connect_timeout = absl::Seconds(5);
  // The clock for create, start and end times of jobs (leases use the
  // database's clock). Injected so tests control time.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Called when writable() changes (a read-only database: a standby, or
  // default_transaction_read_only), on the thread whose write changed it, with
  // no lock of the store held; must be cheap and must not call the store.
  std::function<void(bool writable)> on_writable_change;
};

// The URL without its password, for messages and logs:
// "postgresql://user@host:port/db". A URL libpq cannot parse gives
// "postgresql://(invalid URL)".
std::string RedactPostgresUrl(const std::string& url);

// True for "postgresql://..." and "postgres://...".
bool IsPostgresUrl(absl::string_view location);

class PostgresJobStore final : public JobStore, public ClusterQueue {
 public:
  // Connects (one connection; the rest of the pool opens on demand) and
  // brings the schema up to date. InvalidArgument for a URL libpq cannot
  // parse; Unavailable when the database cannot be reached (or refuses the
  // credentials: the message says which, without the password);
  // FailedPrecondition for a schema newer than this build knows.
  static absl::StatusOr<std::unique_ptr<PostgresJobStore>> Open(
      const std::string& url, const PostgresJobStoreOptions& options = {});

  ~PostgresJobStore() override;
  PostgresJobStore(const PostgresJobStore&) = delete;
  PostgresJobStore& operator=(const PostgresJobStore&) = delete;

  // The schema version this build creates and understands.
  static int LatestSchemaVersion();
  // The redacted URL, e.g. "postgresql://mia@db:5432/mia".
  const std::string& Describe() const { return redacted_url_; }

  // JobStore.
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
  absl::Status ProbeWrite() override;

  // ClusterQueue.
  absl::StatusOr<std::optional<JobRecord>> ClaimJob(absl::string_view replica,
                                                    absl::Duration lease) override;
  absl::Status AddUnits(absl::string_view job_id, const std::vector<std::string>& units) override;
  absl::StatusOr<std::optional<ClaimedUnit>> ClaimUnit(absl::string_view replica,
                                                       absl::Duration lease,
                                                       absl::string_view job_id = {}) override;
  absl::StatusOr<bool> CompleteUnit(const ClaimedUnit& unit, absl::string_view replica,
                                    absl::string_view value) override;
  // A failure reported by a replica that no longer holds the unit (its lease
  // expired and another replica claimed it, or it is DONE) changes nothing
  // and returns the unit's current state name.
  absl::StatusOr<std::string> FailUnit(const ClaimedUnit& unit, absl::string_view replica,
                                       absl::string_view error_code, int max_attempts) override;
  absl::StatusOr<UnitCounts> CountUnits(absl::string_view job_id) override;
  absl::StatusOr<LeaseRenewal> RenewLeases(absl::string_view replica,
                                           absl::Duration lease) override;
  absl::Status ReleaseJob(absl::string_view job_id, absl::string_view replica) override;
  absl::Status ReleaseUnits(absl::string_view replica) override;
  absl::Status ReleaseUnit(const ClaimedUnit& unit, absl::string_view replica) override;
  absl::StatusOr<JobRecord> RequestCancel(absl::string_view job_id) override;
  absl::StatusOr<int64_t> PendingUnits() override;
  absl::StatusOr<int64_t> PendingJobs() override;

  class Connection;  // one pooled libpq connection (postgres_job_store.cc)

 private:
  PostgresJobStore(std::string url, std::string redacted_url, std::string password,
                   PostgresJobStoreOptions options);

  // A pooled connection for one call, returned to the pool on destruction.
  class Lease;
  absl::StatusOr<Lease> Acquire();
  void Return(std::unique_ptr<Connection> conn);
  // Runs `body` in one transaction on a pooled connection (BEGIN retried once
  // on a fresh connection when the pooled one turns out to be closed).
  template <typename T, typename F>
  absl::StatusOr<T> InTransaction(absl::string_view what, F&& body);
  // InTransaction for a body that only writes: body(c) returns a Status.
  template <typename F>
  absl::Status InWriteTransaction(absl::string_view what, F&& body);
  absl::Status Migrate();
  // `text` with the password replaced by "***".
  std::string Scrub(absl::string_view text) const;
  // writable_ from the outcome of a write.
  void Track(const absl::Status& status);
  // Track(status), then status.
  absl::Status Tracked(absl::Status status);

  // In-memory record of what each replica claimed through this object, so
  // that RenewLeases can tell a replica the work another replica took over.
  void Remember(absl::string_view replica, const std::string& key, const ClaimedUnit& what);
  void Forget(absl::string_view replica, const std::string& key);

  const std::string url_;           // with the password: given to libpq only
  const std::string redacted_url_;  // for messages
  const std::string password_;      // scrubbed from every message libpq writes
  const PostgresJobStoreOptions options_;
  std::atomic<bool> writable_{true};

  absl::Mutex pool_mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(pool_mu_);
  int open_ ABSL_GUARDED_BY(pool_mu_) = 0;  // connections out of the pool or idle

  absl::Mutex held_mu_;
  // replica -> "job:<id>" and "unit:<id>\n<unit>" it claimed and still holds
  // (a job's ClaimedUnit has an empty unit).
  std::map<std::string, std::map<std::string, ClaimedUnit>, std::less<>> held_
      ABSL_GUARDED_BY(held_mu_);
};

}  // namespace mia::jobs

#endif  // MIA_CORE_JOBS_POSTGRES_JOB_STORE_H_
