// Service benchmarks against a running mia-server (bench/service.sh starts
// one). Outside the test suite: nothing here asserts times; every check that
// fails is printed and makes the exit code 1.
//
//   mia_service_bench watch --server=127.0.0.1:PORT --pid=SERVER_PID
//       --bundle=ARTIFACT (--blocker=ARTIFACT [--blockers=6]
//       [--blocker_bootstrap=200000] | --blocker_path=SERVER_PATH
//       --blocker_fifo=LOCAL_PATH) [--streams=1000] [--audits=10] [--hold=30]
//       [--calls=2000] [--channels=8] [--metrics=127.0.0.1:MPORT]
//     Holds `streams` WatchAudit streams open on `audits` PENDING audits
//     (kept PENDING on a --workers=1 server behind blocker audits: bundle
//     audits with many bootstrap resamples, or one audit whose bundle is a
//     named pipe the loader waits on), measures server RSS/threads and
//     GetAudit latency with and without the streams, then cancels the watched
//     audits and times how long the terminal snapshot takes to reach every
//     stream.
//
//   mia_service_bench burst --server=127.0.0.1:PORT --pid=SERVER_PID
//       --bundle=ARTIFACT [--audits=100] [--concurrency=100] [--sample_ms=100]
//       [--metrics=127.0.0.1:MPORT] [--timeout=600] [--bootstrap=1000]
//       [--workers_note=N]
//     Submits `audits` small bundle audits as fast as possible (at most
//     `concurrency` CreateAudit calls in flight), samples the queue depth every
//     `sample_ms` (the mia_queue_depth gauge and a ListAudits count of PENDING)
//     and waits until all are finished. --workers_note is the server's
//     workers setting, only printed.
//
// Results go to stdout as markdown table rows "| case | metric | value |";
// progress goes to stderr.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "mia/v1/audit.grpc.pb.h"
#include "mia/v1/audit.pb.h"

namespace {

namespace v1 = ::mia::v1;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double Millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// ---------------------------------------------------------------------------
// Flags: --key=value only.

struct Flags {
  std::map<std::string, std::string> values;
  std::set<std::string> used;

  std::string Str(const std::string& key, const std::string& def = "") {
    used.insert(key);
    auto it = values.find(key);
    return it == values.end() ? def : it->second;
  }
  long long Int(const std::string& key, long long def) {
    const std::string v = Str(key);
    return v.empty() ? def : std::stoll(v);
  }
  double Double(const std::string& key, double def) {
    const std::string v = Str(key);
    return v.empty() ? def : std::stod(v);
  }
  std::string Required(const std::string& key) {
    const std::string v = Str(key);
    if (v.empty()) {
      std::cerr << "service_bench: --" << key << " is required\n";
      std::exit(2);
    }
    return v;
  }
  void CheckAllUsed() const {
    for (const auto& [k, v] : values) {
      if (used.count(k) == 0) {
        std::cerr << "service_bench: unknown flag --" << k << "\n";
        std::exit(2);
      }
    }
  }
};

bool g_failed = false;

void Check(bool ok, const std::string& what) {
  if (!ok) {
    g_failed = true;
    std::cerr << "CHECK FAILED: " << what << "\n";
  }
}

void Row(const std::string& c, const std::string& metric, const std::string& value) {
  std::cout << "| " << c << " | " << metric << " | " << value << " |\n" << std::flush;
}

std::string Fmt(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// ---------------------------------------------------------------------------
// The server process, from /proc.

struct ProcStats {
  long rss_kb = 0;
  long hwm_kb = 0;
  long threads = 0;
  long fds = 0;
};

ProcStats ReadProc(long pid) {
  ProcStats s;
  if (pid <= 0) return s;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key;
    long value = 0;
    ls >> key >> value;
    if (key == "VmRSS:") s.rss_kb = value;
    if (key == "VmHWM:") s.hwm_kb = value;
    if (key == "Threads:") s.threads = value;
  }
  // Open descriptors (sockets included).
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
       !ec && it != end; it.increment(ec)) {
    ++s.fds;
  }
  return s;
}

std::string Mb(long kb) { return Fmt(kb / 1024.0, 1) + " MB"; }

std::string ProcText(const ProcStats& s) {
  return "RSS " + Mb(s.rss_kb) + ", HWM " + Mb(s.hwm_kb) + ", " + std::to_string(s.threads) +
         " threads, " + std::to_string(s.fds) + " fds";
}

// ---------------------------------------------------------------------------
// Prometheus /metrics over a bare HTTP/1.0 request.

std::map<std::string, double> ScrapeMetrics(const std::string& address) {
  std::map<std::string, double> out;
  const size_t colon = address.rfind(':');
  if (address.empty() || colon == std::string::npos) return out;
  const std::string host = address.substr(0, colon);
  const int port = std::stoi(address.substr(colon + 1));
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return out;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return out;
  }
  const std::string req = "GET /metrics HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return out;
  }
  std::string body;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) body.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t start = body.find("\r\n\r\n");
  std::istringstream in(start == std::string::npos ? body : body.substr(start + 4));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    try {
      out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    } catch (...) {
    }
  }
  return out;
}

double Metric(const std::map<std::string, double>& m, const std::string& key, double def = -1) {
  auto it = m.find(key);
  return it == m.end() ? def : it->second;
}

// ---------------------------------------------------------------------------
// gRPC helpers.

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, int index) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // One TCP connection per channel (no shared subchannel pool).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("mia.bench.channel", index);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

std::chrono::system_clock::time_point Deadline(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
}

bool IsTerminal(v1::Audit::State s) {
  return s == v1::Audit::SUCCEEDED || s == v1::Audit::FAILED || s == v1::Audit::CANCELLED;
}

grpc::Status GetAudit(v1::AuditService::Stub* stub, const std::string& name, v1::Audit* out,
                      v1::AuditView view = v1::AUDIT_VIEW_UNSPECIFIED) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(30));
  v1::GetAuditRequest req;
  req.set_name(name);
  req.set_view(view);
  return stub->GetAudit(&ctx, req, out);
}

v1::CreateAuditRequest BundleRequest(const std::string& artifact, int bootstrap, int priority,
                                     const std::string& role) {
  v1::CreateAuditRequest req;
  v1::SignalsBundleInput* b = req.mutable_spec()->mutable_signals_bundle();
  // "path:P" names a server path, anything else an artifact id.
  if (artifact.rfind("path:", 0) == 0) {
    b->mutable_bundle()->set_server_path(artifact.substr(5));
  } else {
    b->mutable_bundle()->set_artifact_id(artifact);
  }
  b->set_bootstrap(bootstrap);
  req.set_priority(priority);
  (*req.mutable_labels())["bench"] = role;
  return req;
}

std::string CreateOrDie(v1::AuditService::Stub* stub, const v1::CreateAuditRequest& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(30));
  v1::Audit audit;
  const grpc::Status st = stub->CreateAudit(&ctx, req, &audit);
  if (!st.ok()) {
    std::cerr << "CreateAudit failed: " << st.error_code() << " " << st.error_message() << "\n";
    std::exit(1);
  }
  return audit.name();
}

void CancelAudit(v1::AuditService::Stub* stub, const std::string& name) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(30));
  v1::CancelAuditRequest req;
  req.set_name(name);
  v1::Audit audit;
  const grpc::Status st = stub->CancelAudit(&ctx, req, &audit);
  Check(st.ok(), "CancelAudit " + name + ": " + st.error_message());
}

struct Latency {
  double p50 = 0, p99 = 0, max = 0, mean = 0;
  int errors = 0;
  int n = 0;
  int over_10ms = 0;
  int max_index = -1;  // which call was the slowest (0-based)
};

Latency Percentiles(std::vector<double> ms, int errors) {
  Latency l;
  l.errors = errors;
  l.n = static_cast<int>(ms.size());
  if (ms.empty()) return l;
  l.max_index = static_cast<int>(std::max_element(ms.begin(), ms.end()) - ms.begin());
  for (double v : ms) l.over_10ms += v > 10 ? 1 : 0;
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(ms.size() - 1) + 0.5);
    return ms[std::min(i, ms.size() - 1)];
  };
  l.p50 = at(0.50);
  l.p99 = at(0.99);
  l.max = ms.back();
  double sum = 0;
  for (double v : ms) sum += v;
  l.mean = sum / static_cast<double>(ms.size());
  return l;
}

// `calls` sequential GetAudit (FULL view) of one audit, after 10 untimed
// ones (the first call on a connection that was idle for a second, in a
// process holding 100+ streams, takes ~90 ms on the client side; a second
// process does not see it).
Latency MeasureGetAudit(v1::AuditService::Stub* stub, const std::string& name, int calls) {
  for (int i = 0; i < 10; ++i) {
    v1::Audit audit;
    GetAudit(stub, name, &audit);
  }
  std::vector<double> ms;
  ms.reserve(static_cast<size_t>(calls));
  int errors = 0;
  for (int i = 0; i < calls; ++i) {
    v1::Audit audit;
    const auto t0 = Clock::now();
    const grpc::Status st = GetAudit(stub, name, &audit);
    ms.push_back(Millis(Clock::now() - t0));
    if (!st.ok()) ++errors;
  }
  return Percentiles(std::move(ms), errors);
}

std::string LatencyText(const Latency& l) {
  return "p50 " + Fmt(l.p50, 3) + " ms, p99 " + Fmt(l.p99, 3) + " ms, max " + Fmt(l.max, 2) +
         " ms (call #" + std::to_string(l.max_index + 1) + "), mean " + Fmt(l.mean, 3) + " ms, " +
         std::to_string(l.over_10ms) + " calls > 10 ms, " + std::to_string(l.n) + " calls, " +
         std::to_string(l.errors) + " errors";
}

// Waits until `pred(audit)` holds for `name`, polling every 50 ms.
template <typename Pred>
bool WaitFor(v1::AuditService::Stub* stub, const std::string& name, double timeout_s, Pred pred,
             v1::Audit* last = nullptr) {
  const auto end = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (Clock::now() < end) {
    v1::Audit audit;
    if (GetAudit(stub, name, &audit, v1::AUDIT_VIEW_BASIC).ok() && pred(audit)) {
      if (last != nullptr) *last = audit;
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// ---------------------------------------------------------------------------
// watch

struct WatchTracker {
  std::mutex mu;
  std::condition_variable cv;
  int first = 0;     // streams that received their first message
  int done = 0;      // streams that ended
  int terminal = 0;  // streams that received a terminal snapshot
};

class WatchClient final : public grpc::ClientReadReactor<v1::WatchAuditResponse> {
 public:
  WatchClient(v1::AuditService::Stub* stub, const std::string& name, WatchTracker* tracker)
      : tracker_(tracker) {
    request_.set_name(name);
    start_ = Clock::now();
    stub->async()->WatchAudit(&ctx_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    const auto now = Clock::now();
    bool first = false;
    bool terminal = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (messages_ == 0) {
        first = true;
        first_at_ = now;
      }
      ++messages_;
      if (response_.has_snapshot()) {
        ++snapshots_;
        state_ = response_.snapshot().state();
        if (IsTerminal(state_)) {
          terminal = true;
          terminal_at_ = now;
        }
      } else if (response_.has_heartbeat()) {
        ++heartbeats_;
      }
      last_at_ = now;
    }
    if (first || terminal) {
      std::lock_guard<std::mutex> lock(tracker_->mu);
      if (first) ++tracker_->first;
      if (terminal) ++tracker_->terminal;
      tracker_->cv.notify_all();
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      status_ = status;
      done_ = true;
      done_at_ = Clock::now();
    }
    std::lock_guard<std::mutex> lock(tracker_->mu);
    ++tracker_->done;
    tracker_->cv.notify_all();
  }

  void Cancel() { ctx_.TryCancel(); }

  struct View {
    bool done;
    grpc::StatusCode code;
    std::string message;
    int messages, snapshots, heartbeats;
    v1::Audit::State state;
    Clock::time_point start, first_at, last_at, terminal_at, done_at;
  };
  View Get() {
    std::lock_guard<std::mutex> lock(mu_);
    return View{done_,      status_.error_code(), status_.error_message(), messages_,
                snapshots_, heartbeats_,          state_,                  start_,
                first_at_,  last_at_,             terminal_at_,            done_at_};
  }

 private:
  WatchTracker* const tracker_;
  grpc::ClientContext ctx_;
  v1::WatchAuditRequest request_;
  v1::WatchAuditResponse response_;
  std::mutex mu_;
  bool done_ = false;
  grpc::Status status_;
  int messages_ = 0, snapshots_ = 0, heartbeats_ = 0;
  v1::Audit::State state_ = v1::Audit::STATE_UNSPECIFIED;
  Clock::time_point start_, first_at_, last_at_, terminal_at_, done_at_;
};

int RunWatch(Flags& flags) {
  const std::string target = flags.Required("server");
  const long pid = flags.Int("pid", 0);
  // The audits that keep the single worker busy: either --blocker=ARTIFACT
  // (a bundle scored with many bootstrap resamples: the worker computes,
  // "busy") or --blocker_fifo=LOCAL_PATH with --blocker_path=SERVER_PATH, a
  // named pipe under the server's data roots that the loader's open() waits
  // on (the worker sleeps, "idle"); the pipe is opened for writing at the end
  // to release it.
  const std::string blocker_fifo = flags.Str("blocker_fifo");
  const std::string blocker_artifact =
      blocker_fifo.empty() ? flags.Required("blocker") : "path:" + flags.Required("blocker_path");
  const std::string bundle = flags.Required("bundle");
  const std::string metrics = flags.Str("metrics");
  const int n_streams = static_cast<int>(flags.Int("streams", 1000));
  const int n_audits = static_cast<int>(flags.Int("audits", 10));
  const int n_blockers = blocker_fifo.empty() ? static_cast<int>(flags.Int("blockers", 6)) : 1;
  const int blocker_bootstrap = static_cast<int>(flags.Int("blocker_bootstrap", 200000));
  const double hold_s = flags.Double("hold", 30);
  const int calls = static_cast<int>(flags.Int("calls", 2000));
  const int n_channels = static_cast<int>(flags.Int("channels", 8));
  flags.CheckAllUsed();
  const std::string C = blocker_fifo.empty() ? "watch (busy worker)" : "watch (idle worker)";

  // A channel of its own for unary calls, so GetAudit latency is the
  // server's, not a queue behind 1,000 streams on one client connection.
  auto control_channel = MakeChannel(target, 1000);
  auto control = v1::AuditService::NewStub(control_channel);

  // Blockers first (priority 100): with --workers=1 the first runs while the
  // rest, and every watched audit (priority 0), stay PENDING.
  std::vector<std::string> blockers;
  for (int i = 0; i < n_blockers; ++i) {
    blockers.push_back(
        CreateOrDie(control.get(), BundleRequest(blocker_artifact, blocker_bootstrap, 100,
                                                 "watch-blocker")));
  }
  std::vector<std::string> watched;
  for (int i = 0; i < n_audits; ++i) {
    watched.push_back(CreateOrDie(control.get(), BundleRequest(bundle, 100, 0, "watch-target")));
  }
  const bool running = WaitFor(control.get(), blockers[0], 60, [](const v1::Audit& a) {
    return a.state() == v1::Audit::RUNNING;
  });
  Check(running, "the first blocker audit did not start running within 60 s");
  if (!blocker_fifo.empty()) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    v1::Audit b;
    GetAudit(control.get(), blockers[0], &b, v1::AUDIT_VIEW_BASIC);
    if (b.state() != v1::Audit::RUNNING) {
      std::cerr << "watch: the pipe blocker ended (" << v1::Audit::State_Name(b.state()) << ": "
                << b.error().message()
                << "): this server no longer waits on a named pipe; use --blocker=ARTIFACT\n";
      return 3;
    }
  }
  std::cerr << "watch: " << n_blockers << " blockers (first RUNNING), " << n_audits
            << " watched audits PENDING\n";

  // Without streams.
  const ProcStats before = ReadProc(pid);
  std::cerr << "watch: GetAudit x" << calls << " without streams\n";
  const Latency lat_without = MeasureGetAudit(control.get(), watched[0], calls);
  const ProcStats before_after_calls = ReadProc(pid);

  // Open the streams, round-robin over audits and channels.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::AuditService::Stub>> stubs;
  for (int c = 0; c < n_channels; ++c) {
    channels.push_back(MakeChannel(target, c));
    stubs.push_back(v1::AuditService::NewStub(channels.back()));
  }
  WatchTracker tracker;
  std::vector<std::unique_ptr<WatchClient>> streams;
  streams.reserve(static_cast<size_t>(n_streams));
  const auto open_start = Clock::now();
  for (int i = 0; i < n_streams; ++i) {
    streams.push_back(std::make_unique<WatchClient>(
        stubs[static_cast<size_t>(i % n_channels)].get(),
        watched[static_cast<size_t>(i % n_audits)], &tracker));
  }
  bool all_first;
  {
    std::unique_lock<std::mutex> lock(tracker.mu);
    all_first = tracker.cv.wait_for(lock, std::chrono::seconds(60), [&] {
      return tracker.first + tracker.done >= n_streams;
    });
  }
  const double open_s = Seconds(Clock::now() - open_start);
  int first_count, early_done;
  {
    std::lock_guard<std::mutex> lock(tracker.mu);
    first_count = tracker.first;
    early_done = tracker.done;
  }
  Check(all_first && first_count == n_streams && early_done == 0,
        "streams: " + std::to_string(first_count) + " got a first snapshot, " +
            std::to_string(early_done) + " ended early");
  std::cerr << "watch: " << first_count << " streams open in " << Fmt(open_s, 2) << " s\n";
  const auto hold_start = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const ProcStats with = ReadProc(pid);
  const double gauge_with = Metric(ScrapeMetrics(metrics), "mia_watch_streams");

  // GetAudit while the streams run, then hold until the end.
  std::cerr << "watch: GetAudit x" << calls << " with " << n_streams << " streams\n";
  const Latency lat_with = MeasureGetAudit(control.get(), watched[0], calls);
  ProcStats peak = ReadProc(pid);
  while (Seconds(Clock::now() - hold_start) < hold_s) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const ProcStats s = ReadProc(pid);
    peak.rss_kb = std::max(peak.rss_kb, s.rss_kb);
    peak.hwm_kb = std::max(peak.hwm_kb, s.hwm_kb);
    peak.threads = std::max(peak.threads, s.threads);
    peak.fds = std::max(peak.fds, s.fds);
  }
  const double held_s = Seconds(Clock::now() - hold_start);

  // Streams still open at the end of the hold, and their heartbeats.
  int open_at_end = 0, with_heartbeat = 0;
  int min_hb = 1 << 30, max_hb = 0;
  long total_hb = 0;
  double max_silence_s = 0;
  const auto now = Clock::now();
  for (auto& s : streams) {
    const WatchClient::View v = s->Get();
    if (!v.done) ++open_at_end;
    if (v.heartbeats > 0) ++with_heartbeat;
    min_hb = std::min(min_hb, v.heartbeats);
    max_hb = std::max(max_hb, v.heartbeats);
    total_hb += v.heartbeats;
    max_silence_s = std::max(max_silence_s, Seconds(now - v.last_at));
  }
  Check(open_at_end == n_streams, std::to_string(open_at_end) + " streams open at the end");
  Check(with_heartbeat == n_streams,
        std::to_string(with_heartbeat) + " streams received a heartbeat");
  // The blocker must still be running, or the watched audits may have moved.
  v1::Audit blocker_state;
  GetAudit(control.get(), blockers[0], &blocker_state, v1::AUDIT_VIEW_BASIC);
  v1::Audit watched_state;
  GetAudit(control.get(), watched[0], &watched_state, v1::AUDIT_VIEW_BASIC);
  Check(watched_state.state() == v1::Audit::PENDING,
        "the watched audits left PENDING during the hold (blockers too short)");

  // End: cancel the watched audits; every stream gets the CANCELLED snapshot
  // and then ends OK.
  std::cerr << "watch: cancelling the watched audits\n";
  const auto cancel_start = Clock::now();
  for (const std::string& name : watched) CancelAudit(control.get(), name);
  bool all_done;
  {
    std::unique_lock<std::mutex> lock(tracker.mu);
    all_done = tracker.cv.wait_for(lock, std::chrono::seconds(60),
                                   [&] { return tracker.done >= n_streams; });
  }
  const double fanout_s = Seconds(Clock::now() - cancel_start);
  int ok_end = 0, cancelled_state = 0;
  double last_terminal_ms = 0;
  std::map<std::string, int> end_codes;
  for (auto& s : streams) {
    const WatchClient::View v = s->Get();
    if (v.done && v.code == grpc::StatusCode::OK) ++ok_end;
    if (v.state == v1::Audit::CANCELLED) {
      ++cancelled_state;
      last_terminal_ms = std::max(last_terminal_ms, Millis(v.terminal_at - cancel_start));
    }
    if (v.done && v.code != grpc::StatusCode::OK) ++end_codes[std::to_string(v.code) + " " + v.message];
  }
  for (const auto& [k, n] : end_codes) std::cerr << "watch: " << n << " streams ended: " << k << "\n";
  Check(all_done && ok_end == n_streams && cancelled_state == n_streams,
        std::to_string(ok_end) + " streams ended OK, " + std::to_string(cancelled_state) +
            " saw CANCELLED");
  if (!all_done) {
    for (auto& s : streams) s->Cancel();
    std::unique_lock<std::mutex> lock(tracker.mu);
    tracker.cv.wait(lock, [&] { return tracker.done >= n_streams; });
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const ProcStats after = ReadProc(pid);
  const double gauge_after = Metric(ScrapeMetrics(metrics), "mia_watch_streams");

  // Leave an idle server: cancel the blockers; the running one stops at its
  // next check (after scoring).
  const auto blockers_start = Clock::now();
  for (const std::string& name : blockers) CancelAudit(control.get(), name);
  if (!blocker_fifo.empty()) {
    // A writer appearing and leaving lets the loader's open() return.
    const int fd = open(blocker_fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    Check(fd >= 0, "could not open the pipe " + blocker_fifo + " for writing");
    if (fd >= 0) close(fd);
  }
  for (const std::string& name : blockers) {
    Check(WaitFor(control.get(), name, 600, [](const v1::Audit& a) { return IsTerminal(a.state()); }),
          "blocker " + name + " did not end");
  }
  const double blockers_s = Seconds(Clock::now() - blockers_start);

  Row(C, "streams opened / got first snapshot / open at end of hold",
      std::to_string(n_streams) + " / " + std::to_string(first_count) + " / " +
          std::to_string(open_at_end) + " (on " + std::to_string(n_audits) + " PENDING audits, " +
          std::to_string(n_channels) + " client connections)");
  Row(C, "time to open all streams (first snapshot on each)", Fmt(open_s, 2) + " s");
  Row(C, "hold", Fmt(held_s, 1) + " s");
  Row(C, "heartbeats per stream (min / mean / max)",
      std::to_string(min_hb) + " / " + Fmt(static_cast<double>(total_hb) / n_streams, 1) + " / " +
          std::to_string(max_hb) + "; " + std::to_string(with_heartbeat) +
          " streams got >= 1; longest silence at the end " + Fmt(max_silence_s, 1) + " s");
  Row(C, "mia_watch_streams gauge with / after",
      Fmt(gauge_with, 0) + " / " + Fmt(gauge_after, 0));
  Row(C, "server before streams", ProcText(before));
  Row(C, "server with streams (1 s after opening)", ProcText(with));
  Row(C, "server during hold (max of 0.5 s samples)", ProcText(peak));
  Row(C, "server after streams closed (+2 s)", ProcText(after));
  Row(C, "RSS per stream (with - before)",
      Fmt((with.rss_kb - before_after_calls.rss_kb) / static_cast<double>(n_streams), 1) + " KB");
  Row(C, "GetAudit without streams", LatencyText(lat_without));
  Row(C, "GetAudit with streams", LatencyText(lat_with));
  Row(C, "cancel watched audits -> all streams got CANCELLED and ended OK",
      std::to_string(ok_end) + " ended OK, " + std::to_string(cancelled_state) +
          " saw CANCELLED; last terminal snapshot " + Fmt(last_terminal_ms, 0) +
          " ms after the first cancel, all ended in " + Fmt(fanout_s, 2) + " s");
  std::string blocker_end;
  for (const std::string& name : blockers) {
    v1::Audit a;
    GetAudit(control.get(), name, &a, v1::AUDIT_VIEW_BASIC);
    blocker_end += (blocker_end.empty() ? "" : ", ") + v1::Audit::State_Name(a.state());
  }
  Row(C, "blocker audits: first one's state at end of hold / all after cancel / time to end",
      v1::Audit::State_Name(blocker_state.state()) + " / " + blocker_end + " / " +
          Fmt(blockers_s, 1) + " s");
  return g_failed ? 1 : 0;
}

// ---------------------------------------------------------------------------
// burst

struct CreateCall {
  grpc::ClientContext ctx;
  v1::CreateAuditRequest req;
  v1::Audit resp;
  grpc::Status status;
  Clock::time_point start, end;
};

struct Sample {
  double t;
  double gauge;     // mia_queue_depth, -1 when not scraped
  int pending;      // ours, from ListAudits
  int running;
  int finished;
};

std::vector<v1::Audit> ListAll(v1::AuditService::Stub* stub,
                               v1::Audit::State state = v1::Audit::STATE_UNSPECIFIED) {
  std::vector<v1::Audit> out;
  std::string token;
  do {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(30));
    v1::ListAuditsRequest req;
    req.set_page_size(1000);
    req.set_page_token(token);
    req.set_view(v1::AUDIT_VIEW_BASIC);
    req.set_state(state);
    v1::ListAuditsResponse resp;
    if (!stub->ListAudits(&ctx, req, &resp).ok()) break;
    for (auto& a : *resp.mutable_audits()) out.push_back(std::move(a));
    token = resp.next_page_token();
  } while (!token.empty());
  return out;
}

double TsSeconds(const google::protobuf::Timestamp& t) {
  return static_cast<double>(t.seconds()) + t.nanos() * 1e-9;
}

int RunBurst(Flags& flags) {
  const std::string target = flags.Required("server");
  const long pid = flags.Int("pid", 0);
  const std::string bundle = flags.Required("bundle");
  const std::string metrics = flags.Str("metrics");
  const int n = static_cast<int>(flags.Int("audits", 100));
  const int concurrency = std::max<int>(1, static_cast<int>(flags.Int("concurrency", 100)));
  const int sample_ms = static_cast<int>(flags.Int("sample_ms", 100));
  const double timeout_s = flags.Double("timeout", 600);
  const int bootstrap = static_cast<int>(flags.Int("bootstrap", 1000));
  const std::string workers = flags.Str("workers_note", "?");
  flags.CheckAllUsed();
  const std::string C = "burst (" + std::to_string(concurrency) + " in flight)";

  auto channel = MakeChannel(target, 0);
  auto stub = v1::AuditService::NewStub(channel);
  auto poll_channel = MakeChannel(target, 1);
  auto poll_stub = v1::AuditService::NewStub(poll_channel);
  const ProcStats before = ReadProc(pid);
  const std::map<std::string, double> metrics_before = ScrapeMetrics(metrics);

  // Sampler: queue depth gauge and ListAudits states of our audits.
  std::mutex names_mu;
  std::set<std::string> names;
  std::atomic<bool> stop{false};
  std::atomic<int> finished_seen{0};
  std::vector<Sample> samples;
  std::vector<v1::Audit> final_list;
  ProcStats peak;
  const auto t0 = Clock::now();
  std::atomic<double> all_done_s{-1};
  std::atomic<bool> submitted{false};  // every CreateAudit answered
  std::thread sampler([&] {
    while (!stop.load()) {
      const auto tick = Clock::now();
      Sample s{Seconds(tick - t0), Metric(ScrapeMetrics(metrics), "mia_queue_depth"), 0, 0, 0};
      // Only PENDING and RUNNING audits are listed each time (cheap); the
      // whole listing once those are gone.
      const bool all_submitted = submitted.load();
      const std::vector<v1::Audit> pending = ListAll(poll_stub.get(), v1::Audit::PENDING);
      const std::vector<v1::Audit> running = ListAll(poll_stub.get(), v1::Audit::RUNNING);
      size_t ours = 0;
      {
        std::lock_guard<std::mutex> lock(names_mu);
        for (const v1::Audit& a : pending) s.pending += static_cast<int>(names.count(a.name()));
        for (const v1::Audit& a : running) s.running += static_cast<int>(names.count(a.name()));
        ours = names.size();
      }
      s.finished = static_cast<int>(ours) - s.pending - s.running;
      std::vector<v1::Audit> list;
      if (all_submitted && s.pending == 0 && s.running == 0) {
        list = ListAll(poll_stub.get());
        s.finished = 0;
        std::lock_guard<std::mutex> lock(names_mu);
        for (const v1::Audit& a : list) {
          if (names.count(a.name()) > 0 && IsTerminal(a.state())) ++s.finished;
        }
      }
      samples.push_back(s);
      const ProcStats p = ReadProc(pid);
      peak.rss_kb = std::max(peak.rss_kb, p.rss_kb);
      peak.hwm_kb = std::max(peak.hwm_kb, p.hwm_kb);
      peak.threads = std::max(peak.threads, p.threads);
      peak.fds = std::max(peak.fds, p.fds);
      finished_seen = s.finished;
      if (all_submitted && s.finished >= static_cast<int>(ours) && !list.empty()) {
        all_done_s = Seconds(Clock::now() - t0);
        final_list = std::move(list);
        return;
      }
      std::this_thread::sleep_until(tick + std::chrono::milliseconds(sample_ms));
    }
  });

  // Submit.
  std::vector<std::unique_ptr<CreateCall>> calls;
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0, completed = 0;
  const auto submit_start = Clock::now();
  for (int i = 0; i < n; ++i) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight < concurrency; });
      ++in_flight;
    }
    auto call = std::make_unique<CreateCall>();
    call->req = BundleRequest(bundle, bootstrap, 0, "burst");
    call->ctx.set_deadline(Deadline(60));
    call->start = Clock::now();
    CreateCall* c = call.get();
    calls.push_back(std::move(call));
    stub->async()->CreateAudit(&c->ctx, &c->req, &c->resp, [&, c](grpc::Status st) {
      c->end = Clock::now();
      c->status = std::move(st);
      if (c->status.ok()) {
        std::lock_guard<std::mutex> lock(names_mu);
        names.insert(c->resp.name());
      }
      std::lock_guard<std::mutex> lock(mu);
      --in_flight;
      ++completed;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return completed >= n; });
  }
  const double accept_s = Seconds(Clock::now() - submit_start);
  submitted = true;
  int accepted = 0;
  std::vector<double> create_ms;
  std::map<std::string, int> errors;
  for (const auto& c : calls) {
    create_ms.push_back(Millis(c->end - c->start));
    if (c->status.ok()) {
      ++accepted;
    } else {
      ++errors[std::to_string(c->status.error_code()) + " " + c->status.error_message()];
    }
  }
  for (const auto& [k, v] : errors) std::cerr << "burst: " << v << " CreateAudit failed: " << k << "\n";
  Check(accepted == n, std::to_string(accepted) + " of " + std::to_string(n) + " accepted");
  std::cerr << "burst: " << accepted << " accepted in " << Fmt(accept_s, 3) << " s\n";

  // Wait for the sampler to see all finished.
  const auto wait_end = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (all_done_s.load() < 0 && Clock::now() < wait_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stop = true;
  sampler.join();
  const double done_s = all_done_s.load();
  Check(done_s >= 0, "not all audits finished within " + Fmt(timeout_s, 0) + " s (" +
                         std::to_string(finished_seen.load()) + " did)");
  const ProcStats after = ReadProc(pid);
  // Where the run time goes: the server's per-stage histogram, the sum and
  // count added during the burst.
  const std::map<std::string, double> metrics_after = ScrapeMetrics(metrics);
  std::string stage_text;
  for (const auto& [key, sum] : metrics_after) {
    const std::string prefix = "mia_stage_seconds_sum{stage=\"";
    if (key.rfind(prefix, 0) != 0) continue;
    const std::string stage = key.substr(prefix.size(), key.size() - prefix.size() - 2);
    const std::string count_key = "mia_stage_seconds_count{stage=\"" + stage + "\"}";
    const double count = Metric(metrics_after, count_key, 0) - Metric(metrics_before, count_key, 0);
    const double seconds = sum - Metric(metrics_before, key, 0);
    if (count <= 0) continue;
    stage_text += (stage_text.empty() ? "" : ", ") + stage + " " +
                  Fmt(1000 * seconds / count, 1) + " ms";
  }

  // Outcome, from the final listing.
  int succeeded = 0;
  double first_create = 1e300, last_end = 0, first_start = 1e300;
  std::vector<double> turnaround, run_s, wait_s;
  std::map<std::string, int> states;
  {
    std::lock_guard<std::mutex> lock(names_mu);
    for (const v1::Audit& a : final_list) {
      if (names.count(a.name()) == 0) continue;
      ++states[v1::Audit::State_Name(a.state())];
      if (a.state() == v1::Audit::SUCCEEDED) ++succeeded;
      if (a.state() == v1::Audit::FAILED) {
        std::cerr << "burst: " << a.name() << " FAILED: " << a.error().code() << " "
                  << a.error().message() << "\n";
      }
      const double c = TsSeconds(a.create_time()), s = TsSeconds(a.start_time()),
                   e = TsSeconds(a.end_time());
      first_create = std::min(first_create, c);
      first_start = std::min(first_start, s);
      last_end = std::max(last_end, e);
      turnaround.push_back((e - c) * 1000);
      run_s.push_back((e - s) * 1000);
      wait_s.push_back((s - c) * 1000);
    }
  }
  Check(succeeded == n, std::to_string(succeeded) + " of " + std::to_string(n) + " SUCCEEDED");
  std::string state_text;
  for (const auto& [k, v] : states) state_text += (state_text.empty() ? "" : ", ") + k + " " + std::to_string(v);

  double max_gauge = -1;
  int max_pending = 0;
  for (const Sample& s : samples) {
    max_gauge = std::max(max_gauge, s.gauge);
    max_pending = std::max(max_pending, s.pending);
  }
  // Queue depth over time: one line per second (the sample nearest after it).
  std::string series;
  double next_t = 0;
  for (const Sample& s : samples) {
    if (s.t + 1e-9 < next_t) continue;
    series += (series.empty() ? "" : ", ") + Fmt(s.t, 1) + "s:" +
              (s.gauge >= 0 ? Fmt(s.gauge, 0) : std::string("?")) + "/" + std::to_string(s.pending);
    next_t = std::floor(s.t) + 1;
  }
  const Latency create_lat = Percentiles(create_ms, 0);
  const Latency turn = Percentiles(turnaround, 0);
  const Latency run = Percentiles(run_s, 0);
  const double server_span = last_end - first_create;

  Row(C, "workers / CreateAudit calls in flight", workers + " / " + std::to_string(concurrency));
  Row(C, "audits accepted / SUCCEEDED", std::to_string(accepted) + " / " + std::to_string(succeeded) +
                                          " (" + state_text + ")");
  Row(C, "time to accept all (client)", Fmt(accept_s, 3) + " s (" +
                                            Fmt(n / std::max(accept_s, 1e-9), 0) + " CreateAudit/s)");
  Row(C, "CreateAudit latency", "p50 " + Fmt(create_lat.p50, 1) + " ms, p99 " +
                                    Fmt(create_lat.p99, 1) + " ms, max " + Fmt(create_lat.max, 1) +
                                    " ms");
  Row(C, "time until all done (client poll, 100 ms resolution)", Fmt(done_s, 2) + " s");
  Row(C, "first create -> last end (server timestamps)", Fmt(server_span, 2) + " s");
  Row(C, "throughput", Fmt(n / server_span, 2) + " audits/s (server span), " +
                           Fmt(n / done_s, 2) + " audits/s (client)");
  Row(C, "run time per audit (start -> end)", "p50 " + Fmt(run.p50, 0) + " ms, max " +
                                                  Fmt(run.max, 0) + " ms");
  Row(C, "mean time per stage and audit (mia_stage_seconds)", stage_text);
  Row(C, "turnaround per audit (create -> end)", "p50 " + Fmt(turn.p50 / 1000, 2) + " s, max " +
                                                     Fmt(turn.max / 1000, 2) + " s");
  Row(C, "max queue depth (mia_queue_depth gauge / PENDING in ListAudits)",
      Fmt(max_gauge, 0) + " / " + std::to_string(max_pending) + " (" +
          std::to_string(samples.size()) + " samples, every " +
          Fmt(samples.size() > 1 ? 1000 * samples.back().t / (samples.size() - 1) : 0, 0) +
          " ms on average)");
  Row(C, "queue depth over time (t: gauge/pending, 1 s steps)", series);
  Row(C, "server before / max during / after", ProcText(before) + " / " + ProcText(peak) + " / " +
                                                   ProcText(after));
  return g_failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || (std::string(argv[1]) != "watch" && std::string(argv[1]) != "burst")) {
    std::cerr << "usage: mia_service_bench watch|burst --server=HOST:PORT [--key=value]...\n"
                 "(see bench/service_bench.cc)\n";
    return 2;
  }
  Flags flags;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || a.find('=') == std::string::npos) {
      std::cerr << "service_bench: expected --key=value, got " << a << "\n";
      return 2;
    }
    const size_t eq = a.find('=');
    flags.values[a.substr(2, eq - 2)] = a.substr(eq + 1);
  }
  return std::string(argv[1]) == "watch" ? RunWatch(flags) : RunBurst(flags);
}
