// JobManager: see job_manager.h. Locking: mu_ guards the in-memory state
// (entries, queue, subscriptions) and is never held during a store write or a
// callback; each job's write_mu serializes that job's store writes so that
// the versions they return reach memory in order (lock order: write_mu, then
// mu_). Subscription callbacks and metrics run with no manager lock held, or
// with only a job's write_mu (metrics).
#include "core/jobs/job_manager.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <new>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/random.h"
#include "core/common/sha256.h"
#include "core/common/status_macros.h"

namespace mia::jobs {
namespace {

// request_ids_'s key: request ids are unique per tenant.
std::string RequestKey(const JobRecord& record) {
  return absl::StrCat(record.tenant, std::string(1, '\0'), record.request_id);
}

// Memory-only progress updates a watch version can count before a durable
// write must bump the store version.
constexpr int64_t kMaxMemoryUpdates = (int64_t{1} << kWatchVersionShift) - 1;

// The store refuses out-of-range progress; a runner's rounding must not fail
// its job.
JobProgress Sanitized(JobProgress p) {
  if (!(p.fraction >= 0)) p.fraction = 0;  // NaN too
  if (p.fraction > 1) p.fraction = 1;
  p.done = std::max<int64_t>(p.done, 0);
  p.total = std::max<int64_t>(p.total, 0);
  return p;
}

}  // namespace

int DefaultComputeThreads(int cores, int workers) {
  return std::max(1, cores / std::max(1, workers));
}

JobManager::JobManager(JobStore* store, JobRunner* runner, JobManagerOptions options)
    : store_(store),
      runner_(runner),
      options_(std::move(options)),
      metrics_(options_.metrics != nullptr ? options_.metrics : &default_metrics_),
      compute_threads_(
          options_.compute_threads_per_worker > 0
              ? options_.compute_threads_per_worker
              : DefaultComputeThreads(static_cast<int>(std::thread::hardware_concurrency()),
                                      options_.workers)) {
  std::random_device seed;
  absl::MutexLock lock(&mu_);
  id_state_ = (uint64_t{seed()} << 32) ^ seed();
}

JobManager::~JobManager() { Shutdown(); }

absl::Status JobManager::Start() {
  if (store_ == nullptr || runner_ == nullptr) {
    return absl::InvalidArgumentError("job manager: a store and a runner are required");
  }
  if (options_.workers < 1) return absl::InvalidArgumentError("workers: must be at least 1");
  if (options_.queue_capacity < 1) {
    return absl::InvalidArgumentError("queue_capacity: must be at least 1");
  }
  if (options_.data_dir.empty()) return absl::InvalidArgumentError("data_dir: required");
  if (cluster() && options_.replica_id.empty()) {
    return absl::InvalidArgumentError("replica_id: required with a shared queue");
  }
  if (cluster() && options_.lease < absl::Seconds(1)) {
    return absl::InvalidArgumentError("lease: at least one second");
  }
  {
    absl::MutexLock lock(&mu_);
    if (start_called_ || stopping_) {
      return absl::FailedPreconditionError("job manager: already started, or stopped");
    }
    start_called_ = true;
  }
  // Nothing is accepted until the store's unfinished jobs are loaded, so a
  // Submit cannot be queued twice (once by itself, once from the listing).
  absl::Status loaded = [&]() -> absl::Status {
    if (cluster()) {
      // Nothing to load: unfinished audits are claimed from the shared queue
      // (a dead replica's RUNNING ones once their leases expire).
      absl::MutexLock lock(&mu_);
      if (stopping_) return absl::FailedPreconditionError("job manager: drained while starting");
      accepting_ = true;
      workers_alive_ = options_.workers + std::max(0, options_.unit_workers);
      return absl::OkStatus();
    }
    MIA_ASSIGN_OR_RETURN(std::vector<JobRecord> unfinished, store_->ListUnfinished());
    std::vector<std::shared_ptr<Entry>> entries;
    std::vector<ResumeFailure> failures;
    for (JobRecord& record : unfinished) {
      if (record.state == JobState::kRunning) {
        // The process that ran it is gone; it starts over from its units.
        JobStateChange change;
        change.id = record.id;
        change.from = JobState::kRunning;
        change.to = JobState::kPending;
        change.stage = record.progress.stage;
        absl::StatusOr<JobRecord> requeued = store_->Transition(record.id, JobState::kPending, {});
        if (!requeued.ok()) {
          change.store_error_code = absl::StatusCodeToString(requeued.status().code());
          ReportStateChange(change);
          // A store that cannot record the requeue (full disk, read-only
          // file) must not keep the server from starting: every other job
          // is still served, and the next start tries this one again.
          failures.push_back({record.id, requeued.status()});
          continue;
        }
        record = *std::move(requeued);
        metrics_->OnStateChange(JobState::kRunning, JobState::kPending);
        ReportStateChange(change);
      }
      entries.push_back(std::make_shared<Entry>(std::move(record), options_.clock()));
    }
    absl::MutexLock lock(&mu_);
    resumed_jobs_ = static_cast<int64_t>(entries.size());
    resume_failures_ = std::move(failures);
    for (const std::shared_ptr<Entry>& entry : entries) {
      entries_[entry->id] = entry;
      if (!entry->record.request_id.empty()) request_ids_[RequestKey(entry->record)] = entry->id;
      Enqueue(entry);
    }
    if (stopping_) return absl::FailedPreconditionError("job manager: drained while starting");
    accepting_ = true;
    workers_alive_ = options_.workers;
    return absl::OkStatus();
  }();
  if (!loaded.ok()) {
    absl::MutexLock lock(&mu_);
    start_called_ = stopping_;  // a failed read may be retried
    return loaded;
  }
  {
    absl::MutexLock lock(&join_mu_);
    if (cluster()) {
      for (int i = 0; i < options_.workers; ++i) {
        workers_.emplace_back([this] { ClusterWorkerLoop(); });
      }
      for (int i = 0; i < options_.unit_workers; ++i) {
        workers_.emplace_back([this] { UnitWorkerLoop(); });
      }
      background_.emplace_back([this] { HeartbeatLoop(); });
      background_.emplace_back([this] { PollWatchedJobs(); });
    } else {
      for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
    }
  }
  ReportQueueDepth();
  return absl::OkStatus();
}

absl::StatusOr<SubmitResult> JobManager::Submit(JobRecord record) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError("the server is shutting down and accepts no new jobs");
    }
    if (!accepting_) return absl::UnavailableError("the job manager has not started");
  }
  if (record.id.empty()) record.id = NewJobId();
  if (record.spec_hash.empty()) record.spec_hash = Sha256Hex(record.spec_json);
  // Only the store sets the lifecycle fields.
  record.state = JobState::kPending;
  record.version = 0;
  record.progress = JobProgress{};
  record.progress.stage = "queued";
  record.start_time = record.end_time = absl::InfinitePast();
  record.error_code.clear();
  record.error_message.clear();
  record.result_dir.clear();
  {
    absl::MutexLock lock(&mu_);
    if (!record.request_id.empty()) {
      // A repeat of a job still held here needs no store call, and is
      // answered even when the queue is full.
      const auto it = request_ids_.find(RequestKey(record));
      if (it != request_ids_.end()) {
        const Entry& existing = *entries_.at(it->second);
        if (existing.record.spec_hash != record.spec_hash) {
          return absl::AlreadyExistsError(absl::StrCat("request_id ", record.request_id,
                                                       " was already used with a different spec"));
        }
        return SubmitResult{SnapshotOf(existing), false};
      }
    }
    if (cluster()) {
      // Claimed from the shared store by whichever replica is free.
    } else if (static_cast<int64_t>(queue_.size()) + reserved_ >= options_.queue_capacity) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the job queue is full (", options_.queue_capacity, " jobs waiting); retry later"));
    }
    ++reserved_;  // the slot is ours while the store writes
  }
  if (cluster()) {
    absl::StatusOr<int64_t> pending = store_->CountJobs(std::nullopt, JobState::kPending);
    if (pending.ok() && *pending >= options_.queue_capacity) {
      absl::MutexLock lock(&mu_);
      --reserved_;
      return absl::ResourceExhaustedError(absl::StrCat(
          "the job queue is full (", options_.queue_capacity, " jobs waiting); retry later"));
    }
  }
  absl::StatusOr<CreateResult> created = store_->Create(record);
  if (created.ok() && created->created) {
    // Told before the job is queued: once queued, a worker may report it
    // RUNNING at once, and PENDING must come first.
    JobStateChange change;
    change.id = created->job.id;
    change.to = JobState::kPending;
    change.stage = created->job.progress.stage;
    metrics_->OnStateChange(std::nullopt, JobState::kPending);
    ReportStateChange(change);
  }
  SubmitResult result;
  {
    absl::MutexLock lock(&mu_);
    --reserved_;
    if (!created.ok()) return created.status();
    if (!created->created) {
      // A repeat of a finished job, or of one a concurrent Submit just made.
      const auto it = entries_.find(created->job.id);
      if (it != entries_.end()) return SubmitResult{SnapshotOf(*it->second), false};
      const int64_t version = WatchVersion(created->job.version);
      return SubmitResult{JobSnapshot{std::move(created->job), version}, false};
    }
    if (cluster()) {
      // Not held here: a worker of some replica claims it.
      const int64_t version = WatchVersion(created->job.version);
      result.snapshot = JobSnapshot{std::move(created->job), version};
      result.created = true;
      wake_.SignalAll();
    }
  }
  if (cluster()) {
    Notify(result.snapshot.job.id, result.snapshot.version);
    return result;
  }
  {
    absl::MutexLock lock(&mu_);
    // Queued even if a drain began meanwhile: the job is durable and the next
    // start runs it.
    auto entry = std::make_shared<Entry>(std::move(created->job), options_.clock());
    entries_[entry->id] = entry;
    if (!entry->record.request_id.empty()) request_ids_[RequestKey(entry->record)] = entry->id;
    Enqueue(entry);
    result.snapshot = SnapshotOf(*entry);
    result.created = true;
  }
  ReportQueueDepth();
  // For watchers that subscribed to the id before it existed.
  Notify(result.snapshot.job.id, result.snapshot.version);
  return result;
}

absl::StatusOr<JobSnapshot> JobManager::Cancel(absl::string_view id) {
  std::shared_ptr<Entry> entry;
  {
    absl::MutexLock lock(&mu_);
    const auto it = entries_.find(id);
    if (it != entries_.end()) {
      entry = it->second;
      if (entry->running) {
        // The runner notices between batches; FinishJob records CANCELLED.
        entry->stop = StopReason::kCancel;
        entry->cancel.store(true);
        return SnapshotOf(*entry);
      }
      if (!entry->queued) return SnapshotOf(*entry);  // a cancel is already being written
      queue_.erase(
          QueueKey{entry->record.priority, entry->record.create_time, entry->queue_seq, entry->id});
      entry->queued = false;
      entry->cancelling = true;
    }
  }
  if (entry == nullptr && cluster()) {
    // Held by another replica (it hears the request at its next heartbeat),
    // or pending in the shared queue (cancelled now), or finished.
    MIA_ASSIGN_OR_RETURN(const JobRecord before, store_->Get(id));
    MIA_ASSIGN_OR_RETURN(JobRecord record, options_.cluster->RequestCancel(id));
    if (before.state != record.state) {
      metrics_->OnStateChange(before.state, record.state);
      JobStateChange change;
      change.id = record.id;
      change.from = before.state;
      change.to = record.state;
      change.stage = record.progress.stage;
      change.error_code = record.error_code;
      ReportStateChange(change);
    }
    const int64_t version = WatchVersion(record.version);
    Notify(record.id, version);
    return JobSnapshot{std::move(record), version};
  }
  if (entry == nullptr) {
    MIA_ASSIGN_OR_RETURN(JobRecord record, store_->Get(id));
    if (record.state == JobState::kRunning) {
      if (std::optional<absl::StatusOr<JobSnapshot>> cancelled = CancelUnresumed(record)) {
        return *std::move(cancelled);
      }
    }
    // Finished (returned unchanged) or unknown (NotFound above).
    const int64_t version = WatchVersion(record.version);
    return JobSnapshot{std::move(record), version};
  }
  ReportQueueDepth();
  absl::StatusOr<int64_t> version;
  {
    absl::MutexLock write(&entry->write_mu);
    TransitionDetails details;
    details.error_code = "CANCELLED";
    details.error_message = "cancelled on request";
    version = WriteTransition(entry, JobState::kCancelled, details);
  }
  JobSnapshot snapshot;
  {
    absl::MutexLock lock(&mu_);
    entry->cancelling = false;
    if (!version.ok()) {
      Enqueue(entry);  // still PENDING in the store: put it back
      return version.status();
    }
    snapshot = SnapshotOf(*entry);
    Forget(entry->id);
  }
  Notify(entry->id, *version);
  return snapshot;
}

std::optional<absl::StatusOr<JobSnapshot>> JobManager::CancelUnresumed(const JobRecord& record) {
  {
    // Claimed under the lock, so that two Cancel calls write once.
    absl::MutexLock lock(&mu_);
    const auto it =
        std::find_if(resume_failures_.begin(), resume_failures_.end(),
                     [&](const ResumeFailure& failure) { return failure.id == record.id; });
    // RUNNING in the store but not held here: a job a concurrent worker
    // is finishing (its entry just left), not ours to write.
    if (it == resume_failures_.end()) return std::nullopt;
    resume_failures_.erase(it);
  }
  // No process runs it: Start could not write its requeue. Cancelling writes
  // CANCELLED directly, after which it can be deleted like any finished job.
  TransitionDetails details;
  details.error_code = "CANCELLED";
  details.error_message =
      "cancelled on request (it had not been resumed: the store could not record its requeue "
      "when the server started)";
  absl::StatusOr<JobRecord> written = store_->Transition(record.id, JobState::kCancelled, details);
  JobStateChange change;
  change.id = record.id;
  change.from = JobState::kRunning;
  change.to = JobState::kCancelled;
  change.stage = record.progress.stage;
  change.error_code = "CANCELLED";
  if (!written.ok()) {
    change.store_error_code = absl::StatusCodeToString(written.status().code());
    ReportStateChange(change);
    absl::MutexLock lock(&mu_);
    resume_failures_.push_back({record.id, written.status()});  // still as it was
    return absl::Status(written.status().code(),
                        absl::StrCat("cannot cancel job ", record.id,
                                     " (left RUNNING by a server that stopped, and not resumed): ",
                                     written.status().message()));
  }
  metrics_->OnStateChange(JobState::kRunning, JobState::kCancelled);
  ReportStateChange(change);
  const int64_t version = WatchVersion(written->version);
  Notify(record.id, version);
  return JobSnapshot{*std::move(written), version};
}

absl::StatusOr<JobSnapshot> JobManager::Get(absl::string_view id) {
  {
    absl::ReaderMutexLock lock(&mu_);
    const auto it = entries_.find(id);
    if (it != entries_.end()) return SnapshotOf(*it->second);
  }
  // Not held here: finished, unknown, or created a moment ago by a Submit
  // that has not queued it yet. The store has its latest state in each case.
  MIA_ASSIGN_OR_RETURN(JobRecord record, store_->Get(id));
  const int64_t version = WatchVersion(record.version);
  return JobSnapshot{std::move(record), version};
}

uint64_t JobManager::Subscribe(absl::string_view id, ChangeCallback callback) {
  auto subscription = std::make_shared<Subscription>();
  subscription->job_id = std::string(id);
  subscription->callback = std::move(callback);
  absl::MutexLock lock(&mu_);
  const uint64_t handle = ++next_handle_;
  subscriptions_[handle] = subscription;
  subscribers_.emplace(subscription->job_id, subscription);
  return handle;
}

void JobManager::Unsubscribe(uint64_t handle) {
  std::shared_ptr<Subscription> subscription;
  {
    absl::MutexLock lock(&mu_);
    const auto it = subscriptions_.find(handle);
    if (it == subscriptions_.end()) return;
    subscription = it->second;
    subscriptions_.erase(it);
    auto [begin, end] = subscribers_.equal_range(subscription->job_id);
    for (auto s = begin; s != end; ++s) {
      if (s->second == subscription) {
        subscribers_.erase(s);
        break;
      }
    }
  }
  subscription->active.store(false);
  // From inside its own callback: that call ends when we return to it.
  if (subscription->delivering.load() == std::this_thread::get_id()) return;
  // Otherwise wait out a call in progress on another thread; later Notify
  // calls see `active` false.
  absl::MutexLock wait(&subscription->call_mu);
}

absl::StatusOr<JobSnapshot> JobManager::WaitForChange(absl::string_view id, int64_t after_version,
                                                      absl::Time deadline) {
  while (true) {
    uint64_t seen;
    {
      absl::MutexLock lock(&mu_);
      seen = changes_;
    }
    MIA_ASSIGN_OR_RETURN(JobSnapshot snapshot, Get(id));
    if (snapshot.version > after_version || absl::Now() >= deadline) return snapshot;
    absl::MutexLock lock(&mu_);
    // Any change since `seen` (of any job) sends us back to look.
    while (changes_ == seen) {
      if (changed_.WaitWithDeadline(&mu_, deadline)) break;  // timed out
    }
  }
}

absl::Status JobManager::Drain(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  if (!stopping_) {
    stopping_ = true;
    for (const auto& [id, entry] : entries_) {
      if (!entry->running) continue;
      if (entry->stop == StopReason::kNone) entry->stop = StopReason::kDrain;
      entry->cancel.store(true);
    }
    for (const auto& [id, flag] : unit_cancels_) flag->store(true);
    wake_.SignalAll();
  }
  if (!mu_.AwaitWithDeadline(absl::Condition(this, &JobManager::AllWorkersExited), deadline)) {
    return absl::DeadlineExceededError(
        absl::StrCat("drain: ", running_, " jobs still running at the deadline"));
  }
  if (cluster()) {
    // The units this replica ran go back to the queue now, not when their
    // leases expire. (Held audits were released as each worker stopped.)
    mu_.Unlock();
    const absl::Status released = options_.cluster->ReleaseUnits(options_.replica_id);
    mu_.Lock();
    MIA_RETURN_IF_ERROR(released);
  }
  return absl::OkStatus();
}

void JobManager::Shutdown() {
  Drain(absl::InfiniteFuture()).IgnoreError();
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    wake_.SignalAll();
  }
  absl::MutexLock lock(&join_mu_);
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  for (std::thread& thread : background_) thread.join();
  background_.clear();
}

int64_t JobManager::ResumedJobs() const {
  absl::ReaderMutexLock lock(&mu_);
  return resumed_jobs_;
}

int64_t JobManager::QueueDepth() const {
  absl::ReaderMutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

std::vector<JobManager::ResumeFailure> JobManager::ResumeFailures() const {
  absl::ReaderMutexLock lock(&mu_);
  return resume_failures_;
}

int JobManager::RunningJobs() const {
  absl::ReaderMutexLock lock(&mu_);
  return running_;
}

void JobManager::WorkerLoop() {
  while (true) {
    std::shared_ptr<Entry> entry;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &JobManager::HasWorkOrStop));
      if (stopping_) {
        --workers_alive_;
        return;
      }
      const auto first = queue_.begin();
      entry = entries_.at(first->id);
      queue_.erase(first);
      entry->queued = false;
      entry->running = true;
      ++running_;
    }
    ReportQueueDepth();
    RunJob(entry);
  }
}

void JobManager::RunJob(const std::shared_ptr<Entry>& entry) {
  // A cancel or drain between the queue and here: nothing has run yet.
  if (entry->cancel.load()) {
    FinishJob(entry, absl::CancelledError("stopped before it started"));
    return;
  }
  absl::StatusOr<int64_t> version;
  bool claimed_running;
  {
    absl::ReaderMutexLock lock(&mu_);
    claimed_running = entry->record.state == JobState::kRunning;  // ClaimJob made it so
    version = WatchVersion(entry->record.version);
  }
  if (!claimed_running) {
    absl::MutexLock write(&entry->write_mu);
    version = WriteTransition(entry, JobState::kRunning, {});
  }
  if (!version.ok()) {
    // The store failed: the job stays PENDING there and the next start runs
    // it. Retrying here would spin on a broken disk, so it waits, parked.
    absl::MutexLock lock(&mu_);
    entry->running = false;
    --running_;
    return;
  }
  Notify(entry->id, *version);

  absl::StatusOr<std::map<std::string, std::string>> units = store_->ListUnitsDone(entry->id);
  if (!units.ok()) {
    FinishJob(entry, units.status());
    return;
  }
  RunContext ctx;
  ctx.progress = [this, entry](const JobProgress& progress) { OnProgress(entry, progress); };
  ctx.cancel = &entry->cancel;
  ctx.unit_done = [this, id = entry->id](const std::string& unit, const std::string& value) {
    return store_->MarkUnitDone(id, unit, value);
  };
  ctx.units_done = std::move(*units);
  ctx.work_dir = (std::filesystem::path(options_.data_dir) / "jobs" / entry->id).string();
  ctx.compute_threads = compute_threads_;
  ctx.metrics = metrics_;
  ctx.job_id = entry->id;
  ctx.cluster = options_.cluster;
  ctx.replica = options_.replica_id;
  ctx.lease = options_.lease;
  ctx.claiming = [this](bool start) {
    if (start) {
      ++claims_in_flight_;
    } else {
      --claims_in_flight_;
    }
  };
  ctx.running = [this](const ClaimedUnit& unit, bool running) { SetUnitRunning(unit, running); };
  JobRecord job;
  {
    absl::ReaderMutexLock lock(&mu_);
    job = entry->record;
  }
  FinishJob(entry, RunGuarded(job, ctx));
}

absl::StatusOr<RunOutcome> JobManager::RunGuarded(const JobRecord& job, const RunContext& ctx) {
  // The job boundary: nothing a runner throws may reach the worker thread
  // (it would terminate the server). what() is not echoed: it may quote data.
  try {
    return runner_->Run(job, ctx);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("the job ran out of memory");
  } catch (...) {
    return absl::InternalError("the job's runner raised an exception");
  }
}

void JobManager::FinishJob(const std::shared_ptr<Entry>& entry,
                           const absl::StatusOr<RunOutcome>& outcome) {
  StopReason stop;
  JobState current;
  JobProgress progress;
  {
    absl::ReaderMutexLock lock(&mu_);
    stop = entry->stop;
    current = entry->record.state;
    progress = entry->progress;
  }
  if (stop == StopReason::kLost) {
    // Another replica holds the job now: nothing of this attempt is written.
    int64_t version;
    {
      absl::MutexLock lock(&mu_);
      entry->running = false;
      --running_;
      version = WatchVersion(entry->record.version, entry->memory_updates);
      Forget(entry->id);
    }
    Notify(entry->id, version);
    return;
  }
  JobState to;
  TransitionDetails details;
  if (outcome.ok()) {
    to = JobState::kSucceeded;
    details.result_dir = outcome->result_dir;
    progress.stage = "done";
    progress.fraction = 1;
    if (progress.total > 0) progress.done = progress.total;
    progress.detail.clear();
  } else if (outcome.status().code() == absl::StatusCode::kCancelled &&
             stop == StopReason::kDrain) {
    to = JobState::kPending;  // the next start resumes it
  } else if (outcome.status().code() == absl::StatusCode::kCancelled) {
    to = JobState::kCancelled;
    details.error_code = "CANCELLED";
    details.error_message = stop == StopReason::kCancel ? std::string("cancelled on request")
                                                        : std::string(outcome.status().message());
  } else {
    to = JobState::kFailed;
    details.error_code = absl::StatusCodeToString(outcome.status().code());
    details.error_message = std::string(outcome.status().message());
    if (details.error_message.empty()) details.error_message = "the job failed";
  }

  absl::Status written;
  {
    absl::MutexLock write(&entry->write_mu);
    CloseStage(*entry, options_.clock());
    entry->stage.clear();
    bool progress_dirty;
    {
      absl::ReaderMutexLock lock(&mu_);
      progress_dirty = entry->memory_updates > 0 || to == JobState::kSucceeded;
    }
    // The latest progress goes with the final state (best effort: the state
    // matters more, and a failed progress write must not block it).
    if (progress_dirty && current == JobState::kRunning) {
      WriteProgress(entry, progress).IgnoreError();
    }
    if (to != current) written = WriteTransition(entry, to, details).status();
    // A shared store that is briefly unreachable (a restarting database)
    // must not strand the job: the end is written once it is back.
    for (int attempt = 0; cluster() && absl::IsUnavailable(written) && attempt < 60; ++attempt) {
      absl::SleepFor(absl::Seconds(1));
      written = WriteTransition(entry, to, details).status();
    }
  }
  if (cluster()) {
    absl::Status released = options_.cluster->ReleaseJob(entry->id, options_.replica_id);
    for (int attempt = 0; absl::IsUnavailable(released) && attempt < 60; ++attempt) {
      absl::SleepFor(absl::Seconds(1));
      released = options_.cluster->ReleaseJob(entry->id, options_.replica_id);
    }
  }

  int64_t version;
  bool requeued = false;
  {
    absl::MutexLock lock(&mu_);
    entry->running = false;
    --running_;
    version = WatchVersion(entry->record.version, entry->memory_updates);
    if (IsTerminal(to) || !written.ok() || cluster()) {
      // Finished; or the store could not record the end, in which case it
      // still says RUNNING and the next start resumes the job; or (cluster
      // mode) drained back to the shared queue for any replica.
      Forget(entry->id);
    } else {
      // Drained: PENDING again, parked in the queue (no worker takes jobs
      // once stopping) so that Get and Cancel still find it.
      entry->stop = StopReason::kNone;
      entry->cancel.store(false);
      Enqueue(entry);
      requeued = true;
    }
  }
  Notify(entry->id, version);
  if (requeued) ReportQueueDepth();
}

void JobManager::OnProgress(const std::shared_ptr<Entry>& entry, JobProgress progress) {
  progress = Sanitized(std::move(progress));
  int64_t version;
  {
    absl::MutexLock write(&entry->write_mu);
    const absl::Time now = options_.clock();
    if (progress.stage != entry->stage) {
      CloseStage(*entry, now);
      entry->stage = progress.stage;
      entry->stage_start = now;
    }
    bool persist;
    {
      // One version, one content: memory changes only together with the
      // version that names it (here, or in WriteProgress below).
      absl::MutexLock lock(&mu_);
      const JobProgress& durable = entry->record.progress;
      // Durable on every change of stage or count (per model, not per
      // batch), else at most once per interval: each write is an fsync.
      persist = progress.stage != durable.stage || progress.done != durable.done ||
                progress.total != durable.total ||
                now - entry->last_persist >= options_.progress_interval ||
                entry->memory_updates >= kMaxMemoryUpdates;
      if (!persist) {
        entry->progress = progress;
        ++entry->memory_updates;
        version = WatchVersion(entry->record.version, entry->memory_updates);
      }
    }
    if (persist) {
      absl::StatusOr<int64_t> written = WriteProgress(entry, progress);
      if (written.ok()) {
        entry->last_persist = now;
        version = *written;
      } else {
        // Watchers still see it; the store catches up at the next write.
        absl::MutexLock lock(&mu_);
        entry->progress = progress;
        if (entry->memory_updates < kMaxMemoryUpdates) ++entry->memory_updates;
        version = WatchVersion(entry->record.version, entry->memory_updates);
      }
    }
  }
  Notify(entry->id, version);
}

absl::StatusOr<int64_t> JobManager::WriteTransition(const std::shared_ptr<Entry>& entry,
                                                    JobState to, const TransitionDetails& details) {
  absl::StatusOr<JobRecord> record = store_->Transition(entry->id, to, details);
  const absl::Time now = options_.clock();
  JobStateChange change;
  change.id = entry->id;
  change.to = to;
  change.duration = now - entry->state_since;
  change.error_code = details.error_code;
  int64_t version = 0;
  {
    absl::MutexLock lock(&mu_);
    change.from = entry->record.state;
    change.stage = entry->progress.stage;
    if (record.ok()) {
      entry->record = *std::move(record);
      entry->memory_updates = 0;
      version = WatchVersion(entry->record.version);
    }
  }
  if (!record.ok()) {
    change.store_error_code = absl::StatusCodeToString(record.status().code());
    ReportStateChange(change);
    return record.status();
  }
  entry->state_since = now;
  metrics_->OnStateChange(change.from, to);
  ReportStateChange(change);
  return version;
}

absl::StatusOr<int64_t> JobManager::WriteProgress(const std::shared_ptr<Entry>& entry,
                                                  const JobProgress& progress) {
  MIA_ASSIGN_OR_RETURN(JobRecord record, store_->UpdateProgress(entry->id, progress));
  absl::MutexLock lock(&mu_);
  entry->record = std::move(record);
  entry->progress = progress;
  entry->memory_updates = 0;
  return WatchVersion(entry->record.version);
}

void JobManager::CloseStage(Entry& entry, absl::Time now) {
  if (entry.stage.empty() || entry.stage_start == absl::InfinitePast()) return;
  metrics_->OnStageDuration(entry.stage, absl::ToDoubleSeconds(now - entry.stage_start));
}

void JobManager::Enqueue(const std::shared_ptr<Entry>& entry) {
  entry->queue_seq = next_seq_++;
  queue_.insert(
      QueueKey{entry->record.priority, entry->record.create_time, entry->queue_seq, entry->id});
  entry->queued = true;
}

void JobManager::Forget(const std::string& id) {
  const auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (!it->second->record.request_id.empty()) {
    const auto r = request_ids_.find(RequestKey(it->second->record));
    if (r != request_ids_.end() && r->second == id) request_ids_.erase(r);
  }
  entries_.erase(it);
}

JobSnapshot JobManager::SnapshotOf(const Entry& entry) const {
  JobSnapshot snapshot;
  snapshot.job = entry.record;
  snapshot.job.progress = entry.progress;
  snapshot.version = WatchVersion(entry.record.version, entry.memory_updates);
  return snapshot;
}

void JobManager::PauseUnlessStopping(absl::Duration d, bool until_shutdown) {
  absl::MutexLock lock(&mu_);
  if (until_shutdown ? shutdown_ : stopping_) return;
  wake_.WaitWithTimeout(&mu_, d);
}

template <typename Claim, typename Run>
void JobManager::ClaimLoop(Claim claim, Run run) {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        --workers_alive_;
        return;
      }
    }
    ++claims_in_flight_;  // `run` takes it back once the claim is accounted for
    auto claimed = claim();
    if (!claimed.ok() || !claimed->has_value()) {
      --claims_in_flight_;
      // Nothing to run, or the store is unreachable for now: look again.
      PauseUnlessStopping(options_.claim_interval, /*until_shutdown=*/false);
      continue;
    }
    run(**std::move(claimed));
  }
}

void JobManager::ClusterWorkerLoop() {
  ClaimLoop([this] { return options_.cluster->ClaimJob(options_.replica_id, options_.lease); },
            [this](JobRecord claimed) {
              auto entry = std::make_shared<Entry>(std::move(claimed), options_.clock());
              {
                absl::MutexLock lock(&mu_);
                --claims_in_flight_;  // accounted for by entries_ from here
                entries_[entry->id] = entry;
                entry->running = true;
                ++running_;
                if (stopping_) {  // drained while claiming: hand it back at once
                  entry->stop = StopReason::kDrain;
                  entry->cancel.store(true);
                }
              }
              JobStateChange change;
              change.id = entry->id;
              change.from = JobState::kPending;
              change.to = JobState::kRunning;
              change.stage = entry->record.progress.stage;
              metrics_->OnStateChange(JobState::kPending, JobState::kRunning);
              ReportStateChange(change);
              RunJob(entry);
            });
}

void JobManager::UnitWorkerLoop() {
  ClaimLoop([this] { return options_.cluster->ClaimUnit(options_.replica_id, options_.lease); },
            [this](const ClaimedUnit& unit) {
              SetUnitRunning(unit, true);
              --claims_in_flight_;  // accounted for by running_units_ from here
              RunClusterUnit(unit);
              SetUnitRunning(unit, false);
            });
}

void JobManager::RunClusterUnit(const ClaimedUnit& unit) {
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) cancel->store(true);
    unit_cancels_.emplace(unit.job_id, cancel);
  }
  absl::StatusOr<std::string> value = [&]() -> absl::StatusOr<std::string> {
    MIA_ASSIGN_OR_RETURN(const JobRecord job, store_->Get(unit.job_id));
    RunContext ctx;
    ctx.cancel = cancel.get();
    ctx.compute_threads = compute_threads_;
    ctx.metrics = metrics_;
    ctx.job_id = unit.job_id;
    ctx.cluster = options_.cluster;
    ctx.replica = options_.replica_id;
    ctx.lease = options_.lease;
    try {
      return runner_->RunUnit(job, unit.unit, ctx);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError("the unit ran out of memory");
    } catch (...) {
      return absl::InternalError("the unit's runner raised an exception");
    }
  }();
  {
    absl::MutexLock lock(&mu_);
    auto [begin, end] = unit_cancels_.equal_range(unit.job_id);
    for (auto it = begin; it != end; ++it) {
      if (it->second == cancel) {
        unit_cancels_.erase(it);
        break;
      }
    }
  }
  const auto report = [&](const absl::Status& status) {
    if (options_.on_unit_error) options_.on_unit_error(unit.job_id, unit.unit, status);
  };
  if (value.ok()) {
    absl::Status done = options_.cluster->CompleteUnit(unit, options_.replica_id, *value).status();
    // A conflict or an unreachable database: the result is in the artifact
    // store, so recording it again is safe.
    for (int attempt = 0; !done.ok() && attempt < 30; ++attempt) {
      report(done);
      absl::SleepFor(absl::Seconds(1));
      done = options_.cluster->CompleteUnit(unit, options_.replica_id, *value).status();
    }
    if (done.ok()) return;
    value = done;  // never left held: it goes back to the queue below
  } else if (absl::IsCancelled(value.status()) || cancel->load()) {
    // Stopped (drain, cancel, lost lease): never left held by a replica that
    // no longer runs it (its heartbeat would renew it for ever).
    options_.cluster->ReleaseUnit(unit, options_.replica_id).IgnoreError();
    return;
  }
  report(value.status());
  if (absl::IsUnavailable(value.status())) {
    // Something shared is down for now (the artifact store, the database):
    // not the unit's fault, so no attempt is counted; it is tried again, here
    // or elsewhere, after a pause.
    PauseUnlessStopping(absl::Seconds(2), /*until_shutdown=*/false);
    options_.cluster->ReleaseUnit(unit, options_.replica_id).IgnoreError();
    return;
  }
  options_.cluster
      ->FailUnit(unit, options_.replica_id, absl::StatusCodeToString(value.status().code()),
                 options_.unit_attempts)
      .IgnoreError();
}

void JobManager::HeartbeatLoop() {
  const absl::Duration period = std::max(options_.lease / 3, absl::Milliseconds(100));
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_) return;
    }
    std::vector<std::string> running_here;  // claimed before the renewal
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, entry] : entries_) {
        if (entry->running) running_here.push_back(id);
      }
    }
    absl::StatusOr<LeaseRenewal> renewal =
        options_.cluster->RenewLeases(options_.replica_id, options_.lease);
    if (renewal.ok()) {
      absl::MutexLock lock(&mu_);
      const std::set<std::string> held(renewal->held_jobs.begin(), renewal->held_jobs.end());
      for (const std::string& id : running_here) {
        if (held.count(id) == 0) renewal->lost_jobs.push_back(id);
      }
      const auto stop_job = [&](const std::string& id, StopReason why) {
        const auto it = entries_.find(id);
        if (it != entries_.end() && it->second->running) {
          if (it->second->stop == StopReason::kNone || why == StopReason::kLost) {
            it->second->stop = why;
          }
          it->second->cancel.store(true);
        }
        auto [begin, end] = unit_cancels_.equal_range(id);
        for (auto u = begin; u != end; ++u) u->second->store(true);
      };
      for (const std::string& id : renewal->cancelled_jobs) stop_job(id, StopReason::kCancel);
      for (const std::string& id : renewal->lost_jobs) stop_job(id, StopReason::kLost);
      for (const ClaimedUnit& unit : renewal->lost_units) {
        auto [begin, end] = unit_cancels_.equal_range(unit.job_id);
        for (auto u = begin; u != end; ++u) u->second->store(true);
      }
    }
    if (renewal.ok()) {
      // Claims whose answer was lost (the connection broke after the claim
      // committed): held and renewed, run by no thread. Handed back, unless
      // a claim is still on its way to being recorded here.
      std::vector<std::string> orphan_jobs;
      std::vector<ClaimedUnit> orphan_units;
      {
        absl::MutexLock lock(&mu_);
        if (claims_in_flight_.load() == 0) {
          for (const std::string& id : renewal->held_jobs) {
            const auto it = entries_.find(id);
            if (it == entries_.end() || !it->second->running) orphan_jobs.push_back(id);
          }
          for (const ClaimedUnit& unit : renewal->held_units) {
            if (running_units_.count({unit.job_id, unit.unit}) == 0) orphan_units.push_back(unit);
          }
        }
      }
      for (const std::string& id : orphan_jobs) {
        options_.cluster->ReleaseJob(id, options_.replica_id).IgnoreError();
      }
      for (const ClaimedUnit& unit : orphan_units) {
        options_.cluster->ReleaseUnit(unit, options_.replica_id).IgnoreError();
      }
    }
    absl::StatusOr<int64_t> units = options_.cluster->PendingUnits();
    absl::StatusOr<int64_t> audits = options_.cluster->PendingJobs();
    if (units.ok() && audits.ok()) metrics_->OnClusterQueue(*units, *audits);
    PauseUnlessStopping(period, /*until_shutdown=*/true);
  }
}

void JobManager::SetUnitRunning(const ClaimedUnit& unit, bool running) {
  absl::MutexLock lock(&mu_);
  if (running) {
    running_units_.insert({unit.job_id, unit.unit});
  } else {
    running_units_.erase({unit.job_id, unit.unit});
  }
}

void JobManager::PollWatchedJobs() {
  while (true) {
    std::vector<std::string> watched;
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_) return;
      for (const auto& [id, subscription] : subscribers_) {
        // Jobs held here notify by themselves.
        if (entries_.count(id) == 0 && (watched.empty() || watched.back() != id)) {
          watched.push_back(id);
        }
      }
      for (auto it = polled_versions_.begin(); it != polled_versions_.end();) {
        it = subscribers_.count(it->first) == 0 ? polled_versions_.erase(it) : std::next(it);
      }
    }
    for (const std::string& id : watched) {
      absl::StatusOr<JobRecord> record = store_->Get(id);
      if (!record.ok()) continue;
      bool changed;
      {
        absl::MutexLock lock(&mu_);
        int64_t& seen = polled_versions_[id];
        changed = record->version != seen;
        seen = record->version;
      }
      if (changed) Notify(id, WatchVersion(record->version));
    }
    PauseUnlessStopping(options_.claim_interval, /*until_shutdown=*/true);
  }
}

void JobManager::Notify(const std::string& id, int64_t version) {
  std::vector<std::shared_ptr<Subscription>> targets;
  {
    absl::MutexLock lock(&mu_);
    ++changes_;
    changed_.SignalAll();
    auto [begin, end] = subscribers_.equal_range(id);
    for (auto it = begin; it != end; ++it) targets.push_back(it->second);
  }
  for (const std::shared_ptr<Subscription>& s : targets) {
    if (!s->active.load()) continue;
    absl::MutexLock call(&s->call_mu);
    if (!s->active.load()) continue;  // unsubscribed while we waited
    s->delivering.store(std::this_thread::get_id());
    try {
      s->callback(id, version);
    } catch (...) {
      // A broken watcher must not fail the job whose worker told it.
    }
    s->delivering.store(std::thread::id());
  }
}

void JobManager::ReportQueueDepth() {
  int64_t depth;
  {
    absl::ReaderMutexLock lock(&mu_);
    depth = static_cast<int64_t>(queue_.size());
  }
  metrics_->OnQueueDepth(depth);
}

void JobManager::ReportStateChange(const JobStateChange& change) {
  if (!options_.on_state_change) return;
  try {
    options_.on_state_change(change);
  } catch (...) {
    // A broken log sink must not fail the job.
  }
}

std::string JobManager::NewJobId() {
  if (options_.new_job_id) return options_.new_job_id();
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string id(20, 'a');
  absl::MutexLock lock(&mu_);
  for (char& c : id) c = kAlphabet[SplitMix64(id_state_) % 36];
  return id;
}

}  // namespace mia::jobs
