#include "core/pipeline/config.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/attacks/registry.h"
#include "core/common/quote.h"
#include "core/common/status_macros.h"
#include "core/common/yaml_util.h"
#include "core/pipeline/splits.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace mia::pipeline {
namespace {

// One YAML mapping with its key path; typed getters record which keys were
// read so that Finish() can reject the rest.
class Section {
 public:
  Section(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {}

  absl::Status CheckIsMap() const {
    if (node_ && !node_.IsNull() && !node_.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": must be a mapping of keys"));
    }
    return absl::OkStatus();
  }

  bool Has(const std::string& key) const { return node_ && node_.IsMap() && node_[key]; }

  std::string Path(const std::string& key) const {
    return path_.empty() ? key : absl::StrCat(path_, ".", key);
  }

  template <typename T>
  absl::Status Get(const std::string& key, T* out) {
    used_.insert(key);
    if (!Has(key)) return absl::OkStatus();
    const YAML::Node v = node_[key];
    try {
      if (!v.IsScalar()) throw YAML::Exception(v.Mark(), "not a scalar");
      *out = v.as<T>();
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError(
          absl::StrCat(Path(key), ": expected ", TypeName<T>(), Where(v)));
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status GetInRange(const std::string& key, T* out, T min, T max) {
    MIA_RETURN_IF_ERROR(Get(key, out));
    if (!(*out >= min && *out <= max)) {  // also refuses NaN
      return absl::InvalidArgumentError(
          absl::StrCat(Path(key), ": must be in [", min, ", ", max, "]", Where(node_[key])));
    }
    return absl::OkStatus();
  }

  absl::Status GetChoice(const std::string& key, std::string* out,
                         const std::vector<std::string>& allowed) {
    MIA_RETURN_IF_ERROR(Get(key, out));
    std::string lower = absl::AsciiStrToLower(*out);
    for (const std::string& a : allowed) {
      if (lower == a) {
        *out = a;
        return absl::OkStatus();
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(Path(key), ": ", Quoted(*out), " is not one of ",
                                                   absl::StrJoin(allowed, ", "),
                                                   Has(key) ? Where(node_[key]) : ""));
  }

  template <typename T>
  absl::Status GetList(const std::string& key, std::vector<T>* out) {
    used_.insert(key);
    if (!Has(key)) return absl::OkStatus();
    const YAML::Node v = node_[key];
    try {
      out->clear();
      if (v.IsScalar()) {
        out->push_back(v.as<T>());
      } else if (v.IsSequence()) {
        for (const auto& item : v) out->push_back(item.as<T>());
      } else {
        throw YAML::Exception(v.Mark(), "not a list");
      }
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError(
          absl::StrCat(Path(key), ": expected a list of ", TypeName<T>(), Where(v)));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Section> Child(const std::string& key) {
    used_.insert(key);
    Section child(Has(key) ? node_[key] : YAML::Node(), Path(key));
    MIA_RETURN_IF_ERROR(child.CheckIsMap());
    return child;
  }

  absl::Status Finish() const {
    if (!node_ || !node_.IsMap()) return absl::OkStatus();
    for (const auto& kv : node_) {
      const std::string key = kv.first.as<std::string>();
      if (used_.count(key) == 0) {
        std::vector<std::string> known(used_.begin(), used_.end());
        return absl::InvalidArgumentError(
            absl::StrCat(Path(key), ": unknown key", Where(kv.first),
                         "; known keys here: ", absl::StrJoin(known, ", ")));
      }
    }
    return absl::OkStatus();
  }

 private:
  static std::string Where(const YAML::Node& n) {
    const YAML::Mark m = n.Mark();
    if (m.line < 0) return "";
    return absl::StrCat(" (line ", m.line + 1, ")");
  }
  template <typename T>
  static const char* TypeName() {
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    if constexpr (std::is_integral_v<T>) return "an integer";
    if constexpr (std::is_floating_point_v<T>) return "a number";
    return "a string";
  }

  YAML::Node node_;
  std::string path_;
  std::set<std::string> used_;
};

// dataset name -> loader format and default location.
struct DatasetDefaults {
  std::string format;
  std::string data_dir;
};

const std::map<std::string, DatasetDefaults>& KnownDatasets() {
  static const auto* const kDatasets = new std::map<std::string, DatasetDefaults>{
      {"fashion-mnist", {"idx", "/usr/share/datasets/fashion-mnist"}},
      {"mnist", {"idx", "data/mnist"}},
      {"cifar10", {"cifar10", "data/cifar-10-batches-bin"}},
      {"cifar100", {"cifar100", "data/cifar-100-binary"}},
      {"purchase100", {"purchase100", "data/dataset_purchase"}},
      {"texas100", {"texas100", "data/texas/100"}},
      {"csv", {"csv", ""}},
      {"npy", {"npy", ""}},
  };
  return *kDatasets;
}

absl::Status ParseRun(Section& s, RunConfig* run) {
  MIA_RETURN_IF_ERROR(s.Get("random_seed", &run->random_seed));
  MIA_RETURN_IF_ERROR(s.Get("log_dir", &run->log_dir));
  MIA_RETURN_IF_ERROR(s.Get("time_log", &run->time_log));
  MIA_RETURN_IF_ERROR(s.GetInRange("num_experiments", &run->num_experiments, 1, 1024));
  MIA_RETURN_IF_ERROR(s.GetInRange("threads", &run->threads, 0, 1024));
  if (run->log_dir.empty()) return absl::InvalidArgumentError("run.log_dir: must not be empty");
  return s.Finish();
}

absl::Status ParseData(Section& s, DataConfig* data) {
  std::vector<std::string> names;
  for (const auto& [name, d] : KnownDatasets()) names.push_back(name);
  if (!s.Has("dataset")) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.dataset: missing; one of ", absl::StrJoin(names, ", ")));
  }
  MIA_RETURN_IF_ERROR(s.GetChoice("dataset", &data->dataset, names));
  const DatasetDefaults& d = KnownDatasets().at(data->dataset);
  data->source.format = d.format;
  data->source.path = d.data_dir;
  MIA_RETURN_IF_ERROR(s.Get("data_dir", &data->source.path));
  if (data->source.path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.data_dir: required for dataset ", data->dataset));
  }
  MIA_RETURN_IF_ERROR(s.GetChoice("split", &data->source.split, {"train", "test", "all"}));
  MIA_RETURN_IF_ERROR(s.GetInRange("label_column", &data->source.label_column, 0, 1 << 20));
  MIA_RETURN_IF_ERROR(s.Get("header", &data->source.header));
  MIA_RETURN_IF_ERROR(
      s.GetChoice("cifar100_labels", &data->source.cifar100_labels, {"fine", "coarse"}));
  MIA_RETURN_IF_ERROR(s.GetInRange<int64_t>("pool_size", &data->pool_size, 0, 100'000'000));
  MIA_RETURN_IF_ERROR(
      s.GetInRange<int64_t>("population_size", &data->population_size, 0, 100'000'000));
  MIA_RETURN_IF_ERROR(s.Get("shuffle", &data->shuffle));
  return s.Finish();
}

absl::Status ParseTrain(Section& s, Config* c) {
  std::string model_name = "mlp";
  MIA_RETURN_IF_ERROR(s.GetChoice("model_name", &model_name,
                                  {"mlp", "cnn", "alexnet", "wrn28-1", "wrn28-2", "wrn28-10"}));
  training::ModelSpec& m = c->model;
  if (model_name.rfind("wrn28-", 0) == 0) {
    m.architecture = "wrn";
    m.depth = 28;
    m.width = std::stoi(model_name.substr(6));
  } else {
    m.architecture = model_name;
    if (model_name == "cnn") m.width = 1;
  }
  MIA_RETURN_IF_ERROR(s.GetList("hidden", &m.hidden));
  for (int h : m.hidden) {
    if (h < 1 || h > 1 << 16) {
      return absl::InvalidArgumentError("train.hidden: widths must be in [1, 65536]");
    }
  }
  MIA_RETURN_IF_ERROR(s.GetChoice("activation", &m.activation, {"tanh", "relu"}));
  MIA_RETURN_IF_ERROR(s.GetInRange("dropout", &m.dropout, 0.0, 0.95));
  if (m.architecture == "cnn") MIA_RETURN_IF_ERROR(s.GetInRange("width", &m.width, 1, 64));
  MIA_RETURN_IF_ERROR(s.Get("device", &c->train_device));
  if (s.Has("batched")) {
    bool batched = true;
    MIA_RETURN_IF_ERROR(s.Get("batched", &batched));
    c->batched_training = batched;
  }
  training::TrainRecipe& r = c->recipe;
  MIA_RETURN_IF_ERROR(s.GetInRange("batch_size", &r.batch_size, 1, 1 << 20));
  MIA_RETURN_IF_ERROR(s.GetChoice("optimizer", &r.optimizer, {"sgd", "adam", "adamw"}));
  MIA_RETURN_IF_ERROR(s.GetInRange("learning_rate", &r.learning_rate, 1e-12, 100.0));
  MIA_RETURN_IF_ERROR(s.GetInRange("momentum", &r.momentum, 0.0, 0.9999));
  MIA_RETURN_IF_ERROR(s.Get("nesterov", &r.nesterov));
  MIA_RETURN_IF_ERROR(s.GetInRange("weight_decay", &r.weight_decay, 0.0, 1.0));
  MIA_RETURN_IF_ERROR(s.GetInRange("epochs", &r.epochs, 1, 100000));
  MIA_RETURN_IF_ERROR(s.GetChoice("schedule", &r.schedule, {"constant", "cosine"}));
  MIA_RETURN_IF_ERROR(s.GetInRange("warmup_epochs", &r.warmup_epochs, 0, 100000));
  MIA_RETURN_IF_ERROR(s.Get("random_crop", &r.random_crop));
  MIA_RETURN_IF_ERROR(s.GetInRange("crop_padding", &r.crop_padding, 0, 64));
  MIA_RETURN_IF_ERROR(s.Get("horizontal_flip", &r.horizontal_flip));
  MIA_RETURN_IF_ERROR(s.GetList("normalize_mean", &r.normalize_mean));
  MIA_RETURN_IF_ERROR(s.GetList("normalize_std", &r.normalize_std));
  if (r.normalize_mean.size() != r.normalize_std.size()) {
    return absl::InvalidArgumentError(
        "train.normalize_std: must have as many entries as train.normalize_mean");
  }
  for (float v : r.normalize_std) {
    if (!(v > 0)) return absl::InvalidArgumentError("train.normalize_std: entries must be > 0");
  }
  if (r.warmup_epochs >= r.epochs && r.warmup_epochs > 0) {
    return absl::InvalidArgumentError("train.warmup_epochs: must be less than train.epochs");
  }
  if (r.nesterov && (r.optimizer != "sgd" || r.momentum == 0)) {
    return absl::InvalidArgumentError("train.nesterov: needs optimizer sgd with momentum > 0");
  }
  return s.Finish();
}

absl::Status ParseAudit(Section& s, AuditConfig* a) {
  std::string game = "privacy_loss_model";
  MIA_RETURN_IF_ERROR(s.GetChoice("privacy_game", &game, {"privacy_loss_model"}));
  std::string algorithm;
  MIA_RETURN_IF_ERROR(s.Get("algorithm", &algorithm));
  MIA_RETURN_IF_ERROR(s.GetList("attacks", &a->scoring.attacks));
  if (!algorithm.empty()) {
    if (s.Has("attacks")) {
      return absl::InvalidArgumentError(
          "audit.algorithm: give audit.attacks (a list) or audit.algorithm, not both");
    }
    a->scoring.attacks = {absl::AsciiStrToLower(algorithm)};
  }
  if (!s.Has("attacks") && algorithm.empty()) {
    // The default audit (1 target + 4 references) feeds both: online LiRA
    // would need 6 models (2 IN references per point).
    a->scoring.attacks = {"rmia", "lira-offline"};
  }
  if (a->scoring.attacks.empty()) {
    return absl::InvalidArgumentError("audit.attacks: must name at least one attack");
  }
  for (const std::string& spec : a->scoring.attacks) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> made = attacks::MakeAttack(spec);
    if (!made.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          s.Path(s.Has("attacks") ? "attacks" : "algorithm"), ": ", made.status().message()));
    }
  }
  MIA_RETURN_IF_ERROR(s.GetInRange("num_ref_models", &a->num_ref_models, 0, 4096));
  MIA_RETURN_IF_ERROR(s.Get("device", &a->device));
  MIA_RETURN_IF_ERROR(s.GetInRange("batch_size", &a->batch_size, 1, 1 << 20));
  MIA_RETURN_IF_ERROR(s.GetInRange<int64_t>("data_size", &a->data_size, 0, 100'000'000));
  MIA_RETURN_IF_ERROR(s.Get("report_log", &a->report_log));
  MIA_RETURN_IF_ERROR(s.GetChoice("splits", &a->splits, {"balanced", "paired"}));
  MIA_ASSIGN_OR_RETURN(Section aug, s.Child("augmentation"));
  MIA_RETURN_IF_ERROR(aug.Get("flip", &a->augmentation.flip));
  MIA_RETURN_IF_ERROR(aug.GetInRange("shift", &a->augmentation.shift, 0, 16));
  MIA_RETURN_IF_ERROR(aug.Finish());
  audit::ScoringOptions& sc = a->scoring;
  MIA_RETURN_IF_ERROR(s.GetInRange("temperature", &sc.temperature, 1e-6, 1e6));
  MIA_RETURN_IF_ERROR(s.GetList("fprs", &sc.fprs));
  for (double f : sc.fprs) {
    if (!(f >= 0 && f <= 1)) return absl::InvalidArgumentError("audit.fprs: values in [0, 1]");
  }
  MIA_RETURN_IF_ERROR(s.GetInRange("bootstrap", &sc.bootstrap.resamples, 0, 1000000));
  MIA_RETURN_IF_ERROR(s.GetInRange("confidence", &sc.bootstrap.confidence, 0.5, 0.9999));
  MIA_RETURN_IF_ERROR(s.GetInRange("delta", &sc.epsilon.delta, 0.0, 0.5));
  MIA_RETURN_IF_ERROR(s.GetInRange("beta", &sc.epsilon.beta, 1e-9, 0.5));
  return s.Finish();
}

// Refuses, before any training, attacks that the splits cannot feed. Both
// schemes put each pool point in M/2 models (balanced: floor(M/2)), so
// against any target every point has at least floor(M/2) - 1 IN and
// ceil(M/2) - 1 OUT references (a member has one IN fewer, a non-member one
// OUT fewer), and every point is scored with those counts (ATTACKS.md,
// "Corrections"). An attack short of its minimum would train every model and
// then fail, losing the other attacks' results too.
absl::Status CheckReferenceCounts(const Config& c) {
  const int m = c.num_models();
  const int in_refs = m / 2 - 1;
  const int out_refs = (m + 1) / 2 - 1;
  std::vector<std::string> problems;
  for (const std::string& spec : c.audit.scoring.attacks) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> attack = attacks::MakeAttack(spec);
    if (!attack.ok()) continue;  // reported by ParseAudit
    const attacks::AttackNeeds needs = (*attack)->needs();
    if (!needs.references) continue;
    const int k = needs.min_per_side;
    if (out_refs >= k && (!needs.in_references || in_refs >= k)) continue;
    // Least M with ceil(M/2) - 1 >= k (and floor(M/2) - 1 >= k online).
    const int least = needs.in_references ? 2 * (k + 1) : 2 * k + 1;
    const int refs = m - c.run.num_experiments;
    problems.push_back(absl::StrCat(
        "'", (*attack)->name(), "' needs at least ",
        needs.in_references ? absl::StrCat(k, " IN and ") : "", k, " OUT reference model",
        k > 1 ? "s" : "", " per point; ", m, " models (", c.run.num_experiments, " target",
        c.run.num_experiments > 1 ? "s" : "", " + ", refs, " reference", refs != 1 ? "s" : "",
        ") give ", needs.in_references ? absl::StrCat(in_refs, " IN and ") : "", out_refs,
        " OUT; it needs at least ", least,
        " models (audit.num_ref_models >= ", least - c.run.num_experiments, ")"));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("audit.attacks: ", absl::StrJoin(problems, "; ")));
}

}  // namespace

absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& path) {
  MIA_ASSIGN_OR_RETURN(YAML::Node root,
                       LoadYamlMapping(yaml_text, path, " with run, data, train, audit"));
  Config c;
  c.path = path;
  auto with_path = [&](const absl::Status& s) {
    return s.ok() ? s : absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  };
  Section top(root, "");
  absl::Status status = [&]() -> absl::Status {
    MIA_ASSIGN_OR_RETURN(Section run, top.Child("run"));
    MIA_RETURN_IF_ERROR(ParseRun(run, &c.run));
    MIA_ASSIGN_OR_RETURN(Section data, top.Child("data"));
    MIA_RETURN_IF_ERROR(ParseData(data, &c.data));
    MIA_ASSIGN_OR_RETURN(Section train, top.Child("train"));
    MIA_RETURN_IF_ERROR(ParseTrain(train, &c));
    MIA_ASSIGN_OR_RETURN(Section audit, top.Child("audit"));
    MIA_RETURN_IF_ERROR(ParseAudit(audit, &c.audit));
    MIA_ASSIGN_OR_RETURN(Section models, top.Child("models"));
    MIA_RETURN_IF_ERROR(models.GetList("torchscript", &c.external.torchscript));
    MIA_RETURN_IF_ERROR(models.Get("keep", &c.external.keep));
    MIA_RETURN_IF_ERROR(models.Finish());
    MIA_RETURN_IF_ERROR(top.Finish());
    if (!c.external.torchscript.empty()) {
      if (c.external.keep.empty()) {
        return absl::InvalidArgumentError(
            "models.keep: required with models.torchscript (who trained on which pool row)");
      }
      if (static_cast<int>(c.external.torchscript.size()) <= c.run.num_experiments) {
        return absl::InvalidArgumentError(
            "models.torchscript: needs more models than run.num_experiments (targets first, "
            "then references)");
      }
    } else if (!c.external.keep.empty()) {
      return absl::InvalidArgumentError("models.keep: only meaningful with models.torchscript");
    }
    if (c.num_models() < 2) {
      return absl::InvalidArgumentError(
          "audit.num_ref_models: with run.num_experiments it must give at least 2 models");
    }
    if (c.audit.splits == "paired" && c.num_models() % 2 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "audit.splits: paired halves need an even number of models (num_experiments + "
          "num_ref_models = ",
          c.num_models(), ")"));
    }
    if (c.external.torchscript.empty()) {
      MIA_RETURN_IF_ERROR(CheckReferenceCounts(c));
    }
    return absl::OkStatus();
  }();
  if (!status.ok()) return with_path(status);
  return c;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the config file"));
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

std::string TrainingJson(const training::ModelSpec& m, const training::TrainRecipe& r) {
  nlohmann::json j = {{"architecture", m.architecture},
                      {"hidden", m.hidden},
                      {"activation", m.activation},
                      {"depth", m.depth},
                      {"width", m.width},
                      {"dropout", m.dropout},
                      {"optimizer", r.optimizer},
                      {"learning_rate", r.learning_rate},
                      {"momentum", r.momentum},
                      {"nesterov", r.nesterov},
                      {"weight_decay", r.weight_decay},
                      {"epochs", r.epochs},
                      {"batch_size", r.batch_size},
                      {"schedule", r.schedule},
                      {"warmup_epochs", r.warmup_epochs},
                      {"random_crop", r.random_crop},
                      {"crop_padding", r.crop_padding},
                      {"horizontal_flip", r.horizontal_flip},
                      {"normalize_mean", r.normalize_mean},
                      {"normalize_std", r.normalize_std}};
  return j.dump();  // keys sorted: canonical
}

std::string ConfigJson(const Config& c) {
  nlohmann::json j;
  j["kind"] = "audit";
  j["config_file"] = c.path;
  j["run"] = {{"random_seed", c.run.random_seed},
              {"log_dir", c.run.log_dir},
              {"num_experiments", c.run.num_experiments}};
  j["data"] = {{"dataset", c.data.dataset},      {"format", c.data.source.format},
               {"data_dir", c.data.source.path}, {"split", c.data.source.split},
               {"pool_size", c.data.pool_size},  {"population_size", c.data.population_size},
               {"shuffle", c.data.shuffle}};
  j["train"] = nlohmann::json::parse(TrainingJson(c.model, c.recipe));
  if (!c.external.torchscript.empty()) {
    j["models"] = {{"torchscript", c.external.torchscript}, {"keep", c.external.keep}};
  }
  const audit::ScoringOptions& s = c.audit.scoring;
  j["audit"] = {{"attacks", s.attacks},
                {"num_ref_models", c.audit.num_ref_models},
                {"data_size", c.audit.data_size},
                {"splits", c.audit.splits},
                {"augmentation",
                 {{"flip", c.audit.augmentation.flip}, {"shift", c.audit.augmentation.shift}}},
                {"temperature", s.temperature},
                {"fprs", s.fprs},
                {"bootstrap", s.bootstrap.resamples},
                {"confidence", s.bootstrap.confidence},
                {"delta", s.epsilon.delta},
                {"beta", s.epsilon.beta}};
  return j.dump();
}

}  // namespace mia::pipeline
