#include "core/attacks/registry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia::attacks {
namespace {

using ::testing::HasSubstr;

TEST(RegistryTest, EveryCatalogEntryBuildsWithDefaults) {
  for (const AttackInfo& info : AttackCatalog()) {
    auto attack = MakeAttack(info.name);
    ASSERT_TRUE(attack.ok()) << info.name << ": " << attack.status();
    EXPECT_EQ((*attack)->name(), info.name);
    EXPECT_EQ((*attack)->needs().signal, info.needs.signal);
    EXPECT_EQ((*attack)->needs().population, info.needs.population);
  }
}

TEST(RegistryTest, NeedsMatchTheSpec) {
  EXPECT_FALSE((*MakeAttack("loss"))->needs().references);
  EXPECT_TRUE((*MakeAttack("population"))->needs().population);
  EXPECT_TRUE((*MakeAttack("lira"))->needs().in_references);
  EXPECT_FALSE((*MakeAttack("lira-offline"))->needs().in_references);
  EXPECT_EQ((*MakeAttack("lira"))->needs().signal, SignalKind::kLogitScaled);
  EXPECT_TRUE((*MakeAttack("rmia"))->needs().in_references);
  EXPECT_FALSE((*MakeAttack("rmia-offline"))->needs().in_references);
  EXPECT_TRUE((*MakeAttack("rmia-offline"))->needs().population);
}

TEST(RegistryTest, AliasesAndOptions) {
  EXPECT_EQ((*MakeAttack("attack-p"))->name(), "population");
  EXPECT_EQ((*MakeAttack("attack-r"))->name(), "reference");
  EXPECT_EQ((*MakeAttack("rmia-offline:gamma=2:a=0.3"))->name(), "rmia-offline:gamma=2:a=0.3");
  EXPECT_EQ((*MakeAttack("lira:variance=fixed:center=median"))->name(),
            "lira:variance=fixed:center=median");
  EXPECT_EQ((*MakeAttack("lira:variance=auto"))->name(), "lira");
}

TEST(RegistryTest, ErrorsNameTheProblem) {
  EXPECT_THAT(MakeAttack("rmiaa").status().message(), HasSubstr("unknown attack 'rmiaa'"));
  EXPECT_THAT(MakeAttack("rmiaa").status().message(), HasSubstr("lira"));
  EXPECT_THAT(MakeAttack("rmia:gama=2").status().message(), HasSubstr("unknown option 'gama'"));
  EXPECT_THAT(MakeAttack("rmia:a=0.3").status().message(), HasSubstr("unknown option 'a'"));
  EXPECT_THAT(MakeAttack("rmia-offline:a=1.5").status().message(), HasSubstr("a must be in"));
  EXPECT_THAT(MakeAttack("rmia:gamma=abc").status().message(), HasSubstr("must be a number"));
  EXPECT_THAT(MakeAttack("lira:variance=big").status().message(), HasSubstr("one of"));
  EXPECT_THAT(MakeAttack("lira:variance").status().message(), HasSubstr("key=value"));
  EXPECT_THAT(MakeAttack("rmia:gamma=1:gamma=2").status().message(), HasSubstr("twice"));
  EXPECT_THAT(MakeAttack("loss:x=1").status().message(), HasSubstr("unknown option 'x'"));
  // A client's huge value is quoted in part (100 bytes), never echoed whole.
  const std::string huge(1 << 20, 'r');
  for (const std::string& spec : {huge, "rmia:" + huge + "=1", "rmia:" + huge, "loss:x=" + huge}) {
    const std::string m(MakeAttack(spec).status().message());
    EXPECT_LT(m.size(), 600u) << m.substr(0, 200);
  }
  EXPECT_THAT(MakeAttack(huge).status().message(),
              HasSubstr("'" + std::string(100, 'r') + "...' (1048576 bytes)"));
}

TEST(RegistryTest, ListOfAttacks) {
  auto attacks = MakeAttacks("rmia, lira-offline:variance=fixed,loss");
  ASSERT_TRUE(attacks.ok()) << attacks.status();
  ASSERT_EQ(attacks->size(), 3u);
  EXPECT_EQ((*attacks)[1]->name(), "lira-offline:variance=fixed");
  EXPECT_THAT(MakeAttacks("rmia,rmia-online").status().message(), HasSubstr("twice"));
  EXPECT_FALSE(MakeAttacks("").ok());
}

}  // namespace
}  // namespace mia::attacks
