// Every Prometheus metric of mia-server, declared in one place (metrics.cc
// names and documents each family). No per-job labels: label values are a
// small fixed set (states, stages, RPC methods, status codes), so the series
// count stays bounded however many audits run.
//
// ServerMetrics is also the JobManager's JobMetricsSink, so the scheduler
// feeds it without depending on Prometheus. Besides its own families it
// exposes the process (CPU, resident memory, open fds, start time; read from
// /proc at each scrape under prometheus-cpp's standard names) and
// mia_build_info{version}.
//
// Thread-safety: every method is safe from any thread at once (prometheus-cpp
// metrics are atomic and its families lock internally); the sink overrides
// are cheap and never call back into the JobManager.
#ifndef MIA_SERVER_METRICS_H_
#define MIA_SERVER_METRICS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/jobs/job.h"
#include "core/jobs/job_manager.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
class Collectable;
class Registry;
}  // namespace prometheus

namespace mia::server {

// What /proc says about a process, in Prometheus' units.
struct ProcessStats {
  double cpu_seconds = 0;         // user + system CPU time
  double resident_bytes = 0;      // resident set size
  double virtual_bytes = 0;       // virtual memory size
  double start_time_seconds = 0;  // since the Unix epoch
  double open_fds = 0;
};

// Fills the CPU, memory and start time of `stats` from the text of
// /proc/<pid>/stat. `ticks_per_second` is sysconf(_SC_CLK_TCK), `boot_time`
// the "btime" of /proc/stat, `page_bytes` the page size. InvalidArgument
// naming the field when the text is not a stat line (the process name may
// hold spaces and parentheses: fields are counted after the last ')').
absl::Status ParseProcStat(absl::string_view stat, double ticks_per_second, double boot_time,
                           double page_bytes, ProcessStats* stats);

// The calling process's stats from /proc/self (and /proc/stat); the error
// names the file that could not be read or parsed.
absl::Status ReadProcessStats(ProcessStats* stats);

class ServerMetrics final : public jobs::JobMetricsSink {
 public:
  // `version` is what mia_build_info{version} shows.
  explicit ServerMetrics(const std::string& version = "");
  ~ServerMetrics() override;
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // What /metrics serves (metrics_http.h): the registry and the process
  // metrics, read when collected.
  std::shared_ptr<prometheus::Collectable> collectable() const { return collectable_; }
  // The registry of mia's own families (without the process metrics).
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // Sets the jobs-by-state gauge for `state` (at start, from the store; the
  // sink hooks keep it current afterwards).
  void SetJobs(jobs::JobState state, int64_t count);
  // A finished job was deleted (DeleteAudit): it no longer counts.
  void OnJobDeleted(jobs::JobState state);

  // One finished RPC: `method` is the bare method name ("GetAudit"), `code`
  // the canonical code name ("OK", "NOT_FOUND").
  void OnRpc(absl::string_view method, absl::string_view code);
  // The time one call of `method` ("GetAudit") took, from its arrival to its
  // status (for a stream, how long it was open).
  void OnRpcLatency(absl::string_view method, double seconds);
  // Open WatchAudit streams, after each change.
  void SetWatchStreams(int64_t streams);
  // Bytes of uploads stored.
  void OnUploadBytes(int64_t bytes);

  // JobMetricsSink.
  void OnStateChange(std::optional<jobs::JobState> from, jobs::JobState to) override;
  void OnQueueDepth(int64_t depth) override;
  void OnStageDuration(const std::string& stage, double seconds) override;
  void OnModelTrained(double seconds) override;
  void OnClusterQueue(int64_t pending_units, int64_t pending_audits) override;

  // The text exposition format of every metric (what /metrics returns, the
  // process metrics included), for tests and debugging.
  std::string Text() const;

 private:
  static constexpr int kStates = 5;  // jobs::JobState values

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> collectable_;
  std::array<prometheus::Gauge*, kStates> jobs_by_state_{};
  prometheus::Gauge* queue_depth_ = nullptr;
  // Cluster mode: the shared queue, as every replica sees it (scale on it).
  prometheus::Gauge* pending_units_ = nullptr;
  prometheus::Gauge* pending_audits_ = nullptr;
  prometheus::Gauge* watch_streams_ = nullptr;
  prometheus::Counter* models_trained_ = nullptr;
  prometheus::Counter* upload_bytes_ = nullptr;
  prometheus::Histogram* training_seconds_ = nullptr;
  prometheus::Family<prometheus::Histogram>* stage_seconds_ = nullptr;
  prometheus::Family<prometheus::Counter>* rpcs_ = nullptr;
  prometheus::Family<prometheus::Histogram>* rpc_seconds_ = nullptr;
};

}  // namespace mia::server

#endif  // MIA_SERVER_METRICS_H_
