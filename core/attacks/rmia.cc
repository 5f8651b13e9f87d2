#include "core/attacks/rmia.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace mia::attacks {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Reference means of one (target, references) pair, per point and query:
// everything Pr(x) needs, independent of a.
struct ReferenceSums {
  int queries = 1;
  std::vector<double> audit_out_mean;   // [N * A] mean over the chosen OUT refs; NaN if none
  std::vector<double> audit_all_mean;   // [N * A] mean over the chosen IN and OUT refs
  std::vector<uint8_t> audit_scorable;  // [N]
  std::vector<double> pop_mean;         // [Z * A] mean over the population's chosen refs
};

// Means over equal numbers of references for every point (ATTACKS.md,
// "Corrections"): offline, the same count of OUT references per point; online,
// the same count k of IN and of OUT references (balanced, k the smaller of the
// two equalized counts).
ReferenceSums SumReferences(const AttackInput& input, bool online) {
  const SignalTensor& p = input.audit->prob;
  const SignalTensor& pop = input.population->prob;
  const int64_t n = p.points;
  const int a_count = p.queries;
  const ReferenceSelection refs = ReferenceSelection::Choose(input, online);
  const int k_out = online ? std::min(refs.in_count(), refs.out_count()) : refs.out_count();
  const int k_in = online ? k_out : 0;
  ReferenceSums sums;
  sums.queries = a_count;
  sums.audit_out_mean.assign(n * a_count, kNaN);
  sums.audit_all_mean.assign(n * a_count, kNaN);
  sums.audit_scorable.assign(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    if (!refs.scorable(i) || k_out == 0) continue;
    sums.audit_scorable[i] = 1;
    const absl::Span<const int> out_refs = refs.out(i).subspan(0, k_out);
    const absl::Span<const int> in_refs = refs.in(i).subspan(0, k_in);
    for (int q = 0; q < a_count; ++q) {
      double out_sum = 0, in_sum = 0;
      for (int r : out_refs) out_sum += p.at(r, i, q);
      for (int r : in_refs) in_sum += p.at(r, i, q);
      sums.audit_out_mean[i * a_count + q] = out_sum / k_out;
      sums.audit_all_mean[i * a_count + q] = (out_sum + in_sum) / (k_out + k_in);
    }
  }
  // Population points are OUT for every reference and the same for members
  // and non-members: their Pr uses all references, as RMIA defines it.
  sums.pop_mean.assign(pop.points * a_count, 0.0);
  for (int r : input.references) {
    const double* pr = pop.model(r).data();
    for (int64_t k = 0; k < pop.points * a_count; ++k) sums.pop_mean[k] += pr[k];
  }
  for (double& v : sums.pop_mean) v /= static_cast<double>(input.references.size());
  return sums;
}

// Pr(x) from reference means: online uses the mean over all references, offline
// ((1 + a) * mean_OUT + (1 - a)) / 2.
double ReferenceProb(double all_mean, double out_mean, bool online, double a) {
  const double pr = online ? all_mean : ((1 + a) * out_mean + (1 - a)) / 2;
  return std::max(pr, kMinPr);
}

// RMIA counts of `target` given the reference sums: counts[i] is the sum over
// queries of #{z : ratio(i) / ratio(z) >= gamma}, or -1 for an unscorable point.
// The score is counts[i] / (queries * Z): the mean over queries of the per-query
// scores, so the integer counts order the points exactly as the scores do.
void CountTarget(const AttackInput& input, int target, const ReferenceSums& sums, bool online,
                 double a, double gamma, std::vector<int64_t>* counts) {
  const SignalTensor& p = input.audit->prob;
  const SignalTensor& pop = input.population->prob;
  const int64_t n = p.points;
  const int a_count = p.queries;
  counts->assign(n, 0);
  std::vector<double> ratio_audit(n), ratio_pop(pop.points);
  for (int q = 0; q < a_count; ++q) {
    for (int64_t z = 0; z < pop.points; ++z) {
      const double m = sums.pop_mean[z * a_count + q];
      ratio_pop[z] = pop.at(target, z, q) / ReferenceProb(m, m, online, a);
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = i * a_count + q;
      ratio_audit[i] = sums.audit_scorable[i]
                           ? p.at(target, i, q) / ReferenceProb(sums.audit_all_mean[k],
                                                                sums.audit_out_mean[k], online, a)
                           : kNaN;
    }
    const std::vector<int64_t> c = RmiaCountsFromRatios(ratio_audit, ratio_pop, gamma);
    for (int64_t i = 0; i < n; ++i) (*counts)[i] = c[i] < 0 ? -1 : (*counts)[i] + c[i];
  }
}

// AUC of the counts against keep[model] over the scorable points, by counting
// sort over the (queries * Z + 1) possible values: O(N + queries * Z) instead of
// sorting. Ties between a member and a non-member count 1/2. NaN when one class
// is missing.
double AucOfCounts(const AttackInput& input, int model, const std::vector<int64_t>& counts,
                   int64_t max_count) {
  const int64_t n = static_cast<int64_t>(counts.size());
  std::vector<int64_t> members(max_count + 1, 0), non_members(max_count + 1, 0);
  const uint8_t* keep = input.keep.data() + static_cast<int64_t>(model) * n;
  for (int64_t i = 0; i < n; ++i) {
    if (counts[i] < 0) continue;
    (keep[i] ? members : non_members)[counts[i]] += 1;
  }
  double pairs = 0, below = 0, total_members = 0;
  for (int64_t v = 0; v <= max_count; ++v) {
    pairs += static_cast<double>(members[v]) * (below + 0.5 * static_cast<double>(non_members[v]));
    below += static_cast<double>(non_members[v]);
    total_members += static_cast<double>(members[v]);
  }
  if (total_members == 0 || below == 0) return kNaN;
  return pairs / (total_members * below);
}

void CountsToScores(const std::vector<int64_t>& counts, int64_t max_count,
                    std::vector<double>* scores) {
  scores->resize(counts.size());
  for (size_t i = 0; i < counts.size(); ++i) {
    (*scores)[i] =
        counts[i] < 0 ? kNaN : static_cast<double>(counts[i]) / static_cast<double>(max_count);
  }
}

}  // namespace

std::vector<double> RmiaAGrid() {
  std::vector<double> grid;
  for (int k = 0; k <= 10; ++k) grid.push_back(k / 10.0);
  return grid;
}

std::vector<int64_t> RmiaCountsFromRatios(absl::Span<const double> ratio_audit,
                                          absl::Span<const double> ratio_pop, double gamma) {
  std::vector<double> sorted(ratio_pop.begin(), ratio_pop.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> counts(ratio_audit.size());
  for (size_t i = 0; i < ratio_audit.size(); ++i) {
    const double r = ratio_audit[i];
    if (std::isnan(r)) {
      counts[i] = -1;
      continue;
    }
    // r / ratio_z >= gamma holds for a prefix of the ascending ratios (IEEE
    // division is monotone), so the count is that prefix's length. Search
    // without a division first (ratio_z <= r / gamma), check the boundary with
    // the exact predicate of the definition, and only where rounding put it in
    // the wrong place search again with that predicate.
    auto holds = [&](double rz) { return r / rz >= gamma; };
    auto it = std::upper_bound(sorted.begin(), sorted.end(), r / gamma);
    if ((it != sorted.begin() && !holds(*(it - 1))) || (it != sorted.end() && holds(*it))) {
      it = std::partition_point(sorted.begin(), sorted.end(), holds);
    }
    counts[i] = it - sorted.begin();
  }
  return counts;
}

std::vector<double> RmiaScoresFromRatios(absl::Span<const double> ratio_audit,
                                         absl::Span<const double> ratio_pop, double gamma) {
  std::vector<double> scores;
  CountsToScores(RmiaCountsFromRatios(ratio_audit, ratio_pop, gamma),
                 static_cast<int64_t>(ratio_pop.size()), &scores);
  return scores;
}

std::vector<double> RmiaScoresDefinitional(absl::Span<const double> ratio_audit,
                                           absl::Span<const double> ratio_pop, double gamma) {
  std::vector<double> scores(ratio_audit.size());
  for (size_t i = 0; i < ratio_audit.size(); ++i) {
    if (std::isnan(ratio_audit[i])) {
      scores[i] = kNaN;
      continue;
    }
    int64_t count = 0;
    for (double rz : ratio_pop) count += ratio_audit[i] / rz >= gamma ? 1 : 0;
    scores[i] = static_cast<double>(count) / static_cast<double>(ratio_pop.size());
  }
  return scores;
}

absl::StatusOr<AttackOutput> RmiaAttack(const AttackInput& input, const RmiaOptions& options) {
  MIA_RETURN_IF_ERROR(ValidateInput(input, {SignalKind::kProb, true, options.online, true}));
  if (!(options.gamma > 0) || !std::isfinite(options.gamma)) {
    return absl::InvalidArgumentError("rmia: gamma must be a finite number > 0");
  }
  AttackOutput out;
  double a = options.a.value_or(options.untunable_a);
  double best_auc_seen = -1;  // AUC on the reference model at the chosen a
  const int64_t max_count =
      static_cast<int64_t>(input.audit->prob.queries) * input.population->prob.points;
  if (!options.online && !options.a.has_value()) {
    if (input.references.size() < 2) {
      out.warnings.push_back(absl::StrCat(
          "rmia-offline: a cannot be tuned with fewer than 2 reference models; used a=",
          options.untunable_a));
    } else {
      // Attack the first reference with the others as its references.
      const int pseudo_target = input.references.front();
      AttackInput tuning = input;
      tuning.target = pseudo_target;
      tuning.references.assign(input.references.begin() + 1, input.references.end());
      const ReferenceSums sums = SumReferences(tuning, /*online=*/false);
      double& best_auc = best_auc_seen;
      const std::vector<double> grid = RmiaAGrid();
      // Each candidate's AUC is computed on its own (in parallel when
      // input.threads > 1), then chosen in grid order as on one thread.
      std::vector<double> aucs(grid.size(), kNaN);
      std::atomic<size_t> next{0};
      auto tune = [&]() {
        std::vector<int64_t> counts;
        for (size_t g = next.fetch_add(1); g < grid.size(); g = next.fetch_add(1)) {
          CountTarget(input, pseudo_target, sums, false, grid[g], options.gamma, &counts);
          aucs[g] = AucOfCounts(input, pseudo_target, counts, max_count);
        }
      };
      std::vector<std::thread> workers;
      const int threads = std::max(1, std::min<int>(input.threads, static_cast<int>(grid.size())));
      for (int t = 1; t < threads; ++t) {
        try {
          workers.emplace_back(tune);
        } catch (const std::system_error&) {
          break;  // the others take its share
        }
      }
      tune();
      for (std::thread& w : workers) w.join();
      for (size_t g = 0; g < grid.size(); ++g) {
        const double candidate = grid[g];
        const double auc = aucs[g];
        if (auc > best_auc) {  // ties keep the smaller a
          best_auc = auc;
          a = candidate;
        }
      }
      if (best_auc < 0) {
        out.warnings.push_back(absl::StrCat(
            "rmia-offline: tuning found no scorable points on the reference model; used a=",
            options.untunable_a));
        a = options.untunable_a;
      }
    }
  }
  if (!options.online) out.chosen["a"] = a;
  if (best_auc_seen >= 0) out.chosen["a_tuning_auc"] = best_auc_seen;
  const ReferenceSums sums = SumReferences(input, options.online);
  std::vector<int64_t> counts;
  CountTarget(input, input.target, sums, options.online, a, options.gamma, &counts);
  CountsToScores(counts, max_count, &out.scores);
  for (double s : out.scores) out.excluded += std::isnan(s) ? 1 : 0;
  return out;
}

}  // namespace mia::attacks
