#include "server/audit_server.h"

#include <unistd.h>

#include <cstring>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>
#include <map>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/file_util.h"
#include "core/common/memory_budget.h"
#include "core/common/version.h"
#include "core/io/npy.h"
#include "core/jobs/bundle_runner.h"
#include "core/storage/object_store.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"
#include "server/audit_backend.h"
#include "server/auth.h"
#include "server/job_router.h"
#include "server/json_log.h"
#include "server/dashboard.h"
#include "server/metrics.h"
#include "server/service.h"

#if MIA_WITH_TORCH
#include "core/jobs/pipeline_runner.h"
#include "core/jobs/store_factory.h"
#endif

namespace mia::server {
namespace {

namespace fs = std::filesystem;

// Room for a FileChunk's other fields next to its bytes.
constexpr int64_t kChunkOverheadBytes = 1024;

absl::Status MakeDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir.string(), ": cannot create the folder: ", ec.message()));
  }
  return absl::OkStatus();
}

// The credentials of the gRPC port: plaintext, or TLS from the PEM files of
// the config (read here; only paths ever go to the log).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ListenCredentials(
    const ServerConfig& config) {
  if (config.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  absl::StatusOr<std::string> cert = ReadTlsFile("tls_cert_file", config.tls_cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadTlsFile("tls_key_file", config.tls_key_file);
  if (!key.ok()) return key.status();
  const bool mutual = !config.tls_client_ca_file.empty();
  grpc::SslServerCredentialsOptions ssl(
      mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
             : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (mutual) {
    absl::StatusOr<std::string> ca = ReadTlsFile("tls_client_ca_file", config.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  ssl.pem_key_cert_pairs.push_back({*std::move(key), *std::move(cert)});
  return grpc::SslServerCredentials(ssl);
}

// One line per state change of an audit: what operators need to follow it
// (and to see failures such as a full disk) without any of its data. Error
// messages are left out: GetAudit shows them to the audit's owner.
void LogStateChange(spdlog::logger* logger, const jobs::JobStateChange& change) {
  spdlog::level::level_enum level = spdlog::level::info;
  if (change.to == jobs::JobState::kFailed) level = spdlog::level::warn;
  if (!change.store_error_code.empty()) level = spdlog::level::err;
  Log(logger, level, change.store_error_code.empty() ? "audit state" : "audit state not recorded",
      {{"audit", "audits/" + change.id},
       {"from", change.from ? std::string(jobs::JobStateName(*change.from)) : std::string()},
       {"state", std::string(jobs::JobStateName(change.to))},
       {"stage", change.stage},
       {"duration_seconds", absl::ToDoubleSeconds(change.duration)},
       {"error_code", change.error_code},
       {"store_error_code", change.store_error_code}});
}

// <hostname>-<pid>: unique among live replicas (pod names are unique, and
// two processes on one host differ by pid).
std::string DefaultReplicaId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') std::strcpy(host, "replica");
  return absl::StrCat(host, "-", getpid());
}

}  // namespace

AuditServer::AuditServer(AuditServerOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<AuditServer>> AuditServer::Start(AuditServerOptions options) {
  std::unique_ptr<AuditServer> server(new AuditServer(std::move(options)));
  const absl::Status status = server->Init();
  if (!status.ok()) return status;
  return server;
}

absl::Status AuditServer::Init() {
  const ServerConfig& config = options_.config;
  logger_ =
      options_.logger != nullptr ? options_.logger : MakeJsonLogger("mia-server", config.log_level);

  // Credentials first: a bad tokens file stops the start before anything
  // else happens.
  if (AuthEnabled(config)) {
    AuthOptions auth_options;
    auth_options.tokens_file = config.auth_tokens_file;
    auth_options.jwt_keys = config.auth_jwt_keys;
    auth_options.jwt_issuer = config.auth_jwt_issuer;
    auth_options.jwt_audience = config.auth_jwt_audience;
    absl::StatusOr<std::unique_ptr<Authenticator>> auth =
        Authenticator::Create(std::move(auth_options), logger_);
    if (!auth.ok()) return auth.status();
    auth_ = *std::move(auth);
  }

  // Folders.
  std::error_code ec;
  const fs::path data_dir = fs::absolute(config.data_dir, ec).lexically_normal();
  if (ec) return absl::InvalidArgumentError("data_dir: cannot make the path absolute");
  ServerRoots roots;
  roots.jobs_dir = (data_dir / "jobs").string();
  roots.artifact_dir = (data_dir / "artifacts").string();
  roots.cache_dir = (data_dir / "cache").string();
  for (const std::string& dir : {roots.jobs_dir, roots.artifact_dir, roots.cache_dir}) {
    if (absl::Status s = MakeDir(dir); !s.ok()) return s;
  }
  // SQLite: one server per data dir (a second would requeue and run the jobs
  // this one runs, and the sweep below would delete the temporaries it is
  // writing). PostgreSQL: replicas coordinate through the database and may
  // share the folder, so neither the lock nor the sweep applies.
  const bool postgres = jobs::IsPostgresUrl(config.store);
  if (!postgres) {
    // Held until the server is destroyed.
    absl::StatusOr<std::unique_ptr<jobs::DataDirLock>> lock =
        jobs::DataDirLock::Acquire(data_dir.string());
    if (!lock.ok()) return lock.status();
    data_dir_lock_ = *std::move(lock);
    // Temporary files of writers killed mid-write (kill -9 during an upload or
    // a model save) are never renamed or removed by anyone else and would fill
    // the disk over restarts. Nothing of this server writes yet, and the data
    // dir belongs to one server, so every temporary here is stale.
    for (const std::string& dir : {roots.jobs_dir, roots.artifact_dir, roots.cache_dir}) {
      absl::StatusOr<TempSweep> swept = RemoveTempFiles(dir);
      if (!swept.ok()) {
        Log(logger_.get(), spdlog::level::warn, "stale temporary files not removed",
            {{"folder", fs::path(dir).filename().string()},
             {"code", StatusCodeName(swept.status().code())}});
      } else if (swept->files > 0) {
        Log(logger_.get(), spdlog::level::info, "stale temporary files removed",
            {{"folder", fs::path(dir).filename().string()},
             {"files", swept->files},
             {"bytes", swept->bytes}});
      }
    }
  }
  if (!config.artifact_store.empty()) {
    absl::StatusOr<std::shared_ptr<storage::ObjectStore>> shared = storage::OpenObjectStore(
        config.artifact_store, config.s3_endpoint, config.s3_region);
    if (!shared.ok()) return shared.status();
    roots.shared_store = *std::move(shared);
    // Reachable? A missing object answers NOT_FOUND. The server starts either
    // way: the store is needed only when an artifact moves.
    const absl::StatusOr<bool> probe = roots.shared_store->Exists("mia-probe");
    Log(logger_.get(), probe.ok() ? spdlog::level::info : spdlog::level::warn,
        probe.ok() ? "shared artifact store" : "shared artifact store not reachable",
        {{"artifact_store", roots.shared_store->Describe()},
         {"code", StatusCodeName(probe.status().code())}});
  }
  for (const std::string& root : config.data_roots) {
    const fs::path canonical = fs::canonical(root, ec);
    if (ec || !fs::is_directory(canonical)) {
      return absl::InvalidArgumentError(absl::StrCat("data_roots: ", root, " is not a folder"));
    }
    roots.data_roots.push_back(canonical.string());
  }

  // Jobs: store, runners, manager.
  metrics_ = std::make_unique<ServerMetrics>(MIA_VERSION);
  jobs::OpenJobStoreOptions store_options;
  store_options.sqlite.read_only = options_.store_read_only;
  // Readiness follows the store: a read-only store serves reads, but no new
  // work belongs here.
  store_options.sqlite.on_writable_change = [this](bool) { UpdateReadiness(); };
  store_options.postgres.on_writable_change = [this](bool) { UpdateReadiness(); };
  // SQLite at <data_dir>/jobs.db unless `store` names another file or a
  // PostgreSQL URL (jobs::OpenJobStore tells them apart).
  absl::StatusOr<jobs::OpenedStore> store = jobs::OpenJobStore(
      config.store.empty() ? (data_dir / "jobs.db").string() : config.store, store_options);
  if (!store.ok()) return store.status();
  cluster_queue_ = store->queue;
  store_ = std::move(store->store);
  // The description is the redacted URL (never the password) or the path.
  Log(logger_.get(), spdlog::level::info, "job store opened",
      {{"kind", store->is_postgres ? "postgresql" : "sqlite"},
       {"store", store->description}});
  jobs::StoreProbeOptions probe_options;
  probe_options.interval = options_.store_probe_interval;
  store_probe_ = std::make_unique<jobs::StoreWritableProbe>(store_.get(), probe_options);
  store_probe_->Start();
  {
    // Rows the store cannot read (a state written past its CHECK, by hand)
    // are left out of listings; each is named here once so that an operator
    // can mend or delete it.
    absl::StatusOr<std::vector<std::string>> unreadable = store_->ListUnreadable();
    if (!unreadable.ok()) return unreadable.status();
    for (const std::string& id : *unreadable) {
      Log(logger_.get(), spdlog::level::err, "job unreadable",
          {{"audit_id", id},
           {"reason",
            "its state in jobs.db is not one of PENDING, RUNNING, SUCCEEDED, FAILED, "
            "CANCELLED; it is not listed or resumed"}});
    }
  }
  {
    // The jobs-by-state gauge starts from the store; the manager's hooks
    // keep it current from here on.
    std::map<jobs::JobState, int64_t> counts;
    jobs::ListOptions list;
    list.page_size = jobs::ListOptions::kMaxPageSize;
    do {
      absl::StatusOr<jobs::JobPage> page = store_->List(list);
      if (!page.ok()) return page.status();
      for (const jobs::JobRecord& job : page->jobs) ++counts[job.state];
      list.page_token = page->next_page_token;
    } while (!list.page_token.empty());
    for (const auto& [state, count] : counts) metrics_->SetJobs(state, count);
  }
  io::ReadLimits bundle_limits;
  bundle_limits.max_array_bytes = static_cast<uint64_t>(config.max_bundle_array_bytes);
  bundle_limits.max_total_bytes = static_cast<uint64_t>(config.max_bundle_total_bytes);
  jobs::BundleJobRunnerOptions bundle_options;
  bundle_options.limits = bundle_limits;
  bundle_runner_ = std::make_unique<jobs::BundleJobRunner>(bundle_options);
#if MIA_WITH_TORCH
  jobs::PipelineJobRunnerOptions pipeline_options;
  pipeline_options.artifact_dir = roots.ModelCacheDir();
  pipeline_options.artifact_remote = roots.shared_store;
  pipeline_runner_ = std::make_unique<jobs::PipelineJobRunner>(pipeline_options);
#endif
  router_ = std::make_unique<RoutingJobRunner>(roots, bundle_runner_.get(), pipeline_runner_.get());
  jobs::JobRunner* runner = router_.get();
  if (options_.wrap_runner) {
    wrapped_runner_ = options_.wrap_runner(router_.get());
    runner = wrapped_runner_.get();
  }
  jobs::JobManagerOptions manager_options;
  manager_options.workers = config.max_concurrent_jobs > 0
                                ? std::min(config.workers, config.max_concurrent_jobs)
                                : config.workers;
  manager_options.queue_capacity = config.queue_capacity;
  manager_options.compute_threads_per_worker = config.threads_per_job;
  manager_options.data_dir = data_dir.string();
  manager_options.metrics = metrics_.get();
  if (cluster_queue_ != nullptr) {
    // Replicas on one shared store: audits and their units are claimed from
    // the shared queue (docs/cluster.md).
    manager_options.cluster = cluster_queue_;
    manager_options.replica_id = config.replica_id.empty() ? DefaultReplicaId() : config.replica_id;
    manager_options.lease = absl::Seconds(config.cluster_lease_seconds);
    manager_options.unit_workers = config.unit_workers;
    manager_options.on_unit_error = [logger = logger_](const std::string& job_id,
                                                       const std::string& unit,
                                                       const absl::Status& status) {
      Log(logger.get(), spdlog::level::warn, "unit of work failed",
          {{"audit", "audits/" + job_id},
           {"unit", unit},
           {"code", absl::StatusCodeToString(status.code())},
           {"error", std::string(status.message())}});
    };
  }
  manager_options.on_state_change = [logger = logger_](const jobs::JobStateChange& change) {
    LogStateChange(logger.get(), change);
  };
  manager_ = std::make_unique<jobs::JobManager>(store_.get(), runner, manager_options);
  if (absl::Status s = manager_->Start(); !s.ok()) return s;
  for (const jobs::JobManager::ResumeFailure& failure : manager_->ResumeFailures()) {
    Log(logger_.get(), spdlog::level::err, "job not resumed",
        {{"audit_id", failure.id},
         {"code", StatusCodeName(failure.status.code())},
         {"error", std::string(failure.status.message())}});
  }

  // The service.
  BackendOptions backend_options;
  backend_options.roots = roots;
  backend_options.max_upload_bytes = config.max_upload_bytes;
  backend_options.memory_budget_bytes = config.memory_budget_bytes > 0
                                            ? static_cast<uint64_t>(config.memory_budget_bytes)
                                            : DefaultMemoryBudgetBytes();
  backend_options.bundle_limits = bundle_limits;
  // A CPU job trains as many models at once as it has compute threads.
  backend_options.training_lanes =
      config.threads_per_job > 0
          ? config.threads_per_job
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) /
                            std::max(1, manager_options.workers));
  backend_ = std::make_unique<AuditBackend>(manager_.get(), store_.get(), metrics_.get(), logger_,
                                            backend_options);
  ServiceOptions service_options;
  service_options.heartbeat = absl::Seconds(config.heartbeat_seconds);
  service_options.max_watchers = config.max_watchers;
  service_options.max_chunk_bytes =
      std::clamp<int64_t>(config.max_message_bytes - kChunkOverheadBytes, 1, kMaxChunkBytes);
  service_options.auth = auth_.get();
  service_ =
      std::make_unique<AuditServiceImpl>(backend_.get(), metrics_.get(), logger_, service_options);

  // Both settings apply to servers built afterwards (process-wide in gRPC).
  grpc::EnableDefaultHealthCheckService(true);
  if (config.enable_reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = ListenCredentials(config);
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default on Linux: a second server on the same
  // port would then start and take a share of the calls (NOT_FOUND for the
  // audits the first one holds). Without it the second bind fails.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(config.listen_address, *credentials, &port_);
  builder.RegisterService(service_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(MakeRpcTimer(metrics_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config.max_message_bytes));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    server_.reset();
    if (!config.tls_cert_file.empty()) {
      // gRPC refuses the port too when the certificate or key does not load.
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", config.listen_address,
          " with TLS (in use, not an address, or tls_cert_file and tls_key_file are not a "
          "valid certificate and its matching private key; gRPC's reason is logged above)"));
    }
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config.listen_address, " (in use, or not an address)"));
  }
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health != nullptr) health->SetServingStatus("", true);
  {
    absl::MutexLock lock(&readiness_mu_);
    health_ = health;
  }
  UpdateReadiness();

  if (config.metrics_port > 0) {
    HttpRoutes routes;
    routes.Get("/metrics", MetricsHandler(metrics_->collectable()));
    if (config.dashboard) {
      DashboardOptions dashboard;
      if (auth_ != nullptr) {
        // The gRPC API's check, on the same header; no client certificates
        // on this plain-HTTP port.
        dashboard.authorize = [auth = auth_.get()](const HttpRequest& request) {
          const auto it = request.headers.find("authorization");
          return auth->Authorize(it == request.headers.end() ? "" : it->second, {},
                                 Permission::kRead);
        };
      }
      AddDashboardRoutes(backend_.get(), dashboard, &routes);
    }
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> http =
        MetricsHttpServer::Start(MetricsHost(config), config.metrics_port, std::move(routes));
    if (!http.ok()) return http.status();
    metrics_http_ = std::move(*http);
    metrics_port_ = metrics_http_->port();
  }

  if (auth_ == nullptr && config.tls_cert_file.empty() && ListensBeyondLoopback(config)) {
    Log(logger_.get(), spdlog::level::warn, "open to the network",
        {{"listen_address", config.listen_address},
         {"warning",
          "listening beyond loopback with neither authentication nor TLS: anyone who reaches "
          "the port can read, cancel and delete every audit and read its scores; set "
          "auth_tokens_file or auth_jwt_keys, and tls_cert_file/tls_key_file "
          "(docs/security.md)"}});
  }
  Log(logger_.get(), spdlog::level::info, "serving",
      {{"port", port_},
       {"auth", auth_ != nullptr},
       {"metrics_port", metrics_port_},
       {"dashboard", metrics_port_ > 0 && config.dashboard},
       {"tls", TlsMode(config)},
       {"reflection", config.enable_reflection},
       {"training", pipeline_runner_ != nullptr},
       // The effective budget: the configuration says 0 for "from the machine".
       {"memory_budget_bytes", backend_options.memory_budget_bytes},
       {"resumed_jobs", manager_->ResumedJobs()}});
  return absl::OkStatus();
}

AuditServer::~AuditServer() {
  if (server_ != nullptr) {
    const absl::Status status = Drain(absl::Now());
    (void)status;  // the manager's destructor waits for any job still running
  }
  // Jobs still running write to the store until the manager is gone; the
  // health service goes with server_ before that.
  absl::MutexLock lock(&readiness_mu_);
  health_ = nullptr;
}

void AuditServer::UpdateReadiness() {
  // Read under the lock: two stores' callbacks racing (one write failing,
  // one succeeding) must leave the status of the last change, not the first.
  absl::MutexLock lock(&readiness_mu_);
  const bool writable = store_ != nullptr && store_->writable();
  if (health_ == nullptr) return;
  health_->SetServingStatus(kReadinessService, writable && !draining_);
  if (writable != readiness_writable_) {
    readiness_writable_ = writable;
    // Only the file's name: the message is about the store, not the data.
    Log(logger_.get(), writable ? spdlog::level::info : spdlog::level::err,
        writable ? "job store writable again" : "job store not writable",
        {{"file", "jobs.db"},
         {"readiness", writable && !draining_ ? "SERVING" : "NOT_SERVING"},
         {"effect", writable ? "audits can be created and run again"
                             : "audits are shown but none can be created, cancelled or run "
                               "until jobs.db (and its folder) can be written"}});
  }
}

std::string AuditServer::target() const { return absl::StrCat("127.0.0.1:", port_); }

void AuditServer::BeginDrain() {
  {
    absl::MutexLock lock(&readiness_mu_);
    draining_ = true;
  }
  UpdateReadiness();
  if (service_ != nullptr) service_->BeginDrain();
}

absl::Status AuditServer::Drain(absl::Time deadline) {
  absl::MutexLock lock(&drain_mu_);
  if (drained_) return drain_status_;
  Log(logger_.get(), spdlog::level::info, "draining",
      {{"running_jobs", manager_ != nullptr ? manager_->RunningJobs() : 0}});
  BeginDrain();
  absl::Status status = manager_ != nullptr ? manager_->Drain(deadline) : absl::OkStatus();
  if (server_ != nullptr) {
    // Calls still open at the deadline are cancelled; watch streams have
    // already been told to end.
    server_->Shutdown(absl::ToChronoTime(deadline));
  }
  metrics_http_.reset();
  drained_ = true;
  drain_status_ = status;
  Log(logger_.get(), status.ok() ? spdlog::level::info : spdlog::level::warn, "drained",
      {{"code", StatusCodeName(status.code())},
       {"running_jobs", manager_ != nullptr ? manager_->RunningJobs() : 0}});
  return status;
}

}  // namespace mia::server
