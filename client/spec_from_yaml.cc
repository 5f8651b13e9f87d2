#include "client/spec_from_yaml.h"

#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/audit/policy.h"
#include "core/common/status_macros.h"
#include "core/common/yaml_util.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "yaml-cpp/yaml.h"

namespace mia::client {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;

constexpr char kUploadPrefix[] = "upload:";
constexpr char kArtifactPrefix[] = "artifact:";

// Where YAML keys and proto field names differ. Everywhere else the proto
// mirrors the YAML key for key, which is what lets the conversion walk the
// descriptors instead of listing every field a second time.
const std::map<std::string, std::map<std::string, std::string>>& Renames() {
  static const auto* const kRenames = new std::map<std::string, std::map<std::string, std::string>>{
      {"mia.v1.AuditSpec", {{"bundle", "signals_bundle"}}},
      {"mia.v1.SignalsBundleInput", {{"path", "bundle"}}},
  };
  return *kRenames;
}

// Keys of `mia audit` that place local output; the server decides where files
// go and refuses them when set, so a config shared by both tools drops them.
const std::map<std::string, std::set<std::string>>& LocalOnlyKeys() {
  static const auto* const kLocal = new std::map<std::string, std::set<std::string>>{
      {"mia.v1.RunSection", {"log_dir"}},
      {"mia.v1.AuditSection", {"report_log"}},
  };
  return *kLocal;
}

// Sections whose presence alone changes the audit, so that `key:` with no
// value sets them (as `mia audit` reads it).
const std::set<std::string>& PresenceSections() {
  static const auto* const kSections = new std::set<std::string>{"mia.v1.DuciSection"};
  return *kSections;
}

std::string Where(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.line < 0) return "";
  return absl::StrCat(" (line ", mark.line + 1, ")");
}

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : absl::StrCat(path, ".", key);
}

template <typename T>
bool ScalarAs(const YAML::Node& node, T* out) {
  if (!node.IsScalar()) return false;
  try {
    *out = node.as<T>();
  } catch (const YAML::Exception&) {
    return false;
  }
  return true;
}

// What a value of `f` must look like: "an integer", or for a list
// ("a list of integers") the plural.
std::string TypeName(const FieldDescriptor* f, bool plural) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_BOOL:
      return plural ? "true or false values" : "true or false";
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
      return plural ? "integers" : "an integer";
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return plural ? "non-negative integers" : "a non-negative integer";
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return plural ? "numbers" : "a number";
    default:
      return plural ? "strings" : "a string";
  }
}

bool IsLowerHex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Walks a YAML mapping and the proto message it mirrors side by side,
// collecting every problem rather than stopping at the first.
class Converter {
 public:
  explicit Converter(ConvertedSpec* out) : out_(out) {}

  const std::vector<std::string>& problems() const { return problems_; }

  // `node` must be a mapping (or null: an empty section).
  void Section(const YAML::Node& node, const std::string& path, Message* msg) {
    if (!node || node.IsNull()) return;
    if (!node.IsMap()) {
      Problem(path, "must be a mapping of keys", node);
      return;
    }
    const Descriptor* d = msg->GetDescriptor();
    for (const auto& kv : node) {
      std::string key;
      if (!ScalarAs(kv.first, &key)) {
        Problem(path.empty() ? "(top level)" : path, "keys must be plain names", kv.first);
        continue;
      }
      const std::string key_path = Join(path, key);
      auto local = LocalOnlyKeys().find(d->full_name());
      if (local != LocalOnlyKeys().end() && local->second.count(key) > 0) {
        out_->notes.push_back(absl::StrCat(
            key_path, " is where `mia audit` writes locally; the server chooses: left out"));
        continue;
      }
      if (d == v1::AuditSpec::descriptor() && key == "ramia") {
        // Privacy Meter writes the range section at the top level; the API
        // holds it in AuditSection (as YAML audit.ramia).
        const YAML::Node audit = node["audit"];
        if (audit && audit.IsMap() && audit["ramia"]) {
          Problem("ramia", "give ramia (top level) or audit.ramia, not both", kv.first);
          continue;
        }
        auto* spec = static_cast<v1::AuditSpec*>(msg);
        Field(kv.second, key_path, v1::AuditSection::descriptor()->FindFieldByName("ramia"),
              spec->mutable_audit());
        continue;
      }
      const FieldDescriptor* f = FieldFor(d, key);
      if (f == nullptr) {
        problems_.push_back(absl::StrCat(key_path, ": unknown key", Where(kv.first),
                                         "; known keys here: ", KnownKeys(d)));
        continue;
      }
      Field(kv.second, key_path, f, msg);
    }
  }

 private:
  // The field a YAML key stands for, or null for an unknown key.
  static const FieldDescriptor* FieldFor(const Descriptor* d, const std::string& key) {
    auto renames = Renames().find(d->full_name());
    if (renames != Renames().end()) {
      auto it = renames->second.find(key);
      if (it != renames->second.end()) return d->FindFieldByName(it->second);
      // A renamed field is reachable only by its YAML name.
      for (const auto& [yaml_key, field] : renames->second) {
        if (field == key) return nullptr;
      }
    }
    return d->FindFieldByName(key);
  }

  static std::string KnownKeys(const Descriptor* d) {
    std::map<std::string, std::string> yaml_for_field;
    auto renames = Renames().find(d->full_name());
    if (renames != Renames().end()) {
      for (const auto& [yaml_key, field] : renames->second) yaml_for_field[field] = yaml_key;
    }
    std::vector<std::string> keys;
    for (int i = 0; i < d->field_count(); ++i) {
      const std::string& name = d->field(i)->name();
      auto it = yaml_for_field.find(name);
      keys.push_back(it == yaml_for_field.end() ? name : it->second);
    }
    return absl::StrJoin(keys, ", ");
  }

  void Problem(const std::string& path, const std::string& what, const YAML::Node& node) {
    problems_.push_back(absl::StrCat(path, ": ", what, Where(node)));
  }

  void Field(const YAML::Node& value, const std::string& path, const FieldDescriptor* f,
             Message* msg) {
    const Reflection* r = msg->GetReflection();
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      if (!f->is_repeated()) {
        if (!SetScalar(value, f, msg, /*add=*/false)) {
          Problem(path, absl::StrCat("expected ", TypeName(f, false)), value);
        }
        return;
      }
      for (const YAML::Node& item : Items(value)) {
        if (!SetScalar(item, f, msg, /*add=*/true)) {
          Problem(path, absl::StrCat("expected a list of ", TypeName(f, true)), item);
          return;
        }
      }
      if (!value.IsScalar() && !value.IsSequence()) {
        Problem(path, absl::StrCat("expected a list of ", TypeName(f, true)), value);
      }
      return;
    }
    const Descriptor* type = f->message_type();
    if (type == v1::DataRef::descriptor()) {
      if (!f->is_repeated()) {
        DataRefFrom(value, path, static_cast<v1::DataRef*>(r->MutableMessage(msg, f)));
        return;
      }
      if (!value.IsScalar() && !value.IsSequence()) {
        Problem(path, "expected a list of file references", value);
        return;
      }
      int index = 0;
      for (const YAML::Node& item : Items(value)) {
        DataRefFrom(item, absl::StrCat(path, "[", index++, "]"),
                    static_cast<v1::DataRef*>(r->AddMessage(msg, f)));
      }
      return;
    }
    if (type == v1::LayerWidths::descriptor()) {
      auto* widths = static_cast<v1::LayerWidths*>(r->MutableMessage(msg, f));
      if (!value.IsScalar() && !value.IsSequence()) {
        Problem(path, "expected a list of integers", value);
        return;
      }
      for (const YAML::Node& item : Items(value)) {
        int32_t w = 0;
        if (!ScalarAs(item, &w)) {
          Problem(path, "expected a list of integers", item);
          return;
        }
        widths->add_widths(w);
      }
      return;
    }
    if (f->is_map()) {  // a YAML mapping with plain keys (audit.policy)
      if (!value || value.IsNull()) return;
      if (!value.IsMap()) {
        Problem(path, "must be a mapping of keys", value);
        return;
      }
      for (const auto& kv : value) {
        std::string key;
        if (!ScalarAs(kv.first, &key)) {
          Problem(path, "keys must be plain names", kv.first);
          continue;
        }
        Message* entry = r->AddMessage(msg, f);
        entry->GetReflection()->SetString(entry, type->map_key(), key);
        Field(kv.second, absl::StrCat(path, "[", key, "]"), type->map_value(), entry);
      }
      return;
    }
    if (type == v1::RamiaColumnRange::descriptor()) {  // [[low, high], ...]
      if (!value.IsSequence()) {
        Problem(path, "expected a list of [low, high] pairs", value);
        return;
      }
      int index = 0;
      for (const YAML::Node& item : value) {
        double low = 0, high = 0;
        if (!item.IsSequence() || item.size() != 2 || !ScalarAs(item[0], &low) ||
            !ScalarAs(item[1], &high)) {
          Problem(absl::StrCat(path, "[", index, "]"), "must be [low, high] with finite low <= high",
                  item);
          return;
        }
        auto* range = static_cast<v1::RamiaColumnRange*>(r->AddMessage(msg, f));
        range->set_low(low);
        range->set_high(high);
        ++index;
      }
      return;
    }
    if (f->is_repeated()) {  // a list of mappings (audit.dp_audit.grid)
      if (!value.IsSequence()) {
        Problem(path, "expected a list of mappings", value);
        return;
      }
      int index = 0;
      for (const YAML::Node& item : value) {
        const std::string item_path = absl::StrCat(path, "[", index++, "]");
        if (!item.IsMap()) {
          Problem(item_path, "must be a mapping of keys", item);
          continue;
        }
        Section(item, item_path, r->AddMessage(msg, f));
      }
      return;
    }
    if (!value || value.IsNull()) {
      // A section whose presence is its meaning (`audit.duci:` makes a DUCI
      // audit) is set even when empty; others stay unset (their defaults).
      if (PresenceSections().count(f->message_type()->full_name()) > 0) {
        r->MutableMessage(msg, f);
      }
      return;
    }
    if (!value.IsMap()) {
      Problem(path, "must be a mapping of keys", value);
      return;
    }
    Section(value, path, r->MutableMessage(msg, f));
  }

  // A sequence's items, or a lone scalar as a list of one (as `mia audit`).
  static std::vector<YAML::Node> Items(const YAML::Node& value) {
    std::vector<YAML::Node> items;
    if (value.IsSequence()) {
      for (const YAML::Node& item : value) items.push_back(item);
    } else if (value.IsScalar()) {
      items.push_back(value);
    }
    return items;
  }

  static bool SetScalar(const YAML::Node& v, const FieldDescriptor* f, Message* msg, bool add) {
    const Reflection* r = msg->GetReflection();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: {
        int32_t x = 0;
        if (!ScalarAs(v, &x)) return false;
        add ? r->AddInt32(msg, f, x) : r->SetInt32(msg, f, x);
        return true;
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t x = 0;
        if (!ScalarAs(v, &x)) return false;
        add ? r->AddInt64(msg, f, x) : r->SetInt64(msg, f, x);
        return true;
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint32_t x = 0;
        if (!ScalarAs(v, &x)) return false;
        add ? r->AddUInt32(msg, f, x) : r->SetUInt32(msg, f, x);
        return true;
      }
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t x = 0;
        if (!ScalarAs(v, &x)) return false;
        add ? r->AddUInt64(msg, f, x) : r->SetUInt64(msg, f, x);
        return true;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        double x = 0;
        if (!ScalarAs(v, &x)) return false;
        add ? r->AddDouble(msg, f, x) : r->SetDouble(msg, f, x);
        return true;
      }
      case FieldDescriptor::CPPTYPE_FLOAT: {
        float x = 0;
        if (!ScalarAs(v, &x)) return false;
        add ? r->AddFloat(msg, f, x) : r->SetFloat(msg, f, x);
        return true;
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        bool x = false;
        if (!ScalarAs(v, &x)) return false;
        add ? r->AddBool(msg, f, x) : r->SetBool(msg, f, x);
        return true;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string x;
        if (!ScalarAs(v, &x)) return false;
        add ? r->AddString(msg, f, x) : r->SetString(msg, f, x);
        return true;
      }
      default:  // enums: none in the spec
        return false;
    }
  }

  void DataRefFrom(const YAML::Node& value, const std::string& path, v1::DataRef* ref) {
    std::string text;
    if (value.IsNull() || !ScalarAs(value, &text)) {
      Problem(path, "expected a path (or upload:FILE, artifact:SHA256)", value);
      return;
    }
    if (absl::StartsWith(text, kUploadPrefix)) {
      const std::string file = text.substr(sizeof(kUploadPrefix) - 1);
      if (file.empty()) {
        Problem(path, "upload: needs a local file name", value);
        return;
      }
      out_->uploads.push_back({path, file});  // `ref` stays without a source until uploaded
      return;
    }
    if (absl::StartsWith(text, kArtifactPrefix)) {
      const std::string id = absl::AsciiStrToLower(text.substr(sizeof(kArtifactPrefix) - 1));
      if (!IsLowerHex64(id)) {
        Problem(path, "artifact: needs the 64 hex digits `mia upload` printed", value);
        return;
      }
      ref->set_artifact_id(id);
      return;
    }
    if (text.empty()) {
      Problem(path, "must not be empty", value);
      return;
    }
    ref->set_server_path(text);
  }

  ConvertedSpec* out_;
  std::vector<std::string> problems_;
};

// Every DataRef in `spec` with the YAML key path that produced it.
std::vector<std::pair<std::string, v1::DataRef*>> DataRefs(v1::AuditSpec* spec) {
  std::vector<std::pair<std::string, v1::DataRef*>> refs;
  if (spec->has_data() && spec->data().has_data_dir()) {
    refs.emplace_back("data.data_dir", spec->mutable_data()->mutable_data_dir());
  }
  if (spec->has_models()) {
    v1::ModelsSection* models = spec->mutable_models();
    for (int i = 0; i < models->torchscript_size(); ++i) {
      refs.emplace_back(absl::StrCat("models.torchscript[", i, "]"),
                        models->mutable_torchscript(i));
    }
    if (models->has_keep()) refs.emplace_back("models.keep", models->mutable_keep());
  }
  if (spec->has_signals_bundle() && spec->signals_bundle().has_bundle()) {
    refs.emplace_back("bundle.path", spec->mutable_signals_bundle()->mutable_bundle());
  }
  return refs;
}

}  // namespace

absl::StatusOr<ConvertedSpec> SpecFromYaml(const std::string& yaml_text, const std::string& path) {
  MIA_ASSIGN_OR_RETURN(
      YAML::Node root,
      LoadYamlMapping(yaml_text, path, ": run, data, train, audit (and models), or bundle"));
  ConvertedSpec out;
  std::vector<std::string> moved;
  if (root.IsMap() && root["dp_audit"]) {
    // Privacy Meter's top-level dp_audit is audit.dp_audit in the API.
    if (root["audit"] && root["audit"].IsMap() && root["audit"]["dp_audit"]) {
      moved.push_back(absl::StrCat("dp_audit: give audit.dp_audit or dp_audit, not both",
                                   Where(root["dp_audit"])));
    } else {
      YAML::Node copy = YAML::Clone(root);
      if (!copy["audit"] || copy["audit"].IsNull()) copy["audit"] = YAML::Node(YAML::NodeType::Map);
      if (copy["audit"].IsMap()) {
        copy["audit"]["dp_audit"] = copy["dp_audit"];
        copy.remove("dp_audit");
        root = copy;
      }
    }
  }
  Converter converter(&out);
  converter.Section(root, "", &out.spec);
  std::vector<std::string> problems = converter.problems();
  problems.insert(problems.begin(), moved.begin(), moved.end());
  if (root["bundle"]) {
    for (const char* section : {"run", "data", "train", "audit", "models"}) {
      if (root[section]) {
        problems.push_back(absl::StrCat("bundle: a bundle job has no other sections; remove '",
                                        section, "'", Where(root["bundle"])));
        break;
      }
    }
    if (!out.spec.signals_bundle().has_bundle() && problems.empty()) {
      problems.push_back(
          absl::StrCat("bundle.path: missing; the bundle file on the server, upload:FILE or "
                       "artifact:SHA256",
                       Where(root["bundle"])));
    }
  }
  if (!problems.empty()) {
    for (std::string& p : problems) p = absl::StrCat(path, ": ", p);
    return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  }
  return out;
}

absl::StatusOr<ConvertedSpec> SpecFromYamlFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the job file"));
  std::stringstream text;
  text << in.rdbuf();
  return SpecFromYaml(text.str(), path);
}

absl::Status SetUploadedArtifact(const std::string& field, const std::string& artifact_id,
                                 v1::AuditSpec* spec) {
  for (auto& [path, ref] : DataRefs(spec)) {
    if (path == field) {
      ref->set_artifact_id(artifact_id);
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError(absl::StrCat(field, ": no file reference there"));
}

absl::StatusOr<v1::PolicySection> PolicyFromYamlFile(const std::string& path) {
  // The checks `mia score --policy` makes, with their lines, before anything
  // is sent; the server checks the policy against the audit again.
  MIA_RETURN_IF_ERROR(audit::LoadPolicyFile(path).status());
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the policy file"));
  std::stringstream text;
  text << in.rdbuf();
  MIA_ASSIGN_OR_RETURN(const YAML::Node root,
                       LoadYamlMapping(text.str(), path,
                                       ": the keys of audit.policy (use, max_auc, "
                                       "max_tpr_at_fpr, max_epsilon_lower_bound, attacks)"));
  ConvertedSpec unused;
  Converter converter(&unused);
  v1::PolicySection policy;
  converter.Section(root, "", &policy);
  if (!converter.problems().empty()) {
    std::vector<std::string> problems;
    for (const std::string& p : converter.problems()) problems.push_back(absl::StrCat(path, ": ", p));
    return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  }
  return policy;
}

absl::Status SetSpecPolicy(const v1::PolicySection& policy, const std::string& job_file,
                           v1::AuditSpec* spec) {
  if (spec->has_signals_bundle()) {
    if (spec->signals_bundle().has_policy()) {
      return absl::InvalidArgumentError(absl::StrCat(
          job_file, ": bundle.policy: the job file has a policy; give it there or --policy, not both"));
    }
    *spec->mutable_signals_bundle()->mutable_policy() = policy;
    return absl::OkStatus();
  }
  if (spec->audit().has_policy()) {
    return absl::InvalidArgumentError(absl::StrCat(
        job_file, ": audit.policy: the job file has a policy; give it there or --policy, not both"));
  }
  *spec->mutable_audit()->mutable_policy() = policy;
  return absl::OkStatus();
}

}  // namespace mia::client
