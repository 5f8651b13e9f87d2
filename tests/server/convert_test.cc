// server/spec_convert, result_convert, scores_page (the API <-> core
// conversions): a proto spec gives the same configuration as the equivalent
// YAML, every problem of a bad spec is reported with its field path, inputs
// stay under the operator's roots, the stored spec is canonical, results and
// jobs convert with the documented conventions, and score pages chain.
#include "server/path_sandbox.h"
#include "server/result_convert.h"
#include "server/scores_page.h"
#include "server/spec_convert.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "core/audit/dp_guarantee.h"
#include "core/jobs/job_spec.h"
#include "core/report/report.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace mia::server {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;

// A fresh, empty folder for one test under MIA_TEST_TMPDIR (set by ctest) or
// gtest's temporary folder.
std::string TempDir() {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(env != nullptr ? env : ::testing::TempDir()) / "server_test" /
                       absl::StrCat(info->test_suite_name(), ".", info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return fs::weakly_canonical(dir).string();
}

void Touch(const fs::path& path) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << "x\n";
}

// data/ (the one data root) holding purchase.csv and keep.npy, artifacts/,
// jobs/, and outside/secret.csv beyond the root.
struct Layout {
  std::string dir;
  ServerRoots roots;

  Layout() {
    dir = TempDir();
    Touch(fs::path(dir) / "data" / "purchase.csv");
    Touch(fs::path(dir) / "data" / "keep.npy");
    Touch(fs::path(dir) / "outside" / "secret.csv");
    fs::create_directories(fs::path(dir) / "artifacts");
    roots.data_roots = {dir + "/data"};
    roots.artifact_dir = dir + "/artifacts";
    roots.jobs_dir = dir + "/jobs";
  }
  std::string Data(const std::string& name) const { return dir + "/data/" + name; }
};

std::vector<std::string> Fields(const std::vector<FieldViolation>& violations) {
  std::vector<std::string> out;
  for (const FieldViolation& v : violations) out.push_back(v.field);
  return out;
}

// Every field of the pipeline sections set (to non-default values where the
// default would hide a mistake).
v1::AuditSpec FullSpec() {
  v1::AuditSpec spec;
  v1::RunSection* run = spec.mutable_run();
  run->set_random_seed(77);
  run->set_time_log(false);
  run->set_num_experiments(2);
  run->set_threads(3);
  v1::DataSection* data = spec.mutable_data();
  data->set_dataset("purchase100");
  data->mutable_data_dir()->set_server_path("purchase.csv");  // relative: under the root
  data->set_split("all");
  data->set_label_column(2);
  data->set_header(true);
  data->set_cifar100_labels("coarse");
  data->set_pool_size(3000);
  data->set_population_size(500);
  data->set_shuffle(true);
  v1::TrainSection* train = spec.mutable_train();
  train->set_model_name("mlp");
  train->mutable_hidden()->add_widths(64);
  train->mutable_hidden()->add_widths(32);
  train->set_activation("relu");
  train->set_dropout(0.25);
  train->set_device("cpu");
  train->set_batched(false);
  train->set_optimizer("adamw");
  train->set_learning_rate(0.003);
  train->set_momentum(0.5);
  train->set_nesterov(false);
  train->set_weight_decay(1e-4);
  train->set_epochs(7);
  train->set_batch_size(64);
  train->set_schedule("cosine");
  train->set_warmup_epochs(2);
  train->set_random_crop(true);
  train->set_crop_padding(2);
  train->set_horizontal_flip(true);
  train->set_precision("bf16");
  train->set_data_on_device(true);
  train->set_channels_last(true);
  train->add_normalize_mean(0.1f);
  train->add_normalize_mean(0.2f);
  train->add_normalize_std(0.3f);
  train->add_normalize_std(0.4f);
  v1::AuditSection* audit = spec.mutable_audit();
  audit->add_attacks("rmia-offline:gamma=2");
  audit->add_attacks("lira");
  audit->set_privacy_game("privacy_loss_model");
  audit->set_num_ref_models(6);
  audit->set_device("cuda:1");
  audit->set_batch_size(512);
  audit->set_data_size(800);
  audit->set_splits("paired");
  audit->mutable_augmentation()->set_flip(true);
  audit->mutable_augmentation()->set_shift(2);
  audit->set_temperature(2.5);
  audit->add_fprs(0.05);
  audit->add_fprs(0.0);
  audit->set_bootstrap(50);
  audit->set_confidence(0.9);
  audit->set_delta(1e-6);
  audit->set_beta(0.01);
  return spec;
}

// What FullSpec says, as a user writes it for `mia audit --config`.
std::string FullYaml(const Layout& l) {
  return absl::StrCat(R"(
run:
  random_seed: 77
  log_dir: )",
                      l.roots.ModelCacheDir(), R"(
  time_log: false
  num_experiments: 2
  threads: 3
data:
  dataset: purchase100
  data_dir: )",
                      l.Data("purchase.csv"), R"(
  split: all
  label_column: 2
  header: true
  cifar100_labels: coarse
  pool_size: 3000
  population_size: 500
  shuffle: true
train:
  model_name: mlp
  hidden: [64, 32]
  activation: relu
  dropout: 0.25
  device: cpu
  batched: false
  optimizer: adamw
  learning_rate: 0.003
  momentum: 0.5
  nesterov: false
  weight_decay: 0.0001
  epochs: 7
  batch_size: 64
  schedule: cosine
  warmup_epochs: 2
  random_crop: true
  crop_padding: 2
  horizontal_flip: true
  precision: bf16
  data_on_device: true
  channels_last: true
  normalize_mean: [0.1, 0.2]
  normalize_std: [0.3, 0.4]
audit:
  attacks: ["rmia-offline:gamma=2", lira]
  privacy_game: privacy_loss_model
  num_ref_models: 6
  device: cuda:1
  batch_size: 512
  data_size: 800
  splits: paired
  augmentation:
    flip: true
    shift: 2
  temperature: 2.5
  fprs: [0.05, 0]
  bootstrap: 50
  confidence: 0.9
  delta: 0.000001
  beta: 0.01
)");
}

// Everything a Config holds, including what ConfigJson leaves out.
std::string Describe(pipeline::Config c) {
  c.path = "";
  return absl::StrCat(
      pipeline::ConfigJson(c), " time_log=", c.run.time_log, " threads=", c.run.threads,
      " train_device=", c.train_device,
      " batched=", c.batched_training.has_value() ? (*c.batched_training ? 1 : 0) : -1,
      " data_on_device=", c.data_on_device.has_value() ? (*c.data_on_device ? 1 : 0) : -1,
      " precision=", c.recipe.precision, " channels_last=", c.channels_last,
      " audit_device=", c.audit.device, " audit_batch=", c.audit.batch_size,
      " report_log=", c.audit.report_log, " label_column=", c.data.source.label_column,
      " header=", c.data.source.header, " cifar100_labels=", c.data.source.cifar100_labels);
}

TEST(SpecFromProtoTest, FullSpecGivesTheConfigOfTheEquivalentYaml) {
  const Layout l;
  std::vector<FieldViolation> violations;
  absl::StatusOr<JobSpec> job = SpecFromProto(FullSpec(), l.roots, &violations);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(violations, IsEmpty());
  EXPECT_EQ(job->kind, JobSpec::Kind::kPipeline);
  absl::StatusOr<pipeline::Config> yaml = pipeline::ParseConfig(FullYaml(l), "full.yaml");
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  EXPECT_EQ(Describe(job->config), Describe(*yaml));
  EXPECT_EQ(job->config.data.source.path, l.Data("purchase.csv"));
  EXPECT_EQ(job->config.run.log_dir, l.dir + "/cache");
  EXPECT_EQ(job->spec_hash.size(), 64u);
}

// audit.policy through the proto: its maps become the YAML's mappings, the
// same Config comes out, and the same bad policy gets the same problems.
TEST(SpecFromProtoTest, PolicyMapsOntoTheYamlKeys) {
  const Layout l;
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path("purchase.csv");
  spec.mutable_data()->set_population_size(10);
  v1::PolicySection* p = spec.mutable_audit()->mutable_policy();
  p->set_use("upper_ci");
  p->set_max_auc(0.6);
  (*p->mutable_max_tpr_at_fpr())["0.001"] = 0.02;
  (*p->mutable_max_tpr_at_fpr())["0.005"] = 0.05;
  p->set_max_epsilon_lower_bound(1.5);
  (*p->mutable_attacks())["rmia"].set_max_auc(0.55);
  std::vector<FieldViolation> violations;
  absl::StatusOr<JobSpec> job = SpecFromProto(spec, l.roots, &violations);
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string yaml =
      "data: {dataset: purchase100, data_dir: x.csv, population_size: 10}\n"
      "audit:\n  policy:\n    use: upper_ci\n    max_auc: 0.6\n"
      "    max_tpr_at_fpr: {0.005: 0.05, 0.001: 0.02}\n    max_epsilon_lower_bound: 1.5\n"
      "    attacks: {rmia: {max_auc: 0.55}}\n";
  absl::StatusOr<pipeline::Config> config = pipeline::ParseConfig(yaml, "policy.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  job->config.data.source.path = config->data.source.path;
  job->config.run.log_dir = config->run.log_dir;
  EXPECT_EQ(Describe(job->config), Describe(*config));
  EXPECT_TRUE(job->config.audit.policy.enabled);
  // 0.005 is not a default FPR: added to the audit's.
  EXPECT_EQ(job->config.audit.scoring.fprs.back(), 0.005);

  // The same bad policy both ways.
  (*p->mutable_max_tpr_at_fpr())["abc"] = 0.1;
  (*p->mutable_attacks())["nope"].set_max_auc(2);
  p->set_max_auc(-1);
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  std::vector<pipeline::ConfigProblem> problems;
  ASSERT_FALSE(
      pipeline::ParseConfig("data: {dataset: purchase100, data_dir: x.csv, population_size: 10}\n"
                            "audit:\n  policy:\n    use: upper_ci\n    max_auc: -1\n"
                            "    max_tpr_at_fpr: {0.005: 0.05, 0.001: 0.02, abc: 0.1}\n"
                            "    max_epsilon_lower_bound: 1.5\n"
                            "    attacks: {rmia: {max_auc: 0.55}, nope: {max_auc: 2}}\n",
                            "bad.yaml", &problems)
          .ok());
  std::vector<std::string> from_proto;
  for (const FieldViolation& v : violations) from_proto.push_back(v.field + ": " + v.description);
  std::vector<std::string> from_yaml;
  for (const pipeline::ConfigProblem& q : problems) {
    from_yaml.push_back("spec." + q.field + ": " + q.message);
  }
  EXPECT_THAT(from_proto, UnorderedElementsAreArray(from_yaml));
  EXPECT_THAT(Fields(violations),
              UnorderedElementsAreArray({"spec.audit.policy.max_auc",
                                         "spec.audit.policy.max_tpr_at_fpr[abc]",
                                         "spec.audit.policy.attacks.nope"}));
}

TEST(SpecFromProtoTest, UnsetFieldsTakeTheYamlDefaults) {
  const Layout l;
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("PURCHASE100");  // choices ignore case, as in YAML
  spec.mutable_data()->mutable_data_dir()->set_server_path(l.Data("purchase.csv"));
  spec.mutable_data()->set_population_size(100);
  absl::StatusOr<JobSpec> job = SpecFromProto(spec, l.roots);
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string yaml = absl::StrCat("run: {log_dir: ", l.roots.ModelCacheDir(),
                                        "}\ndata: {dataset: purchase100, population_size: 100, "
                                        "data_dir: ",
                                        l.Data("purchase.csv"), "}\n");
  absl::StatusOr<pipeline::Config> expected = pipeline::ParseConfig(yaml, "min.yaml");
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(Describe(job->config), Describe(*expected));
  EXPECT_EQ(job->config.num_models(), 5);
  EXPECT_EQ(job->config.model.hidden, std::vector<int>{128});

  // An empty LayerWidths is "no hidden layer", not the default.
  spec.mutable_train()->mutable_hidden();
  job = SpecFromProto(spec, l.roots);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->config.model.hidden, IsEmpty());
}

// audit.duci through the proto (AuditSection.duci): present (even empty) makes
// a DUCI audit, its fractions map onto the YAML key, and a bad fraction gets
// the YAML path's problem by the same name.
TEST(SpecFromProtoTest, DuciSection) {
  const Layout l;
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path(l.Data("purchase.csv"));
  spec.mutable_data()->set_population_size(100);
  absl::StatusOr<JobSpec> plain = SpecFromProto(spec, l.roots);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->config.audit.duci.has_value());
  spec.mutable_audit()->mutable_duci();
  absl::StatusOr<JobSpec> defaults = SpecFromProto(spec, l.roots);
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  ASSERT_TRUE(defaults->config.audit.duci.has_value());
  EXPECT_EQ(defaults->config.audit.duci->fractions, (std::vector<double>{0, 0.25, 0.5, 0.75, 1}));
  spec.mutable_audit()->mutable_duci()->add_fractions(0.1);
  spec.mutable_audit()->mutable_duci()->add_fractions(0.6);
  absl::StatusOr<JobSpec> given = SpecFromProto(spec, l.roots);
  ASSERT_TRUE(given.ok()) << given.status();
  EXPECT_EQ(given->config.audit.duci->fractions, (std::vector<double>{0.1, 0.6}));
  const std::string yaml = absl::StrCat("run: {log_dir: ", l.roots.ModelCacheDir(),
                                        "}\ndata: {dataset: purchase100, population_size: 100, "
                                        "data_dir: ",
                                        l.Data("purchase.csv"),
                                        "}\naudit: {duci: {fractions: [0.1, 0.6]}}\n");
  absl::StatusOr<pipeline::Config> expected = pipeline::ParseConfig(yaml, "duci.yaml");
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(Describe(given->config), Describe(*expected));

  spec.mutable_audit()->mutable_duci()->add_fractions(1.5);
  std::vector<FieldViolation> violations;
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  ASSERT_THAT(Fields(violations), ElementsAre("spec.audit.duci.fractions[2]"));
  std::vector<pipeline::ConfigProblem> problems;
  ASSERT_FALSE(pipeline::ParseConfig("data: {dataset: purchase100, data_dir: x.csv, "
                                     "population_size: 100}\naudit: {duci: {fractions: [0.1, "
                                     "0.6, 1.5]}}\n",
                                     "bad.yaml", &problems)
                   .ok());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(violations[0].description, problems[0].message);
}

TEST(SpecFromProtoTest, ReportsEveryProblemWithItsFieldPath) {
  const Layout l;
  v1::AuditSpec spec = FullSpec();
  spec.mutable_run()->set_log_dir("/tmp/mine");
  spec.mutable_run()->set_num_experiments(0);
  spec.mutable_data()->mutable_data_dir()->set_server_path("../outside/secret.csv");
  spec.mutable_train()->set_learning_rate(0);
  spec.mutable_train()->set_optimizer("rmsprop");
  spec.mutable_train()->set_dropout(std::nan(""));
  spec.mutable_train()->add_normalize_std(-1);
  spec.mutable_audit()->set_attacks(1, "no-such-attack");
  spec.mutable_audit()->set_report_log("r");
  spec.mutable_audit()->add_fprs(1.5);
  spec.mutable_audit()->mutable_augmentation()->set_shift(99);
  std::vector<FieldViolation> violations;
  absl::StatusOr<JobSpec> job = SpecFromProto(spec, l.roots, &violations);
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  const std::vector<std::string> expected = {
      "spec.run.log_dir",         "spec.run.num_experiments",      "spec.data.data_dir",
      "spec.train.dropout",       "spec.train.optimizer",          "spec.train.learning_rate",
      "spec.train.normalize_std", "spec.train.normalize_std[2]",   "spec.audit.attacks[1]",
      "spec.audit.report_log",    "spec.audit.augmentation.shift", "spec.audit.fprs[2]"};
  EXPECT_THAT(Fields(violations), UnorderedElementsAreArray(expected));
  const std::string message(job.status().message());
  EXPECT_THAT(message, HasSubstr(absl::StrCat("spec has ", expected.size(), " problems")));
  for (const std::string& field : expected) EXPECT_THAT(message, HasSubstr(field + ": "));
  EXPECT_THAT(message, HasSubstr("spec.data.data_dir: path is outside the server's data roots"));
  EXPECT_THAT(message, HasSubstr("spec.train.learning_rate: must be in [1e-12, 100]"));
  EXPECT_TRUE(job.status().GetPayload(kBadRequestTypeUrl).has_value());
}

TEST(SpecFromProtoTest, CrossFieldRulesAndAttackNeeds) {
  const Layout l;
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path("purchase.csv");
  spec.mutable_run()->set_num_experiments(1);
  spec.mutable_audit()->set_num_ref_models(0);
  spec.mutable_audit()->add_attacks("rmia");
  spec.mutable_train()->set_width(4);           // not a cnn
  spec.mutable_train()->set_warmup_epochs(20);  // default epochs is 20
  spec.mutable_train()->set_nesterov(true);
  spec.mutable_train()->set_optimizer("adam");
  std::vector<FieldViolation> violations;
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  EXPECT_THAT(Fields(violations),
              UnorderedElementsAreArray({"spec.train.width", "spec.train.warmup_epochs",
                                         "spec.train.nesterov", "spec.audit.num_ref_models",
                                         "spec.data.population_size"}));
}

// One validator: the same bad spec through CreateAudit's proto and through a
// YAML file (`mia audit`) gets the same problems, by the same names (the
// proto's "spec." prefix and its LayerWidths aside), with the same messages.
TEST(SpecFromProtoTest, SameProblemsAsTheYamlPath) {
  const Layout l;
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path("purchase.csv");
  spec.mutable_data()->set_population_size(10);
  v1::TrainSection* t = spec.mutable_train();
  t->set_learning_rate(0);
  t->set_epochs(0);
  t->set_batch_size(0);
  t->set_optimizer("rmsprop");
  t->set_device("tpu");
  t->mutable_hidden()->add_widths(64);
  t->mutable_hidden()->add_widths(0);
  spec.mutable_audit()->add_attacks("rmia");
  spec.mutable_audit()->add_attacks("rmia");
  spec.mutable_audit()->add_fprs(0.1);
  spec.mutable_audit()->add_fprs(2);
  std::vector<FieldViolation> violations;
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());

  const std::string yaml =
      "data: {dataset: purchase100, data_dir: x.csv, population_size: 10}\n"
      "train: {learning_rate: 0, epochs: 0, batch_size: 0, optimizer: rmsprop, device: tpu, "
      "hidden: [64, 0]}\n"
      "audit: {attacks: [rmia, rmia], fprs: [0.1, 2]}\n";
  std::vector<pipeline::ConfigProblem> problems;
  ASSERT_FALSE(pipeline::ParseConfig(yaml, "bad.yaml", &problems).ok());

  std::vector<std::string> from_proto;
  for (const FieldViolation& v : violations) from_proto.push_back(v.field + ": " + v.description);
  std::vector<std::string> from_yaml;
  for (const pipeline::ConfigProblem& p : problems) {
    std::string field = p.field == "train.hidden[1]" ? "train.hidden.widths[1]" : p.field;
    from_yaml.push_back("spec." + field + ": " + p.message);
  }
  EXPECT_THAT(from_proto, UnorderedElementsAreArray(from_yaml));
  EXPECT_EQ(from_proto.size(), 8u);
}

// Privacy Meter's one-reference RMIA through the proto: audit.splits unset
// is auto, which chooses disjoint splits as the YAML path does; disjoint
// splits given with an online attack get the YAML path's problem.
TEST(SpecFromProtoTest, DisjointSplitsAsTheYamlPath) {
  const Layout l;
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path("purchase.csv");
  spec.mutable_data()->set_population_size(10);
  spec.mutable_audit()->set_algorithm("RMIA");
  spec.mutable_audit()->set_num_ref_models(1);
  std::vector<FieldViolation> violations;
  auto job = SpecFromProto(spec, l.roots, &violations);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->config.audit.splits, "disjoint");
  EXPECT_EQ(job->config.audit.scoring.attacks, (std::vector<std::string>{"rmia-offline"}));

  spec.mutable_audit()->clear_algorithm();
  spec.mutable_audit()->add_attacks("rmia");
  spec.mutable_audit()->set_splits("disjoint");
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  std::vector<pipeline::ConfigProblem> problems;
  ASSERT_FALSE(pipeline::ParseConfig(
                   "data: {dataset: purchase100, data_dir: x.csv, population_size: 10}\n"
                   "audit: {attacks: [rmia], num_ref_models: 1, splits: disjoint}\n",
                   "d.yaml", &problems)
                   .ok());
  ASSERT_EQ(violations.size(), 1u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(violations[0].field, "spec." + problems[0].field);
  EXPECT_EQ(violations[0].description, problems[0].message);
  EXPECT_THAT(violations[0].description, HasSubstr("disjoint splits do not have"));
}

// train.dp through the proto: the same Config as the YAML section, and the
// same problems by the same names.
TEST(SpecFromProtoTest, DpSectionMapsOntoTrainDp) {
  const Layout l;
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path(l.Data("purchase.csv"));
  spec.mutable_data()->set_population_size(100);
  v1::DpSection* dp = spec.mutable_train()->mutable_dp();
  dp->set_noise_multiplier(1.5);
  dp->set_max_grad_norm(0.25);
  dp->set_delta(1e-6);
  dp->set_poisson(true);
  absl::StatusOr<JobSpec> job = SpecFromProto(spec, l.roots);
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string yaml = absl::StrCat(
      "run: {log_dir: ", l.roots.ModelCacheDir(),
      "}\ndata: {dataset: purchase100, population_size: 100, data_dir: ", l.Data("purchase.csv"),
      "}\ntrain: {dp: {noise_multiplier: 1.5, max_grad_norm: 0.25, delta: 0.000001, "
      "poisson: true}}\n");
  absl::StatusOr<pipeline::Config> expected = pipeline::ParseConfig(yaml, "dp.yaml");
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(Describe(job->config), Describe(*expected));
  EXPECT_TRUE(job->config.recipe.dp.enabled);
  EXPECT_EQ(job->config.recipe.dp.noise_multiplier, 1.5);
  EXPECT_EQ(job->config.recipe.dp.max_grad_norm, 0.25);

  dp->Clear();
  dp->set_noise_multiplier(2);
  dp->set_target_epsilon(std::nan(""));
  dp->set_poisson(false);
  std::vector<FieldViolation> violations;
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  std::vector<pipeline::ConfigProblem> problems;
  ASSERT_FALSE(pipeline::ParseConfig(
                   "data: {dataset: purchase100, data_dir: x.csv, population_size: 100}\n"
                   "train: {dp: {noise_multiplier: 2, target_epsilon: .nan, poisson: false}}\n",
                   "bad.yaml", &problems)
                   .ok());
  std::vector<std::string> from_proto, from_yaml;
  for (const FieldViolation& v : violations) from_proto.push_back(v.field + ": " + v.description);
  for (const pipeline::ConfigProblem& p : problems) {
    from_yaml.push_back("spec." + p.field + ": " + p.message);
  }
  EXPECT_THAT(from_proto, UnorderedElementsAreArray(from_yaml));
  EXPECT_THAT(Fields(violations), UnorderedElementsAreArray({"spec.train.dp.target_epsilon",
                                                             "spec.train.dp.poisson"}));
}

// A language-model spec through the proto: the text and tokenizer fields map
// onto the YAML keys (tokenizer and checkpoint folders resolved against the
// data roots) and get the YAML path's problems, by the same names.
TEST(SpecFromProtoTest, LanguageModelSpec) {
  const Layout l;
  Touch(fs::path(l.dir) / "data" / "corpus.txt");
  Touch(fs::path(l.dir) / "data" / "gpt2" / "vocab.json");
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("lines");
  spec.mutable_data()->mutable_data_dir()->set_server_path("corpus.txt");
  spec.mutable_data()->set_tokenize(true);
  v1::TrainSection* t = spec.mutable_train();
  t->set_model_name("gpt2");
  t->set_tokenizer("gpt2");
  t->mutable_peft()->set_r(4);
  t->mutable_peft()->add_target_modules("c_attn");
  t->mutable_peft()->add_target_modules("c_fc");
  t->set_epochs(2);
  std::vector<FieldViolation> violations;
  absl::StatusOr<JobSpec> job = SpecFromProto(spec, l.roots, &violations);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->config.language_model());
  EXPECT_EQ(fs::path(job->config.lm->tokenizer), fs::path(l.Data("gpt2")));
  EXPECT_EQ(fs::path(job->config.lm->spec.checkpoint), fs::path(l.Data("gpt2")));
  EXPECT_EQ(job->config.lm->spec.lora.rank, 4);
  EXPECT_EQ(job->config.lm->spec.lora.target_modules,
            (std::vector<std::string>{"c_attn", "c_fc"}));
  EXPECT_EQ(job->config.lm->recipe.epochs, 2);

  // Bad values: the YAML path's problems, prefixed "spec.".
  t->set_model_name("gpt");
  t->clear_tokenizer();
  t->set_n_head(3);
  t->set_n_embd(64);
  t->mutable_peft()->add_target_modules("q_proj");
  spec.mutable_data()->set_tokenize(false);
  violations.clear();
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  const std::string yaml =
      "data: {dataset: lines, data_dir: x.txt, tokenize: false}\n"
      "train: {model_name: gpt, n_head: 3, n_embd: 64, epochs: 2,"
      " peft: {r: 4, target_modules: [c_attn, c_fc, q_proj]}}\n";
  std::vector<pipeline::ConfigProblem> problems;
  ASSERT_FALSE(pipeline::ParseConfig(yaml, "lm.yaml", &problems).ok());
  std::vector<std::string> from_proto;
  for (const FieldViolation& v : violations) from_proto.push_back(v.field + ": " + v.description);
  std::vector<std::string> from_yaml;
  for (const pipeline::ConfigProblem& p : problems) {
    from_yaml.push_back("spec." + p.field + ": " + p.message);
  }
  EXPECT_THAT(from_proto, UnorderedElementsAreArray(from_yaml));
  EXPECT_THAT(Fields(violations),
              UnorderedElementsAreArray({"spec.data.tokenize", "spec.train.n_embd",
                                         "spec.train.peft.target_modules[2]", "spec.train.peft"}));

  // A tokenizer folder outside the roots is the server's own problem.
  t->set_tokenizer("/etc");
  violations.clear();
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  EXPECT_THAT(Fields(violations), ::testing::Contains("spec.train.tokenizer"));
}

// Long lists are refused with one short message and a small BadRequest (400,000
// FPRs used to make a 285 MB result.json; 100,000 attacks a 6.8 MB log line).
TEST(SpecFromProtoTest, LongListsAreRefusedBriefly) {
  const Layout l;
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path("purchase.csv");
  spec.mutable_data()->set_population_size(10);
  for (int i = 0; i < 400000; ++i) spec.mutable_audit()->add_fprs(0.5);
  for (int i = 0; i < 100000; ++i) spec.mutable_audit()->add_attacks("loss");
  for (int i = 0; i < 100; ++i) spec.mutable_train()->mutable_hidden()->add_widths(8);
  std::vector<FieldViolation> violations;
  absl::StatusOr<JobSpec> job = SpecFromProto(spec, l.roots, &violations);
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(Fields(violations),
              UnorderedElementsAreArray(
                  {"spec.audit.fprs", "spec.audit.attacks", "spec.train.hidden.widths"}));
  EXPECT_LT(job.status().message().size(), 1000u);
  EXPECT_THAT(std::string(job.status().message()),
              HasSubstr("spec.audit.fprs: must have at most 64 entries"));
  EXPECT_LT(job.status().GetPayload(kBadRequestTypeUrl)->size(), 1000u);

  v1::AuditSpec bundle;
  v1::SignalsBundleInput* b = bundle.mutable_signals_bundle();
  b->mutable_bundle()->set_server_path("keep.npy");
  for (int i = 0; i < 400000; ++i) b->add_fprs(0.5);
  for (int i = 0; i < 100000; ++i) b->add_attacks("loss");
  for (int i = 0; i < 100000; ++i) b->add_targets(i);
  job = SpecFromProto(bundle, l.roots, &violations);
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(Fields(violations),
              UnorderedElementsAreArray({"spec.signals_bundle.fprs", "spec.signals_bundle.attacks",
                                         "spec.signals_bundle.targets"}));
  EXPECT_LT(job.status().message().size(), 1000u);
}

TEST(SpecFromProtoTest, ExactlyOneOfDataAndSignalsBundle) {
  const Layout l;
  std::vector<FieldViolation> violations;
  EXPECT_FALSE(SpecFromProto(v1::AuditSpec(), l.roots, &violations).ok());
  EXPECT_THAT(Fields(violations), ElementsAre("spec.data"));

  v1::AuditSpec both = FullSpec();
  both.mutable_signals_bundle()->mutable_bundle()->set_server_path("keep.npy");
  EXPECT_FALSE(SpecFromProto(both, l.roots, &violations).ok());
  EXPECT_THAT(Fields(violations), UnorderedElementsAreArray({"spec.signals_bundle", "spec.run",
                                                             "spec.train", "spec.audit"}));
}

// A signals_bundle spec on data/bundles/b.npz (created) with `attacks`.
v1::AuditSpec BundleSpec(const Layout& l, const std::vector<std::string>& attacks) {
  Touch(fs::path(l.dir) / "data" / "bundles" / "b.npz");
  v1::AuditSpec spec;
  v1::SignalsBundleInput* b = spec.mutable_signals_bundle();
  b->mutable_bundle()->set_server_path("bundles/b.npz");
  for (const std::string& a : attacks) b->add_attacks(a);
  return spec;
}

TEST(SpecFromProtoTest, SignalsBundle) {
  const Layout l;
  v1::AuditSpec spec = BundleSpec(l, {"rmia", "loss"});
  v1::SignalsBundleInput* b = spec.mutable_signals_bundle();
  b->add_targets(1);
  b->set_bootstrap(0);
  b->set_delta(1e-3);
  b->set_seed(9);
  absl::StatusOr<JobSpec> job = SpecFromProto(spec, l.roots);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->kind, JobSpec::Kind::kBundle);
  EXPECT_EQ(job->bundle.bundle_path, l.Data("bundles/b.npz"));
  EXPECT_EQ(job->bundle.scoring.attacks, (std::vector<std::string>{"rmia", "loss"}));
  EXPECT_EQ(job->bundle.scoring.targets, std::vector<int>{1});
  EXPECT_EQ(job->bundle.scoring.bootstrap.resamples, 0);
  EXPECT_EQ(job->bundle.scoring.epsilon.delta, 1e-3);
  EXPECT_EQ(job->bundle.scoring.epsilon.beta, audit::ScoringOptions().epsilon.beta);
  EXPECT_EQ(job->bundle.scoring.seed, 9u);
  EXPECT_FALSE(job->bundle.all_targets);

  b->set_all_targets(true);
  b->add_attacks("rmia");
  b->set_confidence(1.5);
  std::vector<FieldViolation> violations;
  EXPECT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  EXPECT_THAT(Fields(violations), UnorderedElementsAreArray({"spec.signals_bundle.attacks[2]",
                                                             "spec.signals_bundle.targets",
                                                             "spec.signals_bundle.confidence"}));
}

// signals_bundle.policy: read by the policy's parser as audit.policy is, its
// FPRs added to the scoring's, and the spec the runner decodes (the JSON the
// router stores) holds the same policy.
TEST(SpecFromProtoTest, SignalsBundlePolicy) {
  const Layout l;
  v1::AuditSpec spec = BundleSpec(l, {"rmia", "lira"});
  v1::SignalsBundleInput* b = spec.mutable_signals_bundle();
  b->add_fprs(0.1);
  b->set_bootstrap(10);
  v1::PolicySection* p = b->mutable_policy();
  p->set_use("upper_ci");
  p->set_max_auc(0.6);
  (*p->mutable_max_tpr_at_fpr())["0.005"] = 0.05;
  (*p->mutable_attacks())["lira"].set_max_epsilon_lower_bound(2);
  (*(*p->mutable_attacks())["lira"].mutable_max_tpr_at_fpr())["0.3"] = 0.4;
  absl::StatusOr<JobSpec> job = SpecFromProto(spec, l.roots);
  ASSERT_TRUE(job.ok()) << job.status();
  const audit::PolicySpec& policy = job->bundle.policy;
  ASSERT_TRUE(policy.enabled);
  EXPECT_EQ(policy.use, "upper_ci");
  EXPECT_EQ(policy.all_attacks.max_auc.value_or(-1), 0.6);
  ASSERT_EQ(policy.per_attack.size(), 1u);
  EXPECT_EQ(policy.per_attack[0].first, "lira");
  EXPECT_EQ(policy.per_attack[0].second.max_epsilon_lower_bound.value_or(-1), 2.0);
  // The policy's FPRs follow the given ones, in increasing order.
  EXPECT_EQ(job->bundle.scoring.fprs, (std::vector<double>{0.1, 0.005, 0.3}));

  // What the runner decodes: the same policy and FPRs.
  absl::StatusOr<jobs::BundleAuditSpec> decoded =
      jobs::DecodeBundleSpec(jobs::EncodeBundleSpec(job->bundle));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->scoring.fprs, job->bundle.scoring.fprs);
  ASSERT_TRUE(decoded->policy.enabled);
  EXPECT_EQ(decoded->policy.use, "upper_ci");
  EXPECT_EQ(decoded->policy.all_attacks.max_auc.value_or(-1), 0.6);
  EXPECT_EQ(decoded->policy.all_attacks.max_tpr_at_fpr, policy.all_attacks.max_tpr_at_fpr);
  ASSERT_EQ(decoded->policy.per_attack.size(), 1u);
  EXPECT_EQ(decoded->policy.per_attack[0].second.max_tpr_at_fpr,
            policy.per_attack[0].second.max_tpr_at_fpr);
  EXPECT_EQ(jobs::EncodeBundleSpec(*decoded), jobs::EncodeBundleSpec(job->bundle));
  // Without a policy: no "policy" key, nothing judged.
  b->clear_policy();
  job = SpecFromProto(spec, l.roots);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_FALSE(job->bundle.policy.enabled);
  EXPECT_EQ(jobs::EncodeBundleSpec(job->bundle).find("policy"), std::string::npos);

  // Every problem, named under spec.signals_bundle.policy, as the pipeline's.
  v1::PolicySection* bad = b->mutable_policy();
  bad->set_max_auc(-1);
  (*bad->mutable_max_tpr_at_fpr())["abc"] = 0.1;
  (*bad->mutable_attacks())["loss"].set_max_auc(0.5);  // not among the attacks run
  bad->set_use("upper_ci");
  b->set_bootstrap(0);  // upper_ci without intervals
  std::vector<FieldViolation> violations;
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  EXPECT_THAT(Fields(violations), UnorderedElementsAreArray(
                                      {"spec.signals_bundle.policy.max_auc",
                                       "spec.signals_bundle.policy.max_tpr_at_fpr[abc]",
                                       "spec.signals_bundle.policy.attacks.loss",
                                       "spec.signals_bundle.policy.use"}));
  // A policy with no rule at all is refused as in YAML.
  b->clear_policy();
  b->mutable_policy()->set_use("estimate");
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  EXPECT_THAT(Fields(violations), ElementsAre("spec.signals_bundle.policy"));
  // Its FPRs and the given ones above the limit of 64.
  b->clear_policy();
  b->clear_fprs();
  for (int i = 0; i < 60; ++i) b->add_fprs(0.01 * (i + 1));
  for (int i = 0; i < 10; ++i) {
    (*b->mutable_policy()->mutable_max_tpr_at_fpr())[absl::StrCat("0.00", i + 1, "5")] = 0.5;
  }
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  EXPECT_THAT(Fields(violations), ElementsAre("spec.signals_bundle.policy.max_tpr_at_fpr"));
}

// The JSON form of a bundle audit's policy: bad ones are refused naming the
// key, as the spec's other keys are.
TEST(BundleSpecJsonTest, PolicyIsCheckedWhenDecoded) {
  const std::string head = R"({"kind": "bundle", "bundle_path": "/b.npz",
                               "scoring": {"attacks": ["rmia"], "bootstrap": 0}, )";
  absl::StatusOr<jobs::BundleAuditSpec> ok =
      jobs::DecodeBundleSpec(head + R"("policy": {"max_tpr_at_fpr": {"0.002": 0.1}}})");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(ok->policy.enabled);
  EXPECT_EQ(ok->scoring.fprs.back(), 0.002);
  for (const auto& [policy, problem] : std::vector<std::pair<std::string, std::string>>{
           {R"("policy": 3})", "policy: must be an object"},
           {R"("policy": {"max_auc": 2}})", "policy.max_auc: must be in [0, 1]"},
           {R"("policy": {"use": "upper_ci", "max_auc": 0.5}})", "policy.use"},
           {R"("policy": {"attacks": {"lira": {"max_auc": 0.5}}}})", "policy.attacks.lira"},
           {R"("policy": {"max_aux": 0.5}})", "policy.max_aux: unknown key"}}) {
    absl::StatusOr<jobs::BundleAuditSpec> spec = jobs::DecodeBundleSpec(head + policy);
    ASSERT_FALSE(spec.ok()) << policy;
    EXPECT_THAT(std::string(spec.status().message()), HasSubstr(problem)) << policy;
  }
}

TEST(SpecFromProtoTest, PathsMustStayInsideTheDataRoots) {
  const Layout l;
  const fs::path data = fs::path(l.dir) / "data";
  fs::create_symlink(fs::path(l.dir) / "outside" / "secret.csv", data / "escape.csv");
  fs::create_directory_symlink(fs::path(l.dir) / "outside", data / "escape_dir");
  fs::create_symlink(data / "purchase.csv", data / "alias.csv");
  // A sibling whose name starts like the root's: not inside it.
  Touch(fs::path(l.dir) / "data2" / "x.csv");

  auto code_for = [&](const std::string& path) {
    v1::AuditSpec spec = FullSpec();
    spec.mutable_data()->mutable_data_dir()->set_server_path(path);
    std::vector<FieldViolation> violations;
    absl::StatusOr<JobSpec> job = SpecFromProto(spec, l.roots, &violations);
    if (job.ok()) return std::string("OK");
    EXPECT_THAT(Fields(violations), ElementsAre("spec.data.data_dir")) << path;
    return StatusCodeName(job.status().code());
  };
  EXPECT_EQ(code_for("purchase.csv"), "OK");
  // Names that need quoting survive the trip through the YAML parser.
  const std::string odd = "odd: name, \"quoted\" \u00e9 #1.csv";
  Touch(data / odd);
  EXPECT_EQ(code_for(odd), "OK");
  {
    v1::AuditSpec spec = FullSpec();
    spec.mutable_data()->mutable_data_dir()->set_server_path(odd);
    absl::StatusOr<JobSpec> job = SpecFromProto(spec, l.roots);
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->config.data.source.path, (data / odd).string());
  }
  EXPECT_EQ(code_for(l.Data("purchase.csv")), "OK");
  EXPECT_EQ(code_for("alias.csv"), "OK");  // a link that stays inside
  EXPECT_EQ(code_for("./sub/../purchase.csv"), "OK");
  EXPECT_EQ(code_for("../outside/secret.csv"), "INVALID_ARGUMENT");
  EXPECT_EQ(code_for("../../../../../../etc/passwd"), "INVALID_ARGUMENT");
  EXPECT_EQ(code_for(l.dir + "/outside/secret.csv"), "INVALID_ARGUMENT");
  EXPECT_EQ(code_for(l.dir + "/data/../outside/secret.csv"), "INVALID_ARGUMENT");
  EXPECT_EQ(code_for("escape.csv"), "INVALID_ARGUMENT");
  EXPECT_EQ(code_for("escape_dir/secret.csv"), "INVALID_ARGUMENT");
  EXPECT_EQ(code_for(l.dir + "/data2/x.csv"), "INVALID_ARGUMENT");
  EXPECT_EQ(code_for("missing.csv"), "NOT_FOUND");
  // A FIFO under a root would block the worker that opens it.
  ASSERT_EQ(mkfifo((data / "pipe.csv").c_str(), 0600), 0);
  EXPECT_EQ(code_for("pipe.csv"), "INVALID_ARGUMENT");
  EXPECT_EQ(code_for(""), "INVALID_ARGUMENT");

  // With no data roots only artifacts can be referenced.
  ServerRoots no_roots = l.roots;
  no_roots.data_roots.clear();
  std::vector<FieldViolation> violations;
  EXPECT_FALSE(SpecFromProto(FullSpec(), no_roots, &violations).ok());
  EXPECT_THAT(Fields(violations), ElementsAre("spec.data.data_dir"));

  // A dataset's default location is held to the roots too.
  v1::AuditSpec defaulted = FullSpec();
  defaulted.mutable_data()->set_dataset("fashion-mnist");
  defaulted.mutable_data()->clear_data_dir();
  defaulted.mutable_data()->clear_split();
  EXPECT_FALSE(SpecFromProto(defaulted, l.roots, &violations).ok());
  EXPECT_THAT(Fields(violations), ElementsAre("spec.data.data_dir"));
  // ... and a format without one needs data_dir.
  defaulted.mutable_data()->set_dataset("csv");
  EXPECT_FALSE(SpecFromProto(defaulted, l.roots, &violations).ok());
  EXPECT_THAT(Fields(violations), ElementsAre("spec.data.data_dir"));
}

TEST(SpecFromProtoTest, ArtifactIds) {
  const Layout l;
  const std::string id(64, 'a');
  Touch(fs::path(l.roots.artifact_dir) / id);
  auto with_id = [&](const std::string& artifact) {
    v1::AuditSpec spec = FullSpec();
    spec.mutable_data()->mutable_data_dir()->set_artifact_id(artifact);
    return SpecFromProto(spec, l.roots);
  };
  absl::StatusOr<JobSpec> ok = with_id(id);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->config.data.source.path, l.roots.artifact_dir + "/" + id);
  EXPECT_EQ(with_id(std::string(64, 'A')).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(with_id(std::string(63, 'a')).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(with_id("../" + std::string(61, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status missing = with_id(std::string(64, 'b')).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("spec.data.data_dir: "));
  // A missing artifact among other problems: INVALID_ARGUMENT listing both.
  v1::AuditSpec spec = FullSpec();
  spec.mutable_data()->mutable_data_dir()->set_artifact_id(std::string(64, 'b'));
  spec.mutable_train()->set_epochs(0);
  std::vector<FieldViolation> violations;
  EXPECT_EQ(SpecFromProto(spec, l.roots, &violations).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(violations.size(), 2u);
  EXPECT_EQ(violations[0].code, absl::StatusCode::kNotFound);

  // Torchscript models by artifact and keep by path.
  v1::AuditSpec models = FullSpec();
  models.mutable_audit()->clear_splits();
  for (int i = 0; i < 3; ++i) models.mutable_models()->add_torchscript()->set_artifact_id(id);
  models.mutable_models()->mutable_keep()->set_server_path("keep.npy");
  absl::StatusOr<JobSpec> external = SpecFromProto(models, l.roots);
  ASSERT_TRUE(external.ok()) << external.status();
  EXPECT_EQ(external->config.external.torchscript.size(), 3u);
  EXPECT_EQ(external->config.external.keep, l.Data("keep.npy"));
  models.mutable_models()->clear_keep();
  EXPECT_FALSE(SpecFromProto(models, l.roots, &violations).ok());
  EXPECT_THAT(Fields(violations), ElementsAre("spec.models.keep"));
}

TEST(SpecFromProtoTest, ModelsGoToTheSharedCache) {
  const Layout l;
  absl::StatusOr<JobSpec> job = SpecFromProto(FullSpec(), l.roots);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->config.run.log_dir, l.dir + "/cache");
  EXPECT_EQ(job->model_cache_dir, l.dir + "/cache");

  ServerRoots custom = l.roots;
  custom.cache_dir = l.dir + "/models/";
  EXPECT_EQ(custom.ModelCacheDir(), l.dir + "/models");
}

TEST(CanonicalSpecJsonTest, SameSpecSameBytes) {
  v1::AuditSpec a;
  a.mutable_data()->set_dataset("mnist");
  a.mutable_train()->set_epochs(3);
  a.mutable_run()->set_random_seed(0);  // set to the default: kept
  v1::AuditSpec b;
  b.mutable_run()->set_random_seed(0);
  b.mutable_train()->set_epochs(3);
  b.mutable_data()->set_dataset("mnist");
  EXPECT_EQ(CanonicalSpecJson(a), CanonicalSpecJson(b));
  EXPECT_EQ(CanonicalSpecJson(a),
            R"({"run":{"random_seed":"0"},"data":{"dataset":"mnist"},"train":{"epochs":3}})");

  // A client's JSON with keys in another order reads back to the same bytes.
  absl::StatusOr<v1::AuditSpec> c = SpecProtoFromJson(
      R"({"train": {"epochs": 3}, "data": {"dataset": "mnist"}, "run": {"random_seed": 0}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(CanonicalSpecJson(*c), CanonicalSpecJson(a));

  v1::AuditSpec unset = a;
  unset.mutable_run()->clear_random_seed();
  EXPECT_NE(CanonicalSpecJson(unset), CanonicalSpecJson(a));

  const v1::AuditSpec full = FullSpec();
  absl::StatusOr<v1::AuditSpec> back = SpecProtoFromJson(CanonicalSpecJson(full));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->SerializeAsString(), full.SerializeAsString());
  EXPECT_EQ(SpecProtoFromJson("{not json").status().code(), absl::StatusCode::kInternal);
}

// ---------------------------------------------------------------------------
// Results and jobs.

// A ROC on 50,000 non-members: ten points at FPR 0, then one per false positive.
metrics::RocCurve BigRoc() {
  metrics::RocCurve roc;
  roc.positives = 1000;
  roc.negatives = 50000;
  roc.fpr.push_back(0);
  roc.tpr.push_back(0);
  roc.thresholds.push_back(std::numeric_limits<double>::infinity());
  for (int i = 1; i < 10; ++i) {
    roc.fpr.push_back(0);
    roc.tpr.push_back(i / 100.0);
    roc.thresholds.push_back(1e6 - i);
  }
  for (int k = 1; roc.fpr.size() < 50000; ++k) {
    roc.fpr.push_back(std::min(1.0, k / 49990.0));
    roc.tpr.push_back(std::min(1.0, 0.09 + 0.91 * k / 49990.0));
    roc.thresholds.push_back(1e6 - 10 - k);
  }
  return roc;
}

audit::AuditResult HandResult() {
  const double nan = std::nan("");
  audit::AuditResult r;
  r.tool_version = "0.1.0";
  r.spec_json = R"({"audit": {"delta": 1e-05}})";
  r.fprs = {0.01, 1e-6};
  r.row_ids = {10, 11, 12, 13};
  r.targets = {0};
  r.membership = {{1, 0, 1, 0}};
  r.warnings = {"population smaller than recommended"};
  r.timings = {{"load", 0.5}, {"attack:rmia", 1.25}};
  audit::AttackTargetResult a;
  a.attack = "rmia";
  a.target = 0;
  a.members = 2;
  a.non_members = 2;
  a.excluded = 0;
  a.auc = 0.75;
  a.auc_ci = {0.6, 0.9};
  a.tpr_at_fpr = {{0.01, true, 0.5}, {1e-6, false, 0.25}};
  a.tpr_ci = {{0.4, 0.6}, {0.1, 0.3}};
  a.epsilon = {1.5, 1e-5, std::numeric_limits<double>::infinity(), 0.2, 0.3, 2, 2};
  a.chosen = {{"a", 0.3}};
  a.warnings = {"few points"};
  a.roc = BigRoc();
  a.scores = {0.9, 0.1, 0.8, 0.2};
  r.results.push_back(a);
  audit::AttackTargetResult b = a;
  b.attack = "lira";
  b.auc_ci = {nan, nan};  // bootstrap off
  b.tpr_ci = {{nan, nan}, {nan, nan}};
  b.epsilon.epsilon = nan;  // no bound
  b.roc = metrics::RocCurve{{0, 0.5, 1}, {0, 0.5, 1}, {1e300, 1, 0}, 2, 2};
  r.results.push_back(b);
  audit::AttackSummary s;
  s.attack = "rmia";
  s.auc = {1, 0.75, 0, 0.75, 0.75};
  s.tpr_at_fpr = {{1, 0.5, 0, 0.5, 0.5}, {0, 0, 0, 0, 0}};
  r.summaries.push_back(s);
  return r;
}

TEST(ResultToProtoTest, PolicyVerdict) {
  audit::AuditResult r = HandResult();
  v1::AuditResult p;
  ResultToProto(r, &p);
  EXPECT_FALSE(p.has_policy());
  audit::PolicyVerdict v;
  v.pass = false;
  v.use = "upper_ci";
  v.rules.push_back({"max_auc", "rmia", 0, 0.9, 0.8, false, ""});
  v.rules.push_back({"max_tpr_at_fpr[1e-06]", "lira", 0, std::nan(""), 0.1, false, "unresolved"});
  r.policy = v;
  ResultToProto(r, &p);
  ASSERT_TRUE(p.has_policy());
  EXPECT_FALSE(p.policy().pass());
  EXPECT_EQ(p.policy().verdict(), "FAIL");
  EXPECT_EQ(p.policy().use(), "upper_ci");
  ASSERT_EQ(p.policy().rules_size(), 2);
  EXPECT_EQ(p.policy().rules(0).rule(), "max_auc");
  EXPECT_EQ(p.policy().rules(0).value(), 0.9);
  EXPECT_EQ(p.policy().rules(0).limit(), 0.8);
  EXPECT_FALSE(p.policy().rules(1).has_value());  // no figure: unset, with the reason
  EXPECT_EQ(p.policy().rules(1).note(), "unresolved");
  r.policy->pass = true;
  ResultToProto(r, &p);
  EXPECT_EQ(p.policy().verdict(), "PASS");
}

TEST(ResultToProtoTest, FiguresAndConventions) {
  v1::AuditResult p;
  ResultToProto(HandResult(), &p);
  EXPECT_EQ(p.schema_version(), audit::kResultSchemaVersion);
  EXPECT_EQ(p.tool_version(), "0.1.0");
  EXPECT_THAT(p.fprs(), ElementsAre(0.01, 1e-6));
  EXPECT_THAT(p.targets(), ElementsAre(0));
  EXPECT_EQ(p.audit_points(), 4);
  EXPECT_THAT(p.warnings(), ElementsAre("population smaller than recommended"));
  ASSERT_EQ(p.timings_size(), 2);
  EXPECT_EQ(p.timings(1).stage(), "attack:rmia");
  EXPECT_EQ(p.timings(1).seconds(), 1.25);
  ASSERT_EQ(p.results_size(), 2);

  const v1::AttackTargetResult& rmia = p.results(0);
  EXPECT_EQ(rmia.attack(), "rmia");
  EXPECT_EQ(rmia.members(), 2);
  EXPECT_EQ(rmia.non_members(), 2);
  EXPECT_EQ(rmia.auc(), 0.75);
  ASSERT_TRUE(rmia.has_auc_ci());
  EXPECT_EQ(rmia.auc_ci().low(), 0.6);
  ASSERT_EQ(rmia.tpr_at_fpr_size(), 2);
  EXPECT_TRUE(rmia.tpr_at_fpr(0).resolved());
  EXPECT_EQ(rmia.tpr_at_fpr(0).tpr(), 0.5);
  EXPECT_EQ(rmia.tpr_at_fpr(0).ci().high(), 0.6);
  EXPECT_FALSE(rmia.tpr_at_fpr(1).resolved());  // unresolved: no figure, no interval
  EXPECT_EQ(rmia.tpr_at_fpr(1).fpr(), 1e-6);
  EXPECT_EQ(rmia.tpr_at_fpr(1).tpr(), 0);
  EXPECT_FALSE(rmia.tpr_at_fpr(1).has_ci());
  ASSERT_TRUE(rmia.has_epsilon());
  EXPECT_EQ(rmia.epsilon().epsilon(), 1.5);
  EXPECT_EQ(rmia.epsilon().delta(), 1e-5);
  EXPECT_TRUE(std::isinf(rmia.epsilon().threshold()));
  EXPECT_EQ(rmia.epsilon().evaluation_points(), 2);
  EXPECT_EQ(rmia.chosen_parameters().at("a"), 0.3);
  EXPECT_THAT(rmia.warnings(), ElementsAre("few points"));

  // The 50,000-point ROC on a log grid: small, starting at (0, 0), and
  // keeping the best point at FPR 0 and detail near 1e-4.
  const v1::RocCurve& roc = rmia.roc();
  EXPECT_TRUE(roc.downsampled());
  EXPECT_EQ(roc.exact_points(), 50000);
  EXPECT_LE(roc.fpr_size(), 300);
  EXPECT_GE(roc.fpr_size(), 100);
  ASSERT_EQ(roc.tpr_size(), roc.fpr_size());
  ASSERT_EQ(roc.thresholds_size(), roc.fpr_size());
  EXPECT_EQ(roc.fpr(0), 0);
  EXPECT_EQ(roc.tpr(0), 0);
  EXPECT_TRUE(std::isinf(roc.thresholds(0)));
  EXPECT_EQ(roc.fpr(roc.fpr_size() - 1), 1);
  EXPECT_EQ(roc.positives(), 1000);
  EXPECT_EQ(roc.negatives(), 50000);
  int zero_fpr_best = 0, near_1e4 = 0;
  for (int i = 0; i < roc.fpr_size(); ++i) {
    if (roc.fpr(i) == 0 && roc.tpr(i) == 0.09) ++zero_fpr_best;
    if (roc.fpr(i) >= 5e-5 && roc.fpr(i) <= 2e-4) ++near_1e4;
    if (i > 0) {
      EXPECT_GE(roc.fpr(i), roc.fpr(i - 1));
    }
  }
  EXPECT_EQ(zero_fpr_best, 1);
  EXPECT_GE(near_1e4, 3);

  const v1::AttackTargetResult& lira = p.results(1);
  EXPECT_FALSE(lira.has_auc_ci());  // NaN interval: unset
  EXPECT_TRUE(lira.tpr_at_fpr(0).resolved());
  EXPECT_FALSE(lira.tpr_at_fpr(0).has_ci());
  EXPECT_FALSE(lira.has_epsilon());        // NaN bound: unset
  EXPECT_FALSE(lira.roc().downsampled());  // already small: exact
  EXPECT_EQ(lira.roc().fpr_size(), 3);
  EXPECT_EQ(lira.roc().exact_points(), 3);

  ASSERT_EQ(p.summaries_size(), 1);
  EXPECT_EQ(p.summaries(0).auc().mean(), 0.75);
  ASSERT_EQ(p.summaries(0).tpr_at_fpr_size(), 2);
  EXPECT_EQ(p.summaries(0).tpr_at_fpr(1).count(), 0);
}

TEST(ResultToProtoTest, DpGuaranteesAndChecks) {
  audit::AuditResult r = HandResult();
  v1::AuditResult plain;
  ResultToProto(r, &plain);
  EXPECT_EQ(plain.dp_targets_size(), 0);
  EXPECT_EQ(plain.dp_checks_size(), 0);

  // rmia's bound 1.5 is above the accountant's 1.0; lira has no bound (NaN).
  r.dp.push_back({0, 1.0, 1e-5, 12, 1.1, 1.0, 0.01, 3000});
  audit::FillDpChecks(&r);
  v1::AuditResult p;
  ResultToProto(r, &p);
  ASSERT_EQ(p.dp_targets_size(), 1);
  EXPECT_EQ(p.dp_targets(0).target(), 0);
  EXPECT_EQ(p.dp_targets(0).epsilon(), 1.0);
  EXPECT_EQ(p.dp_targets(0).delta(), 1e-5);
  EXPECT_EQ(p.dp_targets(0).order(), 12);
  EXPECT_EQ(p.dp_targets(0).noise_multiplier(), 1.1);
  EXPECT_EQ(p.dp_targets(0).max_grad_norm(), 1.0);
  EXPECT_EQ(p.dp_targets(0).sample_rate(), 0.01);
  EXPECT_EQ(p.dp_targets(0).steps(), 3000);
  ASSERT_EQ(p.dp_checks_size(), 2);
  EXPECT_EQ(p.dp_checks(0).attack(), "rmia");
  EXPECT_EQ(p.dp_checks(0).lower_bound(), 1.5);
  EXPECT_EQ(p.dp_checks(0).accountant_epsilon(), 1.0);
  EXPECT_TRUE(p.dp_checks(0).exceeded());
  EXPECT_EQ(p.dp_checks(1).attack(), "lira");
  EXPECT_FALSE(p.dp_checks(1).exceeded());
  ASSERT_EQ(p.warnings_size(), 2);
  EXPECT_THAT(p.warnings(1), HasSubstr("error in training or audit"));
  EXPECT_THAT(p.warnings(1), HasSubstr("rmia"));
}

jobs::JobRecord Record(jobs::JobState state) {
  jobs::JobRecord job;
  job.id = "job-7";
  job.request_id = "req";
  job.spec_json = CanonicalSpecJson(FullSpec());
  job.state = state;
  job.version = 12;
  job.progress = {"train", 3, 8, 0.4, "model 3/8"};
  job.create_time = absl::FromUnixSeconds(1700000000);
  job.start_time = absl::FromUnixNanos(1700000001'000000123);
  job.priority = 5;
  job.labels = {{"team", "privacy"}};
  return job;
}

// A DUCI result: every figure, NaN (no truth, no signal) kept as NaN.
TEST(ResultToProtoTest, Duci) {
  audit::AuditResult r;
  r.targets = {0, 1};
  audit::DuciResult d;
  d.candidate_points = 400;
  d.references = {2, 3, 4, 5};
  audit::DuciAttackResult a;
  a.attack = "rmia";
  a.threshold = 0.7;
  a.tpr = 0.6;
  a.fpr = 0.1;
  a.reference_members = 800;
  a.reference_non_members = 800;
  a.signal = true;
  a.mean_error = 0.05;
  a.mean_error_clipped = 0.04;
  a.warnings = {"w"};
  a.targets.push_back({0, 0.5, 400, 0, 140, 0.52, 0.52, 0.02, 0.02});
  a.targets.push_back({1, std::nan(""), 400, 0, 300, 1.3, 1.0, std::nan(""), std::nan("")});
  d.attacks.push_back(a);
  r.duci = d;
  v1::AuditResult p;
  ResultToProto(r, &p);
  ASSERT_TRUE(p.has_duci());
  EXPECT_EQ(p.duci().candidate_points(), 400);
  EXPECT_THAT(p.duci().references(), ElementsAre(2, 3, 4, 5));
  ASSERT_EQ(p.duci().attacks_size(), 1);
  const v1::DuciAttackResult& pa = p.duci().attacks(0);
  EXPECT_EQ(pa.attack(), "rmia");
  EXPECT_EQ(pa.threshold(), 0.7);
  EXPECT_EQ(pa.tpr(), 0.6);
  EXPECT_EQ(pa.fpr(), 0.1);
  EXPECT_EQ(pa.reference_members(), 800);
  EXPECT_EQ(pa.reference_non_members(), 800);
  EXPECT_TRUE(pa.signal());
  EXPECT_EQ(pa.mean_error(), 0.05);
  EXPECT_EQ(pa.mean_error_clipped(), 0.04);
  EXPECT_THAT(pa.warnings(), ElementsAre("w"));
  ASSERT_EQ(pa.targets_size(), 2);
  EXPECT_EQ(pa.targets(0).target(), 0);
  EXPECT_EQ(pa.targets(0).true_fraction(), 0.5);
  EXPECT_EQ(pa.targets(0).estimate(), 0.52);
  EXPECT_EQ(pa.targets(0).estimate_clipped(), 0.52);
  EXPECT_EQ(pa.targets(0).error(), 0.02);
  EXPECT_EQ(pa.targets(0).points(), 400);
  EXPECT_EQ(pa.targets(0).predicted_members(), 140);
  EXPECT_EQ(pa.targets(1).estimate(), 1.3);
  EXPECT_EQ(pa.targets(1).estimate_clipped(), 1.0);
  EXPECT_TRUE(std::isnan(pa.targets(1).true_fraction()));
  EXPECT_TRUE(std::isnan(pa.targets(1).error()));

  // A membership result has none.
  ResultToProto(audit::AuditResult{}, &p);
  EXPECT_FALSE(p.has_duci());
}

TEST(JobToProtoTest, ViewsStatesAndErrors) {
  const audit::AuditResult result = HandResult();
  jobs::JobRecord job = Record(jobs::JobState::kSucceeded);
  job.end_time = absl::FromUnixSeconds(1700000100);
  v1::Audit full;
  ASSERT_TRUE(JobToProto(job, &result, v1::AUDIT_VIEW_FULL, &full).ok());
  EXPECT_EQ(full.name(), "audits/job-7");
  EXPECT_EQ(full.state(), v1::Audit::SUCCEEDED);
  EXPECT_EQ(full.create_time().seconds(), 1700000000);
  EXPECT_EQ(full.start_time().nanos(), 123);
  EXPECT_EQ(full.end_time().seconds(), 1700000100);
  EXPECT_EQ(full.version(), 12);
  EXPECT_EQ(full.request_id(), "req");
  EXPECT_EQ(full.priority(), 5);
  EXPECT_EQ(full.labels().at("team"), "privacy");
  EXPECT_EQ(full.progress().models_trained(), 3);
  EXPECT_EQ(full.progress().models_total(), 8);
  EXPECT_EQ(full.progress().detail(), "model 3/8");
  EXPECT_EQ(full.spec().SerializeAsString(), FullSpec().SerializeAsString());
  EXPECT_GT(full.result().results(0).roc().fpr_size(), 0);
  EXPECT_FALSE(full.has_error());

  v1::Audit basic;
  ASSERT_TRUE(JobToProto(job, &result, v1::AUDIT_VIEW_BASIC, &basic).ok());
  EXPECT_FALSE(basic.has_spec());
  EXPECT_FALSE(basic.result().results(0).has_roc());
  EXPECT_EQ(basic.result().results(0).auc(), 0.75);

  jobs::JobRecord pending = Record(jobs::JobState::kPending);
  pending.start_time = absl::InfinitePast();
  v1::Audit p;
  ASSERT_TRUE(JobToProto(pending, &result, v1::AUDIT_VIEW_FULL, &p).ok());
  EXPECT_FALSE(p.has_start_time());
  EXPECT_FALSE(p.has_end_time());
  EXPECT_FALSE(p.has_result());  // only SUCCEEDED audits carry one

  jobs::JobRecord failed = Record(jobs::JobState::kFailed);
  failed.error_code = "NOT_FOUND";
  failed.error_message = "spec.data.data_dir: no such file or folder under the server's data roots";
  v1::Audit f;
  ASSERT_TRUE(JobToProto(failed, nullptr, v1::AUDIT_VIEW_BASIC, &f).ok());
  EXPECT_EQ(f.error().code(), "NOT_FOUND");
  EXPECT_EQ(f.error().field_path(), "spec.data.data_dir");
  EXPECT_EQ(f.error().stage(), "train");
  failed.error_message = "training diverged";
  ASSERT_TRUE(JobToProto(failed, nullptr, v1::AUDIT_VIEW_BASIC, &f).ok());
  EXPECT_EQ(f.error().field_path(), "");

  failed.spec_json = "{broken";
  EXPECT_EQ(JobToProto(failed, nullptr, v1::AUDIT_VIEW_FULL, &f).code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(f.name(), "audits/job-7");
}

TEST(StatusCodesTest, NamesRoundTrip) {
  for (int c = 0; c <= 16; ++c) {
    const auto code = static_cast<absl::StatusCode>(c);
    EXPECT_EQ(StatusCodeFromName(StatusCodeName(code)), code);
  }
  EXPECT_EQ(StatusCodeName(absl::StatusCode::kInvalidArgument), "INVALID_ARGUMENT");
  EXPECT_EQ(StatusCodeFromName("invalid_argument"), std::nullopt);
  EXPECT_EQ(StatusFromError("RESOURCE_EXHAUSTED", "queue full").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(StatusFromError("BOGUS", "x").code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(StatusFromError("OK", "x").code(), absl::StatusCode::kUnknown);
  for (auto state : {jobs::JobState::kPending, jobs::JobState::kRunning, jobs::JobState::kSucceeded,
                     jobs::JobState::kFailed, jobs::JobState::kCancelled}) {
    EXPECT_EQ(StateFromProto(StateToProto(state)), state);
    EXPECT_EQ(v1::Audit::State_Name(StateToProto(state)), jobs::JobStateName(state));
  }
  EXPECT_EQ(StateFromProto(v1::Audit::STATE_UNSPECIFIED), std::nullopt);
}

// ---------------------------------------------------------------------------
// Scores.

// 3 targets x 25 points, two attacks (one name needing CSV quotes), some
// points unscored; written by the report writer itself.
std::string WriteScores(const std::string& dir) {
  audit::AuditResult r;
  for (int i = 0; i < 25; ++i) r.row_ids.push_back(100 + i);
  r.targets = {0, 1, 2};
  for (int t = 0; t < 3; ++t) {
    std::vector<uint8_t> m;
    for (int i = 0; i < 25; ++i) m.push_back((i + t) % 2);
    r.membership.push_back(m);
    for (const char* name : {"rmia", "rmia:gamma=2,offline"}) {
      audit::AttackTargetResult a;
      a.attack = name;
      a.target = t;
      for (int i = 0; i < 25; ++i) {
        a.scores.push_back(i % 7 == 3 ? std::nan("") : 0.1 * i + t + (name[4] == ':'));
      }
      r.results.push_back(a);
    }
  }
  const std::string path = dir + "/scores.csv";
  std::ofstream(path, std::ios::binary) << report::ScoresCsv(r);
  return path;
}

// Every row of the listing, page by page.
std::vector<v1::ScoreRow> AllRows(const std::string& path, int64_t page_size,
                                  std::optional<int> target, int* pages) {
  std::vector<v1::ScoreRow> rows;
  std::string token;
  *pages = 0;
  do {
    v1::ListAuditScoresResponse page;
    const absl::Status s = ScoresPage(path, page_size, token, &page, target);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) break;
    EXPECT_THAT(page.attacks(), ElementsAre("rmia", "rmia:gamma=2,offline"));
    if (page_size > 0) {
      EXPECT_LE(page.rows_size(), page_size);
    }
    rows.insert(rows.end(), page.rows().begin(), page.rows().end());
    token = page.next_page_token();
    ++*pages;
  } while (!token.empty() && *pages < 100);
  return rows;
}

TEST(ScoresPageTest, PagesChainAndFilter) {
  const std::string path = WriteScores(TempDir());
  int pages = 0;
  const std::vector<v1::ScoreRow> rows = AllRows(path, 10, std::nullopt, &pages);
  ASSERT_EQ(rows.size(), 75u);
  EXPECT_EQ(pages, 8);
  for (size_t k = 0; k < rows.size(); ++k) {
    const int t = static_cast<int>(k / 25), i = static_cast<int>(k % 25);
    EXPECT_EQ(rows[k].target(), t);
    EXPECT_EQ(rows[k].row_id(), 100 + i);
    EXPECT_EQ(rows[k].member(), (i + t) % 2 == 1);
    ASSERT_EQ(rows[k].scores_size(), 2);
    if (i % 7 == 3) {
      EXPECT_TRUE(std::isnan(rows[k].scores(0)));
    } else {
      EXPECT_DOUBLE_EQ(rows[k].scores(0), 0.1 * i + t);
      EXPECT_DOUBLE_EQ(rows[k].scores(1), 0.1 * i + t + 1);
    }
  }
  // Exactly filling the last page leaves no token.
  EXPECT_EQ(AllRows(path, 25, std::nullopt, &pages).size(), 75u);
  EXPECT_EQ(pages, 3);
  // Default and capped page sizes.
  EXPECT_EQ(AllRows(path, 0, std::nullopt, &pages).size(), 75u);
  EXPECT_EQ(pages, 1);

  const std::vector<v1::ScoreRow> one = AllRows(path, 10, 1, &pages);
  ASSERT_EQ(one.size(), 25u);
  EXPECT_EQ(pages, 3);
  for (const v1::ScoreRow& row : one) EXPECT_EQ(row.target(), 1);
  EXPECT_THAT(AllRows(path, 10, 7, &pages), IsEmpty());
}

TEST(ScoresPageTest, BadTokensAndSizes) {
  const std::string dir = TempDir();
  const std::string path = WriteScores(dir);
  v1::ListAuditScoresResponse page;
  ASSERT_TRUE(ScoresPage(path, 10, "", &page).ok());
  const std::string token = page.next_page_token();
  ASSERT_FALSE(token.empty());
  ASSERT_TRUE(ScoresPage(path, 10, token, &page).ok());
  EXPECT_EQ(page.rows(0).row_id(), 110);

  for (const std::string& bad : {std::string("garbage!"), std::string("czE6MTA6YWJj"),
                                 token.substr(0, token.size() - 2), absl::StrCat("x", token)}) {
    const absl::Status s = ScoresPage(path, 10, bad, &page);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr("page_token"));
  }
  // A token for another filter is refused, not misread.
  EXPECT_EQ(ScoresPage(path, 10, token, &page, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ScoresPage(path, -1, "", &page).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ScoresPage(path + ".missing", 10, "", &page).code(), absl::StatusCode::kNotFound);

  const std::string junk = dir + "/junk.csv";
  std::ofstream(junk) << "a,b\n1,2\n";
  EXPECT_EQ(ScoresPage(junk, 10, "", &page).code(), absl::StatusCode::kDataLoss);
}

// Attack names holding a comma, quotes and a line break come back whole, and
// rows are read as CSV records (quoted fields too); a malformed row is named
// by its line in the file, also on a page reached through a token.
TEST(ScoresPageTest, QuotedNamesAndRowsAndLinesInErrors) {
  const std::string dir = TempDir();
  audit::AuditResult r;
  r.row_ids = {10, 11, 12, 13, 14};
  r.targets = {0};
  r.membership = {{1, 0, 1, 0, 1}};
  for (const char* name : {"a,b", "say \"hi\"\nnow"}) {
    audit::AttackTargetResult a;
    a.attack = name;
    a.scores = {0.5, 1.5, 2.5, 3.5, 4.5};
    r.results.push_back(a);
  }
  const std::string path = dir + "/quoted.csv";
  // Lines 1-2: the header; 3-7: the rows; 8: a row with quoted fields.
  std::ofstream(path, std::ios::binary) << report::ScoresCsv(r) << "\"15\",\"0\",\"1\",\"5.5\",\n";

  std::vector<v1::ScoreRow> rows;
  std::string token;
  int pages = 0;
  do {
    v1::ListAuditScoresResponse page;
    const absl::Status s = ScoresPage(path, 2, token, &page);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_THAT(page.attacks(), ElementsAre("a,b", "say \"hi\"\nnow"));
    rows.insert(rows.end(), page.rows().begin(), page.rows().end());
    token = page.next_page_token();
  } while (!token.empty() && ++pages < 10);
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[5].row_id(), 15);
  EXPECT_TRUE(rows[5].member());
  EXPECT_DOUBLE_EQ(rows[5].scores(0), 5.5);
  EXPECT_TRUE(std::isnan(rows[5].scores(1)));

  // Line 9: a score that is no number; line 10: a quote left open.
  std::ofstream(path, std::ios::app | std::ios::binary) << "16,0,1,x,1\n17,0,\"1,2,3\n";
  v1::ListAuditScoresResponse page;
  ASSERT_TRUE(ScoresPage(path, 3, "", &page).ok());  // lines 3-5
  token = page.next_page_token();
  // Lines 6-8, and line 9 read to see whether the page is full.
  absl::Status s = ScoresPage(path, 3, token, &page);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(s.message()), HasSubstr("scores.csv: line 9, field 4"));
  std::ofstream(path, std::ios::binary) << report::ScoresCsv(r) << "17,0,\"1,2,3\n";
  s = ScoresPage(path, 10, "", &page);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(s.message()), HasSubstr("scores.csv: line 8, column 6"));
}

// ---------------------------------------------------------------------------
// Range audits (RaMIA): AuditSection.ramia maps onto YAML audit.ramia and
// gets the YAML path's configuration and problems; a result's ramia section
// converts.

namespace ramia_convert {

v1::AuditSpec RamiaSpec(const std::string& data_path) {
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path(data_path);
  spec.mutable_data()->set_population_size(100);
  spec.mutable_audit()->set_algorithm("RMIA");
  spec.mutable_audit()->set_num_ref_models(1);
  spec.mutable_audit()->set_data_size(100);
  v1::RamiaSection* r = spec.mutable_audit()->mutable_ramia();
  r->set_range_function("missing_values");
  r->set_sample_size(4);
  r->set_trim(0.25);
  r->set_num_missing_feats(2);
  r->set_is_categorical(true);
  for (int i = 0; i < 2; ++i) {
    v1::RamiaColumnRange* c = r->add_col_ranges();
    c->set_low(0);
    c->set_high(1);
  }
  return spec;
}

}  // namespace ramia_convert

TEST(SpecFromProtoTest, RamiaSectionGivesTheConfigOfTheEquivalentYaml) {
  const Layout l;
  absl::StatusOr<JobSpec> job =
      SpecFromProto(ramia_convert::RamiaSpec(l.Data("purchase.csv")), l.roots);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->config.audit.ramia.has_value());
  const std::string yaml = absl::StrCat(
      "run: {log_dir: ", l.roots.ModelCacheDir(), "}\n",
      "data: {dataset: purchase100, population_size: 100, data_dir: ", l.Data("purchase.csv"),
      "}\n"
      "audit:\n  algorithm: RMIA\n  num_ref_models: 1\n  data_size: 100\n"
      "  ramia: {range_function: missing_values, sample_size: 4, trim: 0.25, "
      "num_missing_feats: 2, is_categorical: true, col_ranges: [[0, 1], [0, 1]]}\n");
  absl::StatusOr<pipeline::Config> expected = pipeline::ParseConfig(yaml, "ramia.yaml");
  ASSERT_TRUE(expected.ok()) << expected.status();
  // The echo of every setting that matters, ramia's included.
  nlohmann::json a = nlohmann::json::parse(pipeline::ConfigJson(job->config));
  nlohmann::json b = nlohmann::json::parse(pipeline::ConfigJson(*expected));
  a.erase("config_file");
  b.erase("config_file");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a["audit"]["ramia"]["col_ranges"].size(), 2u);
  EXPECT_EQ(job->config.audit.scoring.attacks, std::vector<std::string>{"rmia-offline"});
}

TEST(SpecFromProtoTest, RamiaProblemsAreTheYamlPaths) {
  const Layout l;
  v1::AuditSpec spec = ramia_convert::RamiaSpec("purchase.csv");
  v1::RamiaSection* r = spec.mutable_audit()->mutable_ramia();
  r->set_trim(0.5);
  r->set_num_missing_feats(3);  // two col_ranges given
  r->mutable_col_ranges(1)->set_low(2);
  r->add_transformations("rotate");
  spec.mutable_audit()->clear_algorithm();
  spec.mutable_audit()->add_attacks("rmia");  // online
  std::vector<FieldViolation> violations;
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  const std::string yaml =
      "data: {dataset: purchase100, data_dir: x.csv, population_size: 100}\n"
      "audit:\n  attacks: [rmia]\n  num_ref_models: 1\n  data_size: 100\n"
      "  ramia: {range_function: missing_values, sample_size: 4, trim: 0.5, "
      "num_missing_feats: 3, is_categorical: true, col_ranges: [[0, 1], [2, 1]], "
      "transformations: [rotate]}\n";
  std::vector<pipeline::ConfigProblem> problems;
  ASSERT_FALSE(pipeline::ParseConfig(yaml, "bad.yaml", &problems).ok());
  std::vector<std::string> from_proto;
  for (const FieldViolation& v : violations) from_proto.push_back(v.field + ": " + v.description);
  std::vector<std::string> from_yaml;
  for (const pipeline::ConfigProblem& p : problems) {
    from_yaml.push_back("spec." + p.field + ": " + p.message);
  }
  EXPECT_THAT(from_proto, UnorderedElementsAreArray(from_yaml));
  EXPECT_THAT(Fields(violations),
              UnorderedElementsAreArray({"spec.audit.ramia.trim", "spec.audit.ramia.col_ranges[1]",
                                         "spec.audit.ramia.transformations",
                                         "spec.audit.attacks[0]"}));
}

TEST(ResultToProtoTest, RamiaSection) {
  audit::AuditResult result = HandResult();
  v1::AuditResult p;
  ResultToProto(result, &p);
  EXPECT_FALSE(p.has_ramia());
  audit::RamiaSummary s;
  s.range_function = "l2";
  s.sample_size = 10;
  s.trim = 0.2;
  s.trimmed_each_end = 2;
  s.radius = 10;
  s.ranges = 4;
  s.member_ranges = 2;
  s.non_member_ranges = 2;
  s.population_points = 5000;
  result.ramia = s;
  ResultToProto(result, &p);
  ASSERT_TRUE(p.has_ramia());
  EXPECT_EQ(p.ramia().range_function(), "l2");
  EXPECT_EQ(p.ramia().sample_size(), 10);
  EXPECT_EQ(p.ramia().trim(), 0.2);
  EXPECT_EQ(p.ramia().trimmed_each_end(), 2);
  EXPECT_EQ(p.ramia().radius(), 10);
  EXPECT_EQ(p.ramia().num_missing_feats(), 0);
  EXPECT_EQ(p.ramia().ranges(), 4);
  EXPECT_EQ(p.ramia().member_ranges(), 2);
  EXPECT_EQ(p.ramia().non_member_ranges(), 2);
  EXPECT_EQ(p.ramia().population_points(), 5000);
  // result.json carries the same section.
  const nlohmann::json j = nlohmann::json::parse(report::ResultJson(result));
  EXPECT_EQ(j["ramia"]["range_function"], "l2");
  EXPECT_EQ(j["ramia"]["trimmed_each_end"], 2);
}

}  // namespace


// The DP audit section through the proto: the same Config as the YAML, and
// the same problems by the same names.
TEST(SpecFromProtoTest, DpAuditSection) {
  const Layout l;
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path("purchase.csv");
  spec.mutable_audit()->add_attacks("loss");
  v1::DpAuditSection* d = spec.mutable_audit()->mutable_dp_audit();
  d->set_canary_dataset("cifar10_canary");
  d->set_canary_size(500);
  d->set_training_alg("nondp");
  v1::DpAuditGuessSplit* g = d->add_grid();
  g->set_k_plus(10);
  g->set_k_minus(20);
  d->add_grid()->set_k_plus(5);
  d->set_delta(0);
  d->set_beta(0.1);
  absl::StatusOr<JobSpec> job = SpecFromProto(spec, l.roots);
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string yaml = absl::StrCat(
      "run: {log_dir: ", l.roots.ModelCacheDir(), "}\ndata: {dataset: purchase100, data_dir: ",
      l.Data("purchase.csv"),
      "}\naudit:\n  attacks: [loss]\n  dp_audit:\n    canary_dataset: cifar10_canary\n"
      "    canary_size: 500\n    training_alg: nondp\n"
      "    grid: [{k_plus: 10, k_minus: 20}, {k_plus: 5}]\n    delta: 0\n    beta: 0.1\n");
  absl::StatusOr<pipeline::Config> expected = pipeline::ParseConfig(yaml, "dp.yaml");
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(Describe(job->config), Describe(*expected));
  ASSERT_TRUE(job->config.dp_audit.has_value());
  EXPECT_EQ(job->config.dp_audit->canary_dataset, "mislabelled");
  ASSERT_EQ(job->config.dp_audit->grid.size(), 2u);
  EXPECT_EQ(job->config.dp_audit->grid[0].k_minus, 20);
  EXPECT_EQ(job->config.dp_audit->grid[1].k_minus, 0);
  EXPECT_EQ(job->config.dp_audit->beta, 0.1);

  // Bad values: the YAML path's problems, by the same names.
  d->set_canary_size(0);
  d->set_training_alg("dp");
  d->mutable_grid(1)->set_k_plus(0);
  d->set_beta(std::nan(""));
  spec.mutable_audit()->set_attacks(0, "lira");
  spec.mutable_run()->set_num_experiments(2);
  std::vector<FieldViolation> violations;
  ASSERT_FALSE(SpecFromProto(spec, l.roots, &violations).ok());
  std::vector<pipeline::ConfigProblem> problems;
  ASSERT_FALSE(pipeline::ParseConfig(
                   "run: {num_experiments: 2}\n"
                   "data: {dataset: purchase100, data_dir: x.csv}\n"
                   "audit:\n  attacks: [lira]\n  dp_audit:\n    canary_dataset: cifar10_canary\n"
                   "    canary_size: 0\n    training_alg: dp\n"
                   "    grid: [{k_plus: 10, k_minus: 20}, {k_plus: 0}]\n    delta: 0\n"
                   "    beta: .nan\n",
                   "bad.yaml", &problems)
                   .ok());
  std::vector<std::string> from_proto;
  for (const FieldViolation& v : violations) from_proto.push_back(v.field + ": " + v.description);
  std::vector<std::string> from_yaml;
  for (const pipeline::ConfigProblem& p : problems) {
    from_yaml.push_back("spec." + p.field + ": " + p.message);
  }
  EXPECT_THAT(from_proto, UnorderedElementsAreArray(from_yaml));
  EXPECT_THAT(Fields(violations),
              UnorderedElementsAreArray(
                  {"spec.run.num_experiments", "spec.audit.dp_audit.canary_size",
                   "spec.audit.dp_audit.grid[1]",
                   "spec.audit.dp_audit.beta", "spec.audit.attacks[0]"}));
}

TEST(ResultToProtoTest, DpAuditTable) {
  audit::AuditResult r = HandResult();
  EXPECT_FALSE([&] {
    v1::AuditResult p;
    ResultToProto(r, &p);
    return p.has_dp_audit();
  }());
  audit::DpAuditResult d;
  d.canary_dataset = "mislabelled";
  d.training_alg = "nondp";
  d.canaries = 4;
  d.included = 2;
  d.delta = 1e-5;
  d.beta = 0.05;
  d.note = "optimistic";
  audit::DpAuditAttackResult a;
  a.attack = "loss";
  a.entries = {{1, 1, 2, 2, 0.25, false}, {2, 2, 4, 3, 0.125, false}, {2, 1, 3, 3, 0.5, true}};
  a.best = 0;
  d.attacks.push_back(a);
  r.dp_audit = d;
  v1::AuditResult p;
  ResultToProto(r, &p);
  ASSERT_TRUE(p.has_dp_audit());
  const v1::DpAuditResult& q = p.dp_audit();
  EXPECT_EQ(q.canary_dataset(), "mislabelled");
  EXPECT_EQ(q.training_alg(), "nondp");
  EXPECT_EQ(q.canaries(), 4);
  EXPECT_EQ(q.included(), 2);
  EXPECT_EQ(q.delta(), 1e-5);
  EXPECT_EQ(q.beta(), 0.05);
  EXPECT_EQ(q.note(), "optimistic");
  ASSERT_EQ(q.attacks_size(), 1);
  EXPECT_EQ(q.attacks(0).attack(), "loss");
  EXPECT_EQ(q.attacks(0).best(), 0);
  ASSERT_EQ(q.attacks(0).entries_size(), 3);
  const v1::DpAuditGuessResult& e = q.attacks(0).entries(1);
  EXPECT_EQ(e.k_plus(), 2);
  EXPECT_EQ(e.k_minus(), 2);
  EXPECT_EQ(e.guesses(), 4);
  EXPECT_EQ(e.correct(), 3);
  EXPECT_EQ(e.epsilon(), 0.125);
  EXPECT_FALSE(e.chosen_after_looking());
  EXPECT_TRUE(q.attacks(0).entries(2).chosen_after_looking());
}
}  // namespace mia::server
