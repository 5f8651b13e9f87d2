// The attack registry: every attack by name, with what it needs and its options.
// Attacks are created from spec strings "name[:key=value...]", e.g.
// "rmia-offline:gamma=2" or "lira:variance=fixed:center=median".
//
// The catalog is a constant table built on first use; MakeAttack is safe from
// any thread.
#ifndef MIA_CORE_ATTACKS_REGISTRY_H_
#define MIA_CORE_ATTACKS_REGISTRY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/attacks/attack.h"
#include "core/attacks/options.h"

namespace mia::attacks {

struct AttackInfo {
  std::string name;                  // registry name
  std::vector<std::string> aliases;  // other accepted names
  std::string summary;               // one line for --help and docs
  std::string options_help;          // "key=values (default); ..." or empty
  AttackNeeds needs;
  // Builds the attack; reads its options through `options` (unknown keys are
  // rejected by the caller afterwards).
  std::function<absl::StatusOr<std::unique_ptr<Attack>>(AttackOptions& options)> make;
};

// Every registered attack, in a stable order.
const std::vector<AttackInfo>& AttackCatalog();

// Creates one attack from its spec; errors name the unknown attack or option.
absl::StatusOr<std::unique_ptr<Attack>> MakeAttack(absl::string_view spec);

// Creates attacks from a comma-separated list of specs ("rmia,lira:variance=fixed").
// A name given twice is an error.
absl::StatusOr<std::vector<std::unique_ptr<Attack>>> MakeAttacks(absl::string_view specs);

}  // namespace mia::attacks

#endif  // MIA_CORE_ATTACKS_REGISTRY_H_
