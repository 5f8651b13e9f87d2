#include "core/pipeline/splits.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/common/random.h"

namespace mia::pipeline {
namespace {

template <typename T>
void Shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t k = v.size(); k > 1; --k) std::swap(v[k - 1], v[rng.UniformInt(k)]);
}

}  // namespace

absl::StatusOr<SplitScheme> ParseSplitScheme(const std::string& name) {
  if (name == "balanced") return SplitScheme::kBalanced;
  if (name == "paired") return SplitScheme::kPaired;
  if (name == "disjoint") return SplitScheme::kDisjoint;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown split scheme '", name, "': expected balanced, paired or disjoint"));
}

std::string SplitSchemeName(SplitScheme scheme) {
  switch (scheme) {
    case SplitScheme::kBalanced:
      return "balanced";
    case SplitScheme::kPaired:
      return "paired";
    case SplitScheme::kDisjoint:
      return "disjoint";
  }
  return "balanced";
}

namespace {

// Models [first, first + count) train on `points`: each point in floor(count/2)
// or ceil(count/2) of them, the larger count on a random half of the points
// (exactly count/2 when count is even), the models of each point random.
void SpreadBalanced(const std::vector<int64_t>& points, int first, int count, int64_t pool,
                    Rng& rng, std::vector<uint8_t>* keep) {
  std::vector<int64_t> order = points;
  Shuffle(order, rng);
  const size_t larger = order.size() / 2;  // points taking ceil(count/2), when count is odd
  std::vector<int> models(count);
  for (size_t k = 0; k < order.size(); ++k) {
    std::iota(models.begin(), models.end(), first);
    Shuffle(models, rng);
    const int in = count / 2 + (count % 2 != 0 && k < larger ? 1 : 0);
    for (int j = 0; j < in; ++j) (*keep)[static_cast<size_t>(models[j]) * pool + order[k]] = 1;
  }
}

}  // namespace

absl::StatusOr<DisjointSplit> MakeDisjointSplit(int targets, int references, int64_t pool,
                                                uint64_t seed) {
  if (targets < 1 || references < 1) {
    return absl::InvalidArgumentError(
        "disjoint splits need at least 1 target and 1 reference model");
  }
  if (pool < 4) return absl::InvalidArgumentError("disjoint splits need at least 4 pool points");
  const int models = targets + references;
  Rng rng(seed);
  std::vector<int64_t> order(pool);
  std::iota(order.begin(), order.end(), 0);
  Shuffle(order, rng);
  const int64_t audit_size = pool - pool / 2;
  DisjointSplit split;
  split.keep.assign(static_cast<size_t>(models) * pool, 0);
  split.audit_half.assign(order.begin(), order.begin() + audit_size);
  std::vector<int64_t> reference_half(order.begin() + audit_size, order.end());
  std::sort(split.audit_half.begin(), split.audit_half.end());
  std::sort(reference_half.begin(), reference_half.end());
  SpreadBalanced(split.audit_half, 0, targets, pool, rng, &split.keep);
  SpreadBalanced(reference_half, targets, references, pool, rng, &split.keep);
  return split;
}

absl::StatusOr<std::vector<uint8_t>> MakeKeepMatrix(int models, int64_t pool, SplitScheme scheme,
                                                    uint64_t seed) {
  if (models < 2) return absl::InvalidArgumentError("a split needs at least 2 models");
  if (pool < 2) return absl::InvalidArgumentError("a split needs at least 2 pool points");
  if (scheme == SplitScheme::kDisjoint) {
    return absl::InvalidArgumentError("disjoint splits are made by MakeDisjointSplit");
  }
  if (scheme == SplitScheme::kPaired && models % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("paired splits need an even number of models, got ", models));
  }
  std::vector<uint8_t> keep(static_cast<size_t>(models) * pool, 0);
  Rng rng(seed);
  if (scheme == SplitScheme::kBalanced) {
    std::vector<int> order(models);
    for (int64_t i = 0; i < pool; ++i) {
      std::iota(order.begin(), order.end(), 0);
      Shuffle(order, rng);
      for (int k = 0; k < models / 2; ++k) keep[static_cast<size_t>(order[k]) * pool + i] = 1;
    }
    return keep;
  }
  std::vector<int64_t> points(pool);
  for (int pair = 0; pair < models / 2; ++pair) {
    std::iota(points.begin(), points.end(), 0);
    Shuffle(points, rng);
    const int a = 2 * pair, b = 2 * pair + 1;
    for (int64_t k = 0; k < pool; ++k) {
      const int m = k < pool / 2 ? a : b;
      keep[static_cast<size_t>(m) * pool + points[k]] = 1;
    }
  }
  return keep;
}

std::vector<int64_t> TrainingPoints(const std::vector<uint8_t>& keep, int64_t pool, int model) {
  std::vector<int64_t> rows;
  const uint8_t* k = keep.data() + static_cast<size_t>(model) * pool;
  for (int64_t i = 0; i < pool; ++i) {
    if (k[i]) rows.push_back(i);
  }
  return rows;
}

absl::StatusOr<std::vector<int64_t>> BalancedAuditSet(const std::vector<uint8_t>& keep,
                                                      int64_t pool, int target, int64_t size,
                                                      uint64_t seed) {
  std::vector<int64_t> all(pool);
  std::iota(all.begin(), all.end(), 0);
  return BalancedAuditSetFrom(keep, pool, target, all, size, seed);
}

absl::StatusOr<std::vector<int64_t>> BalancedAuditSetFrom(const std::vector<uint8_t>& keep,
                                                          int64_t pool, int target,
                                                          const std::vector<int64_t>& candidates,
                                                          int64_t size, uint64_t seed) {
  std::vector<int64_t> members, non_members;
  const uint8_t* k = keep.data() + static_cast<size_t>(target) * pool;
  for (int64_t i : candidates) (k[i] ? members : non_members).push_back(i);
  const int64_t want_in = size / 2, want_out = size - size / 2;
  if (size < 2 || static_cast<int64_t>(members.size()) < want_in ||
      static_cast<int64_t>(non_members.size()) < want_out) {
    return absl::InvalidArgumentError(absl::StrCat(
        "audit.data_size ", size, " needs ", want_in, " members and ", want_out,
        " non-members of the target; the ", candidates.size() == static_cast<size_t>(pool) ? "pool" : "audit half of the pool (splits: disjoint)", " has ", members.size(), " and ",
        non_members.size()));
  }
  Rng rng(seed);
  Shuffle(members, rng);
  Shuffle(non_members, rng);
  std::vector<int64_t> audit(members.begin(), members.begin() + want_in);
  audit.insert(audit.end(), non_members.begin(), non_members.begin() + want_out);
  std::sort(audit.begin(), audit.end());
  return audit;
}

}  // namespace mia::pipeline
