// Per-token signals of language models on texts: what the sequence attacks
// (../shared/spec/ATTACKS.md, "Sequences") and the sequence loss read.
// Plain data; no shared state.
#ifndef MIA_CORE_ATTACKS_TOKEN_SIGNALS_H_
#define MIA_CORE_ATTACKS_TOKEN_SIGNALS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace mia::attacks {

// For M models on N texts of at most L scored positions each. Text i has
// lengths[i] scored positions t = 1..T (T = lengths[i], 1 <= T <= L);
// values at positions past T are ignored (whatever they hold).
struct TokenSignals {
  int models = 0;
  int64_t points = 0;
  int64_t max_length = 0;        // L
  std::vector<int64_t> lengths;  // [N]
  std::vector<float> logprobs;   // [M, N, L]: lp_m(x, t) = log p_m(x_t | x_<t)
  // Optional (Min-K%++): over the model's next-token distribution at t,
  // mean[...] = sum_v p(v) log p(v) and var[...] = sum_v p(v) (log p(v))^2 - mean^2.
  std::vector<float> mean;  // [M, N, L] or empty
  std::vector<float> var;   // [M, N, L] or empty

  bool has_stats() const { return !mean.empty() && !var.empty(); }
  int64_t offset(int m, int64_t i) const {
    return (static_cast<int64_t>(m) * points + i) * max_length;
  }
};

// Log-probs and variances come from float arithmetic (log_softmax, E[x^2] -
// mean^2): a log-prob up to kTokenTolerance above 0, or a variance down to
// kTokenTolerance * (1 + mean^2) below 0, is rounding, not an error.
inline constexpr double kTokenTolerance = 1e-4;

// Checks `signals`: sizes agree with models x points x max_length, every
// length is in [1, max_length], mean and var are both given or both absent,
// and, at the scored positions only, every value is finite, log-probs are <=
// kTokenTolerance and variances >= -kTokenTolerance * (1 + mean^2).
// Errors (InvalidArgument) name the arrays as a bundle does, with `prefix`
// ("" or "population_"): "array 'token_logprobs': value above 0 at [m, i, t]".
absl::Status ValidateTokenSignals(const TokenSignals& signals, absl::string_view prefix = "");

// Stacks the signals of models computed one at a time (each `models` >= 1,
// e.g. training::ComputeTokenSignalsMany's) into one TokenSignals, models in
// order. All must be of the same texts with the same lengths, and all or none
// with mean and var; max_length is the largest, shorter ones padded with 0.
absl::StatusOr<TokenSignals> StackTokenSignals(absl::Span<const TokenSignals> parts);

// Rounds within tolerance into range, at the scored positions: log-probs above
// 0 become 0, negative variances 0. For signals that passed ValidateTokenSignals.
void ClampTokenSignals(TokenSignals* signals);

}  // namespace mia::attacks

#endif  // MIA_CORE_ATTACKS_TOKEN_SIGNALS_H_
