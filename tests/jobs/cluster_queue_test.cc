// PostgresJobStore as the ClusterQueue of several replicas (core/jobs/
// cluster_queue.h), its migrations, its URL handling and its reconnection,
// on the real PostgreSQL 15 of the ctest fixture `postgres` (a fresh
// database per test). "Replicas" are separate store objects, each with its
// own connections, as separate processes would have.
#include "core/jobs/cluster_queue.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/jobs/postgres_job_store.h"
#include "core/jobs/store_factory.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/postgres_fixture.h"

namespace mia::jobs {
namespace {

using ::mia::test_util::QueryPg;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kKedaQuery[] =
    "SELECT count(*) FROM work_units WHERE state = 'PENDING' OR "
    "(state = 'RUNNING' AND lease_until < now())";

class ClusterQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base;
    MIA_POSTGRES_URL_OR_SKIP(base);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    url_ = test_util::FreshPostgresDatabase(base, absl::StrCat("cq_", info->name()));
    store_ = Replica();
    ASSERT_NE(store_, nullptr);
  }

  // Another replica: a store of its own, with its own connections.
  std::unique_ptr<PostgresJobStore> Replica(int pool_size = 2) {
    PostgresJobStoreOptions options;
    options.pool_size = pool_size;
    absl::StatusOr<std::unique_ptr<PostgresJobStore>> store = PostgresJobStore::Open(url_, options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  void NewJob(const std::string& id, const std::string& tenant = "", int priority = 0) {
    JobRecord r;
    r.id = id;
    r.spec_json = "{}";
    r.spec_hash = "h";
    r.tenant = tenant;
    r.priority = priority;
    absl::StatusOr<CreateResult> created = store_->Create(r);
    ASSERT_TRUE(created.ok()) << created.status();
  }

  // Creates and claims (RUNNING, held by `replica`) an audit with units.
  void RunningJob(const std::string& id, const std::vector<std::string>& units,
                  const std::string& tenant = "", const std::string& replica = "holder") {
    NewJob(id, tenant);
    absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimJob(replica, absl::Minutes(5));
    ASSERT_TRUE(claimed.ok()) << claimed.status();
    ASSERT_TRUE(claimed->has_value());
    ASSERT_EQ((*claimed)->id, id);
    ASSERT_TRUE(store_->AddUnits(id, units).ok());
  }

  static std::vector<std::string> Units(int n) {
    std::vector<std::string> units;
    for (int i = 0; i < n; ++i) units.push_back(absl::StrCat("model:", i));
    return units;
  }

  ClaimedUnit MustClaim(PostgresJobStore* store, const std::string& replica,
                        absl::Duration lease = absl::Minutes(5)) {
    absl::StatusOr<std::optional<ClaimedUnit>> unit = store->ClaimUnit(replica, lease);
    EXPECT_TRUE(unit.ok()) << unit.status();
    EXPECT_TRUE(unit.ok() && unit->has_value());
    return unit.ok() && unit->has_value() ? **unit : ClaimedUnit{};
  }

  bool NothingToClaim(PostgresJobStore* store, const std::string& replica) {
    absl::StatusOr<std::optional<ClaimedUnit>> unit = store->ClaimUnit(replica, absl::Minutes(5));
    EXPECT_TRUE(unit.ok()) << unit.status();
    return unit.ok() && !unit->has_value();
  }

  std::string url_;
  std::unique_ptr<PostgresJobStore> store_;
};

// 8 replicas (threads with their own connections) drain 200 units: no unit is
// claimed twice, every unit is done once with its value.
TEST_F(ClusterQueueTest, ManyReplicasNeverClaimTheSameUnitTwice) {
  RunningJob("job-1", Units(200));
  absl::Mutex mu;
  std::map<std::string, int> claims;  // unit -> times claimed
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<PostgresJobStore> replica = Replica(1);
      if (replica == nullptr) {
        ++errors;
        return;
      }
      const std::string name = absl::StrCat("replica-", t);
      while (true) {
        absl::StatusOr<std::optional<ClaimedUnit>> unit =
            replica->ClaimUnit(name, absl::Minutes(5));
        if (!unit.ok()) {
          ++errors;
          return;
        }
        if (!unit->has_value()) return;
        {
          absl::MutexLock lock(&mu);
          ++claims[(*unit)->unit];
        }
        absl::StatusOr<bool> done =
            replica->CompleteUnit(**unit, name, absl::StrCat("key-", (*unit)->unit));
        if (!done.ok() || !*done) ++errors;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  ASSERT_EQ(claims.size(), 200u);
  for (const auto& [unit, n] : claims) EXPECT_EQ(n, 1) << unit;
  absl::StatusOr<UnitCounts> counts = store_->CountUnits("job-1");
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->done, 200);
  EXPECT_EQ(counts->total(), 200);
  absl::StatusOr<std::map<std::string, std::string>> done = store_->ListUnitsDone("job-1");
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->size(), 200u);
  EXPECT_EQ(done->at("model:17"), "key-model:17");
}

// A replica that stops renewing loses its unit when the lease (1 s, timed by
// the database) runs out; another replica claims it (attempt 2), and the
// first learns at its next renewal that it lost it.
TEST_F(ClusterQueueTest, AnExpiredUnitLeaseIsClaimedByAnotherReplica) {
  RunningJob("job-1", {"model:0"});
  std::unique_ptr<PostgresJobStore> a = Replica(), b = Replica();
  const ClaimedUnit first = MustClaim(a.get(), "a", absl::Seconds(1));
  EXPECT_EQ(first.attempt, 1);
  EXPECT_TRUE(NothingToClaim(b.get(), "b"));  // the lease holds
  std::optional<ClaimedUnit> second;
  for (int i = 0; i < 100 && !second.has_value(); ++i) {
    absl::StatusOr<std::optional<ClaimedUnit>> unit = b->ClaimUnit("b", absl::Minutes(5));
    ASSERT_TRUE(unit.ok()) << unit.status();
    second = *unit;
    if (!second.has_value()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->unit, "model:0");
  EXPECT_EQ(second->attempt, 2);
  absl::StatusOr<LeaseRenewal> renewal = a->RenewLeases("a", absl::Minutes(5));
  ASSERT_TRUE(renewal.ok()) << renewal.status();
  ASSERT_EQ(renewal->lost_units.size(), 1u);
  EXPECT_EQ(renewal->lost_units[0].unit, "model:0");
  absl::StatusOr<LeaseRenewal> b_renewal = b->RenewLeases("b", absl::Minutes(5));
  ASSERT_TRUE(b_renewal.ok()) << b_renewal.status();
  EXPECT_THAT(b_renewal->lost_units, IsEmpty());
  // The late finisher's result is accepted (content-addressed work), the
  // second finisher's is not stored.
  EXPECT_TRUE(*a->CompleteUnit(first, "a", "first"));
  EXPECT_FALSE(*b->CompleteUnit(*second, "b", "second"));
  EXPECT_EQ(store_->ListUnitsDone("job-1")->at("model:0"), "first");
}

// The same for a whole audit: its holder dies, another replica resumes it.
TEST_F(ClusterQueueTest, AnExpiredAuditLeaseIsClaimedByAnotherReplica) {
  NewJob("job-1");
  std::unique_ptr<PostgresJobStore> a = Replica(), b = Replica();
  absl::StatusOr<std::optional<JobRecord>> claimed = a->ClaimJob("a", absl::Seconds(1));
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  EXPECT_EQ((*claimed)->state, JobState::kRunning);
  const int64_t version = (*claimed)->version;
  EXPECT_FALSE(b->ClaimJob("b", absl::Minutes(5))->has_value());
  std::optional<JobRecord> resumed;
  for (int i = 0; i < 100 && !resumed.has_value(); ++i) {
    absl::StatusOr<std::optional<JobRecord>> job = b->ClaimJob("b", absl::Minutes(5));
    ASSERT_TRUE(job.ok()) << job.status();
    resumed = *job;
    if (!resumed.has_value()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(resumed.has_value());
  EXPECT_EQ(resumed->id, "job-1");
  EXPECT_EQ(resumed->state, JobState::kRunning);
  EXPECT_GT(resumed->version, version);
  EXPECT_EQ(resumed->start_time, (*claimed)->start_time);  // set once
  absl::StatusOr<LeaseRenewal> renewal = a->RenewLeases("a", absl::Minutes(5));
  ASSERT_TRUE(renewal.ok()) << renewal.status();
  EXPECT_THAT(renewal->lost_jobs, ElementsAre("job-1"));
  EXPECT_THAT(b->RenewLeases("b", absl::Minutes(5))->lost_jobs, IsEmpty());
  EXPECT_EQ(*store_->PendingJobs(), 0);
}

TEST_F(ClusterQueueTest, CompletingAUnitTwiceKeepsTheFirstValue) {
  RunningJob("job-1", {"model:0", "model:1"});
  const ClaimedUnit unit = MustClaim(store_.get(), "a");
  EXPECT_EQ(unit.unit, "model:0");  // the audit's order
  absl::StatusOr<bool> first = store_->CompleteUnit(unit, "a", "v1");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first);
  absl::StatusOr<bool> again = store_->CompleteUnit(unit, "a", "v2");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(*again);
  EXPECT_EQ(store_->ListUnitsDone("job-1")->at("model:0"), "v1");
  EXPECT_EQ(QueryPg(url_, "SELECT value FROM work_units WHERE unit = 'model:0'"), "v1");
  // Adding the same units again (a resuming replica) keeps their state.
  ASSERT_TRUE(store_->AddUnits("job-1", {"model:0", "model:1"}).ok());
  const UnitCounts counts = *store_->CountUnits("job-1");
  EXPECT_EQ(counts.done, 1);
  EXPECT_EQ(counts.pending, 1);
  ClaimedUnit unknown = unit;
  unknown.unit = "model:9";
  EXPECT_TRUE(absl::IsNotFound(store_->CompleteUnit(unknown, "a", "x").status()));
  EXPECT_TRUE(absl::IsNotFound(store_->AddUnits("job-404", {"model:0"})));
  EXPECT_TRUE(absl::IsNotFound(store_->CountUnits("job-404").status()));
}

TEST_F(ClusterQueueTest, FailedAttemptsRetryUntilTheLast) {
  RunningJob("job-1", {"model:0"});
  ClaimedUnit unit = MustClaim(store_.get(), "a");
  EXPECT_EQ(unit.attempt, 1);
  absl::StatusOr<std::string> state = store_->FailUnit(unit, "a", "INTERNAL", 2);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, "PENDING");
  unit = MustClaim(store_.get(), "b");
  EXPECT_EQ(unit.attempt, 2);
  // A stale failure from a replica that no longer holds it changes nothing.
  EXPECT_EQ(*store_->FailUnit(unit, "a", "INTERNAL", 2), "RUNNING");
  state = store_->FailUnit(unit, "b", "UNAVAILABLE", 2);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, "FAILED");
  EXPECT_TRUE(NothingToClaim(store_.get(), "a"));
  const UnitCounts counts = *store_->CountUnits("job-1");
  EXPECT_EQ(counts.failed, 1);
  EXPECT_EQ(counts.total(), 1);
  EXPECT_EQ(QueryPg(url_, "SELECT error_code FROM work_units"), "UNAVAILABLE");
}

// A drain: the replica's units go back at once, the attempt not counted.
TEST_F(ClusterQueueTest, ReleaseUnitsHandsThemBack) {
  RunningJob("job-1", Units(3));
  std::unique_ptr<PostgresJobStore> other = Replica();
  MustClaim(store_.get(), "a");
  MustClaim(store_.get(), "a");
  MustClaim(other.get(), "b");
  EXPECT_EQ(store_->CountUnits("job-1")->running, 3);
  ASSERT_TRUE(store_->ReleaseUnits("a").ok());
  const UnitCounts counts = *store_->CountUnits("job-1");
  EXPECT_EQ(counts.pending, 2);
  EXPECT_EQ(counts.running, 1);
  const ClaimedUnit again = MustClaim(other.get(), "b");
  EXPECT_EQ(again.attempt, 1);
  MustClaim(other.get(), "b");
  EXPECT_TRUE(NothingToClaim(other.get(), "b"));
  // Nothing of a's was lost or taken: its renewal reports nothing.
  absl::StatusOr<LeaseRenewal> renewal = store_->RenewLeases("a", absl::Minutes(5));
  ASSERT_TRUE(renewal.ok()) << renewal.status();
  EXPECT_THAT(renewal->lost_units, IsEmpty());
}

// One unit its replica stopped running goes back, only from its holder.
TEST_F(ClusterQueueTest, ReleaseUnitHandsOneBackOnlyFromItsHolder) {
  RunningJob("job-1", Units(2));
  std::unique_ptr<PostgresJobStore> other = Replica();
  const ClaimedUnit mine = MustClaim(store_.get(), "a");
  const ClaimedUnit theirs = MustClaim(other.get(), "b");
  ASSERT_TRUE(store_->ReleaseUnit(theirs, "a").ok());  // not a's: nothing changes
  EXPECT_EQ(store_->CountUnits("job-1")->running, 2);
  ASSERT_TRUE(store_->ReleaseUnit(mine, "a").ok());
  const UnitCounts counts = *store_->CountUnits("job-1");
  EXPECT_EQ(counts.pending, 1);
  EXPECT_EQ(counts.running, 1);
  const ClaimedUnit again = MustClaim(other.get(), "b");
  EXPECT_EQ(again.unit, mine.unit);
  EXPECT_EQ(again.attempt, 1);  // the released attempt is not counted
  absl::StatusOr<LeaseRenewal> renewal = store_->RenewLeases("a", absl::Minutes(5));
  ASSERT_TRUE(renewal.ok()) << renewal.status();
  EXPECT_THAT(renewal->lost_units, IsEmpty());
}

TEST_F(ClusterQueueTest, CancellationOfPendingAndRunningAudits) {
  NewJob("job-pending");
  absl::StatusOr<JobRecord> cancelled = store_->RequestCancel("job-pending");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state, JobState::kCancelled);
  EXPECT_EQ(store_->Get("job-pending")->state, JobState::kCancelled);
  EXPECT_FALSE(store_->ClaimJob("a", absl::Minutes(5))->has_value());

  RunningJob("job-running", Units(2), "", "holder");
  const ClaimedUnit unit = MustClaim(store_.get(), "worker");
  absl::StatusOr<JobRecord> requested = store_->RequestCancel("job-running");
  ASSERT_TRUE(requested.ok()) << requested.status();
  EXPECT_EQ(requested->state, JobState::kRunning);
  // No replica starts more of it; its holder and its unit's runner hear it.
  EXPECT_TRUE(NothingToClaim(store_.get(), "worker"));
  EXPECT_THAT(store_->RenewLeases("holder", absl::Minutes(5))->cancelled_jobs,
              ElementsAre("job-running"));
  EXPECT_THAT(store_->RenewLeases("worker", absl::Minutes(5))->cancelled_jobs,
              ElementsAre("job-running"));
  EXPECT_THAT(store_->RenewLeases("bystander", absl::Minutes(5))->cancelled_jobs, IsEmpty());
  // The holder ends it; a finished audit is returned unchanged.
  ASSERT_TRUE(store_->Transition("job-running", JobState::kCancelled, {}).ok());
  ASSERT_TRUE(store_->ReleaseJob("job-running", "holder").ok());
  absl::StatusOr<JobRecord> finished = store_->RequestCancel("job-running");
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_EQ(finished->state, JobState::kCancelled);
  EXPECT_EQ(finished->version, store_->Get("job-running")->version);
  EXPECT_TRUE(absl::IsNotFound(store_->RequestCancel("job-404").status()));
  (void)unit;
}

// A cancel requested while the audit's holder lost it (its lease expired):
// the next claim ends it CANCELLED instead of leaving it RUNNING for ever.
TEST_F(ClusterQueueTest, ACancelledAuditWhoseHolderLostItEndsCancelled) {
  NewJob("job-1");
  ASSERT_TRUE(store_->ClaimJob("holder", absl::Seconds(1))->has_value());
  ASSERT_EQ(store_->RequestCancel("job-1")->state, JobState::kRunning);
  absl::SleepFor(absl::Milliseconds(1200));  // the lease expires, unrenewed
  absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimJob("other", absl::Minutes(5));
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_FALSE(claimed->has_value());
  const JobRecord job = *store_->Get("job-1");
  EXPECT_EQ(job.state, JobState::kCancelled);
  EXPECT_EQ(job.error_code, "CANCELLED");
  EXPECT_FALSE(store_->ClaimJob("other", absl::Minutes(5))->has_value());
}

// Tenant A's audit has 10 units, tenant B's (submitted later) 1: B's unit is
// the second claimed, not the eleventh.
TEST_F(ClusterQueueTest, ClaimsAreFairAcrossTenants) {
  RunningJob("job-a", Units(10), "tenant-a");
  RunningJob("job-b", {"model:0"}, "tenant-b");
  std::vector<std::string> order;
  for (int i = 0; i < 11; ++i) order.push_back(MustClaim(store_.get(), "r").job_id);
  ASSERT_EQ(order.size(), 11u);
  EXPECT_EQ(order[0], "job-a");
  EXPECT_EQ(order[1], "job-b");
  EXPECT_EQ(std::count(order.begin(), order.end(), "job-a"), 10);
}

// Two audits of one tenant share the replicas too; and ClaimJob prefers the
// tenant with the fewest audits running, then priority.
TEST_F(ClusterQueueTest, ClaimsAreFairAcrossAuditsAndJobsByTenantThenPriority) {
  RunningJob("job-1", Units(5), "t");
  RunningJob("job-2", Units(5), "t");
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) order.push_back(MustClaim(store_.get(), "r").job_id);
  EXPECT_THAT(order, ElementsAre("job-1", "job-2", "job-1", "job-2"));
  NewJob("job-t-urgent", "t", /*priority=*/9);
  NewJob("job-u", "u");
  NewJob("job-u-urgent", "u", /*priority=*/5);
  // t has two audits running, u none: u's first, its urgent one before.
  EXPECT_EQ((*store_->ClaimJob("r", absl::Minutes(5)))->id, "job-u-urgent");
  EXPECT_EQ((*store_->ClaimJob("r", absl::Minutes(5)))->id, "job-u");
  EXPECT_EQ((*store_->ClaimJob("r", absl::Minutes(5)))->id, "job-t-urgent");
  EXPECT_EQ(*store_->PendingJobs(), 0);
}

TEST_F(ClusterQueueTest, PendingUnitsIsTheKedaQuery) {
  RunningJob("job-1", Units(6));
  EXPECT_EQ(*store_->PendingUnits(), 6);
  const ClaimedUnit done = MustClaim(store_.get(), "a");
  ASSERT_TRUE(store_->CompleteUnit(done, "a", "k").ok());
  MustClaim(store_.get(), "a");                         // running under a live lease
  MustClaim(store_.get(), "b", absl::Milliseconds(1));  // expires at once
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  NewJob("job-2");
  absl::StatusOr<int64_t> pending = store_->PendingUnits();
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_EQ(*pending, 4);  // 3 pending + 1 expired
  EXPECT_EQ(std::to_string(*pending), QueryPg(url_, kKedaQuery));
  EXPECT_EQ(*store_->PendingJobs(), 1);
  const UnitCounts counts = *store_->CountUnits("job-1");
  EXPECT_EQ(counts.pending, 4);
  EXPECT_EQ(counts.running, 1);
  EXPECT_EQ(counts.done, 1);
}

TEST_F(ClusterQueueTest, MigrationsRunOnceAndANewerSchemaIsRefused) {
  const std::string count = "SELECT count(*) FROM schema_migrations";
  EXPECT_EQ(QueryPg(url_, count), std::to_string(PostgresJobStore::LatestSchemaVersion()));
  // Replicas starting at once: each step is applied once.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      if (!PostgresJobStore::Open(url_).ok()) ++failures;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(QueryPg(url_, count), std::to_string(PostgresJobStore::LatestSchemaVersion()));
  EXPECT_EQ(QueryPg(url_,
                    "SELECT count(*) FROM information_schema.tables WHERE table_name IN "
                    "('jobs', 'job_labels', 'job_units', 'uploads', 'work_units')"),
            "5");
  ASSERT_EQ(test_util::RunPgSql(
                url_, "INSERT INTO schema_migrations (version, name) VALUES (999, 'future')"),
            "");
  absl::StatusOr<std::unique_ptr<PostgresJobStore>> store = PostgresJobStore::Open(url_);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.status())) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 999"));
  EXPECT_THAT(store.status().message(),
              HasSubstr(absl::StrCat("(", PostgresJobStore::LatestSchemaVersion(), ")")));
}

// A database that turns read-only (a standby after a failover): reads are
// served, writes are FailedPrecondition saying so, writable() follows (and the
// callback readiness hangs on), and ProbeWrite finds it writable again.
TEST_F(ClusterQueueTest, AReadOnlyDatabaseServesReadsAndSaysWhyWritesFail) {
  std::atomic<int> changes{0};
  PostgresJobStoreOptions options;
  options.on_writable_change = [&](bool) { ++changes; };
  absl::StatusOr<std::unique_ptr<PostgresJobStore>> opened = PostgresJobStore::Open(url_, options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  PostgresJobStore& store = **opened;
  NewJob("job-1");
  const std::string db = url_.substr(url_.rfind('/') + 1);
  // New sessions of the database start read-only; the store's sessions are
  // ended so that its next call opens one.
  // From another database: this one may be read-only.
  const std::string admin = test_util::PostgresUrl();
  auto set_read_only = [&](bool on) {
    ASSERT_EQ(test_util::RunPgSql(
                  admin, absl::StrCat("ALTER DATABASE ", db,
                                      " SET default_transaction_read_only = ", on ? "on" : "off")),
              "");
    ASSERT_EQ(test_util::RunPgSql(admin, absl::StrCat("SELECT pg_terminate_backend(pid) FROM "
                                                      "pg_stat_activity WHERE datname = '",
                                                      db, "'")),
              "");
  };
  set_read_only(true);
  ASSERT_TRUE(store.Get("job-1").ok());
  JobRecord r;
  r.id = "job-2";
  r.spec_json = "{}";
  r.spec_hash = "h";
  absl::StatusOr<CreateResult> created = store.Create(r);
  EXPECT_TRUE(absl::IsFailedPrecondition(created.status())) << created.status();
  EXPECT_THAT(created.status().message(), HasSubstr("read-only"));
  EXPECT_FALSE(store.writable());
  EXPECT_EQ(changes.load(), 1);
  EXPECT_FALSE(store.ProbeWrite().ok());
  // A server starting on it refuses it (migrations need to write).
  EXPECT_TRUE(absl::IsFailedPrecondition(PostgresJobStore::Open(url_).status()));
  set_read_only(false);
  EXPECT_TRUE(store.ProbeWrite().ok());
  EXPECT_TRUE(store.writable());
  EXPECT_EQ(changes.load(), 2);
  EXPECT_TRUE(store.Create(r).ok());
}

TEST(PostgresJobStoreTest, ThePasswordIsNeverInAMessage) {
  std::string base;
  MIA_POSTGRES_URL_OR_SKIP(base);
  const std::string real = QueryPg(base, "SELECT 1") == "1" ? base : "";
  ASSERT_FALSE(real.empty());
  // postgresql://mia:<password>@127.0.0.1:<port>/mia_test
  const size_t colon = base.find(':', std::string("postgresql://").size());
  const size_t at = base.find('@');
  ASSERT_NE(colon, std::string::npos);
  ASSERT_NE(at, std::string::npos);
  const std::string password = base.substr(colon + 1, at - colon - 1);
  const std::string wrong = "WrongSecret-9f3e";
  const std::string bad_url = base.substr(0, colon + 1) + wrong + base.substr(at);
  absl::StatusOr<std::unique_ptr<PostgresJobStore>> store = PostgresJobStore::Open(bad_url);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.status())) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("authentication failed"));
  EXPECT_THAT(store.status().message(), HasSubstr("postgresql://mia@127.0.0.1:"));
  EXPECT_THAT(store.status().message(), Not(HasSubstr(wrong)));
  EXPECT_THAT(store.status().message(), Not(HasSubstr(password)));
  EXPECT_EQ(RedactPostgresUrl(base).find(password), std::string::npos);
  EXPECT_EQ(RedactPostgresUrl("postgres://u:p4ss@db.example:5433/mia?sslmode=require"),
            "postgresql://u@db.example:5433/mia");
  // Nobody listening: Unavailable, still without the password.
  absl::StatusOr<std::unique_ptr<PostgresJobStore>> down =
      PostgresJobStore::Open("postgresql://mia:" + wrong + "@127.0.0.1:1/mia");
  ASSERT_FALSE(down.ok());
  EXPECT_TRUE(absl::IsUnavailable(down.status())) << down.status();
  EXPECT_THAT(down.status().message(), Not(HasSubstr(wrong)));
  EXPECT_TRUE(absl::IsInvalidArgument(
      PostgresJobStore::Open("postgresql://h/db?no_such_parameter=1").status()));
}

TEST(PostgresJobStoreTest, TheFactoryPicksTheStoreByItsLocation) {
  std::string base;
  MIA_POSTGRES_URL_OR_SKIP(base);
  const std::string url = test_util::FreshPostgresDatabase(base, "factory");
  absl::StatusOr<OpenedStore> pg = OpenJobStore(url);
  ASSERT_TRUE(pg.ok()) << pg.status();
  EXPECT_TRUE(pg->is_postgres);
  EXPECT_EQ(pg->queue,
            static_cast<ClusterQueue*>(dynamic_cast<PostgresJobStore*>(pg->store.get())));
  EXPECT_THAT(pg->description, Not(HasSubstr(url.substr(url.find(':', 13) + 1, 8))));
  const char* tmp = std::getenv("MIA_TEST_TMPDIR");
  const std::filesystem::path dir =
      std::filesystem::path(tmp != nullptr ? tmp : ::testing::TempDir()) / "factory_sqlite";
  std::filesystem::create_directories(dir);
  absl::StatusOr<OpenedStore> sqlite = OpenJobStore((dir / "jobs.db").string());
  ASSERT_TRUE(sqlite.ok()) << sqlite.status();
  EXPECT_FALSE(sqlite->is_postgres);
  EXPECT_EQ(sqlite->queue, nullptr);
}

// PostgreSQL restarted between two calls: a call while it is down is
// Unavailable, the calls after it succeed on new connections, nothing is
// lost. On a PostgreSQL of its own (tests/postgres/start.sh), so that the
// shared one stays up for the other tests.
TEST(PostgresJobStoreTest, ReconnectsAfterARestartAndLosesNothing) {
  std::string base;
  MIA_POSTGRES_URL_OR_SKIP(base);  // the fixture's presence says PostgreSQL is installed
  const char* tmp = std::getenv("MIA_TEST_TMPDIR");
  const std::string dir =
      (std::filesystem::path(tmp != nullptr ? tmp : ::testing::TempDir()) / "pg_restart").string();
  const std::string scripts = std::string(MIA_SOURCE_DIR) + "/tests/postgres/";
  ASSERT_EQ(std::system(("bash " + scripts + "start.sh " + dir + " >/dev/null").c_str()), 0);
  struct Stop {
    std::string cmd;
    ~Stop() { (void)std::system(cmd.c_str()); }
  } stop{"bash " + scripts + "stop.sh " + dir};
  const std::string url = [&] {
    std::ifstream in(dir + "/url");
    std::string line;
    std::getline(in, line);
    return line;
  }();
  ASSERT_FALSE(url.empty());
  absl::StatusOr<std::unique_ptr<PostgresJobStore>> opened = PostgresJobStore::Open(url);
  ASSERT_TRUE(opened.ok()) << opened.status();
  PostgresJobStore& store = **opened;
  JobRecord r;
  r.id = "job-1";
  r.spec_json = "{}";
  r.spec_hash = "h";
  ASSERT_TRUE(store.Create(r).ok());
  ASSERT_TRUE(store.MarkUnitDone("job-1", "model:0", "k0").ok());

  ASSERT_EQ(std::system((dir + "/ctl stop >/dev/null").c_str()), 0);
  absl::StatusOr<JobRecord> during = store.Get("job-1");
  EXPECT_TRUE(absl::IsUnavailable(during.status())) << during.status();
  absl::StatusOr<CreateResult> write_during = store.Create(r);
  EXPECT_TRUE(absl::IsUnavailable(write_during.status())) << write_during.status();
  ASSERT_EQ(std::system((dir + "/ctl start >/dev/null").c_str()), 0);

  absl::StatusOr<JobRecord> after = store.Get("job-1");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->version, 1);
  EXPECT_EQ(store.ListUnitsDone("job-1")->at("model:0"), "k0");
  EXPECT_TRUE(store.Transition("job-1", JobState::kRunning, {}).ok());
  // And once more with a restart that the pool's idle connections never saw:
  // every pooled connection is stale, the calls still succeed.
  ASSERT_EQ(std::system((dir + "/ctl restart >/dev/null").c_str()), 0);
  for (int i = 0; i < 6; ++i) {
    absl::StatusOr<JobRecord> got = store.Get("job-1");
    ASSERT_TRUE(got.ok()) << i << ": " << got.status();
    EXPECT_EQ(got->state, JobState::kRunning);
  }
}

}  // namespace
}  // namespace mia::jobs
