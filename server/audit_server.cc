#include "server/audit_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>
#include <map>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/jobs/bundle_runner.h"
#include "nlohmann/json.hpp"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "server/audit_backend.h"
#include "server/job_router.h"
#include "server/json_log.h"
#include "server/metrics.h"
#include "server/service.h"

#if MIA_WITH_TORCH
#include "core/jobs/pipeline_runner.h"
#endif

namespace mia::server {
namespace {

namespace fs = std::filesystem;

// Room for a FileChunk's other fields next to its bytes.
constexpr int64_t kChunkOverheadBytes = 1024;
constexpr int64_t kMaxChunkBytes = 1 << 20;

absl::Status MakeDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir.string(), ": cannot create the folder: ", ec.message()));
  }
  return absl::OkStatus();
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
  for (const std::string& root : config.data_roots) {
    const fs::path canonical = fs::canonical(root, ec);
    if (ec || !fs::is_directory(canonical)) {
      return absl::InvalidArgumentError(absl::StrCat("data_roots: ", root, " is not a folder"));
    }
    roots.data_roots.push_back(canonical.string());
  }

  // Jobs: store, runners, manager.
  metrics_ = std::make_unique<ServerMetrics>();
  absl::StatusOr<std::unique_ptr<jobs::SqliteJobStore>> store =
      jobs::SqliteJobStore::Open((data_dir / "jobs.db").string());
  if (!store.ok()) return store.status();
  store_ = *std::move(store);
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
  bundle_runner_ = std::make_unique<jobs::BundleJobRunner>();
#if MIA_WITH_TORCH
  jobs::PipelineJobRunnerOptions pipeline_options;
  pipeline_options.artifact_dir = roots.ModelCacheDir();
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
  manager_ = std::make_unique<jobs::JobManager>(store_.get(), runner, manager_options);
  if (absl::Status s = manager_->Start(); !s.ok()) return s;

  // The service.
  BackendOptions backend_options;
  backend_options.roots = roots;
  backend_options.max_upload_bytes = config.max_upload_bytes;
  backend_ = std::make_unique<AuditBackend>(manager_.get(), store_.get(), metrics_.get(), logger_,
                                            backend_options);
  ServiceOptions service_options;
  service_options.heartbeat = absl::Seconds(config.heartbeat_seconds);
  service_options.max_watchers = config.max_watchers;
  service_options.max_chunk_bytes =
      std::clamp<int64_t>(config.max_message_bytes - kChunkOverheadBytes, 1, kMaxChunkBytes);
  service_ =
      std::make_unique<AuditServiceImpl>(backend_.get(), metrics_.get(), logger_, service_options);

  // Both settings apply to servers built afterwards (process-wide in gRPC).
  grpc::EnableDefaultHealthCheckService(true);
  if (config.enable_reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen_address, grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config.max_message_bytes));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    server_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config.listen_address, " (in use, or not an address)"));
  }
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus("", true);
    health->SetServingStatus(kReadinessService, true);
  }

  if (config.metrics_port > 0) {
    const std::string address = absl::StrCat(config.metrics_address, ":", config.metrics_port);
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(address);
    } catch (const std::exception&) {
      return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address));
    }
    exposer_->RegisterCollectable(metrics_->registry());
    const std::vector<int> ports = exposer_->GetListeningPorts();
    metrics_port_ = ports.empty() ? config.metrics_port : ports.front();
  }

  Log(logger_.get(), spdlog::level::info, "serving",
      {{"port", port_},
       {"metrics_port", metrics_port_},
       {"reflection", config.enable_reflection},
       {"training", pipeline_runner_ != nullptr},
       {"resumed_jobs", manager_->QueueDepth()}});
  return absl::OkStatus();
}

AuditServer::~AuditServer() {
  if (server_ != nullptr) {
    const absl::Status status = Drain(absl::Now());
    (void)status;  // the manager's destructor waits for any job still running
  }
}

std::string AuditServer::target() const { return absl::StrCat("127.0.0.1:", port_); }

void AuditServer::BeginDrain() {
  if (server_ != nullptr) {
    grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
    if (health != nullptr) health->SetServingStatus(kReadinessService, false);
  }
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
  if (exposer_ != nullptr) exposer_.reset();
  drained_ = true;
  drain_status_ = status;
  Log(logger_.get(), status.ok() ? spdlog::level::info : spdlog::level::warn, "drained",
      {{"code", StatusCodeName(status.code())},
       {"running_jobs", manager_ != nullptr ? manager_->RunningJobs() : 0}});
  return status;
}

}  // namespace mia::server
