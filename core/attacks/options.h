// Options of one attack, parsed from the spec string "name:key=value:key=value".
// Every getter records the key as known; Finish() then rejects any key no
// getter asked for, so a misspelt option is an error, never silently ignored.
// Not thread-safe; used only while constructing an attack.
#ifndef MIA_CORE_ATTACKS_OPTIONS_H_
#define MIA_CORE_ATTACKS_OPTIONS_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mia::attacks {

class AttackOptions {
 public:
  // Parses "name:key=value:...". Errors name the malformed part.
  static absl::StatusOr<AttackOptions> Parse(absl::string_view spec);

  const std::string& name() const { return name_; }

  // Each returns the value if given, else `fallback`; an unparsable value or one
  // outside [min, max] is an InvalidArgument error naming the attack and key.
  absl::StatusOr<double> GetDouble(const std::string& key, double fallback, double min, double max);
  absl::StatusOr<std::optional<double>> GetOptionalDouble(const std::string& key, double min,
                                                          double max);
  // `allowed` lists the accepted values; the first is the default.
  absl::StatusOr<std::string> GetChoice(const std::string& key,
                                        const std::vector<std::string>& allowed);

  // Error naming the first option no getter asked for.
  absl::Status Finish() const;

 private:
  std::string name_;
  std::map<std::string, std::string> values_;
  std::set<std::string> used_;
};

}  // namespace mia::attacks

#endif  // MIA_CORE_ATTACKS_OPTIONS_H_
