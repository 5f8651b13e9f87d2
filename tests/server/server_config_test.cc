// server/server_config: flags > MIA_* environment > YAML file > defaults,
// key by key; unknown file keys and bad values are errors naming their source.
#include "server/server_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
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

}  // namespace
}  // namespace mia::server
