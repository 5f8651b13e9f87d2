// The server's side of --artifact_store (core/storage/object_store.h): what
// replicas share besides the model cache. Layout in the store:
//   uploads/<sha256>                 an uploaded artifact
//   reports/<job id>/report/<file>   a SUCCEEDED audit's report files
//   reports/<job id>/report.files    its manifest (result_loader.h), written last
// Local copies live where a server without a shared store keeps them
// (<data_dir>/artifacts/<sha256>, <data_dir>/jobs/<id>/report), so every
// reader works on local files once fetched.
//
// Free functions; safe from any thread (the store is).
#ifndef MIA_SERVER_SHARED_STORE_H_
#define MIA_SERVER_SHARED_STORE_H_

#include <string>

#include "absl/status/status.h"

namespace mia::storage {
class ObjectStore;
}  // namespace mia::storage

namespace mia::server {

// Uploads the artifact at `local_path` (content address `sha256`) unless the
// store already has an object of its size.
absl::Status PublishUpload(storage::ObjectStore& store, const std::string& sha256,
                           const std::string& local_path);

// Downloads uploads/<sha256> to `local_path` (atomically) after checking its
// SHA-256: NOT_FOUND when the store has no such upload, DATA_LOSS when its
// bytes do not hash to its name, UNAVAILABLE when the store is down.
absl::Status FetchUpload(storage::ObjectStore& store, const std::string& sha256,
                         const std::string& local_path);

// Uploads the report folder `report_dir` of job `job_id` and then its
// manifest (<report_dir>.files, when present).
absl::Status PublishReport(storage::ObjectStore& store, const std::string& job_id,
                           const std::string& report_dir);

// Downloads the report of `job_id` into `report_dir` (a fresh temporary
// folder renamed into place, so readers see all of it or nothing) and its
// manifest beside it. NOT_FOUND when the store has no complete report (no
// manifest) of that job.
absl::Status FetchReport(storage::ObjectStore& store, const std::string& job_id,
                         const std::string& report_dir);

// Removes the report of `job_id` from the store (manifest first, so that no
// reader takes what remains for a report).
absl::Status DeleteSharedReport(storage::ObjectStore& store, const std::string& job_id);

}  // namespace mia::server

#endif  // MIA_SERVER_SHARED_STORE_H_
