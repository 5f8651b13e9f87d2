// PostgresJobStore: JobStore and ClusterQueue on PostgreSQL through libpq (see
// postgres_job_store.h). Every public call runs in one transaction on one
// pooled connection; rows that a call changes are locked with SELECT ... FOR
// UPDATE first, so the READ COMMITTED default gives each call the same
// all-or-nothing, serialized outcome as SqliteJobStore's.
#include "core/jobs/postgres_job_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <iterator>
#include <set>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "core/common/status_macros.h"
#include "core/jobs/store_rules.h"

namespace mia::jobs {

using store_rules::ApplyStateChange;
using store_rules::CheckWritable;
using store_rules::kMaxRequestIdBytes;
using store_rules::kMaxUnitBytes;
using store_rules::Migration;
using store_rules::Quoted;
using store_rules::ValidateProgress;

namespace {

constexpr Migration kMigrations[] = {
    {1, "jobs, labels, done units, uploads and the work queue", R"sql(
CREATE TABLE jobs (
  id                TEXT PRIMARY KEY,
  request_id        TEXT,              -- NULL when the client gave none
  spec_json         BYTEA NOT NULL,    -- opaque bytes, as accepted
  spec_hash         TEXT NOT NULL,
  state             TEXT NOT NULL
                    CHECK (state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
  version           BIGINT NOT NULL,
  progress_stage    TEXT NOT NULL,
  progress_done     BIGINT NOT NULL,
  progress_total    BIGINT NOT NULL,
  progress_fraction DOUBLE PRECISION NOT NULL,
  progress_detail   TEXT NOT NULL,
  create_time       BIGINT NOT NULL,   -- Unix nanoseconds, from the replica's clock
  start_time        BIGINT,            -- NULL while unset
  end_time          BIGINT,            -- NULL while unset
  error_code        TEXT NOT NULL,
  error_message     TEXT NOT NULL,
  result_dir        TEXT NOT NULL,
  priority          INTEGER NOT NULL,
  tenant            TEXT NOT NULL DEFAULT '',
  -- The work queue: the replica running the audit, until when (the
  -- database's clock), and whether a cancellation waits for its holder.
  holder            TEXT,
  lease_until       TIMESTAMPTZ,
  cancel_requested  BOOLEAN NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX jobs_by_tenant_request_id ON jobs (tenant, request_id)
  WHERE request_id IS NOT NULL;
CREATE INDEX jobs_by_create_time ON jobs (create_time, id);
CREATE INDEX jobs_by_state ON jobs (state, create_time, id);
CREATE INDEX jobs_by_tenant ON jobs (tenant, create_time, id);
CREATE INDEX jobs_by_holder ON jobs (holder) WHERE holder IS NOT NULL;
CREATE TABLE job_labels (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  key    TEXT NOT NULL,
  value  TEXT NOT NULL,
  PRIMARY KEY (job_id, key)
);
CREATE TABLE job_units (
  job_id    TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  unit      TEXT NOT NULL,
  value     TEXT NOT NULL,
  done_time BIGINT NOT NULL,  -- Unix nanoseconds
  PRIMARY KEY (job_id, unit)
);
CREATE TABLE uploads (
  tenant      TEXT NOT NULL,
  digest      TEXT NOT NULL,    -- "sha256:<hex>"
  bytes       BIGINT NOT NULL,
  upload_time BIGINT NOT NULL,  -- Unix nanoseconds
  PRIMARY KEY (tenant, digest)
);
CREATE TABLE work_units (
  job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  unit        TEXT NOT NULL,     -- "model:3"
  seq         INTEGER NOT NULL,  -- position in the audit's list: earlier first
  state       TEXT NOT NULL DEFAULT 'PENDING'
              CHECK (state IN ('PENDING', 'RUNNING', 'DONE', 'FAILED')),
  holder      TEXT,              -- the replica running it
  lease_until TIMESTAMPTZ,
  attempts    INTEGER NOT NULL DEFAULT 0,
  value       TEXT,              -- DONE: the first value recorded
  error_code  TEXT,              -- the last failed attempt's
  PRIMARY KEY (job_id, unit)
);
CREATE INDEX work_units_by_state ON work_units (state, lease_until);
CREATE INDEX work_units_by_job ON work_units (job_id, seq);
CREATE INDEX work_units_by_holder ON work_units (holder) WHERE holder IS NOT NULL;
)sql"},
};

// Serializes migrations of replicas starting at once ("mia1" "jobs").
constexpr int64_t kMigrationLockKey = 0x6d6961316a6f6273;

using store_rules::kJobColumns;
using store_rules::kValidStates;

// Marks a status as a refused write to a read-only database (a standby, or
// default_transaction_read_only), which lasts until an operator acts.
constexpr char kReadOnlyPayload[] = "mia.postgres_read_only";

// A query parameter in text format; `null` for SQL NULL.
struct Param {
  std::string text;
  bool null = false;
};
Param P(absl::string_view v) { return Param{std::string(v), false}; }
Param P(int64_t v) { return Param{absl::StrCat(v), false}; }
Param P(int v) { return Param{absl::StrCat(v), false}; }
Param PDouble(double v) { return Param{absl::StrFormat("%.17g", v), false}; }
Param PNull() { return Param{std::string(), true}; }
// NULL for an unset time (InfinitePast), else Unix nanoseconds.
Param PTime(absl::Time t) {
  return t == absl::InfinitePast() ? PNull() : P(static_cast<int64_t>(absl::ToUnixNanos(t)));
}
// Bytes of any value (BYTEA, hex input format).
Param PBytes(absl::string_view v) {
  return Param{absl::StrCat("\\x", absl::BytesToHexString(v)), false};
}
// An empty text as NULL (request ids).
Param PTextOrNull(absl::string_view v) { return v.empty() ? PNull() : P(v); }
Param PMillis(absl::Duration d) {
  return P(static_cast<int64_t>(std::max<int64_t>(0, absl::ToInt64Milliseconds(d))));
}

// A query result, cleared on destruction.
class Result {
 public:
  explicit Result(PGresult* res) : res_(res, &PQclear) {}
  int rows() const { return PQntuples(res_.get()); }
  bool IsNull(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
  std::string Text(int row, int col) const {
    return std::string(PQgetvalue(res_.get(), row, col),
                       static_cast<size_t>(PQgetlength(res_.get(), row, col)));
  }
  int64_t Int64(int row, int col) const {
    int64_t v = 0;
    (void)absl::SimpleAtoi(Text(row, col), &v);
    return v;
  }
  double Double(int row, int col) const {
    double v = 0;
    (void)absl::SimpleAtod(Text(row, col), &v);
    return v;
  }
  // A BYTEA column (hex output format, PostgreSQL's default).
  std::string Bytes(int row, int col) const {
    const std::string text = Text(row, col);
    return absl::StartsWith(text, "\\x") ? absl::HexStringToBytes(text.substr(2)) : text;
  }
  bool Bool(int row, int col) const { return Text(row, col) == "t"; }
  absl::Time Time(int row, int col) const {
    return IsNull(row, col) ? absl::InfinitePast() : absl::FromUnixNanos(Int64(row, col));
  }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> res_;
};

absl::StatusOr<JobRecord> ReadJob(const Result& r, int row) {
  JobRecord j;
  j.id = r.Text(row, 0);
  j.request_id = r.Text(row, 1);  // NULL reads as ""
  j.spec_json = r.Bytes(row, 2);
  j.spec_hash = r.Text(row, 3);
  const std::optional<JobState> state = ParseJobState(r.Text(row, 4));
  if (!state.has_value()) {
    return absl::DataLossError(
        absl::StrCat("job store: job ", Quoted(j.id), " has no valid state"));
  }
  j.state = *state;
  j.version = r.Int64(row, 5);
  j.progress.stage = r.Text(row, 6);
  j.progress.done = r.Int64(row, 7);
  j.progress.total = r.Int64(row, 8);
  j.progress.fraction = r.Double(row, 9);
  j.progress.detail = r.Text(row, 10);
  j.create_time = r.Time(row, 11);
  j.start_time = r.Time(row, 12);
  j.end_time = r.Time(row, 13);
  j.error_code = r.Text(row, 14);
  j.error_message = r.Text(row, 15);
  j.result_dir = r.Text(row, 16);
  j.priority = static_cast<int>(r.Int64(row, 17));
  j.tenant = r.Text(row, 18);
  return j;
}

// A PostgreSQL array literal of job ids ({"a","b"}), quoting each.
std::string TextArray(const std::vector<JobRecord>& jobs) {
  std::string out = "{";
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (i > 0) out += ",";
    out += "\"";
    out += absl::StrReplaceAll(jobs[i].id, {{"\\", "\\\\"}, {"\"", "\\\""}});
    out += "\"";
  }
  out += "}";
  return out;
}

std::string ElapsedUnitKey(absl::string_view job_id, absl::string_view unit) {
  return absl::StrCat("unit:", job_id, "\n", unit);
}
std::string JobKey(absl::string_view job_id) { return absl::StrCat("job:", job_id); }

}  // namespace

// One libpq connection, reconnected on demand. Messages carry the redacted
// URL and never the password (scrubbed from anything libpq says).
class PostgresJobStore::Connection {
 public:
  explicit Connection(const PostgresJobStore* store) : store_(store) {}
  ~Connection() {
    if (conn_ != nullptr) PQfinish(conn_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool healthy() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }

  // Connects when there is no usable connection.
  absl::Status Ensure() {
    if (healthy()) return absl::OkStatus();
    if (conn_ != nullptr) PQfinish(conn_);
    const std::string timeout =
        absl::StrCat(std::max<int64_t>(1, absl::ToInt64Seconds(store_->options_.connect_timeout)));
    // Earlier keywords are defaults the URL (expanded from dbname) overrides.
    // Keepalives and a TCP user timeout notice a database host that vanished
    // without closing the connection (a partition, a dead node) within about
    // a minute instead of the kernel's hours: its calls fail Unavailable.
    const char* keywords[] = {
        "connect_timeout",  "application_name", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          nullptr};
    const char* values[] = {timeout.c_str(), "mia-server",         "30",   "10", "3",
                            "60000",         store_->url_.c_str(), nullptr};
    conn_ = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
    if (conn_ == nullptr) return absl::ResourceExhaustedError("job store: out of memory");
    if (PQstatus(conn_) != CONNECTION_OK) {
      const std::string detail = store_->Scrub(PQerrorMessage(conn_));
      PQfinish(conn_);
      conn_ = nullptr;
      const std::string message =
          absl::StrCat("job store (", store_->redacted_url_, "): cannot connect: ", detail);
      // Credentials or names an operator has to fix are not worth retrying.
      if (absl::StrContains(detail, "authentication failed") ||
          absl::StrContains(detail, "no password supplied") ||
          absl::StrContains(detail, "does not exist")) {
        return absl::FailedPreconditionError(message);
      }
      return absl::UnavailableError(message);
    }
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);  // "skipping" notices
    return absl::OkStatus();
  }

  // Closes the connection so that the next Ensure opens a new one.
  void Drop() {
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
  }

  absl::StatusOr<Result> Exec(absl::string_view sql, const std::vector<Param>& params,
                              absl::string_view what) {
    if (conn_ == nullptr) return Lost(what);
    for (const Param& p : params) {
      // Text parameters end at a NUL byte: refused rather than cut short.
      if (!p.null && p.text.find('\0') != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("job store: ", what, ": a text with a NUL byte cannot be stored"));
      }
    }
    std::vector<const char*> values;
    std::vector<int> lengths;
    values.reserve(params.size());
    for (const Param& p : params) {
      values.push_back(p.null ? nullptr : p.text.c_str());
      lengths.push_back(static_cast<int>(p.text.size()));
    }
    const std::string text(sql);
    return Check(PQexecParams(conn_, text.c_str(), static_cast<int>(params.size()), nullptr,
                              values.data(), lengths.data(), nullptr, /*resultFormat=*/0),
                 what);
  }

  // Several statements without parameters (migrations).
  absl::StatusOr<Result> ExecScript(const char* sql, absl::string_view what) {
    if (conn_ == nullptr) return Lost(what);
    return Check(PQexec(conn_, sql), what);
  }

 private:
  absl::Status Lost(absl::string_view what) const {
    return absl::UnavailableError(absl::StrCat("job store (", store_->redacted_url_, "): ", what,
                                               ": the connection to the database was lost"));
  }

  absl::StatusOr<Result> Check(PGresult* raw, absl::string_view what);

  const PostgresJobStore* store_;
  PGconn* conn_ = nullptr;
  friend class PostgresJobStore;
};

namespace {

// Maps a failed statement to a canonical status by its SQLSTATE: a lost or
// overloaded server is Unavailable (retry later), a full disk
// ResourceExhausted, corruption DataLoss, a read-only database
// FailedPrecondition (an operator has to act). Only libpq's primary message
// is kept: its DETAIL may quote row values.
absl::Status PgError(const std::string& redacted_url, bool connection_bad,
                     absl::string_view sqlstate, const std::string& primary,
                     absl::string_view what) {
  const std::string message =
      absl::StrCat("job store (", redacted_url, "): ", what, ": ", primary,
                   sqlstate.empty() ? "" : absl::StrCat(" (SQLSTATE ", sqlstate, ")"));
  if (connection_bad || sqlstate.empty() || absl::StartsWith(sqlstate, "08") ||
      sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03" || sqlstate == "40001" ||
      sqlstate == "40P01" || sqlstate == "55P03" || sqlstate == "57014") {
    return absl::UnavailableError(message);
  }
  if (absl::StartsWith(sqlstate, "53")) return absl::ResourceExhaustedError(message);
  // Data exceptions: a text that is not valid in the database's encoding, ...
  if (absl::StartsWith(sqlstate, "22")) return absl::InvalidArgumentError(message);
  if (sqlstate == "XX001" || sqlstate == "XX002") return absl::DataLossError(message);
  if (sqlstate == "25006") {
    absl::Status status = absl::FailedPreconditionError(
        absl::StrCat("the job store (", redacted_url,
                     ") is read-only: the server shows audits but cannot record changes (", what,
                     ": ", primary, ")"));
    status.SetPayload(kReadOnlyPayload, absl::Cord("1"));
    return status;
  }
  return absl::InternalError(message);
}

}  // namespace

absl::StatusOr<Result> PostgresJobStore::Connection::Check(PGresult* raw, absl::string_view what) {
  Result res(raw);
  const ExecStatusType st = raw != nullptr ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return res;
  const char* sqlstate = raw != nullptr ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = raw != nullptr ? PQresultErrorField(raw, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  std::string text = primary != nullptr ? std::string(primary) : std::string(PQerrorMessage(conn_));
  text = std::string(absl::StripTrailingAsciiWhitespace(store_->Scrub(text)));
  const bool bad = PQstatus(conn_) == CONNECTION_BAD;
  return PgError(store_->redacted_url_, bad, sqlstate != nullptr ? sqlstate : "", text, what);
}

std::string RedactPostgresUrl(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (error != nullptr) PQfreemem(error);  // may quote the URL: never shown
  if (options == nullptr) return "postgresql://(invalid URL)";
  std::string user, host, port, dbname;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const absl::string_view key(o->keyword);
    if (key == "user") user = o->val;
    if (key == "host" || (key == "hostaddr" && host.empty())) host = o->val;
    if (key == "port") port = o->val;
    if (key == "dbname") dbname = o->val;
  }
  PQconninfoFree(options);
  return absl::StrCat("postgresql://", user, user.empty() ? "" : "@", host, port.empty() ? "" : ":",
                      port, "/", dbname);
}

bool IsPostgresUrl(absl::string_view location) {
  return absl::StartsWith(location, "postgresql://") || absl::StartsWith(location, "postgres://");
}

// ---------------------------------------------------------------------------
// Rows.

namespace {

using Connection = PostgresJobStore::Connection;

absl::StatusOr<std::vector<JobRecord>> ReadJobs(Connection& c, const Result& rows) {
  std::vector<JobRecord> jobs;
  jobs.reserve(static_cast<size_t>(rows.rows()));
  for (int i = 0; i < rows.rows(); ++i) {
    MIA_ASSIGN_OR_RETURN(JobRecord j, ReadJob(rows, i));
    jobs.push_back(std::move(j));
  }
  if (jobs.empty()) return jobs;
  MIA_ASSIGN_OR_RETURN(
      const Result labels,
      c.Exec("SELECT job_id, key, value FROM job_labels WHERE job_id = ANY($1::text[])",
             {P(TextArray(jobs))}, "read labels"));
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < jobs.size(); ++i) index[jobs[i].id] = i;
  for (int i = 0; i < labels.rows(); ++i) {
    const auto it = index.find(labels.Text(i, 0));
    if (it != index.end()) jobs[it->second].labels[labels.Text(i, 1)] = labels.Text(i, 2);
  }
  return jobs;
}

absl::StatusOr<std::vector<JobRecord>> QueryJobs(Connection& c, const std::string& sql,
                                                 const std::vector<Param>& params,
                                                 absl::string_view what) {
  MIA_ASSIGN_OR_RETURN(const Result rows, c.Exec(sql, params, what));
  return ReadJobs(c, rows);
}

// The job with this id (locked for this transaction with `for_update`).
absl::StatusOr<std::optional<JobRecord>> FindJob(Connection& c, absl::string_view id,
                                                 bool for_update) {
  MIA_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs,
                       QueryJobs(c,
                                 absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = $1",
                                              for_update ? " FOR UPDATE" : ""),
                                 {P(id)}, "read job"));
  if (jobs.empty()) return std::optional<JobRecord>();
  return std::optional<JobRecord>(std::move(jobs.front()));
}

absl::StatusOr<JobRecord> LoadJob(Connection& c, absl::string_view id, bool for_update) {
  MIA_ASSIGN_OR_RETURN(std::optional<JobRecord> job, FindJob(c, id, for_update));
  if (!job.has_value()) return absl::NotFoundError(absl::StrCat("job ", Quoted(id), " not found"));
  return std::move(*job);
}

absl::StatusOr<std::optional<JobRecord>> FindRequest(Connection& c, absl::string_view tenant,
                                                     absl::string_view request_id) {
  MIA_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs,
                       QueryJobs(c,
                                 absl::StrCat("SELECT ", kJobColumns,
                                              " FROM jobs WHERE tenant = $1 AND request_id = $2"),
                                 {P(tenant), P(request_id)}, "read job by request_id"));
  if (jobs.empty()) return std::optional<JobRecord>();
  return std::optional<JobRecord>(std::move(jobs.front()));
}

absl::Status ReplaceLabels(Connection& c, const JobRecord& r) {
  MIA_RETURN_IF_ERROR(
      c.Exec("DELETE FROM job_labels WHERE job_id = $1", {P(r.id)}, "write labels").status());
  for (const auto& [key, value] : r.labels) {
    MIA_RETURN_IF_ERROR(c.Exec("INSERT INTO job_labels (job_id, key, value) VALUES ($1, $2, $3)",
                               {P(r.id), P(key), P(value)}, "write labels")
                            .status());
  }
  return absl::OkStatus();
}

// The mutable columns as parameters $2 .. $14 (shared by INSERT and UPDATE
// so that the two cannot drift apart).
std::vector<Param> MutableParams(const JobRecord& r) {
  return {P(r.id),
          P(JobStateName(r.state)),
          P(r.version),
          P(r.progress.stage),
          P(r.progress.done),
          P(r.progress.total),
          PDouble(r.progress.fraction),
          P(r.progress.detail),
          PTime(r.start_time),
          PTime(r.end_time),
          P(r.error_code),
          P(r.error_message),
          P(r.result_dir),
          P(r.priority)};
}

// Inserts unless a unique key is taken; true when inserted.
absl::StatusOr<bool> InsertJob(Connection& c, const JobRecord& r) {
  std::vector<Param> params = MutableParams(r);
  params.push_back(PTextOrNull(r.request_id));
  params.push_back(PBytes(r.spec_json));
  params.push_back(P(r.spec_hash));
  params.push_back(PTime(r.create_time));
  params.push_back(P(r.tenant));
  MIA_ASSIGN_OR_RETURN(
      const Result res,
      c.Exec("INSERT INTO jobs (id, state, version, progress_stage, progress_done, "
             "progress_total, progress_fraction, progress_detail, start_time, end_time, "
             "error_code, error_message, result_dir, priority, request_id, spec_json, spec_hash, "
             "create_time, tenant) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
             "$13, $14, $15, $16, $17, $18, $19) ON CONFLICT DO NOTHING RETURNING id",
             params, "create job"));
  if (res.rows() == 0) return false;
  MIA_RETURN_IF_ERROR(ReplaceLabels(c, r));
  return true;
}

// Writes the mutable fields of `r` (whose version is already the new one).
absl::Status WriteJob(Connection& c, const JobRecord& r, bool labels_changed) {
  MIA_ASSIGN_OR_RETURN(
      const Result res,
      c.Exec("UPDATE jobs SET state = $2, version = $3, progress_stage = $4, progress_done = $5, "
             "progress_total = $6, progress_fraction = $7, progress_detail = $8, start_time = $9, "
             "end_time = $10, error_code = $11, error_message = $12, result_dir = $13, "
             "priority = $14 WHERE id = $1 RETURNING id",
             MutableParams(r), "write job"));
  if (res.rows() != 1) {
    return absl::InternalError(absl::StrCat("job store: job ", Quoted(r.id), " vanished"));
  }
  return labels_changed ? ReplaceLabels(c, r) : absl::OkStatus();
}

absl::StatusOr<int64_t> QueryCount(Connection& c, const std::string& sql,
                                   const std::vector<Param>& params, absl::string_view what) {
  MIA_ASSIGN_OR_RETURN(const Result res, c.Exec(sql, params, what));
  return res.rows() > 0 ? res.Int64(0, 0) : 0;
}

absl::Status ValidateUnit(absl::string_view unit) {
  if (unit.empty() || unit.size() > kMaxUnitBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("unit: must have 1 to ", kMaxUnitBytes, " bytes"));
  }
  return absl::OkStatus();
}

ClaimedUnit ReadUnit(const Result& r, int row) {
  ClaimedUnit u;
  u.job_id = r.Text(row, 0);
  u.unit = r.Text(row, 1);
  u.attempt = static_cast<int>(r.Int64(row, 2));
  u.tenant = r.Text(row, 3);
  return u;
}

}  // namespace

// ---------------------------------------------------------------------------
// Pool and transactions.

class PostgresJobStore::Lease {
 public:
  Lease(PostgresJobStore* store, std::unique_ptr<Connection> conn)
      : store_(store), conn_(std::move(conn)) {}
  Lease(Lease&& other) noexcept = default;
  Lease& operator=(Lease&&) = delete;
  ~Lease() {
    if (conn_ != nullptr) store_->Return(std::move(conn_));
  }
  Connection& conn() { return *conn_; }

 private:
  PostgresJobStore* store_;
  std::unique_ptr<Connection> conn_;
};

absl::StatusOr<PostgresJobStore::Lease> PostgresJobStore::Acquire() {
  std::unique_ptr<Connection> conn;
  {
    absl::MutexLock lock(&pool_mu_);
    pool_mu_.Await(absl::Condition(
        +[](PostgresJobStore* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return !s->idle_.empty() || s->open_ < s->options_.pool_size;
        },
        this));
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    } else {
      ++open_;
      conn = std::make_unique<Connection>(this);
    }
  }
  Lease lease(this, std::move(conn));
  MIA_RETURN_IF_ERROR(lease.conn().Ensure());
  return lease;
}

void PostgresJobStore::Return(std::unique_ptr<Connection> conn) {
  absl::MutexLock lock(&pool_mu_);
  idle_.push_back(std::move(conn));
}

template <typename T, typename F>
absl::StatusOr<T> PostgresJobStore::InTransaction(absl::string_view what, F&& body) {
  MIA_ASSIGN_OR_RETURN(Lease lease, Acquire());
  Connection& c = lease.conn();
  absl::StatusOr<Result> begin = c.Exec("BEGIN", {}, what);
  if (!begin.ok() && !c.healthy()) {
    // The server closed the pooled connection (it restarted): nothing was
    // done yet, so one new connection is tried.
    c.Drop();
    MIA_RETURN_IF_ERROR(c.Ensure());
    begin = c.Exec("BEGIN", {}, what);
  }
  if (!begin.ok()) return begin.status();
  absl::StatusOr<T> result = body(c);
  if (!result.ok()) {
    if (c.healthy()) (void)c.Exec("ROLLBACK", {}, "rollback");
    return result.status();
  }
  MIA_RETURN_IF_ERROR(c.Exec("COMMIT", {}, what).status());
  return result;
}

template <typename F>
absl::Status PostgresJobStore::InWriteTransaction(absl::string_view what, F&& body) {
  return InTransaction<bool>(what,
                             [&](Connection& c) -> absl::StatusOr<bool> {
                               MIA_RETURN_IF_ERROR(body(c));
                               return true;
                             })
      .status();
}

absl::Status PostgresJobStore::Tracked(absl::Status status) {
  Track(status);
  return status;
}

std::string PostgresJobStore::Scrub(absl::string_view text) const {
  if (password_.empty()) return std::string(text);
  return absl::StrReplaceAll(text, {{password_, "***"}});
}

void PostgresJobStore::Track(const absl::Status& status) {
  bool now;
  if (status.ok()) {
    now = true;
  } else if (status.GetPayload(kReadOnlyPayload).has_value()) {
    now = false;
  } else {
    return;  // a refused request, or a passing failure, says nothing lasting
  }
  if (writable_.exchange(now) != now && options_.on_writable_change) {
    options_.on_writable_change(now);
  }
}

void PostgresJobStore::Remember(absl::string_view replica, const std::string& key,
                                const ClaimedUnit& what) {
  absl::MutexLock lock(&held_mu_);
  held_[std::string(replica)][key] = what;
}

void PostgresJobStore::Forget(absl::string_view replica, const std::string& key) {
  absl::MutexLock lock(&held_mu_);
  const auto it = held_.find(replica);
  if (it != held_.end()) it->second.erase(key);
}

// ---------------------------------------------------------------------------
// Open and migrations.

int PostgresJobStore::LatestSchemaVersion() { return std::end(kMigrations)[-1].version; }

PostgresJobStore::PostgresJobStore(std::string url, std::string redacted_url, std::string password,
                                   PostgresJobStoreOptions options)
    : url_(std::move(url)),
      redacted_url_(std::move(redacted_url)),
      password_(std::move(password)),
      options_(std::move(options)) {}

PostgresJobStore::~PostgresJobStore() = default;

absl::StatusOr<std::unique_ptr<PostgresJobStore>> PostgresJobStore::Open(
    const std::string& url, const PostgresJobStoreOptions& options) {
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(url.c_str(), &error);
  if (error != nullptr) PQfreemem(error);  // may quote the URL: never shown
  if (parsed == nullptr || !IsPostgresUrl(url)) {
    if (parsed != nullptr) PQconninfoFree(parsed);
    return absl::InvalidArgumentError(
        "store: not a valid PostgreSQL URL (postgresql://user:password@host:port/database)");
  }
  std::string password;
  for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && absl::string_view(o->keyword) == "password") password = o->val;
  }
  PQconninfoFree(parsed);
  if (options.pool_size < 1) return absl::InvalidArgumentError("store: pool_size must be >= 1");
  std::unique_ptr<PostgresJobStore> store(
      new PostgresJobStore(url, RedactPostgresUrl(url), std::move(password), options));
  MIA_RETURN_IF_ERROR(store->Migrate());
  return store;
}

absl::Status PostgresJobStore::Migrate() {
  return InTransaction<bool>(
             "migrate",
             [&](Connection& c) -> absl::StatusOr<bool> {
               MIA_RETURN_IF_ERROR(c.Exec("SELECT pg_advisory_xact_lock($1)",
                                          {P(kMigrationLockKey)}, "lock for migrations")
                                       .status());
               MIA_RETURN_IF_ERROR(c.ExecScript("CREATE TABLE IF NOT EXISTS schema_migrations ("
                                                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                                                "applied_time TIMESTAMPTZ NOT NULL DEFAULT now())",
                                                "create schema_migrations")
                                       .status());
               MIA_ASSIGN_OR_RETURN(
                   const int64_t current,
                   QueryCount(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", {},
                              "read schema version"));
               const int latest = LatestSchemaVersion();
               if (current > latest) {
                 return absl::FailedPreconditionError(
                     absl::StrCat("job store (", redacted_url_, ") has schema version ", current,
                                  ", newer than this mia supports (", latest, "): upgrade mia"));
               }
               for (const Migration& m : kMigrations) {
                 if (m.version <= current) continue;
                 MIA_RETURN_IF_ERROR(
                     c.ExecScript(m.sql, absl::StrCat("migration ", m.version)).status());
                 MIA_RETURN_IF_ERROR(
                     c.Exec("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                            {P(m.version), P(m.name)}, "record migration")
                         .status());
               }
               return true;
             })
      .status();
}

// ---------------------------------------------------------------------------
// JobStore.

absl::StatusOr<CreateResult> PostgresJobStore::Create(const JobRecord& record) {
  MIA_ASSIGN_OR_RETURN(const JobRecord stored, store_rules::NewRecord(record, options_.clock));
  absl::StatusOr<CreateResult> result =
      InTransaction<CreateResult>("create job", [&](Connection& c) -> absl::StatusOr<CreateResult> {
        MIA_ASSIGN_OR_RETURN(const bool inserted, InsertJob(c, stored));
        if (inserted) return CreateResult{stored, true};
        // A unique key is taken (and committed: ON CONFLICT waits for others).
        if (!record.request_id.empty()) {
          MIA_ASSIGN_OR_RETURN(std::optional<JobRecord> existing,
                               FindRequest(c, record.tenant, record.request_id));
          if (existing.has_value()) {
            return store_rules::RepeatedRequest(*std::move(existing), record);
          }
        }
        return absl::AlreadyExistsError(absl::StrCat("job ", record.id, " already exists"));
      });
  Track(result.status());
  return result;
}

absl::StatusOr<JobRecord> PostgresJobStore::Get(absl::string_view id) {
  return InTransaction<JobRecord>("get job", [&](Connection& c) { return LoadJob(c, id, false); });
}

absl::StatusOr<JobPage> PostgresJobStore::List(const ListOptions& options) {
  MIA_ASSIGN_OR_RETURN(const store_rules::PageRequest request,
                       store_rules::ReadPageRequest(options));
  const int page_size = request.page_size;
  const std::optional<PageCursor>& cursor = request.cursor;
  // Only placeholders are spliced into the SQL, never values.
  std::vector<Param> params;
  std::string sql =
      absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE state IN ", kValidStates);
  if (options.state.has_value()) {
    params.push_back(P(JobStateName(*options.state)));
    absl::StrAppend(&sql, " AND state = $", params.size());
  }
  if (options.tenant.has_value()) {
    params.push_back(P(*options.tenant));
    absl::StrAppend(&sql, " AND tenant = $", params.size());
  }
  if (cursor.has_value()) {
    params.push_back(PTime(cursor->create_time));
    params.push_back(P(cursor->id));
    absl::StrAppend(&sql, " AND (create_time, id) > ($", params.size() - 1, "::bigint, $",
                    params.size(), ")");
  }
  params.push_back(P(static_cast<int64_t>(page_size) + 1));  // one more: is there a next page?
  absl::StrAppend(&sql, " ORDER BY create_time, id LIMIT $", params.size());
  MIA_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs,
                       InTransaction<std::vector<JobRecord>>("list jobs", [&](Connection& c) {
                         return QueryJobs(c, sql, params, "list jobs");
                       }));
  return store_rules::MakePage(std::move(jobs), page_size, options);
}

absl::StatusOr<JobRecord> PostgresJobStore::Update(const JobRecord& record) {
  MIA_RETURN_IF_ERROR(ValidateProgress(record.progress));
  const absl::Time now = options_.clock();
  absl::StatusOr<JobRecord> result =
      InTransaction<JobRecord>("update job", [&](Connection& c) -> absl::StatusOr<JobRecord> {
        MIA_ASSIGN_OR_RETURN(const JobRecord stored, LoadJob(c, record.id, true));
        MIA_ASSIGN_OR_RETURN(JobRecord next, store_rules::UpdatedRecord(stored, record, now));
        MIA_RETURN_IF_ERROR(WriteJob(c, next, next.labels != stored.labels));
        return next;
      });
  Track(result.status());
  return result;
}

absl::StatusOr<JobRecord> PostgresJobStore::Transition(absl::string_view id, JobState to,
                                                       const TransitionDetails& details) {
  MIA_RETURN_IF_ERROR(store_rules::ValidateTransition(id, to, details));
  const absl::Time now = options_.clock();
  absl::StatusOr<JobRecord> result =
      InTransaction<JobRecord>("transition job", [&](Connection& c) -> absl::StatusOr<JobRecord> {
        MIA_ASSIGN_OR_RETURN(JobRecord job, LoadJob(c, id, true));
        MIA_RETURN_IF_ERROR(store_rules::ApplyTransition(&job, to, details, now));
        MIA_RETURN_IF_ERROR(WriteJob(c, job, /*labels_changed=*/false));
        return job;
      });
  Track(result.status());
  return result;
}

absl::StatusOr<JobRecord> PostgresJobStore::UpdateProgress(absl::string_view id,
                                                           const JobProgress& progress) {
  MIA_RETURN_IF_ERROR(ValidateProgress(progress));
  absl::StatusOr<JobRecord> result =
      InTransaction<JobRecord>("update progress", [&](Connection& c) -> absl::StatusOr<JobRecord> {
        MIA_ASSIGN_OR_RETURN(JobRecord job, LoadJob(c, id, true));
        MIA_RETURN_IF_ERROR(CheckWritable(job));
        job.progress = progress;
        ++job.version;
        MIA_RETURN_IF_ERROR(WriteJob(c, job, /*labels_changed=*/false));
        return job;
      });
  Track(result.status());
  return result;
}

absl::Status PostgresJobStore::Delete(absl::string_view id) {
  absl::Status status = InWriteTransaction("delete job", [&](Connection& c) -> absl::Status {
    MIA_ASSIGN_OR_RETURN(const JobRecord job, LoadJob(c, id, true));
    if (!IsTerminal(job.state)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job.id, " is ", JobStateName(job.state), ": only finished jobs can be deleted"));
    }
    // Labels and units go with it (ON DELETE CASCADE).
    MIA_RETURN_IF_ERROR(
        c.Exec("DELETE FROM jobs WHERE id = $1", {P(job.id)}, "delete job").status());
    return absl::OkStatus();
  });
  return Tracked(std::move(status));
}

absl::StatusOr<std::vector<JobRecord>> PostgresJobStore::ListUnfinished() {
  return InTransaction<std::vector<JobRecord>>("list unfinished jobs", [&](Connection& c) {
    return QueryJobs(c,
                     absl::StrCat("SELECT ", kJobColumns,
                                  " FROM jobs WHERE state IN ('PENDING', 'RUNNING') "
                                  "ORDER BY priority DESC, create_time, id"),
                     {}, "list unfinished jobs");
  });
}

absl::Status PostgresJobStore::MarkUnitDone(absl::string_view job_id, absl::string_view unit,
                                            absl::string_view value) {
  MIA_RETURN_IF_ERROR(ValidateUnit(unit));
  const absl::Time now = options_.clock();
  absl::Status status = InWriteTransaction("mark unit done", [&](Connection& c) -> absl::Status {
    MIA_ASSIGN_OR_RETURN(const JobRecord job, LoadJob(c, job_id, true));
    MIA_RETURN_IF_ERROR(CheckWritable(job));
    MIA_RETURN_IF_ERROR(
        c.Exec("INSERT INTO job_units (job_id, unit, value, done_time) VALUES ($1, $2, $3, $4) "
               "ON CONFLICT (job_id, unit) DO UPDATE SET value = EXCLUDED.value, "
               "done_time = EXCLUDED.done_time",
               {P(job.id), P(unit), P(value), PTime(now)}, "mark unit done")
            .status());
    return absl::OkStatus();
  });
  return Tracked(std::move(status));
}

absl::StatusOr<std::map<std::string, std::string>> PostgresJobStore::ListUnitsDone(
    absl::string_view job_id) {
  using Units = std::map<std::string, std::string>;
  return InTransaction<Units>("list units done", [&](Connection& c) -> absl::StatusOr<Units> {
    MIA_ASSIGN_OR_RETURN(const JobRecord job, LoadJob(c, job_id, false));
    MIA_ASSIGN_OR_RETURN(const Result rows,
                         c.Exec("SELECT unit, value FROM job_units WHERE job_id = $1", {P(job.id)},
                                "list units done"));
    Units units;
    for (int i = 0; i < rows.rows(); ++i) units[rows.Text(i, 0)] = rows.Text(i, 1);
    return units;
  });
}

absl::StatusOr<int64_t> PostgresJobStore::CountJobs(const std::optional<std::string>& tenant,
                                                    JobState state) {
  return InTransaction<int64_t>("count jobs", [&](Connection& c) {
    return tenant.has_value()
               ? QueryCount(c, "SELECT count(*) FROM jobs WHERE state = $1 AND tenant = $2",
                            {P(JobStateName(state)), P(*tenant)}, "count jobs")
               : QueryCount(c, "SELECT count(*) FROM jobs WHERE state = $1",
                            {P(JobStateName(state))}, "count jobs");
  });
}

absl::Status PostgresJobStore::RecordUpload(absl::string_view tenant, absl::string_view digest,
                                            int64_t bytes) {
  if (digest.empty() || bytes < 0) {
    return absl::InvalidArgumentError("upload: a digest and a size of at least 0 are required");
  }
  const absl::Time now = options_.clock();
  absl::Status status = InWriteTransaction("record upload", [&](Connection& c) -> absl::Status {
    MIA_RETURN_IF_ERROR(
        c.Exec("INSERT INTO uploads (tenant, digest, bytes, upload_time) VALUES ($1, $2, $3, "
               "$4) ON CONFLICT DO NOTHING",
               {P(tenant), P(digest), P(bytes), PTime(now)}, "record upload")
            .status());
    return absl::OkStatus();
  });
  return Tracked(std::move(status));
}

absl::StatusOr<bool> PostgresJobStore::HasUpload(absl::string_view tenant,
                                                 absl::string_view digest) {
  return InTransaction<bool>("read upload", [&](Connection& c) -> absl::StatusOr<bool> {
    MIA_ASSIGN_OR_RETURN(
        const int64_t n,
        QueryCount(c, "SELECT count(*) FROM uploads WHERE tenant = $1 AND digest = $2",
                   {P(tenant), P(digest)}, "read upload"));
    return n > 0;
  });
}

absl::StatusOr<int64_t> PostgresJobStore::UploadBytes(absl::string_view tenant) {
  return InTransaction<int64_t>("sum uploads", [&](Connection& c) {
    return QueryCount(c, "SELECT coalesce(sum(bytes), 0) FROM uploads WHERE tenant = $1",
                      {P(tenant)}, "sum uploads");
  });
}

absl::StatusOr<std::vector<std::string>> PostgresJobStore::ListUnreadable() {
  using Ids = std::vector<std::string>;
  return InTransaction<Ids>("list unreadable jobs", [&](Connection& c) -> absl::StatusOr<Ids> {
    MIA_ASSIGN_OR_RETURN(const Result rows,
                         c.Exec(absl::StrCat("SELECT id FROM jobs WHERE state NOT IN ",
                                             kValidStates, " ORDER BY create_time, id"),
                                {}, "list unreadable jobs"));
    Ids ids;
    for (int i = 0; i < rows.rows(); ++i) ids.push_back(Quoted(rows.Text(i, 0)));
    return ids;
  });
}

absl::Status PostgresJobStore::ProbeWrite() {
  absl::Status status = InWriteTransaction("probe write", [&](Connection& c) -> absl::Status {
    MIA_RETURN_IF_ERROR(c.Exec("UPDATE schema_migrations SET version = version WHERE version "
                               "= (SELECT MAX(version) FROM schema_migrations)",
                               {}, "probe write")
                            .status());
    return absl::OkStatus();
  });
  return Tracked(std::move(status));
}

// ---------------------------------------------------------------------------
// ClusterQueue.

absl::StatusOr<std::optional<JobRecord>> PostgresJobStore::ClaimJob(absl::string_view replica,
                                                                    absl::Duration lease) {
  using Claimed = std::optional<JobRecord>;
  const absl::Time now = options_.clock();
  absl::StatusOr<Claimed> claimed =
      InTransaction<Claimed>("claim job", [&](Connection& c) -> absl::StatusOr<Claimed> {
        // Fairness: the tenant with the fewest audits running, then
        // priority, then age. Rows other replicas are claiming are skipped.
        MIA_ASSIGN_OR_RETURN(
            const Result pick,
            c.Exec("WITH running AS (SELECT tenant, count(*) AS n FROM jobs "
                   "  WHERE state = 'RUNNING' AND lease_until >= now() GROUP BY tenant) "
                   "SELECT j.id, j.cancel_requested FROM jobs j "
                   "LEFT JOIN running r ON r.tenant = j.tenant "
                   "WHERE (j.state = 'PENDING' OR (j.state = 'RUNNING' AND "
                   "  (j.lease_until IS NULL OR j.lease_until < now()))) "
                   "  AND (j.state = 'RUNNING' OR NOT j.cancel_requested) "
                   "ORDER BY coalesce(r.n, 0), j.priority DESC, j.create_time, j.id "
                   "LIMIT 1 FOR UPDATE OF j SKIP LOCKED",
                   {}, "claim job"));
        if (pick.rows() == 0) return Claimed();
        MIA_ASSIGN_OR_RETURN(JobRecord job, LoadJob(c, pick.Text(0, 0), false));
        if (job.state == JobState::kRunning && pick.Bool(0, 1)) {
          // Cancelled while its holder lost it (the holder died, or missed
          // its renewals): nobody runs it any more, so it ends here.
          MIA_RETURN_IF_ERROR(ApplyStateChange(&job, JobState::kCancelled, now));
          job.error_code = "CANCELLED";
          job.error_message = "cancelled on request";
          ++job.version;
          MIA_RETURN_IF_ERROR(WriteJob(c, job, /*labels_changed=*/false));
          MIA_RETURN_IF_ERROR(c.Exec("UPDATE jobs SET holder = NULL, lease_until = NULL "
                                     "WHERE id = $1",
                                     {P(job.id)}, "claim job")
                                  .status());
          return Claimed();
        }
        if (job.state == JobState::kPending) {
          MIA_RETURN_IF_ERROR(ApplyStateChange(&job, JobState::kRunning, now));
        }
        ++job.version;
        MIA_RETURN_IF_ERROR(WriteJob(c, job, /*labels_changed=*/false));
        MIA_RETURN_IF_ERROR(c.Exec("UPDATE jobs SET holder = $2, lease_until = now() + $3 * "
                                   "interval '1 millisecond' WHERE id = $1",
                                   {P(job.id), P(replica), PMillis(lease)}, "claim job")
                                .status());
        return Claimed(std::move(job));
      });
  Track(claimed.status());
  if (claimed.ok() && claimed->has_value()) {
    ClaimedUnit held;
    held.job_id = (*claimed)->id;
    held.tenant = (*claimed)->tenant;
    Remember(replica, JobKey(held.job_id), held);
  }
  return claimed;
}

absl::Status PostgresJobStore::AddUnits(absl::string_view job_id,
                                        const std::vector<std::string>& units) {
  for (const std::string& unit : units) MIA_RETURN_IF_ERROR(ValidateUnit(unit));
  absl::Status status = InWriteTransaction("add units", [&](Connection& c) -> absl::Status {
    MIA_ASSIGN_OR_RETURN(const JobRecord job, LoadJob(c, job_id, false));
    for (size_t i = 0; i < units.size(); ++i) {
      MIA_RETURN_IF_ERROR(c.Exec("INSERT INTO work_units (job_id, unit, seq) VALUES ($1, $2, $3) "
                                 "ON CONFLICT DO NOTHING",
                                 {P(job.id), P(units[i]), P(static_cast<int64_t>(i))}, "add units")
                              .status());
    }
    return absl::OkStatus();
  });
  return Tracked(std::move(status));
}

absl::StatusOr<std::optional<ClaimedUnit>> PostgresJobStore::ClaimUnit(absl::string_view replica,
                                                                       absl::Duration lease,
                                                                       absl::string_view job_id) {
  using Claimed = std::optional<ClaimedUnit>;
  absl::StatusOr<Claimed> claimed =
      InTransaction<Claimed>("claim unit", [&](Connection& c) -> absl::StatusOr<Claimed> {
        // Fairness: the tenant with the fewest units running, then the audit
        // with the fewest, then priority, then age. Audits first (few rows),
        // then the earliest claimable unit of the first audit that has one
        // not locked by another replica's claim, so a claim does not sort
        // every pending unit of every audit.
        MIA_ASSIGN_OR_RETURN(
            const Result audits,
            c.Exec("WITH live AS (SELECT w.job_id, j.tenant FROM work_units w "
                   "  JOIN jobs j ON j.id = w.job_id "
                   "  WHERE w.state = 'RUNNING' AND w.lease_until >= now()), "
                   "per_job AS (SELECT job_id, count(*) AS n FROM live GROUP BY job_id), "
                   "per_tenant AS (SELECT tenant, count(*) AS n FROM live GROUP BY tenant) "
                   "SELECT j.id FROM jobs j "
                   "LEFT JOIN per_job pj ON pj.job_id = j.id "
                   "LEFT JOIN per_tenant pt ON pt.tenant = j.tenant "
                   "WHERE j.state = 'RUNNING' AND NOT j.cancel_requested "
                   "  AND ($1 = '' OR j.id = $1) "
                   "  AND EXISTS (SELECT 1 FROM work_units w WHERE w.job_id = j.id "
                   "    AND (w.state = 'PENDING' OR (w.state = 'RUNNING' AND "
                   "      (w.lease_until IS NULL OR w.lease_until < now())))) "
                   "ORDER BY coalesce(pt.n, 0), coalesce(pj.n, 0), j.priority DESC, "
                   "  j.create_time, j.id "
                   "LIMIT 32",
                   {P(job_id)}, "claim unit"));
        std::optional<std::pair<std::string, std::string>> pick;
        for (int i = 0; i < audits.rows() && !pick.has_value(); ++i) {
          MIA_ASSIGN_OR_RETURN(const Result unit,
                               c.Exec("SELECT unit FROM work_units WHERE job_id = $1 "
                                      "  AND (state = 'PENDING' OR (state = 'RUNNING' AND "
                                      "    (lease_until IS NULL OR lease_until < now()))) "
                                      "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
                                      {P(audits.Text(i, 0))}, "claim unit"));
          if (unit.rows() > 0) pick.emplace(audits.Text(i, 0), unit.Text(0, 0));
        }
        if (!pick.has_value()) return Claimed();
        MIA_ASSIGN_OR_RETURN(
            const Result unit,
            c.Exec("UPDATE work_units w SET state = 'RUNNING', holder = $3, "
                   "lease_until = now() + $4 * interval '1 millisecond', attempts = attempts + 1 "
                   "FROM jobs j WHERE j.id = w.job_id AND w.job_id = $1 AND w.unit = $2 "
                   "RETURNING w.job_id, w.unit, w.attempts, j.tenant",
                   {P(pick->first), P(pick->second), P(replica), PMillis(lease)}, "claim unit"));
        if (unit.rows() != 1) return absl::InternalError("job store: a claimed unit vanished");
        return Claimed(ReadUnit(unit, 0));
      });
  Track(claimed.status());
  if (claimed.ok() && claimed->has_value()) {
    Remember(replica, ElapsedUnitKey((*claimed)->job_id, (*claimed)->unit), **claimed);
  }
  return claimed;
}

absl::StatusOr<bool> PostgresJobStore::CompleteUnit(const ClaimedUnit& unit,
                                                    absl::string_view replica,
                                                    absl::string_view value) {
  const absl::Time now = options_.clock();
  absl::StatusOr<bool> finished =
      InTransaction<bool>("complete unit", [&](Connection& c) -> absl::StatusOr<bool> {
        MIA_ASSIGN_OR_RETURN(const JobRecord job, LoadJob(c, unit.job_id, false));
        MIA_ASSIGN_OR_RETURN(const Result row,
                             c.Exec("SELECT state FROM work_units WHERE job_id = $1 AND unit = $2 "
                                    "FOR UPDATE",
                                    {P(job.id), P(unit.unit)}, "complete unit"));
        if (row.rows() == 0) {
          return absl::NotFoundError(
              absl::StrCat("job ", job.id, " has no unit ", Quoted(unit.unit)));
        }
        if (row.Text(0, 0) == "DONE") return false;  // the first value stays
        MIA_RETURN_IF_ERROR(c.Exec("UPDATE work_units SET state = 'DONE', value = $3, "
                                   "holder = NULL, lease_until = NULL "
                                   "WHERE job_id = $1 AND unit = $2",
                                   {P(job.id), P(unit.unit), P(value)}, "complete unit")
                                .status());
        if (!IsTerminal(job.state)) {
          MIA_RETURN_IF_ERROR(
              c.Exec("INSERT INTO job_units (job_id, unit, value, done_time) VALUES ($1, $2, $3, "
                     "$4) ON CONFLICT (job_id, unit) DO UPDATE SET value = EXCLUDED.value, "
                     "done_time = EXCLUDED.done_time",
                     {P(job.id), P(unit.unit), P(value), PTime(now)}, "complete unit")
                  .status());
        }
        return true;
      });
  Track(finished.status());
  if (finished.ok()) Forget(replica, ElapsedUnitKey(unit.job_id, unit.unit));
  return finished;
}

absl::StatusOr<std::string> PostgresJobStore::FailUnit(const ClaimedUnit& unit,
                                                       absl::string_view replica,
                                                       absl::string_view error_code,
                                                       int max_attempts) {
  absl::StatusOr<std::string> state =
      InTransaction<std::string>("fail unit", [&](Connection& c) -> absl::StatusOr<std::string> {
        MIA_ASSIGN_OR_RETURN(const Result row,
                             c.Exec("SELECT state, coalesce(holder, ''), attempts FROM work_units "
                                    "WHERE job_id = $1 AND unit = $2 FOR UPDATE",
                                    {P(unit.job_id), P(unit.unit)}, "fail unit"));
        if (row.rows() == 0) {
          MIA_RETURN_IF_ERROR(LoadJob(c, unit.job_id, false).status());
          return absl::NotFoundError(
              absl::StrCat("job ", unit.job_id, " has no unit ", Quoted(unit.unit)));
        }
        const std::string current = row.Text(0, 0);
        const std::string holder = row.Text(0, 1);
        // Another replica runs it now, or it is finished: not ours to fail.
        if (current != "RUNNING" || (!holder.empty() && holder != replica)) return current;
        const std::string next = row.Int64(0, 2) < max_attempts ? "PENDING" : "FAILED";
        MIA_RETURN_IF_ERROR(c.Exec("UPDATE work_units SET state = $3, error_code = $4, "
                                   "holder = NULL, lease_until = NULL "
                                   "WHERE job_id = $1 AND unit = $2",
                                   {P(unit.job_id), P(unit.unit), P(next), P(error_code)},
                                   "fail unit")
                                .status());
        return next;
      });
  Track(state.status());
  if (state.ok()) Forget(replica, ElapsedUnitKey(unit.job_id, unit.unit));
  return state;
}

absl::StatusOr<UnitCounts> PostgresJobStore::CountUnits(absl::string_view job_id) {
  return InTransaction<UnitCounts>("count units", [&](Connection& c) -> absl::StatusOr<UnitCounts> {
    MIA_ASSIGN_OR_RETURN(const JobRecord job, LoadJob(c, job_id, false));
    MIA_ASSIGN_OR_RETURN(
        const Result row,
        c.Exec("SELECT "
               "count(*) FILTER (WHERE state = 'PENDING' OR (state = 'RUNNING' AND "
               "  (lease_until IS NULL OR lease_until < now()))), "
               "count(*) FILTER (WHERE state = 'RUNNING' AND lease_until >= now()), "
               "count(*) FILTER (WHERE state = 'DONE'), "
               "count(*) FILTER (WHERE state = 'FAILED') "
               "FROM work_units WHERE job_id = $1",
               {P(job.id)}, "count units"));
    UnitCounts counts;
    counts.pending = row.Int64(0, 0);
    counts.running = row.Int64(0, 1);
    counts.done = row.Int64(0, 2);
    counts.failed = row.Int64(0, 3);
    return counts;
  });
}

absl::StatusOr<LeaseRenewal> PostgresJobStore::RenewLeases(absl::string_view replica,
                                                           absl::Duration lease) {
  std::set<std::string> renewed;  // keys of held_
  absl::StatusOr<LeaseRenewal> renewal = InTransaction<LeaseRenewal>(
      "renew leases", [&](Connection& c) -> absl::StatusOr<LeaseRenewal> {
        renewed.clear();
        LeaseRenewal out;
        std::set<std::string> cancelled;
        // Audits still held: extended; a cancellation or an end is news.
        MIA_ASSIGN_OR_RETURN(
            const Result jobs,
            c.Exec("UPDATE jobs SET lease_until = now() + $2 * interval '1 millisecond' "
                   "WHERE holder = $1 AND state = 'RUNNING' AND lease_until >= now() "
                   "RETURNING id, cancel_requested",
                   {P(replica), PMillis(lease)}, "renew leases"));
        for (int i = 0; i < jobs.rows(); ++i) {
          out.held_jobs.push_back(jobs.Text(i, 0));
          renewed.insert(JobKey(jobs.Text(i, 0)));
          if (jobs.Bool(i, 1)) cancelled.insert(jobs.Text(i, 0));
        }
        MIA_ASSIGN_OR_RETURN(const Result finished,
                             c.Exec("SELECT id FROM jobs WHERE holder = $1 AND state <> 'RUNNING'",
                                    {P(replica)}, "renew leases"));
        for (int i = 0; i < finished.rows(); ++i) cancelled.insert(finished.Text(i, 0));
        // Audits whose lease ran out: lost (and free for any replica).
        MIA_ASSIGN_OR_RETURN(
            const Result lost_jobs,
            c.Exec("UPDATE jobs SET holder = NULL WHERE holder = $1 AND state = 'RUNNING' "
                   "AND (lease_until IS NULL OR lease_until < now()) RETURNING id",
                   {P(replica)}, "renew leases"));
        for (int i = 0; i < lost_jobs.rows(); ++i) out.lost_jobs.push_back(lost_jobs.Text(i, 0));
        // Units the same way.
        MIA_ASSIGN_OR_RETURN(
            const Result units,
            c.Exec("UPDATE work_units w SET lease_until = now() + $2 * interval '1 millisecond' "
                   "FROM jobs j WHERE j.id = w.job_id AND w.holder = $1 AND w.state = 'RUNNING' "
                   "AND w.lease_until >= now() "
                   "RETURNING w.job_id, w.unit, (j.cancel_requested OR j.state <> 'RUNNING')",
                   {P(replica), PMillis(lease)}, "renew leases"));
        for (int i = 0; i < units.rows(); ++i) {
          ClaimedUnit held;
          held.job_id = units.Text(i, 0);
          held.unit = units.Text(i, 1);
          out.held_units.push_back(std::move(held));
          renewed.insert(ElapsedUnitKey(units.Text(i, 0), units.Text(i, 1)));
          if (units.Bool(i, 2)) cancelled.insert(units.Text(i, 0));
        }
        MIA_ASSIGN_OR_RETURN(
            const Result lost_units,
            c.Exec("UPDATE work_units w SET holder = NULL FROM jobs j "
                   "WHERE j.id = w.job_id AND w.holder = $1 AND w.state = 'RUNNING' "
                   "AND (w.lease_until IS NULL OR w.lease_until < now()) "
                   "RETURNING w.job_id, w.unit, w.attempts, j.tenant",
                   {P(replica)}, "renew leases"));
        for (int i = 0; i < lost_units.rows(); ++i)
          out.lost_units.push_back(ReadUnit(lost_units, i));
        out.cancelled_jobs.assign(cancelled.begin(), cancelled.end());
        return out;
      });
  if (!renewal.ok()) return renewal;
  // What this replica claimed here and did not renew was taken over (or
  // finished) by another replica: lost too.
  absl::MutexLock lock(&held_mu_);
  const auto it = held_.find(replica);
  if (it != held_.end()) {
    std::set<std::string> reported;
    for (const std::string& id : renewal->lost_jobs) reported.insert(JobKey(id));
    for (const ClaimedUnit& u : renewal->lost_units)
      reported.insert(ElapsedUnitKey(u.job_id, u.unit));
    for (auto h = it->second.begin(); h != it->second.end();) {
      if (renewed.count(h->first) > 0) {
        ++h;
        continue;
      }
      if (reported.count(h->first) == 0) {
        if (h->second.unit.empty()) {
          renewal->lost_jobs.push_back(h->second.job_id);
        } else {
          renewal->lost_units.push_back(h->second);
        }
      }
      h = it->second.erase(h);
    }
  }
  return renewal;
}

absl::Status PostgresJobStore::ReleaseJob(absl::string_view job_id, absl::string_view replica) {
  absl::Status status = InWriteTransaction("release job", [&](Connection& c) -> absl::Status {
    MIA_ASSIGN_OR_RETURN(const JobRecord job, LoadJob(c, job_id, false));
    MIA_RETURN_IF_ERROR(c.Exec("UPDATE jobs SET holder = NULL, lease_until = NULL "
                               "WHERE id = $1 AND holder = $2",
                               {P(job.id), P(replica)}, "release job")
                            .status());
    return absl::OkStatus();
  });
  if (status.ok()) Forget(replica, JobKey(job_id));
  return status;
}

absl::Status PostgresJobStore::ReleaseUnits(absl::string_view replica) {
  absl::Status status = InWriteTransaction("release units", [&](Connection& c) -> absl::Status {
    MIA_RETURN_IF_ERROR(
        c.Exec("UPDATE work_units SET state = 'PENDING', holder = NULL, lease_until = NULL, "
               "attempts = greatest(attempts - 1, 0) WHERE holder = $1 AND state = 'RUNNING'",
               {P(replica)}, "release units")
            .status());
    return absl::OkStatus();
  });
  if (status.ok()) {
    absl::MutexLock lock(&held_mu_);
    const auto it = held_.find(replica);
    if (it != held_.end()) {
      for (auto h = it->second.begin(); h != it->second.end();) {
        h = h->second.unit.empty() ? std::next(h) : it->second.erase(h);
      }
    }
  }
  return status;
}

absl::Status PostgresJobStore::ReleaseUnit(const ClaimedUnit& unit, absl::string_view replica) {
  absl::Status status = InWriteTransaction("release unit", [&](Connection& c) -> absl::Status {
    MIA_RETURN_IF_ERROR(
        c.Exec("UPDATE work_units SET state = 'PENDING', holder = NULL, lease_until = NULL, "
               "attempts = greatest(attempts - 1, 0) "
               "WHERE job_id = $1 AND unit = $2 AND holder = $3 AND state = 'RUNNING'",
               {P(unit.job_id), P(unit.unit), P(replica)}, "release unit")
            .status());
    return absl::OkStatus();
  });
  if (status.ok()) Forget(replica, ElapsedUnitKey(unit.job_id, unit.unit));
  return status;
}

absl::StatusOr<JobRecord> PostgresJobStore::RequestCancel(absl::string_view job_id) {
  const absl::Time now = options_.clock();
  absl::StatusOr<JobRecord> result =
      InTransaction<JobRecord>("cancel job", [&](Connection& c) -> absl::StatusOr<JobRecord> {
        MIA_ASSIGN_OR_RETURN(JobRecord job, LoadJob(c, job_id, true));
        if (job.state == JobState::kPending) {
          MIA_RETURN_IF_ERROR(ApplyStateChange(&job, JobState::kCancelled, now));
          job.error_code = "CANCELLED";
          job.error_message = "cancelled on request";
          ++job.version;
          MIA_RETURN_IF_ERROR(WriteJob(c, job, /*labels_changed=*/false));
          MIA_RETURN_IF_ERROR(c.Exec("UPDATE jobs SET holder = NULL, lease_until = NULL "
                                     "WHERE id = $1",
                                     {P(job.id)}, "cancel job")
                                  .status());
        } else if (job.state == JobState::kRunning) {
          MIA_RETURN_IF_ERROR(c.Exec("UPDATE jobs SET cancel_requested = true WHERE id = $1",
                                     {P(job.id)}, "cancel job")
                                  .status());
        }
        return job;
      });
  Track(result.status());
  return result;
}

absl::StatusOr<int64_t> PostgresJobStore::PendingUnits() {
  return InTransaction<int64_t>("count pending units", [&](Connection& c) {
    // The query of the KEDA postgresql trigger (deploy/), verbatim.
    return QueryCount(c,
                      "SELECT count(*) FROM work_units WHERE state = 'PENDING' OR "
                      "(state = 'RUNNING' AND lease_until < now())",
                      {}, "count pending units");
  });
}

absl::StatusOr<int64_t> PostgresJobStore::PendingJobs() {
  return InTransaction<int64_t>("count pending jobs", [&](Connection& c) {
    return QueryCount(c,
                      "SELECT count(*) FROM jobs WHERE state = 'PENDING' AND NOT cancel_requested",
                      {}, "count pending jobs");
  });
}

}  // namespace mia::jobs
