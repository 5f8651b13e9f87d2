// JobManager against its contract (core/jobs/job_manager.h) with a real
// SQLite store and a fake runner that works in small steps, checks the cancel
// flag, reports progress and units, and can be told to fail, throw or pause.
// Nothing here asserts on wall-clock time: tests wait on conditions with
// generous timeouts. Also: job specs (job_spec.h) and the real BundleJobRunner
// on a small synthetic bundle.
#include "core/jobs/job_manager.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/audit/synthetic.h"
#include "core/io/npy.h"
#include "core/jobs/bundle_runner.h"
#include "core/jobs/job_spec.h"
#include "core/jobs/job_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace mia::jobs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Generous: a condition that takes this long means a hang, not slowness.
constexpr absl::Duration kTimeout = absl::Seconds(60);

// A fresh, empty folder for one test under MIA_TEST_TMPDIR (set by ctest) or
// gtest's temporary folder.
std::string TempDir(const std::string& name) {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const std::filesystem::path dir =
      std::filesystem::path(env != nullptr ? env : ::testing::TempDir()) / "job_manager_test" /
      name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

bool CallPredicate(std::function<bool()>* predicate) { return (*predicate)(); }

// The fake runner. Its spec is JSON:
//   steps:        units of work, "step:<i>", each ~1 ms, each reported twice
//                 (a count change, durable, then a detail-only update)
//   pause_at:     on a first attempt (no units done yet), block before step i
//                 until Release() or the cancel flag
//   fail_code:    return this absl::StatusCode with fail_message at once
//   throw:        "runtime_error" or "bad_alloc": throw at once
class FakeRunner final : public JobRunner {
 public:
  absl::StatusOr<RunOutcome> Run(const JobRecord& job, const RunContext& ctx) override {
    const nlohmann::json spec = nlohmann::json::parse(job.spec_json);
    {
      absl::MutexLock lock(&mu_);
      ++attempts_[job.id];
      order_.push_back(job.id);
    }
    const std::string to_throw = spec.value("throw", "");
    if (to_throw == "bad_alloc") throw std::bad_alloc();
    if (!to_throw.empty()) throw std::runtime_error("secret training row 4242");
    if (spec.contains("fail_code")) {
      return absl::Status(static_cast<absl::StatusCode>(spec["fail_code"].get<int>()),
                          spec.value("fail_message", "failed"));
    }
    const int steps = spec.value("steps", 1);
    const int pause_at = spec.value("pause_at", -1);
    const bool first_attempt = ctx.units_done.empty();
    for (int i = 0; i < steps; ++i) {
      const std::string unit = absl::StrCat("step:", i);
      if (ctx.units_done.count(unit) > 0) {
        absl::MutexLock lock(&mu_);
        ++skipped_[job.id];
        continue;
      }
      if (i == pause_at && first_attempt) {
        absl::MutexLock lock(&mu_);
        paused_.insert(job.id);
        // The cancel flag is not tied to mu_, so poll it.
        while (!released_ && !ctx.cancelled()) {
          mu_.AwaitWithTimeout(absl::Condition(&released_), absl::Milliseconds(1));
        }
        paused_.erase(job.id);
      }
      if (ctx.cancelled()) return absl::CancelledError("fake runner stopped");
      absl::SleepFor(absl::Milliseconds(1));
      ctx.progress({"work", i + 1, steps, (i + 1.0) / steps, "counted"});
      ctx.progress({"work", i + 1, steps, (i + 1.0) / steps, "detail only"});
      const absl::Status marked = ctx.unit_done(unit, "v");
      if (!marked.ok()) return marked;
    }
    return RunOutcome{ctx.work_dir};
  }

  // Lets every paused job (and every later one) go on.
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }

  // Waits until job `id` is paused; false after kTimeout.
  bool WaitPaused(const std::string& id) {
    return WaitFor([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return paused_.count(id) > 0; });
  }

  int attempts(const std::string& id) {
    absl::MutexLock lock(&mu_);
    return attempts_[id];
  }
  int skipped(const std::string& id) {
    absl::MutexLock lock(&mu_);
    return skipped_[id];
  }
  std::vector<std::string> order() {
    absl::MutexLock lock(&mu_);
    return order_;
  }

 private:
  bool WaitFor(std::function<bool()> predicate) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&CallPredicate, &predicate), kTimeout);
  }

  absl::Mutex mu_;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  std::set<std::string> paused_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> attempts_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> skipped_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
};

// Records what the manager reports; thread-safe.
class RecordingMetrics final : public JobMetricsSink {
 public:
  void OnStateChange(std::optional<JobState> from, JobState to) override {
    absl::MutexLock lock(&mu_);
    changes_.push_back(absl::StrCat(from ? JobStateName(*from) : "NEW", "->", JobStateName(to)));
  }
  void OnQueueDepth(int64_t depth) override {
    absl::MutexLock lock(&mu_);
    max_depth_ = std::max(max_depth_, depth);
  }
  void OnStageDuration(const std::string& stage, double seconds) override {
    absl::MutexLock lock(&mu_);
    if (seconds >= 0) stages_.insert(stage);
  }
  std::vector<std::string> changes() {
    absl::MutexLock lock(&mu_);
    return changes_;
  }
  std::set<std::string> stages() {
    absl::MutexLock lock(&mu_);
    return stages_;
  }
  int64_t max_depth() {
    absl::MutexLock lock(&mu_);
    return max_depth_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> changes_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> stages_ ABSL_GUARDED_BY(mu_);
  int64_t max_depth_ ABSL_GUARDED_BY(mu_) = 0;
};

JobRecord NewJob(const std::string& spec, const std::string& request_id = "", int priority = 0,
                 const std::string& id = "") {
  JobRecord r;
  r.id = id;
  r.spec_json = spec;
  r.request_id = request_id;
  r.priority = priority;
  return r;
}

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = TempDir(info->name());
    OpenStore();
  }

  void TearDown() override {
    manager_.reset();  // joins the workers before the runner and store go
  }

  void OpenStore() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(dir_ + "/jobs.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  JobManagerOptions Options() {
    JobManagerOptions options;
    options.data_dir = dir_ + "/data";
    options.queue_capacity = 16;
    // Durable progress only on count changes, so that memory-only versions
    // appear deterministically.
    options.progress_interval = absl::Hours(1);
    options.metrics = &metrics_;
    return options;
  }

  void StartManager(JobManagerOptions options, JobRunner* runner = nullptr) {
    manager_ = std::make_unique<JobManager>(store_.get(), runner != nullptr ? runner : &runner_,
                                            std::move(options));
    ASSERT_TRUE(manager_->Start().ok());
  }
  void StartManager() { StartManager(Options()); }

  std::string Submit(const std::string& spec, const std::string& request_id = "",
                     int priority = 0) {
    absl::StatusOr<SubmitResult> r = manager_->Submit(NewJob(spec, request_id, priority));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    EXPECT_TRUE(r->created);
    return r->snapshot.job.id;
  }

  // Follows the job with WaitForChange until it is finished.
  JobSnapshot WaitFinished(const std::string& id) {
    const absl::Time deadline = absl::Now() + kTimeout;
    int64_t version = 0;
    while (true) {
      absl::StatusOr<JobSnapshot> s =
          manager_->WaitForChange(id, version, std::min(deadline, absl::Now() + absl::Seconds(1)));
      EXPECT_TRUE(s.ok()) << s.status();
      if (!s.ok()) return {};
      if (IsTerminal(s->job.state) || absl::Now() >= deadline) return *s;
      version = s->version;
    }
  }

  JobRecord Stored(const std::string& id) {
    absl::StatusOr<JobRecord> r = store_->Get(id);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : JobRecord{};
  }

  std::string dir_;
  FakeRunner runner_;
  RecordingMetrics metrics_;
  std::unique_ptr<SqliteJobStore> store_;
  std::unique_ptr<JobManager> manager_;
};

TEST_F(JobManagerTest, SubmittedJobRunsToSuccess) {
  StartManager();
  absl::StatusOr<SubmitResult> submitted = manager_->Submit(NewJob(R"({"steps": 3})"));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_TRUE(submitted->created);
  const std::string id = submitted->snapshot.job.id;
  EXPECT_TRUE(ValidateJobId(id).ok()) << id;
  EXPECT_EQ(submitted->snapshot.job.state, JobState::kPending);
  EXPECT_EQ(submitted->snapshot.version, WatchVersion(1));

  const JobSnapshot done = WaitFinished(id);
  EXPECT_EQ(done.job.state, JobState::kSucceeded);
  EXPECT_EQ(done.job.progress.stage, "done");
  EXPECT_EQ(done.job.progress.done, 3);
  EXPECT_EQ(done.job.progress.fraction, 1.0);
  EXPECT_EQ(done.job.result_dir, (std::filesystem::path(dir_) / "data" / "jobs" / id).string());
  EXPECT_GT(done.version, submitted->snapshot.version);

  // Durable, not only in memory.
  const JobRecord stored = Stored(id);
  EXPECT_EQ(stored.state, JobState::kSucceeded);
  EXPECT_EQ(stored.progress.stage, "done");
  EXPECT_NE(stored.start_time, absl::InfinitePast());
  EXPECT_NE(stored.end_time, absl::InfinitePast());
  absl::StatusOr<std::map<std::string, std::string>> units = store_->ListUnitsDone(id);
  ASSERT_TRUE(units.ok());
  EXPECT_EQ(units->size(), 3u);

  EXPECT_THAT(metrics_.changes(),
              ElementsAre("NEW->PENDING", "PENDING->RUNNING", "RUNNING->SUCCEEDED"));
  EXPECT_EQ(metrics_.stages(), std::set<std::string>{"work"});
  EXPECT_EQ(runner_.attempts(id), 1);
}

TEST_F(JobManagerTest, ResubmittingARequestIdReturnsTheSameJob) {
  StartManager();
  const std::string spec = R"({"steps": 2, "pause_at": 0})";
  const std::string id = Submit(spec, "req-1");
  ASSERT_TRUE(runner_.WaitPaused(id));

  // While it runs: answered from memory.
  absl::StatusOr<SubmitResult> again = manager_->Submit(NewJob(spec, "req-1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->snapshot.job.id, id);
  absl::StatusOr<SubmitResult> other = manager_->Submit(NewJob(R"({"steps": 9})", "req-1"));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists);

  runner_.Release();
  EXPECT_EQ(WaitFinished(id).job.state, JobState::kSucceeded);

  // Once finished: answered from the store, still not run again.
  again = manager_->Submit(NewJob(spec, "req-1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->snapshot.job.id, id);
  EXPECT_EQ(again->snapshot.job.state, JobState::kSucceeded);
  other = manager_->Submit(NewJob(R"({"steps": 9})", "req-1"));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(runner_.attempts(id), 1);
  EXPECT_EQ(manager_->QueueDepth(), 0);
}

TEST_F(JobManagerTest, FullQueueIsResourceExhaustedAndCreatesNothing) {
  JobManagerOptions options = Options();
  options.queue_capacity = 2;
  StartManager(options);
  const std::string blocker = Submit(R"({"steps": 1, "pause_at": 0})");
  ASSERT_TRUE(runner_.WaitPaused(blocker));  // out of the queue, running

  const std::string a = Submit(R"({"steps": 1})");
  const std::string b = Submit(R"({"steps": 1})");
  EXPECT_EQ(manager_->QueueDepth(), 2);
  absl::StatusOr<SubmitResult> refused = manager_->Submit(NewJob(R"({"steps": 1})", "req-x"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(metrics_.max_depth(), 2);

  absl::StatusOr<JobPage> page = store_->List({});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->jobs.size(), 3u);

  runner_.Release();
  for (const std::string& id : {blocker, a, b}) {
    EXPECT_EQ(WaitFinished(id).job.state, JobState::kSucceeded);
  }
  // Room again.
  EXPECT_TRUE(manager_->Submit(NewJob(R"({"steps": 1})", "req-x")).ok());
}

TEST_F(JobManagerTest, CancellingAPendingJobEndsItAtOnce) {
  StartManager();
  const std::string blocker = Submit(R"({"steps": 1, "pause_at": 0})");
  ASSERT_TRUE(runner_.WaitPaused(blocker));
  const std::string pending = Submit(R"({"steps": 1})");

  absl::StatusOr<JobSnapshot> cancelled = manager_->Cancel(pending);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->job.state, JobState::kCancelled);
  EXPECT_EQ(Stored(pending).state, JobState::kCancelled);
  EXPECT_EQ(Stored(pending).error_code, "CANCELLED");
  EXPECT_EQ(manager_->QueueDepth(), 0);

  // Cancelling a finished job changes nothing; an unknown one is NotFound.
  absl::StatusOr<JobSnapshot> again = manager_->Cancel(pending);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->version, cancelled->version);
  EXPECT_EQ(manager_->Cancel("no-such-job").status().code(), absl::StatusCode::kNotFound);

  runner_.Release();
  EXPECT_EQ(WaitFinished(blocker).job.state, JobState::kSucceeded);
  EXPECT_EQ(runner_.attempts(pending), 0);
}

TEST_F(JobManagerTest, CancellingARunningJobStopsItsRunner) {
  StartManager();
  const std::string id = Submit(R"({"steps": 5, "pause_at": 2})");
  ASSERT_TRUE(runner_.WaitPaused(id));
  absl::StatusOr<JobSnapshot> asked = manager_->Cancel(id);
  ASSERT_TRUE(asked.ok()) << asked.status();
  EXPECT_EQ(asked->job.state, JobState::kRunning);  // best effort: it stops soon

  const JobSnapshot done = WaitFinished(id);
  EXPECT_EQ(done.job.state, JobState::kCancelled);
  EXPECT_EQ(done.job.error_code, "CANCELLED");
  EXPECT_EQ(done.job.error_message, "cancelled on request");
  EXPECT_EQ(done.job.progress.done, 2);  // the last durable progress survives
  EXPECT_EQ(Stored(id).state, JobState::kCancelled);
}

TEST_F(JobManagerTest, RunnerErrorFailsTheJobWithItsCode) {
  StartManager();
  const std::string id = Submit(
      absl::StrCat(R"({"fail_code": )", static_cast<int>(absl::StatusCode::kFailedPrecondition),
                   R"(, "fail_message": "the bundle has no population"})"));
  const JobSnapshot done = WaitFinished(id);
  EXPECT_EQ(done.job.state, JobState::kFailed);
  EXPECT_EQ(done.job.error_code, "FAILED_PRECONDITION");
  EXPECT_EQ(done.job.error_message, "the bundle has no population");
}

TEST_F(JobManagerTest, RunnerThrowingFailsTheJobAndTheServerGoesOn) {
  StartManager();
  const std::string threw = Submit(R"({"throw": "runtime_error"})");
  JobSnapshot done = WaitFinished(threw);
  EXPECT_EQ(done.job.state, JobState::kFailed);
  EXPECT_EQ(done.job.error_code, "INTERNAL");
  EXPECT_THAT(done.job.error_message, Not(HasSubstr("4242")));  // what() is not echoed

  const std::string oom = Submit(R"({"throw": "bad_alloc"})");
  done = WaitFinished(oom);
  EXPECT_EQ(done.job.state, JobState::kFailed);
  EXPECT_EQ(done.job.error_code, "RESOURCE_EXHAUSTED");

  const std::string fine = Submit(R"({"steps": 1})");
  EXPECT_EQ(WaitFinished(fine).job.state, JobState::kSucceeded);
}

TEST_F(JobManagerTest, DrainRequeuesRunningJobsAndANewManagerResumesThem) {
  StartManager();
  const std::string id = Submit(R"({"steps": 6, "pause_at": 3})");
  const std::string queued = Submit(R"({"steps": 1})");
  ASSERT_TRUE(runner_.WaitPaused(id));

  ASSERT_TRUE(manager_->Drain(absl::Now() + kTimeout).ok());
  EXPECT_EQ(manager_->RunningJobs(), 0);
  const JobRecord drained = Stored(id);
  EXPECT_EQ(drained.state, JobState::kPending);  // not cancelled: resumable
  EXPECT_EQ(drained.progress.done, 3);
  EXPECT_EQ(Stored(queued).state, JobState::kPending);
  absl::StatusOr<JobSnapshot> parked = manager_->Get(id);
  ASSERT_TRUE(parked.ok());
  EXPECT_EQ(parked->job.state, JobState::kPending);

  EXPECT_EQ(manager_->Submit(NewJob(R"({"steps": 1})")).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_THAT(metrics_.changes(), testing::Contains("RUNNING->PENDING"));

  // A new process: new store connection, new manager, same database.
  manager_.reset();
  OpenStore();
  StartManager();
  const JobSnapshot done = WaitFinished(id);
  EXPECT_EQ(done.job.state, JobState::kSucceeded);
  EXPECT_EQ(runner_.attempts(id), 2);
  EXPECT_EQ(runner_.skipped(id), 3);  // the units of the first attempt
  EXPECT_EQ(WaitFinished(queued).job.state, JobState::kSucceeded);
}

TEST_F(JobManagerTest, StartRequeuesJobsLeftRunningByADeadProcess) {
  // What a kill -9 leaves behind: RUNNING in the store, some units done.
  JobRecord record = NewJob(R"({"steps": 3})", "", 0, "orphan");
  record.spec_hash = "h";
  ASSERT_TRUE(store_->Create(record).ok());
  ASSERT_TRUE(store_->Transition("orphan", JobState::kRunning, {}).ok());
  ASSERT_TRUE(store_->MarkUnitDone("orphan", "step:0", "v").ok());

  StartManager();
  EXPECT_EQ(WaitFinished("orphan").job.state, JobState::kSucceeded);
  EXPECT_EQ(runner_.skipped("orphan"), 1);
  EXPECT_EQ(metrics_.changes().front(), "RUNNING->PENDING");
  // Counted as resumed even once a worker has taken it from the queue.
  EXPECT_EQ(manager_->ResumedJobs(), 1);
  EXPECT_EQ(manager_->QueueDepth(), 0);
}

// Every state change reaches on_state_change once, after the store write,
// with the stage, the time in the previous state and the error code.
TEST_F(JobManagerTest, StateChangesAreReportedWithStageDurationAndCode) {
  absl::Mutex mu;
  std::vector<JobStateChange> changes;
  JobManagerOptions options = Options();
  options.on_state_change = [&](const JobStateChange& change) {
    absl::MutexLock lock(&mu);
    changes.push_back(change);
  };
  StartManager(std::move(options));
  const std::string ok = Submit(R"({"steps": 2})");
  EXPECT_EQ(WaitFinished(ok).job.state, JobState::kSucceeded);
  const std::string full = Submit(
      absl::StrCat(R"({"fail_code": )", static_cast<int>(absl::StatusCode::kResourceExhausted),
                   R"(, "fail_message": "no space left on device"})"));
  EXPECT_EQ(WaitFinished(full).job.state, JobState::kFailed);
  manager_.reset();

  absl::MutexLock lock(&mu);
  std::vector<std::string> seen;
  for (const JobStateChange& c : changes) {
    seen.push_back(absl::StrCat(c.id == ok ? "ok" : "full", ":",
                                c.from ? JobStateName(*c.from) : "NEW", "->", JobStateName(c.to),
                                "@", c.stage, ":", c.error_code, ":", c.store_error_code));
    EXPECT_GE(c.duration, absl::ZeroDuration());
  }
  EXPECT_THAT(seen, ElementsAre("ok:NEW->PENDING@queued::", "ok:PENDING->RUNNING@queued::",
                                "ok:RUNNING->SUCCEEDED@done::", "full:NEW->PENDING@queued::",
                                "full:PENDING->RUNNING@queued::",
                                "full:RUNNING->FAILED@queued:RESOURCE_EXHAUSTED:"));
}

// PENDING is told before the job can be taken by a worker: a slow listener
// of the creation (a log sink) never sees RUNNING first.
TEST_F(JobManagerTest, ANewJobIsReportedPendingBeforeRunning) {
  absl::Mutex mu;
  std::vector<JobState> states;
  JobManagerOptions options = Options();
  options.on_state_change = [&](const JobStateChange& change) {
    // Widens the window in which a worker could start the job.
    if (change.to == JobState::kPending) absl::SleepFor(absl::Milliseconds(200));
    absl::MutexLock lock(&mu);
    states.push_back(change.to);
  };
  StartManager(std::move(options));
  const std::string id = Submit(R"({"steps": 1})");
  EXPECT_EQ(WaitFinished(id).job.state, JobState::kSucceeded);
  manager_.reset();
  absl::MutexLock lock(&mu);
  EXPECT_THAT(states, ElementsAre(JobState::kPending, JobState::kRunning, JobState::kSucceeded));
}

// A real store whose writes of a final state fail as on a full disk.
class FullDiskStore final : public JobStore {
 public:
  explicit FullDiskStore(JobStore* real) : real_(real) {}
  absl::StatusOr<CreateResult> Create(const JobRecord& record) override {
    return real_->Create(record);
  }
  absl::StatusOr<JobRecord> Get(absl::string_view id) override { return real_->Get(id); }
  absl::StatusOr<JobPage> List(const ListOptions& options) override { return real_->List(options); }
  absl::StatusOr<JobRecord> Update(const JobRecord& record) override {
    return real_->Update(record);
  }
  absl::StatusOr<JobRecord> Transition(absl::string_view id, JobState to,
                                       const TransitionDetails& details) override {
    if (IsTerminal(to)) return absl::ResourceExhaustedError("jobs.db: database or disk is full");
    return real_->Transition(id, to, details);
  }
  absl::StatusOr<JobRecord> UpdateProgress(absl::string_view id,
                                           const JobProgress& progress) override {
    return real_->UpdateProgress(id, progress);
  }
  absl::Status Delete(absl::string_view id) override { return real_->Delete(id); }
  absl::StatusOr<std::vector<JobRecord>> ListUnfinished() override {
    return real_->ListUnfinished();
  }
  absl::Status MarkUnitDone(absl::string_view job_id, absl::string_view unit,
                            absl::string_view value) override {
    return real_->MarkUnitDone(job_id, unit, value);
  }
  absl::StatusOr<std::map<std::string, std::string>> ListUnitsDone(
      absl::string_view job_id) override {
    return real_->ListUnitsDone(job_id);
  }

 private:
  JobStore* const real_;
};

// A final state the store cannot record is reported too, with the store's
// code: the one trace a full disk leaves in the server's log.
TEST_F(JobManagerTest, StateChangesTheStoreCannotRecordAreReported) {
  FullDiskStore full(store_.get());
  absl::Mutex mu;
  std::vector<JobStateChange> changes;
  JobManagerOptions options = Options();
  options.on_state_change = [&](const JobStateChange& change) {
    absl::MutexLock lock(&mu);
    changes.push_back(change);
  };
  manager_ = std::make_unique<JobManager>(&full, &runner_, std::move(options));
  ASSERT_TRUE(manager_->Start().ok());
  const std::string id = Submit(R"({"steps": 1})");
  {
    absl::MutexLock lock(&mu);
    std::function<bool()> unrecorded = [&changes]() {
      return !changes.empty() && !changes.back().store_error_code.empty();
    };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&CallPredicate, &unrecorded), kTimeout));
    const JobStateChange& last = changes.back();
    EXPECT_EQ(last.id, id);
    EXPECT_EQ(last.from, JobState::kRunning);
    EXPECT_EQ(last.to, JobState::kSucceeded);
    EXPECT_EQ(last.store_error_code, "RESOURCE_EXHAUSTED");
  }
  manager_.reset();  // before `full`
  // The store still says RUNNING: the next start resumes it.
  EXPECT_EQ(Stored(id).state, JobState::kRunning);
}

// A job left RUNNING whose requeue the store cannot write (a read-only file,
// a full disk) used to fail Start and so the whole server's start, at every
// restart. It is now left as it is and reported; every other job is held.
TEST_F(JobManagerTest, AJobWhoseRequeueCannotBeWrittenDoesNotStopTheStart) {
  JobRecord orphan = NewJob(R"({"steps": 3})", "", 0, "orphan");
  orphan.spec_hash = "h";
  ASSERT_TRUE(store_->Create(orphan).ok());
  ASSERT_TRUE(store_->Transition("orphan", JobState::kRunning, {}).ok());
  JobRecord waiting = NewJob(R"({"steps": 1})", "", 0, "waiting");
  waiting.spec_hash = "h2";
  ASSERT_TRUE(store_->Create(waiting).ok());
  store_.reset();
  SqliteJobStoreOptions read_only;
  read_only.read_only = true;
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> store =
      SqliteJobStore::Open(dir_ + "/jobs.db", read_only);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);

  manager_ = std::make_unique<JobManager>(store_.get(), &runner_, Options());
  const absl::Status started = manager_->Start();
  ASSERT_TRUE(started.ok()) << started;
  const std::vector<JobManager::ResumeFailure> failures = manager_->ResumeFailures();
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].id, "orphan");
  EXPECT_THAT(failures[0].status.message(), HasSubstr("read-only"));
  absl::StatusOr<JobSnapshot> held = manager_->Get("waiting");
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->job.state, JobState::kPending);  // it cannot be marked RUNNING either
  EXPECT_EQ(manager_->Get("orphan")->job.state, JobState::kRunning);
}

// A store whose writes fail while `read_only` is set, as a read-only
// database file does; reads pass through.
class SwitchableStore final : public JobStore {
 public:
  explicit SwitchableStore(JobStore* real) : real_(real) {}
  std::atomic<bool> read_only{false};

  absl::StatusOr<CreateResult> Create(const JobRecord& record) override {
    if (read_only) return Refused();
    return real_->Create(record);
  }
  absl::StatusOr<JobRecord> Get(absl::string_view id) override { return real_->Get(id); }
  absl::StatusOr<JobPage> List(const ListOptions& options) override { return real_->List(options); }
  absl::StatusOr<JobRecord> Update(const JobRecord& record) override {
    if (read_only) return Refused();
    return real_->Update(record);
  }
  absl::StatusOr<JobRecord> Transition(absl::string_view id, JobState to,
                                       const TransitionDetails& details) override {
    if (read_only) return Refused();
    return real_->Transition(id, to, details);
  }
  absl::StatusOr<JobRecord> UpdateProgress(absl::string_view id,
                                           const JobProgress& progress) override {
    if (read_only) return Refused();
    return real_->UpdateProgress(id, progress);
  }
  absl::Status Delete(absl::string_view id) override {
    if (read_only) return Refused();
    return real_->Delete(id);
  }
  absl::StatusOr<std::vector<JobRecord>> ListUnfinished() override {
    return real_->ListUnfinished();
  }
  absl::Status MarkUnitDone(absl::string_view job_id, absl::string_view unit,
                            absl::string_view value) override {
    if (read_only) return Refused();
    return real_->MarkUnitDone(job_id, unit, value);
  }
  absl::StatusOr<std::map<std::string, std::string>> ListUnitsDone(
      absl::string_view job_id) override {
    return real_->ListUnitsDone(job_id);
  }

 private:
  static absl::Status Refused() {
    return absl::FailedPreconditionError("jobs.db: attempt to write a readonly database");
  }
  JobStore* const real_;
};

// A job left RUNNING whose requeue failed at start is run by no process. It
// used to stay RUNNING for good: Cancel returned it unchanged and it could
// never be deleted. Cancel now writes CANCELLED (an error while the store is
// still read-only, the job kept as it was), and the job can then be deleted.
TEST_F(JobManagerTest, AJobWhoseRequeueFailedCanBeCancelledAndDeleted) {
  JobRecord orphan = NewJob(R"({"steps": 3})", "", 0, "orphan");
  orphan.spec_hash = "h";
  ASSERT_TRUE(store_->Create(orphan).ok());
  ASSERT_TRUE(store_->Transition("orphan", JobState::kRunning, {}).ok());
  SwitchableStore store(store_.get());
  store.read_only = true;
  manager_ = std::make_unique<JobManager>(&store, &runner_, Options());
  ASSERT_TRUE(manager_->Start().ok());
  ASSERT_EQ(manager_->ResumeFailures().size(), 1u);

  // Still read-only: an error, not a silent RUNNING; nothing is lost.
  const absl::StatusOr<JobSnapshot> refused = manager_->Cancel("orphan");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("cannot cancel job orphan"));
  EXPECT_EQ(Stored("orphan").state, JobState::kRunning);
  EXPECT_EQ(manager_->ResumeFailures().size(), 1u);

  store.read_only = false;
  const absl::StatusOr<JobSnapshot> cancelled = manager_->Cancel("orphan");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->job.state, JobState::kCancelled);
  EXPECT_EQ(cancelled->job.error_code, "CANCELLED");
  EXPECT_EQ(Stored("orphan").state, JobState::kCancelled);
  EXPECT_EQ(manager_->Get("orphan")->job.state, JobState::kCancelled);
  EXPECT_TRUE(manager_->ResumeFailures().empty());
  // Cancelling again returns the finished job unchanged.
  EXPECT_EQ(manager_->Cancel("orphan")->job.state, JobState::kCancelled);
  // Finished, so it can be deleted (the backend's DeleteAudit is this call).
  EXPECT_TRUE(store.Delete("orphan").ok());
  EXPECT_EQ(store_->Get("orphan").status().code(), absl::StatusCode::kNotFound);
  manager_.reset();  // before `store`
}

TEST_F(JobManagerTest, SubmitBeforeStartAndAfterDrainIsUnavailable) {
  manager_ = std::make_unique<JobManager>(store_.get(), &runner_, Options());
  EXPECT_EQ(manager_->Submit(NewJob(R"({"steps": 1})")).status().code(),
            absl::StatusCode::kUnavailable);
  ASSERT_TRUE(manager_->Start().ok());
  EXPECT_EQ(manager_->Start().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(manager_->Drain(absl::Now() + kTimeout).ok());
  EXPECT_EQ(manager_->Submit(NewJob(R"({"steps": 1})")).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(manager_->Drain(absl::Now() + kTimeout).ok());  // again: fine
}

TEST_F(JobManagerTest, HigherPriorityRunsFirstThenOlder) {
  StartManager();
  const std::string blocker = Submit(R"({"steps": 1, "pause_at": 0})");
  ASSERT_TRUE(runner_.WaitPaused(blocker));
  const std::string low = Submit(R"({"steps": 1})", "", 0);
  const std::string high = Submit(R"({"steps": 1})", "", 5);
  const std::string mid = Submit(R"({"steps": 1})", "", 1);
  const std::string high2 = Submit(R"({"steps": 1})", "", 5);
  runner_.Release();
  for (const std::string& id : {low, high, mid, high2}) WaitFinished(id);
  EXPECT_THAT(runner_.order(), ElementsAre(blocker, high, high2, mid, low));
}

TEST_F(JobManagerTest, WatchersAreToldOfEveryVisibleChange) {
  StartManager();
  absl::Mutex mu;
  std::vector<int64_t> versions;
  const uint64_t handle = manager_->Subscribe("watched", [&](const std::string& id, int64_t v) {
    EXPECT_EQ(id, "watched");
    absl::MutexLock lock(&mu);
    versions.push_back(v);
  });
  absl::StatusOr<SubmitResult> submitted =
      manager_->Submit(NewJob(R"({"steps": 4})", "", 0, "watched"));
  ASSERT_TRUE(submitted.ok());
  const JobSnapshot done = WaitFinished("watched");
  ASSERT_EQ(done.job.state, JobState::kSucceeded);
  {
    // The final snapshot is readable a moment before its notification runs.
    absl::MutexLock lock(&mu);
    std::function<bool()> told = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return std::find(versions.begin(), versions.end(), done.version) != versions.end();
    };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&CallPredicate, &told), kTimeout));
  }
  manager_->Unsubscribe(handle);

  absl::MutexLock lock(&mu);
  ASSERT_FALSE(versions.empty());
  // Durable writes and memory-only updates both count; the last one told is
  // the final snapshot's.
  EXPECT_EQ(*std::max_element(versions.begin(), versions.end()), done.version);
  const int64_t mask = (int64_t{1} << kWatchVersionShift) - 1;
  EXPECT_TRUE(std::any_of(versions.begin(), versions.end(), [&](int64_t v) {
    return (v & mask) != 0;
  })) << "no memory-only progress version";
  std::set<int64_t> distinct(versions.begin(), versions.end());
  EXPECT_EQ(distinct.size(), versions.size());
  // The store's progress lags memory only between durable writes.
  EXPECT_EQ(done.version, WatchVersion(Stored("watched").version));
}

TEST_F(JobManagerTest, UnsubscribedWatchersHearNothingMore) {
  StartManager();
  std::atomic<int> calls{0};
  const std::string id = Submit(R"({"steps": 3, "pause_at": 1})");
  ASSERT_TRUE(runner_.WaitPaused(id));
  const uint64_t handle = manager_->Subscribe(id, [&](const std::string&, int64_t) { ++calls; });
  manager_->Unsubscribe(handle);
  manager_->Unsubscribe(handle);  // unknown now: ignored
  runner_.Release();
  EXPECT_EQ(WaitFinished(id).job.state, JobState::kSucceeded);
  EXPECT_EQ(calls.load(), 0);

  // A callback may unsubscribe itself; subscribing before the job exists
  // hears its creation.
  std::atomic<uint64_t> self{0};
  std::atomic<int> self_calls{0};
  self = manager_->Subscribe("self-unsubscribing", [&](const std::string&, int64_t) {
    ++self_calls;
    manager_->Unsubscribe(self.load());
  });
  ASSERT_TRUE(manager_->Submit(NewJob(R"({"steps": 3})", "", 0, "self-unsubscribing")).ok());
  EXPECT_EQ(WaitFinished("self-unsubscribing").job.state, JobState::kSucceeded);
  EXPECT_EQ(self_calls.load(), 1);
}

// A watcher built the way the gRPC layer will be: the callback only records
// "dirty" and wakes the watcher; the watcher fetches the latest snapshot when
// it is ready. While it is stalled the job goes on and finishes, and the
// watcher then sends the final snapshot, having skipped the versions between.
TEST_F(JobManagerTest, ASlowWatcherSkipsToTheLatestVersion) {
  StartManager();
  absl::Mutex mu;
  int64_t notified = 0;  // highest version told
  int notifications = 0;
  bool stalled_until_done = true;
  std::vector<int64_t> sent;
  const std::string id = "slow-watch";
  const uint64_t handle = manager_->Subscribe(id, [&](const std::string&, int64_t v) {
    absl::MutexLock lock(&mu);  // cheap: no waiting on the watcher
    notified = std::max(notified, v);
    ++notifications;
  });
  std::thread watcher([&] {
    int64_t last_sent = 0;
    while (true) {
      {
        absl::MutexLock lock(&mu);
        auto ready = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return notified > last_sent && !(stalled_until_done && !sent.empty());
        };
        std::function<bool()> predicate = ready;
        if (!mu.AwaitWithTimeout(absl::Condition(&CallPredicate, &predicate), kTimeout)) return;
      }
      absl::StatusOr<JobSnapshot> s = manager_->Get(id);
      if (!s.ok()) return;
      if (s->version <= last_sent) continue;
      last_sent = s->version;
      absl::MutexLock lock(&mu);
      sent.push_back(s->version);
      if (IsTerminal(s->job.state)) return;
    }
  });
  ASSERT_TRUE(manager_->Submit(NewJob(R"({"steps": 10, "pause_at": 5})", "", 0, id)).ok());
  {
    // The watcher has sent its first snapshot and stalls; then the job goes on.
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(
        mu.AwaitWithTimeout(absl::Condition(
                                +[](std::vector<int64_t>* v) { return !v->empty(); }, &sent),
                            kTimeout));
  }
  runner_.Release();
  const JobSnapshot done = WaitFinished(id);  // finishes while the watcher stalls
  {
    absl::MutexLock lock(&mu);
    stalled_until_done = false;
  }
  watcher.join();
  {
    absl::MutexLock lock(&mu);
    ASSERT_EQ(sent.size(), 2u);  // the first snapshot, then straight to the last
    EXPECT_EQ(sent.back(), done.version);
    // The final notification may trail the final snapshot by a moment.
    std::function<bool()> told_final = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return notified == done.version;
    };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&CallPredicate, &told_final), kTimeout));
    EXPECT_GT(notifications, 10);
  }
  manager_->Unsubscribe(handle);
}

TEST_F(JobManagerTest, WaitForChangeReturnsTheSameSnapshotAtTheDeadline) {
  StartManager();
  const std::string id = Submit(R"({"steps": 1})");
  const JobSnapshot done = WaitFinished(id);
  absl::StatusOr<JobSnapshot> beat =
      manager_->WaitForChange(id, done.version, absl::Now() + absl::Milliseconds(20));
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->version, done.version);
  EXPECT_EQ(manager_->WaitForChange("nope", 0, absl::Now()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(JobManagerTest, SeveralWorkersRunJobsConcurrently) {
  JobManagerOptions options = Options();
  options.workers = 2;
  options.compute_threads_per_worker = 3;
  StartManager(options);
  EXPECT_EQ(manager_->compute_threads_per_worker(), 3);
  const std::string a = Submit(R"({"steps": 1, "pause_at": 0})");
  const std::string b = Submit(R"({"steps": 1, "pause_at": 0})");
  // Both pause at once: only possible with two workers.
  ASSERT_TRUE(runner_.WaitPaused(a));
  ASSERT_TRUE(runner_.WaitPaused(b));
  EXPECT_EQ(manager_->RunningJobs(), 2);
  runner_.Release();
  EXPECT_EQ(WaitFinished(a).job.state, JobState::kSucceeded);
  EXPECT_EQ(WaitFinished(b).job.state, JobState::kSucceeded);
}

TEST(DefaultComputeThreadsTest, DividesCoresAmongWorkers) {
  EXPECT_EQ(DefaultComputeThreads(16, 1), 16);
  EXPECT_EQ(DefaultComputeThreads(16, 3), 5);
  EXPECT_EQ(DefaultComputeThreads(2, 4), 1);
  EXPECT_EQ(DefaultComputeThreads(0, 1), 1);  // unknown core count
}

// --- job specs -------------------------------------------------------------

TEST(JobSpecTest, KindsAreToldApart) {
  EXPECT_EQ(*JobSpecKindOf(R"({"kind": "bundle", "bundle_path": "x"})"), JobSpecKind::kBundle);
  EXPECT_EQ(*JobSpecKindOf(R"({"data": {}})"), JobSpecKind::kPipeline);
  EXPECT_EQ(*JobSpecKindOf(R"({"kind": "pipeline"})"), JobSpecKind::kPipeline);
  EXPECT_EQ(JobSpecKindOf(R"({"kind": "other"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(JobSpecKindOf("[1, 2]").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(JobSpecKindOf("{not json").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(JobSpecTest, BundleSpecRoundTrips) {
  absl::StatusOr<BundleAuditSpec> spec = DecodeBundleSpec(R"({
    "kind": "bundle", "bundle_path": "/in/b.npz",
    "scoring": {"attacks": ["rmia", "lira:variance=fixed"], "targets": [0, 2],
                "temperature": 2, "fprs": [0.1, 0.001], "bootstrap": 50,
                "confidence": 0.9, "delta": 0.001, "beta": 0.1, "seed": 7}})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->bundle_path, "/in/b.npz");
  EXPECT_THAT(spec->scoring.attacks, ElementsAre("rmia", "lira:variance=fixed"));
  EXPECT_THAT(spec->scoring.targets, ElementsAre(0, 2));
  EXPECT_EQ(spec->scoring.temperature, 2);
  EXPECT_EQ(spec->scoring.bootstrap.resamples, 50);
  EXPECT_EQ(spec->scoring.seed, 7u);

  absl::StatusOr<BundleAuditSpec> again = DecodeBundleSpec(EncodeBundleSpec(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(EncodeBundleSpec(*again), EncodeBundleSpec(*spec));
  EXPECT_EQ(again->scoring.fprs, spec->scoring.fprs);
  EXPECT_EQ(again->scoring.epsilon.delta, spec->scoring.epsilon.delta);

  // Defaults: only the path is required.
  spec = DecodeBundleSpec(R"({"kind": "bundle", "bundle_path": "b"})");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->scoring.attacks, audit::ScoringOptions().attacks);
}

TEST(JobSpecTest, BadBundleSpecsNameTheKey) {
  auto error = [](const std::string& json) {
    absl::Status s = DecodeBundleSpec(json).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << json;
    return std::string(s.message());
  };
  EXPECT_THAT(error(R"({"kind": "bundle"})"), HasSubstr("bundle_path"));
  EXPECT_THAT(error(R"({"kind": "bundle", "bundle_path": "b", "extra": 1})"),
              HasSubstr("extra: unknown key"));
  EXPECT_THAT(error(R"({"kind": "bundle", "bundle_path": "b", "scoring": {"temprature": 1}})"),
              HasSubstr("scoring.temprature: unknown key"));
  EXPECT_THAT(error(R"({"kind": "bundle", "bundle_path": "b", "scoring": {"bootstrap": "x"}})"),
              HasSubstr("scoring.bootstrap: expected an integer"));
  EXPECT_THAT(error(R"({"kind": "bundle", "bundle_path": "b", "scoring": {"fprs": [2]}})"),
              HasSubstr("scoring.fprs[0]: must be in [0, 1]"));
  // The limits of the YAML's audit section hold here too (one copy of them).
  std::string fprs = "0.5";
  for (int i = 1; i < 65; ++i) fprs += ", 0.5";
  EXPECT_THAT(
      error(R"({"kind": "bundle", "bundle_path": "b", "scoring": {"fprs": [)" + fprs + "]}}"),
      HasSubstr("scoring.fprs: must have at most 64 entries"));
  EXPECT_THAT(
      error(R"({"kind": "bundle", "bundle_path": "b", "scoring": {"attacks": ["loss", "loss"]}})"),
      HasSubstr("scoring.attacks[1]: the same attack is given twice"));
  EXPECT_THAT(error(R"({"kind": "bundle", "bundle_path": "b", "scoring": {"attacks": ["nope"]}})"),
              HasSubstr("scoring.attacks"));
  EXPECT_THAT(error(R"({"kind": "bundle", "bundle_path": "b", "scoring": {"seed": -1}})"),
              HasSubstr("scoring.seed"));
  EXPECT_THAT(error(R"({"kind": "bundle", "bundle_path": "b",
                        "scoring": {"targets": [1], "all_targets": true}})"),
              HasSubstr("not both"));
  EXPECT_THAT(error(R"({"data": {}})"), HasSubstr("kind"));
}

TEST(JobSpecTest, PipelineSpecIsTheConfigSchemaAsJson) {
  const std::string config = R"({
    "run": {"random_seed": 7, "num_experiments": 1, "log_dir": "runs/x"},
    "data": {"dataset": "purchase100", "data_dir": "/srv/data/purchase",
             "population_size": 100},
    "audit": {"attacks": ["rmia"], "num_ref_models": 3}})";
  absl::StatusOr<pipeline::Config> c = DecodePipelineSpec(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->run.random_seed, 7u);
  EXPECT_EQ(c->num_models(), 4);
  EXPECT_TRUE(ValidateJobSpec(config).ok());

  nlohmann::json with_kind = nlohmann::json::parse(config);
  with_kind["kind"] = "pipeline";
  EXPECT_TRUE(DecodePipelineSpec(with_kind.dump()).ok());

  const absl::Status bad = ValidateJobSpec(R"({"run": {"random_sed": 1}})");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("run.random_sed"));
  EXPECT_EQ(DecodePipelineSpec(R"({"kind": "bundle", "bundle_path": "b"})").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The two examples in core/jobs/job_spec.h's comment (its lines indented six
// spaces after "//") decode as written.
TEST(JobSpecTest, HeaderExamplesDecode) {
  std::ifstream in(std::string(MIA_SOURCE_DIR) + "/core/jobs/job_spec.h");
  ASSERT_TRUE(in) << "job_spec.h not found";
  std::vector<std::string> examples;
  std::string line;
  bool in_example = false;
  while (std::getline(in, line)) {
    const bool example_line = absl::StartsWith(line, "//      ");
    if (example_line && !in_example) examples.emplace_back();
    if (example_line) examples.back() += line.substr(2) + "\n";
    in_example = example_line;
  }
  ASSERT_EQ(examples.size(), 2u);
  absl::StatusOr<pipeline::Config> pipeline = DecodePipelineSpec(examples[0]);
  EXPECT_TRUE(pipeline.ok()) << pipeline.status();
  absl::StatusOr<BundleAuditSpec> bundle = DecodeBundleSpec(examples[1]);
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  EXPECT_EQ(bundle->scoring.bootstrap.resamples, 1000);
}

// --- the real bundle runner --------------------------------------------------

TEST_F(JobManagerTest, BundleAuditRunsEndToEnd) {
  audit::SyntheticOptions synthetic;
  synthetic.models = 4;
  synthetic.points = 200;
  synthetic.population = 100;
  absl::StatusOr<io::NpyMap> arrays = audit::MakeSyntheticBundle(synthetic);
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  const std::string bundle_path = dir_ + "/signals.npz";
  ASSERT_TRUE(io::WriteNpz(bundle_path, *arrays, /*compress=*/false).ok());

  BundleJobRunner bundles;
  StartManager(Options(), &bundles);

  BundleAuditSpec spec;
  spec.bundle_path = bundle_path;
  spec.scoring.attacks = {"rmia", "loss"};
  spec.scoring.bootstrap.resamples = 0;
  const std::string id = Submit(EncodeBundleSpec(spec));
  const JobSnapshot done = WaitFinished(id);
  ASSERT_EQ(done.job.state, JobState::kSucceeded)
      << done.job.error_code << ": " << done.job.error_message;
  // A bundle audit trains no models: no model counts.
  EXPECT_EQ(done.job.progress.done, 0);
  EXPECT_EQ(done.job.progress.total, 0);
  for (const char* file : {"result.json", "scores.csv", "summary.md", "roc.svg"}) {
    EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(done.job.result_dir) / file)) << file;
  }
  EXPECT_TRUE(metrics_.stages().count("attack") > 0);

  // Cancelling stops the scoring inside the bootstrap: 10^6 resamples of
  // 20,000 points would run for minutes, past WaitFinished's deadline.
  synthetic.points = 20000;
  absl::StatusOr<io::NpyMap> large = audit::MakeSyntheticBundle(synthetic);
  ASSERT_TRUE(large.ok()) << large.status();
  BundleAuditSpec slow_spec = spec;
  slow_spec.bundle_path = dir_ + "/large.npz";
  ASSERT_TRUE(io::WriteNpz(slow_spec.bundle_path, *large, /*compress=*/false).ok());
  slow_spec.scoring.bootstrap.resamples = 1'000'000;
  const std::string slow = Submit(EncodeBundleSpec(slow_spec));
  for (int i = 0; i < 400; ++i) {
    absl::StatusOr<JobSnapshot> s = manager_->Get(slow);
    ASSERT_TRUE(s.ok()) << s.status();
    if (s->job.state == JobState::kRunning) break;
    absl::SleepFor(absl::Milliseconds(25));
  }
  absl::SleepFor(absl::Milliseconds(300));  // into the scoring
  ASSERT_TRUE(manager_->Cancel(slow).ok());
  const JobSnapshot stopped = WaitFinished(slow);
  EXPECT_EQ(stopped.job.state, JobState::kCancelled);

  // A missing bundle fails the job, not the server.
  spec.bundle_path = dir_ + "/missing.npz";
  const JobSnapshot missing = WaitFinished(Submit(EncodeBundleSpec(spec)));
  EXPECT_EQ(missing.job.state, JobState::kFailed);
  EXPECT_EQ(missing.job.error_code, "NOT_FOUND");
  manager_.reset();  // before the runners go
}

// A language-model bundle goes through the same runner and loader unchanged:
// the sequence attacks run and the report has a column for each.
TEST_F(JobManagerTest, LanguageModelBundleAuditRunsEndToEnd) {
  audit::SyntheticLmOptions synthetic;
  synthetic.models = 4;
  synthetic.points = 200;
  synthetic.population = 100;
  synthetic.max_length = 12;
  absl::StatusOr<io::NpyMap> arrays = audit::MakeSyntheticLmBundle(synthetic);
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  const std::string bundle_path = dir_ + "/lm.npz";
  ASSERT_TRUE(io::WriteNpz(bundle_path, *arrays, /*compress=*/true).ok());

  BundleJobRunner bundles;
  StartManager(Options(), &bundles);

  BundleAuditSpec spec;
  spec.bundle_path = bundle_path;
  spec.scoring.attacks = {"zlib", "min-k++", "lm-reference", "rmia-offline"};
  spec.scoring.bootstrap.resamples = 0;
  const JobSnapshot done = WaitFinished(Submit(EncodeBundleSpec(spec)));
  ASSERT_EQ(done.job.state, JobState::kSucceeded)
      << done.job.error_code << ": " << done.job.error_message;
  std::ifstream scores(std::filesystem::path(done.job.result_dir) / "scores.csv");
  std::string header;
  std::getline(scores, header);
  EXPECT_EQ(header, "row_id,target,member,zlib,min-k++,lm-reference,rmia-offline");

  // An attack whose arrays the bundle lacks fails the job, naming them.
  arrays->erase("texts");
  ASSERT_TRUE(io::WriteNpz(bundle_path, *arrays, /*compress=*/true).ok());
  const JobSnapshot refused = WaitFinished(Submit(EncodeBundleSpec(spec)));
  EXPECT_EQ(refused.job.state, JobState::kFailed);
  EXPECT_EQ(refused.job.error_code, "INVALID_ARGUMENT");
  EXPECT_THAT(refused.job.error_message, HasSubstr("needs texts"));
  manager_.reset();  // before the runners go
}

}  // namespace
}  // namespace mia::jobs
