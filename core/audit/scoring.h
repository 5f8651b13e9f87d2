// Scores a signals bundle with a list of attacks and computes every metric of
// ATTACKS.md for every target model: the torch-free end of the audit pipeline
// (compute signals -> audit), shared by `mia score` and, later, the service.
//
// Stateless; ScoreBundle may run concurrently on different bundles.
#ifndef MIA_CORE_AUDIT_SCORING_H_
#define MIA_CORE_AUDIT_SCORING_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/audit/bundle.h"
#include "core/audit/result.h"
#include "core/metrics/bootstrap.h"
#include "core/metrics/privacy_bound.h"

namespace mia::audit {

struct ScoringOptions {
  // Attack specs, e.g. {"rmia", "lira:variance=fixed"} (core/attacks/registry.h).
  std::vector<std::string> attacks = {"rmia", "lira"};
  // Target models; empty means the bundle's own list.
  std::vector<int> targets;
  // Softmax temperature for prob and logit_scaled from logits.
  double temperature = 1.0;
  // FPRs the TPR is reported at.
  std::vector<double> fprs;  // empty: metrics::DefaultFprs()
  // Bootstrap confidence intervals; resamples = 0 turns them off.
  metrics::BootstrapOptions bootstrap;
  // Epsilon lower bound (delta, beta, split); its seed is derived from `seed`.
  metrics::EpsilonOptions epsilon;
  // Seeds everything random in scoring (bootstrap, epsilon split).
  uint64_t seed = 0;
  // Checked between attacks and targets and inside the bootstrap: when it
  // turns true, ScoreBundle stops with Cancelled.
  const std::atomic<bool>* cancel = nullptr;
};

// Range audits (RaMIA, core/audit/ramia.h): the bundle's audit points are the
// points sampled from ranges, `size` consecutive points per range, none of
// them trained on by any model (the bundle's keep is all 0, so every
// reference is OUT for every point). Each attack's point scores become range
// scores by the trimmed mean (TrimmedMean), and every metric is computed on
// the ranges with their own membership.
struct RangeGroups {
  int size = 1;                  // points per range
  double trim = 0.2;             // TrimmedMean's fraction at each end
  std::vector<uint8_t> keep;     // [models * ranges]: 1 where the range holds a training point
  std::vector<int64_t> row_ids;  // [ranges]: dataset row each range was built around
  // Appended to each attack's name in the results ("rmia-offline@range").
  std::string name_suffix = "@range";
};

// Called after each stage with a short description (no data values).
using ProgressFn = std::function<void(const std::string& stage)>;

// Runs every attack against every target (the other models are its references),
// computes ROC, AUC, TPR at FPR, bootstrap intervals and the epsilon bound, and
// the mean and spread over targets. Fails with InvalidArgument when an attack's
// needs are not met (e.g. no population for RMIA) or when, after excluding
// unscorable points, a target has no member or no non-member left. With
// `ranges`, the results are those of the ranges (RangeGroups).
absl::StatusOr<AuditResult> ScoreBundle(const Bundle& bundle, const ScoringOptions& options,
                                        const ProgressFn& progress = nullptr,
                                        const RangeGroups* ranges = nullptr);

}  // namespace mia::audit

#endif  // MIA_CORE_AUDIT_SCORING_H_
