// The RDP accountant of DP-SGD (ATTACKS.md, "DP-SGD and its accountant"): the
// Renyi-DP of the Poisson-subsampled Gaussian mechanism at integer orders
// (Mironov, Talwar, Zhang 2019), composed over the training steps and turned
// into an (epsilon, delta) guarantee. This is the upper bound an audit of a
// DP-SGD model reports beside its empirical lower bounds. Torch-free plain
// functions; safe from any thread.
#ifndef MIA_CORE_METRICS_RDP_ACCOUNTANT_H_
#define MIA_CORE_METRICS_RDP_ACCOUNTANT_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mia::metrics {

// The orders the conversions minimize over: a = kRdpMinOrder..kRdpMaxOrder.
inline constexpr int kRdpMinOrder = 2;
inline constexpr int kRdpMaxOrder = 256;

// How T steps' RDP becomes epsilon at delta, minimized over the orders:
enum class RdpConversion {
  // The spec's (Balle et al. 2020, Theorem 21):
  //   eps(a) = T rdp(a) + log((a - 1) / a) - (log delta + log a) / (a - 1).
  kSpec,
  // The classic one (Mironov 2017, Proposition 3; TF-Privacy's and Opacus's
  // older default): eps(a) = T rdp(a) - log(delta) / (a - 1). Never below kSpec's.
  kClassic,
};

// "spec" or "classic".
absl::string_view RdpConversionName(RdpConversion conversion);
// The inverse of RdpConversionName; InvalidArgument naming the value otherwise.
absl::StatusOr<RdpConversion> ParseRdpConversion(absl::string_view name);

// RDP at integer order `order` of one step of the Poisson-subsampled Gaussian
// mechanism with sampling rate q and noise multiplier sigma (noise standard
// deviation over the L2 sensitivity): log(A_a) / (a - 1) with
//   A_a = sum_{k=0..a} binom(a, k) (1 - q)^(a - k) q^k exp((k^2 - k) / (2 sigma^2)),
// summed in log space (log-sum-exp of the terms' logs), so that a tiny sigma
// or a large order gives a large finite value, not an overflow. q = 0 gives 0
// (no step touches the data); q = 1 gives the plain Gaussian mechanism's
// a / (2 sigma^2). Accuracy: about 1e-16 absolute in log(A_a) (the terms are
// summed as numbers near 1), so for A_a - 1 tiny (small q, large sigma) the
// relative error grows to about 1e-16 / (A_a - 1).
// Errors: InvalidArgument, naming the parameter, for q outside [0, 1], sigma
// not finite and > 0, order outside [2, 65536].
absl::StatusOr<double> SubsampledGaussianRdp(double q, double sigma, int order);

// One DP-SGD training run, as the accountant sees it.
struct DpSgdAccounting {
  double sample_rate = 0;       // q = expected batch size / dataset size, in (0, 1]
  double noise_multiplier = 0;  // sigma: noise standard deviation / clipping norm, > 0
  int64_t steps = 0;            // T >= 1
  double delta = 1e-5;          // of the (epsilon, delta) guarantee, in (0, 1)
  RdpConversion conversion = RdpConversion::kSpec;
};

struct DpSgdEpsilon {
  // min over the orders of eps(a) (see RdpConversion), floored at 0 (an
  // (eps, delta) guarantee with eps < 0 is the one with eps = 0); +infinity
  // when every order's RDP overflows (sigma absurdly small).
  double epsilon = 0;
  int order = 0;  // the order a attaining the minimum (the smallest one on ties)
};

// Epsilon of `run` at its delta: T rdp(a) converted per order a = 2..256.
// Errors: InvalidArgument naming the field for sample_rate outside (0, 1],
// noise_multiplier not finite and > 0, steps < 1, delta outside (0, 1).
absl::StatusOr<DpSgdEpsilon> ComputeDpSgdEpsilon(const DpSgdAccounting& run);

// Steps of `epochs` passes at sampling rate q: ceil(epochs / q) (TF-Privacy's
// ceil(epochs * n / batch_size)), except that a quotient within 1e-9 relative of
// an integer counts as that integer, so that 1 / 0.01 is 100 steps whatever
// the rounding of 0.01. Errors: InvalidArgument for epochs not finite and > 0,
// q outside (0, 1], or more than 2^53 steps.
absl::StatusOr<int64_t> StepsForEpochs(double epochs, double q);

// The relative tolerance of NoiseMultiplierForEpsilon's bisection in sigma.
inline constexpr double kNoiseMultiplierTolerance = 1e-9;

// The smallest noise multiplier (to kNoiseMultiplierTolerance relative) at
// which `run` (its noise_multiplier ignored) reaches at most target_epsilon:
// a bisection on sigma, which eps decreases in, returning the upper end of the
// final bracket, so that its epsilon is never above the target.
// Errors: InvalidArgument naming the field as ComputeDpSgdEpsilon (other than
// noise_multiplier) and for target_epsilon not finite and > 0; OutOfRange when
// the target is unreachable: at or below the limit of eps as sigma grows (the
// conversion's term alone, min over a of log((a - 1) / a) - (log delta + log a)
// / (a - 1) or -log(delta) / (a - 1)), or reached only by a sigma above 1e8.
absl::StatusOr<double> NoiseMultiplierForEpsilon(const DpSgdAccounting& run, double target_epsilon);

}  // namespace mia::metrics

#endif  // MIA_CORE_METRICS_RDP_ACCOUNTANT_H_
