#include "core/attacks/options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/common/quote.h"

namespace mia::attacks {

absl::StatusOr<AttackOptions> AttackOptions::Parse(absl::string_view spec) {
  AttackOptions options;
  std::vector<absl::string_view> parts = absl::StrSplit(spec, ':');
  options.name_ = std::string(absl::StripAsciiWhitespace(parts[0]));
  if (options.name_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("attack ", Quoted(spec), ": empty attack name"));
  }
  for (size_t k = 1; k < parts.size(); ++k) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(parts[k], '=');
    const std::string key(absl::StripAsciiWhitespace(kv.first));
    const std::string value(absl::StripAsciiWhitespace(kv.second));
    if (key.empty() || value.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("attack ", Quoted(options.name_), ": option ",
                                                     Quoted(parts[k]), " is not key=value"));
    }
    if (!options.values_.emplace(key, value).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("attack ", Quoted(options.name_), ": option ", Quoted(key), " given twice"));
    }
  }
  return options;
}

absl::StatusOr<double> AttackOptions::GetDouble(const std::string& key, double fallback, double min,
                                                double max) {
  absl::StatusOr<std::optional<double>> v = GetOptionalDouble(key, min, max);
  if (!v.ok()) return v.status();
  return v->value_or(fallback);
}

absl::StatusOr<std::optional<double>> AttackOptions::GetOptionalDouble(const std::string& key,
                                                                       double min, double max) {
  used_.insert(key);
  auto it = values_.find(key);
  if (it == values_.end()) return std::optional<double>();
  const char* begin = it->second.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(begin, &end);
  if (end == begin || *end != '\0' || errno != 0 || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("attack '", name_, "': option ", key, " must be a number"));
  }
  if (v < min || v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("attack '", name_, "': option ", key, " must be in [", min, ", ", max, "]"));
  }
  return std::optional<double>(v);
}

absl::StatusOr<std::string> AttackOptions::GetChoice(const std::string& key,
                                                     const std::vector<std::string>& allowed) {
  used_.insert(key);
  auto it = values_.find(key);
  if (it == values_.end()) return allowed.front();
  for (const std::string& a : allowed) {
    if (it->second == a) return a;
  }
  return absl::InvalidArgumentError(absl::StrCat("attack '", name_, "': option ", key,
                                                 " must be one of ", absl::StrJoin(allowed, ", ")));
}

absl::Status AttackOptions::Finish() const {
  for (const auto& [key, value] : values_) {
    if (used_.count(key) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("attack ", Quoted(name_), ": unknown option ", Quoted(key)));
    }
  }
  return absl::OkStatus();
}

}  // namespace mia::attacks
