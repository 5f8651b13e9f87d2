#include "server/metrics.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace mia::server {
namespace {

constexpr jobs::JobState kAllStates[] = {jobs::JobState::kPending, jobs::JobState::kRunning,
                                         jobs::JobState::kSucceeded, jobs::JobState::kFailed,
                                         jobs::JobState::kCancelled};

int StateIndex(jobs::JobState state) { return static_cast<int>(state); }

// Stages take from milliseconds (a small bundle) to hours (a WRN on a CPU).
prometheus::Histogram::BucketBoundaries StageBuckets() {
  return {0.01, 0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 10800};
}
// One model: seconds (an MLP) to an hour (a large CNN on a CPU).
prometheus::Histogram::BucketBoundaries TrainingBuckets() {
  return {0.5, 1, 2.5, 5, 10, 30, 60, 180, 600, 1800, 3600};
}

// Calls take from a millisecond (GetAudit) to hours (a WatchAudit stream
// open for a whole training run).
prometheus::Histogram::BucketBoundaries RpcBuckets() {
  return {0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10, 60, 600, 3600};
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) return absl::UnavailableError(absl::StrCat(path, ": cannot read"));
  if (text.str().empty()) {
    return absl::UnavailableError(absl::StrCat(path, ": empty or unreadable"));
  }
  return text.str();
}

prometheus::MetricFamily OneValue(const char* name, const char* help, prometheus::MetricType type,
                                  double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(metric);
  return family;
}

// The registry plus the process metrics, read at each scrape (gauges set by
// a timer would be stale, and need a thread).
class Exposition final : public prometheus::Collectable {
 public:
  explicit Exposition(std::shared_ptr<prometheus::Registry> registry)
      : registry_(std::move(registry)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families = registry_->Collect();
    ProcessStats stats;
    // Without /proc (not Linux) the process families are left out rather
    // than shown as zeros.
    if (!ReadProcessStats(&stats).ok()) return families;
    using prometheus::MetricType;
    families.push_back(OneValue("process_cpu_seconds_total",
                                "Total user and system CPU time spent in seconds",
                                MetricType::Counter, stats.cpu_seconds));
    families.push_back(OneValue("process_resident_memory_bytes", "Resident memory size in bytes",
                                MetricType::Gauge, stats.resident_bytes));
    families.push_back(OneValue("process_virtual_memory_bytes", "Virtual memory size in bytes",
                                MetricType::Gauge, stats.virtual_bytes));
    families.push_back(OneValue("process_open_fds", "Number of open file descriptors",
                                MetricType::Gauge, stats.open_fds));
    families.push_back(OneValue("process_start_time_seconds",
                                "Start time of the process since unix epoch in seconds",
                                MetricType::Gauge, stats.start_time_seconds));
    return families;
  }

 private:
  const std::shared_ptr<prometheus::Registry> registry_;
};

}  // namespace

absl::Status ParseProcStat(absl::string_view stat, double ticks_per_second, double boot_time,
                           double page_bytes, ProcessStats* stats) {
  // "pid (comm) state ppid ...": comm may contain anything, ')' included.
  const size_t close = stat.rfind(')');
  if (close == absl::string_view::npos) {
    return absl::InvalidArgumentError("stat: no ')' after the process name");
  }
  const std::vector<absl::string_view> fields =
      absl::StrSplit(stat.substr(close + 1), ' ', absl::SkipWhitespace());
  // fields[0] is field 3 (state) of proc(5); field n is fields[n - 3].
  auto field = [&](int n, const char* name, double* out) -> absl::Status {
    if (static_cast<int>(fields.size()) <= n - 3 ||
        !absl::SimpleAtod(absl::StripAsciiWhitespace(fields[n - 3]), out)) {
      return absl::InvalidArgumentError(
          absl::StrCat("stat: field ", n, " (", name, ") is missing"));
    }
    return absl::OkStatus();
  };
  double utime = 0, stime = 0, start_ticks = 0, vsize = 0, rss_pages = 0;
  for (absl::Status s : {field(14, "utime", &utime), field(15, "stime", &stime),
                         field(22, "starttime", &start_ticks), field(23, "vsize", &vsize),
                         field(24, "rss", &rss_pages)}) {
    if (!s.ok()) return s;
  }
  stats->cpu_seconds = (utime + stime) / ticks_per_second;
  stats->start_time_seconds = boot_time + start_ticks / ticks_per_second;
  stats->virtual_bytes = vsize;
  stats->resident_bytes = rss_pages * page_bytes;
  return absl::OkStatus();
}

absl::Status ReadProcessStats(ProcessStats* stats) {
  absl::StatusOr<std::string> stat = ReadText("/proc/self/stat");
  if (!stat.ok()) return stat.status();
  absl::StatusOr<std::string> system = ReadText("/proc/stat");
  if (!system.ok()) return system.status();
  double boot_time = -1;
  for (absl::string_view line : absl::StrSplit(*system, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtod(line, &boot_time)) break;
  }
  if (boot_time < 0) return absl::UnavailableError("/proc/stat: no btime line");
  const absl::Status parsed =
      ParseProcStat(*stat, static_cast<double>(sysconf(_SC_CLK_TCK)), boot_time,
                    static_cast<double>(sysconf(_SC_PAGESIZE)), stats);
  if (!parsed.ok()) return absl::UnavailableError(absl::StrCat("/proc/self/", parsed.message()));
  std::error_code ec;
  double fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++fds;
  }
  if (ec) return absl::UnavailableError("/proc/self/fd: cannot list");
  stats->open_fds = fds;
  return absl::OkStatus();
}

ServerMetrics::ServerMetrics(const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()),
      collectable_(std::make_shared<Exposition>(registry_)) {
  prometheus::BuildGauge()
      .Name("mia_build_info")
      .Help("Always 1; the label says which version of mia-server runs")
      .Register(*registry_)
      .Add({{"version", version.empty() ? std::string("unknown") : version}})
      .Set(1);
  auto& jobs = prometheus::BuildGauge()
                   .Name("mia_jobs")
                   .Help("Audit jobs known to the server, by state")
                   .Register(*registry_);
  for (jobs::JobState s : kAllStates) {
    jobs_by_state_[StateIndex(s)] = &jobs.Add({{"state", std::string(jobs::JobStateName(s))}});
  }
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("mia_queue_depth")
                      .Help("Audit jobs waiting in the queue for a worker")
                      .Register(*registry_)
                      .Add({});
  pending_units_ = &prometheus::BuildGauge()
                        .Name("mia_queue_pending_units")
                        .Help("Units of work (models to train) waiting in the queue shared by "
                              "the replicas; 0 without a shared store")
                        .Register(*registry_)
                        .Add({});
  pending_audits_ = &prometheus::BuildGauge()
                         .Name("mia_queue_pending_audits")
                         .Help("Audits waiting in the queue shared by the replicas; 0 without "
                               "a shared store")
                         .Register(*registry_)
                         .Add({});
  watch_streams_ = &prometheus::BuildGauge()
                        .Name("mia_watch_streams")
                        .Help("Open WatchAudit streams")
                        .Register(*registry_)
                        .Add({});
  models_trained_ = &prometheus::BuildCounter()
                         .Name("mia_models_trained_total")
                         .Help("Target and reference models trained")
                         .Register(*registry_)
                         .Add({});
  upload_bytes_ = &prometheus::BuildCounter()
                       .Name("mia_upload_bytes_total")
                       .Help("Bytes of artifacts received by UploadArtifact and stored")
                       .Register(*registry_)
                       .Add({});
  training_seconds_ = &prometheus::BuildHistogram()
                           .Name("mia_model_training_seconds")
                           .Help("Wall time to train one model")
                           .Register(*registry_)
                           .Add({}, TrainingBuckets());
  stage_seconds_ = &prometheus::BuildHistogram()
                        .Name("mia_stage_seconds")
                        .Help("Wall time a job spent in one stage (load, train, signals, ...)")
                        .Register(*registry_);
  rpcs_ = &prometheus::BuildCounter()
               .Name("mia_rpcs_total")
               .Help("Finished RPCs of mia.v1.AuditService, by method and status code")
               .Register(*registry_);
  rpc_seconds_ = &prometheus::BuildHistogram()
                      .Name("mia_rpc_duration_seconds")
                      .Help(
                          "Time from the arrival of a mia.v1.AuditService call to its status "
                          "(streams: how long they were open), by method")
                      .Register(*registry_);
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::SetJobs(jobs::JobState state, int64_t count) {
  jobs_by_state_[StateIndex(state)]->Set(static_cast<double>(count));
}

void ServerMetrics::OnJobDeleted(jobs::JobState state) {
  jobs_by_state_[StateIndex(state)]->Decrement();
}

void ServerMetrics::OnRpc(absl::string_view method, absl::string_view code) {
  rpcs_->Add({{"method", std::string(method)}, {"code", std::string(code)}}).Increment();
}

void ServerMetrics::OnRpcLatency(absl::string_view method, double seconds) {
  rpc_seconds_->Add({{"method", std::string(method)}}, RpcBuckets()).Observe(seconds);
}

void ServerMetrics::SetWatchStreams(int64_t streams) {
  watch_streams_->Set(static_cast<double>(streams));
}

void ServerMetrics::OnUploadBytes(int64_t bytes) {
  if (bytes > 0) upload_bytes_->Increment(static_cast<double>(bytes));
}

void ServerMetrics::OnStateChange(std::optional<jobs::JobState> from, jobs::JobState to) {
  if (from.has_value()) jobs_by_state_[StateIndex(*from)]->Decrement();
  jobs_by_state_[StateIndex(to)]->Increment();
}

void ServerMetrics::OnQueueDepth(int64_t depth) { queue_depth_->Set(static_cast<double>(depth)); }

void ServerMetrics::OnStageDuration(const std::string& stage, double seconds) {
  // Stage names come from runners, a small fixed set; anything else is
  // folded into "other" so that a new runner cannot grow the series count.
  static const char* const kStages[] = {"queued", "load",    "train",  "signals",
                                        "attack", "metrics", "report", "done"};
  std::string label = "other";
  for (const char* s : kStages) {
    if (stage == s) label = s;
  }
  stage_seconds_->Add({{"stage", label}}, StageBuckets()).Observe(seconds);
}

void ServerMetrics::OnClusterQueue(int64_t pending_units, int64_t pending_audits) {
  pending_units_->Set(static_cast<double>(pending_units));
  pending_audits_->Set(static_cast<double>(pending_audits));
}

void ServerMetrics::OnModelTrained(double seconds) {
  models_trained_->Increment();
  training_seconds_->Observe(seconds);
}

std::string ServerMetrics::Text() const {
  return prometheus::TextSerializer().Serialize(collectable_->Collect());
}

}  // namespace mia::server
