// Small Status helpers: Abseil 20220623 (Debian 12) ships no RETURN_IF_ERROR /
// ASSIGN_OR_RETURN macros, so mia defines its own, prefixed MIA_.
#ifndef MIA_CORE_COMMON_STATUS_MACROS_H_
#define MIA_CORE_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) and returns it from the enclosing function
// when it is not OK.
#define MIA_RETURN_IF_ERROR(expr)                  \
  do {                                             \
    ::absl::Status mia_status_ = (expr);           \
    if (!mia_status_.ok()) return mia_status_;     \
  } while (0)

#define MIA_STATUS_MACROS_CONCAT_INNER_(x, y) x##y
#define MIA_STATUS_MACROS_CONCAT_(x, y) MIA_STATUS_MACROS_CONCAT_INNER_(x, y)

// MIA_ASSIGN_OR_RETURN(auto value, FunctionReturningStatusOr());
// Declares/assigns `lhs` from the StatusOr's value, or returns its status.
#define MIA_ASSIGN_OR_RETURN(lhs, rexpr) \
  MIA_ASSIGN_OR_RETURN_IMPL_(MIA_STATUS_MACROS_CONCAT_(mia_statusor_, __LINE__), lhs, rexpr)

#define MIA_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // MIA_CORE_COMMON_STATUS_MACROS_H_
