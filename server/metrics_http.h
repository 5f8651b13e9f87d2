// A minimal HTTP/1.1 endpoint for Prometheus: GET /metrics returns a
// collectable (a registry, or ServerMetrics::collectable()) in the text
// exposition format (version 0.0.4); every other path is 404, every other
// method 405. One thread, one connection at a time,
// "Connection: close"; requests over 8 KiB or slower than 2 s are dropped.
//
// Why not prometheus-cpp's Exposer: it runs on civetweb, which starts its
// threads with a fixed 100 KiB stack, and glibc refuses such a thread
// (EINVAL) when the process's static TLS is larger than that, as it is once
// LibTorch and OpenBLAS are loaded: the Exposer then fails with "null
// context when constructing CivetServer".
#ifndef MIA_SERVER_METRICS_HTTP_H_
#define MIA_SERVER_METRICS_HTTP_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace mia::server {

class MetricsHttpServer {
 public:
  // Listens on host:port (port 0: a free one) and serves `registry` (collected
  // at each request). Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port, std::shared_ptr<prometheus::Collectable> registry);

  ~MetricsHttpServer();  // stops serving (within about 100 ms)
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsHttpServer(int fd, int port, std::shared_ptr<prometheus::Collectable> registry);
  void Loop();
  void Serve(int client);

  const int fd_;
  const int port_;
  const std::shared_ptr<prometheus::Collectable> registry_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace mia::server

#endif  // MIA_SERVER_METRICS_HTTP_H_
