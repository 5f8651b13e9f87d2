#include "core/attacks/token_signals.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace mia::attacks {
namespace {

std::string ArrayName(absl::string_view prefix, absl::string_view name) {
  return absl::StrCat("array '", prefix, name, "'");
}

absl::Status SizeError(absl::string_view prefix, absl::string_view name, size_t size,
                       int64_t expected) {
  return absl::InvalidArgumentError(absl::StrCat(ArrayName(prefix, name), ": has ", size,
                                                 " values, expected ", expected,
                                                 " (models x points x max length)"));
}

}  // namespace

absl::Status ValidateTokenSignals(const TokenSignals& s, absl::string_view prefix) {
  if (s.models < 1 || s.points < 1 || s.max_length < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(ArrayName(prefix, "token_logprobs"),
                     ": needs at least 1 model, 1 text and 1 position, has ", s.models, " x ",
                     s.points, " x ", s.max_length));
  }
  const int64_t cells = static_cast<int64_t>(s.models) * s.points * s.max_length;
  if (static_cast<int64_t>(s.logprobs.size()) != cells) {
    return SizeError(prefix, "token_logprobs", s.logprobs.size(), cells);
  }
  if (s.mean.empty() != s.var.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        ArrayName(prefix, s.mean.empty() ? "token_var" : "token_mean"), " given without ",
        ArrayName(prefix, s.mean.empty() ? "token_mean" : "token_var"), ": give both or neither"));
  }
  if (!s.mean.empty() && static_cast<int64_t>(s.mean.size()) != cells) {
    return SizeError(prefix, "token_mean", s.mean.size(), cells);
  }
  if (!s.var.empty() && static_cast<int64_t>(s.var.size()) != cells) {
    return SizeError(prefix, "token_var", s.var.size(), cells);
  }
  if (static_cast<int64_t>(s.lengths.size()) != s.points) {
    return absl::InvalidArgumentError(absl::StrCat(
        ArrayName(prefix, "lengths"), ": has ", s.lengths.size(), " entries, expected ", s.points));
  }
  for (int64_t i = 0; i < s.points; ++i) {
    if (s.lengths[i] < 1 || s.lengths[i] > s.max_length) {
      return absl::InvalidArgumentError(absl::StrCat(ArrayName(prefix, "lengths"), ": entry ", i,
                                                     " is outside [1, ", s.max_length, "]"));
    }
  }
  auto where = [](int m, int64_t i, int64_t t) {
    return absl::StrCat("[", m, ", ", i, ", ", t, "]");
  };
  for (int m = 0; m < s.models; ++m) {
    for (int64_t i = 0; i < s.points; ++i) {
      const int64_t base = s.offset(m, i);
      for (int64_t t = 0; t < s.lengths[i]; ++t) {
        const double lp = s.logprobs[base + t];
        if (!std::isfinite(lp)) {
          return absl::InvalidArgumentError(absl::StrCat(ArrayName(prefix, "token_logprobs"),
                                                         ": non-finite value (NaN or inf) at ",
                                                         where(m, i, t)));
        }
        if (lp > kTokenTolerance) {
          return absl::InvalidArgumentError(absl::StrCat(ArrayName(prefix, "token_logprobs"),
                                                         ": value above 0 at ", where(m, i, t),
                                                         " (a log-probability is <= 0)"));
        }
        if (!s.has_stats()) continue;
        const double mu = s.mean[base + t];
        const double var = s.var[base + t];
        if (!std::isfinite(mu) || mu > kTokenTolerance) {
          return absl::InvalidArgumentError(
              absl::StrCat(ArrayName(prefix, "token_mean"), ": non-finite or positive value at ",
                           where(m, i, t), " (the mean of log p over the vocabulary is <= 0)"));
        }
        if (!std::isfinite(var) || var < -kTokenTolerance * (1 + mu * mu)) {
          return absl::InvalidArgumentError(absl::StrCat(ArrayName(prefix, "token_var"),
                                                         ": non-finite or negative value at ",
                                                         where(m, i, t), " (a variance is >= 0)"));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TokenSignals> StackTokenSignals(absl::Span<const TokenSignals> parts) {
  if (parts.empty()) return absl::InvalidArgumentError("no token signals to stack");
  TokenSignals out;
  out.points = parts[0].points;
  out.lengths = parts[0].lengths;
  const bool stats = parts[0].has_stats();
  for (size_t k = 0; k < parts.size(); ++k) {
    const TokenSignals& p = parts[k];
    if (p.points != out.points || p.lengths != out.lengths) {
      return absl::InvalidArgumentError(
          absl::StrCat("token signals ", k, " are of other texts or lengths than token signals 0"));
    }
    if (p.has_stats() != stats) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token signals ", k, (stats ? " lack" : " have"), " the mean and variance that ",
          "token signals 0 ", (stats ? "have" : "lack")));
    }
    const int64_t cells = static_cast<int64_t>(p.models) * p.points * p.max_length;
    if (p.models < 1 || static_cast<int64_t>(p.logprobs.size()) != cells ||
        (stats && (static_cast<int64_t>(p.mean.size()) != cells ||
                   static_cast<int64_t>(p.var.size()) != cells))) {
      return absl::InvalidArgumentError(
          absl::StrCat("token signals ", k, ": sizes disagree with their shape"));
    }
    out.models += p.models;
    out.max_length = std::max(out.max_length, p.max_length);
  }
  const size_t cells = static_cast<size_t>(out.models) * out.points * out.max_length;
  out.logprobs.assign(cells, 0.0f);
  if (stats) {
    out.mean.assign(cells, 0.0f);
    out.var.assign(cells, 0.0f);
  }
  int m_out = 0;
  for (const TokenSignals& p : parts) {
    for (int m = 0; m < p.models; ++m, ++m_out) {
      for (int64_t i = 0; i < p.points; ++i) {
        const int64_t from = p.offset(m, i);
        const int64_t to = out.offset(m_out, i);
        std::copy_n(p.logprobs.begin() + from, p.max_length, out.logprobs.begin() + to);
        if (stats) {
          std::copy_n(p.mean.begin() + from, p.max_length, out.mean.begin() + to);
          std::copy_n(p.var.begin() + from, p.max_length, out.var.begin() + to);
        }
      }
    }
  }
  return out;
}

void ClampTokenSignals(TokenSignals* s) {
  for (int m = 0; m < s->models; ++m) {
    for (int64_t i = 0; i < s->points; ++i) {
      const int64_t base = s->offset(m, i);
      for (int64_t t = 0; t < s->lengths[i]; ++t) {
        s->logprobs[base + t] = std::min(s->logprobs[base + t], 0.0f);
        if (s->has_stats()) {
          s->mean[base + t] = std::min(s->mean[base + t], 0.0f);
          s->var[base + t] = std::max(s->var[base + t], 0.0f);
        }
      }
    }
  }
}

}  // namespace mia::attacks
