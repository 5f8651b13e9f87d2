#include "core/pipeline/artifact_store.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace mia::pipeline {
namespace {

std::string TempRoot(const std::string& name) {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const std::string root = std::string(env != nullptr ? env : ::testing::TempDir()) + "/" + name;
  std::filesystem::remove_all(root);
  return root;
}

ModelKeyMaterial Material() {
  ModelKeyMaterial m;
  m.dataset_fingerprint = "abc";
  m.rows_sha256 = RowsSha256({1, 5, 9});
  m.seed = 3;
  return m;
}

TEST(ArtifactStoreTest, KeyChangesWithEveryDeterminant) {
  const std::string base = Material().Key();
  EXPECT_EQ(base, Material().Key());
  ModelKeyMaterial m = Material();
  m.recipe.learning_rate = 0.02;
  EXPECT_NE(m.Key(), base);
  m = Material();
  m.spec.hidden = {64};
  EXPECT_NE(m.Key(), base);
  m = Material();
  m.seed = 4;
  EXPECT_NE(m.Key(), base);
  m = Material();
  m.rows_sha256 = RowsSha256({1, 5, 10});
  EXPECT_NE(m.Key(), base);
  m = Material();
  m.dataset_fingerprint = "abd";
  EXPECT_NE(m.Key(), base);
  // A tenant's scope (models trained on its own uploads) is a determinant;
  // two tenants' scopes differ.
  m = Material();
  m.scope = "team-a";
  const std::string scoped = m.Key();
  EXPECT_NE(scoped, base);
  m.scope = "team-b";
  EXPECT_NE(m.Key(), scoped);
  EXPECT_EQ(Material().Json().find("scope"), std::string::npos);  // unscoped keys unchanged
}

TEST(ArtifactStoreTest, PresentOnlyWithMatchingMetadata) {
  ArtifactStore store(TempRoot("store_test"));
  ASSERT_TRUE(store.Init().ok());
  const ModelKeyMaterial m = Material();
  EXPECT_FALSE(store.HasModel(m));
  ASSERT_TRUE(WriteFileAtomically(store.ModelPath(m.Key()), "weights").ok());
  EXPECT_FALSE(store.HasModel(m));  // no metadata yet: an interrupted write
  training::ModelReport report;
  report.test_accuracy = 0.75;
  ASSERT_TRUE(store.CommitModel(m, report).ok());
  EXPECT_TRUE(store.HasModel(m));
  EXPECT_EQ(store.ReadReport(m)->test_accuracy, 0.75);
  // Metadata naming other key material (a foreign or damaged file) is a miss.
  std::ofstream(store.ModelMetaPath(m.Key())) << R"({"key_material": "something else"})";
  EXPECT_FALSE(store.HasModel(m));
  std::ofstream(store.ModelMetaPath(m.Key())) << "{ not json";
  EXPECT_FALSE(store.HasModel(m));
}

TEST(ArtifactStoreTest, AtomicWriteLeavesNoTemporaryFiles) {
  const std::string root = TempRoot("atomic_test");
  std::filesystem::create_directories(root);
  ASSERT_TRUE(WriteFileAtomically(root + "/a.txt", "one").ok());
  ASSERT_TRUE(WriteFileAtomically(root + "/a.txt", "two").ok());
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(root)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
  std::ifstream in(root + "/a.txt");
  std::string s;
  in >> s;
  EXPECT_EQ(s, "two");
  EXPECT_FALSE(WriteFileAtomically(root + "/missing/dir/a.txt", "x").ok());
}

}  // namespace
}  // namespace mia::pipeline
