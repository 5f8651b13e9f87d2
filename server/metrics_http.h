// The server's one HTTP/1.1 endpoint, a small router: GET (and HEAD) of a path
// runs the handler registered for it (HttpRoutes: exact paths, and path
// prefixes such as "/audits/"); an unknown path is 404, any other method 405
// (also for a path nobody serves), a malformed request line 400. It serves
// Prometheus' /metrics (a collectable in the text exposition format, version
// 0.0.4) and the read-only dashboard (server/dashboard.h) on the same port.
// One thread multiplexes up to 64 connections with poll(), so a slow client
// never delays a scrape; each connection carries one request ("Connection:
// close") and is dropped when it is not done within a whole-request deadline,
// however it trickles its bytes, or when its request passes 8 KiB. The
// deadline is extended for a large response by a second per MiB, so a
// download of a few MiB still completes on a slow link while a client that
// stops reading is still cut off.
//
// Handlers run on that one thread: they must be quick (read a snapshot of the
// job store, a report file of a few MiB), never wait for training. Because of
// the whole-request deadline there are no long-lived connections (no
// server-sent events): the dashboard polls a small JSON endpoint instead.
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
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace mia::server {

// One request as a handler sees it. The target is split at '?' and not
// percent-decoded: handlers compare and validate the raw text.
struct HttpRequest {
  std::string method;  // "GET" or "HEAD" (the router answers others itself)
  std::string path;    // e.g. "/audits/abc/report.html"
  std::string query;   // after '?', may be empty
  // Header fields by lower-case name (the last one wins), e.g.
  // "authorization" for a token check to come.
  std::map<std::string, std::string> headers;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Extra header fields, e.g. {"Cache-Control", "no-store"}.
  std::vector<std::pair<std::string, std::string>> headers;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// GET routes: exact paths first, then the longest matching prefix.
class HttpRoutes {
 public:
  void Get(std::string path, HttpHandler handler) {
    exact_[std::move(path)] = std::move(handler);
  }
  // Every path starting with `prefix` (e.g. "/audits/").
  void GetPrefix(std::string prefix, HttpHandler handler) {
    prefixes_[std::move(prefix)] = std::move(handler);
  }
  // The handler for `path`, or null.
  const HttpHandler* Find(const std::string& path) const;

 private:
  std::map<std::string, HttpHandler> exact_;
  std::map<std::string, HttpHandler> prefixes_;
};

// The /metrics handler: `registry` collected at each request.
HttpHandler MetricsHandler(std::shared_ptr<prometheus::Collectable> registry);

// The answer of the router to a whole request (exposed for tests): 400 for a
// malformed request line, 405 for a method other than GET and HEAD, 400 for a
// path that is not absolute or has "." or ".." segments (nothing is served
// outside what a handler names), 404 for a path no route takes; otherwise
// the handler's response (without its body for HEAD).
std::string RouteRequest(const HttpRoutes& routes, const std::string& request);

// Start and the destructor may be called from any thread; requests are served
// on the object's own thread.
class MetricsHttpServer {
 public:
  // How long one connection (its request and the response) may take in all.
  static constexpr absl::Duration kDefaultRequestDeadline = absl::Seconds(5);

  // Listens on host:port (port 0: a free one) and serves `routes`.
  // Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port, HttpRoutes routes,
      absl::Duration request_deadline = kDefaultRequestDeadline);
  // Serves only GET /metrics from `registry`.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port, std::shared_ptr<prometheus::Collectable> registry,
      absl::Duration request_deadline = kDefaultRequestDeadline);

  ~MetricsHttpServer();  // stops serving (within about 100 ms), dropping open connections
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }

 private:
  struct Connection;

  MetricsHttpServer(int fd, int port, HttpRoutes routes, absl::Duration request_deadline);
  void Loop();
  // Reads what `c` has sent; once its request is whole, prepares the response.
  // False: drop the connection.
  bool OnReadable(Connection& c);

  const int fd_;
  const int port_;
  const HttpRoutes routes_;
  const absl::Duration request_deadline_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace mia::server

#endif  // MIA_SERVER_METRICS_HTTP_H_
