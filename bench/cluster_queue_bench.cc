// The PostgreSQL work queue under several replicas: claims per second and the
// latency of ClaimUnit (p50, p99) with N "replicas", each a thread with its
// own PostgresJobStore (one connection), all claiming and completing units of
// the same audits until none is left. What a unit costs the queue, not the
// work (a unit does nothing here).
//
//   mia_cluster_queue_bench URL [replicas=3] [audits=10] [units_per_audit=300] [tenants=2]
//
// URL: a database the benchmark may fill (bench/cluster_queue.sh starts a
// throwaway PostgreSQL like the test fixture and passes its URL). Prints one
// table; results in docs/benchmarks.md.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/jobs/postgres_job_store.h"

namespace {

using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "cluster_queue_bench: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mia::jobs;
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: %s URL [replicas=3] [audits=10] [units_per_audit=300] [tenants=2]\n",
                 argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const int replicas = argc > 2 ? std::atoi(argv[2]) : 3;
  const int audits = argc > 3 ? std::atoi(argv[3]) : 10;
  const int units_per_audit = argc > 4 ? std::atoi(argv[4]) : 300;
  const int tenants = argc > 5 ? std::atoi(argv[5]) : 2;

  PostgresJobStoreOptions setup_options;
  setup_options.pool_size = 1;
  absl::StatusOr<std::unique_ptr<PostgresJobStore>> setup =
      PostgresJobStore::Open(url, setup_options);
  if (!setup.ok()) return Fail(setup.status());
  const std::string run = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  std::vector<std::string> units;
  for (int u = 0; u < units_per_audit; ++u) units.push_back(absl::StrCat("model:", u));
  for (int a = 0; a < audits; ++a) {
    JobRecord r;
    r.id = absl::StrCat("bench-", run, "-", a);
    r.spec_json = "{}";
    r.spec_hash = "bench";
    r.tenant = absl::StrCat("tenant-", a % std::max(1, tenants));
    if (absl::Status s = (*setup)->Create(r).status(); !s.ok()) return Fail(s);
    absl::StatusOr<std::optional<JobRecord>> claimed =
        (*setup)->ClaimJob("bench-holder", absl::Hours(1));
    if (!claimed.ok()) return Fail(claimed.status());
    if (absl::Status s = (*setup)->AddUnits(r.id, units); !s.ok()) return Fail(s);
  }

  std::vector<std::vector<double>> claim_ms(static_cast<size_t>(replicas));
  std::vector<std::vector<double>> complete_ms(static_cast<size_t>(replicas));
  std::atomic<int> errors{0};
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < replicas; ++t) {
    threads.emplace_back([&, t] {
      PostgresJobStoreOptions options;
      options.pool_size = 1;
      absl::StatusOr<std::unique_ptr<PostgresJobStore>> store =
          PostgresJobStore::Open(url, options);
      if (!store.ok()) {
        ++errors;
        return;
      }
      const std::string name = absl::StrCat("replica-", t);
      while (true) {
        const Clock::time_point t0 = Clock::now();
        absl::StatusOr<std::optional<ClaimedUnit>> unit =
            (*store)->ClaimUnit(name, absl::Minutes(5));
        const Clock::time_point t1 = Clock::now();
        if (!unit.ok()) {
          ++errors;
          return;
        }
        if (!unit->has_value()) return;
        claim_ms[t].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        absl::StatusOr<bool> done = (*store)->CompleteUnit(**unit, name, "key");
        complete_ms[t].push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - t1).count());
        if (!done.ok() || !*done) ++errors;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> claims, completes;
  for (const auto& v : claim_ms) claims.insert(claims.end(), v.begin(), v.end());
  for (const auto& v : complete_ms) completes.insert(completes.end(), v.begin(), v.end());
  const int total = audits * units_per_audit;
  std::printf("replicas %d, audits %d x %d units (%d), tenants %d, errors %d\n", replicas, audits,
              units_per_audit, total, tenants, errors.load());
  std::printf("claimed and completed %zu units in %.2f s: %.0f units/s\n", claims.size(), seconds,
              static_cast<double>(claims.size()) / seconds);
  std::printf("ClaimUnit ms:    p50 %.2f  p99 %.2f  max %.2f\n", Percentile(claims, 0.5),
              Percentile(claims, 0.99), Percentile(claims, 1.0));
  std::printf("CompleteUnit ms: p50 %.2f  p99 %.2f  max %.2f\n", Percentile(completes, 0.5),
              Percentile(completes, 0.99), Percentile(completes, 1.0));
  for (int t = 0; t < replicas; ++t) {
    std::printf("  replica-%d: %zu units\n", t, claim_ms[static_cast<size_t>(t)].size());
  }
  return errors.load() == 0 && static_cast<int>(claims.size()) == total ? 0 : 1;
}
