#include "server/server_config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/jobs/postgres_job_store.h"
#include "core/storage/object_store.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace mia::server {
namespace {

// How one key is parsed from text and written to JSON. Every source goes
// through `set` with text, so a value means the same wherever it comes from.
struct Field {
  std::string key;
  bool is_list = false;
  std::function<absl::Status(const std::string& text, ServerConfig* c)> set;
  std::function<nlohmann::json(const ServerConfig& c)> get;
};

absl::Status Bad(const std::string& what) { return absl::InvalidArgumentError(what); }

template <typename Int>
Field IntField(std::string key, Int ServerConfig::*member) {
  Field f;
  f.key = key;
  f.set = [key, member](const std::string& text, ServerConfig* c) -> absl::Status {
    int64_t v = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &v) ||
        v < static_cast<int64_t>(std::numeric_limits<Int>::min()) ||
        v > static_cast<int64_t>(std::numeric_limits<Int>::max())) {
      return Bad("not an integer in range");
    }
    c->*member = static_cast<Int>(v);
    return absl::OkStatus();
  };
  f.get = [member](const ServerConfig& c) { return nlohmann::json(c.*member); };
  return f;
}

Field DoubleField(std::string key, double ServerConfig::*member) {
  Field f;
  f.key = key;
  f.set = [member](const std::string& text, ServerConfig* c) -> absl::Status {
    double v = 0;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &v) || !std::isfinite(v)) {
      return Bad("not a finite number");
    }
    c->*member = v;
    return absl::OkStatus();
  };
  f.get = [member](const ServerConfig& c) { return nlohmann::json(c.*member); };
  return f;
}

Field StringField(std::string key, std::string ServerConfig::*member) {
  Field f;
  f.key = key;
  f.set = [member](const std::string& text, ServerConfig* c) -> absl::Status {
    c->*member = std::string(absl::StripAsciiWhitespace(text));
    return absl::OkStatus();
  };
  f.get = [member](const ServerConfig& c) { return nlohmann::json(c.*member); };
  return f;
}

Field BoolField(std::string key, bool ServerConfig::*member) {
  Field f;
  f.key = key;
  f.set = [member](const std::string& text, ServerConfig* c) -> absl::Status {
    const std::string t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
    if (t == "true" || t == "1" || t == "yes" || t == "on") {
      c->*member = true;
    } else if (t == "false" || t == "0" || t == "no" || t == "off") {
      c->*member = false;
    } else {
      return Bad("not a boolean (true or false)");
    }
    return absl::OkStatus();
  };
  f.get = [member](const ServerConfig& c) { return nlohmann::json(c.*member); };
  return f;
}

// Comma-separated; empty items are dropped, so "" is the empty list.
Field ListField(std::string key, std::vector<std::string> ServerConfig::*member) {
  Field f;
  f.key = key;
  f.is_list = true;
  f.set = [member](const std::string& text, ServerConfig* c) -> absl::Status {
    std::vector<std::string> items;
    for (absl::string_view item : absl::StrSplit(text, ',')) {
      item = absl::StripAsciiWhitespace(item);
      if (!item.empty()) items.emplace_back(item);
    }
    c->*member = std::move(items);
    return absl::OkStatus();
  };
  f.get = [member](const ServerConfig& c) { return nlohmann::json(c.*member); };
  return f;
}

const std::vector<Field>& Fields() {
  static const auto* const kFields = new std::vector<Field>{
      StringField("listen_address", &ServerConfig::listen_address),
      StringField("tls_cert_file", &ServerConfig::tls_cert_file),
      StringField("tls_key_file", &ServerConfig::tls_key_file),
      StringField("tls_client_ca_file", &ServerConfig::tls_client_ca_file),
      StringField("auth_tokens_file", &ServerConfig::auth_tokens_file),
      StringField("auth_jwt_keys", &ServerConfig::auth_jwt_keys),
      StringField("auth_jwt_issuer", &ServerConfig::auth_jwt_issuer),
      StringField("auth_jwt_audience", &ServerConfig::auth_jwt_audience),
      StringField("data_dir", &ServerConfig::data_dir),
      StringField("store", &ServerConfig::store),
      ListField("data_roots", &ServerConfig::data_roots),
      StringField("artifact_store", &ServerConfig::artifact_store),
      StringField("s3_endpoint", &ServerConfig::s3_endpoint),
      StringField("s3_region", &ServerConfig::s3_region),
      IntField("workers", &ServerConfig::workers),
      IntField("queue_capacity", &ServerConfig::queue_capacity),
      IntField("max_concurrent_jobs", &ServerConfig::max_concurrent_jobs),
      IntField("threads_per_job", &ServerConfig::threads_per_job),
      IntField("max_watchers", &ServerConfig::max_watchers),
      IntField("max_message_bytes", &ServerConfig::max_message_bytes),
      IntField("max_upload_bytes", &ServerConfig::max_upload_bytes),
      IntField("memory_budget_bytes", &ServerConfig::memory_budget_bytes),
      IntField("max_bundle_array_bytes", &ServerConfig::max_bundle_array_bytes),
      IntField("max_bundle_total_bytes", &ServerConfig::max_bundle_total_bytes),
      DoubleField("heartbeat_seconds", &ServerConfig::heartbeat_seconds),
      IntField("metrics_port", &ServerConfig::metrics_port),
      StringField("metrics_address", &ServerConfig::metrics_address),
      BoolField("dashboard", &ServerConfig::dashboard),
      BoolField("enable_reflection", &ServerConfig::enable_reflection),
      DoubleField("drain_timeout_seconds", &ServerConfig::drain_timeout_seconds),
      StringField("log_level", &ServerConfig::log_level),
      StringField("replica_id", &ServerConfig::replica_id),
      DoubleField("cluster_lease_seconds", &ServerConfig::cluster_lease_seconds),
      IntField("unit_workers", &ServerConfig::unit_workers),
  };
  return *kFields;
}

std::string EnvName(const std::string& key) { return "MIA_" + absl::AsciiStrToUpper(key); }

absl::Status InSource(const std::string& source, const std::string& key,
                      const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(source, ": ", key, ": ", status.message()));
}

// Applies a YAML file; `where` names it in messages.
absl::Status ApplyYaml(const std::string& path, ServerConfig* config) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config file ", path, ": cannot open it"));
  std::stringstream text;
  text << in.rdbuf();
  const std::string where = absl::StrCat("config file ", path);
  YAML::Node root;
  try {
    root = YAML::Load(text.str());
  } catch (const YAML::Exception& e) {
    return Bad(absl::StrCat(where, ": not valid YAML (line ", e.mark.line + 1, ")"));
  }
  if (root.IsNull()) return absl::OkStatus();  // an empty file sets nothing
  if (!root.IsMap()) return Bad(absl::StrCat(where, ": must be a mapping of keys to values"));
  for (const auto& item : root) {
    std::string key;
    try {
      key = item.first.as<std::string>();
    } catch (const YAML::Exception&) {
      return Bad(absl::StrCat(where, ": a key is not a string"));
    }
    const Field* field = nullptr;
    for (const Field& f : Fields()) {
      if (f.key == key) field = &f;
    }
    if (field == nullptr) {
      return Bad(absl::StrCat(where, ": unknown key '", key, "'"));
    }
    const YAML::Node& value = item.second;
    std::string as_text;
    if (field->is_list && value.IsSequence()) {
      for (const auto& element : value) {
        if (!element.IsScalar()) return Bad(absl::StrCat(where, ": ", key, ": items must be text"));
        const std::string s = element.Scalar();
        if (s.find(',') != std::string::npos) {
          return Bad(absl::StrCat(where, ": ", key, ": an item contains a comma"));
        }
        absl::StrAppend(&as_text, as_text.empty() ? "" : ",", s);
      }
    } else if (value.IsScalar()) {
      as_text = value.Scalar();
    } else if (value.IsNull()) {
      as_text = "";
    } else {
      return Bad(absl::StrCat(where, ": ", key, ": must be a single value"));
    }
    const absl::Status status = field->set(as_text, config);
    if (!status.ok()) return InSource(where, key, status);
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& ServerConfigKeys() {
  static const auto* const kKeys = [] {
    auto* keys = new std::vector<std::string>();
    for (const Field& f : Fields()) keys->push_back(f.key);
    return keys;
  }();
  return *kKeys;
}

absl::StatusOr<ServerConfig> LoadServerConfig(const ConfigSources& sources) {
  ServerConfig config;
  // The file is named by a flag or the environment, never by itself.
  if (auto it = sources.flags.find("config"); it != sources.flags.end()) {
    config.config_file = it->second;
  } else if (auto env = sources.env.find("MIA_CONFIG"); env != sources.env.end()) {
    config.config_file = env->second;
  }
  if (!config.config_file.empty()) {
    const absl::Status status = ApplyYaml(config.config_file, &config);
    if (!status.ok()) return status;
  }
  for (const Field& f : Fields()) {
    const auto it = sources.env.find(EnvName(f.key));
    if (it == sources.env.end()) continue;
    const absl::Status status = f.set(it->second, &config);
    if (!status.ok()) return InSource("environment", EnvName(f.key), status);
  }
  for (const auto& [key, text] : sources.flags) {
    if (key == "config") continue;
    const Field* field = nullptr;
    for (const Field& f : Fields()) {
      if (f.key == key) field = &f;
    }
    if (field == nullptr) return Bad(absl::StrCat("flag --", key, ": not a server setting"));
    const absl::Status status = field->set(text, &config);
    if (!status.ok()) return InSource("flag", "--" + key, status);
  }
  const absl::Status valid = ValidateServerConfig(config);
  if (!valid.ok()) return valid;
  return config;
}

absl::Status ValidateServerConfig(const ServerConfig& c) {
  auto range = [](const std::string& key, double v, double lo, double hi) -> absl::Status {
    if (v < lo || v > hi) {
      return Bad(absl::StrCat(key, ": must be in [", lo, ", ", hi, "]"));
    }
    return absl::OkStatus();
  };
  if (c.listen_address.empty()) return Bad("listen_address: required");
  if (c.data_dir.empty()) return Bad("data_dir: required");
  if (jobs::IsPostgresUrl(c.store) &&
      jobs::RedactPostgresUrl(c.store) == "postgresql://(invalid URL)") {
    // The URL is not echoed: it may hold a password.
    return Bad("store: not a valid PostgreSQL URL (postgresql://user:password@host:port/db)");
  }
  const std::pair<std::string, absl::Status> checks[] = {
      {"workers", range("workers", c.workers, 1, 1024)},
      {"queue_capacity", range("queue_capacity", c.queue_capacity, 1, 1e6)},
      {"max_concurrent_jobs", range("max_concurrent_jobs", c.max_concurrent_jobs, 0, 1024)},
      {"threads_per_job", range("threads_per_job", c.threads_per_job, 0, 1024)},
      {"max_watchers", range("max_watchers", c.max_watchers, 1, 1e6)},
      // gRPC takes an int; below 1 KiB not even a small spec fits.
      {"max_message_bytes", range("max_message_bytes", static_cast<double>(c.max_message_bytes),
                                  1024, std::numeric_limits<int>::max())},
      {"max_upload_bytes",
       range("max_upload_bytes", static_cast<double>(c.max_upload_bytes), 1, 1e15)},
      {"memory_budget_bytes",
       range("memory_budget_bytes", static_cast<double>(c.memory_budget_bytes), 0, 1e18)},
      {"max_bundle_array_bytes",
       range("max_bundle_array_bytes", static_cast<double>(c.max_bundle_array_bytes), 1, 1e18)},
      {"max_bundle_total_bytes",
       range("max_bundle_total_bytes", static_cast<double>(c.max_bundle_total_bytes), 1, 1e18)},
      {"heartbeat_seconds", range("heartbeat_seconds", c.heartbeat_seconds, 0.01, 3600)},
      {"metrics_port", range("metrics_port", c.metrics_port, 0, 65535)},
      {"drain_timeout_seconds", range("drain_timeout_seconds", c.drain_timeout_seconds, 0, 86400)},
      {"cluster_lease_seconds", range("cluster_lease_seconds", c.cluster_lease_seconds, 1, 3600)},
      {"unit_workers", range("unit_workers", c.unit_workers, 0, 256)},
  };
  for (const auto& [key, status] : checks) {
    if (!status.ok()) return status;
  }
  if (absl::StartsWith(c.artifact_store, "s3://")) {
    const absl::StatusOr<storage::S3Url> url = storage::ParseS3Url(c.artifact_store);
    if (!url.ok()) return Bad(absl::StrCat("artifact_store: ", url.status().message()));
    if (c.s3_endpoint.empty()) {
      return Bad("s3_endpoint: required with an s3:// artifact_store (e.g. "
                 "https://s3.us-east-1.amazonaws.com or http://127.0.0.1:9000)");
    }
  } else if (absl::StrContains(c.artifact_store, "://")) {
    return Bad("artifact_store: an s3:// URL or a folder");
  } else if (!c.s3_endpoint.empty()) {
    return Bad("s3_endpoint: only with an s3:// artifact_store");
  }
  if (!c.s3_endpoint.empty() && !absl::StartsWith(c.s3_endpoint, "http://") &&
      !absl::StartsWith(c.s3_endpoint, "https://")) {
    return Bad("s3_endpoint: must start with http:// or https://");
  }
  if (absl::StrContains(c.s3_endpoint, "@")) {
    // The configuration is logged at start; credentials come from the
    // environment only.
    return Bad("s3_endpoint: must not hold credentials; set AWS_ACCESS_KEY_ID and "
               "AWS_SECRET_ACCESS_KEY instead");
  }
  if (c.s3_region.empty() ||
      !std::all_of(c.s3_region.begin(), c.s3_region.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
      })) {
    return Bad("s3_region: lowercase letters, digits and '-' (e.g. us-east-1)");
  }
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return Bad(c.tls_cert_file.empty()
                   ? "tls_cert_file: required with tls_key_file (TLS needs both, or neither)"
                   : "tls_key_file: required with tls_cert_file (TLS needs both, or neither)");
  }
  if (!c.tls_client_ca_file.empty() && c.tls_cert_file.empty()) {
    return Bad(
        "tls_client_ca_file: needs tls_cert_file and tls_key_file (mutual TLS is TLS first)");
  }
  const std::pair<std::string, std::string> tls_files[] = {
      {"tls_cert_file", c.tls_cert_file},
      {"tls_key_file", c.tls_key_file},
      {"tls_client_ca_file", c.tls_client_ca_file}};
  for (const auto& [key, path] : tls_files) {
    if (path.empty()) continue;
    const absl::StatusOr<std::string> pem = ReadTlsFile(key, path);
    if (!pem.ok()) return pem.status();
  }
  if (c.auth_jwt_keys.empty() && (!c.auth_jwt_issuer.empty() || !c.auth_jwt_audience.empty())) {
    return Bad(c.auth_jwt_issuer.empty()
                   ? "auth_jwt_audience: needs auth_jwt_keys (the keys JWTs are verified with)"
                   : "auth_jwt_issuer: needs auth_jwt_keys (the keys JWTs are verified with)");
  }
  static const char* const kLevels[] = {"trace", "debug",    "info", "warn",
                                        "error", "critical", "off"};
  bool level_ok = false;
  for (const char* l : kLevels) level_ok = level_ok || c.log_level == l;
  if (!level_ok) {
    return Bad("log_level: must be one of trace, debug, info, warn, error, critical, off");
  }
  return absl::OkStatus();
}

std::string TlsMode(const ServerConfig& config) {
  if (config.tls_cert_file.empty()) return "off";
  return config.tls_client_ca_file.empty() ? "tls" : "mtls";
}

bool AuthEnabled(const ServerConfig& config) {
  return !config.auth_tokens_file.empty() || !config.auth_jwt_keys.empty();
}

bool ListensBeyondLoopback(const ServerConfig& config) {
  std::string address = config.listen_address;
  if (absl::StartsWith(address, "unix:") || absl::StartsWith(address, "unix-abstract:")) {
    return false;
  }
  for (const char* scheme : {"ipv4:", "ipv6:", "dns:"}) {
    if (absl::StartsWith(address, scheme)) address = address.substr(std::strlen(scheme));
  }
  std::string host;
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    host = address.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  } else {
    const size_t colon = address.rfind(':');
    host = colon == std::string::npos ? address : address.substr(0, colon);
  }
  host = absl::AsciiStrToLower(host);
  if (host == "localhost" || host == "::1" || absl::StartsWith(host, "127.")) return false;
  return true;
}

std::string MetricsHost(const ServerConfig& config) {
  if (!config.metrics_address.empty()) return config.metrics_address;
  std::string address = config.listen_address;
  if (absl::StartsWith(address, "unix:") || absl::StartsWith(address, "unix-abstract:")) {
    return "127.0.0.1";
  }
  // gRPC also accepts a scheme before the address.
  for (const char* scheme : {"ipv4:", "ipv6:", "dns:"}) {
    if (absl::StartsWith(address, scheme)) address = address.substr(std::strlen(scheme));
  }
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    return address.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  }
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

absl::StatusOr<std::string> ReadTlsFile(const std::string& key, const std::string& path) {
  // PEM files are small; anything far larger is not one (and is not read whole).
  constexpr size_t kMaxPemBytes = size_t{1} << 20;
  const std::string where = absl::StrCat(key, ": ", path);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return Bad(absl::StrCat(where, ": is a folder"));
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return Bad(absl::StrCat(where, ": cannot read it (", std::strerror(errno), ")"));
  }
  std::string text(kMaxPemBytes + 1, '\0');
  const size_t n = std::fread(text.data(), 1, text.size(), f);
  const bool failed = std::ferror(f) != 0;
  const int read_errno = errno;
  std::fclose(f);
  if (failed) {
    return Bad(absl::StrCat(where, ": cannot read it (", std::strerror(read_errno), ")"));
  }
  if (n > kMaxPemBytes) return Bad(absl::StrCat(where, ": larger than 1 MiB, not a PEM file"));
  text.resize(n);
  if (key == "tls_key_file") {
    if (text.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") != std::string::npos ||
        text.find("Proc-Type: 4,ENCRYPTED") != std::string::npos) {
      return Bad(absl::StrCat(where, ": the private key is encrypted; give it unencrypted"));
    }
    if (text.find("PRIVATE KEY-----") == std::string::npos) {
      return Bad(absl::StrCat(where, ": no PEM private key in it (-----BEGIN PRIVATE KEY-----)"));
    }
  } else if (text.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return Bad(absl::StrCat(where, ": no PEM certificate in it (-----BEGIN CERTIFICATE-----)"));
  }
  return text;
}

std::string ServerConfigJson(const ServerConfig& config) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const Field& f : Fields()) j[f.key] = nlohmann::ordered_json::parse(f.get(config).dump());
  // The store URL holds a password: only its redacted form is shown.
  if (jobs::IsPostgresUrl(config.store)) j["store"] = jobs::RedactPostgresUrl(config.store);
  j["config_file"] = config.config_file;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::map<std::string, std::string> EnvironmentMap(char** environ_block) {
  std::map<std::string, std::string> env;
  if (environ_block == nullptr) return env;
  for (char** e = environ_block; *e != nullptr; ++e) {
    const std::string entry(*e);
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

}  // namespace mia::server
