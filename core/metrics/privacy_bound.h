// Empirical differential-privacy lower bound from a membership attack:
// Clopper-Pearson upper bounds on FPR and FNR at a threshold chosen on data
// disjoint from the data the bound is computed on (ATTACKS.md, "Metrics").
// Plain functions; safe from any thread.
#ifndef MIA_CORE_METRICS_PRIVACY_BOUND_H_
#define MIA_CORE_METRICS_PRIVACY_BOUND_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace mia::metrics {

// log Gamma(x) for x > 0 (Stirling's series, about 1e-16 relative); unlike
// std::lgamma it writes no global, so it is safe from any thread.
double LogGamma(double x);

// Regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1].
double RegularizedIncompleteBeta(double a, double b, double x);

// One-sided Clopper-Pearson upper bound on a binomial proportion at confidence
// 1 - alpha, from k successes in n trials: 1 when k == n, else the (1 - alpha)
// quantile of Beta(k + 1, n - k).
double ClopperPearsonUpper(int64_t k, int64_t n, double alpha);

struct EpsilonOptions {
  double delta = 1e-5;              // the delta of (epsilon, delta)-DP
  double beta = 0.05;               // total error level, split evenly over FPR and FNR
  double selection_fraction = 0.5;  // share of points used to choose the threshold
  uint64_t seed = 0;                // seeds the (stratified) selection/evaluation split
};

struct EpsilonBound {
  double epsilon = 0;    // the lower bound (0 when no threshold gives a positive bound)
  double delta = 0;      // the delta it holds for (EpsilonOptions::delta)
  double threshold = 0;  // member iff score >= threshold, chosen on the selection split
  double fpr_upper = 1;  // Clopper-Pearson upper bounds on the evaluation split
  double fnr_upper = 1;
  int64_t selection_points = 0;
  int64_t evaluation_points = 0;
};

// Splits the points (stratified by membership, seeded), picks on the selection
// split the threshold maximizing the same bound computed there, then evaluates
// eps >= max(log((1 - delta - FPR+) / FNR+), log((1 - delta - FNR+) / FPR+))
// on the evaluation split with that threshold, floored at 0.
// FPR = false positives / non-members, FNR = false negatives / members;
// FPR+ and FNR+ are one-sided Clopper-Pearson upper bounds at level beta / 2
// each. A term whose numerator is <= 0 gives no bound. Candidate thresholds
// are +infinity (nobody flagged) and every distinct selection score; the
// threshold is +infinity only when no finite one does strictly better.
// Errors: InvalidArgument for inputs ComputeRoc rejects, fewer than 2 members
// or 2 non-members, delta outside [0, 1), beta or selection_fraction outside
// (0, 1).
absl::StatusOr<EpsilonBound> EpsilonLowerBound(absl::Span<const double> scores,
                                               absl::Span<const uint8_t> members,
                                               const EpsilonOptions& options);

// The stratified selection/evaluation split EpsilonLowerBound makes:
// selection[i] = 1 for the points that choose the threshold. Each class is cut
// at `fraction` on its own seeded stream (at least one point per side where the
// class has two). An audit computes it once per target over all its points, so
// that every attack is bounded on the same split.
std::vector<uint8_t> StratifiedSelection(absl::Span<const uint8_t> members, double fraction,
                                         uint64_t seed);

// EpsilonLowerBound on a split given by the caller (selection as above, one
// entry per score). InvalidArgument also when a side lacks a member or a
// non-member.
absl::StatusOr<EpsilonBound> EpsilonLowerBoundOnSplit(absl::Span<const double> scores,
                                                      absl::Span<const uint8_t> members,
                                                      absl::Span<const uint8_t> selection,
                                                      const EpsilonOptions& options);

// The threshold EpsilonLowerBound picks on its selection split: among +infinity
// and every distinct score, one maximizing the bound (unfloored) on these
// points; which one on ties is deterministic but unspecified. Inputs as for
// ComputeRoc (not re-checked here), beta in (0, 1). O(n log n) plus
// Clopper-Pearson bounds only where they can matter. Exposed for tests.
double ChooseEpsilonThreshold(absl::Span<const double> scores, absl::Span<const uint8_t> members,
                              double delta, double beta);

// The bound at one threshold on the given points (no split), floored at 0;
// fpr_upper / fnr_upper (may be null) receive FPR+ and FNR+. Exposed for tests.
// Invalid input (see ComputeRoc; beta outside (0, 1); delta outside [0, 1))
// gives 0 with both upper bounds 1.
double EpsilonAtThreshold(absl::Span<const double> scores, absl::Span<const uint8_t> members,
                          double threshold, double delta, double beta, double* fpr_upper,
                          double* fnr_upper);

}  // namespace mia::metrics

#endif  // MIA_CORE_METRICS_PRIVACY_BOUND_H_
