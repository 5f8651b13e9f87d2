#include "core/pipeline/memory_estimate.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/memory_budget.h"
#include "core/common/saturating.h"
#include "core/common/status_macros.h"
#include "core/io/npy.h"
#include "core/metrics/bootstrap.h"
#include "core/metrics/roc.h"

namespace mia::pipeline {
namespace {

namespace fs = std::filesystem;

// Signal kinds computed from logits (prob, logit_scaled, loss): every kind an
// attack may ask for, 8 bytes per value.
constexpr uint64_t kSignalKinds = 3;

uint64_t Mul(uint64_t a, uint64_t b) { return SaturatingMul(a, b); }
uint64_t Add(uint64_t a, uint64_t b) { return SaturatingAdd(a, b); }

uint64_t Product(const std::vector<int64_t>& dims) {
  uint64_t p = 1;
  for (int64_t d : dims) p = Mul(p, static_cast<uint64_t>(std::max<int64_t>(d, 0)));
  return p;
}

// Dense layer in -> out: weights and bias.
uint64_t Dense(uint64_t in, uint64_t out) { return Add(Mul(in, out), out); }
// k x k convolution in -> out channels, with or without bias.
uint64_t Conv(uint64_t in, uint64_t out, uint64_t k, bool bias) {
  return Add(Mul(Mul(in, out), k * k), bias ? out : 0);
}

struct Image {
  uint64_t c = 0, h = 0, w = 0;
};

absl::StatusOr<Image> ImageInput(const training::ModelSpec& spec,
                                 const std::vector<int64_t>& sample_shape) {
  if (sample_shape.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat("train.architecture: '", spec.architecture,
                                                   "' needs images shaped {C, H, W}, and the "
                                                   "data has tabular rows"));
  }
  return Image{static_cast<uint64_t>(sample_shape[0]), static_cast<uint64_t>(sample_shape[1]),
               static_cast<uint64_t>(sample_shape[2])};
}

// vgg16's conv widths, block by block; a 2x2 max-pool closes each block
// (core/models/vgg16.cc). The classifier sees 512 x 7 x 7 pooled features.
const std::vector<std::vector<uint64_t>>& Vgg16Blocks() {
  static const std::vector<std::vector<uint64_t>>* const kBlocks =
      new std::vector<std::vector<uint64_t>>{
          {64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}};
  return *kBlocks;
}
constexpr uint64_t kVgg16Features = 512 * 7 * 7;
constexpr uint64_t kVgg16Hidden = 4096;

uint64_t WrnBlocks(const training::ModelSpec& spec) {
  return spec.depth >= 10 ? static_cast<uint64_t>((spec.depth - 4) / 6) : 1;
}

std::string ArchitectureText(const training::ModelSpec& spec) {
  if (spec.architecture == "mlp") {
    return absl::StrCat("'mlp' with hidden [", absl::StrJoin(spec.hidden, ", "), "]");
  }
  if (spec.architecture == "wrn") {
    return absl::StrCat("'wrn' of depth ", spec.depth, " and width ", spec.width);
  }
  if (spec.architecture == "cnn") return absl::StrCat("'cnn' of width ", spec.width);
  return absl::StrCat("'", spec.architecture, "'");
}

// The bytes of a file once decompressed: for gzip its trailer's ISIZE (the
// size modulo 4 GiB, which is what the loaders read), else its size.
uint64_t ContentBytes(const fs::path& file) {
  std::error_code ec;
  const uint64_t size = fs::file_size(file, ec);
  if (ec) return 0;
  if (file.extension() != ".gz" || size < 18) return size;
  std::ifstream in(file, std::ios::binary);
  unsigned char trailer[4] = {0, 0, 0, 0};
  in.seekg(static_cast<std::streamoff>(size - 4));
  in.read(reinterpret_cast<char*>(trailer), 4);
  if (!in) return size;
  const uint64_t isize = trailer[0] | (uint64_t{trailer[1]} << 8) | (uint64_t{trailer[2]} << 16) |
                         (uint64_t{trailer[3]} << 24);
  return std::max(size, isize);
}

// Decompressed bytes of the files at `path` (a file, or the regular files of
// a folder).
uint64_t DiskBytes(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return ContentBytes(path);
  uint64_t total = 0;
  if (!fs::is_directory(path, ec)) return 0;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_regular_file(type_ec)) total = Add(total, ContentBytes(it->path()));
  }
  return total;
}

// The first line of a csv file (at most 16 MiB of it), empty when unreadable.
std::string FirstLine(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  constexpr size_t kMax = size_t{16} << 20;
  char ch;
  while (line.size() < kMax && in.get(ch) && ch != '\n') line.push_back(ch);
  return line;
}

}  // namespace

absl::StatusOr<uint64_t> ParameterCount(const training::ModelSpec& spec,
                                        const std::vector<int64_t>& sample_shape, int64_t classes) {
  const uint64_t c = static_cast<uint64_t>(std::max<int64_t>(classes, 1));
  if (spec.architecture == "mlp") {
    uint64_t in = Product(sample_shape), params = 0;
    for (int h : spec.hidden) {
      params = Add(params, Dense(in, static_cast<uint64_t>(h)));
      in = static_cast<uint64_t>(h);
    }
    return Add(params, Dense(in, c));
  }
  if (spec.architecture == "cnn") {
    MIA_ASSIGN_OR_RETURN(const Image x, ImageInput(spec, sample_shape));
    const uint64_t c1 = 32 * static_cast<uint64_t>(spec.width);
    const uint64_t c2 = 64 * static_cast<uint64_t>(spec.width);
    const uint64_t features = Mul(c2, (x.h / 4) * (x.w / 4));
    return Add(Add(Conv(x.c, c1, 3, true), Conv(c1, c2, 3, true)),
               Add(Dense(features, 128), Dense(128, c)));
  }
  if (spec.architecture == "alexnet") {
    MIA_ASSIGN_OR_RETURN(const Image x, ImageInput(spec, sample_shape));
    uint64_t params = Conv(x.c, 64, 3, true) + Conv(64, 192, 3, true) + Conv(192, 384, 3, true) +
                      Conv(384, 256, 3, true) + Conv(256, 256, 3, true);
    params = Add(params, Dense(Mul(256, (x.h / 8) * (x.w / 8)), 1024));
    return Add(Add(params, Dense(1024, 512)), Dense(512, c));
  }
  if (spec.architecture == "vgg16") {
    MIA_ASSIGN_OR_RETURN(const Image x, ImageInput(spec, sample_shape));
    uint64_t params = 0, in = x.c;
    for (const std::vector<uint64_t>& block : Vgg16Blocks()) {
      for (uint64_t out : block) {
        params = Add(params, Conv(in, out, 3, true));
        in = out;
      }
    }
    params = Add(params, Dense(kVgg16Features, kVgg16Hidden));
    params = Add(params, Dense(kVgg16Hidden, kVgg16Hidden));
    return Add(params, Dense(kVgg16Hidden, c));
  }
  if (spec.architecture == "wrn") {
    MIA_ASSIGN_OR_RETURN(const Image x, ImageInput(spec, sample_shape));
    const uint64_t k = static_cast<uint64_t>(spec.width);
    const uint64_t widths[] = {16, 16 * k, 32 * k, 64 * k};
    uint64_t params = Conv(x.c, widths[0], 3, false);
    uint64_t in = widths[0];
    for (int g = 1; g <= 3; ++g) {
      const uint64_t out = widths[g];
      for (uint64_t i = 0; i < WrnBlocks(spec); ++i) {
        const bool strided = g > 1 && i == 0;
        params = Add(params, 2 * in + Conv(in, out, 3, false) + 2 * out + Conv(out, out, 3, false));
        if (in != out || strided) params = Add(params, Conv(in, out, 1, false));
        in = out;
      }
    }
    return Add(Add(params, 2 * in), Dense(in, c));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("train.architecture: no memory estimate for '", spec.architecture, "'"));
}

absl::StatusOr<uint64_t> ActivationsPerExample(const training::ModelSpec& spec,
                                               const std::vector<int64_t>& sample_shape,
                                               int64_t classes) {
  const uint64_t c = static_cast<uint64_t>(std::max<int64_t>(classes, 1));
  const uint64_t input = Product(sample_shape);
  if (spec.architecture == "mlp") {
    uint64_t acts = Add(input, c);
    for (int h : spec.hidden) acts = Add(acts, 2 * static_cast<uint64_t>(h));
    return acts;
  }
  MIA_ASSIGN_OR_RETURN(const Image x, ImageInput(spec, sample_shape));
  const uint64_t pixels = x.h * x.w;
  if (spec.architecture == "cnn") {
    const uint64_t c1 = 32 * static_cast<uint64_t>(spec.width);
    const uint64_t c2 = 64 * static_cast<uint64_t>(spec.width);
    return input + 2 * c1 * pixels + c1 * pixels / 4 + 2 * c2 * pixels / 4 + c2 * pixels / 16 +
           2 * 128 + c;
  }
  if (spec.architecture == "alexnet") {
    return input + 2 * 64 * pixels + 64 * pixels / 4 + 2 * 192 * pixels / 4 + 192 * pixels / 16 +
           2 * (384 + 256 + 256) * pixels / 16 + 256 * pixels / 64 + 2 * (1024 + 512) + c;
  }
  if (spec.architecture == "vgg16") {
    // Per conv its output and its ReLU; per block the pooled output; then the
    // 7x7 pooled features and, per hidden FC, its output, ReLU and dropout.
    uint64_t acts = input;
    for (size_t b = 0; b < Vgg16Blocks().size(); ++b) {
      const uint64_t area = pixels >> (2 * b);
      for (uint64_t width : Vgg16Blocks()[b]) acts = Add(acts, Mul(2 * width, area));
      acts = Add(acts, Mul(Vgg16Blocks()[b].back(), pixels >> (2 * (b + 1))));
    }
    return Add(acts, kVgg16Features + 2 * 3 * kVgg16Hidden + c);
  }
  if (spec.architecture == "wrn") {
    const uint64_t k = static_cast<uint64_t>(spec.width);
    // Per block about five tensors of its output's size (BN, ReLU, conv twice, sum).
    uint64_t acts = input + 16 * pixels;
    const uint64_t widths[] = {16 * k, 32 * k, 64 * k};
    for (int g = 0; g < 3; ++g) {
      const uint64_t area = pixels >> (2 * g);
      acts = Add(acts, Mul(WrnBlocks(spec), Mul(5 * widths[g], area)));
    }
    return Add(acts, c);
  }
  return ParameterCount(spec, sample_shape, classes);  // the error for an unknown name
}

absl::StatusOr<uint64_t> TrainingBytesPerModel(const training::ModelSpec& spec,
                                               const training::TrainRecipe& recipe,
                                               const std::vector<int64_t>& sample_shape,
                                               int64_t classes) {
  MIA_ASSIGN_OR_RETURN(const uint64_t params, ParameterCount(spec, sample_shape, classes));
  MIA_ASSIGN_OR_RETURN(const uint64_t acts, ActivationsPerExample(spec, sample_shape, classes));
  uint64_t optimizer_copies = 0;
  if (recipe.optimizer == "adam" || recipe.optimizer == "adamw") {
    optimizer_copies = 2;
  } else if (recipe.momentum != 0) {
    optimizer_copies = 1;
  }
  const uint64_t state = Mul(Mul(params, 4), 2 + optimizer_copies);
  const uint64_t batch = static_cast<uint64_t>(std::max(recipe.batch_size, 1));
  return Add(state, Mul(Mul(acts, batch), 4 * 2));
}

namespace {

// Metrics of one attack on one target at a time: copies of its scores over
// the audit points (10 bytes a point) and the bootstrap's buffers.
uint64_t MetricsBytes(const Config& c, uint64_t audited) {
  const audit::ScoringOptions& scoring = c.audit.scoring;
  return Add(Mul(audited, 10),
             metrics::BootstrapPeakBytes(
                 audited, scoring.bootstrap.resamples,
                 scoring.fprs.empty() ? metrics::DefaultFprs().size() : scoring.fprs.size(),
                 c.run.threads));
}

// A language model's audit: the texts (their files' size, as strings and
// token ids), the models in training (4-byte parameters, their gradients and
// AdamW's 2 moments, or with LoRA the frozen parameters alone; a batch's
// activations, per token about 16 n_embd floats a layer and 3 rows as wide as
// the vocabulary: logits, log-probs, their gradient), and the per-token
// signals of every model (log-prob, mean, variance) on the audited and
// population texts with their sequence losses, plus the metrics.
MemoryEstimate EstimateLmMemory(const Config& c, uint64_t data_file_bytes, int concurrent_models) {
  const LanguageModelConfig& lm = *c.lm;
  const training::LmSpec& s = lm.spec;
  const uint64_t models = static_cast<uint64_t>(std::max(c.num_models(), 1));
  // GPT-2's tokenizer files hold 50,257 tokens.
  const uint64_t vocab = lm.tokenizer == "bpe" ? static_cast<uint64_t>(lm.vocab_size) : 50257;
  const uint64_t layers = static_cast<uint64_t>(s.n_layer);
  const uint64_t width = static_cast<uint64_t>(s.n_embd);
  const uint64_t block = static_cast<uint64_t>(s.block_size);
  const uint64_t params =
      Add(Mul(Mul(12, layers), Mul(width, width)), Mul(Add(vocab, block), width));
  const uint64_t activations =
      Mul(Mul(static_cast<uint64_t>(lm.recipe.batch_size), block),
          Add(Mul(Mul(16, layers), width), Mul(3, vocab)));
  const uint64_t per_model = Add(Mul(params, s.lora.rank > 0 ? 4 : 16), Mul(activations, 4));
  const uint64_t at_once =
      std::min<uint64_t>(models, static_cast<uint64_t>(std::max(concurrent_models, 1)));
  const uint64_t training_bytes = Mul(per_model, at_once);
  const uint64_t population = static_cast<uint64_t>(c.data.population_size);
  const uint64_t pool = static_cast<uint64_t>(
      c.audit.data_size > 0 ? c.audit.data_size : std::max<int64_t>(c.data.pool_size, 0));
  const uint64_t points = Add(pool, population);
  const uint64_t signal_bytes =
      Add(Mul(Mul(Mul(models, points), block), 3 * 4), Mul(Mul(models, points), 8 * kSignalKinds));
  // Texts as strings, and as 4-byte token ids (at most one per byte).
  const uint64_t data_bytes = Mul(data_file_bytes, 5);
  const uint64_t metrics_bytes = MetricsBytes(c, pool);
  MemoryEstimate estimate;
  estimate.bytes = Add(Add(Add(data_bytes, training_bytes), signal_bytes), metrics_bytes);
  estimate.what = absl::StrCat(
      "training ", s.architecture, " with ", s.n_layer, " layers of ", s.n_embd, " (", params,
      " parameters, a ", vocab, "-token vocabulary; ", FormatBytes(training_bytes), " for ",
      at_once, at_once == 1 ? " model" : " models", " at once), ", FormatBytes(data_bytes),
      " of texts and ", FormatBytes(signal_bytes), " of per-token signals (", models,
      " models x ", points, " texts x ", block, " positions)");
  return estimate;
}

}  // namespace

absl::StatusOr<MemoryEstimate> EstimatePipelineMemory(const Config& config, const DataShape& shape,
                                                      int concurrent_models) {
  if (config.language_model()) {
    return EstimateLmMemory(config, DiskBytes(config.data.source.path), concurrent_models);
  }
  // A DUCI game trains its own targets and references (duci_game.cc).
  const int model_count = config.audit.duci.has_value()
                              ? DuciTargetModels(config) + DuciReferenceModels(config)
                              : config.num_models();
  const uint64_t models = static_cast<uint64_t>(std::max(model_count, 1));
  const uint64_t rows = static_cast<uint64_t>(std::max<int64_t>(shape.rows, 0));
  const uint64_t features = Product(shape.sample_shape);
  const uint64_t classes = static_cast<uint64_t>(std::max<int64_t>(shape.classes, 1));
  // The dataset as 4-byte features and 8-byte labels.
  const uint64_t data_bytes = Mul(rows, Add(Mul(features, 4), 8));

  uint64_t training_bytes = 0;
  uint64_t at_once = 0;
  uint64_t params = 0;
  if (config.external.torchscript.empty()) {
    MIA_ASSIGN_OR_RETURN(params, ParameterCount(config.model, shape.sample_shape, shape.classes));
    MIA_ASSIGN_OR_RETURN(
        const uint64_t per_model,
        TrainingBytesPerModel(config.model, config.recipe, shape.sample_shape, shape.classes));
    at_once =
        config.batched_training.value_or(false)
            ? models
            : std::min<uint64_t>(models, static_cast<uint64_t>(std::max(concurrent_models, 1)));
    training_bytes = Mul(per_model, at_once);
  }

  // Points every model is queried on: the audit set (all of the pool unless
  // data_size says fewer) and the population.
  // A DUCI game with no population given sets aside up to a fifth of the rows
  // (counted whether or not its attacks need them: an upper bound).
  const uint64_t population =
      config.data.population_quarter ? rows / 4
      : config.audit.duci.has_value() && config.data.population_size == 0
          ? rows / 5
          : static_cast<uint64_t>(config.data.population_size);
  uint64_t pool = config.data.pool_size > 0 ? static_cast<uint64_t>(config.data.pool_size)
                                            : (rows > population ? rows - population : 0);
  if (config.audit.data_size > 0) {
    pool = std::min(pool, static_cast<uint64_t>(config.audit.data_size));
    if (rows == 0) pool = static_cast<uint64_t>(config.audit.data_size);
  }
  uint64_t points = Add(pool, population);
  // A range audit (RaMIA) queries sample_size generated points per range
  // instead of the audit set, and holds them (with the population rows it
  // compares with) as a dataset of their own.
  uint64_t generated_bytes = 0;
  if (config.audit.ramia.has_value()) {
    const uint64_t ranges = config.audit.data_size > 0
                                ? static_cast<uint64_t>(config.audit.data_size)
                                : 2 * std::min(pool, population / 2);
    const uint64_t s = static_cast<uint64_t>(std::max(config.audit.ramia->sample_size, 1));
    points = Add(Mul(ranges, s), population);
    generated_bytes = Mul(points, Add(Mul(features, 4), 8));
    pool = ranges;
  }
  const bool image = shape.sample_shape.size() == 3;
  const training::QueryAugmentation& aug = config.audit.augmentation;
  const uint64_t queries = image ? 1 + (aug.flip ? 1 : 0) + (aug.shift > 0 ? 4 : 0) : 1;
  const uint64_t values = Mul(Mul(models, points), queries);
  // Logits as floats, then each signal kind as doubles; the keep matrix.
  const uint64_t signal_bytes =
      Add(Add(Mul(Mul(values, classes), 4), Mul(values, 8 * kSignalKinds)), Mul(models, points));

  const uint64_t metrics_bytes = MetricsBytes(config, pool);

  MemoryEstimate estimate;
  estimate.bytes =
      Add(Add(Add(Add(data_bytes, training_bytes), signal_bytes), metrics_bytes), generated_bytes);
  std::string training_text =
      config.external.torchscript.empty()
          ? absl::StrCat("training ", ArchitectureText(config.model), " (", params, " parameters; ",
                         FormatBytes(training_bytes), " for ", at_once,
                         at_once == 1 ? " model" : " models", " at once)")
          : absl::StrCat("auditing ", models, " TorchScript models");
  estimate.what =
      absl::StrCat(training_text, ", ", FormatBytes(data_bytes), " of data (", rows, " rows of ",
                   features, " features) and ", FormatBytes(signal_bytes),
                   " of logits and signals (", models, " models x ", points, " points x ", queries,
                   queries == 1 ? " query" : " queries", " x ", classes, " classes)");
  if (generated_bytes > 0) {
    absl::StrAppend(&estimate.what, ", ", FormatBytes(generated_bytes),
                    " of points sampled from ranges");
  }
  return estimate;
}

DataShape ProbeDataShape(const Config& config) {
  DataShape shape;
  const std::string& dataset = config.data.dataset;
  const data::DataSource& source = config.data.source;
  // The fewest bytes one row takes on disk (uncompressed): rows <= size / this.
  uint64_t row_bytes = 0;
  if (dataset == "mnist" || dataset == "fashion-mnist" || source.format == "idx") {
    shape.sample_shape = {1, 28, 28};
    shape.classes = 10;
    row_bytes = 28 * 28;
  } else if (dataset == "cifar10" || dataset == "cifar100") {
    shape.sample_shape = {3, 32, 32};
    shape.classes = dataset == "cifar10" ? 10 : 100;
    row_bytes = 3 * 32 * 32 + 1;
  } else if (dataset == "purchase100") {
    shape.sample_shape = {600};
    shape.classes = 100;
    row_bytes = 2 * 600;  // "0," per feature
  } else if (dataset == "texas100") {
    shape.sample_shape = {6169};
    shape.classes = 100;
    row_bytes = 2 * 6169;
  } else if (source.format == "npy") {
    const absl::StatusOr<io::NpyInfoMap> infos = io::ReadArrayInfos(source.path);
    if (infos.ok()) {
      if (auto it = infos->find("features"); it != infos->end() && !it->second.shape.empty()) {
        shape.rows = it->second.shape[0];
        shape.sample_shape.assign(it->second.shape.begin() + 1, it->second.shape.end());
      }
    }
    return shape;
  } else if (source.format == "csv") {
    std::error_code ec;
    const std::string line = fs::is_regular_file(source.path, ec) ? FirstLine(source.path) : "";
    const int64_t columns = line.empty() ? 1 : std::count(line.begin(), line.end(), ',') + 1;
    shape.sample_shape = {std::max<int64_t>(columns - 1, 1)};
    row_bytes = static_cast<uint64_t>(2 * columns);
  }
  if (row_bytes > 0) shape.rows = static_cast<int64_t>(DiskBytes(source.path) / row_bytes);
  return shape;
}

}  // namespace mia::pipeline
