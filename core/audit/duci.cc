#include "core/audit/duci.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/attacks/registry.h"
#include "core/common/random.h"
#include "core/common/status_macros.h"

namespace mia::audit {
namespace {

// The stream of the seed that orders each point's references, as scoring's.
constexpr uint64_t kReferenceOrderStream = 1;

absl::StatusOr<attacks::AttackOutput> RunAttack(const attacks::Attack& attack,
                                                const attacks::AttackInput& base, int target,
                                                const std::vector<int>& references) {
  attacks::AttackInput input = base;
  input.target = target;
  input.references = references;
  absl::StatusOr<attacks::AttackOutput> out = attack.Run(input);
  if (!out.ok()) {
    return absl::Status(out.status().code(),
                        absl::StrCat("duci: attack '", attack.name(), "' on model ", target, ": ",
                                     out.status().message()));
  }
  return out;
}

}  // namespace

absl::StatusOr<DuciThreshold> ChooseDuciThreshold(absl::Span<const double> scores,
                                                  absl::Span<const uint8_t> membership) {
  if (scores.size() != membership.size()) {
    return absl::InvalidArgumentError("scores and membership differ in length");
  }
  std::vector<std::pair<double, uint8_t>> pairs;
  pairs.reserve(scores.size());
  DuciThreshold best;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) continue;
    pairs.emplace_back(scores[i], membership[i] != 0);
    (membership[i] != 0 ? best.members : best.non_members) += 1;
  }
  if (best.members == 0 || best.non_members == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("no ", best.members == 0 ? "member" : "non-member",
                     " among the references' scored points to choose a threshold on"));
  }
  // Highest score first: lowering the threshold past each distinct score adds
  // its pairs to the predicted members.
  std::sort(pairs.begin(), pairs.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  // TPR - FPR = (tp N - fp P) / (P N): compared exactly as tp N - fp P, in
  // 128 bits (counts up to 2^63), so that ties in exact arithmetic are ties
  // (1 - 1/3 and 2/3 - 0 differ in doubles).
  __extension__ using Wide = __int128;
  const Wide p = best.members, n = best.non_members;
  int64_t tp = 0, fp = 0;
  bool first = true;
  Wide best_j = 0;
  for (size_t k = 0; k < pairs.size();) {
    const double s = pairs[k].first;
    for (; k < pairs.size() && pairs[k].first == s; ++k) (pairs[k].second ? tp : fp) += 1;
    const Wide j = tp * n - fp * p;
    if (first || j > best_j) {  // strict: on a tie the higher threshold stays
      first = false;
      best_j = j;
      best.threshold = s;
      best.tpr = static_cast<double>(tp) / static_cast<double>(best.members);
      best.fpr = static_cast<double>(fp) / static_cast<double>(best.non_members);
    }
  }
  return best;
}

double DuciEstimate(absl::Span<const double> scores, const DuciThreshold& threshold,
                    int64_t* predicted, int64_t* scored) {
  int64_t pred = 0, count = 0;
  for (double s : scores) {
    if (std::isnan(s)) continue;
    ++count;
    if (s >= threshold.threshold) ++pred;
  }
  if (predicted != nullptr) *predicted = pred;
  if (scored != nullptr) *scored = count;
  if (!(threshold.tpr > threshold.fpr) || count == 0) return std::nan("");
  // mean_i (pred_i - FPR) / (TPR - FPR), the mean taken first.
  return (static_cast<double>(pred) / static_cast<double>(count) - threshold.fpr) /
         (threshold.tpr - threshold.fpr);
}

absl::StatusOr<DuciResult> RunDuci(const Bundle& bundle, const DuciOptions& options) {
  MIA_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<attacks::Attack>> attack_list,
                       attacks::MakeAttacks(absl::StrJoin(options.attacks, ",")));
  const int m = bundle.models();
  const int64_t n = bundle.points();
  if (options.targets.empty()) return absl::InvalidArgumentError("duci: no target model");
  if (!options.true_fractions.empty() && options.true_fractions.size() != options.targets.size()) {
    return absl::InvalidArgumentError("duci: one true fraction per target, or none");
  }
  std::set<int> seen;
  for (int k : options.targets) {
    if (k < 0 || k >= m || !seen.insert(k).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("duci: target model ", k, " is outside [0, ", m, ") or listed twice"));
    }
  }
  for (int k : options.references) {
    if (k < 0 || k >= m || !seen.insert(k).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "duci: reference model ", k, " is outside [0, ", m, "), a target or listed twice"));
    }
  }
  if (options.references.size() < 2) {
    return absl::InvalidArgumentError(
        "duci: at least 2 reference models are needed (each is attacked with the others)");
  }
  std::vector<attacks::SignalKind> kinds;
  for (const auto& a : attack_list) {
    const attacks::AttackNeeds needs = a->needs();
    if (std::find(kinds.begin(), kinds.end(), needs.signal) == kinds.end()) {
      kinds.push_back(needs.signal);
    }
    if (needs.population && !bundle.population.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("duci: attack '", a->name(), "' needs population points"));
    }
  }
  const int threads = options.threads > 0
                          ? options.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  attacks::SignalSet audit_signals, population_signals;
  MIA_RETURN_IF_ERROR(ComputeSignals(bundle, kinds, options.temperature, &audit_signals,
                                     &population_signals, threads));
  attacks::AttackInput base;
  base.audit = &audit_signals;
  base.population = &population_signals;
  base.keep = bundle.keep;
  base.seed = DeriveSeed(options.seed, kReferenceOrderStream);
  base.threads = threads;

  DuciResult result;
  result.candidate_points = n;
  result.references = options.references;
  for (const auto& attack : attack_list) {
    DuciAttackResult ar;
    ar.attack = attack->name();
    // Each reference against the others: its scores on X with its membership.
    std::vector<double> pooled_scores;
    std::vector<uint8_t> pooled_membership;
    int64_t excluded = 0;
    for (int r : options.references) {
      if (options.cancel != nullptr && options.cancel->load()) {
        return absl::CancelledError("scoring cancelled");
      }
      std::vector<int> others;
      for (int o : options.references) {
        if (o != r) others.push_back(o);
      }
      MIA_ASSIGN_OR_RETURN(attacks::AttackOutput out, RunAttack(*attack, base, r, others));
      excluded += out.excluded;
      pooled_scores.insert(pooled_scores.end(), out.scores.begin(), out.scores.end());
      pooled_membership.insert(pooled_membership.end(),
                               bundle.keep.begin() + static_cast<int64_t>(r) * n,
                               bundle.keep.begin() + static_cast<int64_t>(r + 1) * n);
    }
    absl::StatusOr<DuciThreshold> th = ChooseDuciThreshold(pooled_scores, pooled_membership);
    if (!th.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "duci: attack '", ar.attack, "': ", th.status().message(),
          " (each reference needs OUT references among the others",
          attack->needs().in_references ? ", and IN references" : "", "; add reference models)"));
    }
    ar.threshold = th->threshold;
    ar.tpr = th->tpr;
    ar.fpr = th->fpr;
    ar.reference_members = th->members;
    ar.reference_non_members = th->non_members;
    ar.signal = th->tpr > th->fpr;
    if (!ar.signal) {
      ar.warnings.push_back(absl::StrFormat(
          "no signal: on the references the best threshold has TPR %.4g <= FPR %.4g, so the "
          "fraction cannot be estimated (estimates are null)",
          th->tpr, th->fpr));
    }
    if (excluded > 0) {
      ar.warnings.push_back(absl::StrCat(excluded,
                                         " reference points could not be scored and "
                                         "were left out of the threshold's choice"));
    }
    double error_sum = 0, clipped_sum = 0;
    int errors = 0;
    for (size_t k = 0; k < options.targets.size(); ++k) {
      if (options.cancel != nullptr && options.cancel->load()) {
        return absl::CancelledError("scoring cancelled");
      }
      const int t = options.targets[k];
      MIA_ASSIGN_OR_RETURN(attacks::AttackOutput out,
                           RunAttack(*attack, base, t, options.references));
      DuciTargetEstimate e;
      e.target = t;
      e.true_fraction = options.true_fractions.empty() ? std::nan("") : options.true_fractions[k];
      e.estimate = DuciEstimate(out.scores, *th, &e.predicted_members, &e.points);
      e.excluded = n - e.points;
      e.estimate_clipped = std::isnan(e.estimate) ? e.estimate : std::clamp(e.estimate, 0.0, 1.0);
      e.error = std::fabs(e.estimate - e.true_fraction);  // NaN when either is
      e.error_clipped = std::fabs(e.estimate_clipped - e.true_fraction);
      if (!std::isnan(e.error)) {
        error_sum += e.error;
        clipped_sum += e.error_clipped;
        ++errors;
      }
      if (e.points == 0) {
        ar.warnings.push_back(absl::StrCat("target ", t, ": no point of X could be scored"));
      }
      ar.targets.push_back(e);
    }
    ar.mean_error = errors > 0 ? error_sum / errors : std::nan("");
    ar.mean_error_clipped = errors > 0 ? clipped_sum / errors : std::nan("");
    result.attacks.push_back(std::move(ar));
  }
  return result;
}

}  // namespace mia::audit
