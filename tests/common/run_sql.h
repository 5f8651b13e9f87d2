// Tests only: runs SQL on a SQLite database file directly, as another writer
// or a hand edit would (jobs and service tests craft stores with it).
#ifndef MIA_TESTS_COMMON_RUN_SQL_H_
#define MIA_TESTS_COMMON_RUN_SQL_H_

#include <sqlite3.h>

#include <string>

#include "gtest/gtest.h"

namespace mia::test_util {

inline void RunSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error != nullptr ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

}  // namespace mia::test_util

#endif  // MIA_TESTS_COMMON_RUN_SQL_H_
