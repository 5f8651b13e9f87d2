#include "server/metrics_http.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "prometheus/collectable.h"
#include "prometheus/text_serializer.h"

namespace mia::server {
namespace {

constexpr size_t kMaxRequestBytes = 8192;
// Connections served at once. When all are taken, a new one replaces the
// oldest: a scrape takes milliseconds, so only a stalled client loses out.
constexpr size_t kMaxConnections = 64;

std::string Response(const std::string& status, const std::string& type, const std::string& body,
                     bool head) {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n",
                      head ? "" : body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, std::shared_ptr<prometheus::Collectable> registry,
    absl::Duration request_deadline) {
  const std::string where = absl::StrCat(host, ":", port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const int rc =
      ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", where, ": ", gai_strerror(rc)));
  }
  int fd = -1;
  int err = 0;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 64) == 0) break;
    err = errno;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", where, ": ",
                                               std::generic_category().message(err)));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  int actual = port;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
    if (bound.ss_family == AF_INET) {
      actual = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    } else if (bound.ss_family == AF_INET6) {
      actual = ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    }
  }
  return std::unique_ptr<MetricsHttpServer>(
      new MetricsHttpServer(fd, actual, std::move(registry), request_deadline));
}

struct MetricsHttpServer::Connection {
  int fd;
  absl::Time deadline;
  std::string request;   // read so far
  std::string response;  // once the request is whole
  size_t sent = 0;
};

MetricsHttpServer::MetricsHttpServer(int fd, int port,
                                     std::shared_ptr<prometheus::Collectable> registry,
                                     absl::Duration request_deadline)
    : fd_(fd), port_(port), registry_(std::move(registry)), request_deadline_(request_deadline) {
  thread_ = std::thread([this] { Loop(); });
}

MetricsHttpServer::~MetricsHttpServer() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
}

void MetricsHttpServer::Loop() {
  std::list<Connection> connections;  // oldest first
  std::vector<pollfd> polled;
  while (!stop_.load()) {
    // Drop the connections past their deadline; wake for the next one.
    const absl::Time now = absl::Now();
    absl::Duration wait = absl::Milliseconds(100);  // and check stop_
    for (auto it = connections.begin(); it != connections.end();) {
      if (it->deadline <= now) {
        ::close(it->fd);
        it = connections.erase(it);
      } else {
        wait = std::min(wait, it->deadline - now);
        ++it;
      }
    }
    polled.assign(1, pollfd{fd_, POLLIN, 0});
    for (const Connection& c : connections) {
      polled.push_back(pollfd{c.fd, static_cast<short>(c.response.empty() ? POLLIN : POLLOUT), 0});
    }
    const int ready =
        ::poll(polled.data(), polled.size(), static_cast<int>(absl::ToInt64Milliseconds(wait)) + 1);
    if (ready <= 0) continue;  // timeout or EINTR: check deadlines and stop_

    size_t i = 1;
    for (auto it = connections.begin(); it != connections.end(); ++i) {
      bool keep = true;
      const short events = polled[i].revents;
      if (events & POLLOUT) {
        const ssize_t n = ::send(it->fd, it->response.data() + it->sent,
                                 it->response.size() - it->sent, MSG_NOSIGNAL);
        if (n > 0) it->sent += static_cast<size_t>(n);
        keep = (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) &&
               it->sent < it->response.size();
      } else if (events & (POLLIN | POLLHUP | POLLERR)) {
        keep = OnReadable(*it);
      }
      if (keep) {
        ++it;
      } else {
        ::close(it->fd);
        it = connections.erase(it);
      }
    }
    if (polled[0].revents & POLLIN) {
      for (;;) {
        const int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client < 0) {
          // Out of descriptors or memory: the connection stays queued and
          // poll() would report it at once, forever; wait a moment instead.
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            absl::SleepFor(absl::Milliseconds(50));
          }
          break;  // EAGAIN: none left
        }
        if (connections.size() >= kMaxConnections) {
          ::close(connections.front().fd);
          connections.pop_front();
        }
        connections.push_back(Connection{client, absl::Now() + request_deadline_, "", "", 0});
      }
    }
  }
  for (const Connection& c : connections) ::close(c.fd);
}

bool MetricsHttpServer::OnReadable(Connection& c) {
  char buffer[2048];
  for (;;) {
    const ssize_t n = ::recv(c.fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;  // wait for more
    if (n <= 0) return false;                   // gone, or an error
    c.request.append(buffer, static_cast<size_t>(n));
    if (c.request.find("\r\n\r\n") != std::string::npos ||
        c.request.find("\n\n") != std::string::npos) {
      c.response = Respond(c.request);
      return true;
    }
    if (c.request.size() > kMaxRequestBytes) return false;
  }
}

std::string MetricsHttpServer::Respond(const std::string& request) const {
  // Request line: METHOD SP TARGET SP VERSION.
  const size_t line_end = request.find_first_of("\r\n");
  const std::string line = request.substr(0, line_end);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) {
    return Response("400 Bad Request", "text/plain", "bad request\n", false);
  }
  const std::string method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  target = target.substr(0, target.find('?'));
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    return Response("405 Method Not Allowed", "text/plain", "GET /metrics\n", false);
  }
  if (target != "/metrics") return Response("404 Not Found", "text/plain", "see /metrics\n", head);
  const std::string body = prometheus::TextSerializer().Serialize(registry_->Collect());
  return Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body, head);
}

}  // namespace mia::server
