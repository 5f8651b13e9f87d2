#include "core/metrics/rdp_accountant.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/metrics/privacy_bound.h"

namespace mia::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kMaxSingleOrder = 65536;
// NoiseMultiplierForEpsilon looks for sigma up to this; a target that needs
// more is as good as unreachable (and within a hair of the conversion's floor).
constexpr double kMaxNoiseMultiplier = 1e8;

bool Finite(double x) { return std::isfinite(x); }

// log(binom(n, k)) for 0 <= k <= n, from a table of log n! = LogGamma(n + 1)
// (privacy_bound.h's, not std::lgamma: glibc's writes the global `signgam`, a
// data race when several threads account at once).
class LogBinomials {
 public:
  explicit LogBinomials(int n) : log_factorial_(static_cast<size_t>(n) + 1, 0.0) {
    for (int i = 2; i <= n; ++i) log_factorial_[i] = LogGamma(i + 1.0);
  }
  double operator()(int n, int k) const {
    return log_factorial_[n] - log_factorial_[k] - log_factorial_[n - k];
  }

 private:
  std::vector<double> log_factorial_;
};

// log(A_a), inputs already checked (q in [0, 1], sigma > 0, a >= 2). Each
// term's log is log binom(a, k) + (a - k) log(1 - q) + k log q + (k^2 - k) /
// (2 sigma^2); a factor raised to the power 0 is left out (it is 1 even when
// its log is -infinity), and terms with a zero factor are skipped.
double LogA(double q, double sigma, int a, const LogBinomials& log_binom) {
  if (q == 0) return 0;  // only k = 0 remains: (1 - 0)^a = 1
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);               // -infinity at q = 1
  const double inv_two_var = 1 / (2 * sigma * sigma);  // may be +infinity for tiny sigma
  std::vector<double> terms;
  terms.reserve(static_cast<size_t>(a) + 1);
  for (int k = 0; k <= a; ++k) {
    if (q == 1 && k < a) continue;  // (1 - q)^(a - k) = 0
    const double kk = static_cast<double>(k);
    double t = log_binom(a, k) + kk * log_q;
    if (k < a) t += (a - kk) * log_1mq;
    if (k >= 2) t += (kk * kk - kk) * inv_two_var;  // k = 0, 1: exponent 0
    terms.push_back(t);
  }
  // log-sum-exp: the largest term out front, log1p of the rest relative to it.
  const auto largest = std::max_element(terms.begin(), terms.end());
  const double m = *largest;
  if (!Finite(m)) return m;  // +infinity: some exponent overflowed
  double rest = 0;
  for (auto it = terms.begin(); it != terms.end(); ++it) {
    if (it != largest) rest += std::exp(*it - m);
  }
  return m + std::log1p(rest);
}

absl::Status CheckRun(const DpSgdAccounting& run, bool check_sigma) {
  if (!(run.sample_rate > 0 && run.sample_rate <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample_rate: must be in (0, 1], got ", run.sample_rate));
  }
  if (check_sigma && !(run.noise_multiplier > 0 && Finite(run.noise_multiplier))) {
    return absl::InvalidArgumentError(
        absl::StrCat("noise_multiplier: must be finite and > 0, got ", run.noise_multiplier));
  }
  if (run.steps < 1) {
    return absl::InvalidArgumentError(absl::StrCat("steps: must be >= 1, got ", run.steps));
  }
  if (!(run.delta > 0 && run.delta < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("delta: must be in (0, 1), got ", run.delta));
  }
  return absl::OkStatus();
}

// The conversion's term of order a, added to T rdp(a).
double ConversionTerm(RdpConversion conversion, int a, double log_delta) {
  const double am1 = a - 1.0;
  if (conversion == RdpConversion::kClassic) return -log_delta / am1;
  return std::log(am1 / a) - (log_delta + std::log(static_cast<double>(a))) / am1;
}

// ComputeDpSgdEpsilon on checked input.
DpSgdEpsilon EpsilonOf(const DpSgdAccounting& run, const LogBinomials& log_binom) {
  const double log_delta = std::log(run.delta);
  const double steps = static_cast<double>(run.steps);
  DpSgdEpsilon best{kInf, kRdpMinOrder};
  for (int a = kRdpMinOrder; a <= kRdpMaxOrder; ++a) {
    const double rdp = LogA(run.sample_rate, run.noise_multiplier, a, log_binom) / (a - 1.0);
    const double eps = steps * rdp + ConversionTerm(run.conversion, a, log_delta);
    if (eps < best.epsilon) best = {eps, a};
  }
  best.epsilon = std::max(best.epsilon, 0.0);
  return best;
}

}  // namespace

absl::string_view RdpConversionName(RdpConversion conversion) {
  return conversion == RdpConversion::kClassic ? "classic" : "spec";
}

absl::StatusOr<RdpConversion> ParseRdpConversion(absl::string_view name) {
  if (name == "spec") return RdpConversion::kSpec;
  if (name == "classic") return RdpConversion::kClassic;
  return absl::InvalidArgumentError(
      absl::StrCat("conversion: '", name, "' is neither 'spec' nor 'classic'"));
}

absl::StatusOr<double> SubsampledGaussianRdp(double q, double sigma, int order) {
  if (!(q >= 0 && q <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("q: must be in [0, 1], got ", q));
  }
  if (!(sigma > 0 && Finite(sigma))) {
    return absl::InvalidArgumentError(absl::StrCat("sigma: must be finite and > 0, got ", sigma));
  }
  if (order < kRdpMinOrder || order > kMaxSingleOrder) {
    return absl::InvalidArgumentError(
        absl::StrCat("order: must be in [2, ", kMaxSingleOrder, "], got ", order));
  }
  return LogA(q, sigma, order, LogBinomials(order)) / (order - 1.0);
}

absl::StatusOr<DpSgdEpsilon> ComputeDpSgdEpsilon(const DpSgdAccounting& run) {
  if (absl::Status s = CheckRun(run, /*check_sigma=*/true); !s.ok()) return s;
  return EpsilonOf(run, LogBinomials(kRdpMaxOrder));
}

absl::StatusOr<int64_t> StepsForEpochs(double epochs, double q) {
  if (!(epochs > 0 && Finite(epochs))) {
    return absl::InvalidArgumentError(absl::StrCat("epochs: must be finite and > 0, got ", epochs));
  }
  if (!(q > 0 && q <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("sample_rate: must be in (0, 1], got ", q));
  }
  const double x = epochs / q;
  constexpr double kMaxSteps = 9007199254740992.0;  // 2^53
  if (!(x <= kMaxSteps)) {
    return absl::InvalidArgumentError(absl::StrCat("epochs: ", epochs, " epochs at sample rate ", q,
                                                   " are more than 2^53 steps"));
  }
  const double nearest = std::round(x);
  const double steps = std::fabs(x - nearest) <= 1e-9 * x ? nearest : std::ceil(x);
  return std::max<int64_t>(1, static_cast<int64_t>(steps));
}

absl::StatusOr<double> NoiseMultiplierForEpsilon(const DpSgdAccounting& run,
                                                 double target_epsilon) {
  if (absl::Status s = CheckRun(run, /*check_sigma=*/false); !s.ok()) return s;
  if (!(target_epsilon > 0 && Finite(target_epsilon))) {
    return absl::InvalidArgumentError(
        absl::StrCat("target_epsilon: must be finite and > 0, got ", target_epsilon));
  }
  // As sigma grows every rdp(a) falls to 0 and eps to the conversion's floor.
  const double log_delta = std::log(run.delta);
  double floor = kInf;
  for (int a = kRdpMinOrder; a <= kRdpMaxOrder; ++a) {
    floor = std::min(floor, ConversionTerm(run.conversion, a, log_delta));
  }
  if (target_epsilon <= floor) {
    return absl::OutOfRangeError(
        absl::StrCat("target_epsilon: ", target_epsilon, " is unreachable at delta ", run.delta,
                     " with the ", RdpConversionName(run.conversion),
                     " conversion: no noise brings epsilon to ", floor, " or below"));
  }
  const LogBinomials log_binom(kRdpMaxOrder);
  DpSgdAccounting probe = run;
  auto eps_at = [&](double sigma) {
    probe.noise_multiplier = sigma;
    return EpsilonOf(probe, log_binom).epsilon;
  };
  // Bracket [lo, hi] with eps(lo) > target >= eps(hi). eps grows without bound
  // as sigma falls to 0 (for q < 1 the k = a term alone does; for q = 1 rdp is
  // a / (2 sigma^2)), so halving finds lo; doubling finds hi up to the cap.
  double lo = 1, hi = 1;
  if (eps_at(1) <= target_epsilon) {
    while (eps_at(lo) <= target_epsilon) {
      hi = lo;
      lo /= 2;
      if (lo < 1e-300) return hi;  // any noise at all will do: not reached in practice
    }
  } else {
    while (eps_at(hi) > target_epsilon) {
      lo = hi;
      hi *= 2;
      if (hi > kMaxNoiseMultiplier) {
        return absl::OutOfRangeError(
            absl::StrCat("target_epsilon: ", target_epsilon, " at delta ", run.delta,
                         " needs a noise multiplier "
                         "above ",
                         kMaxNoiseMultiplier, " (the ", RdpConversionName(run.conversion),
                         " conversion's floor is ", floor, ")"));
      }
    }
  }
  while (hi - lo > kNoiseMultiplierTolerance * hi) {
    const double mid = lo + (hi - lo) / 2;
    if (eps_at(mid) > target_epsilon) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return hi;
}

}  // namespace mia::metrics
