#include "core/audit/synthetic.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/random.h"

namespace mia::audit {
namespace {

// Logits of `models` models on `points` points. Each point has a difficulty
// (its typical margin); each model adds noise, and `keep` adds the point's
// vulnerability. The true class's logit is set so that
// phi = z_y - logsumexp_{c != y} z_c equals the drawn margin exactly.
void FillLogits(Rng& rng, const SyntheticOptions& o, int64_t points,
                const std::vector<uint8_t>* keep, std::vector<float>* logits,
                std::vector<int64_t>* labels) {
  const int c_count = o.classes;
  labels->resize(points);
  std::vector<double> margin(points), vulnerability(points);
  for (int64_t i = 0; i < points; ++i) {
    (*labels)[i] = static_cast<int64_t>(rng.UniformInt(c_count));
    margin[i] = 2.0 + 1.5 * rng.Normal();
    // Heavy-tailed: a few points (outliers) are memorized far more than most.
    vulnerability[i] = o.leak * std::exp(0.75 * rng.Normal() - 0.28);
  }
  logits->resize(static_cast<size_t>(o.models) * points * o.queries * c_count);
  std::vector<double> z(c_count);
  for (int m = 0; m < o.models; ++m) {
    for (int64_t i = 0; i < points; ++i) {
      double phi = margin[i] + 0.6 * rng.Normal();
      if (keep != nullptr && (*keep)[static_cast<size_t>(m) * points + i]) phi += vulnerability[i];
      for (int q = 0; q < o.queries; ++q) {
        const double phi_q = phi + (o.queries > 1 ? 0.3 * rng.Normal() : 0.0);
        double max_other = -1e300;
        for (int c = 0; c < c_count; ++c) {
          z[c] = rng.Normal();
          if (c != (*labels)[i]) max_other = std::max(max_other, z[c]);
        }
        double sum = 0;
        for (int c = 0; c < c_count; ++c) {
          if (c != (*labels)[i]) sum += std::exp(z[c] - max_other);
        }
        z[(*labels)[i]] = phi_q + max_other + std::log(sum);
        float* out =
            logits->data() + ((static_cast<size_t>(m) * points + i) * o.queries + q) * c_count;
        for (int c = 0; c < c_count; ++c) out[c] = static_cast<float>(z[c]);
      }
    }
  }
}

}  // namespace

absl::StatusOr<io::NpyMap> MakeSyntheticBundle(const SyntheticOptions& o) {
  if (o.models < 2 || o.models > 4096) {
    return absl::InvalidArgumentError("models must be in [2, 4096]");
  }
  if (o.points < 2 || o.points > 10'000'000 || o.population < 0 || o.population > 10'000'000) {
    return absl::InvalidArgumentError("points must be in [2, 1e7] and population in [0, 1e7]");
  }
  if (o.classes < 2 || o.classes > 1000) return absl::InvalidArgumentError("classes: [2, 1000]");
  if (o.queries < 1 || o.queries > 64) return absl::InvalidArgumentError("queries: [1, 64]");
  if (o.targets < 1 || o.targets > o.models) {
    return absl::InvalidArgumentError("targets must be in [1, models]");
  }
  if (!(o.leak >= 0 && o.leak < 100)) return absl::InvalidArgumentError("leak: [0, 100)");
  const double cells =
      static_cast<double>(o.models) * (o.points + o.population) * o.queries * o.classes;
  if (cells > 2e9) return absl::InvalidArgumentError("the bundle would exceed 8 GB of logits");

  Rng rng(o.seed);
  // Balanced membership: each point in a random half of the models.
  std::vector<uint8_t> keep(static_cast<size_t>(o.models) * o.points, 0);
  std::vector<int> order(o.models);
  for (int64_t i = 0; i < o.points; ++i) {
    for (int m = 0; m < o.models; ++m) order[m] = m;
    for (int m = o.models - 1; m > 0; --m) std::swap(order[m], order[rng.UniformInt(m + 1)]);
    for (int k = 0; k < o.models / 2; ++k) keep[static_cast<size_t>(order[k]) * o.points + i] = 1;
  }
  io::NpyMap arrays;
  std::vector<float> logits;
  std::vector<int64_t> labels;
  FillLogits(rng, o, o.points, &keep, &logits, &labels);
  std::vector<int64_t> shape = {o.models, o.points};
  if (o.queries > 1) shape.push_back(o.queries);
  shape.push_back(o.classes);
  arrays["logits"] = io::NpyArray::FromFloat(shape, logits);
  arrays["labels"] = io::NpyArray::FromInt64({o.points}, labels);
  arrays["keep"] = io::NpyArray::FromBool({o.models, o.points}, keep);
  if (o.population > 0) {
    FillLogits(rng, o, o.population, nullptr, &logits, &labels);
    shape[1] = o.population;
    arrays["population_logits"] = io::NpyArray::FromFloat(shape, logits);
    arrays["population_labels"] = io::NpyArray::FromInt64({o.population}, labels);
  }
  // Row ids as a dataset would have them: the audit points are rows 10000.. of
  // some larger table.
  std::vector<int64_t> row_ids(o.points);
  for (int64_t i = 0; i < o.points; ++i) row_ids[i] = 10000 + i;
  arrays["row_ids"] = io::NpyArray::FromInt64({o.points}, row_ids);
  std::vector<int64_t> targets(o.targets);
  for (int t = 0; t < o.targets; ++t) targets[t] = t;
  arrays["targets"] = io::NpyArray::FromInt64({o.targets}, targets);
  return arrays;
}

}  // namespace mia::audit
