#include "core/audit/bundle.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/attacks/sequence_attacks.h"
#include "core/common/memory_budget.h"
#include "core/common/saturating.h"
#include "core/common/status_macros.h"
#include "core/metrics/roc.h"

namespace mia::audit {
namespace {

using attacks::SignalKind;

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

absl::Status ShapeError(const std::string& name, const io::NpyArray& a, const std::string& want) {
  return absl::InvalidArgumentError(
      absl::StrCat("array '", name, "': shape ", ShapeString(a.shape), ", expected ", want));
}

// Reads `prefix` logits/signals: "logits" + labels, or "signals" (audit), or
// "population_logits" + "population_labels" / "population_signals".
absl::StatusOr<std::optional<SignalSource>> ReadSource(io::NpyMap& arrays,
                                                       const std::string& logits_name,
                                                       const std::string& labels_name,
                                                       const std::string& signals_name,
                                                       SignalKind kind) {
  const bool has_logits = arrays.count(logits_name) > 0;
  const bool has_signals = arrays.count(signals_name) > 0;
  if (has_logits && has_signals) {
    return absl::InvalidArgumentError(
        absl::StrCat("arrays '", logits_name, "' and '", signals_name, "' both given: give one"));
  }
  if (!has_logits && arrays.count(labels_name) > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("array '", labels_name, "' given without '", logits_name, "'"));
  }
  if (!has_logits && !has_signals) return std::optional<SignalSource>();
  SignalSource src;
  src.kind = kind;
  if (has_logits) {
    const io::NpyArray& a = arrays.at(logits_name);
    src.has_logits = true;
    src.array_name = logits_name;
    if (a.shape.size() != 3 && a.shape.size() != 4) {
      return ShapeError(logits_name, a,
                        "[models, points, classes] or [models, points, queries, classes]");
    }
    src.logits_shape.models = static_cast<int>(a.shape[0]);
    src.logits_shape.points = a.shape[1];
    src.logits_shape.queries = a.shape.size() == 4 ? static_cast<int>(a.shape[2]) : 1;
    src.logits_shape.classes = static_cast<int>(a.shape.back());
    if (a.shape[0] < 1 || a.shape[1] < 1 || a.shape.back() < 2 ||
        (a.shape.size() == 4 && a.shape[2] < 1) || a.shape[0] > (1 << 20) ||
        a.shape.back() > (1 << 24) || (a.shape.size() == 4 && a.shape[2] > (1 << 16))) {
      return ShapeError(logits_name, a, "at least 1 model, 1 point, 1 query and 2 classes");
    }
    MIA_ASSIGN_OR_RETURN(src.logits, a.ToFloat(logits_name));
    // The decoded bytes are not needed again: free them now, or a large bundle
    // is held twice while the rest converts.
    std::vector<uint8_t>().swap(arrays.at(logits_name).data);
    auto labels_it = arrays.find(labels_name);
    if (labels_it == arrays.end()) {
      return absl::InvalidArgumentError(absl::StrCat("array '", labels_name, "' is missing: '",
                                                     logits_name, "' needs the true labels"));
    }
    const io::NpyArray& l = labels_it->second;
    if (l.shape.size() != 1 || l.shape[0] != src.logits_shape.points) {
      return ShapeError(labels_name, l, absl::StrCat("(", src.logits_shape.points, ",)"));
    }
    MIA_ASSIGN_OR_RETURN(src.labels, l.ToInt64(labels_name));
    for (size_t i = 0; i < src.labels.size(); ++i) {
      if (src.labels[i] < 0 || src.labels[i] >= src.logits_shape.classes) {
        return absl::InvalidArgumentError(absl::StrCat("array '", labels_name, "': entry ", i,
                                                       " is outside [0, ", src.logits_shape.classes,
                                                       ")"));
      }
    }
    for (size_t k = 0; k < src.logits.size(); ++k) {
      if (!std::isfinite(src.logits[k])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "array '", logits_name, "': non-finite value (NaN or inf) at flat index ", k));
      }
    }
  } else {
    const io::NpyArray& a = arrays.at(signals_name);
    src.array_name = signals_name;
    if (a.shape.size() != 2 && a.shape.size() != 3) {
      return ShapeError(signals_name, a, "[models, points] or [models, points, queries]");
    }
    if (a.shape[0] < 1 || a.shape[1] < 1 || (a.shape.size() == 3 && a.shape[2] < 1) ||
        a.shape[0] > (1 << 20) || (a.shape.size() == 3 && a.shape[2] > (1 << 16))) {
      return ShapeError(signals_name, a, "at least 1 model, 1 point and 1 query");
    }
    src.signal.models = static_cast<int>(a.shape[0]);
    src.signal.points = a.shape[1];
    src.signal.queries = a.shape.size() == 3 ? static_cast<int>(a.shape[2]) : 1;
    MIA_ASSIGN_OR_RETURN(src.signal.values, a.ToDouble(signals_name));
    std::vector<uint8_t>().swap(arrays.at(signals_name).data);  // as for logits
    MIA_RETURN_IF_ERROR(
        attacks::ValidateSignal(src.signal, kind, absl::StrCat("array '", signals_name, "'")));
  }
  return std::optional<SignalSource>(std::move(src));
}

// The arrays of a classifier bundle and of a language-model bundle; a
// bundle holds arrays of one kind only (keep, row_ids and targets are common).
const std::vector<std::string>& ClassifierArrays() {
  static const std::vector<std::string>* const kNames =
      new std::vector<std::string>{"logits",
                                   "labels",
                                   "signals",
                                   "signal_type",
                                   "population_logits",
                                   "population_labels",
                                   "population_signals"};
  return *kNames;
}

const std::vector<std::string>& LanguageModelArrays() {
  static const std::vector<std::string>* const kNames = new std::vector<std::string>{
      "token_logprobs",
      "lengths",
      "token_mean",
      "token_var",
      "texts",
      "text_zlib_sizes",
      "population_token_logprobs",
      "population_lengths",
      "population_token_mean",
      "population_token_var",
      "population_texts"};
  return *kNames;
}

bool IsFloating(io::DType dtype) {
  return dtype == io::DType::kFloat16 || dtype == io::DType::kFloat32 ||
         dtype == io::DType::kFloat64;
}

bool IsInteger(io::DType dtype) {
  return dtype != io::DType::kBool && dtype != io::DType::kUnicode && !IsFloating(dtype);
}

// A [models, points, length] array of floats, freed from `arrays` once read.
absl::StatusOr<std::vector<float>> ReadTokenArray(io::NpyMap& arrays, const std::string& name,
                                                  const std::vector<int64_t>& shape) {
  const io::NpyArray& a = arrays.at(name);
  if (!IsFloating(a.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "array '", name, "': dtype ", io::DTypeName(a.dtype), ", expected float32 or float64"));
  }
  if (a.shape != shape) {
    return ShapeError(name, a, absl::StrCat(ShapeString(shape), " (models, texts, max length)"));
  }
  MIA_ASSIGN_OR_RETURN(std::vector<float> values, a.ToFloat(name));
  std::vector<uint8_t>().swap(arrays.at(name).data);  // as for logits
  return values;
}

struct TextSource {
  attacks::TokenSignals tokens;    // values held as float (float64 arrays rounded)
  std::vector<std::string> texts;  // UTF-8; empty when the bundle has none
  std::vector<int64_t> zlib_sizes;  // text_zlib_sizes (audit texts only); empty when none
};

// The per-token signals and texts of a language-model bundle under `prefix`
// ("" for the audit texts, "population_" for the population's); nothing when
// the bundle has no prefix + "token_logprobs". `models` (> 0) is the models
// every array must have, once known.
absl::StatusOr<std::optional<TextSource>> ReadTextSource(io::NpyMap& arrays,
                                                         const std::string& prefix, int models) {
  const std::string lp_name = prefix + "token_logprobs";
  if (arrays.count(lp_name) == 0) {
    for (const char* name : {"lengths", "token_mean", "token_var", "texts", "text_zlib_sizes"}) {
      if (arrays.count(prefix + name) > 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("array '", prefix, name, "' given without '", lp_name, "'"));
      }
    }
    return std::optional<TextSource>();
  }
  TextSource src;
  attacks::TokenSignals& t = src.tokens;
  {
    const io::NpyArray& a = arrays.at(lp_name);
    if (a.shape.size() != 3 || a.shape[0] < 1 || a.shape[1] < 1 || a.shape[2] < 1 ||
        a.shape[0] > (1 << 20) || (models > 0 && a.shape[0] != models)) {
      return ShapeError(lp_name, a,
                        models > 0 ? absl::StrCat("(", models, ", texts, max length)")
                                   : "(models, texts, max length), each at least 1");
    }
    t.models = static_cast<int>(a.shape[0]);
    t.points = a.shape[1];
    t.max_length = a.shape[2];
  }
  const std::vector<int64_t> shape = {t.models, t.points, t.max_length};
  MIA_ASSIGN_OR_RETURN(t.logprobs, ReadTokenArray(arrays, lp_name, shape));
  const std::string lengths_name = prefix + "lengths";
  auto lengths_it = arrays.find(lengths_name);
  if (lengths_it == arrays.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("array '", lengths_name, "' is missing: '", lp_name,
                     "' needs each text's number of scored positions"));
  }
  if (!IsInteger(lengths_it->second.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("array '", lengths_name, "': dtype ",
                                                   io::DTypeName(lengths_it->second.dtype),
                                                   ", expected integers"));
  }
  if (lengths_it->second.shape != std::vector<int64_t>{t.points}) {
    return ShapeError(lengths_name, lengths_it->second, absl::StrCat("(", t.points, ",)"));
  }
  MIA_ASSIGN_OR_RETURN(t.lengths, lengths_it->second.ToInt64(lengths_name));
  const std::string mean_name = prefix + "token_mean";
  const std::string var_name = prefix + "token_var";
  const bool has_mean = arrays.count(mean_name) > 0;
  const bool has_var = arrays.count(var_name) > 0;
  if (has_mean != has_var) {
    return absl::InvalidArgumentError(
        absl::StrCat("array '", has_mean ? mean_name : var_name, "' given without '",
                     has_mean ? var_name : mean_name, "': give both or neither"));
  }
  if (has_mean) {
    MIA_ASSIGN_OR_RETURN(t.mean, ReadTokenArray(arrays, mean_name, shape));
    MIA_ASSIGN_OR_RETURN(t.var, ReadTokenArray(arrays, var_name, shape));
  }
  // Lengths in range; finite values; log-probs <= 0 and variances >= 0
  // within rounding, then rounded into range (attacks::kTokenTolerance).
  MIA_RETURN_IF_ERROR(attacks::ValidateTokenSignals(t, prefix));
  attacks::ClampTokenSignals(&t);
  const std::string texts_name = prefix + "texts";
  if (auto it = arrays.find(texts_name); it != arrays.end()) {
    if (it->second.dtype != io::DType::kUnicode) {
      return absl::InvalidArgumentError(
          absl::StrCat("array '", texts_name, "': dtype ", io::DTypeName(it->second.dtype),
                       ", expected a unicode string array (numpy dtype '<U...')"));
    }
    if (it->second.shape != std::vector<int64_t>{t.points}) {
      return ShapeError(texts_name, it->second, absl::StrCat("(", t.points, ",)"));
    }
    MIA_ASSIGN_OR_RETURN(src.texts, it->second.ToStrings(texts_name));
    std::vector<uint8_t>().swap(arrays.at(texts_name).data);
  }
  // What zlib reads of the texts, for bundles that must not hold them (a
  // pipeline's report): each text's zlib-compressed size.
  const std::string sizes_name = prefix + "text_zlib_sizes";
  if (auto it = arrays.find(sizes_name); it != arrays.end()) {
    if (!src.texts.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "arrays '", texts_name, "' and '", sizes_name, "': give one (the sizes are the texts')"));
    }
    if (it->second.shape != std::vector<int64_t>{t.points}) {
      return ShapeError(sizes_name, it->second, absl::StrCat("(", t.points, ",)"));
    }
    MIA_ASSIGN_OR_RETURN(src.zlib_sizes, it->second.ToInt64(sizes_name));
    for (size_t i = 0; i < src.zlib_sizes.size(); ++i) {
      if (src.zlib_sizes[i] < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("array '", sizes_name, "': value below 1 at [", i, "]"));
      }
    }
  }
  return std::optional<TextSource>(std::move(src));
}

// The sequence loss of every model and text, as the loss signal the
// classifier attacks read.
SignalSource SequenceLossSource(const attacks::TokenSignals& tokens, const std::string& name) {
  SignalSource src;
  src.kind = SignalKind::kLoss;
  src.array_name = name;
  src.signal = attacks::SequenceLoss(tokens);
  return src;
}

}  // namespace

const std::vector<std::string>& BundleArrayNames() {
  static const std::vector<std::string>* const kNames = new std::vector<std::string>([] {
    std::vector<std::string> names = {"keep"};
    names.insert(names.end(), ClassifierArrays().begin(), ClassifierArrays().end());
    names.insert(names.end(), LanguageModelArrays().begin(), LanguageModelArrays().end());
    names.push_back("row_ids");
    names.push_back("targets");
    return names;
  }());
  return *kNames;
}

BundleMemoryEstimate EstimateBundleMemory(const io::NpyInfoMap& arrays,
                                          const metrics::BootstrapOptions& bootstrap, size_t fprs) {
  // Signal kinds scoring may compute (prob, logit_scaled, loss).
  constexpr uint64_t kSignalKinds = 3;
  const auto add = &SaturatingAdd;
  const auto mul = &SaturatingMul;
  auto elements = [&](const io::NpyArrayInfo& a) {
    uint64_t n = 1;
    for (int64_t d : a.shape) n = mul(n, static_cast<uint64_t>(std::max<int64_t>(d, 0)));
    return n;
  };
  auto dim = [&](const char* name, size_t i) -> uint64_t {
    auto it = arrays.find(name);
    if (it == arrays.end() || it->second.shape.size() <= i) return 0;
    return static_cast<uint64_t>(std::max<int64_t>(it->second.shape[i], 0));
  };
  uint64_t decoded = 0, converted = 0;
  for (const auto& [name, a] : arrays) {
    decoded = add(decoded, a.data_bytes);
    const uint64_t n = elements(a);
    if (name == "logits" || name == "population_logits" || absl::StrContains(name, "token_")) {
      converted = add(converted, mul(n, 4));
    } else if (name == "texts" || name == "population_texts") {
      // UTF-8 takes at most the 4 bytes of a UCS-4 code point, plus a
      // std::string per text.
      converted = add(converted, add(a.data_bytes, mul(n, sizeof(std::string))));
    } else if (name == "lengths" || name == "population_lengths" || name == "text_zlib_sizes") {
      converted = add(converted, mul(n, 8));
    } else if (name == "signals" || name == "population_signals" || name == "labels" ||
               name == "population_labels" || name == "row_ids") {
      converted = add(converted, mul(n, 8));
    } else if (name == "keep") {
      converted = add(converted, n);
    }
  }
  if (arrays.count("token_logprobs") > 0) {
    // A language model: one sequence loss per model and text, in up to 3
    // signal kinds (audit and population), and the zlib sizes of the texts.
    const uint64_t models = std::max(dim("token_logprobs", 0), dim("keep", 0));
    const uint64_t texts = std::max(dim("token_logprobs", 1), dim("keep", 1));
    const uint64_t length = dim("token_logprobs", 2);
    const uint64_t population = dim("population_token_logprobs", 1);
    const uint64_t signals =
        add(mul(mul(models, add(texts, population)), 8 * kSignalKinds), mul(texts, 8));
    BundleMemoryEstimate estimate;
    estimate.bytes = add(add(decoded, converted), signals);
    estimate.what = absl::StrCat(
        "scoring a language-model bundle of ", models, " models x ", texts, " texts x ", length,
        " positions", population > 0 ? absl::StrCat(" and ", population, " population texts") : "",
        " (", arrays.size(), arrays.size() == 1 ? " array, " : " arrays, ", FormatBytes(decoded),
        " decoded)");
    return estimate;
  }
  const bool logits = arrays.count("logits") > 0;
  const char* audit_name = logits ? "logits" : "signals";
  uint64_t models = std::max(dim(audit_name, 0), dim("keep", 0));
  uint64_t points = std::max(dim(audit_name, 1), dim("keep", 1));
  auto queries_of = [&](const char* name, size_t rank_with_queries) -> uint64_t {
    auto it = arrays.find(name);
    if (it == arrays.end() || it->second.shape.size() != rank_with_queries) return 1;
    return static_cast<uint64_t>(std::max<int64_t>(it->second.shape[2], 1));
  };
  const uint64_t queries = logits ? queries_of("logits", 4) : queries_of("signals", 3);
  const uint64_t population = std::max(dim("population_logits", 1), dim("population_signals", 1));
  const uint64_t signals =
      mul(mul(mul(models, add(points, population)), queries), 8 * kSignalKinds);
  // The metrics of one attack on one target at a time: the copies of its
  // scores, labels and epsilon split (8 + 1 + 1 bytes a point) and the
  // bootstrap's buffers.
  const uint64_t metrics_bytes =
      add(mul(points, 10), metrics::BootstrapPeakBytes(
                               points, bootstrap.resamples,
                               fprs > 0 ? fprs : metrics::DefaultFprs().size(), bootstrap.threads));
  BundleMemoryEstimate estimate;
  estimate.bytes = add(add(add(decoded, converted), signals), metrics_bytes);
  estimate.what =
      absl::StrCat("scoring a bundle of ", models, " models x ", points, " points x ", queries,
                   queries == 1 ? " query" : " queries",
                   population > 0 ? absl::StrCat(" and ", population, " population points") : "",
                   " (", arrays.size(), arrays.size() == 1 ? " array, " : " arrays, ",
                   FormatBytes(decoded), " decoded)");
  return estimate;
}

namespace {

// keep [M, N], and the optional row_ids [N] and targets: the same in every bundle.
absl::Status ReadCommonArrays(const io::NpyMap& arrays, Bundle* b) {
  const int m = b->models();
  const int64_t n = b->points();
  auto keep_it = arrays.find("keep");
  if (keep_it == arrays.end()) {
    return absl::InvalidArgumentError(
        "array 'keep' is missing: the [models, points] membership matrix is required");
  }
  if (keep_it->second.shape != std::vector<int64_t>{m, n}) {
    return ShapeError("keep", keep_it->second, absl::StrCat("(", m, ", ", n, ")"));
  }
  MIA_ASSIGN_OR_RETURN(b->keep, keep_it->second.ToBool("keep"));
  if (auto it = arrays.find("row_ids"); it != arrays.end()) {
    if (it->second.shape != std::vector<int64_t>{n}) {
      return ShapeError("row_ids", it->second, absl::StrCat("(", n, ",)"));
    }
    MIA_ASSIGN_OR_RETURN(b->row_ids, it->second.ToInt64("row_ids"));
    std::vector<int64_t> sorted = b->row_ids;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      return absl::InvalidArgumentError("array 'row_ids': ids are not unique");
    }
  } else {
    b->row_ids.resize(n);
    for (int64_t i = 0; i < n; ++i) b->row_ids[i] = i;
  }
  if (auto it = arrays.find("targets"); it != arrays.end()) {
    if (it->second.shape.size() != 1 || it->second.shape[0] < 1) {
      return ShapeError("targets", it->second, "a non-empty list of model indices");
    }
    MIA_ASSIGN_OR_RETURN(std::vector<int64_t> targets, it->second.ToInt64("targets"));
    std::set<int64_t> seen;
    for (size_t k = 0; k < targets.size(); ++k) {
      if (targets[k] < 0 || targets[k] >= m || !seen.insert(targets[k]).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("array 'targets': entry ", k, " is out of [0, ", m, ") or repeated"));
      }
      b->targets.push_back(static_cast<int>(targets[k]));
    }
  } else {
    b->targets = {0};
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Bundle> BundleFromArrays(io::NpyMap arrays, const std::string& path) {
  for (const auto& [name, array] : arrays) {
    const auto& known = BundleArrayNames();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown array '", name, "': a bundle holds only ", absl::StrJoin(known, ", ")));
    }
  }
  Bundle b;
  b.path = path;
  if (arrays.count("token_logprobs") > 0 || arrays.count("population_token_logprobs") > 0) {
    for (const std::string& name : ClassifierArrays()) {
      if (arrays.count(name) == 0) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          "array '", name, "' is of a classifier bundle, but the bundle has '",
          arrays.count("token_logprobs") > 0 ? "token_logprobs" : "population_token_logprobs",
          "' (a language-model bundle): a bundle holds one or the other"));
    }
    MIA_ASSIGN_OR_RETURN(std::optional<TextSource> audit, ReadTextSource(arrays, "", 0));
    if (!audit.has_value()) {
      return absl::InvalidArgumentError(
          "array 'population_token_logprobs' given without 'token_logprobs'");
    }
    b.audit = SequenceLossSource(audit->tokens, "token_logprobs");
    b.tokens = std::move(audit->tokens);
    b.texts = std::move(audit->texts);
    b.text_zlib_sizes = std::move(audit->zlib_sizes);
    MIA_ASSIGN_OR_RETURN(std::optional<TextSource> population,
                         ReadTextSource(arrays, "population_", b.tokens->models));
    if (population.has_value()) {
      b.population = SequenceLossSource(population->tokens, "population_token_logprobs");
      b.population_tokens = std::move(population->tokens);
      b.population_texts = std::move(population->texts);
    }
    MIA_RETURN_IF_ERROR(ReadCommonArrays(arrays, &b));
    return b;
  }
  for (const std::string& name : LanguageModelArrays()) {
    if (arrays.count(name) > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "array '", name, "' is of a language-model bundle, which needs 'token_logprobs'"));
    }
  }
  SignalKind kind = SignalKind::kProb;
  if (auto it = arrays.find("signal_type"); it != arrays.end()) {
    MIA_ASSIGN_OR_RETURN(std::string type, it->second.ToString("signal_type"));
    absl::StatusOr<SignalKind> parsed = attacks::ParseSignalKind(type);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("array 'signal_type': ", parsed.status().message()));
    }
    kind = *parsed;
    if (arrays.count("signals") == 0 && arrays.count("population_signals") == 0) {
      return absl::InvalidArgumentError(
          "array 'signal_type' given, but no 'signals' or 'population_signals'");
    }
  }
  MIA_ASSIGN_OR_RETURN(std::optional<SignalSource> audit,
                       ReadSource(arrays, "logits", "labels", "signals", kind));
  if (!audit.has_value()) {
    return absl::InvalidArgumentError(
        "the bundle has neither 'logits' (with 'labels') nor 'signals' (nor, for a language "
        "model, 'token_logprobs')");
  }
  b.audit = std::move(*audit);
  MIA_ASSIGN_OR_RETURN(b.population, ReadSource(arrays, "population_logits", "population_labels",
                                                "population_signals", kind));
  const int m = b.models();
  if (b.population.has_value()) {
    const SignalSource& p = *b.population;
    if (p.models() != m) {
      return absl::InvalidArgumentError(absl::StrCat("array '", p.array_name, "' has ", p.models(),
                                                     " models, '", b.audit.array_name, "' has ",
                                                     m));
    }
    if (p.queries() != b.queries()) {
      return absl::InvalidArgumentError(absl::StrCat("array '", p.array_name, "' has ", p.queries(),
                                                     " queries per point, '", b.audit.array_name,
                                                     "' has ", b.queries()));
    }
    if (p.has_logits != b.audit.has_logits ||
        (p.has_logits && p.logits_shape.classes != b.audit.logits_shape.classes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("array '", p.array_name,
                       "' must be of the same kind (logits or signals) and have the "
                       "same classes as '",
                       b.audit.array_name, "'"));
    }
  }
  MIA_RETURN_IF_ERROR(ReadCommonArrays(arrays, &b));
  return b;
}

io::NpyMap LanguageModelBundleArrays(const LanguageModelSignals& signals,
                                     const std::vector<uint8_t>& keep,
                                     const std::vector<int64_t>& row_ids,
                                     const std::vector<int>& targets) {
  io::NpyMap arrays;
  auto add = [&arrays](const std::string& prefix, const attacks::TokenSignals& t,
                       const std::vector<std::string>& texts) {
    const std::vector<int64_t> shape = {t.models, t.points, t.max_length};
    arrays[prefix + "token_logprobs"] = io::NpyArray::FromFloat(shape, t.logprobs);
    arrays[prefix + "lengths"] = io::NpyArray::FromInt64({t.points}, t.lengths);
    if (t.has_stats()) {
      arrays[prefix + "token_mean"] = io::NpyArray::FromFloat(shape, t.mean);
      arrays[prefix + "token_var"] = io::NpyArray::FromFloat(shape, t.var);
    }
    if (!texts.empty()) arrays[prefix + "texts"] = io::NpyArray::FromStrings(texts);
  };
  if (!signals.text_zlib_sizes.empty()) {
    arrays["text_zlib_sizes"] = io::NpyArray::FromInt64(
        {static_cast<int64_t>(signals.text_zlib_sizes.size())}, signals.text_zlib_sizes);
  }
  const attacks::TokenSignals& audit = signals.audit;
  arrays["keep"] = io::NpyArray::FromBool({audit.models, audit.points}, keep);
  add("", audit, signals.texts);
  if (signals.population.has_value()) {
    add("population_", *signals.population, signals.population_texts);
  }
  if (!row_ids.empty()) {
    arrays["row_ids"] = io::NpyArray::FromInt64({static_cast<int64_t>(row_ids.size())}, row_ids);
  }
  if (!targets.empty()) {
    arrays["targets"] =
        io::NpyArray::FromInt64({static_cast<int64_t>(targets.size())},
                                std::vector<int64_t>(targets.begin(), targets.end()));
  }
  return arrays;
}

absl::StatusOr<Bundle> LoadBundle(const std::string& path, const io::ReadLimits& limits,
                                  int threads) {
  MIA_ASSIGN_OR_RETURN(io::NpyMap arrays, io::ReadArrays(path, limits, threads));
  absl::StatusOr<Bundle> bundle = BundleFromArrays(std::move(arrays), path);
  if (!bundle.ok()) {
    return absl::Status(bundle.status().code(),
                        absl::StrCat(path, ": ", bundle.status().message()));
  }
  return bundle;
}

namespace {

absl::StatusOr<attacks::SignalTensor> SignalOf(const SignalSource& src, SignalKind kind,
                                               double temperature, int threads) {
  if (src.has_logits) {
    return attacks::SignalFromLogits(src.logits, src.logits_shape, src.labels, kind, temperature,
                                     absl::StrCat("array '", src.array_name, "'"), threads);
  }
  if (temperature != 1.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a temperature other than 1 needs logits; the bundle holds '", src.array_name, "'"));
  }
  return attacks::ConvertSignal(src.signal, src.kind, kind);
}

absl::Status Fill(const SignalSource& src, const std::vector<SignalKind>& kinds, double temperature,
                  int threads, attacks::SignalSet* set) {
  for (SignalKind kind : kinds) {
    attacks::SignalTensor* slot = kind == SignalKind::kProb          ? &set->prob
                                  : kind == SignalKind::kLogitScaled ? &set->logit_scaled
                                                                     : &set->loss;
    if (!slot->empty()) continue;
    MIA_ASSIGN_OR_RETURN(*slot, SignalOf(src, kind, temperature, threads));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ComputeSignals(const Bundle& bundle, const std::vector<SignalKind>& kinds,
                            double temperature, attacks::SignalSet* audit,
                            attacks::SignalSet* population, int threads) {
  MIA_RETURN_IF_ERROR(Fill(bundle.audit, kinds, temperature, threads, audit));
  if (bundle.population.has_value()) {
    MIA_RETURN_IF_ERROR(Fill(*bundle.population, kinds, temperature, threads, population));
  }
  return absl::OkStatus();
}

}  // namespace mia::audit
