// Periodic probe of a job store that is not writable: readiness follows the
// store's writable(), which a failed write turns false and only a write that
// succeeds turns true again. With no job to write, a store that has become
// writable again (a file system remounted read-write) would stay "not ready"
// for good; the probe makes that write, a JobStore::ProbeWrite that changes
// no job, every `interval` while the store is not writable.
//
// Thread-safety: ProbeOnce from any thread; Start and Stop from one.
#ifndef MIA_CORE_JOBS_STORE_PROBE_H_
#define MIA_CORE_JOBS_STORE_PROBE_H_

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/jobs/job_store.h"

namespace mia::jobs {

struct StoreProbeOptions {
  // Time between probes while the store is not writable (a writable store is
  // not written to: the probe only looks at writable()). Injected: tests use
  // milliseconds.
  absl::Duration interval = absl::Seconds(15);
};

class StoreWritableProbe {
 public:
  // `store` is not owned and must outlive the probe.
  StoreWritableProbe(JobStore* store, StoreProbeOptions options);
  // Stop().
  ~StoreWritableProbe();
  StoreWritableProbe(const StoreWritableProbe&) = delete;
  StoreWritableProbe& operator=(const StoreWritableProbe&) = delete;

  // One probe now: ProbeWrite when the store is not writable. Returns
  // writable() afterwards. The store reports a change itself (its
  // on_writable_change callback, which the server's readiness follows).
  bool ProbeOnce();

  // Starts the thread that calls ProbeOnce every interval. Once only.
  void Start();
  // Stops and joins the thread; idempotent.
  void Stop();

 private:
  JobStore* const store_;
  const StoreProbeOptions options_;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace mia::jobs

#endif  // MIA_CORE_JOBS_STORE_PROBE_H_
