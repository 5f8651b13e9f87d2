// The S3 backend of ObjectStore on libcurl. Requests are signed by libcurl's
// own AWS Signature Version 4 (CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3"); the
// payload is declared UNSIGNED-PAYLOAD in x-amz-content-sha256, which libcurl
// signs as the payload hash (so large files stream without being hashed
// twice; TLS protects them in transit). libcurl 7.88 signs the query string
// as written, so List writes its parameters already sorted and encoded the
// way SigV4's canonical form wants them, and no header is removed with
// "Name:" (7.88 signs such a header although it does not send it; see
// tests/storage/object_store_test.cc S3SignatureTest). URLs are path-style:
// ENDPOINT/BUCKET/PREFIX/KEY, which every S3-compatible server accepts.
//
// Nothing here logs; error messages name the object (s3://bucket/key), the
// method and the HTTP status or libcurl's error, never a header.
#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/file_util.h"
#include "core/storage/object_store.h"

namespace mia::storage {
namespace {

constexpr size_t kMaxErrorBody = 64 << 10;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// SigV4's URI encoding: unreserved characters stay, every other byte is %XX;
// '/' stays in paths.
std::string UriEncode(absl::string_view text, bool keep_slash) {
  static const char* const kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string XmlUnescape(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    static const std::pair<const char*, char> kEntities[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    bool done = false;
    for (const auto& [name, ch] : kEntities) {
      if (absl::StartsWith(s.substr(i), name)) {
        out.push_back(ch);
        i += std::string(name).size() - 1;
        done = true;
        break;
      }
    }
    if (!done) out.push_back('&');
  }
  return out;
}

// The text of the first <tag>...</tag> in `xml` at or after `from`.
std::optional<std::string> XmlField(absl::string_view xml, absl::string_view tag, size_t from = 0,
                                    size_t* end = nullptr) {
  const std::string open = absl::StrCat("<", tag, ">");
  const std::string close = absl::StrCat("</", tag, ">");
  const size_t a = xml.find(open, from);
  if (a == absl::string_view::npos) return std::nullopt;
  const size_t b = xml.find(close, a + open.size());
  if (b == absl::string_view::npos) return std::nullopt;
  if (end != nullptr) *end = b + close.size();
  return XmlUnescape(xml.substr(a + open.size(), b - a - open.size()));
}

struct Response {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;        // the body when kept in memory, or an error body
  std::string curl_error;  // libcurl's message for `code`
  int64_t content_length = -1;
};

struct Transfer {
  CURL* curl = nullptr;
  Response* response = nullptr;
  int out_fd = -1;  // a download's temporary file
  int write_errno = 0;
};

size_t WriteCallback(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (t->out_fd >= 0 && status >= 200 && status < 300) {
    size_t done = 0;
    while (done < n) {
      const ssize_t w = ::write(t->out_fd, data + done, n - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        t->write_errno = errno;
        return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
      }
      done += static_cast<size_t>(w);
    }
    return n;
  }
  if (t->response->body.size() < kMaxErrorBody) {
    t->response->body.append(data, std::min(n, kMaxErrorBody - t->response->body.size()));
  }
  return n;
}

bool Retryable(const Response& r) {
  if (r.code != CURLE_OK) {
    switch (r.code) {
      case CURLE_COULDNT_CONNECT:
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_OPERATION_TIMEDOUT:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
        return true;
      default:
        return false;
    }
  }
  return r.status >= 500 || r.status == 429;
}

enum class Method { kGet, kPut, kHead, kDelete };

const char* MethodName(Method m) {
  switch (m) {
    case Method::kGet:
      return "GET";
    case Method::kPut:
      return "PUT";
    case Method::kHead:
      return "HEAD";
    case Method::kDelete:
      return "DELETE";
  }
  return "?";
}

class S3ObjectStore final : public ObjectStore {
 public:
  explicit S3ObjectStore(S3Options options) : o_(std::move(options)) {
    endpoint_ = o_.endpoint;
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
    GlobalInit();
  }

  absl::Status Put(const std::string& key, const std::string& local_path) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    struct stat st;
    if (::stat(local_path.c_str(), &st) != 0) return FileErrnoStatus(errno, local_path, "stat");
    Request req;
    req.method = Method::kPut;
    req.key = key;
    req.upload_path = local_path;
    req.upload_size = static_cast<int64_t>(st.st_size);
    absl::StatusOr<Response> r = Run(req);
    if (!r.ok()) return r.status();
    if (r->status / 100 != 2) return HttpError(MethodName(req.method), key, *r);
    return absl::OkStatus();
  }

  absl::Status Get(const std::string& key, const std::string& local_path) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    Request req;
    req.method = Method::kGet;
    req.key = key;
    req.download_path = local_path;
    absl::StatusOr<Response> r = Run(req);
    if (!r.ok()) return r.status();
    if (r->status / 100 != 2) return HttpError("GET", key, *r);
    return absl::OkStatus();
  }

  absl::StatusOr<ObjectInfo> Head(const std::string& key) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    Request req;
    req.method = Method::kHead;
    req.key = key;
    absl::StatusOr<Response> r = Run(req);
    if (!r.ok()) return r.status();
    if (r->status / 100 != 2) return HttpError("HEAD", key, *r);
    return ObjectInfo{key, std::max<int64_t>(0, r->content_length)};
  }

  absl::StatusOr<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    if (absl::Status s = ValidateObjectPrefix(prefix); !s.ok()) return s;
    const std::string full_prefix = FullKey(prefix);
    std::vector<ObjectInfo> out;
    std::string token;
    for (int page = 0; page < 100000; ++page) {
      // Parameters in SigV4's canonical order (sorted by name), encoded.
      std::string query;
      if (!token.empty()) query = absl::StrCat("continuation-token=", UriEncode(token, false), "&");
      absl::StrAppend(&query, "list-type=2&prefix=", UriEncode(full_prefix, false));
      Request req;
      req.method = Method::kGet;
      req.query = query;
      absl::StatusOr<Response> r = Run(req);
      if (!r.ok()) return r.status();
      if (r->status / 100 != 2) return HttpError("LIST", prefix, *r);
      size_t at = 0;
      while (true) {
        size_t end = 0;
        std::optional<std::string> contents = XmlField(r->body, "Contents", at, &end);
        if (!contents.has_value()) break;
        at = end;
        std::optional<std::string> key = XmlField(*contents, "Key");
        std::optional<std::string> size = XmlField(*contents, "Size");
        if (!key.has_value()) continue;
        std::string rel = *key;
        if (!o_.prefix.empty()) {
          if (!absl::StartsWith(rel, o_.prefix + "/")) continue;
          rel = rel.substr(o_.prefix.size() + 1);
        }
        int64_t bytes = 0;
        if (size.has_value()) (void)absl::SimpleAtoi(*size, &bytes);
        if (ValidateObjectKey(rel).ok()) out.push_back({rel, bytes});
      }
      const std::optional<std::string> truncated = XmlField(r->body, "IsTruncated");
      const std::optional<std::string> next = XmlField(r->body, "NextContinuationToken");
      if (truncated.value_or("false") != "true" || !next.has_value() || next->empty()) break;
      token = *next;
    }
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return out;
  }

  absl::Status Delete(const std::string& key) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    Request req;
    req.method = Method::kDelete;
    req.key = key;
    absl::StatusOr<Response> r = Run(req);
    if (!r.ok()) return r.status();
    if (r->status == 404 || r->status / 100 == 2) return absl::OkStatus();
    return HttpError("DELETE", key, *r);
  }

  std::string Describe() const override {
    return absl::StrCat("s3://", o_.bucket, o_.prefix.empty() ? "" : "/", o_.prefix);
  }

 private:
  struct Request {
    Method method = Method::kGet;
    std::string key;    // empty: the bucket (List)
    std::string query;  // canonical, without '?'
    std::string upload_path;
    int64_t upload_size = 0;
    std::string download_path;
  };

  std::string FullKey(const std::string& key) const {
    if (o_.prefix.empty()) return key;
    return absl::StrCat(o_.prefix, "/", key);
  }

  std::string Name(const std::string& key) const {
    return absl::StrCat("s3://", o_.bucket, "/", FullKey(key));
  }

  std::string Url(const Request& req) const {
    std::string url = absl::StrCat(endpoint_, "/", UriEncode(o_.bucket, false));
    if (!req.key.empty()) absl::StrAppend(&url, "/", UriEncode(FullKey(req.key), true));
    if (!req.query.empty()) absl::StrAppend(&url, "?", req.query);
    return url;
  }

  // The status of a completed request that was not 2xx.
  absl::Status HttpError(const char* method, const std::string& key, const Response& r) const {
    const std::string code = XmlField(r.body, "Code").value_or("");
    const std::string what = absl::StrCat(Name(key), ": ", method, ": HTTP ", r.status,
                                          code.empty() ? "" : absl::StrCat(" (", code, ")"));
    if (code == "NoSuchBucket") {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": the bucket ", o_.bucket, " does not exist"));
    }
    if (r.status == 404) return absl::NotFoundError(absl::StrCat(what, ": no such object"));
    if (r.status == 401 || r.status == 403) {
      return absl::PermissionDeniedError(
          absl::StrCat(what, ": access denied (check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                             "AWS_SESSION_TOKEN and --s3_region)"));
    }
    if (r.status >= 500 || r.status == 429) return absl::UnavailableError(what);
    return absl::FailedPreconditionError(what);
  }

  // One request with retries. Transport errors (after retries) become
  // UNAVAILABLE; an HTTP status is returned in the Response for the caller.
  absl::StatusOr<Response> Run(const Request& req) const {
    const std::string name = req.key.empty() ? Describe() : Name(req.key);
    Response last;
    int64_t backoff = o_.initial_backoff_ms;
    const int attempts = std::max(1, o_.max_attempts);
    for (int attempt = 0; attempt < attempts; ++attempt) {
      if (attempt > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
        backoff *= 2;
      }
      absl::StatusOr<Response> r = Once(req);
      if (!r.ok()) return r.status();  // a local file error: no retry
      last = *std::move(r);
      if (!Retryable(last)) break;
    }
    if (last.code != CURLE_OK) {
      const std::string why =
          last.curl_error.empty() ? curl_easy_strerror(last.code) : last.curl_error;
      const std::string message = absl::StrCat(name, ": ", MethodName(req.method), ": ",
                                               why, " (after ", attempts, " attempts)");
      if (Retryable(last)) return absl::UnavailableError(message);
      return absl::InternalError(message);
    }
    return last;
  }

  absl::StatusOr<Response> Once(const Request& req) const {
    Response response;
    Transfer t;
    t.response = &response;
    CURL* curl = curl_easy_init();
    if (curl == nullptr) return absl::InternalError("libcurl: cannot create a handle");
    t.curl = curl;
    const std::string url = Url(req);
    char error[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o_.connect_timeout_ms));
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                     std::max(1L, static_cast<long>(o_.stall_timeout_ms / 1000)));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteCallback);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    const std::string sigv4 = absl::StrCat("aws:amz:", o_.region, ":s3");
    if (!o_.access_key_id.empty()) {
      curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4.c_str());
      curl_easy_setopt(curl, CURLOPT_USERNAME, o_.access_key_id.c_str());
      curl_easy_setopt(curl, CURLOPT_PASSWORD, o_.secret_access_key.c_str());
    }
    struct curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    std::string token_header;
    if (!o_.session_token.empty()) {
      token_header = absl::StrCat("x-amz-security-token: ", o_.session_token);
      headers = curl_slist_append(headers, token_header.c_str());
    }
    std::FILE* upload = nullptr;
    std::string temp_path;
    switch (req.method) {
      case Method::kGet:
        break;
      case Method::kHead:
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
        break;
      case Method::kDelete:
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
      case Method::kPut:
        upload = std::fopen(req.upload_path.c_str(), "rb");
        if (upload == nullptr) {
          const int err = errno;
          curl_slist_free_all(headers);
          curl_easy_cleanup(curl);
          return FileErrnoStatus(err, req.upload_path, "open");
        }
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_READDATA, upload);
        curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.upload_size));
        // No "Expect:" header to turn 100-continue off: libcurl 7.88 would
        // sign it (empty) without sending it, and S3 would refuse the
        // signature. A short wait for "100 Continue" instead.
        curl_easy_setopt(curl, CURLOPT_EXPECT_100_TIMEOUT_MS, 200L);
        break;
    }
    if (!req.download_path.empty()) {
      temp_path = UniqueTempPath(req.download_path);
      t.out_fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (t.out_fd < 0) {
        const int err = errno;
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        return FileErrnoStatus(err, req.download_path, "create a temporary file");
      }
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    response.code = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
    curl_off_t length = -1;
    if (curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK) {
      response.content_length = static_cast<int64_t>(length);
    }
    if (response.code != CURLE_OK) response.curl_error = error;
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (upload != nullptr) std::fclose(upload);
    if (t.out_fd >= 0) {
      const bool complete = response.code == CURLE_OK && response.status / 100 == 2;
      if (!complete) {
        ::close(t.out_fd);
        ::unlink(temp_path.c_str());
        if (t.write_errno != 0) {
          return FileErrnoStatus(t.write_errno, req.download_path, "write");
        }
        return response;
      }
      if (::fsync(t.out_fd) != 0) {
        const int err = errno;
        ::close(t.out_fd);
        ::unlink(temp_path.c_str());
        return FileErrnoStatus(err, req.download_path, "sync");
      }
      if (::close(t.out_fd) != 0) {
        const int err = errno;
        ::unlink(temp_path.c_str());
        return FileErrnoStatus(err, req.download_path, "close");
      }
      if (absl::Status s = CommitTempFile(temp_path, req.download_path); !s.ok()) return s;
    }
    return response;
  }

  const S3Options o_;
  std::string endpoint_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ObjectStore>> MakeS3ObjectStore(S3Options options) {
  if (!absl::StartsWith(options.endpoint, "http://") &&
      !absl::StartsWith(options.endpoint, "https://")) {
    return absl::InvalidArgumentError(
        "s3_endpoint: must start with http:// or https:// (e.g. http://127.0.0.1:9000)");
  }
  if (absl::StrContains(options.endpoint.substr(options.endpoint.find("://") + 3), "@")) {
    return absl::InvalidArgumentError(
        "s3_endpoint: must not hold credentials; set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY instead");
  }
  absl::StatusOr<S3Url> url = ParseS3Url(absl::StrCat(
      "s3://", options.bucket, options.prefix.empty() ? "" : "/", options.prefix));
  if (!url.ok()) return url.status();
  if (options.access_key_id.empty() != options.secret_access_key.empty()) {
    return absl::InvalidArgumentError(
        "S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together (both or "
        "neither)");
  }
  if (options.region.empty() ||
      !std::all_of(options.region.begin(), options.region.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      })) {
    return absl::InvalidArgumentError("s3_region: lowercase letters, digits and '-' (us-east-1)");
  }
  return std::unique_ptr<ObjectStore>(new S3ObjectStore(std::move(options)));
}

}  // namespace mia::storage
