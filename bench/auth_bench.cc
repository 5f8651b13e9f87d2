// The cost of the server's credential check per call (server/auth.h): a
// bearer token looked up in tokens files of 1, 100 and 10,000 entries (every
// entry compared in constant time, so a known and an unknown token cost the
// same), and an HS256 and an RS256 (2048-bit) JWT verified through libjwt.
// Prints microseconds per Authorize call, the median of 7 rounds.
//
// Usage: mia_auth_bench [CALLS_PER_ROUND]   (default 2000)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/common/sha256.h"
#include "nlohmann/json.hpp"
#include "server/auth.h"
#include "tests/server/jwt_util.h"

namespace {

using mia::server::Authenticator;
using mia::server::AuthOptions;
using mia::server::Permission;

using mia::testing::B64;

std::string Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// Median microseconds per call of `calls` Authorize calls with `header`.
double Time(Authenticator* auth, const std::string& header, int calls) {
  std::vector<double> rounds;
  for (int round = 0; round < 7; ++round) {
    const auto start = std::chrono::steady_clock::now();
    int ok = 0;
    for (int i = 0; i < calls; ++i) ok += auth->Authorize(header, {}, Permission::kRead).ok();
    const auto end = std::chrono::steady_clock::now();
    if (ok != 0 && ok != calls) std::abort();
    rounds.push_back(std::chrono::duration<double, std::micro>(end - start).count() / calls);
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[rounds.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 2000;
  const std::string dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("mia_auth_bench_", getpid())).string();
  std::filesystem::create_directories(dir);
  std::printf("%-44s %12s\n", "credential", "us/call");

  for (int n : {1, 100, 10000}) {
    std::string yaml = "tokens:\n";
    for (int i = 0; i < n; ++i) {
      absl::StrAppend(&yaml, "  - {sha256: ", mia::Sha256Hex(absl::StrCat("token-", i)),
                      ", tenant: t", i % 10, ", role: submitter}\n");
    }
    AuthOptions options;
    options.tokens_file = Write(dir + "/tokens.yaml", yaml);
    auto auth = Authenticator::Create(options, nullptr);
    if (!auth.ok()) return 1;
    std::printf("%-44s %12.2f\n", absl::StrCat("token, ", n, " listed, known (last)").c_str(),
                Time(auth->get(), absl::StrCat("Bearer token-", n - 1), calls));
    std::printf("%-44s %12.2f\n", absl::StrCat("token, ", n, " listed, unknown").c_str(),
                Time(auth->get(), "Bearer not-a-token", calls));
  }

  const int64_t now = absl::ToUnixSeconds(absl::Now());
  const nlohmann::json claims = {{"exp", now + 3600}, {"tenant", "t1"}, {"role", "reader"},
                                 {"aud", "mia"}, {"iss", "bench"}};
  {
    const std::string secret = "bench-secret-0123456789abcdef0123456789";
    const std::string input =
        B64(nlohmann::json{{"alg", "HS256"}, {"typ", "JWT"}}.dump()) + "." + B64(claims.dump());
    AuthOptions options;
    options.jwt_keys = Write(dir + "/secret", secret);
    options.jwt_issuer = "bench";
    options.jwt_audience = "mia";
    auto auth = Authenticator::Create(options, nullptr);
    if (!auth.ok()) return 1;
    std::printf("%-44s %12.2f\n", "JWT HS256",
                Time(auth->get(),
                     "Bearer " + input + "." + B64(mia::testing::Hs256(secret, input)),
                     calls));
  }
  {
    const mia::testing::RsaKey key;
    const std::string pem = key.PublicPem();
    const std::string input =
        B64(nlohmann::json{{"alg", "RS256"}, {"typ", "JWT"}}.dump()) + "." + B64(claims.dump());
    const std::string sig = key.Sign(input);
    AuthOptions options;
    options.jwt_keys = Write(dir + "/key.pem", pem);
    auto auth = Authenticator::Create(options, nullptr);
    if (!auth.ok()) return 1;
    std::printf("%-44s %12.2f\n", "JWT RS256 (2048-bit)",
                Time(auth->get(), "Bearer " + input + "." + B64(sig), calls));
  }
  std::filesystem::remove_all(dir);
  return 0;
}
