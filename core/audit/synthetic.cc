#include "core/audit/synthetic.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/attacks/token_signals.h"
#include "core/audit/bundle.h"
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

// Balanced membership: each point in a random half of the models.
std::vector<uint8_t> BalancedKeep(Rng& rng, int models, int64_t points) {
  std::vector<uint8_t> keep(static_cast<size_t>(models) * points, 0);
  std::vector<int> order(models);
  for (int64_t i = 0; i < points; ++i) {
    for (int m = 0; m < models; ++m) order[m] = m;
    for (int m = models - 1; m > 0; --m) std::swap(order[m], order[rng.UniformInt(m + 1)]);
    for (int k = 0; k < models / 2; ++k) keep[static_cast<size_t>(order[k]) * points + i] = 1;
  }
  return keep;
}

// Row ids as a dataset would have them: the audit points are rows 10000.. of
// some larger table; models 0..targets-1 are the targets.
void AddIdsAndTargets(int64_t points, int targets, io::NpyMap* arrays) {
  std::vector<int64_t> row_ids(points);
  for (int64_t i = 0; i < points; ++i) row_ids[i] = 10000 + i;
  (*arrays)["row_ids"] = io::NpyArray::FromInt64({points}, row_ids);
  std::vector<int64_t> ids(targets);
  for (int t = 0; t < targets; ++t) ids[t] = t;
  (*arrays)["targets"] = io::NpyArray::FromInt64({targets}, ids);
}

// -log(1 + exp(-x)): a log-probability (<= 0) from a log-odds x.
double LogSigmoid(double x) {
  return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x));
}

// A made-up word: 1 to 3 syllables of a small alphabet (some words recur, so
// texts compress differently).
std::string Word(Rng& rng) {
  static constexpr const char* kSyllables[] = {"ka", "lo", "mi", "ne", "su", "ta", "ri",
                                               "po", "ve", "da", "zu", "fe", "go", "hi"};
  constexpr uint64_t kCount = sizeof(kSyllables) / sizeof(kSyllables[0]);
  std::string word;
  const uint64_t syllables = 1 + rng.UniformInt(3);
  for (uint64_t k = 0; k < syllables; ++k) word += kSyllables[rng.UniformInt(kCount)];
  return word;
}

// Per-token signals of `points` texts (and the texts, when asked). Each
// position has a difficulty (its log-odds, shared by all models) and a
// next-token distribution's mean and variance of log p; each model adds
// noise, and a text in its training set (`keep`) gets the text's
// vulnerability added to every position's log-odds. Positions past a text's
// length hold 0.
void FillTokens(Rng& rng, const SyntheticLmOptions& o, int64_t points,
                const std::vector<uint8_t>* keep, attacks::TokenSignals* s,
                std::vector<std::string>* texts) {
  const int64_t l = o.max_length;
  s->models = o.models;
  s->points = points;
  s->max_length = l;
  s->lengths.resize(points);
  const int64_t shortest = std::max<int64_t>(1, l / 4);
  for (auto& t : s->lengths) t = shortest + static_cast<int64_t>(rng.UniformInt(l - shortest + 1));
  const size_t cells = static_cast<size_t>(o.models) * points * l;
  s->logprobs.assign(cells, 0.0f);
  if (o.stats) {
    s->mean.assign(cells, 0.0f);
    s->var.assign(cells, 0.0f);
  }
  std::vector<double> difficulty(l), entropy(l), spread(l);
  for (int64_t i = 0; i < points; ++i) {
    const double vulnerability = o.leak * std::exp(0.75 * rng.Normal() - 0.28);
    for (int64_t t = 0; t < s->lengths[i]; ++t) {
      difficulty[t] = 1.0 + 1.5 * rng.Normal();
      entropy[t] = 0.5 + 3.0 * rng.Uniform01();
      spread[t] = 0.3 + 2.0 * rng.Uniform01();
    }
    for (int m = 0; m < o.models; ++m) {
      const bool member = keep != nullptr && (*keep)[static_cast<size_t>(m) * points + i];
      const int64_t base = s->offset(m, i);
      for (int64_t t = 0; t < s->lengths[i]; ++t) {
        const double x = difficulty[t] + 0.5 * rng.Normal() + (member ? vulnerability : 0.0);
        s->logprobs[base + t] = static_cast<float>(LogSigmoid(x));
        if (o.stats) {
          s->mean[base + t] = static_cast<float>(std::min(0.0, -entropy[t] + 0.1 * rng.Normal()));
          s->var[base + t] = static_cast<float>(spread[t]);
        }
      }
    }
  }
  texts->clear();
  if (o.texts) {
    texts->resize(points);
    for (int64_t i = 0; i < points; ++i) {
      for (int64_t t = 0; t < s->lengths[i]; ++t) {
        if (t > 0) (*texts)[i] += ' ';
        (*texts)[i] += Word(rng);
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

  if (!o.keep.empty() && o.keep.size() != static_cast<size_t>(o.models) * o.points) {
    return absl::InvalidArgumentError("keep must have models x points entries");
  }
  Rng rng(o.seed);
  const std::vector<uint8_t> keep = o.keep.empty() ? BalancedKeep(rng, o.models, o.points) : o.keep;
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
  AddIdsAndTargets(o.points, o.targets, &arrays);
  return arrays;
}

absl::StatusOr<io::NpyMap> MakeSyntheticLmBundle(const SyntheticLmOptions& o) {
  if (o.models < 2 || o.models > 4096) {
    return absl::InvalidArgumentError("models must be in [2, 4096]");
  }
  if (o.points < 2 || o.points > 10'000'000 || o.population < 0 || o.population > 10'000'000) {
    return absl::InvalidArgumentError("points must be in [2, 1e7] and population in [0, 1e7]");
  }
  if (o.max_length < 1 || o.max_length > 100'000) {
    return absl::InvalidArgumentError("max length must be in [1, 100000]");
  }
  if (o.targets < 1 || o.targets > o.models) {
    return absl::InvalidArgumentError("targets must be in [1, models]");
  }
  if (!(o.leak >= 0 && o.leak < 100)) return absl::InvalidArgumentError("leak: [0, 100)");
  const double cells =
      static_cast<double>(o.models) * (o.points + o.population) * o.max_length * (o.stats ? 3 : 1);
  if (cells > 2e9)
    return absl::InvalidArgumentError("the bundle would exceed 8 GB of token arrays");

  Rng rng(o.seed);
  const std::vector<uint8_t> keep = BalancedKeep(rng, o.models, o.points);
  LanguageModelSignals signals;
  FillTokens(rng, o, o.points, &keep, &signals.audit, &signals.texts);
  if (o.population > 0) {
    signals.population.emplace();
    FillTokens(rng, o, o.population, nullptr, &*signals.population, &signals.population_texts);
  }
  io::NpyMap arrays = LanguageModelBundleArrays(signals, keep);
  AddIdsAndTargets(o.points, o.targets, &arrays);
  return arrays;
}

}  // namespace mia::audit
