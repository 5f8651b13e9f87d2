// Quoting a value given by a client in an error message: at most 100 bytes of
// it (cut on a UTF-8 character boundary), so that a 50 MB value is not echoed
// back whole into a message, a log line or gRPC metadata. Header-only.
#ifndef MIA_CORE_COMMON_QUOTE_H_
#define MIA_CORE_COMMON_QUOTE_H_

#include <cstddef>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace mia {

inline constexpr size_t kMaxQuotedBytes = 100;

// 'value', or 'first 100 bytes...' (N bytes) when longer.
inline std::string Quoted(absl::string_view value, size_t max_bytes = kMaxQuotedBytes) {
  if (value.size() <= max_bytes) return absl::StrCat("'", value, "'");
  size_t cut = max_bytes;
  // Back up over UTF-8 continuation bytes (10xxxxxx) so that no character is split.
  while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat("'", value.substr(0, cut), "...' (", value.size(), " bytes)");
}

}  // namespace mia

#endif  // MIA_CORE_COMMON_QUOTE_H_
