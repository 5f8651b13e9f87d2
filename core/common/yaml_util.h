// Loading a YAML document whose top level must be a mapping, with errors that
// name the file, line and column. Include only where yaml-cpp is linked
// (library mia_yaml).
#ifndef MIA_CORE_COMMON_YAML_UTIL_H_
#define MIA_CORE_COMMON_YAML_UTIL_H_

#include <yaml-cpp/yaml.h>

#include <string>

#include "absl/status/statusor.h"

namespace mia {

// Parses `text` (from `path`, for messages). InvalidArgument when it is not
// valid YAML, or when its top level is not a mapping: then the message is
// "<path>: the top level must be a mapping<expected>". A key repeated under
// the same mapping, anywhere in the document, is InvalidArgument naming the
// key's path and both lines.
absl::StatusOr<YAML::Node> LoadYamlMapping(const std::string& text, const std::string& path,
                                           const std::string& expected);

}  // namespace mia

#endif  // MIA_CORE_COMMON_YAML_UTIL_H_
