// A signals bundle: membership signals (or logits) that models trained
// elsewhere produced, with the membership (keep) matrix: everything an audit
// needs without training anything. Format: docs/bundle-format.md. A
// language-model bundle holds per-token log-probs of texts instead
// (token_logprobs); it is read by the same loader into the same Bundle.
//
// Loading validates every array (presence, dtype, shape, finiteness, ranges)
// and reports the first problem naming the array. Plain data; a loaded Bundle is
// immutable and may be shared across threads.
#ifndef MIA_CORE_AUDIT_BUNDLE_H_
#define MIA_CORE_AUDIT_BUNDLE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/attacks/attack.h"
#include "core/attacks/signals.h"
#include "core/attacks/token_signals.h"
#include "core/io/npy.h"
#include "core/metrics/bootstrap.h"

namespace mia::audit {

// Per-model values on a set of points: logits + labels, or one signal kind.
struct SignalSource {
  bool has_logits = false;
  std::vector<float> logits;  // [M, P, A, C] when has_logits
  attacks::LogitsShape logits_shape;
  std::vector<int64_t> labels;   // [P]
  attacks::SignalTensor signal;  // [M, P, A] when !has_logits
  attacks::SignalKind kind = attacks::SignalKind::kProb;
  std::string array_name;  // for messages: "logits", "population_signals"

  int models() const { return has_logits ? logits_shape.models : signal.models; }
  int64_t points() const { return has_logits ? logits_shape.points : signal.points; }
  int queries() const { return has_logits ? logits_shape.queries : signal.queries; }
};

struct Bundle {
  std::string path;                        // where it was read from
  SignalSource audit;                      // [M, N, ...]
  std::optional<SignalSource> population;  // [M, Z, ...]
  std::vector<uint8_t> keep;               // [M * N]
  std::vector<int64_t> row_ids;            // [N]; 0..N-1 when the bundle has none
  std::vector<int> targets;                // target models; {0} when the bundle has none

  // Language-model bundles only (the bundle has 'token_logprobs'): the
  // per-token signals of the audit texts [M, N, L] and of the population
  // texts [M, Z, L'], and the texts themselves (UTF-8; empty when not given).
  // `audit` and `population` then hold each text's sequence loss as a loss
  // signal (attacks::SequenceLoss), so every classifier attack runs unchanged.
  std::optional<attacks::TokenSignals> tokens;
  std::optional<attacks::TokenSignals> population_tokens;
  std::vector<std::string> texts;             // [N] or empty
  std::vector<std::string> population_texts;  // [Z] or empty
  // Each audit text's zlib-compressed size [N] (array 'text_zlib_sizes'),
  // what zlib needs when the texts may not travel (a pipeline's report); a
  // bundle has this or texts, not both.
  std::vector<int64_t> text_zlib_sizes;

  bool language_model() const { return tokens.has_value(); }
  int models() const { return audit.models(); }
  int64_t points() const { return audit.points(); }
  int queries() const { return audit.queries(); }
};

// A language-model audit's signals computed in-process (an LM pipeline), to
// be turned into a bundle's arrays by LanguageModelBundleArrays.
struct LanguageModelSignals {
  attacks::TokenSignals audit;                      // [M, N, L]
  std::optional<attacks::TokenSignals> population;  // [M, Z, L'], or none
  std::vector<std::string> texts;                   // [N] UTF-8, or empty
  std::vector<std::string> population_texts;        // [Z] UTF-8, or empty
  std::vector<int64_t> text_zlib_sizes;             // [N], or empty (instead of texts)
};

// The arrays of a language-model bundle (docs/bundle-format.md, "Language
// models"): the format's one writer, for a pipeline's report and the
// synthetic generator. `keep` is [M * N]; empty `row_ids` or `targets` are
// left out (the defaults). Nothing is validated here: BundleFromArrays on the
// result checks everything, as for a bundle read from a file.
io::NpyMap LanguageModelBundleArrays(const LanguageModelSignals& signals,
                                     const std::vector<uint8_t>& keep,
                                     const std::vector<int64_t>& row_ids = {},
                                     const std::vector<int>& targets = {});

// The arrays a bundle may hold; any other name is an error.
const std::vector<std::string>& BundleArrayNames();

// Builds a bundle from arrays already read (validates everything).
absl::StatusOr<Bundle> BundleFromArrays(io::NpyMap arrays, const std::string& path);

// Reads and validates a bundle: an .npz archive or a folder of .npy files.
// `threads`: members of an archive decoded in parallel (io::ReadNpz); the
// bundle is the same for any count.
absl::StatusOr<Bundle> LoadBundle(const std::string& path, const io::ReadLimits& limits = {},
                                  int threads = 1);

// The estimated peak memory of loading and scoring a bundle, from its
// arrays' headers alone (io::ReadArrayInfos): the decoded arrays, the copies
// validation converts them to (logits and token arrays as float, signals as
// double, keep as bytes, labels, lengths and ids as int64, texts as UTF-8
// strings) and the signals scoring computes (up to 3 kinds of 8 bytes on
// every model, point and query; one sequence loss per model and text).
struct BundleMemoryEstimate {
  uint64_t bytes = 0;
  // "scoring a bundle of 4 models x 100000000 points x 1 query (2 arrays,
  // 2.00 GB decoded)": shapes and sizes only, for a refusal's message.
  std::string what;
};
//
// Scoring's metrics add the bootstrap's buffers for the audit points
// (metrics::BootstrapPeakBytes of `bootstrap`'s resamples and threads and
// `fprs` FPRs, 0: the default list) and the copies of one attack's scores
// it is given (10 bytes a point).
BundleMemoryEstimate EstimateBundleMemory(const io::NpyInfoMap& arrays,
                                          const metrics::BootstrapOptions& bootstrap = {},
                                          size_t fprs = 0);

// Computes the signal kinds in `kinds` for the audit points and, if the bundle
// has them, the population points. From logits each kind is computed directly
// (temperature applies to prob and logit_scaled); from a given signal the other
// kinds are converted (temperature must then be 1).
// `threads`: as for attacks::SignalFromLogits (the values do not depend on it).
absl::Status ComputeSignals(const Bundle& bundle, const std::vector<attacks::SignalKind>& kinds,
                            double temperature, attacks::SignalSet* audit,
                            attacks::SignalSet* population, int threads = 1);

}  // namespace mia::audit

#endif  // MIA_CORE_AUDIT_BUNDLE_H_
