#include "core/common/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mia {
namespace {

// The first line of a small control file, trimmed; empty when unreadable.
std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  return std::string(absl::StripAsciiWhitespace(line));
}

// A limit file's value: a byte count, or nullopt for "max" and garbage.
std::optional<uint64_t> ParseLimit(const std::string& text) {
  uint64_t value = 0;
  if (text.empty() || text == "max" || !absl::SimpleAtoi(text, &value)) return std::nullopt;
  // cgroup v1 writes "no limit" as the largest page-aligned long.
  if (value >= (uint64_t{1} << 62)) return std::nullopt;
  return value;
}

}  // namespace

uint64_t PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
}

std::optional<uint64_t> CgroupMemoryLimitBytes(const std::string& cgroup_root) {
  for (const char* file :
       {"/memory.max", "/memory/memory.limit_in_bytes", "/memory.limit_in_bytes"}) {
    const std::string text = FirstLine(cgroup_root + file);
    if (text.empty()) continue;
    return ParseLimit(text);
  }
  return std::nullopt;
}

uint64_t DefaultMemoryBudgetBytes(double fraction, const std::string& cgroup_root) {
  uint64_t available = PhysicalMemoryBytes();
  if (const std::optional<uint64_t> limit = CgroupMemoryLimitBytes(cgroup_root)) {
    available = available == 0 ? *limit : std::min(available, *limit);
  }
  return static_cast<uint64_t>(static_cast<double>(available) * std::clamp(fraction, 0.0, 1.0));
}

std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1000) return absl::StrCat(bytes, " bytes");
  static constexpr const char* kUnits[] = {"kB", "MB", "GB", "TB", "PB", "EB"};
  double value = static_cast<double>(bytes) / 1000;
  int unit = 0;
  while (value >= 999.95 && unit + 1 < 6) {
    value /= 1000;
    ++unit;
  }
  const int decimals = value < 9.995 ? 2 : value < 99.95 ? 1 : 0;
  return absl::StrFormat("%.*f %s", decimals, value, kUnits[unit]);
}

absl::Status CheckMemoryBudget(uint64_t estimate_bytes, absl::string_view what,
                               uint64_t budget_bytes, absl::string_view whose,
                               absl::string_view hint) {
  if (budget_bytes == 0 || estimate_bytes <= budget_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("estimated ", FormatBytes(estimate_bytes), " for ", what, " exceeds ", whose,
                   " memory budget ", FormatBytes(budget_bytes), hint.empty() ? "" : "; ", hint));
}

}  // namespace mia
