// Device strings of TrainContext::device as torch::Device.
// LibTorch header: include only from core/training and its tests.
#ifndef MIA_CORE_TRAINING_DEVICE_H_
#define MIA_CORE_TRAINING_DEVICE_H_

#include <torch/torch.h>

#include <string>

#include "absl/status/statusor.h"

namespace mia::training {

// "auto" | "cpu" | "cuda" | "cuda:N". InvalidArgument naming ctx.device for
// other strings or a CUDA index past the device count; FailedPrecondition
// when CUDA is asked for and not usable.
absl::StatusOr<torch::Device> ParseDevice(const std::string& device);

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_DEVICE_H_
