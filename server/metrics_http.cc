#include "server/metrics_http.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
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
// A response of n MiB gets n more seconds past the request deadline.
constexpr double kMinSendBytesPerSecond = 1 << 20;
// Connections served at once. When all are taken, a new one replaces the
// oldest: a scrape takes milliseconds, so only a stalled client loses out.
constexpr size_t kMaxConnections = 64;

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

std::string Serialize(const HttpResponse& r, bool head) {
  std::string out = absl::StrCat("HTTP/1.1 ", r.status, " ", Reason(r.status),
                                 "\r\nContent-Type: ", r.content_type,
                                 "\r\nContent-Length: ", r.body.size(),
                                 "\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n");
  for (const auto& [name, value] : r.headers) absl::StrAppend(&out, name, ": ", value, "\r\n");
  absl::StrAppend(&out, "\r\n", head ? "" : r.body);
  return out;
}

HttpResponse Plain(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string Trim(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\r") - begin + 1);
}

// An absolute path without "." or ".." segments (and no backslash or NUL).
bool SafePath(const std::string& path) {
  if (path.empty() || path[0] != '/') return false;
  if (path.find('\\') != std::string::npos || path.find('\0') != std::string::npos) return false;
  size_t begin = 1;
  while (begin <= path.size()) {
    size_t end = path.find('/', begin);
    if (end == std::string::npos) end = path.size();
    const std::string segment = path.substr(begin, end - begin);
    if (segment == "." || segment == "..") return false;
    begin = end + 1;
  }
  return true;
}

}  // namespace

const HttpHandler* HttpRoutes::Find(const std::string& path) const {
  if (const auto it = exact_.find(path); it != exact_.end()) return &it->second;
  const HttpHandler* found = nullptr;
  size_t longest = 0;
  for (const auto& [prefix, handler] : prefixes_) {
    if (absl::StartsWith(path, prefix) && prefix.size() >= longest) {
      found = &handler;
      longest = prefix.size();
    }
  }
  return found;
}

HttpHandler MetricsHandler(std::shared_ptr<prometheus::Collectable> registry) {
  return [registry = std::move(registry)](const HttpRequest&) {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = prometheus::TextSerializer().Serialize(registry->Collect());
    return r;
  };
}

std::string RouteRequest(const HttpRoutes& routes, const std::string& request) {
  // Request line: METHOD SP TARGET SP VERSION.
  const size_t line_end = request.find_first_of("\r\n");
  const std::string line = request.substr(0, line_end);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) return Serialize(Plain(400, "bad request\n"), false);
  HttpRequest r;
  r.method = line.substr(0, sp1);
  const std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const size_t question = target.find('?');
  r.path = target.substr(0, question);
  if (question != std::string::npos) r.query = target.substr(question + 1);
  const bool head = r.method == "HEAD";
  if (r.method != "GET" && !head) {
    return Serialize(Plain(405, "read-only: GET and HEAD only\n"), false);
  }
  if (!SafePath(r.path)) return Serialize(Plain(400, "bad path\n"), head);
  const HttpHandler* handler = routes.Find(r.path);
  if (handler == nullptr) return Serialize(Plain(404, "not found\n"), head);
  // Header fields, one per line up to the blank line.
  size_t pos = line_end == std::string::npos ? request.size() : line_end;
  while (pos < request.size()) {
    pos = request.find('\n', pos);
    if (pos == std::string::npos) break;
    ++pos;
    const size_t next = request.find('\n', pos);
    const std::string field =
        request.substr(pos, (next == std::string::npos ? request.size() : next) - pos);
    const std::string trimmed = Trim(field);
    if (trimmed.empty()) break;
    const size_t colon = trimmed.find(':');
    if (colon != std::string::npos) {
      r.headers[Lower(trimmed.substr(0, colon))] = Trim(trimmed.substr(colon + 1));
    }
  }
  return Serialize((*handler)(r), head);
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, std::shared_ptr<prometheus::Collectable> registry,
    absl::Duration request_deadline) {
  HttpRoutes routes;
  routes.Get("/metrics", MetricsHandler(std::move(registry)));
  return Start(host, port, std::move(routes), request_deadline);
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, HttpRoutes routes, absl::Duration request_deadline) {
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
      new MetricsHttpServer(fd, actual, std::move(routes), request_deadline));
}

struct MetricsHttpServer::Connection {
  int fd;
  absl::Time deadline;
  std::string request;   // read so far
  std::string response;  // once the request is whole
  size_t sent = 0;
};

MetricsHttpServer::MetricsHttpServer(int fd, int port, HttpRoutes routes,
                                     absl::Duration request_deadline)
    : fd_(fd), port_(port), routes_(std::move(routes)), request_deadline_(request_deadline) {
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
      c.response = RouteRequest(routes_, c.request);
      // Time to send a large response (a report file) on a slow link.
      c.deadline += absl::Seconds(static_cast<double>(c.response.size()) / kMinSendBytesPerSecond);
      return true;
    }
    if (c.request.size() > kMaxRequestBytes) return false;
  }
}

}  // namespace mia::server
