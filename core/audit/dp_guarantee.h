// An audit of DP-SGD models puts each attack's empirical epsilon lower bound
// beside the accountant's epsilon of its target (ATTACKS.md, "DP-SGD and its
// accountant"): a lower bound above the upper bound is a bug in the training
// or in the audit, flagged in the warnings. Plain functions; safe from any
// thread.
#ifndef MIA_CORE_AUDIT_DP_GUARANTEE_H_
#define MIA_CORE_AUDIT_DP_GUARANTEE_H_

#include <string>
#include <vector>

#include "core/audit/result.h"

namespace mia::audit {

// The checks of `result`: one per (attack, target) result whose target has a
// DpGuarantee in result.dp, in the order of result.results.
std::vector<DpBoundCheck> DpBoundChecks(const AuditResult& result);

// Sets result->dp_checks (DpBoundChecks) and adds to result->warnings one
// warning per exceeded check ("... error in training or audit") and, when a
// lower bound holds for a smaller delta than the accountant's, one saying the
// two are not strictly comparable. Call once, after scoring.
void FillDpChecks(AuditResult* result);

}  // namespace mia::audit

#endif  // MIA_CORE_AUDIT_DP_GUARANTEE_H_
