#include "server/spec_convert.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
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
#include "yaml-cpp/yaml.h"
#include "server/shared_store.h"

namespace mia::server {

namespace fs = std::filesystem;
namespace {

using Json = nlohmann::json;

// ---------------------------------------------------------------------------
// Spec conversion. pipeline::ParseConfig is the one validator of the pipeline
// sections (ranges, choices, lists and their limits, rules across fields);
// this file only maps the proto onto its YAML keys (docs/config.md) and adds
// what is the server's own: paths inside the data roots, artifact ids, the
// fields it refuses (run.log_dir, audit.report_log), exactly one of data and
// signals_bundle.

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

// A tokenizer: "bpe" (trained by the job) stays; anything else is a folder
// on the server, resolved against its data roots like a server_path.
std::string ResolveTokenizer(const std::string& value, const std::string& field,
                             const ServerRoots& roots, Problems* problems) {
  if (value == "bpe") return value;
  absl::StatusOr<std::string> path = ResolveServerPath(value, roots);
  if (!path.ok()) {
    problems->Add(field, std::string(path.status().message()), path.status().code());
    return "";
  }
  return *path;
}

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
      const bool visible = !roots.artifact_visible || roots.artifact_visible(id);
      if (visible && !roots.artifact_dir.empty() && roots.shared_store != nullptr &&
          !fs::exists(path, ec)) {
        // Uploaded through another replica: fetched from the shared store.
        const absl::Status fetched = FetchUpload(*roots.shared_store, id, path.string());
        if (!fetched.ok() && !absl::IsNotFound(fetched)) {
          problems->Add(field,
                        absl::StrCat("the shared artifact store cannot be read now (",
                                     absl::StatusCodeToString(fetched.code()), "); try again"),
                        fetched.code());
          return std::nullopt;
        }
      }
      if (roots.artifact_dir.empty() || !fs::exists(path, ec) || !visible) {
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
  // An attack that needs nothing more, so that only the dataset is probed.
  probe["audit"]["attacks"] = Json::array({"loss"});
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
  Put(y, "text_field", data.has_text_field(), data.text_field());
  Put(y, "label_field", data.has_label_field(), data.label_field());
  Put(y, "tokenize", data.has_tokenize(), data.tokenize());
  if (data.has_tokenizer()) {
    y["tokenizer"] = ResolveTokenizer(data.tokenizer(), "spec.data.tokenizer", roots, problems);
  }
  return y;
}

Json MapTrain(const v1::TrainSection& t, const ServerRoots& roots, Problems* problems) {
  Json y = Json::object();
  if (t.has_tokenizer()) {
    y["tokenizer"] = ResolveTokenizer(t.tokenizer(), "spec.train.tokenizer", roots, problems);
  }
  Put(y, "vocab_size", t.has_vocab_size(), t.vocab_size());
  if (t.has_checkpoint()) {
    if (t.checkpoint().has_artifact_id()) {
      problems->Add("spec.train.checkpoint",
                    "must be a server_path: a checkpoint is a folder, not an artifact");
    } else {
      y["checkpoint"] =
          ResolveRef(t.checkpoint(), "spec.train.checkpoint", roots, problems).value_or("");
    }
  }
  Put(y, "n_layer", t.has_n_layer(), t.n_layer());
  Put(y, "n_head", t.has_n_head(), t.n_head());
  Put(y, "n_embd", t.has_n_embd(), t.n_embd());
  Put(y, "block_size", t.has_block_size(), t.block_size());
  Put(y, "warmup_ratio", t.has_warmup_ratio(), Number(t.warmup_ratio()));
  Put(y, "max_grad_norm", t.has_max_grad_norm(), Number(t.max_grad_norm()));
  if (t.has_peft()) {
    const v1::PeftSection& p = t.peft();
    Json peft = Json::object();
    Put(peft, "type", p.has_type(), p.type());
    Put(peft, "r", p.has_r(), p.r());
    Put(peft, "lora_alpha", p.has_lora_alpha(), Number(p.lora_alpha()));
    Put(peft, "lora_dropout", p.has_lora_dropout(), Number(p.lora_dropout()));
    if (p.target_modules_size() > 0) peft["target_modules"] = ListJson(p.target_modules(), kSame);
    Put(peft, "fan_in_fan_out", p.has_fan_in_fan_out(), p.fan_in_fan_out());
    y["peft"] = std::move(peft);
  }
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
  Put(y, "precision", t.has_precision(), t.precision());
  Put(y, "data_on_device", t.has_data_on_device(), t.data_on_device());
  Put(y, "channels_last", t.has_channels_last(), t.channels_last());
  if (t.has_dp()) {
    const v1::DpSection& d = t.dp();
    Json dp = Json::object();
    Put(dp, "noise_multiplier", d.has_noise_multiplier(), Number(d.noise_multiplier()));
    Put(dp, "max_grad_norm", d.has_max_grad_norm(), Number(d.max_grad_norm()));
    Put(dp, "delta", d.has_delta(), Number(d.delta()));
    Put(dp, "target_epsilon", d.has_target_epsilon(), Number(d.target_epsilon()));
    Put(dp, "poisson", d.has_poisson(), d.poisson());
    y["dp"] = std::move(dp);
  }
  if (t.normalize_mean_size() > 0) y["normalize_mean"] = ListJson(t.normalize_mean(), kNumber);
  if (t.normalize_std_size() > 0) y["normalize_std"] = ListJson(t.normalize_std(), kNumber);
  return y;
}

Json MapRamia(const v1::RamiaSection& r) {
  Json y = Json::object();
  Put(y, "range_function", r.has_range_function(), r.range_function());
  Put(y, "sample_size", r.has_sample_size(), r.sample_size());
  Put(y, "radius", r.has_radius(), Number(r.radius()));
  Put(y, "trim", r.has_trim(), Number(r.trim()));
  Put(y, "num_missing_feats", r.has_num_missing_feats(), r.num_missing_feats());
  if (r.col_ranges_size() > 0) {
    y["col_ranges"] = ListJson(r.col_ranges(), [](const v1::RamiaColumnRange& c) {
      return Json::array({Number(c.low()), Number(c.high())});
    });
  }
  Put(y, "is_categorical", r.has_is_categorical(), r.is_categorical());
  if (r.transformations_size() > 0) y["transformations"] = ListJson(r.transformations(), kSame);
  return y;
}

// A policy's limits under their YAML keys. Map entries go in key order, so a
// spec gives the same rules in the same order however its maps were built.
template <typename Rules>
void PutPolicyRules(const Rules& r, Json& y) {
  Put(y, "max_auc", r.has_max_auc(), Number(r.max_auc()));
  if (!r.max_tpr_at_fpr().empty()) {
    const std::map<std::string, double> sorted(r.max_tpr_at_fpr().begin(),
                                               r.max_tpr_at_fpr().end());
    Json tprs = Json::object();
    for (const auto& [fpr, tpr] : sorted) tprs[fpr] = Number(tpr);
    y["max_tpr_at_fpr"] = std::move(tprs);
  }
  Put(y, "max_epsilon_lower_bound", r.has_max_epsilon_lower_bound(),
      Number(r.max_epsilon_lower_bound()));
}

Json MapPolicy(const v1::PolicySection& p) {
  Json y = Json::object();
  Put(y, "use", p.has_use(), p.use());
  PutPolicyRules(p, y);
  if (!p.attacks().empty()) {
    const std::map<std::string, v1::PolicyRules> sorted(p.attacks().begin(), p.attacks().end());
    Json attacks = Json::object();
    for (const auto& [attack, rules] : sorted) {
      Json r = Json::object();
      PutPolicyRules(rules, r);
      attacks[attack] = std::move(r);
    }
    y["attacks"] = std::move(attacks);
  }
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
  Put(y, "population_size", a.has_population_size(), a.population_size());
  if (a.has_ramia()) y["ramia"] = MapRamia(a.ramia());
  if (a.has_dp_audit()) {
    const v1::DpAuditSection& d = a.dp_audit();
    Json dp = Json::object();
    Put(dp, "canary_dataset", d.has_canary_dataset(), d.canary_dataset());
    Put(dp, "canary_size", d.has_canary_size(), d.canary_size());
    Put(dp, "training_alg", d.has_training_alg(), d.training_alg());
    if (d.grid_size() > 0) {
      dp["grid"] = ListJson(d.grid(), [](const v1::DpAuditGuessSplit& g) {
        Json entry = Json::object();
        Put(entry, "k_plus", g.has_k_plus(), g.k_plus());
        Put(entry, "k_minus", g.has_k_minus(), g.k_minus());
        return entry;
      });
    }
    Put(dp, "delta", d.has_delta(), Number(d.delta()));
    Put(dp, "beta", d.has_beta(), Number(d.beta()));
    y["dp_audit"] = std::move(dp);
  }
  if (a.has_duci()) {
    Json duci = Json::object();
    if (a.duci().fractions_size() > 0) {
      duci["fractions"] = ListJson(a.duci().fractions(), kNumber);
    }
    y["duci"] = std::move(duci);
  }
  if (a.has_policy()) y["policy"] = MapPolicy(a.policy());
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
  // The privacy gate: the keys of audit.policy, read by the policy's own
  // parser and checked against the scoring as the pipeline checks it.
  if (b.has_policy()) {
    YAML::Node node;
    try {
      node = YAML::Load(MapPolicy(b.policy()).dump());  // JSON is YAML
    } catch (const YAML::Exception&) {
      problems->Add(path + ".policy", "not readable as a policy");
      return;
    }
    for (const pipeline::ConfigProblem& p :
         jobs::BundlePolicyProblems(node, path + ".policy", out)) {
      problems->Add(p.field, p.message);
    }
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
  // A shared artifact store that is down makes the spec unreadable for now,
  // not wrong: UNAVAILABLE, so that the caller tries again.
  const bool all_unavailable =
      std::all_of(violations.begin(), violations.end(),
                  [](const FieldViolation& v) { return v.code == absl::StatusCode::kUnavailable; });
  absl::Status status(all_missing       ? absl::StatusCode::kNotFound
                      : all_unavailable ? absl::StatusCode::kUnavailable
                                        : absl::StatusCode::kInvalidArgument,
                      message);
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
  }
  if (spec.has_train()) yaml["train"] = MapTrain(spec.train(), roots, &problems);
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

}  // namespace mia::server
