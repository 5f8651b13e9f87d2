#include "core/storage/object_store.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/common/file_util.h"
#include "core/common/sha256.h"
#include "gtest/gtest.h"
#include "tests/common/temp_root.h"
#include "tests/storage/s3_test_util.h"

namespace mia::storage {
namespace {

namespace fs = std::filesystem;
using testing_util::CannedHttpServer;
using testing_util::FreshTempRoot;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Files in `dir` (recursively), to see that no temporary file is left.
std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------------------
// Conformance: every backend behaves the same.

class ObjectStoreConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    local_ = FreshTempRoot(absl::StrCat("object_store_local_", GetParam(), "_", ::getpid()));
    if (GetParam() == "dir") {
      store_ = MakeDirObjectStore(FreshTempRoot(absl::StrCat("object_store_dir_", ::getpid())));
      return;
    }
    const std::optional<std::string> endpoint = testing_util::S3FixtureEndpoint();
    if (!endpoint.has_value()) GTEST_SKIP() << "the s3rver fixture is not running";
    absl::StatusOr<std::unique_ptr<ObjectStore>> s3 = MakeS3ObjectStore(
        testing_util::FixtureOptions(*endpoint, testing_util::UniquePrefix("conformance")));
    ASSERT_TRUE(s3.ok()) << s3.status();
    store_ = *std::move(s3);
  }

  std::string Local(const std::string& name) const { return local_ + "/" + name; }

  std::string local_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_P(ObjectStoreConformance, PutGetHeadListDelete) {
  WriteAll(Local("one"), "first object");
  WriteAll(Local("two"), "second");
  ASSERT_TRUE(store_->Put("a/b/one.bin", Local("one")).ok());
  ASSERT_TRUE(store_->Put("a/two.bin", Local("two")).ok());
  ASSERT_TRUE(store_->Put("ab/three.bin", Local("two")).ok());

  ASSERT_TRUE(store_->Get("a/b/one.bin", Local("got")).ok());
  EXPECT_EQ(ReadAll(Local("got")), "first object");
  absl::StatusOr<ObjectInfo> head = store_->Head("a/two.bin");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->size, 6);
  EXPECT_TRUE(*store_->Exists("a/two.bin"));

  // A prefix is text, not a folder: "a" matches "ab/...", "a/" does not.
  absl::StatusOr<std::vector<ObjectInfo>> listed = store_->List("a/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].key, "a/b/one.bin");
  EXPECT_EQ((*listed)[0].size, 12);
  EXPECT_EQ((*listed)[1].key, "a/two.bin");
  EXPECT_EQ(store_->List("a")->size(), 3u);
  EXPECT_EQ(store_->List("a/b/o")->size(), 1u);
  EXPECT_TRUE(store_->List("zzz/")->empty());

  // Put replaces.
  ASSERT_TRUE(store_->Put("a/two.bin", Local("one")).ok());
  ASSERT_TRUE(store_->Get("a/two.bin", Local("got")).ok());
  EXPECT_EQ(ReadAll(Local("got")), "first object");

  ASSERT_TRUE(store_->Delete("a/two.bin").ok());
  EXPECT_FALSE(*store_->Exists("a/two.bin"));
  EXPECT_EQ(store_->List("a/")->size(), 1u);
  EXPECT_TRUE(store_->Delete("a/two.bin").ok());  // already gone: fine
}

TEST_P(ObjectStoreConformance, MissingKeyIsNotFoundAndLeavesNoFile) {
  EXPECT_TRUE(absl::IsNotFound(store_->Head("no/such.bin").status()));
  EXPECT_FALSE(*store_->Exists("no/such.bin"));
  const absl::Status got = store_->Get("no/such.bin", Local("target"));
  EXPECT_TRUE(absl::IsNotFound(got)) << got;
  EXPECT_TRUE(FilesIn(local_).empty());
}

TEST_P(ObjectStoreConformance, LargeFileRoundTrips) {
  // 24 MiB, not a repeating pattern, streamed both ways.
  std::string bytes(size_t{24} << 20, '\0');
  uint64_t x = 88172645463325252ull;
  for (char& c : bytes) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x & 0xFF);
  }
  WriteAll(Local("big"), bytes);
  ASSERT_TRUE(store_->Put("big/object.bin", Local("big")).ok());
  EXPECT_EQ(store_->Head("big/object.bin")->size, static_cast<int64_t>(bytes.size()));
  ASSERT_TRUE(store_->Get("big/object.bin", Local("big.copy")).ok());
  EXPECT_EQ(Sha256Hex(ReadAll(Local("big.copy"))), Sha256Hex(bytes));
}

TEST_P(ObjectStoreConformance, OddKeysAreRefused) {
  WriteAll(Local("f"), "x");
  for (const std::string& key : std::vector<std::string>{"", "/a", "a//b", "a/../b", "..", "a/./b", "a b", "a\\b", "a?b",
                                "caf\xc3\xa9", "a/", "x.bin.tmp.12.3", std::string(1100, 'a')}) {
    SCOPED_TRACE(key);
    EXPECT_TRUE(absl::IsInvalidArgument(store_->Put(key, Local("f")))) << key;
    EXPECT_TRUE(absl::IsInvalidArgument(store_->Get(key, Local("g"))));
    EXPECT_TRUE(absl::IsInvalidArgument(store_->Head(key).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(store_->Delete(key)));
  }
  EXPECT_TRUE(absl::IsInvalidArgument(store_->List("../").status()));
  EXPECT_TRUE(ValidateObjectKey("models/0a1b.pt").ok());
  EXPECT_TRUE(ValidateObjectKey("reports/job-1/report.html").ok());
}

INSTANTIATE_TEST_SUITE_P(Backends, ObjectStoreConformance, ::testing::Values("dir", "s3"),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------------------
// Settings.

TEST(ObjectStoreSettingsTest, ParsesS3Urls) {
  absl::StatusOr<S3Url> url = ParseS3Url("s3://my-bucket/some/prefix/");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->bucket, "my-bucket");
  EXPECT_EQ(url->prefix, "some/prefix");
  EXPECT_EQ(ParseS3Url("s3://bucket")->prefix, "");
  for (const char* bad : {"s3:/bucket", "http://bucket/x", "s3://", "s3:///prefix", "s3://Bucket",
                          "s3://ab", "s3://-bucket", "s3://bucket/a//b", "s3://bucket/../x"}) {
    const absl::Status s = ParseS3Url(bad).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
  }
  EXPECT_TRUE(absl::StrContains(ParseS3Url("s3://").status().message(), "bucket"));
}

TEST(ObjectStoreSettingsTest, OpenNamesTheSettings) {
  absl::StatusOr<std::shared_ptr<ObjectStore>> s = OpenObjectStore("s3://bucket/p", "", "");
  EXPECT_TRUE(absl::IsInvalidArgument(s.status()));
  EXPECT_TRUE(absl::StrContains(s.status().message(), "s3_endpoint")) << s.status();
  s = OpenObjectStore("s3://bucket/p", "ftp://host", "us-east-1");
  EXPECT_TRUE(absl::StrContains(s.status().message(), "s3_endpoint")) << s.status();
  s = OpenObjectStore("s3://B/p", "http://127.0.0.1:1", "us-east-1");
  EXPECT_TRUE(absl::StrContains(s.status().message(), "artifact_store")) << s.status();
  s = OpenObjectStore("gs://bucket", "", "");
  EXPECT_TRUE(absl::IsInvalidArgument(s.status()));
  s = OpenObjectStore("s3://bucket/p", "http://127.0.0.1:1", "US East");
  EXPECT_TRUE(absl::StrContains(s.status().message(), "s3_region")) << s.status();
  const std::string dir = FreshTempRoot("object_store_open") + "/shared/volume";
  s = OpenObjectStore(dir, "", "");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(fs::is_directory(dir));
  S3Options half;
  half.endpoint = "http://127.0.0.1:1";
  half.bucket = "bucket";
  half.access_key_id = "AKID";
  EXPECT_TRUE(absl::IsInvalidArgument(MakeS3ObjectStore(half).status()));
}

// ---------------------------------------------------------------------------
// SigV4: libcurl's signature against a plain definitional signer that is
// itself checked against AWS's published example.

std::string RawSha256(const std::string& bytes) {
  Sha256 h;
  h.Update(bytes);
  const auto d = h.Digest();
  return std::string(d.begin(), d.end());
}

std::string HmacSha256(std::string key, const std::string& message) {
  if (key.size() > 64) key = RawSha256(key);
  key.resize(64, '\0');
  std::string ipad(64, '\0'), opad(64, '\0');
  for (int i = 0; i < 64; ++i) {
    ipad[i] = static_cast<char>(key[i] ^ 0x36);
    opad[i] = static_cast<char>(key[i] ^ 0x5c);
  }
  return RawSha256(opad + RawSha256(ipad + message));
}

std::string Hex(const std::string& raw) {
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// AWS Signature Version 4 for S3, as the AWS documentation defines it:
// canonical request, string to sign, derived key. `headers`: lowercase name
// -> value, all of them signed.
std::string ReferenceAuthorization(const std::string& method, const std::string& uri,
                                   const std::string& query,
                                   const std::map<std::string, std::string>& headers,
                                   const std::string& payload_hash, const std::string& key_id,
                                   const std::string& secret, const std::string& amz_date,
                                   const std::string& region) {
  std::string canonical_headers, signed_headers;
  for (const auto& [name, value] : headers) {
    absl::StrAppend(&canonical_headers, name, ":", absl::StripAsciiWhitespace(value), "\n");
    absl::StrAppend(&signed_headers, signed_headers.empty() ? "" : ";", name);
  }
  const std::string canonical = absl::StrCat(method, "\n", uri, "\n", query, "\n",
                                             canonical_headers, "\n", signed_headers, "\n",
                                             payload_hash);
  const std::string day = amz_date.substr(0, 8);
  const std::string scope = absl::StrCat(day, "/", region, "/s3/aws4_request");
  const std::string to_sign = absl::StrCat("AWS4-HMAC-SHA256\n", amz_date, "\n", scope, "\n",
                                           Sha256Hex(canonical));
  std::string k = HmacSha256("AWS4" + secret, day);
  k = HmacSha256(k, region);
  k = HmacSha256(k, "s3");
  k = HmacSha256(k, "aws4_request");
  return absl::StrCat("AWS4-HMAC-SHA256 Credential=", key_id, "/", scope,
                      ", SignedHeaders=", signed_headers,
                      ", Signature=", Hex(HmacSha256(k, to_sign)));
}

TEST(S3SignatureTest, ReferenceSignerMatchesAwsPublishedExample) {
  // "GET Object" of the AWS S3 SigV4 documentation (examplebucket, 2013-05-24).
  const std::string empty = Sha256Hex("");
  const std::string auth = ReferenceAuthorization(
      "GET", "/test.txt", "",
      {{"host", "examplebucket.s3.amazonaws.com"},
       {"range", "bytes=0-9"},
       {"x-amz-content-sha256", empty},
       {"x-amz-date", "20130524T000000Z"}},
      empty, "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      "20130524T000000Z", "us-east-1");
  EXPECT_EQ(auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

std::map<std::string, std::string> HeaderMap(const std::string& head, std::string* request_line) {
  std::map<std::string, std::string> out;
  bool first = true;
  for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
    if (first) {
      *request_line = std::string(line);
      first = false;
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    out[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return out;
}

TEST(S3SignatureTest, LibcurlSignsAsSigV4Defines) {
  CannedHttpServer server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  S3Options o;
  o.endpoint = server.endpoint();
  o.region = "eu-west-3";
  o.bucket = "bucket-1";
  o.prefix = "mia/prod";
  o.access_key_id = "AKIDEXAMPLE";
  o.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  o.session_token = "session=token/1";
  absl::StatusOr<std::unique_ptr<ObjectStore>> store = MakeS3ObjectStore(o);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string local = FreshTempRoot("sigv4") + "/f";
  WriteAll(local, "payload bytes");
  ASSERT_TRUE((*store)->Put("models/k-1.pt", local).ok());
  ASSERT_TRUE((*store)->Delete("models/k-1.pt").ok());
  ASSERT_TRUE((*store)->List("models/").ok());
  const std::vector<std::string> heads = server.heads();
  ASSERT_EQ(heads.size(), 3u);
  const std::string uris[] = {"/bucket-1/mia/prod/models/k-1.pt",
                              "/bucket-1/mia/prod/models/k-1.pt", "/bucket-1"};
  const std::string queries[] = {"", "", "list-type=2&prefix=mia%2Fprod%2Fmodels%2F"};
  const std::string methods[] = {"PUT", "DELETE", "GET"};
  for (size_t i = 0; i < heads.size(); ++i) {
    SCOPED_TRACE(heads[i]);
    std::string request_line;
    std::map<std::string, std::string> h = HeaderMap(heads[i], &request_line);
    const std::string target = queries[i].empty() ? uris[i] : uris[i] + "?" + queries[i];
    EXPECT_EQ(request_line, absl::StrCat(methods[i], " ", target, " HTTP/1.1"));
    EXPECT_EQ(h["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
    EXPECT_EQ(h["x-amz-security-token"], o.session_token);
    ASSERT_EQ(h["x-amz-date"].size(), 16u);
    const std::string expected = ReferenceAuthorization(
        methods[i], uris[i], queries[i],
        {{"host", h["host"]},
         {"x-amz-content-sha256", "UNSIGNED-PAYLOAD"},
         {"x-amz-date", h["x-amz-date"]},
         {"x-amz-security-token", o.session_token}},
        "UNSIGNED-PAYLOAD", o.access_key_id, o.secret_access_key, h["x-amz-date"], o.region);
    EXPECT_EQ(h["authorization"], expected);
  }
}

// ---------------------------------------------------------------------------
// Failures.

TEST(S3FailureTest, ServerDownIsUnavailableAndNamesNoCredential) {
  // A port nobody listens on.
  int port = 0;
  {
    CannedHttpServer probe("");
    port = std::stoi(probe.endpoint().substr(std::string("http://127.0.0.1:").size()));
  }
  S3Options o;
  o.endpoint = absl::StrCat("http://127.0.0.1:", port);
  o.bucket = "mia-test";
  o.access_key_id = "AKIDNEVERSHOWN";
  o.secret_access_key = "SECRETNEVERSHOWN";
  o.session_token = "TOKENNEVERSHOWN";
  o.max_attempts = 2;
  o.initial_backoff_ms = 10;
  absl::StatusOr<std::unique_ptr<ObjectStore>> store = MakeS3ObjectStore(o);
  ASSERT_TRUE(store.ok());
  const std::string local = FreshTempRoot("s3_down") + "/f";
  WriteAll(local, "x");
  for (const absl::Status& s :
       {(*store)->Put("uploads/abc", local), (*store)->Get("uploads/abc", local + ".got"),
        (*store)->Head("uploads/abc").status(), (*store)->List("uploads/").status()}) {
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
    for (const char* secret : {"AKIDNEVERSHOWN", "SECRETNEVERSHOWN", "TOKENNEVERSHOWN"}) {
      EXPECT_FALSE(absl::StrContains(s.message(), secret)) << s;
    }
  }
  EXPECT_TRUE(absl::StrContains((*store)->Put("uploads/abc", local).message(), "uploads/abc"));
}

// Options for bucket mia-test at a canned server: `attempts` tries, 1 ms
// apart.
S3Options CannedOptions(const CannedHttpServer& server, int attempts = 4) {
  S3Options o;
  o.endpoint = server.endpoint();
  o.bucket = "mia-test";
  o.max_attempts = attempts;
  o.initial_backoff_ms = 1;
  return o;
}

TEST(S3FailureTest, InterruptedDownloadLeavesNoFile) {
  // The body stops after 10 of the 1000 bytes announced.
  CannedHttpServer server(
      "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n0123456789");
  const S3Options o = CannedOptions(server, 3);
  absl::StatusOr<std::unique_ptr<ObjectStore>> store = MakeS3ObjectStore(o);
  ASSERT_TRUE(store.ok());
  const std::string dir = FreshTempRoot("s3_interrupted");
  const absl::Status got = (*store)->Get("models/k.pt", dir + "/k.pt");
  EXPECT_TRUE(absl::IsUnavailable(got)) << got;
  EXPECT_EQ(server.heads().size(), 3u);  // retried
  EXPECT_TRUE(FilesIn(dir).empty());
}

TEST(S3FailureTest, HttpErrorsMapToCodes) {
  {
    CannedHttpServer server(
        "HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    const S3Options o = CannedOptions(server, 2);
    const absl::Status s = (*MakeS3ObjectStore(o))->Head("a/b").status();
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "HTTP 503")) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "s3://mia-test/a/b")) << s;
    EXPECT_EQ(server.heads().size(), 2u);
  }
  {
    const std::string body =
        "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>x</Message></Error>";
    CannedHttpServer server(absl::StrCat("HTTP/1.1 404 Not Found\r\nContent-Length: ", body.size(),
                                         "\r\nConnection: close\r\n\r\n", body));
    const S3Options o = CannedOptions(server);
    const absl::Status s = (*MakeS3ObjectStore(o))->Get("a/b", FreshTempRoot("s3_404") + "/x");
    EXPECT_TRUE(absl::IsNotFound(s)) << s;
    EXPECT_EQ(server.heads().size(), 1u);  // not retried
  }
}

TEST(S3FixtureTest, UnknownAccessKeyIsPermissionDenied) {
  // s3rver checks the access key id of a SigV4 request (not its signature,
  // which S3SignatureTest covers), so a wrong key id is refused.
  const std::optional<std::string> endpoint = testing_util::S3FixtureEndpoint();
  if (!endpoint.has_value()) GTEST_SKIP() << "the s3rver fixture is not running";
  const std::string local = FreshTempRoot("s3_wrong_key") + "/f";
  WriteAll(local, "x");
  S3Options good = testing_util::FixtureOptions(*endpoint, testing_util::UniquePrefix("auth"));
  ASSERT_TRUE((*MakeS3ObjectStore(good))->Put("k", local).ok());
  S3Options bad = good;
  bad.access_key_id = "NOTAKEYOFS3RVER";
  bad.secret_access_key = "SECRETNEVERSHOWN";
  const absl::Status s = (*MakeS3ObjectStore(bad))->Put("k", local);
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "HTTP 403 (InvalidAccessKeyId)")) << s;
  EXPECT_FALSE(absl::StrContains(s.message(), "SECRETNEVERSHOWN")) << s;
  EXPECT_FALSE(absl::StrContains(s.message(), "NOTAKEYOFS3RVER")) << s;
}

}  // namespace
}  // namespace mia::storage
