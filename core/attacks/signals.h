// Membership signals as plain arrays, and their computation from logits.
// Definitions: ../shared/spec/ATTACKS.md, "Notation".
//
// Plain data and free functions; no shared state, safe from any thread.
#ifndef MIA_CORE_ATTACKS_SIGNALS_H_
#define MIA_CORE_ATTACKS_SIGNALS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace mia::attacks {

enum class SignalKind {
  kProb,         // p = softmax(f(x) / T)[y]
  kLogitScaled,  // phi = log p - log(1 - p), LiRA's signal
  kLoss,         // cross-entropy of f(x) at y
};

// "prob", "logit_scaled", "loss".
std::string SignalKindName(SignalKind kind);
absl::StatusOr<SignalKind> ParseSignalKind(absl::string_view name);

// One signal for M models on P points with A queries (test-time augmentations)
// per point: value(m, i, q) = values[(m * points + i) * queries + q].
struct SignalTensor {
  int models = 0;
  int64_t points = 0;
  int queries = 1;
  std::vector<double> values;

  bool empty() const { return values.empty(); }
  double at(int m, int64_t i, int q = 0) const {
    return values[(static_cast<int64_t>(m) * points + i) * queries + q];
  }
  // Values of model m on all points and queries, contiguous.
  absl::Span<const double> model(int m) const {
    return absl::MakeConstSpan(values).subspan(static_cast<size_t>(m) * points * queries,
                                               static_cast<size_t>(points) * queries);
  }
};

// Shape of a logits array [models, points, queries, classes] (queries = 1 when
// the array has no augmentation axis).
struct LogitsShape {
  int models = 0;
  int64_t points = 0;
  int queries = 1;
  int classes = 0;
};

// Computes `kind` from logits (row-major, `shape`) and labels [points].
// prob uses temperature T: softmax(z / T)[y]; logit_scaled is computed stably as
// z_y / T - logsumexp_{y' != y} z_y' / T; loss is the cross-entropy at T = 1.
// Errors (InvalidArgument) name `array_name` and the first offending index:
// a label outside [0, classes), a non-finite logit, fewer than 2 classes.
// `threads` > 1 splits the rows between threads; the values, and the error,
// are the same for any count.
absl::StatusOr<SignalTensor> SignalFromLogits(absl::Span<const float> logits,
                                              const LogitsShape& shape,
                                              absl::Span<const int64_t> labels, SignalKind kind,
                                              double temperature, absl::string_view array_name,
                                              int threads = 1);

// Converts a signal of one kind into another (same shape), with stable formulas:
// p = exp(-loss) = sigmoid(phi); phi = log p - log1p(-p) = -loss - log(-expm1(-loss));
// loss = -log p = softplus(-phi). A probability of exactly 0 or 1 (or a loss
// of 0) gives an infinite phi, clamped to +-kMaxLogitScaled so attacks never
// see infinities; every finite phi is kept exactly (from logits, phi is never
// clamped).
SignalTensor ConvertSignal(const SignalTensor& from, SignalKind from_kind, SignalKind to_kind);

inline constexpr double kMaxLogitScaled = 745.0;  // |log(DBL_TRUE_MIN)|

// Checks a signal given directly (not from logits): finite, and in range for its
// kind (prob in [0, 1], loss >= 0). Errors name `array_name` and the index.
absl::Status ValidateSignal(const SignalTensor& signal, SignalKind kind,
                            absl::string_view array_name);

}  // namespace mia::attacks

#endif  // MIA_CORE_ATTACKS_SIGNALS_H_
