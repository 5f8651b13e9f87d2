// Coordination of several mia-server replicas over one shared store
// (PostgreSQL): which replica runs which audit, and the audit's units of work
// (one per model to train, with its signals; the scoring runs on the replica
// that holds the audit once every model unit is done), claimed with
// SELECT ... FOR UPDATE SKIP LOCKED under leases that the holding replica
// renews. A replica that dies stops renewing; its leases expire and other
// replicas claim the audits and units it held.
//
// Lifecycle of a unit: PENDING -> RUNNING (claimed, lease) -> DONE (value
// recorded once: a unit finished twice keeps the first value) or back to
// PENDING (lease expired, released by a drain, or failed with attempts left)
// or FAILED (its last attempt failed; the audit then fails).
//
// Fairness: ClaimJob and ClaimUnit take from the tenant with the fewest
// audits (units) running now, then the audit with the fewest units running,
// then priority (higher first), then age. So two tenants' audits share the
// replicas, and two audits of one tenant share them too.
//
// Thread-safety: implementations are safe from any number of threads and
// processes at once. Errors: Unavailable when the database cannot be reached
// (retry later); NotFound for an unknown audit; messages name audit ids, unit
// names and replica ids only.
#ifndef MIA_CORE_JOBS_CLUSTER_QUEUE_H_
#define MIA_CORE_JOBS_CLUSTER_QUEUE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/jobs/job.h"

namespace mia::jobs {

// A unit of work as claimed.
struct ClaimedUnit {
  std::string job_id;
  std::string unit;    // "model:3"
  std::string tenant;  // the audit's
  int attempt = 1;     // 1 for the first claim, +1 for every claim after
};

// Units of one audit by state.
struct UnitCounts {
  int64_t pending = 0;
  int64_t running = 0;  // claimed under a lease that has not expired
  int64_t done = 0;
  int64_t failed = 0;
  int64_t total() const { return pending + running + done + failed; }
};

// What a replica learns when it renews its leases.
struct LeaseRenewal {
  // Audits this replica holds (ClaimJob) or runs units of, for which a
  // cancellation was requested (RequestCancel) or which are finished: stop
  // their work.
  std::vector<std::string> cancelled_jobs;
  // Audits and units whose lease this replica had lost (expired before the
  // renewal, so another replica may run them now): stop them too.
  std::vector<std::string> lost_jobs;
  std::vector<ClaimedUnit> lost_units;
  // Every audit this replica holds after the renewal. An audit it runs that
  // is not here was taken over by another replica (its lease had expired and
  // another claimed it before this renewal): stop it without writing.
  std::vector<std::string> held_jobs;
  // Every unit this replica holds after the renewal (job_id and unit set).
  // One it does not run (a claim whose answer was lost with the connection)
  // is handed back with ReleaseUnit, as an audit is with ReleaseJob.
  std::vector<ClaimedUnit> held_units;
};

class ClusterQueue {
 public:
  virtual ~ClusterQueue() = default;

  // Claims an audit to run: a PENDING one, or a RUNNING one whose holder's
  // lease expired (its replica died; the audit resumes here). Makes it
  // RUNNING (JobStore lifecycle, version bumped, start_time set once),
  // records `replica` as its holder until now + lease. Nullopt when there is
  // none. Audits with a cancellation requested are not claimed: a RUNNING
  // one whose holder's lease expired is ended CANCELLED by the claim instead
  // (nobody else would end it), which then returns nullopt.
  virtual absl::StatusOr<std::optional<JobRecord>> ClaimJob(absl::string_view replica,
                                                            absl::Duration lease) = 0;

  // Adds an audit's units as PENDING, in this order (claims prefer earlier
  // ones). Idempotent: units that exist keep their state and value, so a
  // replica resuming an audit adds the same list again. NotFound for an
  // unknown audit.
  virtual absl::Status AddUnits(absl::string_view job_id,
                                const std::vector<std::string>& units) = 0;

  // Claims a unit of a RUNNING audit without a cancellation request: PENDING,
  // or RUNNING under an expired lease. `job_id` non-empty: only that audit's
  // units. Nullopt when there is none.
  virtual absl::StatusOr<std::optional<ClaimedUnit>> ClaimUnit(absl::string_view replica,
                                                               absl::Duration lease,
                                                               absl::string_view job_id = {}) = 0;

  // Records a unit as DONE with its value (e.g. the model's artifact key),
  // also as JobStore::MarkUnitDone would. Returns true when this call
  // finished it, false when it was DONE already (the first value stays).
  // Accepted from a replica whose lease expired too: the work is content-
  // addressed, so a late finisher's result is as good.
  virtual absl::StatusOr<bool> CompleteUnit(const ClaimedUnit& unit, absl::string_view replica,
                                            absl::string_view value) = 0;

  // A unit's attempt failed: back to PENDING while attempt < max_attempts,
  // else FAILED. `error_code` is a canonical code name. Returns the new
  // state's name ("PENDING" or "FAILED").
  virtual absl::StatusOr<std::string> FailUnit(const ClaimedUnit& unit, absl::string_view replica,
                                               absl::string_view error_code,
                                               int max_attempts) = 0;

  // The units of an audit, unit -> state name ("PENDING", "RUNNING", "DONE",
  // "FAILED") and the counts.
  virtual absl::StatusOr<UnitCounts> CountUnits(absl::string_view job_id) = 0;

  // Extends every lease `replica` holds (audits and units) to now + lease,
  // and says which of its work must stop.
  virtual absl::StatusOr<LeaseRenewal> RenewLeases(absl::string_view replica,
                                                   absl::Duration lease) = 0;

  // Ends `replica`'s hold on one audit it claimed (the audit reached a state
  // through JobStore::Transition, or went back to PENDING after a drain).
  virtual absl::Status ReleaseJob(absl::string_view job_id, absl::string_view replica) = 0;

  // For a drain: every unit `replica` runs goes back to PENDING (attempt not
  // counted) and its leases end, so other replicas take them at once.
  virtual absl::Status ReleaseUnits(absl::string_view replica) = 0;
  // One unit `replica` stopped running (its audit was cancelled or taken
  // over, or the replica drains): back to PENDING, attempt not counted, if
  // `replica` still holds it; else nothing changes.
  virtual absl::Status ReleaseUnit(const ClaimedUnit& unit, absl::string_view replica) = 0;

  // Cancellation across replicas: a PENDING audit becomes CANCELLED at once
  // (returns its record); a RUNNING one is marked so that its holder hears it
  // at its next RenewLeases and ends it CANCELLED (returns it still RUNNING).
  // A finished one is returned unchanged.
  virtual absl::StatusOr<JobRecord> RequestCancel(absl::string_view job_id) = 0;

  // Units waiting to be claimed over all audits (PENDING, or RUNNING under an
  // expired lease): the queue depth replicas scale on.
  virtual absl::StatusOr<int64_t> PendingUnits() = 0;
  // Audits waiting to be claimed (PENDING).
  virtual absl::StatusOr<int64_t> PendingJobs() = 0;
};

}  // namespace mia::jobs

#endif  // MIA_CORE_JOBS_CLUSTER_QUEUE_H_
