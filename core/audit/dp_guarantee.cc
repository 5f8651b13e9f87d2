#include "core/audit/dp_guarantee.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mia::audit {

std::vector<DpBoundCheck> DpBoundChecks(const AuditResult& result) {
  std::vector<DpBoundCheck> checks;
  for (const AttackTargetResult& r : result.results) {
    for (const DpGuarantee& g : result.dp) {
      if (g.target != r.target) continue;
      DpBoundCheck c;
      c.attack = r.attack;
      c.target = r.target;
      c.lower_bound = r.epsilon.epsilon;
      c.lower_bound_delta = r.epsilon.delta;
      c.accountant_epsilon = g.epsilon;
      c.accountant_delta = g.delta;
      // NaN (no bound computed) never exceeds; +infinity is never exceeded.
      c.exceeded = std::isfinite(c.lower_bound) && c.lower_bound > c.accountant_epsilon;
      checks.push_back(std::move(c));
      break;
    }
  }
  return checks;
}

void FillDpChecks(AuditResult* result) {
  result->dp_checks = DpBoundChecks(*result);
  bool smaller_delta = false;
  for (const DpBoundCheck& c : result->dp_checks) {
    if (c.exceeded) {
      result->warnings.push_back(absl::StrFormat(
          "attack %s on target %d: the empirical epsilon lower bound %.4g is above the DP-SGD "
          "accountant's epsilon %.4g (delta %g): an error in training or audit",
          c.attack, c.target, c.lower_bound, c.accountant_epsilon, c.accountant_delta));
    }
    smaller_delta |= c.lower_bound_delta < c.accountant_delta;
  }
  if (smaller_delta) {
    result->warnings.push_back(
        "the empirical epsilon lower bounds hold for a smaller delta (audit.delta) than the "
        "DP-SGD accountant's (train.dp.delta): the two are compared, but only bounds at a delta "
        "at least the accountant's are strictly comparable");
  }
}

}  // namespace mia::audit
