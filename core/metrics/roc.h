// ROC analysis of membership scores: exact ROC, AUC with ties, TPR at fixed FPR
// with the resolution rule, and a log-spaced downsampling for plots and APIs.
// Definitions: ../shared/spec/ATTACKS.md, "Metrics". Members are the positive
// class and a higher score means "more likely a member".
//
// Plain functions on arrays; no state, safe from any thread.
#ifndef MIA_CORE_METRICS_ROC_H_
#define MIA_CORE_METRICS_ROC_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace mia::metrics {

// The FPRs at which TPR is reported by default.
inline const std::vector<double>& DefaultFprs() {
  static const std::vector<double> kFprs = {0.1, 0.01, 0.001, 0.0001, 0.00001, 0.0};
  return kFprs;
}

// Operating points of the rule "member iff score >= threshold", one per distinct
// score, in order of decreasing threshold, starting at (0, 0) with threshold
// +infinity and ending at (1, 1).
struct RocCurve {
  std::vector<double> fpr;
  std::vector<double> tpr;
  std::vector<double> thresholds;
  int64_t positives = 0;  // members
  int64_t negatives = 0;  // non-members
};

// Scores must be finite and `members` (0 or 1) the same length; both classes must
// be present. Errors are InvalidArgument naming the first bad index.
absl::StatusOr<RocCurve> ComputeRoc(absl::Span<const double> scores,
                                    absl::Span<const uint8_t> members);

// The input checks of ComputeRoc, shared by the bootstrap and the privacy bound.
// Messages name indices and counts only, never score values (which may be
// derived from private data).
absl::Status ValidateScores(absl::Span<const double> scores, absl::Span<const uint8_t> members);

// Whether TPR at FPR `alpha` can be resolved with `negatives` non-members:
// alpha == 0 or alpha >= 1 / negatives. Negative or NaN alpha never is.
bool FprResolvable(double alpha, int64_t negatives);

// Area under the ROC: Mann-Whitney U / (members x non-members), a member tied with
// a non-member counting 1/2. O(n log n).
absl::StatusOr<double> Auc(absl::Span<const double> scores, absl::Span<const uint8_t> members);

// Trapezoidal area under a computed curve; equals Auc() on the same data.
double AreaUnder(const RocCurve& roc);

struct TprAtFpr {
  double fpr = 0;         // the requested alpha
  bool resolved = false;  // false when 0 < alpha < 1 / negatives
  // Largest TPR among points with FPR <= alpha (0 when there is none). Filled
  // even when unresolved (the bootstrap needs it per replicate) but then it is
  // not a figure to report.
  double tpr = 0;
};

// One entry per alpha. alpha = 0 is always resolvable: it is the TPR reached
// with no false positive at all. 0 < alpha < 1/negatives cannot be resolved by
// this many non-members and is reported unresolved rather than as a number.
std::vector<TprAtFpr> TprAtFprs(const RocCurve& roc, absl::Span<const double> alphas);

// At most about `points` operating points of `roc` on a log-spaced FPR grid from
// min_fpr to 1, keeping for each grid FPR the best TPR reachable at or below it,
// plus the exact first and last points, so the low-FPR region survives.
// The result is a subsequence of `roc` (thresholds kept), hence still monotone;
// `roc` itself is returned when it already has at most max(points, 2) points.
// A min_fpr outside (0, 1) is replaced by 1e-5.
RocCurve DownsampleLogFpr(const RocCurve& roc, int points, double min_fpr = 1e-5);

}  // namespace mia::metrics

#endif  // MIA_CORE_METRICS_ROC_H_
