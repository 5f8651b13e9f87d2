// Mixed precision for train.precision: bf16 (TrainRecipe::precision): while
// an AutocastGuard lives, LibTorch's autocast runs matrix products and
// convolutions on `device` in bfloat16 and the rest (losses, reductions,
// normalization) in float32; weights, gradients and optimizer state stay
// float32. bfloat16 has float32's exponent range, so no loss scaling is
// needed (unlike float16).
//
// The autocast switches are thread-local, so training lanes do not disturb
// each other. LibTorch 2.4 replaced the per-device functions with ones taking
// the device type; both are handled here.
// LibTorch header: include only from core/training.
#ifndef MIA_CORE_TRAINING_AUTOCAST_H_
#define MIA_CORE_TRAINING_AUTOCAST_H_

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

namespace mia::training {

class AutocastGuard {
 public:
  // Does nothing when !enabled.
  AutocastGuard(const torch::Device& device, bool enabled)
      : enabled_(enabled), type_(device.is_cuda() ? at::kCUDA : at::kCPU) {
    if (!enabled_) return;
    previous_enabled_ = IsEnabled(type_);
    previous_dtype_ = Dtype(type_);
    Set(type_, true, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    // The cast weights are cached for the guard's life only.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    Set(type_, previous_enabled_, previous_dtype_);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  static bool IsEnabled(at::DeviceType t) { return at::autocast::is_autocast_enabled(t); }
  static at::ScalarType Dtype(at::DeviceType t) { return at::autocast::get_autocast_dtype(t); }
  static void Set(at::DeviceType t, bool on, at::ScalarType dtype) {
    at::autocast::set_autocast_dtype(t, dtype);
    at::autocast::set_autocast_enabled(t, on);
  }
#else
  static bool IsEnabled(at::DeviceType t) {
    return t == at::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
  }
  static at::ScalarType Dtype(at::DeviceType t) {
    return t == at::kCUDA ? at::autocast::get_autocast_gpu_dtype()
                          : at::autocast::get_autocast_cpu_dtype();
  }
  static void Set(at::DeviceType t, bool on, at::ScalarType dtype) {
    if (t == at::kCUDA) {
      at::autocast::set_autocast_gpu_dtype(dtype);
      at::autocast::set_enabled(on);
    } else {
      at::autocast::set_autocast_cpu_dtype(dtype);
      at::autocast::set_cpu_enabled(on);
    }
  }
#endif

  bool enabled_;
  at::DeviceType type_;
  bool previous_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_AUTOCAST_H_
