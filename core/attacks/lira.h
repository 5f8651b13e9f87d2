// LiRA (Carlini et al. 2022) on the logit-scaled signal phi, online and
// offline, exactly as in ATTACKS.md. Plain functions; safe from any thread.
#ifndef MIA_CORE_ATTACKS_LIRA_H_
#define MIA_CORE_ATTACKS_LIRA_H_

#include "absl/status/statusor.h"
#include "core/attacks/attack.h"

namespace mia::attacks {

struct LiraOptions {
  enum class Variance {
    kAuto,        // fixed when fewer than kFixedVarianceBelow references on a side
    kFixed,       // one standard deviation per side, pooled over all points
    kPerExample,  // each point's own IN / OUT standard deviation
  };
  enum class Center { kMean, kMedian };

  bool online = true;
  Variance variance = Variance::kAuto;
  Center center = Center::kMean;
};

// Auto variance switches to per-example at this many references per side.
inline constexpr int kFixedVarianceBelow = 32;
// Online LiRA warns below this many references on a side.
inline constexpr int kFewReferences = 4;
// Standard deviations are floored here so that a side whose references agree
// exactly does not divide by zero. (A side with a single reference has no
// per-example spread: it uses the side's pooled standard deviation.)
inline constexpr double kMinStd = 1e-30;

// online: log N(phi_t; mu_in, s_in^2) - log N(phi_t; mu_out, s_out^2);
// offline: (phi_t - mu_out) / s_out. Per-query scores are averaged. Points
// without an OUT reference (online: or without an IN reference) are excluded.
// `chosen` reports {"fixed_variance": 0 or 1}.
absl::StatusOr<AttackOutput> LiraAttack(const AttackInput& input, const LiraOptions& options);

}  // namespace mia::attacks

#endif  // MIA_CORE_ATTACKS_LIRA_H_
