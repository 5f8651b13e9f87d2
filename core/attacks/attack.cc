#include "core/attacks/attack.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

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

}  // namespace mia::attacks
