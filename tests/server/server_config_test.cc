// server/server_config: flags > MIA_* environment > YAML file > defaults,
// key by key; unknown file keys and bad values are errors naming their source.
#include "server/server_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace mia::server {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string WriteFile(const std::string& name, const std::string& text) {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const fs::path dir = fs::path(env != nullptr ? env : ::testing::TempDir()) / "server_config_test";
  fs::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

TEST(ServerConfigTest, DefaultsWhenNothingIsSet) {
  absl::StatusOr<ServerConfig> config = LoadServerConfig({});
  ASSERT_TRUE(config.ok()) << config.status();
  const ServerConfig defaults;
  EXPECT_EQ(config->listen_address, defaults.listen_address);
  EXPECT_EQ(config->workers, defaults.workers);
  EXPECT_FALSE(config->enable_reflection);
  EXPECT_TRUE(config->config_file.empty());
}

TEST(ServerConfigTest, FlagsBeatEnvironmentBeatsFileBeatsDefaults) {
  const std::string file = WriteFile("precedence.yaml",
                                     "workers: 3\n"
                                     "queue_capacity: 30\n"
                                     "max_watchers: 300\n"
                                     "data_roots: [/a, /b]\n");
  ConfigSources sources;
  sources.flags = {{"config", file}, {"workers", "1"}};  // a flag at its default value still wins
  sources.env = {{"MIA_WORKERS", "2"},
                 {"MIA_QUEUE_CAPACITY", "20"},
                 {"PATH", "/usr/bin"},
                 {"MIA_TEST_TMPDIR", "/tmp"}};  // other MIA_ variables are not settings
  absl::StatusOr<ServerConfig> config = LoadServerConfig(sources);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->workers, 1);                                           // flag
  EXPECT_EQ(config->queue_capacity, 20);                                   // environment
  EXPECT_EQ(config->max_watchers, 300);                                    // file
  EXPECT_EQ(config->heartbeat_seconds, ServerConfig().heartbeat_seconds);  // default
  EXPECT_THAT(config->data_roots, ElementsAre("/a", "/b"));
  EXPECT_EQ(config->config_file, file);
}

TEST(ServerConfigTest, ConfigFileFromEnvironmentAndListsAsText) {
  const std::string file =
      WriteFile("env_file.yaml", "enable_reflection: true\nlog_level: debug\n");
  ConfigSources sources;
  sources.env = {{"MIA_CONFIG", file}, {"MIA_DATA_ROOTS", "/x, /y,"}};
  sources.flags = {{"log_level", "warn"}};
  absl::StatusOr<ServerConfig> config = LoadServerConfig(sources);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->enable_reflection);
  EXPECT_EQ(config->log_level, "warn");
  EXPECT_THAT(config->data_roots, ElementsAre("/x", "/y"));
}

TEST(ServerConfigTest, MemoryBudgetAndBundleLimits) {
  const ServerConfig defaults;
  EXPECT_EQ(defaults.memory_budget_bytes, 0);  // 0: from the machine or container
  EXPECT_EQ(defaults.max_bundle_array_bytes, int64_t{8} << 30);
  EXPECT_EQ(defaults.max_bundle_total_bytes, int64_t{16} << 30);
  const std::string file = WriteFile("memory.yaml", "max_bundle_total_bytes: 3000\n");
  ConfigSources sources;
  sources.flags = {{"config", file}, {"memory_budget_bytes", "19200000000"}};
  sources.env = {{"MIA_MAX_BUNDLE_ARRAY_BYTES", "1000"}};
  absl::StatusOr<ServerConfig> config = LoadServerConfig(sources);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->memory_budget_bytes, 19'200'000'000);
  EXPECT_EQ(config->max_bundle_array_bytes, 1000);
  EXPECT_EQ(config->max_bundle_total_bytes, 3000);

  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"memory_budget_bytes", "-1"}, {"max_bundle_array_bytes", "0"}}) {
    ConfigSources bad;
    bad.flags = {{key, value}};
    const absl::Status s = LoadServerConfig(bad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(s.message(), HasSubstr(key));
  }
}

TEST(ServerConfigTest, UnknownFileKeyIsAnError) {
  const std::string file = WriteFile("unknown.yaml", "workers: 2\nworkerz: 3\n");
  ConfigSources sources;
  sources.flags = {{"config", file}};
  absl::StatusOr<ServerConfig> config = LoadServerConfig(sources);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("unknown key 'workerz'"));
}

TEST(ServerConfigTest, BadValuesNameTheirSource) {
  ConfigSources env_source;
  env_source.env = {{"MIA_WORKERS", "many"}};
  absl::StatusOr<ServerConfig> config = LoadServerConfig(env_source);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("MIA_WORKERS"));

  ConfigSources flag_source;
  flag_source.flags = {{"enable_reflection", "maybe"}};
  config = LoadServerConfig(flag_source);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("--enable_reflection"));

  ConfigSources range;
  range.flags = {{"workers", "0"}};
  config = LoadServerConfig(range);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("workers"));

  ConfigSources missing;
  missing.flags = {{"config", "/nonexistent/mia.yaml"}};
  EXPECT_EQ(LoadServerConfig(missing).status().code(), absl::StatusCode::kNotFound);

  const std::string not_a_map = WriteFile("list.yaml", "- workers\n");
  ConfigSources list;
  list.flags = {{"config", not_a_map}};
  EXPECT_EQ(LoadServerConfig(list).status().code(), absl::StatusCode::kInvalidArgument);
}

// Stand-ins for PEM files: the loader checks that each file can be read and
// holds a PEM block of the right kind; gRPC parses them when the port opens.
constexpr char kCertPem[] = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
constexpr char kKeyPem[] = "-----BEGIN PRIVATE KEY-----\nMIGHfake\n-----END PRIVATE KEY-----\n";

TEST(ServerConfigTest, TlsIsOffByDefault) {
  absl::StatusOr<ServerConfig> config = LoadServerConfig({});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->tls_cert_file.empty());
  EXPECT_TRUE(config->tls_key_file.empty());
  EXPECT_TRUE(config->tls_client_ca_file.empty());
  EXPECT_EQ(TlsMode(*config), "off");
}

TEST(ServerConfigTest, TlsCertAndKeyBothOrNeither) {
  const std::string cert = WriteFile("both_cert.pem", kCertPem);
  const std::string key = WriteFile("both_key.pem", kKeyPem);

  ConfigSources cert_only;
  cert_only.flags = {{"tls_cert_file", cert}};
  absl::StatusOr<ServerConfig> config = LoadServerConfig(cert_only);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("tls_key_file: required with tls_cert_file"));

  ConfigSources key_only;
  key_only.env = {{"MIA_TLS_KEY_FILE", key}};
  config = LoadServerConfig(key_only);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("tls_cert_file: required with tls_key_file"));

  // A client CA alone is not mutual TLS: TLS needs the server's pair first.
  ConfigSources ca_only;
  ca_only.flags = {{"tls_client_ca_file", cert}};
  config = LoadServerConfig(ca_only);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("tls_client_ca_file: needs tls_cert_file"));

  // Both, from different sources (file and environment).
  const std::string file = WriteFile("tls.yaml", absl::StrCat("tls_cert_file: ", cert, "\n"));
  ConfigSources both;
  both.flags = {{"config", file}};
  both.env = {{"MIA_TLS_KEY_FILE", key}};
  config = LoadServerConfig(both);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tls_cert_file, cert);
  EXPECT_EQ(config->tls_key_file, key);
  EXPECT_EQ(TlsMode(*config), "tls");

  both.flags["tls_client_ca_file"] = cert;
  config = LoadServerConfig(both);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(TlsMode(*config), "mtls");
}

TEST(ServerConfigTest, TlsFileThatCannotBeReadIsNamed) {
  const std::string cert = WriteFile("named_cert.pem", kCertPem);
  const std::string key = WriteFile("named_key.pem", kKeyPem);
  const std::string missing = cert + ".missing";

  ConfigSources sources;
  sources.flags = {{"tls_cert_file", cert}, {"tls_key_file", missing}};
  absl::StatusOr<ServerConfig> config = LoadServerConfig(sources);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(),
              HasSubstr(absl::StrCat("tls_key_file: ", missing, ": cannot read it")));

  sources.flags = {{"tls_cert_file", missing}, {"tls_key_file", key}};
  config = LoadServerConfig(sources);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr(absl::StrCat("tls_cert_file: ", missing)));

  sources.flags = {{"tls_cert_file", cert}, {"tls_key_file", key}, {"tls_client_ca_file", missing}};
  config = LoadServerConfig(sources);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr(absl::StrCat("tls_client_ca_file: ", missing)));

  // A folder is not a file.
  sources.flags = {{"tls_cert_file", fs::path(cert).parent_path().string()}, {"tls_key_file", key}};
  config = LoadServerConfig(sources);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("tls_cert_file"));
}

TEST(ServerConfigTest, TlsFilesOfTheWrongKindAreRefusedWithoutTheirContents) {
  const std::string cert = WriteFile("kind_cert.pem", kCertPem);
  const std::string key = WriteFile("kind_key.pem", kKeyPem);
  ConfigSources swapped;
  swapped.flags = {{"tls_cert_file", key}, {"tls_key_file", cert}};
  absl::StatusOr<ServerConfig> config = LoadServerConfig(swapped);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("tls_cert_file: "));
  EXPECT_THAT(config.status().message(), HasSubstr("no PEM certificate"));
  EXPECT_THAT(config.status().message(), ::testing::Not(HasSubstr("MIGH")));

  const std::string encrypted =
      WriteFile("kind_encrypted.pem",
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nxx\n-----END ENCRYPTED PRIVATE KEY-----\n");
  ConfigSources enc;
  enc.flags = {{"tls_cert_file", cert}, {"tls_key_file", encrypted}};
  config = LoadServerConfig(enc);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("tls_key_file: "));
  EXPECT_THAT(config.status().message(), HasSubstr("encrypted"));
}

TEST(ServerConfigTest, JsonHasTheTlsPathsNotTheContents) {
  ServerConfig config;
  config.tls_cert_file = WriteFile("json_cert.pem", kCertPem);
  config.tls_key_file = WriteFile("json_key.pem", kKeyPem);
  const std::string json = ServerConfigJson(config);
  const nlohmann::json j = nlohmann::json::parse(json);
  EXPECT_EQ(j["tls_cert_file"], config.tls_cert_file);
  EXPECT_EQ(j["tls_key_file"], config.tls_key_file);
  EXPECT_EQ(j["tls_client_ca_file"], "");
  EXPECT_EQ(json.find("BEGIN"), std::string::npos);
}

// --store (MIA_STORE, `store:`): empty means SQLite under data_dir; a
// PostgreSQL URL is shown without its password, and one libpq cannot parse is
// refused without being echoed.
TEST(ServerConfigTest, StoreUrlIsLoggedWithoutItsPassword) {
  EXPECT_EQ(ServerConfig().store, "");
  ConfigSources sources;
  sources.env["MIA_STORE"] = "postgresql://mia:S3cret-pw@db.example:5432/mia?sslmode=require";
  absl::StatusOr<ServerConfig> config = LoadServerConfig(sources);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->store, sources.env["MIA_STORE"]);
  const std::string json = ServerConfigJson(*config);
  EXPECT_EQ(nlohmann::json::parse(json)["store"], "postgresql://mia@db.example:5432/mia");
  EXPECT_EQ(json.find("S3cret-pw"), std::string::npos);
  sources.env.clear();
  sources.flags["store"] = "postgres://mia:S3cret-pw@db/mia?no_such_parameter=1";
  config = LoadServerConfig(sources);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("store: not a valid PostgreSQL URL"));
  EXPECT_THAT(config.status().message(), ::testing::Not(HasSubstr("S3cret-pw")));
  sources.flags["store"] = "/var/lib/mia/other.db";  // an SQLite file: shown as is
  config = LoadServerConfig(sources);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(nlohmann::json::parse(ServerConfigJson(*config))["store"], "/var/lib/mia/other.db");
}

TEST(ServerConfigTest, ArtifactStoreUrlAndEndpointAreChecked) {
  ConfigSources sources;
  sources.flags = {{"artifact_store", "s3://mia-models/prod"},
                   {"s3_endpoint", "http://127.0.0.1:9000"}};
  sources.env = {{"MIA_S3_REGION", "eu-west-3"}};
  absl::StatusOr<ServerConfig> config = LoadServerConfig(sources);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->artifact_store, "s3://mia-models/prod");
  EXPECT_EQ(config->s3_region, "eu-west-3");
  EXPECT_EQ(ServerConfig().s3_region, "us-east-1");
  EXPECT_TRUE(ServerConfig().artifact_store.empty());  // data_dir only
  // A folder needs no endpoint.
  EXPECT_TRUE(LoadServerConfig({{{"artifact_store", "/mnt/shared"}}, {}}).ok());
  const std::pair<std::map<std::string, std::string>, std::string> bad[] = {
      {{{"artifact_store", "s3://mia-models"}}, "s3_endpoint: required"},
      {{{"artifact_store", "s3://Bad_Bucket/x"}, {"s3_endpoint", "http://h"}}, "artifact_store:"},
      {{{"artifact_store", "gs://bucket"}}, "artifact_store:"},
      {{{"s3_endpoint", "http://h"}}, "s3_endpoint: only with an s3://"},
      {{{"artifact_store", "s3://bucket"}, {"s3_endpoint", "h:9000"}}, "s3_endpoint: must start"},
      {{{"s3_region", "US East"}}, "s3_region:"},
      {{{"artifact_store", "s3://bucket"}, {"s3_endpoint", "http://AKID:SECRET@h"}},
       "s3_endpoint: must not hold credentials"},
  };
  for (const auto& [flags, message] : bad) {
    const absl::Status status = LoadServerConfig({flags, {}}).status();
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << message;
    EXPECT_THAT(std::string(status.message()), HasSubstr(message));
  }
}

TEST(ServerConfigTest, JsonHasEveryKey) {
  const nlohmann::json j = nlohmann::json::parse(ServerConfigJson(ServerConfig()));
  for (const std::string& key : ServerConfigKeys()) EXPECT_TRUE(j.contains(key)) << key;
}

TEST(ServerConfigTest, EnvironmentMapSplitsAtTheFirstEquals) {
  char a[] = "MIA_LISTEN_ADDRESS=0.0.0.0:1=2";
  char b[] = "NOVALUE";
  char* block[] = {a, b, nullptr};
  const auto env = EnvironmentMap(block);
  EXPECT_EQ(env.at("MIA_LISTEN_ADDRESS"), "0.0.0.0:1=2");
  EXPECT_EQ(env.count("NOVALUE"), 0u);
}

TEST(ServerConfigTest, MetricsHostIsTheListenHostUnlessSet) {
  ServerConfig config;
  EXPECT_EQ(MetricsHost(config), "127.0.0.1");  // the default listen_address
  config.listen_address = "0.0.0.0:50051";
  EXPECT_EQ(MetricsHost(config), "0.0.0.0");
  config.listen_address = "[::1]:0";
  EXPECT_EQ(MetricsHost(config), "::1");
  config.listen_address = "ipv4:10.1.2.3:50051";
  EXPECT_EQ(MetricsHost(config), "10.1.2.3");
  config.listen_address = "unix:/run/mia.sock";
  EXPECT_EQ(MetricsHost(config), "127.0.0.1");
  config.metrics_address = "0.0.0.0";
  EXPECT_EQ(MetricsHost(config), "0.0.0.0");
}

}  // namespace
TEST(ServerConfigTest, AuthKeysFromEverySourceAndTheirRules) {
  const std::string file = WriteFile("auth.yaml",
                                     "auth_tokens_file: /etc/mia/tokens.yaml\n"
                                     "auth_jwt_keys: /etc/mia/jwks.json\n"
                                     "auth_jwt_issuer: https://issuer.example\n");
  ConfigSources sources;
  sources.flags = {{"config", file}};
  sources.env = {{"MIA_AUTH_JWT_AUDIENCE", "mia"}};
  absl::StatusOr<ServerConfig> config = LoadServerConfig(sources);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->auth_tokens_file, "/etc/mia/tokens.yaml");
  EXPECT_EQ(config->auth_jwt_keys, "/etc/mia/jwks.json");
  EXPECT_EQ(config->auth_jwt_issuer, "https://issuer.example");
  EXPECT_EQ(config->auth_jwt_audience, "mia");
  EXPECT_TRUE(AuthEnabled(*config));
  EXPECT_FALSE(AuthEnabled(ServerConfig()));

  // Issuer or audience without keys to verify with.
  ConfigSources lone;
  lone.flags = {{"auth_jwt_audience", "mia"}};
  absl::StatusOr<ServerConfig> bad = LoadServerConfig(lone);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("auth_jwt_audience: needs auth_jwt_keys"));
}

TEST(ServerConfigTest, ListensBeyondLoopback) {
  ServerConfig c;
  const std::pair<const char*, bool> cases[] = {
      {"127.0.0.1:50051", false}, {"127.0.0.2:1", false},    {"localhost:50051", false},
      {"[::1]:50051", false},     {"unix:/tmp/mia.sock", false}, {"ipv4:127.0.0.1:5", false},
      {"0.0.0.0:50051", true},    {"[::]:50051", true},      {"10.1.2.3:50051", true},
      {"mia.example:443", true},  {"dns:0.0.0.0:1", true},
  };
  for (const auto& [address, beyond] : cases) {
    c.listen_address = address;
    EXPECT_EQ(ListensBeyondLoopback(c), beyond) << address;
  }
}

}  // namespace mia::server
