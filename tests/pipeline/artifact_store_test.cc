#include "core/pipeline/artifact_store.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/storage/object_store.h"
#include "gtest/gtest.h"
#include "tests/storage/s3_test_util.h"

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


// ---------------------------------------------------------------------------
// A model cache shared through a remote store (--artifact_store): replica A
// and replica B have their own local folders and one shared store, a folder
// or the s3rver fixture's bucket.

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> LocalFiles(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(e.path().lexically_relative(dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class SharedArtifactStore : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "dir") {
      remote_ = storage::MakeDirObjectStore(TempRoot(Named("shared_store_remote")));
      return;
    }
    const std::optional<std::string> endpoint = testing_util::S3FixtureEndpoint();
    if (!endpoint.has_value()) GTEST_SKIP() << "the s3rver fixture is not running";
    absl::StatusOr<std::unique_ptr<storage::ObjectStore>> s3 = storage::MakeS3ObjectStore(
        testing_util::FixtureOptions(*endpoint, testing_util::UniquePrefix("models")));
    ASSERT_TRUE(s3.ok()) << s3.status();
    remote_ = *std::move(s3);
  }
  // A folder of this test's own: the dir and s3 variants run at once in
  // separate processes (ctest -j) and must not remove each other's folders.
  std::string Named(const std::string& name) const { return name + "_" + GetParam(); }
  std::shared_ptr<storage::ObjectStore> remote_;
};

TEST_P(SharedArtifactStore, ModelCommittedOnOneReplicaIsFoundOnAnother) {
  ArtifactStore a(TempRoot(Named("replica_a")), remote_);
  ArtifactStore b(TempRoot(Named("replica_b")), remote_);
  ASSERT_TRUE(a.Init().ok());
  const ModelKeyMaterial m = Material();
  const std::string key = m.Key();
  EXPECT_FALSE(b.HasModel(m));
  ASSERT_TRUE(WriteFileAtomically(a.ModelPath(key), "trained weights").ok());
  training::ModelReport report;
  report.test_accuracy = 0.625;
  ASSERT_TRUE(a.CommitModel(m, report).ok());
  // The remote entry: model and metadata under the content-addressed key.
  EXPECT_TRUE(*remote_->Exists("models/" + key + ".pt"));
  EXPECT_TRUE(*remote_->Exists("models/" + key + ".json"));

  // Replica B downloads it instead of retraining.
  EXPECT_TRUE(b.HasModel(m));
  EXPECT_EQ(Slurp(b.ModelPath(key)), "trained weights");
  absl::StatusOr<training::ModelReport> read = b.ReadReport(m);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->test_accuracy, 0.625);
  // Another model is not there.
  ModelKeyMaterial other = Material();
  other.seed = 99;
  EXPECT_FALSE(b.HasModel(other));

  // Committing the same model on B writes the same objects again.
  ASSERT_TRUE(b.CommitModel(m, report).ok());
  EXPECT_EQ(remote_->List("models/")->size(), 2u);
}

TEST_P(SharedArtifactStore, ForeignOrPartialRemoteEntriesAreMisses) {
  const std::string scratch = TempRoot(Named("shared_scratch"));
  std::filesystem::create_directories(scratch);
  const ModelKeyMaterial m = Material();
  const std::string key = m.Key();
  // Metadata of other key material under this key (a collision or damage).
  std::ofstream(scratch + "/meta") << R"({"key_material": "something else", "report": {}})";
  std::ofstream(scratch + "/model") << "weights";
  ASSERT_TRUE(remote_->Put("models/" + key + ".json", scratch + "/meta").ok());
  ASSERT_TRUE(remote_->Put("models/" + key + ".pt", scratch + "/model").ok());
  const std::string root_c = TempRoot(Named("replica_c"));
  ArtifactStore c(root_c, remote_);
  EXPECT_FALSE(c.HasModel(m));
  EXPECT_TRUE(LocalFiles(root_c + "/models").empty());
  // Matching metadata without its model (never written so, but a store may
  // lose an object): a miss, and no metadata appears locally.
  ArtifactStore a(TempRoot(Named("replica_a2")), remote_);
  ASSERT_TRUE(a.Init().ok());
  ASSERT_TRUE(WriteFileAtomically(a.ModelPath(key), "weights").ok());
  ASSERT_TRUE(a.CommitModel(m, training::ModelReport{}).ok());
  ASSERT_TRUE(remote_->Delete("models/" + key + ".pt").ok());
  const std::string root_d = TempRoot(Named("replica_d"));
  ArtifactStore d(root_d, remote_);
  EXPECT_FALSE(d.HasModel(m));
  EXPECT_TRUE(LocalFiles(root_d + "/models").empty());
}

TEST_P(SharedArtifactStore, SignalsArePublishedAndFetched) {
  const std::string root_a = TempRoot(Named("signals_a"));
  const std::string root_b = TempRoot(Named("signals_b"));
  ArtifactStore a(root_a, remote_);
  ArtifactStore b(root_b, remote_);
  ASSERT_TRUE(a.Init().ok());
  ASSERT_TRUE(b.Init().ok());
  ASSERT_TRUE(WriteFileAtomically(a.SignalsPath("abc"), "logits").ok());
  ASSERT_TRUE(a.PublishFile(a.SignalsPath("abc")).ok());
  ASSERT_TRUE(b.FetchFile(b.SignalsPath("abc")).ok());
  EXPECT_EQ(Slurp(b.SignalsPath("abc")), "logits");
  // Absent everywhere: nothing fetched, no error (the caller computes it).
  ASSERT_TRUE(b.FetchFile(b.SignalsPath("def")).ok());
  EXPECT_FALSE(std::filesystem::exists(b.SignalsPath("def")));
  EXPECT_TRUE(absl::IsInvalidArgument(b.FetchFile("/etc/passwd")));
}

INSTANTIATE_TEST_SUITE_P(Remotes, SharedArtifactStore, ::testing::Values("dir", "s3"),
                         [](const auto& info) { return info.param; });

TEST(ArtifactStoreTest, SharedStoreDownFailsTheCommitNotTheLookup) {
  storage::S3Options o;
  o.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1
  o.bucket = "mia-test";
  o.max_attempts = 1;
  std::shared_ptr<storage::ObjectStore> down = *storage::MakeS3ObjectStore(o);
  ArtifactStore store(TempRoot("store_down"), down);
  ASSERT_TRUE(store.Init().ok());
  const ModelKeyMaterial m = Material();
  EXPECT_FALSE(store.HasModel(m));  // unreadable store: retrain
  ASSERT_TRUE(WriteFileAtomically(store.ModelPath(m.Key()), "w").ok());
  const absl::Status s = store.CommitModel(m, training::ModelReport{});
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(store.HasModel(m));  // the local cache has it
}

}  // namespace
}  // namespace mia::pipeline
