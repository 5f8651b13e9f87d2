// The attack interface: an attack turns membership signals of a target model
// and of reference models into one score per audit point (higher = more likely
// a member). Definitions: ../shared/spec/ATTACKS.md, "Attacks".
//
// Attacks are immutable after construction; Run may be called concurrently
// from several threads on different inputs.
#ifndef MIA_CORE_ATTACKS_ATTACK_H_
#define MIA_CORE_ATTACKS_ATTACK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/attacks/signals.h"

namespace mia::attacks {

// What an attack needs from the audit; the audit layer checks these before
// running and computes only the signals some attack needs.
struct AttackNeeds {
  SignalKind signal = SignalKind::kProb;
  bool references = false;     // reference models besides the target
  bool in_references = false;  // references that trained on the point (online attacks)
  bool population = false;     // population points no model trained on
};

// Signals of every model: audit points [M, N, A] and population points [M, Z, A].
// Only the kinds some attack needs are filled in.
struct SignalSet {
  SignalTensor prob;
  SignalTensor logit_scaled;
  SignalTensor loss;

  const SignalTensor& Get(SignalKind kind) const;
  // Shape of whichever signals are present (0 when none).
  int models() const { return First().models; }
  int64_t points() const { return First().points; }
  int queries() const { return First().queries; }

 private:
  const SignalTensor& First() const {
    return !prob.empty() ? prob : !logit_scaled.empty() ? logit_scaled : loss;
  }
};

struct AttackInput {
  const SignalSet* audit = nullptr;       // [M, N, A]
  const SignalSet* population = nullptr;  // [M, Z, A]; may be null or empty
  absl::Span<const uint8_t> keep;         // [M * N]: keep[m * N + i] = 1 if m trained on i
  int target = 0;                         // model under attack
  std::vector<int> references;            // models usable as references (never the target)
};

struct AttackOutput {
  std::vector<double> scores;            // [N]; NaN where the point could not be scored
  int64_t excluded = 0;                  // number of NaN scores
  std::map<std::string, double> chosen;  // tuned parameters, e.g. {"a": 0.3}
  std::vector<std::string> warnings;
};

class Attack {
 public:
  virtual ~Attack() = default;
  // Canonical name with non-default options, e.g. "rmia-offline:gamma=2".
  virtual std::string name() const = 0;
  virtual AttackNeeds needs() const = 0;
  virtual absl::StatusOr<AttackOutput> Run(const AttackInput& input) const = 0;
};

// Checks the parts of `input` every attack relies on (shapes agree, target and
// references in range, the needed signals present). Errors are InvalidArgument.
absl::Status ValidateInput(const AttackInput& input, const AttackNeeds& needs);

// Runs `score_query(q, scores_q)` for each query q and averages the per-query
// scores into `output->scores` (NaN stays NaN); counts the excluded points.
absl::Status AveragePerQuery(
    int queries, int64_t points,
    const std::function<absl::Status(int q, std::vector<double>& scores_q)>& score_query,
    AttackOutput* output);

// The reference models that did (in = true) or did not train on point i.
void SplitReferences(const AttackInput& input, int64_t i, std::vector<int>* in_refs,
                     std::vector<int>* out_refs);

}  // namespace mia::attacks

#endif  // MIA_CORE_ATTACKS_ATTACK_H_
