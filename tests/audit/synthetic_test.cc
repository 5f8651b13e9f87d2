#include "core/audit/synthetic.h"

#include "gtest/gtest.h"

namespace mia::audit {
namespace {

TEST(SyntheticTest, ShapesAndBalancedKeep) {
  SyntheticOptions o;
  o.models = 6;
  o.points = 50;
  o.population = 7;
  o.queries = 3;
  o.classes = 4;
  o.targets = 2;
  auto a = MakeSyntheticBundle(o);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->at("logits").shape, (std::vector<int64_t>{6, 50, 3, 4}));
  EXPECT_EQ(a->at("population_logits").shape, (std::vector<int64_t>{6, 7, 3, 4}));
  EXPECT_EQ(a->at("targets").shape, (std::vector<int64_t>{2}));
  auto keep = *a->at("keep").ToBool("keep");
  for (int i = 0; i < 50; ++i) {
    int in = 0;
    for (int m = 0; m < 6; ++m) in += keep[m * 50 + i];
    EXPECT_EQ(in, 3) << "point " << i;  // exactly half of the models
  }
}

TEST(SyntheticTest, DeterministicInTheSeed) {
  SyntheticOptions o;
  o.points = 30;
  o.population = 5;
  auto a = MakeSyntheticBundle(o);
  auto b = MakeSyntheticBundle(o);
  o.seed = 2;
  auto c = MakeSyntheticBundle(o);
  EXPECT_EQ(a->at("logits").data, b->at("logits").data);
  EXPECT_NE(a->at("logits").data, c->at("logits").data);
}

TEST(SyntheticTest, RejectsBadOptions) {
  SyntheticOptions o;
  o.models = 1;
  EXPECT_FALSE(MakeSyntheticBundle(o).ok());
  o = SyntheticOptions();
  o.targets = 9;
  EXPECT_FALSE(MakeSyntheticBundle(o).ok());
  o = SyntheticOptions();
  o.queries = 0;
  EXPECT_FALSE(MakeSyntheticBundle(o).ok());
}

}  // namespace
}  // namespace mia::audit
