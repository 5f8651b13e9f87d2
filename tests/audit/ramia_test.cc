// RaMIA's range samplers and trimmed mean (core/audit/ramia.h), and range
// scoring through ScoreBundle, against hand-worked cases and plain
// definitional code.
#include "core/audit/ramia.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "core/audit/scoring.h"
#include "core/common/random.h"
#include "core/metrics/roc.h"
#include "gtest/gtest.h"

namespace mia::audit {
namespace {

// ---------------------------------------------------------------------------
// Trimming.

TEST(RamiaTrimTest, HandWorkedCases) {
  // s = 10, trim 0.2: 2 dropped at each end, 6 kept.
  EXPECT_EQ(TrimCount(10, 0.2), 2);
  EXPECT_EQ(TrimCount(10, 0.3), 3);  // 0.3 * 10 rounds to 3, not 2
  EXPECT_EQ(TrimCount(4, 0.2), 0);   // floor(0.8)
  EXPECT_EQ(TrimCount(5, 0.2), 1);
  EXPECT_EQ(TrimCount(7, 0.0), 0);
  EXPECT_EQ(TrimCount(3, 0.49), 1);  // floor(1.47); one point always kept
  EXPECT_EQ(TrimCount(1, 0.49), 0);
  // {10, 1, 9, 2, 8, 3, 7, 4, 6, 5}: drop 1, 2 and 9, 10; mean of 3..8 = 5.5.
  const std::vector<double> s = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
  EXPECT_DOUBLE_EQ(TrimmedMean(s, 0.2), 5.5);
  // An outlier is trimmed away: {0, 0, 0, 0, 100} with trim 0.2 drops one 0
  // and the 100.
  EXPECT_DOUBLE_EQ(TrimmedMean(std::vector<double>{0, 100, 0, 0, 0}, 0.2), 0.0);
  // trim 0: the plain mean.
  EXPECT_DOUBLE_EQ(TrimmedMean(std::vector<double>{1, 2, 3, 10}, 0.0), 4.0);
  // {1, 2, 3, 10} at trim 0.25: drop 1 and 10 -> 2.5.
  EXPECT_DOUBLE_EQ(TrimmedMean(std::vector<double>{10, 3, 2, 1}, 0.25), 2.5);
  EXPECT_TRUE(std::isnan(TrimmedMean(std::vector<double>{1, std::nan(""), 3}, 0.2)));
  EXPECT_TRUE(std::isnan(TrimmedMean(std::vector<double>{}, 0.2)));
}

TEST(RamiaTrimTest, MatchesPlainSortAndAverage) {
  Rng rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int s = 1 + static_cast<int>(rng.UniformInt(40));
    const double trim = 0.49 * rng.Uniform01();
    std::vector<double> v(s);
    for (double& x : v) x = std::round(rng.Normal() * 4);  // ties on purpose
    // Definition: sort, drop floor(trim * s) at each end, average the rest.
    std::vector<double> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    const int k = static_cast<int>(std::floor(trim * s + 1e-9));
    double sum = 0;
    int kept = 0;
    for (int i = k; i < s - k; ++i, ++kept) sum += sorted[i];
    ASSERT_GE(kept, 1);
    EXPECT_NEAR(TrimmedMean(v, trim), sum / kept, 1e-12) << "s=" << s << " trim=" << trim;
  }
}

TEST(RamiaTrimTest, RangeScoresAreTrimmedMeansOfConsecutivePoints) {
  const std::vector<double> points = {1, 2, 3, 4, 100, 5, 5, 5, 5, -100};
  const std::vector<double> r = RangeScores(points, 5, 0.2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_DOUBLE_EQ(r[0], 3.0);  // drop 1 and 100: mean of 2, 3, 4
  EXPECT_DOUBLE_EQ(r[1], 5.0);  // drop -100 and one 5
}

// ---------------------------------------------------------------------------
// l2 balls.

TEST(RamiaSamplerTest, L2PointsAreInsideTheBallAndSpreadUniformly) {
  const int d = 6;
  const double radius = 2.5;
  const std::vector<float> centre = {1, -2, 0.5, 3, 0, 10};
  const int s = 20000;
  const std::vector<float> pts = SampleL2Ball(centre, radius, s, 11);
  ASSERT_EQ(pts.size(), static_cast<size_t>(s) * d);
  int inner_half = 0;  // points within radius / 2: expected fraction (1/2)^d
  std::vector<double> mean(d, 0.0);
  for (int p = 0; p < s; ++p) {
    double n2 = 0;
    for (int j = 0; j < d; ++j) {
      const double diff = pts[p * d + j] - centre[j];
      n2 += diff * diff;
      mean[j] += diff / s;
    }
    ASSERT_LE(std::sqrt(n2), radius * (1 + 1e-6)) << "point " << p;
    if (std::sqrt(n2) <= radius / 2) ++inner_half;
    // Uniform in the ball: P(|x - c| <= t r) = t^d; check t = 0.9 below too.
  }
  const double expected = std::pow(0.5, d);  // 1/64
  EXPECT_NEAR(static_cast<double>(inner_half) / s, expected, 4 * std::sqrt(expected / s));
  for (int j = 0; j < d; ++j) EXPECT_NEAR(mean[j], 0.0, 0.05) << "coordinate " << j;
  // The radius distribution: P(|x - c| <= 0.9 r) = 0.9^d.
  int within = 0;
  for (int p = 0; p < s; ++p) {
    double n2 = 0;
    for (int j = 0; j < d; ++j) n2 += std::pow(pts[p * d + j] - centre[j], 2);
    if (std::sqrt(n2) <= 0.9 * radius) ++within;
  }
  const double q = std::pow(0.9, d);
  EXPECT_NEAR(static_cast<double>(within) / s, q, 4 * std::sqrt(q * (1 - q) / s));
}

TEST(RamiaSamplerTest, L2IsSeededAndPerturbedCentresStayWithinTheRadius) {
  const std::vector<float> x(600, 0.0f);
  EXPECT_EQ(SampleL2Ball(x, 10, 3, 5), SampleL2Ball(x, 10, 3, 5));
  EXPECT_NE(SampleL2Ball(x, 10, 3, 5), SampleL2Ball(x, 10, 3, 6));
  RamiaOptions o;
  o.range_function = "l2";
  o.radius = 10;
  const std::vector<float> c = PerturbedCentre(o, x, 3);
  double n2 = 0;
  for (float v : c) n2 += static_cast<double>(v) * v;
  EXPECT_LE(std::sqrt(n2), 10 * (1 + 1e-6));  // the range around c holds x
  EXPECT_GT(std::sqrt(n2), 9.0);  // in 600 dimensions nearly all mass is near the sphere
}

// ---------------------------------------------------------------------------
// Missing values.

TEST(RamiaSamplerTest, MissingValuesChangeExactlyTheLastFeaturesWithinTheirRanges) {
  const std::vector<float> centre = {5, 6, 7, 8, 9, 10};
  const std::vector<std::pair<double, double>> ranges = {{0, 1}, {-3, 2}, {10, 10.5}};
  const int s = 50;
  absl::StatusOr<std::vector<float>> pts = SampleMissingValues(centre, ranges, false, s, 3);
  ASSERT_TRUE(pts.ok()) << pts.status();
  ASSERT_EQ(pts->size(), 6u * s);
  std::set<std::vector<float>> distinct;
  for (int p = 0; p < s; ++p) {
    const float* row = pts->data() + p * 6;
    for (int j = 0; j < 3; ++j) EXPECT_EQ(row[j], centre[j]);  // kept
    for (int j = 0; j < 3; ++j) {
      EXPECT_GE(row[3 + j], ranges[j].first);
      EXPECT_LE(row[3 + j], ranges[j].second);
    }
    distinct.insert(std::vector<float>(row, row + 6));
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(s));
}

TEST(RamiaSamplerTest, CategoricalMissingValuesAreDistinctIntegersFromTheAllowedValues) {
  // Purchase's binary features, as the incumbent's config gives them.
  std::vector<std::pair<double, double>> ranges(4, {0, 1});  // 16 combinations
  EXPECT_EQ(CategoricalCombinations(ranges), 16);
  std::vector<float> centre(10, 0.5f);
  absl::StatusOr<std::vector<float>> pts = SampleMissingValues(centre, ranges, true, 16, 9);
  ASSERT_TRUE(pts.ok()) << pts.status();
  std::set<std::vector<float>> seen;
  for (int p = 0; p < 16; ++p) {
    const float* row = pts->data() + p * 10;
    for (int j = 0; j < 6; ++j) EXPECT_EQ(row[j], 0.5f);
    for (int j = 6; j < 10; ++j) EXPECT_TRUE(row[j] == 0.0f || row[j] == 1.0f) << row[j];
    seen.insert(std::vector<float>(row + 6, row + 10));
  }
  EXPECT_EQ(seen.size(), 16u);  // every combination once
  // One more than the combinations cannot be distinct.
  EXPECT_FALSE(SampleMissingValues(centre, ranges, true, 17, 9).ok());
  // More missing features than the row has.
  EXPECT_FALSE(SampleMissingValues(std::vector<float>(3, 0), ranges, true, 2, 9).ok());
  // Inclusive integer ranges: {2, 3, 4} x {7}.
  EXPECT_EQ(CategoricalCombinations({{2, 4}, {7, 7}}), 3);
}

// ---------------------------------------------------------------------------
// Geometric.

// A 1 x 3 x 4 image whose pixel (y, x) is 10 y + x.
std::vector<float> TestImage() {
  std::vector<float> img(12);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 4; ++x) img[y * 4 + x] = 10.0f * y + x;
  return img;
}

TEST(RamiaSamplerTest, FlipsMirrorTheImage) {
  const std::vector<int64_t> shape = {1, 3, 4};
  const std::vector<float> h = FlipHorizontal(TestImage(), shape);
  const std::vector<float> v = FlipVertical(TestImage(), shape);
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 4; ++x) {
      EXPECT_EQ(h[y * 4 + x], 10.0f * y + (3 - x));
      EXPECT_EQ(v[y * 4 + x], 10.0f * (2 - y) + x);
    }
  }
}

TEST(RamiaSamplerTest, RotationsByHandWorkedAngles) {
  // 3 x 3 image, 2 channels: rotate by 0 is the identity, by 90 degrees
  // counter-clockwise moves the top row to the left column.
  std::vector<float> img(18);
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < 9; ++i) img[c * 9 + i] = 100.0f * c + i;  // i = 3 y + x
  const std::vector<int64_t> shape = {2, 3, 3};
  EXPECT_EQ(Rotate(img, shape, 0), img);
  const std::vector<float> r = Rotate(img, shape, 90);
  // Output (y, x) comes from source (x', y') = (cx + (y - cy)... ): the top
  // row 0 1 2 becomes the left column read bottom-up.
  const std::vector<float> expected0 = {2, 5, 8, 1, 4, 7, 0, 3, 6};
  for (int c = 0; c < 2; ++c) {
    for (int i = 0; i < 9; ++i) EXPECT_EQ(r[c * 9 + i], 100.0f * c + expected0[i]) << i;
  }
  // 180 degrees is both flips.
  EXPECT_EQ(Rotate(img, shape, 180), FlipVertical(FlipHorizontal(img, shape), shape));
  // 45 degrees on a 3 x 3 image: the corners fall outside and become 0;
  // the centre stays.
  const std::vector<float> d = Rotate(img, shape, 45);
  EXPECT_EQ(d[4], 4.0f);
}

TEST(RamiaSamplerTest, GeometricRangesAreTheCentreAndItsTransforms) {
  const std::vector<int64_t> shape = {1, 3, 4};
  const std::vector<float> img = TestImage();
  const std::vector<std::string> t = {"horizontal_flip", "vertical_flip", "rotate"};
  absl::StatusOr<std::vector<float>> with_centre = SampleGeometric(img, shape, t, 4, 1);
  ASSERT_TRUE(with_centre.ok()) << with_centre.status();
  ASSERT_EQ(with_centre->size(), 48u);
  EXPECT_EQ(std::vector<float>(with_centre->begin(), with_centre->begin() + 12), img);
  EXPECT_EQ(std::vector<float>(with_centre->begin() + 12, with_centre->begin() + 24),
            FlipHorizontal(img, shape));
  EXPECT_EQ(std::vector<float>(with_centre->begin() + 24, with_centre->begin() + 36),
            FlipVertical(img, shape));
  // The rotation is one of the angles in [-30, 30]: find it on a fine grid.
  const std::vector<float> rotated(with_centre->begin() + 36, with_centre->end());
  bool found = false;
  for (double deg = -30; deg <= 30 && !found; deg += 0.01) found = Rotate(img, shape, deg) == rotated;
  EXPECT_TRUE(found);
  absl::StatusOr<std::vector<float>> without = SampleGeometric(img, shape, t, 3, 1);
  ASSERT_TRUE(without.ok());
  EXPECT_EQ(std::vector<float>(without->begin(), without->begin() + 12),
            FlipHorizontal(img, shape));
  EXPECT_FALSE(SampleGeometric(img, shape, t, 5, 1).ok());
  EXPECT_FALSE(SampleGeometric(img, {12}, t, 4, 1).ok());  // not an image
}

// ---------------------------------------------------------------------------
// Range scores through ScoreBundle.

// A bundle of R ranges of s points each, sampled points never trained on: the
// LOSS attack's range scores are the trimmed means of -loss, computed here by
// the definition.
TEST(RamiaScoringTest, RangeResultsAreMetricsOfTrimmedMeans) {
  const int m = 2, s = 5, ranges = 40, classes = 3;
  const int64_t n = ranges * s;
  Bundle b;
  b.audit.has_logits = true;
  b.audit.array_name = "logits";
  b.audit.logits_shape = {m, n, 1, classes};
  Rng rng(3);
  std::vector<uint8_t> range_member(ranges);
  for (int r = 0; r < ranges; ++r) range_member[r] = r % 2;
  for (int mi = 0; mi < m; ++mi) {
    for (int64_t i = 0; i < n; ++i) {
      const bool member = range_member[i / s] && mi == 0;
      for (int k = 0; k < classes; ++k) {
        b.audit.logits.push_back(static_cast<float>(rng.Normal() + (member && k == 0 ? 1.5 : 0)));
      }
    }
  }
  b.audit.labels.assign(n, 0);
  b.keep.assign(static_cast<size_t>(m) * n, 0);
  for (int64_t i = 0; i < n; ++i) b.row_ids.push_back(1000 + i / s);
  b.targets = {0};
  RangeGroups g;
  g.size = s;
  g.trim = 0.2;
  g.keep.assign(static_cast<size_t>(m) * ranges, 0);
  for (int r = 0; r < ranges; ++r) {
    g.keep[r] = range_member[r];
    g.row_ids.push_back(1000 + r);
  }
  ScoringOptions o;
  o.attacks = {"loss"};
  o.bootstrap.resamples = 0;
  absl::StatusOr<AuditResult> res = ScoreBundle(b, o, nullptr, &g);
  ASSERT_TRUE(res.ok()) << res.status();
  ASSERT_EQ(res->results.size(), 1u);
  const AttackTargetResult& r = res->results[0];
  EXPECT_EQ(r.attack, "loss@range");
  EXPECT_EQ(res->summaries[0].attack, "loss@range");
  EXPECT_EQ(res->row_ids, g.row_ids);
  EXPECT_EQ(r.members, ranges / 2);
  EXPECT_EQ(r.non_members, ranges / 2);
  ASSERT_EQ(r.scores.size(), static_cast<size_t>(ranges));
  // Definition: -cross-entropy per point, then sort, drop 1 each end, average.
  std::vector<double> expected(ranges);
  for (int q = 0; q < ranges; ++q) {
    std::vector<double> pts;
    for (int j = 0; j < s; ++j) {
      const float* z = b.audit.logits.data() + (q * s + j) * classes;
      double mx = *std::max_element(z, z + classes), sum = 0;
      for (int k = 0; k < classes; ++k) sum += std::exp(z[k] - mx);
      pts.push_back(-(mx + std::log(sum) - z[0]));
    }
    std::sort(pts.begin(), pts.end());
    expected[q] = (pts[1] + pts[2] + pts[3]) / 3;
    EXPECT_NEAR(r.scores[q], expected[q], 1e-6) << "range " << q;
  }
  // The AUC is that of the range scores with the ranges' membership.
  absl::StatusOr<metrics::RocCurve> roc = metrics::ComputeRoc(expected, range_member);
  ASSERT_TRUE(roc.ok());
  EXPECT_NEAR(r.auc, metrics::AreaUnder(*roc), 1e-9);
  EXPECT_GT(r.auc, 0.8);  // member ranges' points fit class 0 better
  // Groups that do not tile the points are refused.
  RangeGroups bad = g;
  bad.size = 3;
  EXPECT_FALSE(ScoreBundle(b, o, nullptr, &bad).ok());
}

// A model that leaks nothing shows no leakage on ranges either: logits drawn
// independently of membership give an epsilon lower bound of 0 in at least
// 95% of seeds, for an attack with references and a population and for one
// without.
TEST(RamiaScoringTest, NoLeakageGivesNoEpsilon) {
  const int m = 3, s = 6, ranges = 200, classes = 4, z = 300;
  const int64_t n = ranges * s;
  int zero_bounds = 0, runs = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Rng rng(seed);
    Bundle b;
    b.audit.has_logits = true;
    b.audit.array_name = "logits";
    b.audit.logits_shape = {m, n, 1, classes};
    for (int64_t v = 0; v < m * n * classes; ++v) b.audit.logits.push_back(rng.Normal());
    for (int64_t i = 0; i < n; ++i) b.audit.labels.push_back(rng.UniformInt(classes));
    SignalSource pop;
    pop.has_logits = true;
    pop.array_name = "population_logits";
    pop.logits_shape = {m, z, 1, classes};
    for (int64_t v = 0; v < m * z * classes; ++v) pop.logits.push_back(rng.Normal());
    for (int i = 0; i < z; ++i) pop.labels.push_back(rng.UniformInt(classes));
    b.population = std::move(pop);
    b.keep.assign(static_cast<size_t>(m) * n, 0);
    b.row_ids.assign(n, 0);
    b.targets = {0};
    RangeGroups g;
    g.size = s;
    g.keep.assign(static_cast<size_t>(m) * ranges, 0);
    for (int r = 0; r < ranges; ++r) {
      g.keep[r] = r < ranges / 2;
      g.row_ids.push_back(r);
    }
    ScoringOptions o;
    o.attacks = {"loss", "rmia-offline:a=0.3"};
    o.bootstrap.resamples = 0;
    o.seed = seed;
    absl::StatusOr<AuditResult> res = ScoreBundle(b, o, nullptr, &g);
    ASSERT_TRUE(res.ok()) << res.status();
    for (const AttackTargetResult& r : res->results) {
      ++runs;
      if (r.epsilon.epsilon == 0) ++zero_bounds;
    }
  }
  EXPECT_EQ(runs, 40);
  EXPECT_GE(zero_bounds, 38);  // 95%
}

}  // namespace
}  // namespace mia::audit
