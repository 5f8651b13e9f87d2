#include "core/pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/audit/bundle.h"
#include "core/audit/dp_guarantee.h"
#include "core/audit/policy.h"
#include "core/audit/scoring.h"
#include "core/common/random.h"
#include "core/common/sha256.h"
#include "core/common/status_macros.h"
#include "core/common/version.h"
#include "core/data/loaders.h"
#include "core/io/npy.h"
#include "core/pipeline/artifact_store.h"
#include "core/pipeline/splits.h"
#include "core/pipeline/stages.h"
#include "core/report/report.h"
#include "nlohmann/json.hpp"

namespace mia::pipeline {
// The stages shared with the language-model audit (core/pipeline/stages.h)
// and the classifier's own; only RunAudit is public.
namespace internal {

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

absl::Status CheckCancel(const PipelineContext& ctx) {
  if (ctx.cancel != nullptr && ctx.cancel->load()) return absl::CancelledError("audit cancelled");
  return absl::OkStatus();
}

absl::Status ChoosePoolAndPopulation(const Config& c, int64_t rows, std::vector<int64_t>* pool,
                                     std::vector<int64_t>* population) {
  const int64_t z = c.data.population_quarter ? rows / 4 : c.data.population_size;
  const int64_t p = c.data.pool_size > 0 ? c.data.pool_size : rows - z;
  if (p < 2 || p + z > rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.pool_size (", p, ") + data.population_size (", z,
                     ") must fit the dataset's ", rows, " rows, with a pool of at least 2"));
  }
  // ParseConfig checked the training work when data.pool_size was given;
  // otherwise the pool is known only now, before any training.
  if (c.external.torchscript.empty()) {
    const int epochs = c.language_model() ? c.lm->recipe.epochs : c.recipe.epochs;
    if (std::optional<ConfigProblem> problem = EpochRowsProblem(epochs, p)) {
      return absl::InvalidArgumentError(problem->ToString());
    }
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

void MakeReportDir(const Config& c, const PipelineContext& ctx, PipelineOutput* output) {
  output->report_dir = ctx.report_dir.empty()
                           ? (std::filesystem::path(c.run.log_dir) / c.audit.report_log).string()
                           : ctx.report_dir;
  std::error_code ec;  // a folder that cannot be made fails the first write, naming it
  std::filesystem::create_directories(output->report_dir, ec);
}

absl::Status FinishReport(const Config& c, const PipelineContext& ctx, Clock::time_point start,
                          PipelineOutput* output) {
  report::ReportOptions report_options;
  report_options.models_json = ModelsJson(output->models, c);
  MIA_RETURN_IF_ERROR(
      WriteFileAtomically(output->report_dir + "/models.json", report_options.models_json));
  audit::AddStageTime(&output->result.timings, "report", SecondsSince(start));
  if (!c.run.time_log) output->result.timings.clear();
  if (c.audit.policy.enabled) {
    absl::StatusOr<audit::PolicyVerdict> verdict = audit::Judge(output->result, c.audit.policy);
    if (!verdict.ok()) return verdict.status();
    output->result.policy = *std::move(verdict);
  }
  MIA_RETURN_IF_ERROR(report::WriteReport(output->result, output->report_dir, report_options));
  SendProgress(ctx, "report", 1, 1, "report written");  // never a server path
  return absl::OkStatus();
}

std::string ModelsJson(const std::vector<ModelRecord>& models, const Config& c) {
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
    if (m.report.dp.enabled) list.back()["dp"] = nlohmann::json::parse(DpReportJson(m.report.dp));
  }
  nlohmann::json j = {{"schema", "mia.models"},
                      {"schema_version", 1},
                      {"recipe", nlohmann::json::parse(ConfigJson(c))["train"]},
                      {"models", list}};
  return j.dump(2) + "\n";
}

void SendProgress(const PipelineContext& ctx, const std::string& stage, int64_t done, int64_t total,
                  const std::string& detail, double stage_fraction) {
  if (ctx.progress) ctx.progress({stage, done, total, detail, stage_fraction});
}

TrainProgress::TrainProgress(const PipelineContext& ctx, int m_count, std::vector<int> to_train,
                             int epochs, Commit commit)
    : ctx_(ctx),
      m_count_(m_count),
      to_train_(std::move(to_train)),
      epochs_(std::max(1, epochs)),
      cached_(m_count - static_cast<int>(to_train_.size())),
      commit_(std::move(commit)),
      model_share_(to_train_.size(), 0.0) {}

double TrainProgress::Share() const {
  // Summed afresh in a fixed order: floating-point addition is monotone in
  // each term, a running total updated by differences is not.
  const double sum = std::accumulate(model_share_.begin(), model_share_.end(), 0.0);
  return std::min(1.0, (cached_ + sum) / std::max(1, m_count_));
}

void TrainProgress::Attach(training::TrainContext* tctx) {
  tctx->progress = [this](int model, int epoch, int batch, int batches) {
    const double share = std::min(1.0, (static_cast<double>(epoch) * batches + batch + 1) /
                                           (static_cast<double>(epochs_) * std::max(1, batches)));
    if (model >= 0 && model < static_cast<int>(model_share_.size())) {
      model_share_[model] = std::max(model_share_[model], share);
    }
    if (model != followed_) {
      if (!followed_done_) return;
      followed_ = model;
    }
    followed_done_ = epoch + 1 == epochs_ && batch + 1 == batches;
    SendProgress(ctx_, "train", cached_ + saved_, m_count_,
                 absl::StrFormat("model %d/%d epoch %d/%d batch %d/%d", to_train_[model] + 1,
                                 m_count_, epoch + 1, epochs_, batch + 1, batches),
                 Share());
  };
  tctx->model_saved = [this](int k, const training::ModelReport& report) {
    MIA_RETURN_IF_ERROR(commit_(to_train_[k], report));
    ++saved_;
    model_share_[k] = 1.0;
    SendProgress(ctx_, "train", cached_ + saved_, m_count_, absl::StrCat(saved_, " trained"),
                 Share());
    return absl::OkStatus();
  };
}

// The stages of one audit, in the order RunAudit calls them. Each adds its
// time to `timings` (a stage line per name: audit::AddStageTime) and reports
// its progress; what a stage hands on is its return value.

absl::StatusOr<LoadedData> LoadStage(const Config& c, const PipelineContext& ctx,
                                     std::vector<audit::StageTiming>* timings) {
  const Clock::time_point t = Clock::now();
  SendProgress(ctx, "data", 0, 1, c.data.dataset);
  LoadedData out;
  MIA_ASSIGN_OR_RETURN(out.ds, data::LoadDataset(c.data.source));
  out.fingerprint = data::Fingerprint(out.ds);
  audit::AddStageTime(timings, "load", SecondsSince(t));
  SendProgress(ctx, "data", 1, 1,
               absl::StrCat(out.ds.size(), " rows, ", out.ds.num_classes, " classes"));
  return out;
}

absl::StatusOr<Split> SplitStage(const Config& c, const PipelineContext& ctx, int64_t rows,
                                 std::vector<audit::StageTiming>* timings) {
  const Clock::time_point t = Clock::now();
  Split s;
  MIA_RETURN_IF_ERROR(ChoosePoolAndPopulation(c, rows, &s.pool, &s.population));
  s.p = static_cast<int64_t>(s.pool.size());
  const int m_count = c.num_models();
  if (!c.external.torchscript.empty()) {
    MIA_ASSIGN_OR_RETURN(s.keep, ReadExternalKeep(c, s.p));
  } else {
    MIA_ASSIGN_OR_RETURN(SplitScheme scheme, ParseSplitScheme(c.audit.splits));
    const uint64_t seed = DeriveSeed(c.run.random_seed, kSeedSplits);
    if (scheme == SplitScheme::kDisjoint) {
      MIA_ASSIGN_OR_RETURN(DisjointSplit d, MakeDisjointSplit(c.run.num_experiments,
                                                              c.audit.num_ref_models, s.p, seed));
      s.keep = std::move(d.keep);
      s.audit_half = std::move(d.audit_half);
    } else {
      MIA_ASSIGN_OR_RETURN(s.keep, MakeKeepMatrix(m_count, s.p, scheme, seed));
    }
  }
  // Audit points: the whole pool, or a disjoint split's audit half.
  if (s.audit_half.empty()) {
    s.audit_points.resize(s.p);
    std::iota(s.audit_points.begin(), s.audit_points.end(), 0);
  } else {
    s.audit_points = s.audit_half;
  }
  const int64_t available = static_cast<int64_t>(s.audit_points.size());
  if (c.audit.data_size > 0 && c.audit.data_size < available) {
    MIA_ASSIGN_OR_RETURN(s.audit_points,
                         BalancedAuditSetFrom(s.keep, s.p, 0, s.audit_points, c.audit.data_size,
                                              DeriveSeed(c.run.random_seed, kSeedAuditSet)));
  } else if (c.audit.data_size > available) {
    return absl::InvalidArgumentError(
        s.audit_half.empty()
            ? absl::StrCat("audit.data_size (", c.audit.data_size, ") exceeds the pool (", s.p,
                           " rows)")
            : absl::StrCat("audit.data_size (", c.audit.data_size,
                           ") exceeds the audit half of the pool (", available,
                           " of its ", s.p, " rows; audit.splits is disjoint)"));
  }
  audit::AddStageTime(timings, "load", SecondsSince(t));  // choosing the splits
  SendProgress(ctx, "split", 1, 1,
               absl::StrCat(m_count, " models, pool ", s.p, ", population ", s.population.size(),
                            ", audit points ", s.audit_points.size()));
  return s;
}

std::function<void()> SignalsCounter(const PipelineContext& ctx, int m_count) {
  auto done = std::make_shared<int>(0);
  return [&ctx, m_count, done] {
    ++*done;
    SendProgress(ctx, "signals", *done, m_count,
                 absl::StrCat("signals of ", *done, "/", m_count, " models"));
  };
}

absl::StatusOr<std::vector<std::string>> TrainOrReuse(
    const Config& c, const PipelineContext& ctx,
    const std::vector<std::vector<int64_t>>& train_points, const KeyFn& key, int epochs,
    training::TrainContext tctx, const TrainFn& train, ArtifactStore* store,
    PipelineOutput* output, std::vector<audit::StageTiming>* timings) {
  const Clock::time_point t = Clock::now();
  MIA_RETURN_IF_ERROR(store->Init());
  const int m_count = c.num_models();
  std::vector<ModelKeyMaterial> materials(m_count);
  std::vector<std::string> model_paths(m_count);
  output->models.resize(m_count);
  std::vector<int> to_train;
  const std::set<int> only(ctx.only_models.begin(), ctx.only_models.end());
  for (int m = 0; m < m_count; ++m) {
    ModelRecord& rec = output->models[m];
    rec.index = m;
    rec.target = m < c.run.num_experiments;
    rec.train_rows = static_cast<int64_t>(train_points[m].size());
    ModelKeyMaterial& km = materials[m];
    key(m, &km);
    km.seed = DeriveSeed(c.run.random_seed, kSeedModels + m);
    rec.key = km.Key();
    model_paths[m] = store->ModelPath(rec.key);
    if (!only.empty() && only.count(m) == 0) {
      rec.source = "other unit";  // another unit of work trains it
    } else if (store->HasModel(km)) {
      rec.source = "cache";
      MIA_ASSIGN_OR_RETURN(rec.report, store->ReadReport(km));
    } else {
      to_train.push_back(m);
    }
  }
  const int cached = m_count - static_cast<int>(to_train.size());
  SendProgress(ctx, "train", cached, m_count,
               absl::StrCat(cached, " from the cache, ", to_train.size(), " to train"),
               static_cast<double>(cached) / std::max(1, m_count));
  if (!to_train.empty()) {
    std::vector<std::vector<int64_t>> points;
    std::vector<uint64_t> seeds;
    std::vector<std::string> paths;
    for (int m : to_train) {
      points.push_back(train_points[m]);
      seeds.push_back(materials[m].seed);
      paths.push_back(model_paths[m]);
    }
    tctx.cancel = ctx.cancel;
    TrainProgress progress(ctx, m_count, to_train, epochs,
                           [&](int m, const training::ModelReport& report) {
                             output->models[m].source = "trained";
                             output->models[m].report = report;
                             return store->CommitModel(materials[m], report);
                           });
    progress.Attach(&tctx);
    MIA_RETURN_IF_ERROR(train(points, seeds, paths, tctx));
    output->models_trained = static_cast<int>(to_train.size());
  }
  audit::AddStageTime(timings, "train", SecondsSince(t));
  SendProgress(ctx, "train", m_count, m_count, absl::StrCat(output->models_trained, " trained"),
               1.0);
  return model_paths;
}

absl::StatusOr<std::vector<std::string>> TrainStage(const Config& c, const PipelineContext& ctx,
                                                    const LoadedData& data, const Split& split,
                                                    ArtifactStore* store, PipelineOutput* output,
                                                    std::vector<audit::StageTiming>* timings) {
  const int m_count = c.num_models();
  std::vector<std::vector<int64_t>> train_rows(m_count);
  for (int m = 0; m < m_count; ++m) {
    train_rows[m] = Gather(split.pool, TrainingPoints(split.keep, split.p, m));
  }
  if (!c.external.torchscript.empty()) {
    MIA_RETURN_IF_ERROR(store->Init());  // signals are cached there
    output->models.resize(m_count);
    for (int m = 0; m < m_count; ++m) {
      ModelRecord& rec = output->models[m];
      rec.index = m;
      rec.target = m < c.run.num_experiments;
      rec.train_rows = static_cast<int64_t>(train_rows[m].size());
      rec.source = c.external.torchscript[m];
      rec.report.train_accuracy = rec.report.test_accuracy = std::nan("");
      rec.report.train_loss = rec.report.test_loss = rec.report.seconds = std::nan("");
    }
    audit::AddStageTime(timings, "train", 0.0);
    SendProgress(ctx, "train", m_count, m_count, "0 trained", 1.0);
    return c.external.torchscript;
  }
  training::TrainContext tctx;
  std::string unused_warning;  // reported by ScoreStage (DeviceWarnings)
  tctx.device = training::UsableDevice(c.train_device, "train.device", &unused_warning);
  tctx.allow_batched = c.batched_training.value_or(training::ResolveDevice(tctx.device) != "cpu");
  tctx.data_on_device = c.data_on_device;
  tctx.channels_last = c.channels_last;
  return TrainOrReuse(
      c, ctx, train_rows,
      [&](int m, ModelKeyMaterial* km) {
        km->dataset_fingerprint = data.fingerprint;
        km->scope = c.run.cache_scope;
        km->spec = c.model;
        km->recipe = c.recipe;
        km->rows_sha256 = RowsSha256(train_rows[m]);
      },
      c.recipe.epochs, tctx,
      [&](const std::vector<std::vector<int64_t>>& rows, const std::vector<uint64_t>& seeds,
          const std::vector<std::string>& paths, const training::TrainContext& engine_ctx) {
        return training::TrainModels(data.ds, c.model, c.recipe, rows, split.population, seeds,
                                     paths, engine_ctx)
            .status();
      },
      store, output, timings);
}

// Cached signals are read first; the rest are computed in parallel lanes
// (ComputeLogitsMany) and cached as each model finishes.
absl::StatusOr<Signals> SignalsStage(const Config& c, const PipelineContext& ctx,
                                     const LoadedData& data, const Split& split,
                                     const std::vector<std::string>& model_paths,
                                     const std::vector<ModelRecord>& models,
                                     const ArtifactStore& store,
                                     std::vector<audit::StageTiming>* timings) {
  const Clock::time_point t = Clock::now();
  const int m_count = c.num_models();
  const bool external = !c.external.torchscript.empty();
  Signals s;
  s.audit_rows = Gather(split.pool, split.audit_points);
  std::vector<int64_t> query_rows = s.audit_rows;
  query_rows.insert(query_rows.end(), split.population.begin(), split.population.end());
  const std::string rows_sha = RowsSha256(query_rows);
  const int64_t n = s.n = static_cast<int64_t>(s.audit_rows.size());
  const int64_t z = s.z = static_cast<int64_t>(split.population.size());
  const int a_count = s.a_count = c.audit.augmentation.NumQueries(data.ds.is_image());
  training::TrainContext ictx;
  std::string unused_warning;  // reported by ScoreStage (DeviceWarnings)
  ictx.device = training::UsableDevice(c.audit.device, "audit.device", &unused_warning);
  ictx.cancel = ctx.cancel;
  ictx.data_on_device = c.data_on_device;
  ictx.channels_last = c.channels_last;
  std::vector<std::vector<float>> model_logits(m_count);
  std::vector<int> model_classes(m_count, 0);
  std::vector<std::string> signal_paths(m_count);
  std::vector<int> to_compute;
  const std::function<void()> signal_done = SignalsCounter(ctx, m_count);
  const std::set<int> only(ctx.only_models.begin(), ctx.only_models.end());
  for (int m = 0; m < m_count; ++m) {
    MIA_RETURN_IF_ERROR(CheckCancel(ctx));
    if (!only.empty() && only.count(m) == 0) continue;  // another unit's
    std::string model_id = models[m].key;
    if (external) {
      MIA_ASSIGN_OR_RETURN(model_id, Sha256OfFile(model_paths[m]));
    }
    signal_paths[m] =
        store.SignalsPath(SignalsKey(model_id, rows_sha, c.audit.augmentation, c.recipe));
    MIA_RETURN_IF_ERROR(store.FetchFile(signal_paths[m]));  // from a shared store
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
        compute_paths, external, c.model, c.recipe, data.ds, query_rows, c.audit.augmentation, ictx,
        [&](int i, std::vector<float> logits, int classes) -> absl::Status {
          const int m = to_compute[i];
          MIA_RETURN_IF_ERROR(io::WriteNpy(
              signal_paths[m], io::NpyArray::FromFloat({n + z, a_count, classes}, logits)));
          MIA_RETURN_IF_ERROR(store.PublishFile(signal_paths[m]));
          model_logits[m] = std::move(logits);
          model_classes[m] = classes;
          signal_done();
          return absl::OkStatus();
        }));
  }
  if (!only.empty()) {  // a unit of work: its signals are in the store
    audit::AddStageTime(timings, "signals", SecondsSince(t));
    return s;
  }
  int& classes = s.classes;
  for (int m = 0; m < m_count; ++m) {
    if (m == 0) {
      classes = model_classes[m];
      s.audit_logits.reserve(static_cast<size_t>(m_count) * n * a_count * classes);
      s.pop_logits.reserve(static_cast<size_t>(m_count) * z * a_count * classes);
    } else if (model_classes[m] != classes) {
      return absl::InvalidArgumentError(absl::StrCat("model ", m, " outputs ", model_classes[m],
                                                     " classes, model 0 outputs ", classes));
    }
    const std::vector<float>& logits = model_logits[m];
    const size_t cut = static_cast<size_t>(n) * a_count * classes;
    s.audit_logits.insert(s.audit_logits.end(), logits.begin(), logits.begin() + cut);
    s.pop_logits.insert(s.pop_logits.end(), logits.begin() + cut, logits.end());
    std::vector<float>().swap(model_logits[m]);
  }
  audit::AddStageTime(timings, "signals", SecondsSince(t));
  return s;
}

audit::Bundle MakeBundle(const Config& c, const LoadedData& data, const Split& split,
                         Signals signals) {
  const int m_count = c.num_models();
  const int64_t n = signals.n, z = signals.z;
  audit::Bundle bundle;
  bundle.path = c.path;
  bundle.audit.has_logits = true;
  bundle.audit.logits = std::move(signals.audit_logits);
  bundle.audit.logits_shape = {m_count, n, signals.a_count, signals.classes};
  bundle.audit.labels = Gather(data.ds.labels, signals.audit_rows);
  bundle.audit.array_name = "logits";
  if (z > 0) {
    audit::SignalSource pop;
    pop.has_logits = true;
    pop.logits = std::move(signals.pop_logits);
    pop.logits_shape = {m_count, z, signals.a_count, signals.classes};
    pop.labels = Gather(data.ds.labels, split.population);
    pop.array_name = "population_logits";
    bundle.population = std::move(pop);
  }
  bundle.keep.resize(static_cast<size_t>(m_count) * n);
  for (int m = 0; m < m_count; ++m) {
    for (int64_t i = 0; i < n; ++i) {
      bundle.keep[static_cast<size_t>(m) * n + i] =
          split.keep[static_cast<size_t>(m) * split.p + split.audit_points[i]];
    }
  }
  bundle.row_ids = std::move(signals.audit_rows);
  for (int k = 0; k < c.run.num_experiments; ++k) bundle.targets.push_back(k);
  return bundle;
}

std::vector<std::string> DeviceWarnings(const Config& c) {
  std::vector<std::string> warnings;
  std::string w;
  training::UsableDevice(c.train_device, "train.device", &w);
  if (!w.empty()) warnings.push_back(w);
  training::UsableDevice(c.audit.device, "audit.device", &w);
  if (!w.empty()) warnings.push_back(w);
  return warnings;
}

// Scores the bundle like `mia score` does; fills output->result, its timings
// the pipeline's stages first, then scoring's.
absl::Status ScoreStage(const Config& c, const PipelineContext& ctx, const audit::Bundle& bundle,
                        std::vector<audit::StageTiming> timings, PipelineOutput* output,
                        const audit::RangeGroups* ranges) {
  SendProgress(ctx, "audit", 0, 1, "");
  audit::ScoringOptions scoring = c.audit.scoring;
  scoring.seed = DeriveSeed(c.run.random_seed, kSeedScoring);
  scoring.cancel = ctx.cancel;
  MIA_ASSIGN_OR_RETURN(output->result, audit::ScoreBundle(bundle, scoring, nullptr, ranges));
  output->result.spec_json = ConfigJson(c);
  for (std::string& w : DeviceWarnings(c)) output->result.warnings.push_back(std::move(w));
  if (c.data.population_quarter && bundle.population.has_value()) {
    output->result.warnings.push_back(absl::StrCat(
        "no population size given: the last quarter of the rows (",
        bundle.population->logits_shape.points,
        ") are the population, which no model trains on; set data.population_size to choose"));
  }
  if (c.dp_audit.has_value() && c.dp_audit->dp_defaults) {
    output->result.warnings.push_back(absl::StrCat(
        "dp_audit.training_alg dp without train.dp: the target trained with DP-SGD at Privacy "
        "Meter's defaults (noise_multiplier ", kDpAuditDefaultNoiseMultiplier, ", max_grad_norm ",
        kDpAuditDefaultMaxGradNorm, ", delta 1e-05); set train.dp to choose"));
  }
  if (c.audit.splits_auto && c.audit.splits == "disjoint") {
    output->result.warnings.push_back(absl::StrCat(
        "audit.splits auto chose disjoint: ", c.audit.num_ref_models,
        " reference model(s) are too few for balanced splits, so the targets train on one "
        "half of the pool and the references on the other; every audit point has all "
        "references OUT (offline attacks only)"));
  }
  // Every report says which mia made it (`mia audit` and the server alike).
  output->result.tool_version = MIA_VERSION;
  // The pipeline's stages first, then scoring's (whose signals from logits add
  // to the signals stage): one line per stage.
  for (const audit::StageTiming& st : output->result.timings) {
    audit::AddStageTime(&timings, st.stage, st.seconds);
  }
  output->result.timings = std::move(timings);
  // DP-SGD targets: the accountant's epsilon beside each lower bound.
  for (int t : output->result.targets) {
    if (t < 0 || t >= static_cast<int>(output->models.size())) continue;
    const training::ModelReport::Dp& dp = output->models[t].report.dp;
    if (!dp.enabled) continue;
    output->result.dp.push_back({t, dp.epsilon, dp.delta, dp.order, dp.noise_multiplier,
                                 dp.max_grad_norm, dp.sample_rate, dp.steps});
  }
  audit::FillDpChecks(&output->result);
  SendProgress(ctx, "audit", 1, 1, "");
  return absl::OkStatus();
}

absl::Status ReportStage(const Config& c, const PipelineContext& ctx, const audit::Bundle& bundle,
                         PipelineOutput* output) {
  const Clock::time_point t = Clock::now();
  MakeReportDir(c, ctx, output);
  const attacks::LogitsShape& dims = bundle.audit.logits_shape;
  const int64_t m_count = dims.models, n = dims.points, a_count = dims.queries;
  const int64_t classes = dims.classes;
  io::NpyMap arrays;
  arrays["keep"] = io::NpyArray::FromBool({m_count, n}, bundle.keep);
  std::vector<int64_t> shape = {m_count, n};
  if (a_count > 1) shape.push_back(a_count);
  shape.push_back(classes);
  arrays["logits"] = io::NpyArray::FromFloat(shape, bundle.audit.logits);
  arrays["labels"] = io::NpyArray::FromInt64({n}, bundle.audit.labels);
  if (bundle.population.has_value()) {
    const int64_t z = bundle.population->logits_shape.points;
    shape[1] = z;
    arrays["population_logits"] = io::NpyArray::FromFloat(shape, bundle.population->logits);
    arrays["population_labels"] = io::NpyArray::FromInt64({z}, bundle.population->labels);
  }
  arrays["row_ids"] = io::NpyArray::FromInt64({n}, bundle.row_ids);
  std::vector<int64_t> targets(bundle.targets.begin(), bundle.targets.end());
  arrays["targets"] = io::NpyArray::FromInt64({static_cast<int64_t>(targets.size())}, targets);
  MIA_RETURN_IF_ERROR(
      io::WriteNpz(output->report_dir + "/signals.npz", arrays, /*compress=*/false));
  return FinishReport(c, ctx, t, output);
}

}  // namespace internal

std::vector<int> UnitModels(const Config& c) {
  std::vector<int> units;
  if (c.language_model() || c.audit.ramia.has_value() || c.dp_audit.has_value() ||
      c.audit.duci.has_value() || !c.external.torchscript.empty()) {
    return units;
  }
  for (int m = 0; m < c.num_models(); ++m) units.push_back(m);
  return units;
}

absl::StatusOr<PipelineOutput> RunAudit(const Config& c, const PipelineContext& ctx) {
  if (!ctx.only_models.empty() && UnitModels(c).empty()) {
    return absl::InvalidArgumentError("this audit runs as one piece: it has no units of work");
  }
  using internal::LoadedData;
  using internal::Signals;
  using internal::Split;
  if (c.language_model()) return internal::RunLmAudit(c, ctx);
  if (c.audit.ramia.has_value()) return internal::RunRamiaAudit(c, ctx);
  if (c.dp_audit.has_value()) return internal::RunDpAuditGame(c, ctx);
  if (c.audit.duci.has_value()) return internal::RunDuciGame(c, ctx);
  if (!ctx.only_models.empty()) {
    const std::vector<int> units = UnitModels(c);
    for (int m : ctx.only_models) {
      if (std::find(units.begin(), units.end(), m) == units.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("model ", m, " is not a unit of work of this audit"));
      }
    }
  }
  training::SetComputeThreads(c.run.threads);
  PipelineOutput output;
  std::vector<audit::StageTiming> timings;
  MIA_ASSIGN_OR_RETURN(const LoadedData data, internal::LoadStage(c, ctx, &timings));
  MIA_ASSIGN_OR_RETURN(const Split split, internal::SplitStage(c, ctx, data.ds.size(), &timings));
  MIA_RETURN_IF_ERROR(internal::CheckCancel(ctx));
  ArtifactStore store(c.run.log_dir, ctx.artifact_remote);
  MIA_ASSIGN_OR_RETURN(const std::vector<std::string> model_paths,
                       internal::TrainStage(c, ctx, data, split, &store, &output, &timings));
  MIA_RETURN_IF_ERROR(internal::CheckCancel(ctx));
  MIA_ASSIGN_OR_RETURN(Signals signals, internal::SignalsStage(c, ctx, data, split, model_paths,
                                                               output.models, store, &timings));
  if (!ctx.only_models.empty()) {  // a unit of work ends with its models' signals
    std::vector<ModelRecord> mine;
    for (int m : ctx.only_models) mine.push_back(output.models[m]);
    output.models = std::move(mine);
    return output;
  }
  const audit::Bundle bundle = internal::MakeBundle(c, data, split, std::move(signals));
  MIA_RETURN_IF_ERROR(internal::ScoreStage(c, ctx, bundle, std::move(timings), &output));
  MIA_RETURN_IF_ERROR(internal::ReportStage(c, ctx, bundle, &output));
  return output;
}

}  // namespace mia::pipeline
