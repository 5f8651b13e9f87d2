// mia.v1.AuditService on the gRPC callback API. Unary methods are few-line
// adapters over AuditBackend (convert the request, call the transport-free
// method, convert the status once with ToGrpcStatus). Streams are reactors:
//
// - WatchAudit: a ServerWriteReactor with at most one write in flight. The
//   JobManager subscription callback only records "changed" and, when no
//   write is in flight, starts one with the latest snapshot (read when the
//   write starts), so a slow reader skips intermediate versions instead of
//   queueing them. One shared timer thread (WatchHub) sends heartbeats to
//   idle streams. The stream finishes OK after the terminal snapshot; a
//   client that goes away only ends its stream, never the audit.
// - GetReportFile: a ServerWriteReactor reading the next chunk in OnWriteDone.
// - UploadArtifact: a ServerReadReactor feeding an ArtifactUpload.
//
// Handlers never wait for training: jobs run on the JobManager's workers;
// what handlers do is a store or file read, or an in-memory lookup.
//
// Thread-safety: gRPC calls the handlers from its own threads concurrently;
// the service's state is the WatchHub (internally locked) and immutable
// settings. BeginDrain may be called from any thread.
#ifndef MIA_SERVER_SERVICE_H_
#define MIA_SERVER_SERVICE_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "mia/v1/audit.grpc.pb.h"
#include "server/audit_backend.h"
#include "server/auth.h"
#include "spdlog/logger.h"

namespace mia::server {

class ServerMetrics;
class WatchHub;

struct ServiceOptions {
  // Heartbeat interval of idle watch streams.
  absl::Duration heartbeat = absl::Seconds(10);
  // Most watch streams open at once; more are RESOURCE_EXHAUSTED.
  int max_watchers = 2048;
  // Largest chunk of a report file per message (the API says at most 1 MiB;
  // the server lowers it to fit its own message size limit).
  int64_t max_chunk_bytes = 1 << 20;
  // Authentication (not owned; must outlive the service); null: none, every
  // caller may do everything (auth.h Caller with restricted = false).
  Authenticator* auth = nullptr;
};

// One conversion at the edge: the absl code becomes the gRPC code (their
// numbers agree) and the message is kept. A google.rpc.BadRequest payload
// (spec_convert.h ViolationsToStatus) travels as grpc-status-details-bin, a
// serialized google.rpc.Status, so clients can list the field violations.
grpc::Status ToGrpcStatus(const absl::Status& status);

// A server interceptor that times every mia.v1.AuditService call, from its
// arrival to its status (for a stream: how long it was open), into
// ServerMetrics::OnRpcLatency by bare method name. Other services (health,
// reflection) are not timed. `metrics` must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcTimer(
    ServerMetrics* metrics);

class AuditServiceImpl final : public mia::v1::AuditService::CallbackService {
 public:
  // `backend` is not owned and must outlive the service; `metrics` may be
  // null; `logger` may be null.
  AuditServiceImpl(AuditBackend* backend, ServerMetrics* metrics,
                   std::shared_ptr<spdlog::logger> logger, ServiceOptions options);
  // Stops the heartbeat thread. Every stream must have finished (the gRPC
  // server is shut down first).
  ~AuditServiceImpl() override;

  // For SIGTERM: no new audits, uploads or watch streams (UNAVAILABLE), and
  // every open watch stream ends (UNAVAILABLE: reconnect elsewhere with the
  // last version seen). Idempotent.
  void BeginDrain();

  // Watch streams open now.
  int active_watchers() const;

  // The one check every method makes first (health and reflection are other
  // services and stay open): the caller of `context`, from its
  // "authorization" metadata or its verified client certificate, allowed
  // `permission`; UNAUTHENTICATED or PERMISSION_DENIED otherwise.
  absl::StatusOr<Caller> Authorize(grpc::CallbackServerContext* context,
                                   Permission permission) const;

  grpc::ServerUnaryReactor* CreateAudit(grpc::CallbackServerContext* context,
                                        const mia::v1::CreateAuditRequest* request,
                                        mia::v1::Audit* response) override;
  grpc::ServerUnaryReactor* GetAudit(grpc::CallbackServerContext* context,
                                     const mia::v1::GetAuditRequest* request,
                                     mia::v1::Audit* response) override;
  grpc::ServerUnaryReactor* ListAudits(grpc::CallbackServerContext* context,
                                       const mia::v1::ListAuditsRequest* request,
                                       mia::v1::ListAuditsResponse* response) override;
  grpc::ServerWriteReactor<mia::v1::WatchAuditResponse>* WatchAudit(
      grpc::CallbackServerContext* context, const mia::v1::WatchAuditRequest* request) override;
  grpc::ServerUnaryReactor* CancelAudit(grpc::CallbackServerContext* context,
                                        const mia::v1::CancelAuditRequest* request,
                                        mia::v1::Audit* response) override;
  grpc::ServerUnaryReactor* DeleteAudit(grpc::CallbackServerContext* context,
                                        const mia::v1::DeleteAuditRequest* request,
                                        google::protobuf::Empty* response) override;
  grpc::ServerUnaryReactor* ListAuditScores(grpc::CallbackServerContext* context,
                                            const mia::v1::ListAuditScoresRequest* request,
                                            mia::v1::ListAuditScoresResponse* response) override;
  grpc::ServerUnaryReactor* ListReportFiles(grpc::CallbackServerContext* context,
                                            const mia::v1::ListReportFilesRequest* request,
                                            mia::v1::ListReportFilesResponse* response) override;
  grpc::ServerWriteReactor<mia::v1::FileChunk>* GetReportFile(
      grpc::CallbackServerContext* context, const mia::v1::GetReportFileRequest* request) override;
  grpc::ServerReadReactor<mia::v1::UploadArtifactRequest>* UploadArtifact(
      grpc::CallbackServerContext* context, mia::v1::Artifact* response) override;

 private:
  // Finishes a unary call: records the RPC metric, logs failures, converts
  // the status.
  grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const char* method,
                                 const absl::Status& status, const std::string& audit = "",
                                 const std::string& tenant = "");
  // Records the outcome of any call (metrics and the log line); `audit` is
  // the resource name the call was about, if any.
  void Record(grpc::CallbackServerContext* context, const char* method, const absl::Status& status,
              const std::string& audit = "", const std::string& tenant = "");

  class WatchReactor;
  class FileReactor;
  class UploadReactor;

  AuditBackend* const backend_;
  ServerMetrics* const metrics_;
  const std::shared_ptr<spdlog::logger> logger_;
  const ServiceOptions options_;
  std::unique_ptr<WatchHub> hub_;
};

}  // namespace mia::server

#endif  // MIA_SERVER_SERVICE_H_
