// The baseline attacks of ATTACKS.md: LOSS, Attack-P (population) and Attack-R
// (reference). Plain functions on AttackInput; safe from any thread.
#ifndef MIA_CORE_ATTACKS_BASELINE_ATTACKS_H_
#define MIA_CORE_ATTACKS_BASELINE_ATTACKS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/attacks/attack.h"

namespace mia::attacks {

// LOSS: score(i) = -loss_t(i), averaged over queries. Needs no references.
absl::StatusOr<AttackOutput> LossAttack(const AttackInput& input);

// Attack-P: score(i) = #{z : p_t(z) <= p_t(i)} / Z, per query, averaged.
// Sorts the population once per query: O((N + Z) log Z).
absl::StatusOr<AttackOutput> PopulationAttack(const AttackInput& input);

// Attack-R: score(i) = fraction of OUT(i) references r with p_r(i) < p_t(i),
// ties counted 1/2, averaged over queries. Points with no OUT reference are
// excluded (NaN).
absl::StatusOr<AttackOutput> ReferenceAttack(const AttackInput& input);

}  // namespace mia::attacks

#endif  // MIA_CORE_ATTACKS_BASELINE_ATTACKS_H_
