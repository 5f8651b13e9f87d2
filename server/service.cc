#include "server/service.h"

#include <grpcpp/support/error_details.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "core/common/sha256.h"
#include "google/rpc/status.pb.h"
#include "server/json_log.h"
#include "server/metrics.h"
#include "server/result_convert.h"
#include "server/spec_convert.h"

namespace mia::server {

namespace v1 = ::mia::v1;

// ---------------------------------------------------------------------------
// Status conversion.

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share the canonical numbering.
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  const absl::optional<absl::Cord> bad_request = status.GetPayload(kBadRequestTypeUrl);
  if (!bad_request.has_value()) return grpc::Status(code, message);
  // The payload already is a serialized google.rpc.BadRequest (spec_convert.h).
  google::rpc::Status details;
  details.set_code(static_cast<int32_t>(status.code()));
  details.set_message(message);
  google::protobuf::Any* any = details.add_details();
  any->set_type_url(kBadRequestTypeUrl);
  any->set_value(std::string(*bad_request));
  grpc::Status out;
  // Sent as grpc-status-details-bin; fails only for a null target.
  grpc::SetErrorDetails(details, &out);
  return out;
}

// ---------------------------------------------------------------------------
// Watch streams.

// The state of one WatchAudit stream, shared (by shared_ptr) between its
// reactor, the JobManager subscription and the WatchHub, so that a late
// callback from either finds a live object after the reactor is gone.
//
// Every decision is made in Pump() under mu_; the resulting gRPC operation
// (StartWrite or Finish) is started after mu_ is released, because gRPC may
// run reactions (even OnDone) on the calling thread. At most one write is in
// flight; Finish happens only when none is.
class WatchStream {
 public:
  WatchStream(AuditBackend* backend, std::string id, int64_t from_version, v1::AuditView view,
              bool show_tenant, absl::Duration heartbeat)
      : backend_(backend),
        id_(std::move(id)),
        view_(view),
        show_tenant_(show_tenant),
        heartbeat_(heartbeat),
        sent_version_(from_version) {}

  const std::string& id() const { return id_; }

  // Once, before Start; the reactor outlives every operation started on it.
  void Bind(grpc::ServerWriteReactor<v1::WatchAuditResponse>* reactor) { reactor_ = reactor; }

  void set_subscription(uint64_t handle) {
    absl::MutexLock lock(&mu_);
    subscription_ = handle;
  }
  uint64_t subscription() const {
    absl::MutexLock lock(&mu_);
    return subscription_;
  }
  grpc::Status final_status() const {
    absl::MutexLock lock(&mu_);
    return final_status_;
  }

  // Subscribed: the first snapshot may go out.
  void Start() {
    {
      absl::MutexLock lock(&mu_);
      started_ = true;
    }
    Pump();
  }

  // The JobManager callback: "job is at version v". Cheap, never blocks on
  // the client.
  void Notify(int64_t version) {
    {
      absl::MutexLock lock(&mu_);
      notified_version_ = std::max(notified_version_, version);
    }
    Pump();
  }

  // The heartbeat timer.
  void Tick(absl::Time now) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || in_flight_ || now - last_write_ < heartbeat_) return;
      heartbeat_due_ = true;
    }
    Pump();
  }

  // Ends the stream with `status` after the write in flight, if any.
  void End(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (end_requested_) return;
      end_requested_ = true;
      end_status_ = std::move(status);
    }
    Pump();
  }

  // OnWriteDone.
  void WriteDone(bool ok) {
    {
      absl::MutexLock lock(&mu_);
      in_flight_ = false;
      if (!ok && !end_requested_) {
        // The client is gone; the audit carries on.
        end_requested_ = true;
        end_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the watch stream was closed");
      }
    }
    Pump();
  }

 private:
  enum class Action { kNone, kWrite, kFinish };

  void Pump() {
    Action action = Action::kNone;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (!started_ || finished_ || in_flight_) return;
      if (end_requested_) {
        action = Action::kFinish;
        status = end_status_;
      } else if (terminal_sent_) {
        action = Action::kFinish;  // the terminal snapshot was written
      } else if (first_ || notified_version_ > sent_version_) {
        first_ = false;
        // Read the snapshot now, when it can be sent: whatever happened
        // since the last write collapses into this one.
        absl::StatusOr<AuditBackend::Snapshot> snapshot = backend_->GetSnapshot(id_, view_, show_tenant_);
        if (!snapshot.ok()) {
          action = Action::kFinish;
          status = ToGrpcStatus(snapshot.status());
        } else if (snapshot->audit.version() > sent_version_) {
          sent_version_ = snapshot->audit.version();
          terminal_sent_ = snapshot->terminal;
          out_.Clear();
          *out_.mutable_snapshot() = std::move(snapshot->audit);
          action = Action::kWrite;
        } else if (snapshot->terminal) {
          action = Action::kFinish;  // the client already has the final version
        }
      }
      if (action == Action::kNone && heartbeat_due_) {
        const absl::Time now = absl::Now();
        out_.Clear();
        v1::Heartbeat* heartbeat = out_.mutable_heartbeat();
        const int64_t seconds = absl::ToUnixSeconds(now);
        heartbeat->mutable_time()->set_seconds(seconds);
        heartbeat->mutable_time()->set_nanos(
            static_cast<int32_t>(absl::ToInt64Nanoseconds(now - absl::FromUnixSeconds(seconds))));
        heartbeat->set_version(sent_version_);
        action = Action::kWrite;
      }
      if (action == Action::kWrite) {
        in_flight_ = true;
        heartbeat_due_ = false;
        last_write_ = absl::Now();
      } else if (action == Action::kFinish) {
        finished_ = true;
        final_status_ = status;
      }
    }
    // The reactor stays valid: nobody finishes while our write is in flight,
    // and only this call finishes once finished_ is set.
    if (action == Action::kWrite) reactor_->StartWrite(&out_);
    if (action == Action::kFinish) reactor_->Finish(std::move(status));
  }

  AuditBackend* const backend_;
  const std::string id_;
  const v1::AuditView view_;
  const bool show_tenant_;
  const absl::Duration heartbeat_;
  grpc::ServerWriteReactor<v1::WatchAuditResponse>* reactor_ = nullptr;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool first_ ABSL_GUARDED_BY(mu_) = true;  // the current snapshot is still to be read
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool heartbeat_due_ ABSL_GUARDED_BY(mu_) = false;
  bool terminal_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool end_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  int64_t sent_version_ ABSL_GUARDED_BY(mu_);  // the client has everything up to it
  int64_t notified_version_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_write_ ABSL_GUARDED_BY(mu_) = absl::Now();
  uint64_t subscription_ ABSL_GUARDED_BY(mu_) = 0;
  // The message being written; untouched while in_flight_.
  v1::WatchAuditResponse out_;
};

// Every open watch stream, the watcher limit, and one timer thread for all
// heartbeats (not a thread per stream). Thread-safe; streams are called
// without the hub's lock held, since a call may finish a stream and its
// OnDone then calls Remove.
class WatchHub {
 public:
  WatchHub(absl::Duration heartbeat, int max_watchers, ServerMetrics* metrics)
      : heartbeat_(heartbeat), max_watchers_(max_watchers), metrics_(metrics) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~WatchHub() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  absl::Status Add(const std::shared_ptr<WatchStream>& stream) {
    absl::MutexLock lock(&mu_);
    if (draining_) {
      return absl::UnavailableError("the server is shutting down; watch again elsewhere or later");
    }
    if (static_cast<int>(streams_.size()) >= max_watchers_) {
      return absl::ResourceExhaustedError(absl::StrCat("too many watch streams (", max_watchers_,
                                                       " open); retry later or poll GetAudit"));
    }
    streams_[stream.get()] = stream;
    if (metrics_ != nullptr) metrics_->SetWatchStreams(static_cast<int64_t>(streams_.size()));
    return absl::OkStatus();
  }

  void Remove(const WatchStream* stream) {
    absl::MutexLock lock(&mu_);
    streams_.erase(stream);
    if (metrics_ != nullptr) metrics_->SetWatchStreams(static_cast<int64_t>(streams_.size()));
  }

  void Drain() {
    std::vector<std::shared_ptr<WatchStream>> streams;
    {
      absl::MutexLock lock(&mu_);
      draining_ = true;
      for (const auto& [key, stream] : streams_) streams.push_back(stream);
    }
    for (const auto& stream : streams) {
      stream->End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "the server is shutting down; watch again with from_version set "
                               "to the last version received"));
    }
  }

  int size() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(streams_.size());
  }

 private:
  void Loop() {
    // Checking often enough that a heartbeat is at most a quarter interval
    // late, but never spinning.
    const absl::Duration tick =
        std::clamp(heartbeat_ / 4, absl::Milliseconds(10), absl::Seconds(1));
    absl::MutexLock lock(&mu_);
    while (!stop_) {
      const auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_; };
      mu_.AwaitWithTimeout(absl::Condition(&stopping), tick);
      if (stop_) break;
      std::vector<std::shared_ptr<WatchStream>> streams;
      streams.reserve(streams_.size());
      for (const auto& [key, stream] : streams_) streams.push_back(stream);
      mu_.Unlock();
      const absl::Time now = absl::Now();
      for (const auto& stream : streams) stream->Tick(now);
      streams.clear();  // drop references before retaking the lock
      mu_.Lock();
    }
  }

  const absl::Duration heartbeat_;
  const int max_watchers_;
  ServerMetrics* const metrics_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  std::map<const WatchStream*, std::shared_ptr<WatchStream>> streams_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

class AuditServiceImpl::WatchReactor final
    : public grpc::ServerWriteReactor<v1::WatchAuditResponse> {
 public:
  WatchReactor(AuditServiceImpl* service, grpc::CallbackServerContext* context,
               const v1::WatchAuditRequest& request)
      : service_(service), context_(context) {
    absl::StatusOr<Caller> caller = service->Authorize(context, Permission::kRead);
    if (!caller.ok()) {
      FinishEarly(caller.status());
      return;
    }
    absl::StatusOr<std::string> id = AuditBackend::AuditId(request.name());
    if (!id.ok()) {
      FinishEarly(id.status());
      return;
    }
    tenant_ = caller->tenant;
    // The audit's tenant never changes: one check covers the whole stream.
    if (absl::Status visible = service->backend_->CheckAudit(*caller, *id); !visible.ok()) {
      FinishEarly(visible);
      return;
    }
    if (request.from_version() < 0) {
      FinishEarly(absl::InvalidArgumentError("from_version: must be >= 0"));
      return;
    }
    const v1::AuditView view =
        request.view() == v1::AUDIT_VIEW_BASIC ? v1::AUDIT_VIEW_BASIC : v1::AUDIT_VIEW_FULL;
    auto stream = std::make_shared<WatchStream>(service->backend_, *id, request.from_version(),
                                                view, caller->SeesAllTenants(),
                                                service->options_.heartbeat);
    stream->Bind(this);
    const absl::Status added = service->hub_->Add(stream);
    if (!added.ok()) {
      FinishEarly(added);
      return;
    }
    stream_ = stream;
    // Subscribe before the first read, so no change falls in between.
    std::weak_ptr<WatchStream> weak = stream;
    stream->set_subscription(service->backend_->manager()->Subscribe(
        *id, [weak](const std::string& /*id*/, int64_t version) {
          if (std::shared_ptr<WatchStream> s = weak.lock()) s->Notify(version);
        }));
    stream->Start();
  }

  void OnWriteDone(bool ok) override {
    const std::shared_ptr<WatchStream> stream = stream_;  // outlives a Finish inside
    stream->WriteDone(ok);
  }

  void OnCancel() override {
    const std::shared_ptr<WatchStream> stream = stream_;
    if (stream != nullptr) {
      stream->End(grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the watch"));
    }
  }

  void OnDone() override {
    if (stream_ != nullptr) {
      service_->backend_->manager()->Unsubscribe(stream_->subscription());
      service_->hub_->Remove(stream_.get());
      const grpc::Status status = stream_->final_status();
      service_->Record(
          context_, "WatchAudit",
          absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message()),
          "audits/" + stream_->id(), tenant_);
    } else {
      service_->Record(context_, "WatchAudit", early_status_, "", tenant_);
    }
    delete this;
  }

 private:
  void FinishEarly(const absl::Status& status) {
    early_status_ = status;
    Finish(ToGrpcStatus(status));
  }

  AuditServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  std::shared_ptr<WatchStream> stream_;  // null when the stream never started
  absl::Status early_status_;
  std::string tenant_;  // the caller's, for the log
};

// ---------------------------------------------------------------------------
// Report file download.

class AuditServiceImpl::FileReactor final : public grpc::ServerWriteReactor<v1::FileChunk> {
 public:
  FileReactor(AuditServiceImpl* service, grpc::CallbackServerContext* context,
              const v1::GetReportFileRequest& request)
      : service_(service), context_(context), chunk_bytes_(service->options_.max_chunk_bytes) {
    absl::StatusOr<Caller> caller = service->Authorize(context, Permission::kRead);
    if (!caller.ok()) {
      End(caller.status());
      return;
    }
    tenant_ = caller->tenant;
    absl::StatusOr<std::string> path = service->backend_->ReportFilePath(*caller, request);
    if (!path.ok()) {
      End(path.status());
      return;
    }
    in_.open(*path, std::ios::binary | std::ios::ate);
    if (!in_) {
      End(absl::NotFoundError("the report file could not be opened"));
      return;
    }
    size_ = static_cast<int64_t>(in_.tellg());
    in_.seekg(0);
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      End(absl::CancelledError("the download was closed"));
    } else if (last_) {
      End(absl::OkStatus());
    } else {
      WriteNext();
    }
  }

  void OnDone() override {
    service_->Record(context_, "GetReportFile", status_, "", tenant_);
    delete this;
  }

 private:
  // Reads the next chunk and writes it; the one write in flight.
  void WriteNext() {
    const int64_t n = std::min<int64_t>(chunk_bytes_, size_ - offset_);
    chunk_.Clear();
    chunk_.set_offset(offset_);
    chunk_.set_total_size(size_);
    std::string* data = chunk_.mutable_data();
    data->resize(static_cast<size_t>(n));
    if (n > 0 && !in_.read(data->data(), n)) {
      End(absl::DataLossError("the report file changed while it was read"));
      return;
    }
    hash_.Update(*data);
    offset_ += n;
    if (offset_ >= size_) {
      last_ = true;
      chunk_.set_sha256(hash_.HexDigest());
    }
    StartWrite(&chunk_);
  }

  void End(const absl::Status& status) {
    status_ = status;
    Finish(ToGrpcStatus(status));
  }

  AuditServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  const int64_t chunk_bytes_;
  std::ifstream in_;
  int64_t size_ = 0;
  int64_t offset_ = 0;
  bool last_ = false;
  Sha256 hash_;
  v1::FileChunk chunk_;
  absl::Status status_;
  std::string tenant_;  // the caller's, for the log
};

// ---------------------------------------------------------------------------
// Upload.

class AuditServiceImpl::UploadReactor final
    : public grpc::ServerReadReactor<v1::UploadArtifactRequest> {
 public:
  UploadReactor(AuditServiceImpl* service, grpc::CallbackServerContext* context,
                v1::Artifact* response)
      : service_(service), context_(context), response_(response) {
    absl::StatusOr<Caller> caller = service->Authorize(context, Permission::kWrite);
    if (!caller.ok()) {
      End(caller.status());
      return;
    }
    caller_ = *std::move(caller);
    if (!service->backend_->accepting()) {
      End(absl::UnavailableError("the server is shutting down and accepts no uploads"));
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // End of the stream, or the call broke off.
      if (cancelled_.load()) {
        End(absl::CancelledError("the upload was cancelled"));
      } else if (upload_ == nullptr) {
        End(absl::InvalidArgumentError("the upload ended before its header"));
      } else {
        absl::StatusOr<v1::Artifact> artifact = upload_->Commit();
        if (artifact.ok()) {
          *response_ = *artifact;
          if (service_->metrics_ != nullptr) service_->metrics_->OnUploadBytes(artifact->size());
          Log(service_->logger_.get(), spdlog::level::info, "artifact stored",
              {{"artifact_id", artifact->artifact_id()}, {"size", artifact->size()}});
        }
        End(artifact.status());
      }
      return;
    }
    absl::Status status;
    if (upload_ == nullptr) {
      if (!request_.has_header()) {
        status = absl::InvalidArgumentError("the first message of an upload must be its header");
      } else {
        absl::StatusOr<std::unique_ptr<ArtifactUpload>> upload =
            service_->backend_->BeginUpload(caller_, request_.header());
        if (upload.ok()) {
          upload_ = *std::move(upload);
        } else {
          status = upload.status();
        }
      }
    } else if (request_.has_header()) {
      status = absl::InvalidArgumentError("an upload has one header, in its first message");
    } else {
      status = upload_->Append(request_.chunk());
    }
    if (!status.ok()) {
      End(status);
      return;
    }
    StartRead(&request_);
  }

  // The read in flight then completes with ok = false and ends the call.
  void OnCancel() override { cancelled_ = true; }

  void OnDone() override {
    service_->Record(context_, "UploadArtifact", status_, "", caller_.tenant);
    delete this;  // an uncommitted upload removes its temporary file
  }

 private:
  void End(const absl::Status& status) {
    status_ = status;
    Finish(ToGrpcStatus(status));
  }

  AuditServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  v1::Artifact* const response_;
  Caller caller_;
  v1::UploadArtifactRequest request_;
  std::unique_ptr<ArtifactUpload> upload_;
  std::atomic<bool> cancelled_{false};
  absl::Status status_;
};

// ---------------------------------------------------------------------------
// Latency of every call, in one place rather than in each adapter and reactor.

namespace {

class RpcTimer final : public grpc::experimental::Interceptor {
 public:
  RpcTimer(ServerMetrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)), start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      Observe();
    }
    methods->Proceed();
  }

  // A call cancelled before it sent a status still counts.
  ~RpcTimer() override { Observe(); }

 private:
  void Observe() {
    if (observed_) return;
    observed_ = true;
    metrics_->OnRpcLatency(method_, absl::ToDoubleSeconds(absl::Now() - start_));
  }

  ServerMetrics* const metrics_;
  const std::string method_;
  const absl::Time start_;
  bool observed_ = false;  // hook points of one call never run concurrently
};

class RpcTimerFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcTimerFactory(ServerMetrics* metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // "/mia.v1.AuditService/GetAudit": the registered methods only, so the
    // label values stay a small fixed set.
    // A call to a method the service lacks still passes here with the
    // client's own path: it must not make a new label value.
    absl::string_view method = info->method() != nullptr ? info->method() : "";
    if (metrics_ == nullptr || !absl::ConsumePrefix(&method, "/mia.v1.AuditService/") ||
        v1::Audit::descriptor()
                ->file()
                ->FindServiceByName("AuditService")
                ->FindMethodByName(std::string(method)) == nullptr) {
      return nullptr;
    }
    return new RpcTimer(metrics_, std::string(method));
  }

 private:
  ServerMetrics* const metrics_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcTimer(
    ServerMetrics* metrics) {
  return std::make_unique<RpcTimerFactory>(metrics);
}

// ---------------------------------------------------------------------------
// The service.

AuditServiceImpl::AuditServiceImpl(AuditBackend* backend, ServerMetrics* metrics,
                                   std::shared_ptr<spdlog::logger> logger, ServiceOptions options)
    : backend_(backend),
      metrics_(metrics),
      logger_(std::move(logger)),
      options_(options),
      hub_(std::make_unique<WatchHub>(options.heartbeat, options.max_watchers, metrics)) {}

AuditServiceImpl::~AuditServiceImpl() = default;

void AuditServiceImpl::BeginDrain() {
  backend_->StopAccepting();
  hub_->Drain();
}

int AuditServiceImpl::active_watchers() const { return hub_->size(); }

absl::StatusOr<Caller> AuditServiceImpl::Authorize(grpc::CallbackServerContext* context,
                                                   Permission permission) const {
  if (options_.auth == nullptr) return Caller();
  std::string authorization;
  const auto& metadata = context->client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    authorization.assign(it->second.data(), it->second.size());
  }
  // A client certificate counts only when TLS verified it (mutual TLS).
  std::vector<std::string> identities;
  const std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const char* property : {GRPC_X509_CN_PROPERTY_NAME, GRPC_X509_SAN_PROPERTY_NAME}) {
      for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
        identities.emplace_back(value.data(), value.size());
      }
    }
  }
  return options_.auth->Authorize(authorization, identities, permission);
}

void AuditServiceImpl::Record(grpc::CallbackServerContext* context, const char* method,
                              const absl::Status& status, const std::string& audit,
                              const std::string& tenant) {
  const std::string code = StatusCodeName(status.code());
  if (metrics_ != nullptr) metrics_->OnRpc(method, code);
  std::string request_id;
  const auto& metadata = context->client_metadata();
  if (auto it = metadata.find("x-request-id"); it != metadata.end()) {
    request_id.assign(it->second.data(), std::min<size_t>(it->second.size(), 128));
  }
  spdlog::level::level_enum level = spdlog::level::debug;
  switch (status.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kCancelled:
      break;
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
      level = spdlog::level::err;
      break;
    default:
      level = spdlog::level::info;
  }
  Log(logger_.get(), level, "rpc",
      {{"method", method},
       {"code", code},
       {"audit", audit.substr(0, 80)},
       {"tenant", tenant},
       {"request_id", request_id},
       {"error", std::string(status.message())}});
}

grpc::ServerUnaryReactor* AuditServiceImpl::Done(grpc::CallbackServerContext* context,
                                                 const char* method, const absl::Status& status,
                                                 const std::string& audit,
                                                 const std::string& tenant) {
  Record(context, method, status, audit, tenant);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Unary adapters: convert, call, convert once.
template <typename T>
static absl::Status Take(absl::StatusOr<T> result, T* response) {
  if (result.ok()) *response = *std::move(result);
  return result.status();
}

// Unary adapters: authorize, convert, call, convert once. A caller that is
// refused never reaches the backend.
#define MIA_AUTHORIZE(method, permission, audit)                                  \
  absl::StatusOr<Caller> caller = Authorize(context, permission);                 \
  if (!caller.ok()) return Done(context, method, caller.status(), audit)

grpc::ServerUnaryReactor* AuditServiceImpl::CreateAudit(grpc::CallbackServerContext* context,
                                                        const v1::CreateAuditRequest* request,
                                                        v1::Audit* response) {
  MIA_AUTHORIZE("CreateAudit", Permission::kWrite, "");
  return Done(context, "CreateAudit", Take(backend_->CreateAudit(*caller, *request), response),
              "", caller->tenant);
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetAudit(grpc::CallbackServerContext* context,
                                                     const v1::GetAuditRequest* request,
                                                     v1::Audit* response) {
  MIA_AUTHORIZE("GetAudit", Permission::kRead, request->name());
  return Done(context, "GetAudit", Take(backend_->GetAudit(*caller, *request), response),
              request->name(), caller->tenant);
}

grpc::ServerUnaryReactor* AuditServiceImpl::ListAudits(grpc::CallbackServerContext* context,
                                                       const v1::ListAuditsRequest* request,
                                                       v1::ListAuditsResponse* response) {
  MIA_AUTHORIZE("ListAudits", Permission::kRead, "");
  return Done(context, "ListAudits", Take(backend_->ListAudits(*caller, *request), response), "",
              caller->tenant);
}

grpc::ServerUnaryReactor* AuditServiceImpl::CancelAudit(grpc::CallbackServerContext* context,
                                                        const v1::CancelAuditRequest* request,
                                                        v1::Audit* response) {
  MIA_AUTHORIZE("CancelAudit", Permission::kWrite, request->name());
  return Done(context, "CancelAudit", Take(backend_->CancelAudit(*caller, *request), response),
              request->name(), caller->tenant);
}

grpc::ServerUnaryReactor* AuditServiceImpl::DeleteAudit(grpc::CallbackServerContext* context,
                                                        const v1::DeleteAuditRequest* request,
                                                        google::protobuf::Empty* /*response*/) {
  MIA_AUTHORIZE("DeleteAudit", Permission::kWrite, request->name());
  return Done(context, "DeleteAudit", backend_->DeleteAudit(*caller, *request), request->name(),
              caller->tenant);
}

grpc::ServerUnaryReactor* AuditServiceImpl::ListAuditScores(
    grpc::CallbackServerContext* context, const v1::ListAuditScoresRequest* request,
    v1::ListAuditScoresResponse* response) {
  MIA_AUTHORIZE("ListAuditScores", Permission::kRead, request->name());
  return Done(context, "ListAuditScores",
              Take(backend_->ListAuditScores(*caller, *request), response), request->name(),
              caller->tenant);
}

grpc::ServerUnaryReactor* AuditServiceImpl::ListReportFiles(
    grpc::CallbackServerContext* context, const v1::ListReportFilesRequest* request,
    v1::ListReportFilesResponse* response) {
  MIA_AUTHORIZE("ListReportFiles", Permission::kRead, request->name());
  return Done(context, "ListReportFiles",
              Take(backend_->ListReportFiles(*caller, *request), response), request->name(),
              caller->tenant);
}

#undef MIA_AUTHORIZE

grpc::ServerWriteReactor<v1::WatchAuditResponse>* AuditServiceImpl::WatchAudit(
    grpc::CallbackServerContext* context, const v1::WatchAuditRequest* request) {
  return new WatchReactor(this, context, *request);
}

grpc::ServerWriteReactor<v1::FileChunk>* AuditServiceImpl::GetReportFile(
    grpc::CallbackServerContext* context, const v1::GetReportFileRequest* request) {
  return new FileReactor(this, context, *request);
}

grpc::ServerReadReactor<v1::UploadArtifactRequest>* AuditServiceImpl::UploadArtifact(
    grpc::CallbackServerContext* context, v1::Artifact* response) {
  return new UploadReactor(this, context, response);
}

}  // namespace mia::server
