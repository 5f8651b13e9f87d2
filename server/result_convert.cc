#include "server/result_convert.h"

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
#include "server/spec_convert.h"

namespace mia::server {

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
  // A DUCI report read back has no scores.csv (row ids): its X's size.
  out->set_audit_points(result.row_ids.empty() && result.duci.has_value()
                            ? result.duci->candidate_points
                            : static_cast<int64_t>(result.row_ids.size()));
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
  if (result.ramia.has_value()) {
    const audit::RamiaSummary& r = *result.ramia;
    v1::RamiaResult* p = out->mutable_ramia();
    p->set_range_function(r.range_function);
    p->set_sample_size(r.sample_size);
    p->set_trim(r.trim);
    p->set_trimmed_each_end(r.trimmed_each_end);
    p->set_radius(r.radius);
    p->set_num_missing_feats(r.num_missing_feats);
    p->set_ranges(r.ranges);
    p->set_member_ranges(r.member_ranges);
    p->set_non_member_ranges(r.non_member_ranges);
    p->set_population_points(r.population_points);
  }
  for (const audit::DpGuarantee& g : result.dp) {
    v1::DpTargetGuarantee* p = out->add_dp_targets();
    p->set_target(g.target);
    p->set_epsilon(g.epsilon);
    p->set_delta(g.delta);
    p->set_order(g.order);
    p->set_noise_multiplier(g.noise_multiplier);
    p->set_max_grad_norm(g.max_grad_norm);
    p->set_sample_rate(g.sample_rate);
    p->set_steps(g.steps);
  }
  for (const audit::DpBoundCheck& c : result.dp_checks) {
    v1::DpBoundCheck* p = out->add_dp_checks();
    p->set_attack(c.attack);
    p->set_target(c.target);
    p->set_lower_bound(c.lower_bound);
    p->set_lower_bound_delta(c.lower_bound_delta);
    p->set_accountant_epsilon(c.accountant_epsilon);
    p->set_accountant_delta(c.accountant_delta);
    p->set_exceeded(c.exceeded);
  }
  if (result.dp_audit.has_value()) {
    const audit::DpAuditResult& d = *result.dp_audit;
    v1::DpAuditResult* p = out->mutable_dp_audit();
    p->set_canary_dataset(d.canary_dataset);
    p->set_training_alg(d.training_alg);
    p->set_canaries(d.canaries);
    p->set_included(d.included);
    p->set_delta(d.delta);
    p->set_beta(d.beta);
    for (const audit::DpAuditAttackResult& a : d.attacks) {
      v1::DpAuditAttackResult* q = p->add_attacks();
      q->set_attack(a.attack);
      q->set_best(static_cast<int32_t>(a.best));
      for (const audit::DpAuditEntry& e : a.entries) {
        v1::DpAuditGuessResult* g = q->add_entries();
        g->set_k_plus(e.k_plus);
        g->set_k_minus(e.k_minus);
        g->set_guesses(e.guesses);
        g->set_correct(e.correct);
        g->set_epsilon(e.epsilon);
        g->set_chosen_after_looking(e.chosen_after_looking);
      }
    }
    p->set_note(d.note);
  }
  if (result.duci.has_value()) {
    v1::DuciResult* d = out->mutable_duci();
    d->set_candidate_points(result.duci->candidate_points);
    d->mutable_references()->Add(result.duci->references.begin(), result.duci->references.end());
    for (const audit::DuciAttackResult& a : result.duci->attacks) {
      v1::DuciAttackResult* p = d->add_attacks();
      p->set_attack(a.attack);
      p->set_threshold(a.threshold);
      p->set_tpr(a.tpr);
      p->set_fpr(a.fpr);
      p->set_reference_members(a.reference_members);
      p->set_reference_non_members(a.reference_non_members);
      p->set_signal(a.signal);
      p->set_mean_error(a.mean_error);
      p->set_mean_error_clipped(a.mean_error_clipped);
      for (const std::string& w : a.warnings) p->add_warnings(w);
      for (const audit::DuciTargetEstimate& e : a.targets) {
        v1::DuciTargetEstimate* q = p->add_targets();
        q->set_target(e.target);
        q->set_true_fraction(e.true_fraction);
        q->set_estimate(e.estimate);
        q->set_estimate_clipped(e.estimate_clipped);
        q->set_error(e.error);
        q->set_error_clipped(e.error_clipped);
        q->set_points(e.points);
        q->set_excluded(e.excluded);
        q->set_predicted_members(e.predicted_members);
      }
    }
  }
  if (result.policy.has_value()) {
    v1::PolicyVerdict* v = out->mutable_policy();
    v->set_pass(result.policy->pass);
    v->set_verdict(result.policy->pass ? "PASS" : "FAIL");
    v->set_use(result.policy->use);
    for (const audit::PolicyRuleResult& r : result.policy->rules) {
      v1::PolicyRuleResult* p = v->add_rules();
      p->set_rule(r.rule);
      p->set_attack(r.attack);
      p->set_target(r.target);
      if (!std::isnan(r.value)) p->set_value(r.value);
      p->set_limit(r.limit);
      p->set_pass(r.pass);
      p->set_note(r.note);
    }
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

}  // namespace mia::server
