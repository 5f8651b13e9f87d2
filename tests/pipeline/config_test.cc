#include "core/pipeline/config.h"

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace mia::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

constexpr char kMinimal[] = R"(
data:
  dataset: purchase100
  data_dir: x.csv
  population_size: 100
)";

TEST(ConfigTest, DefaultsFromAMinimalFile) {
  auto c = ParseConfig(kMinimal, "min.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data.source.format, "purchase100");
  EXPECT_EQ(c->model.architecture, "mlp");
  EXPECT_EQ(c->recipe.learning_rate, 0.01);
  EXPECT_EQ(c->run.num_experiments, 1);
  EXPECT_EQ(c->num_models(), 5);
  EXPECT_EQ(c->audit.scoring.attacks, (std::vector<std::string>{"rmia", "lira-offline"}));
}

TEST(ConfigTest, ShippedConfigsParse) {
  for (const char* name : {"demo", "purchase", "cifar10", "mnist"}) {
    auto c = LoadConfigFile(std::string(MIA_SOURCE_DIR) + "/configs/" + name + ".yaml");
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    EXPECT_TRUE(nlohmann::json::parse(ConfigJson(*c)).is_object());
  }
  auto demo = LoadConfigFile(std::string(MIA_SOURCE_DIR) + "/configs/demo.yaml");
  EXPECT_EQ(demo->data.source.path, "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(demo->model.architecture, "cnn");
  auto cifar = LoadConfigFile(std::string(MIA_SOURCE_DIR) + "/configs/cifar10.yaml");
  EXPECT_EQ(cifar->model.architecture, "wrn");
  EXPECT_EQ(cifar->model.width, 2);
  EXPECT_TRUE(cifar->audit.augmentation.flip);
  auto purchase = LoadConfigFile(std::string(MIA_SOURCE_DIR) + "/configs/purchase.yaml");
  EXPECT_EQ(purchase->num_models(), 10);
  EXPECT_EQ(purchase->audit.scoring.attacks, (std::vector<std::string>{"rmia-offline"}));
}

TEST(ConfigTest, PrivacyMeterKeys) {
  auto c = ParseConfig(std::string(kMinimal) + R"(
run:
  random_seed: 7
  log_dir: out
  time_log: false
  num_experiments: 2
audit:
  privacy_game: privacy_loss_model
  algorithm: RMIA
  num_ref_models: 2
  device: cpu
  report_log: report_rmia
  batch_size: 5000
  data_size: 1000
train:
  model_name: wrn28-10
  device: cpu
  batch_size: 64
  optimizer: SGD
  learning_rate: 0.1
  weight_decay: 0
  epochs: 3
)",
                       "pm.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->audit.scoring.attacks, (std::vector<std::string>{"rmia"}));
  EXPECT_EQ(c->recipe.optimizer, "sgd");
  EXPECT_EQ(c->model.width, 10);
  EXPECT_EQ(c->num_models(), 4);
}

// Privacy Meter's image model names: vgg16 is built; speedyresnet (its
// CUDA-only fast CIFAR-10 trainer) is refused with what to use instead.
TEST(ConfigTest, PrivacyMeterImageModelNames) {
  auto vgg = ParseConfig(std::string(kMinimal) + "train:\n  model_name: VGG16\n", "vgg.yaml");
  ASSERT_TRUE(vgg.ok()) << vgg.status();
  EXPECT_EQ(vgg->model.architecture, "vgg16");
  EXPECT_EQ(vgg->model.dropout, 0.5);  // torchvision's VGG classifier dropout
  auto no_dropout = ParseConfig(
      std::string(kMinimal) + "train:\n  model_name: vgg16\n  dropout: 0\n", "vgg0.yaml");
  ASSERT_TRUE(no_dropout.ok()) << no_dropout.status();
  EXPECT_EQ(no_dropout->model.dropout, 0.0);
  std::vector<ConfigProblem> problems;
  auto speedy = ParseConfig(std::string(kMinimal) + "train:\n  model_name: SpeedyResNet\n",
                            "speedy.yaml", &problems);
  ASSERT_FALSE(speedy.ok());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "train.model_name");
  EXPECT_THAT(problems[0].message, HasSubstr("'speedyresnet'"));
  EXPECT_THAT(problems[0].message, HasSubstr("not supported"));
  EXPECT_THAT(problems[0].message, HasSubstr("use wrn28-2 or vgg16"));
  EXPECT_THAT(problems[0].message, ::testing::Not(HasSubstr("not one of")));
}

// Privacy Meter's agnews.yaml and agnews_lora.yaml keys (with enough
// references for RMIA's equal reference counts), pointing at local folders.
constexpr char kAgNews[] = R"(
run:
  random_seed: 12345
  log_dir: demo_agnews
  time_log: True
  num_experiments: 1
audit:
  privacy_game: privacy_loss_model
  algorithm: RMIA
  num_ref_models: 4
  device: cuda:0
  report_log: report_rmia
  batch_size: 10
  data_size: 1000
  population_size: 100
train:
  model_name: gpt2
  tokenizer: models/gpt2
  device: cuda:0
  batch_size: 8
  learning_rate: 0.00005
  weight_decay: 0.01
  epochs: 1
  optimizer: adamw_torch
data:
  dataset: agnews
  data_dir: data
  tokenize: True
  tokenizer: models/gpt2
)";

TEST(ConfigTest, PrivacyMeterLanguageModelKeys) {
  auto c = ParseConfig(kAgNews, "agnews.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->language_model());
  EXPECT_EQ(c->data.source.format, "agnews");
  EXPECT_EQ(c->data.source.path, "data");
  EXPECT_EQ(c->data.population_size, 100);
  EXPECT_EQ(c->lm->tokenizer, "models/gpt2");
  EXPECT_EQ(c->lm->spec.architecture, "gpt2");
  EXPECT_EQ(c->lm->spec.n_layer, 12);
  EXPECT_EQ(c->lm->spec.n_embd, 768);
  EXPECT_EQ(c->lm->spec.block_size, 1024);
  // Hugging Face's convention: the tokenizer's folder holds the weights.
  EXPECT_EQ(c->lm->spec.checkpoint, "models/gpt2");
  EXPECT_EQ(c->lm->spec.lora.rank, 0);
  EXPECT_EQ(c->lm->recipe.learning_rate, 0.00005);
  EXPECT_EQ(c->audit.scoring.attacks, (std::vector<std::string>{"rmia"}));
  EXPECT_TRUE(nlohmann::json::parse(ConfigJson(*c)).is_object());

  // agnews_lora.yaml: the peft section applies.
  std::string lora = kAgNews;
  lora.replace(lora.find("data:\n"), 0, R"(  peft:
    type: lora
    fan_in_fan_out: True
    r: 16
    target_modules: ["c_attn", "c_proj", "c_fc"]
)");
  auto l = ParseConfig(lora, "agnews_lora.yaml");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->lm->spec.lora.rank, 16);
  EXPECT_EQ(l->lm->spec.lora.alpha, 8);
  EXPECT_EQ(l->lm->spec.lora.target_modules,
            (std::vector<std::string>{"c_attn", "c_proj", "c_fc"}));
  EXPECT_NE(LmTrainingJson(*l->lm), LmTrainingJson(*c->lm));
}

TEST(ConfigTest, LanguageModelDefaultsAndProblems) {
  auto c = ParseConfig("data:\n  dataset: fortunes\n", "lm.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data.source.path, "/usr/share/games/fortunes");
  EXPECT_EQ(c->lm->spec.architecture, "gpt");
  EXPECT_EQ(c->lm->tokenizer, "bpe");
  EXPECT_EQ(c->audit.scoring.attacks, DefaultLmAttacks());

  std::vector<ConfigProblem> problems;
  auto bad = ParseConfig(R"(
data:
  dataset: jsonl
  data_dir: x.jsonl
  tokenize: false
train:
  model_name: gpt
  n_head: 3
  n_embd: 64
  hidden: [4]
  peft:
    target_modules: [c_attn, q_proj, c_attn]
audit:
  augmentation:
    flip: true
)",
                         "bad.yaml", &problems);
  ASSERT_FALSE(bad.ok());
  std::vector<std::string> fields;
  for (const ConfigProblem& p : problems) fields.push_back(p.field);
  EXPECT_THAT(fields, UnorderedElementsAre("data.tokenize", "train.n_embd", "train.hidden",
                                           "train.peft.target_modules[1]",
                                           "train.peft.target_modules[2]", "train.peft",
                                           "audit.augmentation"));
  // A classifier on texts, and a language model on images.
  EXPECT_THAT(ParseConfig("data:\n  dataset: fortunes\ntrain:\n  model_name: mlp\n", "a.yaml")
                  .status()
                  .message(),
              HasSubstr("train.model_name: a classifier cannot train on a text dataset"));
  EXPECT_THAT(ParseConfig(std::string(kMinimal) + "audit:\n  attacks: [rmia, min-k]\n", "c.yaml")
                  .status()
                  .message(),
              HasSubstr("audit.attacks[1]: 'min-k' is for language models"));
  EXPECT_THAT(ParseConfig(std::string(kMinimal) + "train:\n  model_name: gpt\n", "b.yaml")
                  .status()
                  .message(),
              HasSubstr("a language model needs a text dataset"));
}

struct Bad {
  std::string yaml;
  std::string message;
};

TEST(ConfigTest, DuplicateKeysNameBothLines) {
  auto c =
      ParseConfig("data:\n  dataset: csv\n  data_dir: a.csv\n  dataset: cifar10\n", "dup.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(
      std::string(c.status().message()),
      HasSubstr("dup.yaml: duplicate key: 'data.dataset' appears twice: line 2 and line 4"));
  // In lists of mappings too, and every repeat at once.
  auto d = ParseConfig(
      "run:\n  log_dir: a\n  log_dir: b\naudit:\n  attacks: [rmia]\n"
      "  attacks: [lira]\n",
      "dup.yaml");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("'run.log_dir' appears twice"));
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("'audit.attacks' appears twice"));
}

// A huge invalid value is quoted in part, not echoed whole.
TEST(ConfigTest, AnInvalidValueIsQuotedAtMost100Bytes) {
  const std::string huge(4 << 20, 'x');
  auto c = ParseConfig(std::string(kMinimal) + "audit:\n  attacks: [" + huge + "]\n", "big.yaml");
  ASSERT_FALSE(c.ok());
  const std::string m(c.status().message());
  EXPECT_LT(m.size(), 1000u);
  EXPECT_THAT(m, HasSubstr("'" + std::string(100, 'x') + "...' (4194304 bytes)"));
  auto choice =
      ParseConfig(std::string(kMinimal) + "train:\n  optimizer: " + huge + "\n", "big.yaml");
  ASSERT_FALSE(choice.ok());
  EXPECT_LT(choice.status().message().size(), 1000u);
  EXPECT_THAT(std::string(choice.status().message()), HasSubstr("train.optimizer"));
}

// An attack the splits cannot feed is refused before any training, naming
// the attack and the count it needs (it used to train every model and then
// fail with "no member is left").
TEST(ConfigTest, AttacksShortOfReferencesAreRefusedBeforeTraining) {
  auto with = [](const std::string& attacks, int refs) {
    return ParseConfig(std::string(kMinimal) + "audit:\n  attacks: [" + attacks +
                           "]\n  num_ref_models: " + std::to_string(refs) + "\n",
                       "refs.yaml");
  };
  // 1 target + 2 references: a member has no IN reference.
  auto online = with("rmia, rmia-offline, loss", 2);
  ASSERT_FALSE(online.ok());
  const std::string m(online.status().message());
  EXPECT_THAT(m, HasSubstr("audit.attacks: 'rmia' needs at least 1 IN and 1 OUT reference model "
                           "per point; 3 models (1 target + 2 references) give 0 IN and 1 OUT; "
                           "it needs at least 4 models (audit.num_ref_models >= 3)"));
  EXPECT_THAT(m, Not(HasSubstr("rmia-offline")));
  EXPECT_TRUE(with("rmia, rmia-offline, loss", 3).ok());
  // LiRA needs 2 a side: offline from 5 models, online from 6.
  auto lira = with("lira, lira-offline", 3);
  ASSERT_FALSE(lira.ok());
  EXPECT_THAT(std::string(lira.status().message()),
              HasSubstr("'lira' needs at least 2 IN and 2 OUT reference models"));
  EXPECT_THAT(std::string(lira.status().message()),
              HasSubstr("'lira-offline' needs at least 2 OUT reference models per point; 4 "
                        "models (1 target + 3 references) give 1 OUT; it needs at least 5"));
  EXPECT_TRUE(with("lira-offline", 4).ok());
  EXPECT_FALSE(with("lira", 4).ok());
  EXPECT_TRUE(with("lira", 5).ok());
  // Attacks without references run with any count.
  EXPECT_TRUE(with("loss, population", 1).ok());
  auto reference = with("reference", 1);
  ASSERT_FALSE(reference.ok());
  EXPECT_THAT(std::string(reference.status().message()),
              HasSubstr("'reference' needs at least 1 OUT reference model per point"));
}

// RMIA and Attack-P need population points: refused before any training
// without them, as the server does, by the same name (it used to train every
// model and fail at scoring).
TEST(ConfigTest, AttacksThatNeedAPopulationNeedPopulationSize) {
  auto c = ParseConfig(
      "data:\n  dataset: csv\n  data_dir: a.csv\naudit:\n  attacks: [rmia, "
      "population, lira-offline]\n",
      "pop.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("data.population_size: must be > 0: attacks rmia, population need "
                        "population points (rows no model trains on)"));
  EXPECT_TRUE(ParseConfig("data:\n  dataset: csv\n  data_dir: a.csv\naudit:\n  attacks: "
                          "[lira-offline, loss]\n",
                          "pop.yaml")
                  .ok());
}

// Found in review: duplicates by the attack's canonical name (an alias, or
// options in another order), as scoring sees them; keys that are not names;
// a YAML alias bomb; paired splits told an even count.
TEST(ConfigTest, ReviewedEdgesAreRefusedNotCrashedOn) {
  auto alias =
      ParseConfig(std::string(kMinimal) + "audit:\n  attacks: [rmia, rmia-online]\n", "a.yaml");
  ASSERT_FALSE(alias.ok());
  EXPECT_THAT(std::string(alias.status().message()),
              HasSubstr("audit.attacks[1]: the same attack is given twice"));
  auto order = ParseConfig(std::string(kMinimal) +
                               "audit:\n  attacks: [\"lira-offline:variance=fixed:center=median\", "
                               "\"lira-offline:center=median:variance=fixed\"]\n",
                           "a.yaml");
  ASSERT_FALSE(order.ok());
  EXPECT_THAT(std::string(order.status().message()),
              HasSubstr("audit.attacks[1]: the same attack is given twice"));

  auto key = ParseConfig(std::string(kMinimal) + "? [a, b]\n: 1\n", "k.yaml");
  ASSERT_FALSE(key.ok());
  EXPECT_THAT(std::string(key.status().message()), HasSubstr("a key must be a plain name"));

  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c) {
    const std::string prev(1, static_cast<char>(c - 1));
    bomb += std::string(1, c) + ": &" + std::string(1, c) + " [*" + prev;
    for (int k = 0; k < 9; ++k) bomb += ", *" + prev;
    bomb += "]\n";
  }
  auto expanded = ParseConfig(bomb, "bomb.yaml");
  ASSERT_FALSE(expanded.ok());
  EXPECT_THAT(std::string(expanded.status().message()), HasSubstr("aliases"));

  auto paired = ParseConfig(std::string(kMinimal) +
                                "audit:\n  attacks: [lira-offline]\n  splits: paired\n"
                                "  num_ref_models: 3\n",
                            "p.yaml");
  ASSERT_FALSE(paired.ok());
  EXPECT_THAT(std::string(paired.status().message()),
              HasSubstr("it needs at least 6 models (audit.num_ref_models >= 5)"));
}

TEST(ConfigTest, ErrorsNameTheKey) {
  const std::vector<Bad> cases = {
      {"data:\n  dataset: purchase100\n  data_dir: x\ntrain:\n  learing_rate: 0.1\n",
       "train.learing_rate: unknown key; known keys here: "},
      {"data:\n  dataset: purchase100\n  data_dir: x\ntrain:\n  learning_rate: fast\n",
       "train.learning_rate: expected a number (line 5)"},
      {"data:\n  dataset: purchase100\n  data_dir: x\ntrain:\n  epochs: 0\n",
       "train.epochs: must be in [1, 100000]"},
      {"data:\n  dataset: imagenet\n", "data.dataset: 'imagenet' is not one of"},
      {"data:\n  data_dir: x\n", "data.dataset: missing"},
      {"data:\n  dataset: csv\n", "data.data_dir: required for dataset csv"},
      {"data:\n  dataset: purchase100\n  data_dir: x\naudit:\n  attacks: [rmia, lirra]\n",
       "audit.attacks[1]: unknown attack 'lirra'"},
      {"data:\n  dataset: purchase100\n  data_dir: x\naudit:\n  attacks: [rmia:gama=2]\n",
       "unknown option 'gama'"},
      {"data:\n  dataset: purchase100\n  data_dir: x\naudit:\n  attacks: [rmia]\n  algorithm: "
       "LOSS\n",
       "not both"},
      {"data:\n  dataset: purchase100\n  data_dir: x\naudit:\n  splits: paired\n  num_ref_models: "
       "2\n",
       "audit.splits: paired halves need an even number"},
      {"data:\n  dataset: purchase100\n  data_dir: x\naudit:\n  privacy_game: other\n",
       "audit.privacy_game"},
      {"data:\n  dataset: purchase100\n  data_dir: x\nextra:\n  a: 1\n", "extra: unknown key"},
      {"data:\n  dataset: purchase100\n  data_dir: x\ntrain:\n  hidden: [128, -1]\n",
       "train.hidden"},
      {"data:\n  dataset: purchase100\n  data_dir: x\ntrain:\n  normalize_mean: [0.5]\n",
       "train.normalize_std"},
      {"data:\n  dataset: purchase100\n  data_dir: x\nmodels:\n  torchscript: [a.pt, b.pt]\n",
       "models.keep: required"},
      {"data: [1, 2]\n", "data: must be a mapping"},
      {"data:\n  dataset: purchase100\n   data_dir: x\n", "not valid YAML at line"},
      {"- just\n- a list\n", "the top level must be a mapping"},
  };
  for (const Bad& b : cases) {
    auto c = ParseConfig(b.yaml, "bad.yaml");
    ASSERT_FALSE(c.ok()) << b.yaml;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << b.yaml;
    EXPECT_THAT(c.status().message(), HasSubstr(b.message)) << b.yaml;
    EXPECT_THAT(c.status().message(), HasSubstr("bad.yaml")) << b.yaml;
  }
  EXPECT_EQ(LoadConfigFile("/no/such/config.yaml").status().code(), absl::StatusCode::kNotFound);
}

std::vector<std::string> Fields(const std::vector<ConfigProblem>& problems) {
  std::vector<std::string> out;
  for (const ConfigProblem& p : problems) out.push_back(p.field);
  return out;
}

// The file of issue 10: `mia audit` used to stop at the first problem where
// CreateAudit listed all three.
TEST(ConfigTest, EveryProblemIsReportedWithItsFieldAndLine) {
  const std::string yaml = std::string(kMinimal) +
                           "train:\n  learning_rate: 0\n  epochs: 0\n  batch_size: 0\n"
                           "audit:\n  fprs: [0.1, 2]\n  attacks: [rmia, rmia]\n";
  std::vector<ConfigProblem> problems;
  auto c = ParseConfig(yaml, "bad.yaml", &problems);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Fields(problems),
              UnorderedElementsAre("train.learning_rate", "train.epochs", "train.batch_size",
                                   "audit.fprs[1]", "audit.attacks[1]"));
  const std::string m(c.status().message());
  EXPECT_THAT(m, HasSubstr("bad.yaml: 5 problems: "));
  EXPECT_THAT(m, HasSubstr("train.learning_rate: must be in [1e-12, 100] (line 7)"));
  EXPECT_THAT(m, HasSubstr("train.epochs: must be in [1, 100000] (line 8)"));
  EXPECT_THAT(m, HasSubstr("train.batch_size: must be in [1, 1048576] (line 9)"));
  EXPECT_THAT(m, HasSubstr("audit.attacks[1]: the same attack is given twice"));

  // Rules across fields see only valid values: a bad epochs is one message,
  // not also a warmup one.
  auto warmup = ParseConfig(std::string(kMinimal) + "train:\n  epochs: -1\n  warmup_epochs: 5\n",
                            "w.yaml", &problems);
  ASSERT_FALSE(warmup.ok());
  EXPECT_THAT(Fields(problems), ElementsAre("train.epochs"));

  EXPECT_TRUE(ParseConfig(kMinimal, "min.yaml", &problems).ok());
  EXPECT_THAT(problems, IsEmpty());
}

// Long lists cost one short message and no work per entry (a CreateAudit with
// 400,000 FPRs used to write a 285 MB result.json).
TEST(ConfigTest, ListsAndSizesHaveLimits) {
  struct Case {
    std::string yaml;
    std::string field;
  };
  std::string fprs = "0.5";
  for (int i = 1; i < 400000; ++i) fprs += ", 0.5";
  std::string attacks = "loss";
  for (int i = 1; i < 100000; ++i) attacks += ", loss";
  const std::vector<Case> cases = {
      {"audit:\n  fprs: [" + fprs + "]\n", "audit.fprs"},
      {"audit:\n  attacks: [" + attacks + "]\n", "audit.attacks"},
      {"train:\n  hidden: [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]\n", "train.hidden"},
      {"train:\n  hidden: [65537]\n", "train.hidden[0]"},
      {"train:\n  normalize_mean: [" + fprs.substr(0, 17 * 5) + "]\n", "train.normalize_mean"},
      {"run:\n  num_experiments: 1025\n", "run.num_experiments"},
      {"audit:\n  num_ref_models: 4097\n", "audit.num_ref_models"},
      {"train:\n  epochs: 100001\n", "train.epochs"},
      {"data:\n  dataset: purchase100\n  data_dir: x\n  population_size: 10\n  pool_size: "
       "100000001\n",
       "data.pool_size"},
      {"audit:\n  augmentation:\n    shift: 17\n", "audit.augmentation.shift"},
  };
  for (const Case& k : cases) {
    const std::string yaml = absl::StartsWith(k.yaml, "data:") ? k.yaml : kMinimal + k.yaml;
    std::vector<ConfigProblem> problems;
    auto c = ParseConfig(yaml, "big.yaml", &problems);
    ASSERT_FALSE(c.ok()) << k.field;
    EXPECT_THAT(Fields(problems), ElementsAre(k.field));
    EXPECT_LT(c.status().message().size(), 1000u) << k.field;
  }
  // Exactly at the limits is fine.
  std::string ok_fprs = "0.5";
  for (size_t i = 1; i < kMaxFprs; ++i) ok_fprs += ", " + std::to_string(i / 100.0);
  auto at_limit =
      ParseConfig(std::string(kMinimal) + "audit:\n  fprs: [" + ok_fprs + "]\n", "ok.yaml");
  EXPECT_TRUE(at_limit.ok()) << at_limit.status();
  // The list checks the server's bundle path shares.
  EXPECT_THAT(Fields(FprListProblems(std::vector<double>(400000, 0.5), "f")), ElementsAre("f"));
  EXPECT_THAT(Fields(AttackListProblems(std::vector<std::string>(100000, "loss"), "a")),
              ElementsAre("a"));
  EXPECT_THAT(Fields(AttackListProblems({"loss", "rmia", "loss", "nope"}, "a")),
              ElementsAre("a[2]", "a[3]"));
}

// Training work is bounded as a product: train.epochs and data.pool_size may
// each be in range and still ask for more row passes than kMaxEpochRows. The
// problem names both fields; at the limit is fine; models given as files
// train nothing and are not bounded.
TEST(ConfigTest, EpochsTimesPoolRowsHasALimit) {
  const std::string data =
      "data:\n  dataset: purchase100\n  data_dir: x.csv\n  population_size: 100\n";
  std::vector<ConfigProblem> problems;
  auto over = ParseConfig(data + "  pool_size: 100000001\ntrain:\n  epochs: 100000\n", "work.yaml",
                          &problems);
  ASSERT_FALSE(over.ok());
  // pool_size is itself over kMaxRows there: one problem, not two.
  EXPECT_THAT(Fields(problems), ElementsAre("data.pool_size"));

  auto big =
      ParseConfig(data + "  pool_size: 100000000\ntrain:\n  epochs: 101\n", "work.yaml", &problems);
  ASSERT_FALSE(big.ok());
  ASSERT_THAT(Fields(problems), ElementsAre("train.epochs"));
  EXPECT_THAT(problems[0].message, HasSubstr("train.epochs (101) x data.pool_size (100000000"));
  EXPECT_THAT(problems[0].message, HasSubstr("above the limit of 10000000000"));
  EXPECT_GT(problems[0].line, 0);
  EXPECT_THAT(big.status().message(), HasSubstr("work.yaml: train.epochs: "));

  // Exactly kMaxEpochRows: accepted.
  auto at_limit =
      ParseConfig(data + "  pool_size: 100000000\ntrain:\n  epochs: 100\n", "work.yaml", &problems);
  EXPECT_TRUE(at_limit.ok()) << at_limit.status();
  auto many_epochs =
      ParseConfig(data + "  pool_size: 100000\ntrain:\n  epochs: 100000\n", "work.yaml", &problems);
  EXPECT_TRUE(many_epochs.ok()) << many_epochs.status();

  // The helper the pipeline uses once the data fixes the pool.
  EXPECT_FALSE(EpochRowsProblem(100, 100'000'000).has_value());
  EXPECT_TRUE(EpochRowsProblem(100'000, 100'001).has_value());
  EXPECT_TRUE(EpochRowsProblem(kMaxEpochs, INT64_MAX).has_value());  // no overflow
  EXPECT_EQ(EpochRowsProblem(kMaxEpochs, INT64_MAX)->field, "train.epochs");
}

TEST(ConfigTest, AuditPolicy) {
  auto c = ParseConfig(std::string(kMinimal) + R"(
audit:
  attacks: [rmia, lira-offline]
  fprs: [0.01]
  policy:
    use: upper_ci
    max_auc: 0.6
    max_tpr_at_fpr: {0.001: 0.02}
    attacks:
      lira-offline: {max_epsilon_lower_bound: 1}
)",
                       "policy.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const audit::PolicySpec& p = c->audit.policy;
  EXPECT_TRUE(p.enabled);
  EXPECT_EQ(p.use, "upper_ci");
  EXPECT_EQ(p.all_attacks.max_auc, 0.6);
  ASSERT_EQ(p.per_attack.size(), 1u);
  EXPECT_EQ(p.per_attack[0].first, "lira-offline");
  // The policy's FPR is added to the audit's so that the rule can be judged.
  EXPECT_EQ(c->audit.scoring.fprs, (std::vector<double>{0.01, 0.001}));
  const nlohmann::json echo = nlohmann::json::parse(ConfigJson(*c));
  EXPECT_EQ(echo["audit"]["policy"]["max_auc"], 0.6);
  EXPECT_EQ(echo["audit"]["policy"]["attacks"]["lira-offline"]["max_epsilon_lower_bound"], 1);

  // No policy: nothing judged, FPRs untouched.
  auto none = ParseConfig(kMinimal, "none.yaml");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->audit.policy.enabled);
  EXPECT_TRUE(none->audit.scoring.fprs.empty());
  EXPECT_FALSE(nlohmann::json::parse(ConfigJson(*none))["audit"].contains("policy"));
}

TEST(ConfigTest, AuditPolicyProblemsAreNamedByField) {
  std::vector<ConfigProblem> problems;
  auto c = ParseConfig(std::string(kMinimal) + R"(
audit:
  attacks: [rmia]
  bootstrap: 0
  policy:
    use: upper_ci
    max_auc: 2
    max_tpr_at_fpr: {0.001: -1}
    attacks: {lira: {max_auc: 0.5}}
)",
                       "bad.yaml", &problems);
  ASSERT_FALSE(c.ok());
  std::vector<std::string> fields;
  for (const ConfigProblem& p : problems) fields.push_back(p.field);
  EXPECT_THAT(fields,
              UnorderedElementsAre("audit.policy.max_auc", "audit.policy.max_tpr_at_fpr[0.001]",
                                   "audit.policy.attacks.lira", "audit.policy.use"));
  EXPECT_THAT(c.status().message(), HasSubstr("audit.policy.max_tpr_at_fpr[0.001]: must be in"));
  // Policy FPRs and audit.fprs together are held to kMaxFprs.
  std::string fprs = "[";
  for (size_t i = 0; i < kMaxFprs; ++i) fprs += absl::StrCat(i ? ", " : "", 0.5 + i * 0.001);
  auto over = ParseConfig(std::string(kMinimal) + "audit:\n  fprs: " + fprs +
                              "]\n  policy: {max_tpr_at_fpr: {0.001: 0.1}}\n",
                          "over.yaml", &problems);
  ASSERT_FALSE(over.ok());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "audit.policy.max_tpr_at_fpr");
  EXPECT_THAT(problems[0].message, HasSubstr("above the limit of 64"));
}

}  // namespace
}  // namespace mia::pipeline
