#include "core/attacks/signals.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/quote.h"

namespace mia::attacks {
namespace {

// Fewer rows than this per thread are not worth starting one.
constexpr int64_t kMinRowsPerThread = 16384;

// log(1 + exp(x)) without overflow.
double Softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// phi of a probability of exactly 0 or 1 (given directly, or a loss of 0) is
// infinite: only then is it clamped, so attacks never see infinities. Finite
// values stay exact, however large (ATTACKS.md, "Corrections").
double ClampInfinitePhi(double phi) {
  if (!std::isinf(phi)) return phi;
  return phi > 0 ? kMaxLogitScaled : -kMaxLogitScaled;
}

}  // namespace

std::string SignalKindName(SignalKind kind) {
  switch (kind) {
    case SignalKind::kProb:
      return "prob";
    case SignalKind::kLogitScaled:
      return "logit_scaled";
    case SignalKind::kLoss:
      return "loss";
  }
  return "unknown";
}

absl::StatusOr<SignalKind> ParseSignalKind(absl::string_view name) {
  if (name == "prob") return SignalKind::kProb;
  if (name == "logit_scaled") return SignalKind::kLogitScaled;
  if (name == "loss") return SignalKind::kLoss;
  return absl::InvalidArgumentError(absl::StrCat("unknown signal type ", Quoted(name),
                                                 ": expected one of prob, logit_scaled, loss"));
}

absl::StatusOr<SignalTensor> SignalFromLogits(absl::Span<const float> logits,
                                              const LogitsShape& shape,
                                              absl::Span<const int64_t> labels, SignalKind kind,
                                              double temperature, absl::string_view array_name,
                                              int threads) {
  if (shape.classes < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(array_name, ": needs at least 2 classes, has ", shape.classes));
  }
  if (!(temperature > 0) || !std::isfinite(temperature)) {
    return absl::InvalidArgumentError("temperature must be a finite number > 0");
  }
  const int64_t rows = static_cast<int64_t>(shape.models) * shape.points * shape.queries;
  if (static_cast<int64_t>(logits.size()) != rows * shape.classes) {
    return absl::InvalidArgumentError(absl::StrCat(array_name, ": has ", logits.size(),
                                                   " values, shape needs ", rows * shape.classes));
  }
  if (static_cast<int64_t>(labels.size()) != shape.points) {
    return absl::InvalidArgumentError(absl::StrCat(
        "labels for ", array_name, ": has ", labels.size(), " entries, expected ", shape.points));
  }
  for (int64_t i = 0; i < shape.points; ++i) {
    if (labels[i] < 0 || labels[i] >= shape.classes) {
      return absl::InvalidArgumentError(absl::StrCat("labels for ", array_name, ": entry ", i,
                                                     " is outside [0, ", shape.classes, ")"));
    }
  }
  SignalTensor out;
  out.models = shape.models;
  out.points = shape.points;
  out.queries = shape.queries;
  out.values.resize(rows);
  const double scale = kind == SignalKind::kLoss ? 1.0 : 1.0 / temperature;
  const int c_count = shape.classes;
  // Rows [begin, end): the flat index of the first non-finite logit, or -1.
  auto compute = [&](int64_t begin, int64_t end) -> int64_t {
    for (int64_t row = begin; row < end; ++row) {
      const float* z = logits.data() + row * c_count;
      const int64_t point = (row / shape.queries) % shape.points;
      const int y = static_cast<int>(labels[point]);
      // Max over all classes and over the classes other than y, for stable logsumexp.
      double max_all = -std::numeric_limits<double>::infinity();
      double max_other = max_all;
      for (int c = 0; c < c_count; ++c) {
        const double v = static_cast<double>(z[c]);
        if (!std::isfinite(v)) return row * c_count + c;
        const double s = v * scale;
        max_all = std::max(max_all, s);
        if (c != y) max_other = std::max(max_other, s);
      }
      // The sum over the other classes is needed only for the scaled logit,
      // and its terms are the same exponentials unless y is the unique max.
      const bool need_other = kind == SignalKind::kLogitScaled;
      const bool same_max = max_other == max_all;
      double sum_all = 0, sum_other = 0;
      for (int c = 0; c < c_count; ++c) {
        const double s = static_cast<double>(z[c]) * scale;
        const double e = std::exp(s - max_all);
        sum_all += e;
        if (need_other && c != y) sum_other += same_max ? e : std::exp(s - max_other);
      }
      const double zy = static_cast<double>(z[y]) * scale;
      const double log_p = zy - (max_all + std::log(sum_all));
      switch (kind) {
        case SignalKind::kProb:
          out.values[row] = std::exp(log_p);
          break;
        case SignalKind::kLoss:
          out.values[row] = -log_p;
          break;
        case SignalKind::kLogitScaled:
          // Exact from logits, however large the margin: no clamp.
          out.values[row] = zy - (max_other + std::log(sum_other));
          break;
      }
    }
    return -1;
  };
  // Rows are independent: each thread takes a contiguous share, and the
  // values do not depend on the split. The first bad logit in row order is
  // the one reported, as on one thread.
  const int64_t shares = std::max<int64_t>(1, std::min<int64_t>(threads, rows / kMinRowsPerThread));
  std::vector<int64_t> bad(static_cast<size_t>(shares), -1);
  std::vector<std::thread> workers;
  auto run_share = [&](int64_t k) {
    bad[static_cast<size_t>(k)] = compute(rows * k / shares, rows * (k + 1) / shares);
  };
  int64_t started = 1;
  for (; started < shares; ++started) {
    try {
      workers.emplace_back(run_share, started);
    } catch (const std::system_error&) {
      break;
    }
  }
  run_share(0);
  for (int64_t k = started; k < shares; ++k) run_share(k);  // shares no thread took
  for (std::thread& w : workers) w.join();
  for (int64_t first : bad) {
    if (first >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(array_name, ": non-finite value at flat index ", first));
    }
  }
  return out;
}

SignalTensor ConvertSignal(const SignalTensor& from, SignalKind from_kind, SignalKind to_kind) {
  SignalTensor out = from;
  if (from_kind == to_kind) return out;
  for (double& v : out.values) {
    double x = v;
    switch (from_kind) {
      case SignalKind::kProb:
        if (to_kind == SignalKind::kLoss) {
          x = -std::log(v);
        } else {
          x = ClampInfinitePhi(std::log(v) - std::log1p(-v));
        }
        break;
      case SignalKind::kLoss:
        if (to_kind == SignalKind::kProb) {
          x = std::exp(-v);
        } else {
          // log p - log(1 - p) with p = exp(-loss).
          x = ClampInfinitePhi(-v - std::log(-std::expm1(-v)));
        }
        break;
      case SignalKind::kLogitScaled:
        if (to_kind == SignalKind::kProb) {
          x = 1.0 / (1.0 + std::exp(-v));
        } else {
          x = Softplus(-v);
        }
        break;
    }
    v = x;
  }
  return out;
}

absl::Status ValidateSignal(const SignalTensor& signal, SignalKind kind,
                            absl::string_view array_name) {
  for (size_t k = 0; k < signal.values.size(); ++k) {
    const double v = signal.values[k];
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat(array_name, ": non-finite value (NaN or inf) at flat index ", k));
    }
    if (kind == SignalKind::kProb && (v < 0 || v > 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(array_name, ": probability outside [0, 1] at flat index ", k));
    }
    if (kind == SignalKind::kLoss && v < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(array_name, ": negative loss at flat index ", k));
    }
  }
  return absl::OkStatus();
}

}  // namespace mia::attacks
