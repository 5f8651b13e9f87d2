#include "core/metrics/one_run_audit.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/common/status_macros.h"
#include "core/metrics/privacy_bound.h"

namespace mia::metrics {
namespace {

// A walk stops once the terms left (each at most the last one added, the walk
// being past the mode) cannot change the sum by more than this, relative.
constexpr double kNegligible = 1e-17;
constexpr double kBisectionWidth = 1e-5;

// Bin(r, q) at q = e^eps / (1 + e^eps), with what the walks need.
struct Binomial {
  Binomial(int64_t trials, double eps)
      : r(trials),
        exp_eps(std::exp(eps)),
        log_q(-std::log1p(std::exp(-eps))),
        log_1mq(-eps + log_q) {  // 1 - q = e^-eps q
    const double q = 1 / (1 + std::exp(-eps));
    const double rd = static_cast<double>(r);
    mode = std::clamp(static_cast<int64_t>(std::floor((rd + 1) * q)), int64_t{0}, r);
  }
  double LogPmf(int64_t k) const {
    const double rd = static_cast<double>(r), kd = static_cast<double>(k);
    return LogGamma(rd + 1) - LogGamma(kd + 1) - LogGamma(rd - kd + 1) + kd * log_q +
           (rd - kd) * log_1mq;
  }
  // P[k + 1] / P[k] and P[k - 1] / P[k].
  double Up(int64_t k) const {
    return static_cast<double>(r - k) / static_cast<double>(k + 1) * exp_eps;
  }
  double Down(int64_t k) const {
    return static_cast<double>(k) / static_cast<double>(r - k + 1) / exp_eps;
  }

  int64_t r;
  double exp_eps;
  double log_q;
  double log_1mq;
  int64_t mode;  // floor((r + 1) q): the largest term
};

// P[Bin >= v], from the largest term in [v, r] outward both ways.
double Tail(const Binomial& b, int64_t v) {
  if (v <= 0) return 1;
  const int64_t peak = std::clamp(b.mode, v, b.r);
  double sum = 1;  // in units of P[peak]
  double w = 1;
  for (int64_t k = peak; k < b.r; ++k) {
    const double ratio = b.Up(k);
    w *= ratio;
    sum += w;
    if (w == 0) break;
    if (ratio <= 1 && w * static_cast<double>(b.r - k - 1) <= sum * kNegligible) break;
  }
  w = 1;
  for (int64_t k = peak; k > v; --k) {
    const double ratio = b.Down(k);
    w *= ratio;
    sum += w;
    if (w == 0) break;
    if (ratio <= 1 && w * static_cast<double>(k - 1 - v) <= sum * kNegligible) break;
  }
  return std::min(1.0, std::exp(b.LogPmf(peak)) * sum);
}

// max over i = 1..v of (1/i) sum_{j=1..i} P[v - j]. Between v - 1 and the mode
// (when the mode is lower) each term going down is larger than those before,
// so the averages grow: the first candidate is the whole stretch down to the
// mode. Below the mode the terms fall, so the first one at most the running
// average ends the search.
double Alpha(const Binomial& b, int64_t v) {
  if (v <= 0) return 0;
  const int64_t peak = std::clamp(b.mode, int64_t{0}, v - 1);
  double sum = 1;  // P[peak] .. P[v - 1], in units of P[peak]
  double w = 1;
  for (int64_t k = peak; k < v - 1; ++k) {
    const double ratio = b.Up(k);
    w *= ratio;
    sum += w;
    if (w == 0) break;
    if (ratio <= 1 && w * static_cast<double>(v - 2 - k) <= sum * kNegligible) break;
  }
  double count = static_cast<double>(v - peak);
  double best = sum / count;
  w = 1;
  for (int64_t k = peak; k > 0; --k) {
    const double ratio = b.Down(k);
    w *= ratio;
    if (ratio <= 1 && w <= sum / count) break;
    sum += w;
    count += 1;
    best = std::max(best, sum / count);
  }
  return std::exp(b.LogPmf(peak)) * best;
}

OneRunTerms Terms(const OneRunCounts& counts, double epsilon, const OneRunOptions& options) {
  const Binomial b(counts.guesses, epsilon);
  OneRunTerms t;
  t.tail = Tail(b, counts.correct);
  t.alpha = options.delta > 0 ? Alpha(b, counts.correct) : 0;
  t.p = std::min(1.0, t.tail + 2 * static_cast<double>(counts.canaries) * options.delta * t.alpha);
  return t;
}

}  // namespace

absl::Status ValidateOneRun(const OneRunCounts& counts, const OneRunOptions& options) {
  if (counts.canaries < 0 || counts.canaries > kMaxOneRunCanaries) {
    return absl::InvalidArgumentError(
        absl::StrCat("canaries: must lie in [0, ", kMaxOneRunCanaries, "]; got ", counts.canaries));
  }
  if (counts.guesses < 0 || counts.guesses > counts.canaries) {
    return absl::InvalidArgumentError(absl::StrCat(
        "guesses: must lie in [0, canaries = ", counts.canaries, "]; got ", counts.guesses));
  }
  if (counts.correct < 0 || counts.correct > counts.guesses) {
    return absl::InvalidArgumentError(absl::StrCat(
        "correct: must lie in [0, guesses = ", counts.guesses, "]; got ", counts.correct));
  }
  if (!(options.delta >= 0 && options.delta < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("delta: must lie in [0, 1); got ", options.delta));
  }
  if (!(options.beta > 0 && options.beta < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("beta: must lie in (0, 1); got ", options.beta));
  }
  return absl::OkStatus();
}

absl::StatusOr<OneRunTerms> OneRunTest(const OneRunCounts& counts, double epsilon,
                                       const OneRunOptions& options) {
  MIA_RETURN_IF_ERROR(ValidateOneRun(counts, options));
  if (!(epsilon >= 0 && epsilon <= kMaxOneRunEpsilon)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon: must lie in [0, ", kMaxOneRunEpsilon, "]; got ", epsilon));
  }
  return Terms(counts, epsilon, options);
}

absl::StatusOr<double> OneRunEpsilonLowerBound(const OneRunCounts& counts,
                                               const OneRunOptions& options) {
  MIA_RETURN_IF_ERROR(ValidateOneRun(counts, options));
  auto passes = [&](double eps) { return Terms(counts, eps, options).p < options.beta; };
  if (!passes(0)) return 0.0;
  // Bracket: lo passes, hi does not.
  double lo = 0;
  double hi = 1;
  while (passes(hi)) {
    lo = hi;
    if (hi >= kMaxOneRunEpsilon) return kMaxOneRunEpsilon;
    hi = std::min(2 * hi, kMaxOneRunEpsilon);
  }
  while (hi - lo > kBisectionWidth) {
    const double mid = 0.5 * (lo + hi);
    (passes(mid) ? lo : hi) = mid;
  }
  return lo;
}

std::vector<OneRunGuessSplit> DefaultOneRunGrid(int64_t canaries) {
  std::vector<OneRunGuessSplit> grid;
  for (int64_t divisor : {20, 10, 5, 2, 1}) {
    const int64_t k = canaries / 2 / divisor;
    if (k > 0 && (grid.empty() || grid.back().k_plus != k)) grid.push_back({k, k});
  }
  return grid;
}

absl::StatusOr<OneRunGridResult> OneRunAuditGrid(absl::Span<const double> scores,
                                                 absl::Span<const uint8_t> included,
                                                 absl::Span<const OneRunGuessSplit> grid,
                                                 const OneRunOptions& options) {
  if (scores.size() != included.size()) {
    return absl::InvalidArgumentError(absl::StrCat("one-run audit: ", scores.size(), " scores but ",
                                                   included.size(), " inclusion bits"));
  }
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) {
      return absl::InvalidArgumentError(absl::StrCat("one-run audit: score ", i, " is NaN"));
    }
  }
  if (grid.empty()) return absl::InvalidArgumentError("one-run audit: the grid is empty");
  const int64_t m = static_cast<int64_t>(scores.size());
  for (const OneRunGuessSplit& s : grid) {
    if (s.k_plus < 0 || s.k_minus < 0 || s.k_plus > m - s.k_minus) {
      return absl::InvalidArgumentError(absl::StrCat("one-run audit: split (k+ = ", s.k_plus,
                                                     ", k- = ", s.k_minus,
                                                     ") needs 0 <= k+, k- and k+ + k- <= ", m));
    }
  }
  MIA_RETURN_IF_ERROR(ValidateOneRun({m, 0, 0}, options));

  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&scores](size_t a, size_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  // in_before[k]: included canaries among the first k of the order.
  std::vector<int64_t> in_before(order.size() + 1, 0);
  for (size_t k = 0; k < order.size(); ++k) {
    in_before[k + 1] = in_before[k] + (included[order[k]] != 0 ? 1 : 0);
  }

  OneRunGridResult result;
  result.note =
      "The largest bound over a grid of (k+, k-) is optimistic: picking the best of several "
      "guessing rules after seeing the scores spends confidence that the bound does not "
      "account for. It holds at confidence 1 - beta only if the grid (or the one rule) was "
      "fixed before looking.";
  for (const OneRunGuessSplit& s : grid) {
    OneRunGridEntry e;
    e.split = s;
    e.guesses = s.k_plus + s.k_minus;
    const int64_t right_in = in_before[static_cast<size_t>(s.k_plus)];
    const int64_t in_last = in_before[order.size()] - in_before[static_cast<size_t>(m - s.k_minus)];
    e.correct = right_in + (s.k_minus - in_last);
    MIA_ASSIGN_OR_RETURN(e.epsilon, OneRunEpsilonLowerBound({m, e.guesses, e.correct}, options));
    if (!result.entries.empty() && e.epsilon > result.entries[result.best].epsilon) {
      result.best = result.entries.size();
    }
    result.entries.push_back(e);
  }
  return result;
}

}  // namespace mia::metrics
