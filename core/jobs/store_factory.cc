#include "core/jobs/store_factory.h"

#include <utility>

namespace mia::jobs {

absl::StatusOr<OpenedStore> OpenJobStore(const std::string& location,
                                         const OpenJobStoreOptions& options) {
  OpenedStore opened;
  if (IsPostgresUrl(location)) {
    absl::StatusOr<std::unique_ptr<PostgresJobStore>> pg =
        PostgresJobStore::Open(location, options.postgres);
    if (!pg.ok()) return pg.status();
    opened.queue = pg->get();
    opened.description = (*pg)->Describe();
    opened.is_postgres = true;
    opened.store = *std::move(pg);
    return opened;
  }
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> sqlite =
      SqliteJobStore::Open(location, options.sqlite);
  if (!sqlite.ok()) return sqlite.status();
  opened.description = location;
  opened.store = *std::move(sqlite);
  return opened;
}

}  // namespace mia::jobs
