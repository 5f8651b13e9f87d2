// Tests only: the PostgreSQL the ctest fixture `postgres` started
// (tests/postgres/start.sh), and a fresh database on it per test.
//
// The URL file is $MIA_POSTGRES_URL_FILE, else the build tree's
// (MIA_POSTGRES_URL_FILE_DEFAULT, compiled in). Without it a test fails,
// unless MIA_SKIP_POSTGRES=1 (then it skips): PostgreSQL tests never pass
// silently without a database.
#ifndef MIA_TESTS_COMMON_POSTGRES_FIXTURE_H_
#define MIA_TESTS_COMMON_POSTGRES_FIXTURE_H_

#include <libpq-fe.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace mia::test_util {

inline std::string PostgresUrlFile() {
  const char* env = std::getenv("MIA_POSTGRES_URL_FILE");
  if (env != nullptr && *env != '\0') return env;
#ifdef MIA_POSTGRES_URL_FILE_DEFAULT
  return MIA_POSTGRES_URL_FILE_DEFAULT;
#else
  return "";
#endif
}

inline bool SkipPostgres() {
  const char* env = std::getenv("MIA_SKIP_POSTGRES");
  return env != nullptr && std::string(env) == "1";
}

// The fixture's URL ("" when there is none: the caller skips or fails, see
// PG_FIXTURE_OR_SKIP).
inline std::string PostgresUrl() {
  std::ifstream in(PostgresUrlFile());
  std::string url;
  std::getline(in, url);
  return std::string(absl::StripAsciiWhitespace(url));
}

// `url` with its database replaced by `db`.
inline std::string WithDatabase(const std::string& url, const std::string& db) {
  const size_t slash = url.rfind('/');
  const size_t query = url.find('?', slash);
  return absl::StrCat(url.substr(0, slash + 1), db,
                      query == std::string::npos ? "" : url.substr(query));
}

// Runs SQL on `url`; returns libpq's error ("" on success).
inline std::string RunPgSql(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PQsetNoticeProcessor(
        conn, [](void*, const char*) {}, nullptr);
    PGresult* res = PQexec(conn, sql.c_str());
    const ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) error = PQerrorMessage(conn);
    PQclear(res);
  }
  PQfinish(conn);
  return error;
}

// One value of a query on `url` ("" on error or without rows).
inline std::string QueryPg(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::string value;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* res = PQexec(conn, sql.c_str());
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0) {
      value = PQgetvalue(res, 0, 0);
    }
    PQclear(res);
  }
  PQfinish(conn);
  return value;
}

// A new, empty database for one test (named after `name`, dropped first if a
// previous run left it) on the fixture's server; its URL.
inline std::string FreshPostgresDatabase(const std::string& base_url, const std::string& name) {
  std::string db = "t_";
  for (char c : name)
    db += std::isalnum(static_cast<unsigned char>(c)) ? absl::ascii_tolower(c) : '_';
  if (db.size() > 63)
    db = absl::StrCat(db.substr(0, 50), "_", std::hash<std::string>()(db) % 100000);
  EXPECT_EQ(RunPgSql(base_url, absl::StrCat("DROP DATABASE IF EXISTS ", db, " WITH (FORCE)")), "");
  // CREATE DATABASE copies template1 and fails while another session (a
  // test in a parallel process creating its own database) is connected to
  // it: retried for a while.
  std::string created;
  for (int attempt = 0; attempt < 50; ++attempt) {
    created = RunPgSql(base_url, absl::StrCat("CREATE DATABASE ", db));
    if (created.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(created, "");
  return WithDatabase(base_url, db);
}

}  // namespace mia::test_util

// In a test or SetUp: `url` = the fixture's URL, or skip (MIA_SKIP_POSTGRES=1)
// or fail when there is none.
#define MIA_POSTGRES_URL_OR_SKIP(url)                                              \
  do {                                                                             \
    url = ::mia::test_util::PostgresUrl();                                         \
    if (url.empty()) {                                                             \
      if (::mia::test_util::SkipPostgres()) GTEST_SKIP() << "MIA_SKIP_POSTGRES=1"; \
      FAIL() << "no test PostgreSQL: " << ::mia::test_util::PostgresUrlFile()      \
             << " is missing (the ctest fixture `postgres` starts one; set "       \
                "MIA_SKIP_POSTGRES=1 to skip)";                                    \
    }                                                                              \
  } while (0)

#endif  // MIA_TESTS_COMMON_POSTGRES_FIXTURE_H_
