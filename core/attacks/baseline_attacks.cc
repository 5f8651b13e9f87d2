#include "core/attacks/baseline_attacks.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/common/status_macros.h"

namespace mia::attacks {

absl::StatusOr<AttackOutput> LossAttack(const AttackInput& input) {
  MIA_RETURN_IF_ERROR(ValidateInput(input, {SignalKind::kLoss, false, false, false}));
  const SignalTensor& loss = input.audit->loss;
  AttackOutput out;
  MIA_RETURN_IF_ERROR(AveragePerQuery(
      loss.queries, loss.points,
      [&](int q, std::vector<double>& s) {
        for (int64_t i = 0; i < loss.points; ++i) s[i] = -loss.at(input.target, i, q);
        return absl::OkStatus();
      },
      &out));
  return out;
}

absl::StatusOr<AttackOutput> PopulationAttack(const AttackInput& input) {
  MIA_RETURN_IF_ERROR(ValidateInput(input, {SignalKind::kProb, false, false, true}));
  const SignalTensor& p = input.audit->prob;
  const SignalTensor& pop = input.population->prob;
  std::vector<double> sorted(pop.points);
  AttackOutput out;
  MIA_RETURN_IF_ERROR(AveragePerQuery(
      p.queries, p.points,
      [&](int q, std::vector<double>& s) {
        for (int64_t z = 0; z < pop.points; ++z) sorted[z] = pop.at(input.target, z, q);
        std::sort(sorted.begin(), sorted.end());
        const double inv_z = 1.0 / static_cast<double>(pop.points);
        for (int64_t i = 0; i < p.points; ++i) {
          const double v = p.at(input.target, i, q);
          s[i] = static_cast<double>(std::upper_bound(sorted.begin(), sorted.end(), v) -
                                     sorted.begin()) *
                 inv_z;
        }
        return absl::OkStatus();
      },
      &out));
  return out;
}

absl::StatusOr<AttackOutput> ReferenceAttack(const AttackInput& input) {
  MIA_RETURN_IF_ERROR(ValidateInput(input, {SignalKind::kProb, true, false, false}));
  const SignalTensor& p = input.audit->prob;
  // The same number of OUT references for every point: the score's possible
  // values (multiples of 1 / (2 count)) then say nothing about membership.
  const ReferenceSelection refs = ReferenceSelection::Choose(input, /*online=*/false);
  AttackOutput out;
  MIA_RETURN_IF_ERROR(AveragePerQuery(
      p.queries, p.points,
      [&](int q, std::vector<double>& s) {
        for (int64_t i = 0; i < p.points; ++i) {
          if (!refs.scorable(i)) {
            s[i] = std::numeric_limits<double>::quiet_NaN();
            continue;
          }
          const double t = p.at(input.target, i, q);
          double count = 0;
          for (int r : refs.out(i)) {
            const double v = p.at(r, i, q);
            count += v < t ? 1.0 : (v == t ? 0.5 : 0.0);
          }
          s[i] = count / static_cast<double>(refs.out_count());
        }
        return absl::OkStatus();
      },
      &out));
  return out;
}

}  // namespace mia::attacks
