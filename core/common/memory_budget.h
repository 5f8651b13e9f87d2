// How much memory this process may use, and how an estimate is compared with
// it: the admission checks of the server (and `mia score`) refuse work whose
// estimated peak memory exceeds a budget before any of it is allocated.
//
// The default budget is a fraction of the smaller of the machine's physical
// memory and the memory limit of the process's cgroup (a container's limit:
// cgroup v2 memory.max, or v1 memory.limit_in_bytes), because a process
// that passes its container's limit is killed, not refused.
//
// Free functions without shared state; safe from any thread.
#ifndef MIA_CORE_COMMON_MEMORY_BUDGET_H_
#define MIA_CORE_COMMON_MEMORY_BUDGET_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mia {

// Share of the available memory the default budget grants: the rest is left
// for the allocator's slack, the code, gRPC buffers and estimates' error.
inline constexpr double kDefaultMemoryBudgetFraction = 0.8;

// The machine's physical memory (sysconf), 0 when unknown.
uint64_t PhysicalMemoryBytes();

// The memory limit of the cgroup mounted at `cgroup_root`: cgroup v2
// `memory.max`, else v1 `memory/memory.limit_in_bytes` (or
// `memory.limit_in_bytes` at the root); nullopt when none is set ("max", a
// v1 "unlimited" value, or no such file).
std::optional<uint64_t> CgroupMemoryLimitBytes(const std::string& cgroup_root = "/sys/fs/cgroup");

// fraction * min(physical memory, cgroup limit); 0 when neither is known.
uint64_t DefaultMemoryBudgetBytes(double fraction = kDefaultMemoryBudgetFraction,
                                  const std::string& cgroup_root = "/sys/fs/cgroup");

// "17.2 GB" (decimal units, three significant digits), "512 bytes".
std::string FormatBytes(uint64_t bytes);

// OK when `estimate_bytes` fits `budget_bytes` (a budget of 0 admits
// everything); otherwise ResourceExhausted:
// "estimated <E> for <what> exceeds <whose> memory budget <B>; <hint>".
// `what` describes the work by its settings and sizes, never by data.
absl::Status CheckMemoryBudget(uint64_t estimate_bytes, absl::string_view what,
                               uint64_t budget_bytes, absl::string_view whose,
                               absl::string_view hint);

}  // namespace mia

#endif  // MIA_CORE_COMMON_MEMORY_BUDGET_H_
