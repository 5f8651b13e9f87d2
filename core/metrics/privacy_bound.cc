#include "core/metrics/privacy_bound.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/common/random.h"
#include "core/common/status_macros.h"
#include "core/metrics/roc.h"

namespace mia::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

// log Gamma(x) for x > 0. Written here rather than calling std::lgamma, which
// in glibc writes the global `signgam` and so is a data race when the bound is
// computed from several threads. Stirling's series is used from x >= 10 (the
// first omitted term is below 1e-16 there); smaller x is lifted with
// Gamma(x) = Gamma(x + 1) / x.
double LogGamma(double x) {
  double lift = 1;
  while (x < 10) {
    lift *= x;
    x += 1;
  }
  // Stirling's correction sum_k B_2k / (2k (2k - 1) x^(2k - 1)), k = 1..7, by Horner in 1/x^2.
  constexpr double kCoefficients[] = {1.0 / 12,   -1.0 / 360,      1.0 / 1260, -1.0 / 1680,
                                      1.0 / 1188, -691.0 / 360360, 1.0 / 156};
  const double r = 1 / x;
  double series = 0;
  for (int k = 6; k >= 0; --k) series = series * r * r + kCoefficients[k];
  series *= r;
  constexpr double kHalfLogTwoPi = 0.91893853320467274178;
  return (x - 0.5) * std::log(x) - x + kHalfLogTwoPi + series - std::log(lift);
}

namespace {

// Continued fraction of I_x(a, b) (the classic expansion with even and odd
// steps), evaluated by the modified Lentz method. Converges quickly for
// x < (a + 1) / (a + b + 2); the caller uses the symmetry otherwise.
double BetaContinuedFraction(double a, double b, double x) {
  constexpr double kTiny = 1e-300;
  constexpr double kEps = 1e-16;
  const int max_iterations = 1000 + static_cast<int>(20 * std::sqrt(std::max(a, b)));
  double c = 1;
  double d = 1 - (a + b) * x / (a + 1);
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= max_iterations; ++m) {
    const double m2 = 2.0 * m;
    // Even step.
    double coeff = m * (b - m) * x / ((a - 1 + m2) * (a + m2));
    d = 1 + coeff * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + coeff / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    // Odd step.
    coeff = -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1 + m2));
    d = 1 + coeff * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + coeff / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1) < kEps) break;
  }
  return h;
}

// I_x(a, b) for a, b > 0 and 0 < x < 1 as front * fraction (direct) or
// 1 - front * fraction (mirrored), front = x^a (1 - x)^b / B(a, b) kept as a
// log so that far tails do not underflow.
struct BetaParts {
  double log_front;
  double fraction;
  bool mirrored;
};

BetaParts IncompleteBetaParts(double a, double b, double x) {
  BetaParts parts;
  parts.log_front =
      LogGamma(a + b) - LogGamma(a) - LogGamma(b) + a * std::log(x) + b * std::log1p(-x);
  // The direct fraction converges fast (and keeps relative precision for small
  // values) below the mean; above it, use I_x(a, b) = 1 - I_{1-x}(b, a).
  parts.mirrored = !(x < (a + 1) / (a + b + 2));
  parts.fraction =
      parts.mirrored ? BetaContinuedFraction(b, a, 1 - x) / b : BetaContinuedFraction(a, b, x) / a;
  return parts;
}

// log P(Binomial(n, p) <= k) for 0 <= k < n, 0 < p < 1: the Beta(k + 1, n - k)
// upper tail at p, i.e. I_{1-p}(n - k, k + 1). Also gives the log of the
// Beta(k + 1, n - k) density at p (the tail's derivative, negated).
double LogBinomialCdf(int64_t k, int64_t n, double p, double* log_density) {
  const double x = 1 - p;
  const BetaParts parts =
      IncompleteBetaParts(static_cast<double>(n - k), static_cast<double>(k + 1), x);
  *log_density = parts.log_front - std::log(x) - std::log(p);
  if (parts.mirrored) return std::log1p(-std::exp(parts.log_front) * parts.fraction);
  return parts.log_front + std::log(parts.fraction);
}

}  // namespace

double RegularizedIncompleteBeta(double a, double b, double x) {
  if (!(a > 0) || !(b > 0) || std::isnan(x)) return kNaN;
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const BetaParts parts = IncompleteBetaParts(a, b, x);
  const double head = std::exp(parts.log_front) * parts.fraction;
  return parts.mirrored ? 1 - head : head;
}

double ClopperPearsonUpper(int64_t k, int64_t n, double alpha) {
  if (n <= 0 || k >= n || !(alpha > 0)) return 1;  // no information, or certainty asked
  if (alpha >= 1) return 0;                        // the 0-quantile
  if (k < 0) k = 0;
  const double log_alpha = std::log(alpha);
  // k = 0 has the closed form 1 - alpha^(1/n); expm1 keeps it precise for large n.
  if (k == 0) return -std::expm1(log_alpha / static_cast<double>(n));

  // Solve phi(p) = log P(Bin(n, p) <= k) - log(alpha) = 0. phi decreases in p
  // and is concave (Beta(k + 1, n - k) has both parameters >= 1, so it is
  // log-concave and so is its upper tail). Newton started right of the root
  // therefore moves left monotonically without crossing it, quadratically near
  // the end. Two cheap right-of-root starts, the closer one is used:
  //   Hoeffding: P(X <= k) <= exp(-2n (p - k/n)^2) <= alpha at
  //              p = k/n + sqrt(log(1/alpha) / 2n) (good for k near n/2);
  //   Markov on the n - X failures: P(X <= k) <= n (1 - p) / (n - k) <= alpha
  //              at p = 1 - alpha (n - k) / n (good for k near n).
  // A bracket with bisection guards against rounding (e.g. a tail that
  // underflows, or noise in phi near the root).
  const double nd = static_cast<double>(n);
  const double kd = static_cast<double>(k);
  // phi > 0 at k/n when alpha < 1/2 (k is a median of Bin(n, k/n)), and at 0.
  double lo = alpha < 0.5 ? kd / nd : 0;
  double hi = 1;  // phi(1) = -inf
  double p = std::min(kd / nd + std::sqrt(-log_alpha / (2 * nd)), 1 - alpha * (nd - kd) / nd);
  for (int iteration = 0; iteration < 200; ++iteration) {
    double log_density = 0;
    const double phi = LogBinomialCdf(k, n, p, &log_density) - log_alpha;
    if (phi == 0) return p;
    if (phi > 0) {
      lo = p;
    } else {
      hi = p;
    }
    // phi'(p) = -density / tail.
    const double newton = p + phi * std::exp(phi + log_alpha - log_density);
    // The log-gamma terms of phi cancel (to ~1e-16 n log n absolute), so p is
    // asked for to 1e-12 relative: closer, the Newton steps only chase noise.
    if (std::fabs(newton - p) <= 1e-12 * p) return newton;
    p = newton > lo && newton < hi ? newton : 0.5 * (lo + hi);
    if (hi - lo <= 1e-12 * hi) return p;
  }
  return p;
}

namespace {

// The bound from the upper rates, unfloored: -inf when neither term gives a
// bound (its numerator is <= 0); callers floor at 0 where a value is reported.
// A zero rate (never a CP bound, but the plain rates of the branch and bound
// below) gives +inf, as log(x / 0) should.
double BoundFromUpperRates(double fpr_up, double fnr_up, double delta) {
  double best = -kInf;
  const double num1 = 1 - delta - fpr_up;
  if (num1 > 0) best = std::max(best, std::log(num1) - std::log(fnr_up));
  const double num2 = 1 - delta - fnr_up;
  if (num2 > 0) best = std::max(best, std::log(num2) - std::log(fpr_up));
  return best;
}

absl::Status ValidateOptions(const EpsilonOptions& options) {
  if (!(options.delta >= 0 && options.delta < 1)) {
    return absl::InvalidArgumentError("epsilon bound: delta must lie in [0, 1)");
  }
  if (!(options.beta > 0 && options.beta < 1)) {
    return absl::InvalidArgumentError("epsilon bound: beta must lie in (0, 1)");
  }
  if (!(options.selection_fraction > 0 && options.selection_fraction < 1)) {
    return absl::InvalidArgumentError("epsilon bound: selection_fraction must lie in (0, 1)");
  }
  return absl::OkStatus();
}

// Memoized Clopper-Pearson upper bounds k -> CP(k, n, level) for k in [0, n]:
// the threshold sweep asks for the same counts many times.
class UpperBoundCache {
 public:
  UpperBoundCache(int64_t n, double level)
      : n_(n), level_(level), values_(static_cast<size_t>(n + 1), kNaN) {}
  double Get(int64_t k) {
    double& v = values_[static_cast<size_t>(k)];
    if (std::isnan(v)) v = ClopperPearsonUpper(k, n_, level_);
    return v;
  }

 private:
  int64_t n_;
  double level_;
  std::vector<double> values_;
};

}  // namespace

// One sort and one sweep collect the candidates, then a branch and bound
// evaluates the costly Clopper-Pearson bounds only where they can matter:
// - a threshold is skipped when the next lower one adds members only: that one
//   has the same FP and fewer FN, so a bound at least as large (both terms
//   grow as FNR+ shrinks);
// - the bound is decreasing in FPR+ and FNR+, and CP(k, n) >= k / n at levels
//   below 1/2 (the binomial median), so the bound from the plain rates is an
//   optimistic value; candidates are visited by decreasing optimistic value and
//   the visit stops once it falls below the best exact bound found.
// Among exact ties the earliest candidate of the sweep (highest threshold) wins.
double ChooseEpsilonThreshold(absl::Span<const double> scores, absl::Span<const uint8_t> members,
                              double delta, double beta) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&scores](size_t a, size_t b) { return scores[a] > scores[b]; });
  int64_t positives = 0;
  for (uint8_t m : members) positives += m;
  const int64_t negatives = static_cast<int64_t>(scores.size()) - positives;

  struct Candidate {
    double threshold;
    int64_t fp;
    int64_t fn;
    double optimistic;
  };
  auto optimistic = [&](int64_t fp, int64_t fn) {
    return BoundFromUpperRates(static_cast<double>(fp) / static_cast<double>(negatives),
                               static_cast<double>(fn) / static_cast<double>(positives), delta);
  };
  std::vector<Candidate> candidates;
  candidates.push_back({kInf, 0, positives, optimistic(0, positives)});
  int64_t tp = 0;
  int64_t fp = 0;
  size_t i = 0;
  while (i < order.size()) {
    const double threshold = scores[order[i]];
    for (; i < order.size() && scores[order[i]] == threshold; ++i) {
      if (members[order[i]]) {
        ++tp;
      } else {
        ++fp;
      }
    }
    // Dominated unless the next group (if any) contains a non-member.
    bool next_has_negative = i == order.size();
    for (size_t j = i; j < order.size() && scores[order[j]] == scores[order[i]]; ++j) {
      if (!members[order[j]]) {
        next_has_negative = true;
        break;
      }
    }
    if (next_has_negative) {
      candidates.push_back({threshold, fp, positives - tp, optimistic(fp, positives - tp)});
    }
  }

  std::vector<size_t> visit(candidates.size());
  std::iota(visit.begin(), visit.end(), size_t{0});
  std::stable_sort(visit.begin(), visit.end(), [&candidates](size_t a, size_t b) {
    return candidates[a].optimistic > candidates[b].optimistic;
  });
  UpperBoundCache fpr_upper(negatives, beta / 2);
  UpperBoundCache fnr_upper(positives, beta / 2);
  double best_value = -kInf;
  size_t best = 0;  // +infinity unless some candidate does better
  for (size_t c : visit) {
    const Candidate& candidate = candidates[c];
    if (candidate.optimistic < best_value || candidate.optimistic == -kInf) break;
    const double value =
        BoundFromUpperRates(fpr_upper.Get(candidate.fp), fnr_upper.Get(candidate.fn), delta);
    if (value > best_value || (value == best_value && c < best)) {
      best_value = value;
      best = c;
    }
  }
  return candidates[best].threshold;
}

double EpsilonAtThreshold(absl::Span<const double> scores, absl::Span<const uint8_t> members,
                          double threshold, double delta, double beta, double* fpr_upper,
                          double* fnr_upper) {
  if (fpr_upper != nullptr) *fpr_upper = 1;
  if (fnr_upper != nullptr) *fnr_upper = 1;
  // Documented as a no-bound answer rather than an error: this is the building
  // block; EpsilonLowerBound reports errors.
  if (!ValidateScores(scores, members).ok() || !(beta > 0 && beta < 1) ||
      !(delta >= 0 && delta < 1)) {
    return 0;
  }
  int64_t positives = 0;
  int64_t fp = 0;
  int64_t fn = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    const bool flagged = scores[i] >= threshold;
    positives += members[i];
    if (members[i] && !flagged) ++fn;
    if (!members[i] && flagged) ++fp;
  }
  const int64_t negatives = static_cast<int64_t>(scores.size()) - positives;
  const double fpr_up = ClopperPearsonUpper(fp, negatives, beta / 2);
  const double fnr_up = ClopperPearsonUpper(fn, positives, beta / 2);
  if (fpr_upper != nullptr) *fpr_upper = fpr_up;
  if (fnr_upper != nullptr) *fnr_upper = fnr_up;
  return std::max(0.0, BoundFromUpperRates(fpr_up, fnr_up, delta));
}

std::vector<uint8_t> StratifiedSelection(absl::Span<const uint8_t> members, double fraction,
                                         uint64_t seed) {
  // Each class is shuffled on its own seeded stream and cut at the fraction,
  // leaving at least one point of each class per side where it has two.
  std::vector<uint8_t> selection(members.size(), 0);
  std::vector<size_t> by_class[2];
  for (size_t i = 0; i < members.size(); ++i) by_class[members[i] ? 1 : 0].push_back(i);
  for (int c = 0; c < 2; ++c) {
    std::vector<size_t>& idx = by_class[c];
    if (idx.empty()) continue;
    Rng rng(DeriveSeed(seed, static_cast<uint64_t>(c)));
    for (size_t i = idx.size() - 1; i > 0; --i) {  // Fisher-Yates
      std::swap(idx[i], idx[static_cast<size_t>(rng.UniformInt(i + 1))]);
    }
    const double wanted = std::round(fraction * static_cast<double>(idx.size()));
    const size_t cut = idx.size() < 2 ? idx.size()
                                      : std::clamp(static_cast<size_t>(std::max(wanted, 0.0)),
                                                   size_t{1}, idx.size() - 1);
    for (size_t j = 0; j < cut; ++j) selection[idx[j]] = 1;
  }
  return selection;
}

absl::StatusOr<EpsilonBound> EpsilonLowerBoundOnSplit(absl::Span<const double> scores,
                                                      absl::Span<const uint8_t> members,
                                                      absl::Span<const uint8_t> selection,
                                                      const EpsilonOptions& options) {
  MIA_RETURN_IF_ERROR(ValidateScores(scores, members));
  MIA_RETURN_IF_ERROR(ValidateOptions(options));
  if (selection.size() != scores.size()) {
    return absl::InvalidArgumentError(absl::StrCat("selection has ", selection.size(),
                                                   " entries, scores have ", scores.size()));
  }
  std::vector<double> sel_scores, eval_scores;
  std::vector<uint8_t> sel_members, eval_members;
  int64_t counts[2][2] = {{0, 0}, {0, 0}};  // [selection][member]
  for (size_t i = 0; i < scores.size(); ++i) {
    const bool sel = selection[i] != 0;
    const uint8_t y = members[i] ? 1 : 0;
    (sel ? sel_scores : eval_scores).push_back(scores[i]);
    (sel ? sel_members : eval_members).push_back(y);
    ++counts[sel][y];
  }
  if (counts[0][0] == 0 || counts[0][1] == 0 || counts[1][0] == 0 || counts[1][1] == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "epsilon bound needs members and non-members on both sides of its split; selection has ",
        counts[1][1], " members and ", counts[1][0], " non-members, evaluation ", counts[0][1],
        " and ", counts[0][0]));
  }
  EpsilonBound out;
  out.delta = options.delta;
  out.selection_points = static_cast<int64_t>(sel_scores.size());
  out.evaluation_points = static_cast<int64_t>(eval_scores.size());
  out.threshold = ChooseEpsilonThreshold(sel_scores, sel_members, options.delta, options.beta);
  out.epsilon = EpsilonAtThreshold(eval_scores, eval_members, out.threshold, options.delta,
                                   options.beta, &out.fpr_upper, &out.fnr_upper);
  return out;
}

absl::StatusOr<EpsilonBound> EpsilonLowerBound(absl::Span<const double> scores,
                                               absl::Span<const uint8_t> members,
                                               const EpsilonOptions& options) {
  MIA_RETURN_IF_ERROR(ValidateScores(scores, members));
  MIA_RETURN_IF_ERROR(ValidateOptions(options));
  int64_t positives = 0;
  for (uint8_t m : members) positives += m ? 1 : 0;
  const int64_t negatives = static_cast<int64_t>(members.size()) - positives;
  if (positives < 2 || negatives < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon bound needs at least 2 members and 2 non-members to split; got ",
                     positives, " members and ", negatives, " non-members"));
  }
  return EpsilonLowerBoundOnSplit(
      scores, members, StratifiedSelection(members, options.selection_fraction, options.seed),
      options);
}

}  // namespace mia::metrics
