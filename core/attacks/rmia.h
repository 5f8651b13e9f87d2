// RMIA (Zarifzadeh et al. 2024) on the probability signal, online and offline,
// exactly as in ATTACKS.md, in O((N + Z) log Z) time and O(N + Z) memory per
// query: the Z population ratios are sorted once and each audit point's score
// is a binary search, instead of an N x Z matrix of ratios.
// Plain functions; safe from any thread.
#ifndef MIA_CORE_ATTACKS_RMIA_H_
#define MIA_CORE_ATTACKS_RMIA_H_

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/attacks/attack.h"

namespace mia::attacks {

struct RmiaOptions {
  bool online = true;
  double gamma = 1.0;        // likelihood-ratio threshold, > 0
  std::optional<double> a;   // offline only: fixed a in [0, 1]; tuned when unset
  double untunable_a = 0.3;  // offline a used (with a warning) when tuning is impossible
};

// The grid a is tuned over: 0, 0.1, ..., 1.
std::vector<double> RmiaAGrid();

// Pr(x) is floored here so a ratio never divides by zero.
inline constexpr double kMinPr = 1e-300;

// score(i) = #{z : ratio_audit[i] / ratio_pop[z] >= gamma} / Z by sorting
// ratio_pop once and binary-searching each audit ratio: O((N + Z) log Z).
// NaN audit ratios give NaN scores. Ratios must be >= 0, gamma > 0.
std::vector<double> RmiaScoresFromRatios(absl::Span<const double> ratio_audit,
                                         absl::Span<const double> ratio_pop, double gamma);

// The integer counts behind those scores (-1 for a NaN ratio).
std::vector<int64_t> RmiaCountsFromRatios(absl::Span<const double> ratio_audit,
                                          absl::Span<const double> ratio_pop, double gamma);

// The same by the definition: an O(N * Z) double loop. For tests.
std::vector<double> RmiaScoresDefinitional(absl::Span<const double> ratio_audit,
                                           absl::Span<const double> ratio_pop, double gamma);

// Scores every audit point; points without an OUT reference (online: or without
// an IN reference) are excluded. Offline with `a` unset tunes a on the grid by
// the AUC of attacking the first reference with the other references, and
// reports it in `chosen` as "a", with "a_tuning_auc", the AUC it reached on the
// reference model.
absl::StatusOr<AttackOutput> RmiaAttack(const AttackInput& input, const RmiaOptions& options);

}  // namespace mia::attacks

#endif  // MIA_CORE_ATTACKS_RMIA_H_
