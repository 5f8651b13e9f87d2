#include "core/training/device.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/training/engine.h"

namespace mia::training {

absl::StatusOr<torch::Device> ParseDevice(const std::string& device) {
  const std::string resolved = ResolveDevice(device);
  if (resolved == "cpu") return torch::Device(torch::kCPU);
  absl::string_view rest = resolved;
  if (!absl::ConsumePrefix(&rest, "cuda")) {
    return absl::InvalidArgumentError(
        absl::StrCat("ctx.device: unknown device '", device, "' (auto, cpu, cuda, cuda:N)"));
  }
  int index = 0;
  if (!rest.empty() &&
      !(absl::ConsumePrefix(&rest, ":") && absl::SimpleAtoi(rest, &index) && index >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ctx.device: unknown device '", device, "' (auto, cpu, cuda, cuda:N)"));
  }
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        absl::StrCat("ctx.device: '", device, "' asked for, but no CUDA device is usable"));
  }
  if (index >= static_cast<int>(torch::cuda::device_count())) {
    return absl::InvalidArgumentError(absl::StrCat("ctx.device: '", device, "' but only ",
                                                   torch::cuda::device_count(),
                                                   " CUDA devices exist"));
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace mia::training
