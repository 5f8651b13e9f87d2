// SpecFromYaml: the shipped configs convert with nothing dropped, every
// problem names its key path and line, file references become DataRefs, and a
// bundle job maps onto signals_bundle.
#include "client/spec_from_yaml.h"

#include <filesystem>
#include <string>

#include "core/pipeline/config.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "yaml-cpp/yaml.h"

namespace mia::client {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;

const google::protobuf::Message* SectionOf(const v1::AuditSpec& spec, const std::string& name) {
  const auto* f = v1::AuditSpec::descriptor()->FindFieldByName(name);
  if (f == nullptr || !spec.GetReflection()->HasField(spec, f)) return nullptr;
  return &spec.GetReflection()->GetMessage(spec, f);
}

// Every key of a shipped config reaches the spec (none silently dropped but
// the two local output places), and the values are the ones `mia audit` reads.
TEST(SpecFromYamlTest, ShippedConfigsConvertWithEveryKey) {
  int configs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(MIA_SOURCE_DIR "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    ++configs;
    const std::string path = entry.path().string();
    SCOPED_TRACE(path);
    absl::StatusOr<ConvertedSpec> converted = SpecFromYamlFile(path);
    ASSERT_TRUE(converted.ok()) << converted.status();
    EXPECT_TRUE(converted->uploads.empty());
    const v1::AuditSpec& spec = converted->spec;
    EXPECT_FALSE(spec.has_signals_bundle());
    EXPECT_FALSE(spec.run().has_log_dir());
    EXPECT_FALSE(spec.audit().has_report_log());

    const YAML::Node root = YAML::LoadFile(path);
    for (const auto& section : root) {
      const std::string name = section.first.as<std::string>();
      const google::protobuf::Message* msg = SectionOf(spec, name);
      ASSERT_NE(msg, nullptr) << name;
      for (const auto& kv : section.second) {
        const std::string key = kv.first.as<std::string>();
        if ((name == "run" && key == "log_dir") || (name == "audit" && key == "report_log")) {
          continue;
        }
        const auto* f = msg->GetDescriptor()->FindFieldByName(key);
        ASSERT_NE(f, nullptr) << name << "." << key;
        if (f->is_repeated()) {
          EXPECT_GT(msg->GetReflection()->FieldSize(*msg, f), 0) << name << "." << key;
        } else {
          EXPECT_TRUE(msg->GetReflection()->HasField(*msg, f)) << name << "." << key;
        }
      }
    }

    // The same values as the local parser (torch-free: config.cc).
    absl::StatusOr<pipeline::Config> config = pipeline::LoadConfigFile(path);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(spec.data().dataset(), config->data.dataset);
    if (spec.data().has_data_dir()) {
      EXPECT_EQ(spec.data().data_dir().server_path(), config->data.source.path);
    }
    EXPECT_EQ(spec.run().random_seed(), config->run.random_seed);
    EXPECT_EQ(spec.data().pool_size(), config->data.pool_size);
    EXPECT_EQ(spec.data().population_size(), config->data.population_size);
    if (config->language_model()) {
      EXPECT_DOUBLE_EQ(spec.train().learning_rate(), config->lm->recipe.learning_rate);
      EXPECT_EQ(spec.train().epochs(), config->lm->recipe.epochs);
      EXPECT_EQ(spec.train().n_embd(), config->lm->spec.n_embd);
      EXPECT_EQ(spec.train().vocab_size(), config->lm->vocab_size);
    } else {
      EXPECT_DOUBLE_EQ(spec.train().learning_rate(), config->recipe.learning_rate);
      EXPECT_EQ(spec.train().epochs(), config->recipe.epochs);
    }
    EXPECT_EQ(spec.audit().num_ref_models(), config->audit.num_ref_models);
    EXPECT_EQ(spec.audit().data_size(), config->audit.data_size);
    if (spec.audit().attacks_size() > 0) {
      EXPECT_THAT(spec.audit().attacks(), ElementsAreArray(config->audit.scoring.attacks));
    }
    ASSERT_EQ(static_cast<size_t>(spec.train().normalize_mean_size()),
              config->recipe.normalize_mean.size());
    for (int i = 0; i < spec.train().normalize_mean_size(); ++i) {
      EXPECT_FLOAT_EQ(spec.train().normalize_mean(i), config->recipe.normalize_mean[i]);
    }
  }
  EXPECT_GE(configs, 4);
}

TEST(SpecFromYamlTest, DemoValues) {
  absl::StatusOr<ConvertedSpec> c = SpecFromYamlFile(MIA_SOURCE_DIR "/configs/demo.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->spec.data().dataset(), "fashion-mnist");
  EXPECT_FALSE(c->spec.data().has_data_dir());  // the server's default location
  EXPECT_TRUE(c->spec.data().shuffle());
  EXPECT_GT(c->spec.audit().attacks_size(), 0);
  EXPECT_EQ(c->spec.audit().bootstrap(), 1000);
  EXPECT_EQ(c->spec.train().model_name(), "cnn");
  EXPECT_EQ(c->spec.train().weight_decay(), 0.0);
  EXPECT_TRUE(c->spec.train().has_weight_decay());  // set to 0, not unset
  ASSERT_EQ(c->notes.size(), 2u);
  EXPECT_THAT(c->notes[0], HasSubstr("run.log_dir"));
  EXPECT_THAT(c->notes[1], HasSubstr("audit.report_log"));
}

TEST(SpecFromYamlTest, NestedAndListValues) {
  const std::string yaml = R"(data:
  dataset: csv
  data_dir: /srv/data/x.csv
train:
  hidden: []
  normalize_std: 0.5
audit:
  algorithm: RMIA
  fprs: [0.01, 0.001]
  augmentation:
    flip: yes
    shift: 2
)";
  absl::StatusOr<ConvertedSpec> c = SpecFromYaml(yaml, "job.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->spec.data().data_dir().server_path(), "/srv/data/x.csv");
  EXPECT_TRUE(c->spec.train().has_hidden());  // empty list: no hidden layer, not the default
  EXPECT_EQ(c->spec.train().hidden().widths_size(), 0);
  EXPECT_THAT(c->spec.train().normalize_std(), ElementsAre(0.5f));  // a lone scalar is a list
  EXPECT_EQ(c->spec.audit().algorithm(), "RMIA");
  EXPECT_THAT(c->spec.audit().fprs(), ElementsAre(0.01, 0.001));
  EXPECT_TRUE(c->spec.audit().augmentation().flip());
  EXPECT_EQ(c->spec.audit().augmentation().shift(), 2);
}

// audit.dp_audit, its grid a list of mappings; Privacy Meter's top-level
// dp_audit lands in the same place.
TEST(SpecFromYamlTest, DpAuditSection) {
  const std::string body =
      " {canary_dataset: cifar10_canary, canary_size: 1000, training_alg: nondp,\n"
      "   grid: [{k_plus: 10, k_minus: 20}, {k_plus: 5}], beta: 0.1}\n";
  for (const std::string& yaml :
       {"data: {dataset: cifar10}\naudit:\n  algorithm: loss\n  dp_audit:" + body,
        "data: {dataset: cifar10}\naudit:\n  algorithm: loss\ndp_audit:" + body,
        "data: {dataset: cifar10}\ndp_audit:" + body}) {
    absl::StatusOr<ConvertedSpec> c = SpecFromYaml(yaml, "dp.yaml");
    ASSERT_TRUE(c.ok()) << c.status() << "\n" << yaml;
    const v1::DpAuditSection& d = c->spec.audit().dp_audit();
    EXPECT_EQ(d.canary_dataset(), "cifar10_canary");
    EXPECT_EQ(d.canary_size(), 1000);
    EXPECT_EQ(d.training_alg(), "nondp");
    ASSERT_EQ(d.grid_size(), 2);
    EXPECT_EQ(d.grid(0).k_minus(), 20);
    EXPECT_EQ(d.grid(1).k_plus(), 5);
    EXPECT_FALSE(d.grid(1).has_k_minus());
    EXPECT_EQ(d.beta(), 0.1);
  }
  absl::StatusOr<ConvertedSpec> both = SpecFromYaml(
      "audit:\n  dp_audit: {canary_size: 10}\ndp_audit: {canary_size: 10}\n", "both.yaml");
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(std::string(both.status().message()), HasSubstr("not both"));
  absl::StatusOr<ConvertedSpec> bad =
      SpecFromYaml("audit:\n  dp_audit: {grid: [5, {k_pluss: 1}]}\n", "bad.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("audit.dp_audit.grid[0]"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("audit.dp_audit.grid[1].k_pluss"));
}

TEST(SpecFromYamlTest, UnknownKeysAndWrongTypesNameThePathAndLine) {
  const std::string yaml = R"(run:
  random_seed: 3
train:
  learing_rate: 0.1
  epochs: many
audit:
  augmentation:
    flipp: true
  fprs: [0.1, high]
extra: 1
)";
  absl::StatusOr<ConvertedSpec> c = SpecFromYaml(yaml, "job.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string m(c.status().message());
  EXPECT_THAT(m, HasSubstr("job.yaml: train.learing_rate: unknown key (line 4)"));
  EXPECT_THAT(m, HasSubstr("learning_rate"));  // the known keys are listed
  EXPECT_THAT(m, HasSubstr("job.yaml: train.epochs: expected an integer (line 5)"));
  EXPECT_THAT(m, HasSubstr("job.yaml: audit.augmentation.flipp: unknown key (line 8)"));
  EXPECT_THAT(m, HasSubstr("job.yaml: audit.fprs: expected a list of numbers (line 9)"));
  EXPECT_THAT(m, HasSubstr("job.yaml: extra: unknown key (line 10)"));
}

// `mia submit` and `mia audit` read a repeated key the same way: as an error
// naming both lines (yaml-cpp looks up the first, the proto path took the last).
TEST(SpecFromYamlTest, DuplicateKeysAreAnErrorNamingBothLines) {
  const std::string yaml =
      "run:\n  random_seed: 3\ntrain:\n  epochs: 5\n  batch_size: 8\n"
      "  epochs: 50\ndata:\n  dataset: csv\n";
  absl::StatusOr<ConvertedSpec> c = SpecFromYaml(yaml, "job.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(c.status().message()),
      HasSubstr("job.yaml: duplicate key: 'train.epochs' appears twice: line 4 and line 6"));
  absl::StatusOr<pipeline::Config> local = pipeline::ParseConfig(yaml, "job.yaml");
  ASSERT_FALSE(local.ok());
  EXPECT_EQ(c.status().message(), local.status().message());
}

TEST(SpecFromYamlTest, WrongShapes) {
  EXPECT_THAT(std::string(SpecFromYaml("train: 5\n", "j").status().message()),
              HasSubstr("train: must be a mapping of keys (line 1)"));
  EXPECT_THAT(std::string(SpecFromYaml("run:\n  time_log: maybe\n", "j").status().message()),
              HasSubstr("run.time_log: expected true or false (line 2)"));
  EXPECT_THAT(std::string(SpecFromYaml("run:\n  random_seed: -1\n", "j").status().message()),
              HasSubstr("run.random_seed: expected a non-negative integer"));
  EXPECT_THAT(std::string(SpecFromYaml("data:\n  dataset: [a, b]\n", "j").status().message()),
              HasSubstr("data.dataset: expected a string"));
  EXPECT_THAT(std::string(SpecFromYaml("- a\n- b\n", "j").status().message()),
              HasSubstr("j: the top level must be a mapping"));
  EXPECT_THAT(std::string(SpecFromYaml("run: [\n", "j").status().message()),
              HasSubstr("j: not valid YAML at line"));
  EXPECT_EQ(SpecFromYamlFile("/nonexistent/job.yaml").status().code(), absl::StatusCode::kNotFound);
}

TEST(SpecFromYamlTest, UploadAndArtifactReferences) {
  const std::string id(64, 'a');
  const std::string yaml =
      "data:\n  dataset: npy\n  data_dir: upload:local/x.npy\n"
      "models:\n  torchscript: [artifact:" +
      std::string(64, 'A') + ", upload:m1.pt, /srv/m2.pt]\n  keep: upload:keep.npy\n";
  absl::StatusOr<ConvertedSpec> c = SpecFromYaml(yaml, "job.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->uploads.size(), 3u);
  EXPECT_EQ(c->uploads[0].field, "data.data_dir");
  EXPECT_EQ(c->uploads[0].local_path, "local/x.npy");
  EXPECT_EQ(c->uploads[1].field, "models.torchscript[1]");
  EXPECT_EQ(c->uploads[1].local_path, "m1.pt");
  EXPECT_EQ(c->uploads[2].field, "models.keep");
  const v1::AuditSpec& spec = c->spec;
  EXPECT_EQ(spec.models().torchscript(0).artifact_id(), id);  // lowercased
  EXPECT_EQ(spec.models().torchscript(1).source_case(), v1::DataRef::SOURCE_NOT_SET);
  EXPECT_EQ(spec.models().torchscript(2).server_path(), "/srv/m2.pt");
  EXPECT_EQ(spec.data().data_dir().source_case(), v1::DataRef::SOURCE_NOT_SET);

  for (const PendingUpload& u : c->uploads) {
    ASSERT_TRUE(SetUploadedArtifact(u.field, std::string(64, 'b'), &c->spec).ok()) << u.field;
  }
  EXPECT_EQ(c->spec.data().data_dir().artifact_id(), std::string(64, 'b'));
  EXPECT_EQ(c->spec.models().torchscript(1).artifact_id(), std::string(64, 'b'));
  EXPECT_EQ(c->spec.models().keep().artifact_id(), std::string(64, 'b'));
  EXPECT_EQ(SetUploadedArtifact("data.nothing", id, &c->spec).code(), absl::StatusCode::kNotFound);

  absl::StatusOr<ConvertedSpec> bad = SpecFromYaml(
      "data:\n  dataset: npy\n  data_dir: artifact:1234\nmodels:\n  keep: \"upload:\"\n", "j");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("data.data_dir: artifact:"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("models.keep: upload:"));
}

TEST(SpecFromYamlTest, BundleJob) {
  const std::string yaml = R"(# score a bundle computed elsewhere
bundle:
  path: upload:b.npz
  attacks: [rmia, lira-offline]
  targets: [0, 2]
  temperature: 2
  fprs: [0.01]
  bootstrap: 100
  confidence: 0.9
  delta: 1.0e-6
  beta: 0.01
  seed: 7
)";
  absl::StatusOr<ConvertedSpec> c = SpecFromYaml(yaml, "bundle.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const v1::SignalsBundleInput& b = c->spec.signals_bundle();
  EXPECT_FALSE(c->spec.has_data());
  EXPECT_THAT(b.attacks(), ElementsAre("rmia", "lira-offline"));
  EXPECT_THAT(b.targets(), ElementsAre(0, 2));
  EXPECT_FALSE(b.has_all_targets());
  EXPECT_EQ(b.temperature(), 2);
  EXPECT_THAT(b.fprs(), ElementsAre(0.01));
  EXPECT_EQ(b.bootstrap(), 100);
  EXPECT_DOUBLE_EQ(b.confidence(), 0.9);
  EXPECT_DOUBLE_EQ(b.delta(), 1e-6);
  EXPECT_DOUBLE_EQ(b.beta(), 0.01);
  EXPECT_EQ(b.seed(), 7u);
  ASSERT_EQ(c->uploads.size(), 1u);
  EXPECT_EQ(c->uploads[0].field, "bundle.path");
  ASSERT_TRUE(SetUploadedArtifact("bundle.path", std::string(64, 'c'), &c->spec).ok());
  EXPECT_EQ(c->spec.signals_bundle().bundle().artifact_id(), std::string(64, 'c'));

  absl::StatusOr<ConvertedSpec> server =
      SpecFromYaml("bundle:\n  path: runs/b.npz\n  all_targets: true\n", "b.yaml");
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(server->spec.signals_bundle().bundle().server_path(), "runs/b.npz");
  EXPECT_TRUE(server->spec.signals_bundle().all_targets());

  // The API's field name is not a YAML key; the path is required; a bundle
  // job has no pipeline sections.
  EXPECT_THAT(std::string(SpecFromYaml("bundle:\n  bundle: x\n", "b").status().message()),
              HasSubstr("bundle.bundle: unknown key (line 2)"));
  EXPECT_THAT(std::string(SpecFromYaml("signals_bundle:\n  path: x\n", "b").status().message()),
              HasSubstr("signals_bundle: unknown key"));
  EXPECT_THAT(std::string(SpecFromYaml("bundle:\n  attacks: [rmia]\n", "b").status().message()),
              HasSubstr("bundle.path: missing"));
  EXPECT_THAT(
      std::string(
          SpecFromYaml("bundle:\n  path: x\ndata:\n  dataset: csv\n", "b").status().message()),
      HasSubstr("remove 'data'"));
  EXPECT_THAT(
      std::string(SpecFromYaml("bundle:\n  path: x\n  keep: 3\n", "b").status().message()),
      AllOf(HasSubstr("bundle.keep: unknown key"), HasSubstr("path"), Not(HasSubstr("bundle,"))));
}

}  // namespace
}  // namespace mia::client

namespace mia::client {
namespace {

// The incumbent's range configs (top-level `ramia`, col_ranges as pairs) go
// to AuditSection.ramia with every key; both places at once is refused.
TEST(SpecFromYamlTest, RamiaSectionsOfTheIncumbent) {
  absl::StatusOr<ConvertedSpec> l2 =
      SpecFromYamlFile(MIA_SOURCE_DIR "/tests/incumbent_configs/ramia_purchase.yaml");
  ASSERT_TRUE(l2.ok()) << l2.status();
  ASSERT_TRUE(l2->spec.audit().has_ramia());
  EXPECT_EQ(l2->spec.audit().ramia().range_function(), "l2");
  EXPECT_EQ(l2->spec.audit().ramia().sample_size(), 10);
  EXPECT_EQ(l2->spec.audit().ramia().radius(), 10);
  absl::StatusOr<ConvertedSpec> mv = SpecFromYamlFile(
      MIA_SOURCE_DIR "/tests/incumbent_configs/ramia_purchase_missingvalues.yaml");
  ASSERT_TRUE(mv.ok()) << mv.status();
  const v1::RamiaSection& r = mv->spec.audit().ramia();
  EXPECT_EQ(r.range_function(), "missing_values");
  EXPECT_EQ(r.num_missing_feats(), 10);
  ASSERT_EQ(r.col_ranges_size(), 10);
  EXPECT_EQ(r.col_ranges(3).low(), 0);
  EXPECT_EQ(r.col_ranges(3).high(), 1);
  EXPECT_TRUE(r.is_categorical());

  absl::StatusOr<ConvertedSpec> both = SpecFromYaml(
      "audit:\n  ramia: {radius: 1}\nramia: {radius: 1}\n", "both.yaml");
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(std::string(both.status().message()), HasSubstr("ramia: give ramia"));
  absl::StatusOr<ConvertedSpec> bad = SpecFromYaml(
      "ramia: {range_function: missing_values, col_ranges: [[0, 1], [0, 1, 2]]}\n", "bad.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("ramia.col_ranges[1]"));
}

}  // namespace


// audit.duci for `mia submit`: `duci:` with no value is a DUCI audit with
// the defaults (as `mia audit` reads it), and its fractions carry over.
TEST(SpecFromYamlTest, DuciSection) {
  const std::string base = "data:\n  dataset: csv\n  data_dir: /srv/data/x.csv\naudit:\n";
  absl::StatusOr<ConvertedSpec> empty = SpecFromYaml(base + "  duci:\n", "job.yaml");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->spec.audit().has_duci());
  EXPECT_EQ(empty->spec.audit().duci().fractions_size(), 0);
  absl::StatusOr<ConvertedSpec> given =
      SpecFromYaml(base + "  duci:\n    fractions: [0, 0.5]\n", "job.yaml");
  ASSERT_TRUE(given.ok()) << given.status();
  EXPECT_THAT(given->spec.audit().duci().fractions(), ElementsAre(0.0, 0.5));
  absl::StatusOr<ConvertedSpec> none = SpecFromYaml(base + "  num_ref_models: 4\n", "job.yaml");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->spec.audit().has_duci());
  // Other sections given empty stay unset (their defaults).
  absl::StatusOr<ConvertedSpec> aug = SpecFromYaml(base + "  augmentation:\n", "job.yaml");
  ASSERT_TRUE(aug.ok()) << aug.status();
  EXPECT_FALSE(aug->spec.audit().has_augmentation());
}


// audit.policy's mappings (FPR -> TPR, attack -> rules) become the proto's
// map fields, keyed by the YAML's text.
TEST(SpecFromYamlTest, PolicyMaps) {
  const std::string yaml = R"(audit:
  policy:
    use: upper_ci
    max_auc: 0.6
    max_tpr_at_fpr: {0.001: 0.01, 1e-4: 0.005}
    attacks:
      rmia: {max_auc: 0.55, max_tpr_at_fpr: {0.01: 0.1}}
)";
  absl::StatusOr<ConvertedSpec> c = SpecFromYaml(yaml, "job.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const v1::PolicySection& p = c->spec.audit().policy();
  EXPECT_EQ(p.use(), "upper_ci");
  EXPECT_EQ(p.max_auc(), 0.6);
  EXPECT_FALSE(p.has_max_epsilon_lower_bound());
  ASSERT_EQ(p.max_tpr_at_fpr().size(), 2u);
  EXPECT_EQ(p.max_tpr_at_fpr().at("0.001"), 0.01);
  EXPECT_EQ(p.max_tpr_at_fpr().at("1e-4"), 0.005);
  ASSERT_EQ(p.attacks().size(), 1u);
  EXPECT_EQ(p.attacks().at("rmia").max_auc(), 0.55);
  EXPECT_EQ(p.attacks().at("rmia").max_tpr_at_fpr().at("0.01"), 0.1);

  absl::StatusOr<ConvertedSpec> bad = SpecFromYaml(R"(audit:
  policy:
    max_tpr_at_fpr: {0.001: high}
    attacks: {rmia: {max_aux: 1}}
)",
                                                   "job.yaml");
  ASSERT_FALSE(bad.ok());
  const std::string m(bad.status().message());
  EXPECT_THAT(
      m, HasSubstr("job.yaml: audit.policy.max_tpr_at_fpr[0.001]: expected a number (line 3)"));
  EXPECT_THAT(m, HasSubstr("job.yaml: audit.policy.attacks[rmia].max_aux: unknown key (line 4)"));
}
}  // namespace mia::client
