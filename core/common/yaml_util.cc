#include "core/common/yaml_util.h"

#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/quote.h"

namespace mia {
namespace {

// Collects "key at line B (first at line A)" for every mapping key that
// appears twice under the same parent, anywhere in the document. yaml-cpp
// keeps both pairs and looks up the first, where other parsers take the
// last: a repeated key is refused rather than read one way or the other.
// Nodes the walk visits at most: aliases (`*a`) make a small text expand to
// exponentially many nodes, and a config has a few hundred.
constexpr int64_t kMaxYamlNodes = 1'000'000;

void FindDuplicateKeys(const YAML::Node& node, const std::string& path,
                       std::vector<std::string>* problems, int64_t* budget) {
  if (--*budget < 0) return;
  if (node.IsMap()) {
    std::map<std::string, int> first_line;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) continue;
      const std::string key = kv.first.Scalar();
      const std::string key_path = path.empty() ? key : absl::StrCat(path, ".", key);
      const int line = kv.first.Mark().line + 1;
      const auto [it, inserted] = first_line.emplace(key, line);
      if (!inserted) {
        problems->push_back(absl::StrCat(Quoted(key_path), " appears twice: line ", it->second,
                                         " and line ", line));
      }
      FindDuplicateKeys(kv.second, key_path, problems, budget);
      if (*budget < 0) return;
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      FindDuplicateKeys(node[i], absl::StrCat(path, "[", i, "]"), problems, budget);
      if (*budget < 0) return;
    }
  }
}

}  // namespace

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
  std::vector<std::string> duplicates;
  int64_t budget = kMaxYamlNodes;
  FindDuplicateKeys(root, "", &duplicates, &budget);
  if (budget < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": more than ", kMaxYamlNodes,
                     " values once aliases (*name) are expanded; a config needs far fewer"));
  }
  if (!duplicates.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": duplicate key",
                                                   duplicates.size() > 1 ? "s" : "", ": ",
                                                   absl::StrJoin(duplicates, "; ")));
  }
  return root;
}

}  // namespace mia
