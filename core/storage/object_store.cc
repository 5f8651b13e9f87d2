#include "core/storage/object_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/common/file_util.h"

namespace mia::storage {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxKeyBytes = 1024;

bool KeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == '=';
}

absl::Status CheckSegments(absl::string_view text, bool allow_trailing_slash, const char* what) {
  if (text.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": longer than 1024 bytes"));
  }
  for (char c : text) {
    if (c != '/' && !KeyChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": only letters, digits, '.', '_', '-', '=' and '/' are allowed"));
    }
  }
  std::vector<absl::string_view> segments = absl::StrSplit(text, '/');
  if (allow_trailing_slash && segments.size() > 1 && segments.back().empty()) segments.pop_back();
  for (absl::string_view s : segments) {
    if (s.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": an empty segment"));
    if (s == "." || s == "..") {
      return absl::InvalidArgumentError(absl::StrCat(what, ": '.' and '..' are not allowed"));
    }
  }
  return absl::OkStatus();
}

// Copies `from` to a temporary file next to `to`, syncs it and renames it into
// place: readers of `to` see the old file or the whole new one.
absl::Status CopyAtomically(const std::string& from, const std::string& to,
                            const std::string& from_name, const std::string& to_name) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return FileErrnoStatus(errno, from_name, "open");
  const std::string tmp = UniqueTempPath(to);
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    const int err = errno;
    ::close(in);
    return FileErrnoStatus(err, to_name, "create a temporary file");
  }
  auto fail = [&](int err, const std::string& name, const char* what) {
    ::close(in);
    ::close(out);
    ::unlink(tmp.c_str());
    return FileErrnoStatus(err, name, what);
  };
  std::vector<char> buffer(size_t{1} << 20);
  while (true) {
    const ssize_t n = ::read(in, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno, from_name, "read");
    }
    if (n == 0) break;
    size_t done = 0;
    while (done < static_cast<size_t>(n)) {
      const ssize_t w = ::write(out, buffer.data() + done, static_cast<size_t>(n) - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        return fail(errno, to_name, "write");
      }
      done += static_cast<size_t>(w);
    }
  }
  if (::fsync(out) != 0) return fail(errno, to_name, "sync");
  ::close(in);
  if (::close(out) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return FileErrnoStatus(err, to_name, "close");
  }
  return CommitTempFile(tmp, to);
}

// A folder, e.g. on a ReadWriteMany volume every replica mounts.
class DirObjectStore final : public ObjectStore {
 public:
  explicit DirObjectStore(std::string root) : root_(std::move(root)) {}

  absl::Status Put(const std::string& key, const std::string& local_path) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    const fs::path dest = fs::path(root_) / key;
    std::error_code ec;
    fs::create_directories(dest.parent_path(), ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat(Name(key), ": cannot create its folder: ", ec.message()));
    }
    return CopyAtomically(local_path, dest.string(), local_path, Name(key));
  }

  absl::Status Get(const std::string& key, const std::string& local_path) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    const fs::path src = fs::path(root_) / key;
    std::error_code ec;
    if (!fs::is_regular_file(src, ec)) return absl::NotFoundError(absl::StrCat(Name(key), ": no such object"));
    return CopyAtomically(src.string(), local_path, Name(key), local_path);
  }

  absl::StatusOr<ObjectInfo> Head(const std::string& key) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    struct stat st;
    const std::string path = (fs::path(root_) / key).string();
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) {
        return absl::NotFoundError(absl::StrCat(Name(key), ": no such object"));
      }
      return FileErrnoStatus(errno, Name(key), "stat");
    }
    if (!S_ISREG(st.st_mode)) return absl::NotFoundError(absl::StrCat(Name(key), ": no such object"));
    return ObjectInfo{key, static_cast<int64_t>(st.st_size)};
  }

  absl::StatusOr<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    if (absl::Status s = ValidateObjectPrefix(prefix); !s.ok()) return s;
    // The deepest folder the prefix names entirely ("reports/ab" -> reports/).
    const size_t slash = prefix.rfind('/');
    const std::string dir_part = slash == std::string::npos ? "" : prefix.substr(0, slash);
    const fs::path dir = fs::path(root_) / dir_part;
    std::vector<ObjectInfo> out;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return out;
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
    if (ec) return absl::UnavailableError(absl::StrCat(Describe(), ": cannot list ", prefix));
    for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
      if (ec) return absl::UnavailableError(absl::StrCat(Describe(), ": cannot list ", prefix));
      if (!it->is_regular_file(ec)) continue;
      if (IsTempFileName(it->path().filename().string())) continue;  // a Put in progress
      const std::string key = it->path().lexically_relative(root_).generic_string();
      if (!absl::StartsWith(key, prefix) || !ValidateObjectKey(key).ok()) continue;
      out.push_back({key, static_cast<int64_t>(it->file_size(ec))});
    }
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return out;
  }

  absl::Status Delete(const std::string& key) override {
    if (absl::Status s = ValidateObjectKey(key); !s.ok()) return s;
    const std::string path = (fs::path(root_) / key).string();
    if (::unlink(path.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR) {
      return FileErrnoStatus(errno, Name(key), "delete");
    }
    return absl::OkStatus();
  }

  std::string Describe() const override { return root_; }

 private:
  std::string Name(const std::string& key) const { return absl::StrCat(root_, "/", key); }

  const std::string root_;
};

}  // namespace

absl::StatusOr<bool> ObjectStore::Exists(const std::string& key) {
  absl::StatusOr<ObjectInfo> info = Head(key);
  if (info.ok()) return true;
  if (absl::IsNotFound(info.status())) return false;
  return info.status();
}

absl::Status ValidateObjectKey(absl::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("object key: empty");
  if (absl::Status s = CheckSegments(key, /*allow_trailing_slash=*/false, "object key"); !s.ok()) {
    return s;
  }
  const size_t slash = key.rfind('/');
  if (IsTempFileName(slash == absl::string_view::npos ? key : key.substr(slash + 1))) {
    return absl::InvalidArgumentError("object key: the name of a temporary file");
  }
  return absl::OkStatus();
}

absl::Status ValidateObjectPrefix(absl::string_view prefix) {
  if (prefix.empty()) return absl::OkStatus();
  return CheckSegments(prefix, /*allow_trailing_slash=*/true, "object prefix");
}

absl::StatusOr<S3Url> ParseS3Url(absl::string_view url) {
  const absl::string_view original = url;
  if (!absl::ConsumePrefix(&url, "s3://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", original, "' is not an s3:// URL (s3://BUCKET or s3://BUCKET/PREFIX)"));
  }
  S3Url out;
  const size_t slash = url.find('/');
  out.bucket = std::string(url.substr(0, slash));
  absl::string_view prefix = slash == absl::string_view::npos ? "" : url.substr(slash + 1);
  while (absl::ConsumeSuffix(&prefix, "/")) {
  }
  out.prefix = std::string(prefix);
  const std::string& b = out.bucket;
  if (b.empty()) return absl::InvalidArgumentError("s3:// URL: the bucket is missing (s3://BUCKET/PREFIX)");
  const bool chars_ok = std::all_of(b.begin(), b.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
  });
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (b.size() < 3 || b.size() > 63 || !chars_ok || !alnum(b.front()) || !alnum(b.back())) {
    return absl::InvalidArgumentError(
        "s3:// URL: a bucket name is 3-63 lowercase letters, digits, '.' or '-', starting and "
        "ending with a letter or digit");
  }
  if (!out.prefix.empty()) {
    if (absl::Status s = ValidateObjectKey(out.prefix); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("s3:// URL: the prefix: ", s.message()));
    }
  }
  return out;
}

void S3CredentialsFromEnvironment(S3Options* options) {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? std::string() : std::string(v);
  };
  options->access_key_id = env("AWS_ACCESS_KEY_ID");
  options->secret_access_key = env("AWS_SECRET_ACCESS_KEY");
  options->session_token = env("AWS_SESSION_TOKEN");
}

std::unique_ptr<ObjectStore> MakeDirObjectStore(std::string root) {
  return std::make_unique<DirObjectStore>(std::move(root));
}

absl::StatusOr<std::shared_ptr<ObjectStore>> OpenObjectStore(const std::string& location,
                                                             const std::string& endpoint,
                                                             const std::string& region) {
  if (absl::StartsWith(location, "s3://")) {
    absl::StatusOr<S3Url> url = ParseS3Url(location);
    if (!url.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("artifact_store: ", url.status().message()));
    }
    if (endpoint.empty()) {
      return absl::InvalidArgumentError(
          "s3_endpoint: required with an s3:// artifact_store (e.g. https://s3.us-east-1."
          "amazonaws.com or http://127.0.0.1:9000)");
    }
    S3Options options;
    options.endpoint = endpoint;
    options.region = region.empty() ? "us-east-1" : region;
    options.bucket = url->bucket;
    options.prefix = url->prefix;
    S3CredentialsFromEnvironment(&options);
    absl::StatusOr<std::unique_ptr<ObjectStore>> s3 = MakeS3ObjectStore(std::move(options));
    if (!s3.ok()) return s3.status();
    return std::shared_ptr<ObjectStore>(*std::move(s3));
  }
  if (absl::StrContains(location, "://")) {
    return absl::InvalidArgumentError(
        "artifact_store: only s3:// URLs and folders are supported");
  }
  std::error_code ec;
  const fs::path root = fs::absolute(location, ec).lexically_normal();
  if (ec) return absl::InvalidArgumentError("artifact_store: cannot make the path absolute");
  fs::create_directories(root, ec);
  if (ec || !fs::is_directory(root, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact_store: ", root.string(), " is not a folder and cannot be created"));
  }
  return std::shared_ptr<ObjectStore>(MakeDirObjectStore(root.string()));
}

}  // namespace mia::storage
