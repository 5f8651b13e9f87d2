// Builders of small attack inputs for the attack tests.
#ifndef MIA_TESTS_ATTACKS_TEST_UTIL_H_
#define MIA_TESTS_ATTACKS_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/attacks/attack.h"
#include "core/common/random.h"
#include "core/metrics/roc.h"

namespace mia::attacks::testing {

// A tensor [models][points] (one query) from nested rows.
inline SignalTensor Tensor(const std::vector<std::vector<double>>& rows) {
  SignalTensor t;
  t.models = static_cast<int>(rows.size());
  t.points = static_cast<int64_t>(rows.front().size());
  t.queries = 1;
  for (const auto& row : rows) t.values.insert(t.values.end(), row.begin(), row.end());
  return t;
}

inline std::vector<uint8_t> Keep(const std::vector<std::vector<int>>& rows) {
  std::vector<uint8_t> keep;
  for (const auto& row : rows)
    for (int v : row) keep.push_back(static_cast<uint8_t>(v));
  return keep;
}

// A random membership game: each point in a random half of the models, and a
// member's probability signal raised by `leak`.
struct RandomGame {
  SignalSet audit, population;
  std::vector<uint8_t> keep;
};

inline RandomGame MakeRandomGame(int models, int64_t points, int64_t pop_points, int queries,
                                 double leak, uint64_t seed) {
  Rng rng(seed);
  RandomGame g;
  g.keep.assign(static_cast<size_t>(models) * points, 0);
  std::vector<int> order(models);
  for (int64_t i = 0; i < points; ++i) {
    for (int m = 0; m < models; ++m) order[m] = m;
    for (int m = models - 1; m > 0; --m) std::swap(order[m], order[rng.UniformInt(m + 1)]);
    for (int k = 0; k < models / 2; ++k) g.keep[static_cast<size_t>(order[k]) * points + i] = 1;
  }
  auto fill = [&](SignalTensor* t, int64_t n, bool audit) {
    t->models = models;
    t->points = n;
    t->queries = queries;
    t->values.resize(static_cast<size_t>(models) * n * queries);
    std::vector<double> difficulty(n);
    for (auto& d : difficulty) d = rng.Normal() * 1.5;
    for (int m = 0; m < models; ++m)
      for (int64_t i = 0; i < n; ++i)
        for (int q = 0; q < queries; ++q) {
          double phi = 1.0 + difficulty[i] + 0.5 * rng.Normal();
          if (audit && g.keep[static_cast<size_t>(m) * n + i]) phi += leak;
          t->values[(static_cast<size_t>(m) * n + i) * queries + q] = 1.0 / (1.0 + std::exp(-phi));
        }
  };
  fill(&g.audit.prob, points, true);
  fill(&g.population.prob, pop_points, false);
  return g;
}

// AUC of `scores` against keep[model] over the points that were scored.
inline double AucAgainst(const std::vector<double>& scores, const std::vector<uint8_t>& keep,
                         int model) {
  const size_t n = scores.size();
  std::vector<double> s;
  std::vector<uint8_t> y;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(scores[i])) continue;
    s.push_back(scores[i]);
    y.push_back(keep[model * n + i]);
  }
  return *metrics::Auc(s, y);
}

}  // namespace mia::attacks::testing

#endif  // MIA_TESTS_ATTACKS_TEST_UTIL_H_
