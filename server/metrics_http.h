// A minimal HTTP/1.1 endpoint for Prometheus: GET /metrics returns a
// collectable (a registry, or ServerMetrics::collectable()) in the text
// exposition format (version 0.0.4); every other path is 404, every other
// method 405. One thread multiplexes up to 64 connections with poll(), so a
// slow client never delays a scrape; each connection carries one request
// ("Connection: close") and is dropped when it is not done within a
// whole-request deadline, however it trickles its bytes, or when its request
// passes 8 KiB.
//
// Why not prometheus-cpp's Exposer: it runs on civetweb, which starts its
// threads with a fixed 100 KiB stack, and glibc refuses such a thread
// (EINVAL) when the process's static TLS is larger than that, as it is once
// LibTorch and OpenBLAS are loaded: the Exposer then fails with "null
// context when constructing CivetServer".
// Why not cpp-httplib (Debian libcpp-httplib-dev 0.11.4): it times out each
// read, not a request, so every worker of its pool can be held by a client
// sending a byte a second, and the per-connection hook that could add a
// deadline (Server::process_and_close_socket) is private.
#ifndef MIA_SERVER_METRICS_HTTP_H_
#define MIA_SERVER_METRICS_HTTP_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace mia::server {

// Start and the destructor may be called from any thread; requests are served
// on the object's own thread.
class MetricsHttpServer {
 public:
  // How long one connection (its request and the response) may take in all.
  static constexpr absl::Duration kDefaultRequestDeadline = absl::Seconds(5);

  // Listens on host:port (port 0: a free one) and serves `registry` (collected
  // at each request). Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port, std::shared_ptr<prometheus::Collectable> registry,
      absl::Duration request_deadline = kDefaultRequestDeadline);

  ~MetricsHttpServer();  // stops serving (within about 100 ms), dropping open connections
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }

 private:
  struct Connection;

  MetricsHttpServer(int fd, int port, std::shared_ptr<prometheus::Collectable> registry,
                    absl::Duration request_deadline);
  void Loop();
  // Reads what `c` has sent; once its request is whole, prepares the response.
  // False: drop the connection.
  bool OnReadable(Connection& c);
  std::string Respond(const std::string& request) const;

  const int fd_;
  const int port_;
  const std::shared_ptr<prometheus::Collectable> registry_;
  const absl::Duration request_deadline_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace mia::server

#endif  // MIA_SERVER_METRICS_HTTP_H_
