// Differential-privacy auditing in one training run (Steinke, Nasr, Jagielski
// 2023; ATTACKS.md, "DP auditing in one run"): m canaries, each included with
// probability 1/2; the auditor guesses IN for the k+ highest scores and OUT for
// the k- lowest, abstains on the rest, and turns "v of r guesses right" into an
// epsilon that holds at confidence 1 - beta. Torch-free plain functions; safe
// from any thread.
#ifndef MIA_CORE_METRICS_ONE_RUN_AUDIT_H_
#define MIA_CORE_METRICS_ONE_RUN_AUDIT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace mia::metrics {

// The audit's counts.
struct OneRunCounts {
  int64_t canaries = 0;  // m: canaries, each in the training set with probability 1/2
  int64_t guesses = 0;   // r = k+ + k-: canaries guessed (IN or OUT), r <= m
  int64_t correct = 0;   // v: right guesses, v <= r
};

struct OneRunOptions {
  double delta = 1e-5;  // the delta of the (epsilon, delta)-DP claim audited, in [0, 1)
  double beta = 0.05;   // error level: the bound holds with probability 1 - beta, in (0, 1)
};

// Largest canary count accepted: the counts stay exact in double, log Gamma
// keeps about 1e-6 relative precision in the binomial terms, and one p(eps)
// costs O(sqrt(r)) terms (O(r) at worst).
inline constexpr int64_t kMaxOneRunCanaries = 1000000000;

// The epsilon searched for lies in [0, kMaxOneRunEpsilon]; no int64 count can
// reach it (v = r needs r > e^100), so it is never the answer in practice.
inline constexpr double kMaxOneRunEpsilon = 100;

// OK, or InvalidArgument for 0 <= canaries <= kMaxOneRunCanaries,
// 0 <= guesses <= canaries, 0 <= correct <= guesses, delta in [0, 1), beta in
// (0, 1) broken. The message starts with the parameter's name ("canaries",
// "guesses", "correct", "delta", "beta"), which `mia one-run-bound` turns into
// its flag ("--correct: ...").
absl::Status ValidateOneRun(const OneRunCounts& counts, const OneRunOptions& options);

// The terms of the test at one epsilon, q = e^eps / (1 + e^eps):
//   tail  = P[Binomial(r, q) >= v],
//   alpha = max over i = 1..v of (1/i) sum_{j=1..i} P[Binomial(r, q) = v - j]
//           (0 when v = 0, and left 0 when delta = 0: p does not need it),
//   p     = min(1, tail + 2 m delta alpha).
struct OneRunTerms {
  double tail = 1;
  double alpha = 0;
  double p = 1;
};

// The terms at `epsilon` (>= 0). Binomial terms are anchored at the largest one
// in log space (LogGamma) and walked outward by their ratios, dropping only
// terms that cannot change the sums beyond 1e-17 relative (tail), or cannot
// raise the running average (alpha: past the mode the terms only fall, so once
// one is at most the average, no later average is larger). Errors: as
// ValidateOneRun, and InvalidArgument for an epsilon outside [0, kMaxOneRunEpsilon].
absl::StatusOr<OneRunTerms> OneRunTest(const OneRunCounts& counts, double epsilon,
                                       const OneRunOptions& options);

// The lower bound on epsilon: the largest eps in [0, kMaxOneRunEpsilon] with
// p(eps) < beta, by bisection to 1e-5 (the paper's search; it treats p as
// nondecreasing in eps). The value returned always has p < beta, and is within
// 1e-5 below the crossing. 0 when p(0) >= beta: no eps >= 0 passes, i.e. the
// guesses are no better than chance at this confidence (v <= r/2 always gives
// 0, as does r = 0). Errors: as ValidateOneRun.
absl::StatusOr<double> OneRunEpsilonLowerBound(const OneRunCounts& counts,
                                               const OneRunOptions& options);

// One guessing rule: IN for the k+ highest scores, OUT for the k- lowest.
struct OneRunGuessSplit {
  int64_t k_plus = 0;
  int64_t k_minus = 0;
};

// The grid `DefaultOneRunGrid` gives, in the incumbent's spirit: k+ = k- = k
// for k = floor(m/2 * f), f in {1/20, 1/10, 1/5, 1/2, 1} (5%, 10%, 20%, 50%,
// 100% of the canaries guessed), zeros and repeats dropped, increasing; empty
// when m < 2.
std::vector<OneRunGuessSplit> DefaultOneRunGrid(int64_t canaries);

struct OneRunGridEntry {
  OneRunGuessSplit split;
  int64_t guesses = 0;  // r = k+ + k-
  int64_t correct = 0;  // v
  double epsilon = 0;   // OneRunEpsilonLowerBound of (m, r, v)
};

struct OneRunGridResult {
  std::vector<OneRunGridEntry> entries;  // one per split, in the grid's order
  size_t best = 0;                       // entry with the largest epsilon (the first on ties)
  // Says that the largest bound over a grid is optimistic unless the grid was
  // fixed before looking at the scores (always set, also for one split).
  std::string note;
};

// Guesses for each split of `grid` and bounds each. scores[i] is canary i's
// score (higher = more likely IN), included[i] != 0 when it was trained on;
// m = scores.size(). Canaries are ordered by score, higher first, equal
// scores by index, lower index first; IN goes to the first k+ of that order and
// OUT to the last k- (so among equal scores, the lower index is guessed IN
// first and the higher index OUT first). Errors: InvalidArgument for sizes that
// differ, a NaN score, an empty grid, a negative k, k+ + k- > m, and as
// ValidateOneRun.
absl::StatusOr<OneRunGridResult> OneRunAuditGrid(absl::Span<const double> scores,
                                                 absl::Span<const uint8_t> included,
                                                 absl::Span<const OneRunGuessSplit> grid,
                                                 const OneRunOptions& options);

}  // namespace mia::metrics

#endif  // MIA_CORE_METRICS_ONE_RUN_AUDIT_H_
