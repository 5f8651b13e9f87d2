#include "core/attacks/lira.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace mia::attacks {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// numpy's median: the middle value, or the mean of the two middle values.
// Reorders `v`.
double Median(std::vector<double>& v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  const double upper = v[mid];
  if (v.size() % 2 == 1) return upper;
  const double lower = *std::max_element(v.begin(), v.begin() + mid);
  return (lower + upper) / 2;
}

double SquaredResiduals(const std::vector<double>& v, double mu) {
  double sum = 0;
  for (double x : v) sum += (x - mu) * (x - mu);
  return sum;
}

double LogNormalPdf(double x, double mu, double sd) {
  const double z = (x - mu) / sd;
  return -0.5 * z * z - std::log(sd) - 0.9189385332046727;  // log(sqrt(2 pi))
}

// Per (point, query) statistics of the IN and OUT reference signals.
struct SideStats {
  std::vector<double> mu;
  std::vector<double> sd;   // per-example standard deviation (ddof 0)
  double residual_sum = 0;  // for the pooled standard deviation
  int64_t residual_count = 0;
};

}  // namespace

absl::StatusOr<AttackOutput> LiraAttack(const AttackInput& input, const LiraOptions& options) {
  MIA_RETURN_IF_ERROR(
      ValidateInput(input, {SignalKind::kLogitScaled, true, options.online, false}));
  const SignalTensor& phi = input.audit->logit_scaled;
  const int64_t n = phi.points;
  const int a_count = phi.queries;
  const double nan = kNaN;

  SideStats in_stats, out_stats;
  for (SideStats* side : {&in_stats, &out_stats}) {
    side->mu.assign(n * a_count, nan);
    side->sd.assign(n * a_count, nan);
  }
  // Equal reference counts for every point (ATTACKS.md, "Corrections").
  const ReferenceSelection refs = ReferenceSelection::Choose(input, options.online);
  const int min_side = options.online ? std::min(refs.out_count(), refs.in_count())
                                      : refs.out_count();
  if (min_side == 1) {
    // One reference per point on a side: no deviation can be estimated, per
    // point or pooled (every residual about a one-value mean is 0), and the
    // z-scores would be divided by the 1e-30 floor.
    const bool out_side = refs.out_count() == 1;
    return absl::FailedPreconditionError(absl::StrCat(
        options.online ? "lira" : "lira-offline", ": every point has only 1 ",
        out_side ? "OUT" : "IN",
        " reference, so no standard deviation can be estimated; it needs at least 2 per point "
        "(with balanced splits, at least 6 models, target included)"));
  }
  std::vector<double> values;
  for (int64_t i = 0; i < n; ++i) {
    if (!refs.scorable(i)) continue;
    for (int q = 0; q < a_count; ++q) {
      for (auto [side_refs, side] :
           {std::pair{refs.in(i), &in_stats}, std::pair{refs.out(i), &out_stats}}) {
        if (side_refs.empty()) continue;
        values.clear();
        for (int r : side_refs) values.push_back(phi.at(r, i, q));
        const double count = static_cast<double>(values.size());
        double mean = 0;
        for (double v : values) mean += v;
        mean /= count;
        // s is the standard deviation (about the mean, ddof 0, as numpy.std);
        // the pooled s uses the residuals about mu, which is the median if asked.
        const double mu = options.center == LiraOptions::Center::kMean ? mean : Median(values);
        side->mu[i * a_count + q] = mu;
        side->sd[i * a_count + q] = std::sqrt(SquaredResiduals(values, mean) / count);
        side->residual_sum += SquaredResiduals(values, mu);
        side->residual_count += static_cast<int64_t>(values.size());
      }
    }
  }

  AttackOutput out;
  bool fixed = options.variance == LiraOptions::Variance::kFixed;
  if (options.variance == LiraOptions::Variance::kAuto) {
    fixed = min_side < kFixedVarianceBelow;
  }
  out.chosen["fixed_variance"] = fixed ? 1 : 0;
  auto pooled = [](const SideStats& s) {
    return s.residual_count > 0 ? std::sqrt(s.residual_sum / static_cast<double>(s.residual_count))
                                : 0.0;
  };
  const double pooled_in = std::max(pooled(in_stats), kMinStd);
  const double pooled_out = std::max(pooled(out_stats), kMinStd);
  if (options.online && min_side < kFewReferences) {
    out.warnings.push_back(absl::StrCat(
        "online LiRA with as few as ", min_side,
        " reference(s) on a side is unreliable: the per-side means and deviations are noisy; "
        "prefer lira-offline or more reference models"));
  }
  // The standard deviation of one side of one point.
  auto side_sd = [&](const SideStats& side, int64_t k, double pooled_sd) {
    if (fixed) return pooled_sd;
    return std::max(side.sd[k], kMinStd);
  };

  MIA_RETURN_IF_ERROR(AveragePerQuery(
      a_count, n,
      [&](int q, std::vector<double>& s) {
        for (int64_t i = 0; i < n; ++i) {
          if (!refs.scorable(i)) {
            s[i] = nan;
            continue;
          }
          const int64_t k = i * a_count + q;
          const double x = phi.at(input.target, i, q);
          const double sd_out = side_sd(out_stats, k, pooled_out);
          if (!options.online) {
            s[i] = (x - out_stats.mu[k]) / sd_out;
            continue;
          }
          const double sd_in = side_sd(in_stats, k, pooled_in);
          s[i] = LogNormalPdf(x, in_stats.mu[k], sd_in) - LogNormalPdf(x, out_stats.mu[k], sd_out);
        }
        return absl::OkStatus();
      },
      &out));
  return out;
}

}  // namespace mia::attacks
