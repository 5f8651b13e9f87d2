#include "core/audit/scoring.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/attacks/registry.h"
#include "core/attacks/sequence_attacks.h"
#include "core/audit/ramia.h"
#include "core/common/random.h"
#include "core/common/status_macros.h"
#include "core/metrics/roc.h"
#include "core/metrics/spread.h"
#include "nlohmann/json.hpp"

namespace mia::audit {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The settings of this scoring run as JSON, echoed into result.json.
std::string SpecJson(const Bundle& bundle, const ScoringOptions& options,
                     const std::vector<int>& targets, const std::vector<double>& fprs) {
  nlohmann::json j;
  j["kind"] = "score_bundle";
  j["bundle"] = {
      {"path", bundle.path},
      {"models", bundle.models()},
      {"points", bundle.points()},
      {"queries", bundle.queries()},
      {"population_points", bundle.population.has_value() ? bundle.population->points() : 0},
      {"input", bundle.language_model() ? "token_logprobs"
                : bundle.audit.has_logits ? "logits"
                                          : "signals:" + attacks::SignalKindName(bundle.audit.kind)}};
  if (bundle.language_model()) {
    j["bundle"]["max_length"] = bundle.tokens->max_length;
    j["bundle"]["token_stats"] = bundle.tokens->has_stats();
    j["bundle"]["texts"] = !bundle.texts.empty();
  }
  j["attacks"] = options.attacks;
  j["targets"] = targets;
  j["temperature"] = options.temperature;
  j["fprs"] = fprs;
  j["bootstrap"] = {{"resamples", options.bootstrap.resamples},
                    {"confidence", options.bootstrap.confidence}};
  j["epsilon"] = {{"delta", options.epsilon.delta},
                  {"beta", options.epsilon.beta},
                  {"selection_fraction", options.epsilon.selection_fraction}};
  j["seed"] = options.seed;
  return j.dump();
}

// Streams of the scoring seed. Metrics' randomness depends on the audit seed
// and the attack's name, never on the attack's position in the list
// (ATTACKS.md, "Corrections").
constexpr uint64_t kReferenceOrderStream = 1;  // which references each point uses
constexpr uint64_t kEpsilonSplitStream = 2;    // one split per target, for all attacks
constexpr uint64_t kBootstrapStream = 3;       // per attack name and target

// FNV-1a: a hash of the attack's name that is the same on every platform.
uint64_t NameHash(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// Metrics of one attack's scores on one target. `selection` is the target's
// epsilon split over all audit points, shared by every attack.
absl::Status FillMetrics(const std::vector<double>& scores, absl::Span<const uint8_t> keep_t,
                         absl::Span<const uint8_t> selection, const ScoringOptions& options,
                         const std::vector<double>& fprs, uint64_t bootstrap_seed,
                         AttackTargetResult* r) {
  std::vector<double> s;
  std::vector<uint8_t> y, sel;
  s.reserve(scores.size());
  y.reserve(scores.size());
  sel.reserve(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) continue;
    s.push_back(scores[i]);
    y.push_back(keep_t[i]);
    sel.push_back(selection[i]);
  }
  for (uint8_t v : y) (v ? r->members : r->non_members) += 1;
  if (r->members == 0 || r->non_members == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attack '", r->attack, "' on target ", r->target, ": after excluding ", r->excluded,
        " unscorable points, no ", r->members == 0 ? "member" : "non-member",
        " is left; check the 'keep' matrix (each point needs OUT references, and IN references "
        "for online attacks)"));
  }
  MIA_ASSIGN_OR_RETURN(r->roc, metrics::ComputeRoc(s, y));
  r->auc = metrics::AreaUnder(r->roc);
  r->tpr_at_fpr = metrics::TprAtFprs(r->roc, fprs);
  if (options.bootstrap.resamples > 0) {
    metrics::BootstrapOptions b = options.bootstrap;
    b.seed = bootstrap_seed;
    b.cancel = options.cancel;
    absl::StatusOr<metrics::BootstrapResult> boot = metrics::BootstrapCi(s, y, fprs, b);
    if (absl::IsCancelled(boot.status())) return boot.status();
    if (boot.ok()) {
      r->auc_ci = boot->auc;
      r->tpr_ci = boot->tpr_at_fpr;
      if (boot->degenerate > 0) {
        r->warnings.push_back(absl::StrCat(
            boot->degenerate, " bootstrap resamples lacked a class and were skipped"));
      }
    } else {
      // Too few points for intervals is a finding about the audit, not a failure.
      const double nan = std::nan("");
      r->auc_ci = {nan, nan};
      r->tpr_ci.assign(fprs.size(), {nan, nan});
      r->warnings.push_back(absl::StrCat("no confidence intervals: ", boot.status().message()));
    }
  } else {
    const double nan = std::nan("");
    r->auc_ci = {nan, nan};
    r->tpr_ci.assign(fprs.size(), {nan, nan});
  }
  absl::StatusOr<metrics::EpsilonBound> eps =
      metrics::EpsilonLowerBoundOnSplit(s, y, sel, options.epsilon);
  if (eps.ok()) {
    r->epsilon = *eps;
  } else {
    r->epsilon.epsilon = std::nan("");
    r->epsilon.delta = options.epsilon.delta;
    r->warnings.push_back(absl::StrCat("no epsilon bound: ", eps.status().message()));
  }
  return absl::OkStatus();
}

// Sequence attacks read what only a language-model bundle holds; each
// refusal names the arrays to add.
absl::Status CheckSequenceNeeds(const Bundle& bundle, const attacks::Attack& attack) {
  const attacks::AttackNeeds needs = attack.needs();
  if (!needs.token_logprobs && !needs.token_stats && !needs.texts) return absl::OkStatus();
  if (!bundle.language_model()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attack '", attack.name(),
        "' is for language models: it needs a bundle with 'token_logprobs' and 'lengths' "
        "(docs/bundle-format.md), this one is of a classifier"));
  }
  if (needs.token_stats && !bundle.tokens->has_stats()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attack '", attack.name(), "' needs token_mean and token_var: add the arrays "
        "'token_mean' and 'token_var' to the bundle"));
  }
  if (needs.texts && bundle.texts.empty() && bundle.text_zlib_sizes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attack '", attack.name(), "' needs texts: add the array 'texts' to the bundle"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AuditResult> ScoreBundle(const Bundle& bundle, const ScoringOptions& options,
                                        const ProgressFn& progress, const RangeGroups* ranges) {
  auto report = [&](const std::string& stage) {
    if (progress) progress(stage);
  };
  MIA_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<attacks::Attack>> attack_list,
                       attacks::MakeAttacks(absl::StrJoin(options.attacks, ",")));
  const std::vector<int> targets = options.targets.empty() ? bundle.targets : options.targets;
  const int m = bundle.models();
  for (int t : targets) {
    if (t < 0 || t >= m) {
      return absl::InvalidArgumentError(
          absl::StrCat("target model ", t, " is outside [0, ", m, ")"));
    }
  }
  if (std::set<int>(targets.begin(), targets.end()).size() != targets.size()) {
    return absl::InvalidArgumentError("a target model is listed twice");
  }
  const std::vector<double> fprs = options.fprs.empty() ? metrics::DefaultFprs() : options.fprs;
  for (double f : fprs) {
    if (!(f >= 0 && f <= 1)) return absl::InvalidArgumentError("every FPR must be in [0, 1]");
  }

  // Which signals, and whether references and population are needed.
  std::vector<attacks::SignalKind> kinds;
  for (const auto& a : attack_list) {
    const attacks::AttackNeeds needs = a->needs();
    if (std::find(kinds.begin(), kinds.end(), needs.signal) == kinds.end()) {
      kinds.push_back(needs.signal);
    }
    if (needs.population && !bundle.population.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "attack '", a->name(), "' needs population points: add ",
          bundle.language_model()
              ? "'population_token_logprobs' (with 'population_lengths')"
              : "'population_logits' (with 'population_labels') or 'population_signals'",
          " to the bundle"));
    }
    MIA_RETURN_IF_ERROR(CheckSequenceNeeds(bundle, *a));
    if (needs.references && m < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "attack '", a->name(), "' needs reference models: the bundle has only one model"));
    }
  }

  AuditResult result;
  result.spec_json = SpecJson(bundle, options, targets, fprs);
  result.seed = options.seed;
  result.bootstrap_resamples = options.bootstrap.resamples;
  result.confidence = options.bootstrap.confidence;
  result.fprs = fprs;
  result.row_ids = bundle.row_ids;
  result.targets = targets;
  const int64_t n = bundle.points();
  // What the metrics are computed on: the audit points, or the ranges.
  int64_t units = n;
  const std::vector<uint8_t>* unit_keep = &bundle.keep;
  if (ranges != nullptr) {
    if (ranges->size < 1 || n % ranges->size != 0 ||
        static_cast<int64_t>(ranges->row_ids.size()) * ranges->size != n ||
        ranges->keep.size() != static_cast<size_t>(m) * ranges->row_ids.size()) {
      return absl::InvalidArgumentError(
          "range groups do not match the bundle's points and models");
    }
    units = static_cast<int64_t>(ranges->row_ids.size());
    unit_keep = &ranges->keep;
    result.row_ids = ranges->row_ids;
  }
  std::vector<std::vector<uint8_t>> selections;  // per target, over all audit points
  for (int t : targets) {
    result.membership.emplace_back(unit_keep->begin() + static_cast<int64_t>(t) * units,
                                   unit_keep->begin() + static_cast<int64_t>(t + 1) * units);
    selections.push_back(metrics::StratifiedSelection(
        result.membership.back(), options.epsilon.selection_fraction,
        DeriveSeed(DeriveSeed(options.seed, kEpsilonSplitStream), static_cast<uint64_t>(t))));
  }

  // Threads for signals and attacks: those of the bootstrap (0: every core).
  const int threads = options.bootstrap.threads > 0
                          ? options.bootstrap.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  Clock::time_point start = Clock::now();
  attacks::SignalSet audit_signals, population_signals;
  MIA_RETURN_IF_ERROR(ComputeSignals(bundle, kinds, options.temperature, &audit_signals,
                                     &population_signals, threads));
  // zlib's compressed sizes, once, when an attack reads them.
  std::vector<int64_t> compressed_sizes;
  for (const auto& a : attack_list) {
    if (!a->needs().texts || !compressed_sizes.empty()) continue;
    if (!bundle.text_zlib_sizes.empty()) {
      compressed_sizes = bundle.text_zlib_sizes;
    } else {
      MIA_ASSIGN_OR_RETURN(compressed_sizes, attacks::ZlibCompressedSizes(bundle.texts));
    }
  }
  AddStageTime(&result.timings, "signals", SecondsSince(start));
  report("signals computed");

  for (size_t k = 0; k < attack_list.size(); ++k) {
    const attacks::Attack& attack = *attack_list[k];
    double attack_seconds = 0, metric_seconds = 0;
    for (size_t ti = 0; ti < targets.size(); ++ti) {
      if (options.cancel != nullptr && options.cancel->load()) {
        return absl::CancelledError("scoring cancelled");
      }
      const int t = targets[ti];
      attacks::AttackInput input;
      input.audit = &audit_signals;
      input.population = &population_signals;
      input.keep = bundle.keep;
      input.target = t;
      input.seed = DeriveSeed(options.seed, kReferenceOrderStream);
      if (bundle.language_model()) input.tokens = &*bundle.tokens;
      input.compressed_sizes = compressed_sizes;
      input.threads = threads;
      for (int r = 0; r < m; ++r) {
        if (r != t) input.references.push_back(r);
      }
      start = Clock::now();
      absl::StatusOr<attacks::AttackOutput> out = attack.Run(input);
      attack_seconds += SecondsSince(start);
      if (!out.ok()) {
        return absl::Status(out.status().code(),
                            absl::StrCat("attack '", attack.name(), "' on target ", t, ": ",
                                         out.status().message()));
      }
      AttackTargetResult r;
      r.attack = attack.name() + (ranges != nullptr ? ranges->name_suffix : "");
      r.target = t;
      r.excluded = out->excluded;
      r.chosen = out->chosen;
      r.warnings = out->warnings;
      if (r.excluded > 0) {
        r.warnings.push_back(absl::StrCat(
            r.excluded, " of ", n, " audit points could not be scored (no OUT reference",
            attack.needs().in_references ? " or no IN reference" : "", ") and were excluded"));
      }
      if (ranges != nullptr) {
        out->scores = RangeScores(out->scores, ranges->size, ranges->trim);
        r.excluded = std::count_if(out->scores.begin(), out->scores.end(),
                                   [](double v) { return std::isnan(v); });
        if (r.excluded > 0) {
          r.warnings.push_back(absl::StrCat(r.excluded, " of ", units,
                                            " ranges held a point that could not be scored and "
                                            "were excluded"));
        }
      }
      start = Clock::now();
      const uint64_t bootstrap_seed = DeriveSeed(
          DeriveSeed(DeriveSeed(options.seed, kBootstrapStream), NameHash(r.attack)),
          static_cast<uint64_t>(t));
      MIA_RETURN_IF_ERROR(FillMetrics(out->scores, absl::MakeConstSpan(result.membership[ti]),
                                      selections[ti], options, fprs, bootstrap_seed, &r));
      metric_seconds += SecondsSince(start);
      r.scores = std::move(out->scores);
      result.results.push_back(std::move(r));
      report(absl::StrCat("attack ", attack.name(), ": target ", ti + 1, " of ", targets.size()));
    }
    AddStageTime(&result.timings, "attack", attack_seconds);
    AddStageTime(&result.timings, "metrics", metric_seconds);

    AttackSummary summary;
    summary.attack = attack.name() + (ranges != nullptr ? ranges->name_suffix : "");
    std::vector<double> aucs;
    std::vector<std::vector<double>> tprs(fprs.size());
    for (const AttackTargetResult& r : result.results) {
      if (r.attack != summary.attack) continue;
      aucs.push_back(r.auc);
      for (size_t f = 0; f < fprs.size(); ++f) {
        if (r.tpr_at_fpr[f].resolved) tprs[f].push_back(r.tpr_at_fpr[f].tpr);
      }
    }
    summary.auc = metrics::Summarize(aucs);
    for (const auto& v : tprs) summary.tpr_at_fpr.push_back(metrics::Summarize(v));
    result.summaries.push_back(std::move(summary));
  }
  return result;
}

}  // namespace mia::audit
