#include "core/metrics/roc.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/common/status_macros.h"

namespace mia::metrics {
namespace {

// Indices of `scores` ordered by decreasing score; equal scores end up adjacent,
// and their relative order does not matter to any caller (ties are grouped).
std::vector<size_t> OrderByDecreasingScore(absl::Span<const double> scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&scores](size_t a, size_t b) { return scores[a] > scores[b]; });
  return order;
}

}  // namespace

absl::Status ValidateScores(absl::Span<const double> scores, absl::Span<const uint8_t> members) {
  if (scores.size() != members.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("scores has ", scores.size(), " entries but members has ", members.size()));
  }
  int64_t positives = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    // The value itself is deliberately left out of the message.
    if (!std::isfinite(scores[i])) {
      return absl::InvalidArgumentError(absl::StrCat("score at index ", i, " is not finite"));
    }
    if (members[i] > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("membership label at index ", i, " is neither 0 nor 1"));
    }
    positives += members[i];
  }
  const int64_t n = static_cast<int64_t>(scores.size());
  if (positives == 0 || positives == n) {
    return absl::InvalidArgumentError(absl::StrCat("both members and non-members are needed; got ",
                                                   positives, " members and ", n - positives,
                                                   " non-members"));
  }
  return absl::OkStatus();
}

bool FprResolvable(double alpha, int64_t negatives) {
  if (!(alpha >= 0)) return false;  // negative or NaN
  if (alpha == 0) return true;
  if (negatives <= 0) return false;
  // 1.0 / negatives is correctly rounded, so alpha == 1/N given as a literal
  // (e.g. 0.001 with N = 1000) compares equal and counts as resolved.
  return alpha >= 1.0 / static_cast<double>(negatives);
}

absl::StatusOr<RocCurve> ComputeRoc(absl::Span<const double> scores,
                                    absl::Span<const uint8_t> members) {
  MIA_RETURN_IF_ERROR(ValidateScores(scores, members));
  const std::vector<size_t> order = OrderByDecreasingScore(scores);
  RocCurve roc;
  for (uint8_t m : members) roc.positives += m;
  roc.negatives = static_cast<int64_t>(scores.size()) - roc.positives;
  const double p = static_cast<double>(roc.positives);
  const double n = static_cast<double>(roc.negatives);

  roc.fpr.push_back(0);
  roc.tpr.push_back(0);
  roc.thresholds.push_back(std::numeric_limits<double>::infinity());
  int64_t tp = 0;
  int64_t fp = 0;
  size_t i = 0;
  while (i < order.size()) {
    const double threshold = scores[order[i]];
    // The whole tie group crosses the threshold at once.
    for (; i < order.size() && scores[order[i]] == threshold; ++i) {
      if (members[order[i]]) {
        ++tp;
      } else {
        ++fp;
      }
    }
    // Rates are always formed as count / total in double; the bootstrap fast
    // path forms them identically so both give bit-equal TPRs.
    roc.fpr.push_back(static_cast<double>(fp) / n);
    roc.tpr.push_back(static_cast<double>(tp) / p);
    roc.thresholds.push_back(threshold);
  }
  return roc;
}

absl::StatusOr<double> Auc(absl::Span<const double> scores, absl::Span<const uint8_t> members) {
  MIA_RETURN_IF_ERROR(ValidateScores(scores, members));
  const std::vector<size_t> order = OrderByDecreasingScore(scores);
  // Twice the Mann-Whitney U, kept integral so that ties (worth 1/2) are exact:
  // each non-member contributes 2 per member strictly above it and 1 per member
  // tied with it.
  int64_t twice_u = 0;
  int64_t tp_above = 0;
  int64_t positives = 0;
  size_t i = 0;
  while (i < order.size()) {
    const double threshold = scores[order[i]];
    int64_t group_pos = 0;
    int64_t group_neg = 0;
    for (; i < order.size() && scores[order[i]] == threshold; ++i) {
      if (members[order[i]]) {
        ++group_pos;
      } else {
        ++group_neg;
      }
    }
    twice_u += group_neg * (2 * tp_above + group_pos);
    tp_above += group_pos;
    positives += group_pos;
  }
  const int64_t negatives = static_cast<int64_t>(scores.size()) - positives;
  return static_cast<double>(twice_u) / static_cast<double>(2 * positives * negatives);
}

double AreaUnder(const RocCurve& roc) {
  const size_t k = std::min(roc.fpr.size(), roc.tpr.size());
  double area = 0;
  for (size_t i = 1; i < k; ++i) {
    area += (roc.fpr[i] - roc.fpr[i - 1]) * (roc.tpr[i] + roc.tpr[i - 1]) * 0.5;
  }
  return area;
}

std::vector<TprAtFpr> TprAtFprs(const RocCurve& roc, absl::Span<const double> alphas) {
  std::vector<TprAtFpr> out;
  out.reserve(alphas.size());
  const size_t k = std::min(roc.fpr.size(), roc.tpr.size());
  for (double alpha : alphas) {
    TprAtFpr entry;
    entry.fpr = alpha;
    entry.resolved = FprResolvable(alpha, roc.negatives);
    // FPR and TPR both rise along the curve, so the best point with FPR <= alpha
    // is the last such point.
    const auto end = roc.fpr.begin() + static_cast<std::ptrdiff_t>(k);
    const auto it = std::upper_bound(roc.fpr.begin(), end, alpha);
    if (it != roc.fpr.begin()) entry.tpr = roc.tpr[static_cast<size_t>(it - roc.fpr.begin()) - 1];
    out.push_back(entry);
  }
  return out;
}

RocCurve DownsampleLogFpr(const RocCurve& roc, int points, double min_fpr) {
  const size_t size = std::min({roc.fpr.size(), roc.tpr.size(), roc.thresholds.size()});
  const size_t budget = static_cast<size_t>(std::max(points, 2));
  if (size <= budget) return roc;
  if (!(min_fpr > 0 && min_fpr < 1)) min_fpr = 1e-5;

  std::vector<size_t> keep = {0, size - 1};
  const size_t grid = std::max<size_t>(budget - 2, 1);
  const auto begin = roc.fpr.begin();
  const auto end = roc.fpr.begin() + static_cast<std::ptrdiff_t>(size);
  const double log_min = std::log(min_fpr);
  for (size_t j = 0; j < grid; ++j) {
    // Log-spaced from min_fpr (j = 0) up to 1 (j = grid - 1).
    const double g =
        grid == 1
            ? 1.0
            : std::exp(log_min * (1.0 - static_cast<double>(j) / static_cast<double>(grid - 1)));
    const auto it = std::upper_bound(begin, end, g);
    if (it != begin) keep.push_back(static_cast<size_t>(it - begin) - 1);
  }
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());

  RocCurve out;
  out.positives = roc.positives;
  out.negatives = roc.negatives;
  out.fpr.reserve(keep.size());
  out.tpr.reserve(keep.size());
  out.thresholds.reserve(keep.size());
  for (size_t i : keep) {
    out.fpr.push_back(roc.fpr[i]);
    out.tpr.push_back(roc.tpr[i]);
    out.thresholds.push_back(roc.thresholds[i]);
  }
  return out;
}

}  // namespace mia::metrics
