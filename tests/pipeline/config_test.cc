#include "core/pipeline/config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
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
  EXPECT_EQ(c->audit.scoring.attacks, (std::vector<std::string>{"rmia-offline"}));
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
  EXPECT_EQ(c->audit.scoring.attacks, (std::vector<std::string>{"rmia-offline"}));
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
  // With balanced splits given (auto would turn to disjoint splits where
  // they feed every attack: AutoSplitsChooseDisjointForFewReferences).
  auto with = [](const std::string& attacks, int refs) {
    return ParseConfig(std::string(kMinimal) + "audit:\n  attacks: [" + attacks +
                           "]\n  num_ref_models: " + std::to_string(refs) +
                           "\n  splits: balanced\n",
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
                        "models (1 target + 3 references) give 1 OUT; it needs at least 5 "
                        "models (audit.num_ref_models >= 4), or audit.splits: disjoint with "
                        "audit.num_ref_models >= 2"));
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

// audit.splits auto (the default): balanced where balanced splits feed every
// attack (today's audits unchanged), disjoint where only the references'
// count per side is enough and every attack is offline (Privacy Meter's
// 1 target + 1 reference), otherwise refused naming both ways out.
TEST(ConfigTest, AutoSplitsChooseDisjointForFewReferences) {
  auto with = [](const std::string& attacks, int refs, const std::string& splits = "") {
    return ParseConfig(std::string(kMinimal) + "audit:\n  attacks: [" + attacks +
                           "]\n  num_ref_models: " + std::to_string(refs) + "\n" +
                           (splits.empty() ? "" : "  splits: " + splits + "\n"),
                       "auto.yaml");
  };
  auto enough = with("rmia, lira-offline", 4);
  ASSERT_TRUE(enough.ok()) << enough.status();
  EXPECT_EQ(enough->audit.splits, "balanced");
  EXPECT_FALSE(enough->audit.splits_auto);
  auto one = with("rmia-offline", 1);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->audit.splits, "disjoint");
  EXPECT_TRUE(one->audit.splits_auto);
  EXPECT_EQ(nlohmann::json::parse(ConfigJson(*one))["audit"]["splits"], "disjoint");
  auto lira = with("lira-offline, reference, loss", 2);
  ASSERT_TRUE(lira.ok()) << lira.status();
  EXPECT_EQ(lira->audit.splits, "disjoint");
  // Attacks without references keep balanced splits.
  auto loss = with("loss", 1);
  ASSERT_TRUE(loss.ok());
  EXPECT_EQ(loss->audit.splits, "balanced");
  // An online attack cannot run on disjoint splits: refused as before, the
  // offline one told about disjoint splits.
  auto online = with("rmia, lira-offline", 1);
  ASSERT_FALSE(online.ok());
  EXPECT_THAT(std::string(online.status().message()),
              HasSubstr("'rmia' needs at least 1 IN and 1 OUT reference model per point"));
  EXPECT_THAT(std::string(online.status().message()),
              HasSubstr("'lira-offline' needs at least 2 OUT reference models per point; 2 "
                        "models (1 target + 1 reference) give 0 OUT; it needs at least 5 models "
                        "(audit.num_ref_models >= 4), or audit.splits: disjoint with "
                        "audit.num_ref_models >= 2"));
  // Too few references even for disjoint splits.
  EXPECT_FALSE(with("lira-offline", 1).ok());
  // disjoint given: offline attacks from 1 reference; online ones refused.
  auto given = with("rmia-offline, reference", 1, "disjoint");
  ASSERT_TRUE(given.ok()) << given.status();
  EXPECT_EQ(given->audit.splits, "disjoint");
  EXPECT_FALSE(given->audit.splits_auto);
  std::vector<ConfigProblem> problems;
  auto refused = ParseConfig(std::string(kMinimal) +
                                 "audit:\n  attacks: [rmia, lira-offline]\n  num_ref_models: "
                                 "8\n  splits: disjoint\n",
                             "d.yaml", &problems);
  ASSERT_FALSE(refused.ok());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "audit.attacks");
  EXPECT_THAT(problems[0].message, HasSubstr("'rmia' needs IN references, which disjoint splits "
                                             "do not have"));
  EXPECT_THAT(problems[0].message, Not(HasSubstr("lira-offline")));
  EXPECT_FALSE(with("rmia-offline", 0, "disjoint").ok());
  // Privacy Meter's algorithm: RMIA is its offline RMIA.
  auto pm = ParseConfig(std::string(kMinimal) + "audit:\n  algorithm: RMIA\n  num_ref_models: 1\n",
                        "pm.yaml");
  ASSERT_TRUE(pm.ok()) << pm.status();
  EXPECT_EQ(pm->audit.scoring.attacks, (std::vector<std::string>{"rmia-offline"}));
  EXPECT_EQ(pm->audit.splits, "disjoint");
  // A bad scheme name is one problem naming the choices.
  auto bad = with("loss", 1, "halves");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("audit.splits: 'halves' is not one of auto, balanced, paired, disjoint"));
}

// Privacy Meter's shipped configs, copied into tests/incumbent_configs/ with
// only data_dir and log_dir changed, parse with no problem, as do the other
// engineers' files put there (a loop over the folder, not a list of names).
TEST(ConfigTest, IncumbentConfigsParse) {
  const std::filesystem::path folder =
      std::filesystem::path(MIA_SOURCE_DIR) / "tests" / "incumbent_configs";
  int parsed = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(folder)) {
    if (entry.path().extension() != ".yaml") continue;
    std::vector<ConfigProblem> problems;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    auto c = ParseConfig(text.str(), entry.path().string(), &problems);
    EXPECT_TRUE(c.ok()) << entry.path() << ": " << c.status();
    for (const ConfigProblem& p : problems) {
      EXPECT_THAT(p.message, Not(HasSubstr("unknown key"))) << entry.path() << ": " << p.field;
    }
    ++parsed;
  }
  EXPECT_GE(parsed, 5);
  // What they mean in mia.
  auto purchase = LoadConfigFile((folder / "purchase.yaml").string());
  ASSERT_TRUE(purchase.ok()) << purchase.status();
  EXPECT_EQ(purchase->audit.scoring.attacks, (std::vector<std::string>{"rmia-offline"}));
  EXPECT_EQ(purchase->audit.splits, "disjoint");
  EXPECT_TRUE(purchase->audit.splits_auto);
  EXPECT_EQ(purchase->num_models(), 2);
  EXPECT_EQ(purchase->data.population_size, 10000);
  EXPECT_FALSE(purchase->data.population_quarter);
  EXPECT_EQ(purchase->audit.device, "cuda:0");
  EXPECT_EQ(purchase->train_device, "cuda:0");
  EXPECT_EQ(purchase->recipe.optimizer, "sgd");
  EXPECT_EQ(purchase->recipe.learning_rate, 0.1);  // as given
  EXPECT_EQ(purchase->recipe.epochs, 100);
  EXPECT_EQ(purchase->audit.report_log, "report_rmia");
  auto cifar = LoadConfigFile((folder / "cifar10.yaml").string());
  ASSERT_TRUE(cifar.ok()) << cifar.status();
  EXPECT_EQ(cifar->model.architecture, "wrn");
  EXPECT_EQ(cifar->model.width, 2);
  EXPECT_TRUE(cifar->data.population_quarter);  // no population size given
  EXPECT_EQ(cifar->data.source.format, "cifar10");
  EXPECT_EQ(cifar->data.source.path, "data");
  EXPECT_EQ(nlohmann::json::parse(ConfigJson(*cifar))["data"]["population"],
            "last quarter of the rows");
  auto lora = LoadConfigFile((folder / "agnews_lora.yaml").string());
  ASSERT_TRUE(lora.ok()) << lora.status();
  EXPECT_EQ(lora->lm->spec.lora.rank, 16);
  EXPECT_EQ(lora->audit.splits, "disjoint");
}

// Privacy Meter's files without a population size: the last quarter of the
// rows, only for its single-attack key and only when nothing sizes the pool
// or population; mia's own files must still size it.
TEST(ConfigTest, PopulationQuarterOnlyForPrivacyMeterFiles) {
  constexpr char kData[] = "data:\n  dataset: purchase100\n  data_dir: x\n";
  auto pm = ParseConfig(std::string(kData) + "audit:\n  algorithm: RMIA\n  num_ref_models: 4\n",
                        "pm.yaml");
  ASSERT_TRUE(pm.ok()) << pm.status();
  EXPECT_TRUE(pm->data.population_quarter);
  EXPECT_EQ(pm->audit.splits, "balanced");
  auto loss = ParseConfig(std::string(kData) + "audit:\n  algorithm: LOSS\n", "loss.yaml");
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_FALSE(loss->data.population_quarter);  // LOSS needs no population
  EXPECT_FALSE(ParseConfig(std::string(kData) + "audit:\n  attacks: [rmia-offline]\n", "m.yaml")
                   .ok());
  EXPECT_FALSE(ParseConfig(std::string(kData) + "  pool_size: 100\naudit:\n  algorithm: RMIA\n",
                           "pool.yaml")
                   .ok());
  auto given = ParseConfig(std::string(kData) + "  population_size: 7\naudit:\n  algorithm: RMIA\n",
                           "given.yaml");
  ASSERT_TRUE(given.ok()) << given.status();
  EXPECT_FALSE(given->data.population_quarter);
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

TEST(ConfigTest, PrecisionAndDataOnDeviceParseAndOnlyBf16KeysTheModels) {
  std::vector<ConfigProblem> problems;
  auto plain = ParseConfig(kMinimal, "min.yaml", &problems);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->recipe.precision, "fp32");
  EXPECT_FALSE(plain->data_on_device.has_value());
  // fp32 adds nothing to the key: models trained before stay reusable.
  EXPECT_FALSE(nlohmann::json::parse(TrainingJson(plain->model, plain->recipe))
                   .contains("precision"));

  auto c = ParseConfig(std::string(kMinimal) +
                           "train:\n  precision: bf16\n  data_on_device: false\n"
                           "  channels_last: true\n",
                       "bf16.yaml", &problems);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->recipe.precision, "bf16");
  ASSERT_TRUE(c->data_on_device.has_value());
  EXPECT_FALSE(*c->data_on_device);
  EXPECT_TRUE(c->channels_last);
  EXPECT_FALSE(plain->channels_last);
  EXPECT_EQ(nlohmann::json::parse(TrainingJson(c->model, c->recipe))["precision"], "bf16");
  // Where the rows live does not change the models: not in the key.
  training::TrainRecipe same = c->recipe;
  EXPECT_EQ(TrainingJson(c->model, c->recipe), TrainingJson(c->model, same));

  problems.clear();
  auto bad = ParseConfig(std::string(kMinimal) + "train:\n  precision: fp16\n  data_on_device: 3\n",
                         "bad.yaml", &problems);
  ASSERT_FALSE(bad.ok());
  std::vector<std::string> fields;
  for (const ConfigProblem& p : problems) fields.push_back(p.field);
  EXPECT_THAT(fields, ::testing::UnorderedElementsAre("train.precision", "train.data_on_device"));

  problems.clear();
  auto dp = ParseConfig(std::string(kMinimal) +
                            "train:\n  precision: bf16\n  dp:\n    noise_multiplier: 1\n",
                        "dp.yaml", &problems);
  ASSERT_FALSE(dp.ok());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "train.precision");
}

TEST(ConfigTest, DpSgdSectionParsesAndKeysTheModels) {
  std::vector<ConfigProblem> problems;
  auto plain = ParseConfig(kMinimal, "min.yaml", &problems);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->recipe.dp.enabled);
  // No "dp" key at all when off: keys of models trained before stay the same.
  EXPECT_FALSE(nlohmann::json::parse(TrainingJson(plain->model, plain->recipe)).contains("dp"));

  auto c = ParseConfig(std::string(kMinimal) +
                           "train:\n  model_name: cnn\n  dp:\n    noise_multiplier: 1.1\n"
                           "    max_grad_norm: 0.5\n",
                       "dp.yaml", &problems);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->recipe.dp.enabled);
  EXPECT_EQ(c->recipe.dp.noise_multiplier, 1.1);
  EXPECT_EQ(c->recipe.dp.max_grad_norm, 0.5);
  EXPECT_EQ(c->recipe.dp.delta, 1e-5);  // default
  EXPECT_EQ(c->recipe.dp.target_epsilon, 0);
  const nlohmann::json j = nlohmann::json::parse(TrainingJson(c->model, c->recipe));
  ASSERT_TRUE(j.contains("dp"));
  EXPECT_EQ(j["dp"]["noise_multiplier"], 1.1);
  EXPECT_EQ(j["dp"]["max_grad_norm"], 0.5);
  EXPECT_TRUE(nlohmann::json::parse(ConfigJson(*c))["train"].contains("dp"));
  // DP and non-DP models never share an artifact; nor do different sigmas.
  training::TrainRecipe other = c->recipe;
  other.dp.noise_multiplier = 1.2;
  EXPECT_NE(TrainingJson(c->model, c->recipe), TrainingJson(c->model, other));
  other.dp.enabled = false;
  EXPECT_NE(TrainingJson(c->model, c->recipe), TrainingJson(c->model, other));

  auto target = ParseConfig(std::string(kMinimal) +
                                "train:\n  dp:\n    target_epsilon: 3\n    delta: 1e-6\n",
                            "t.yaml", &problems);
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(target->recipe.dp.target_epsilon, 3.0);
  EXPECT_EQ(target->recipe.dp.delta, 1e-6);
  EXPECT_EQ(nlohmann::json::parse(TrainingJson(target->model, target->recipe))["dp"]
                ["target_epsilon"],
            3.0);
}

TEST(ConfigTest, DpSgdProblemsNameTheField) {
  std::vector<ConfigProblem> problems;
  const std::string base = std::string(kMinimal) + "train:\n";
  auto bad = ParseConfig(base +
                             "  dp:\n    noise_multiplier: 0\n    max_grad_norm: -1\n"
                             "    delta: 1\n    poisson: false\n    sigma: 2\n",
                         "bad.yaml", &problems);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Fields(problems),
              UnorderedElementsAre("train.dp.noise_multiplier", "train.dp.max_grad_norm",
                                   "train.dp.delta", "train.dp.poisson", "train.dp.sigma"));

  auto both = ParseConfig(base + "  dp:\n    noise_multiplier: 1\n    target_epsilon: 2\n",
                          "both.yaml", &problems);
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(Fields(problems), ElementsAre("train.dp.target_epsilon"));
  EXPECT_THAT(problems[0].message, HasSubstr("not both"));

  auto neither = ParseConfig(base + "  dp:\n    max_grad_norm: 1\n", "n.yaml", &problems);
  ASSERT_FALSE(neither.ok());
  EXPECT_THAT(Fields(problems), ElementsAre("train.dp.noise_multiplier"));

  auto over = ParseConfig(base + "  dp:\n    target_epsilon: 1001\n", "o.yaml", &problems);
  ASSERT_FALSE(over.ok());
  EXPECT_THAT(Fields(problems), ElementsAre("train.dp.target_epsilon"));
  EXPECT_THAT(problems[0].message, HasSubstr("(0, 1000]"));

  auto wrn = ParseConfig(base + "  model_name: wrn28-2\n  dp:\n    noise_multiplier: 1\n",
                         "w.yaml", &problems);
  ASSERT_FALSE(wrn.ok());
  EXPECT_THAT(Fields(problems), ElementsAre("train.dp"));
  EXPECT_THAT(problems[0].message, HasSubstr("batch normalization"));

  auto batched = ParseConfig(base + "  batched: true\n  dp:\n    noise_multiplier: 1\n",
                             "b.yaml", &problems);
  ASSERT_FALSE(batched.ok());
  EXPECT_THAT(Fields(problems), ElementsAre("train.batched"));

  auto scalar = ParseConfig(base + "  dp: 3\n", "s.yaml", &problems);
  ASSERT_FALSE(scalar.ok());
  EXPECT_THAT(Fields(problems), ElementsAre("train.dp"));
}

}  // namespace
}  // namespace mia::pipeline

namespace mia::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// ---------------------------------------------------------------------------
// Range audits (ramia).

namespace ramia_test {

std::vector<ConfigProblem> ProblemsOf(const std::string& text) {
  std::vector<ConfigProblem> problems;
  (void)ParseConfig(text, "ramia.yaml", &problems);
  return problems;
}

std::vector<std::string> FieldsOf(const std::vector<ConfigProblem>& problems) {
  std::vector<std::string> fields;
  for (const ConfigProblem& p : problems) fields.push_back(p.field);
  return fields;
}

constexpr char kRamiaBase[] = R"(
data:
  dataset: purchase100
  data_dir: x.csv
  population_size: 100
audit:
  num_ref_models: 2
  data_size: 100
)";

}  // namespace ramia_test

TEST(ConfigRamiaTest, TheIncumbentsPurchaseConfigsParse) {
  auto l2 = LoadConfigFile(std::string(MIA_SOURCE_DIR) +
                           "/tests/incumbent_configs/ramia_purchase.yaml");
  ASSERT_TRUE(l2.ok()) << l2.status();
  ASSERT_TRUE(l2->audit.ramia.has_value());
  EXPECT_EQ(l2->audit.ramia->range_function, "l2");
  EXPECT_EQ(l2->audit.ramia->sample_size, 10);
  EXPECT_EQ(l2->audit.ramia->radius, 10);
  EXPECT_EQ(l2->audit.ramia->trim, 0.2);
  // Privacy Meter's `algorithm: RMIA` with sampled points is offline RMIA,
  // and one reference model is enough: every reference is OUT for them.
  EXPECT_EQ(l2->audit.scoring.attacks, (std::vector<std::string>{"rmia-offline"}));
  EXPECT_EQ(l2->num_models(), 2);
  EXPECT_EQ(l2->data.population_size, 10000);
  auto mv = LoadConfigFile(std::string(MIA_SOURCE_DIR) +
                           "/tests/incumbent_configs/ramia_purchase_missingvalues.yaml");
  ASSERT_TRUE(mv.ok()) << mv.status();
  ASSERT_TRUE(mv->audit.ramia.has_value());
  EXPECT_EQ(mv->audit.ramia->range_function, "missing_values");
  EXPECT_EQ(mv->audit.ramia->num_missing_feats, 10);
  EXPECT_EQ(mv->audit.ramia->col_ranges.size(), 10u);
  EXPECT_TRUE(mv->audit.ramia->is_categorical);
  nlohmann::json j = nlohmann::json::parse(ConfigJson(*mv));
  EXPECT_EQ(j["audit"]["ramia"]["range_function"], "missing_values");
  EXPECT_EQ(j["audit"]["ramia"]["col_ranges"][0], nlohmann::json::array({0.0, 1.0}));
}

TEST(ConfigRamiaTest, TopLevelOrUnderAuditButNotBoth) {
  const std::string section = "  range_function: l2\n  radius: 2\n";
  auto top = ParseConfig(std::string(ramia_test::kRamiaBase) + "ramia:\n" + section, "a.yaml");
  ASSERT_TRUE(top.ok()) << top.status();
  auto under =
      ParseConfig(std::string(ramia_test::kRamiaBase) + "  ramia:\n  " +
                      absl::StrReplaceAll(section, {{"\n  ", "\n    "}}),
                  "a.yaml");
  ASSERT_TRUE(under.ok()) << under.status();
  EXPECT_EQ(ConfigJson(*top), ConfigJson(*under));
  EXPECT_EQ(under->audit.ramia->radius, 2);
  // The default attacks of a range audit are offline.
  EXPECT_EQ(top->audit.scoring.attacks,
            (std::vector<std::string>{"rmia-offline", "lira-offline"}));
  const auto both = ramia_test::ProblemsOf(std::string(ramia_test::kRamiaBase) +
                                           "  ramia:\n    radius: 1\nramia:\n  radius: 1\n");
  ASSERT_EQ(both.size(), 1u);
  EXPECT_EQ(both[0].field, "ramia");
  EXPECT_THAT(both[0].message, HasSubstr("audit.ramia"));
}

TEST(ConfigRamiaTest, ErrorsNameTheField) {
  using ramia_test::FieldsOf;
  using ramia_test::ProblemsOf;
  const std::string base = ramia_test::kRamiaBase;
  EXPECT_THAT(FieldsOf(ProblemsOf(base + "ramia:\n  range_function: l1\n  radius: 1\n")),
              ElementsAre("ramia.range_function"));
  EXPECT_THAT(FieldsOf(ProblemsOf(base + "ramia:\n  range_function: l2\n")),
              ElementsAre("ramia.radius"));
  EXPECT_THAT(FieldsOf(ProblemsOf(base + "ramia:\n  radius: -1\n")),
              ElementsAre("ramia.radius"));
  EXPECT_THAT(FieldsOf(ProblemsOf(base + "ramia:\n  radius: 1\n  trim: 0.5\n")),
              ElementsAre("ramia.trim"));
  EXPECT_THAT(FieldsOf(ProblemsOf(base + "ramia:\n  radius: 1\n  sample_size: 0\n")),
              ElementsAre("ramia.sample_size"));
  EXPECT_THAT(FieldsOf(ProblemsOf(base + "ramia:\n  radius: 1\n  sample_size: 1025\n")),
              ElementsAre("ramia.sample_size"));
  EXPECT_THAT(FieldsOf(ProblemsOf(base + "ramia:\n  radius: 1\n  col_ranges: [[0, 1]]\n")),
              ElementsAre("ramia.col_ranges"));
  EXPECT_THAT(FieldsOf(ProblemsOf(base + "ramia:\n  radius: 1\n  colour: red\n")),
              ElementsAre("ramia.colour"));
  // missing_values: col_ranges required, one per missing feature, low <= high.
  const std::string mv = base + "ramia:\n  range_function: missing_values\n";
  EXPECT_THAT(FieldsOf(ProblemsOf(mv)), ElementsAre("ramia.col_ranges"));
  EXPECT_THAT(FieldsOf(ProblemsOf(mv + "  num_missing_feats: 2\n  col_ranges: [[0, 1]]\n")),
              ElementsAre("ramia.col_ranges"));
  EXPECT_THAT(FieldsOf(ProblemsOf(mv + "  col_ranges: [[0, 1], [3, 2]]\n")),
              ElementsAre("ramia.col_ranges[1]"));
  EXPECT_THAT(FieldsOf(ProblemsOf(mv + "  col_ranges: [[0, 1, 2]]\n")),
              ElementsAre("ramia.col_ranges[0]"));
  EXPECT_THAT(FieldsOf(ProblemsOf(mv + "  is_categorical: true\n  col_ranges: [[0, 0.5]]\n")),
              ElementsAre("ramia.col_ranges[0]"));
  // Two binary features hold 4 distinct values; 10 distinct points cannot be drawn.
  EXPECT_THAT(FieldsOf(ProblemsOf(mv + "  is_categorical: true\n  col_ranges: [[0, 1], [0, 1]]\n")),
              ElementsAre("ramia.sample_size"));
  EXPECT_THAT(FieldsOf(ProblemsOf(mv + "  radius: 1\n  col_ranges: [[0, 1]]\n")),
              ElementsAre("ramia.radius"));
  auto ok = ParseConfig(mv + "  col_ranges: [[0, 1], [-1, 1]]\n", "a.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->audit.ramia->num_missing_feats, 2);
  // geometric: transformations known, sample_size = transforms (+ 1), images only.
  const std::string img = R"(
data:
  dataset: cifar10
  population_size: 100
audit:
  data_size: 100
ramia:
  range_function: geometric
)";
  EXPECT_THAT(FieldsOf(ProblemsOf(img)), ElementsAre("ramia.transformations"));
  EXPECT_THAT(FieldsOf(ProblemsOf(img + "  transformations: [rotate, shear]\n")),
              ElementsAre("ramia.transformations[1]"));
  EXPECT_THAT(FieldsOf(ProblemsOf(img + "  transformations: [rotate]\n  sample_size: 3\n")),
              ElementsAre("ramia.sample_size"));
  auto geo = ParseConfig(img + "  transformations: [horizontal_flip, vertical_flip, rotate]\n",
                         "a.yaml");
  ASSERT_TRUE(geo.ok()) << geo.status();
  EXPECT_EQ(geo->audit.ramia->sample_size, 4);  // the centre and three transforms
  EXPECT_THAT(FieldsOf(ProblemsOf(base + "ramia:\n  range_function: geometric\n"
                                         "  transformations: [rotate]\n")),
              ElementsAre("ramia.range_function"));
  // Text ranges are refused saying what is supported.
  const auto words = ProblemsOf(base + "ramia:\n  range_function: word_replace\n");
  ASSERT_EQ(words.size(), 1u);
  EXPECT_EQ(words[0].field, "ramia.range_function");
  EXPECT_THAT(words[0].message, HasSubstr("supported: l2 and missing_values"));
}

TEST(ConfigRamiaTest, AttacksReferencesAndPopulation) {
  using ramia_test::FieldsOf;
  using ramia_test::ProblemsOf;
  const std::string base = ramia_test::kRamiaBase;
  const std::string ramia = "ramia:\n  radius: 1\n";
  // Online attacks have no IN reference for a sampled point.
  const auto online = ProblemsOf(base + "  attacks: [loss, rmia]\n" + ramia);
  ASSERT_EQ(online.size(), 1u);
  EXPECT_EQ(online[0].field, "audit.attacks[1]");
  EXPECT_THAT(online[0].message, HasSubstr("online"));
  // One reference suffices for rmia-offline (2 models), not for lira-offline.
  const std::string one_ref =
      absl::StrReplaceAll(base, {{"num_ref_models: 2", "num_ref_models: 1"}});
  EXPECT_THAT(ProblemsOf(one_ref + "  attacks: [rmia-offline, loss, attack-p]\n" + ramia),
              IsEmpty());
  EXPECT_THAT(FieldsOf(ProblemsOf(one_ref + "  attacks: [lira-offline]\n" + ramia)),
              ElementsAre("audit.attacks[0]"));
  // The same attack list without ramia: 2 models are too few for balanced
  // splits, and audit.splits auto chooses disjoint ones.
  EXPECT_THAT(FieldsOf(ProblemsOf(one_ref + "  attacks: [rmia-offline]\n")), IsEmpty());
  // data_size even; population holds the non-member centres (+1 for RMIA).
  EXPECT_THAT(FieldsOf(ProblemsOf(absl::StrReplaceAll(base, {{"data_size: 100", "data_size: 99"}}) +
                                  ramia)),
              ElementsAre("audit.data_size"));
  EXPECT_THAT(FieldsOf(ProblemsOf(absl::StrReplaceAll(base, {{"population_size: 100",
                                                              "population_size: 50"}}) +
                                  ramia)),
              ElementsAre("data.population_size"));
  EXPECT_THAT(ProblemsOf(absl::StrReplaceAll(base, {{"population_size: 100",
                                                     "population_size: 50"}}) +
                         "  attacks: [loss]\n" + ramia),
              IsEmpty());
  EXPECT_THAT(FieldsOf(ProblemsOf(absl::StrReplaceAll(base, {{"population_size: 100",
                                                              "population_size: 0"}}) +
                                  "  attacks: [loss]\n" + ramia)),
              ElementsAre("data.population_size"));
  // Explicit online attacks stay refused; `algorithm: LiRA` is taken offline.
  auto lira = ParseConfig(base + "  algorithm: LIRA\n" + ramia, "a.yaml");
  ASSERT_TRUE(lira.ok()) << lira.status();
  EXPECT_EQ(lira->audit.scoring.attacks, (std::vector<std::string>{"lira-offline"}));
}

TEST(ConfigRamiaTest, RangesOfTextsAreRefused) {
  const auto problems = ramia_test::ProblemsOf(R"(
data:
  dataset: fortunes
audit:
  attacks: [loss]
ramia:
  radius: 1
)");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "ramia");
  EXPECT_THAT(problems[0].message, HasSubstr("texts are not supported"));
}

// Privacy Meter documents word_replace's keys (configs/ramia/README.md
// there): refused as not supported yet, never as unknown keys.
TEST(ConfigRamiaTest, WordReplaceKeysAreNotSupportedYetNotUnknown) {
  const auto problems = ramia_test::ProblemsOf(R"(
data: {dataset: purchase100, data_dir: x.csv, population_size: 100}
audit: {attacks: [loss], data_size: 10}
ramia:
  range_function: word_replace
  sample_size: 4
  mask_model: roberta-base
  mask_tokenizer: roberta-base
  num_masks: 2
)");
  std::vector<std::string> fields;
  for (const ConfigProblem& p : problems) {
    fields.push_back(p.field);
    EXPECT_THAT(p.message, Not(HasSubstr("unknown key"))) << p.field;
    EXPECT_THAT(p.message, HasSubstr("not supported")) << p.field;
  }
  EXPECT_THAT(fields, UnorderedElementsAre("ramia.range_function", "ramia.mask_model",
                                           "ramia.mask_tokenizer", "ramia.num_masks"));
}

}  // namespace

// Privacy Meter's dpaudit configs (configs/dpaudit/*.yaml there): a top-level
// dp_audit section with its canary names; its algorithm RMIA (offline RMIA
// in mia) feeds a one-run audit with one reference (no reference trains on a
// canary).
constexpr char kDpAuditPm[] = R"(
run:
  random_seed: 12345
  log_dir: demo_nondp_train_mislabel_1000
  num_experiments: 1
audit:
  privacy_game: privacy_loss_model
  algorithm: RMIA-offline
  num_ref_models: 1
data:
  dataset: cifar10
  data_dir: data
  population_size: 1000
dp_audit:
  canary_dataset: cifar10_canary
  canary_size: 1000
  training_alg: 'nondp'
)";

std::vector<std::string> ProblemFields(const std::string& yaml) {
  std::vector<ConfigProblem> problems;
  (void)ParseConfig(yaml, "dp.yaml", &problems);
  std::vector<std::string> fields;
  for (const ConfigProblem& p : problems) fields.push_back(p.field);
  return fields;
}

TEST(DpAuditConfigTest, PrivacyMeterSectionAndDefaults) {
  auto c = ParseConfig(kDpAuditPm, "pm.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->dp_audit.has_value());
  EXPECT_EQ(c->dp_audit->canary_dataset, "mislabelled");
  EXPECT_EQ(c->dp_audit->canary_size, 1000);
  EXPECT_EQ(c->dp_audit->training_alg, "nondp");
  EXPECT_TRUE(c->dp_audit->grid.empty());
  EXPECT_EQ(c->dp_audit->delta, 1e-5);
  EXPECT_EQ(c->dp_audit->beta, 0.05);
  const auto spec = nlohmann::json::parse(ConfigJson(*c));
  EXPECT_EQ(spec["audit"]["dp_audit"]["canary_size"], 1000);
  EXPECT_EQ(spec["audit"]["dp_audit"]["canary_dataset"], "mislabelled");

  auto natural = ParseConfig(std::string(kMinimal) + R"(
audit:
  dp_audit:
    canary_dataset: none
    canary_size: 50
    grid: [{k_plus: 5, k_minus: 5}, {k_plus: 10, k_minus: 0}]
    delta: 0
    beta: 0.1
)",
                             "mia.yaml");
  ASSERT_TRUE(natural.ok()) << natural.status();
  EXPECT_EQ(natural->dp_audit->canary_dataset, "natural");
  ASSERT_EQ(natural->dp_audit->grid.size(), 2u);
  EXPECT_EQ(natural->dp_audit->grid[1].k_plus, 10);
  EXPECT_EQ(natural->dp_audit->grid[1].k_minus, 0);
  EXPECT_EQ(natural->dp_audit->delta, 0);
  EXPECT_EQ(natural->dp_audit->beta, 0.1);
  // No attack named: offline ones that need no population.
  EXPECT_EQ(natural->audit.scoring.attacks, DefaultDpAuditAttacks());
  auto mislabeled = ParseConfig(std::string(kMinimal) + R"(
audit:
  dp_audit: {canary_dataset: mislabeled, canary_size: 2}
)",
                                "us.yaml");
  ASSERT_TRUE(mislabeled.ok()) << mislabeled.status();
  EXPECT_EQ(mislabeled->dp_audit->canary_dataset, "mislabelled");
  // Without dp_audit nothing changes.
  EXPECT_FALSE(ParseConfig(kMinimal, "min.yaml")->dp_audit.has_value());
}

TEST(DpAuditConfigTest, ProblemsNameTheirFields) {
  // Both places at once.
  std::string both = std::string(kMinimal) + R"(
audit:
  attacks: [loss]
  dp_audit: {canary_size: 10}
dp_audit: {canary_size: 10}
)";
  EXPECT_THAT(ProblemFields(both), ElementsAre("dp_audit"));
  std::vector<ConfigProblem> problems;
  (void)ParseConfig(both, "b.yaml", &problems);
  EXPECT_THAT(problems[0].message, HasSubstr("not both"));

  // The section's own keys.
  EXPECT_THAT(ProblemFields(std::string(kMinimal) + R"(
audit:
  attacks: [loss]
  dp_audit:
    canary_dataset: cifar100_canary
    training_alg: sgd
    grid: [{k_plus: 0, k_minus: 0}, {k_plus: -1}, {k_plus: 3, k_minus: 2, k_zero: 1}, 5]
    delta: 0.7
    beta: 0
    extra: 1
)"),
              UnorderedElementsAre("audit.dp_audit.canary_dataset", "audit.dp_audit.canary_size",
                                   "audit.dp_audit.training_alg", "audit.dp_audit.grid[0]",
                                   "audit.dp_audit.grid[1].k_plus",
                                   "audit.dp_audit.grid[2].k_zero", "audit.dp_audit.grid[3]",
                                   "audit.dp_audit.delta", "audit.dp_audit.beta",
                                   "audit.dp_audit.extra"));
  // A split larger than the canaries; canaries more than the pool.
  EXPECT_THAT(ProblemFields(std::string(kMinimal) + R"(
  pool_size: 20
audit:
  attacks: [loss]
  dp_audit: {canary_size: 30, grid: [{k_plus: 20, k_minus: 11}, {k_plus: 15, k_minus: 15}]}
)"),
              UnorderedElementsAre("audit.dp_audit.grid[0]", "audit.dp_audit.canary_size"));

  // training_alg dp without train.dp: Privacy Meter's DP-SGD defaults.
  auto dp = ParseConfig(std::string(kMinimal) + R"(
audit:
  attacks: [loss]
  dp_audit: {canary_size: 10, training_alg: dp}
)",
                        "dp.yaml");
  ASSERT_TRUE(dp.ok()) << dp.status();
  EXPECT_TRUE(dp->dp_audit->dp_defaults);
  EXPECT_TRUE(dp->recipe.dp.enabled);
  EXPECT_EQ(dp->recipe.dp.noise_multiplier, kDpAuditDefaultNoiseMultiplier);
  EXPECT_EQ(dp->recipe.dp.max_grad_norm, kDpAuditDefaultMaxGradNorm);

  // With train.dp its settings are used as given.
  dp = ParseConfig(std::string(kMinimal) + R"(
train: {dp: {noise_multiplier: 2.0, max_grad_norm: 3.0}}
audit:
  attacks: [loss]
  dp_audit: {canary_size: 10, training_alg: dp}
)",
                   "dp.yaml");
  ASSERT_TRUE(dp.ok()) << dp.status();
  EXPECT_FALSE(dp->dp_audit->dp_defaults);
  EXPECT_EQ(dp->recipe.dp.noise_multiplier, 2.0);

  // nondp with train.dp contradicts itself.
  problems.clear();
  (void)ParseConfig(std::string(kMinimal) + R"(
train: {dp: {noise_multiplier: 2.0}}
audit:
  attacks: [loss]
  dp_audit: {canary_size: 10, training_alg: nondp}
)",
                    "dp.yaml", &problems);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "audit.dp_audit.training_alg");
  EXPECT_THAT(problems[0].message, HasSubstr("train.dp asks for DP-SGD"));
}

TEST(DpAuditConfigTest, RulesAcrossSections) {
  // One target, trained here, on a classifier; the canaries are the audit points.
  EXPECT_THAT(ProblemFields(std::string(kMinimal) + R"(
run: {num_experiments: 2}
audit:
  attacks: [loss]
  data_size: 100
  dp_audit: {canary_size: 10}
models: {torchscript: [a.pt, b.pt, c.pt], keep: k.npy}
)"),
              UnorderedElementsAre("run.num_experiments", "audit.data_size", "models.torchscript"));
  // Online attacks need IN references: refused, each by its entry.
  std::vector<ConfigProblem> problems;
  (void)ParseConfig(std::string(kMinimal) + R"(
audit:
  attacks: [loss, rmia, lira-offline, lira]
  num_ref_models: 4
  dp_audit: {canary_size: 10}
)",
                    "online.yaml", &problems);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].field, "audit.attacks[1]");
  EXPECT_THAT(problems[0].message, HasSubstr("needs IN references"));
  EXPECT_EQ(problems[1].field, "audit.attacks[3]");
  // Privacy Meter's algorithm: RMIA is its offline RMIA (docs/config.md),
  // which a DP audit runs.
  std::string pm = kDpAuditPm;
  pm.replace(pm.find("RMIA-offline"), 12, "RMIA");
  EXPECT_THAT(ProblemFields(pm), IsEmpty());
  // Offline LiRA needs 2 references (all OUT for every canary); LOSS none,
  // and one model in all is then enough.
  EXPECT_THAT(ProblemFields(std::string(kMinimal) + R"(
audit:
  attacks: [lira-offline]
  num_ref_models: 1
  dp_audit: {canary_size: 10}
)"),
              ElementsAre("audit.attacks[0]"));
  EXPECT_THAT(ProblemFields(std::string(kMinimal) + R"(
audit:
  attacks: [loss]
  num_ref_models: 0
  splits: paired
  dp_audit: {canary_size: 10}
)"),
              IsEmpty());  // one model, and no splits to pair
}

TEST(DpAuditConfigTest, CanariesAndGridHaveLimits) {
  EXPECT_THAT(ProblemFields(std::string(kMinimal) + "audit:\n  attacks: [loss]\n"
                            "  dp_audit: {canary_size: " +
                            std::to_string(kMaxDpAuditCanaries + 1) + "}\n"),
              ElementsAre("audit.dp_audit.canary_size"));
  std::string grid = "[";
  for (size_t i = 0; i <= kMaxDpAuditGrid; ++i) grid += "{k_plus: 1, k_minus: 1},";
  grid.back() = ']';
  EXPECT_THAT(ProblemFields(std::string(kMinimal) + "audit:\n  attacks: [loss]\n"
                            "  dp_audit: {canary_size: 10, grid: " + grid + "}\n"),
              ElementsAre("audit.dp_audit.grid"));
}


// audit.duci (docs/duci.md): its fractions, their limits, the game's model
// counts, and what a DUCI audit cannot be.
TEST(ConfigTest, DuciSection) {
  auto c = ParseConfig(std::string(kMinimal) + "audit:\n  duci:\n", "duci.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->audit.duci.has_value());
  EXPECT_EQ(c->audit.duci->fractions, (std::vector<double>{0, 0.25, 0.5, 0.75, 1}));
  EXPECT_EQ(DuciTargetModels(*c), 5);
  // 2 x 4 references, more than lira-offline's 6.
  EXPECT_EQ(DuciReferenceModels(*c), 8);
  EXPECT_FALSE(ParseConfig(kMinimal, "min.yaml")->audit.duci.has_value());
  EXPECT_EQ(DuciTargetModels(*ParseConfig(kMinimal, "min.yaml")), 0);

  auto given = ParseConfig(std::string(kMinimal) +
                               "run:\n  num_experiments: 2\naudit:\n  attacks: [loss]\n"
                               "  num_ref_models: 1\n  duci:\n    fractions: [0.1, 0.9]\n",
                           "duci.yaml");
  ASSERT_TRUE(given.ok()) << given.status();
  EXPECT_EQ(given->audit.duci->fractions, (std::vector<double>{0.1, 0.9}));
  EXPECT_EQ(DuciTargetModels(*given), 4);
  EXPECT_EQ(DuciReferenceModels(*given), 4);  // at least 4
  auto lira = ParseConfig(std::string(kMinimal) +
                              "audit:\n  attacks: [lira]\n  num_ref_models: 0\n  duci:\n",
                          "duci.yaml");
  ASSERT_TRUE(lira.ok()) << lira.status();
  EXPECT_EQ(DuciReferenceModels(*lira), 6);  // 2 IN and 2 OUT others per reference
  nlohmann::json j = nlohmann::json::parse(ConfigJson(*given));
  EXPECT_EQ(j["audit"]["duci"]["fractions"], nlohmann::json({0.1, 0.9}));
  EXPECT_EQ(j["audit"]["duci"]["reference_models"], 4);

  std::vector<ConfigProblem> problems;
  auto bad = ParseConfig(std::string(kMinimal) +
                             "audit:\n  duci:\n    fractions: [0.5, 1.5, -0.1]\n    x: 1\n",
                         "bad.yaml", &problems);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Fields(problems), UnorderedElementsAre("audit.duci.fractions[1]",
                                                     "audit.duci.fractions[2]", "audit.duci.x"));
  EXPECT_GT(problems[0].line, 0);
  auto empty = ParseConfig(std::string(kMinimal) + "audit:\n  duci:\n    fractions: []\n",
                           "bad.yaml", &problems);
  EXPECT_FALSE(empty.ok());
  EXPECT_THAT(Fields(problems), ElementsAre("audit.duci.fractions"));
  std::string list;
  for (size_t i = 0; i <= kMaxDuciFractions; ++i) list += (i ? ", " : "") + std::string("0.5");
  auto over = ParseConfig(std::string(kMinimal) + "audit:\n  duci:\n    fractions: [" + list +
                              "]\n",
                          "bad.yaml", &problems);
  EXPECT_FALSE(over.ok());
  ASSERT_THAT(Fields(problems), ElementsAre("audit.duci.fractions"));
  EXPECT_THAT(problems[0].message, HasSubstr("at most 64 entries"));
  auto targets = ParseConfig(std::string(kMinimal) +
                                 "run:\n  num_experiments: 1000\naudit:\n  duci:\n",
                             "bad.yaml", &problems);
  EXPECT_FALSE(targets.ok());
  ASSERT_THAT(Fields(problems), ElementsAre("audit.duci.fractions"));
  EXPECT_THAT(problems[0].message, HasSubstr("5000 target models; at most 1024"));
  auto not_a_map =
      ParseConfig(std::string(kMinimal) + "audit:\n  duci: [1]\n", "bad.yaml", &problems);
  EXPECT_FALSE(not_a_map.ok());
  EXPECT_THAT(Fields(problems), ElementsAre("audit.duci"));
  auto models = ParseConfig(std::string(kMinimal) +
                                "models:\n  torchscript: [a.pt, b.pt]\n  keep: k.npy\n"
                                "audit:\n  duci:\n",
                            "bad.yaml", &problems);
  EXPECT_FALSE(models.ok());
  EXPECT_THAT(Fields(problems), ElementsAre("models.torchscript"));
}

// Privacy Meter's configs/duci/cifar10.yaml, as written there (its
// num_ref_models: 1 with RMIA and no population: a membership audit on
// disjoint splits), runs as a DUCI audit with `mia duci`: 4 references, a
// population set aside by the game.
TEST(ConfigTest, IncumbentDuciConfigParsesAsADuciAudit) {
  const std::string path = std::string(MIA_SOURCE_DIR) + "/tests/incumbent_configs/duci_cifar10.yaml";
  auto membership = LoadConfigFile(path);
  ASSERT_TRUE(membership.ok()) << membership.status();
  EXPECT_FALSE(membership->audit.duci.has_value());
  EXPECT_EQ(membership->audit.splits, "disjoint");
  auto c = LoadConfigFile(path, /*duci=*/true);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->audit.duci.has_value());
  EXPECT_EQ(c->audit.scoring.attacks, (std::vector<std::string>{"rmia-offline"}));
  EXPECT_EQ(c->model.architecture, "wrn");
  EXPECT_EQ(c->model.width, 2);
  EXPECT_EQ(c->recipe.epochs, 50);
  EXPECT_EQ(c->train_device, "cuda:0");
  EXPECT_EQ(c->audit.report_log, "report_rmia");
  EXPECT_EQ(c->data.population_size, 0);
  EXPECT_EQ(DuciTargetModels(*c), 5);
  EXPECT_EQ(DuciReferenceModels(*c), 4);
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
}  // namespace mia::pipeline
