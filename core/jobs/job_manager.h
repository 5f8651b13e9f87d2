// The scheduler behind the audit service: accepts jobs, keeps them in a
// bounded priority queue, runs them on a pool of worker threads through a
// JobRunner, persists every state change in a JobStore before anyone can see
// it, and tells watchers when a job changed. Transport-free: server/ adapts it
// to gRPC (CreateAudit -> Submit, GetAudit -> Get, WatchAudit -> Subscribe +
// Get, CancelAudit -> Cancel, SIGTERM -> Drain).
//
// Restarts: Start() requeues every job the store lists as unfinished (RUNNING
// ones were orphaned by a dead process and go back to PENDING first). A
// runner learns which units of work earlier attempts finished
// (RunContext::units_done) and skips them; Drain() stops running jobs so that
// they go back to PENDING, not CANCELLED, and the next server resumes them.
//
// Cluster mode (JobManagerOptions::cluster set: replicas on one shared
// store): no replica holds a local queue. Submit only stores the job; each
// worker claims an audit from the shared queue (ClusterQueue::ClaimJob) when
// it is free; the runner splits the audit into units of work that every
// replica's unit workers claim (ClusterQueue::ClaimUnit) and run
// (JobRunner::RunUnit), and scores once all are done. A heartbeat renews
// this replica's leases and stops work that was cancelled elsewhere or whose
// lease was lost; a replica that dies stops renewing and the others take its
// audits and units over. Drain hands running audits and units back at once.
// Watchers of audits held by other replicas are told of changes by polling
// the store.
//
// Watching: every visible change of a job gets a new watch version (see
// JobSnapshot::version). Subscribe() registers a callback that is told "job j
// is now at version v" and nothing else; the watcher then calls Get() for the
// latest snapshot whenever it is ready to send one. A slow watcher therefore
// skips intermediate versions instead of growing a queue, and no callback ever
// waits for a watcher.
#ifndef MIA_CORE_JOBS_JOB_MANAGER_H_
#define MIA_CORE_JOBS_JOB_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/jobs/cluster_queue.h"
#include "core/jobs/job.h"
#include "core/jobs/job_spec.h"
#include "core/jobs/job_store.h"

namespace mia::jobs {

// Hooks for operational metrics (the server feeds Prometheus from them; core
// does not depend on a metrics library). The base class ignores everything.
// Thread-safety: called from worker threads and from callers of Submit and
// Cancel concurrently, sometimes with a job's write lock held: overrides must
// be thread-safe, cheap and must not call back into the JobManager.
class JobMetricsSink {
 public:
  virtual ~JobMetricsSink() = default;
  // A job changed state after the store recorded it; `from` is nullopt for a
  // newly created job. Restarted jobs requeued by Start() report RUNNING ->
  // PENDING.
  virtual void OnStateChange(std::optional<JobState> /*from*/, JobState /*to*/) {}
  // Jobs waiting in the queue, after each change.
  virtual void OnQueueDepth(int64_t /*depth*/) {}
  // A job spent `seconds` in `stage` (JobProgress::stage) before moving on.
  virtual void OnStageDuration(const std::string& /*stage*/, double /*seconds*/) {}
  // A runner trained one model in `seconds` (reported by runners that train).
  virtual void OnModelTrained(double /*seconds*/) {}
  // Cluster mode: units and audits waiting in the shared queue, after each
  // heartbeat.
  virtual void OnClusterQueue(int64_t /*pending_units*/, int64_t /*pending_audits*/) {}
};

// One state change of a job, as JobManagerOptions::on_state_change hears it
// (the server writes one log line for each). Ids, states, stage names, codes
// and times only: never spec contents, error messages or data.
struct JobStateChange {
  std::string id;
  std::optional<JobState> from;  // nullopt: the job was just created
  JobState to = JobState::kPending;
  std::string stage;  // JobProgress::stage at the change ("queued", "train", "done", ...)
  // Time spent in `from` as this manager saw it: since the job's previous
  // change, or since Start() loaded it; zero for a created job.
  absl::Duration duration = absl::ZeroDuration();
  // FAILED or CANCELLED: the job's canonical code name ("RESOURCE_EXHAUSTED").
  std::string error_code;
  // Non-empty when the store could not record the change (disk full, I/O
  // error): the store error's canonical code name. The job then stays as the
  // store has it (the next start resumes it).
  std::string store_error_code;
};

// What a runner gets besides the job. Valid for the duration of Run().
struct RunContext {
  // Reports how far the job got; call as often as useful (per batch is fine).
  // The manager keeps the latest report in memory for watchers and writes it
  // to the store when the stage or `done`/`total` changes, or when the last
  // durable write is older than JobManagerOptions::progress_interval, because
  // each durable write is an fsync. Safe from any thread; never throws.
  std::function<void(const JobProgress&)> progress;
  // Becomes true when the job must stop: a client cancelled it, or the server
  // is draining. Check it between batches and between models and then return
  // absl::CancelledError(); the manager knows which of the two it was (a
  // drained job goes back to PENDING and resumes at the next start).
  const std::atomic<bool>* cancel = nullptr;
  // Durably records that a unit of work is finished ("model:3" -> artifact
  // key), so that a later attempt can skip it. Returns once it is on disk.
  std::function<absl::Status(const std::string& unit, const std::string& value)> unit_done;
  // Units finished by earlier attempts of this job (unit -> value), as the
  // store listed them when this attempt started.
  std::map<std::string, std::string> units_done;
  // A folder for this job's files (JobManagerOptions::data_dir/jobs/<id>);
  // not created in advance. The same for every attempt of the job.
  std::string work_dir;
  // Compute threads this job may use (the machine's cores divided among the
  // workers).
  int compute_threads = 1;
  // Never null.
  JobMetricsSink* metrics = nullptr;
  // The job's id.
  std::string job_id;
  // Cluster mode only (else null): the shared queue through which the runner
  // hands the job's units of work to every replica (ClusterQueue::AddUnits,
  // ClaimUnit with job_id, CompleteUnit), this replica's id and the lease
  // its claims take (the manager's heartbeat renews them).
  ClusterQueue* cluster = nullptr;
  std::string replica;
  absl::Duration lease = absl::Seconds(30);
  // Cluster mode: the runner calls claiming(true) before ClaimUnit and
  // claiming(false) after, and running(unit, true/false) around running a
  // unit it claimed, so that the heartbeat hands back units this replica
  // holds but runs nowhere (a claim whose answer was lost). Never null in
  // cluster mode.
  std::function<void(bool)> claiming;
  std::function<void(const ClaimedUnit&, bool)> running;

  bool cancelled() const { return cancel != nullptr && cancel->load(); }
};

// What a successful run produced.
struct RunOutcome {
  std::string result_dir;  // folder of the result and report files
};

// Runs one job to its end on the calling worker thread. Implementations must
// be safe to call from several workers at once (for different jobs). Errors
// are a Status whose message never contains data values; an exception that
// escapes is caught by the manager and fails the job with INTERNAL (or
// RESOURCE_EXHAUSTED for std::bad_alloc), never the server.
class JobRunner {
 public:
  virtual ~JobRunner() = default;
  virtual absl::StatusOr<RunOutcome> Run(const JobRecord& job, const RunContext& ctx) = 0;
  // Cluster mode: runs one unit of work of `job` (a unit name the runner
  // itself added with ClusterQueue::AddUnits, e.g. "model:3") and returns its
  // value (e.g. the model's artifact key). Called by any replica's unit
  // workers, concurrently. ctx.work_dir, unit_done and units_done are unset.
  virtual absl::StatusOr<std::string> RunUnit(const JobRecord& /*job*/,
                                              const std::string& /*unit*/,
                                              const RunContext& /*ctx*/) {
    return absl::UnimplementedError("this runner has no units of work");
  }
};

// Bits of a watch version below the store's version: the number of
// memory-only progress updates since the last durable write.
inline constexpr int kWatchVersionShift = 20;

// The watch version of a job whose store version is `store_version` after
// `memory_updates` memory-only progress updates. Orders every snapshot of a
// job, across restarts too: each durable write bumps the store version and
// resets the count, and a restarted server writes (requeue, RUNNING) before a
// job reports progress again. Use it for jobs read from the store directly
// (ListAudits): WatchVersion(job.version).
inline int64_t WatchVersion(int64_t store_version, int64_t memory_updates = 0) {
  return (store_version << kWatchVersionShift) | memory_updates;
}

// A job as watchers see it.
struct JobSnapshot {
  // The stored record, with the latest progress even when that is not
  // durable yet. job.version stays the store's version.
  JobRecord job;
  // Watch version: WatchVersion(store version, memory-only updates). Greater
  // for every later snapshot of the same job; this is the API's Audit.version.
  int64_t version = 0;
};

// What Submit returns.
struct SubmitResult {
  JobSnapshot snapshot;
  bool created = false;  // false: a repeat of an earlier request_id
};

// Settings of a JobManager; every field has a usable default except data_dir.
struct JobManagerOptions {
  // Worker threads: how many jobs run at once. One per accelerator; 1 on a
  // CPU-only machine (a second CPU job would only split the same cores).
  int workers = 1;
  // Most jobs waiting in the queue (PENDING, not yet running); Submit beyond
  // it is RESOURCE_EXHAUSTED. Jobs resumed by Start() are accepted even past
  // it, since they were accepted once already.
  int queue_capacity = 256;
  // Compute threads each job may use; 0: DefaultComputeThreads(cores, workers).
  int compute_threads_per_worker = 0;
  // Root of the jobs' work folders (data_dir/jobs/<id>). Required.
  std::string data_dir;
  // Least time between two durable progress writes of one job, unless the
  // stage or the done/total counts change.
  absl::Duration progress_interval = absl::Seconds(1);
  // The clock for progress rate limiting and stage durations; thread-safe.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Not owned; must outlive the manager. nullptr: metrics are dropped.
  JobMetricsSink* metrics = nullptr;
  // Told of every state change (and of each one the store failed to
  // record), after the store write. Same threads and rules as JobMetricsSink:
  // thread-safe, cheap, never calls back into the manager. Empty: none.
  std::function<void(const JobStateChange&)> on_state_change;
  // Makes an id for a job submitted without one; must return ids that pass
  // ValidateJobId and are unique. Empty: 20 random lowercase letters/digits.
  std::function<std::string()> new_job_id;

  // Cluster mode (see the top of this file): the shared queue; not owned,
  // must outlive the manager; usually the same object as the store.
  // queue_capacity then bounds the PENDING audits of the whole cluster.
  ClusterQueue* cluster = nullptr;
  // This replica's id in leases (unique among live replicas). Required in
  // cluster mode.
  std::string replica_id;
  // How long a claim lasts without renewal; renewed every lease / 3. A dead
  // replica's work is taken over after at most this long.
  absl::Duration lease = absl::Seconds(30);
  // How often an idle worker looks for an audit or unit to claim, and how
  // often watched audits held elsewhere are read.
  absl::Duration claim_interval = absl::Milliseconds(500);
  // Threads that run units of any audit (besides the workers, which run the
  // units of the audits they hold while waiting for the others).
  int unit_workers = 1;
  // Attempts of one unit before it fails its audit.
  int unit_attempts = 3;
  // Told when a unit of work failed or could not be recorded (job id, unit
  // name, the error); for the server's log. Same rules as on_state_change.
  std::function<void(const std::string&, const std::string&, const absl::Status&)> on_unit_error;
};

// The machine's cores divided among `workers`, at least 1 each.
int DefaultComputeThreads(int cores, int workers);

// Thread-safety: every public method is safe from any thread. Submit, Cancel,
// Get and Subscribe never wait for a running job; Submit and Cancel of a
// pending job wait for one durable store write. Callbacks registered with
// Subscribe run on whichever thread made the change, with no lock of the
// manager held.
class JobManager {
 public:
  // Told that job `id` reached watch version `version`. Runs on the thread
  // that changed the job (often a worker): it must be cheap and never block;
  // typically it records "dirty" and wakes the watcher's own machinery, which
  // then calls Get(). May call Get and Unsubscribe its own handle. Calls for
  // one subscription never overlap but may arrive out of version order, and
  // Get may already show a version a moment before it is told: compare
  // versions. Exceptions it throws are swallowed.
  using ChangeCallback = std::function<void(const std::string& id, int64_t version)>;

  // `store` and `runner` are not owned and must outlive the manager.
  JobManager(JobStore* store, JobRunner* runner, JobManagerOptions options);
  // Shutdown().
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Loads every unfinished job from the store (RUNNING ones become PENDING:
  // their process died), queues them by priority then age, and starts the
  // workers. InvalidArgument for bad options; FailedPrecondition when called
  // twice or after Drain; the store's error when it cannot be read. A RUNNING
  // job whose requeue cannot be written (a full disk, a read-only store) is
  // left as it is, not resumed, and listed by ResumeFailures(); the rest
  // start anyway.
  absl::Status Start();

  // A job Start() could not resume, and why (the store's error).
  struct ResumeFailure {
    std::string id;
    absl::Status status;
  };
  // What the last Start() could not resume; for the server's log.
  std::vector<ResumeFailure> ResumeFailures() const;

  // Creates a PENDING job and queues it. Fills an empty `record.id` (see
  // JobManagerOptions::new_job_id) and an empty spec_hash (SHA-256 of
  // spec_json); state and times are the store's. Idempotent by request_id:
  // a repeat returns the existing job (created = false) without queueing it
  // again; the same request_id with another spec is AlreadyExists.
  // RESOURCE_EXHAUSTED when the queue is full (nothing is created);
  // UNAVAILABLE before Start and once draining. Does not validate the spec:
  // ValidateJobSpec is the caller's first step.
  absl::StatusOr<SubmitResult> Submit(JobRecord record);

  // Best effort. A pending job becomes CANCELLED before this returns; a
  // running one is told to stop and ends CANCELLED when its runner returns
  // (or SUCCEEDED if it finished first): watch it. A finished job is returned
  // unchanged. NotFound for an unknown id. A job Start() could not resume
  // (RUNNING in the store, listed by ResumeFailures()) becomes CANCELLED
  // before this returns, and can then be deleted; if the store still cannot
  // record it, the store's error, and the job stays as it was.
  absl::StatusOr<JobSnapshot> Cancel(absl::string_view id);

  // The latest snapshot: from memory for jobs this manager holds (no store
  // read), else from the store. NotFound for an unknown id.
  absl::StatusOr<JobSnapshot> Get(absl::string_view id);

  // Calls `callback` after each change of job `id` until Unsubscribe. To miss
  // nothing, subscribe first, then Get. An id with no job yet hears the job's
  // creation if one is submitted with it; a finished job never calls back.
  // Cheap (no store access). Returns a handle for Unsubscribe.
  uint64_t Subscribe(absl::string_view id, ChangeCallback callback);
  // After this returns the callback is not running and never runs again
  // (unless called from inside that callback, which is allowed: then it
  // stops after the current call). Unknown handles are ignored.
  void Unsubscribe(uint64_t handle);

  // Blocks until job `id` has a snapshot with version > after_version, or
  // until `deadline`, and returns the latest snapshot either way (unchanged
  // at the deadline: a heartbeat). For threads that may block (tests, tools);
  // the gRPC layer uses Subscribe. NotFound for an unknown id.
  absl::StatusOr<JobSnapshot> WaitForChange(absl::string_view id, int64_t after_version,
                                            absl::Time deadline);

  // For SIGTERM: stops accepting jobs (Submit -> UNAVAILABLE), stops taking
  // jobs from the queue, and tells running jobs to stop; they go back to
  // PENDING (not CANCELLED) for the next server to resume. Returns once every
  // worker has finished its job, or DeadlineExceeded at `deadline` (workers
  // still running then keep going until their runner returns; Shutdown waits
  // for them). Calling it again only waits again.
  absl::Status Drain(absl::Time deadline);

  // Drain with no deadline, then joins the workers. Idempotent.
  void Shutdown();

  // Unfinished jobs Start() loaded from the store to run again.
  int64_t ResumedJobs() const;
  // Jobs waiting in the queue / running now.
  int64_t QueueDepth() const;
  int RunningJobs() const;
  // Compute threads each job gets (resolved from the options).
  int compute_threads_per_worker() const { return compute_threads_; }

 private:
  // kLost: cluster mode, another replica took the job over (its lease
  // expired): stop without writing anything.
  enum class StopReason { kNone, kCancel, kDrain, kLost };

  // Cancel of a job Start() could not resume (`record` is RUNNING in the
  // store): writes CANCELLED and forgets the failure. Nullopt when the job is
  // not one of those.
  std::optional<absl::StatusOr<JobSnapshot>> CancelUnresumed(const JobRecord& record);

  // One unfinished job held in memory. Fields without their own annotation
  // are guarded by JobManager::mu_ (the analysis cannot name it from here).
  struct Entry {
    Entry(JobRecord r, absl::Time now)
        : id(r.id), record(std::move(r)), progress(record.progress), state_since(now) {}

    const std::string id;        // record.id, readable without a lock
    JobRecord record;            // as last written to or read from the store
    JobProgress progress;        // latest report; may be newer than record.progress
    int64_t memory_updates = 0;  // progress reports since the last durable write
    bool queued = false;         // in queue_, under queue_seq
    uint64_t queue_seq = 0;
    bool running = false;                 // a worker owns it
    bool cancelling = false;              // Cancel is writing CANCELLED for a pending job
    StopReason stop = StopReason::kNone;  // why `cancel` was set
    std::atomic<bool> cancel{false};      // read by the runner without locks
    // Serializes this job's store writes so that the versions the store
    // returns reach memory in order. Lock order: write_mu before mu_.
    absl::Mutex write_mu;
    absl::Time last_persist ABSL_GUARDED_BY(write_mu) = absl::InfinitePast();
    std::string stage ABSL_GUARDED_BY(write_mu);  // for stage durations
    absl::Time stage_start ABSL_GUARDED_BY(write_mu) = absl::InfinitePast();
    // When the job reached its state (or was loaded), for state-change durations.
    absl::Time state_since ABSL_GUARDED_BY(write_mu);
  };

  // Queue order: higher priority, then older, then earlier queued (the
  // order of JobStore::ListUnfinished).
  struct QueueKey {
    int priority;
    absl::Time create_time;
    uint64_t seq;
    std::string id;
    bool operator<(const QueueKey& o) const {
      if (priority != o.priority) return priority > o.priority;
      return std::tie(create_time, seq, id) < std::tie(o.create_time, o.seq, o.id);
    }
  };

  // One Subscribe() registration.
  struct Subscription {
    std::string job_id;
    ChangeCallback callback;
    std::atomic<bool> active{true};
    std::atomic<std::thread::id> delivering{};  // the thread inside callback, if any
    absl::Mutex call_mu;                        // held while the callback runs
  };

  bool HasWorkOrStop() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty();
  }
  bool AllWorkersExited() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return workers_alive_ == 0; }

  void WorkerLoop();
  // Cluster mode: the workers claim audits from the shared queue; unit
  // workers claim units; the heartbeat renews leases; the poller tells
  // watchers of audits held elsewhere.
  void ClusterWorkerLoop();
  void UnitWorkerLoop();
  // The loop of both: claim (a callable returning StatusOr<optional<T>>),
  // run each claim, pause when there is none, end when stopping.
  template <typename Claim, typename Run>
  void ClaimLoop(Claim claim, Run run);
  void RunClusterUnit(const ClaimedUnit& unit);
  void HeartbeatLoop();
  void PollWatchedJobs();
  // Sleeps up to `d`, less when the manager stops (Shutdown for the
  // background threads, Drain for the rest).
  void PauseUnlessStopping(absl::Duration d, bool until_shutdown) ABSL_LOCKS_EXCLUDED(mu_);
  bool cluster() const { return options_.cluster != nullptr; }
  void RunJob(const std::shared_ptr<Entry>& entry);
  // Runs the runner, turning exceptions into a Status.
  absl::StatusOr<RunOutcome> RunGuarded(const JobRecord& job, const RunContext& ctx);
  // Records the end of an attempt: SUCCEEDED, FAILED, CANCELLED or (drained)
  // PENDING.
  void FinishJob(const std::shared_ptr<Entry>& entry, const absl::StatusOr<RunOutcome>& outcome);
  void OnProgress(const std::shared_ptr<Entry>& entry, JobProgress progress);
  // Store writes of one job; call with entry->write_mu held. On success they
  // update the entry (WriteProgress: its progress too) and return the new
  // watch version.
  absl::StatusOr<int64_t> WriteTransition(const std::shared_ptr<Entry>& entry, JobState to,
                                          const TransitionDetails& details) ABSL_LOCKS_EXCLUDED(mu_)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->write_mu);
  absl::StatusOr<int64_t> WriteProgress(const std::shared_ptr<Entry>& entry,
                                        const JobProgress& progress) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the current stage for metrics.
  void CloseStage(Entry& entry, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry.write_mu);

  void Enqueue(const std::shared_ptr<Entry>& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops a finished job from memory.
  void Forget(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  JobSnapshot SnapshotOf(const Entry& entry) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Tells subscribers and WaitForChange that job `id` is at `version`.
  void Notify(const std::string& id, int64_t version) ABSL_LOCKS_EXCLUDED(mu_);
  void ReportQueueDepth() ABSL_LOCKS_EXCLUDED(mu_);
  void ReportStateChange(const JobStateChange& change) ABSL_LOCKS_EXCLUDED(mu_);
  std::string NewJobId() ABSL_LOCKS_EXCLUDED(mu_);

  JobStore* const store_;
  JobRunner* const runner_;
  const JobManagerOptions options_;
  JobMetricsSink default_metrics_;
  JobMetricsSink* const metrics_;  // options_.metrics or default_metrics_
  const int compute_threads_;

  mutable absl::Mutex mu_;
  bool start_called_ ABSL_GUARDED_BY(mu_) = false;
  bool accepting_ ABSL_GUARDED_BY(mu_) = false;  // Start finished; Submit allowed
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;   // Drain or Shutdown began
  int64_t resumed_jobs_ ABSL_GUARDED_BY(mu_) = 0;
  // Every unfinished job this manager holds (queued, running, or parked).
  std::map<std::string, std::shared_ptr<Entry>, std::less<>> entries_ ABSL_GUARDED_BY(mu_);
  // (tenant, request_id) -> job id, for the jobs in entries_ (RequestKey).
  std::map<std::string, std::string, std::less<>> request_ids_ ABSL_GUARDED_BY(mu_);
  std::set<QueueKey> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<ResumeFailure> resume_failures_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int reserved_ ABSL_GUARDED_BY(mu_) = 0;  // queue slots held by Submits in flight
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int workers_alive_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by Notify, for WaitForChange
  absl::CondVar changed_;
  uint64_t next_handle_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, std::shared_ptr<Subscription>> subscriptions_ ABSL_GUARDED_BY(mu_);
  std::multimap<std::string, std::shared_ptr<Subscription>> subscribers_ ABSL_GUARDED_BY(mu_);
  uint64_t id_state_ ABSL_GUARDED_BY(mu_);  // random id generator state

  // Cluster mode: the cancel flags of units running here, by audit id.
  std::multimap<std::string, std::shared_ptr<std::atomic<bool>>> unit_cancels_
      ABSL_GUARDED_BY(mu_);
  // Cluster mode: the store version last seen of watched audits held elsewhere.
  std::map<std::string, int64_t> polled_versions_ ABSL_GUARDED_BY(mu_);
  // Cluster mode: units running on this replica (job id, unit), and claims
  // whose answer has not been recorded yet (the heartbeat hands back held
  // audits and units it cannot account for only when this is 0).
  std::set<std::pair<std::string, std::string>> running_units_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> claims_in_flight_{0};
  void SetUnitRunning(const ClaimedUnit& unit, bool running) ABSL_LOCKS_EXCLUDED(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;  // background threads stop
  absl::CondVar wake_;                           // Submit, Drain, Shutdown

  absl::Mutex join_mu_;  // serializes Shutdown's join
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(join_mu_);
  std::vector<std::thread> background_ ABSL_GUARDED_BY(join_mu_);
};

}  // namespace mia::jobs

#endif  // MIA_CORE_JOBS_JOB_MANAGER_H_
