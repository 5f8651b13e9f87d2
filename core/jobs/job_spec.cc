#include "core/jobs/job_spec.h"

#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/attacks/registry.h"
#include "core/common/status_macros.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace mia::jobs {
namespace {

using Json = nlohmann::json;

constexpr char kKindKey[] = "kind";

// Parses `text` as one JSON object. Messages give the position nlohmann
// reports, never the text itself (a spec may hold paths the caller did not
// mean to echo in logs).
absl::StatusOr<Json> ParseObject(absl::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("spec: not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("spec: must be a JSON object");
  return j;
}

absl::StatusOr<JobSpecKind> KindOf(const Json& j) {
  const auto it = j.find(kKindKey);
  if (it == j.end()) return JobSpecKind::kPipeline;
  if (!it->is_string()) return absl::InvalidArgumentError("kind: expected a string");
  const std::string& kind = it->get_ref<const std::string&>();
  if (kind == "pipeline") return JobSpecKind::kPipeline;
  if (kind == "bundle") return JobSpecKind::kBundle;
  return absl::InvalidArgumentError("kind: must be \"pipeline\" or \"bundle\"");
}

// One JSON object with its key path; typed getters record the keys read so
// that Finish() can reject the rest (the same strictness as the YAML config).
class Fields {
 public:
  Fields(const Json& object, std::string path) : object_(object), path_(std::move(path)) {}

  std::string Path(const std::string& key) const {
    return path_.empty() ? key : absl::StrCat(path_, ".", key);
  }

  // Returns the value of `key`, or nullptr when absent.
  const Json* Find(const std::string& key) {
    used_.insert(key);
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }

  absl::Status GetString(const std::string& key, std::string* out) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_string()) return TypeError(key, "a string");
    *out = v->get<std::string>();
    return absl::OkStatus();
  }

  absl::Status GetBool(const std::string& key, bool* out) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_boolean()) return TypeError(key, "true or false");
    *out = v->get<bool>();
    return absl::OkStatus();
  }

  absl::Status GetDouble(const std::string& key, double* out, double min, double max) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number()) return TypeError(key, "a number");
    const double x = v->get<double>();
    if (!(x >= min && x <= max)) return RangeError(key, min, max);
    *out = x;
    return absl::OkStatus();
  }

  absl::Status GetInt(const std::string& key, int* out, int min, int max) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number_integer()) return TypeError(key, "an integer");
    const int64_t x = v->get<int64_t>();
    if (x < min || x > max) return RangeError(key, min, max);
    *out = static_cast<int>(x);
    return absl::OkStatus();
  }

  absl::Status GetUint64(const std::string& key, uint64_t* out) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number_unsigned()) return TypeError(key, "a non-negative integer");
    *out = v->get<uint64_t>();
    return absl::OkStatus();
  }

  absl::Status GetStringList(const std::string& key, std::vector<std::string>* out) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_array()) return TypeError(key, "a list of strings");
    out->clear();
    for (const Json& item : *v) {
      if (!item.is_string()) return TypeError(key, "a list of strings");
      out->push_back(item.get<std::string>());
    }
    return absl::OkStatus();
  }

  absl::Status GetDoubleList(const std::string& key, std::vector<double>* out, double min,
                             double max) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_array()) return TypeError(key, "a list of numbers");
    out->clear();
    for (const Json& item : *v) {
      if (!item.is_number()) return TypeError(key, "a list of numbers");
      const double x = item.get<double>();
      if (!(x >= min && x <= max)) return RangeError(key, min, max);
      out->push_back(x);
    }
    return absl::OkStatus();
  }

  absl::Status GetIntList(const std::string& key, std::vector<int>* out, int min, int max) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_array()) return TypeError(key, "a list of integers");
    out->clear();
    for (const Json& item : *v) {
      if (!item.is_number_integer()) return TypeError(key, "a list of integers");
      const int64_t x = item.get<int64_t>();
      if (x < min || x > max) return RangeError(key, min, max);
      out->push_back(static_cast<int>(x));
    }
    return absl::OkStatus();
  }

  // InvalidArgument naming the first key no getter asked for.
  absl::Status Finish() const {
    for (auto it = object_.begin(); it != object_.end(); ++it) {
      if (used_.count(it.key()) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            Path(it.key()), ": unknown key; known keys here: ", absl::StrJoin(used_, ", ")));
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status TypeError(const std::string& key, absl::string_view expected) const {
    return absl::InvalidArgumentError(absl::StrCat(Path(key), ": expected ", expected));
  }
  absl::Status RangeError(const std::string& key, double min, double max) const {
    return absl::InvalidArgumentError(
        absl::StrCat(Path(key), ": must be in [", min, ", ", max, "]"));
  }

  const Json& object_;
  const std::string path_;
  std::set<std::string> used_;
};

// Types here; ranges and list limits by the checks the YAML's audit section
// and the server's signals_bundle use (core/pipeline/config.h), so the bounds
// are written once.
absl::Status DecodeScoring(Fields& f, BundleAuditSpec* spec) {
  constexpr double kAny = std::numeric_limits<double>::infinity();
  constexpr int kAnyInt = std::numeric_limits<int>::max();
  audit::ScoringOptions& sc = spec->scoring;
  MIA_RETURN_IF_ERROR(f.GetStringList("attacks", &sc.attacks));
  if (sc.attacks.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.Path("attacks"), ": must name at least one attack"));
  }
  MIA_RETURN_IF_ERROR(f.GetIntList("targets", &sc.targets, 0, kAnyInt));
  MIA_RETURN_IF_ERROR(f.GetBool("all_targets", &spec->all_targets));
  if (spec->all_targets && !sc.targets.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.Path("all_targets"), ": give targets or all_targets, not both"));
  }
  MIA_RETURN_IF_ERROR(f.GetDouble("temperature", &sc.temperature, -kAny, kAny));
  MIA_RETURN_IF_ERROR(f.GetDoubleList("fprs", &sc.fprs, -kAny, kAny));
  MIA_RETURN_IF_ERROR(f.GetInt("bootstrap", &sc.bootstrap.resamples, -kAnyInt, kAnyInt));
  MIA_RETURN_IF_ERROR(f.GetDouble("confidence", &sc.bootstrap.confidence, -kAny, kAny));
  MIA_RETURN_IF_ERROR(f.GetDouble("delta", &sc.epsilon.delta, -kAny, kAny));
  MIA_RETURN_IF_ERROR(f.GetDouble("beta", &sc.epsilon.beta, -kAny, kAny));
  MIA_RETURN_IF_ERROR(f.GetUint64("seed", &sc.seed));
  std::vector<pipeline::ConfigProblem> problems =
      pipeline::AttackListProblems(sc.attacks, f.Path("attacks"));
  if (sc.targets.size() > pipeline::kMaxModels) {
    problems.push_back(
        {f.Path("targets"), absl::StrCat("must have at most ", pipeline::kMaxModels, " entries")});
  }
  for (pipeline::ConfigProblem& p : pipeline::ScoringProblems(sc, f.Path(""))) {
    problems.push_back(std::move(p));
  }
  if (!problems.empty()) {
    std::vector<std::string> parts;
    for (const pipeline::ConfigProblem& p : problems) parts.push_back(p.ToString());
    return absl::InvalidArgumentError(absl::StrJoin(parts, "; "));
  }
  return f.Finish();
}

// An FPR as a policy key: the shortest decimal that reads back as the same
// double, so that the decoded policy names exactly the FPRs scored.
std::string FprKey(double fpr) {
  for (int digits : {15, 17}) {
    const std::string text = absl::StrFormat("%.*g", digits, fpr);
    if (std::strtod(text.c_str(), nullptr) == fpr || digits == 17) return text;
  }
  return "";
}

Json PolicyRulesJson(const audit::PolicyRules& r) {
  Json j = Json::object();
  if (r.max_auc.has_value()) j["max_auc"] = *r.max_auc;
  if (!r.max_tpr_at_fpr.empty()) {
    Json tprs = Json::object();
    for (const auto& [fpr, tpr] : r.max_tpr_at_fpr) tprs[FprKey(fpr)] = tpr;
    j["max_tpr_at_fpr"] = std::move(tprs);
  }
  if (r.max_epsilon_lower_bound.has_value()) {
    j["max_epsilon_lower_bound"] = *r.max_epsilon_lower_bound;
  }
  return j;
}

// The policy under the keys of audit.policy (what BundlePolicyProblems reads).
Json PolicyJson(const audit::PolicySpec& p) {
  Json j = PolicyRulesJson(p.all_attacks);
  j["use"] = p.use;
  if (!p.per_attack.empty()) {
    Json attacks = Json::object();
    for (const auto& [name, rules] : p.per_attack) attacks[name] = PolicyRulesJson(rules);
    j["attacks"] = std::move(attacks);
  }
  return j;
}

absl::Status ProblemsStatus(const std::vector<pipeline::ConfigProblem>& problems) {
  if (problems.empty()) return absl::OkStatus();
  std::vector<std::string> parts;
  for (const pipeline::ConfigProblem& p : problems) parts.push_back(p.ToString());
  return absl::InvalidArgumentError(absl::StrJoin(parts, "; "));
}

}  // namespace

std::vector<pipeline::ConfigProblem> BundlePolicyProblems(const YAML::Node& node,
                                                          const std::string& path,
                                                          BundleAuditSpec* spec) {
  std::vector<audit::PolicyProblem> found;
  spec->policy = audit::ParsePolicy(node, path, &found);
  audit::ScoringOptions& sc = spec->scoring;
  std::vector<std::string> names;
  for (const std::string& attack : sc.attacks) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> made = attacks::MakeAttack(attack);
    if (made.ok()) names.push_back((*made)->name());
  }
  for (audit::PolicyProblem& p :
       audit::PolicyAuditProblems(spec->policy, names, sc.bootstrap.resamples, path)) {
    found.push_back(std::move(p));
  }
  std::vector<double> fprs = audit::WithPolicyFprs(sc.fprs, spec->policy);
  if (fprs.size() > pipeline::kMaxFprs) {
    found.push_back({absl::StrCat(path, ".max_tpr_at_fpr"),
                     absl::StrCat("its FPRs and fprs together are ", fprs.size(),
                                  ", above the limit of ", pipeline::kMaxFprs)});
  } else {
    sc.fprs = std::move(fprs);
  }
  // Lines are left out: the node may come from JSON or a proto, not a file.
  std::vector<pipeline::ConfigProblem> problems;
  for (audit::PolicyProblem& p : found) problems.push_back({std::move(p.field), std::move(p.message)});
  return problems;
}

absl::StatusOr<JobSpecKind> JobSpecKindOf(absl::string_view spec_json) {
  MIA_ASSIGN_OR_RETURN(const Json j, ParseObject(spec_json));
  return KindOf(j);
}

absl::StatusOr<BundleAuditSpec> DecodeBundleSpec(absl::string_view spec_json) {
  MIA_ASSIGN_OR_RETURN(const Json j, ParseObject(spec_json));
  MIA_ASSIGN_OR_RETURN(const JobSpecKind kind, KindOf(j));
  if (kind != JobSpecKind::kBundle) {
    return absl::InvalidArgumentError("kind: a bundle audit needs \"kind\": \"bundle\"");
  }
  BundleAuditSpec spec;
  Fields top(j, "");
  top.Find(kKindKey);
  MIA_RETURN_IF_ERROR(top.GetString("bundle_path", &spec.bundle_path));
  if (spec.bundle_path.empty()) {
    return absl::InvalidArgumentError("bundle_path: required (an .npz file or a folder)");
  }
  if (const Json* scoring = top.Find("scoring"); scoring != nullptr) {
    if (!scoring->is_object()) return absl::InvalidArgumentError("scoring: must be an object");
    Fields f(*scoring, "scoring");
    MIA_RETURN_IF_ERROR(DecodeScoring(f, &spec));
  }
  // After the scoring, which the policy is checked against.
  if (const Json* policy = top.Find("policy"); policy != nullptr) {
    if (!policy->is_object()) return absl::InvalidArgumentError("policy: must be an object");
    YAML::Node node;
    try {
      node = YAML::Load(policy->dump());  // JSON is YAML
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError("policy: not readable as a policy");
    }
    MIA_RETURN_IF_ERROR(ProblemsStatus(BundlePolicyProblems(node, "policy", &spec)));
  }
  MIA_RETURN_IF_ERROR(top.Finish());
  return spec;
}

std::string EncodeBundleSpec(const BundleAuditSpec& spec) {
  const audit::ScoringOptions& sc = spec.scoring;
  Json scoring = {{"attacks", sc.attacks},
                  {"targets", sc.targets},
                  {"all_targets", spec.all_targets},
                  {"temperature", sc.temperature},
                  {"fprs", sc.fprs},
                  {"bootstrap", sc.bootstrap.resamples},
                  {"confidence", sc.bootstrap.confidence},
                  {"delta", sc.epsilon.delta},
                  {"beta", sc.epsilon.beta},
                  {"seed", sc.seed}};
  Json j = {{kKindKey, "bundle"}, {"bundle_path", spec.bundle_path}, {"scoring", scoring}};
  if (spec.policy.enabled) j["policy"] = PolicyJson(spec.policy);
  return j.dump();
}

absl::StatusOr<pipeline::Config> DecodePipelineSpec(absl::string_view spec_json) {
  MIA_ASSIGN_OR_RETURN(Json j, ParseObject(spec_json));
  MIA_ASSIGN_OR_RETURN(const JobSpecKind kind, KindOf(j));
  if (kind != JobSpecKind::kPipeline) {
    return absl::InvalidArgumentError("kind: a pipeline audit has no kind or \"pipeline\"");
  }
  // The configuration parser is strict about keys, and "kind" is not one.
  j.erase(kKindKey);
  return pipeline::ParseConfig(j.dump(), "spec");
}

absl::Status ValidateJobSpec(absl::string_view spec_json) {
  MIA_ASSIGN_OR_RETURN(const JobSpecKind kind, JobSpecKindOf(spec_json));
  switch (kind) {
    case JobSpecKind::kPipeline:
      return DecodePipelineSpec(spec_json).status();
    case JobSpecKind::kBundle:
      return DecodeBundleSpec(spec_json).status();
  }
  return absl::InternalError("spec: unhandled kind");
}

}  // namespace mia::jobs
