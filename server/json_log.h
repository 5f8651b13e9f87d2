// Structured logs of mia-server: one JSON object per line on stdout,
//   {"time":"2024-05-01T12:00:00.123456Z","level":"info","msg":"audit created",
//    "audit_id":"...","request_id":"..."}
// so log collectors parse them without rules. Callers pass ids, codes and
// counts only: never spec contents, labels, file contents or data values.
//
// Thread-safety: spdlog loggers are thread-safe (the _mt sinks); Log may be
// called from any thread. A null logger drops everything.
#ifndef MIA_SERVER_JSON_LOG_H_
#define MIA_SERVER_JSON_LOG_H_

#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace mia::server {

// A logger writing JSON lines to stdout at `level` ("info", ...); an unknown
// level name means info.
std::shared_ptr<spdlog::logger> MakeJsonLogger(const std::string& name, const std::string& level);

// A logger that drops everything (tests).
std::shared_ptr<spdlog::logger> MakeNullLogger();

using LogFields = std::initializer_list<std::pair<const char*, nlohmann::ordered_json>>;

// Logs `msg` with extra fields; empty string fields are left out.
void Log(spdlog::logger* logger, spdlog::level::level_enum level, absl::string_view msg,
         LogFields fields = {});

}  // namespace mia::server

#endif  // MIA_SERVER_JSON_LOG_H_
