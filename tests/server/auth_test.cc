// server/auth.h on its own: the tokens file (validation, reload), JWTs
// (HS256 and RS256 accepted; expired, not yet valid, wrong issuer, wrong
// audience, wrong signature, alg none, algorithm confusion and unknown tokens
// refused), mTLS identities and roles. Keys and tokens are made here with
// OpenSSL, independently of libjwt, which the server verifies with.
#include "server/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/common/sha256.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/ostream_sink.h"
#include "tests/server/jwt_util.h"

namespace mia::server {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

using testing::B64;
using testing::Hs256;
using testing::RsaKey;

const RsaKey& TestRsa() {
  static const RsaKey* key = new RsaKey();
  return *key;
}
const RsaKey& OtherRsa() {
  static const RsaKey* key = new RsaKey();
  return *key;
}

constexpr char kSecret[] = "0123456789abcdef0123456789abcdef-hs256-test-secret";

int64_t Now() { return absl::ToUnixSeconds(absl::Now()); }

Json Claims(const std::string& tenant = "team-a", const std::string& role = "submitter") {
  return Json{{"iss", "https://issuer.example"}, {"aud", "mia"},     {"exp", Now() + 600},
              {"nbf", Now() - 10},               {"tenant", tenant}, {"role", role},
              {"sub", "alice"}};
}

std::string SignedHs(const Json& claims, const std::string& secret = kSecret,
                     const Json& header = Json{{"alg", "HS256"}, {"typ", "JWT"}}) {
  const std::string input = B64(header.dump()) + "." + B64(claims.dump());
  return input + "." + B64(Hs256(secret, input));
}

std::string SignedRs(const Json& claims, const RsaKey& key = TestRsa(),
                     const Json& header = Json{{"alg", "RS256"}, {"typ", "JWT"}}) {
  const std::string input = B64(header.dump()) + "." + B64(claims.dump());
  return input + "." + B64(key.Sign(input));
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            absl::StrCat("mia_auth_test_", getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    logger_ = std::make_shared<spdlog::logger>(
        "auth", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  std::unique_ptr<Authenticator> Make(AuthOptions options) {
    absl::StatusOr<std::unique_ptr<Authenticator>> auth =
        Authenticator::Create(std::move(options), logger_);
    EXPECT_TRUE(auth.ok()) << auth.status();
    return auth.ok() ? *std::move(auth) : nullptr;
  }

  std::string dir_;
  std::ostringstream log_;
  std::shared_ptr<spdlog::logger> logger_;
};

std::string TokensYaml() {
  return absl::StrCat("tokens:\n",
                      "  - {sha256: ", Sha256Hex("token-a-submit"), ", tenant: team-a, role: submitter}\n",
                      "  - {sha256: ", Sha256Hex("token-a-read"), ", tenant: team-a, role: reader}\n",
                      "  - {sha256: ", Sha256Hex("token-b"), ", tenant: team-b, role: submitter}\n",
                      "  - {sha256: ", Sha256Hex("token-admin"), ", tenant: ops, role: admin}\n",
                      "tenants:\n",
                      "  team-a: {max_queued_audits: 2, max_upload_bytes: 1000}\n",
                      "  team-b: {}\n",
                      "mtls:\n",
                      "  - {identity: client-b.example, tenant: team-b, role: reader}\n");
}

TEST_F(AuthTest, TokensFileNamesTenantRoleAndQuota) {
  AuthOptions options;
  options.tokens_file = Write("tokens.yaml", TokensYaml());
  auto auth = Make(options);
  ASSERT_NE(auth, nullptr);
  absl::StatusOr<Caller> a = auth->Authorize("Bearer token-a-submit", {}, Permission::kWrite);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->restricted);
  EXPECT_EQ(a->tenant, "team-a");
  EXPECT_EQ(a->role, Role::kSubmitter);
  EXPECT_EQ(a->method, "token");
  EXPECT_EQ(a->quota.max_queued_audits, 2);
  EXPECT_EQ(a->quota.max_upload_bytes, 1000);
  EXPECT_FALSE(a->quota.max_running_audits.has_value());
  EXPECT_FALSE(a->SeesAllTenants());
  EXPECT_TRUE(a->CanSee("team-a"));
  EXPECT_FALSE(a->CanSee("team-b"));
  EXPECT_FALSE(a->CanSee(""));
  // The scheme is case-insensitive.
  EXPECT_TRUE(auth->Authorize("bearer token-b", {}, Permission::kWrite).ok());

  absl::StatusOr<Caller> admin = auth->Authorize("Bearer token-admin", {}, Permission::kWrite);
  ASSERT_TRUE(admin.ok());
  EXPECT_TRUE(admin->SeesAllTenants());
  EXPECT_TRUE(admin->CanSee("team-b"));

  // A reader reads, and is refused every write.
  EXPECT_TRUE(auth->Authorize("Bearer token-a-read", {}, Permission::kRead).ok());
  absl::StatusOr<Caller> denied = auth->Authorize("Bearer token-a-read", {}, Permission::kWrite);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);

  // Nothing, an unknown token, another scheme: UNAUTHENTICATED, never echoing it.
  for (const char* header : {"", "Bearer nope-not-a-token", "Basic dXNlcjpwYXNz", "Bearer ",
                             "token-a-submit"}) {
    absl::StatusOr<Caller> refused = auth->Authorize(header, {}, Permission::kRead);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << header;
    EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr("nope-not-a-token")));
    EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr("dXNlcjpwYXNz")));
  }
  // A token that differs in one character.
  EXPECT_EQ(auth->Authorize("Bearer token-a-submiT", {}, Permission::kRead).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(AuthTest, MtlsIdentityMapsToTenantOnlyWithoutToken) {
  AuthOptions options;
  options.tokens_file = Write("tokens.yaml", TokensYaml());
  auto auth = Make(options);
  ASSERT_NE(auth, nullptr);
  absl::StatusOr<Caller> b =
      auth->Authorize("", {"CN-not-listed", "client-b.example"}, Permission::kRead);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->tenant, "team-b");
  EXPECT_EQ(b->role, Role::kReader);
  EXPECT_EQ(b->method, "mtls");
  EXPECT_EQ(auth->Authorize("", {"client-b.example"}, Permission::kWrite).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(auth->Authorize("", {"other.example"}, Permission::kRead).status().code(),
            absl::StatusCode::kUnauthenticated);
  // A token decides when one is sent, even beside a listed certificate.
  EXPECT_EQ(auth->Authorize("Bearer bad", {"client-b.example"}, Permission::kRead).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(AuthTest, BadTokensFilesNameEntryAndFieldNeverTheHash) {
  const std::string hash = Sha256Hex("x");
  const struct {
    std::string yaml;
    std::string expect;
  } cases[] = {
      {"tokens: [{sha256: abc, tenant: a, role: reader}]", "tokens[0].sha256: must be 64 hex"},
      {absl::StrCat("tokens: [{sha256: ", hash, ", tenant: a, role: owner}]"),
       "tokens[0].role: must be reader, submitter or admin"},
      {absl::StrCat("tokens: [{sha256: ", hash, ", role: reader}]"), "tokens[0].tenant: required"},
      {absl::StrCat("tokens: [{sha256: ", hash, ", tenant: 'a b', role: reader}]"),
       "tokens[0].tenant: 1-63"},
      {absl::StrCat("tokens: [{sha256: ", hash, ", tenant: a, role: reader, extra: 1}]"),
       "tokens[0].extra: unknown key"},
      {absl::StrCat("tokens:\n  - {sha256: ", hash, ", tenant: a, role: reader}\n  - {sha256: ",
                    hash, ", tenant: b, role: admin}\n"),
       "tokens[1].sha256: the same token as tokens[0]"},
      {"tenants: {a: {max_queued_audits: -1}}", "tenants.a.max_queued_audits: must be an integer"},
      {"tenants: {a: {max_jobs: 1}}", "tenants.a.max_jobs: unknown key"},
      {"mtls: [{identity: x, tenant: a}]", "mtls[0].role: required"},
      {"users: []", "users: unknown key"},
      {"tokens: {a: 1}", "tokens: must be a list"},
      {"- 1\n- 2\n", "must be a mapping"},
      {"tokens: [unclosed", "not valid YAML at line 1"},
  };
  for (const auto& c : cases) {
    const std::string path = Write("bad.yaml", c.yaml);
    AuthOptions options;
    options.tokens_file = path;
    absl::StatusOr<std::unique_ptr<Authenticator>> auth = Authenticator::Create(options, logger_);
    ASSERT_FALSE(auth.ok()) << c.yaml;
    EXPECT_EQ(auth.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(auth.status().message()), HasSubstr(c.expect)) << c.yaml;
    EXPECT_THAT(std::string(auth.status().message()), HasSubstr(path));
    EXPECT_THAT(std::string(auth.status().message()), Not(HasSubstr(hash)));
  }
  AuthOptions missing;
  missing.tokens_file = dir_ + "/missing.yaml";
  EXPECT_EQ(Authenticator::Create(missing, logger_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Authenticator::Create(AuthOptions(), logger_).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Upper-case hex is the same hash.
  AuthOptions upper;
  upper.tokens_file = Write(
      "upper.yaml", absl::StrCat("tokens: [{sha256: ", absl::AsciiStrToUpper(Sha256Hex("tok")),
                                 ", tenant: a, role: reader}]"));
  auto auth = Make(upper);
  ASSERT_NE(auth, nullptr);
  EXPECT_TRUE(auth->Authorize("Bearer tok", {}, Permission::kRead).ok());
}

TEST_F(AuthTest, TokensFileReloadsAndKeepsTheLastGoodTable) {
  const std::string path = Write(
      "tokens.yaml",
      absl::StrCat("tokens: [{sha256: ", Sha256Hex("old"), ", tenant: a, role: reader}]\n"));
  AuthOptions options;
  options.tokens_file = path;
  options.reload_check_interval = absl::ZeroDuration();
  auto auth = Make(options);
  ASSERT_NE(auth, nullptr);
  EXPECT_TRUE(auth->Authorize("Bearer old", {}, Permission::kRead).ok());

  // Replaced (a new inode, as a Kubernetes Secret update or `mv` does).
  const std::string next = Write("next.yaml", absl::StrCat("tokens: [{sha256: ", Sha256Hex("new"),
                                                           ", tenant: a, role: admin}]\n"));
  fs::rename(next, path);
  absl::StatusOr<Caller> now = auth->Authorize("Bearer new", {}, Permission::kWrite);
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(now->role, Role::kAdmin);
  EXPECT_EQ(auth->Authorize("Bearer old", {}, Permission::kRead).status().code(),
            absl::StatusCode::kUnauthenticated);

  // A broken file is logged and changes nothing.
  const std::string broken = Write(
      "broken.yaml", absl::StrCat("tokens: [{sha256: ", Sha256Hex("other"), ", tenant: a}]\n"));
  fs::rename(broken, path);
  EXPECT_TRUE(auth->Authorize("Bearer new", {}, Permission::kRead).ok());
  EXPECT_EQ(auth->Authorize("Bearer other", {}, Permission::kRead).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(log_.str(), HasSubstr("auth tokens file not reloaded"));
  EXPECT_THAT(log_.str(), HasSubstr("tokens[0].role: required"));

  // Edited in place (same inode, another size).
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      << absl::StrCat("tokens: [{sha256: ", Sha256Hex("edited-in-place"),
                      ", tenant: b, role: reader}]\n");
  auth->ReloadNow();
  absl::StatusOr<Caller> edited = auth->Authorize("Bearer edited-in-place", {}, Permission::kRead);
  ASSERT_TRUE(edited.ok()) << edited.status();
  EXPECT_EQ(edited->tenant, "b");
  for (const char* token : {"old", "new", "other", "edited-in-place"}) {
    EXPECT_THAT(log_.str(), Not(HasSubstr(Sha256Hex(token))));
  }
}

TEST_F(AuthTest, Hs256AndRs256JwtsAreAccepted) {
  {
    AuthOptions options;
    options.jwt_keys = Write("secret", std::string(kSecret) + "\n");
    options.jwt_issuer = "https://issuer.example";
    options.jwt_audience = "mia";
    auto auth = Make(options);
    ASSERT_NE(auth, nullptr);
    absl::StatusOr<Caller> c =
        auth->Authorize("Bearer " + SignedHs(Claims("team-a", "reader")), {}, Permission::kRead);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->tenant, "team-a");
    EXPECT_EQ(c->role, Role::kReader);
    EXPECT_EQ(c->method, "jwt");
  }
  {
    AuthOptions options;
    options.jwt_keys = Write("key.pem", TestRsa().PublicPem());
    options.jwt_audience = "mia";
    auto auth = Make(options);
    ASSERT_NE(auth, nullptr);
    Json claims = Claims("team-b", "admin");
    claims["aud"] = Json::array({"other", "mia"});  // a list naming this server
    absl::StatusOr<Caller> c = auth->Authorize("Bearer " + SignedRs(claims), {}, Permission::kWrite);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->tenant, "team-b");
    EXPECT_EQ(c->role, Role::kAdmin);
  }
  {
    // A JWKS with both kinds, chosen by kid.
    const auto [n, e] = TestRsa().Jwk();
    const Json jwks = {{"keys", Json::array({Json{{"kty", "RSA"}, {"kid", "rsa-1"}, {"n", n},
                                                  {"e", e}, {"alg", "RS256"}},
                                             Json{{"kty", "oct"}, {"kid", "hmac-1"},
                                                  {"k", B64(kSecret)}}})}};
    AuthOptions options;
    options.jwt_keys = Write("jwks.json", jwks.dump());
    auto auth = Make(options);
    ASSERT_NE(auth, nullptr);
    EXPECT_TRUE(auth->Authorize("Bearer " + SignedRs(Claims(), TestRsa(),
                                                     {{"alg", "RS256"}, {"kid", "rsa-1"}}),
                                {}, Permission::kRead)
                    .ok());
    EXPECT_TRUE(auth->Authorize("Bearer " + SignedHs(Claims(), kSecret,
                                                     {{"alg", "HS256"}, {"kid", "hmac-1"}}),
                                {}, Permission::kRead)
                    .ok());
    // Signed by another RSA key under the same kid.
    EXPECT_EQ(auth->Authorize("Bearer " + SignedRs(Claims(), OtherRsa(),
                                                   {{"alg", "RS256"}, {"kid", "rsa-1"}}),
                              {}, Permission::kRead)
                  .status()
                  .code(),
              absl::StatusCode::kUnauthenticated);
  }
}

TEST_F(AuthTest, BadJwtsAreUnauthenticated) {
  AuthOptions hs;
  hs.jwt_keys = Write("secret", kSecret);
  hs.jwt_issuer = "https://issuer.example";
  hs.jwt_audience = "mia";
  auto hs_auth = Make(hs);
  AuthOptions rs = hs;
  rs.jwt_keys = Write("key.pem", TestRsa().PublicPem());
  auto rs_auth = Make(rs);
  ASSERT_NE(hs_auth, nullptr);
  ASSERT_NE(rs_auth, nullptr);

  const auto refused = [](Authenticator* auth, const std::string& token, const std::string& why) {
    absl::StatusOr<Caller> c = auth->Authorize("Bearer " + token, {}, Permission::kRead);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated) << why;
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(why));
    // The message never holds the token or its signature.
    const std::string signature = token.substr(token.rfind('.') + 1);
    if (!signature.empty()) {
      EXPECT_THAT(std::string(c.status().message()), Not(HasSubstr(signature)));
    }
  };
  Json expired = Claims();
  expired["exp"] = Now() - 3600;
  refused(hs_auth.get(), SignedHs(expired), "expired");
  Json later = Claims();
  later["nbf"] = Now() + 3600;
  refused(hs_auth.get(), SignedHs(later), "not valid yet");
  Json no_exp = Claims();
  no_exp.erase("exp");
  refused(hs_auth.get(), SignedHs(no_exp), "no exp");
  Json wrong_aud = Claims();
  wrong_aud["aud"] = "someone-else";
  refused(hs_auth.get(), SignedHs(wrong_aud), "audience");
  Json wrong_iss = Claims();
  wrong_iss["iss"] = "https://evil.example";
  refused(hs_auth.get(), SignedHs(wrong_iss), "issuer");
  refused(hs_auth.get(), SignedHs(Claims(), std::string(kSecret) + "x"), "signature");
  refused(rs_auth.get(), SignedRs(Claims(), OtherRsa()), "signature");
  Json no_tenant = Claims();
  no_tenant.erase("tenant");
  refused(hs_auth.get(), SignedHs(no_tenant), "tenant claim");
  Json bad_role = Claims();
  bad_role["role"] = "root";
  refused(hs_auth.get(), SignedHs(bad_role), "role claim");

  // Unsigned: alg none, with or without a signature part.
  const std::string none_input =
      B64(Json{{"alg", "none"}, {"typ", "JWT"}}.dump()) + "." + B64(Claims().dump());
  refused(hs_auth.get(), none_input + ".", "alg none");
  refused(rs_auth.get(), none_input + "." + B64("x"), "alg none");
  // Tampered payload, original signature.
  const std::string good = SignedHs(Claims("team-a", "reader"));
  const std::string tampered = B64(Json{{"alg", "HS256"}, {"typ", "JWT"}}.dump()) + "." +
                               B64(Claims("team-a", "admin").dump()) +
                               good.substr(good.rfind('.'));
  refused(hs_auth.get(), tampered, "signature");
  // Algorithm confusion: HS256 with the server's RSA public key as the secret.
  refused(rs_auth.get(), SignedHs(Claims(), TestRsa().PublicPem()), "no HS256 key");
  // And an RS256 token where only a secret is configured.
  refused(hs_auth.get(), SignedRs(Claims()), "no RS256 key");
  refused(hs_auth.get(), "not.a.jwt", "not base64url JSON");
}

TEST_F(AuthTest, BadJwtKeyFilesAreRefused) {
  const struct {
    std::string text;
    std::string expect;
  } cases[] = {
      {"short", "at least 32 bytes"},
      {"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a PEM public key"},
      {"{\"keys\": [{\"kty\": \"EC\"}]}", "keys[0].kty: must be RSA"},
      {"{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2hvcnQ\"}]}", "keys[0].k: the secret must be"},
      {"{\"keys\": [{\"kty\": \"RSA\", \"alg\": \"HS256\", \"n\": \"AQAB\", \"e\": \"AQAB\"}]}",
       "keys[0].alg: an RSA key must be RS256"},
      {"{\"nokeys\": 1}", "keys: required"},
  };
  for (const auto& c : cases) {
    AuthOptions options;
    options.jwt_keys = Write("keys", c.text);
    absl::StatusOr<std::unique_ptr<Authenticator>> auth = Authenticator::Create(options, logger_);
    ASSERT_FALSE(auth.ok()) << c.text;
    EXPECT_THAT(std::string(auth.status().message()), HasSubstr(c.expect)) << c.text;
  }
  AuthOptions issuer_only;
  issuer_only.tokens_file = Write("t.yaml", "");
  issuer_only.jwt_issuer = "x";
  EXPECT_FALSE(Authenticator::Create(issuer_only, logger_).ok());
}

TEST(BearerTokenTest, ParsesTheScheme) {
  EXPECT_EQ(BearerToken("Bearer abc").value_or("-"), "abc");
  EXPECT_EQ(BearerToken("  bearer   abc ").value_or("-"), "abc");
  EXPECT_FALSE(BearerToken("Basic abc").has_value());
  EXPECT_FALSE(BearerToken("Bearer").has_value());
  EXPECT_FALSE(BearerToken("Bearer    ").has_value());
  EXPECT_FALSE(BearerToken("").has_value());
}

}  // namespace
}  // namespace mia::server
