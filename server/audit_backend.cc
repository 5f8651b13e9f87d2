#include "server/audit_backend.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/audit/bundle.h"
#include "core/common/file_util.h"
#include "core/common/memory_budget.h"
#include "core/common/sha256.h"
#include "core/common/status_macros.h"
#include "core/pipeline/memory_estimate.h"
#include "server/json_log.h"
#include "server/metrics.h"
#include "server/shared_store.h"

namespace mia::server {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::mia::v1;

constexpr size_t kMaxRequestIdBytes = 128;
constexpr size_t kMaxLabels = 64;
constexpr size_t kMaxLabelBytes = 63;
constexpr int kMaxPriority = 100;

bool IsLabelKey(const std::string& key) {
  if (key.empty() || key.size() > kMaxLabelBytes || key[0] < 'a' || key[0] > 'z') return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// The request fields around the spec; messages never echo the values.
void CheckRequest(const v1::CreateAuditRequest& request, std::vector<FieldViolation>* out) {
  const std::string& id = request.request_id();
  if (id.size() > kMaxRequestIdBytes) {
    out->push_back({"request_id", "at most 128 characters"});
  } else if (!std::all_of(id.begin(), id.end(), [](char c) { return c >= 0x20 && c <= 0x7e; })) {
    out->push_back({"request_id", "only printable ASCII characters"});
  }
  if (request.labels_size() > static_cast<int>(kMaxLabels)) {
    out->push_back({"labels", "at most 64 labels"});
  }
  // Sorted, so the order of problems does not depend on the map's.
  std::vector<std::string> keys;
  for (const auto& [key, value] : request.labels()) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  for (const std::string& key : keys) {
    if (!IsLabelKey(key)) {
      out->push_back({"labels",
                      "keys are 1-63 lowercase letters, digits, '_' or '-', starting "
                      "with a letter"});
      break;
    }
  }
  for (const std::string& key : keys) {
    if (request.labels().at(key).size() > kMaxLabelBytes) {
      out->push_back({"labels", "values are at most 63 characters"});
      break;
    }
  }
  if (request.priority() < -kMaxPriority || request.priority() > kMaxPriority) {
    out->push_back({"priority", "must be in [-100, 100]"});
  }
}

// A report file's digest; a file gone since the listing is NotFound without
// the server's path.
absl::StatusOr<std::string> FileSha256(const std::string& path) {
  absl::StatusOr<std::string> digest = Sha256OfFile(path);
  if (!digest.ok()) return absl::NotFoundError("a report file disappeared");
  return digest;
}

// The API names an audit "audits/{id}"; the job store says "job ... not
// found", which is not a name a client can use.
absl::Status NameNotFound(const absl::Status& status, const std::string& id) {
  if (status.code() != absl::StatusCode::kNotFound) return status;
  return absl::NotFoundError(absl::StrCat("audits/", id, " not found"));
}

// Server paths are no business of a client (and may say more about the host
// than it should know): in messages an audit's folders are named by the
// audit, anything else under the data dir relative to it.
void ReplaceAll(std::string* text, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t at = text->find(from); at != std::string::npos; at = text->find(from, at)) {
    text->replace(at, from.size(), to);
    at += to.size();
  }
}

std::string HideServerPaths(std::string text, const ServerRoots& roots, const std::string& id) {
  if (roots.jobs_dir.empty()) return text;
  const std::string job_dir = (fs::path(roots.jobs_dir) / id).lexically_normal().string();
  const std::string name = absl::StrCat("audits/", id);
  // The report folder alone: as the pipeline's last progress line says it.
  if (text == job_dir + "/report" || text == job_dir + "/report/") {
    return absl::StrCat("report of ", name, " (mia report ", name, " --out DIR)");
  }
  ReplaceAll(&text, job_dir + "/report/", absl::StrCat(name, " report file "));
  ReplaceAll(&text, job_dir + "/", absl::StrCat(name, ": "));
  ReplaceAll(&text, job_dir, name);
  const fs::path data_dir = fs::path(roots.jobs_dir).lexically_normal().parent_path();
  if (!data_dir.empty() && data_dir != data_dir.root_path()) {
    ReplaceAll(&text, data_dir.string() + "/", "<data_dir>/");
  }
  // Inputs as a spec names them: relative to the data root they are under.
  for (const std::string& root : roots.data_roots) {
    const fs::path dir = fs::path(root).lexically_normal();
    if (dir.has_relative_path()) ReplaceAll(&text, (dir / "").string(), "");
  }
  return text;
}

// A failed system call of an upload, naming the artifact as a client knows
// it ("artifacts/<sha256>", not a server path): RESOURCE_EXHAUSTED for a full
// disk or a file-size limit, as for every other write of the server.
absl::Status UploadErrnoStatus(const std::string& name, const char* what) {
  return FileErrnoStatus(errno, name, what);
}

// The store's name of an upload (JobStore::RecordUpload).
std::string UploadDigest(const std::string& sha256_hex) { return "sha256:" + sha256_hex; }

}  // namespace

std::string ReportFileContentType(const std::string& name) {
  const fs::path file(name);
  const std::string ext = file.extension().string();
  if (ext == ".json") return "application/json";
  if (ext == ".csv") return "text/csv";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".html" || ext == ".htm") return "text/html";
  if (ext == ".md") return "text/markdown";
  if (ext == ".log" || ext == ".txt") return "text/plain";
  if (ext == ".npz") return "application/zip";
  return "application/octet-stream";
}

// ---------------------------------------------------------------------------
// Uploads.

ArtifactUpload::~ArtifactUpload() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

absl::Status ArtifactUpload::Append(absl::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(kMaxChunkBytes)) {
    return absl::InvalidArgumentError(absl::StrCat("chunk: ", bytes.size(),
                                                   " bytes in one message; the API allows at "
                                                   "most 1 MiB (",
                                                   kMaxChunkBytes, " bytes) per chunk"));
  }
  if (static_cast<int64_t>(bytes.size()) > declared_size_ - received_) {
    return absl::InvalidArgumentError(absl::StrCat("the upload is longer than the ", declared_size_,
                                                   " bytes its header declared"));
  }
  hash_.Update(bytes);
  received_ += static_cast<int64_t>(bytes.size());
  if (fd_ < 0) return absl::OkStatus();  // already stored: only verify
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return UploadErrnoStatus(name_, "write");
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Artifact> ArtifactUpload::Commit() {
  if (received_ != declared_size_) {
    return absl::InvalidArgumentError(absl::StrCat("the upload ended after ", received_,
                                                   " bytes; its header declared ", declared_size_));
  }
  if (hash_.HexDigest() != declared_sha256_) {
    return absl::InvalidArgumentError(
        "the SHA-256 of the uploaded bytes differs from the header's sha256: the upload was "
        "corrupted or the header is wrong");
  }
  if (fd_ >= 0) {
    // Durable before it is visible under its address.
    if (::fsync(fd_) != 0) return UploadErrnoStatus(name_, "sync");
    if (::close(fd_) != 0) {
      fd_ = -1;
      return UploadErrnoStatus(name_, "close");
    }
    fd_ = -1;
    if (absl::Status s = CommitTempFile(temp_path_, final_path_); !s.ok()) {
      std::string message(s.message());
      ReplaceAll(&message, final_path_, name_);
      return absl::Status(s.code(), message);
    }
  }
  committed_ = true;
  if (shared_store_ != nullptr) {
    // Other replicas read it from there; a client that retries after a
    // failure here re-sends the bytes, which are then verified and put again.
    const absl::Status shared = PublishUpload(*shared_store_, declared_sha256_, final_path_);
    if (!shared.ok()) {
      return absl::Status(shared.code(),
                          absl::StrCat(name_, ": not stored in the shared artifact store (",
                                       absl::StatusCodeToString(shared.code()), "); try again"));
    }
  }
  if (owner_store_ != nullptr) {
    // The bytes are stored; the tenant may reference them once this is too.
    MIA_RETURN_IF_ERROR(
        owner_store_->RecordUpload(owner_tenant_, UploadDigest(declared_sha256_), declared_size_));
  }
  v1::Artifact artifact;
  artifact.set_artifact_id(declared_sha256_);
  artifact.set_size(declared_size_);
  return artifact;
}

// ---------------------------------------------------------------------------
// The backend.

AuditBackend::AuditBackend(jobs::JobManager* manager, jobs::JobStore* store, ServerMetrics* metrics,
                           std::shared_ptr<spdlog::logger> logger, BackendOptions options)
    : manager_(manager),
      store_(store),
      metrics_(metrics),
      logger_(std::move(logger)),
      options_(std::move(options)) {}

absl::StatusOr<std::string> AuditBackend::AuditId(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("name: required (\"audits/{id}\")");
  if (!absl::ConsumePrefix(&name, "audits/") || !jobs::ValidateJobId(name).ok()) {
    return absl::InvalidArgumentError("name: must be \"audits/{id}\" with an id the server issued");
  }
  return std::string(name);
}

absl::StatusOr<v1::Audit> AuditBackend::ToProto(const jobs::JobSnapshot& snapshot,
                                                v1::AuditView view, bool show_tenant) {
  v1::Audit audit;
  MIA_RETURN_IF_ERROR(JobToProto(snapshot.job, nullptr, view, &audit));
  audit.set_version(snapshot.version);
  if (show_tenant) audit.set_tenant(snapshot.job.tenant);
  const std::string& id = snapshot.job.id;
  audit.mutable_progress()->set_detail(
      HideServerPaths(audit.progress().detail(), options_.roots, id));
  if (audit.has_error()) {
    audit.mutable_error()->set_message(
        HideServerPaths(audit.error().message(), options_.roots, id));
  }
  if (snapshot.job.state == jobs::JobState::kSucceeded && !snapshot.job.result_dir.empty()) {
    const absl::StatusOr<std::string> report_dir = LocalReportDir(snapshot.job);
    absl::StatusOr<std::shared_ptr<const v1::AuditResult>> result =
        report_dir.ok() ? results_.Get(*report_dir)
                        : absl::StatusOr<std::shared_ptr<const v1::AuditResult>>(
                              report_dir.status());
    if (result.ok()) {
      *audit.mutable_result() = **result;
      if (view == v1::AUDIT_VIEW_BASIC) {
        for (v1::AttackTargetResult& r : *audit.mutable_result()->mutable_results()) r.clear_roc();
      }
    } else {
      // The audit stays readable; its figures are missing until the files are back.
      Log(logger_.get(), spdlog::level::warn, "result unreadable",
          {{"audit_id", snapshot.job.id}, {"code", StatusCodeName(result.status().code())}});
    }
  }
  return audit;
}

absl::Status AuditBackend::CheckJobQuota(const Caller& caller) {
  const std::pair<const std::optional<int64_t>*, std::pair<jobs::JobState, const char*>> quotas[] =
      {{&caller.quota.max_queued_audits, {jobs::JobState::kPending, "max_queued_audits"}},
       {&caller.quota.max_running_audits, {jobs::JobState::kRunning, "max_running_audits"}}};
  for (const auto& [limit, what] : quotas) {
    if (!limit->has_value()) continue;
    MIA_ASSIGN_OR_RETURN(const int64_t count, store_->CountJobs(caller.tenant, what.first));
    if (count >= **limit) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "tenant quota ", what.second, " (", **limit, ") reached: tenant ", caller.tenant,
          " has ", count, " ", jobs::JobStateName(what.first),
          " audits; retry when some have finished, or ask the operator to raise it"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Audit> AuditBackend::CreateAudit(const Caller& caller,
                                                    const v1::CreateAuditRequest& request) {
  if (!accepting_) {
    return absl::UnavailableError("the server is shutting down and accepts no new audits");
  }
  std::vector<FieldViolation> violations;
  CheckRequest(request, &violations);
  JobSpec spec;
  if (!request.has_spec()) {
    violations.push_back({"spec", "required"});
  } else {
    std::vector<FieldViolation> spec_violations;
    ServerRoots roots = options_.roots;
    if (!caller.SeesAllTenants()) {
      // Only the tenant's own uploads; another's is "no artifact with that id".
      roots.artifact_visible = [this, &caller](const std::string& id) {
        absl::StatusOr<bool> owned = store_->HasUpload(caller.tenant, UploadDigest(id));
        return owned.ok() && *owned;
      };
    }
    absl::StatusOr<JobSpec> converted = SpecFromProto(request.spec(), roots, &spec_violations);
    violations.insert(violations.end(), spec_violations.begin(), spec_violations.end());
    if (converted.ok()) spec = *std::move(converted);
  }
  MIA_RETURN_IF_ERROR(ViolationsToStatus(violations));
  MIA_RETURN_IF_ERROR(AdmitMemory(spec));

  jobs::JobRecord record;
  record.request_id = request.request_id();
  record.spec_json = spec.spec_json;
  record.spec_hash = spec.spec_hash;
  record.priority = request.priority();
  record.labels.insert(request.labels().begin(), request.labels().end());
  record.tenant = caller.tenant;
  jobs::SubmitResult submitted;
  if (caller.quota.max_queued_audits || caller.quota.max_running_audits) {
    absl::MutexLock lock(&quota_mu_);
    MIA_RETURN_IF_ERROR(CheckJobQuota(caller));
    MIA_ASSIGN_OR_RETURN(submitted, manager_->Submit(std::move(record)));
  } else {
    MIA_ASSIGN_OR_RETURN(submitted, manager_->Submit(std::move(record)));
  }
  Log(logger_.get(), spdlog::level::info, submitted.created ? "audit created" : "audit repeated",
      {{"audit_id", submitted.snapshot.job.id},
       {"request_id", request.request_id()},
       {"tenant", caller.tenant},
       {"kind", spec.kind == JobSpec::Kind::kBundle ? "bundle" : "pipeline"}});
  return ToProto(submitted.snapshot, v1::AUDIT_VIEW_FULL, caller.SeesAllTenants());
}

absl::Status AuditBackend::AdmitMemory(const JobSpec& spec) const {
  constexpr absl::string_view kHint = "see --memory_budget_bytes";
  if (spec.kind == JobSpec::Kind::kBundle) {
    const std::string& path = spec.bundle.bundle_path;
    absl::StatusOr<io::NpyInfoMap> arrays = io::ReadArrayInfos(path, options_.bundle_limits);
    if (!arrays.ok()) {
      // The loader's message names the server's path; the client knows the
      // bundle by its field. The limits are flags of this server.
      std::string message(arrays.status().message());
      ReplaceAll(&message, path, "spec.signals_bundle.bundle");
      if (arrays.status().code() == absl::StatusCode::kResourceExhausted) {
        absl::StrAppend(&message, "; see --max_bundle_array_bytes and --max_bundle_total_bytes");
      }
      return absl::Status(arrays.status().code(), message);
    }
    const audit::BundleMemoryEstimate estimate = audit::EstimateBundleMemory(
        *arrays, spec.bundle.scoring.bootstrap, spec.bundle.scoring.fprs.size());
    return CheckMemoryBudget(estimate.bytes, estimate.what, options_.memory_budget_bytes,
                             "the server's", kHint);
  }
  const pipeline::DataShape shape = pipeline::ProbeDataShape(spec.config);
  absl::StatusOr<pipeline::MemoryEstimate> estimate =
      pipeline::EstimatePipelineMemory(spec.config, shape, options_.training_lanes);
  // An architecture that does not take the data fails when the job runs,
  // with the trainer's message; only the budget is decided here.
  if (!estimate.ok()) return absl::OkStatus();
  return CheckMemoryBudget(estimate->bytes, estimate->what, options_.memory_budget_bytes,
                           "the server's", kHint);
}

absl::StatusOr<v1::Audit> AuditBackend::GetAudit(const Caller& caller,
                                                 const v1::GetAuditRequest& request) {
  MIA_ASSIGN_OR_RETURN(const std::string id, AuditId(request.name()));
  MIA_ASSIGN_OR_RETURN(const jobs::JobSnapshot snapshot, FindJob(caller, id));
  return ToProto(snapshot,
                 request.view() == v1::AUDIT_VIEW_BASIC ? v1::AUDIT_VIEW_BASIC
                                                        : v1::AUDIT_VIEW_FULL,
                 caller.SeesAllTenants());
}

absl::StatusOr<v1::ListAuditsResponse> AuditBackend::ListAudits(
    const Caller& caller, const v1::ListAuditsRequest& request) {
  if (request.page_size() < 0) return absl::InvalidArgumentError("page_size: must be >= 0");
  // An unknown number would otherwise filter on nothing and list every state.
  if (!v1::Audit::State_IsValid(request.state())) {
    return absl::InvalidArgumentError(
        absl::StrCat("state: ", request.state(),
                     " is not an Audit.State (STATE_UNSPECIFIED for any state, PENDING, "
                     "RUNNING, SUCCEEDED, FAILED, CANCELLED)"));
  }
  jobs::ListOptions options;
  options.page_size = request.page_size();
  options.page_token = request.page_token();
  options.state = StateFromProto(request.state());
  if (!caller.SeesAllTenants()) options.tenant = caller.tenant;
  MIA_ASSIGN_OR_RETURN(jobs::JobPage page, store_->List(options));
  const v1::AuditView view =
      request.view() == v1::AUDIT_VIEW_FULL ? v1::AUDIT_VIEW_FULL : v1::AUDIT_VIEW_BASIC;
  v1::ListAuditsResponse response;
  for (jobs::JobRecord& job : page.jobs) {
    jobs::JobSnapshot snapshot{job, jobs::WatchVersion(job.version)};
    if (!jobs::IsTerminal(job.state)) {
      // Unfinished jobs: the manager's copy has the latest progress.
      absl::StatusOr<jobs::JobSnapshot> live = manager_->Get(job.id);
      if (live.ok()) snapshot = *std::move(live);
    }
    MIA_ASSIGN_OR_RETURN(*response.add_audits(),
                         ToProto(snapshot, view, caller.SeesAllTenants()));
  }
  response.set_next_page_token(page.next_page_token);
  return response;
}

absl::StatusOr<v1::Audit> AuditBackend::CancelAudit(const Caller& caller,
                                                    const v1::CancelAuditRequest& request) {
  MIA_ASSIGN_OR_RETURN(const std::string id, AuditId(request.name()));
  MIA_RETURN_IF_ERROR(CheckAudit(caller, id));  // the tenant never changes
  absl::StatusOr<jobs::JobSnapshot> cancelled = manager_->Cancel(id);
  if (!cancelled.ok()) return NameNotFound(cancelled.status(), id);
  const jobs::JobSnapshot& snapshot = *cancelled;
  Log(logger_.get(), spdlog::level::info, "audit cancel requested",
      {{"audit_id", id}, {"state", std::string(jobs::JobStateName(snapshot.job.state))}});
  return ToProto(snapshot, v1::AUDIT_VIEW_FULL, caller.SeesAllTenants());
}

absl::Status AuditBackend::DeleteAudit(const Caller& caller,
                                       const v1::DeleteAuditRequest& request) {
  MIA_ASSIGN_OR_RETURN(const std::string id, AuditId(request.name()));
  MIA_ASSIGN_OR_RETURN(const jobs::JobSnapshot snapshot, FindJob(caller, id));
  if (!jobs::IsTerminal(snapshot.job.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("audits/", id, " is ", jobs::JobStateName(snapshot.job.state),
                     "; only finished audits can be deleted (cancel it first)"));
  }
  MIA_RETURN_IF_ERROR(store_->Delete(id));
  if (!snapshot.job.result_dir.empty()) results_.Erase(snapshot.job.result_dir);
  // The record is gone, so the files are garbage whatever happens next; a
  // failure to remove them is logged, not returned.
  std::error_code ec;
  fs::remove_all(fs::path(options_.roots.jobs_dir) / id, ec);
  if (ec) {
    Log(logger_.get(), spdlog::level::warn, "audit files not removed", {{"audit_id", id}});
  }
  if (options_.roots.shared_store != nullptr) {
    absl::Status removed = DeleteSharedReport(*options_.roots.shared_store, id);
    if (!removed.ok()) {
      Log(logger_.get(), spdlog::level::warn, "shared report not removed",
          {{"audit_id", id}, {"code", StatusCodeName(removed.code())}});
    }
  }
  if (metrics_ != nullptr) metrics_->OnJobDeleted(snapshot.job.state);
  Log(logger_.get(), spdlog::level::info, "audit deleted", {{"audit_id", id}});
  return absl::OkStatus();
}

absl::StatusOr<jobs::JobSnapshot> AuditBackend::FindJob(const Caller& caller,
                                                       const std::string& id) {
  absl::StatusOr<jobs::JobSnapshot> snapshot = manager_->Get(id);
  if (!snapshot.ok()) return NameNotFound(snapshot.status(), id);
  // Another tenant's audit does not exist for this caller: the same message.
  if (!caller.CanSee(snapshot->job.tenant)) return NameNotFound(absl::NotFoundError(""), id);
  return snapshot;
}

absl::StatusOr<std::string> AuditBackend::LocalReportDir(const jobs::JobRecord& job) const {
  std::error_code ec;
  if (options_.roots.shared_store == nullptr || fs::is_directory(job.result_dir, ec)) {
    return job.result_dir;
  }
  // Run by another replica (or this one's files are gone): its copy here.
  const std::string local = (fs::path(options_.roots.jobs_dir) / job.id / "report").string();
  if (fs::is_directory(local, ec)) return local;
  const absl::Status fetched = FetchReport(*options_.roots.shared_store, job.id, local);
  if (fetched.ok() || fs::is_directory(local, ec)) return local;
  if (absl::IsNotFound(fetched)) return job.result_dir;
  Log(logger_.get(), spdlog::level::warn, "report not fetched from the shared artifact store",
      {{"audit_id", job.id}, {"code", StatusCodeName(fetched.code())}});
  return absl::Status(fetched.code(),
                      absl::StrCat("audits/", job.id,
                                   ": its report is in the shared artifact store, which cannot be "
                                   "read now; try again"));
}

absl::Status AuditBackend::CheckAudit(const Caller& caller, const std::string& id) {
  return FindJob(caller, id).status();
}

absl::StatusOr<jobs::JobSnapshot> AuditBackend::SucceededJob(const Caller& caller,
                                                             absl::string_view name) {
  MIA_ASSIGN_OR_RETURN(const std::string id, AuditId(name));
  MIA_ASSIGN_OR_RETURN(jobs::JobSnapshot snapshot, FindJob(caller, id));
  if (snapshot.job.state != jobs::JobState::kSucceeded) {
    return absl::FailedPreconditionError(absl::StrCat("audits/", id, " is ",
                                                      jobs::JobStateName(snapshot.job.state),
                                                      "; scores and reports exist once it "
                                                      "SUCCEEDED"));
  }
  if (snapshot.job.result_dir.empty()) {
    return absl::DataLossError(absl::StrCat("audits/", id, " has no report folder"));
  }
  return snapshot;
}

absl::StatusOr<v1::ListAuditScoresResponse> AuditBackend::ListAuditScores(
    const Caller& caller, const v1::ListAuditScoresRequest& request) {
  MIA_ASSIGN_OR_RETURN(const jobs::JobSnapshot job, SucceededJob(caller, request.name()));
  MIA_ASSIGN_OR_RETURN(const std::string report_dir, LocalReportDir(job.job));
  v1::ListAuditScoresResponse response;
  std::optional<int> target;
  if (request.has_target()) target = request.target();
  MIA_RETURN_IF_ERROR(ScoresPage((fs::path(report_dir) / "scores.csv").string(),
                                 request.page_size(), request.page_token(), &response, target));
  return response;
}

absl::StatusOr<v1::ListReportFilesResponse> AuditBackend::ListReportFiles(
    const Caller& caller, const v1::ListReportFilesRequest& request) {
  MIA_ASSIGN_OR_RETURN(const jobs::JobSnapshot job, SucceededJob(caller, request.name()));
  MIA_ASSIGN_OR_RETURN(const std::string report_dir, LocalReportDir(job.job));
  absl::StatusOr<std::vector<std::string>> names = ReportFileNames(report_dir);
  if (!names.ok()) {
    return absl::DataLossError(absl::StrCat("audits/", job.job.id, ": report unreadable"));
  }
  v1::ListReportFilesResponse response;
  std::error_code ec;
  for (const std::string& name : *names) {
    const fs::path path = fs::path(report_dir) / name;
    v1::ReportFile* file = response.add_files();
    file->set_file(name);
    file->set_size_bytes(static_cast<int64_t>(fs::file_size(path, ec)));
    file->set_content_type(ReportFileContentType(name));
    MIA_ASSIGN_OR_RETURN(*file->mutable_sha256(), FileSha256(path.string()));
  }
  for (std::string& name : MissingReportFiles(report_dir, *names)) {
    response.add_missing_files(std::move(name));
  }
  return response;
}

absl::StatusOr<AuditBackend::Snapshot> AuditBackend::GetSnapshot(const std::string& id,
                                                                 v1::AuditView view,
                                                                 bool show_tenant) {
  MIA_ASSIGN_OR_RETURN(const jobs::JobSnapshot snapshot, FindJob(Caller(), id));
  Snapshot out;
  MIA_ASSIGN_OR_RETURN(out.audit, ToProto(snapshot, view, show_tenant));
  out.terminal = jobs::IsTerminal(snapshot.job.state);
  return out;
}

absl::StatusOr<std::string> AuditBackend::ReportFilePath(const Caller& caller,
                                                         const v1::GetReportFileRequest& request) {
  const std::string& file = request.file();
  if (file.empty()) return absl::InvalidArgumentError("file: required");
  if (file.find('/') != std::string::npos || file.find('\\') != std::string::npos ||
      file.find('\0') != std::string::npos || file[0] == '.') {
    return absl::InvalidArgumentError("file: must be a file name as ListReportFiles lists it");
  }
  MIA_ASSIGN_OR_RETURN(const jobs::JobSnapshot job, SucceededJob(caller, request.name()));
  MIA_ASSIGN_OR_RETURN(const std::string report_dir, LocalReportDir(job.job));
  std::error_code ec;
  const fs::path folder = fs::canonical(report_dir, ec);
  if (ec) return absl::DataLossError(absl::StrCat("audits/", job.job.id, ": report unreadable"));
  const fs::path path = fs::canonical(folder / file, ec);
  // canonical resolves links: what it names must still be in the folder.
  if (ec || path.parent_path() != folder || !fs::is_regular_file(path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("audits/", job.job.id, " has no report file of that name"));
  }
  return path.string();
}

absl::StatusOr<std::unique_ptr<ArtifactUpload>> AuditBackend::BeginUpload(
    const Caller& caller, const v1::ArtifactHeader& header) {
  if (!accepting_) {
    return absl::UnavailableError("the server is shutting down and accepts no uploads");
  }
  if (options_.roots.artifact_dir.empty()) {
    return absl::FailedPreconditionError("this server has no artifact store");
  }
  std::vector<FieldViolation> violations;
  if (header.filename().size() > 255 || header.filename().find('/') != std::string::npos) {
    violations.push_back({"header.filename", "at most 255 bytes, no '/'"});
  }
  if (header.size() < 0) violations.push_back({"header.size", "must be >= 0"});
  if (!IsSha256Hex(header.sha256())) {
    violations.push_back({"header.sha256", "must be 64 lowercase hex digits"});
  }
  MIA_RETURN_IF_ERROR(ViolationsToStatus(violations));
  if (header.size() > options_.max_upload_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("header.size: ", header.size(),
                                                     " bytes is above this server's upload limit "
                                                     "of ",
                                                     options_.max_upload_bytes, " bytes"));
  }
  std::unique_ptr<ArtifactUpload> upload(new ArtifactUpload());
  if (caller.restricted) {
    const std::string digest = UploadDigest(header.sha256());
    if (caller.quota.max_upload_bytes) {
      // A second upload of what the tenant already has adds nothing.
      MIA_ASSIGN_OR_RETURN(const bool owned, store_->HasUpload(caller.tenant, digest));
      MIA_ASSIGN_OR_RETURN(const int64_t used, store_->UploadBytes(caller.tenant));
      const int64_t limit = *caller.quota.max_upload_bytes;
      if (!owned && used + header.size() > limit) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "tenant quota max_upload_bytes (", limit, ") reached: tenant ", caller.tenant,
            "'s uploads hold ", used, " bytes and this one has ", header.size()));
      }
    }
    upload->owner_store_ = store_;
    upload->owner_tenant_ = caller.tenant;
  }
  upload->declared_size_ = header.size();
  upload->declared_sha256_ = header.sha256();
  upload->final_path_ = (fs::path(options_.roots.artifact_dir) / header.sha256()).string();
  upload->name_ = absl::StrCat("artifacts/", header.sha256());
  upload->shared_store_ = options_.roots.shared_store;
  std::error_code ec;
  if (fs::exists(upload->final_path_, ec)) return upload;  // stored: verify only
  upload->temp_path_ = UniqueTempPath(upload->final_path_);
  upload->fd_ = ::open(upload->temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (upload->fd_ < 0) {
    upload->temp_path_.clear();
    return UploadErrnoStatus(upload->name_, "create a temporary file");
  }
  return upload;
}

}  // namespace mia::server
