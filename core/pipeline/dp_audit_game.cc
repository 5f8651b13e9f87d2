// The DP audit in one run (ATTACKS.md, "DP auditing in one run"; docs/dp.md):
//   load -> choose m canaries in the pool (seeded; relabelled when
//   mislabelled) and include each in the target with probability 1/2 ->
//   train the target and the references once -> signals of the canaries ->
//   the configured attacks score them -> guesses and epsilon lower bounds for
//   each (k+, k-) -> report.
// Every model trains on all non-canary pool rows (its own seed); only the
// target sees canaries, the ones drawn IN. So every canary has all
// references OUT and none IN, whatever its membership in the target (the
// equal-count correction of ATTACKS.md holds by construction), and online
// attacks are refused by ParseConfig.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/random.h"
#include "core/common/status_macros.h"
#include "core/data/loaders.h"
#include "core/metrics/one_run_audit.h"
#include "core/pipeline/stages.h"
#include "core/training/engine.h"

namespace mia::pipeline::internal {
namespace {

// The canaries: pool indices (ascending) and whether the target trains on each.
struct Canaries {
  std::vector<int64_t> pool_index;
  std::vector<uint8_t> included;
};

// m distinct pool indices (seeded partial shuffle), sorted, then one fair
// coin per canary in that order, from the same stream.
Canaries DrawCanaries(uint64_t seed, int64_t pool, int64_t m) {
  Rng rng(seed);
  std::vector<int64_t> order(pool);
  std::iota(order.begin(), order.end(), 0);
  for (int64_t k = 0; k < m; ++k) {
    std::swap(order[k], order[k + static_cast<int64_t>(rng.UniformInt(pool - k))]);
  }
  Canaries c;
  c.pool_index.assign(order.begin(), order.begin() + m);
  std::sort(c.pool_index.begin(), c.pool_index.end());
  c.included.resize(m);
  for (int64_t i = 0; i < m; ++i) c.included[i] = static_cast<uint8_t>(rng.UniformInt(2));
  return c;
}

// Privacy Meter's grid for its "best" split: with s = floor(sqrt(m)), OUT for
// the a lowest and IN from sorted position b on, for a < b multiples of s,
// b < m (k- = a, k+ = m - b), in its order (b outer, a inner).
std::vector<metrics::OneRunGuessSplit> IncumbentGrid(int64_t m) {
  const int64_t step = std::max<int64_t>(1, static_cast<int64_t>(std::sqrt(static_cast<double>(m))));
  std::vector<metrics::OneRunGuessSplit> grid;
  for (int64_t b = 0; b < m; b += step) {
    for (int64_t a = 0; a < b; a += step) grid.push_back({m - b, a});
  }
  return grid;
}

audit::DpAuditEntry ToEntry(const metrics::OneRunGridEntry& e, bool after_looking) {
  audit::DpAuditEntry out;
  out.k_plus = e.split.k_plus;
  out.k_minus = e.split.k_minus;
  out.guesses = e.guesses;
  out.correct = e.correct;
  out.epsilon = e.epsilon;
  out.chosen_after_looking = after_looking;
  return out;
}

}  // namespace

absl::StatusOr<audit::DpAuditResult> DpAuditBounds(const DpAuditConfig& d,
                                                   const audit::AuditResult& result) {
  audit::DpAuditResult out;
  out.canary_dataset = d.canary_dataset;
  out.training_alg = d.training_alg;
  out.delta = d.delta;
  out.beta = d.beta;
  if (result.membership.empty()) return absl::InternalError("dp_audit: no target membership");
  const std::vector<uint8_t>& included = result.membership.front();
  const int64_t m = static_cast<int64_t>(included.size());
  out.canaries = m;
  out.included = std::count(included.begin(), included.end(), 1);
  std::vector<metrics::OneRunGuessSplit> grid;
  for (const DpAuditGuess& g : d.grid) grid.push_back({g.k_plus, g.k_minus});
  if (grid.empty()) grid = metrics::DefaultOneRunGrid(m);
  const std::vector<metrics::OneRunGuessSplit> incumbent = IncumbentGrid(m);
  metrics::OneRunOptions options;
  options.delta = d.delta;
  options.beta = d.beta;
  const int target = result.targets.empty() ? 0 : result.targets.front();
  for (const audit::AttackTargetResult& r : result.results) {
    if (r.target != target) continue;
    if (std::any_of(r.scores.begin(), r.scores.end(), [](double s) { return std::isnan(s); })) {
      return absl::InvalidArgumentError(
          absl::StrCat("dp_audit: attack ", r.attack, " could not score every canary"));
    }
    audit::DpAuditAttackResult a;
    a.attack = r.attack;
    MIA_ASSIGN_OR_RETURN(metrics::OneRunGridResult fixed,
                         metrics::OneRunAuditGrid(r.scores, included, grid, options));
    for (const metrics::OneRunGridEntry& e : fixed.entries) {
      a.entries.push_back(ToEntry(e, false));
    }
    a.best = fixed.best;
    out.note = fixed.note;
    if (!incumbent.empty()) {
      MIA_ASSIGN_OR_RETURN(metrics::OneRunGridResult looked,
                           metrics::OneRunAuditGrid(r.scores, included, incumbent, options));
      a.entries.push_back(ToEntry(looked.entries[looked.best], true));
    }
    out.attacks.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<PipelineOutput> RunDpAuditGame(const Config& c, const PipelineContext& ctx) {
  const DpAuditConfig& d = *c.dp_audit;
  training::SetComputeThreads(c.run.threads);
  PipelineOutput output;
  std::vector<audit::StageTiming> timings;
  MIA_ASSIGN_OR_RETURN(LoadedData data, LoadStage(c, ctx, &timings));

  const Clock::time_point t = Clock::now();
  Split split;
  MIA_RETURN_IF_ERROR(
      ChoosePoolAndPopulation(c, data.ds.size(), &split.pool, &split.population));
  split.p = static_cast<int64_t>(split.pool.size());
  const int64_t m = d.canary_size;
  if (m > split.p) {
    return absl::InvalidArgumentError(absl::StrCat("audit.dp_audit.canary_size (", m,
                                                   ") exceeds the pool (", split.p, " rows)"));
  }
  const Canaries canaries = DrawCanaries(DeriveSeed(c.run.random_seed, kSeedCanaries), split.p, m);
  if (d.canary_dataset == "mislabelled") {
    const int classes = data.ds.num_classes;
    if (classes < 2) {
      return absl::InvalidArgumentError(
          "audit.dp_audit.canary_dataset: mislabelled canaries need at least 2 classes");
    }
    // Each canary gets another class, uniform over the other classes.
    Rng rng(DeriveSeed(c.run.random_seed, kSeedCanaryLabels));
    for (int64_t i : canaries.pool_index) {
      int64_t& label = data.ds.labels[split.pool[i]];
      const int64_t shift = 1 + static_cast<int64_t>(rng.UniformInt(classes - 1));
      label = ((label % classes) + shift) % classes;
    }
    // The labels are part of what the models train on, hence of their keys.
    data.fingerprint = data::Fingerprint(data.ds);
  }
  const int m_count = c.num_models();
  split.keep.assign(static_cast<size_t>(m_count) * split.p, 1);
  for (int model = 0; model < m_count; ++model) {
    for (int64_t k = 0; k < m; ++k) {
      split.keep[static_cast<size_t>(model) * split.p + canaries.pool_index[k]] =
          model == 0 ? canaries.included[k] : 0;
    }
  }
  split.audit_points = canaries.pool_index;
  audit::AddStageTime(&timings, "load", SecondsSince(t));
  SendProgress(ctx, "split", 1, 1,
               absl::StrCat(m_count, " models, pool ", split.p, ", population ",
                            split.population.size(), ", canaries ", m));
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));

  ArtifactStore store(c.run.log_dir, ctx.artifact_remote);
  MIA_ASSIGN_OR_RETURN(const std::vector<std::string> model_paths,
                       TrainStage(c, ctx, data, split, &store, &output, &timings));
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));
  MIA_ASSIGN_OR_RETURN(Signals signals, SignalsStage(c, ctx, data, split, model_paths,
                                                     output.models, store, &timings));
  const audit::Bundle bundle = MakeBundle(c, data, split, std::move(signals));
  MIA_RETURN_IF_ERROR(ScoreStage(c, ctx, bundle, std::move(timings), &output));
  const Clock::time_point bounds_start = Clock::now();
  MIA_ASSIGN_OR_RETURN(output.result.dp_audit, DpAuditBounds(d, output.result));
  // A one-run lower bound above the target's DP-SGD accountant epsilon cannot
  // happen with a correct training and audit (ATTACKS.md, "DP-SGD and its
  // accountant"): flagged as an error, as the per-attack bounds are.
  for (const audit::DpGuarantee& g : output.result.dp) {
    if (g.target != 0) continue;
    for (const audit::DpAuditAttackResult& a : output.result.dp_audit->attacks) {
      for (const audit::DpAuditEntry& e : a.entries) {
        if (e.epsilon > g.epsilon) {
          output.result.warnings.push_back(absl::StrCat(
              "dp_audit: ", a.attack, "'s one-run lower bound ", e.epsilon, " (k+ ", e.k_plus,
              ", k- ", e.k_minus, ") is above the target's DP-SGD accountant epsilon ", g.epsilon,
              ": an error in training or audit"));
        }
      }
    }
  }
  audit::AddStageTime(&output.result.timings, "metrics", SecondsSince(bounds_start));
  MIA_RETURN_IF_ERROR(ReportStage(c, ctx, bundle, &output));
  return output;
}

}  // namespace mia::pipeline::internal
