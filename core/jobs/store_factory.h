// One place that turns a `--store` location into a JobStore: a PostgreSQL URL
// ("postgresql://..." or "postgres://...") opens a PostgresJobStore, which is
// also the ClusterQueue replicas coordinate through; anything else is the
// path of an SQLite file (SqliteJobStore, one server only).
#ifndef MIA_CORE_JOBS_STORE_FACTORY_H_
#define MIA_CORE_JOBS_STORE_FACTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/jobs/cluster_queue.h"
#include "core/jobs/job_store.h"
#include "core/jobs/postgres_job_store.h"

namespace mia::jobs {

// What OpenJobStore opened.
struct OpenedStore {
  std::unique_ptr<JobStore> store;
  // The same object as a work queue: set for PostgreSQL, nullptr for SQLite.
  ClusterQueue* queue = nullptr;
  // For logs and messages: the SQLite path, or the URL without its password.
  std::string description;
  bool is_postgres = false;
};

struct OpenJobStoreOptions {
  SqliteJobStoreOptions sqlite;
  PostgresJobStoreOptions postgres;
};

// Opens the store at `location` (see above) with the options of its kind.
// Errors as the store's Open says.
absl::StatusOr<OpenedStore> OpenJobStore(const std::string& location,
                                         const OpenJobStoreOptions& options = {});

}  // namespace mia::jobs

#endif  // MIA_CORE_JOBS_STORE_FACTORY_H_
