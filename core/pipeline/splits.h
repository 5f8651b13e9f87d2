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
};

absl::StatusOr<SplitScheme> ParseSplitScheme(const std::string& name);  // balanced | paired
std::string SplitSchemeName(SplitScheme scheme);

// keep[m * pool + i] = 1 when model m trains on pool point i.
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

}  // namespace mia::pipeline

#endif  // MIA_CORE_PIPELINE_SPLITS_H_
