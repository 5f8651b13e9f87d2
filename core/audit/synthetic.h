// A synthetic membership game written as a signals bundle: logits of M models
// on N audit points and Z population points, with a balanced keep matrix, in
// which each model's confidence on its training points is raised by a
// per-point "memorization" amount. Lets the demo, tests and benchmarks run
// without any trained model; the leak strength sets how much an attack finds.
#ifndef MIA_CORE_AUDIT_SYNTHETIC_H_
#define MIA_CORE_AUDIT_SYNTHETIC_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/npy.h"

namespace mia::audit {

struct SyntheticOptions {
  int models = 8;             // target + reference models
  int64_t points = 2000;      // audit points
  int64_t population = 1000;  // population points (0: none)
  int classes = 10;
  int queries = 1;    // > 1 adds an augmentation axis to the logits
  double leak = 1.0;  // mean margin gain on training points (0: no leakage)
  int targets = 1;    // models 0..targets-1 are listed as targets
  uint64_t seed = 1;
  // Who trained on which point, [models * points] (0 or 1): a game with
  // memberships of its own (DUCI's targets on known fractions); empty: each
  // point in a random half of the models.
  std::vector<uint8_t> keep;
};

// Arrays keep, logits, labels, population_logits, population_labels, row_ids,
// targets, as docs/bundle-format.md describes. Deterministic in the options.
absl::StatusOr<io::NpyMap> MakeSyntheticBundle(const SyntheticOptions& options);

// The same game for language models: per-token log-probs of M models on N
// texts of 1..max_length tokens, each model's log-probs on the texts it
// trained on raised by a per-text "memorization" amount (heavy-tailed, as for
// classifiers); leak = 0 makes the models' signals exchangeable.
struct SyntheticLmOptions {
  int models = 8;            // target + reference models
  int64_t points = 1000;     // audit texts
  int64_t population = 500;  // population texts (0: none)
  int64_t max_length = 32;   // L: each text has between L/4 and L tokens (at least 1)
  double leak = 1.0;         // mean log-odds gain per token on training texts (0: none)
  bool stats = true;         // write token_mean and token_var (Min-K%++)
  bool texts = true;         // write texts (zlib): made-up words, one per token
  int targets = 1;           // models 0..targets-1 are listed as targets
  uint64_t seed = 1;
};

// Arrays keep, token_logprobs, lengths, token_mean, token_var, texts, their
// population_ counterparts, row_ids and targets (docs/bundle-format.md,
// "Language models"). Deterministic in the options.
absl::StatusOr<io::NpyMap> MakeSyntheticLmBundle(const SyntheticLmOptions& options);

}  // namespace mia::audit

#endif  // MIA_CORE_AUDIT_SYNTHETIC_H_
