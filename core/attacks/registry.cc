#include "core/attacks/registry.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/attacks/baseline_attacks.h"
#include "core/attacks/lira.h"
#include "core/attacks/rmia.h"
#include "core/attacks/sequence_attacks.h"
#include "core/common/quote.h"
#include "core/common/status_macros.h"

namespace mia::attacks {
namespace {

using RunFn = std::function<absl::StatusOr<AttackOutput>(const AttackInput&)>;

// An attack bound to its options: a name, its needs and the scoring function.
class BoundAttack : public Attack {
 public:
  BoundAttack(std::string name, AttackNeeds needs, RunFn run)
      : name_(std::move(name)), needs_(needs), run_(std::move(run)) {}
  std::string name() const override { return name_; }
  AttackNeeds needs() const override { return needs_; }
  absl::StatusOr<AttackOutput> Run(const AttackInput& input) const override { return run_(input); }

 private:
  std::string name_;
  AttackNeeds needs_;
  RunFn run_;
};

// The canonical name: the registry name plus every option given, sorted.
std::string CanonicalName(const std::string& name, const std::vector<std::string>& given) {
  return given.empty() ? name : absl::StrCat(name, ":", absl::StrJoin(given, ":"));
}

absl::StatusOr<std::unique_ptr<Attack>> MakeLira(AttackOptions& o, bool online,
                                                 const AttackNeeds& needs) {
  LiraOptions lira;
  lira.online = online;
  MIA_ASSIGN_OR_RETURN(std::string variance,
                       o.GetChoice("variance", {"auto", "fixed", "per-example"}));
  MIA_ASSIGN_OR_RETURN(std::string center, o.GetChoice("center", {"mean", "median"}));
  lira.variance = variance == "fixed"         ? LiraOptions::Variance::kFixed
                  : variance == "per-example" ? LiraOptions::Variance::kPerExample
                                              : LiraOptions::Variance::kAuto;
  lira.center = center == "median" ? LiraOptions::Center::kMedian : LiraOptions::Center::kMean;
  std::vector<std::string> given;
  if (variance != "auto") given.push_back("variance=" + variance);
  if (center != "mean") given.push_back("center=" + center);
  return std::make_unique<BoundAttack>(
      CanonicalName(online ? "lira" : "lira-offline", given), needs,
      [lira](const AttackInput& in) { return LiraAttack(in, lira); });
}

absl::StatusOr<std::unique_ptr<Attack>> MakeRmia(AttackOptions& o, bool online,
                                                 const AttackNeeds& needs) {
  RmiaOptions rmia;
  rmia.online = online;
  MIA_ASSIGN_OR_RETURN(rmia.gamma, o.GetDouble("gamma", 1.0, 1e-12, 1e12));
  std::vector<std::string> given;
  if (rmia.gamma != 1.0) given.push_back(absl::StrCat("gamma=", rmia.gamma));
  if (!online) {
    MIA_ASSIGN_OR_RETURN(rmia.a, o.GetOptionalDouble("a", 0.0, 1.0));
    if (rmia.a.has_value()) given.push_back(absl::StrCat("a=", *rmia.a));
  }
  return std::make_unique<BoundAttack>(
      CanonicalName(online ? "rmia" : "rmia-offline", given), needs,
      [rmia](const AttackInput& in) { return RmiaAttack(in, rmia); });
}

absl::StatusOr<std::unique_ptr<Attack>> MakeMinK(AttackOptions& o, bool plus_plus,
                                                 const AttackNeeds& needs) {
  MIA_ASSIGN_OR_RETURN(const double k, o.GetDouble("k", 0.2, 0.0, 1.0));
  const std::string base = plus_plus ? "min-k++" : "min-k";
  if (!(k > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("attack '", base, "': option k must be in (0, 1]"));
  }
  std::vector<std::string> given;
  if (k != 0.2) given.push_back(absl::StrCat("k=", k));
  RunFn run = plus_plus ? RunFn([k](const AttackInput& in) { return MinKPlusPlusAttack(in, k); })
                        : RunFn([k](const AttackInput& in) { return MinKAttack(in, k); });
  return std::make_unique<BoundAttack>(CanonicalName(base, given), needs, std::move(run));
}

std::vector<AttackInfo> BuildCatalog() {
  std::vector<AttackInfo> c;
  auto simple = [](std::string name, RunFn fn, AttackNeeds needs) {
    return [name, fn, needs](AttackOptions&) -> absl::StatusOr<std::unique_ptr<Attack>> {
      return std::make_unique<BoundAttack>(name, needs, fn);
    };
  };
  AttackNeeds loss{SignalKind::kLoss, false, false, false};
  c.push_back({"loss",
               {},
               "LOSS: score = -loss of the target (Yeom et al.)",
               "",
               loss,
               simple("loss", LossAttack, loss)});
  AttackNeeds pop{SignalKind::kProb, false, false, true};
  c.push_back({"population",
               {"attack-p"},
               "Attack-P: rank of the target's p(x) among population points",
               "",
               pop,
               simple("population", PopulationAttack, pop)});
  AttackNeeds ref{SignalKind::kProb, true, false, false};
  c.push_back({"reference",
               {"attack-r"},
               "Attack-R: fraction of OUT references with lower p(x) than the target",
               "",
               ref,
               simple("reference", ReferenceAttack, ref)});
  const std::string lira_help =
      "variance=auto|fixed|per-example (auto: fixed below 32 references a side); "
      "center=mean|median";
  AttackNeeds lira_on{SignalKind::kLogitScaled, true, true, false, /*min_per_side=*/2};
  c.push_back({"lira",
               {"lira-online"},
               "LiRA online: Gaussian likelihood ratio IN vs OUT",
               lira_help,
               lira_on,
               [lira_on](AttackOptions& o) { return MakeLira(o, true, lira_on); }});
  AttackNeeds lira_off{SignalKind::kLogitScaled, true, false, false, /*min_per_side=*/2};
  c.push_back({"lira-offline",
               {},
               "LiRA offline: (phi - mu_out) / s_out",
               lira_help,
               lira_off,
               [lira_off](AttackOptions& o) { return MakeLira(o, false, lira_off); }});
  AttackNeeds rmia_on{SignalKind::kProb, true, true, true};
  c.push_back({"rmia",
               {"rmia-online"},
               "RMIA online: p(x) ratio to all references, compared with population points",
               "gamma=<number > 0> (1)",
               rmia_on,
               [rmia_on](AttackOptions& o) { return MakeRmia(o, true, rmia_on); }});
  AttackNeeds rmia_off{SignalKind::kProb, true, false, true};
  c.push_back({"rmia-offline",
               {},
               "RMIA offline: OUT references only, a tuned on a reference model",
               "gamma=<number > 0> (1); a=<0..1> (tuned on references)",
               rmia_off,
               [rmia_off](AttackOptions& o) { return MakeRmia(o, false, rmia_off); }});
  // Sequence attacks (language models; ATTACKS.md, "Sequences"). The
  // classifier attacks above run on texts too, on the sequence loss.
  c.push_back({"zlib",
               {},
               "zlib: -loss of the target over the zlib-compressed size of the text (texts)",
               "",
               kZlibNeeds,
               simple("zlib", ZlibAttack, kZlibNeeds)});
  const std::string k_help = "k=<0..1, > 0> (0.2): the fraction of positions averaged";
  c.push_back({"min-k",
               {"mink"},
               "Min-K%: mean of the k T lowest token log-probs of the target",
               k_help,
               kMinKNeeds,
               [](AttackOptions& o) { return MakeMinK(o, false, kMinKNeeds); }});
  c.push_back({"min-k++",
               {"mink++"},
               "Min-K%++: mean of the k T lowest standardized token log-probs of the target",
               k_help,
               kMinKPlusPlusNeeds,
               [](AttackOptions& o) { return MakeMinK(o, true, kMinKPlusPlusNeeds); }});
  c.push_back({"lm-reference",
               {"reference-loss"},
               "Reference loss: mean loss of the OUT references minus the target's loss",
               "",
               kLmReferenceNeeds,
               simple("lm-reference", LmReferenceAttack, kLmReferenceNeeds)});
  return c;
}

}  // namespace

const std::vector<AttackInfo>& AttackCatalog() {
  static const std::vector<AttackInfo>* const kCatalog =
      new std::vector<AttackInfo>(BuildCatalog());
  return *kCatalog;
}

absl::StatusOr<std::unique_ptr<Attack>> MakeAttack(absl::string_view spec) {
  MIA_ASSIGN_OR_RETURN(AttackOptions options, AttackOptions::Parse(spec));
  std::vector<std::string> names;
  for (const AttackInfo& info : AttackCatalog()) {
    names.push_back(info.name);
    bool match = info.name == options.name();
    for (const std::string& alias : info.aliases) match = match || alias == options.name();
    if (!match) continue;
    MIA_ASSIGN_OR_RETURN(std::unique_ptr<Attack> attack, info.make(options));
    MIA_RETURN_IF_ERROR(options.Finish());
    return attack;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown attack ", Quoted(options.name()),
                                                 ": known attacks are ",
                                                 absl::StrJoin(names, ", ")));
}

absl::StatusOr<std::vector<std::unique_ptr<Attack>>> MakeAttacks(absl::string_view specs) {
  std::vector<std::unique_ptr<Attack>> attacks;
  std::set<std::string> seen;
  for (absl::string_view spec : absl::StrSplit(specs, ',')) {
    spec = absl::StripAsciiWhitespace(spec);
    if (spec.empty()) continue;
    MIA_ASSIGN_OR_RETURN(std::unique_ptr<Attack> attack, MakeAttack(spec));
    if (!seen.insert(attack->name()).second) {
      return absl::InvalidArgumentError(absl::StrCat("attack '", attack->name(), "' given twice"));
    }
    attacks.push_back(std::move(attack));
  }
  if (attacks.empty()) return absl::InvalidArgumentError("no attack given");
  return attacks;
}

}  // namespace mia::attacks
