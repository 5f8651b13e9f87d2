#include "server/path_sandbox.h"

#include <filesystem>
#include <optional>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mia::server {
namespace {

namespace fs = std::filesystem;

// `p` made absolute, with `..` and symbolic links of its existing prefix
// resolved, and without a trailing separator.
fs::path Resolve(const fs::path& p, std::error_code* ec) {
  fs::path out = fs::weakly_canonical(fs::absolute(p, *ec), *ec);
  if (*ec) return {};
  out = out.lexically_normal();
  if (!out.has_filename() && out != out.root_path()) out = out.parent_path();
  return out;
}

// Whether `p` is `root` or below it, component by component ("/data2" is not
// below "/data"). Both must be Resolve()d.
bool IsWithin(const fs::path& root, const fs::path& p) {
  auto r = root.begin();
  auto q = p.begin();
  for (; r != root.end(); ++r, ++q) {
    if (q == p.end() || *r != *q) return false;
  }
  return true;
}

// A lexically normal path without a trailing separator (no filesystem access).
fs::path Tidy(const std::string& p) {
  fs::path out = fs::path(p).lexically_normal();
  if (!out.has_filename() && out.has_parent_path() && out != out.root_path()) {
    out = out.parent_path();
  }
  return out;
}

}  // namespace

// A server path resolved inside one of the data roots. The status message is
// a description for a FieldViolation (no path echoed: it may be a client's).

absl::StatusOr<std::string> ResolveServerPath(const std::string& raw, const ServerRoots& roots) {
  if (raw.empty()) return absl::InvalidArgumentError("server_path must not be empty");
  if (raw.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("server_path must not contain NUL characters");
  }
  if (roots.data_roots.empty()) {
    return absl::InvalidArgumentError(
        "the server has no data roots: refer to an uploaded artifact (artifact_id) instead");
  }
  const fs::path path(raw);
  // Candidates in root order: the absolute path itself against every root, or
  // the relative path under each root.
  std::optional<fs::path> first_inside;
  for (const std::string& root_text : roots.data_roots) {
    std::error_code ec;
    const fs::path root = Resolve(root_text, &ec);
    if (ec) continue;  // a root that does not resolve holds nothing
    const fs::path candidate = Resolve(path.is_absolute() ? path : fs::path(root) / path, &ec);
    if (ec || !IsWithin(root, candidate)) continue;
    const fs::file_status st = fs::status(candidate, ec);
    if (!ec && fs::exists(st)) {
      // A FIFO, socket or device under a root could block a worker forever.
      if (!fs::is_regular_file(st) && !fs::is_directory(st)) {
        return absl::InvalidArgumentError("not a regular file or folder");
      }
      return candidate.string();
    }
    if (!first_inside.has_value()) first_inside = candidate;
  }
  if (!first_inside.has_value()) {
    return absl::InvalidArgumentError("path is outside the server's data roots");
  }
  return absl::NotFoundError("no such file or folder under the server's data roots");
}

std::string ServerRoots::ModelCacheDir() const {
  if (!cache_dir.empty()) return Tidy(cache_dir).string();
  return (Tidy(jobs_dir).parent_path() / "cache").string();
}

}  // namespace mia::server
