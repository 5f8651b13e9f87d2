// The DUCI game (ATTACKS.md, "Dataset usage"; docs/duci.md): RunAudit for a
// config with audit.duci.
//
//   load -> split: X = audit points drawn from the pool; references in
//   balanced halves of the pool; one target per fraction f (times
//   run.num_experiments) on round(f |X|) rows of X plus |X| - round(f |X|)
//   rows of the pool outside X -> train -> signals -> per attack: threshold
//   chosen on the references (each attacked with the others), every target's
//   p_hat -> report
//
// The stages are the classifier audit's (stages.h); only the split and the
// scoring are the game's own.
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/attacks/registry.h"
#include "core/audit/duci.h"
#include "core/common/random.h"
#include "core/common/status_macros.h"
#include "core/common/version.h"
#include "core/pipeline/splits.h"
#include "core/pipeline/stages.h"

namespace mia::pipeline::internal {
namespace {

// The audit as the stages run it: T targets and R references, and a
// population set aside when an attack needs one and the spec gives none.
absl::StatusOr<Config> GameConfig(const Config& c, int64_t rows) {
  Config game = c;
  game.run.num_experiments = DuciTargetModels(c);
  game.audit.num_ref_models = DuciReferenceModels(c);
  bool needs_population = false;
  for (const std::string& spec : c.audit.scoring.attacks) {
    MIA_ASSIGN_OR_RETURN(std::unique_ptr<attacks::Attack> attack, attacks::MakeAttack(spec));
    needs_population = needs_population || attack->needs().population;
  }
  if (needs_population && c.data.population_size == 0) {
    // A fifth of the rows, within what data.pool_size leaves.
    int64_t z = rows / 5;
    if (c.data.pool_size > 0) z = std::min(z, rows - c.data.pool_size);
    if (z < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data.population_size: the attacks need population points and data.pool_size (",
          c.data.pool_size, ") leaves none of the dataset's ", rows, " rows"));
    }
    game.data.population_size = z;
  }
  return game;
}

struct DuciSplit {
  Split split;                         // keep [T + R, pool]; audit_points = X
  std::vector<double> true_fractions;  // per target: rows of X it trained on / |X|
};

absl::StatusOr<DuciSplit> DuciSplitStage(const Config& game, const PipelineContext& ctx,
                                         int64_t rows, std::vector<audit::StageTiming>* timings) {
  const Clock::time_point t = Clock::now();
  DuciSplit out;
  Split& s = out.split;
  MIA_RETURN_IF_ERROR(ChoosePoolAndPopulation(game, rows, &s.pool, &s.population));
  s.p = static_cast<int64_t>(s.pool.size());
  const int64_t n = game.audit.data_size > 0 ? game.audit.data_size : s.p / 2;
  if (n < 2 || n > s.p / 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "audit.data_size: the candidate dataset X (", n, " rows) must hold 2 to half the pool (",
        s.p,
        " rows): each DUCI target trains on |X| rows, its fraction of X and the rest from "
        "the pool outside X"));
  }
  const int targets = game.run.num_experiments;
  const int refs = game.audit.num_ref_models;
  const uint64_t seed = game.run.random_seed;
  // X: n pool rows at random.
  std::vector<int64_t> order(s.p);
  std::iota(order.begin(), order.end(), 0);
  Rng x_rng(DeriveSeed(seed, kSeedAuditSet));
  for (int64_t k = s.p; k > 1; --k) std::swap(order[k - 1], order[x_rng.UniformInt(k)]);
  std::vector<int64_t> x(order.begin(), order.begin() + n);
  std::vector<int64_t> rest(order.begin() + n, order.end());
  std::sort(x.begin(), x.end());
  std::sort(rest.begin(), rest.end());
  s.audit_points = x;

  s.keep.assign(static_cast<size_t>(targets + refs) * s.p, 0);
  MIA_ASSIGN_OR_RETURN(SplitScheme scheme, ParseSplitScheme(game.audit.splits));
  MIA_ASSIGN_OR_RETURN(std::vector<uint8_t> ref_keep,
                       MakeKeepMatrix(refs, s.p, scheme, DeriveSeed(seed, kSeedSplits)));
  std::copy(ref_keep.begin(), ref_keep.end(), s.keep.begin() + static_cast<int64_t>(targets) * s.p);
  const std::vector<double>& fractions = game.audit.duci->fractions;
  const int repeats = std::max(1, targets / static_cast<int>(fractions.size()));
  for (int m = 0; m < targets; ++m) {
    const double f = fractions[m / repeats];
    const auto k = static_cast<int64_t>(std::llround(f * static_cast<double>(n)));
    Rng rng(DeriveSeed(DeriveSeed(seed, kSeedDuci), static_cast<uint64_t>(m)));
    std::vector<int64_t> from_x = x, from_rest = rest;
    for (int64_t j = 0; j < k; ++j) {
      std::swap(from_x[j], from_x[j + rng.UniformInt(n - j)]);
      s.keep[static_cast<size_t>(m) * s.p + from_x[j]] = 1;
    }
    const int64_t r_count = static_cast<int64_t>(from_rest.size());
    for (int64_t j = 0; j < n - k; ++j) {
      std::swap(from_rest[j], from_rest[j + rng.UniformInt(r_count - j)]);
      s.keep[static_cast<size_t>(m) * s.p + from_rest[j]] = 1;
    }
    out.true_fractions.push_back(static_cast<double>(k) / static_cast<double>(n));
  }
  audit::AddStageTime(timings, "load", SecondsSince(t));
  SendProgress(ctx, "split", 1, 1,
               absl::StrCat("duci: ", targets, " targets, ", refs, " references, pool ", s.p,
                            ", population ", s.population.size(), ", candidate points ", n));
  return out;
}

}  // namespace

absl::StatusOr<PipelineOutput> RunDuciGame(const Config& c, const PipelineContext& ctx) {
  training::SetComputeThreads(c.run.threads);
  PipelineOutput output;
  std::vector<audit::StageTiming> timings;
  MIA_ASSIGN_OR_RETURN(const LoadedData data, LoadStage(c, ctx, &timings));
  MIA_ASSIGN_OR_RETURN(const Config game, GameConfig(c, data.ds.size()));
  MIA_ASSIGN_OR_RETURN(const DuciSplit split, DuciSplitStage(game, ctx, data.ds.size(), &timings));
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));
  ArtifactStore store(c.run.log_dir, ctx.artifact_remote);
  MIA_ASSIGN_OR_RETURN(const std::vector<std::string> model_paths,
                       TrainStage(game, ctx, data, split.split, &store, &output, &timings));
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));
  MIA_ASSIGN_OR_RETURN(Signals signals, SignalsStage(game, ctx, data, split.split, model_paths,
                                                     output.models, store, &timings));
  const audit::Bundle bundle = MakeBundle(game, data, split.split, std::move(signals));

  SendProgress(ctx, "audit", 0, 1, "duci");
  const Clock::time_point t = Clock::now();
  const int targets = game.run.num_experiments;
  audit::DuciOptions options;
  options.attacks = c.audit.scoring.attacks;
  options.temperature = c.audit.scoring.temperature;
  for (int m = 0; m < targets; ++m) options.targets.push_back(m);
  for (int m = targets; m < game.num_models(); ++m) options.references.push_back(m);
  options.true_fractions = split.true_fractions;
  options.seed = DeriveSeed(c.run.random_seed, kSeedScoring);
  options.cancel = ctx.cancel;
  options.threads = c.audit.scoring.bootstrap.threads;
  MIA_ASSIGN_OR_RETURN(audit::DuciResult duci, audit::RunDuci(bundle, options));
  audit::AuditResult& r = output.result;
  r.tool_version = MIA_VERSION;
  r.spec_json = ConfigJson(c);
  r.seed = options.seed;
  r.bootstrap_resamples = 0;
  r.confidence = c.audit.scoring.bootstrap.confidence;
  r.row_ids = bundle.row_ids;
  r.targets = options.targets;
  const int64_t n = bundle.points();
  for (int m : options.targets) {
    r.membership.emplace_back(bundle.keep.begin() + static_cast<int64_t>(m) * n,
                              bundle.keep.begin() + static_cast<int64_t>(m + 1) * n);
  }
  r.duci = std::move(duci);
  audit::AddStageTime(&timings, "attack", SecondsSince(t));
  r.timings = std::move(timings);
  SendProgress(ctx, "audit", 1, 1, "duci");
  MIA_RETURN_IF_ERROR(ReportStage(game, ctx, bundle, &output));
  return output;
}

}  // namespace mia::pipeline::internal
