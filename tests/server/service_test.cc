// The AuditService end to end: an in-process AuditServer on a free port with
// the real job manager, SQLite store and bundle runner on a synthetic signals
// bundle, driven through the generated C++ stub. Every wait is on a condition
// with a generous deadline; no wall-clock duration is asserted beyond
// functional bounds with wide margins (a scrape beside a slow client).
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/audit/synthetic.h"
#include "core/common/sha256.h"
#include "core/io/npy.h"
#include "core/storage/object_store.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "mia/v1/audit.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "server/audit_server.h"
#include "server/dashboard.h"
#include "server/job_router.h"
#include "server/json_log.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "spdlog/sinks/ostream_sink.h"
#include "tests/common/postgres_fixture.h"
#include "tests/common/run_sql.h"
#include "tests/common/write_failures.h"
#include "tests/io/zeros_npz.h"
#include "tests/storage/s3_test_util.h"

namespace mia::server {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::mia::v1;
using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr int64_t kMaxMessageBytes = 64 << 10;
constexpr int64_t kMaxUploadBytes = 1 << 20;
constexpr int kMaxWatchers = 4;
constexpr int kPoints = 2000;

// A fresh, empty folder for one test.
std::string TempDir() {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(env != nullptr ? env : ::testing::TempDir()) / "service_test" /
                       absl::StrCat(info->test_suite_name(), ".", info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return fs::weakly_canonical(dir).string();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Holds jobs labelled "hold" until opened (or the job is told to stop), so a
// test can keep one job RUNNING and others PENDING behind it.
class Gate {
 public:
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  // Returns false when the job was told to stop while held.
  bool Wait(const jobs::RunContext& ctx) {
    absl::MutexLock lock(&mu_);
    while (!open_ && !ctx.cancelled()) {
      mu_.AwaitWithTimeout(absl::Condition(&open_), absl::Milliseconds(10));
    }
    return open_ || !ctx.cancelled();
  }

 private:
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
};

class GateRunner final : public jobs::JobRunner {
 public:
  GateRunner(jobs::JobRunner* real, Gate* gate) : real_(real), gate_(gate) {}
  absl::StatusOr<jobs::RunOutcome> Run(const jobs::JobRecord& job,
                                       const jobs::RunContext& ctx) override {
    if (job.labels.count("hold") > 0 && !gate_->Wait(ctx)) {
      return absl::CancelledError("held job stopped");
    }
    if (job.labels.count("paths") > 0) {
      // A job that names its folders on the server, as the pipeline's last
      // progress line and a write error do; held until the gate opens.
      jobs::JobProgress progress;
      progress.stage = "report";
      progress.fraction = 0.99;
      progress.detail = ctx.work_dir + "/report";
      ctx.progress(progress);
      if (!gate_->Wait(ctx)) return absl::CancelledError("held job stopped");
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot write ", ctx.work_dir, "/report/result.json: no space left on device"));
    }
    return real_->Run(job, ctx);
  }

 private:
  jobs::JobRunner* const real_;
  Gate* const gate_;
};

// The bearer token every Ctx() sends; empty: none (servers without auth).
std::string& BearerToken() {
  static std::string* token = new std::string();
  return *token;
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  if (!BearerToken().empty()) ctx->AddMetadata("authorization", "Bearer " + BearerToken());
  return ctx;
}

// Calls made in its scope carry `token`.
class As {
 public:
  explicit As(std::string token) : previous_(BearerToken()) { BearerToken() = std::move(token); }
  ~As() { BearerToken() = previous_; }

 private:
  std::string previous_;
};

v1::AuditSpec BundleSpec(const std::string& server_path = "bundle.npz") {
  v1::AuditSpec spec;
  v1::SignalsBundleInput* b = spec.mutable_signals_bundle();
  b->mutable_bundle()->set_server_path(server_path);
  b->add_attacks("rmia");
  b->add_attacks("lira");
  b->set_bootstrap(20);
  return spec;
}

class ServiceTest : public ::testing::Test {
 protected:
  // grpc.health.v1 Check of `service` ("" overall, kReadinessService).
  HealthCheckResponse::ServingStatus HealthOf(const std::string& service) {
    std::unique_ptr<Health::Stub> health = Health::NewStub(channel_);
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    const grpc::Status status = health->Check(Ctx().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status();
  }

  void SetUp() override {
    BearerToken().clear();
    dir_ = TempDir();
    roots_ = dir_ + "/roots";
    fs::create_directories(roots_);
    audit::SyntheticOptions synthetic;
    synthetic.models = 6;  // LiRA needs 2 references per point a side
    synthetic.points = kPoints;
    synthetic.population = 500;
    absl::StatusOr<io::NpyMap> bundle = audit::MakeSyntheticBundle(synthetic);
    ASSERT_TRUE(bundle.ok()) << bundle.status();
    ASSERT_TRUE(io::WriteNpz(roots_ + "/bundle.npz", *bundle, /*compress=*/false).ok());
    StartServer();
  }

  void TearDown() override {
    gate_.Open();
    server_.reset();
  }

  void StartServer(const std::function<void(ServerConfig&)>& tweak = {},
                   const std::function<void(AuditServerOptions&)>& tweak_options = {}) {
    AuditServerOptions options;
    ServerConfig& c = options.config;
    c.listen_address = "127.0.0.1:0";
    c.data_dir = dir_ + "/data";
    c.data_roots = {roots_};
    c.workers = 1;
    c.heartbeat_seconds = 0.05;
    c.max_watchers = kMaxWatchers;
    c.max_message_bytes = kMaxMessageBytes;
    c.max_upload_bytes = kMaxUploadBytes;
    if (tweak) tweak(c);
    options.logger = logger_ != nullptr ? logger_ : MakeNullLogger();
    options.wrap_runner = [this](jobs::JobRunner* real) {
      return std::make_unique<GateRunner>(real, &gate_);
    };
    if (tweak_options) tweak_options(options);
    absl::StatusOr<std::unique_ptr<AuditServer>> server = AuditServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials());
    stub_ = v1::AuditService::NewStub(channel_);
  }

  grpc::Status Create(const v1::AuditSpec& spec, v1::Audit* audit,
                      const std::string& request_id = "",
                      const std::map<std::string, std::string>& labels = {}) {
    v1::CreateAuditRequest request;
    *request.mutable_spec() = spec;
    request.set_request_id(request_id);
    request.mutable_labels()->insert(labels.begin(), labels.end());
    return stub_->CreateAudit(Ctx().get(), request, audit);
  }

  grpc::Status Get(const std::string& name, v1::Audit* audit,
                   v1::AuditView view = v1::AUDIT_VIEW_UNSPECIFIED) {
    v1::GetAuditRequest request;
    request.set_name(name);
    request.set_view(view);
    return stub_->GetAudit(Ctx().get(), request, audit);
  }

  // Polls GetAudit until the audit is in `state`.
  void WaitForState(const std::string& name, v1::Audit::State state) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    v1::Audit audit;
    while (absl::Now() < deadline) {
      ASSERT_TRUE(Get(name, &audit).ok());
      if (audit.state() == state) return;
      absl::SleepFor(absl::Milliseconds(5));
    }
    FAIL() << name << " never reached " << v1::Audit::State_Name(state) << "; it is "
           << v1::Audit::State_Name(audit.state());
  }

  // Reads a watch stream to its end; snapshots and heartbeats are collected.
  grpc::Status Watch(const std::string& name, int64_t from_version,
                     std::vector<v1::Audit>* snapshots, int* heartbeats = nullptr) {
    v1::WatchAuditRequest request;
    request.set_name(name);
    request.set_from_version(from_version);
    auto ctx = Ctx();
    std::unique_ptr<grpc::ClientReader<v1::WatchAuditResponse>> reader =
        stub_->WatchAudit(ctx.get(), request);
    v1::WatchAuditResponse response;
    while (reader->Read(&response)) {
      if (response.has_snapshot()) snapshots->push_back(response.snapshot());
      if (response.has_heartbeat() && heartbeats != nullptr) ++*heartbeats;
    }
    return reader->Finish();
  }

  // The server answers normal requests: a bad one did not bring it down.
  void ExpectAlive() {
    v1::ListAuditsResponse response;
    const grpc::Status status = stub_->ListAudits(Ctx().get(), v1::ListAuditsRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  // The header of an upload of `content`: its size and SHA-256, and the
  // file name when given.
  static v1::ArtifactHeader HeaderFor(const std::string& content,
                                      const std::string& filename = "") {
    v1::ArtifactHeader header;
    if (!filename.empty()) header.set_filename(filename);
    header.set_size(static_cast<int64_t>(content.size()));
    header.set_sha256(Sha256Hex(content));
    return header;
  }
  grpc::Status Upload(const std::string& content, const v1::ArtifactHeader& header,
                      v1::Artifact* artifact, size_t chunk = 16 << 10, bool send_header = true) {
    auto ctx = Ctx();
    std::unique_ptr<grpc::ClientWriter<v1::UploadArtifactRequest>> writer =
        stub_->UploadArtifact(ctx.get(), artifact);
    v1::UploadArtifactRequest message;
    bool open = true;
    if (send_header) {
      *message.mutable_header() = header;
      open = writer->Write(message);
    }
    for (size_t offset = 0; open && offset < content.size(); offset += chunk) {
      message.Clear();
      message.set_chunk(content.substr(offset, chunk));
      open = writer->Write(message);
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // Makes the next StartServer log (as JSON lines) into log_; read log_
  // only once the server is gone.
  void CaptureLogs() {
    logger_ = std::make_shared<spdlog::logger>(
        "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_));
    logger_->set_pattern(R"({"level":"%l",%v})");
    logger_->set_level(spdlog::level::trace);
  }

  // The captured lines whose "msg" is `msg`.
  std::vector<nlohmann::json> LogLines(const std::string& msg) {
    std::vector<nlohmann::json> lines;
    std::istringstream in(log_.str());
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line);
      if (j.value("msg", "") == msg) lines.push_back(std::move(j));
    }
    return lines;
  }

  std::string dir_;
  std::string roots_;
  std::ostringstream log_;
  std::shared_ptr<spdlog::logger> logger_;  // null: logs are dropped
  Gate gate_;                               // outlives the server, whose runner uses it
  std::unique_ptr<AuditServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AuditService::Stub> stub_;
};

TEST_F(ServiceTest, SubmitWatchReadResultScoresAndReport) {
  v1::Audit created;
  ASSERT_TRUE(Create(BundleSpec(), &created).ok());
  EXPECT_THAT(created.name(), ::testing::StartsWith("audits/"));
  EXPECT_TRUE(created.has_spec());
  EXPECT_GT(created.version(), 0);

  std::vector<v1::Audit> snapshots;
  const grpc::Status watched = Watch(created.name(), 0, &snapshots);
  ASSERT_TRUE(watched.ok()) << watched.error_message();
  ASSERT_FALSE(snapshots.empty());
  for (size_t i = 1; i < snapshots.size(); ++i) {
    EXPECT_GT(snapshots[i].version(), snapshots[i - 1].version());
  }
  const v1::Audit& last = snapshots.back();
  ASSERT_EQ(last.state(), v1::Audit::SUCCEEDED) << last.error().message();
  EXPECT_EQ(last.progress().stage(), "done");

  // Resuming from the last version seen: nothing new, the stream just ends.
  std::vector<v1::Audit> none;
  ASSERT_TRUE(Watch(created.name(), last.version(), &none).ok());
  EXPECT_TRUE(none.empty());

  v1::Audit full;
  ASSERT_TRUE(Get(created.name(), &full).ok());
  EXPECT_EQ(full.version(), last.version());
  ASSERT_EQ(full.result().results_size(), 2);  // rmia and lira on target 0
  EXPECT_EQ(full.result().audit_points(), kPoints);
  for (const v1::AttackTargetResult& r : full.result().results()) {
    EXPECT_GE(r.auc(), 0);
    EXPECT_LE(r.auc(), 1);
    EXPECT_EQ(r.tpr_at_fpr_size(), full.result().fprs_size());
    const v1::RocCurve& roc = r.roc();
    EXPECT_TRUE(roc.downsampled());
    EXPECT_GT(roc.exact_points(), roc.fpr_size());
    EXPECT_GE(roc.fpr_size(), 10);
    EXPECT_LE(roc.fpr_size(), 400);
    EXPECT_EQ(roc.tpr_size(), roc.fpr_size());
    EXPECT_TRUE(std::is_sorted(roc.fpr().begin(), roc.fpr().end()));
    EXPECT_EQ(roc.positives() + roc.negatives(), r.members() + r.non_members());
  }
  v1::Audit basic;
  ASSERT_TRUE(Get(created.name(), &basic, v1::AUDIT_VIEW_BASIC).ok());
  EXPECT_FALSE(basic.has_spec());
  ASSERT_EQ(basic.result().results_size(), 2);
  EXPECT_FALSE(basic.result().results(0).has_roc());

  // Scores, paged.
  int64_t rows = 0;
  int pages = 0;
  std::string token;
  do {
    v1::ListAuditScoresRequest request;
    request.set_name(created.name());
    request.set_page_size(700);
    request.set_page_token(token);
    v1::ListAuditScoresResponse page;
    const grpc::Status status = stub_->ListAuditScores(Ctx().get(), request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(page.attacks_size(), 2);
    for (const v1::ScoreRow& row : page.rows()) EXPECT_EQ(row.scores_size(), 2);
    rows += page.rows_size();
    ++pages;
    token = page.next_page_token();
  } while (!token.empty() && pages < 100);
  EXPECT_EQ(rows, kPoints);
  EXPECT_EQ(pages, 3);

  // Report files, and one downloaded in chunks.
  v1::ListReportFilesRequest list_request;
  list_request.set_name(created.name());
  v1::ListReportFilesResponse files;
  ASSERT_TRUE(stub_->ListReportFiles(Ctx().get(), list_request, &files).ok());
  std::vector<std::string> names;
  for (const v1::ReportFile& f : files.files()) names.push_back(f.file());
  EXPECT_THAT(names, Contains("result.json"));
  EXPECT_THAT(names, Contains("scores.csv"));
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  const auto scores_file =
      std::find_if(files.files().begin(), files.files().end(),
                   [](const v1::ReportFile& f) { return f.file() == "scores.csv"; });
  ASSERT_NE(scores_file, files.files().end());
  EXPECT_EQ(scores_file->content_type(), "text/csv");

  v1::GetReportFileRequest file_request;
  file_request.set_name(created.name());
  file_request.set_file("scores.csv");
  auto ctx = Ctx();
  auto reader = stub_->GetReportFile(ctx.get(), file_request);
  std::string assembled;
  std::vector<v1::FileChunk> chunks;
  v1::FileChunk chunk;
  while (reader->Read(&chunk)) {
    EXPECT_EQ(chunk.offset(), static_cast<int64_t>(assembled.size()));
    EXPECT_EQ(chunk.total_size(), scores_file->size_bytes());
    assembled += chunk.data();
    chunks.push_back(chunk);
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_GE(chunks.size(), 2u);  // the file is larger than one message may be
  for (size_t i = 0; i + 1 < chunks.size(); ++i) EXPECT_TRUE(chunks[i].sha256().empty());
  EXPECT_EQ(chunks.back().sha256(), Sha256Hex(assembled));
  EXPECT_EQ(scores_file->sha256(), Sha256Hex(assembled));
  const std::string id = created.name().substr(std::string("audits/").size());
  EXPECT_EQ(assembled, ReadAll(dir_ + "/data/jobs/" + id + "/report/scores.csv"));

  // Names that are not report files.
  for (const char* bad : {"../../jobs.db", "..", ".hidden", "a/b"}) {
    file_request.set_file(bad);
    auto bad_ctx = Ctx();
    auto bad_reader = stub_->GetReportFile(bad_ctx.get(), file_request);
    while (bad_reader->Read(&chunk)) {
    }
    EXPECT_EQ(bad_reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
  }
  file_request.set_file("nosuch.txt");
  auto missing_ctx = Ctx();
  auto missing = stub_->GetReportFile(missing_ctx.get(), file_request);
  while (missing->Read(&chunk)) {
  }
  EXPECT_EQ(missing->Finish().error_code(), grpc::StatusCode::NOT_FOUND);

  // Listing, and the metrics the run left.
  v1::ListAuditsRequest list;
  list.set_state(v1::Audit::SUCCEEDED);
  v1::ListAuditsResponse listed;
  ASSERT_TRUE(stub_->ListAudits(Ctx().get(), list, &listed).ok());
  ASSERT_EQ(listed.audits_size(), 1);
  EXPECT_FALSE(listed.audits(0).has_spec());  // BASIC by default
  EXPECT_EQ(listed.audits(0).version(), last.version());
  const std::string metrics = server_->metrics()->Text();
  EXPECT_THAT(metrics, HasSubstr("mia_jobs{state=\"SUCCEEDED\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("mia_rpcs_total{code=\"OK\",method=\"CreateAudit\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("mia_stage_seconds_count{stage=\"attack\"}"));

  // Deleting a finished audit removes it and its files.
  v1::DeleteAuditRequest del;
  del.set_name(created.name());
  google::protobuf::Empty empty;
  ASSERT_TRUE(stub_->DeleteAudit(Ctx().get(), del, &empty).ok());
  EXPECT_EQ(Get(created.name(), &full).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(fs::exists(dir_ + "/data/jobs/" + id));
}

// A bundle audit with a policy (signals_bundle.policy) is judged as a
// pipeline audit with audit.policy: the result and result.json carry the
// verdict, each rule judged on each attack's worst target.
TEST_F(ServiceTest, BundleAuditJudgesItsPolicy) {
  auto run = [&](double max_auc, v1::Audit* full) {
    v1::AuditSpec spec = BundleSpec();
    v1::PolicySection* policy = spec.mutable_signals_bundle()->mutable_policy();
    policy->set_max_auc(max_auc);
    (*policy->mutable_max_tpr_at_fpr())["0.25"] = 1.0;  // a TPR is at most 1: passes
    v1::Audit created;
    const grpc::Status status = Create(spec, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
    WaitForState(created.name(), v1::Audit::SUCCEEDED);
    ASSERT_TRUE(Get(created.name(), full).ok());
  };
  // The synthetic bundle leaks (AUC well above 0.5): max_auc 0.01 fails.
  v1::Audit failed;
  ASSERT_NO_FATAL_FAILURE(run(0.01, &failed));
  ASSERT_TRUE(failed.result().has_policy());
  const v1::PolicyVerdict& verdict = failed.result().policy();
  EXPECT_FALSE(verdict.pass());
  EXPECT_EQ(verdict.verdict(), "FAIL");
  EXPECT_EQ(verdict.use(), "estimate");
  std::set<std::string> rules;
  for (const v1::PolicyRuleResult& r : verdict.rules()) {
    rules.insert(r.rule());
    EXPECT_EQ(r.target(), 0);
    if (r.rule() == "max_auc") {
      EXPECT_FALSE(r.pass());
      EXPECT_GT(r.value(), 0.5);
      EXPECT_EQ(r.limit(), 0.01);
    } else {
      EXPECT_TRUE(r.pass()) << r.rule();
    }
  }
  EXPECT_EQ(rules, (std::set<std::string>{"max_auc", "max_tpr_at_fpr[0.25]"}));
  // The policy's FPR was scored.
  EXPECT_THAT(failed.result().fprs(), Contains(0.25));
  const std::string id = failed.name().substr(std::string("audits/").size());
  const nlohmann::json result =
      nlohmann::json::parse(ReadAll(dir_ + "/data/jobs/" + id + "/report/result.json"));
  EXPECT_EQ(result["policy"]["verdict"], "FAIL");

  v1::Audit passed;
  ASSERT_NO_FATAL_FAILURE(run(1.0, &passed));
  ASSERT_TRUE(passed.result().has_policy());
  EXPECT_TRUE(passed.result().policy().pass());
  EXPECT_EQ(passed.result().policy().verdict(), "PASS");

  // A bad policy is refused at CreateAudit, naming the field.
  v1::AuditSpec bad = BundleSpec();
  (*bad.mutable_signals_bundle()->mutable_policy()->mutable_attacks())["loss"].set_max_auc(0.5);
  v1::Audit refused;
  const grpc::Status status = Create(bad, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("spec.signals_bundle.policy.attacks.loss"));
}

TEST_F(ServiceTest, CreateIsIdempotentByRequestId) {
  v1::Audit first;
  v1::Audit second;
  ASSERT_TRUE(Create(BundleSpec(), &first, "req-0001").ok());
  ASSERT_TRUE(Create(BundleSpec(), &second, "req-0001").ok());
  EXPECT_EQ(first.name(), second.name());
  EXPECT_EQ(second.request_id(), "req-0001");

  v1::AuditSpec other = BundleSpec();
  other.mutable_signals_bundle()->clear_attacks();
  other.mutable_signals_bundle()->add_attacks("lira");
  v1::Audit third;
  const grpc::Status status = Create(other, &third, "req-0001");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << status.error_message();

  v1::ListAuditsResponse listed;
  ASSERT_TRUE(stub_->ListAudits(Ctx().get(), v1::ListAuditsRequest(), &listed).ok());
  EXPECT_EQ(listed.audits_size(), 1);
}

TEST_F(ServiceTest, InvalidSpecListsEveryProblem) {
  v1::AuditSpec spec = BundleSpec();
  v1::SignalsBundleInput* b = spec.mutable_signals_bundle();
  b->add_attacks("no-such-attack");
  b->add_targets(-1);
  b->set_bootstrap(-5);
  b->set_confidence(2);
  spec.mutable_train()->set_epochs(3);  // not allowed beside signals_bundle
  v1::CreateAuditRequest request;
  *request.mutable_spec() = spec;
  request.set_priority(1000);
  v1::Audit audit;
  const grpc::Status status = stub_->CreateAudit(Ctx().get(), request, &audit);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // grpc-status-details-bin: a google.rpc.Status with a BadRequest listing
  // the same fields as the message.
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(details.message(), status.error_message());
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad_request));
  std::vector<std::string> fields;
  for (const auto& v : bad_request.field_violations()) {
    fields.push_back(v.field());
    EXPECT_FALSE(v.description().empty()) << v.field();
  }
  for (const char* path : {"spec.signals_bundle.attacks", "spec.signals_bundle.targets[0]",
                           "spec.signals_bundle.bootstrap", "spec.signals_bundle.confidence",
                           "spec.train", "priority"}) {
    EXPECT_THAT(status.error_message(), HasSubstr(path));
    EXPECT_THAT(fields, Contains(HasSubstr(path)));
  }

  v1::CreateAuditRequest no_spec;
  EXPECT_EQ(stub_->CreateAudit(Ctx().get(), no_spec, &audit).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ExpectAlive();
}

// Issue 10: 400,000 FPRs were accepted (a 285 MB result.json, `mia list`
// broken for every client) and 100,000 duplicate attacks failed as
// RESOURCE_EXHAUSTED on the size of the error's metadata. Both are
// INVALID_ARGUMENT now, with a short message and short details (5,000 of each
// here: this server takes requests of at most 64 KiB).
TEST_F(ServiceTest, LongListsAreRefusedWithSmallErrors) {
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path("purchase.csv");
  spec.mutable_data()->set_population_size(4);
  for (int i = 0; i < 5000; ++i) spec.mutable_audit()->add_fprs(0.5);
  v1::Audit created;
  grpc::Status status = Create(spec, &created);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("spec.audit.fprs: must have at most 64 entries"));
  EXPECT_LT(status.error_message().size(), 1000u);
  EXPECT_LT(status.error_details().size(), 1000u);

  v1::AuditSpec attacks = BundleSpec();
  for (int i = 0; i < 5000; ++i) attacks.mutable_signals_bundle()->add_attacks("loss");
  status = Create(attacks, &created);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("spec.signals_bundle.attacks: must have at most"));
  EXPECT_LT(status.error_message().size(), 1000u);
  EXPECT_LT(status.error_details().size(), 1000u);
  ExpectAlive();
}

TEST_F(ServiceTest, PathsOutsideTheRootsAreRefused) {
  fs::create_directories(dir_ + "/outside");
  std::ofstream(dir_ + "/outside/bundle.npz") << "x";
  fs::create_symlink(dir_ + "/outside/bundle.npz", roots_ + "/link.npz");
  v1::Audit audit;
  for (const std::string& path : {dir_ + "/outside/bundle.npz",
                                  std::string("../outside/bundle.npz"), std::string("link.npz")}) {
    const grpc::Status status = Create(BundleSpec(path), &audit);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << path;
    EXPECT_THAT(status.error_message(), HasSubstr("spec.signals_bundle.bundle"));
    EXPECT_THAT(status.error_message(), HasSubstr("outside"));
  }
  EXPECT_EQ(Create(BundleSpec("missing.npz"), &audit).error_code(), grpc::StatusCode::NOT_FOUND);
  ExpectAlive();
}

TEST_F(ServiceTest, UnknownIdsAndMalformedRequests) {
  v1::Audit audit;
  EXPECT_EQ(Get("audits/nosuchaudit", &audit).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Get("nosuchaudit", &audit).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Get("audits/UPPER", &audit).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::CancelAuditRequest cancel;
  cancel.set_name("audits/nosuchaudit");
  EXPECT_EQ(stub_->CancelAudit(Ctx().get(), cancel, &audit).error_code(),
            grpc::StatusCode::NOT_FOUND);
  std::vector<v1::Audit> snapshots;
  EXPECT_EQ(Watch("audits/nosuchaudit", 0, &snapshots).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Watch("bad name", 0, &snapshots).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::ListAuditsRequest list;
  list.set_page_token("not-a-token!");
  v1::ListAuditsResponse listed;
  EXPECT_EQ(stub_->ListAudits(Ctx().get(), list, &listed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  list.set_page_token("");
  list.set_page_size(-1);
  EXPECT_EQ(stub_->ListAudits(Ctx().get(), list, &listed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // A finished audit, then a bad scores token for it.
  v1::Audit created;
  ASSERT_TRUE(Create(BundleSpec(), &created).ok());
  ASSERT_TRUE(Watch(created.name(), 0, &snapshots).ok());
  v1::ListAuditScoresRequest scores;
  scores.set_name(created.name());
  scores.set_page_token("garbage");
  v1::ListAuditScoresResponse page;
  EXPECT_EQ(stub_->ListAuditScores(Ctx().get(), scores, &page).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  scores.set_name("audits/nosuchaudit");
  scores.clear_page_token();
  EXPECT_EQ(stub_->ListAuditScores(Ctx().get(), scores, &page).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ExpectAlive();
}

TEST_F(ServiceTest, ErrorsNameTheResourceAsTheApiDoes) {
  v1::Audit audit;
  grpc::Status status = Get("audits/nope", &audit);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "audits/nope not found");
  v1::CancelAuditRequest cancel;
  cancel.set_name("audits/nope");
  status = stub_->CancelAudit(Ctx().get(), cancel, &audit);
  EXPECT_EQ(status.error_message(), "audits/nope not found");
  v1::DeleteAuditRequest del;
  del.set_name("audits/nope");
  google::protobuf::Empty empty;
  EXPECT_EQ(stub_->DeleteAudit(Ctx().get(), del, &empty).error_message(), "audits/nope not found");
  v1::ListReportFilesRequest files;
  files.set_name("audits/nope");
  v1::ListReportFilesResponse listing;
  EXPECT_EQ(stub_->ListReportFiles(Ctx().get(), files, &listing).error_message(),
            "audits/nope not found");
  std::vector<v1::Audit> snapshots;
  EXPECT_EQ(Watch("audits/nope", 0, &snapshots).error_message(), "audits/nope not found");
}

TEST_F(ServiceTest, ListAuditsRefusesAnUnknownState) {
  v1::Audit created;
  ASSERT_TRUE(Create(BundleSpec(), &created).ok());
  v1::ListAuditsRequest list;
  list.set_state(static_cast<v1::Audit::State>(99));
  v1::ListAuditsResponse listed;
  const grpc::Status status = stub_->ListAudits(Ctx().get(), list, &listed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("state: 99 is not an Audit.State"));
  EXPECT_EQ(listed.audits_size(), 0);
  list.set_state(v1::Audit::STATE_UNSPECIFIED);  // any state
  ASSERT_TRUE(stub_->ListAudits(Ctx().get(), list, &listed).ok());
  EXPECT_EQ(listed.audits_size(), 1);
}

TEST_F(ServiceTest, UploadRefusesChunksAboveOneMiB) {
  server_.reset();
  StartServer([](ServerConfig& c) {
    c.max_message_bytes = 4 << 20;
    c.max_upload_bytes = 8 << 20;
  });
  const std::string content((1 << 20) + 1, 'x');
  const v1::ArtifactHeader header = HeaderFor(content, "big.bin");
  v1::Artifact artifact;
  const grpc::Status status = Upload(content, header, &artifact, content.size());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("chunk: 1048577 bytes in one message"));
  EXPECT_THAT(status.error_message(), HasSubstr("at most 1 MiB"));
  EXPECT_FALSE(fs::exists(dir_ + "/data/artifacts/" + header.sha256()));
  // 1 MiB exactly is the limit, not beyond it.
  ASSERT_TRUE(Upload(content, header, &artifact, 1 << 20).ok());
  EXPECT_EQ(artifact.artifact_id(), header.sha256());
}

TEST_F(ServiceTest, ClientsSeeAuditNamesNotServerPaths) {
  v1::Audit created;
  ASSERT_TRUE(Create(BundleSpec(), &created, "", {{"paths", "1"}}).ok());
  const std::string data_dir = dir_ + "/data";
  v1::Audit audit;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    ASSERT_TRUE(Get(created.name(), &audit).ok());
    if (audit.progress().stage() == "report") break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(audit.progress().stage(), "report");
  EXPECT_THAT(audit.progress().detail(), Not(HasSubstr(data_dir)));
  EXPECT_EQ(audit.progress().detail(), absl::StrCat("report of ", created.name(), " (mia report ",
                                                    created.name(), " --out DIR)"));
  gate_.Open();
  WaitForState(created.name(), v1::Audit::FAILED);
  ASSERT_TRUE(Get(created.name(), &audit).ok());
  EXPECT_EQ(audit.error().code(), "RESOURCE_EXHAUSTED");
  EXPECT_THAT(audit.error().message(), Not(HasSubstr(data_dir)));
  EXPECT_EQ(audit.error().message(), absl::StrCat("cannot write ", created.name(),
                                                  " report file result.json: no space left on "
                                                  "device"));
}

TEST_F(ServiceTest, ReportFilesDeletedUnderAFinishedAuditAreListedMissing) {
  v1::Audit created;
  ASSERT_TRUE(Create(BundleSpec(), &created).ok());
  WaitForState(created.name(), v1::Audit::SUCCEEDED);
  v1::ListReportFilesRequest request;
  request.set_name(created.name());
  v1::ListReportFilesResponse whole;
  ASSERT_TRUE(stub_->ListReportFiles(Ctx().get(), request, &whole).ok());
  EXPECT_EQ(whole.files_size(), 7);  // result.json, scores.csv, 2 plots, summary, html, timing
  EXPECT_EQ(whole.missing_files_size(), 0);

  const std::string report = dir_ + "/data/jobs/" + created.name().substr(7) + "/report";
  ASSERT_TRUE(fs::remove(report + "/roc.svg"));
  ASSERT_TRUE(fs::remove(report + "/result.json"));
  v1::ListReportFilesResponse partial;
  ASSERT_TRUE(stub_->ListReportFiles(Ctx().get(), request, &partial).ok());
  EXPECT_EQ(partial.files_size(), 5);
  EXPECT_THAT(partial.missing_files(), ::testing::ElementsAre("result.json", "roc.svg"));
  // The audit stays readable, without the figures result.json held.
  v1::Audit audit;
  ASSERT_TRUE(Get(created.name(), &audit).ok());
  EXPECT_EQ(audit.state(), v1::Audit::SUCCEEDED);
}

TEST_F(ServiceTest, OversizedMessageIsResourceExhausted) {
  v1::Audit audit;
  const grpc::Status status =
      Create(BundleSpec(), &audit, "", {{"big", std::string(2 * kMaxMessageBytes, 'x')}});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  ExpectAlive();
}

TEST_F(ServiceTest, UploadThenAuditByArtifactId) {
  audit::SyntheticOptions synthetic;
  synthetic.models = 6;  // LiRA needs 2 references per point a side
  synthetic.points = 200;
  synthetic.population = 100;
  synthetic.seed = 7;
  absl::StatusOr<io::NpyMap> arrays = audit::MakeSyntheticBundle(synthetic);
  ASSERT_TRUE(arrays.ok());
  ASSERT_TRUE(io::WriteNpz(dir_ + "/small.npz", *arrays, /*compress=*/true).ok());
  const std::string content = ReadAll(dir_ + "/small.npz");
  ASSERT_LT(static_cast<int64_t>(content.size()), kMaxUploadBytes);
  const std::string sha = Sha256Hex(content);

  v1::ArtifactHeader header;
  header.set_filename("small.npz");
  header.set_size(static_cast<int64_t>(content.size()));
  header.set_sha256(sha);
  v1::Artifact artifact;
  const grpc::Status uploaded = Upload(content, header, &artifact);
  ASSERT_TRUE(uploaded.ok()) << uploaded.error_message();
  EXPECT_EQ(artifact.artifact_id(), sha);
  EXPECT_EQ(artifact.size(), static_cast<int64_t>(content.size()));
  EXPECT_EQ(ReadAll(dir_ + "/data/artifacts/" + sha), content);
  // Again: the same id, nothing new.
  v1::Artifact again;
  ASSERT_TRUE(Upload(content, header, &again).ok());
  EXPECT_EQ(again.artifact_id(), sha);

  v1::AuditSpec spec = BundleSpec();
  spec.mutable_signals_bundle()->mutable_bundle()->set_artifact_id(sha);
  v1::Audit created;
  ASSERT_TRUE(Create(spec, &created).ok());
  std::vector<v1::Audit> snapshots;
  ASSERT_TRUE(Watch(created.name(), 0, &snapshots).ok());
  ASSERT_FALSE(snapshots.empty());
  EXPECT_EQ(snapshots.back().state(), v1::Audit::SUCCEEDED) << snapshots.back().error().message();

  // An id the server does not hold.
  spec.mutable_signals_bundle()->mutable_bundle()->set_artifact_id(std::string(64, 'a'));
  EXPECT_EQ(Create(spec, &created).error_code(), grpc::StatusCode::NOT_FOUND);

  // Corrupt content: the checksum does not match; nothing is stored.
  std::string corrupt = content;
  corrupt[corrupt.size() / 2] ^= 0x5a;
  v1::ArtifactHeader corrupt_header = header;
  corrupt_header.set_sha256(Sha256Hex("something else"));
  grpc::Status status = Upload(corrupt, corrupt_header, &artifact);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("SHA-256"));
  EXPECT_FALSE(fs::exists(dir_ + "/data/artifacts/" + corrupt_header.sha256()));

  // Over the server's limit, declared or not.
  v1::ArtifactHeader big = header;
  big.set_size(kMaxUploadBytes + 1);
  EXPECT_EQ(Upload("", big, &artifact).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  v1::ArtifactHeader short_header = header;
  short_header.set_size(10);
  EXPECT_EQ(Upload(content, short_header, &artifact).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // No header; a bad header; a stream that ends early.
  EXPECT_EQ(Upload(content, header, &artifact, 16 << 10, /*send_header=*/false).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ArtifactHeader bad_sha = header;
  bad_sha.set_sha256("ABC");
  EXPECT_EQ(Upload(content, bad_sha, &artifact).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Upload(content.substr(0, 100), header, &artifact).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // No temporary files left behind.
  for (const auto& entry : fs::directory_iterator(dir_ + "/data/artifacts")) {
    EXPECT_EQ(entry.path().filename().string(), sha);
  }
  ExpectAlive();
}

// The review's upload: 2 MB of deflated zeros declaring keep and signals of
// [4, 1e8]. CreateAudit sizes it from the headers and refuses it before a job
// exists, naming the estimate and the budget; nothing is decoded.
// --artifact_store=s3://... (the s3rver fixture): replica A stores an upload
// and a report there; replica B, which shares A's job records (as replicas
// on one PostgreSQL do) but none of A's files, serves the report and audits
// the upload from the store. With the S3 server down, uploads fail UNAVAILABLE
// and name no credential.
TEST_F(ServiceTest, S3SharedStoreServesUploadsAndReportsAcrossReplicas) {
  const std::optional<std::string> endpoint = testing_util::S3FixtureEndpoint();
  if (!endpoint.has_value()) GTEST_SKIP() << "the s3rver fixture is not running";
  ::setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
  const std::string prefix = testing_util::UniquePrefix("service");
  const std::string location = absl::StrCat("s3://mia-test/", prefix);
  server_.reset();
  StartServer([&](ServerConfig& c) {
    c.artifact_store = location;
    c.s3_endpoint = *endpoint;
  });
  std::unique_ptr<storage::ObjectStore> bucket =
      *storage::MakeS3ObjectStore(testing_util::FixtureOptions(*endpoint, prefix));

  const std::string content = ReadAll(roots_ + "/bundle.npz");
  const v1::ArtifactHeader header = HeaderFor(content, "bundle.npz");
  v1::Artifact artifact;
  ASSERT_TRUE(Upload(content, header, &artifact).ok());
  EXPECT_EQ(bucket->Head("uploads/" + header.sha256())->size,
            static_cast<int64_t>(content.size()));
  v1::AuditSpec spec = BundleSpec();
  spec.mutable_signals_bundle()->mutable_bundle()->set_artifact_id(header.sha256());
  v1::Audit created;
  ASSERT_TRUE(Create(spec, &created).ok());
  WaitForState(created.name(), v1::Audit::SUCCEEDED);
  const std::string id = created.name().substr(std::string("audits/").size());
  EXPECT_TRUE(*bucket->Exists("reports/" + id + "/report.files"));
  EXPECT_TRUE(*bucket->Exists("reports/" + id + "/report/scores.csv"));
  const std::string scores = ReadAll(dir_ + "/data/jobs/" + id + "/report/scores.csv");
  ASSERT_FALSE(scores.empty());

  // Replica B: A's job records, none of A's files.
  server_.reset();
  fs::create_directories(dir_ + "/data_b");
  for (const auto& e : fs::directory_iterator(dir_ + "/data")) {
    if (e.path().filename().string().rfind("jobs.db", 0) == 0) {
      fs::copy_file(e.path(), dir_ + "/data_b/" + e.path().filename().string());
    }
  }
  fs::remove_all(dir_ + "/data");
  StartServer([&](ServerConfig& c) {
    c.data_dir = dir_ + "/data_b";
    c.artifact_store = location;
    c.s3_endpoint = *endpoint;
  });
  v1::Audit read;
  ASSERT_TRUE(Get(created.name(), &read).ok());
  EXPECT_EQ(read.state(), v1::Audit::SUCCEEDED);
  EXPECT_EQ(read.result().audit_points(), kPoints);  // result.json, fetched
  v1::ListReportFilesRequest list;
  list.set_name(created.name());
  v1::ListReportFilesResponse files;
  ASSERT_TRUE(stub_->ListReportFiles(Ctx().get(), list, &files).ok());
  EXPECT_EQ(files.files_size(), 7);
  EXPECT_EQ(files.missing_files_size(), 0);
  v1::GetReportFileRequest file_request;
  file_request.set_name(created.name());
  file_request.set_file("scores.csv");
  auto ctx = Ctx();
  auto reader = stub_->GetReportFile(ctx.get(), file_request);
  std::string assembled;
  v1::FileChunk chunk;
  while (reader->Read(&chunk)) assembled += chunk.data();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(assembled, scores);
  // The upload, fetched from the store for a new audit on B.
  v1::Audit second;
  const grpc::Status created_b = Create(spec, &second, "on-b");
  ASSERT_TRUE(created_b.ok()) << created_b.error_message();
  WaitForState(second.name(), v1::Audit::SUCCEEDED);
  EXPECT_EQ(ReadAll(dir_ + "/data_b/artifacts/" + header.sha256()), content);
  // Deleting an audit removes its shared report too.
  v1::DeleteAuditRequest del;
  del.set_name(created.name());
  google::protobuf::Empty empty;
  ASSERT_TRUE(stub_->DeleteAudit(Ctx().get(), del, &empty).ok());
  EXPECT_TRUE(bucket->List("reports/" + id + "/")->empty());

  // The S3 server down (a port nobody listens on).
  server_.reset();
  ::setenv("AWS_ACCESS_KEY_ID", "AKIDNEVERSHOWN", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "SECRETNEVERSHOWN", 1);
  int closed_port = 0;
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    closed_port = ntohs(addr.sin_port);
    ::close(fd);
  }
  StartServer([&](ServerConfig& c) {
    c.data_dir = dir_ + "/data_c";
    c.artifact_store = location;
    c.s3_endpoint = absl::StrCat("http://127.0.0.1:", closed_port);
  });
  const grpc::Status down = Upload(content, header, &artifact);
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();
  EXPECT_THAT(down.error_message(), ::testing::HasSubstr("artifacts/" + header.sha256()));
  for (const char* secret : {"AKIDNEVERSHOWN", "SECRETNEVERSHOWN"}) {
    EXPECT_THAT(down.error_message(), ::testing::Not(::testing::HasSubstr(secret)));
  }
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
}

TEST_F(ServiceTest, BundleAboveTheMemoryBudgetIsRefusedBeforeQueueing) {
  server_.reset();
  StartServer([](ServerConfig& c) {
    c.memory_budget_bytes = 1'000'000'000;
    c.max_upload_bytes = 8 << 20;
  });
  const std::string content = testdata::HugeZerosBundle();
  {
    std::ofstream out(roots_ + "/huge.npz", std::ios::binary);
    out << content;
  }
  v1::Audit created;
  grpc::Status status = Create(BundleSpec("huge.npz"), &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("estimated "));
  EXPECT_THAT(status.error_message(), HasSubstr("scoring a bundle of 4 models x 100000000 points"));
  EXPECT_THAT(status.error_message(), HasSubstr("exceeds the server's memory budget 1.00 GB"));
  EXPECT_THAT(status.error_message(), HasSubstr("--memory_budget_bytes"));
  EXPECT_THAT(status.error_message(), Not(HasSubstr(roots_)));

  // The same bytes uploaded, referenced by artifact id.
  const v1::ArtifactHeader header = HeaderFor(content, "huge.npz");
  v1::Artifact artifact;
  const grpc::Status uploaded = Upload(content, header, &artifact);
  ASSERT_TRUE(uploaded.ok()) << uploaded.error_message();
  v1::AuditSpec spec = BundleSpec();
  spec.mutable_signals_bundle()->mutable_bundle()->set_artifact_id(artifact.artifact_id());
  status = Create(spec, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("exceeds the server's memory budget"));
  EXPECT_THAT(status.error_message(), Not(HasSubstr(dir_)));

  // No job was queued; a bundle that fits still runs.
  v1::ListAuditsResponse listed;
  ASSERT_TRUE(stub_->ListAudits(Ctx().get(), v1::ListAuditsRequest(), &listed).ok());
  EXPECT_EQ(listed.audits_size(), 0);
  ASSERT_TRUE(Create(BundleSpec(), &created).ok());
  std::vector<v1::Audit> snapshots;
  ASSERT_TRUE(Watch(created.name(), 0, &snapshots).ok());
  EXPECT_EQ(snapshots.back().state(), v1::Audit::SUCCEEDED);
}

// The decode limits are the server's flags, checked from the headers.
TEST_F(ServiceTest, BundleDecodeLimitsAreServerSettings) {
  server_.reset();
  StartServer([](ServerConfig& c) { c.max_bundle_array_bytes = int64_t{1} << 30; });
  {
    std::ofstream out(roots_ + "/huge.npz", std::ios::binary);
    out << testdata::HugeZerosBundle();
  }
  v1::Audit created;
  grpc::Status status = Create(BundleSpec("huge.npz"), &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(),
              HasSubstr("spec.signals_bundle.bundle: member 'signals.npy': declared size"));
  EXPECT_THAT(status.error_message(), HasSubstr("--max_bundle_array_bytes"));
  EXPECT_THAT(status.error_message(), Not(HasSubstr(roots_)));

  server_.reset();
  StartServer([](ServerConfig& c) { c.max_bundle_total_bytes = 1'000'000'000; });
  status = Create(BundleSpec("huge.npz"), &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("--max_bundle_total_bytes"));
}

// Training specs are sized from the architecture and the data's shape.
TEST_F(ServiceTest, TrainingAboveTheMemoryBudgetIsRefusedBeforeQueueing) {
  server_.reset();
  StartServer([](ServerConfig& c) { c.memory_budget_bytes = 1'000'000'000; });
  {
    std::ofstream out(roots_ + "/purchase.csv");
    for (int row = 0; row < 2000; ++row) {
      out << 1 + row % 100;
      for (int f = 0; f < 600; ++f) out << (f % 3 == 0 ? ",1" : ",0");
      out << "\n";
    }
  }
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path("purchase.csv");
  spec.mutable_data()->set_population_size(4);
  for (int i = 0; i < 3; ++i) spec.mutable_train()->mutable_hidden()->add_widths(65536);
  v1::Audit created;
  grpc::Status status = Create(spec, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(),
              HasSubstr("for training 'mlp' with hidden [65536, 65536, 65536]"));
  EXPECT_THAT(status.error_message(), HasSubstr("exceeds the server's memory budget 1.00 GB"));
  EXPECT_THAT(status.error_message(), Not(HasSubstr(roots_)));

  // 1,024 experiments with 4,096 references: sized by their signals.
  v1::AuditSpec crowd;
  *crowd.mutable_data() = spec.data();
  crowd.mutable_run()->set_num_experiments(1024);
  crowd.mutable_audit()->set_num_ref_models(4096);
  status = Create(crowd, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("5120 models x "));

  v1::ListAuditsResponse listed;
  ASSERT_TRUE(stub_->ListAudits(Ctx().get(), v1::ListAuditsRequest(), &listed).ok());
  EXPECT_EQ(listed.audits_size(), 0);
}

TEST_F(ServiceTest, CancelPendingHeartbeatsAndWatcherLimit) {
  v1::Audit held;
  ASSERT_TRUE(Create(BundleSpec(), &held, "", {{"hold", "1"}}).ok());
  WaitForState(held.name(), v1::Audit::RUNNING);

  // One worker, busy: the next audit waits, and cancelling it is immediate.
  v1::Audit pending;
  ASSERT_TRUE(Create(BundleSpec(), &pending).ok());
  EXPECT_EQ(pending.state(), v1::Audit::PENDING);
  v1::CancelAuditRequest cancel;
  cancel.set_name(pending.name());
  v1::Audit cancelled;
  ASSERT_TRUE(stub_->CancelAudit(Ctx().get(), cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::Audit::CANCELLED);

  // Only finished audits can be deleted.
  v1::DeleteAuditRequest del;
  google::protobuf::Empty empty;
  del.set_name(held.name());
  EXPECT_EQ(stub_->DeleteAudit(Ctx().get(), del, &empty).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  del.set_name(pending.name());
  EXPECT_TRUE(stub_->DeleteAudit(Ctx().get(), del, &empty).ok());

  // The watcher limit: kMaxWatchers streams open, one more is refused.
  v1::WatchAuditRequest watch;
  watch.set_name(held.name());
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchAuditResponse>>> readers;
  v1::WatchAuditResponse response;
  for (int i = 0; i < kMaxWatchers; ++i) {
    contexts.push_back(Ctx());
    readers.push_back(stub_->WatchAudit(contexts.back().get(), watch));
    ASSERT_TRUE(readers.back()->Read(&response));  // the current snapshot: open
    EXPECT_TRUE(response.has_snapshot());
  }
  {
    auto ctx = Ctx();
    auto extra = stub_->WatchAudit(ctx.get(), watch);
    EXPECT_FALSE(extra->Read(&response));
    EXPECT_EQ(extra->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  // An idle stream gets heartbeats; closing streams does not touch the audit.
  int heartbeats = 0;
  while (heartbeats < 2 && readers[0]->Read(&response)) {
    if (response.has_heartbeat()) ++heartbeats;
  }
  EXPECT_EQ(heartbeats, 2);
  for (size_t i = 0; i < readers.size(); ++i) {
    contexts[i]->TryCancel();
    while (readers[i]->Read(&response)) {
    }
    EXPECT_EQ(readers[i]->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  v1::Audit still;
  ASSERT_TRUE(Get(held.name(), &still).ok());
  EXPECT_EQ(still.state(), v1::Audit::RUNNING);

  // The slots come back once the server has seen the cancellations; then the
  // held audit runs to its end.
  std::vector<v1::Audit> snapshots;
  grpc::Status status;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  bool released = false;
  while (absl::Now() < deadline) {
    auto ctx = Ctx();
    auto reader = stub_->WatchAudit(ctx.get(), watch);
    if (reader->Read(&response)) {
      if (!released) {
        gate_.Open();
        released = true;
      }
      if (response.has_snapshot()) snapshots.push_back(response.snapshot());
      while (reader->Read(&response)) {
        if (response.has_snapshot()) snapshots.push_back(response.snapshot());
      }
      status = reader->Finish();
      break;
    }
    status = reader->Finish();
    ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(released);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(snapshots.empty());
  EXPECT_EQ(snapshots.back().state(), v1::Audit::SUCCEEDED);
}

TEST_F(ServiceTest, CancelRunning) {
  v1::Audit held;
  ASSERT_TRUE(Create(BundleSpec(), &held, "", {{"hold", "1"}}).ok());
  WaitForState(held.name(), v1::Audit::RUNNING);
  v1::CancelAuditRequest cancel;
  cancel.set_name(held.name());
  v1::Audit after;
  ASSERT_TRUE(stub_->CancelAudit(Ctx().get(), cancel, &after).ok());
  std::vector<v1::Audit> snapshots;
  ASSERT_TRUE(Watch(held.name(), 0, &snapshots).ok());
  ASSERT_FALSE(snapshots.empty());
  EXPECT_EQ(snapshots.back().state(), v1::Audit::CANCELLED);
}

// A write error while an upload is stored (a full disk; here a file-size
// limit, which fails write() as ENOSPC does) is RESOURCE_EXHAUSTED naming the
// artifact as the client knows it, leaves no temporary file, and the server
// goes on.
TEST_F(ServiceTest, UploadWriteFailureIsResourceExhaustedNamingTheArtifact) {
  std::string content(200 << 10, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 131 % 251);
  const std::string sha = Sha256Hex(content);
  v1::ArtifactHeader header;
  header.set_filename("big.npz");
  header.set_size(static_cast<int64_t>(content.size()));
  header.set_sha256(sha);
  v1::Artifact artifact;
  grpc::Status status;
  {
    testutil::ScopedFileSizeLimit limit(64 << 10);
    ASSERT_TRUE(limit.ok());
    status = Upload(content, header, &artifact);
  }
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("artifacts/" + sha));
  EXPECT_THAT(status.error_message(), Not(HasSubstr(dir_)));
  // The temporary goes when the call is done (just after the client hears).
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (!fs::is_empty(dir_ + "/data/artifacts") && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_TRUE(fs::is_empty(dir_ + "/data/artifacts"));
  ExpectAlive();
  ASSERT_TRUE(Upload(content, header, &artifact).ok());  // room again
  EXPECT_EQ(ReadAll(dir_ + "/data/artifacts/" + sha), content);
}

// Temporaries of writers killed mid-write (kill -9 during an upload or a
// model save) are removed when a server starts; other files stay.
TEST_F(ServiceTest, StaleTemporaryFilesAreRemovedAtStart) {
  server_.reset();
  const fs::path data = dir_ + "/data";
  const std::vector<fs::path> stale = {
      data / "artifacts" / (std::string(64, 'a') + ".tmp.4242.0"),
      data / "cache" / "models" / (std::string(64, 'b') + ".pt.tmp.4242.3"),
      data / "jobs" / "somejob" / "report" / "result.json.tmp.17.1"};
  const std::vector<fs::path> kept = {data / "artifacts" / std::string(64, 'a'),
                                      data / "cache" / "models" / (std::string(64, 'b') + ".pt"),
                                      data / "jobs" / "somejob" / "report" / "result.json"};
  for (const fs::path& p : stale) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << std::string(1000, 'x');
  }
  for (const fs::path& p : kept) std::ofstream(p) << "keep";
  StartServer();
  for (const fs::path& p : stale) EXPECT_FALSE(fs::exists(p)) << p;
  for (const fs::path& p : kept) EXPECT_EQ(ReadAll(p.string()), "keep") << p;
}

using ::mia::test_util::RunSql;

// One row of jobs.db with a state no server wrote used to stop the server
// from starting. Now it starts; the row is left out and the rest is served.
TEST_F(ServiceTest, AJobRowWithAnInvalidStateDoesNotStopTheServer) {
  v1::Audit good;
  v1::Audit bad;
  ASSERT_TRUE(Create(BundleSpec(), &good).ok());
  ASSERT_TRUE(Create(BundleSpec(), &bad, "second").ok());
  WaitForState(good.name(), v1::Audit::SUCCEEDED);
  WaitForState(bad.name(), v1::Audit::SUCCEEDED);
  server_.reset();
  const std::string bad_id = bad.name().substr(std::string("audits/").size());
  RunSql(dir_ + "/data/jobs.db", absl::StrCat("PRAGMA ignore_check_constraints = ON; "
                                              "UPDATE jobs SET state = 'running' WHERE id = '",
                                              bad_id, "';"));
  StartServer();
  v1::ListAuditsResponse listed;
  const grpc::Status status = stub_->ListAudits(Ctx().get(), v1::ListAuditsRequest(), &listed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(listed.audits_size(), 1);
  EXPECT_EQ(listed.audits(0).name(), good.name());
  v1::Audit got;
  const grpc::Status unreadable = Get(bad.name(), &got);
  EXPECT_EQ(unreadable.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(unreadable.error_message(), HasSubstr(bad_id));
  v1::Audit again;
  ASSERT_TRUE(Create(BundleSpec(), &again).ok());
  WaitForState(again.name(), v1::Audit::SUCCEEDED);
}

// A jobs.db the server cannot write: audits are still shown, liveness stays
// SERVING, readiness is NOT_SERVING, and a change is refused with a message
// that says the job store is read-only.
TEST_F(ServiceTest, AReadOnlyJobStoreIsNotReadyAndSaysSo) {
  v1::Audit done;
  ASSERT_TRUE(Create(BundleSpec(), &done).ok());
  WaitForState(done.name(), v1::Audit::SUCCEEDED);
  server_.reset();
  StartServer({}, [](AuditServerOptions& options) { options.store_read_only = true; });
  auto check = [&](const std::string& service) { return HealthOf(service); };
  EXPECT_EQ(check(""), HealthCheckResponse::SERVING);
  EXPECT_EQ(check(kReadinessService), HealthCheckResponse::NOT_SERVING);
  v1::Audit got;
  ASSERT_TRUE(Get(done.name(), &got).ok());
  EXPECT_EQ(got.state(), v1::Audit::SUCCEEDED);
  v1::Audit refused;
  const grpc::Status created = Create(BundleSpec(), &refused);
  EXPECT_EQ(created.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(created.error_message(), HasSubstr("the job store (jobs.db) is read-only"));
  EXPECT_THAT(created.error_message(), Not(HasSubstr(dir_)));
}

TEST_F(ServiceTest, HealthDrainAndResume) {
  auto check = [&](const std::string& service) { return HealthOf(service); };
  EXPECT_EQ(check(""), HealthCheckResponse::SERVING);
  EXPECT_EQ(check(kReadinessService), HealthCheckResponse::SERVING);

  v1::Audit held;
  ASSERT_TRUE(Create(BundleSpec(), &held, "", {{"hold", "1"}}).ok());
  WaitForState(held.name(), v1::Audit::RUNNING);
  v1::WatchAuditRequest watch;
  watch.set_name(held.name());
  auto watch_ctx = Ctx();
  auto reader = stub_->WatchAudit(watch_ctx.get(), watch);
  v1::WatchAuditResponse response;
  ASSERT_TRUE(reader->Read(&response));

  server_->BeginDrain();
  EXPECT_EQ(check(kReadinessService), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(check(""), HealthCheckResponse::SERVING);
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::Audit refused;
  EXPECT_EQ(Create(BundleSpec(), &refused).error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(server_->Drain(absl::Now() + absl::Seconds(60)).ok());

  // The drained audit went back to PENDING; the next server runs it.
  server_.reset();
  gate_.Open();
  StartServer();
  std::vector<v1::Audit> snapshots;
  ASSERT_TRUE(Watch(held.name(), 0, &snapshots).ok());
  ASSERT_FALSE(snapshots.empty());
  EXPECT_EQ(snapshots.back().state(), v1::Audit::SUCCEEDED);
}

TEST_F(ServiceTest, FullQueueIsResourceExhausted) {
  server_.reset();
  StartServer([](ServerConfig& c) { c.queue_capacity = 1; });
  v1::Audit held;
  ASSERT_TRUE(Create(BundleSpec(), &held, "", {{"hold", "1"}}).ok());
  WaitForState(held.name(), v1::Audit::RUNNING);
  v1::Audit queued;
  ASSERT_TRUE(Create(BundleSpec(), &queued, "q-1").ok());
  v1::Audit refused;
  const grpc::Status status = Create(BundleSpec(), &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  // A repeat of an accepted request is still answered.
  v1::Audit repeat;
  ASSERT_TRUE(Create(BundleSpec(), &repeat, "q-1").ok());
  EXPECT_EQ(repeat.name(), queued.name());
  gate_.Open();
  std::vector<v1::Audit> snapshots;
  ASSERT_TRUE(Watch(queued.name(), 0, &snapshots).ok());
  EXPECT_EQ(snapshots.back().state(), v1::Audit::SUCCEEDED);
  ExpectAlive();
}

// Training audits need LibTorch; a server built without it says so.
TEST_F(ServiceTest, PipelineAuditWithoutTorchFailsUnimplemented) {
#if MIA_WITH_TORCH
  GTEST_SKIP() << "this build trains models";
#endif
  std::ofstream(roots_ + "/purchase.csv") << "0,1,2\n";
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path("purchase.csv");
  spec.mutable_data()->set_population_size(10);
  v1::Audit created;
  const grpc::Status status = Create(spec, &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<v1::Audit> snapshots;
  ASSERT_TRUE(Watch(created.name(), 0, &snapshots).ok());
  ASSERT_FALSE(snapshots.empty());
  const v1::Audit& last = snapshots.back();
  EXPECT_EQ(last.state(), v1::Audit::FAILED);
  EXPECT_EQ(last.error().code(), "UNIMPLEMENTED");
  EXPECT_THAT(last.error().message(), HasSubstr("LibTorch"));
}

// One log line per state change of an audit: its name, states, stage,
// duration and error code, never its error message (which may name files) or
// data. A failure for a full disk is among them.
TEST_F(ServiceTest, EveryStateChangeIsLoggedWithoutData) {
  server_.reset();
  CaptureLogs();
  StartServer();
  v1::Audit ok;
  ASSERT_TRUE(Create(BundleSpec(), &ok).ok());
  WaitForState(ok.name(), v1::Audit::SUCCEEDED);
  v1::Audit full;
  ASSERT_TRUE(Create(BundleSpec(), &full, "", {{"paths", "1"}}).ok());
  gate_.Open();
  WaitForState(full.name(), v1::Audit::FAILED);
  server_.reset();

  std::map<std::string, std::vector<std::string>> states;
  for (const nlohmann::json& line : LogLines("audit state")) {
    states[line.at("audit").get<std::string>()].push_back(line.at("state").get<std::string>());
    EXPECT_TRUE(line.at("duration_seconds").is_number()) << line;
    EXPECT_TRUE(line.contains("stage")) << line;
    const std::string text = line.dump();
    EXPECT_THAT(text, Not(HasSubstr(dir_))) << "a server path in the log";
    EXPECT_THAT(text, Not(HasSubstr("no space left"))) << "an error message in the log";
    if (line.at("audit") == full.name() && line.at("state") == "FAILED") {
      EXPECT_EQ(line.value("error_code", ""), "RESOURCE_EXHAUSTED") << line;
      EXPECT_EQ(line.value("from", ""), "RUNNING") << line;
      EXPECT_EQ(line.value("stage", ""), "report") << line;
      EXPECT_EQ(line.value("level", ""), "warning") << line;
    }
  }
  EXPECT_THAT(states[ok.name()], testing::ElementsAre("PENDING", "RUNNING", "SUCCEEDED"));
  EXPECT_THAT(states[full.name()], testing::ElementsAre("PENDING", "RUNNING", "FAILED"));
}

// The "serving" line counts the audits the start resumed, even once a worker
// has taken them from the queue.
TEST_F(ServiceTest, ServingLineCountsResumedAudits) {
  v1::Audit held;
  ASSERT_TRUE(Create(BundleSpec(), &held, "", {{"hold", "1"}}).ok());
  WaitForState(held.name(), v1::Audit::RUNNING);
  ASSERT_TRUE(server_->Drain(absl::Now() + absl::Seconds(60)).ok());
  server_.reset();
  CaptureLogs();
  StartServer();
  WaitForState(held.name(), v1::Audit::RUNNING);  // taken by the worker
  gate_.Open();
  WaitForState(held.name(), v1::Audit::SUCCEEDED);
  server_.reset();
  const std::vector<nlohmann::json> serving = LogLines("serving");
  ASSERT_EQ(serving.size(), 1u);
  EXPECT_EQ(serving[0].value("resumed_jobs", -1), 1) << serving[0];
}

// One server per data dir and per port: a second one refuses to start and
// says why; the first goes on serving.
TEST_F(ServiceTest, SecondServerOnTheSameDataDirOrPortIsRefused) {
  // A temporary the running server is writing (an upload under way): the
  // refused second server must not sweep it as stale.
  const std::string writing = dir_ + "/data/artifacts/" + std::string(64, 'c') + ".tmp.1.0";
  std::ofstream(writing) << "partial upload";
  AuditServerOptions same_dir;
  same_dir.config.listen_address = "127.0.0.1:0";
  same_dir.config.data_dir = dir_ + "/data";
  same_dir.logger = MakeNullLogger();
  absl::StatusOr<std::unique_ptr<AuditServer>> second = AuditServer::Start(same_dir);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr(dir_ + "/data/LOCK"));
  EXPECT_THAT(second.status().message(), HasSubstr(absl::StrCat("pid ", getpid())));
  EXPECT_TRUE(fs::exists(writing)) << "the refused server removed the running one's temporary";

  AuditServerOptions same_port;
  same_port.config.listen_address = server_->target();
  same_port.config.data_dir = dir_ + "/other";
  same_port.logger = MakeNullLogger();
  second = AuditServer::Start(same_port);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("cannot listen on " + server_->target()));
  ExpectAlive();

  // The lock goes with the server: a restart on the same data dir works.
  server_.reset();
  StartServer();
  ExpectAlive();
}

// Each AuditService method gets a latency histogram (health and reflection
// do not); /metrics also shows the process and the version.
TEST_F(ServiceTest, MetricsTimeEveryMethodAndShowTheProcess) {
  v1::Audit audit;
  EXPECT_EQ(Get("audits/nope", &audit).error_code(), grpc::StatusCode::NOT_FOUND);
  ExpectAlive();  // ListAudits
  std::unique_ptr<Health::Stub> health = Health::NewStub(channel_);
  HealthCheckResponse response;
  ASSERT_TRUE(health->Check(Ctx().get(), HealthCheckRequest(), &response).ok());
  std::vector<v1::Audit> snapshots;
  EXPECT_EQ(Watch("audits/nope", 0, &snapshots).error_code(), grpc::StatusCode::NOT_FOUND);
  // A method the service lacks, under its path: answered UNIMPLEMENTED, and
  // no new label value (a client could otherwise grow /metrics at will).
  {
    grpc::GenericStub generic(channel_);
    grpc::CompletionQueue cq;
    grpc::ClientContext context;
    grpc::ByteBuffer request, reply;
    grpc::Status status;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
        generic.PrepareUnaryCall(&context, "/mia.v1.AuditService/NoSuchMethod", request, &cq);
    call->StartCall();
    call->Finish(&reply, &status, reinterpret_cast<void*>(1));
    void* tag = nullptr;
    bool ok = false;
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
  }

  // Observed as each status goes out, before the client sees it.
  const std::string text = server_->metrics()->Text();
  EXPECT_THAT(text, HasSubstr("mia_rpc_duration_seconds_count{method=\"GetAudit\"} 1"));
  EXPECT_THAT(text, HasSubstr("mia_rpc_duration_seconds_count{method=\"ListAudits\"} 1"));
  EXPECT_THAT(text, HasSubstr("mia_rpc_duration_seconds_count{method=\"WatchAudit\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("method=\"Check\"")));
  EXPECT_THAT(text, Not(HasSubstr("NoSuchMethod")));
  EXPECT_THAT(text, Not(HasSubstr("grpc.health")));
  EXPECT_THAT(text,
              testing::ContainsRegex("mia_build_info\\{version=\"[0-9]+\\.[0-9]+\\.[0-9]+\"\\} 1"));
  EXPECT_THAT(text, HasSubstr("process_resident_memory_bytes "));
  EXPECT_THAT(text, HasSubstr("process_open_fds "));
}

// /metrics over plain HTTP: the text format, 404 and 405 for anything else,
// a taken port refused, and the thread stopping with the object.
std::string HttpRequest(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) out.append(buffer, n);
  ::close(fd);
  return out;
}

TEST(MetricsHttpTest, ServesTheRegistryAndNothingElse) {
  ServerMetrics metrics;
  metrics.OnRpc("GetAudit", "OK");
  metrics.OnQueueDepth(3);
  auto http = MetricsHttpServer::Start("127.0.0.1", 0, metrics.collectable());
  ASSERT_TRUE(http.ok()) << http.status();
  const int port = (*http)->port();
  ASSERT_GT(port, 0);

  const std::string ok = HttpRequest(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ok, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(ok, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(ok, HasSubstr("mia_queue_depth 3"));
  EXPECT_THAT(ok, HasSubstr("method=\"GetAudit\""));
  EXPECT_THAT(ok, HasSubstr("\nprocess_open_fds "));  // collected at the request
  EXPECT_THAT(HttpRequest(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n"), StartsWith("HTTP/1.1 200"));
  const std::string head = HttpRequest(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(head, Not(HasSubstr("mia_queue_depth")));
  EXPECT_THAT(HttpRequest(port, "GET / HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(HttpRequest(port, "POST /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(HttpRequest(port, "garbage\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  // A request that never ends is dropped; the server keeps serving.
  EXPECT_EQ(HttpRequest(port, std::string(20000, 'a')), "");
  EXPECT_THAT(HttpRequest(port, "GET /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 200"));

  // The port is taken while it serves.
  auto second = MetricsHttpServer::Start("127.0.0.1", port, metrics.collectable());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("cannot serve metrics on 127.0.0.1:"));
  http->reset();
  EXPECT_EQ(HttpRequest(port, "GET /metrics HTTP/1.1\r\n\r\n"), "connect failed");
}

// A connected socket to 127.0.0.x:port, or -1.
int ConnectTo(const char* ip, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip, &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A client that sends a request a byte at a time, `gap` apart, until it has
// sent `bytes` or the server closes the connection; returns whether the
// server closed it first.
bool TrickleUntilClosed(int fd, absl::Duration gap, int bytes) {
  const std::string request = "GET /metrics HTTP/1.1\r\nX-Slow: ";
  for (int i = 0; i < bytes; ++i) {
    const char c = i < static_cast<int>(request.size()) ? request[i] : 'a';
    if (::send(fd, &c, 1, MSG_NOSIGNAL) != 1) return true;
    pollfd p{fd, POLLIN, 0};
    // Readable before the request ended: the server answered or hung up.
    if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(gap))) > 0) return true;
  }
  return false;
}

// Issue 10: one client trickling a byte at a time held the old one-connection
// server for hours and 3 of 4 scrapes failed. Scrapes are served beside it.
TEST(MetricsHttpTest, ASlowClientDoesNotDelayAScrape) {
  ServerMetrics metrics;
  metrics.OnQueueDepth(3);
  auto http = MetricsHttpServer::Start("127.0.0.1", 0, metrics.collectable());
  ASSERT_TRUE(http.ok()) << http.status();
  const int port = (*http)->port();
  const int slow = ConnectTo("127.0.0.1", port);
  ASSERT_GE(slow, 0);
  std::thread trickle([slow] { TrickleUntilClosed(slow, absl::Milliseconds(100), 40); });
  absl::SleepFor(absl::Milliseconds(300));  // the slow request is under way
  for (int i = 0; i < 3; ++i) {
    const absl::Time start = absl::Now();
    EXPECT_THAT(HttpRequest(port, "GET /metrics HTTP/1.1\r\n\r\n"), HasSubstr("mia_queue_depth 3"));
    // A functional bound with a wide margin: a scrape takes milliseconds.
    EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << "scrape " << i;
  }
  trickle.join();
  ::close(slow);
}

TEST(MetricsHttpTest, CutsOffARequestPastItsDeadline) {
  ServerMetrics metrics;
  auto http = MetricsHttpServer::Start("127.0.0.1", 0, metrics.collectable(), absl::Seconds(1));
  ASSERT_TRUE(http.ok()) << http.status();
  const int slow = ConnectTo("127.0.0.1", (*http)->port());
  ASSERT_GE(slow, 0);
  // A byte every 100 ms never trips a per-read timeout; 300 bytes would take
  // 30 s, and the whole-request deadline ends it long before.
  EXPECT_TRUE(TrickleUntilClosed(slow, absl::Milliseconds(100), 300));
  ::close(slow);
  // Stopping does not wait for slow clients either.
  const int another = ConnectTo("127.0.0.1", (*http)->port());
  ASSERT_GE(another, 0);
  ::send(another, "GET /me", 7, MSG_NOSIGNAL);
  http->reset();
  ::close(another);
}

// metrics_address defaults to the gRPC listen host: a server listening on
// 127.0.0.1 does not publish its metrics on every interface.
TEST_F(ServiceTest, MetricsBindTheListenHostByDefault) {
  int free_port = 0;
  {
    auto probe = MetricsHttpServer::Start("127.0.0.1", 0, ServerMetrics().collectable());
    ASSERT_TRUE(probe.ok()) << probe.status();
    free_port = (*probe)->port();
  }
  server_.reset();
  StartServer([free_port](ServerConfig& c) { c.metrics_port = free_port; });
  ASSERT_EQ(server_->metrics_port(), free_port);
  EXPECT_THAT(HttpRequest(free_port, "GET /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 200"));
  // 127.0.0.2 is this machine too (all of 127/8 is loopback), but not the
  // address the server listens on.
  const int other = ConnectTo("127.0.0.2", free_port);
  EXPECT_EQ(other, -1);
  if (other >= 0) ::close(other);
}

// The router under the metrics endpoint: exact paths, prefixes, the header
// fields a handler sees, and what it answers itself.
TEST(HttpRouterTest, RoutesAnswersAndRefusals) {
  HttpRoutes routes;
  mia::server::HttpRequest seen;
  routes.Get("/a", [](const mia::server::HttpRequest&) {
    HttpResponse r;
    r.body = "A";
    r.headers.push_back({"X-Test", "1"});
    return r;
  });
  routes.GetPrefix("/p/", [&seen](const mia::server::HttpRequest& request) {
    seen = request;
    HttpResponse r;
    r.body = request.path;
    return r;
  });
  routes.GetPrefix("/p/q/", [](const mia::server::HttpRequest&) {
    HttpResponse r;
    r.status = 409;
    r.body = "longest prefix";
    return r;
  });
  const std::string a = RouteRequest(routes, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(a, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(a, HasSubstr("\r\nX-Test: 1\r\n"));
  EXPECT_THAT(a, HasSubstr("Content-Length: 1\r\n"));
  EXPECT_THAT(a, testing::EndsWith("\r\n\r\nA"));
  const std::string head = RouteRequest(routes, "HEAD /a HTTP/1.1\r\n\r\n");
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(head, testing::EndsWith("\r\n\r\n"));
  EXPECT_THAT(RouteRequest(routes, "GET /a/ HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(RouteRequest(routes, "GET /b HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(RouteRequest(routes, "GET /p/x/y?k=v&w HTTP/1.1\r\nAuthorization:  Bearer t \r\n"
                                   "X-Other: 2\r\n\r\n"),
              testing::EndsWith("/p/x/y"));
  EXPECT_EQ(seen.method, "GET");
  EXPECT_EQ(seen.path, "/p/x/y");
  EXPECT_EQ(seen.query, "k=v&w");
  EXPECT_EQ(seen.headers["authorization"], "Bearer t");
  EXPECT_EQ(seen.headers["x-other"], "2");
  EXPECT_THAT(RouteRequest(routes, "GET /p/q/z HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 409"));
  // Read-only: every other method, on any path.
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    EXPECT_THAT(RouteRequest(routes, std::string(method) + " /a HTTP/1.1\r\n\r\n"),
                StartsWith("HTTP/1.1 405"))
        << method;
  }
  EXPECT_THAT(RouteRequest(routes, "POST /nowhere HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 405"));
  // Dot segments never reach a handler, however they are placed.
  for (const char* path : {"/p/../a", "/p/./x", "/p/..", "/..", "/p/x/../../etc/passwd", "p/x",
                           "/p/x\\..\\y"}) {
    EXPECT_THAT(RouteRequest(routes, "GET " + std::string(path) + " HTTP/1.1\r\n\r\n"),
                StartsWith("HTTP/1.1 400"))
        << path;
  }
  EXPECT_THAT(RouteRequest(routes, "GET\r\n\r\n"), StartsWith("HTTP/1.1 400"));
}

// The authorize hook gates every dashboard route that returns data before it
// reads anything (the backend here is null: a refused request never reaches
// it); the two pages hold no data and are served with a token form.
TEST(DashboardTest, AuthorizeGatesEveryDataRoute) {
  HttpRoutes routes;
  DashboardOptions options;
  options.authorize =
      [](const mia::server::HttpRequest& request) -> absl::StatusOr<mia::server::Caller> {
    const auto it = request.headers.find("authorization");
    if (it == request.headers.end()) return absl::UnauthenticatedError("a token is required");
    if (it->second != "Bearer good") return absl::PermissionDeniedError("not yours");
    return mia::server::Caller();
  };
  AddDashboardRoutes(nullptr, options, &routes);
  for (const char* path : {"/api/audits", "/api/audits/abc", "/api/audits/abc/files",
                           "/audits/abc/report.html"}) {
    EXPECT_THAT(RouteRequest(routes, "GET " + std::string(path) + " HTTP/1.1\r\n\r\n"),
                StartsWith("HTTP/1.1 401"))
        << path;
    EXPECT_THAT(RouteRequest(routes, "GET " + std::string(path) +
                                         " HTTP/1.1\r\nAuthorization: Bearer bad\r\n\r\n"),
                StartsWith("HTTP/1.1 403"))
        << path;
  }
  for (const char* path : {"/", "/audits/abc"}) {
    const std::string page = RouteRequest(routes, "GET " + std::string(path) + " HTTP/1.1\r\n\r\n");
    EXPECT_THAT(page, StartsWith("HTTP/1.1 200")) << path;
    EXPECT_THAT(page, HasSubstr("id=\"login\"")) << path;
    EXPECT_THAT(page, HasSubstr("data-auth=\"1\"")) << path;
  }
}

// The body of an HTTP response, after the header.
std::string HttpBody(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

std::string HttpGet(int port, const std::string& path) {
  return HttpRequest(port, "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
}

// The dashboard on the metrics port reads what the gRPC API reads: the audits
// with their state and progress, and once one SUCCEEDED its report files,
// never a file outside its report folder.
TEST_F(ServiceTest, DashboardShowsAuditsProgressAndReportFiles) {
  int free_port = 0;
  {
    auto probe = MetricsHttpServer::Start("127.0.0.1", 0, ServerMetrics().collectable());
    ASSERT_TRUE(probe.ok()) << probe.status();
    free_port = (*probe)->port();
  }
  server_.reset();
  StartServer([free_port](ServerConfig& c) { c.metrics_port = free_port; });
  const int port = server_->metrics_port();
  EXPECT_THAT(HttpGet(port, "/metrics"), StartsWith("HTTP/1.1 200"));

  const std::string index = HttpGet(port, "/");
  EXPECT_THAT(index, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(index, HasSubstr("Content-Type: text/html; charset=utf-8"));
  EXPECT_THAT(index, HasSubstr("Content-Security-Policy: default-src 'none'"));
  EXPECT_THAT(HttpBody(index), Not(HasSubstr("http://")));
  EXPECT_THAT(HttpBody(index), Not(HasSubstr("https://")));
  EXPECT_THAT(HttpBody(index), Not(HasSubstr(" src=")));
  EXPECT_EQ(nlohmann::json::parse(HttpBody(HttpGet(port, "/api/audits")))["audits"].size(), 0u);

  v1::Audit created;
  ASSERT_TRUE(Create(BundleSpec(), &created, "", {{"hold", "1"}}).ok());
  const std::string id = created.name().substr(std::string("audits/").size());
  const nlohmann::json listed = nlohmann::json::parse(HttpBody(HttpGet(port, "/api/audits")));
  ASSERT_EQ(listed["audits"].size(), 1u);
  EXPECT_EQ(listed["audits"][0]["name"], created.name());
  EXPECT_THAT(std::string(listed["audits"][0]["state"]), testing::AnyOf("PENDING", "RUNNING"));
  EXPECT_EQ(listed["truncated"], false);
  EXPECT_THAT(HttpGet(port, "/audits/" + id), StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(HttpGet(port, "/audits/" + id), HasSubstr("data-id=\"" + id + "\""));
  // No report before it succeeded.
  EXPECT_THAT(HttpGet(port, "/audits/" + id + "/report.html"), StartsWith("HTTP/1.1 409"));

  gate_.Open();
  WaitForState(created.name(), v1::Audit::SUCCEEDED);
  const nlohmann::json one =
      nlohmann::json::parse(HttpBody(HttpGet(port, "/api/audits/" + id)));
  EXPECT_EQ(one["state"], "SUCCEEDED");
  EXPECT_EQ(one["progress"]["stage"], "done");
  const nlohmann::json files =
      nlohmann::json::parse(HttpBody(HttpGet(port, "/api/audits/" + id + "/files")));
  std::set<std::string> names;
  for (const nlohmann::json& f : files["files"]) names.insert(f["file"]);
  EXPECT_EQ(names.count("report.html"), 1u);
  EXPECT_EQ(names.count("result.json"), 1u);
  EXPECT_EQ(names.count("scores.csv"), 1u);

  const std::string report_dir = dir_ + "/data/jobs/" + id + "/report";
  const std::string html = HttpGet(port, "/audits/" + id + "/report.html");
  EXPECT_THAT(html, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(html, HasSubstr("Content-Type: text/html; charset=utf-8"));
  EXPECT_THAT(html, Not(HasSubstr("Content-Disposition")));
  EXPECT_EQ(HttpBody(html), ReadAll(report_dir + "/report.html"));
  const std::string result = HttpGet(port, "/audits/" + id + "/result.json");
  EXPECT_THAT(result, HasSubstr("Content-Disposition: attachment; filename=\"result.json\""));
  EXPECT_EQ(HttpBody(result), ReadAll(report_dir + "/result.json"));
  EXPECT_THAT(HttpGet(port, "/audits/" + id + "/scores.csv"), StartsWith("HTTP/1.1 200"));

  // Nothing outside the report folder: dot segments, encoded ones, hidden
  // names, sub-paths, links out of the folder, ids of another shape.
  fs::create_symlink(dir_ + "/data/jobs.db", report_dir + "/link.db");
  ASSERT_TRUE(fs::is_symlink(report_dir + "/link.db"));
  for (const std::string& path :
       std::vector<std::string>{"/audits/" + id + "/../../jobs.db", "/audits/" + id + "/..",
                                "/audits/../jobs.db"}) {
    EXPECT_THAT(HttpGet(port, path), StartsWith("HTTP/1.1 400")) << path;
  }
  for (const std::string& path :
       {"/audits/" + id + "/%2e%2e%2f%2e%2e%2fjobs.db", "/audits/" + id + "/link.db",
        "/audits/" + id + "/report.html/x", "/audits/" + id + "/nothing.txt",
        "/api/audits/" + id + "/other"}) {
    const std::string response = HttpGet(port, path);
    EXPECT_THAT(response, StartsWith("HTTP/1.1 404")) << path;
    EXPECT_THAT(response, Not(HasSubstr("SQLite"))) << path;
  }
  EXPECT_THAT(HttpGet(port, "/audits/" + id + "/.hidden"), StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(HttpGet(port, "/audits/not%20an%20id/report.html"), StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(HttpGet(port, "/api/audits/" + std::string(id.size(), 'f')),
              testing::AnyOf(StartsWith("HTTP/1.1 404"), StartsWith("HTTP/1.1 400")));
  EXPECT_THAT(HttpRequest(port, "DELETE /audits/" + id + " HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 405"));
  // The request size cap still holds on the shared endpoint.
  EXPECT_EQ(HttpRequest(port, "GET /" + std::string(20000, 'a')), "");
  EXPECT_THAT(HttpGet(port, "/"), StartsWith("HTTP/1.1 200"));
}

TEST_F(ServiceTest, DashboardOffLeavesOnlyMetrics) {
  int free_port = 0;
  {
    auto probe = MetricsHttpServer::Start("127.0.0.1", 0, ServerMetrics().collectable());
    ASSERT_TRUE(probe.ok()) << probe.status();
    free_port = (*probe)->port();
  }
  server_.reset();
  StartServer([free_port](ServerConfig& c) {
    c.metrics_port = free_port;
    c.dashboard = false;
  });
  EXPECT_THAT(HttpGet(server_->metrics_port(), "/metrics"), StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(HttpGet(server_->metrics_port(), "/"), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(HttpGet(server_->metrics_port(), "/api/audits"), StartsWith("HTTP/1.1 404"));
}

// Records the configuration it is handed.
class RecordingConfigRunner final : public jobs::PipelineConfigRunner {
 public:
  absl::StatusOr<jobs::RunOutcome> RunConfig(pipeline::Config config,
                                             const jobs::RunContext& ctx) override {
    config_ = std::move(config);
    fs::create_directories(ctx.work_dir + "/report");
    return jobs::RunOutcome{ctx.work_dir + "/report"};
  }
  absl::StatusOr<std::string> RunUnitConfig(pipeline::Config config, const std::string& unit,
                                            const jobs::RunContext& /*ctx*/) override {
    config_ = std::move(config);
    return "unit " + unit;
  }
  const std::optional<pipeline::Config>& config() const { return config_; }

 private:
  std::optional<pipeline::Config> config_;
};

// Issue 10: the worker gets the validated spec as a typed value (the one
// SpecFromProto built), not JSON to decode again.
TEST(RoutingJobRunnerTest, PipelineJobsGetTheValidatedConfigAsAValue) {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const fs::path dir = fs::path(env != nullptr ? env : ::testing::TempDir()) / "router_test";
  fs::remove_all(dir);
  fs::create_directories(dir / "data");
  std::ofstream(dir / "data" / "purchase.csv") << "1,0\n";
  ServerRoots roots;
  roots.data_roots = {(dir / "data").string()};
  roots.jobs_dir = (dir / "jobs").string();
  v1::AuditSpec spec;
  spec.mutable_data()->set_dataset("purchase100");
  spec.mutable_data()->mutable_data_dir()->set_server_path("purchase.csv");
  spec.mutable_data()->set_population_size(4);
  spec.mutable_train()->set_learning_rate(0.125);
  jobs::JobRecord job;
  job.spec_json = CanonicalSpecJson(spec);
  jobs::RunContext ctx;
  ctx.work_dir = (dir / "jobs" / "j1").string();

  RecordingConfigRunner pipeline;
  RoutingJobRunner router(roots, /*bundle=*/nullptr, &pipeline);
  absl::StatusOr<jobs::RunOutcome> outcome = router.Run(job, ctx);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  ASSERT_TRUE(pipeline.config().has_value());
  EXPECT_EQ(pipeline.config()->recipe.learning_rate, 0.125);
  EXPECT_EQ(pipeline.config()->data.population_size, 4);
  EXPECT_EQ(fs::path(pipeline.config()->data.source.path),
            fs::weakly_canonical(dir / "data" / "purchase.csv"));
  // Models go to the shared cache; the runner puts the report in the job's
  // folder (PipelineJobRunner: ctx.work_dir/report).
  EXPECT_EQ(pipeline.config()->run.log_dir, roots.ModelCacheDir());
}

// --store=postgresql://...: the audits live in PostgreSQL (no jobs.db), the
// server exposes the store as its ClusterQueue, the data dir is not locked
// (replicas may share it), and the password appears in no log line.
TEST_F(ServiceTest, PostgresStoreRunsAuditsWithoutTheDataDirLock) {
  std::string base;
  MIA_POSTGRES_URL_OR_SKIP(base);
  const std::string url = test_util::FreshPostgresDatabase(base, "service_postgres_store");
  const size_t colon = url.find(':', std::string("postgresql://").size());
  const std::string password = url.substr(colon + 1, url.find('@') - colon - 1);
  ASSERT_FALSE(password.empty());
  server_.reset();
  fs::remove_all(dir_ + "/data");
  CaptureLogs();
  StartServer([&](ServerConfig& c) { c.store = url; });
  ASSERT_NE(server_->cluster_queue(), nullptr);
  v1::Audit created;
  ASSERT_TRUE(Create(BundleSpec(), &created, "req-1").ok());
  WaitForState(created.name(), v1::Audit::SUCCEEDED);
  EXPECT_EQ(test_util::QueryPg(url, "SELECT state FROM jobs"), "SUCCEEDED");
  EXPECT_EQ(test_util::QueryPg(url, "SELECT request_id FROM jobs"), "req-1");
  EXPECT_FALSE(fs::exists(dir_ + "/data/jobs.db"));
  // A second server on the same data dir and database starts (no lock).
  AuditServerOptions second;
  second.config = server_->config();
  second.logger = MakeNullLogger();
  absl::StatusOr<std::unique_ptr<AuditServer>> other = AuditServer::Start(std::move(second));
  ASSERT_TRUE(other.ok()) << other.status();
  other->reset();
  server_.reset();
  const std::vector<nlohmann::json> opened = LogLines("job store opened");
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0].value("kind", ""), "postgresql");
  EXPECT_THAT(opened[0].value("store", ""), StartsWith("postgresql://mia@127.0.0.1:"));
  EXPECT_THAT(log_.str(), Not(HasSubstr(password)));
}

TEST_F(ServiceTest, SqliteStoreHasNoClusterQueue) { EXPECT_EQ(server_->cluster_queue(), nullptr); }

// ---------------------------------------------------------------------------
// Tenants and tokens (server/auth.h) through the real server.

// Distinctive tokens, so that a log line holding one is found.
constexpr char kTokenA[] = "tok-A-submit-5e1d0c7b9a";
constexpr char kTokenAReader[] = "tok-A-reader-83f2aa61c4";
constexpr char kTokenB[] = "tok-B-submit-0c9d77e2f1";
constexpr char kTokenAdmin[] = "tok-admin-4b6e91d3a8";
constexpr char kTokenQ[] = "tok-Q-submit-1f2e3d4c5b";

class AuthServiceTest : public ServiceTest {
 protected:
  // A server with a tokens file (and `extra` YAML after the tokens).
  void StartWithTokens(const std::string& extra = "") {
    const std::string path = dir_ + "/tokens.yaml";
    std::ofstream(path) << absl::StrCat(
        "tokens:\n",
        "  - {sha256: ", Sha256Hex(kTokenA), ", tenant: team-a, role: submitter}\n",
        "  - {sha256: ", Sha256Hex(kTokenAReader), ", tenant: team-a, role: reader}\n",
        "  - {sha256: ", Sha256Hex(kTokenB), ", tenant: team-b, role: submitter}\n",
        "  - {sha256: ", Sha256Hex(kTokenAdmin), ", tenant: ops, role: admin}\n",
        "  - {sha256: ", Sha256Hex(kTokenQ), ", tenant: team-q, role: submitter}\n", extra);
    server_.reset();
    StartServer([path](ServerConfig& c) { c.auth_tokens_file = path; });
  }

  // A small bundle uploaded as the current caller; its artifact id.
  std::string UploadSmallBundle(int seed) {
    audit::SyntheticOptions synthetic;
    synthetic.models = 6;
    synthetic.points = 200;
    synthetic.population = 100;
    synthetic.seed = seed;
    absl::StatusOr<io::NpyMap> arrays = audit::MakeSyntheticBundle(synthetic);
    EXPECT_TRUE(arrays.ok());
    const std::string file = absl::StrCat(dir_, "/small", seed, ".npz");
    EXPECT_TRUE(io::WriteNpz(file, *arrays, /*compress=*/true).ok());
    const std::string content = ReadAll(file);
    const v1::ArtifactHeader header = HeaderFor(content, "small.npz");
    v1::Artifact artifact;
    const grpc::Status status = Upload(content, header, &artifact);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return artifact.artifact_id();
  }

  // A unary RPC whose request names one audit, its answer dropped.
  template <typename Request, typename Response>
  grpc::Status ByName(grpc::Status (v1::AuditService::Stub::*rpc)(grpc::ClientContext*,
                                                                 const Request&, Response*),
                      const std::string& name) {
    Request request;
    request.set_name(name);
    Response response;
    return ((*stub_).*rpc)(Ctx().get(), request, &response);
  }
  grpc::Status Cancel(const std::string& name) {
    return ByName(&v1::AuditService::Stub::CancelAudit, name);
  }
  grpc::Status Delete(const std::string& name) {
    return ByName(&v1::AuditService::Stub::DeleteAudit, name);
  }
  grpc::Status Scores(const std::string& name) {
    return ByName(&v1::AuditService::Stub::ListAuditScores, name);
  }
  grpc::Status Files(const std::string& name) {
    return ByName(&v1::AuditService::Stub::ListReportFiles, name);
  }
  grpc::Status Download(const std::string& name, std::string* out = nullptr) {
    v1::GetReportFileRequest request;
    request.set_name(name);
    request.set_file("result.json");
    auto ctx = Ctx();
    auto reader = stub_->GetReportFile(ctx.get(), request);
    v1::FileChunk chunk;
    while (reader->Read(&chunk)) {
      if (out != nullptr) *out += chunk.data();
    }
    return reader->Finish();
  }
  std::vector<std::string> ListNames(grpc::Status* status, std::vector<std::string>* tenants) {
    v1::ListAuditsResponse response;
    *status = stub_->ListAudits(Ctx().get(), v1::ListAuditsRequest(), &response);
    std::vector<std::string> names;
    for (const v1::Audit& a : response.audits()) {
      names.push_back(a.name());
      if (tenants != nullptr) tenants->push_back(a.tenant());
    }
    return names;
  }
};

// Every RPC: tenant A finds nothing of tenant B's (NOT_FOUND with the message
// of an audit that does not exist), a reader cannot write, no credentials or
// bad ones are UNAUTHENTICATED, health stays open, an admin sees all; and no
// log line holds a token.
TEST_F(AuthServiceTest, TenantsSeeOnlyTheirOwnAuditsAndUploadsInEveryRpc) {
  CaptureLogs();
  StartWithTokens();

  // Tenant B: an upload and an audit on it, finished.
  std::string b_artifact;
  v1::Audit b_audit;
  {
    As b(kTokenB);
    b_artifact = UploadSmallBundle(7);
    v1::AuditSpec spec = BundleSpec();
    spec.mutable_signals_bundle()->mutable_bundle()->set_artifact_id(b_artifact);
    const grpc::Status created = Create(spec, &b_audit);
    ASSERT_TRUE(created.ok()) << created.error_message();
    EXPECT_TRUE(b_audit.tenant().empty());  // shown to admins only
    std::vector<v1::Audit> snapshots;
    ASSERT_TRUE(Watch(b_audit.name(), 0, &snapshots).ok());
    ASSERT_EQ(snapshots.back().state(), v1::Audit::SUCCEEDED);
    ASSERT_TRUE(Scores(b_audit.name()).ok());
    ASSERT_TRUE(Files(b_audit.name()).ok());
    ASSERT_TRUE(Download(b_audit.name()).ok());
  }
  const std::string name = b_audit.name();
  // An audit that does not exist, for comparing messages.
  std::string missing = name;
  missing.back() = missing.back() == '0' ? '1' : '0';

  {
    As a(kTokenA);
    const auto expect_hidden = [&](const grpc::Status& status, const grpc::Status& truly_missing,
                                   const char* rpc) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << rpc;
      EXPECT_EQ(truly_missing.error_code(), grpc::StatusCode::NOT_FOUND) << rpc;
      std::string message = status.error_message();
      const size_t at = message.find(name);
      if (at != std::string::npos) message.replace(at, name.size(), missing);
      EXPECT_EQ(message, truly_missing.error_message()) << rpc;
    };
    v1::Audit audit;
    expect_hidden(Get(name, &audit), Get(missing, &audit), "GetAudit");
    std::vector<v1::Audit> snapshots;
    expect_hidden(Watch(name, 0, &snapshots), Watch(missing, 0, &snapshots), "WatchAudit");
    EXPECT_TRUE(snapshots.empty());
    expect_hidden(Cancel(name), Cancel(missing), "CancelAudit");
    expect_hidden(Delete(name), Delete(missing), "DeleteAudit");
    expect_hidden(Scores(name), Scores(missing), "ListAuditScores");
    expect_hidden(Files(name), Files(missing), "ListReportFiles");
    std::string leaked;
    expect_hidden(Download(name, &leaked), Download(missing), "GetReportFile");
    EXPECT_TRUE(leaked.empty());
    grpc::Status listed;
    EXPECT_THAT(ListNames(&listed, nullptr), Not(Contains(name)));
    EXPECT_TRUE(listed.ok());

    // B's upload, referenced by A: as if the server did not hold it.
    v1::AuditSpec spec = BundleSpec();
    spec.mutable_signals_bundle()->mutable_bundle()->set_artifact_id(b_artifact);
    const grpc::Status foreign = Create(spec, &audit);
    spec.mutable_signals_bundle()->mutable_bundle()->set_artifact_id(std::string(64, 'a'));
    const grpc::Status absent = Create(spec, &audit);
    EXPECT_EQ(foreign.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(foreign.error_message(), absent.error_message());
    // Once A uploads the same bytes, they are A's too.
    EXPECT_EQ(UploadSmallBundle(7), b_artifact);
    spec.mutable_signals_bundle()->mutable_bundle()->set_artifact_id(b_artifact);
    v1::Audit a_audit;
    ASSERT_TRUE(Create(spec, &a_audit).ok());
    WaitForState(a_audit.name(), v1::Audit::SUCCEEDED);
    EXPECT_THAT(ListNames(&listed, nullptr), Contains(a_audit.name()));

    // The audit of B is still there and still B's.
    As b(kTokenB);
    v1::Audit still;
    ASSERT_TRUE(Get(name, &still).ok());
    EXPECT_THAT(ListNames(&listed, nullptr), Not(Contains(a_audit.name())));
  }

  // A reader reads its tenant's audits and is refused every write.
  v1::Audit a_audit;
  {
    As a(kTokenA);
    ASSERT_TRUE(Create(BundleSpec(), &a_audit).ok());
    WaitForState(a_audit.name(), v1::Audit::SUCCEEDED);
  }
  {
    As reader(kTokenAReader);
    v1::Audit audit;
    EXPECT_TRUE(Get(a_audit.name(), &audit).ok());
    EXPECT_TRUE(Scores(a_audit.name()).ok());
    EXPECT_TRUE(Files(a_audit.name()).ok());
    EXPECT_TRUE(Download(a_audit.name()).ok());
    std::vector<v1::Audit> snapshots;
    EXPECT_TRUE(Watch(a_audit.name(), 0, &snapshots).ok());
    EXPECT_EQ(Create(BundleSpec(), &audit).error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(Cancel(a_audit.name()).error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(Delete(a_audit.name()).error_code(), grpc::StatusCode::PERMISSION_DENIED);
    v1::ArtifactHeader header;
    header.set_size(3);
    header.set_sha256(Sha256Hex("abc"));
    v1::Artifact artifact;
    EXPECT_EQ(Upload("abc", header, &artifact).error_code(), grpc::StatusCode::PERMISSION_DENIED);
    // Another tenant's audit is still NOT_FOUND for reads.
    EXPECT_EQ(Get(name, &audit).error_code(), grpc::StatusCode::NOT_FOUND);
  }

  // No credentials, or bad ones: UNAUTHENTICATED for every method.
  for (const std::string& token : {std::string(), std::string("tok-unknown-99"),
                                  std::string(kTokenA) + "x"}) {
    As caller(token);
    v1::Audit audit;
    EXPECT_EQ(Create(BundleSpec(), &audit).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Get(a_audit.name(), &audit).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    grpc::Status listed;
    EXPECT_TRUE(ListNames(&listed, nullptr).empty());
    EXPECT_EQ(listed.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    std::vector<v1::Audit> snapshots;
    EXPECT_EQ(Watch(a_audit.name(), 0, &snapshots).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Cancel(a_audit.name()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Delete(a_audit.name()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Scores(a_audit.name()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Files(a_audit.name()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Download(a_audit.name()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    v1::ArtifactHeader header;
    header.set_size(3);
    header.set_sha256(Sha256Hex("abc"));
    v1::Artifact artifact;
    EXPECT_EQ(Upload("abc", header, &artifact).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    // Health stays open.
    EXPECT_EQ(HealthOf(""), HealthCheckResponse::SERVING);
  }

  // An admin sees every tenant's audits, with their tenant.
  {
    As admin(kTokenAdmin);
    grpc::Status listed;
    std::vector<std::string> tenants;
    const std::vector<std::string> names = ListNames(&listed, &tenants);
    ASSERT_TRUE(listed.ok());
    EXPECT_THAT(names, Contains(name));
    EXPECT_THAT(names, Contains(a_audit.name()));
    EXPECT_THAT(tenants, Contains("team-b"));
    EXPECT_THAT(tenants, Contains("team-a"));
    v1::Audit audit;
    ASSERT_TRUE(Get(name, &audit).ok());
    EXPECT_EQ(audit.tenant(), "team-b");
    EXPECT_TRUE(Scores(name).ok());
  }
  // B deletes its own audit; A's stays.
  {
    As b(kTokenB);
    EXPECT_TRUE(Delete(name).ok());
    v1::Audit audit;
    EXPECT_EQ(Get(name, &audit).error_code(), grpc::StatusCode::NOT_FOUND);
  }

  server_.reset();
  const std::string log = log_.str();
  EXPECT_THAT(log, HasSubstr("UNAUTHENTICATED"));  // the refusals were logged
  // Each call's line names the caller's tenant (never its token).
  std::set<std::string> tenants;
  for (const nlohmann::json& line : LogLines("rpc")) tenants.insert(line.value("tenant", ""));
  EXPECT_TRUE(tenants.count("team-a") > 0 && tenants.count("team-b") > 0 && tenants.count("ops") > 0);
  for (const char* token : {kTokenA, kTokenAReader, kTokenB, kTokenAdmin, "tok-unknown-99"}) {
    EXPECT_THAT(log, Not(HasSubstr(token))) << "a log line holds a token";
    EXPECT_THAT(log, Not(HasSubstr(Sha256Hex(token))));
  }
}

// Quotas: queued and running audits per tenant at CreateAudit, upload bytes
// at UploadArtifact; RESOURCE_EXHAUSTED naming the quota; other tenants are
// not held back.
TEST_F(AuthServiceTest, TenantQuotasHold) {
  StartWithTokens(
      "tenants:\n"
      "  team-a: {max_running_audits: 1, max_upload_bytes: 100}\n"
      "  team-q: {max_queued_audits: 1}\n");
  v1::Audit running;
  {
    As a(kTokenA);
    ASSERT_TRUE(Create(BundleSpec(), &running, "", {{"hold", "1"}}).ok());
    WaitForState(running.name(), v1::Audit::RUNNING);
    v1::Audit refused;
    const grpc::Status status = Create(BundleSpec(), &refused, "", {{"hold", "1"}});
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(), HasSubstr("tenant quota max_running_audits (1) reached"));
  }
  {
    As q(kTokenQ);
    v1::Audit queued;
    ASSERT_TRUE(Create(BundleSpec(), &queued, "", {{"hold", "1"}}).ok());  // behind A's
    WaitForState(queued.name(), v1::Audit::PENDING);
    v1::Audit refused;
    const grpc::Status status = Create(BundleSpec(), &refused, "", {{"hold", "1"}});
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(), HasSubstr("tenant quota max_queued_audits (1) reached"));
  }
  {
    As b(kTokenB);  // no quota
    v1::Audit one, two;
    EXPECT_TRUE(Create(BundleSpec(), &one, "", {{"hold", "1"}}).ok());
    EXPECT_TRUE(Create(BundleSpec(), &two, "", {{"hold", "1"}}).ok());
  }
  {
    As a(kTokenA);
    const auto upload = [this](const std::string& content) {
      const v1::ArtifactHeader header = HeaderFor(content);
      v1::Artifact artifact;
      return Upload(content, header, &artifact);
    };
    const std::string first(60, 'x');
    ASSERT_TRUE(upload(first).ok());
    const grpc::Status over = upload(std::string(60, 'y'));
    EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(over.error_message(), HasSubstr("tenant quota max_upload_bytes (100) reached"));
    EXPECT_TRUE(upload(first).ok());                 // already the tenant's: adds nothing
    EXPECT_TRUE(upload(std::string(40, 'z')).ok());  // exactly up to the quota
    EXPECT_EQ(upload("1").error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {
    As b(kTokenB);
    const std::string content(500, 'b');
    const v1::ArtifactHeader header = HeaderFor(content);
    v1::Artifact artifact;
    EXPECT_TRUE(Upload(content, header, &artifact).ok());
  }
  gate_.Open();
  As a(kTokenA);
  WaitForState(running.name(), v1::Audit::SUCCEEDED);
}

// A server reachable from other hosts with neither auth nor TLS says so at
// start; on loopback, or with auth, it does not.
TEST_F(AuthServiceTest, WarnsWhenOpenBeyondLoopbackWithoutAuthOrTls) {
  const auto warnings = [this](const std::string& address, bool auth) {
    log_.str("");
    CaptureLogs();
    server_.reset();
    const std::string tokens = dir_ + "/t.yaml";
    std::ofstream(tokens) << "tokens: []\n";
    StartServer([&](ServerConfig& c) {
      c.listen_address = address;
      if (auth) c.auth_tokens_file = tokens;
    });
    server_.reset();
    return LogLines("open to the network").size();
  };
  EXPECT_EQ(warnings("0.0.0.0:0", false), 1u);
  EXPECT_EQ(warnings("[::]:0", false), 1u);
  EXPECT_EQ(warnings("127.0.0.1:0", false), 0u);
  EXPECT_EQ(warnings("0.0.0.0:0", true), 0u);
  StartServer();
}

// A bad tokens file stops the start, naming the entry and field.
TEST_F(AuthServiceTest, BadTokensFileStopsTheStart) {
  server_.reset();
  const std::string path = dir_ + "/bad.yaml";
  std::ofstream(path) << "tokens: [{sha256: 12, tenant: a, role: reader}]\n";
  AuditServerOptions options;
  options.config.listen_address = "127.0.0.1:0";
  options.config.data_dir = dir_ + "/data";
  options.config.auth_tokens_file = path;
  options.logger = MakeNullLogger();
  absl::StatusOr<std::unique_ptr<AuditServer>> server = AuditServer::Start(std::move(options));
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("tokens[0].sha256"));
  StartServer();
}

// The dashboard with auth on: data routes need the same tokens (401 without),
// and show only the caller's tenant; the page shells carry no data.
TEST_F(AuthServiceTest, DashboardUsesTheSameTokensAndTenants) {
  int free_port = 0;
  {
    auto probe = MetricsHttpServer::Start("127.0.0.1", 0, ServerMetrics().collectable());
    ASSERT_TRUE(probe.ok()) << probe.status();
    free_port = (*probe)->port();
  }
  const std::string path = dir_ + "/tokens.yaml";
  std::ofstream(path) << absl::StrCat(
      "tokens:\n", "  - {sha256: ", Sha256Hex(kTokenA), ", tenant: team-a, role: submitter}\n",
      "  - {sha256: ", Sha256Hex(kTokenB), ", tenant: team-b, role: reader}\n");
  server_.reset();
  StartServer([&](ServerConfig& c) {
    c.auth_tokens_file = path;
    c.metrics_port = free_port;
  });
  const int port = server_->metrics_port();
  v1::Audit a_audit;
  {
    As a(kTokenA);
    ASSERT_TRUE(Create(BundleSpec(), &a_audit).ok());
    WaitForState(a_audit.name(), v1::Audit::SUCCEEDED);
  }
  const std::string id = a_audit.name().substr(std::string("audits/").size());
  const auto get = [port](const std::string& target, const std::string& token) {
    return HttpRequest(port, absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: x\r\n",
                                          token.empty() ? "" : "Authorization: Bearer " + token +
                                                                   "\r\n",
                                          "\r\n"));
  };
  for (const std::string& target : {std::string("/api/audits"), "/api/audits/" + id,
                                   "/api/audits/" + id + "/files", "/audits/" + id + "/result.json"}) {
    const std::string refused = get(target, "");
    EXPECT_THAT(refused, StartsWith("HTTP/1.1 401")) << target;
    EXPECT_THAT(refused, HasSubstr("WWW-Authenticate: Bearer")) << target;
    EXPECT_THAT(get(target, "tok-unknown-99"), StartsWith("HTTP/1.1 401")) << target;
    EXPECT_THAT(get(target, kTokenA), StartsWith("HTTP/1.1 200")) << target;
    // Another tenant: as if the audit did not exist.
    if (target != "/api/audits") {
      EXPECT_THAT(get(target, kTokenB), StartsWith("HTTP/1.1 404")) << target;
    }
  }
  const nlohmann::json mine = nlohmann::json::parse(HttpBody(get("/api/audits", kTokenA)));
  ASSERT_EQ(mine["audits"].size(), 1u);
  EXPECT_EQ(mine["audits"][0]["name"], a_audit.name());
  const nlohmann::json theirs = nlohmann::json::parse(HttpBody(get("/api/audits", kTokenB)));
  EXPECT_EQ(theirs["audits"].size(), 0u);
  // The pages: no data, a token form, served without a token.
  for (const std::string& target : {std::string("/"), "/audits/" + id}) {
    const std::string page = get(target, "");
    EXPECT_THAT(page, StartsWith("HTTP/1.1 200")) << target;
    EXPECT_THAT(page, HasSubstr("data-auth=\"1\""));
    EXPECT_THAT(page, HasSubstr("id=\"login\""));
    EXPECT_THAT(page, HasSubstr("sessionStorage"));
  }
}


// An HS256 JWT, made here with OpenSSL (the server verifies with libjwt).
std::string Hs256Jwt(const std::string& secret, const nlohmann::json& claims) {
  const auto b64 = [](const std::string& bytes) {
    std::string out;
    absl::WebSafeBase64Escape(bytes, &out);
    return out;
  };
  const std::string input =
      b64(nlohmann::json{{"alg", "HS256"}, {"typ", "JWT"}}.dump()) + "." + b64(claims.dump());
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &n);
  return input + "." + b64(std::string(reinterpret_cast<char*>(mac), n));
}

// JWTs through the server's configuration (auth_jwt_keys, issuer, audience):
// the tenant and role claims decide; a bad JWT is UNAUTHENTICATED.
TEST_F(AuthServiceTest, JwtsFromTheConfiguredKeys) {
  const std::string secret = "jwt-secret-for-the-service-test-0123456789";
  const std::string keys = dir_ + "/jwt.secret";
  std::ofstream(keys) << secret << "\n";
  server_.reset();
  StartServer([&](ServerConfig& c) {
    c.auth_jwt_keys = keys;
    c.auth_jwt_issuer = "https://login.example";
    c.auth_jwt_audience = "mia";
  });
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  const auto claims = [&](const std::string& tenant, const std::string& role) {
    return nlohmann::json{{"iss", "https://login.example"}, {"aud", "mia"}, {"exp", now + 600},
                          {"tenant", tenant}, {"role", role}};
  };
  v1::Audit created;
  {
    As j(Hs256Jwt(secret, claims("team-j", "submitter")));
    ASSERT_TRUE(Create(BundleSpec(), &created).ok());
    WaitForState(created.name(), v1::Audit::SUCCEEDED);
  }
  {
    As k(Hs256Jwt(secret, claims("team-k", "submitter")));
    v1::Audit audit;
    EXPECT_EQ(Get(created.name(), &audit).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    As reader(Hs256Jwt(secret, claims("team-j", "reader")));
    v1::Audit audit;
    EXPECT_TRUE(Get(created.name(), &audit).ok());
    EXPECT_EQ(Create(BundleSpec(), &audit).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  nlohmann::json expired = claims("team-j", "admin");
  expired["exp"] = now - 3600;
  nlohmann::json audience = claims("team-j", "admin");
  audience["aud"] = "another-service";
  nlohmann::json issuer = claims("team-j", "admin");
  issuer["iss"] = "https://evil.example";
  for (const std::string& token :
       {Hs256Jwt(secret, expired), Hs256Jwt(secret, audience), Hs256Jwt(secret, issuer),
        Hs256Jwt(secret + "x", claims("team-j", "admin"))}) {
    As bad(token);
    v1::Audit audit;
    EXPECT_EQ(Get(created.name(), &audit).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
}

}  // namespace
}  // namespace mia::server
