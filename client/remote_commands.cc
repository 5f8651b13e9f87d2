#include "client/remote_commands.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/commands.h"
#include "client/spec_from_yaml.h"
#include "core/common/csv.h"
#include "core/common/file_util.h"
#include "core/common/sha256.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/client_interceptor.h"
#include "grpcpp/support/error_details.h"
#include "mia/v1/audit.grpc.pb.h"

namespace mia::client {
namespace {

// Upload chunk size: the API's limit per message.
constexpr size_t kChunkBytes = size_t{1} << 20;
// Large enough for a FULL audit with many ROC curves or a page of 10,000
// score rows; the gRPC default of 4 MiB is not.
constexpr int kMaxReceiveBytes = 64 << 20;

// "abc" and "audits/abc" both name audits/abc.
std::string AuditName(const std::string& name) {
  return absl::StartsWith(name, "audits/") ? name : absl::StrCat("audits/", name);
}

bool IsTerminal(v1::Audit::State state) {
  return state == v1::Audit::SUCCEEDED || state == v1::Audit::FAILED ||
         state == v1::Audit::CANCELLED;
}

std::string StateName(v1::Audit::State state) { return v1::Audit::State_Name(state); }

std::string Time(const google::protobuf::Timestamp& t) {
  return google::protobuf::util::TimeUtil::ToString(t);
}

// An absl::Status message may span lines (every problem of a job file).
void PrintError(const Console& c, const absl::Status& status) {
  for (absl::string_view line : absl::StrSplit(status.message(), '\n')) {
    *c.err << "mia: error: " << line << "\n";
  }
}

// ---------------------------------------------------------------------------
// Error details.

struct Violation {
  std::string field;
  std::string description;
};

// The field violations a server attached to an error: grpc-status-details-bin
// holds a google.rpc.Status whose details may include a google.rpc.BadRequest.
// Details that do not parse are ignored: the message still says what is wrong.
std::vector<Violation> ViolationsFromDetails(const grpc::Status& status) {
  if (status.error_details().empty()) return {};
  google::rpc::Status details;
  if (!grpc::ExtractErrorDetails(status, &details).ok()) return {};
  std::vector<Violation> out;
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::BadRequest bad_request;
    if (!any.Is<google::rpc::BadRequest>() || !any.UnpackTo(&bad_request)) continue;
    for (const google::rpc::BadRequest::FieldViolation& v : bad_request.field_violations()) {
      out.push_back({v.field(), v.description()});
    }
  }
  return out;
}

// Without details, the server's message lists the problems as
// "spec has N problems: a: x; b: y" (or one "a: x").
std::vector<std::string> ProblemLines(const std::string& message) {
  const std::string marker = " problems: ";
  const size_t at = message.find(marker);
  if (absl::StartsWith(message, "spec has ") && at != std::string::npos) {
    return absl::StrSplit(message.substr(at + marker.size()), "; ", absl::SkipEmpty());
  }
  return {message};
}

// ---------------------------------------------------------------------------
// The connection and how failures are told.

// A PEM file named by a TLS option, read whole. InvalidArgument (exit code 2)
// naming the option and path, never the contents.
absl::StatusOr<std::string> ReadTlsFile(const std::string& option, const std::string& path,
                                        bool private_key) {
  constexpr uintmax_t kMaxPemBytes = uintmax_t{1} << 20;
  const std::string where = absl::StrCat(option, " ", path);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": is a folder, not a PEM file"));
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int open_errno = errno;
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": cannot read it",
                     open_errno != 0 ? absl::StrCat(" (", std::strerror(open_errno), ")") : ""));
  }
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxPemBytes) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": larger than 1 MiB, not a PEM file"));
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(where, ": cannot read it"));
  if (private_key) {
    if (absl::StrContains(text, "ENCRYPTED PRIVATE KEY-----") ||
        absl::StrContains(text, "Proc-Type: 4,ENCRYPTED")) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the private key is encrypted; give it unencrypted"));
    }
    if (!absl::StrContains(text, "PRIVATE KEY-----")) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": no PEM private key in it (-----BEGIN PRIVATE KEY-----)"));
    }
  } else if (!absl::StrContains(text, "-----BEGIN CERTIFICATE-----")) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": no PEM certificate in it (-----BEGIN CERTIFICATE-----)"));
  }
  return text;
}

// `server` as gRPC takes it: HOST:PORT ([IPv6]:PORT), or a target URI with a
// scheme gRPC knows (dns:, ipv4:, ipv6:, unix:), passed on as it is. Checked
// before connecting: gRPC would take "localhost" to mean port 443 and fail
// later with a vaguer message.
absl::Status CheckServerAddress(const std::string& server) {
  for (const char* scheme : {"dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:"}) {
    if (absl::StartsWith(server, scheme)) return absl::OkStatus();
  }
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server '", server, "' (MIA_SERVER): ", why,
                     "; expected HOST:PORT, e.g. 127.0.0.1:50051, mia.example.org:50051 or "
                     "[::1]:50051"));
  };
  const size_t colon = server.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  const std::string host = server.substr(0, colon);
  const std::string port = server.substr(colon + 1);
  int number = 0;
  if (port.empty() || !std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port, &number) || number < 1 || number > 65535) {
    return bad("the port must be a number in [1, 65535]");
  }
  if (host.empty()) return bad("no host");
  const bool bracketed = host.front() == '[' && host.back() == ']' && host.size() > 2;
  if (!bracketed && host.find_first_of(":[]/ ") != std::string::npos) {
    return bad(host.find(':') != std::string::npos ? "an IPv6 address goes in brackets"
                                                   : "not a host name or address");
  }
  return absl::OkStatus();
}

// Plaintext, or TLS from the options' files (docs/service.md).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const RemoteOptions& remote) {
  if (remote.tls_cert.empty() != remote.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key go together (MIA_TLS_CERT, MIA_TLS_KEY): the client "
        "certificate and its private key");
  }
  if (!remote.UsesTls()) {
    if (!remote.tls_server_name.empty()) {
      return absl::InvalidArgumentError("--tls-server-name needs TLS: add --tls, or --tls-ca FILE");
    }
    // A server without TLS: on this host or a trusted network.
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions ssl;  // empty pem_root_certs: the system's roots
  if (!remote.tls_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadTlsFile("--tls-ca (MIA_TLS_CA)", remote.tls_ca, false);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!remote.tls_cert.empty()) {
    absl::StatusOr<std::string> cert =
        ReadTlsFile("--tls-cert (MIA_TLS_CERT)", remote.tls_cert, false);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadTlsFile("--tls-key (MIA_TLS_KEY)", remote.tls_key, true);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::SslCredentials(ssl);
  if (credentials == nullptr) {
    return absl::FailedPreconditionError("cannot set up TLS (no root CAs? give --tls-ca FILE)");
  }
  return credentials;
}

// Adds "authorization: Bearer <token>" to every call of a channel: one place
// for every command, over TLS and plaintext alike (gRPC's call credentials
// are refused on insecure channels).
class TokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(const std::string* header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    }
    methods->Proceed();
  }

 private:
  const std::string* const header_;  // the factory's, which the channel keeps
};

class TokenInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(const std::string& token) : header_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new TokenInterceptor(&header_);
  }

 private:
  const std::string header_;
};

// The token of --token / MIA_TOKEN, else of --token-file; empty: none.
// Messages name the option and file, never the token.
absl::StatusOr<std::string> ResolveToken(const RemoteOptions& remote) {
  std::string token = remote.token;
  if (token.empty() && !remote.token_file.empty()) {
    std::ifstream in(remote.token_file, std::ios::binary);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file ", remote.token_file, ": cannot read it"));
    }
    token.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    token = std::string(absl::StripAsciiWhitespace(token));
    if (token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file ", remote.token_file, ": the file is empty"));
    }
  }
  const bool printable = std::all_of(token.begin(), token.end(), [](char c) {
    return c > 0x20 && c < 0x7f;
  });
  if (!printable) {
    return absl::InvalidArgumentError(
        "the token (--token, MIA_TOKEN or --token-file) may hold only printable ASCII without "
        "spaces");
  }
  return token;
}

class Client {
 public:
  // Reads the TLS files, if any; when that fails no channel is made and
  // CheckSetup() says why.
  Client(const RemoteOptions& remote, const Console& console) : remote_(remote), console_(console) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
    // gRPC waits up to 2 minutes between connection attempts by default; a
    // watch waiting for a restarted server should notice it within seconds.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 500);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
    if (absl::Status address = CheckServerAddress(remote.server); !address.ok()) {
      setup_ = address;
      return;
    }
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
        ChannelCredentials(remote);
    if (!credentials.ok()) {
      setup_ = credentials.status();
      return;
    }
    // The name checked against the server's certificate (and sent as SNI and
    // authority) instead of the host part of `server`.
    if (!remote.tls_server_name.empty()) args.SetSslTargetNameOverride(remote.tls_server_name);
    absl::StatusOr<std::string> token = ResolveToken(remote);
    if (!token.ok()) {
      setup_ = token.status();
      return;
    }
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
    if (!token->empty()) interceptors.push_back(std::make_unique<TokenInterceptorFactory>(*token));
    stub_ = v1::AuditService::NewStub(grpc::experimental::CreateCustomChannelWithInterceptors(
        remote.server, *credentials, args, std::move(interceptors)));
  }

  // kExitOk when the channel is set up; else prints why (a TLS file that
  // cannot be read, options that do not go together) and returns the exit
  // code. Every command checks it before its first call.
  int CheckSetup() const {
    if (setup_.ok()) return kExitOk;
    PrintError(console_, setup_);
    return ExitCodeFor(setup_);
  }

  v1::AuditService::Stub* stub() { return stub_.get(); }
  const Console& console() const { return console_; }
  const RemoteOptions& remote() const { return remote_; }

  // Every unary call gets one, so a hung server cannot hang a script.
  void SetDeadline(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::microseconds(
                          static_cast<int64_t>(std::max(0.001, remote_.timeout_seconds) * 1e6)));
  }

  // Prints what went wrong with `what` ("get audits/x") and returns the exit
  // code for it.
  int Fail(const grpc::Status& s, const std::string& what) const {
    std::ostream& err = *console_.err;
    const std::string& msg = s.error_message();
    switch (s.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
        err << "mia: error: cannot reach the mia server at " << remote_.server
            << ": is it running? (" << what << ": " << msg << ")\n";
        if (absl::StrContains(msg, "DNS resolution failed")) {
          err << "mia: note: the host in --server (" << remote_.server
              << ") does not resolve: check its spelling and the DNS, or give an IP address\n";
        } else if (const std::string hint = TlsHint(msg); !hint.empty()) {
          err << "mia: note: " << hint << "\n";
        }
        break;
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        err << "mia: error: " << what << ": the mia server at " << remote_.server
            << " did not answer within " << remote_.timeout_seconds << " s (--timeout)\n";
        break;
      case grpc::StatusCode::INVALID_ARGUMENT:
      case grpc::StatusCode::NOT_FOUND: {
        const bool invalid = s.error_code() == grpc::StatusCode::INVALID_ARGUMENT;
        std::vector<Violation> violations = ViolationsFromDetails(s);
        std::vector<std::string> lines;
        for (const Violation& v : violations) {
          lines.push_back(v.field.empty() ? v.description
                                          : absl::StrCat(v.field, ": ", v.description));
        }
        if (lines.empty()) lines = ProblemLines(msg);
        if (lines.size() == 1) {
          err << "mia: error: " << what << ": " << (invalid ? "invalid request: " : "not found: ")
              << lines[0] << "\n";
        } else {
          err << "mia: error: " << what << ": "
              << (invalid ? "the server refused the request" : "not found") << " (" << lines.size()
              << " problems):\n";
          for (const std::string& line : lines) err << "  " << line << "\n";
        }
        break;
      }
      case grpc::StatusCode::ALREADY_EXISTS:
        err << "mia: error: " << what << ": " << msg
            << " (the request id was used before with a different spec)\n";
        break;
      case grpc::StatusCode::FAILED_PRECONDITION:
        // The server's own store, not the audit, may be what refuses (a
        // read-only or otherwise unusable jobs.db): its message says so, and
        // blaming the audit's state would send the user the wrong way.
        if (absl::StartsWith(msg, "the job store")) {
          err << "mia: error: " << what << ": the server cannot record changes: " << msg << "\n";
        } else {
          err << "mia: error: " << what << ": not possible in the audit's current state: " << msg
              << "\n";
        }
        break;
      case grpc::StatusCode::RESOURCE_EXHAUSTED:
        err << "mia: error: " << what << ": the server is at a limit: " << msg
            << " (retry later, or send less)\n";
        break;
      case grpc::StatusCode::UNIMPLEMENTED:
        err << "mia: error: " << what << ": the server at " << remote_.server
            << " does not implement this call (an older server?): " << msg << "\n";
        break;
      case grpc::StatusCode::UNAUTHENTICATED:
      case grpc::StatusCode::PERMISSION_DENIED:
        err << "mia: error: " << what << ": refused by the server: " << msg << "\n";
        if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED && remote_.token.empty() &&
            remote_.token_file.empty()) {
          err << "mia: note: the server requires credentials: give a token with --token-file "
                 "FILE, MIA_TOKEN or --token (docs/security.md)\n";
        }
        break;
      default:
        err << "mia: error: " << what << ": "
            << StatusCodeName(static_cast<absl::StatusCode>(s.error_code())) << ": " << msg << "\n";
        break;
    }
    return ExitCodeFor(absl::Status(static_cast<absl::StatusCode>(s.error_code()), msg));
  }

  static std::string StatusCodeName(absl::StatusCode code) {
    return absl::AsciiStrToUpper(absl::StatusCodeToString(code));
  }

 private:
  // For an UNAVAILABLE whose reason is not "nothing listens there" (or a
  // draining server): what a TLS mismatch looks like from this side.
  std::string TlsHint(const std::string& msg) const {
    if (absl::StrContains(msg, "Connection refused") || absl::StrContains(msg, "shutting down")) {
      return "";
    }
    if (!remote_.UsesTls()) {
      return "a TLS mismatch is a likely cause: this client speaks plaintext; if the server "
             "uses TLS, add --tls (or --tls-ca FILE; with mutual TLS also --tls-cert and "
             "--tls-key)";
    }
    return absl::StrCat(
        "a TLS mismatch is a likely cause: the handshake failed or the server closed the "
        "connection. Check that the server serves TLS (a plaintext server cannot be reached "
        "with --tls), that its certificate is signed by ",
        remote_.tls_ca.empty() ? "a root CA of this system (else give --tls-ca FILE)"
                               : "the CA in --tls-ca",
        " and names ",
        remote_.tls_server_name.empty() ? "the host in --server (else --tls-server-name NAME)"
                                        : "--tls-server-name",
        ", and whether the server requires a client certificate (mutual TLS: --tls-cert and "
        "--tls-key, signed by its tls_client_ca_file)");
  }

  const RemoteOptions& remote_;
  const Console& console_;
  absl::Status setup_;
  std::unique_ptr<v1::AuditService::Stub> stub_;
};

// ---------------------------------------------------------------------------
// What an audit looks like on a terminal.

std::string Percent(double fraction) {
  return absl::StrFormat("%d%%", static_cast<int>(std::floor(100 * fraction + 1e-9)));
}

// The stage shown for an audit: its progress stage, else its state.
std::string StageOf(const v1::Audit& a) {
  if (!a.progress().stage().empty()) return a.progress().stage();
  return absl::AsciiStrToLower(StateName(a.state()));
}

std::string ProgressText(const v1::Audit& a) {
  const v1::Progress& p = a.progress();
  std::string text = absl::StrCat(StageOf(a), " ", Percent(p.fraction()));
  if (p.models_total() > 0) {
    absl::StrAppend(&text, ", ", p.models_trained(), "/", p.models_total(), " models");
  }
  return text;
}

// One bar per stage, drawn on `err`: redrawn in place on a terminal (a new
// line when the stage changes); otherwise one line per stage, per model and
// per tenth of overall progress, so logs stay short.
class ProgressView {
 public:
  explicit ProgressView(const Console& console) : console_(console) {}

  void Update(const v1::Audit& a) {
    const v1::Progress& p = a.progress();
    const std::string stage = StageOf(a);
    const int tenth = static_cast<int>(std::floor(p.fraction() * 10 + 1e-9));
    const bool new_stage = stage != stage_;
    const bool changed = new_stage || p.models_trained() != models_ || tenth != tenth_;
    if (!console_.tty && !changed) return;
    std::ostream& err = *console_.err;
    if (console_.tty && new_stage && !stage_.empty()) err << "\n";
    // The train stage's bar counts models; the others show overall progress,
    // the only figure the API gives for them.
    const double bar_fraction = stage == "train" && p.models_total() > 0
                                    ? static_cast<double>(p.models_trained()) / p.models_total()
                                    : p.fraction();
    constexpr int kWidth = 24;
    const int filled = std::clamp(static_cast<int>(kWidth * bar_fraction + 1e-9), 0, kWidth);
    std::string line = absl::StrFormat("%-8s [%s%s] %4s", stage, std::string(filled, '#'),
                                       std::string(kWidth - filled, '.'), Percent(p.fraction()));
    if (p.models_total() > 0) {
      absl::StrAppend(&line, "  ", p.models_trained(), "/", p.models_total(), " models");
    }
    if (!p.detail().empty()) absl::StrAppend(&line, "  ", p.detail());
    if (console_.tty) {
      err << "\r" << line << "\033[K";
    } else {
      err << line << "\n";
    }
    err.flush();
    stage_ = stage;
    models_ = p.models_trained();
    tenth_ = tenth;
  }

  void Finish() {
    if (console_.tty && !stage_.empty()) *console_.err << "\n";
    stage_.clear();
  }

 private:
  const Console& console_;
  std::string stage_;
  int models_ = -1;
  int tenth_ = -1;
};

std::string TprText(const v1::AttackTargetResult& r, int column) {
  if (column < 0 || column >= r.tpr_at_fpr_size()) return "-";
  const v1::TprAtFpr& t = r.tpr_at_fpr(column);
  return t.resolved() ? absl::StrFormat("%.2f%%", 100 * t.tpr()) : "unresolved";
}

// The headline table, as `mia score` prints it: one row per (attack, target),
// then the mean over targets when there are several.
void PrintResultTable(const v1::AuditResult& result, std::ostream& out) {
  auto column = [&](double fpr) {
    for (int k = 0; k < result.fprs_size(); ++k) {
      if (std::fabs(result.fprs(k) - fpr) <= 1e-12) return k;
    }
    return -1;
  };
  const int at_1 = column(0.01), at_01 = column(0.001);
  out << absl::StrFormat("%-34s %6s %8s %17s %12s %12s %8s %8s\n", "attack", "target", "AUC",
                         "AUC CI", "TPR@1%FPR", "TPR@0.1%FPR", "eps_lb", "excluded");
  for (const v1::AttackTargetResult& r : result.results()) {
    const std::string ci =
        r.has_auc_ci() ? absl::StrFormat("[%6.4f, %6.4f]", r.auc_ci().low(), r.auc_ci().high())
                       : "-";
    const std::string eps = r.has_epsilon() ? absl::StrFormat("%.3f", r.epsilon().epsilon()) : "-";
    out << absl::StrFormat("%-34s %6d %8.4f %17s %12s %12s %8s %8d\n", r.attack(), r.target(),
                           r.auc(), ci, TprText(r, at_1), TprText(r, at_01), eps, r.excluded());
  }
  if (result.targets_size() > 1) {
    for (const v1::AttackSummary& s : result.summaries()) {
      out << absl::StrFormat("%-34s %6s %8.4f +- %.4f over %d targets\n", s.attack(), "mean",
                             s.auc().mean(), s.auc().stddev(), s.auc().count());
    }
  }
}

void PrintResultWarnings(const v1::AuditResult& result, std::ostream& err) {
  for (const std::string& w : result.warnings()) err << "mia: warning: " << w << "\n";
  for (const v1::AttackTargetResult& r : result.results()) {
    for (const std::string& w : r.warnings()) {
      err << "mia: warning: " << r.attack() << " (target " << r.target() << "): " << w << "\n";
    }
  }
}

std::string ErrorText(const v1::Error& e) {
  std::string text = e.code().empty() ? e.message() : absl::StrCat(e.code(), ": ", e.message());
  if (!e.stage().empty()) text = absl::StrCat("in stage ", e.stage(), ": ", text);
  if (!e.field_path().empty()) absl::StrAppend(&text, " (", e.field_path(), ")");
  return text;
}

// A message (an audit, a page of them) as the API's JSON (proto field
// names). Pretty for `get --json`; for scripts (`list --json`, `watch
// --json`) one line with every field, so that a field at its default value is
// there too rather than absent.
std::optional<std::string> MessageJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions print;
  print.add_whitespace = pretty;
  print.preserve_proto_field_names = true;
  print.always_print_primitive_fields = !pretty;
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(message, &text, print).ok()) return std::nullopt;
  if (!absl::EndsWith(text, "\n")) text += "\n";
  return text;
}

// The verdict of the audit's policy, when it had one, as `mia score` prints
// it; kExitPolicyFail on FAIL.
int PolicyOutcome(const v1::AuditResult& result, std::ostream& out) {
  if (!result.has_policy()) return kExitOk;
  const v1::PolicyVerdict& v = result.policy();
  int failed = 0;
  for (const v1::PolicyRuleResult& r : v.rules()) failed += r.pass() ? 0 : 1;
  out << absl::StrFormat("policy: %s (%d rule checks, %d failed; judged on the %s)\n",
                         v.pass() ? "PASS" : "FAIL", v.rules_size(), failed,
                         v.use() == "upper_ci" ? "upper ends of the intervals" : "estimates");
  for (const v1::PolicyRuleResult& r : v.rules()) {
    if (r.pass()) continue;
    const std::string value = r.has_value() ? absl::StrFormat("%.6g", r.value()) : r.note();
    out << absl::StrFormat("  FAIL %s: %s, target %d: %s > %.6g\n", r.rule(), r.attack(),
                           r.target(), value, r.limit());
  }
  return v.pass() ? kExitOk : kExitPolicyFail;
}

// How a finished audit ends the command: the summary table (unless `json`:
// the last snapshot line holds the result) and exit 0 when it SUCCEEDED
// (kExitPolicyFail when its policy's verdict is FAIL), kExitAuditFailed
// otherwise.
int Outcome(const v1::Audit& a, const Console& c, bool json) {
  switch (a.state()) {
    case v1::Audit::SUCCEEDED:
      if (!json) PrintResultTable(a.result(), *c.out);
      PrintResultWarnings(a.result(), *c.err);
      // Its name and how to fetch the files: the folder on the server is no
      // place a client can reach.
      *c.err << a.name() << " SUCCEEDED; its report: mia report " << a.name() << " --out DIR\n";
      return PolicyOutcome(a.result(), json ? *c.err : *c.out);
    case v1::Audit::FAILED:
      *c.err << "mia: error: " << a.name() << " FAILED " << ErrorText(a.error()) << "\n";
      return kExitAuditFailed;
    case v1::Audit::CANCELLED:
      *c.err << "mia: error: " << a.name() << " was CANCELLED\n";
      return kExitAuditFailed;
    default:
      *c.err << "mia: error: " << a.name() << " is still " << StateName(a.state()) << "\n";
      return kExitFailure;
  }
}

// GetAudit without printing anything.
grpc::Status TryGetAudit(Client& client, const std::string& name, v1::AuditView view,
                         v1::Audit* audit) {
  grpc::ClientContext ctx;
  client.SetDeadline(&ctx);
  v1::GetAuditRequest request;
  request.set_name(name);
  request.set_view(view);
  return client.stub()->GetAudit(&ctx, request, audit);
}

// GetAudit; returns an exit code (kExitOk with *audit set).
int GetAudit(Client& client, const std::string& name, v1::AuditView view, v1::Audit* audit) {
  const grpc::Status status = TryGetAudit(client, name, view, audit);
  if (!status.ok()) return client.Fail(status, absl::StrCat("get ", name));
  return kExitOk;
}

// What a server that is going away, restarting or being replaced looks like
// from a watch: the stream is cut (CANCELLED), nothing answers (UNAVAILABLE),
// or an answer comes too late (DEADLINE_EXCEEDED).
bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::CANCELLED ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// The longest wait between two reconnection attempts.
constexpr double kMaxBackoffSeconds = 15;

// Shows an audit's progress until it ends, then its outcome; with `json` one
// JSON line per snapshot on `out` instead of bars and the table. A stream
// that breaks after the server was reached (a drain, a restart, a rolling
// update) is resumed from the last version seen, with backoff, for up to
// reconnect_timeout_seconds without progress; then exit 5. `server_reached`:
// the caller already talked to the server (submit --follow created the audit).
int Follow(Client& client, const std::string& name, int64_t from_version, bool json,
           bool server_reached) {
  const Console& c = client.console();
  const RemoteOptions& remote = client.remote();
  ProgressView view(c);
  int64_t version = from_version;
  double backoff = remote.reconnect_backoff_seconds;
  // The server answered: a failure from now on may be it going away.
  bool reached = server_reached;
  // When the watch last made progress, or first broke since then.
  std::optional<absl::Time> broken_since;
  auto show = [&](const v1::Audit& a) {
    if (!json) {
      view.Update(a);
      return;
    }
    if (std::optional<std::string> line = MessageJson(a, /*pretty=*/false)) *c.out << *line;
    c.out->flush();
  };
  auto finish = [&](const v1::Audit& a) {
    // A final state read by GetAudit after the stream is news to a script.
    if (json && a.version() > version) show(a);
    view.Finish();
    return Outcome(a, c, json);
  };
  while (true) {
    grpc::ClientContext ctx;
    v1::WatchAuditRequest request;
    request.set_name(name);
    request.set_from_version(version);
    std::unique_ptr<grpc::ClientReader<v1::WatchAuditResponse>> reader =
        client.stub()->WatchAudit(&ctx, request);
    v1::WatchAuditResponse response;
    std::optional<v1::Audit> final_snapshot;
    const int64_t version_at_start = version;
    bool checked_on_heartbeat = false;
    while (reader->Read(&response)) {
      reached = true;
      if (response.has_heartbeat()) {
        // Resuming at or after the final version: nothing more will come, so
        // ask once whether the audit already ended.
        if (checked_on_heartbeat || version == 0) continue;
        checked_on_heartbeat = true;
        v1::Audit current;
        if (TryGetAudit(client, name, v1::AUDIT_VIEW_FULL, &current).ok() &&
            IsTerminal(current.state())) {
          final_snapshot = std::move(current);
          break;
        }
        continue;
      }
      if (!response.has_snapshot()) continue;
      const v1::Audit& a = response.snapshot();
      if (a.version() <= version) continue;  // already shown before a reconnect
      show(a);
      version = a.version();
      if (IsTerminal(a.state())) {
        final_snapshot = a;
        break;
      }
    }
    // The server ends the stream after the final snapshot; cancelling makes
    // Finish return at once even if it does not.
    if (final_snapshot.has_value()) ctx.TryCancel();
    grpc::Status status = reader->Finish();
    if (final_snapshot.has_value()) return finish(*final_snapshot);
    // A draining server refuses new watches: it was reached all the same.
    if (absl::StrContains(status.error_message(), "shutting down")) reached = true;
    if (version > version_at_start) {
      broken_since.reset();
      backoff = remote.reconnect_backoff_seconds;
    }
    v1::Audit::State state = v1::Audit::STATE_UNSPECIFIED;
    if (status.ok()) {
      // Ended without a final snapshot (a draining server, or nothing newer
      // than from_version): the audit itself says whether it is over.
      v1::Audit current;
      status = TryGetAudit(client, name, v1::AUDIT_VIEW_FULL, &current);
      if (status.ok() && IsTerminal(current.state())) return finish(current);
      if (status.ok()) state = current.state();
    } else if (!reached && status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      // Never reached: a wrong address or a server that is not running is
      // reported at once rather than waited for.
      view.Finish();
      return client.Fail(status, absl::StrCat("watch ", name));
    }
    // A server that was reached is given time to come back.
    const bool retryable = status.ok() || (IsTransient(status.error_code()) && reached);
    const absl::Time now = absl::Now();
    if (!broken_since.has_value()) broken_since = now;
    const double waited = absl::ToDoubleSeconds(now - *broken_since);
    if (!retryable || remote.reconnect_timeout_seconds <= 0 ||
        waited + backoff > remote.reconnect_timeout_seconds) {
      view.Finish();
      if (retryable && remote.reconnect_timeout_seconds > 0) {
        *c.err << "mia: error: watch " << name << ": gave up reconnecting after "
               << absl::StrFormat("%.0f", waited) << " s (--reconnect-timeout "
               << remote.reconnect_timeout_seconds << ")\n";
        if (!status.ok()) client.Fail(status, absl::StrCat("watch ", name));
        return kExitUnavailable;
      }
      if (status.ok()) {
        *c.err << "mia: error: watch " << name << ": the stream ended while the audit is "
               << StateName(state) << "\n";
        return kExitFailure;
      }
      return client.Fail(status, absl::StrCat("watch ", name));
    }
    *c.err << (c.tty ? "\n" : "") << "mia: watch of " << name << " interrupted ("
           << (status.ok()
                   ? std::string("the stream ended")
                   : Client::StatusCodeName(static_cast<absl::StatusCode>(status.error_code())))
           << "); reconnecting from version " << version << " in " << absl::StrFormat("%g", backoff)
           << " s\n";
    std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
    backoff = std::min(std::max(backoff * 2, 0.1), kMaxBackoffSeconds);
  }
}

// Streams `path` to UploadArtifact; returns an exit code (kExitOk with
// *artifact_id set).
int UploadFile(Client& client, const std::string& path, std::string* artifact_id) {
  const Console& c = client.console();
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    *c.err << "mia: error: " << path
           << ": is a folder; upload takes one file (a folder bundle must be an .npz)\n";
    return kExitInvalidInput;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *c.err << "mia: error: " << path << ": cannot open the file\n";
    return kExitNotFound;
  }
  // The header carries size and checksum, so the file is read twice rather
  // than held in memory.
  std::string buffer(kChunkBytes, '\0');
  Sha256 sha;
  int64_t size = 0;
  while (in.read(buffer.data(), buffer.size()) || in.gcount() > 0) {
    sha.Update(buffer.data(), static_cast<size_t>(in.gcount()));
    size += in.gcount();
  }
  if (in.bad()) {
    *c.err << "mia: error: " << path << ": read failed\n";
    return kExitFailure;
  }
  const std::string digest = sha.HexDigest();
  in.clear();
  in.seekg(0);

  grpc::ClientContext ctx;
  v1::Artifact artifact;
  std::unique_ptr<grpc::ClientWriter<v1::UploadArtifactRequest>> writer =
      client.stub()->UploadArtifact(&ctx, &artifact);
  v1::UploadArtifactRequest request;
  v1::ArtifactHeader* header = request.mutable_header();
  header->set_filename(std::filesystem::path(path).filename().string());
  header->set_size(size);
  header->set_sha256(digest);
  bool open = writer->Write(request);
  int64_t sent = 0;
  // A failed Write means the server ended the call; Finish says why.
  while (open && (in.read(buffer.data(), buffer.size()) || in.gcount() > 0)) {
    request.set_chunk(buffer.data(), static_cast<size_t>(in.gcount()));
    sent += in.gcount();
    open = writer->Write(request);
  }
  if (open) writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok()) return client.Fail(status, absl::StrCat("upload ", path));
  if (sent != size) {
    *c.err << "mia: error: " << path << ": the file changed while it was uploaded\n";
    return kExitFailure;
  }
  if (artifact.artifact_id() != digest) {
    *c.err << "mia: warning: " << path << ": the server's artifact id " << artifact.artifact_id()
           << " is not the file's sha256 " << digest << "\n";
  }
  *artifact_id = artifact.artifact_id();
  return kExitOk;
}


// A report file name from the server must stay inside the output folder.
bool SafeFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

// Downloads one report file into `dir`, verified, then renamed into place.
int DownloadReportFile(Client& client, const std::string& name, const v1::ReportFile& file,
                       const std::string& dir) {
  const Console& c = client.console();
  const std::string final_path = (std::filesystem::path(dir) / file.file()).string();
  const std::string temp_path = UniqueTempPath(final_path);
  std::ofstream out(temp_path, std::ios::binary | std::ios::trunc);
  if (!out) {
    *c.err << "mia: error: " << temp_path << ": cannot create the file\n";
    return kExitFailure;
  }
  auto discard = [&] {
    out.close();
    std::error_code ec;
    std::filesystem::remove(temp_path, ec);
  };
  grpc::ClientContext ctx;
  v1::GetReportFileRequest request;
  request.set_name(name);
  request.set_file(file.file());
  std::unique_ptr<grpc::ClientReader<v1::FileChunk>> reader =
      client.stub()->GetReportFile(&ctx, request);
  v1::FileChunk chunk;
  Sha256 sha;
  int64_t received = 0;
  int64_t total = -1;
  std::string server_sha;
  std::string problem;
  while (reader->Read(&chunk)) {
    if (chunk.offset() != received) {
      problem =
          absl::StrCat("a chunk at offset ", chunk.offset(), " where ", received, " was expected");
      ctx.TryCancel();
      break;
    }
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    sha.Update(chunk.data());
    received += static_cast<int64_t>(chunk.data().size());
    total = chunk.total_size();
    if (!chunk.sha256().empty()) server_sha = chunk.sha256();
  }
  const grpc::Status status = reader->Finish();
  if (!problem.empty()) {
    discard();
    *c.err << "mia: error: report file " << file.file() << ": " << problem << "; not written\n";
    return kExitFailure;
  }
  if (!status.ok()) {
    discard();
    return client.Fail(status, absl::StrCat("report file ", file.file()));
  }
  out.close();
  if (!out) {
    discard();
    *c.err << "mia: error: " << temp_path << ": write failed (disk full?)\n";
    return kExitFailure;
  }
  const std::string digest = sha.HexDigest();
  const std::string expected = !server_sha.empty() ? server_sha : file.sha256();
  if (expected.empty()) {
    problem = "the server sent no checksum";
  } else if (digest != expected || (!file.sha256().empty() && digest != file.sha256())) {
    problem = absl::StrCat("checksum mismatch: received data has sha256 ", digest,
                           ", the server says ", expected);
  } else if ((total >= 0 && received != total) || received != file.size_bytes()) {
    problem =
        absl::StrCat("size mismatch: received ", received, " bytes, expected ", file.size_bytes());
  }
  if (!problem.empty()) {
    discard();
    *c.err << "mia: error: report file " << file.file() << ": " << problem << "; not written\n";
    return kExitFailure;
  }
  const absl::Status committed = CommitTempFile(temp_path, final_path);
  if (!committed.ok()) {
    discard();
    PrintError(c, committed);
    return ExitCodeFor(committed);
  }
  *c.out << final_path << "\n";
  return kExitOk;
}

// "2 files: a, b".
std::string FileList(const google::protobuf::RepeatedPtrField<std::string>& files) {
  return absl::StrCat(files.size(), " file", files.size() == 1 ? "" : "s", ": ",
                      absl::StrJoin(files, ", "));
}

// For a SUCCEEDED audit: says which report files the server lost (a
// SUCCEEDED audit without figures otherwise looks whole). Best effort: a
// listing that fails says nothing, the audit was shown.
void WarnMissingReportFiles(Client& client, const std::string& name) {
  grpc::ClientContext ctx;
  client.SetDeadline(&ctx);
  v1::ListReportFilesRequest request;
  request.set_name(name);
  v1::ListReportFilesResponse listing;
  if (!client.stub()->ListReportFiles(&ctx, request, &listing).ok()) return;
  if (listing.missing_files().empty()) return;
  *client.console().err << "mia: warning: " << name << ": the server lost "
                        << FileList(listing.missing_files())
                        << " of its report (figures from them are not shown)\n";
}

std::optional<v1::Audit::State> ParseState(const std::string& text) {
  if (text.empty()) return v1::Audit::STATE_UNSPECIFIED;
  v1::Audit::State state;
  if (!v1::Audit::State_Parse(absl::AsciiStrToUpper(text), &state) ||
      state == v1::Audit::STATE_UNSPECIFIED) {
    return std::nullopt;
  }
  return state;
}

}  // namespace

int RunSubmit(const RemoteOptions& remote, const SubmitOptions& options, const Console& console) {
  absl::StatusOr<ConvertedSpec> converted = SpecFromYamlFile(options.job_file);
  if (!converted.ok()) {
    PrintError(console, converted.status());
    return ExitCodeFor(converted.status());
  }
  for (const std::string& note : converted->notes) *console.err << "mia: note: " << note << "\n";
  if (!options.policy_file.empty()) {
    absl::StatusOr<v1::PolicySection> policy = PolicyFromYamlFile(options.policy_file);
    absl::Status set = policy.status();
    if (set.ok()) set = SetSpecPolicy(*policy, options.job_file, &converted->spec);
    if (!set.ok()) {
      PrintError(console, set);
      return ExitCodeFor(set);
    }
  }
  v1::CreateAuditRequest request;
  for (const std::string& label : options.labels) {
    const size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      *console.err << "mia: error: --label '" << label << "': expected key=value\n";
      return kExitInvalidInput;
    }
    (*request.mutable_labels())[label.substr(0, eq)] = label.substr(eq + 1);
  }
  Client client(remote, console);
  if (const int rc = client.CheckSetup(); rc != kExitOk) return rc;
  for (const PendingUpload& upload : converted->uploads) {
    std::string artifact_id;
    const int rc = UploadFile(client, upload.local_path, &artifact_id);
    if (rc != kExitOk) return rc;
    const absl::Status set = SetUploadedArtifact(upload.field, artifact_id, &converted->spec);
    if (!set.ok()) {
      PrintError(console, set);
      return kExitFailure;
    }
    *console.err << "uploaded " << upload.local_path << " (" << upload.field << ") as artifact "
                 << artifact_id << "\n";
  }
  *request.mutable_spec() = converted->spec;
  request.set_request_id(options.request_id);
  request.set_priority(options.priority);
  grpc::ClientContext ctx;
  client.SetDeadline(&ctx);
  v1::Audit audit;
  const grpc::Status status = client.stub()->CreateAudit(&ctx, request, &audit);
  if (!status.ok()) return client.Fail(status, absl::StrCat("submit ", options.job_file));
  *console.out << audit.name() << "\n";
  console.out->flush();
  *console.err << "submitted " << audit.name() << " (" << StateName(audit.state()) << ")\n";
  if (!options.follow) return kExitOk;
  return Follow(client, audit.name(), 0, /*json=*/false, /*reached=*/true);
}

int RunGet(const RemoteOptions& remote, const std::string& name, bool json,
           const Console& console) {
  Client client(remote, console);
  if (const int rc = client.CheckSetup(); rc != kExitOk) return rc;
  v1::Audit a;
  const int rc = GetAudit(client, AuditName(name), v1::AUDIT_VIEW_FULL, &a);
  if (rc != kExitOk) return rc;
  std::ostream& out = *console.out;
  if (a.state() == v1::Audit::SUCCEEDED) WarnMissingReportFiles(client, a.name());
  if (json) {
    const std::optional<std::string> text = MessageJson(a, /*pretty=*/true);
    if (!text.has_value()) {
      *console.err << "mia: error: the audit does not convert to JSON\n";
      return kExitFailure;
    }
    out << *text;
    return kExitOk;
  }
  out << absl::StrFormat("%-11s %s\n", "name:", a.name());
  out << absl::StrFormat("%-11s %s (version %d)\n", "state:", StateName(a.state()), a.version());
  if (a.has_create_time()) out << absl::StrFormat("%-11s %s\n", "created:", Time(a.create_time()));
  if (a.has_start_time()) out << absl::StrFormat("%-11s %s\n", "started:", Time(a.start_time()));
  if (a.has_end_time()) out << absl::StrFormat("%-11s %s\n", "ended:", Time(a.end_time()));
  std::string progress = ProgressText(a);
  if (!a.progress().detail().empty()) absl::StrAppend(&progress, " (", a.progress().detail(), ")");
  out << absl::StrFormat("%-11s %s\n", "progress:", progress);
  if (a.priority() != 0) out << absl::StrFormat("%-11s %d\n", "priority:", a.priority());
  if (!a.request_id().empty()) out << absl::StrFormat("%-11s %s\n", "request:", a.request_id());
  if (!a.labels().empty()) {
    // Sorted: map iteration order of a proto map is unspecified.
    std::map<std::string, std::string> labels(a.labels().begin(), a.labels().end());
    out << absl::StrFormat("%-11s %s\n",
                           "labels:", absl::StrJoin(labels, ", ", absl::PairFormatter("=")));
  }
  if (a.has_error()) out << absl::StrFormat("%-11s %s\n", "error:", ErrorText(a.error()));
  if (a.has_result()) {
    out << "\n";
    PrintResultTable(a.result(), out);
    PrintResultWarnings(a.result(), *console.err);
    PolicyOutcome(a.result(), out);  // shown; `get` exits 0 whatever the verdict
  }
  return kExitOk;
}

int RunList(const RemoteOptions& remote, const ListOptions& options, const Console& console) {
  const std::optional<v1::Audit::State> state = ParseState(options.state);
  if (!state.has_value()) {
    *console.err << "mia: error: --state '" << options.state
                 << "': one of pending, running, succeeded, failed, cancelled\n";
    return kExitInvalidInput;
  }
  Client client(remote, console);
  if (const int rc = client.CheckSetup(); rc != kExitOk) return rc;
  std::ostream& out = *console.out;
  std::string token = options.page_token;
  int64_t count = 0;
  bool header_written = false;
  v1::ListAuditsResponse all;  // --json: every page's audits in one object
  while (true) {
    grpc::ClientContext ctx;
    client.SetDeadline(&ctx);
    v1::ListAuditsRequest request;
    request.set_page_size(options.page_size);
    request.set_page_token(token);
    request.set_state(*state);
    request.set_view(v1::AUDIT_VIEW_BASIC);
    v1::ListAuditsResponse response;
    const grpc::Status status = client.stub()->ListAudits(&ctx, request, &response);
    if (!status.ok()) return client.Fail(status, "list");
    token = response.next_page_token();
    count += response.audits_size();
    if (options.json) {
      for (v1::Audit& a : *response.mutable_audits()) *all.add_audits() = std::move(a);
      all.set_next_page_token(options.all ? "" : token);
      if (token.empty() || !options.all) break;
      continue;
    }
    if (!header_written) {
      out << absl::StrFormat("%-28s %-10s %-24s %-30s %s\n", "NAME", "STATE", "PROGRESS", "CREATED",
                             "LABELS");
      header_written = true;
    }
    for (const v1::Audit& a : response.audits()) {
      std::map<std::string, std::string> labels(a.labels().begin(), a.labels().end());
      out << absl::StrFormat("%-28s %-10s %-24s %-30s %s\n", a.name(), StateName(a.state()),
                             ProgressText(a), a.has_create_time() ? Time(a.create_time()) : "-",
                             absl::StrJoin(labels, ",", absl::PairFormatter("=")));
    }
    if (token.empty()) break;
    if (!options.all) {
      *console.err << "mia: more audits follow: --all, or --page-token " << token << "\n";
      break;
    }
  }
  if (options.json) {
    const std::optional<std::string> text = MessageJson(all, /*pretty=*/false);
    if (!text.has_value()) {
      *console.err << "mia: error: the audits do not convert to JSON\n";
      return kExitFailure;
    }
    out << *text;
  }
  *console.err << count << " audit" << (count == 1 ? "" : "s") << "\n";
  return kExitOk;
}

int RunWatch(const RemoteOptions& remote, const std::string& name, int64_t from_version, bool json,
             const Console& console) {
  Client client(remote, console);
  if (const int rc = client.CheckSetup(); rc != kExitOk) return rc;
  return Follow(client, AuditName(name), from_version, json, /*reached=*/false);
}

int RunCancel(const RemoteOptions& remote, const std::string& name, const Console& console) {
  Client client(remote, console);
  if (const int rc = client.CheckSetup(); rc != kExitOk) return rc;
  grpc::ClientContext ctx;
  client.SetDeadline(&ctx);
  v1::CancelAuditRequest request;
  request.set_name(AuditName(name));
  v1::Audit a;
  const grpc::Status status = client.stub()->CancelAudit(&ctx, request, &a);
  if (!status.ok()) return client.Fail(status, absl::StrCat("cancel ", request.name()));
  *console.out << a.name() << " " << StateName(a.state()) << "\n";
  if (a.state() == v1::Audit::RUNNING) {
    *console.err << "cancellation requested: it stops at the next check (`mia watch " << a.name()
                 << "`)\n";
  }
  return kExitOk;
}

int RunDelete(const RemoteOptions& remote, const std::string& name, const Console& console) {
  Client client(remote, console);
  if (const int rc = client.CheckSetup(); rc != kExitOk) return rc;
  grpc::ClientContext ctx;
  client.SetDeadline(&ctx);
  v1::DeleteAuditRequest request;
  request.set_name(AuditName(name));
  google::protobuf::Empty empty;
  const grpc::Status status = client.stub()->DeleteAudit(&ctx, request, &empty);
  if (!status.ok()) return client.Fail(status, absl::StrCat("delete ", request.name()));
  *console.err << "deleted " << request.name() << "\n";
  return kExitOk;
}

int RunScores(const RemoteOptions& remote, const ScoresOptions& options, const Console& console) {
  Client client(remote, console);
  if (const int rc = client.CheckSetup(); rc != kExitOk) return rc;
  const std::string name = AuditName(options.name);
  std::ofstream file;
  std::string temp_path;
  if (!options.out.empty()) {
    temp_path = UniqueTempPath(options.out);
    file.open(temp_path, std::ios::binary | std::ios::trunc);
    if (!file) {
      *console.err << "mia: error: " << options.out << ": cannot create the file\n";
      return kExitFailure;
    }
  }
  std::ostream& out = options.out.empty() ? *console.out : file;
  auto discard = [&] {
    if (temp_path.empty()) return;
    file.close();
    std::error_code ec;
    std::filesystem::remove(temp_path, ec);
  };
  std::string token;
  int64_t rows = 0;
  bool header_written = false;
  while (true) {
    grpc::ClientContext ctx;
    client.SetDeadline(&ctx);
    v1::ListAuditScoresRequest request;
    request.set_name(name);
    request.set_page_size(options.page_size);
    request.set_page_token(token);
    if (options.target.has_value()) request.set_target(*options.target);
    v1::ListAuditScoresResponse response;
    const grpc::Status status = client.stub()->ListAuditScores(&ctx, request, &response);
    if (!status.ok()) {
      discard();
      return client.Fail(status, absl::StrCat("scores ", name));
    }
    if (!header_written) {
      out << "row_id,target,member";
      for (const std::string& attack : response.attacks()) out << "," << CsvField(attack);
      out << "\n";
      header_written = true;
    }
    for (const v1::ScoreRow& row : response.rows()) {
      out << row.row_id() << "," << row.target() << "," << (row.member() ? 1 : 0);
      for (double s : row.scores()) {
        // As the report's scores.csv: exact doubles, an empty field for NaN.
        out << "," << (std::isnan(s) ? std::string() : CsvNumber(s));
      }
      out << "\n";
      ++rows;
    }
    token = response.next_page_token();
    if (token.empty()) break;
  }
  if (!temp_path.empty()) {
    file.close();
    if (!file) {
      discard();
      *console.err << "mia: error: " << options.out << ": write failed (disk full?)\n";
      return kExitFailure;
    }
    const absl::Status committed = CommitTempFile(temp_path, options.out);
    if (!committed.ok()) {
      discard();
      PrintError(console, committed);
      return ExitCodeFor(committed);
    }
    *console.err << "wrote " << rows << " rows to " << options.out << "\n";
  }
  return kExitOk;
}

// The audit's report files with their sizes and checksums (ListReportFiles).
static int ListReportFiles(Client& client, const std::string& audit,
                           v1::ListReportFilesResponse* listing) {
  grpc::ClientContext ctx;
  client.SetDeadline(&ctx);
  v1::ListReportFilesRequest request;
  request.set_name(audit);
  const grpc::Status status = client.stub()->ListReportFiles(&ctx, request, listing);
  if (!status.ok()) return client.Fail(status, absl::StrCat("report ", audit));
  return kExitOk;
}

int RunReport(const RemoteOptions& remote, const std::string& name, const std::string& out_dir,
              const Console& console) {
  Client client(remote, console);
  if (const int rc = client.CheckSetup(); rc != kExitOk) return rc;
  const std::string audit = AuditName(name);
  v1::ListReportFilesResponse listing;
  if (const int rc = ListReportFiles(client, audit, &listing); rc != kExitOk) return rc;
  for (const v1::ReportFile& file : listing.files()) {
    if (!SafeFileName(file.file())) {
      *console.err << "mia: error: report " << audit
                   << ": the server listed a file name that is not a plain name; nothing "
                      "written for it\n";
      return kExitFailure;
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    *console.err << "mia: error: " << out_dir << ": cannot create the folder: " << ec.message()
                 << "\n";
    return kExitFailure;
  }
  for (const v1::ReportFile& file : listing.files()) {
    const int rc = DownloadReportFile(client, audit, file, out_dir);
    if (rc != kExitOk) return rc;
  }
  *console.err << "downloaded " << listing.files_size() << " report files of " << audit << " to "
               << out_dir << "\n";
  // What is there is downloaded; an incomplete report must not pass as whole.
  if (!listing.missing_files().empty()) {
    *console.err << "mia: error: report " << audit << " is incomplete: the server lost "
                 << FileList(listing.missing_files()) << "\n";
    return kExitNotFound;
  }
  return kExitOk;
}

int FetchReportFile(const RemoteOptions& remote, const std::string& name, const std::string& file,
                    const std::string& dir, const Console& console) {
  Client client(remote, console);
  if (const int rc = client.CheckSetup(); rc != kExitOk) return rc;
  const std::string audit = AuditName(name);
  // The listing gives the size and checksum the download is checked against.
  v1::ListReportFilesResponse listing;
  if (const int rc = ListReportFiles(client, audit, &listing); rc != kExitOk) return rc;
  for (const v1::ReportFile& f : listing.files()) {
    if (f.file() == file) return DownloadReportFile(client, audit, f, dir);
  }
  *console.err << "mia: error: " << audit << " has no report file " << file << "\n";
  return kExitNotFound;
}

int RunUpload(const RemoteOptions& remote, const std::string& file, const Console& console) {
  Client client(remote, console);
  if (const int rc = client.CheckSetup(); rc != kExitOk) return rc;
  std::string artifact_id;
  const int rc = UploadFile(client, file, &artifact_id);
  if (rc != kExitOk) return rc;
  *console.out << artifact_id << "\n";
  *console.err << "uploaded " << file << "; reference it as artifact:" << artifact_id << "\n";
  return kExitOk;
}

}  // namespace mia::client
