// SqliteJobStore: JobStore on one SQLite file (see job_store.h for the
// contract). Every public call takes mu_, runs in one SQLite transaction and
// commits before returning; with WAL and synchronous=FULL a commit is on disk
// when COMMIT returns.
#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/jobs/job_store.h"
#include "core/jobs/store_rules.h"

namespace mia::jobs {
namespace {

using store_rules::ApplyStateChange;
using store_rules::CheckWritable;
using store_rules::Quoted;
using store_rules::ValidateProgress;
using store_rules::kMaxRequestIdBytes;
using store_rules::kMaxUnitBytes;

// Marks the file as a mia job store ("mia1"), so that another application's
// database is recognized and left alone.
constexpr int32_t kApplicationId = 0x6d696131;

using store_rules::Migration;

constexpr Migration kMigrations[] = {
    {1, "jobs, labels and completed units", R"sql(
CREATE TABLE jobs (
  id                TEXT PRIMARY KEY NOT NULL,
  request_id        TEXT,            -- NULL when the client gave none
  spec_json         TEXT NOT NULL,
  spec_hash         TEXT NOT NULL,
  state             TEXT NOT NULL
                    CHECK (state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
  version           INTEGER NOT NULL,
  progress_stage    TEXT NOT NULL,
  progress_done     INTEGER NOT NULL,
  progress_total    INTEGER NOT NULL,
  progress_fraction REAL NOT NULL,
  progress_detail   TEXT NOT NULL,
  create_time       INTEGER NOT NULL,  -- Unix nanoseconds
  start_time        INTEGER,           -- NULL while unset
  end_time          INTEGER,           -- NULL while unset
  error_code        TEXT NOT NULL,
  error_message     TEXT NOT NULL,
  result_dir        TEXT NOT NULL,
  priority          INTEGER NOT NULL
);
CREATE UNIQUE INDEX jobs_by_request_id ON jobs (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX jobs_by_create_time ON jobs (create_time, id);
CREATE INDEX jobs_by_state ON jobs (state, create_time, id);
CREATE TABLE job_labels (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  key    TEXT NOT NULL,
  value  TEXT NOT NULL,
  PRIMARY KEY (job_id, key)
) WITHOUT ROWID;
CREATE TABLE job_units (
  job_id    TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  unit      TEXT NOT NULL,
  value     TEXT NOT NULL,
  done_time INTEGER NOT NULL,     -- Unix nanoseconds
  PRIMARY KEY (job_id, unit)
) WITHOUT ROWID;
)sql"},
    {2, "tenants: each job's owner, request ids unique per tenant", R"sql(
ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
DROP INDEX jobs_by_request_id;
CREATE UNIQUE INDEX jobs_by_tenant_request_id ON jobs (tenant, request_id)
  WHERE request_id IS NOT NULL;
CREATE INDEX jobs_by_tenant ON jobs (tenant, create_time, id);
CREATE TABLE uploads (
  tenant      TEXT NOT NULL,
  digest      TEXT NOT NULL,     -- "sha256:<hex>"
  bytes       INTEGER NOT NULL,
  upload_time INTEGER NOT NULL,  -- Unix nanoseconds
  PRIMARY KEY (tenant, digest)
) WITHOUT ROWID;
)sql"},
};

using store_rules::kJobColumns;
using store_rules::kValidStates;

// The payload that marks a status as SQLite's, with its extended result code
// (SqliteJobStore tells failures of the storage from refused requests by it).
constexpr char kSqlitePayload[] = "mia.sqlite_result_code";

// The database file as messages name it: its name, not the server's path to
// it (clients see these messages).
std::string DbFileName(sqlite3* db) {
  const char* path = db != nullptr ? sqlite3_db_filename(db, "main") : nullptr;
  if (path == nullptr || *path == '\0') return "the job store";
  absl::string_view name(path);
  const size_t slash = name.rfind('/');
  if (slash != absl::string_view::npos) name.remove_prefix(slash + 1);
  return absl::StrCat("the job store (", name, ")");
}

// Maps an SQLite result code to a canonical status. Busy or failing storage is
// Unavailable (retry later); a full disk, a quota or a file-size limit
// ResourceExhausted; a damaged file DataLoss; files the process cannot use
// (read-only ones included) FailedPrecondition: an operator has to act.
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  // SQLite reports a failed write() as an I/O error; its errno says whether
  // the disk was full (SQLite itself maps only ENOSPC to SQLITE_FULL).
  const int sys_errno = db != nullptr ? sqlite3_system_errno(db) : 0;
  const std::string message =
      absl::StrCat("job store: ", what, ": ", detail, " (SQLite code ", rc, ")");
  absl::Status status;
  switch (rc & 0xff) {
    case SQLITE_IOERR:
      if (sys_errno == ENOSPC || sys_errno == EDQUOT || sys_errno == EFBIG) {
        status = absl::ResourceExhaustedError(
            absl::StrCat("job store: ", what, ": cannot write ", DbFileName(db), ": ",
                         std::strerror(sys_errno), " (SQLite code ", rc, ")"));
      } else {
        status = absl::UnavailableError(message);
      }
      break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PROTOCOL:
      status = absl::UnavailableError(message);
      break;
    case SQLITE_CORRUPT:
      status = absl::DataLossError(message);
      break;
    case SQLITE_READONLY:
      status = absl::FailedPreconditionError(
          absl::StrCat(DbFileName(db),
                       " is read-only: the server shows audits but cannot record changes; "
                       "make the file and its folder writable by the server and restart it (",
                       what, ": ", detail, ", SQLite code ", rc, ")"));
      break;
    case SQLITE_NOTADB:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      status = absl::FailedPreconditionError(message);
      break;
    case SQLITE_FULL:
      status = absl::ResourceExhaustedError(absl::StrCat("job store: ", what, ": cannot write ",
                                                         DbFileName(db), ": the disk is full (",
                                                         detail, ", SQLite code ", rc, ")"));
      break;
    default:
      status = absl::InternalError(message);
      break;
  }
  status.SetPayload(kSqlitePayload, absl::Cord(absl::StrCat(rc)));
  return status;
}

// True for a write refused because the file cannot be written at all (read
// only), which lasts until an operator acts. A full disk or an I/O error is
// not counted: each such write fails on its own (RESOURCE_EXHAUSTED,
// UNAVAILABLE), and marking the server not ready for them would keep away
// the very writes that show the disk has room again.
bool IsReadOnlyFailure(const absl::Status& status) {
  const absl::optional<absl::Cord> payload = status.GetPayload(kSqlitePayload);
  int rc = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &rc)) return false;
  return (rc & 0xff) == SQLITE_READONLY;
}

int64_t TimeToColumn(absl::Time t) { return absl::ToUnixNanos(t); }

// A prepared statement, finalized on destruction. Bind errors are kept and
// reported by the next Step.
class Statement {
 public:
  static absl::StatusOr<Statement> Prepare(sqlite3* db, absl::string_view sql) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db, rc, "prepare");
    return Statement(db, stmt);
  }

  Statement(Statement&& other) noexcept
      : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), bind_rc_(other.bind_rc_) {}
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  // Parameters are 1-based, as in SQLite.
  void BindText(int i, absl::string_view v) {
    // A null data pointer would bind SQL NULL; an empty string must stay "".
    Keep(sqlite3_bind_text(stmt_, i, v.data() != nullptr ? v.data() : "",
                           static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void BindInt64(int i, int64_t v) { Keep(sqlite3_bind_int64(stmt_, i, v)); }
  void BindDouble(int i, double v) { Keep(sqlite3_bind_double(stmt_, i, v)); }
  void BindNull(int i) { Keep(sqlite3_bind_null(stmt_, i)); }
  // NULL for an unset time (InfinitePast).
  void BindTime(int i, absl::Time t) {
    if (t == absl::InfinitePast()) {
      BindNull(i);
    } else {
      BindInt64(i, TimeToColumn(t));
    }
  }

  // Advances: true when a row is available, false when done.
  absl::StatusOr<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return SqliteError(db_, bind_rc_, "bind");
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, rc, "step");
  }
  // Runs a statement that returns no rows.
  absl::Status Run() { return Step().status(); }
  // Makes the statement ready to run again with new bindings.
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    bind_rc_ = SQLITE_OK;
  }

  // Columns are 0-based. Text is read by length: it may contain any byte.
  std::string Text(int col) const {
    const void* data = sqlite3_column_blob(stmt_, col);
    const int size = sqlite3_column_bytes(stmt_, col);
    return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
  }
  int64_t Int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  absl::Time Time(int col) const {
    return IsNull(col) ? absl::InfinitePast() : absl::FromUnixNanos(Int64(col));
  }

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  void Keep(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

absl::Status Exec(sqlite3* db, const char* sql, absl::string_view what) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
  sqlite3_free(error);  // sqlite3_errmsg(db) still holds the message
  if (rc != SQLITE_OK) return SqliteError(db, rc, what);
  return absl::OkStatus();
}

// A transaction rolled back unless committed. Writes use IMMEDIATE (take the
// write lock at once, so a busy database fails at BEGIN, before any work);
// reads use DEFERRED (a consistent snapshot across several statements).
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  ~Transaction() {
    // SQLite may already have rolled back by itself (e.g. after SQLITE_FULL).
    if (active_ && !sqlite3_get_autocommit(db_)) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  absl::Status BeginWrite() { return Begin("BEGIN IMMEDIATE"); }
  absl::Status BeginRead() { return Begin("BEGIN DEFERRED"); }
  absl::Status Commit() {
    MIA_RETURN_IF_ERROR(Exec(db_, "COMMIT", "commit"));
    active_ = false;
    return absl::OkStatus();
  }

 private:
  absl::Status Begin(const char* sql) {
    MIA_RETURN_IF_ERROR(Exec(db_, sql, "begin transaction"));
    active_ = true;
    return absl::OkStatus();
  }

  sqlite3* db_;
  bool active_ = false;
};

// Reads the current row of a statement selecting kJobColumns (labels not
// included).
absl::StatusOr<JobRecord> ReadJob(const Statement& s) {
  JobRecord r;
  r.id = s.Text(0);
  r.request_id = s.Text(1);  // NULL reads as ""
  r.spec_json = s.Text(2);
  r.spec_hash = s.Text(3);
  const std::optional<JobState> state = ParseJobState(s.Text(4));
  if (!state.has_value()) {
    return absl::DataLossError(
        absl::StrCat("job store: job ", Quoted(r.id), " has no valid state"));
  }
  r.state = *state;
  r.version = s.Int64(5);
  r.progress.stage = s.Text(6);
  r.progress.done = s.Int64(7);
  r.progress.total = s.Int64(8);
  r.progress.fraction = s.Double(9);
  r.progress.detail = s.Text(10);
  r.create_time = s.Time(11);
  r.start_time = s.Time(12);
  r.end_time = s.Time(13);
  r.error_code = s.Text(14);
  r.error_message = s.Text(15);
  r.result_dir = s.Text(16);
  r.priority = static_cast<int>(s.Int64(17));
  r.tenant = s.Text(18);
  return r;
}

absl::Status LoadLabels(Statement& labels, JobRecord* r) {
  labels.Reset();
  labels.BindText(1, r->id);
  while (true) {
    MIA_ASSIGN_OR_RETURN(const bool row, labels.Step());
    if (!row) return absl::OkStatus();
    r->labels[labels.Text(0)] = labels.Text(1);
  }
}

absl::StatusOr<Statement> PrepareLabels(sqlite3* db) {
  return Statement::Prepare(db, "SELECT key, value FROM job_labels WHERE job_id = ?1");
}

// Runs a query selecting kJobColumns and returns every row with its labels.
absl::StatusOr<std::vector<JobRecord>> ReadJobs(sqlite3* db, Statement& query) {
  MIA_ASSIGN_OR_RETURN(Statement labels, PrepareLabels(db));
  std::vector<JobRecord> jobs;
  while (true) {
    MIA_ASSIGN_OR_RETURN(const bool row, query.Step());
    if (!row) break;
    MIA_ASSIGN_OR_RETURN(JobRecord r, ReadJob(query));
    jobs.push_back(std::move(r));
  }
  for (JobRecord& r : jobs) MIA_RETURN_IF_ERROR(LoadLabels(labels, &r));
  return jobs;
}

// The job with `id` or with `request_id` (whichever column is named), if any.
absl::StatusOr<std::optional<JobRecord>> FindJob(sqlite3* db, const char* column,
                                                 absl::string_view value) {
  MIA_ASSIGN_OR_RETURN(
      Statement q, Statement::Prepare(db, absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE ",
                                                       column, " = ?1")));
  q.BindText(1, value);
  MIA_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, ReadJobs(db, q));
  if (jobs.empty()) return std::optional<JobRecord>();
  return std::optional<JobRecord>(std::move(jobs.front()));
}

// The job of `tenant` with this request id, if any.
absl::StatusOr<std::optional<JobRecord>> FindRequest(sqlite3* db, absl::string_view tenant,
                                                    absl::string_view request_id) {
  MIA_ASSIGN_OR_RETURN(
      Statement q,
      Statement::Prepare(db, absl::StrCat("SELECT ", kJobColumns,
                                          " FROM jobs WHERE tenant = ?1 AND request_id = ?2")));
  q.BindText(1, tenant);
  q.BindText(2, request_id);
  MIA_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, ReadJobs(db, q));
  if (jobs.empty()) return std::optional<JobRecord>();
  return std::optional<JobRecord>(std::move(jobs.front()));
}

absl::StatusOr<JobRecord> LoadJob(sqlite3* db, absl::string_view id) {
  MIA_ASSIGN_OR_RETURN(std::optional<JobRecord> job, FindJob(db, "id", id));
  if (!job.has_value()) return absl::NotFoundError(absl::StrCat("job ", Quoted(id), " not found"));
  return std::move(*job);
}

absl::Status ReplaceLabels(sqlite3* db, const JobRecord& r) {
  MIA_ASSIGN_OR_RETURN(Statement del,
                       Statement::Prepare(db, "DELETE FROM job_labels WHERE job_id = ?1"));
  del.BindText(1, r.id);
  MIA_RETURN_IF_ERROR(del.Run());
  MIA_ASSIGN_OR_RETURN(
      Statement ins,
      Statement::Prepare(db, "INSERT INTO job_labels (job_id, key, value) VALUES (?1, ?2, ?3)"));
  for (const auto& [key, value] : r.labels) {
    ins.Reset();
    ins.BindText(1, r.id);
    ins.BindText(2, key);
    ins.BindText(3, value);
    MIA_RETURN_IF_ERROR(ins.Run());
  }
  return absl::OkStatus();
}

// Binds the mutable columns as parameters ?2 .. ?14 (shared by INSERT and
// UPDATE so that the two cannot drift apart).
void BindMutable(Statement& s, const JobRecord& r) {
  s.BindText(2, JobStateName(r.state));
  s.BindInt64(3, r.version);
  s.BindText(4, r.progress.stage);
  s.BindInt64(5, r.progress.done);
  s.BindInt64(6, r.progress.total);
  s.BindDouble(7, r.progress.fraction);
  s.BindText(8, r.progress.detail);
  s.BindTime(9, r.start_time);
  s.BindTime(10, r.end_time);
  s.BindText(11, r.error_code);
  s.BindText(12, r.error_message);
  s.BindText(13, r.result_dir);
  s.BindInt64(14, r.priority);
}

absl::Status InsertJob(sqlite3* db, const JobRecord& r) {
  MIA_ASSIGN_OR_RETURN(
      Statement s,
      Statement::Prepare(db, absl::StrCat("INSERT INTO jobs (id, state, version, progress_stage, "
                                          "progress_done, progress_total, progress_fraction, "
                                          "progress_detail, start_time, end_time, error_code, "
                                          "error_message, result_dir, priority, request_id, "
                                          "spec_json, spec_hash, create_time, tenant) VALUES "
                                          "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                                          "?13, ?14, ?15, ?16, ?17, ?18, ?19)")));
  s.BindText(1, r.id);
  BindMutable(s, r);
  if (r.request_id.empty()) {
    s.BindNull(15);
  } else {
    s.BindText(15, r.request_id);
  }
  s.BindText(16, r.spec_json);
  s.BindText(17, r.spec_hash);
  s.BindTime(18, r.create_time);
  s.BindText(19, r.tenant);
  MIA_RETURN_IF_ERROR(s.Run());
  return ReplaceLabels(db, r);
}

// Writes the mutable fields of `r` (whose version is already the new one).
absl::Status WriteJob(sqlite3* db, const JobRecord& r, bool labels_changed) {
  MIA_ASSIGN_OR_RETURN(
      Statement s, Statement::Prepare(
                       db,
                       "UPDATE jobs SET state = ?2, version = ?3, progress_stage = ?4, "
                       "progress_done = ?5, progress_total = ?6, progress_fraction = ?7, "
                       "progress_detail = ?8, start_time = ?9, end_time = ?10, error_code = "
                       "?11, error_message = ?12, result_dir = ?13, priority = ?14 WHERE id = ?1"));
  s.BindText(1, r.id);
  BindMutable(s, r);
  MIA_RETURN_IF_ERROR(s.Run());
  if (sqlite3_changes(db) != 1) {
    return absl::InternalError(absl::StrCat("job store: job ", Quoted(r.id), " vanished"));
  }
  return labels_changed ? ReplaceLabels(db, r) : absl::OkStatus();
}

absl::StatusOr<int64_t> QueryInt(sqlite3* db, const char* sql) {
  MIA_ASSIGN_OR_RETURN(Statement s, Statement::Prepare(db, sql));
  MIA_ASSIGN_OR_RETURN(const bool row, s.Step());
  if (!row) return absl::InternalError(absl::StrCat("job store: no result from ", sql));
  return s.Int64(0);
}

// Connection settings; the first statements that read the file, so a file
// that is not a database fails here.
absl::Status Configure(sqlite3* db, const std::string& path) {
  absl::StatusOr<Statement> wal = Statement::Prepare(db, "PRAGMA journal_mode = WAL");
  absl::StatusOr<bool> row = wal.ok() ? wal->Step() : absl::StatusOr<bool>(wal.status());
  if (!row.ok()) {
    if (sqlite3_errcode(db) == SQLITE_NOTADB) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job store: ", path, " is not an SQLite database (or its header is damaged)"));
    }
    return row.status();
  }
  if (!*row || wal->Text(0) != "wal") {
    return absl::FailedPreconditionError(absl::StrCat(
        "job store: ", path, ": cannot use the WAL journal (is it on a network file system?)"));
  }
  MIA_RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous = FULL", "set synchronous"));
  return Exec(db, "PRAGMA foreign_keys = ON", "enable foreign keys");
}

absl::Status Migrate(sqlite3* db, const std::string& path, absl::Time now) {
  Transaction txn(db);
  MIA_RETURN_IF_ERROR(txn.BeginWrite());
  MIA_ASSIGN_OR_RETURN(const int64_t app_id, QueryInt(db, "PRAGMA application_id"));
  if (app_id != kApplicationId) {
    MIA_ASSIGN_OR_RETURN(const int64_t objects, QueryInt(db, "SELECT count(*) FROM sqlite_master"));
    if (app_id != 0 || objects != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("job store: ", path,
                       " is an SQLite database of another application, not a mia job "
                       "store; refusing to modify it"));
    }
    MIA_RETURN_IF_ERROR(Exec(db, absl::StrCat("PRAGMA application_id = ", kApplicationId).c_str(),
                             "set application_id"));
  }
  MIA_RETURN_IF_ERROR(Exec(db,
                           "CREATE TABLE IF NOT EXISTS schema_migrations ("
                           "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                           "applied_time INTEGER NOT NULL)",
                           "create schema_migrations"));
  MIA_ASSIGN_OR_RETURN(const int64_t current,
                       QueryInt(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
  const int latest = SqliteJobStore::LatestSchemaVersion();
  if (current > latest) {
    return absl::FailedPreconditionError(absl::StrCat("job store: ", path, " has schema version ",
                                                      current, ", newer than this mia supports (",
                                                      latest, "): upgrade mia"));
  }
  for (const Migration& m : kMigrations) {
    if (m.version <= current) continue;
    MIA_RETURN_IF_ERROR(Exec(db, m.sql, absl::StrCat("migration ", m.version)));
    MIA_ASSIGN_OR_RETURN(
        Statement record,
        Statement::Prepare(db,
                           "INSERT INTO schema_migrations (version, name, applied_time) "
                           "VALUES (?1, ?2, ?3)"));
    record.BindInt64(1, m.version);
    record.BindText(2, m.name);
    record.BindInt64(3, TimeToColumn(now));
    MIA_RETURN_IF_ERROR(record.Run());
  }
  return txn.Commit();
}

}  // namespace

int SqliteJobStore::LatestSchemaVersion() { return std::end(kMigrations)[-1].version; }

absl::StatusOr<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(
    const std::string& path, const SqliteJobStoreOptions& options) {
  sqlite3* raw = nullptr;
  // NOMUTEX: the store's own mutex serializes every use of the connection.
  const int mode =
      options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, mode | SQLITE_OPEN_NOMUTEX, nullptr);
  // Owns the handle until the store does; sqlite3_open_v2 returns one even on
  // failure.
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, &sqlite3_close_v2);
  if (rc != SQLITE_OK) return SqliteError(db.get(), rc, absl::StrCat("open ", path));
  sqlite3_busy_timeout(db.get(), static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));
  MIA_RETURN_IF_ERROR(Configure(db.get(), path));
  MIA_RETURN_IF_ERROR(Migrate(db.get(), path, options.clock()));
  if (options.max_bytes > 0) {
    MIA_ASSIGN_OR_RETURN(const int64_t page_size, QueryInt(db.get(), "PRAGMA page_size"));
    const int64_t pages = std::max<int64_t>(1, options.max_bytes / std::max<int64_t>(page_size, 1));
    MIA_RETURN_IF_ERROR(Exec(db.get(), absl::StrCat("PRAGMA max_page_count = ", pages).c_str(),
                             "set max_page_count"));
  }
  // SQLite opens a file it may not write (its mode, a read-only mount) for
  // reading without a word; reads work, every write fails.
  const bool read_only = sqlite3_db_readonly(db.get(), "main") == 1;
  std::unique_ptr<SqliteJobStore> store(new SqliteJobStore(db.release(), path, options));
  store->read_only_ = read_only;
  store->writable_.store(!read_only);
  return store;
}

SqliteJobStore::SqliteJobStore(sqlite3* db, std::string path, SqliteJobStoreOptions options)
    : path_(std::move(path)), options_(std::move(options)), db_(db) {}

SqliteJobStore::~SqliteJobStore() { sqlite3_close_v2(db_); }

void SqliteJobStore::Track(const absl::Status& status) {
  bool now;
  if (read_only_) {
    return;  // writable_ stays false; a call that wrote nothing proves nothing
  } else if (status.ok()) {
    now = true;
  } else if (IsReadOnlyFailure(status)) {
    now = false;
  } else {
    return;  // a refused request, or a passing failure, says nothing lasting
  }
  if (writable_.exchange(now) != now && options_.on_writable_change) {
    options_.on_writable_change(now);
  }
}

absl::StatusOr<CreateResult> SqliteJobStore::Create(const JobRecord& record) {
  return Tracked(CreateImpl(record));
}
absl::StatusOr<JobRecord> SqliteJobStore::Update(const JobRecord& record) {
  return Tracked(UpdateImpl(record));
}
absl::StatusOr<JobRecord> SqliteJobStore::Transition(absl::string_view id, JobState to,
                                                     const TransitionDetails& details) {
  return Tracked(TransitionImpl(id, to, details));
}
absl::StatusOr<JobRecord> SqliteJobStore::UpdateProgress(absl::string_view id,
                                                         const JobProgress& progress) {
  return Tracked(UpdateProgressImpl(id, progress));
}
absl::Status SqliteJobStore::Delete(absl::string_view id) { return Tracked(DeleteImpl(id)); }
absl::Status SqliteJobStore::MarkUnitDone(absl::string_view job_id, absl::string_view unit,
                                          absl::string_view value) {
  return Tracked(MarkUnitDoneImpl(job_id, unit, value));
}

absl::Status SqliteJobStore::RecordUpload(absl::string_view tenant, absl::string_view digest,
                                          int64_t bytes) {
  return Tracked(RecordUploadImpl(tenant, digest, bytes));
}

absl::StatusOr<CreateResult> SqliteJobStore::CreateImpl(const JobRecord& record) {
  MIA_ASSIGN_OR_RETURN(JobRecord stored, store_rules::NewRecord(record, options_.clock));

  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginWrite());
  if (!record.request_id.empty()) {
    MIA_ASSIGN_OR_RETURN(std::optional<JobRecord> existing,
                         FindRequest(db_, record.tenant, record.request_id));
    if (existing.has_value()) return store_rules::RepeatedRequest(*std::move(existing), record);
  }
  MIA_ASSIGN_OR_RETURN(std::optional<JobRecord> same_id, FindJob(db_, "id", record.id));
  if (same_id.has_value()) {
    return absl::AlreadyExistsError(absl::StrCat("job ", record.id, " already exists"));
  }
  MIA_RETURN_IF_ERROR(InsertJob(db_, stored));
  MIA_RETURN_IF_ERROR(txn.Commit());
  return CreateResult{std::move(stored), true};
}

absl::StatusOr<JobRecord> SqliteJobStore::Get(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginRead());
  MIA_ASSIGN_OR_RETURN(JobRecord job, LoadJob(db_, id));
  MIA_RETURN_IF_ERROR(txn.Commit());
  return job;
}

absl::StatusOr<JobPage> SqliteJobStore::List(const ListOptions& options) {
  MIA_ASSIGN_OR_RETURN(const store_rules::PageRequest request,
                       store_rules::ReadPageRequest(options));
  const int page_size = request.page_size;
  const std::optional<PageCursor>& cursor = request.cursor;
  // Only placeholders are spliced into the SQL, never values.
  std::string sql =
      absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE state IN ", kValidStates);
  if (options.state.has_value()) absl::StrAppend(&sql, " AND state = ?1");
  if (options.tenant.has_value()) absl::StrAppend(&sql, " AND tenant = ?5");
  if (cursor.has_value()) absl::StrAppend(&sql, " AND (create_time, id) > (?2, ?3)");
  absl::StrAppend(&sql, " ORDER BY create_time, id LIMIT ?4");

  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginRead());
  MIA_ASSIGN_OR_RETURN(Statement q, Statement::Prepare(db_, sql));
  if (options.state.has_value()) q.BindText(1, JobStateName(*options.state));
  if (options.tenant.has_value()) q.BindText(5, *options.tenant);
  if (cursor.has_value()) {
    q.BindInt64(2, TimeToColumn(cursor->create_time));
    q.BindText(3, cursor->id);
  }
  q.BindInt64(4, page_size + 1);  // one more tells whether another page follows
  MIA_ASSIGN_OR_RETURN(std::vector<JobRecord> rows, ReadJobs(db_, q));
  MIA_RETURN_IF_ERROR(txn.Commit());
  return store_rules::MakePage(std::move(rows), page_size, options);
}

absl::StatusOr<JobRecord> SqliteJobStore::UpdateImpl(const JobRecord& record) {
  MIA_RETURN_IF_ERROR(ValidateProgress(record.progress));
  const absl::Time now = options_.clock();
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginWrite());
  MIA_ASSIGN_OR_RETURN(const JobRecord stored, LoadJob(db_, record.id));
  MIA_ASSIGN_OR_RETURN(JobRecord next, store_rules::UpdatedRecord(stored, record, now));
  MIA_RETURN_IF_ERROR(WriteJob(db_, next, next.labels != stored.labels));
  MIA_RETURN_IF_ERROR(txn.Commit());
  return next;
}

absl::StatusOr<JobRecord> SqliteJobStore::TransitionImpl(absl::string_view id, JobState to,
                                                         const TransitionDetails& details) {
  MIA_RETURN_IF_ERROR(store_rules::ValidateTransition(id, to, details));
  const absl::Time now = options_.clock();
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginWrite());
  MIA_ASSIGN_OR_RETURN(JobRecord job, LoadJob(db_, id));
  MIA_RETURN_IF_ERROR(store_rules::ApplyTransition(&job, to, details, now));
  MIA_RETURN_IF_ERROR(WriteJob(db_, job, /*labels_changed=*/false));
  MIA_RETURN_IF_ERROR(txn.Commit());
  return job;
}

absl::StatusOr<JobRecord> SqliteJobStore::UpdateProgressImpl(absl::string_view id,
                                                             const JobProgress& progress) {
  MIA_RETURN_IF_ERROR(ValidateProgress(progress));
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginWrite());
  MIA_ASSIGN_OR_RETURN(JobRecord job, LoadJob(db_, id));
  MIA_RETURN_IF_ERROR(CheckWritable(job));
  job.progress = progress;
  ++job.version;
  MIA_RETURN_IF_ERROR(WriteJob(db_, job, /*labels_changed=*/false));
  MIA_RETURN_IF_ERROR(txn.Commit());
  return job;
}

absl::Status SqliteJobStore::DeleteImpl(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginWrite());
  MIA_ASSIGN_OR_RETURN(const JobRecord job, LoadJob(db_, id));
  if (!IsTerminal(job.state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job.id, " is ", JobStateName(job.state), ": only finished jobs can be deleted"));
  }
  // Labels and units go with it (ON DELETE CASCADE).
  MIA_ASSIGN_OR_RETURN(Statement del, Statement::Prepare(db_, "DELETE FROM jobs WHERE id = ?1"));
  del.BindText(1, job.id);
  MIA_RETURN_IF_ERROR(del.Run());
  return txn.Commit();
}

absl::Status SqliteJobStore::ProbeWrite() {
  if (read_only_) {
    return absl::FailedPreconditionError(
        "the job store (jobs.db) was opened for reading only; restart the server once it can be "
        "written");
  }
  return Tracked(ProbeWriteImpl());
}

absl::Status SqliteJobStore::ProbeWriteImpl() {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginWrite());
  // A row rewritten with its own values: SQLite still writes the page, so the
  // commit needs a writable file, and nothing changes.
  MIA_ASSIGN_OR_RETURN(
      Statement probe,
      Statement::Prepare(db_,
                         "UPDATE schema_migrations SET version = version WHERE version = "
                         "(SELECT MAX(version) FROM schema_migrations)"));
  MIA_RETURN_IF_ERROR(probe.Run());
  return txn.Commit();
}

absl::StatusOr<std::vector<std::string>> SqliteJobStore::ListUnreadable() {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginRead());
  MIA_ASSIGN_OR_RETURN(
      Statement q,
      Statement::Prepare(db_, absl::StrCat("SELECT id FROM jobs WHERE state NOT IN ", kValidStates,
                                           " ORDER BY create_time, id")));
  std::vector<std::string> ids;
  while (true) {
    MIA_ASSIGN_OR_RETURN(const bool row, q.Step());
    if (!row) break;
    ids.push_back(Quoted(q.Text(0)));
  }
  MIA_RETURN_IF_ERROR(txn.Commit());
  return ids;
}

absl::StatusOr<std::vector<JobRecord>> SqliteJobStore::ListUnfinished() {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginRead());
  MIA_ASSIGN_OR_RETURN(
      Statement q,
      Statement::Prepare(db_, absl::StrCat("SELECT ", kJobColumns,
                                           " FROM jobs WHERE state IN ('PENDING', 'RUNNING') "
                                           "ORDER BY priority DESC, create_time, id")));
  MIA_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, ReadJobs(db_, q));
  MIA_RETURN_IF_ERROR(txn.Commit());
  return jobs;
}

absl::Status SqliteJobStore::MarkUnitDoneImpl(absl::string_view job_id, absl::string_view unit,
                                              absl::string_view value) {
  if (unit.empty() || unit.size() > kMaxUnitBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("unit: must have 1 to ", kMaxUnitBytes, " bytes"));
  }
  const absl::Time now = options_.clock();
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginWrite());
  MIA_ASSIGN_OR_RETURN(const JobRecord job, LoadJob(db_, job_id));
  MIA_RETURN_IF_ERROR(CheckWritable(job));
  MIA_ASSIGN_OR_RETURN(
      Statement s,
      Statement::Prepare(db_,
                         "INSERT OR REPLACE INTO job_units (job_id, unit, value, done_time) "
                         "VALUES (?1, ?2, ?3, ?4)"));
  s.BindText(1, job.id);
  s.BindText(2, unit);
  s.BindText(3, value);
  s.BindInt64(4, TimeToColumn(now));
  MIA_RETURN_IF_ERROR(s.Run());
  return txn.Commit();
}

absl::StatusOr<std::map<std::string, std::string>> SqliteJobStore::ListUnitsDone(
    absl::string_view job_id) {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginRead());
  MIA_ASSIGN_OR_RETURN(const JobRecord job, LoadJob(db_, job_id));
  MIA_ASSIGN_OR_RETURN(
      Statement q, Statement::Prepare(db_, "SELECT unit, value FROM job_units WHERE job_id = ?1"));
  q.BindText(1, job.id);
  std::map<std::string, std::string> units;
  while (true) {
    MIA_ASSIGN_OR_RETURN(const bool row, q.Step());
    if (!row) break;
    units[q.Text(0)] = q.Text(1);
  }
  MIA_RETURN_IF_ERROR(txn.Commit());
  return units;
}

absl::StatusOr<int64_t> SqliteJobStore::CountJobs(const std::optional<std::string>& tenant,
                                                  JobState state) {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginRead());
  MIA_ASSIGN_OR_RETURN(
      Statement q,
      Statement::Prepare(db_, tenant.has_value()
                                  ? "SELECT count(*) FROM jobs WHERE state = ?1 AND tenant = ?2"
                                  : "SELECT count(*) FROM jobs WHERE state = ?1"));
  q.BindText(1, JobStateName(state));
  if (tenant.has_value()) q.BindText(2, *tenant);
  MIA_ASSIGN_OR_RETURN(const bool row, q.Step());
  const int64_t n = row ? q.Int64(0) : 0;
  MIA_RETURN_IF_ERROR(txn.Commit());
  return n;
}

absl::Status SqliteJobStore::RecordUploadImpl(absl::string_view tenant, absl::string_view digest,
                                              int64_t bytes) {
  if (digest.empty() || bytes < 0) {
    return absl::InvalidArgumentError("upload: a digest and a size of at least 0 are required");
  }
  const absl::Time now = options_.clock();
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginWrite());
  MIA_ASSIGN_OR_RETURN(Statement s,
                       Statement::Prepare(db_,
                                          "INSERT INTO uploads (tenant, digest, bytes, upload_time) "
                                          "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING"));
  s.BindText(1, tenant);
  s.BindText(2, digest);
  s.BindInt64(3, bytes);
  s.BindTime(4, now);
  MIA_RETURN_IF_ERROR(s.Run());
  return txn.Commit();
}

absl::StatusOr<bool> SqliteJobStore::HasUpload(absl::string_view tenant,
                                               absl::string_view digest) {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginRead());
  MIA_ASSIGN_OR_RETURN(
      Statement q,
      Statement::Prepare(db_, "SELECT 1 FROM uploads WHERE tenant = ?1 AND digest = ?2"));
  q.BindText(1, tenant);
  q.BindText(2, digest);
  MIA_ASSIGN_OR_RETURN(const bool row, q.Step());
  MIA_RETURN_IF_ERROR(txn.Commit());
  return row;
}

absl::StatusOr<int64_t> SqliteJobStore::UploadBytes(absl::string_view tenant) {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_);
  MIA_RETURN_IF_ERROR(txn.BeginRead());
  MIA_ASSIGN_OR_RETURN(
      Statement q,
      Statement::Prepare(db_, "SELECT coalesce(sum(bytes), 0) FROM uploads WHERE tenant = ?1"));
  q.BindText(1, tenant);
  MIA_ASSIGN_OR_RETURN(const bool row, q.Step());
  const int64_t n = row ? q.Int64(0) : 0;
  MIA_RETURN_IF_ERROR(txn.Commit());
  return n;
}

}  // namespace mia::jobs
