#include "core/attacks/sequence_attacks.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace mia::attacks {
namespace {

// Mean of the n smallest of `values` (reordered); n <= values.size().
double MeanOfSmallest(std::vector<double>& values, int64_t n) {
  std::nth_element(values.begin(), values.begin() + (n - 1), values.end());
  double sum = 0;
  for (int64_t k = 0; k < n; ++k) sum += values[k];
  return sum / static_cast<double>(n);
}

absl::Status CheckK(double k) {
  if (!(k > 0 && k <= 1)) return absl::InvalidArgumentError("k must be in (0, 1]");
  return absl::OkStatus();
}

}  // namespace

SignalTensor SequenceLoss(const TokenSignals& tokens) {
  SignalTensor loss;
  loss.models = tokens.models;
  loss.points = tokens.points;
  loss.queries = 1;
  loss.values.resize(static_cast<size_t>(tokens.models) * tokens.points);
  for (int m = 0; m < tokens.models; ++m) {
    for (int64_t i = 0; i < tokens.points; ++i) {
      const float* lp = tokens.logprobs.data() + tokens.offset(m, i);
      const int64_t t_count = tokens.lengths[i];
      double sum = 0;
      for (int64_t t = 0; t < t_count; ++t) sum += static_cast<double>(lp[t]);
      loss.values[static_cast<size_t>(m) * tokens.points + i] =
          std::max(0.0, -sum / static_cast<double>(t_count));
    }
  }
  return loss;
}

SignalSet SequenceSignalSet(const TokenSignals& tokens, absl::Span<const SignalKind> kinds) {
  SignalSet set;
  const SignalTensor loss = SequenceLoss(tokens);
  for (SignalKind kind : kinds) {
    SignalTensor converted = ConvertSignal(loss, SignalKind::kLoss, kind);
    switch (kind) {
      case SignalKind::kProb:
        set.prob = std::move(converted);
        break;
      case SignalKind::kLogitScaled:
        set.logit_scaled = std::move(converted);
        break;
      case SignalKind::kLoss:
        set.loss = std::move(converted);
        break;
    }
  }
  return set;
}

absl::StatusOr<std::vector<int64_t>> ZlibCompressedSizes(absl::Span<const std::string> texts) {
  std::vector<int64_t> sizes(texts.size());
  std::vector<Bytef> buffer;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string& text = texts[i];
    uLongf out_len = compressBound(static_cast<uLong>(text.size()));
    buffer.resize(out_len);
    const int rc = compress2(buffer.data(), &out_len, reinterpret_cast<const Bytef*>(text.data()),
                             static_cast<uLong>(text.size()), 6);
    if (rc != Z_OK) {
      return absl::InternalError(
          absl::StrCat("zlib could not compress text ", i, " (code ", rc, ")"));
    }
    sizes[i] = static_cast<int64_t>(out_len);
  }
  return sizes;
}

int64_t MinKCount(double k, int64_t length) {
  const double product = k * static_cast<double>(length);
  const double nearest = std::nearbyint(product);
  // A decimal k has no exact binary value: k T lands within a few ulps of
  // an integer it should equal. 1e-9 relative is far above that rounding and
  // far below the gap to the next integer for any realistic T.
  const double floored =
      std::fabs(product - nearest) <= 1e-9 * std::max(1.0, product) ? nearest : std::floor(product);
  return std::max<int64_t>(1, std::min<int64_t>(length, static_cast<int64_t>(floored)));
}

absl::StatusOr<AttackOutput> ZlibAttack(const AttackInput& input) {
  MIA_RETURN_IF_ERROR(ValidateInput(input, kZlibNeeds));
  const SignalTensor& loss = input.audit->loss;
  AttackOutput out;
  MIA_RETURN_IF_ERROR(AveragePerQuery(
      loss.queries, loss.points,
      [&](int q, std::vector<double>& s) {
        for (int64_t i = 0; i < loss.points; ++i) {
          s[i] = -loss.at(input.target, i, q) / static_cast<double>(input.compressed_sizes[i]);
        }
        return absl::OkStatus();
      },
      &out));
  return out;
}

absl::StatusOr<AttackOutput> MinKAttack(const AttackInput& input, double k) {
  MIA_RETURN_IF_ERROR(CheckK(k));
  MIA_RETURN_IF_ERROR(ValidateInput(input, kMinKNeeds));
  const TokenSignals& tokens = *input.tokens;
  AttackOutput out;
  out.scores.resize(tokens.points);
  std::vector<double> values;
  for (int64_t i = 0; i < tokens.points; ++i) {
    const float* lp = tokens.logprobs.data() + tokens.offset(input.target, i);
    values.assign(lp, lp + tokens.lengths[i]);
    out.scores[i] = MeanOfSmallest(values, MinKCount(k, tokens.lengths[i]));
  }
  return out;
}

absl::StatusOr<AttackOutput> MinKPlusPlusAttack(const AttackInput& input, double k) {
  MIA_RETURN_IF_ERROR(CheckK(k));
  MIA_RETURN_IF_ERROR(ValidateInput(input, kMinKPlusPlusNeeds));
  const TokenSignals& tokens = *input.tokens;
  AttackOutput out;
  out.scores.resize(tokens.points);
  std::vector<double> z;
  for (int64_t i = 0; i < tokens.points; ++i) {
    const int64_t base = tokens.offset(input.target, i);
    const int64_t t_count = tokens.lengths[i];
    z.resize(t_count);
    for (int64_t t = 0; t < t_count; ++t) {
      const double var = tokens.var[base + t];
      // var <= 0: a one-point distribution (or rounding of one): z = 0.
      z[t] = var > 0 ? (static_cast<double>(tokens.logprobs[base + t]) - tokens.mean[base + t]) /
                           std::sqrt(var)
                     : 0.0;
    }
    out.scores[i] = MeanOfSmallest(z, MinKCount(k, t_count));
  }
  return out;
}

absl::StatusOr<AttackOutput> LmReferenceAttack(const AttackInput& input) {
  MIA_RETURN_IF_ERROR(ValidateInput(input, kLmReferenceNeeds));
  const SignalTensor& loss = input.audit->loss;
  const ReferenceSelection refs = ReferenceSelection::Choose(input, /*online=*/false);
  AttackOutput out;
  MIA_RETURN_IF_ERROR(AveragePerQuery(
      loss.queries, loss.points,
      [&](int q, std::vector<double>& s) {
        for (int64_t i = 0; i < loss.points; ++i) {
          if (!refs.scorable(i)) {
            s[i] = std::numeric_limits<double>::quiet_NaN();
            continue;
          }
          double sum = 0;
          for (int r : refs.out(i)) sum += loss.at(r, i, q);
          s[i] = sum / static_cast<double>(refs.out_count()) - loss.at(input.target, i, q);
        }
        return absl::OkStatus();
      },
      &out));
  return out;
}

}  // namespace mia::attacks
