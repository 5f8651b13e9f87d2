// JobManager's cluster mode (several replicas on one shared store) against
// an in-memory ClusterQueue over one SqliteJobStore: two managers stand for
// two replicas. The queue here follows the contract of cluster_queue.h in
// the simplest way (one mutex); the PostgreSQL implementation is tested
// against real PostgreSQL in postgres_store_test.cc, and the whole of it with
// real replicas in tests/integration.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/common/status_macros.h"
#include "core/jobs/cluster_queue.h"
#include "core/jobs/job_manager.h"
#include "core/jobs/job_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/temp_root.h"

namespace mia::jobs {
namespace {

constexpr absl::Duration kTimeout = absl::Seconds(60);

class MemoryClusterQueue final : public ClusterQueue {
 public:
  explicit MemoryClusterQueue(JobStore* store) : store_(store) {}

  // A replica whose calls all fail Unavailable (its network is cut).
  void Cut(const std::string& replica) {
    absl::MutexLock lock(&mu_);
    cut_.insert(replica);
  }
  void Heal(const std::string& replica) {
    absl::MutexLock lock(&mu_);
    cut_.erase(replica);
  }

  absl::StatusOr<std::optional<JobRecord>> ClaimJob(absl::string_view replica,
                                                    absl::Duration lease) override {
    absl::MutexLock lock(&mu_);
    if (cut_.count(std::string(replica))) return absl::UnavailableError("cut");
    MIA_ASSIGN_OR_RETURN(std::vector<JobRecord> unfinished, store_->ListUnfinished());
    const absl::Time now = absl::Now();
    for (const JobRecord& job : unfinished) {
      Hold& hold = holds_[job.id];
      if (hold.cancel_requested) continue;
      if (job.state == JobState::kPending) {
        MIA_ASSIGN_OR_RETURN(JobRecord running,
                              store_->Transition(job.id, JobState::kRunning, {}));
        hold.holder = std::string(replica);
        hold.until = now + lease;
        return std::optional<JobRecord>(running);
      }
      if (job.state == JobState::kRunning && hold.until < now) {
        hold.holder = std::string(replica);
        hold.until = now + lease;
        return std::optional<JobRecord>(job);
      }
    }
    return std::optional<JobRecord>();
  }

  absl::Status AddUnits(absl::string_view job_id, const std::vector<std::string>& units) override {
    absl::MutexLock lock(&mu_);
    std::vector<Unit>& list = units_[std::string(job_id)];
    for (const std::string& name : units) {
      if (std::none_of(list.begin(), list.end(), [&](const Unit& u) { return u.name == name; })) {
        Unit unit;
        unit.name = name;
        list.push_back(unit);
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<ClaimedUnit>> ClaimUnit(absl::string_view replica,
                                                       absl::Duration lease,
                                                       absl::string_view job_id) override {
    absl::MutexLock lock(&mu_);
    if (cut_.count(std::string(replica))) return absl::UnavailableError("cut");
    const absl::Time now = absl::Now();
    for (auto& [id, list] : units_) {
      if (!job_id.empty() && id != job_id) continue;
      if (holds_[id].cancel_requested) continue;
      absl::StatusOr<JobRecord> job = store_->Get(id);
      if (!job.ok() || job->state != JobState::kRunning) continue;
      for (Unit& u : list) {
        if (u.state == "PENDING" || (u.state == "RUNNING" && u.until < now)) {
          u.state = "RUNNING";
          u.holder = std::string(replica);
          u.until = now + lease;
          ++u.attempts;
          return std::optional<ClaimedUnit>(ClaimedUnit{id, u.name, job->tenant, u.attempts});
        }
      }
    }
    return std::optional<ClaimedUnit>();
  }

  absl::StatusOr<bool> CompleteUnit(const ClaimedUnit& unit, absl::string_view replica,
                                    absl::string_view value) override {
    absl::MutexLock lock(&mu_);
    if (cut_.count(std::string(replica))) return absl::UnavailableError("cut");
    Unit& u = Find(unit);
    if (u.state == "DONE") return false;
    u.state = "DONE";
    u.value = std::string(value);
    ++completed_by_[std::string(replica)];
    return true;
  }

  absl::StatusOr<std::string> FailUnit(const ClaimedUnit& unit, absl::string_view /*replica*/,
                                       absl::string_view /*error_code*/,
                                       int max_attempts) override {
    absl::MutexLock lock(&mu_);
    Unit& u = Find(unit);
    u.state = u.attempts < max_attempts ? "PENDING" : "FAILED";
    return u.state;
  }

  absl::StatusOr<UnitCounts> CountUnits(absl::string_view job_id) override {
    absl::MutexLock lock(&mu_);
    UnitCounts c;
    const absl::Time now = absl::Now();
    for (const Unit& u : units_[std::string(job_id)]) {
      if (u.state == "DONE") ++c.done;
      if (u.state == "FAILED") ++c.failed;
      if (u.state == "PENDING" || (u.state == "RUNNING" && u.until < now)) ++c.pending;
      if (u.state == "RUNNING" && u.until >= now) ++c.running;
    }
    return c;
  }

  absl::StatusOr<LeaseRenewal> RenewLeases(absl::string_view replica,
                                           absl::Duration lease) override {
    absl::MutexLock lock(&mu_);
    if (cut_.count(std::string(replica))) return absl::UnavailableError("cut");
    LeaseRenewal renewal;
    const absl::Time now = absl::Now();
    for (auto& [id, hold] : holds_) {
      if (hold.holder != replica) continue;
      if (hold.until < now) {
        renewal.lost_jobs.push_back(id);
        hold.holder.clear();
        continue;
      }
      hold.until = now + lease;
      renewal.held_jobs.push_back(id);
      if (hold.cancel_requested) renewal.cancelled_jobs.push_back(id);
    }
    for (auto& [id, list] : units_) {
      for (Unit& u : list) {
        if (u.state == "RUNNING" && u.holder == replica) {
          u.until = now + lease;
          renewal.held_units.push_back(ClaimedUnit{id, u.name, "", u.attempts});
          if (holds_[id].cancel_requested) renewal.cancelled_jobs.push_back(id);
        }
      }
    }
    return renewal;
  }

  absl::Status ReleaseJob(absl::string_view job_id, absl::string_view replica) override {
    absl::MutexLock lock(&mu_);
    Hold& hold = holds_[std::string(job_id)];
    if (hold.holder == replica) {
      hold.holder.clear();
      hold.until = absl::InfinitePast();
    }
    return absl::OkStatus();
  }

  absl::Status ReleaseUnits(absl::string_view replica) override {
    absl::MutexLock lock(&mu_);
    for (auto& [id, list] : units_) {
      for (Unit& u : list) {
        if (u.state == "RUNNING" && u.holder == replica) {
          u.state = "PENDING";
          --u.attempts;
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReleaseUnit(const ClaimedUnit& unit, absl::string_view replica) override {
    absl::MutexLock lock(&mu_);
    Unit& u = Find(unit);
    if (u.state == "RUNNING" && u.holder == replica) {
      u.state = "PENDING";
      --u.attempts;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<JobRecord> RequestCancel(absl::string_view job_id) override {
    absl::MutexLock lock(&mu_);
    MIA_ASSIGN_OR_RETURN(JobRecord job, store_->Get(job_id));
    if (job.state == JobState::kPending) {
      TransitionDetails details;
      details.error_code = "CANCELLED";
      details.error_message = "cancelled on request";
      return store_->Transition(job_id, JobState::kCancelled, details);
    }
    if (job.state == JobState::kRunning) holds_[std::string(job_id)].cancel_requested = true;
    return job;
  }

  absl::StatusOr<int64_t> PendingUnits() override {
    absl::MutexLock lock(&mu_);
    int64_t n = 0;
    for (auto& [id, list] : units_) {
      for (const Unit& u : list) n += u.state == "PENDING";
    }
    return n;
  }
  absl::StatusOr<int64_t> PendingJobs() override {
    return store_->CountJobs(std::nullopt, JobState::kPending);
  }

  std::map<std::string, int> CompletedBy() {
    absl::MutexLock lock(&mu_);
    return completed_by_;
  }

 private:
  struct Hold {
    std::string holder;
    absl::Time until = absl::InfinitePast();
    bool cancel_requested = false;
  };
  struct Unit {
    std::string name;
    std::string state = "PENDING";
    std::string holder;
    absl::Time until = absl::InfinitePast();
    int attempts = 0;
    std::string value;
  };
  Unit& Find(const ClaimedUnit& unit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (Unit& u : units_[unit.job_id]) {
      if (u.name == unit.unit) return u;
    }
    static Unit none;
    return none;
  }

  JobStore* const store_;
  absl::Mutex mu_;
  std::map<std::string, Hold> holds_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<Unit>> units_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> completed_by_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> cut_ ABSL_GUARDED_BY(mu_);
};

// Audits of `units` units of `unit_ms` each, run the way PipelineJobRunner
// runs them: the holder adds the units, runs its own while waiting, and
// ends when all are done.
class UnitRunner final : public JobRunner {
 public:
  absl::StatusOr<RunOutcome> Run(const JobRecord& job, const RunContext& ctx) override {
    const int units = std::stoi(job.spec_json);
    std::vector<std::string> names;
    for (int i = 0; i < units; ++i) names.push_back(absl::StrCat("u:", i));
    MIA_RETURN_IF_ERROR(ctx.cluster->AddUnits(job.id, names));
    while (true) {
      if (ctx.cancelled()) return absl::CancelledError("stopped");
      ctx.claiming(true);
      absl::StatusOr<std::optional<ClaimedUnit>> claimed =
          ctx.cluster->ClaimUnit(ctx.replica, ctx.lease, job.id);
      if (claimed.ok() && claimed->has_value()) {
        ctx.running(**claimed, true);
        ctx.claiming(false);
        absl::StatusOr<std::string> value = RunUnit(job, (*claimed)->unit, ctx);
        if (value.ok()) ctx.cluster->CompleteUnit(**claimed, ctx.replica, *value).IgnoreError();
        ctx.running(**claimed, false);
        if (!value.ok()) return value.status();
        continue;
      }
      ctx.claiming(false);
      absl::StatusOr<UnitCounts> counts = ctx.cluster->CountUnits(job.id);
      if (counts.ok() && counts->done == units) return RunOutcome{};
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  absl::StatusOr<std::string> RunUnit(const JobRecord& /*job*/, const std::string& unit,
                                      const RunContext& ctx) override {
    for (int i = 0; i < 10; ++i) {
      if (ctx.cancelled()) return absl::CancelledError("stopped");
      absl::SleepFor(absl::Milliseconds(10));
    }
    absl::MutexLock lock(&mu_);
    ++runs_[ctx.replica];
    return absl::StrCat("value of ", unit);
  }

  std::map<std::string, int> Runs() {
    absl::MutexLock lock(&mu_);
    return runs_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, int> runs_ ABSL_GUARDED_BY(mu_);
};

class ClusterManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing_util::FreshTempRoot("cluster_manager");
    auto store = SqliteJobStore::Open(root_ + "/jobs.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    queue_ = std::make_unique<MemoryClusterQueue>(store_.get());
  }

  std::unique_ptr<JobManager> Replica(const std::string& name) {
    JobManagerOptions options;
    options.workers = 1;
    options.unit_workers = 1;
    options.data_dir = root_ + "/" + name;
    options.cluster = queue_.get();
    options.replica_id = name;
    options.lease = absl::Seconds(1);
    options.claim_interval = absl::Milliseconds(20);
    auto manager = std::make_unique<JobManager>(store_.get(), &runner_, options);
    EXPECT_TRUE(manager->Start().ok());
    return manager;
  }

  std::string Submit(JobManager& manager, int units) {
    JobRecord record;
    record.spec_json = std::to_string(units);
    absl::StatusOr<SubmitResult> submitted = manager.Submit(record);
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    return submitted.ok() ? submitted->snapshot.job.id : "";
  }

  // Waits until the stored job satisfies `done`.
  JobRecord WaitFor(const std::string& id, const std::function<bool(const JobRecord&)>& done) {
    const absl::Time deadline = absl::Now() + kTimeout;
    while (absl::Now() < deadline) {
      absl::StatusOr<JobRecord> job = store_->Get(id);
      if (job.ok() && done(*job)) return *job;
      absl::SleepFor(absl::Milliseconds(10));
    }
    ADD_FAILURE() << "timed out waiting for job " << id;
    return *store_->Get(id);
  }

  static bool Finished(const JobRecord& job) { return IsTerminal(job.state); }

  std::string root_;
  std::unique_ptr<SqliteJobStore> store_;
  std::unique_ptr<MemoryClusterQueue> queue_;
  UnitRunner runner_;
};

TEST_F(ClusterManagerTest, UnitsSpreadOverTheReplicasAndEachIsDoneOnce) {
  auto r1 = Replica("r1");
  auto r2 = Replica("r2");
  const std::string id = Submit(*r1, 12);
  const JobRecord job = WaitFor(id, Finished);
  EXPECT_EQ(job.state, JobState::kSucceeded);
  const std::map<std::string, int> completed = queue_->CompletedBy();
  int total = 0;
  for (const auto& [replica, n] : completed) total += n;
  EXPECT_EQ(total, 12);
  EXPECT_GE(completed.count("r1") + completed.count("r2"), 2u) << "both replicas ran units";
}

TEST_F(ClusterManagerTest, ACancelOnAnotherReplicaStopsTheAudit) {
  auto r1 = Replica("r1");
  auto r2 = Replica("r2");
  const std::string id = Submit(*r1, 500);
  WaitFor(id, [](const JobRecord& j) { return j.state == JobState::kRunning; });
  absl::StatusOr<JobSnapshot> cancelled = r2->Cancel(id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  const JobRecord job = WaitFor(id, Finished);
  EXPECT_EQ(job.state, JobState::kCancelled);
  // A pending audit is cancelled at once, from any replica.
  r1->Drain(absl::Now() + kTimeout).IgnoreError();
  r2->Drain(absl::Now() + kTimeout).IgnoreError();
}

TEST_F(ClusterManagerTest, APendingAuditIsCancelledAtOnceFromAnyReplica) {
  auto r1 = Replica("r1");
  ASSERT_TRUE(r1->Drain(absl::Now() + kTimeout).ok());  // claims nothing
  auto r2 = Replica("r2");
  ASSERT_TRUE(r2->Drain(absl::Now() + kTimeout).ok());
  auto r3 = Replica("r3");
  JobRecord record;
  record.spec_json = "3";
  // r3 claims it at once; instead submit through the store to keep it pending.
  record.id = "pending-one";
  record.spec_hash = "h";
  ASSERT_TRUE(store_->Create(record).ok());
  ASSERT_TRUE(r3->Drain(absl::Now() + kTimeout).ok());
  absl::StatusOr<JobSnapshot> cancelled = r2->Cancel("pending-one");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->job.state, JobState::kCancelled);
}

TEST_F(ClusterManagerTest, DrainHandsTheAuditAndItsUnitsToAnotherReplica) {
  auto r1 = Replica("r1");
  const std::string id = Submit(*r1, 40);
  WaitFor(id, [](const JobRecord& j) { return j.state == JobState::kRunning; });
  while (queue_->CompletedBy()["r1"] < 3) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_TRUE(r1->Drain(absl::Now() + kTimeout).ok());
  EXPECT_EQ(store_->Get(id)->state, JobState::kPending);
  const int before = queue_->CompletedBy()["r1"];
  auto r2 = Replica("r2");
  const JobRecord job = WaitFor(id, Finished);
  EXPECT_EQ(job.state, JobState::kSucceeded);
  const std::map<std::string, int> completed = queue_->CompletedBy();
  EXPECT_EQ(completed.at("r1"), before);
  EXPECT_EQ(completed.at("r1") + completed.at("r2"), 40) << "units done before the drain stay done";
}

TEST_F(ClusterManagerTest, AReplicaThatStopsRenewingIsTakenOver) {
  auto r1 = Replica("r1");
  const std::string id = Submit(*r1, 30);
  WaitFor(id, [](const JobRecord& j) { return j.state == JobState::kRunning; });
  queue_->Cut("r1");  // as if it died: no renewals, no claims
  auto r2 = Replica("r2");
  const JobRecord job = WaitFor(id, Finished);
  EXPECT_EQ(job.state, JobState::kSucceeded);
  EXPECT_GT(queue_->CompletedBy()["r2"], 0);
  queue_->Heal("r1");  // so that its shutdown does not wait out its retries
}

// A claim that committed but whose answer was lost with the connection: the
// replica holds the audit (and a unit) and renews them, but runs neither.
// Its heartbeat hands them back, so that the audit is not stuck for ever.
TEST_F(ClusterManagerTest, ClaimsWhoseAnswerWasLostAreHandedBack) {
  JobRecord record;
  record.id = "orphan";
  record.spec_json = "4";
  record.spec_hash = "h";
  ASSERT_TRUE(store_->Create(record).ok());
  // As if r1 claimed the audit and one unit, and then lost the answers.
  ASSERT_TRUE(queue_->ClaimJob("r1", absl::Minutes(5))->has_value());
  ASSERT_TRUE(queue_->AddUnits("orphan", {"u:0", "u:1", "u:2", "u:3"}).ok());
  ASSERT_TRUE(queue_->ClaimUnit("r1", absl::Minutes(5), "orphan")->has_value());
  auto r1 = Replica("r1");  // same replica id, running nothing of it
  auto r2 = Replica("r2");
  const JobRecord job = WaitFor("orphan", Finished);  // long before the leases end
  EXPECT_EQ(job.state, JobState::kSucceeded);
}

TEST_F(ClusterManagerTest, WatchersOnAnotherReplicaHearTheChanges) {
  auto r1 = Replica("r1");
  auto r2 = Replica("r2");
  ASSERT_TRUE(r2->Drain(absl::Now() + kTimeout).ok());  // r2 only serves watchers
  std::atomic<int> heard{0};
  const std::string id = Submit(*r1, 5);
  const uint64_t handle = r2->Subscribe(id, [&](const std::string&, int64_t) { ++heard; });
  WaitFor(id, Finished);
  const absl::Time deadline = absl::Now() + kTimeout;
  while (absl::Now() < deadline) {
    absl::StatusOr<JobSnapshot> seen = r2->Get(id);
    if (heard.load() > 0 && seen.ok() && IsTerminal(seen->job.state)) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GT(heard.load(), 0);
  r2->Unsubscribe(handle);
}

}  // namespace
}  // namespace mia::jobs
