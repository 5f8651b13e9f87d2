#include "server/json_log.h"

#include "spdlog/sinks/null_sink.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace mia::server {

std::shared_ptr<spdlog::logger> MakeJsonLogger(const std::string& name, const std::string& level) {
  auto logger =
      std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stdout_sink_mt>());
  // The message itself is the tail of the object ("\"msg\":...,..."): Log
  // builds it with a JSON library, so every value is escaped correctly.
  logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})",
                      spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(level));
  // Lines reach a collector even if the process is killed soon after.
  logger->flush_on(spdlog::level::info);
  return logger;
}

std::shared_ptr<spdlog::logger> MakeNullLogger() {
  return std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>());
}

void Log(spdlog::logger* logger, spdlog::level::level_enum level, absl::string_view msg,
         LogFields fields) {
  if (logger == nullptr || !logger->should_log(level)) return;
  nlohmann::ordered_json j;
  j["msg"] = std::string(msg);
  for (const auto& [key, value] : fields) {
    if (value.is_string() && value.get_ref<const std::string&>().empty()) continue;
    j[key] = value;
  }
  std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  // Strip the braces: the pattern supplies them around time and level.
  text = text.substr(1, text.size() - 2);
  logger->log(level, "{}", text);
}

}  // namespace mia::server
