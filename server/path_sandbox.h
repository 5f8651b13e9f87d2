// The server's path sandbox: the folders an operator lets clients' specs
// read from (data roots), where uploads and jobs live, and the one function
// that resolves a client's server path inside them (`..` and symbolic links
// resolved first, so nothing escapes). Transport-free; safe from any thread;
// reads the filesystem as it is at the call.
#ifndef MIA_SERVER_PATH_SANDBOX_H_
#define MIA_SERVER_PATH_SANDBOX_H_

#include <memory>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mia::storage {
class ObjectStore;  // core/storage/object_store.h
}  // namespace mia::storage

namespace mia::server {

// Where the server may read inputs and write files; set by the operator at
// start (flags or config file), fixed for the server's lifetime.
struct ServerRoots {
  // Folders a DataRef.server_path may point into (after resolving `..` and
  // symbolic links). Relative server paths are looked up under each root in
  // order. Empty: only uploaded artifacts can be referenced.
  std::vector<std::string> data_roots;
  // Uploaded artifacts: artifact_dir/<64 hex id> (a file, or a folder for a
  // folder-shaped upload). Empty: the server holds no uploads.
  std::string artifact_dir;
  // Which stored artifacts the caller may reference (tenant scoping, set per
  // request by the backend); null: all of them. An artifact it may not see
  // is reported exactly as one the server does not hold.
  std::function<bool(const std::string& artifact_id)> artifact_visible;
  // One folder per job: jobs_dir/<job id>/ (its report under report/).
  std::string jobs_dir;
  // Trained models and signals shared by every job (the pipeline's artifact
  // store, keyed by what determines each model), so a job reuses the models an
  // earlier job trained. Empty: the folder `cache` beside jobs_dir.
  std::string cache_dir;
  // The store shared by replicas (--artifact_store; shared_store.h): uploads
  // and reports absent here are fetched from it, and those made here are put
  // there. Null: this server's folders are all there is.
  std::shared_ptr<storage::ObjectStore> shared_store;

  // cache_dir, or <parent of jobs_dir>/cache when it is empty.
  std::string ModelCacheDir() const;
};

// A server path resolved inside one of the data roots. The status message is
// a description for a FieldViolation (no path echoed: it may be a client's).
absl::StatusOr<std::string> ResolveServerPath(const std::string& raw, const ServerRoots& roots);

}  // namespace mia::server

#endif  // MIA_SERVER_PATH_SANDBOX_H_
