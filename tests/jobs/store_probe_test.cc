#include "core/jobs/store_probe.h"

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace mia::jobs {
namespace {

// A store that cannot be written while `read_only` is set and tracks
// writable() as SqliteJobStore does: false after a failed write, true after a
// successful one, telling `on_change` of each change. Counts job writes.
class FlakyStore final : public JobStore {
 public:
  std::atomic<bool> read_only{false};
  std::atomic<int> job_writes{0};
  std::atomic<int> probes{0};
  std::function<void(bool)> on_change;

  absl::StatusOr<CreateResult> Create(const JobRecord&) override { return JobWrite(); }
  absl::StatusOr<JobRecord> Get(absl::string_view) override { return absl::NotFoundError("no"); }
  absl::StatusOr<JobPage> List(const ListOptions&) override { return JobPage{}; }
  absl::StatusOr<JobRecord> Update(const JobRecord&) override { return JobWrite(); }
  absl::StatusOr<JobRecord> Transition(absl::string_view, JobState,
                                       const TransitionDetails&) override {
    return JobWrite();
  }
  absl::StatusOr<JobRecord> UpdateProgress(absl::string_view, const JobProgress&) override {
    return JobWrite();
  }
  absl::Status Delete(absl::string_view) override { return JobWrite(); }
  absl::StatusOr<std::vector<JobRecord>> ListUnfinished() override {
    return std::vector<JobRecord>();
  }
  absl::Status MarkUnitDone(absl::string_view, absl::string_view, absl::string_view) override {
    return JobWrite();
  }
  absl::StatusOr<std::map<std::string, std::string>> ListUnitsDone(absl::string_view) override {
    return std::map<std::string, std::string>();
  }
  bool writable() const override { return writable_.load(); }
  absl::Status ProbeWrite() override {
    ++probes;
    return Write();
  }

 private:
  absl::Status JobWrite() {
    ++job_writes;
    return Write();
  }
  absl::Status Write() {
    const bool ok = !read_only.load();
    if (writable_.exchange(ok) != ok && on_change) on_change(ok);
    return ok ? absl::OkStatus() : absl::FailedPreconditionError("read-only file system");
  }
  std::atomic<bool> writable_{true};
};

// Readiness follows the store's writable(), which only a write turns true
// again. With no job write at all, the probe brings readiness back once the
// store can be written again.
TEST(StoreWritableProbe, ReadinessReturnsWithoutAJobWrite) {
  FlakyStore store;
  absl::Mutex mu;
  bool ready = true;  // what the server's readiness would say
  store.on_change = [&](bool writable) {
    absl::MutexLock lock(&mu);
    ready = writable;
  };
  store.read_only = true;
  EXPECT_FALSE(store.Delete("x").ok());  // a write fails: not ready
  {
    absl::MutexLock lock(&mu);
    EXPECT_FALSE(ready);
  }
  const int job_writes = store.job_writes;

  StoreProbeOptions options;
  options.interval = absl::Milliseconds(1);
  StoreWritableProbe probe(&store, options);
  EXPECT_FALSE(probe.ProbeOnce());  // still read-only
  probe.Start();
  // Probes keep failing while the store is read-only.
  while (store.probes.load() < 5) absl::SleepFor(absl::Milliseconds(1));
  {
    absl::MutexLock lock(&mu);
    EXPECT_FALSE(ready);
  }
  store.read_only = false;
  {
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(30)));
  }
  EXPECT_TRUE(store.writable());
  EXPECT_EQ(store.job_writes.load(), job_writes);  // no job was written
  probe.Stop();
  // A writable store is not probed.
  const int probes = store.probes;
  EXPECT_TRUE(probe.ProbeOnce());
  EXPECT_EQ(store.probes.load(), probes);
}

TEST(StoreWritableProbe, StopsPromptlyAndTwice) {
  FlakyStore store;
  StoreProbeOptions options;
  options.interval = absl::Hours(1);
  StoreWritableProbe probe(&store, options);
  probe.Start();
  probe.Stop();
  probe.Stop();
  EXPECT_EQ(store.probes.load(), 0);
}

}  // namespace
}  // namespace mia::jobs
