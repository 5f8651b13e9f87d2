// The range audit (RaMIA, ATTACKS.md "Range membership"; docs/attacks.md,
// "Ranges"): the classifier audit's load, split and train stages, then the
// range game in place of the audit set.
//
//  - Member ranges are built around training points of target 0 (pool rows it
//    trained on), non-member ranges around population rows; audit.data_size
//    ranges, half of each (0: min(target 0's members, population / 2) of
//    each). The rest of the population is what the attacks compare with.
//  - Each range's centre is its row perturbed (audit::PerturbedCentre), its s
//    points sampled around the centre (audit::SampleRange), both seeded by the
//    run seed and the centre's row.
//  - Every model's logits on the sampled points and the remaining population
//    are computed on a dataset of the generated rows (never cached: they
//    depend on the range settings), scored as a bundle whose keep matrix is
//    all 0 (no model trained on a sampled point, so every reference is OUT),
//    and each attack's point scores become range scores by the trimmed mean.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/attacks/registry.h"
#include "core/audit/ramia.h"
#include "core/common/random.h"
#include "core/common/file_util.h"
#include "core/common/status_macros.h"
#include "core/pipeline/splits.h"
#include "core/pipeline/stages.h"
#include "core/report/report.h"

namespace mia::pipeline::internal {
namespace {

// Which rows the ranges are built around, and their membership.
struct RangeGame {
  std::vector<int64_t> centre_rows;  // dataset rows, member ranges first
  int64_t members = 0;               // ranges centred on target 0's training rows
  std::vector<uint8_t> keep;         // [models * ranges]
  std::vector<int64_t> population;   // dataset rows the attacks compare with
};

void SeededShuffle(std::vector<int64_t>* v, uint64_t seed) {
  Rng rng(seed);
  for (size_t k = v->size(); k > 1; --k) std::swap((*v)[k - 1], (*v)[rng.UniformInt(k)]);
}

bool NeedsPopulation(const Config& c) {
  for (const std::string& spec : c.audit.scoring.attacks) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> attack = attacks::MakeAttack(spec);
    if (attack.ok() && (*attack)->needs().population) return true;
  }
  return false;
}

absl::StatusOr<RangeGame> ChooseRanges(const Config& c, const Split& split) {
  const int m_count = c.num_models();
  std::vector<int64_t> members;  // pool indices target 0 trained on
  for (int64_t i = 0; i < split.p; ++i) {
    if (split.keep[i]) members.push_back(i);
  }
  const int64_t z = static_cast<int64_t>(split.population.size());
  const bool need_population = NeedsPopulation(c);
  int64_t half = c.audit.data_size / 2;
  if (c.audit.data_size == 0) half = std::min<int64_t>(members.size(), z / 2);
  if (half < 1) {
    return absl::InvalidArgumentError(
        "audit.data_size: a range audit needs at least one member and one non-member range "
        "(training rows of target 0 and population rows)");
  }
  if (half > static_cast<int64_t>(members.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "audit.data_size (", c.audit.data_size, ") asks for ", half,
        " member ranges; target 0 trained on ", members.size(), " rows"));
  }
  if (half + (need_population ? 1 : 0) > z) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data.population_size (", z, ") must hold the ", half, " non-member range centres",
        need_population ? " and at least 1 point for the attacks to compare with" : ""));
  }
  const uint64_t seed = DeriveSeed(c.run.random_seed, kSeedRamiaRanges);
  SeededShuffle(&members, DeriveSeed(seed, 0));
  std::vector<int64_t> population_order(z);
  std::iota(population_order.begin(), population_order.end(), 0);
  std::vector<int64_t> shuffled = population_order;
  SeededShuffle(&shuffled, DeriveSeed(seed, 1));
  RangeGame g;
  g.members = half;
  const int64_t ranges = 2 * half;
  g.keep.assign(static_cast<size_t>(m_count) * ranges, 0);
  std::vector<uint8_t> is_centre(z, 0);
  for (int64_t k = 0; k < half; ++k) {
    const int64_t pool_index = members[k];
    g.centre_rows.push_back(split.pool[pool_index]);
    for (int m = 0; m < m_count; ++m) {
      g.keep[static_cast<size_t>(m) * ranges + k] =
          split.keep[static_cast<size_t>(m) * split.p + pool_index];
    }
  }
  for (int64_t k = 0; k < half; ++k) {
    g.centre_rows.push_back(split.population[shuffled[k]]);
    is_centre[shuffled[k]] = 1;
  }
  for (int64_t j = 0; j < z; ++j) {
    if (!is_centre[j]) g.population.push_back(split.population[j]);  // in the split's order
  }
  return g;
}

// The dataset the signals are computed on: the s sampled points of every
// range (range after range, each labelled with its centre's label), then the
// population rows the attacks compare with.
absl::StatusOr<data::Dataset> SampleRanges(const Config& c, const PipelineContext& ctx,
                                           const data::Dataset& ds, const RangeGame& g) {
  const audit::RamiaOptions& r = *c.audit.ramia;
  const int64_t d = ds.sample_numel();
  data::Dataset out;
  out.name = "ramia:" + ds.name;
  out.sample_shape = ds.sample_shape;
  out.num_classes = ds.num_classes;
  const int64_t points = static_cast<int64_t>(g.centre_rows.size()) * r.sample_size;
  out.features.reserve(static_cast<size_t>((points + g.population.size()) * d));
  out.labels.reserve(static_cast<size_t>(points) + g.population.size());
  const uint64_t seed = DeriveSeed(c.run.random_seed, kSeedRamiaPoints);
  for (size_t k = 0; k < g.centre_rows.size(); ++k) {
    if (k % 1024 == 0) {
      MIA_RETURN_IF_ERROR(CheckCancel(ctx));
      SendProgress(ctx, "signals", static_cast<int64_t>(k), g.centre_rows.size(),
                   absl::StrCat("sampling range ", k + 1, " of ", g.centre_rows.size()));
    }
    const int64_t row = g.centre_rows[k];
    const uint64_t row_seed = DeriveSeed(seed, static_cast<uint64_t>(row));
    const absl::Span<const float> x(ds.features.data() + row * d, static_cast<size_t>(d));
    const std::vector<float> centre = audit::PerturbedCentre(r, x, DeriveSeed(row_seed, 0));
    MIA_ASSIGN_OR_RETURN(std::vector<float> sampled,
                         audit::SampleRange(r, centre, ds.sample_shape, DeriveSeed(row_seed, 1)));
    out.features.insert(out.features.end(), sampled.begin(), sampled.end());
    out.labels.insert(out.labels.end(), r.sample_size, ds.labels[row]);
  }
  for (int64_t row : g.population) {
    out.features.insert(out.features.end(), ds.features.begin() + row * d,
                        ds.features.begin() + (row + 1) * d);
    out.labels.push_back(ds.labels[row]);
  }
  return out;
}

// Checks of the settings against the loaded data, before any training.
absl::Status CheckRangesFitData(const Config& c, const data::Dataset& ds, int64_t ranges,
                                int64_t population) {
  const audit::RamiaOptions& r = *c.audit.ramia;
  if (r.range_function == "geometric" && !ds.is_image()) {
    return absl::InvalidArgumentError(
        "ramia.range_function: geometric ranges transform images; this dataset holds "
        "tabular rows (use l2 or missing_values)");
  }
  if (r.range_function == "missing_values" && r.num_missing_feats > ds.sample_numel()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ramia.num_missing_feats (", r.num_missing_feats,
                     ") exceeds the data's ", ds.sample_numel(), " features per row"));
  }
  const int64_t values = (ranges * r.sample_size + population) * ds.sample_numel();
  if (values > kMaxRamiaSampledValues) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ramia.sample_size: ", ranges, " ranges x ", r.sample_size, " points (+ ", population,
        " population rows) x ", ds.sample_numel(), " features is above the limit of ",
        kMaxRamiaSampledValues, " sampled values; lower audit.data_size or ramia.sample_size"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PipelineOutput> RunRamiaAudit(const Config& c, const PipelineContext& ctx) {
  const audit::RamiaOptions& r = *c.audit.ramia;
  training::SetComputeThreads(c.run.threads);
  PipelineOutput output;
  std::vector<audit::StageTiming> timings;
  MIA_ASSIGN_OR_RETURN(const LoadedData data, LoadStage(c, ctx, &timings));
  // The splits of the classifier audit; the ranges take the audit set's place.
  Config split_config = c;
  split_config.audit.data_size = 0;
  MIA_ASSIGN_OR_RETURN(const Split split,
                       SplitStage(split_config, ctx, data.ds.size(), &timings));
  MIA_ASSIGN_OR_RETURN(const RangeGame game, ChooseRanges(c, split));
  const int64_t ranges = static_cast<int64_t>(game.centre_rows.size());
  const int64_t z = static_cast<int64_t>(game.population.size());
  MIA_RETURN_IF_ERROR(CheckRangesFitData(c, data.ds, ranges, z));
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));
  ArtifactStore store(c.run.log_dir, ctx.artifact_remote);
  MIA_ASSIGN_OR_RETURN(const std::vector<std::string> model_paths,
                       TrainStage(c, ctx, data, split, &store, &output, &timings));
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));

  // Signals of every model on the sampled points and the population.
  Clock::time_point t = Clock::now();
  MIA_ASSIGN_OR_RETURN(const data::Dataset sampled, SampleRanges(c, ctx, data.ds, game));
  const int m_count = c.num_models();
  const int64_t n = ranges * r.sample_size;
  const int a_count = c.audit.augmentation.NumQueries(data.ds.is_image());
  std::vector<int64_t> rows(n + z);
  std::iota(rows.begin(), rows.end(), 0);
  training::TrainContext ictx;
  std::string unused_warning;  // reported by ScoreStage (DeviceWarnings)
  ictx.device = training::UsableDevice(c.audit.device, "audit.device", &unused_warning);
  ictx.cancel = ctx.cancel;
  ictx.data_on_device = c.data_on_device;
  ictx.channels_last = c.channels_last;
  std::vector<std::vector<float>> logits(m_count);
  std::vector<int> classes(m_count, 0);
  const std::function<void()> signal_done = SignalsCounter(ctx, m_count);
  MIA_RETURN_IF_ERROR(training::ComputeLogitsMany(
      model_paths, !c.external.torchscript.empty(), c.model, c.recipe, sampled, rows,
      c.audit.augmentation, ictx,
      [&](int m, std::vector<float> l, int k) -> absl::Status {
        logits[m] = std::move(l);
        classes[m] = k;
        signal_done();
        return absl::OkStatus();
      }));
  const int k = classes[0];
  audit::Bundle bundle;
  bundle.path = c.path;
  bundle.audit.has_logits = true;
  bundle.audit.array_name = "logits";
  bundle.audit.logits_shape = {m_count, n, a_count, k};
  bundle.audit.labels.assign(sampled.labels.begin(), sampled.labels.begin() + n);
  audit::SignalSource pop;
  pop.has_logits = true;
  pop.array_name = "population_logits";
  pop.logits_shape = {m_count, z, a_count, k};
  pop.labels.assign(sampled.labels.begin() + n, sampled.labels.end());
  const size_t cut = static_cast<size_t>(n) * a_count * k;
  for (int m = 0; m < m_count; ++m) {
    if (classes[m] != k) {
      return absl::InvalidArgumentError(
          absl::StrCat("model ", m, " outputs ", classes[m], " classes, model 0 outputs ", k));
    }
    bundle.audit.logits.insert(bundle.audit.logits.end(), logits[m].begin(),
                               logits[m].begin() + cut);
    pop.logits.insert(pop.logits.end(), logits[m].begin() + cut, logits[m].end());
    std::vector<float>().swap(logits[m]);
  }
  if (z > 0) bundle.population = std::move(pop);
  bundle.keep.assign(static_cast<size_t>(m_count) * n, 0);  // nobody trained on a sampled point
  for (int64_t row : game.centre_rows) bundle.row_ids.insert(bundle.row_ids.end(), r.sample_size, row);
  for (int i = 0; i < c.run.num_experiments; ++i) bundle.targets.push_back(i);
  audit::AddStageTime(&timings, "signals", SecondsSince(t));

  audit::RangeGroups groups;
  groups.size = r.sample_size;
  groups.trim = r.trim;
  groups.keep = game.keep;
  groups.row_ids = game.centre_rows;
  MIA_RETURN_IF_ERROR(ScoreStage(c, ctx, bundle, std::move(timings), &output, &groups));
  audit::RamiaSummary summary;
  summary.range_function = r.range_function;
  summary.sample_size = r.sample_size;
  summary.trim = r.trim;
  summary.trimmed_each_end = audit::TrimCount(r.sample_size, r.trim);
  summary.radius = r.range_function == "l2" ? r.radius : 0;
  summary.num_missing_feats = r.range_function == "missing_values" ? r.num_missing_feats : 0;
  summary.ranges = ranges;
  summary.member_ranges = game.members;
  summary.non_member_ranges = ranges - game.members;
  summary.population_points = z;
  output.result.ramia = summary;

  // The report: no signals.npz (its points are generated, never trained on,
  // and `mia score` audits points, not ranges).
  t = Clock::now();
  MakeReportDir(c, ctx, &output);
  MIA_RETURN_IF_ERROR(FinishReport(c, ctx, t, &output));
  return output;
}

}  // namespace mia::pipeline::internal
