#include "core/audit/bundle.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/memory_budget.h"
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

}  // namespace

const std::vector<std::string>& BundleArrayNames() {
  static const std::vector<std::string>* const kNames =
      new std::vector<std::string>{"keep",
                                   "logits",
                                   "labels",
                                   "signals",
                                   "signal_type",
                                   "population_logits",
                                   "population_labels",
                                   "population_signals",
                                   "row_ids",
                                   "targets"};
  return *kNames;
}

BundleMemoryEstimate EstimateBundleMemory(const io::NpyInfoMap& arrays,
                                          const metrics::BootstrapOptions& bootstrap, size_t fprs) {
  // Signal kinds scoring may compute (prob, logit_scaled, loss).
  constexpr uint64_t kSignalKinds = 3;
  auto add = [](uint64_t a, uint64_t b) {
    uint64_t sum;
    return __builtin_add_overflow(a, b, &sum) ? UINT64_MAX : sum;
  };
  auto mul = [](uint64_t a, uint64_t b) {
    uint64_t product;
    return __builtin_mul_overflow(a, b, &product) ? UINT64_MAX : product;
  };
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
    if (name == "logits" || name == "population_logits") {
      converted = add(converted, mul(n, 4));
    } else if (name == "signals" || name == "population_signals" || name == "labels" ||
               name == "population_labels" || name == "row_ids") {
      converted = add(converted, mul(n, 8));
    } else if (name == "keep") {
      converted = add(converted, n);
    }
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
        "the bundle has neither 'logits' (with 'labels') nor 'signals'");
  }
  b.audit = std::move(*audit);
  MIA_ASSIGN_OR_RETURN(b.population, ReadSource(arrays, "population_logits", "population_labels",
                                                "population_signals", kind));
  const int m = b.models();
  const int64_t n = b.points();
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
  auto keep_it = arrays.find("keep");
  if (keep_it == arrays.end()) {
    return absl::InvalidArgumentError(
        "array 'keep' is missing: the [models, points] membership matrix is required");
  }
  if (keep_it->second.shape != std::vector<int64_t>{m, n}) {
    return ShapeError("keep", keep_it->second, absl::StrCat("(", m, ", ", n, ")"));
  }
  MIA_ASSIGN_OR_RETURN(b.keep, keep_it->second.ToBool("keep"));
  if (auto it = arrays.find("row_ids"); it != arrays.end()) {
    if (it->second.shape != std::vector<int64_t>{n}) {
      return ShapeError("row_ids", it->second, absl::StrCat("(", n, ",)"));
    }
    MIA_ASSIGN_OR_RETURN(b.row_ids, it->second.ToInt64("row_ids"));
    std::vector<int64_t> sorted = b.row_ids;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      return absl::InvalidArgumentError("array 'row_ids': ids are not unique");
    }
  } else {
    b.row_ids.resize(n);
    for (int64_t i = 0; i < n; ++i) b.row_ids[i] = i;
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
      b.targets.push_back(static_cast<int>(targets[k]));
    }
  } else {
    b.targets = {0};
  }
  return b;
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
    return absl::InvalidArgumentError(
        "a temperature other than 1 needs logits; the bundle holds signals");
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
