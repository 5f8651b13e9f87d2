// The language-model audit: RunAudit for a config whose data is a text
// corpus and whose model is a causal LM (docs/config.md, "Language models"):
//   load texts -> split -> tokenizer (trained or read) -> tokenize ->
//   train (or reuse) LMs -> per-token signals -> the sequence attacks ->
//   metrics -> report
// Models and signals are cached in the artifact store under run.log_dir, keyed
// by everything that determines them, like the classifiers'.
//
// The texts are training records: nothing here logs, reports or writes them
// (the report's signals.npz holds each text's zlib-compressed size, which the
// zlib attack needs, not the text).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/attacks/registry.h"
#include "core/attacks/sequence_attacks.h"
#include "core/audit/bundle.h"
#include "core/common/file_util.h"
#include "core/common/random.h"
#include "core/common/sha256.h"
#include "core/common/status_macros.h"
#include "core/data/text_corpus.h"
#include "core/io/npy.h"
#include "core/models/safetensors.h"
#include "core/pipeline/artifact_store.h"
#include "core/pipeline/splits.h"
#include "core/pipeline/stages.h"
#include "core/report/report.h"
#include "core/text/bpe_trainer.h"
#include "core/text/gpt2_bpe.h"
#include "core/training/lm_engine.h"
#include "nlohmann/json.hpp"

namespace mia::pipeline::internal {
namespace {

// SHA-256 of the corpus: every text's length and bytes, and its label.
std::string TextFingerprint(const data::TextDataset& ds) {
  Sha256 h;
  h.Update(absl::string_view("mia-text-v1"));
  auto put = [&h](uint64_t v) {
    char b[8];
    for (int k = 0; k < 8; ++k) b[k] = static_cast<char>((v >> (8 * k)) & 0xFF);
    h.Update(absl::string_view(b, 8));
  };
  put(static_cast<uint64_t>(ds.size()));
  for (int64_t i = 0; i < ds.size(); ++i) {
    put(ds.texts[i].size());
    h.Update(ds.texts[i]);
    put(ds.labels.empty() ? ~uint64_t{0} : static_cast<uint64_t>(ds.labels[i]));
  }
  return h.HexDigest();
}

// Which of the audit's attacks need per-token statistics (Min-K%++).
bool NeedsTokenStats(const Config& c) {
  for (const std::string& spec : c.audit.scoring.attacks) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> a = attacks::MakeAttack(spec);
    if (a.ok() && (*a)->needs().token_stats) return true;
  }
  return false;
}

struct LmData {
  data::TextDataset texts;
  std::string fingerprint;
};

absl::StatusOr<LmData> LoadTextStage(const Config& c, const PipelineContext& ctx,
                                     std::vector<audit::StageTiming>* timings) {
  const Clock::time_point t = Clock::now();
  SendProgress(ctx, "data", 0, 1, c.data.dataset);
  data::TextSource source;
  source.format = c.data.source.format;
  source.path = c.data.source.path;
  source.text_field = c.lm->text_field;
  source.label_field = c.lm->label_field;
  LmData out;
  MIA_ASSIGN_OR_RETURN(out.texts, data::LoadTextDataset(source));
  out.fingerprint = TextFingerprint(out.texts);
  audit::AddStageTime(timings, "load", SecondsSince(t));
  SendProgress(ctx, "data", 1, 1, absl::StrCat(out.texts.size(), " texts"));
  return out;
}

// The tokenizer: GPT-2's files from a folder, or a byte-level BPE trained on
// the pool's texts (every model's candidates; never the population) and kept
// under log_dir/tokenizers/<key>/ in GPT-2's file layout, so that a rerun
// reads it back instead of training it again.
absl::StatusOr<std::unique_ptr<text::Tokenizer>> TokenizerStage(
    const Config& c, const PipelineContext& ctx, const LmData& data, const Split& split,
    std::vector<audit::StageTiming>* timings) {
  const Clock::time_point t = Clock::now();
  const LanguageModelConfig& lm = *c.lm;
  std::unique_ptr<text::Tokenizer> tokenizer;
  if (lm.tokenizer != "bpe") {
    SendProgress(ctx, "data", 0, 1, "reading the tokenizer");
    MIA_ASSIGN_OR_RETURN(tokenizer, text::LoadGpt2Bpe(lm.tokenizer));
  } else {
    const std::string key = Sha256Hex(absl::StrCat("mia-bpe-v1 ", data.fingerprint, " ",
                                                   RowsSha256(split.pool), " ", lm.vocab_size));
    const std::filesystem::path dir = std::filesystem::path(c.run.log_dir) / "tokenizers" / key;
    std::error_code ec;
    // A folder that does not read back (a crash between its two files) is
    // trained again; what it holds is part of every model's key anyway.
    absl::StatusOr<std::unique_ptr<text::ByteBpeTokenizer>> kept =
        std::filesystem::exists(dir / "merges.txt", ec)
            ? text::LoadGpt2Bpe(dir.string())
            : absl::NotFoundError("no tokenizer kept");
    if (kept.ok()) {
      tokenizer = std::move(*kept);
    } else {
      SendProgress(ctx, "data", 0, 1, absl::StrCat("training a ", lm.vocab_size, "-token BPE"));
      std::vector<std::string> pool_texts = Gather(data.texts.texts, split.pool);
      MIA_ASSIGN_OR_RETURN(std::unique_ptr<text::ByteBpeTokenizer> trained,
                           text::TrainByteBpe(pool_texts, lm.vocab_size));
      std::filesystem::create_directories(dir, ec);
      if (ec) {
        return absl::InternalError(
            absl::StrCat(dir.string(), ": cannot create folder: ", ec.message()));
      }
      MIA_RETURN_IF_ERROR(trained->Save(dir.string()));
      tokenizer = std::move(trained);
    }
  }
  audit::AddStageTime(timings, "load", SecondsSince(t));
  return tokenizer;
}

// The corpus the engine reads: the pool's texts (indices 0..p-1, as the keep
// matrix counts them) then the population's (p..p+z-1). `truncated` marks the
// texts cut to block_size tokens.
training::TokenizedCorpus Tokenize(const LmData& data, const Split& split,
                                   const text::Tokenizer& tokenizer, int block_size,
                                   std::vector<bool>* truncated) {
  training::TokenizedCorpus corpus;
  corpus.vocab_size = tokenizer.vocab_size();
  corpus.bos_id = tokenizer.eot_id();
  corpus.tokens.reserve(split.pool.size() + split.population.size());
  for (const std::vector<int64_t>* rows : {&split.pool, &split.population}) {
    for (int64_t row : *rows) {
      std::vector<int32_t> ids = tokenizer.Encode(data.texts.texts[row]);
      truncated->push_back(static_cast<int>(ids.size()) > block_size);
      if (truncated->back()) ids.resize(block_size);
      corpus.tokens.push_back(std::move(ids));
    }
  }
  return corpus;
}

// The training JSON of the models' key: the config's, plus what the run
// learned (the tokenizer's fingerprint and the checkpoint's hash).
absl::StatusOr<std::string> LmKeyJson(const Config& c, const text::Tokenizer& tokenizer) {
  LanguageModelConfig lm = *c.lm;
  lm.spec.vocab_size = tokenizer.vocab_size();
  nlohmann::json j = nlohmann::json::parse(LmTrainingJson(lm));
  j["tokenizer_sha256"] = tokenizer.Fingerprint();
  if (!lm.spec.checkpoint.empty()) {
    // The weights decide the model, not the folder's name.
    MIA_ASSIGN_OR_RETURN(j["checkpoint_sha256"],
                         Sha256OfFile(lm.spec.checkpoint + "/model.safetensors"));
    j["checkpoint"] = "";
  }
  return j.dump();
}

absl::StatusOr<std::vector<std::string>> LmTrainStage(const Config& c, const PipelineContext& ctx,
                                                      const LmData& data, const Split& split,
                                                      const training::LmSpec& spec,
                                                      const training::TokenizedCorpus& corpus,
                                                      const std::string& key_json,
                                                      ArtifactStore* store, PipelineOutput* output,
                                                      std::vector<audit::StageTiming>* timings) {
  const int m_count = c.num_models();
  std::vector<std::vector<int64_t>> train_points(m_count);  // corpus indices = pool indices
  for (int m = 0; m < m_count; ++m) train_points[m] = TrainingPoints(split.keep, split.p, m);
  // Held-out loss on the population texts (corpus indices p..p+z-1).
  std::vector<int64_t> test_points(split.population.size());
  std::iota(test_points.begin(), test_points.end(), split.p);
  training::TrainContext tctx;
  std::string unused_warning;  // reported by ScoreStage
  tctx.device = training::UsableDevice(c.train_device, "train.device", &unused_warning);
  return TrainOrReuse(
      c, ctx, train_points,
      [&](int m, ModelKeyMaterial* km) {
        km->dataset_fingerprint = data.fingerprint;
        km->scope = c.run.cache_scope;
        km->lm_train_json = key_json;
        km->rows_sha256 = RowsSha256(Gather(split.pool, train_points[m]));
      },
      c.lm->recipe.epochs, tctx,
      [&](const std::vector<std::vector<int64_t>>& points, const std::vector<uint64_t>& seeds,
          const std::vector<std::string>& paths, const training::TrainContext& engine_ctx) {
        return training::TrainLanguageModels(corpus, spec, c.lm->recipe, points, test_points,
                                             seeds, paths, engine_ctx)
            .status();
      },
      store, output, timings);
}

// One model's cached per-token signals: a .npz of token_logprobs [P, L],
// lengths [P] and, with statistics, token_mean and token_var [P, L].
absl::Status WriteTokenCache(const std::string& path, const attacks::TokenSignals& s) {
  io::NpyMap arrays;
  const int64_t p = s.points, l = s.max_length;
  arrays["token_logprobs"] = io::NpyArray::FromFloat({p, l}, s.logprobs);
  arrays["lengths"] = io::NpyArray::FromInt64({p}, s.lengths);
  if (s.has_stats()) {
    arrays["token_mean"] = io::NpyArray::FromFloat({p, l}, s.mean);
    arrays["token_var"] = io::NpyArray::FromFloat({p, l}, s.var);
  }
  return io::WriteNpz(path, arrays, /*compress=*/false);
}

// The cached signals when they hold what is asked (points, stats); else nullopt.
std::optional<attacks::TokenSignals> ReadTokenCache(const std::string& path, int64_t points,
                                                    bool with_stats) {
  absl::StatusOr<io::NpyMap> arrays = io::ReadArrays(path);
  if (!arrays.ok()) return std::nullopt;
  auto lp = arrays->find("token_logprobs");
  auto len = arrays->find("lengths");
  if (lp == arrays->end() || len == arrays->end() || lp->second.shape.size() != 2 ||
      lp->second.shape[0] != points || len->second.shape != std::vector<int64_t>{points}) {
    return std::nullopt;
  }
  attacks::TokenSignals s;
  s.models = 1;
  s.points = points;
  s.max_length = lp->second.shape[1];
  absl::StatusOr<std::vector<float>> v = lp->second.ToFloat("token_logprobs");
  absl::StatusOr<std::vector<int64_t>> n = len->second.ToInt64("lengths");
  if (!v.ok() || !n.ok()) return std::nullopt;
  s.logprobs = std::move(*v);
  s.lengths = std::move(*n);
  if (with_stats) {
    auto mean = arrays->find("token_mean");
    auto var = arrays->find("token_var");
    if (mean == arrays->end() || var == arrays->end() || mean->second.shape != lp->second.shape ||
        var->second.shape != lp->second.shape) {
      return std::nullopt;
    }
    absl::StatusOr<std::vector<float>> mv = mean->second.ToFloat("token_mean");
    absl::StatusOr<std::vector<float>> vv = var->second.ToFloat("token_var");
    if (!mv.ok() || !vv.ok()) return std::nullopt;
    s.mean = std::move(*mv);
    s.var = std::move(*vv);
  }
  if (!attacks::ValidateTokenSignals(s).ok()) return std::nullopt;
  return s;
}

// Texts per inference batch. A batch holds a few arrays of batch x block x
// vocabulary floats in each lane, so audit.batch_size (1,024 by default, a
// classifier's batch) is capped to keep one such array within 16 MiB: the
// demo's 1,024 texts of 64 positions over 1,024 tokens would otherwise take
// 1.5 GB (measured), 64 of them take about 100 MB.
int InferenceBatch(const Config& c, const training::LmSpec& spec) {
  constexpr int64_t kMaxBatchFloats = int64_t{1} << 22;
  const int64_t per_text = std::max<int64_t>(1, int64_t{spec.block_size} * spec.vocab_size);
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(c.audit.batch_size, kMaxBatchFloats / per_text)));
}

// Every model's per-token signals on the audit texts then the population's:
// per model [n + z, L].
absl::StatusOr<std::vector<attacks::TokenSignals>> LmSignalsStage(
    const Config& c, const PipelineContext& ctx, const Split& split, const training::LmSpec& spec,
    const training::TokenizedCorpus& corpus, const std::vector<std::string>& model_paths,
    const std::vector<ModelRecord>& models, const ArtifactStore& store,
    std::vector<audit::StageTiming>* timings) {
  const Clock::time_point t = Clock::now();
  const int m_count = c.num_models();
  const bool with_stats = NeedsTokenStats(c);
  std::vector<int64_t> points = split.audit_points;  // corpus indices
  for (size_t j = 0; j < split.population.size(); ++j) {
    points.push_back(split.p + static_cast<int64_t>(j));
  }
  const int64_t count = static_cast<int64_t>(points.size());
  const std::string rows_sha = RowsSha256(points);
  std::vector<attacks::TokenSignals> out(m_count);
  std::vector<std::string> paths(m_count);
  std::vector<int> to_compute;
  const std::function<void()> signal_done = SignalsCounter(ctx, m_count);

  for (int m = 0; m < m_count; ++m) {
    MIA_RETURN_IF_ERROR(CheckCancel(ctx));
    nlohmann::json key = {{"version", "mia-token-signals-v1"},
                          {"model", models[m].key},
                          {"rows", rows_sha},
                          {"block_size", spec.block_size}};
    paths[m] = store.SignalsPath(Sha256Hex(key.dump())) + ".npz";
    MIA_RETURN_IF_ERROR(store.FetchFile(paths[m]));  // from a shared store
    std::optional<attacks::TokenSignals> cached = ReadTokenCache(paths[m], count, with_stats);
    if (cached.has_value()) {
      out[m] = std::move(*cached);
      signal_done();
    } else {
      to_compute.push_back(m);
    }
  }
  if (!to_compute.empty()) {
    std::vector<std::string> compute_paths;
    for (int m : to_compute) compute_paths.push_back(model_paths[m]);
    training::TrainContext ictx;
    std::string unused_warning;  // reported by ScoreStage
    ictx.device = training::UsableDevice(c.audit.device, "audit.device", &unused_warning);
    ictx.cancel = ctx.cancel;
    MIA_RETURN_IF_ERROR(training::ComputeTokenSignalsMany(
        compute_paths, spec, corpus, points, with_stats, InferenceBatch(c, spec), ictx,
        [&](int i, attacks::TokenSignals signals) -> absl::Status {
          const int m = to_compute[i];
          MIA_RETURN_IF_ERROR(WriteTokenCache(paths[m], signals));
          MIA_RETURN_IF_ERROR(store.PublishFile(paths[m]));
          out[m] = std::move(signals);
          signal_done();
          return absl::OkStatus();
        }));
  }
  audit::AddStageTime(timings, "signals", SecondsSince(t));
  return out;
}

// Rows [from, from + count) of a one-model TokenSignals.
attacks::TokenSignals SliceTexts(const attacks::TokenSignals& s, int64_t from, int64_t count) {
  attacks::TokenSignals out;
  out.models = 1;
  out.points = count;
  out.max_length = s.max_length;
  out.lengths.assign(s.lengths.begin() + from, s.lengths.begin() + from + count);
  auto slice = [&](const std::vector<float>& v) {
    return std::vector<float>(v.begin() + from * s.max_length,
                              v.begin() + (from + count) * s.max_length);
  };
  out.logprobs = slice(s.logprobs);
  if (s.has_stats()) {
    out.mean = slice(s.mean);
    out.var = slice(s.var);
  }
  return out;
}

// The audit as a language-model bundle's arrays (the report's signals.npz,
// texts replaced by their zlib sizes) and the bundle read from them, so that
// what is scored is exactly what the report holds.
absl::StatusOr<std::pair<io::NpyMap, audit::Bundle>> MakeLmBundle(
    const Config& c, const LmData& data, const Split& split,
    const training::TokenizedCorpus& corpus, const std::vector<bool>& truncated,
    const text::Tokenizer& tokenizer, std::vector<attacks::TokenSignals> per_model) {
  const int m_count = c.num_models();
  const int64_t n = static_cast<int64_t>(split.audit_points.size());
  const int64_t z = static_cast<int64_t>(split.population.size());
  std::vector<attacks::TokenSignals> audit_parts, pop_parts;
  for (attacks::TokenSignals& s : per_model) {
    audit_parts.push_back(SliceTexts(s, 0, n));
    if (z > 0) pop_parts.push_back(SliceTexts(s, n, z));
    s = attacks::TokenSignals();
  }
  audit::LanguageModelSignals signals;
  MIA_ASSIGN_OR_RETURN(signals.audit, attacks::StackTokenSignals(audit_parts));
  audit_parts.clear();
  if (z > 0) {
    MIA_ASSIGN_OR_RETURN(signals.population, attacks::StackTokenSignals(pop_parts));
  }
  const std::vector<int64_t> audit_rows = Gather(split.pool, split.audit_points);
  // zlib compresses the text the models scored: a text cut to block_size
  // tokens is compressed as cut (the decoded tokens), not whole.
  std::vector<std::string> scored_texts;
  scored_texts.reserve(audit_rows.size());
  for (size_t i = 0; i < audit_rows.size(); ++i) {
    const int64_t k = split.audit_points[i];
    if (truncated[k]) {
      MIA_ASSIGN_OR_RETURN(std::string cut, tokenizer.Decode(corpus.tokens[k]));
      scored_texts.push_back(std::move(cut));
    } else {
      scored_texts.push_back(data.texts.texts[audit_rows[i]]);
    }
  }
  MIA_ASSIGN_OR_RETURN(signals.text_zlib_sizes, attacks::ZlibCompressedSizes(scored_texts));
  std::vector<uint8_t> keep(static_cast<size_t>(m_count) * n);
  for (int m = 0; m < m_count; ++m) {
    for (int64_t i = 0; i < n; ++i) {
      keep[static_cast<size_t>(m) * n + i] =
          split.keep[static_cast<size_t>(m) * split.p + split.audit_points[i]];
    }
  }
  std::vector<int> targets;
  for (int k = 0; k < c.run.num_experiments; ++k) targets.push_back(k);
  io::NpyMap arrays = audit::LanguageModelBundleArrays(signals, keep, audit_rows, targets);
  MIA_ASSIGN_OR_RETURN(audit::Bundle bundle, audit::BundleFromArrays(arrays, c.path));
  return std::make_pair(std::move(arrays), std::move(bundle));
}

absl::Status LmReportStage(const Config& c, const PipelineContext& ctx, const io::NpyMap& arrays,
                           PipelineOutput* output) {
  const Clock::time_point t = Clock::now();
  MakeReportDir(c, ctx, output);
  MIA_RETURN_IF_ERROR(
      io::WriteNpz(output->report_dir + "/signals.npz", arrays, /*compress=*/false));
  return FinishReport(c, ctx, t, output);
}

}  // namespace

absl::StatusOr<PipelineOutput> RunLmAudit(const Config& c, const PipelineContext& ctx) {
  training::SetComputeThreads(c.run.threads);
  PipelineOutput output;
  std::vector<audit::StageTiming> timings;
  MIA_ASSIGN_OR_RETURN(const LmData data, LoadTextStage(c, ctx, &timings));
  MIA_ASSIGN_OR_RETURN(const Split split, SplitStage(c, ctx, data.texts.size(), &timings));
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));
  MIA_ASSIGN_OR_RETURN(const std::unique_ptr<text::Tokenizer> tokenizer,
                       TokenizerStage(c, ctx, data, split, &timings));
  training::LmSpec spec = c.lm->spec;
  spec.vocab_size = tokenizer->vocab_size();
  if (!spec.checkpoint.empty()) {
    // A checkpoint's positions bound the context (texts are cut to them, and
    // zlib compresses what is scored); its vocabulary is the tokenizer's.
    MIA_ASSIGN_OR_RETURN(const models::Gpt2FileConfig file,
                         models::ReadGpt2Config(spec.checkpoint + "/config.json"));
    spec.block_size = static_cast<int>(std::min<int64_t>(spec.block_size, file.n_positions));
    if (file.vocab_size != tokenizer->vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "train.tokenizer has ", tokenizer->vocab_size(), " tokens but the checkpoint's ",
          spec.checkpoint, "/config.json has vocab_size ", file.vocab_size,
          ": they must be the same tokenizer"));
    }
  }
  std::vector<bool> truncated;
  const training::TokenizedCorpus corpus =
      Tokenize(data, split, *tokenizer, spec.block_size, &truncated);
  MIA_ASSIGN_OR_RETURN(const std::string key_json, LmKeyJson(c, *tokenizer));
  ArtifactStore store(c.run.log_dir, ctx.artifact_remote);
  MIA_ASSIGN_OR_RETURN(
      const std::vector<std::string> model_paths,
      LmTrainStage(c, ctx, data, split, spec, corpus, key_json, &store, &output, &timings));
  MIA_RETURN_IF_ERROR(CheckCancel(ctx));
  MIA_ASSIGN_OR_RETURN(
      std::vector<attacks::TokenSignals> signals,
      LmSignalsStage(c, ctx, split, spec, corpus, model_paths, output.models, store, &timings));
  MIA_ASSIGN_OR_RETURN(auto arrays_and_bundle, MakeLmBundle(c, data, split, corpus, truncated,
                                                            *tokenizer, std::move(signals)));
  const audit::Bundle& bundle = arrays_and_bundle.second;
  MIA_RETURN_IF_ERROR(ScoreStage(c, ctx, bundle, std::move(timings), &output));
  MIA_RETURN_IF_ERROR(LmReportStage(c, ctx, arrays_and_bundle.first, &output));
  return output;
}

}  // namespace mia::pipeline::internal
