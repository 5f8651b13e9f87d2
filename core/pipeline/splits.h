// Membership splits for the membership-inference game: which model trains on
// which pool point (the keep matrix), and which points are audited.
// Definitions: ../shared/spec/ATTACKS.md ("Default splits are balanced").
// Plain functions, deterministic in their seed; safe from any thread.
#ifndef MIA_CORE_PIPELINE_SPLITS_H_
#define MIA_CORE_PIPELINE_SPLITS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mia::pipeline {

enum class SplitScheme {
  // Each pool point is in the training set of exactly floor(M/2) models, a
  // random subset per point (LiRA's code).
  kBalanced,
  // Privacy Meter's paired complementary halves: model 2j trains on a random
  // half of the pool and model 2j+1 on the other half. M must be even.
  kPaired,
  // The pool is divided at random into an audit half A and a reference half
  // R. The targets train on A only, each point of A in floor(T/2) or
  // ceil(T/2) of the T targets (a random half of the points takes the larger
  // count, so one target trains on a random half of A); the references train
  // on R only, balanced among themselves the same way. Audit points come from
  // A only: every reference is OUT for every audit point, whatever its
  // membership in a target, so offline attacks run from 1 target + 1
  // reference (ATTACKS.md "Corrections": equal reference counts). Online
  // attacks (IN references) cannot run on it.
  kDisjoint,
};

// balanced | paired | disjoint ("auto" is resolved by the config, not here).
absl::StatusOr<SplitScheme> ParseSplitScheme(const std::string& name);
std::string SplitSchemeName(SplitScheme scheme);

// A disjoint split (SplitScheme::kDisjoint): the keep matrix [targets +
// references, pool] (targets first) and the audit half A (sorted pool
// indices), from which audit points must be drawn.
struct DisjointSplit {
  std::vector<uint8_t> keep;
  std::vector<int64_t> audit_half;
};
absl::StatusOr<DisjointSplit> MakeDisjointSplit(int targets, int references, int64_t pool,
                                                uint64_t seed);

// keep[m * pool + i] = 1 when model m trains on pool point i. Balanced or
// paired only (a disjoint split needs the target count: MakeDisjointSplit).
absl::StatusOr<std::vector<uint8_t>> MakeKeepMatrix(int models, int64_t pool, SplitScheme scheme,
                                                    uint64_t seed);

// The training rows of model m: the pool points it keeps, as indices into the pool.
std::vector<int64_t> TrainingPoints(const std::vector<uint8_t>& keep, int64_t pool, int model);

// Chooses `size` audit points from the pool, balanced for model `target`:
// size/2 members and size - size/2 non-members (random, seeded), returned as
// sorted pool indices. Errors when the pool lacks enough of either.
absl::StatusOr<std::vector<int64_t>> BalancedAuditSet(const std::vector<uint8_t>& keep,
                                                      int64_t pool, int target, int64_t size,
                                                      uint64_t seed);
// The same, drawing only from `candidates` (pool indices, e.g. a disjoint
// split's audit half).
absl::StatusOr<std::vector<int64_t>> BalancedAuditSetFrom(const std::vector<uint8_t>& keep,
                                                          int64_t pool, int target,
                                                          const std::vector<int64_t>& candidates,
                                                          int64_t size, uint64_t seed);

}  // namespace mia::pipeline

#endif  // MIA_CORE_PIPELINE_SPLITS_H_
