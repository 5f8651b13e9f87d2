#include "core/attacks/attack.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/common/random.h"

namespace mia::attacks {

const SignalTensor& SignalSet::Get(SignalKind kind) const {
  switch (kind) {
    case SignalKind::kProb:
      return prob;
    case SignalKind::kLogitScaled:
      return logit_scaled;
    case SignalKind::kLoss:
      return loss;
  }
  return prob;
}

absl::Status ValidateInput(const AttackInput& input, const AttackNeeds& needs) {
  if (input.audit == nullptr) return absl::InvalidArgumentError("no audit signals given");
  const SignalTensor& audit = input.audit->Get(needs.signal);
  const std::string kind = SignalKindName(needs.signal);
  if (audit.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the attack needs the ", kind, " signal of the audit points"));
  }
  const int m_count = audit.models;
  if (input.target < 0 || input.target >= m_count) {
    return absl::InvalidArgumentError(
        absl::StrCat("target model ", input.target, " is outside [0, ", m_count, ")"));
  }
  if (static_cast<int64_t>(input.keep.size()) != static_cast<int64_t>(m_count) * audit.points) {
    return absl::InvalidArgumentError(absl::StrCat("keep has ", input.keep.size(),
                                                   " entries, expected models x points = ", m_count,
                                                   " x ", audit.points));
  }
  for (int r : input.references) {
    if (r < 0 || r >= m_count || r == input.target) {
      return absl::InvalidArgumentError(
          absl::StrCat("reference model ", r, " is out of range or is the target"));
    }
  }
  if (needs.references && input.references.empty()) {
    return absl::InvalidArgumentError("the attack needs at least one reference model");
  }
  if (needs.token_logprobs || needs.token_stats) {
    if (input.tokens == nullptr || input.tokens->logprobs.empty()) {
      return absl::InvalidArgumentError(
          "the attack needs the per-token log-probs of the audit texts (token_logprobs)");
    }
    const TokenSignals& tokens = *input.tokens;
    if (tokens.models != m_count || tokens.points != audit.points) {
      return absl::InvalidArgumentError(
          absl::StrCat("token signals are of ", tokens.models, " models x ", tokens.points,
                       " texts, the audit signals of ", m_count, " x ", audit.points));
    }
    if (absl::Status s = ValidateTokenSignals(tokens); !s.ok()) return s;
    if (needs.token_stats && !tokens.has_stats()) {
      return absl::InvalidArgumentError(
          "the attack needs the mean and variance of log p over each next-token distribution "
          "(token_mean and token_var)");
    }
  }
  if (needs.texts) {
    if (static_cast<int64_t>(input.compressed_sizes.size()) != audit.points) {
      return absl::InvalidArgumentError(
          absl::StrCat("the attack needs the audit texts (texts): ", input.compressed_sizes.size(),
                       " compressed sizes for ", audit.points, " points"));
    }
    for (size_t i = 0; i < input.compressed_sizes.size(); ++i) {
      if (input.compressed_sizes[i] < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("compressed size of text ", i, " is not positive"));
      }
    }
  }
  if (needs.population) {
    if (input.population == nullptr || input.population->Get(needs.signal).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the attack needs the ", kind, " signal of population points"));
    }
    const SignalTensor& pop = input.population->Get(needs.signal);
    if (pop.models != m_count || pop.queries != audit.queries || pop.points < 1) {
      return absl::InvalidArgumentError(
          "population signals must have the same models and queries as the audit signals");
    }
  }
  return absl::OkStatus();
}

absl::Status AveragePerQuery(
    int queries, int64_t points,
    const std::function<absl::Status(int q, std::vector<double>& scores_q)>& score_query,
    AttackOutput* output) {
  output->scores.assign(points, 0.0);
  std::vector<double> scores_q(points);
  for (int q = 0; q < queries; ++q) {
    std::fill(scores_q.begin(), scores_q.end(), 0.0);
    if (absl::Status s = score_query(q, scores_q); !s.ok()) return s;
    for (int64_t i = 0; i < points; ++i) output->scores[i] += scores_q[i];
  }
  output->excluded = 0;
  for (double& s : output->scores) {
    if (std::isnan(s)) {
      ++output->excluded;
    } else {
      s /= queries;
    }
  }
  return absl::OkStatus();
}

void SplitReferences(const AttackInput& input, int64_t i, std::vector<int>* in_refs,
                     std::vector<int>* out_refs) {
  in_refs->clear();
  out_refs->clear();
  const int64_t n = input.audit->points();
  for (int r : input.references) {
    (input.keep[static_cast<int64_t>(r) * n + i] ? in_refs : out_refs)->push_back(r);
  }
}

void SeededPrefix(absl::Span<const int> refs, int count, uint64_t seed, uint64_t stream,
                  std::vector<int>* chosen) {
  chosen->assign(refs.begin(), refs.end());
  const size_t n = chosen->size();
  const size_t take = std::min(n, static_cast<size_t>(std::max(count, 0)));
  // A partial Fisher-Yates shuffle: its first `take` entries are a uniform
  // random subset in random order (all of them shuffled when take = n).
  Rng rng(DeriveSeed(seed, stream));
  for (size_t k = 0; k < take && k + 1 < n; ++k) {
    const size_t j = k + static_cast<size_t>(rng.UniformInt(n - k));
    std::swap((*chosen)[k], (*chosen)[j]);
  }
  chosen->resize(take);
}

ReferenceSelection ReferenceSelection::Choose(const AttackInput& input, bool online) {
  ReferenceSelection sel;
  const int64_t n = input.audit->points();
  sel.scorable_.assign(n, 0);
  int min_out = std::numeric_limits<int>::max();
  int min_in = std::numeric_limits<int>::max();
  std::vector<int> in_refs, out_refs;
  for (int64_t i = 0; i < n; ++i) {
    SplitReferences(input, i, &in_refs, &out_refs);
    if (out_refs.empty() || (online && in_refs.empty())) continue;
    sel.scorable_[i] = 1;
    min_out = std::min(min_out, static_cast<int>(out_refs.size()));
    min_in = std::min(min_in, static_cast<int>(in_refs.size()));
  }
  if (min_out == std::numeric_limits<int>::max()) return sel;  // nothing scorable
  sel.out_count_ = min_out;
  sel.in_count_ = online ? min_in : 0;
  sel.out_.assign(static_cast<size_t>(n) * sel.out_count_, -1);
  sel.in_.assign(static_cast<size_t>(n) * sel.in_count_, -1);
  const uint64_t seed = DeriveSeed(input.seed, static_cast<uint64_t>(input.target));
  std::vector<int> chosen;
  for (int64_t i = 0; i < n; ++i) {
    if (!sel.scorable_[i]) continue;
    SplitReferences(input, i, &in_refs, &out_refs);
    // Streams 2i and 2i + 1: the OUT and IN orders of point i.
    SeededPrefix(out_refs, sel.out_count_, seed, 2 * static_cast<uint64_t>(i), &chosen);
    std::copy(chosen.begin(), chosen.end(), sel.out_.begin() + i * sel.out_count_);
    if (sel.in_count_ > 0) {
      SeededPrefix(in_refs, sel.in_count_, seed, 2 * static_cast<uint64_t>(i) + 1, &chosen);
      std::copy(chosen.begin(), chosen.end(), sel.in_.begin() + i * sel.in_count_);
    }
  }
  return sel;
}

}  // namespace mia::attacks
