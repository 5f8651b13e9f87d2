#include "server/shared_store.h"

#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/common/file_util.h"
#include "core/common/sha256.h"
#include "core/common/status_macros.h"
#include "core/storage/object_store.h"

namespace mia::server {
namespace {

namespace fs = std::filesystem;

std::string ReportPrefix(const std::string& job_id) {
  return absl::StrCat("reports/", job_id, "/report/");
}
std::string ManifestKey(const std::string& job_id) {
  return absl::StrCat("reports/", job_id, "/report.files");
}

}  // namespace

absl::Status PublishUpload(storage::ObjectStore& store, const std::string& sha256,
                           const std::string& local_path) {
  const std::string key = absl::StrCat("uploads/", sha256);
  std::error_code ec;
  const auto size = fs::file_size(local_path, ec);
  if (ec) return absl::InternalError(absl::StrCat("artifacts/", sha256, ": cannot read it"));
  absl::StatusOr<storage::ObjectInfo> head = store.Head(key);
  if (head.ok() && head->size == static_cast<int64_t>(size)) return absl::OkStatus();
  if (!head.ok() && !absl::IsNotFound(head.status())) return head.status();
  return store.Put(key, local_path);
}

absl::Status FetchUpload(storage::ObjectStore& store, const std::string& sha256,
                         const std::string& local_path) {
  const std::string tmp = UniqueTempPath(local_path);
  MIA_RETURN_IF_ERROR(store.Get(absl::StrCat("uploads/", sha256), tmp));
  absl::StatusOr<std::string> digest = Sha256OfFile(tmp);
  if (!digest.ok() || *digest != sha256) {
    std::error_code ec;
    fs::remove(tmp, ec);
    return absl::DataLossError(absl::StrCat(
        "artifacts/", sha256, ": the shared artifact store holds bytes of another SHA-256"));
  }
  return CommitTempFile(tmp, local_path);
}

absl::Status PublishReport(storage::ObjectStore& store, const std::string& job_id,
                           const std::string& report_dir) {
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(report_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!it->is_regular_file(ec) || name.empty() || name[0] == '.' || IsTempFileName(name)) {
      continue;
    }
    files.push_back(it->path());
  }
  if (ec) return absl::InternalError(absl::StrCat("the report of ", job_id, ": cannot list it"));
  for (const fs::path& file : files) {
    MIA_RETURN_IF_ERROR(
        store.Put(ReportPrefix(job_id) + file.filename().string(), file.string()));
  }
  // The manifest last: a reader takes a report as complete once it exists.
  const std::string manifest = report_dir + ".files";
  if (fs::exists(manifest, ec)) MIA_RETURN_IF_ERROR(store.Put(ManifestKey(job_id), manifest));
  return absl::OkStatus();
}

absl::Status FetchReport(storage::ObjectStore& store, const std::string& job_id,
                         const std::string& report_dir) {
  MIA_ASSIGN_OR_RETURN(const bool complete, store.Exists(ManifestKey(job_id)));
  if (!complete) {
    return absl::NotFoundError(
        absl::StrCat("audits/", job_id, ": the shared artifact store has no report of it"));
  }
  MIA_ASSIGN_OR_RETURN(const std::vector<storage::ObjectInfo> objects,
                       store.List(ReportPrefix(job_id)));
  std::error_code ec;
  fs::create_directories(fs::path(report_dir).parent_path(), ec);
  const std::string tmp = UniqueTempPath(report_dir);
  fs::create_directories(tmp, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("audits/", job_id, ": cannot create a folder for its report"));
  }
  auto fail = [&](absl::Status status) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    return status;
  };
  for (const storage::ObjectInfo& object : objects) {
    const std::string name = object.key.substr(ReportPrefix(job_id).size());
    if (name.empty() || absl::StrContains(name, "/")) continue;
    if (absl::Status s = store.Get(object.key, (fs::path(tmp) / name).string()); !s.ok()) {
      return fail(s);
    }
  }
  if (absl::Status s = store.Get(ManifestKey(job_id), report_dir + ".files"); !s.ok()) {
    return fail(s);
  }
  // Another thread may have fetched it meanwhile: theirs stays.
  if (std::rename(tmp.c_str(), report_dir.c_str()) != 0) return fail(absl::OkStatus());
  return absl::OkStatus();
}

absl::Status DeleteSharedReport(storage::ObjectStore& store, const std::string& job_id) {
  MIA_RETURN_IF_ERROR(store.Delete(ManifestKey(job_id)));
  MIA_ASSIGN_OR_RETURN(const std::vector<storage::ObjectInfo> objects,
                       store.List(ReportPrefix(job_id)));
  for (const storage::ObjectInfo& object : objects) MIA_RETURN_IF_ERROR(store.Delete(object.key));
  return absl::OkStatus();
}

}  // namespace mia::server
