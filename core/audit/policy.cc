#include "core/audit/policy.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/attacks/registry.h"
#include "core/common/quote.h"
#include "core/common/yaml_util.h"
#include "core/metrics/roc.h"
#include "yaml-cpp/yaml.h"

namespace mia::audit {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

int LineOf(const YAML::Node& n) { return n.Mark().line < 0 ? 0 : n.Mark().line + 1; }

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : absl::StrCat(path, ".", key);
}

bool NumberOf(const YAML::Node& n, double* out) {
  if (!n.IsScalar()) return false;
  try {
    *out = n.as<double>();
  } catch (const YAML::Exception&) {
    return false;
  }
  return true;
}

// Reads one set of rules from the mapping `node` (its path `path`). `top`
// allows the keys only the top level has (use, attacks).
class RulesReader {
 public:
  explicit RulesReader(std::vector<PolicyProblem>* problems) : problems_(problems) {}

  void Add(const std::string& field, std::string message, const YAML::Node& at) {
    problems_->push_back({field, std::move(message), at ? LineOf(at) : 0});
  }

  // A number in [min, max] (max may be infinity).
  std::optional<double> Limit(const YAML::Node& v, const std::string& field, double min,
                              double max) {
    double x = 0;
    if (!NumberOf(v, &x)) {
      Add(field, "expected a number", v);
      return std::nullopt;
    }
    if (!(x >= min && x <= max) || std::isnan(x)) {
      Add(field,
          std::isinf(max) ? absl::StrCat("must be a finite number >= ", min)
                          : absl::StrCat("must be in [", min, ", ", max, "]"),
          v);
      return std::nullopt;
    }
    if (std::isinf(x)) {
      Add(field, absl::StrCat("must be a finite number >= ", min), v);
      return std::nullopt;
    }
    return x;
  }

  // Reads the rule keys of `node`; other keys are left to the caller, which
  // lists them in `extra` (read elsewhere) or refuses them.
  PolicyRules Read(const YAML::Node& node, const std::string& path,
                   const std::set<std::string>& extra) {
    PolicyRules rules;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        Add(path, "a key must be a plain name, not a list or mapping", kv.first);
        continue;
      }
      const std::string key = kv.first.Scalar();
      const std::string field = Join(path, key);
      if (key == "max_auc") {
        rules.max_auc = Limit(kv.second, field, 0, 1);
      } else if (key == "max_epsilon_lower_bound") {
        rules.max_epsilon_lower_bound =
            Limit(kv.second, field, 0, std::numeric_limits<double>::infinity());
      } else if (key == "max_tpr_at_fpr") {
        ReadTprs(kv.second, field, &rules);
      } else if (extra.count(key) == 0) {
        std::vector<std::string> known = {"max_auc", "max_tpr_at_fpr", "max_epsilon_lower_bound"};
        known.insert(known.end(), extra.begin(), extra.end());
        Add(field, absl::StrCat("unknown key; known keys here: ", absl::StrJoin(known, ", ")),
            kv.first);
      }
    }
    return rules;
  }

 private:
  void ReadTprs(const YAML::Node& v, const std::string& field, PolicyRules* rules) {
    if (!v.IsMap()) {
      Add(field,
          "must be a mapping from an FPR to the largest TPR allowed there, e.g. {0.001: 0.01}", v);
      return;
    }
    if (v.size() > kMaxPolicyFprs) {
      Add(field, absl::StrCat("must have at most ", kMaxPolicyFprs, " entries"), v);
      return;
    }
    std::map<double, std::string> seen;
    for (const auto& kv : v) {
      const std::string text = kv.first.IsScalar() ? kv.first.Scalar() : "?";
      const std::string element = absl::StrCat(field, "[", text, "]");
      double fpr = 0;
      if (!NumberOf(kv.first, &fpr)) {
        Add(element, "the key must be an FPR (a number in [0, 1])", kv.first);
        continue;
      }
      if (!(fpr >= 0 && fpr <= 1)) {
        Add(element, "the FPR must be in [0, 1]", kv.first);
        continue;
      }
      const std::optional<double> tpr = Limit(kv.second, element, 0, 1);
      if (!tpr.has_value()) continue;
      auto [it, inserted] = seen.emplace(fpr, text);
      if (!inserted) {
        Add(element, absl::StrCat("the same FPR as [", it->second, "]"), kv.first);
        continue;
      }
      rules->max_tpr_at_fpr.emplace_back(fpr, *tpr);
    }
    // By FPR: the verdict's rows do not depend on how a map was ordered.
    std::sort(rules->max_tpr_at_fpr.begin(), rules->max_tpr_at_fpr.end());
  }

  std::vector<PolicyProblem>* problems_;
};

// The figure a rule judges for one (attack, target); NaN with a note when
// there is none.
struct Figure {
  double value = kNaN;
  std::string note;
};

Figure AucOf(const AttackTargetResult& r, bool upper) {
  if (!upper) return {r.auc, ""};
  if (!std::isfinite(r.auc_ci.high)) return {kNaN, "no interval"};
  return {r.auc_ci.high, ""};
}

Figure TprOf(const AttackTargetResult& r, size_t k, bool upper) {
  if (k >= r.tpr_at_fpr.size() || !r.tpr_at_fpr[k].resolved) return {kNaN, "unresolved"};
  if (!upper) return {r.tpr_at_fpr[k].tpr, ""};
  if (k >= r.tpr_ci.size() || !std::isfinite(r.tpr_ci[k].high)) return {kNaN, "no interval"};
  return {r.tpr_ci[k].high, ""};
}

Figure EpsilonOf(const AttackTargetResult& r) {
  if (std::isnan(r.epsilon.epsilon)) return {kNaN, "no bound"};
  return {r.epsilon.epsilon, ""};
}

// "0.001" for a rule name.
std::string FprName(double fpr) { return absl::StrCat(fpr); }

}  // namespace

std::vector<double> PolicySpec::Fprs() const {
  std::set<double> fprs;
  for (const auto& [fpr, tpr] : all_attacks.max_tpr_at_fpr) fprs.insert(fpr);
  for (const auto& [attack, rules] : per_attack) {
    for (const auto& [fpr, tpr] : rules.max_tpr_at_fpr) fprs.insert(fpr);
  }
  return {fprs.begin(), fprs.end()};
}

PolicySpec ParsePolicy(const YAML::Node& node, const std::string& path,
                       std::vector<PolicyProblem>* problems) {
  PolicySpec policy;
  if (!node || node.IsNull()) return policy;
  RulesReader reader(problems);
  if (!node.IsMap()) {
    reader.Add(path,
               "must be a mapping of keys (use, max_auc, max_tpr_at_fpr, "
               "max_epsilon_lower_bound, attacks)",
               node);
    return policy;
  }
  policy.enabled = true;
  policy.all_attacks = reader.Read(node, path, {"use", "attacks"});
  bool any_rule = !policy.all_attacks.empty();
  if (const YAML::Node use = node["use"]) {
    std::string value;
    if (use.IsScalar()) value = absl::AsciiStrToLower(use.Scalar());
    if (value == "estimate" || value == "upper_ci") {
      policy.use = value;
    } else {
      reader.Add(Join(path, "use"),
                 absl::StrCat(use.IsScalar() ? Quoted(use.Scalar()) : std::string("the value"),
                              " is not one of estimate, upper_ci"),
                 use);
    }
  }
  if (const YAML::Node attack_map = node["attacks"]) {
    const std::string field = Join(path, "attacks");
    if (!attack_map.IsMap()) {
      reader.Add(field, "must be a mapping from an attack (as in audit.attacks) to its limits",
                 attack_map);
    } else if (attack_map.size() > kMaxPolicyAttacks) {
      reader.Add(field, absl::StrCat("must have at most ", kMaxPolicyAttacks, " entries"),
                 attack_map);
    } else {
      std::set<std::string> seen;
      for (const auto& kv : attack_map) {
        const std::string spec = kv.first.IsScalar() ? kv.first.Scalar() : "?";
        const std::string element = Join(field, spec);
        absl::StatusOr<std::unique_ptr<attacks::Attack>> made = attacks::MakeAttack(spec);
        if (!kv.first.IsScalar() || !made.ok()) {
          reader.Add(
              element,
              made.ok() ? "the key must be an attack name" : std::string(made.status().message()),
              kv.first);
          continue;
        }
        if (!kv.second.IsMap()) {
          reader.Add(element,
                     "must be a mapping of keys (max_auc, max_tpr_at_fpr, max_epsilon_lower_bound)",
                     kv.second);
          continue;
        }
        const std::string name = (*made)->name();
        if (!seen.insert(name).second) {
          reader.Add(element, "the same attack is given twice", kv.first);
          continue;
        }
        PolicyRules rules = reader.Read(kv.second, element, {});
        if (rules.empty()) continue;
        any_rule = true;
        policy.per_attack.emplace_back(name, std::move(rules));
      }
      std::sort(policy.per_attack.begin(), policy.per_attack.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
    }
  }
  if (!any_rule && problems->empty()) {
    reader.Add(path.empty() ? "policy" : path,
               "names no rule: give max_auc, max_tpr_at_fpr or max_epsilon_lower_bound", node);
  }
  return policy;
}

absl::StatusOr<PolicySpec> LoadPolicyFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the policy file"));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<YAML::Node> root = LoadYamlMapping(
      text.str(), path, " with max_auc, max_tpr_at_fpr, max_epsilon_lower_bound, use, attacks");
  if (!root.ok()) return root.status();
  std::vector<PolicyProblem> problems;
  PolicySpec policy = ParsePolicy(*root, "", &problems);
  if (problems.empty()) return policy;
  std::vector<std::string> lines;
  for (const PolicyProblem& p : problems) {
    std::string line = p.field.empty() ? p.message : absl::StrCat(p.field, ": ", p.message);
    if (p.line > 0) absl::StrAppend(&line, " (line ", p.line, ")");
    lines.push_back(std::move(line));
  }
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", absl::StrJoin(lines, "; ")));
}

std::vector<PolicyProblem> PolicyAuditProblems(const PolicySpec& policy,
                                               const std::vector<std::string>& attacks,
                                               int bootstrap_resamples, const std::string& path) {
  std::vector<PolicyProblem> problems;
  if (!policy.enabled) return problems;
  for (const auto& [name, rules] : policy.per_attack) {
    if (std::find(attacks.begin(), attacks.end(), name) == attacks.end()) {
      problems.push_back({Join(path, absl::StrCat("attacks.", name)),
                          absl::StrCat("the audit does not run this attack (it runs ",
                                       absl::StrJoin(attacks, ", "), ")")});
    }
  }
  if (policy.use == "upper_ci" && bootstrap_resamples <= 0) {
    problems.push_back({Join(path, "use"),
                        "upper_ci needs bootstrap intervals: the bootstrap is off (0 resamples)"});
  }
  return problems;
}

std::vector<double> WithPolicyFprs(const std::vector<double>& fprs, const PolicySpec& policy) {
  const std::vector<double> base = fprs.empty() ? metrics::DefaultFprs() : fprs;
  std::vector<double> out = base;
  for (double f : policy.Fprs()) {
    if (std::find(base.begin(), base.end(), f) == base.end()) out.push_back(f);
  }
  return out.size() == base.size() ? fprs : out;
}

absl::StatusOr<PolicyVerdict> Judge(const AuditResult& result, const PolicySpec& policy) {
  PolicyVerdict verdict;
  verdict.use = policy.use;
  verdict.pass = true;
  const bool upper = policy.use == "upper_ci";
  // The figure of `rule` for one (attack, target) result.
  struct RuleDef {
    std::string name;
    double limit;
    std::function<Figure(const AttackTargetResult&)> figure;
  };
  auto defs_of = [&](const PolicyRules& rules,
                     const std::string& prefix) -> absl::StatusOr<std::vector<RuleDef>> {
    std::vector<RuleDef> defs;
    if (rules.max_auc.has_value()) {
      defs.push_back({prefix + "max_auc", *rules.max_auc,
                      [upper](const AttackTargetResult& r) { return AucOf(r, upper); }});
    }
    for (const auto& [fpr, limit] : rules.max_tpr_at_fpr) {
      const std::string name = absl::StrCat(prefix, "max_tpr_at_fpr[", FprName(fpr), "]");
      const auto it = std::find(result.fprs.begin(), result.fprs.end(), fpr);
      if (it == result.fprs.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("policy rule ", name, ": the result has no TPR at FPR ", FprName(fpr),
                         " (its FPRs: ", absl::StrJoin(result.fprs, ", "), ")"));
      }
      const size_t k = static_cast<size_t>(it - result.fprs.begin());
      defs.push_back(
          {name, limit, [k, upper](const AttackTargetResult& r) { return TprOf(r, k, upper); }});
    }
    if (rules.max_epsilon_lower_bound.has_value()) {
      defs.push_back({prefix + "max_epsilon_lower_bound", *rules.max_epsilon_lower_bound,
                      [](const AttackTargetResult& r) { return EpsilonOf(r); }});
    }
    return defs;
  };
  auto add = [&](const RuleDef& def, const AttackTargetResult& r, const Figure& f) {
    PolicyRuleResult row;
    row.rule = def.name;
    row.attack = r.attack;
    row.target = r.target;
    row.value = f.value;
    row.limit = def.limit;
    row.pass = !std::isnan(f.value) && f.value <= def.limit;
    row.note = f.note;
    verdict.pass = verdict.pass && row.pass;
    verdict.rules.push_back(std::move(row));
  };

  absl::StatusOr<std::vector<RuleDef>> top = defs_of(policy.all_attacks, "");
  if (!top.ok()) return top.status();
  for (const RuleDef& def : *top) {
    for (int target : result.targets) {
      // The worst attack on this target: the largest value, a missing value
      // (which fails) above every number.
      const AttackTargetResult* worst = nullptr;
      Figure worst_figure;
      for (const AttackTargetResult& r : result.results) {
        if (r.target != target) continue;
        const Figure f = def.figure(r);
        const bool worse = worst == nullptr ||
                           (std::isnan(f.value) && !std::isnan(worst_figure.value)) ||
                           (!std::isnan(worst_figure.value) && f.value > worst_figure.value);
        if (worse) {
          worst = &r;
          worst_figure = f;
        }
      }
      if (worst != nullptr) add(def, *worst, worst_figure);
    }
  }
  for (const auto& [attack, rules] : policy.per_attack) {
    const std::string prefix = absl::StrCat("attacks.", attack, ".");
    absl::StatusOr<std::vector<RuleDef>> defs = defs_of(rules, prefix);
    if (!defs.ok()) return defs.status();
    const bool present =
        std::any_of(result.results.begin(), result.results.end(),
                    [&](const AttackTargetResult& r) { return r.attack == attack; });
    if (!present) {
      return absl::InvalidArgumentError(absl::StrCat("policy rules attacks.", attack,
                                                     ": the result has no attack '", attack, "'"));
    }
    for (const RuleDef& def : *defs) {
      for (const AttackTargetResult& r : result.results) {
        if (r.attack == attack) add(def, r, def.figure(r));
      }
    }
  }
  return verdict;
}

}  // namespace mia::audit
