#include "core/training/lanes.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace mia::training {

int LaneCount(const torch::Device& device, int work) {
  return device.is_cpu() ? std::max(1, std::min(at::get_num_threads(), work)) : 1;
}

bool LanesSuit(const std::string& architecture) {
  return architecture == "mlp" || architecture == "cnn";
}

void RunLanes(int lanes, const std::function<void(int lane)>& body) {
  if (lanes <= 1) {
    body(0);
    return;
  }
  at::parallel_for(0, lanes, 1, [&](int64_t begin, int64_t end) {
    // One thread inside the lane, as every library sees it: LibTorch's
    // per-thread setup first (it would reset the count), then this task's
    // OpenMP thread count. oneDNN sizes its kernels by that count; left at T
    // it partitions work for T threads that the nested region never starts,
    // and convolutions come out wrong (NaN).
    at::internal::lazy_init_num_threads();
    omp_set_num_threads(1);
    for (int64_t lane = begin; lane < end; ++lane) body(static_cast<int>(lane));
  });
}

absl::Status FirstLaneFailure(const std::vector<absl::Status>& lane_status) {
  for (const absl::Status& status : lane_status) {
    if (!status.ok() && !absl::IsAborted(status)) return status;
  }
  for (const absl::Status& status : lane_status) {
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace mia::training
