#include "server/convert.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "core/attacks/registry.h"
#include "core/common/csv.h"
#include "core/common/sha256.h"
#include "core/metrics/roc.h"
#include "core/report/report.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "nlohmann/json.hpp"

namespace mia::server {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// ---------------------------------------------------------------------------
// Paths.

// `p` made absolute, with `..` and symbolic links of its existing prefix
// resolved, and without a trailing separator.
fs::path Resolve(const fs::path& p, std::error_code* ec) {
  fs::path out = fs::weakly_canonical(fs::absolute(p, *ec), *ec);
  if (*ec) return {};
  out = out.lexically_normal();
  if (!out.has_filename() && out != out.root_path()) out = out.parent_path();
  return out;
}

// Whether `p` is `root` or below it, component by component ("/data2" is not
// below "/data"). Both must be Resolve()d.
bool IsWithin(const fs::path& root, const fs::path& p) {
  auto r = root.begin();
  auto q = p.begin();
  for (; r != root.end(); ++r, ++q) {
    if (q == p.end() || *r != *q) return false;
  }
  return true;
}

// A lexically normal path without a trailing separator (no filesystem access).
fs::path Tidy(const std::string& p) {
  fs::path out = fs::path(p).lexically_normal();
  if (!out.has_filename() && out.has_parent_path() && out != out.root_path()) {
    out = out.parent_path();
  }
  return out;
}

// A server path resolved inside one of the data roots. The status message is
// a description for a FieldViolation (no path echoed: it may be a client's).
absl::StatusOr<std::string> ResolveServerPath(const std::string& raw, const ServerRoots& roots) {
  if (raw.empty()) return absl::InvalidArgumentError("server_path must not be empty");
  if (raw.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("server_path must not contain NUL characters");
  }
  if (roots.data_roots.empty()) {
    return absl::InvalidArgumentError(
        "the server has no data roots: refer to an uploaded artifact (artifact_id) instead");
  }
  const fs::path path(raw);
  // Candidates in root order: the absolute path itself against every root, or
  // the relative path under each root.
  std::optional<fs::path> first_inside;
  for (const std::string& root_text : roots.data_roots) {
    std::error_code ec;
    const fs::path root = Resolve(root_text, &ec);
    if (ec) continue;  // a root that does not resolve holds nothing
    const fs::path candidate = Resolve(path.is_absolute() ? path : fs::path(root) / path, &ec);
    if (ec || !IsWithin(root, candidate)) continue;
    const fs::file_status st = fs::status(candidate, ec);
    if (!ec && fs::exists(st)) {
      // A FIFO, socket or device under a root could block a worker forever.
      if (!fs::is_regular_file(st) && !fs::is_directory(st)) {
        return absl::InvalidArgumentError("not a regular file or folder");
      }
      return candidate.string();
    }
    if (!first_inside.has_value()) first_inside = candidate;
  }
  if (!first_inside.has_value()) {
    return absl::InvalidArgumentError("path is outside the server's data roots");
  }
  return absl::NotFoundError("no such file or folder under the server's data roots");
}

// ---------------------------------------------------------------------------
// Spec conversion. pipeline::ParseConfig is the one validator of the pipeline
// sections (ranges, choices, lists and their limits, rules across fields);
// this file only maps the proto onto its YAML keys (docs/config.md) and adds
// what is the server's own: paths inside the data roots, artifact ids, the
// fields it refuses (run.log_dir, audit.report_log), exactly one of data and
// signals_bundle, and attacks' need of a population.

class Problems {
 public:
  void Add(std::string field, std::string description,
           absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
    list_.push_back({std::move(field), std::move(description), code});
  }
  bool empty() const { return list_.empty(); }
  std::vector<FieldViolation>& list() { return list_; }

 private:
  std::vector<FieldViolation> list_;
};

// A proto double as YAML reads it: JSON has no NaN or infinity, YAML's
// .nan / .inf do (so ParseConfig refuses them by range, as a file's).
Json Number(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  return v;
}

// A repeated field copied for ParseConfig: at most one entry more than any
// list may hold, which is enough for ParseConfig to refuse an oversized list
// without the server building a YAML node per entry of it.
template <typename List, typename Convert>
Json ListJson(const List& values, Convert convert) {
  Json out = Json::array();
  const int n = static_cast<int>(std::min<size_t>(values.size(), pipeline::kMaxListEntries + 1));
  for (int i = 0; i < n; ++i) out.push_back(convert(values[i]));
  return out;
}
const auto kSame = [](const auto& v) { return v; };
const auto kNumber = [](double v) { return Number(v); };

// Resolves a DataRef to a path the job may read, or records why not.
std::optional<std::string> ResolveRef(const v1::DataRef& ref, const std::string& field,
                                      const ServerRoots& roots, Problems* problems) {
  switch (ref.source_case()) {
    case v1::DataRef::kServerPath: {
      absl::StatusOr<std::string> path = ResolveServerPath(ref.server_path(), roots);
      if (!path.ok()) {
        problems->Add(field, std::string(path.status().message()), path.status().code());
        return std::nullopt;
      }
      return *path;
    }
    case v1::DataRef::kArtifactId: {
      const std::string& id = ref.artifact_id();
      if (!IsSha256Hex(id)) {
        problems->Add(field, "artifact_id must be 64 lowercase hex digits (a SHA-256)");
        return std::nullopt;
      }
      std::error_code ec;
      const fs::path path = fs::path(roots.artifact_dir) / id;
      if (roots.artifact_dir.empty() || !fs::exists(path, ec)) {
        problems->Add(field, "the server holds no artifact with that id",
                      absl::StatusCode::kNotFound);
        return std::nullopt;
      }
      return path.lexically_normal().string();
    }
    case v1::DataRef::SOURCE_NOT_SET:
      break;
  }
  problems->Add(field, "set server_path or artifact_id");
  return std::nullopt;
}

// The default data_dir of a dataset, asked of ParseConfig itself so that the
// defaults live in one place; nullopt when the dataset is unknown or has none
// (ParseConfig then reports it).
std::optional<std::string> DefaultDataDir(const std::string& dataset) {
  Json probe;
  probe["data"]["dataset"] = dataset;
  absl::StatusOr<pipeline::Config> c = pipeline::ParseConfig(probe.dump(), "spec");
  if (!c.ok() || c->data.source.path.empty()) return std::nullopt;
  return c->data.source.path;
}

// Sets yaml[key] when the proto field is set.
template <typename T>
void Put(Json& yaml, const char* key, bool has, const T& value) {
  if (has) yaml[key] = value;
}

Json MapRun(const v1::RunSection& run, Problems* problems) {
  Json y = Json::object();
  Put(y, "random_seed", run.has_random_seed(), run.random_seed());
  if (run.has_log_dir() && !run.log_dir().empty()) {
    problems->Add("spec.run.log_dir", "must be unset: the server decides where a job's files go");
  }
  Put(y, "time_log", run.has_time_log(), run.time_log());
  Put(y, "num_experiments", run.has_num_experiments(), run.num_experiments());
  Put(y, "threads", run.has_threads(), run.threads());
  return y;
}

Json MapData(const v1::DataSection& data, const ServerRoots& roots, Problems* problems) {
  Json y = Json::object();
  Put(y, "dataset", data.has_dataset(), data.dataset());
  const std::string dir_field = "spec.data.data_dir";
  if (data.has_data_dir()) {
    std::optional<std::string> dir = ResolveRef(data.data_dir(), dir_field, roots, problems);
    if (dir.has_value()) y["data_dir"] = *dir;
  } else if (data.has_dataset()) {
    // The default location is held to the same roots as a given one.
    if (const std::optional<std::string> fallback = DefaultDataDir(data.dataset())) {
      absl::StatusOr<std::string> dir = ResolveServerPath(*fallback, roots);
      if (!dir.ok()) {
        problems->Add(
            dir_field,
            absl::StrCat("unset, and the default location of dataset ",
                         absl::AsciiStrToLower(data.dataset()), ": ", dir.status().message()),
            dir.status().code());
      } else {
        y["data_dir"] = *dir;
      }
    }
  }
  Put(y, "split", data.has_split(), data.split());
  Put(y, "label_column", data.has_label_column(), data.label_column());
  Put(y, "header", data.has_header(), data.header());
  Put(y, "cifar100_labels", data.has_cifar100_labels(), data.cifar100_labels());
  Put(y, "pool_size", data.has_pool_size(), data.pool_size());
  Put(y, "population_size", data.has_population_size(), data.population_size());
  Put(y, "shuffle", data.has_shuffle(), data.shuffle());
  return y;
}

Json MapTrain(const v1::TrainSection& t) {
  Json y = Json::object();
  Put(y, "model_name", t.has_model_name(), t.model_name());
  if (t.has_hidden()) y["hidden"] = ListJson(t.hidden().widths(), kSame);
  Put(y, "activation", t.has_activation(), t.activation());
  Put(y, "dropout", t.has_dropout(), Number(t.dropout()));
  Put(y, "width", t.has_width(), t.width());
  Put(y, "device", t.has_device(), t.device());
  Put(y, "batched", t.has_batched(), t.batched());
  Put(y, "optimizer", t.has_optimizer(), t.optimizer());
  Put(y, "learning_rate", t.has_learning_rate(), Number(t.learning_rate()));
  Put(y, "momentum", t.has_momentum(), Number(t.momentum()));
  Put(y, "nesterov", t.has_nesterov(), t.nesterov());
  Put(y, "weight_decay", t.has_weight_decay(), Number(t.weight_decay()));
  Put(y, "epochs", t.has_epochs(), t.epochs());
  Put(y, "batch_size", t.has_batch_size(), t.batch_size());
  Put(y, "schedule", t.has_schedule(), t.schedule());
  Put(y, "warmup_epochs", t.has_warmup_epochs(), t.warmup_epochs());
  Put(y, "random_crop", t.has_random_crop(), t.random_crop());
  Put(y, "crop_padding", t.has_crop_padding(), t.crop_padding());
  Put(y, "horizontal_flip", t.has_horizontal_flip(), t.horizontal_flip());
  if (t.normalize_mean_size() > 0) y["normalize_mean"] = ListJson(t.normalize_mean(), kNumber);
  if (t.normalize_std_size() > 0) y["normalize_std"] = ListJson(t.normalize_std(), kNumber);
  return y;
}

Json MapAudit(const v1::AuditSection& a, Problems* problems) {
  Json y = Json::object();
  if (a.attacks_size() > 0) y["attacks"] = ListJson(a.attacks(), kSame);
  Put(y, "algorithm", a.has_algorithm(), a.algorithm());
  Put(y, "privacy_game", a.has_privacy_game(), a.privacy_game());
  Put(y, "num_ref_models", a.has_num_ref_models(), a.num_ref_models());
  Put(y, "device", a.has_device(), a.device());
  Put(y, "batch_size", a.has_batch_size(), a.batch_size());
  Put(y, "data_size", a.has_data_size(), a.data_size());
  if (a.has_report_log() && !a.report_log().empty()) {
    problems->Add("spec.audit.report_log",
                  "must be unset: the server decides where a job's report goes");
  }
  Put(y, "splits", a.has_splits(), a.splits());
  if (a.has_augmentation()) {
    Json aug = Json::object();
    Put(aug, "flip", a.augmentation().has_flip(), a.augmentation().flip());
    Put(aug, "shift", a.augmentation().has_shift(), a.augmentation().shift());
    y["augmentation"] = std::move(aug);
  }
  Put(y, "temperature", a.has_temperature(), Number(a.temperature()));
  if (a.fprs_size() > 0) y["fprs"] = ListJson(a.fprs(), kNumber);
  Put(y, "bootstrap", a.has_bootstrap(), a.bootstrap());
  Put(y, "confidence", a.has_confidence(), Number(a.confidence()));
  Put(y, "delta", a.has_delta(), Number(a.delta()));
  Put(y, "beta", a.has_beta(), Number(a.beta()));
  return y;
}

Json MapModels(const v1::ModelsSection& m, const ServerRoots& roots, Problems* problems) {
  Json y = Json::object();
  if (m.torchscript_size() > 0) {
    Json files = Json::array();
    if (static_cast<size_t>(m.torchscript_size()) > pipeline::kMaxModelFiles) {
      // Too many for ParseConfig, which says so; no file system work for them.
      files = ListJson(m.torchscript(), [](const v1::DataRef&) { return ""; });
    } else {
      for (int i = 0; i < m.torchscript_size(); ++i) {
        // An unresolved entry keeps its place (the count matters to ParseConfig).
        files.push_back(ResolveRef(m.torchscript(i),
                                   absl::StrCat("spec.models.torchscript[", i, "]"), roots,
                                   problems)
                            .value_or(""));
      }
    }
    y["torchscript"] = std::move(files);
  }
  if (m.has_keep()) {
    y["keep"] = ResolveRef(m.keep(), "spec.models.keep", roots, problems).value_or("");
  }
  return y;
}

// Attacks that need population points (rows no model trains on), found here
// rather than after every model is trained. A server rule: `mia audit` falls
// back on other rows.
void CheckPopulation(const v1::AuditSpec& spec, Problems* problems) {
  std::vector<std::string> attacks = pipeline::DefaultAttacks();
  if (spec.audit().attacks_size() > 0) {
    attacks.assign(spec.audit().attacks().begin(), spec.audit().attacks().end());
  } else if (spec.audit().has_algorithm()) {
    attacks = {absl::AsciiStrToLower(spec.audit().algorithm())};
  }
  if (attacks.size() > pipeline::kMaxAttacks) return;  // ParseConfig refuses the list
  std::vector<std::string> need_population;
  for (const std::string& a : attacks) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> made = attacks::MakeAttack(a);
    if (made.ok() && (*made)->needs().population) need_population.push_back(a);
  }
  if (!need_population.empty() && spec.data().population_size() == 0) {
    problems->Add("spec.data.population_size",
                  absl::StrCat("must be > 0: attack", need_population.size() > 1 ? "s " : " ",
                               absl::StrJoin(need_population, ", "), " need",
                               need_population.size() > 1 ? "" : "s",
                               " population points (rows no model trains on)"));
  }
}

// The API's name for a ParseConfig key path: "spec." before it, and the
// proto's message for the hidden widths (train.hidden is a LayerWidths so that
// "no hidden layer" differs from "unset").
std::string SpecField(const std::string& config_field) {
  if (config_field.empty()) return "spec";
  std::string field = config_field;
  if (absl::StartsWith(field, "train.hidden")) field.insert(12, ".widths");
  return "spec." + field;
}

// ParseConfig's problems, named as the API names them, after the server's
// own: a field the server already refused (an unresolved data_dir, say) is
// not reported twice.
void AddConfigProblems(const std::vector<pipeline::ConfigProblem>& config_problems,
                       Problems* problems) {
  const std::vector<FieldViolation> server = problems->list();
  for (const pipeline::ConfigProblem& p : config_problems) {
    const std::string field = SpecField(p.field);
    const bool reported = std::any_of(server.begin(), server.end(), [&](const FieldViolation& v) {
      return field == v.field || absl::StartsWith(field, v.field + ".") ||
             absl::StartsWith(field, v.field + "[");
    });
    if (!reported) problems->Add(field, p.message);
  }
}

void CheckBundle(const v1::SignalsBundleInput& b, const ServerRoots& roots, Problems* problems,
                 jobs::BundleAuditSpec* out) {
  const std::string path = "spec.signals_bundle";
  if (!b.has_bundle()) {
    problems->Add(path + ".bundle", "required");
  } else {
    std::optional<std::string> p = ResolveRef(b.bundle(), path + ".bundle", roots, problems);
    if (p.has_value()) out->bundle_path = *p;
  }
  audit::ScoringOptions& sc = out->scoring;
  if (b.attacks_size() > 0) {
    sc.attacks.assign(b.attacks().begin(), b.attacks().end());
    for (const pipeline::ConfigProblem& p :
         pipeline::AttackListProblems(sc.attacks, path + ".attacks")) {
      problems->Add(p.field, p.message);
    }
  }
  if (static_cast<size_t>(b.targets_size()) > pipeline::kMaxModels) {
    problems->Add(path + ".targets",
                  absl::StrCat("must have at most ", pipeline::kMaxModels, " entries"));
  } else {
    std::set<int> targets;
    for (int i = 0; i < b.targets_size(); ++i) {
      if (b.targets(i) < 0) {
        problems->Add(absl::StrCat(path, ".targets[", i, "]"), "must be >= 0");
      } else if (!targets.insert(b.targets(i)).second) {
        problems->Add(absl::StrCat(path, ".targets[", i, "]"), "the same target is given twice");
      }
    }
    sc.targets.assign(b.targets().begin(), b.targets().end());
  }
  out->all_targets = b.has_all_targets() && b.all_targets();
  if (out->all_targets && b.targets_size() > 0) {
    problems->Add(path + ".targets", "must be empty with all_targets");
  }
  if (b.has_temperature()) sc.temperature = b.temperature();
  sc.fprs.assign(b.fprs().begin(),
                 b.fprs().begin() + std::min<size_t>(b.fprs_size(), pipeline::kMaxListEntries + 1));
  if (b.has_bootstrap()) sc.bootstrap.resamples = b.bootstrap();
  if (b.has_confidence()) sc.bootstrap.confidence = b.confidence();
  if (b.has_delta()) sc.epsilon.delta = b.delta();
  if (b.has_beta()) sc.epsilon.beta = b.beta();
  if (b.has_seed()) sc.seed = b.seed();
  // The ranges of the YAML's audit section, which the same fields have there.
  for (const pipeline::ConfigProblem& p : pipeline::ScoringProblems(sc, path + ".")) {
    problems->Add(p.field, p.message);
  }
}

std::string BadRequestBytes(const std::vector<FieldViolation>& violations) {
  google::rpc::BadRequest bad_request;
  for (const FieldViolation& v : violations) {
    google::rpc::BadRequest::FieldViolation* out = bad_request.add_field_violations();
    out->set_field(v.field);
    out->set_description(v.description);
  }
  return bad_request.SerializeAsString();
}

}  // namespace

std::string ServerRoots::ModelCacheDir() const {
  if (!cache_dir.empty()) return Tidy(cache_dir).string();
  return (Tidy(jobs_dir).parent_path() / "cache").string();
}

absl::Status ViolationsToStatus(const std::vector<FieldViolation>& violations) {
  if (violations.empty()) return absl::OkStatus();
  const bool all_missing =
      std::all_of(violations.begin(), violations.end(),
                  [](const FieldViolation& v) { return v.code == absl::StatusCode::kNotFound; });
  std::vector<std::string> parts;
  for (const FieldViolation& v : violations) parts.push_back(v.field + ": " + v.description);
  const std::string message =
      violations.size() == 1
          ? parts[0]
          : absl::StrCat("spec has ", violations.size(), " problems: ", absl::StrJoin(parts, "; "));
  absl::Status status(
      all_missing ? absl::StatusCode::kNotFound : absl::StatusCode::kInvalidArgument, message);
  status.SetPayload(kBadRequestTypeUrl, absl::Cord(BadRequestBytes(violations)));
  return status;
}

std::string CanonicalSpecJson(const v1::AuditSpec& spec) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  // Printing a valid message cannot fail; proto3 strings are valid UTF-8.
  if (!google::protobuf::util::MessageToJsonString(spec, &json, options).ok()) json.clear();
  return json;
}

absl::StatusOr<v1::AuditSpec> SpecProtoFromJson(const std::string& json) {
  v1::AuditSpec spec;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &spec);
  if (!status.ok()) {
    return absl::InternalError("the stored spec does not parse as an AuditSpec");
  }
  return spec;
}

absl::StatusOr<JobSpec> SpecFromProto(const v1::AuditSpec& spec, const ServerRoots& roots,
                                      std::vector<FieldViolation>* violations) {
  if (violations != nullptr) violations->clear();
  JobSpec job;
  job.spec_json = CanonicalSpecJson(spec);
  job.spec_hash = Sha256Hex(job.spec_json);
  job.model_cache_dir = roots.ModelCacheDir();

  Problems problems;
  auto fail = [&]() -> absl::Status {
    if (violations != nullptr) *violations = problems.list();
    return ViolationsToStatus(problems.list());
  };

  if (spec.has_signals_bundle()) {
    job.kind = JobSpec::Kind::kBundle;
    if (spec.has_data()) {
      problems.Add("spec.signals_bundle", "give data or signals_bundle, not both");
    }
    const std::pair<bool, const char*> others[] = {{spec.has_run(), "spec.run"},
                                                   {spec.has_train(), "spec.train"},
                                                   {spec.has_audit(), "spec.audit"},
                                                   {spec.has_models(), "spec.models"}};
    for (const auto& [has, field] : others) {
      if (has) problems.Add(field, "must be unset with signals_bundle");
    }
    CheckBundle(spec.signals_bundle(), roots, &problems, &job.bundle);
    if (!problems.empty()) return fail();
    return job;
  }

  job.kind = JobSpec::Kind::kPipeline;
  Json yaml = Json::object();
  yaml["run"] = MapRun(spec.run(), &problems);
  // Never a working-directory default: the shared cache from the start.
  yaml["run"]["log_dir"] = job.model_cache_dir;
  if (!spec.has_data()) {
    problems.Add("spec.data",
                 "required: set data (train and audit models) or signals_bundle (score signals "
                 "computed elsewhere)");
  } else {
    yaml["data"] = MapData(spec.data(), roots, &problems);
    CheckPopulation(spec, &problems);
  }
  if (spec.has_train()) yaml["train"] = MapTrain(spec.train());
  if (spec.has_audit()) yaml["audit"] = MapAudit(spec.audit(), &problems);
  if (spec.has_models()) yaml["models"] = MapModels(spec.models(), roots, &problems);

  // YAML is a superset of JSON: the proto path goes through the YAML parser.
  std::string config_text = yaml.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::vector<pipeline::ConfigProblem> config_problems;
  absl::StatusOr<pipeline::Config> config =
      pipeline::ParseConfig(config_text, "spec", &config_problems);
  AddConfigProblems(config_problems, &problems);
  if (!problems.empty()) return fail();
  job.config = *std::move(config);
  return job;
}

// ---------------------------------------------------------------------------
// Results.

namespace {

bool SetInterval(const metrics::Interval& in, v1::Interval* out) {
  if (!std::isfinite(in.low) || !std::isfinite(in.high)) return false;
  out->set_low(in.low);
  out->set_high(in.high);
  return true;
}

void SpreadToProto(const metrics::Spread& in, v1::Spread* out) {
  out->set_count(in.count);
  out->set_mean(in.mean);
  out->set_stddev(in.stddev);
  out->set_min(in.min);
  out->set_max(in.max);
}

void RocToProto(const metrics::RocCurve& exact, int points, v1::RocCurve* out) {
  const metrics::RocCurve roc = metrics::DownsampleLogFpr(exact, points, 1e-5);
  out->mutable_fpr()->Add(roc.fpr.begin(), roc.fpr.end());
  out->mutable_tpr()->Add(roc.tpr.begin(), roc.tpr.end());
  out->mutable_thresholds()->Add(roc.thresholds.begin(), roc.thresholds.end());
  out->set_positives(roc.positives);
  out->set_negatives(roc.negatives);
  out->set_exact_points(static_cast<int64_t>(exact.fpr.size()));
  out->set_downsampled(roc.fpr.size() < exact.fpr.size());
}

}  // namespace

void ResultToProto(const audit::AuditResult& result, v1::AuditResult* out, int roc_points) {
  out->Clear();
  out->set_schema_version(result.schema_version);
  out->set_tool_version(result.tool_version);
  out->mutable_fprs()->Add(result.fprs.begin(), result.fprs.end());
  out->mutable_targets()->Add(result.targets.begin(), result.targets.end());
  out->set_audit_points(static_cast<int64_t>(result.row_ids.size()));
  for (const audit::AttackTargetResult& r : result.results) {
    v1::AttackTargetResult* p = out->add_results();
    p->set_attack(r.attack);
    p->set_target(r.target);
    p->set_members(r.members);
    p->set_non_members(r.non_members);
    p->set_excluded(r.excluded);
    p->set_auc(r.auc);
    if (!SetInterval(r.auc_ci, p->mutable_auc_ci())) p->clear_auc_ci();
    for (size_t k = 0; k < r.tpr_at_fpr.size(); ++k) {
      const metrics::TprAtFpr& t = r.tpr_at_fpr[k];
      v1::TprAtFpr* q = p->add_tpr_at_fpr();
      q->set_fpr(t.fpr);
      q->set_resolved(t.resolved);
      // An unresolved TPR is not a figure, nor is its interval.
      if (!t.resolved) continue;
      q->set_tpr(t.tpr);
      if (k < r.tpr_ci.size() && !SetInterval(r.tpr_ci[k], q->mutable_ci())) q->clear_ci();
    }
    if (!std::isnan(r.epsilon.epsilon)) {
      v1::EpsilonBound* e = p->mutable_epsilon();
      e->set_epsilon(r.epsilon.epsilon);
      e->set_delta(r.epsilon.delta);
      e->set_threshold(r.epsilon.threshold);
      e->set_fpr_upper(r.epsilon.fpr_upper);
      e->set_fnr_upper(r.epsilon.fnr_upper);
      e->set_selection_points(r.epsilon.selection_points);
      e->set_evaluation_points(r.epsilon.evaluation_points);
    }
    for (const auto& [name, value] : r.chosen) (*p->mutable_chosen_parameters())[name] = value;
    for (const std::string& w : r.warnings) p->add_warnings(w);
    if (!r.roc.fpr.empty()) RocToProto(r.roc, roc_points, p->mutable_roc());
  }
  for (const audit::AttackSummary& s : result.summaries) {
    v1::AttackSummary* p = out->add_summaries();
    p->set_attack(s.attack);
    SpreadToProto(s.auc, p->mutable_auc());
    for (const metrics::Spread& t : s.tpr_at_fpr) SpreadToProto(t, p->add_tpr_at_fpr());
  }
  for (const std::string& w : result.warnings) out->add_warnings(w);
  for (const audit::StageTiming& t : result.timings) {
    v1::StageTiming* p = out->add_timings();
    p->set_stage(t.stage);
    p->set_seconds(t.seconds);
  }
}

// ---------------------------------------------------------------------------
// Jobs and error codes.

v1::Audit::State StateToProto(jobs::JobState state) {
  switch (state) {
    case jobs::JobState::kPending:
      return v1::Audit::PENDING;
    case jobs::JobState::kRunning:
      return v1::Audit::RUNNING;
    case jobs::JobState::kSucceeded:
      return v1::Audit::SUCCEEDED;
    case jobs::JobState::kFailed:
      return v1::Audit::FAILED;
    case jobs::JobState::kCancelled:
      return v1::Audit::CANCELLED;
  }
  return v1::Audit::STATE_UNSPECIFIED;
}

std::optional<jobs::JobState> StateFromProto(v1::Audit::State state) {
  switch (state) {
    case v1::Audit::PENDING:
      return jobs::JobState::kPending;
    case v1::Audit::RUNNING:
      return jobs::JobState::kRunning;
    case v1::Audit::SUCCEEDED:
      return jobs::JobState::kSucceeded;
    case v1::Audit::FAILED:
      return jobs::JobState::kFailed;
    case v1::Audit::CANCELLED:
      return jobs::JobState::kCancelled;
    default:
      return std::nullopt;
  }
}

namespace {

// Unset (nullopt) for absl::InfinitePast(), the records' "not yet".
std::optional<google::protobuf::Timestamp> TimestampFor(absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return std::nullopt;
  const absl::Duration since = t - absl::UnixEpoch();
  absl::Duration rest;
  int64_t seconds = absl::IDivDuration(since, absl::Seconds(1), &rest);
  int64_t nanos = absl::ToInt64Nanoseconds(rest);
  if (nanos < 0) {  // Timestamp nanos are in [0, 1e9) also before 1970
    seconds -= 1;
    nanos += 1'000'000'000;
  }
  google::protobuf::Timestamp ts;
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>(nanos));
  return ts;
}

}  // namespace

std::string StatusCodeName(absl::StatusCode code) {
  // absl spells the canonical names as google.rpc.Code does; it returns ""
  // for a number outside them.
  const std::string name = absl::StatusCodeToString(code);
  return name.empty() ? "UNKNOWN" : name;
}

std::optional<absl::StatusCode> StatusCodeFromName(absl::string_view name) {
  // The canonical codes are 0 (OK) to 16 (UNAUTHENTICATED).
  for (int c = 0; c <= static_cast<int>(absl::StatusCode::kUnauthenticated); ++c) {
    const auto code = static_cast<absl::StatusCode>(c);
    if (name == absl::StatusCodeToString(code)) return code;
  }
  return std::nullopt;
}

absl::Status StatusFromError(absl::string_view code_name, absl::string_view message) {
  const absl::StatusCode code = StatusCodeFromName(code_name).value_or(absl::StatusCode::kUnknown);
  // An OK code with an error message would lose the error: keep it as UNKNOWN.
  return absl::Status(code == absl::StatusCode::kOk ? absl::StatusCode::kUnknown : code, message);
}

absl::Status JobToProto(const jobs::JobRecord& job, const audit::AuditResult* result,
                        v1::AuditView view, v1::Audit* out) {
  out->Clear();
  out->set_name("audits/" + job.id);
  out->set_state(StateToProto(job.state));
  if (auto t = TimestampFor(job.create_time)) *out->mutable_create_time() = *t;
  if (auto t = TimestampFor(job.start_time)) *out->mutable_start_time() = *t;
  if (auto t = TimestampFor(job.end_time)) *out->mutable_end_time() = *t;
  v1::Progress* progress = out->mutable_progress();
  progress->set_stage(job.progress.stage);
  progress->set_models_trained(static_cast<int32_t>(job.progress.done));
  progress->set_models_total(static_cast<int32_t>(job.progress.total));
  progress->set_fraction(job.progress.fraction);
  progress->set_detail(job.progress.detail);
  out->set_version(job.version);
  out->set_request_id(job.request_id);
  out->mutable_labels()->insert(job.labels.begin(), job.labels.end());
  out->set_priority(job.priority);

  const bool full = view != v1::AUDIT_VIEW_BASIC;
  if (job.state == jobs::JobState::kSucceeded && result != nullptr) {
    ResultToProto(*result, out->mutable_result());
    if (!full) {
      for (v1::AttackTargetResult& r : *out->mutable_result()->mutable_results()) r.clear_roc();
    }
  }
  if (job.state == jobs::JobState::kFailed) {
    v1::Error* error = out->mutable_error();
    error->set_code(job.error_code.empty() ? "UNKNOWN" : job.error_code);
    error->set_message(job.error_message);
    error->set_stage(job.progress.stage);
    // Messages about one spec field start with its path ("spec.data.data_dir: ...").
    if (absl::StartsWith(job.error_message, "spec.")) {
      const size_t colon = job.error_message.find(": ");
      const std::string path = job.error_message.substr(0, colon);
      if (colon != std::string::npos && path.find(' ') == std::string::npos) {
        error->set_field_path(path);
      }
    }
  }
  if (full && !job.spec_json.empty()) {
    absl::StatusOr<v1::AuditSpec> spec = SpecProtoFromJson(job.spec_json);
    if (!spec.ok()) return spec.status();
    *out->mutable_spec() = *std::move(spec);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Per-example scores.

namespace {

// s2 tokens also hold the line number of the next row, for error messages
// (s1 tokens, without it, from an older server, read as malformed).
constexpr char kTokenVersion[] = "s2";

// Binds a page token to one file (by path and size) and one filter, so that a
// token from another listing is recognized instead of misread.
std::string TokenBinding(const std::string& path, uint64_t size, std::optional<int> target) {
  return Sha256Hex(absl::StrCat(path, "|", size, "|",
                                target.has_value() ? absl::StrCat(*target) : std::string("*")))
      .substr(0, 16);
}

std::string EncodeToken(int64_t offset, int64_t line, const std::string& binding) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kTokenVersion, ":", offset, ":", line, ":", binding));
}

}  // namespace

absl::Status ScoresPage(const std::string& scores_csv_path, int64_t page_size,
                        const std::string& page_token, v1::ListAuditScoresResponse* out,
                        std::optional<int> target) {
  out->Clear();
  if (page_size < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  if (page_size == 0) page_size = kDefaultScoresPageSize;
  page_size = std::min(page_size, kMaxScoresPageSize);

  std::error_code ec;
  const uint64_t size = fs::file_size(scores_csv_path, ec);
  std::ifstream in(scores_csv_path, std::ios::binary);
  if (ec || !in) return absl::NotFoundError("scores.csv: the audit has no scores file");

  std::vector<std::string> fields;
  absl::StatusOr<std::vector<std::string>> attacks;
  int64_t header_end = 0, first_row_line = 0;
  {
    CsvReader header(&in, "scores.csv");
    absl::StatusOr<bool> read = header.Next(&fields);
    if (!read.ok()) return read.status();
    if (!*read) return absl::DataLossError("scores.csv: line 1: no header");
    attacks = report::ParseScoresHeader(header, fields);
    if (!attacks.ok()) return attacks.status();
    header_end = header.offset();
    first_row_line = header.line();
  }
  for (const std::string& name : *attacks) out->add_attacks(name);
  const std::string binding = TokenBinding(scores_csv_path, size, target);

  int64_t offset = header_end;
  int64_t line = first_row_line;
  if (!page_token.empty()) {
    std::string decoded;
    std::vector<std::string> parts;
    if (absl::WebSafeBase64Unescape(page_token, &decoded)) {
      parts = absl::StrSplit(decoded, ':');
    }
    if (parts.size() != 4 || parts[0] != kTokenVersion || !absl::SimpleAtoi(parts[1], &offset) ||
        !absl::SimpleAtoi(parts[2], &line) || line < first_row_line || parts[3].size() != 16) {
      return absl::InvalidArgumentError("page_token: malformed");
    }
    if (parts[3] != binding) {
      return absl::InvalidArgumentError(
          "page_token: issued for another listing (another audit or target filter)");
    }
    // A row starts right after a line break, past the header.
    char before = 0;
    if (offset <= header_end || static_cast<uint64_t>(offset) >= size ||
        !in.seekg(offset - 1).get(before) || before != '\n') {
      return absl::InvalidArgumentError("page_token: malformed");
    }
  }
  in.clear();
  in.seekg(offset);

  CsvReader reader(&in, "scores.csv", line);
  report::ScoresRow row;
  int64_t next = -1, next_line = 0;
  bool matched = false;
  while (true) {
    absl::StatusOr<bool> read = reader.Next(&fields);
    if (!read.ok()) return read.status();
    if (!*read) break;
    const absl::Status parsed = report::ParseScoresRow(reader, fields, attacks->size(), &row);
    if (!parsed.ok()) return parsed;
    if (target.has_value() && row.target != *target) {
      // Rows are grouped by target: past the requested one, nothing follows.
      if (matched) break;
      continue;
    }
    matched = true;
    if (out->rows_size() == page_size) {
      next = offset + reader.record_offset();
      next_line = reader.record_line();
      break;
    }
    v1::ScoreRow* proto = out->add_rows();
    proto->set_row_id(row.row_id);
    proto->set_target(row.target);
    proto->set_member(row.member);
    for (double score : row.scores) proto->add_scores(score);
  }
  if (next >= 0) out->set_next_page_token(EncodeToken(next, next_line, binding));
  return absl::OkStatus();
}

}  // namespace mia::server
