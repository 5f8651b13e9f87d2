// Helpers for tests of the shared artifact store: the endpoint of the s3rver
// fixture (tests/storage/s3rver_fixture.sh), a unique prefix per test, and a
// one-connection-at-a-time HTTP server that records requests and answers
// with canned responses (for signature checks and broken transfers).
#ifndef MIA_TESTS_STORAGE_S3_TEST_UTIL_H_
#define MIA_TESTS_STORAGE_S3_TEST_UTIL_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/storage/object_store.h"

namespace mia::testing_util {

// The fixture's endpoint ("http://127.0.0.1:PORT"), or nullopt when it is not
// running (node or npm missing, MIA_OFFLINE): tests then skip.
inline std::optional<std::string> S3FixtureEndpoint() {
#ifdef MIA_S3_ENDPOINT_FILE
  std::ifstream in(MIA_S3_ENDPOINT_FILE);
  std::string line;
  if (in && std::getline(in, line) && line.rfind("http://", 0) == 0) return line;
#endif
  return std::nullopt;
}

// A prefix no other test (or earlier run) uses.
inline std::string UniquePrefix(const std::string& name) {
  static std::atomic<int> counter{0};
  return absl::StrCat("t-", name, "-", ::getpid(), "-", counter++, "-",
                      std::chrono::steady_clock::now().time_since_epoch().count());
}

// Options for the fixture's bucket with its accepted access key id.
inline storage::S3Options FixtureOptions(const std::string& endpoint, const std::string& prefix) {
  storage::S3Options o;
  o.endpoint = endpoint;
  o.bucket = "mia-test";
  o.prefix = prefix;
  o.access_key_id = "S3RVER";
  o.secret_access_key = "S3RVER";
  o.max_attempts = 2;
  o.initial_backoff_ms = 10;
  return o;
}

// Accepts connections on 127.0.0.1 (a free port) one after another; each
// request's head is recorded and answered with `response` (sent as is, so a
// test can send a truncated body), then the connection is closed.
class CannedHttpServer {
 public:
  explicit CannedHttpServer(std::string response) : response_(std::move(response)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 16);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CannedHttpServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }

  std::string endpoint() const { return absl::StrCat("http://127.0.0.1:", port_); }
  std::vector<std::string> heads() {
    std::lock_guard<std::mutex> lock(mu_);
    return heads_;
  }

 private:
  void Serve() {
    while (!stop_) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string data;
      char buf[65536];
      while (data.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        data.append(buf, static_cast<size_t>(n));
      }
      const size_t end = data.find("\r\n\r\n");
      const std::string head = data.substr(0, end);
      // Read the body (an upload) before answering.
      int64_t length = 0;
      const std::string lower = absl::AsciiStrToLower(head);
      const size_t cl = lower.find("content-length:");
      if (cl != std::string::npos) {
        const size_t eol = lower.find("\r\n", cl);
        (void)absl::SimpleAtoi(
            absl::StripAsciiWhitespace(lower.substr(cl + 15, eol == std::string::npos
                                                                   ? std::string::npos
                                                                   : eol - cl - 15)),
            &length);
      }
      int64_t have = end == std::string::npos ? 0 : static_cast<int64_t>(data.size() - end - 4);
      while (have < length) {
        const ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        have += n;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        heads_.push_back(head);
      }
      (void)::send(c, response_.data(), response_.size(), MSG_NOSIGNAL);
      ::shutdown(c, SHUT_RDWR);
      ::close(c);
    }
  }

  const std::string response_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> heads_;
};

}  // namespace mia::testing_util

#endif  // MIA_TESTS_STORAGE_S3_TEST_UTIL_H_
