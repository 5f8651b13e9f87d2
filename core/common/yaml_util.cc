#include "core/common/yaml_util.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mia {

absl::StatusOr<YAML::Node> LoadYamlMapping(const std::string& text, const std::string& path,
                                           const std::string& expected) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid YAML at line ",
                                                   e.mark.line + 1, ", column ", e.mark.column + 1,
                                                   ": ", e.msg));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the top level must be a mapping", expected));
  }
  return root;
}

}  // namespace mia
