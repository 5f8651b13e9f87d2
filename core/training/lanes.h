// Training lanes: K independent models (to train, or to query) split over the
// CPU's intra-op threads, one thread inside each lane. Small matrix products
// scale badly over threads (and collapse when another process holds a core:
// OpenMP threads spin); independent models scale well.
//
// LibTorch header: include only from core/training.
#ifndef MIA_CORE_TRAINING_LANES_H_
#define MIA_CORE_TRAINING_LANES_H_

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace mia::training {

// min(intra-op threads, work) lanes on a CPU, at least 1; 1 on a GPU.
int LaneCount(const torch::Device& device, int work);

// Whether models of `architecture` go in lanes: the MLP and the small CNN,
// which were measured faster that way (docs/benchmarks.md). The larger
// convolutional nets run in one lane with every thread: a wide ResNet
// stalled in the second lane inside oneDNN (docs/benchmarks.md, "Found on
// the way"), and lanes were never measured for them.
bool LanesSuit(const std::string& architecture);

// Runs body(lane) for every lane in [0, lanes): on the calling thread when
// there is one lane, else in LibTorch's intra-op pool, where LibTorch,
// OpenBLAS and oneDNN all see one thread inside each lane. body must not
// throw.
void RunLanes(int lanes, const std::function<void(int lane)>& body);

// The outcome of lanes that stop each other on failure: the first real
// failure wins over the Aborted of lanes stopped because of it; OK if all are.
absl::Status FirstLaneFailure(const std::vector<absl::Status>& lane_status);

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_LANES_H_
