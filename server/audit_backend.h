// What the AuditService does, without gRPC: each method takes the request
// message and returns the response or an absl::Status with a canonical code.
// service.cc adapts it to the callback API (one conversion of the status at
// the edge); tests and tools may call it directly.
//
// Jobs: CreateAudit validates the whole request (spec, request_id, labels,
// priority) and submits to the JobManager, which runs jobs on its own
// workers; nothing here waits for training. Reads come from the manager
// (unfinished jobs, from memory) or the store (listing, finished jobs).
// Files: reports under <data_dir>/jobs/<id>/report, uploads under
// <data_dir>/artifacts/<sha256>.
//
// Thread-safety: every method is safe from any thread at once. An
// ArtifactUpload belongs to one stream and is used by one thread at a time.
#ifndef MIA_SERVER_AUDIT_BACKEND_H_
#define MIA_SERVER_AUDIT_BACKEND_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/common/sha256.h"
#include "core/io/npy.h"
#include "core/jobs/job_manager.h"
#include "core/jobs/job_store.h"
#include "mia/v1/audit.pb.h"
#include "server/auth.h"
#include "server/result_convert.h"
#include "server/scores_page.h"
#include "server/spec_convert.h"
#include "server/result_loader.h"
#include "spdlog/logger.h"

namespace mia::server {

class ServerMetrics;

// The API's limit on the bytes of one message's chunk, both ways: report file
// downloads (FileChunk.data) and uploads (UploadArtifactRequest.chunk).
inline constexpr int64_t kMaxChunkBytes = int64_t{1} << 20;

// The media type of a report file, by its extension (application/octet-stream
// for an unknown one); ListReportFiles and the dashboard's downloads use it.
std::string ReportFileContentType(const std::string& name);

struct BackendOptions {
  // Inputs, uploads, job folders and the model cache (see path_sandbox.h).
  ServerRoots roots;
  // Largest upload accepted, in bytes.
  int64_t max_upload_bytes = int64_t{1} << 30;
  // Most memory one audit may be estimated to need (resolved: never the
  // config's 0); CreateAudit refuses larger estimates. 0 admits everything.
  uint64_t memory_budget_bytes = 0;
  // Decode limits of signals bundles, checked from their headers at
  // CreateAudit (the bundle runner applies the same ones).
  io::ReadLimits bundle_limits;
  // Models a pipeline audit trains at once (its compute threads on a CPU).
  int training_lanes = 1;
};

// One upload being received: bytes go to a temporary file beside the store,
// hashed as they arrive; Commit checks size and SHA-256 and renames the file
// to its content address. Destroying an uncommitted upload removes the file.
class ArtifactUpload {
 public:
  ~ArtifactUpload();
  ArtifactUpload(const ArtifactUpload&) = delete;
  ArtifactUpload& operator=(const ArtifactUpload&) = delete;

  // The next bytes. INVALID_ARGUMENT past the declared size or for more than
  // kMaxChunkBytes at once; RESOURCE_EXHAUSTED naming "artifacts/<sha256>"
  // when the disk is full (or a file-size limit is hit), INTERNAL for other
  // write errors.
  absl::Status Append(absl::string_view bytes);
  // The end of the stream: INVALID_ARGUMENT when fewer bytes than declared
  // arrived or the SHA-256 differs from the header's.
  absl::StatusOr<mia::v1::Artifact> Commit();

  int64_t received() const { return received_; }

 private:
  friend class AuditBackend;
  ArtifactUpload() = default;

  std::string final_path_;
  std::string name_;       // "artifacts/<sha256>": the file as messages name it
  std::string temp_path_;  // empty when the content is already stored
  int fd_ = -1;
  int64_t declared_size_ = 0;
  std::string declared_sha256_;
  int64_t received_ = 0;
  Sha256 hash_;
  bool committed_ = false;
  // Set: a committed upload is put there too (uploads/<sha256>).
  std::shared_ptr<storage::ObjectStore> shared_store_;
  // Set for a restricted caller: Commit records the upload as this tenant's.
  jobs::JobStore* owner_store_ = nullptr;
  std::string owner_tenant_;
};

class AuditBackend {
 public:
  // Not owned: `manager` and `store` (the manager's) must outlive the
  // backend; `metrics` and `logger` may be null.
  AuditBackend(jobs::JobManager* manager, jobs::JobStore* store, ServerMetrics* metrics,
               std::shared_ptr<spdlog::logger> logger, BackendOptions options);

  // For a drain: CreateAudit and UploadArtifact become UNAVAILABLE.
  void StopAccepting() { accepting_ = false; }
  bool accepting() const { return accepting_; }

  // Every method takes the caller (auth.h; the service has authorized it
  // for the method's permission). Tenant scoping is decided here: a caller
  // that does not see all tenants finds only its tenant's audits and
  // uploads; another tenant's is NOT_FOUND with the message of one that does
  // not exist. CreateAudit gives the job the caller's tenant and applies its
  // quotas (RESOURCE_EXHAUSTED naming the quota).
  absl::StatusOr<mia::v1::Audit> CreateAudit(const Caller& caller,
                                             const mia::v1::CreateAuditRequest& request);
  absl::StatusOr<mia::v1::Audit> GetAudit(const Caller& caller,
                                          const mia::v1::GetAuditRequest& request);
  absl::StatusOr<mia::v1::ListAuditsResponse> ListAudits(
      const Caller& caller, const mia::v1::ListAuditsRequest& request);
  absl::StatusOr<mia::v1::Audit> CancelAudit(const Caller& caller,
                                             const mia::v1::CancelAuditRequest& request);
  absl::Status DeleteAudit(const Caller& caller, const mia::v1::DeleteAuditRequest& request);
  absl::StatusOr<mia::v1::ListAuditScoresResponse> ListAuditScores(
      const Caller& caller, const mia::v1::ListAuditScoresRequest& request);
  absl::StatusOr<mia::v1::ListReportFilesResponse> ListReportFiles(
      const Caller& caller, const mia::v1::ListReportFilesRequest& request);
  // OK when the audit exists for the caller (a watch checks once: an
  // audit's tenant never changes).
  absl::Status CheckAudit(const Caller& caller, const std::string& id);

  // The id in "audits/{id}"; INVALID_ARGUMENT for any other shape.
  static absl::StatusOr<std::string> AuditId(absl::string_view name);

  // The latest snapshot of a job for a watch stream.
  struct Snapshot {
    mia::v1::Audit audit;  // in `view`, version = the watch version
    bool terminal = false;
  };
  absl::StatusOr<Snapshot> GetSnapshot(const std::string& id, mia::v1::AuditView view,
                                       bool show_tenant);

  // The path of a report file of a SUCCEEDED audit, confined to its report
  // folder (no other folders, no links out of it). NOT_FOUND for a file the
  // report does not have; FAILED_PRECONDITION before the audit succeeded.
  absl::StatusOr<std::string> ReportFilePath(const Caller& caller,
                                             const mia::v1::GetReportFileRequest& request);

  // Starts an upload from its header. INVALID_ARGUMENT for a bad header;
  // RESOURCE_EXHAUSTED above max_upload_bytes, or above the tenant's quota
  // max_upload_bytes with its earlier uploads; UNAVAILABLE while draining.
  // A restricted caller's committed upload is recorded as its tenant's
  // (JobStore::RecordUpload), so its specs may reference it.
  absl::StatusOr<std::unique_ptr<ArtifactUpload>> BeginUpload(
      const Caller& caller, const mia::v1::ArtifactHeader& header);

  jobs::JobManager* manager() const { return manager_; }

 private:
  // The API form of a snapshot (view resolved by the caller).
  absl::StatusOr<mia::v1::Audit> ToProto(const jobs::JobSnapshot& snapshot,
                                         mia::v1::AuditView view, bool show_tenant);
  // The tenant quotas of CreateAudit: RESOURCE_EXHAUSTED naming the quota.
  absl::Status CheckJobQuota(const Caller& caller);
  // The admission check: RESOURCE_EXHAUSTED (naming the estimate and the
  // budget) when the audit is estimated to need more memory than
  // options_.memory_budget_bytes, or when a bundle's headers declare more
  // than the decode limits; reads only headers and file sizes.
  absl::Status AdmitMemory(const JobSpec& spec) const;
  // The job; NOT_FOUND names it as the API does ("audits/{id} not found"),
  // for one the caller may not see too.
  absl::StatusOr<jobs::JobSnapshot> FindJob(const Caller& caller, const std::string& id);
  // The job, which must be SUCCEEDED (FAILED_PRECONDITION otherwise).
  absl::StatusOr<jobs::JobSnapshot> SucceededJob(const Caller& caller, absl::string_view name);
  // The local report folder of a finished job: its result_dir, or, when that
  // is not on this server, the copy fetched from the shared store into
  // jobs_dir/<id>/report (UNAVAILABLE when the store is down). A report
  // found nowhere gives result_dir, which readers then find missing.
  absl::StatusOr<std::string> LocalReportDir(const jobs::JobRecord& job) const;

  jobs::JobManager* const manager_;
  jobs::JobStore* const store_;
  ServerMetrics* const metrics_;
  const std::shared_ptr<spdlog::logger> logger_;
  const BackendOptions options_;
  ResultCache results_;
  std::atomic<bool> accepting_{true};
  // Held from a tenant's quota count to its Submit, so that two concurrent
  // CreateAudit calls cannot both take the last place.
  absl::Mutex quota_mu_;
};

}  // namespace mia::server

#endif  // MIA_SERVER_AUDIT_BACKEND_H_
