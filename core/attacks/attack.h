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
#include "core/attacks/token_signals.h"

namespace mia::attacks {

// What an attack needs from the audit; the audit layer checks these before
// running and computes only the signals some attack needs.
struct AttackNeeds {
  SignalKind signal = SignalKind::kProb;
  bool references = false;     // reference models besides the target
  bool in_references = false;  // references that trained on the point (online attacks)
  bool population = false;     // population points no model trained on
  // Least references per point on each side it uses (OUT; and IN when
  // in_references): a deviation (LiRA) needs 2.
  int min_per_side = 1;
  // Sequence attacks (ATTACKS.md, "Sequences") read more than `signal` (the
  // sequence loss, for them): the per-token log-probs of the audit texts
  // (Min-K%), also their next-token mean and variance (Min-K%++), or the
  // texts' zlib-compressed sizes (zlib). Only a language-model audit has them.
  bool token_logprobs = false;
  bool token_stats = false;
  bool texts = false;
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
  // Seeds the order in which each point's references are taken when the counts
  // are equalized (ReferenceSelection); the audit derives it from its own seed.
  uint64_t seed = 0;
  // Language models only (needs.token_logprobs / token_stats): the audit
  // texts' per-token signals [M, N, L], the same models and points as `audit`.
  const TokenSignals* tokens = nullptr;
  // Language models only (needs.texts): zlib-compressed byte length of each
  // audit text's UTF-8 [N] (ZlibCompressedSizes, core/attacks/sequence_attacks.h).
  absl::Span<const int64_t> compressed_sizes = {};
  // Threads an attack may use (RMIA tunes its candidates in parallel); the
  // output does not depend on it.
  int threads = 1;
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

// The references every point is scored with, in equal numbers (ATTACKS.md,
// "Corrections": equal reference counts). With balanced splits a target member
// has one more OUT reference than a non-member; a score whose possible values
// depend on that count separates members from non-members on a model that leaks
// nothing. So every scorable point uses the same number of OUT references (and,
// online, of IN references): the smallest count over the scorable points, taken
// in a seeded order per point (input.seed, the target and the point's index).
// A point is scorable when it has at least one OUT reference (and, online, one
// IN reference). Immutable once built; safe to read from any thread.
class ReferenceSelection {
 public:
  // `online`: points need IN references too and get in_count() of them.
  static ReferenceSelection Choose(const AttackInput& input, bool online);

  int out_count() const { return out_count_; }  // per scorable point; 0 if none is
  int in_count() const { return in_count_; }    // 0 offline
  int64_t points() const { return static_cast<int64_t>(scorable_.size()); }
  bool scorable(int64_t i) const { return scorable_[i] != 0; }
  // The chosen references of a scorable point, in their seeded order (so a
  // prefix of either list is itself a seeded random subset).
  absl::Span<const int> out(int64_t i) const {
    return absl::MakeConstSpan(out_).subspan(static_cast<size_t>(i) * out_count_, out_count_);
  }
  absl::Span<const int> in(int64_t i) const {
    return absl::MakeConstSpan(in_).subspan(static_cast<size_t>(i) * in_count_, in_count_);
  }

 private:
  int out_count_ = 0;
  int in_count_ = 0;
  std::vector<uint8_t> scorable_;  // [N]
  std::vector<int> out_;           // [N * out_count_]; unscorable points hold -1
  std::vector<int> in_;            // [N * in_count_]
};

// min(count, size) of `refs`: a prefix of their seeded shuffle on stream
// `stream` of `seed`, so any prefix of the result is a seeded random subset.
void SeededPrefix(absl::Span<const int> refs, int count, uint64_t seed, uint64_t stream,
                  std::vector<int>* chosen);

}  // namespace mia::attacks

#endif  // MIA_CORE_ATTACKS_ATTACK_H_
