// Bootstrap confidence intervals for AUC and TPR at FPR: resample the audit
// points with replacement (seeded), recompute, and take percentile intervals.
//
// Fast path: scores are sorted once; a resample is a vector of multiplicities
// per point, so each replicate costs O(n) instead of O(n log n).
// Plain functions; safe from any thread. BootstrapCi may start
// options.threads - 1 threads of its own and joins them before returning.
#ifndef MIA_CORE_METRICS_BOOTSTRAP_H_
#define MIA_CORE_METRICS_BOOTSTRAP_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace mia::metrics {

struct BootstrapOptions {
  int resamples = 1000;      // number of bootstrap replicates
  double confidence = 0.95;  // two-sided percentile interval level
  uint64_t seed = 0;         // replicates depend on the seed only, not on threads
  // Threads computing replicates (0: one per core). Replicate r is the same
  // whichever thread draws it, and they are collected in order of r, so the
  // result does not depend on this.
  int threads = 1;
  // Checked every 64 replicates: when it turns true, Cancelled.
  const std::atomic<bool>* cancel = nullptr;
};

struct Interval {
  double low = 0;
  double high = 0;
};

struct BootstrapResult {
  Interval auc;
  // One per alpha given; for an alpha unresolved by the sample size (see
  // TprAtFprs) the interval is still the percentile interval of the replicate
  // TPR at FPR <= alpha, and `tpr_resolved[k]` is false.
  std::vector<Interval> tpr_at_fpr;
  std::vector<bool> tpr_resolved;
  int resamples = 0;   // replicates used (those containing both classes)
  int degenerate = 0;  // replicates skipped: one class missing
};

// Replicate r draws n ranks uniformly with replacement from a generator seeded
// by (seed, r), rank u standing for the point at position u of the scores in
// decreasing order (ties by index); the same seed gives the same result on
// any machine.
//
// Interval rule: over the m replicates used, the q-quantile is the linear
// interpolation between order statistics v[0] <= ... <= v[m-1] at position
// h = (m - 1) q (numpy's default); low is q = (1 - confidence) / 2, high is
// q = (1 + confidence) / 2.
//
// Errors: InvalidArgument for inputs ComputeRoc rejects, resamples < 1,
// confidence outside (0, 1), or a negative or non-finite alpha;
// FailedPrecondition when every replicate misses a class (tiny samples).
absl::StatusOr<BootstrapResult> BootstrapCi(absl::Span<const double> scores,
                                            absl::Span<const uint8_t> members,
                                            absl::Span<const double> alphas,
                                            const BootstrapOptions& options);

// The bytes BootstrapCi holds at its peak for `points` scores, `resamples`
// replicates and `fprs` FPRs on `threads` threads (0: one per core): the sort
// order and label tables (17 bytes a point), each thread's counts (4 bytes a
// point), and the replicates' figures and their sorted copies (about 17 + 16 x
// fprs bytes a replicate). For memory estimates made before scoring starts.
uint64_t BootstrapPeakBytes(uint64_t points, int resamples, size_t fprs, int threads);

// Definitional version for tests: materializes every resample and recomputes
// ComputeRoc/Auc from scratch with the same draws. O(resamples * n log n).
absl::StatusOr<BootstrapResult> BootstrapCiNaive(absl::Span<const double> scores,
                                                 absl::Span<const uint8_t> members,
                                                 absl::Span<const double> alphas,
                                                 const BootstrapOptions& options);

}  // namespace mia::metrics

#endif  // MIA_CORE_METRICS_BOOTSTRAP_H_
