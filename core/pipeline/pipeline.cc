#include "core/pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/audit/bundle.h"
#include "core/audit/scoring.h"
#include "core/common/random.h"
#include "core/common/sha256.h"
#include "core/common/status_macros.h"
#include "core/common/version.h"
#include "core/data/loaders.h"
#include "core/io/npy.h"
#include "core/pipeline/artifact_store.h"
#include "core/pipeline/splits.h"
#include "core/report/report.h"
#include "nlohmann/json.hpp"

namespace mia::pipeline {
namespace {

using Clock = std::chrono::steady_clock;

// Streams of the run seed, one per use, so that changing one use (say the
// audit set size) never changes another (say the splits).
enum SeedStream : uint64_t {
  kSeedRows = 1,
  kSeedSplits = 2,
  kSeedAuditSet = 3,
  kSeedScoring = 4,
  kSeedModels = 1000,  // + model index
};

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

absl::Status CheckCancel(const PipelineContext& ctx) {
  if (ctx.cancel != nullptr && ctx.cancel->load()) return absl::CancelledError("audit cancelled");
  return absl::OkStatus();
}

template <typename T>
std::vector<T> Gather(const std::vector<T>& values, const std::vector<int64_t>& index) {
  std::vector<T> out;
  out.reserve(index.size());
  for (int64_t i : index) out.push_back(values[i]);
  return out;
}

// Pool and population rows of the dataset (row ids), disjoint.
absl::Status ChoosePoolAndPopulation(const Config& c, int64_t rows, std::vector<int64_t>* pool,
                                     std::vector<int64_t>* population) {
  const int64_t z = c.data.population_size;
  const int64_t p = c.data.pool_size > 0 ? c.data.pool_size : rows - z;
  if (p < 2 || p + z > rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.pool_size (", p, ") + data.population_size (", z,
                     ") must fit the dataset's ", rows, " rows, with a pool of at least 2"));
  }
  std::vector<int64_t> order(rows);
  std::iota(order.begin(), order.end(), 0);
  if (c.data.shuffle) {
    Rng rng(DeriveSeed(c.run.random_seed, kSeedRows));
    for (int64_t k = rows; k > 1; --k) std::swap(order[k - 1], order[rng.UniformInt(k)]);
  }
  pool->assign(order.begin(), order.begin() + p);
  population->assign(order.begin() + p, order.begin() + p + z);
  return absl::OkStatus();
}

// The keep matrix [M, pool] of models trained elsewhere, from models.keep.
absl::StatusOr<std::vector<uint8_t>> ReadExternalKeep(const Config& c, int64_t pool) {
  MIA_ASSIGN_OR_RETURN(io::NpyMap arrays, io::ReadArrays(c.external.keep));
  if (arrays.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("models.keep: ", c.external.keep, " must hold exactly one array"));
  }
  const io::NpyArray& a = arrays.begin()->second;
  const int64_t m = static_cast<int64_t>(c.external.torchscript.size());
  if (a.shape != std::vector<int64_t>{m, pool}) {
    return absl::InvalidArgumentError(
        absl::StrCat("models.keep: ", c.external.keep, " must have shape (", m, ", ", pool,
                     "): one row per model in models.torchscript, one column per pool row"));
  }
  return a.ToBool("models.keep");
}

std::string SignalsKey(const std::string& model_id, const std::string& rows_sha,
                       const training::QueryAugmentation& aug, const training::TrainRecipe& r) {
  nlohmann::json j = {{"version", "mia-logits-v1"},
                      {"model", model_id},
                      {"rows", rows_sha},
                      {"flip", aug.flip},
                      {"shift", aug.shift},
                      {"normalize_mean", r.normalize_mean},
                      {"normalize_std", r.normalize_std}};
  return Sha256Hex(j.dump());
}

absl::StatusOr<std::string> FileSha256(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.Update(absl::string_view(buf.data(), static_cast<size_t>(in.gcount())));
  }
  return h.HexDigest();
}

absl::Status WriteModelsJson(const std::string& path, const std::vector<ModelRecord>& models,
                             const Config& c) {
  nlohmann::json list = nlohmann::json::array();
  for (const ModelRecord& m : models) {
    auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
    list.push_back({{"index", m.index},
                    {"role", m.target ? "target" : "reference"},
                    {"key", m.key},
                    {"source", m.source},
                    {"train_rows", m.train_rows},
                    {"train_accuracy", num(m.report.train_accuracy)},
                    {"train_loss", num(m.report.train_loss)},
                    {"test_accuracy", num(m.report.test_accuracy)},
                    {"test_loss", num(m.report.test_loss)},
                    {"seconds", num(m.report.seconds)},
                    {"batched", m.report.batched}});
  }
  nlohmann::json j = {{"schema", "mia.models"},
                      {"schema_version", 1},
                      {"recipe", nlohmann::json::parse(ConfigJson(c))["train"]},
                      {"models", list}};
  return WriteFileAtomically(path, j.dump(2) + "\n");
}

}  // namespace

absl::StatusOr<PipelineOutput> RunAudit(const Config& c, const PipelineContext& ctx) {
  auto progress = [&](const std::string& stage, int64_t done, int64_t total,
                      const std::string& detail, double stage_fraction = -1) {
    if (ctx.progress) ctx.progress({stage, done, total, detail, stage_fraction});
  };
  PipelineOutput output;
  std::vector<audit::StageTiming> timings;
  training::SetComputeThreads(c.run.threads);

  // Load the dataset.
  Clock::time_point t = Clock::now();
  progress("data", 0, 1, c.data.dataset);
  MIA_ASSIGN_OR_RETURN(data::Dataset ds, data::LoadDataset(c.data.source));
  const std::string fingerprint = data::Fingerprint(ds);
  audit::AddStageTime(&timings, "load", SecondsSince(t));
  progress("data", 1, 1, absl::StrCat(ds.size(), " rows, ", ds.num_classes, " classes"));

  // Split: pool, population, keep matrix, audit set.
  t = Clock::now();
  std::vector<int64_t> pool, population;
  MIA_RETURN_IF_ERROR(ChoosePoolAndPopulation(c, ds.size(), &pool, &population));
  const int64_t p = static_cast<int64_t>(pool.size());
  const int m_count = c.num_models();
  const bool external = !c.external.torchscript.empty();
  std::vector<uint8_t> keep;
  if (external) {
    MIA_ASSIGN_OR_RETURN(keep, ReadExternalKeep(c, p));
  } else {
    MIA_ASSIGN_OR_RETURN(SplitScheme scheme, ParseSplitScheme(c.audit.splits));
    MIA_ASSIGN_OR_RETURN(
        keep, MakeKeepMatrix(m_count, p, scheme, DeriveSeed(c.run.random_seed, kSeedSplits)));
  }
  std::vector<int64_t> audit_points(p);  // pool indices
  std::iota(audit_points.begin(), audit_points.end(), 0);
  if (c.audit.data_size > 0 && c.audit.data_size < p) {
    MIA_ASSIGN_OR_RETURN(audit_points,
                         BalancedAuditSet(keep, p, 0, c.audit.data_size,
                                          DeriveSeed(c.run.random_seed, kSeedAuditSet)));
  } else if (c.audit.data_size > p) {
    return absl::InvalidArgumentError(
        absl::StrCat("audit.data_size (", c.audit.data_size, ") exceeds the pool (", p, " rows)"));
  }
  audit::AddStageTime(&timings, "load", SecondsSince(t));  // choosing the splits
  progress("split", 1, 1,
           absl::StrCat(m_count, " models, pool ", p, ", population ", population.size(),
                        ", audit points ", audit_points.size()));
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));

  // Train the models the store lacks; reuse the rest.
  t = Clock::now();
  ArtifactStore store(c.run.log_dir);
  MIA_RETURN_IF_ERROR(store.Init());
  std::vector<ModelKeyMaterial> materials(m_count);
  std::vector<std::string> model_paths(m_count);
  output.models.resize(m_count);
  std::vector<int> to_train;
  std::vector<std::vector<int64_t>> train_rows(m_count);
  for (int m = 0; m < m_count; ++m) {
    ModelRecord& rec = output.models[m];
    rec.index = m;
    rec.target = m < c.run.num_experiments;
    train_rows[m] = Gather(pool, TrainingPoints(keep, p, m));
    rec.train_rows = static_cast<int64_t>(train_rows[m].size());
    if (external) {
      model_paths[m] = c.external.torchscript[m];
      rec.source = model_paths[m];
      rec.report.train_accuracy = rec.report.test_accuracy = std::nan("");
      rec.report.train_loss = rec.report.test_loss = rec.report.seconds = std::nan("");
      continue;
    }
    ModelKeyMaterial& km = materials[m];
    km.dataset_fingerprint = fingerprint;
    km.spec = c.model;
    km.recipe = c.recipe;
    km.rows_sha256 = RowsSha256(train_rows[m]);
    km.seed = DeriveSeed(c.run.random_seed, kSeedModels + m);
    rec.key = km.Key();
    model_paths[m] = store.ModelPath(rec.key);
    if (store.HasModel(km)) {
      rec.source = "cache";
      MIA_ASSIGN_OR_RETURN(rec.report, store.ReadReport(km));
    } else {
      to_train.push_back(m);
    }
  }
  const int cached = m_count - static_cast<int>(to_train.size());
  progress("train", cached, m_count,
           absl::StrCat(cached, " from the cache, ", to_train.size(), " to train"),
           static_cast<double>(cached) / std::max(1, m_count));
  if (!to_train.empty()) {
    std::vector<std::vector<int64_t>> rows;
    std::vector<uint64_t> seeds;
    std::vector<std::string> paths;
    for (int m : to_train) {
      rows.push_back(train_rows[m]);
      seeds.push_back(materials[m].seed);
      paths.push_back(model_paths[m]);
    }
    training::TrainContext tctx;
    tctx.device = c.train_device;
    tctx.cancel = ctx.cancel;
    tctx.allow_batched =
        c.batched_training.value_or(training::ResolveDevice(c.train_device) != "cpu");
    // The count is the models saved so far (batched groups and parallel
    // lanes finish models in any order); the stage's share moves with every
    // batch of every model; the detail follows one model at a time until it
    // finishes. The engine never calls these two at once.
    int saved = 0;
    int followed = -1;
    bool followed_done = true;
    // Each model's share of its batches done; summed afresh in a fixed order
    // (floating-point addition is monotone in each term, a running total
    // updated by differences is not).
    std::vector<double> model_share(to_train.size(), 0.0);
    auto train_share = [&] {
      const double sum = std::accumulate(model_share.begin(), model_share.end(), 0.0);
      return std::min(1.0, (cached + sum) / m_count);
    };
    tctx.progress = [&](int model, int epoch, int batch, int batches) {
      const double share = std::min(
          1.0, (static_cast<double>(epoch) * batches + batch + 1) /
                   (static_cast<double>(std::max(1, c.recipe.epochs)) * std::max(1, batches)));
      if (model >= 0 && model < static_cast<int>(model_share.size())) {
        model_share[model] = std::max(model_share[model], share);
      }
      if (model != followed) {
        if (!followed_done) return;
        followed = model;
      }
      followed_done = epoch + 1 == c.recipe.epochs && batch + 1 == batches;
      progress("train", cached + saved, m_count,
               absl::StrFormat("model %d/%d epoch %d/%d batch %d/%d", to_train[model] + 1, m_count,
                               epoch + 1, c.recipe.epochs, batch + 1, batches),
               train_share());
    };
    // Commit each model the moment its archive exists, so that a crash or a
    // drain loses only the models still in training.
    tctx.model_saved = [&](int k, const training::ModelReport& report) {
      const int m = to_train[k];
      output.models[m].source = "trained";
      output.models[m].report = report;
      MIA_RETURN_IF_ERROR(store.CommitModel(materials[m], report));
      ++saved;
      model_share[k] = 1.0;
      progress("train", cached + saved, m_count, absl::StrCat(saved, " trained"), train_share());
      return absl::OkStatus();
    };
    MIA_RETURN_IF_ERROR(
        training::TrainModels(ds, c.model, c.recipe, rows, population, seeds, paths, tctx)
            .status());
    output.models_trained = static_cast<int>(to_train.size());
  }
  audit::AddStageTime(&timings, "train", SecondsSince(t));
  progress("train", m_count, m_count, absl::StrCat(output.models_trained, " trained"), 1.0);
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));

  // Signals: logits of every model on the audit points and the population.
  t = Clock::now();
  const std::vector<int64_t> audit_rows = Gather(pool, audit_points);
  std::vector<int64_t> query_rows = audit_rows;
  query_rows.insert(query_rows.end(), population.begin(), population.end());
  const std::string rows_sha = RowsSha256(query_rows);
  const int64_t n = static_cast<int64_t>(audit_rows.size());
  const int64_t z = static_cast<int64_t>(population.size());
  const int a_count = c.audit.augmentation.NumQueries(ds.is_image());
  int classes = 0;
  std::vector<float> audit_logits, pop_logits;
  training::TrainContext ictx;
  ictx.device = c.audit.device;
  ictx.cancel = ctx.cancel;
  // Cached signals are read first; the rest are computed in parallel lanes
  // (ComputeLogitsMany) and cached as each model finishes.
  std::vector<std::vector<float>> model_logits(m_count);
  std::vector<int> model_classes(m_count, 0);
  std::vector<std::string> signal_paths(m_count);
  std::vector<int> to_compute;
  int signals_done = 0;
  auto signal_done = [&] {
    ++signals_done;
    progress("signals", signals_done, m_count,
             absl::StrCat("signals of ", signals_done, "/", m_count, " models"));
  };
  for (int m = 0; m < m_count; ++m) {
    MIA_RETURN_IF_ERROR(CheckCancel(ctx));
    std::string model_id = output.models[m].key;
    if (external) {
      MIA_ASSIGN_OR_RETURN(model_id, FileSha256(model_paths[m]));
    }
    signal_paths[m] =
        store.SignalsPath(SignalsKey(model_id, rows_sha, c.audit.augmentation, c.recipe));
    absl::StatusOr<io::NpyMap> cached_signals = io::ReadArrays(signal_paths[m]);
    if (cached_signals.ok() && cached_signals->size() == 1 &&
        cached_signals->begin()->second.shape.size() == 3 &&
        cached_signals->begin()->second.shape[0] == n + z &&
        cached_signals->begin()->second.shape[1] == a_count) {
      model_classes[m] = static_cast<int>(cached_signals->begin()->second.shape[2]);
      MIA_ASSIGN_OR_RETURN(model_logits[m], cached_signals->begin()->second.ToFloat("signals"));
      signal_done();
    } else {
      to_compute.push_back(m);
    }
  }
  if (!to_compute.empty()) {
    std::vector<std::string> compute_paths;
    for (int m : to_compute) compute_paths.push_back(model_paths[m]);
    MIA_RETURN_IF_ERROR(training::ComputeLogitsMany(
        compute_paths, external, c.model, c.recipe, ds, query_rows, c.audit.augmentation, ictx,
        [&](int i, std::vector<float> logits, int classes) -> absl::Status {
          const int m = to_compute[i];
          MIA_RETURN_IF_ERROR(io::WriteNpy(
              signal_paths[m], io::NpyArray::FromFloat({n + z, a_count, classes}, logits)));
          model_logits[m] = std::move(logits);
          model_classes[m] = classes;
          signal_done();
          return absl::OkStatus();
        }));
  }
  for (int m = 0; m < m_count; ++m) {
    if (m == 0) {
      classes = model_classes[m];
      audit_logits.reserve(static_cast<size_t>(m_count) * n * a_count * classes);
      pop_logits.reserve(static_cast<size_t>(m_count) * z * a_count * classes);
    } else if (model_classes[m] != classes) {
      return absl::InvalidArgumentError(absl::StrCat("model ", m, " outputs ", model_classes[m],
                                                     " classes, model 0 outputs ", classes));
    }
    const std::vector<float>& logits = model_logits[m];
    const size_t split = static_cast<size_t>(n) * a_count * classes;
    audit_logits.insert(audit_logits.end(), logits.begin(), logits.begin() + split);
    pop_logits.insert(pop_logits.end(), logits.begin() + split, logits.end());
    std::vector<float>().swap(model_logits[m]);
  }
  audit::AddStageTime(&timings, "signals", SecondsSince(t));

  // The audit itself: a bundle in memory, scored like `mia score` does.
  audit::Bundle bundle;
  bundle.path = c.path;
  bundle.audit.has_logits = true;
  bundle.audit.logits = std::move(audit_logits);
  bundle.audit.logits_shape = {m_count, n, a_count, classes};
  bundle.audit.labels = Gather(ds.labels, audit_rows);
  bundle.audit.array_name = "logits";
  if (z > 0) {
    audit::SignalSource pop;
    pop.has_logits = true;
    pop.logits = std::move(pop_logits);
    pop.logits_shape = {m_count, z, a_count, classes};
    pop.labels = Gather(ds.labels, population);
    pop.array_name = "population_logits";
    bundle.population = std::move(pop);
  }
  bundle.keep.resize(static_cast<size_t>(m_count) * n);
  for (int m = 0; m < m_count; ++m) {
    for (int64_t i = 0; i < n; ++i) {
      bundle.keep[static_cast<size_t>(m) * n + i] =
          keep[static_cast<size_t>(m) * p + audit_points[i]];
    }
  }
  bundle.row_ids = audit_rows;
  for (int k = 0; k < c.run.num_experiments; ++k) bundle.targets.push_back(k);

  progress("audit", 0, 1, "");
  audit::ScoringOptions scoring = c.audit.scoring;
  scoring.seed = DeriveSeed(c.run.random_seed, kSeedScoring);
  scoring.cancel = ctx.cancel;
  MIA_ASSIGN_OR_RETURN(output.result, audit::ScoreBundle(bundle, scoring));
  output.result.spec_json = ConfigJson(c);
  // Every report says which mia made it (`mia audit` and the server alike).
  output.result.tool_version = MIA_VERSION;
  // The pipeline's stages first, then scoring's (whose signals from logits add
  // to the signals stage): one line per stage.
  for (const audit::StageTiming& st : output.result.timings) {
    audit::AddStageTime(&timings, st.stage, st.seconds);
  }
  output.result.timings = std::move(timings);
  progress("audit", 1, 1, "");

  // Report: the audit's files, models.json, and the signals as a bundle that
  // `mia score` can re-audit.
  t = Clock::now();
  output.report_dir = ctx.report_dir.empty()
                          ? (std::filesystem::path(c.run.log_dir) / c.audit.report_log).string()
                          : ctx.report_dir;
  io::NpyMap arrays;
  arrays["keep"] = io::NpyArray::FromBool({m_count, n}, bundle.keep);
  std::vector<int64_t> shape = {m_count, n};
  if (a_count > 1) shape.push_back(a_count);
  shape.push_back(classes);
  arrays["logits"] = io::NpyArray::FromFloat(shape, bundle.audit.logits);
  arrays["labels"] = io::NpyArray::FromInt64({n}, bundle.audit.labels);
  if (bundle.population.has_value()) {
    shape[1] = z;
    arrays["population_logits"] = io::NpyArray::FromFloat(shape, bundle.population->logits);
    arrays["population_labels"] = io::NpyArray::FromInt64({z}, bundle.population->labels);
  }
  arrays["row_ids"] = io::NpyArray::FromInt64({n}, bundle.row_ids);
  std::vector<int64_t> targets(bundle.targets.begin(), bundle.targets.end());
  arrays["targets"] = io::NpyArray::FromInt64({static_cast<int64_t>(targets.size())}, targets);
  std::error_code ec;
  std::filesystem::create_directories(output.report_dir, ec);
  MIA_RETURN_IF_ERROR(io::WriteNpz(output.report_dir + "/signals.npz", arrays, /*compress=*/false));
  MIA_RETURN_IF_ERROR(WriteModelsJson(output.report_dir + "/models.json", output.models, c));
  audit::AddStageTime(&output.result.timings, "report", SecondsSince(t));
  if (!c.run.time_log) output.result.timings.clear();
  MIA_RETURN_IF_ERROR(report::WriteReport(output.result, output.report_dir));
  progress("report", 1, 1, "report written");  // never a server path
  return output;
}

}  // namespace mia::pipeline
