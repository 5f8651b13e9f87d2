// The JobStore contract (core/jobs/job_store.h) on both stores: every
// JobStoreTest runs on SqliteJobStore (real files) and on PostgresJobStore (a
// fresh database per test on the PostgreSQL of the ctest fixture `postgres`);
// SqliteOnlyJobStoreTest and SqliteJobStoreOpenTest cover what only SQLite
// has (files, read-only opens, full disks). Time comes from a fake clock, so
// nothing here depends on the wall clock.
#include "core/jobs/job_store.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "core/jobs/postgres_job_store.h"
#include "gtest/gtest.h"
#include "tests/common/postgres_fixture.h"
#include "tests/common/run_sql.h"
#include "tests/common/write_failures.h"

namespace mia::jobs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// A fresh, empty folder for one test under MIA_TEST_TMPDIR (set by ctest) or
// gtest's temporary folder.
std::string TempDir(const std::string& name) {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const std::filesystem::path dir =
      std::filesystem::path(env != nullptr ? env : ::testing::TempDir()) / "jobs_test" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Advances 1 microsecond per reading unless frozen; thread-safe.
class FakeClock {
 public:
  absl::Time Now() { return absl::FromUnixNanos(nanos_.fetch_add(step_) + step_); }
  void Freeze() { step_ = 0; }

 private:
  std::atomic<int64_t> nanos_{1'700'000'000'000'000'000};
  std::atomic<int64_t> step_{1000};
};

class JobStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    if (postgres()) {
      std::string base;
      MIA_POSTGRES_URL_OR_SKIP(base);
      url_ = test_util::FreshPostgresDatabase(base, info->name());
    } else {
      path_ = TempDir(info->name()) + "/jobs.db";
    }
    store_ = OpenStore();
    ASSERT_NE(store_, nullptr);
  }

  bool postgres() const { return GetParam() == "postgres"; }

  std::unique_ptr<JobStore> OpenStore() {
    if (postgres()) {
      PostgresJobStoreOptions options;
      options.clock = [this] { return clock_.Now(); };
      absl::StatusOr<std::unique_ptr<PostgresJobStore>> store =
          PostgresJobStore::Open(url_, options);
      EXPECT_TRUE(store.ok()) << store.status();
      return store.ok() ? std::move(*store) : nullptr;
    }
    SqliteJobStoreOptions options;
    options.clock = [this] { return clock_.Now(); };
    absl::StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(path_, options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  void Reopen() {
    store_.reset();  // closes the connection first
    store_ = OpenStore();
    ASSERT_NE(store_, nullptr);
  }

  // A new job; the spec text is made up but plays its role (hash = spec).
  static JobRecord NewJob(const std::string& id, const std::string& request_id = "",
                          const std::string& spec = R"({"data": {"dataset": "mnist"}})") {
    JobRecord r;
    r.id = id;
    r.request_id = request_id;
    r.spec_json = spec;
    r.spec_hash = absl::StrCat("hash-of:", spec);
    r.labels = {{"team", "privacy"}, {"run", id}};
    return r;
  }

  JobRecord MustCreate(const JobRecord& r) {
    absl::StatusOr<CreateResult> c = store_->Create(r);
    EXPECT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(c.ok() && c->created);
    return c.ok() ? c->job : JobRecord{};
  }

  JobRecord MustTransition(const std::string& id, JobState to, TransitionDetails details = {}) {
    if (to == JobState::kFailed && details.error_code.empty()) details.error_code = "INTERNAL";
    absl::StatusOr<JobRecord> r = store_->Transition(id, to, details);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : JobRecord{};
  }

  // All ids a listing returns, page by page, checking the pages are chained.
  std::vector<std::string> ListAll(std::optional<JobState> state, int page_size, int* pages) {
    std::vector<std::string> ids;
    ListOptions options;
    options.page_size = page_size;
    options.state = state;
    *pages = 0;
    while (true) {
      absl::StatusOr<JobPage> page = store_->List(options);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      ++*pages;
      EXPECT_LE(static_cast<int>(page->jobs.size()), page_size);
      for (const JobRecord& j : page->jobs) ids.push_back(j.id);
      if (page->next_page_token.empty()) break;
      EXPECT_EQ(static_cast<int>(page->jobs.size()), page_size);  // only the last page is short
      options.page_token = page->next_page_token;
    }
    return ids;
  }

  FakeClock clock_;
  std::string path_;  // SQLite
  std::string url_;   // PostgreSQL
  std::unique_ptr<JobStore> store_;
};

// What only SqliteJobStore has: files, read-only opens, size limits.
class SqliteOnlyJobStoreTest : public JobStoreTest {};

std::string StoreName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

INSTANTIATE_TEST_SUITE_P(Stores, JobStoreTest, ::testing::Values("sqlite", "postgres"), StoreName);
INSTANTIATE_TEST_SUITE_P(Sqlite, SqliteOnlyJobStoreTest, ::testing::Values("sqlite"), StoreName);

void ExpectSameJob(const JobRecord& a, const JobRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.request_id, b.request_id);
  EXPECT_EQ(a.spec_json, b.spec_json);
  EXPECT_EQ(a.spec_hash, b.spec_hash);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.progress.stage, b.progress.stage);
  EXPECT_EQ(a.progress.done, b.progress.done);
  EXPECT_EQ(a.progress.total, b.progress.total);
  EXPECT_EQ(a.progress.fraction, b.progress.fraction);
  EXPECT_EQ(a.progress.detail, b.progress.detail);
  EXPECT_EQ(a.create_time, b.create_time);
  EXPECT_EQ(a.start_time, b.start_time);
  EXPECT_EQ(a.end_time, b.end_time);
  EXPECT_EQ(a.error_code, b.error_code);
  EXPECT_EQ(a.error_message, b.error_message);
  EXPECT_EQ(a.result_dir, b.result_dir);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.labels, b.labels);
}

TEST_P(JobStoreTest, CreateThenGet) {
  JobRecord in = NewJob("job-1", "req-1");
  in.priority = 7;
  in.progress.stage = "queued";
  in.spec_json = std::string("{\"weird\": \"\0\xff\"}", 15);  // any bytes survive
  const JobRecord created = MustCreate(in);
  EXPECT_EQ(created.version, 1);
  EXPECT_EQ(created.state, JobState::kPending);
  EXPECT_NE(created.create_time, absl::InfinitePast());
  EXPECT_EQ(created.start_time, absl::InfinitePast());
  EXPECT_EQ(created.end_time, absl::InfinitePast());

  absl::StatusOr<JobRecord> got = store_->Get("job-1");
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameJob(*got, created);
  EXPECT_EQ(got->spec_json, in.spec_json);

  EXPECT_TRUE(absl::IsNotFound(store_->Get("job-2").status()));
  const absl::Status odd = store_->Get("../../x\n").status();
  EXPECT_TRUE(absl::IsNotFound(odd));
  EXPECT_THAT(odd.message(), Not(HasSubstr("\n")));  // client text is escaped
}

TEST_P(JobStoreTest, CreateValidatesTheRecord) {
  JobRecord bad = NewJob("Bad/Id");
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Create(bad).status()));
  bad = NewJob("job-1");
  bad.spec_hash.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Create(bad).status()));
  bad = NewJob("job-1");
  bad.state = JobState::kRunning;
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Create(bad).status()));
  bad = NewJob("job-1", std::string(257, 'r'));
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Create(bad).status()));
  bad = NewJob("job-1");
  bad.progress.fraction = 2;
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Create(bad).status()));
  int pages = 0;
  EXPECT_TRUE(ListAll(std::nullopt, 10, &pages).empty());
}

TEST_P(JobStoreTest, CreateIsIdempotentByRequestId) {
  const JobRecord first = MustCreate(NewJob("job-1", "req-1"));
  MustTransition("job-1", JobState::kRunning);

  // A retry (another id chosen by the server, same request and spec) gets the
  // first job in its current state.
  absl::StatusOr<CreateResult> again = store_->Create(NewJob("job-2", "req-1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->job.id, "job-1");
  EXPECT_EQ(again->job.state, JobState::kRunning);
  EXPECT_EQ(again->job.create_time, first.create_time);
  EXPECT_TRUE(absl::IsNotFound(store_->Get("job-2").status()));

  // The same request id with another spec is a conflict naming the request
  // id, never the spec.
  const std::string secret_spec = R"({"data": {"data_dir": "/secret/patients.csv"}})";
  const absl::Status conflict = store_->Create(NewJob("job-3", "req-1", secret_spec)).status();
  EXPECT_TRUE(absl::IsAlreadyExists(conflict)) << conflict;
  EXPECT_THAT(conflict.message(), HasSubstr("req-1"));
  EXPECT_THAT(conflict.message(), HasSubstr("job-1"));
  EXPECT_THAT(conflict.message(), Not(HasSubstr("secret")));

  // Without a request id there is no deduplication; an id in use is a conflict.
  MustCreate(NewJob("job-4"));
  MustCreate(NewJob("job-5"));
  EXPECT_TRUE(absl::IsAlreadyExists(store_->Create(NewJob("job-4")).status()));
  EXPECT_TRUE(absl::IsAlreadyExists(store_->Create(NewJob("job-4", "req-9")).status()));
  int pages = 0;
  EXPECT_THAT(ListAll(std::nullopt, 10, &pages), ElementsAre("job-1", "job-4", "job-5"));
}

TEST_P(JobStoreTest, RequestIdsAndListingsAreScopedToTheTenant) {
  JobRecord a = NewJob("job-a", "req-1");
  a.tenant = "team-a";
  JobRecord b = NewJob("job-b", "req-1", R"({"other": 1})");
  b.tenant = "team-b";
  EXPECT_EQ(MustCreate(a).tenant, "team-a");
  // The same request id in another tenant is another job, not a conflict
  // that would reveal the first one.
  absl::StatusOr<CreateResult> second = store_->Create(b);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->created);
  EXPECT_EQ(second->job.tenant, "team-b");
  // A repeat within the tenant is still idempotent.
  JobRecord again = NewJob("job-c", "req-1");
  again.tenant = "team-a";
  absl::StatusOr<CreateResult> repeat = store_->Create(again);
  ASSERT_TRUE(repeat.ok()) << repeat.status();
  EXPECT_FALSE(repeat->created);
  EXPECT_EQ(repeat->job.id, "job-a");

  ListOptions only_b;
  only_b.tenant = "team-b";
  absl::StatusOr<JobPage> page = store_->List(only_b);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->jobs.size(), 1u);
  EXPECT_EQ(page->jobs[0].id, "job-b");
  EXPECT_EQ(store_->Get("job-b")->tenant, "team-b");

  // The tenant is immutable.
  JobRecord moved = *store_->Get("job-a");
  moved.tenant = "team-b";
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Update(moved).status()));
}

TEST_P(JobStoreTest, CountsJobsAndUploadsPerTenant) {
  JobRecord a = NewJob("job-a");
  a.tenant = "team-a";
  JobRecord b = NewJob("job-b");
  b.tenant = "team-b";
  MustCreate(a);
  MustCreate(b);
  MustTransition("job-b", JobState::kRunning);
  EXPECT_EQ(*store_->CountJobs(std::string("team-a"), JobState::kPending), 1);
  EXPECT_EQ(*store_->CountJobs(std::string("team-a"), JobState::kRunning), 0);
  EXPECT_EQ(*store_->CountJobs(std::nullopt, JobState::kRunning), 1);

  ASSERT_TRUE(store_->RecordUpload("team-a", "sha256:aa", 100).ok());
  ASSERT_TRUE(store_->RecordUpload("team-a", "sha256:aa", 100).ok());  // again: no change
  ASSERT_TRUE(store_->RecordUpload("team-a", "sha256:bb", 5).ok());
  ASSERT_TRUE(store_->RecordUpload("team-b", "sha256:aa", 100).ok());
  EXPECT_TRUE(*store_->HasUpload("team-a", "sha256:bb"));
  EXPECT_FALSE(*store_->HasUpload("team-b", "sha256:bb"));
  EXPECT_EQ(*store_->UploadBytes("team-a"), 105);
  EXPECT_EQ(*store_->UploadBytes("team-c"), 0);
  EXPECT_TRUE(absl::IsInvalidArgument(store_->RecordUpload("team-a", "", 1)));
}

TEST_P(JobStoreTest, ListPagesThroughManyJobsWithAStateFilter) {
  constexpr int kJobs = 137;
  std::vector<std::string> all, running, succeeded;
  for (int i = 0; i < kJobs; ++i) {
    // Ids deliberately not in creation order: the order is by create_time.
    const std::string id = absl::StrCat("job-", (i * 37) % kJobs);
    MustCreate(NewJob(id));
    all.push_back(id);
    if (i % 3 == 0) {
      MustTransition(id, JobState::kRunning);
      if (i % 2 == 0) {
        MustTransition(id, JobState::kSucceeded);
        succeeded.push_back(id);
      } else {
        running.push_back(id);
      }
    }
  }
  int pages = 0;
  EXPECT_EQ(ListAll(std::nullopt, 10, &pages), all);
  EXPECT_EQ(pages, 14);
  EXPECT_EQ(ListAll(JobState::kRunning, 7, &pages), running);
  EXPECT_EQ(ListAll(JobState::kSucceeded, 1000, &pages), succeeded);
  EXPECT_EQ(pages, 1);
  EXPECT_TRUE(ListAll(JobState::kFailed, 5, &pages).empty());
  EXPECT_EQ(pages, 1);

  // page_size 0 means the default; a page exactly full says there is more only
  // when there is.
  ListOptions options;
  absl::StatusOr<JobPage> page = store_->List(options);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(static_cast<int>(page->jobs.size()), ListOptions::kDefaultPageSize);
  options.page_size = kJobs;
  page = store_->List(options);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(static_cast<int>(page->jobs.size()), kJobs);
  EXPECT_TRUE(page->next_page_token.empty());
}

TEST_P(JobStoreTest, JobsCreatedWhileListingComeOnLaterPages) {
  for (int i = 0; i < 5; ++i) MustCreate(NewJob(absl::StrCat("job-", i)));
  ListOptions options;
  options.page_size = 3;
  absl::StatusOr<JobPage> first = store_->List(options);
  ASSERT_TRUE(first.ok());
  MustCreate(NewJob("job-new"));
  options.page_token = first->next_page_token;
  absl::StatusOr<JobPage> second = store_->List(options);
  ASSERT_TRUE(second.ok());
  std::vector<std::string> ids;
  for (const JobRecord& j : second->jobs) ids.push_back(j.id);
  EXPECT_THAT(ids, ElementsAre("job-3", "job-4", "job-new"));
}

TEST_P(JobStoreTest, EqualCreateTimesArePagedById) {
  clock_.Freeze();
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i) ids.push_back(absl::StrCat("job-", 100 + (i * 7) % 25));
  for (const std::string& id : ids) MustCreate(NewJob(id));
  std::sort(ids.begin(), ids.end());
  int pages = 0;
  EXPECT_EQ(ListAll(std::nullopt, 4, &pages), ids);
  EXPECT_EQ(pages, 7);
}

TEST_P(JobStoreTest, MalformedPageTokensAreInvalidArgument) {
  for (int i = 0; i < 3; ++i) MustCreate(NewJob(absl::StrCat("job-", i)));
  ListOptions options;
  options.page_size = 1;
  absl::StatusOr<JobPage> page = store_->List(options);
  ASSERT_TRUE(page.ok());
  ASSERT_FALSE(page->next_page_token.empty());

  for (const std::string& token :
       {std::string("definitely not a token"), absl::WebSafeBase64Escape("p1|x|y|z"),
        page->next_page_token.substr(0, page->next_page_token.size() / 2)}) {
    options.page_token = token;
    const absl::Status s = store_->List(options).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << token << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr("page_token"));
  }
  // A valid token with another filter than the one it was issued for.
  options.page_token = page->next_page_token;
  options.state = JobState::kPending;
  EXPECT_TRUE(absl::IsInvalidArgument(store_->List(options).status()));
  options.state.reset();
  EXPECT_TRUE(store_->List(options).ok());
}

TEST_P(JobStoreTest, TransitionsFollowTheLifecycle) {
  MustCreate(NewJob("job-1"));
  // Illegal: refused without a change.
  absl::Status s = store_->Transition("job-1", JobState::kSucceeded, {}).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("PENDING"));
  EXPECT_EQ(store_->Get("job-1")->version, 1);

  const JobRecord running = MustTransition("job-1", JobState::kRunning);
  EXPECT_EQ(running.version, 2);
  EXPECT_NE(running.start_time, absl::InfinitePast());
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->Transition("job-1", JobState::kRunning, {}).status()));  // not a transition

  // Requeued after a crash, then running again: the first start time stays.
  const JobRecord requeued = MustTransition("job-1", JobState::kPending);
  EXPECT_EQ(requeued.start_time, running.start_time);
  EXPECT_EQ(MustTransition("job-1", JobState::kRunning).start_time, running.start_time);

  // FAILED needs a code; then the job is final.
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Transition("job-1", JobState::kFailed, {}).status()));
  TransitionDetails why;
  why.error_code = "RESOURCE_EXHAUSTED";
  why.error_message = "out of GPU memory";
  const JobRecord failed = MustTransition("job-1", JobState::kFailed, why);
  EXPECT_EQ(failed.error_code, "RESOURCE_EXHAUSTED");
  EXPECT_EQ(failed.error_message, "out of GPU memory");
  EXPECT_NE(failed.end_time, absl::InfinitePast());
  for (JobState to :
       {JobState::kPending, JobState::kRunning, JobState::kSucceeded, JobState::kCancelled}) {
    EXPECT_TRUE(absl::IsFailedPrecondition(store_->Transition("job-1", to, {}).status()));
  }
  JobProgress late;
  late.stage = "train";
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->UpdateProgress("job-1", late).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->MarkUnitDone("job-1", "model:0", "k")));
  ExpectSameJob(*store_->Get("job-1"), failed);

  EXPECT_TRUE(absl::IsNotFound(store_->Transition("nope", JobState::kRunning, {}).status()));
}

TEST_P(JobStoreTest, EveryPairOfStatesAgreesWithTheTable) {
  // The path from PENDING to each state.
  const std::map<JobState, std::vector<JobState>> path = {
      {JobState::kPending, {}},
      {JobState::kRunning, {JobState::kRunning}},
      {JobState::kSucceeded, {JobState::kRunning, JobState::kSucceeded}},
      {JobState::kFailed, {JobState::kRunning, JobState::kFailed}},
      {JobState::kCancelled, {JobState::kCancelled}},
  };
  int n = 0;
  for (const auto& [from, steps] : path) {
    for (const auto& [to, unused] : path) {
      const std::string id = absl::StrCat("job-", n++);
      MustCreate(NewJob(id));
      for (JobState step : steps) MustTransition(id, step);
      TransitionDetails d;
      d.error_code = "INTERNAL";
      const absl::StatusOr<JobRecord> r = store_->Transition(id, to, d);
      EXPECT_EQ(r.ok(), IsLegalTransition(from, to))
          << JobStateName(from) << " -> " << JobStateName(to) << ": " << r.status();
      EXPECT_EQ(store_->Get(id)->state, r.ok() ? to : from);
    }
  }
}

TEST_P(JobStoreTest, EveryWriteBumpsTheVersion) {
  EXPECT_EQ(MustCreate(NewJob("job-1")).version, 1);
  JobProgress p;
  p.stage = "queued";
  absl::StatusOr<JobRecord> r = store_->UpdateProgress("job-1", p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->version, 2);
  EXPECT_EQ(MustTransition("job-1", JobState::kRunning).version, 3);
  p.stage = "train";
  p.done = 3;
  p.total = 8;
  p.fraction = 0.375;
  p.detail = "model 3/8";
  r = store_->UpdateProgress("job-1", p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->version, 4);
  EXPECT_EQ(r->progress.detail, "model 3/8");
  // Units are bookkeeping, not a change clients watch.
  ASSERT_TRUE(store_->MarkUnitDone("job-1", "model:0", "key0").ok());
  EXPECT_EQ(store_->Get("job-1")->version, 4);
  // Failed writes change nothing.
  p.fraction = -0.5;
  EXPECT_TRUE(absl::IsInvalidArgument(store_->UpdateProgress("job-1", p).status()));
  EXPECT_EQ(store_->Get("job-1")->version, 4);
  EXPECT_EQ(MustTransition("job-1", JobState::kSucceeded).version, 5);
}

TEST_P(JobStoreTest, UpdateIsOptimistic) {
  const JobRecord created = MustCreate(NewJob("job-1"));
  JobRecord edit = created;
  edit.priority = 5;
  edit.labels["stage"] = "nightly";
  edit.labels.erase("team");
  absl::StatusOr<JobRecord> updated = store_->Update(edit);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->version, 2);
  ExpectSameJob(*store_->Get("job-1"), *updated);
  EXPECT_EQ(store_->Get("job-1")->labels.count("team"), 0u);

  // A second writer still holding version 1 loses.
  JobRecord stale = created;
  stale.priority = 9;
  const absl::Status lost = store_->Update(stale).status();
  EXPECT_TRUE(absl::IsAborted(lost)) << lost;
  EXPECT_EQ(store_->Get("job-1")->priority, 5);

  // Immutable fields stay immutable.
  JobRecord sneaky = *updated;
  sneaky.spec_json = "{}";
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Update(sneaky).status()));
  sneaky = *updated;
  sneaky.request_id = "other";
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Update(sneaky).status()));

  // A state change through Update follows the lifecycle and sets times.
  JobRecord jump = *updated;
  jump.state = JobState::kSucceeded;
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Update(jump).status()));
  JobRecord start = *updated;
  start.state = JobState::kRunning;
  absl::StatusOr<JobRecord> started = store_->Update(start);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_NE(started->start_time, absl::InfinitePast());
  JobRecord cancel = *started;
  cancel.state = JobState::kCancelled;
  absl::StatusOr<JobRecord> cancelled = store_->Update(cancel);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_NE(cancelled->end_time, absl::InfinitePast());
  // Finished: nothing changes any more.
  JobRecord after = *cancelled;
  after.priority = 1;
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Update(after).status()));

  JobRecord missing = created;
  missing.id = "job-404";
  EXPECT_TRUE(absl::IsNotFound(store_->Update(missing).status()));
}

TEST_P(JobStoreTest, DeleteOnlyFinishedJobs) {
  MustCreate(NewJob("job-1", "req-1"));
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Delete("job-1")));
  MustTransition("job-1", JobState::kRunning);
  ASSERT_TRUE(store_->MarkUnitDone("job-1", "model:0", "key0").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Delete("job-1")));
  MustTransition("job-1", JobState::kSucceeded);
  EXPECT_TRUE(store_->Delete("job-1").ok());
  EXPECT_TRUE(absl::IsNotFound(store_->Get("job-1").status()));
  EXPECT_TRUE(absl::IsNotFound(store_->ListUnitsDone("job-1").status()));
  EXPECT_TRUE(absl::IsNotFound(store_->Delete("job-1")));

  // The id and the request id are free again, with no units or labels left.
  JobRecord again = NewJob("job-1", "req-1");
  again.labels.clear();
  EXPECT_TRUE(MustCreate(again).labels.empty());
  EXPECT_TRUE(store_->ListUnitsDone("job-1")->empty());
  EXPECT_TRUE(store_->Get("job-1")->labels.empty());
}

TEST_P(JobStoreTest, ListUnfinishedIsByPriorityThenAge) {
  for (const auto& [id, priority] : std::vector<std::pair<std::string, int>>{
           {"a", 0}, {"b", 5}, {"c", 0}, {"d", 5}, {"e", -1}}) {
    JobRecord r = NewJob(id);
    r.priority = priority;
    MustCreate(r);
  }
  MustTransition("b", JobState::kRunning);
  MustTransition("c", JobState::kCancelled);
  MustTransition("d", JobState::kRunning);
  MustTransition("d", JobState::kSucceeded);
  absl::StatusOr<std::vector<JobRecord>> unfinished = store_->ListUnfinished();
  ASSERT_TRUE(unfinished.ok());
  std::vector<std::string> ids;
  for (const JobRecord& j : *unfinished) ids.push_back(j.id);
  EXPECT_THAT(ids, ElementsAre("b", "a", "e"));
}

TEST_P(JobStoreTest, EverythingSurvivesReopening) {
  std::vector<JobRecord> expected;
  expected.push_back(MustCreate(NewJob("job-1", "req-1")));
  MustCreate(NewJob("job-2"));
  MustTransition("job-2", JobState::kRunning);
  JobProgress p;
  p.stage = "train";
  p.done = 2;
  p.total = 5;
  p.fraction = 0.4;
  p.detail = "model 2/5";
  expected.push_back(*store_->UpdateProgress("job-2", p));
  MustCreate(NewJob("job-3"));
  MustTransition("job-3", JobState::kRunning);
  TransitionDetails done;
  done.result_dir = "/var/lib/mia/audits/job-3";
  expected.push_back(MustTransition("job-3", JobState::kSucceeded, done));
  ASSERT_TRUE(store_->MarkUnitDone("job-2", "model:0", "k0").ok());

  Reopen();
  for (const JobRecord& want : expected) {
    absl::StatusOr<JobRecord> got = store_->Get(want.id);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectSameJob(*got, want);
  }
  EXPECT_EQ(store_->Get("job-3")->result_dir, "/var/lib/mia/audits/job-3");
  EXPECT_EQ(store_->ListUnitsDone("job-2")->at("model:0"), "k0");
  // Idempotency holds across restarts too.
  absl::StatusOr<CreateResult> retry = store_->Create(NewJob("job-9", "req-1"));
  ASSERT_TRUE(retry.ok());
  EXPECT_FALSE(retry->created);
  EXPECT_EQ(retry->job.id, "job-1");
  // Versions continue from where they were.
  EXPECT_EQ(MustTransition("job-2", JobState::kPending).version, expected[1].version + 1);
}

TEST_P(JobStoreTest, UnitsDoneSurviveReopening) {
  MustCreate(NewJob("job-1"));
  MustTransition("job-1", JobState::kRunning);
  for (int m = 0; m < 4; ++m) {
    ASSERT_TRUE(
        store_->MarkUnitDone("job-1", absl::StrCat("model:", m), absl::StrCat("k", m)).ok());
  }
  ASSERT_TRUE(store_->MarkUnitDone("job-1", "model:2", "k2-retrained").ok());  // replaces
  ASSERT_TRUE(store_->MarkUnitDone("job-1", "signals", "").ok());  // empty value is fine
  EXPECT_TRUE(absl::IsInvalidArgument(store_->MarkUnitDone("job-1", "", "x")));
  EXPECT_TRUE(absl::IsNotFound(store_->MarkUnitDone("job-404", "model:0", "x")));
  MustCreate(NewJob("job-2"));
  ASSERT_TRUE(store_->MarkUnitDone("job-2", "model:0", "other").ok());

  Reopen();
  const std::map<std::string, std::string> want = {{"model:0", "k0"},
                                                   {"model:1", "k1"},
                                                   {"model:2", "k2-retrained"},
                                                   {"model:3", "k3"},
                                                   {"signals", ""}};
  absl::StatusOr<std::map<std::string, std::string>> units = store_->ListUnitsDone("job-1");
  ASSERT_TRUE(units.ok()) << units.status();
  EXPECT_EQ(*units, want);
  EXPECT_EQ(store_->ListUnitsDone("job-2")->size(), 1u);
}

TEST_P(SqliteOnlyJobStoreTest, WritesSurviveAProcessThatNeverCloses) {
  store_.reset();
  // The child writes and exits without closing the database or running any
  // destructor, as a killed server would.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::unique_ptr<JobStore> store = OpenStore();
    bool ok = store != nullptr && store->Create(NewJob("job-1")).ok() &&
              store->Transition("job-1", JobState::kRunning, {}).ok() &&
              store->MarkUnitDone("job-1", "model:0", "k0").ok();
    _exit(ok ? 0 : 1);  // runs no destructor: the database is never closed
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  store_ = OpenStore();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->Get("job-1")->state, JobState::kRunning);
  EXPECT_EQ(store_->ListUnitsDone("job-1")->at("model:0"), "k0");
  ASSERT_EQ(store_->ListUnfinished()->size(), 1u);
}

TEST_P(JobStoreTest, ConcurrentWritersFromManyThreads) {
  MustCreate(NewJob("job-1"));
  MustTransition("job-1", JobState::kRunning);  // version 2
  constexpr int kProgressThreads = 4, kProgressEach = 15;
  constexpr int kEditThreads = 3, kEditsEach = 8;
  std::atomic<int> failures{0}, conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kProgressThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kProgressEach; ++i) {
        JobProgress p;
        p.stage = "train";
        p.done = t * 100 + i;
        if (!store_->UpdateProgress("job-1", p).ok()) ++failures;
        if (!store_->MarkUnitDone("job-1", absl::StrCat("model:", t, ":", i), "k").ok()) {
          ++failures;
        }
      }
    });
  }
  // Read-modify-write with optimistic retries: no increment may be lost.
  for (int t = 0; t < kEditThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEditsEach; ++i) {
        while (true) {
          absl::StatusOr<JobRecord> r = store_->Get("job-1");
          if (!r.ok()) {
            ++failures;
            break;
          }
          r->priority += 1;
          const absl::Status s = store_->Update(*r).status();
          if (s.ok()) break;
          if (!absl::IsAborted(s)) {
            ++failures;
            break;
          }
          ++conflicts;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const JobRecord final_job = *store_->Get("job-1");
  EXPECT_EQ(final_job.priority, kEditThreads * kEditsEach);
  EXPECT_EQ(final_job.version, 2 + kProgressThreads * kProgressEach + kEditThreads * kEditsEach);
  EXPECT_EQ(static_cast<int>(store_->ListUnitsDone("job-1")->size()),
            kProgressThreads * kProgressEach);
}

using ::mia::test_util::RunSql;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A row whose state the lifecycle does not know (written past the table's
// CHECK, as a hand edit or another tool may) used to fail every listing, and
// with it the server's start. It is left out and named; the rest is served.
TEST_P(SqliteOnlyJobStoreTest, ARowWithAnInvalidStateIsSkippedAndReported) {
  MustCreate(NewJob("job-a"));
  MustCreate(NewJob("job-bad"));
  MustCreate(NewJob("job-c"));
  MustTransition("job-c", JobState::kRunning);
  store_.reset();
  RunSql(path_,
         "PRAGMA ignore_check_constraints = ON; "
         "UPDATE jobs SET state = 'PAUSED' WHERE id = 'job-bad';");
  Reopen();
  int pages = 0;
  EXPECT_THAT(ListAll(std::nullopt, 10, &pages), ElementsAre("job-a", "job-c"));
  absl::StatusOr<std::vector<JobRecord>> unfinished = store_->ListUnfinished();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status();
  ASSERT_EQ(unfinished->size(), 2u);
  absl::StatusOr<std::vector<std::string>> unreadable = store_->ListUnreadable();
  ASSERT_TRUE(unreadable.ok()) << unreadable.status();
  EXPECT_THAT(*unreadable, ElementsAre("job-bad"));
  absl::StatusOr<JobRecord> bad = store_->Get("job-bad");
  EXPECT_TRUE(absl::IsDataLoss(bad.status())) << bad.status();
  EXPECT_THAT(bad.status().message(), HasSubstr("job-bad"));
}

// A store opened for reading (as SQLite opens a file the process may not
// write) serves reads, says it is not writable, and refuses writes with a
// message that says the store is read-only, naming the file, not its path.
TEST_P(SqliteOnlyJobStoreTest, AReadOnlyStoreServesReadsAndSaysWhyWritesFail) {
  MustCreate(NewJob("job-a"));
  EXPECT_TRUE(store_->writable());
  store_.reset();
  SqliteJobStoreOptions options;
  options.read_only = true;
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(path_, options);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->writable());
  EXPECT_TRUE((*store)->Get("job-a").ok());
  int unused = 0;
  store_ = std::move(*store);
  EXPECT_THAT(ListAll(std::nullopt, 10, &unused), ElementsAre("job-a"));
  absl::StatusOr<CreateResult> created = store_->Create(NewJob("job-b"));
  ASSERT_FALSE(created.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(created.status())) << created.status();
  EXPECT_THAT(created.status().message(), HasSubstr("the job store (jobs.db) is read-only"));
  EXPECT_THAT(created.status().message(), Not(HasSubstr(path_)));
  absl::StatusOr<JobRecord> moved = store_->Transition("job-a", JobState::kRunning, {});
  EXPECT_THAT(moved.status().message(), HasSubstr("read-only"));
  EXPECT_FALSE(store_->writable());
}

// ProbeWrite changes nothing and keeps a writable store writable; a store
// opened for reading only refuses it without writing and stays not writable.
TEST_P(SqliteOnlyJobStoreTest, ProbeWriteChangesNothing) {
  MustCreate(NewJob("job-a"));
  const JobRecord before = *store_->Get("job-a");
  EXPECT_TRUE(store_->ProbeWrite().ok());
  EXPECT_TRUE(store_->writable());
  const JobRecord after = *store_->Get("job-a");
  EXPECT_EQ(after.version, before.version);
  store_.reset();
  SqliteJobStoreOptions options;
  options.read_only = true;
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(path_, options);
  ASSERT_TRUE(store.ok()) << store.status();
  const absl::Status probed = (*store)->ProbeWrite();
  EXPECT_TRUE(absl::IsFailedPrecondition(probed)) << probed;
  EXPECT_THAT(probed.message(), HasSubstr("opened for reading only"));
  EXPECT_FALSE((*store)->writable());
  store_ = std::move(*store);
}

// Without root, a file the process may not write is what makes a store
// read-only in practice; root writes any file, so there it is skipped (the
// test above covers the same path with an explicit read-only open).
TEST_P(SqliteOnlyJobStoreTest, AFileWithoutWritePermissionOpensReadOnly) {
  if (::geteuid() == 0) GTEST_SKIP() << "root may write any file";
  MustCreate(NewJob("job-a"));
  store_.reset();
  std::filesystem::permissions(path_, std::filesystem::perms::owner_read |
                                          std::filesystem::perms::group_read |
                                          std::filesystem::perms::others_read);
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->writable());
  absl::StatusOr<CreateResult> created = (*store)->Create(NewJob("job-b"));
  EXPECT_THAT(created.status().message(), HasSubstr("read-only"));
}

// A full disk under jobs.db (a small tmpfs, where the test may mount one).
TEST(SqliteJobStoreFullDiskTest, AFullTmpfsIsResourceExhaustedNamingJobsDb) {
  const std::string dir = TempDir("full_tmpfs");
  testutil::ScopedTmpfs tmpfs(dir, 256 << 10);
  if (!tmpfs.ok()) GTEST_SKIP() << "cannot mount a tmpfs here";
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(dir + "/jobs.db");
  ASSERT_TRUE(store.ok()) << store.status();
  absl::Status status;
  for (int i = 0; i < 100 && status.ok(); ++i) {
    JobRecord r;
    r.id = absl::StrCat("job-", i);
    r.spec_json = std::string(32 << 10, 'x');
    r.spec_hash = r.id;
    status = (*store)->Create(r).status();
  }
  EXPECT_TRUE(absl::IsResourceExhausted(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("the job store (jobs.db)"));
  EXPECT_TRUE((*store)->Get("job-0").ok());  // what was stored stays readable
  store->reset();
}

// A write the store cannot take (a full disk: SQLITE_FULL; here the store's
// own size limit, which SQLite reports the same way) is RESOURCE_EXHAUSTED
// naming jobs.db. The store stays "writable": the next write that fits works.
TEST_P(SqliteOnlyJobStoreTest, AFullStoreIsResourceExhaustedNamingTheFile) {
  store_.reset();
  SqliteJobStoreOptions options;
  options.max_bytes = 256 << 10;
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(path_, options);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
  MustCreate(NewJob("job-a"));
  const absl::StatusOr<CreateResult> created =
      store_->Create(NewJob("job-b", "", std::string(512 << 10, 'x')));
  ASSERT_FALSE(created.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(created.status())) << created.status();
  EXPECT_THAT(created.status().message(), HasSubstr("the job store (jobs.db)"));
  EXPECT_THAT(created.status().message(), Not(HasSubstr(path_)));
  EXPECT_TRUE(store_->writable());
  EXPECT_TRUE(store_->Get("job-a").ok());  // reads still work
  MustCreate(NewJob("job-c"));             // a write that fits
  EXPECT_TRUE(absl::IsNotFound(store_->Get("job-b").status()));
}

TEST(SqliteJobStoreOpenTest, AFileThatIsNotSqliteIsAClearError) {
  const std::string path = TempDir("not_sqlite") + "/jobs.db";
  std::string text;
  for (int i = 0; i < 200; ++i) text += "this is a text file, not a database\n";
  std::ofstream(path) << text;
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.status())) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("not an SQLite database"));
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_EQ(ReadFile(path), text);  // left untouched
}

TEST(SqliteJobStoreOpenTest, AnotherApplicationsDatabaseIsRefused) {
  const std::string path = TempDir("foreign") + "/other.db";
  RunSql(path, "CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL);");
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.status())) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("another application"));
}

TEST(SqliteJobStoreOpenTest, ANewerSchemaIsRefused) {
  const std::string path = TempDir("newer") + "/jobs.db";
  ASSERT_TRUE(SqliteJobStore::Open(path).ok());
  RunSql(path,
         "INSERT INTO schema_migrations (version, name, applied_time) "
         "VALUES (999, 'from the future', 0);");
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.status())) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("999"));
}

TEST(SqliteJobStoreOpenTest, SchemaIsRecordedOnceAndTheFileIsInWalMode) {
  const std::string path = TempDir("schema") + "/jobs.db";
  ASSERT_TRUE(SqliteJobStore::Open(path).ok());
  ASSERT_TRUE(SqliteJobStore::Open(path).ok());  // reopening applies nothing twice
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  auto query = [db](const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    const std::string value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return value;
  };
  EXPECT_EQ(query("PRAGMA journal_mode"), "wal");  // persistent in the file
  EXPECT_EQ(query("SELECT count(*) FROM schema_migrations"),
            std::to_string(SqliteJobStore::LatestSchemaVersion()));
  sqlite3_close(db);
}

TEST(SqliteJobStoreOpenTest, AMissingFolderIsAnError) {
  const std::string path = TempDir("missing") + "/no/such/folder/jobs.db";
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(path);
  EXPECT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.status())) << store.status();
}

}  // namespace
}  // namespace mia::jobs
