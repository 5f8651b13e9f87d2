// A running mia-server: the job store, the runners, the JobManager, the gRPC
// server with the AuditService, health and (optionally) reflection, and the
// Prometheus endpoint, built from a ServerConfig. server_main.cc runs one
// until SIGTERM; tests run one in-process on a free port.
//
// Files under config.data_dir: LOCK (held while serving: one server per data
// dir), jobs.db (SQLite), jobs/<id>/ (reports), artifacts/<sha256> (uploads),
// cache/ (models shared by jobs).
//
// The gRPC port is bound exclusively (no SO_REUSEPORT), so a second server on
// the same port fails to start instead of taking half of the calls.
//
// Start-up removes stale temporary files ("*.tmp.<pid>.<n>") under jobs/,
// artifacts/ and cache/, left by writers killed mid-write, and logs rows of
// jobs.db it cannot read (they are skipped; every other job is served).
//
// Health (grpc.health.v1): "" is SERVING from start to shutdown (liveness);
// "mia.v1.AuditService" is SERVING once started, NOT_SERVING while the job
// store is read-only and from the start of a drain (readiness: send no new
// work here). A store that cannot be written is probed every
// store_probe_interval, so readiness returns without waiting for a job write.
//
// Thread-safety: BeginDrain and Drain may be called from any thread (Drain
// from one at a time); accessors are safe at any time.
#ifndef MIA_SERVER_AUDIT_SERVER_H_
#define MIA_SERVER_AUDIT_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/jobs/cluster_queue.h"
#include "core/jobs/data_dir_lock.h"
#include "core/jobs/job_manager.h"
#include "core/jobs/job_store.h"
#include "core/jobs/pipeline_runner.h"
#include "core/jobs/store_probe.h"
#include "server/metrics_http.h"
#include "server/server_config.h"
#include "spdlog/logger.h"

namespace grpc {
class HealthCheckServiceInterface;
class Server;
}  // namespace grpc

namespace mia::server {

class AuditBackend;
class AuditServiceImpl;
class Authenticator;
class ServerMetrics;

// The readiness service name of the health service.
inline constexpr char kReadinessService[] = "mia.v1.AuditService";

struct AuditServerOptions {
  ServerConfig config;
  // Null: a JSON logger on stdout at config.log_level.
  std::shared_ptr<spdlog::logger> logger;
  // For tests: wraps the server's job runner (e.g. to hold jobs at a gate);
  // the returned runner is used instead and receives the real one.
  std::function<std::unique_ptr<jobs::JobRunner>(jobs::JobRunner* real)> wrap_runner;
  // Opens jobs.db for reading only, as SQLite opens a file the server may not
  // write (tests; inspecting a copy of a store).
  bool store_read_only = false;
  // While jobs.db is not writable, a write that changes no job is tried this
  // often, so that readiness returns once the store can be written again
  // even when no job is written (jobs::StoreWritableProbe).
  absl::Duration store_probe_interval = absl::Seconds(15);
};

class AuditServer {
 public:
  // Reads the auth files (auth.h; InvalidArgument naming the flag, file,
  // entry and field when one is bad). Creates the data folders, locks the data dir, opens the store, resumes
  // unfinished jobs and starts serving (with TLS when config.tls_cert_file is
  // set). InvalidArgument for a data root that is not a folder or a TLS file
  // that cannot be read; FailedPrecondition naming the holder when another
  // server holds the data dir; the store's error when it cannot be opened;
  // Unavailable when the address or metrics port cannot be bound (a port
  // another server listens on included), or gRPC cannot load the certificate.
  static absl::StatusOr<std::unique_ptr<AuditServer>> Start(AuditServerOptions options);

  // Drain(now) if none ran, then stops everything; waits for running jobs.
  ~AuditServer();
  AuditServer(const AuditServer&) = delete;
  AuditServer& operator=(const AuditServer&) = delete;

  // The bound gRPC port (the chosen one when the address asked for port 0).
  int port() const { return port_; }
  // "127.0.0.1:<port>"-style target for clients in the same process.
  std::string target() const;
  // The bound metrics port; 0 when metrics are off.
  int metrics_port() const { return metrics_port_; }

  // First step of a drain: readiness NOT_SERVING, no new audits, uploads or
  // watch streams, and every open watch stream ends. Idempotent.
  void BeginDrain();
  // The whole drain (BeginDrain first): running jobs are told to stop and go
  // back to PENDING for the next start, then the gRPC server shuts down
  // (calls still open at `deadline` are cancelled). DeadlineExceeded when
  // jobs were still running at the deadline (they are resumed by the next
  // start; the caller may exit anyway). Later calls return the first result.
  absl::Status Drain(absl::Time deadline);

  ServerMetrics* metrics() const { return metrics_.get(); }
  jobs::JobManager* manager() const { return manager_.get(); }
  // The work queue replicas coordinate through: the PostgreSQL store (config
  // `store` a postgresql:// URL); nullptr with SQLite (one server).
  jobs::ClusterQueue* cluster_queue() const { return cluster_queue_; }
  const ServerConfig& config() const { return options_.config; }

 private:
  explicit AuditServer(AuditServerOptions options);
  absl::Status Init();
  // Sets readiness from the store's writability and the drain; any thread.
  void UpdateReadiness() ABSL_LOCKS_EXCLUDED(readiness_mu_);

  AuditServerOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  int port_ = 0;
  int metrics_port_ = 0;

  // Readiness inputs; the store's callback may run on any thread, jobs still
  // running while the manager is destroyed included: declared before the
  // parts below, so destroyed after them.
  absl::Mutex readiness_mu_;
  grpc::HealthCheckServiceInterface* health_ ABSL_GUARDED_BY(readiness_mu_) = nullptr;
  bool draining_ ABSL_GUARDED_BY(readiness_mu_) = false;
  bool readiness_writable_ ABSL_GUARDED_BY(readiness_mu_) = true;  // last logged

  // Declared in dependency order; destroyed in reverse (the lock last).
  std::unique_ptr<jobs::DataDirLock> data_dir_lock_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<jobs::JobStore> store_;
  jobs::ClusterQueue* cluster_queue_ = nullptr;  // store_ as a queue (PostgreSQL), or null
  std::unique_ptr<jobs::StoreWritableProbe> store_probe_;  // stopped before the store goes
  std::unique_ptr<jobs::JobRunner> bundle_runner_;
  std::unique_ptr<jobs::PipelineConfigRunner> pipeline_runner_;  // null without LibTorch
  std::unique_ptr<jobs::JobRunner> router_;
  std::unique_ptr<jobs::JobRunner> wrapped_runner_;  // tests only
  std::unique_ptr<jobs::JobManager> manager_;
  std::unique_ptr<AuditBackend> backend_;
  std::unique_ptr<Authenticator> auth_;  // null without auth_tokens_file / auth_jwt_keys
  std::unique_ptr<AuditServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsHttpServer> metrics_http_;

  absl::Mutex drain_mu_;
  bool drained_ ABSL_GUARDED_BY(drain_mu_) = false;
  absl::Status drain_status_ ABSL_GUARDED_BY(drain_mu_);
};

}  // namespace mia::server

#endif  // MIA_SERVER_AUDIT_SERVER_H_
