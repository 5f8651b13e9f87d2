#include "server/auth.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/common/sha256.h"
#include "nlohmann/json.hpp"
#include "server/json_log.h"

namespace mia::server {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxTenantBytes = 63;
constexpr size_t kMaxIdentityBytes = 255;
constexpr size_t kMinSecretBytes = 32;
constexpr size_t kMaxJwtBytes = 16 << 10;

bool IsTenantName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxTenantBytes) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

constexpr char kTenantRule[] = "1-63 letters, digits, '-', '_' or '.'";

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---------------------------------------------------------------------------
// The tokens file.

class TableParser {
 public:
  explicit TableParser(absl::string_view where) : where_(where) {}

  absl::Status Bad(const std::string& field, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(where_, ": ", field, ": ", what));
  }

  absl::Status OnlyKeys(const YAML::Node& node, const std::string& field,
                        std::initializer_list<const char*> keys) const {
    if (!node.IsMap()) return Bad(field, "must be a mapping");
    for (const auto& entry : node) {
      const std::string key = entry.first.Scalar();
      bool known = false;
      for (const char* k : keys) known = known || key == k;
      if (!known) {
        std::string list;
        for (const char* k : keys) absl::StrAppend(&list, list.empty() ? "" : ", ", k);
        return Bad(field.empty() ? key : absl::StrCat(field, ".", key),
                   absl::StrCat("unknown key (known: ", list, ")"));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> String(const YAML::Node& node, const std::string& field) const {
    if (!node) return Bad(field, "required");
    if (!node.IsScalar()) return Bad(field, "must be a string");
    return node.Scalar();
  }

  absl::StatusOr<std::string> Tenant(const YAML::Node& node, const std::string& field) const {
    absl::StatusOr<std::string> name = String(node, field);
    if (!name.ok()) return name.status();
    if (!IsTenantName(*name)) return Bad(field, kTenantRule);
    return name;
  }

  absl::StatusOr<Role> RoleOf(const YAML::Node& node, const std::string& field) const {
    absl::StatusOr<std::string> name = String(node, field);
    if (!name.ok()) return name.status();
    std::optional<Role> role = ParseRole(*name);
    if (!role) return Bad(field, "must be reader, submitter or admin");
    return *role;
  }

  absl::StatusOr<std::optional<int64_t>> Limit(const YAML::Node& node,
                                               const std::string& field) const {
    if (!node) return std::optional<int64_t>();
    int64_t value = -1;
    if (!node.IsScalar() || !YAML::convert<int64_t>::decode(node, value) || value < 0) {
      return Bad(field, "must be an integer >= 0");
    }
    return std::optional<int64_t>(value);
  }

 private:
  const std::string where_;
};

// 64 hex digits (either case) -> 32 bytes.
bool DecodeDigest(const std::string& hex, std::array<uint8_t, 32>* out) {
  if (hex.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    int value = 0;
    for (size_t j = 0; j < 2; ++j) {
      const char c = absl::ascii_tolower(static_cast<unsigned char>(hex[2 * i + j]));
      int digit = -1;
      if (c >= '0' && c <= '9') digit = c - '0';
      if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
      if (digit < 0) return false;
      value = value * 16 + digit;
    }
    (*out)[i] = static_cast<uint8_t>(value);
  }
  return true;
}

// ---------------------------------------------------------------------------
// JWT keys.

enum class JwtAlg { kHs256, kRs256 };

const char* JwtAlgName(JwtAlg alg) { return alg == JwtAlg::kHs256 ? "HS256" : "RS256"; }

struct JwtKey {
  std::string kid;       // empty: none
  JwtAlg alg = JwtAlg::kHs256;
  std::string material;  // the HS256 secret, or the RS256 public key as PEM
};

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

absl::StatusOr<std::string> PublicPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_PUBKEY(bio.get(), key) != 1) {
    return absl::InternalError("cannot write the public key as PEM");
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// An RSA public key PEM ("PUBLIC KEY" or "RSA PUBLIC KEY"): back as a
// "PUBLIC KEY" PEM, which libjwt reads.
absl::StatusOr<std::string> RsaPem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    bio.reset(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    key.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  }
  if (key == nullptr) return absl::InvalidArgumentError("not a PEM public key");
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
    return absl::InvalidArgumentError("the PEM public key is not an RSA key (RS256 needs one)");
  }
  return PublicPem(key.get());
}

absl::StatusOr<std::string> RsaPemFromJwk(const std::string& n64, const std::string& e64) {
  std::string n, e;
  if (!absl::WebSafeBase64Unescape(n64, &n) || !absl::WebSafeBase64Unescape(e64, &e) ||
      n.empty() || e.empty()) {
    return absl::InvalidArgumentError("n and e must be base64url");
  }
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                           static_cast<int>(n.size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                           static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  EVP_PKEY_CTX* ctx = nullptr;
  EVP_PKEY* key = nullptr;
  bool ok = bn_n != nullptr && bn_e != nullptr && bld != nullptr &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1;
  if (ok) params = OSSL_PARAM_BLD_to_param(bld);
  if (ok && params != nullptr) ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  ok = ok && params != nullptr && ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1 &&
       EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
  PkeyPtr owned(key);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);
  if (!ok || owned == nullptr) return absl::InvalidArgumentError("not a valid RSA public key");
  return PublicPem(owned.get());
}

absl::StatusOr<std::vector<JwtKey>> ParseJwks(const Json& jwks, const std::string& where) {
  const auto bad = [&](size_t i, absl::string_view field, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": keys[", i, "]", field.empty() ? "" : ".",
                                                   field, ": ", what));
  };
  if (!jwks.contains("keys") || !jwks["keys"].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": keys: required, a list (JWKS)"));
  }
  std::vector<JwtKey> keys;
  std::set<std::string> kids;
  for (size_t i = 0; i < jwks["keys"].size(); ++i) {
    const Json& k = jwks["keys"][i];
    if (!k.is_object()) return bad(i, "", "must be an object");
    const std::string kty = k.value("kty", "");
    JwtKey key;
    if (k.contains("kid")) {
      if (!k["kid"].is_string()) return bad(i, "kid", "must be a string");
      key.kid = k["kid"].get<std::string>();
      if (!kids.insert(key.kid).second) return bad(i, "kid", "the same as an earlier key's");
    }
    const std::string alg = k.contains("alg") && k["alg"].is_string() ? k["alg"].get<std::string>()
                                                                      : "";
    if (kty == "RSA") {
      if (!alg.empty() && alg != "RS256") return bad(i, "alg", "an RSA key must be RS256");
      if (!k.contains("n") || !k["n"].is_string() || !k.contains("e") || !k["e"].is_string()) {
        return bad(i, "n", "an RSA key needs n and e (base64url strings)");
      }
      absl::StatusOr<std::string> pem =
          RsaPemFromJwk(k["n"].get<std::string>(), k["e"].get<std::string>());
      if (!pem.ok()) return bad(i, "n", pem.status().message());
      key.alg = JwtAlg::kRs256;
      key.material = *std::move(pem);
    } else if (kty == "oct") {
      if (!alg.empty() && alg != "HS256") return bad(i, "alg", "an oct key must be HS256");
      std::string secret;
      if (!k.contains("k") || !k["k"].is_string() ||
          !absl::WebSafeBase64Unescape(k["k"].get<std::string>(), &secret)) {
        return bad(i, "k", "an oct key needs k (base64url)");
      }
      if (secret.size() < kMinSecretBytes) {
        return bad(i, "k", absl::StrCat("the secret must be at least ", kMinSecretBytes, " bytes"));
      }
      key.alg = JwtAlg::kHs256;
      key.material = std::move(secret);
    } else {
      return bad(i, "kty", "must be RSA (RS256) or oct (HS256)");
    }
    keys.push_back(std::move(key));
  }
  if (keys.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": keys: empty"));
  return keys;
}

// The keys of --auth_jwt_keys: a PEM public key (RS256), a JWKS (JSON), or
// else the whole file is an HS256 secret (one trailing newline dropped).
absl::StatusOr<std::vector<JwtKey>> LoadJwtKeys(const std::string& path) {
  const std::string where = absl::StrCat("auth_jwt_keys ", path);
  absl::StatusOr<std::string> text = ReadWholeFile(path, "auth_jwt_keys");
  if (!text.ok()) return text.status();
  const absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(*text);
  if (absl::StartsWith(trimmed, "-----BEGIN")) {
    absl::StatusOr<std::string> pem = RsaPem(*text);
    if (!pem.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", pem.status().message()));
    JwtKey key;
    key.alg = JwtAlg::kRs256;
    key.material = *std::move(pem);
    return std::vector<JwtKey>{std::move(key)};
  }
  if (absl::StartsWith(trimmed, "{")) {
    Json jwks = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (jwks.is_discarded() || !jwks.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON (a JWKS)"));
    }
    return ParseJwks(jwks, where);
  }
  std::string secret = *std::move(text);
  if (absl::EndsWith(secret, "\n")) secret.pop_back();
  if (absl::EndsWith(secret, "\r")) secret.pop_back();
  if (secret.size() < kMinSecretBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": an HS256 secret must be at least ", kMinSecretBytes,
        " bytes (or give a PEM public key for RS256, or a JWKS)"));
  }
  JwtKey key;
  key.alg = JwtAlg::kHs256;
  key.material = std::move(secret);
  return std::vector<JwtKey>{std::move(key)};
}

absl::Status Unauthenticated(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("unauthenticated: ", why));
}

std::optional<Json> DecodeJsonPart(absl::string_view part) {
  std::string bytes;
  if (!absl::WebSafeBase64Unescape(part, &bytes)) return std::nullopt;
  Json j = Json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

}  // namespace

// ---------------------------------------------------------------------------

const char* RoleName(Role role) {
  switch (role) {
    case Role::kReader: return "reader";
    case Role::kSubmitter: return "submitter";
    case Role::kAdmin: return "admin";
  }
  return "reader";
}

std::optional<Role> ParseRole(absl::string_view name) {
  if (name == "reader") return Role::kReader;
  if (name == "submitter") return Role::kSubmitter;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

std::optional<absl::string_view> BearerToken(absl::string_view authorization) {
  authorization = absl::StripAsciiWhitespace(authorization);
  constexpr absl::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  absl::string_view token = absl::StripLeadingAsciiWhitespace(authorization.substr(kScheme.size()));
  if (token.empty()) return std::nullopt;
  return token;
}

absl::StatusOr<AuthTable> ParseAuthTable(absl::string_view yaml, absl::string_view where) {
  TableParser p(where);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    // The mark names the line; the message is the parser's, not the text.
    return absl::InvalidArgumentError(absl::StrCat(where, ": not valid YAML at line ",
                                                   e.mark.line + 1, ": ", e.msg));
  }
  AuthTable table;
  if (root.IsNull()) return table;
  if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(where, ": must be a mapping"));
  if (absl::Status s = p.OnlyKeys(root, "", {"tokens", "tenants", "mtls"}); !s.ok()) return s;
  try {
    if (const YAML::Node tokens = root["tokens"]; tokens && !tokens.IsNull()) {
      if (!tokens.IsSequence()) return p.Bad("tokens", "must be a list");
      for (size_t i = 0; i < tokens.size(); ++i) {
        const std::string field = absl::StrCat("tokens[", i, "]");
        const YAML::Node entry = tokens[i];
        if (absl::Status s = p.OnlyKeys(entry, field, {"sha256", "tenant", "role"}); !s.ok()) {
          return s;
        }
        TokenEntry token;
        absl::StatusOr<std::string> hex = p.String(entry["sha256"], field + ".sha256");
        if (!hex.ok()) return hex.status();
        if (!DecodeDigest(*hex, &token.sha256)) {
          return p.Bad(field + ".sha256",
                       "must be 64 hex digits: the SHA-256 of the token (sha256sum)");
        }
        for (size_t j = 0; j < table.tokens.size(); ++j) {
          if (table.tokens[j].sha256 == token.sha256) {
            return p.Bad(field + ".sha256", absl::StrCat("the same token as tokens[", j, "]"));
          }
        }
        absl::StatusOr<std::string> tenant = p.Tenant(entry["tenant"], field + ".tenant");
        if (!tenant.ok()) return tenant.status();
        token.tenant = *std::move(tenant);
        absl::StatusOr<Role> role = p.RoleOf(entry["role"], field + ".role");
        if (!role.ok()) return role.status();
        token.role = *role;
        table.tokens.push_back(std::move(token));
      }
    }
    if (const YAML::Node tenants = root["tenants"]; tenants && !tenants.IsNull()) {
      if (!tenants.IsMap()) return p.Bad("tenants", "must be a mapping of tenant name to quotas");
      for (const auto& item : tenants) {
        const std::string name = item.first.Scalar();
        const std::string field = absl::StrCat("tenants.", name);
        if (!IsTenantName(name)) return p.Bad(field, absl::StrCat("tenant names are ", kTenantRule));
        TenantQuota quota;
        if (!item.second.IsNull()) {
          if (absl::Status s = p.OnlyKeys(item.second, field,
                                          {"max_queued_audits", "max_running_audits",
                                           "max_upload_bytes"});
              !s.ok()) {
            return s;
          }
          for (const auto& [key, member] :
               std::initializer_list<std::pair<const char*, std::optional<int64_t> TenantQuota::*>>{
                   {"max_queued_audits", &TenantQuota::max_queued_audits},
                   {"max_running_audits", &TenantQuota::max_running_audits},
                   {"max_upload_bytes", &TenantQuota::max_upload_bytes}}) {
            absl::StatusOr<std::optional<int64_t>> limit =
                p.Limit(item.second[key], absl::StrCat(field, ".", key));
            if (!limit.ok()) return limit.status();
            quota.*member = *limit;
          }
        }
        table.tenants[name] = quota;
      }
    }
    if (const YAML::Node mtls = root["mtls"]; mtls && !mtls.IsNull()) {
      if (!mtls.IsSequence()) return p.Bad("mtls", "must be a list");
      std::set<std::string> seen;
      for (size_t i = 0; i < mtls.size(); ++i) {
        const std::string field = absl::StrCat("mtls[", i, "]");
        const YAML::Node entry = mtls[i];
        if (absl::Status s = p.OnlyKeys(entry, field, {"identity", "tenant", "role"}); !s.ok()) {
          return s;
        }
        MtlsEntry m;
        absl::StatusOr<std::string> identity = p.String(entry["identity"], field + ".identity");
        if (!identity.ok()) return identity.status();
        if (identity->empty() || identity->size() > kMaxIdentityBytes) {
          return p.Bad(field + ".identity", "1-255 characters: a certificate's CN or a SAN");
        }
        if (!seen.insert(*identity).second) {
          return p.Bad(field + ".identity", "listed twice");
        }
        m.identity = *std::move(identity);
        absl::StatusOr<std::string> tenant = p.Tenant(entry["tenant"], field + ".tenant");
        if (!tenant.ok()) return tenant.status();
        m.tenant = *std::move(tenant);
        absl::StatusOr<Role> role = p.RoleOf(entry["role"], field + ".role");
        if (!role.ok()) return role.status();
        m.role = *role;
        table.mtls.push_back(std::move(m));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": line ", e.mark.line + 1, ": ", e.msg));
  }
  return table;
}

// ---------------------------------------------------------------------------
// JWTs.

struct JwtClaims {
  std::string tenant;
  Role role = Role::kReader;
};

class JwtVerifier {
 public:
  JwtVerifier(std::vector<JwtKey> keys, std::string issuer, std::string audience,
              absl::Duration leeway)
      : keys_(std::move(keys)),
        issuer_(std::move(issuer)),
        audience_(std::move(audience)),
        leeway_(leeway) {}

  static bool LooksLikeJwt(absl::string_view token) {
    return std::count(token.begin(), token.end(), '.') == 2;
  }

  absl::StatusOr<JwtClaims> Verify(absl::string_view token, absl::Time now) const {
    if (token.size() > kMaxJwtBytes) return Unauthenticated("the JWT is too long");
    const std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
    if (parts.size() != 3) return Unauthenticated("not a JWT");
    const std::optional<Json> header = DecodeJsonPart(parts[0]);
    if (!header) return Unauthenticated("the JWT header is not base64url JSON");
    const std::string alg =
        header->contains("alg") && (*header)["alg"].is_string() ? (*header)["alg"].get<std::string>()
                                                                : "";
    std::optional<JwtAlg> want;
    if (alg == "HS256") want = JwtAlg::kHs256;
    if (alg == "RS256") want = JwtAlg::kRs256;
    if (!want) {
      return Unauthenticated(absl::EqualsIgnoreCase(alg, "none")
                                 ? "unsigned JWTs (alg none) are refused"
                                 : "the JWT's alg must be HS256 or RS256");
    }
    if (parts[2].empty()) return Unauthenticated("the JWT has no signature");
    std::optional<std::string> kid;
    if (header->contains("kid")) {
      if (!(*header)["kid"].is_string()) return Unauthenticated("the JWT's kid must be a string");
      kid = (*header)["kid"].get<std::string>();
    }
    // Only keys of the header's algorithm: an HS256 token is never checked
    // with an RSA public key as its secret (algorithm confusion).
    bool any_key = false;
    bool verified = false;
    const std::string token_z(token);
    for (const JwtKey& key : keys_) {
      if (key.alg != *want) continue;
      if (kid && !key.kid.empty() && key.kid != *kid) continue;
      if (kid && key.kid.empty() && HasKid(*kid)) continue;
      any_key = true;
      jwt_t* jwt = nullptr;
      const int rc = jwt_decode(&jwt, token_z.c_str(),
                                reinterpret_cast<const unsigned char*>(key.material.data()),
                                static_cast<int>(key.material.size()));
      const bool ok = rc == 0 && jwt != nullptr &&
                      jwt_get_alg(jwt) == (*want == JwtAlg::kHs256 ? JWT_ALG_HS256 : JWT_ALG_RS256);
      if (jwt != nullptr) jwt_free(jwt);
      if (ok) {
        verified = true;
        break;
      }
    }
    if (!any_key) {
      return Unauthenticated(absl::StrCat("no ", JwtAlgName(*want),
                                          " key of the server matches the JWT (alg or kid)"));
    }
    if (!verified) return Unauthenticated("the JWT's signature does not verify");
    // The signature covers the payload: its claims can be trusted now.
    const std::optional<Json> claims = DecodeJsonPart(parts[1]);
    if (!claims) return Unauthenticated("the JWT payload is not base64url JSON");
    const double now_s = absl::ToDoubleSeconds(now - absl::UnixEpoch());
    const double leeway_s = absl::ToDoubleSeconds(leeway_);
    if (!claims->contains("exp") || !(*claims)["exp"].is_number()) {
      return Unauthenticated("the JWT has no exp claim");
    }
    if (now_s > (*claims)["exp"].get<double>() + leeway_s) {
      return Unauthenticated("the JWT has expired");
    }
    if (claims->contains("nbf")) {
      if (!(*claims)["nbf"].is_number()) return Unauthenticated("the JWT's nbf is not a number");
      if (now_s + leeway_s < (*claims)["nbf"].get<double>()) {
        return Unauthenticated("the JWT is not valid yet (nbf)");
      }
    }
    if (!issuer_.empty()) {
      if (!claims->contains("iss") || !(*claims)["iss"].is_string() ||
          (*claims)["iss"].get<std::string>() != issuer_) {
        return Unauthenticated("the JWT's issuer (iss) is not the one this server accepts");
      }
    }
    if (!audience_.empty()) {
      bool match = false;
      if (claims->contains("aud")) {
        const Json& aud = (*claims)["aud"];
        if (aud.is_string()) match = aud.get<std::string>() == audience_;
        if (aud.is_array()) {
          for (const Json& a : aud) match = match || (a.is_string() && a.get<std::string>() == audience_);
        }
      }
      if (!match) return Unauthenticated("the JWT's audience (aud) does not name this server");
    }
    JwtClaims out;
    if (!claims->contains("tenant") || !(*claims)["tenant"].is_string() ||
        !IsTenantName((*claims)["tenant"].get<std::string>())) {
      return Unauthenticated(absl::StrCat("the JWT needs a tenant claim (", kTenantRule, ")"));
    }
    out.tenant = (*claims)["tenant"].get<std::string>();
    std::optional<Role> role;
    if (claims->contains("role") && (*claims)["role"].is_string()) {
      role = ParseRole((*claims)["role"].get<std::string>());
    }
    if (!role) return Unauthenticated("the JWT needs a role claim: reader, submitter or admin");
    out.role = *role;
    return out;
  }

 private:
  bool HasKid(const std::string& kid) const {
    for (const JwtKey& key : keys_) {
      if (key.kid == kid) return true;
    }
    return false;
  }

  const std::vector<JwtKey> keys_;
  const std::string issuer_;
  const std::string audience_;
  const absl::Duration leeway_;
};

// ---------------------------------------------------------------------------
// The authenticator.

Authenticator::Authenticator(AuthOptions options, std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)), logger_(std::move(logger)) {}

Authenticator::~Authenticator() = default;

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(
    AuthOptions options, std::shared_ptr<spdlog::logger> logger) {
  if (options.tokens_file.empty() && options.jwt_keys.empty()) {
    return absl::InvalidArgumentError(
        "authentication needs auth_tokens_file or auth_jwt_keys (or both)");
  }
  if (options.jwt_keys.empty() &&
      (!options.jwt_issuer.empty() || !options.jwt_audience.empty())) {
    return absl::InvalidArgumentError(
        "auth_jwt_issuer and auth_jwt_audience need auth_jwt_keys");
  }
  std::unique_ptr<Authenticator> auth(new Authenticator(std::move(options), std::move(logger)));
  const AuthOptions& o = auth->options_;
  if (!o.jwt_keys.empty()) {
    absl::StatusOr<std::vector<JwtKey>> keys = LoadJwtKeys(o.jwt_keys);
    if (!keys.ok()) return keys.status();
    auth->jwt_ = std::make_unique<JwtVerifier>(*std::move(keys), o.jwt_issuer, o.jwt_audience,
                                               o.jwt_leeway);
  }
  absl::MutexLock lock(&auth->mu_);
  auth->table_ = std::make_shared<AuthTable>();
  if (!o.tokens_file.empty()) {
    struct stat st {};
    if (::stat(o.tokens_file.c_str(), &st) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("auth_tokens_file: cannot read ", o.tokens_file));
    }
    absl::StatusOr<std::string> text = ReadWholeFile(o.tokens_file, "auth_tokens_file");
    if (!text.ok()) return text.status();
    absl::StatusOr<AuthTable> table =
        ParseAuthTable(*text, absl::StrCat("auth_tokens_file ", o.tokens_file));
    if (!table.ok()) return table.status();
    auth->table_ = std::make_shared<AuthTable>(*std::move(table));
    auth->stamp_ = {static_cast<uint64_t>(st.st_ino), static_cast<int64_t>(st.st_size),
                    static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
    auth->last_check_ = absl::Now();
  }
  return auth;
}

std::shared_ptr<const AuthTable> Authenticator::table() const {
  absl::MutexLock lock(&mu_);
  return table_;
}

void Authenticator::ReloadNow() { MaybeReload(/*force=*/true); }

void Authenticator::MaybeReload(bool force) {
  if (options_.tokens_file.empty()) return;
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (!force && now - last_check_ < options_.reload_check_interval) return;
  last_check_ = now;
  struct stat st {};
  FileStamp stamp;
  if (::stat(options_.tokens_file.c_str(), &st) == 0) {
    stamp = {static_cast<uint64_t>(st.st_ino), static_cast<int64_t>(st.st_size),
             static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  }
  if (stamp == stamp_) return;
  stamp_ = stamp;
  if (stamp.size < 0) {
    Log(logger_.get(), spdlog::level::err, "auth tokens file not reloaded",
        {{"file", options_.tokens_file},
         {"error", "cannot read the file; the previous tokens stay in force"}});
    return;
  }
  absl::StatusOr<std::string> text = ReadWholeFile(options_.tokens_file, "auth_tokens_file");
  absl::StatusOr<AuthTable> table =
      text.ok() ? ParseAuthTable(*text, absl::StrCat("auth_tokens_file ", options_.tokens_file))
                : absl::StatusOr<AuthTable>(text.status());
  if (!table.ok()) {
    Log(logger_.get(), spdlog::level::err, "auth tokens file not reloaded",
        {{"file", options_.tokens_file},
         {"error", absl::StrCat(table.status().message(),
                                "; the previous tokens stay in force")}});
    return;
  }
  table_ = std::make_shared<AuthTable>(*std::move(table));
  Log(logger_.get(), spdlog::level::info, "auth tokens file reloaded",
      {{"file", options_.tokens_file},
       {"tokens", table_->tokens.size()},
       {"tenants", table_->tenants.size()},
       {"mtls", table_->mtls.size()}});
}

absl::StatusOr<Caller> Authenticator::Identify(absl::string_view authorization,
                                               const std::vector<std::string>& peer_identities) {
  MaybeReload(/*force=*/false);
  const std::shared_ptr<const AuthTable> table = this->table();
  Caller caller;
  caller.restricted = true;
  const auto quota_of = [&table](const std::string& tenant) {
    auto it = table->tenants.find(tenant);
    return it == table->tenants.end() ? TenantQuota() : it->second;
  };
  if (!authorization.empty()) {
    const std::optional<absl::string_view> token = BearerToken(authorization);
    if (!token) {
      return Unauthenticated("the authorization header must be \"Bearer <token>\"");
    }
    Sha256 hash;
    hash.Update(*token);
    const std::array<uint8_t, 32> digest = hash.Digest();
    // Every entry is compared, in constant time, wherever the match is.
    const TokenEntry* found = nullptr;
    for (const TokenEntry& entry : table->tokens) {
      const bool equal = CRYPTO_memcmp(entry.sha256.data(), digest.data(), digest.size()) == 0;
      if (equal && found == nullptr) found = &entry;
    }
    if (found != nullptr) {
      caller.tenant = found->tenant;
      caller.role = found->role;
      caller.method = "token";
      caller.quota = quota_of(caller.tenant);
      return caller;
    }
    if (jwt_ != nullptr && JwtVerifier::LooksLikeJwt(*token)) {
      absl::StatusOr<JwtClaims> claims = jwt_->Verify(*token, absl::Now());
      if (!claims.ok()) return claims.status();
      caller.tenant = claims->tenant;
      caller.role = claims->role;
      caller.method = "jwt";
      caller.quota = quota_of(caller.tenant);
      return caller;
    }
    return Unauthenticated("the bearer token is not known to this server");
  }
  for (const std::string& identity : peer_identities) {
    for (const MtlsEntry& entry : table->mtls) {
      if (entry.identity == identity) {
        caller.tenant = entry.tenant;
        caller.role = entry.role;
        caller.method = "mtls";
        caller.quota = quota_of(caller.tenant);
        return caller;
      }
    }
  }
  return Unauthenticated(
      "credentials required: send \"authorization: Bearer <token>\" (mia --token, MIA_TOKEN "
      "or --token-file)");
}

absl::StatusOr<Caller> Authenticator::Authorize(absl::string_view authorization,
                                                const std::vector<std::string>& peer_identities,
                                                Permission permission) {
  absl::StatusOr<Caller> caller = Identify(authorization, peer_identities);
  if (!caller.ok()) return caller;
  if (permission == Permission::kWrite && caller->role == Role::kReader) {
    return absl::PermissionDeniedError(
        absl::StrCat("permission denied: the reader role of tenant ", caller->tenant,
                     " may only read; creating, cancelling and deleting audits and uploading "
                     "need the submitter role"));
  }
  return caller;
}

}  // namespace mia::server
