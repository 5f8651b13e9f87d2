// Dataset usage cardinality inference (DUCI, Tong et al. 2025): the fraction
// of a candidate dataset X that a target model trained on, estimated from a
// membership attack debiased on reference models. Definitions:
// ../shared/spec/ATTACKS.md, "Dataset usage"; the game that trains targets on
// known fractions is core/pipeline/duci_game.cc; docs/duci.md.
//
// Torch-free plain functions on arrays; safe from any thread.
#ifndef MIA_CORE_AUDIT_DUCI_H_
#define MIA_CORE_AUDIT_DUCI_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/audit/bundle.h"
#include "core/audit/result.h"

namespace mia::audit {

// A threshold on attack scores (member when score >= threshold) and its
// rates on the pairs it was chosen on.
struct DuciThreshold {
  double threshold = 0;
  double tpr = 0;
  double fpr = 0;
  int64_t members = 0;      // pairs with membership 1 (NaN scores left out)
  int64_t non_members = 0;  // pairs with membership 0
};

// The threshold among the distinct scores that maximises TPR - FPR over the
// (score, membership) pairs; on a tie the highest such score. NaN scores are
// left out. InvalidArgument when no member or no non-member is left. The
// caller decides what TPR - FPR <= 0 (no signal) means.
absl::StatusOr<DuciThreshold> ChooseDuciThreshold(absl::Span<const double> scores,
                                                  absl::Span<const uint8_t> membership);

// p_hat = mean_i (pred_i - FPR) / (TPR - FPR) over the scored (non-NaN)
// points of X, pred_i = score_i >= threshold; unclipped. NaN when TPR <= FPR
// or no point is scored. `predicted` and `scored`, when given, receive the
// counts.
double DuciEstimate(absl::Span<const double> scores, const DuciThreshold& threshold,
                    int64_t* predicted = nullptr, int64_t* scored = nullptr);

struct DuciOptions {
  std::vector<std::string> attacks;  // attack specs (core/attacks/registry.h)
  double temperature = 1.0;          // as ScoringOptions::temperature
  std::vector<int> targets;          // models whose fraction is estimated
  // Models the thresholds are chosen on: each is attacked with the other
  // references as its references, and every target with all of them. Their
  // memberships on X (the bundle's keep) must be known; none is a target.
  std::vector<int> references;
  std::vector<double> true_fractions;  // per target (NaN: unknown); empty: all unknown
  uint64_t seed = 0;                   // the order of each point's references
  const std::atomic<bool>* cancel = nullptr;
  int threads = 0;  // 0: every core
};

// Runs every attack for DUCI on the bundle, whose audit points are X.
// InvalidArgument when an attack's needs are not met (population,
// references) or the references leave no member or no non-member to choose a
// threshold on; an attack whose best threshold has TPR <= FPR (no signal)
// gets NaN estimates and a warning, not an error.
absl::StatusOr<DuciResult> RunDuci(const Bundle& bundle, const DuciOptions& options);

}  // namespace mia::audit

#endif  // MIA_CORE_AUDIT_DUCI_H_
