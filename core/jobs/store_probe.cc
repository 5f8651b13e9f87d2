#include "core/jobs/store_probe.h"

#include <utility>

namespace mia::jobs {

StoreWritableProbe::StoreWritableProbe(JobStore* store, StoreProbeOptions options)
    : store_(store), options_(std::move(options)) {}

StoreWritableProbe::~StoreWritableProbe() { Stop(); }

bool StoreWritableProbe::ProbeOnce() {
  if (store_->writable()) return true;
  // Its error says only that the store is still not writable: the store
  // tracks that (and a read-only open stays so); nothing to report here.
  (void)store_->ProbeWrite();
  return store_->writable();
}

void StoreWritableProbe::Start() {
  thread_ = std::thread([this] {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(&stopped_), options_.interval)) return;
      }
      ProbeOnce();
    }
  });
}

void StoreWritableProbe::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace mia::jobs
