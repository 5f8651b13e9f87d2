// The remote commands against an in-process fake AuditService with canned
// answers on 127.0.0.1 (a free port): what they send, what they print, what
// they write and the exit codes a script sees.
#include "client/remote_commands.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/commands.h"
#include "core/common/sha256.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "mia/v1/audit.grpc.pb.h"

namespace mia::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A folder of its own for each test, under MIA_TEST_TMPDIR when set.
std::filesystem::path TestDir() {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const std::filesystem::path base = env != nullptr && *env != '\0' ? env : ::testing::TempDir();
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path dir =
      base / ("mia_client_test." + std::to_string(getpid()) + "." + info->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void WriteFile(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

v1::Audit MakeAudit(const std::string& name, v1::Audit::State state, int64_t version,
                    const std::string& stage, int trained, int total, double fraction) {
  v1::Audit a;
  a.set_name(name);
  a.set_state(state);
  a.set_version(version);
  a.mutable_progress()->set_stage(stage);
  a.mutable_progress()->set_models_trained(trained);
  a.mutable_progress()->set_models_total(total);
  a.mutable_progress()->set_fraction(fraction);
  return a;
}

// One attack on one target: AUC 0.75 in [0.70, 0.80], TPR 12.5% at 1% FPR,
// unresolved at 0.1%, epsilon 1.234.
v1::AuditResult MakeResult() {
  v1::AuditResult r;
  for (double f : {0.1, 0.01, 0.001}) r.add_fprs(f);
  r.add_targets(0);
  r.set_audit_points(4000);
  v1::AttackTargetResult* x = r.add_results();
  x->set_attack("rmia");
  x->set_target(0);
  x->set_auc(0.75);
  x->mutable_auc_ci()->set_low(0.70);
  x->mutable_auc_ci()->set_high(0.80);
  for (double f : {0.1, 0.01, 0.001}) {
    v1::TprAtFpr* t = x->add_tpr_at_fpr();
    t->set_fpr(f);
    t->set_resolved(f > 0.005);
    t->set_tpr(f == 0.01 ? 0.125 : 0.3);
  }
  x->mutable_epsilon()->set_epsilon(1.234);
  x->add_warnings("many excluded points");
  return r;
}

v1::WatchAuditResponse Snapshot(const v1::Audit& a) {
  v1::WatchAuditResponse r;
  *r.mutable_snapshot() = a;
  return r;
}

// google.rpc.Status{code, message, details: [Any(google.rpc.BadRequest)]},
// serialized, as a server sends it in grpc-status-details-bin.
std::string BadRequestDetails(const std::vector<std::pair<std::string, std::string>>& v) {
  google::rpc::BadRequest bad_request;
  for (const auto& [field, description] : v) {
    google::rpc::BadRequest::FieldViolation* fv = bad_request.add_field_violations();
    fv->set_field(field);
    fv->set_description(description);
  }
  google::rpc::Status status;
  status.set_code(3);
  status.set_message("spec has problems");
  status.add_details()->PackFrom(bad_request);
  return status.SerializeAsString();
}

// Canned answers set by a test before it runs a command; requests recorded
// for the test to inspect afterwards.
class FakeAuditService final : public v1::AuditService::Service {
 public:
  // CreateAudit.
  grpc::Status create_status = grpc::Status::OK;
  v1::Audit created;
  // WatchAudit: sent in order, then OK. With watch_break_after >= 0 the first
  // call ends with watch_break_code after that many events (UNAVAILABLE: a
  // server restart; CANCELLED: a server shutting down).
  std::vector<v1::WatchAuditResponse> watch_events;
  int watch_break_after = -1;
  grpc::StatusCode watch_break_code = grpc::StatusCode::UNAVAILABLE;
  // After the break, every further watch ends UNAVAILABLE at once (a server
  // that is stopping).
  bool watch_refuse_after_break = false;
  // GetAudit (also CancelAudit's answer). When get_blocks, the call waits
  // until the client gives up (its deadline).
  grpc::Status get_status = grpc::Status::OK;
  v1::Audit got;
  bool get_blocks = false;
  // ListAudits: pages by token.
  std::map<std::string, v1::ListAuditsResponse> list_pages;
  // ListAuditScores: pages by token.
  std::map<std::string, v1::ListAuditScoresResponse> score_pages;
  // Report files by name; the last chunk of `corrupt_file` carries a wrong
  // checksum. Files are sent in chunks of chunk_bytes. missing_files: what
  // ListReportFiles says the server lost.
  std::map<std::string, std::string> report_files;
  std::vector<std::string> missing_files;
  std::string corrupt_file;
  size_t chunk_bytes = 5;

  std::vector<v1::CreateAuditRequest> creates() {
    std::lock_guard<std::mutex> lock(mu_);
    return creates_;
  }
  std::vector<v1::ListAuditsRequest> list_requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return list_requests_;
  }
  std::vector<v1::UploadArtifactRequest> uploads() {
    std::lock_guard<std::mutex> lock(mu_);
    return uploads_;
  }
  std::vector<v1::WatchAuditRequest> watches() {
    std::lock_guard<std::mutex> lock(mu_);
    return watches_;
  }
  // The "authorization" metadata of each GetAudit ("" when absent).
  std::vector<std::string> authorizations() {
    std::lock_guard<std::mutex> lock(mu_);
    return authorizations_;
  }

  grpc::Status CreateAudit(grpc::ServerContext*, const v1::CreateAuditRequest* request,
                           v1::Audit* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    creates_.push_back(*request);
    if (!create_status.ok()) return create_status;
    *response = created;
    return grpc::Status::OK;
  }

  grpc::Status GetAudit(grpc::ServerContext* ctx, const v1::GetAuditRequest*,
                        v1::Audit* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto it = ctx->client_metadata().find("authorization");
      authorizations_.push_back(it == ctx->client_metadata().end()
                                    ? std::string()
                                    : std::string(it->second.data(), it->second.size()));
    }
    if (get_blocks) {
      // Bounded so that a broken client deadline fails the test, not hangs it.
      for (int i = 0; i < 3000 && !ctx->IsCancelled(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return grpc::Status(grpc::StatusCode::INTERNAL, "the client should have given up");
    }
    if (!get_status.ok()) return get_status;
    *response = got;
    return grpc::Status::OK;
  }

  grpc::Status CancelAudit(grpc::ServerContext*, const v1::CancelAuditRequest*,
                           v1::Audit* response) override {
    if (!get_status.ok()) return get_status;
    *response = got;
    return grpc::Status::OK;
  }

  grpc::Status DeleteAudit(grpc::ServerContext*, const v1::DeleteAuditRequest*,
                           google::protobuf::Empty*) override {
    return get_status;
  }

  grpc::Status ListAudits(grpc::ServerContext*, const v1::ListAuditsRequest* request,
                          v1::ListAuditsResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      list_requests_.push_back(*request);
    }
    auto it = list_pages.find(request->page_token());
    if (it == list_pages.end()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed page token");
    }
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status WatchAudit(grpc::ServerContext*, const v1::WatchAuditRequest* request,
                          grpc::ServerWriter<v1::WatchAuditResponse>* writer) override {
    bool first = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      watches_.push_back(*request);
      first = watches_.size() == 1;
    }
    if (!first && watch_refuse_after_break) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server stopping");
    }
    int sent = 0;
    for (const v1::WatchAuditResponse& e : watch_events) {
      if (first && sent == watch_break_after) {
        return grpc::Status(watch_break_code, "server restarting");
      }
      if (e.has_snapshot() && e.snapshot().version() <= request->from_version()) continue;
      if (!writer->Write(e)) break;
      ++sent;
    }
    return grpc::Status::OK;
  }

  grpc::Status ListAuditScores(grpc::ServerContext*, const v1::ListAuditScoresRequest* request,
                               v1::ListAuditScoresResponse* response) override {
    auto it = score_pages.find(request->page_token());
    if (it == score_pages.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no audit");
    *response = it->second;
    return grpc::Status::OK;
  }

  grpc::Status ListReportFiles(grpc::ServerContext*, const v1::ListReportFilesRequest*,
                               v1::ListReportFilesResponse* response) override {
    for (const auto& [name, content] : report_files) {
      v1::ReportFile* f = response->add_files();
      f->set_file(name);
      f->set_size_bytes(static_cast<int64_t>(content.size()));
      f->set_sha256(Sha256Hex(content));
    }
    for (const std::string& name : missing_files) response->add_missing_files(name);
    return grpc::Status::OK;
  }

  grpc::Status GetReportFile(grpc::ServerContext*, const v1::GetReportFileRequest* request,
                             grpc::ServerWriter<v1::FileChunk>* writer) override {
    auto it = report_files.find(request->file());
    if (it == report_files.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no file");
    const std::string& content = it->second;
    size_t offset = 0;
    do {
      const size_t n = std::min(chunk_bytes, content.size() - offset);
      v1::FileChunk chunk;
      chunk.set_offset(static_cast<int64_t>(offset));
      chunk.set_data(content.substr(offset, n));
      chunk.set_total_size(static_cast<int64_t>(content.size()));
      offset += n;
      if (offset == content.size()) {
        chunk.set_sha256(request->file() == corrupt_file ? std::string(64, '0')
                                                         : Sha256Hex(content));
      }
      writer->Write(chunk);
    } while (offset < content.size());
    return grpc::Status::OK;
  }

  grpc::Status UploadArtifact(grpc::ServerContext*,
                              grpc::ServerReader<v1::UploadArtifactRequest>* reader,
                              v1::Artifact* response) override {
    v1::UploadArtifactRequest request;
    std::string content;
    while (reader->Read(&request)) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        uploads_.push_back(request);
      }
      if (request.has_header()) continue;
      content += request.chunk();
    }
    response->set_artifact_id(Sha256Hex(content));
    response->set_size(static_cast<int64_t>(content.size()));
    return grpc::Status::OK;
  }

 private:
  std::vector<std::string> authorizations_;
  std::mutex mu_;
  std::vector<v1::CreateAuditRequest> creates_;
  std::vector<v1::ListAuditsRequest> list_requests_;
  std::vector<v1::UploadArtifactRequest> uploads_;
  std::vector<v1::WatchAuditRequest> watches_;
};

class RemoteCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    remote_.server = "127.0.0.1:" + std::to_string(port);
    remote_.reconnect_timeout_seconds = 0;
    console_ = Console{&out_, &err_, false};
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // A small pipeline job file.
  std::string JobFile(const std::string& extra = "") {
    const std::filesystem::path path = dir_ / "job.yaml";
    WriteFile(path, "data:\n  dataset: csv\n  data_dir: /srv/x.csv\n" + extra);
    return path.string();
  }

  // PENDING, training, signals, then the final state.
  void CannedRun(v1::Audit::State final_state) {
    fake_.created = MakeAudit("audits/a1", v1::Audit::PENDING, 1, "queued", 0, 4, 0);
    fake_.watch_events = {
        Snapshot(MakeAudit("audits/a1", v1::Audit::PENDING, 1, "queued", 0, 4, 0)),
        Snapshot(MakeAudit("audits/a1", v1::Audit::RUNNING, 2, "train", 1, 4, 0.2)),
        v1::WatchAuditResponse(),
        Snapshot(MakeAudit("audits/a1", v1::Audit::RUNNING, 3, "train", 4, 4, 0.6)),
        Snapshot(MakeAudit("audits/a1", v1::Audit::RUNNING, 4, "signals", 4, 4, 0.8)),
    };
    fake_.watch_events[2].mutable_heartbeat()->set_version(2);
    v1::Audit last = MakeAudit("audits/a1", final_state, 5, "done", 4, 4, 1.0);
    if (final_state == v1::Audit::SUCCEEDED) *last.mutable_result() = MakeResult();
    if (final_state == v1::Audit::FAILED) {
      last.mutable_progress()->set_stage("train");
      last.mutable_error()->set_code("RESOURCE_EXHAUSTED");
      last.mutable_error()->set_message("out of GPU memory");
      last.mutable_error()->set_stage("train");
    }
    fake_.watch_events.push_back(Snapshot(last));
  }

  std::filesystem::path dir_;
  FakeAuditService fake_;
  std::unique_ptr<grpc::Server> server_;
  RemoteOptions remote_;
  std::ostringstream out_, err_;
  Console console_;
};

TEST_F(RemoteCommandsTest, SubmitFollowRendersProgressAndSummary) {
  CannedRun(v1::Audit::SUCCEEDED);
  SubmitOptions submit;
  submit.job_file = JobFile("run:\n  log_dir: here\n");
  submit.follow = true;
  submit.request_id = "req-1";
  submit.labels = {"team=privacy", "run=7"};
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitOk) << err_.str();

  const std::vector<v1::CreateAuditRequest> creates = fake_.creates();
  ASSERT_EQ(creates.size(), 1u);
  EXPECT_EQ(creates[0].spec().data().dataset(), "csv");
  EXPECT_EQ(creates[0].spec().data().data_dir().server_path(), "/srv/x.csv");
  EXPECT_FALSE(creates[0].spec().run().has_log_dir());
  EXPECT_EQ(creates[0].request_id(), "req-1");
  EXPECT_EQ(creates[0].labels().at("team"), "privacy");
  EXPECT_EQ(creates[0].labels().at("run"), "7");

  const std::string out = out_.str(), err = err_.str();
  EXPECT_THAT(out, StartsWith("audits/a1\n"));  // the name first, for scripts
  EXPECT_THAT(out, HasSubstr("AUC"));
  EXPECT_THAT(out, HasSubstr("rmia"));
  EXPECT_THAT(out, HasSubstr("0.7500"));
  EXPECT_THAT(out, HasSubstr("[0.7000, 0.8000]"));
  EXPECT_THAT(out, HasSubstr("12.50%"));
  EXPECT_THAT(out, HasSubstr("unresolved"));
  EXPECT_THAT(out, HasSubstr("1.234"));
  // Plain lines off a terminal: one per stage and model, no redraws.
  EXPECT_THAT(err, HasSubstr("run.log_dir"));
  EXPECT_THAT(err, HasSubstr("train    [######..................]  20%  1/4 models"));
  EXPECT_THAT(err, HasSubstr("train    [########################]  60%  4/4 models"));
  EXPECT_THAT(err, HasSubstr("signals  [###################.....]  80%"));
  EXPECT_THAT(err, HasSubstr("many excluded points"));
  EXPECT_THAT(err, Not(HasSubstr("\r")));
  // The audit's name and how to download the report, never a server path.
  EXPECT_THAT(err, HasSubstr("audits/a1 SUCCEEDED; its report: mia report audits/a1 --out DIR"));
}

TEST_F(RemoteCommandsTest, FollowRedrawsOnATerminal) {
  CannedRun(v1::Audit::SUCCEEDED);
  console_.tty = true;
  EXPECT_EQ(RunWatch(remote_, "a1", 0, false, console_), kExitOk) << err_.str();
  EXPECT_THAT(err_.str(), HasSubstr("\r"));
  EXPECT_THAT(err_.str(), HasSubstr("\033[K"));
  ASSERT_EQ(fake_.watches().size(), 1u);
  EXPECT_EQ(fake_.watches()[0].name(), "audits/a1");  // a bare id is completed
}

TEST_F(RemoteCommandsTest, SubmitFollowExits6WhenTheAuditFails) {
  CannedRun(v1::Audit::FAILED);
  SubmitOptions submit;
  submit.job_file = JobFile();
  submit.follow = true;
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitAuditFailed);
  EXPECT_THAT(err_.str(), HasSubstr("audits/a1 FAILED in stage train: RESOURCE_EXHAUSTED: out "
                                    "of GPU memory"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("AUC")));
}

TEST_F(RemoteCommandsTest, WatchExits6WhenCancelledAndResumesFromAVersion) {
  CannedRun(v1::Audit::CANCELLED);
  EXPECT_EQ(RunWatch(remote_, "audits/a1", 3, false, console_), kExitAuditFailed);
  ASSERT_EQ(fake_.watches().size(), 1u);
  EXPECT_EQ(fake_.watches()[0].from_version(), 3);
  EXPECT_THAT(err_.str(), Not(HasSubstr("1/4 models")));  // versions <= 3 not sent
  EXPECT_THAT(err_.str(), HasSubstr("CANCELLED"));
}

TEST_F(RemoteCommandsTest, WatchReconnectsFromTheLastVersionAfterARestart) {
  CannedRun(v1::Audit::SUCCEEDED);
  fake_.watch_break_after = 2;  // versions 1 and 2, then the stream breaks
  remote_.reconnect_timeout_seconds = 5;
  remote_.reconnect_backoff_seconds = 0;
  EXPECT_EQ(RunWatch(remote_, "a1", 0, false, console_), kExitOk) << err_.str();
  const std::vector<v1::WatchAuditRequest> watches = fake_.watches();
  ASSERT_EQ(watches.size(), 2u);
  EXPECT_EQ(watches[0].from_version(), 0);
  EXPECT_EQ(watches[1].from_version(), 2);
  EXPECT_THAT(err_.str(), HasSubstr("reconnecting from version 2"));
  EXPECT_THAT(out_.str(), HasSubstr("0.7500"));

  // Without reconnections the broken stream is an UNAVAILABLE error.
  remote_.reconnect_timeout_seconds = 0;
  FakeAuditService other;
  other.watch_events = fake_.watch_events;
  other.watch_break_after = 2;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&other);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  remote_.server = "127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(RunWatch(remote_, "a1", 0, false, console_), kExitUnavailable);
  server->Shutdown();
}

TEST_F(RemoteCommandsTest, WatchReconnectsAfterADrainCancelledTheStream) {
  // A draining or stopping server may cut the stream with CANCELLED: that is
  // a server going away, not the user giving up.
  CannedRun(v1::Audit::SUCCEEDED);
  fake_.watch_break_after = 3;
  fake_.watch_break_code = grpc::StatusCode::CANCELLED;
  remote_.reconnect_timeout_seconds = 5;
  remote_.reconnect_backoff_seconds = 0;
  EXPECT_EQ(RunWatch(remote_, "a1", 0, false, console_), kExitOk) << err_.str();
  const std::vector<v1::WatchAuditRequest> watches = fake_.watches();
  ASSERT_EQ(watches.size(), 2u);
  EXPECT_EQ(watches[1].from_version(), 2);  // the heartbeat was event 3
  EXPECT_THAT(err_.str(), HasSubstr("interrupted (CANCELLED); reconnecting from version 2"));
  EXPECT_THAT(err_.str(), HasSubstr("audits/a1 SUCCEEDED"));
}

TEST_F(RemoteCommandsTest, SubmitFollowRetriesAWatchRefusedAtOnce) {
  // The audit was created, so the server was reached: a watch that fails at
  // once (the server began to drain in between) is retried, not reported.
  CannedRun(v1::Audit::SUCCEEDED);
  fake_.watch_break_after = 0;
  remote_.reconnect_timeout_seconds = 5;
  remote_.reconnect_backoff_seconds = 0;
  SubmitOptions submit;
  submit.job_file = JobFile();
  submit.follow = true;
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitOk) << err_.str();
  EXPECT_EQ(fake_.watches().size(), 2u);
}

TEST_F(RemoteCommandsTest, WatchGivesUpReconnectingAfterTheTimeout) {
  // The server breaks the stream after two snapshots and then refuses every
  // watch: the client keeps trying for --reconnect-timeout, then exits 5.
  CannedRun(v1::Audit::SUCCEEDED);
  fake_.watch_break_after = 2;
  fake_.watch_refuse_after_break = true;
  remote_.reconnect_timeout_seconds = 1;
  remote_.reconnect_backoff_seconds = 0.05;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(RunWatch(remote_, "a1", 0, false, console_), kExitUnavailable) << err_.str();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(seconds, 0.5);
  EXPECT_LT(seconds, 10);
  EXPECT_GE(fake_.watches().size(), 3u);
  for (size_t i = 1; i < fake_.watches().size(); ++i) {
    EXPECT_EQ(fake_.watches()[i].from_version(), 2);
  }
  EXPECT_THAT(err_.str(), HasSubstr("reconnecting from version 2"));
  EXPECT_THAT(err_.str(), HasSubstr("gave up reconnecting after"));
  EXPECT_THAT(err_.str(), HasSubstr("(--reconnect-timeout 1)"));
}

TEST_F(RemoteCommandsTest, WatchResumesOnAServerRestartedOnTheSameAddress) {
  // A restart: the server goes away after two snapshots (nothing listens for
  // a while), and another comes up on the same address with the rest.
  CannedRun(v1::Audit::SUCCEEDED);
  fake_.watch_break_after = 2;
  fake_.watch_refuse_after_break = true;
  remote_.reconnect_timeout_seconds = 30;
  remote_.reconnect_backoff_seconds = 0.05;
  FakeAuditService restarted_fake;
  restarted_fake.watch_events = fake_.watch_events;
  std::unique_ptr<grpc::Server> restarted;
  std::thread restart([&] {
    while (fake_.watches().empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server_->Shutdown();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    grpc::ServerBuilder builder;
    builder.AddListeningPort(remote_.server, grpc::InsecureServerCredentials());
    builder.RegisterService(&restarted_fake);
    restarted = builder.BuildAndStart();
  });
  const int rc = RunWatch(remote_, "a1", 0, false, console_);
  restart.join();
  ASSERT_NE(restarted, nullptr);
  EXPECT_EQ(rc, kExitOk) << err_.str();
  ASSERT_FALSE(restarted_fake.watches().empty());
  EXPECT_EQ(restarted_fake.watches().back().from_version(), 2);
  EXPECT_THAT(out_.str(), HasSubstr("0.7500"));
  restarted->Shutdown();
}

TEST_F(RemoteCommandsTest, WatchJsonPrintsOneObjectPerSnapshot) {
  CannedRun(v1::Audit::SUCCEEDED);
  EXPECT_EQ(RunWatch(remote_, "a1", 0, true, console_), kExitOk) << err_.str();
  std::vector<std::string> lines;
  std::istringstream in(out_.str());
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u) << out_.str();  // five snapshots; heartbeats are not shown
  for (const std::string& line : lines) {
    v1::Audit a;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &a).ok()) << line;
    EXPECT_EQ(a.name(), "audits/a1");
    EXPECT_THAT(line, HasSubstr("\"fraction\":"));  // every field, defaults too
  }
  EXPECT_THAT(lines.front(), HasSubstr("\"state\":\"PENDING\""));
  EXPECT_THAT(lines.back(), HasSubstr("\"state\":\"SUCCEEDED\""));
  EXPECT_THAT(lines.back(), HasSubstr("\"auc\":0.75"));
  // No progress bars, no table: the lines are the output.
  EXPECT_THAT(err_.str(), Not(HasSubstr("[#")));
  EXPECT_THAT(out_.str(), Not(HasSubstr("AUC CI")));
}

TEST_F(RemoteCommandsTest, WatchEndingEarlyAsksTheAuditItself) {
  // The stream ends (OK) before the final snapshot: when the audit is over,
  // GetAudit's answer is the outcome; when it is not, an error.
  fake_.watch_events = {
      Snapshot(MakeAudit("audits/a1", v1::Audit::RUNNING, 2, "train", 1, 4, 0.2))};
  fake_.got = MakeAudit("audits/a1", v1::Audit::SUCCEEDED, 3, "done", 4, 4, 1);
  *fake_.got.mutable_result() = MakeResult();
  EXPECT_EQ(RunWatch(remote_, "a1", 0, false, console_), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("0.7500"));

  fake_.got = MakeAudit("audits/a1", v1::Audit::RUNNING, 2, "train", 1, 4, 0.2);
  EXPECT_EQ(RunWatch(remote_, "a1", 0, false, console_), kExitFailure);
  EXPECT_THAT(err_.str(), HasSubstr("the stream ended while the audit is RUNNING"));
}

TEST_F(RemoteCommandsTest, SubmitWithoutFollowPrintsTheName) {
  CannedRun(v1::Audit::SUCCEEDED);
  SubmitOptions submit;
  submit.job_file = JobFile();
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitOk);
  EXPECT_EQ(out_.str(), "audits/a1\n");
  EXPECT_TRUE(fake_.watches().empty());
}

TEST_F(RemoteCommandsTest, SubmitRejectsABadJobFileOrLabel) {
  SubmitOptions submit;
  submit.job_file = JobFile("train:\n  epochz: 3\n");
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitInvalidInput);
  EXPECT_THAT(err_.str(), HasSubstr("train.epochz: unknown key (line 5)"));
  submit.job_file = JobFile();
  submit.labels = {"novalue"};
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitInvalidInput);
  EXPECT_THAT(err_.str(), HasSubstr("--label 'novalue'"));
  submit.job_file = (dir_ / "missing.yaml").string();
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitNotFound);
  EXPECT_TRUE(fake_.creates().empty());
}

TEST_F(RemoteCommandsTest, SubmitUploadsLocalFilesFirst) {
  CannedRun(v1::Audit::SUCCEEDED);
  const std::string content = "1,2,3\n4,5,6\n";
  WriteFile(dir_ / "local.csv", content);
  const std::filesystem::path job = dir_ / "up.yaml";
  WriteFile(job,
            "data:\n  dataset: csv\n  data_dir: upload:" + (dir_ / "local.csv").string() + "\n");
  SubmitOptions submit;
  submit.job_file = job.string();
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitOk) << err_.str();
  ASSERT_EQ(fake_.creates().size(), 1u);
  EXPECT_EQ(fake_.creates()[0].spec().data().data_dir().artifact_id(), Sha256Hex(content));
  ASSERT_EQ(fake_.uploads().size(), 2u);
  EXPECT_EQ(fake_.uploads()[0].header().filename(), "local.csv");
}

TEST_F(RemoteCommandsTest, BundleJobSubmits) {
  CannedRun(v1::Audit::SUCCEEDED);
  const std::filesystem::path job = dir_ / "bundle.yaml";
  WriteFile(job, "bundle:\n  path: runs/b.npz\n  attacks: [rmia]\n  all_targets: true\n");
  SubmitOptions submit;
  submit.job_file = job.string();
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitOk) << err_.str();
  const std::vector<v1::CreateAuditRequest> creates = fake_.creates();
  ASSERT_EQ(creates.size(), 1u);
  const v1::AuditSpec& spec = creates[0].spec();
  EXPECT_EQ(spec.signals_bundle().bundle().server_path(), "runs/b.npz");
  EXPECT_TRUE(spec.signals_bundle().all_targets());
  EXPECT_FALSE(spec.has_data());
}

// `mia submit --policy FILE` reads the file as `mia score --policy` does and
// sends it as the bundle job's policy; --follow (and `mia watch`) then exit
// 7 when the verdict is FAIL, 0 when it is PASS.
TEST_F(RemoteCommandsTest, SubmitBundleWithAPolicyExits7OnFail) {
  const std::filesystem::path job = dir_ / "bundle.yaml";
  WriteFile(job, "bundle:\n  path: runs/b.npz\n  attacks: [rmia]\n");
  const std::filesystem::path gate = dir_ / "gate.yaml";
  WriteFile(gate,
            "max_auc: 0.6\nmax_tpr_at_fpr: {0.001: 0.01}\n"
            "attacks:\n  rmia: {max_epsilon_lower_bound: 2}\n");
  for (const bool pass : {false, true}) {
    SCOPED_TRACE(pass ? "PASS" : "FAIL");
    CannedRun(v1::Audit::SUCCEEDED);
    v1::PolicyVerdict* v =
        fake_.watch_events.back().mutable_snapshot()->mutable_result()->mutable_policy();
    v->set_pass(pass);
    v->set_verdict(pass ? "PASS" : "FAIL");
    v->set_use("estimate");
    v1::PolicyRuleResult* rule = v->add_rules();
    rule->set_rule("max_auc");
    rule->set_attack("rmia");
    rule->set_target(0);
    rule->set_value(pass ? 0.55 : 0.75);
    rule->set_limit(0.6);
    rule->set_pass(pass);
    SubmitOptions submit;
    submit.job_file = job.string();
    submit.follow = true;
    submit.policy_file = gate.string();
    out_.str("");
    EXPECT_EQ(RunSubmit(remote_, submit, console_), pass ? kExitOk : kExitPolicyFail)
        << err_.str();
    EXPECT_THAT(out_.str(), HasSubstr(pass ? "policy: PASS" : "policy: FAIL"));
    if (!pass) {
      EXPECT_THAT(out_.str(), HasSubstr("FAIL max_auc: rmia, target 0"));
      // `mia watch` of the same audit: the same exit code.
      EXPECT_EQ(RunWatch(remote_, "audits/a1", 0, false, console_), kExitPolicyFail);
    }
  }
  const std::vector<v1::CreateAuditRequest> creates = fake_.creates();
  ASSERT_EQ(creates.size(), 2u);
  const v1::SignalsBundleInput& bundle = creates[0].spec().signals_bundle();
  ASSERT_TRUE(bundle.has_policy());
  EXPECT_EQ(bundle.policy().max_auc(), 0.6);
  EXPECT_EQ(bundle.policy().max_tpr_at_fpr().at("0.001"), 0.01);
  EXPECT_EQ(bundle.policy().attacks().at("rmia").max_epsilon_lower_bound(), 2);
  EXPECT_FALSE(creates[0].spec().has_audit());
}

TEST_F(RemoteCommandsTest, SubmitPolicyFileIsCheckedBeforeAnythingIsSent) {
  const std::filesystem::path job = dir_ / "bundle.yaml";
  WriteFile(job, "bundle:\n  path: runs/b.npz\n");
  SubmitOptions submit;
  submit.job_file = job.string();
  // Every problem of the file, with its line, as `mia score --policy`.
  const std::filesystem::path bad = dir_ / "bad_policy.yaml";
  WriteFile(bad, "max_auc: 2\nmax_tpr_at_fpr: {0.001: 0.1, 1e-3: 0.2}\n");
  submit.policy_file = bad.string();
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitInvalidInput);
  EXPECT_THAT(err_.str(), HasSubstr("bad_policy.yaml: max_auc: must be in [0, 1] (line 1)"));
  EXPECT_THAT(err_.str(), HasSubstr("max_tpr_at_fpr[1e-3]: the same FPR as [0.001]"));
  submit.policy_file = (dir_ / "nopolicy.yaml").string();
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitNotFound);
  // The job file has one already: not both.
  WriteFile(job, "bundle:\n  path: runs/b.npz\n  policy: {max_auc: 0.7}\n");
  WriteFile(dir_ / "gate.yaml", "max_auc: 0.6\n");
  submit.policy_file = (dir_ / "gate.yaml").string();
  err_.str("");
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitInvalidInput);
  EXPECT_THAT(err_.str(), HasSubstr("bundle.policy: the job file has a policy"));
  EXPECT_TRUE(fake_.creates().empty());

  // bundle.policy in the job file alone goes through as it is.
  CannedRun(v1::Audit::SUCCEEDED);
  submit.policy_file.clear();
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitOk) << err_.str();
  ASSERT_EQ(fake_.creates().size(), 1u);
  EXPECT_EQ(fake_.creates()[0].spec().signals_bundle().policy().max_auc(), 0.7);
  // An audit config with --policy: audit.policy.
  submit.job_file = JobFile();
  submit.policy_file = (dir_ / "gate.yaml").string();
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitOk) << err_.str();
  ASSERT_EQ(fake_.creates().size(), 2u);
  EXPECT_EQ(fake_.creates()[1].spec().audit().policy().max_auc(), 0.6);
}

TEST_F(RemoteCommandsTest, InvalidArgumentPrintsEachViolation) {
  fake_.create_status =
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                   "spec has 2 problems: spec.train.learning_rate: must be in [1e-12, 100]; "
                   "spec.data.data_dir: outside the data roots",
                   BadRequestDetails({{"spec.train.learning_rate", "must be in [1e-12, 100]"},
                                      {"spec.data.data_dir", "outside the data roots"}}));
  SubmitOptions submit;
  submit.job_file = JobFile();
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitInvalidInput);
  EXPECT_THAT(err_.str(), HasSubstr("(2 problems):\n"
                                    "  spec.train.learning_rate: must be in [1e-12, 100]\n"
                                    "  spec.data.data_dir: outside the data roots\n"));
}

TEST_F(RemoteCommandsTest, InvalidArgumentWithoutDetailsSplitsTheMessage) {
  fake_.create_status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                     "spec has 2 problems: spec.a: bad; spec.b: worse");
  SubmitOptions submit;
  submit.job_file = JobFile();
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitInvalidInput);
  EXPECT_THAT(err_.str(), HasSubstr("\n  spec.a: bad\n  spec.b: worse\n"));
}

TEST_F(RemoteCommandsTest, StatusCodesGiveExitCodes) {
  fake_.create_status = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue is full");
  SubmitOptions submit;
  submit.job_file = JobFile();
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitTooLarge);
  EXPECT_THAT(err_.str(), HasSubstr("the server is at a limit: queue is full"));

  fake_.create_status = grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "request id reused");
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitInvalidInput);

  fake_.get_status = grpc::Status(grpc::StatusCode::NOT_FOUND, "no audit audits/zz");
  EXPECT_EQ(RunGet(remote_, "zz", false, console_), kExitNotFound);
  EXPECT_THAT(err_.str(), HasSubstr("get audits/zz: not found: no audit audits/zz"));
  EXPECT_EQ(RunCancel(remote_, "zz", console_), kExitNotFound);

  fake_.get_status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "audit is RUNNING");
  EXPECT_EQ(RunDelete(remote_, "zz", console_), kExitInvalidInput);
  EXPECT_THAT(err_.str(), HasSubstr("delete audits/zz: not possible in the audit's current "
                                    "state: audit is RUNNING"));
}

// A server whose jobs.db is read-only refuses changes with FAILED_PRECONDITION;
// the audit's state is not the reason, and the CLI must not say it is.
TEST_F(RemoteCommandsTest, AReadOnlyJobStoreIsNotBlamedOnTheAudit) {
  fake_.get_status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                  "the job store (jobs.db) is read-only: the server shows audits "
                                  "but cannot record changes");
  EXPECT_EQ(RunCancel(remote_, "zz", console_), kExitInvalidInput);
  EXPECT_THAT(err_.str(), HasSubstr("cancel audits/zz: the server cannot record changes: the job "
                                    "store (jobs.db) is read-only"));
  EXPECT_THAT(err_.str(), Not(HasSubstr("current state")));
}

// The token goes out as "authorization: Bearer ..." on every call, from
// --token or from --token-file (whitespace around it dropped); none without.
// Problems name the option, never the token.
TEST_F(RemoteCommandsTest, TokenIsSentAsBearerMetadata) {
  fake_.got = MakeAudit("audits/a1", v1::Audit::RUNNING, 2, "train", 1, 4, 0.2);
  EXPECT_EQ(RunGet(remote_, "audits/a1", false, console_), kExitOk);
  remote_.token = "tok-from-flag";
  EXPECT_EQ(RunGet(remote_, "audits/a1", false, console_), kExitOk);
  remote_.token.clear();
  const std::filesystem::path file = dir_ / "token";
  WriteFile(file, "  tok-from-file\n");
  remote_.token_file = file.string();
  EXPECT_EQ(RunGet(remote_, "audits/a1", false, console_), kExitOk);
  remote_.token = "tok-wins";  // --token over --token-file
  EXPECT_EQ(RunGet(remote_, "audits/a1", false, console_), kExitOk);
  EXPECT_THAT(fake_.authorizations(),
              ElementsAre("", "Bearer tok-from-flag", "Bearer tok-from-file", "Bearer tok-wins"));
  EXPECT_THAT(out_.str() + err_.str(), Not(HasSubstr("tok-")));

  remote_.token.clear();
  remote_.token_file = (dir_ / "missing").string();
  EXPECT_EQ(RunGet(remote_, "audits/a1", false, console_), kExitInvalidInput);
  EXPECT_THAT(err_.str(), HasSubstr("--token-file"));
  remote_.token_file.clear();
  remote_.token = "tok with spaces";
  err_.str("");
  EXPECT_EQ(RunGet(remote_, "audits/a1", false, console_), kExitInvalidInput);
  EXPECT_THAT(err_.str(), HasSubstr("printable ASCII"));
  EXPECT_THAT(err_.str(), Not(HasSubstr("tok with")));
  EXPECT_EQ(fake_.authorizations().size(), 4u);  // nothing was sent

  // UNAUTHENTICATED without a token: a hint where to give one.
  remote_.token.clear();
  fake_.get_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unauthenticated: no");
  err_.str("");
  EXPECT_EQ(RunGet(remote_, "audits/a1", false, console_), kExitFailure);
  EXPECT_THAT(err_.str(), HasSubstr("--token-file"));
}

TEST_F(RemoteCommandsTest, DeadlineExceededGivesExit5) {
  fake_.get_blocks = true;
  remote_.timeout_seconds = 0.2;
  EXPECT_EQ(RunGet(remote_, "a1", false, console_), kExitUnavailable);
  EXPECT_THAT(err_.str(), HasSubstr("did not answer within 0.2 s (--timeout)"));
}

TEST_F(RemoteCommandsTest, UnavailableGivesExit5AndAFriendlyMessage) {
  server_->Shutdown();
  server_.reset();  // nothing listens on the address any more
  EXPECT_EQ(RunList(remote_, ListOptions(), console_), kExitUnavailable);
  EXPECT_THAT(err_.str(),
              HasSubstr("cannot reach the mia server at " + remote_.server + ": is it running?"));
  EXPECT_EQ(out_.str(), "");
  SubmitOptions submit;
  submit.job_file = JobFile();
  submit.follow = true;
  EXPECT_EQ(RunSubmit(remote_, submit, console_), kExitUnavailable);
  EXPECT_EQ(RunWatch(remote_, "a1", 0, false, console_), kExitUnavailable);
}

TEST_F(RemoteCommandsTest, GetPrintsTheAudit) {
  fake_.got = MakeAudit("audits/a1", v1::Audit::SUCCEEDED, 9, "done", 4, 4, 1);
  *fake_.got.mutable_result() = MakeResult();
  (*fake_.got.mutable_labels())["team"] = "privacy";
  EXPECT_EQ(RunGet(remote_, "audits/a1", false, console_), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("SUCCEEDED (version 9)"));
  EXPECT_THAT(out_.str(), HasSubstr("team=privacy"));
  EXPECT_THAT(out_.str(), HasSubstr("0.7500"));
  out_.str("");
  EXPECT_EQ(RunGet(remote_, "audits/a1", true, console_), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("\"state\": \"SUCCEEDED\""));
}

TEST_F(RemoteCommandsTest, ListAllFollowsPages) {
  v1::ListAuditsResponse first, second;
  *first.add_audits() = MakeAudit("audits/a1", v1::Audit::SUCCEEDED, 5, "done", 4, 4, 1);
  *first.add_audits() = MakeAudit("audits/a2", v1::Audit::RUNNING, 3, "train", 2, 4, 0.4);
  first.set_next_page_token("p2");
  *second.add_audits() = MakeAudit("audits/a3", v1::Audit::PENDING, 1, "queued", 0, 4, 0);
  fake_.list_pages = {{"", first}, {"p2", second}};

  ListOptions list;
  list.all = true;
  list.page_size = 2;
  list.state = "Running";
  EXPECT_EQ(RunList(remote_, list, console_), kExitOk) << err_.str();
  const std::vector<v1::ListAuditsRequest> requests = fake_.list_requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].page_token(), "");
  EXPECT_EQ(requests[1].page_token(), "p2");
  EXPECT_EQ(requests[1].page_size(), 2);
  EXPECT_EQ(requests[1].state(), v1::Audit::RUNNING);  // the same filter on every page
  EXPECT_THAT(out_.str(), HasSubstr("audits/a1"));
  EXPECT_THAT(out_.str(), HasSubstr("audits/a2"));
  EXPECT_THAT(out_.str(), HasSubstr("train 40%, 2/4 models"));
  EXPECT_THAT(out_.str(), HasSubstr("audits/a3"));

  // Without --all: one page and a hint.
  out_.str("");
  err_.str("");
  list.all = false;
  EXPECT_EQ(RunList(remote_, list, console_), kExitOk);
  EXPECT_THAT(out_.str(), Not(HasSubstr("audits/a3")));
  EXPECT_THAT(err_.str(), HasSubstr("--page-token p2"));

  list.state = "sleeping";
  EXPECT_EQ(RunList(remote_, list, console_), kExitInvalidInput);
}

TEST_F(RemoteCommandsTest, ReportWritesVerifiedFiles) {
  fake_.report_files = {{"result.json", "{\"schema\": \"mia.result\"}\n"},
                        {"roc.svg", "<svg></svg>"},
                        {"empty.txt", ""}};
  const std::filesystem::path out = dir_ / "report" / "nested";
  EXPECT_EQ(RunReport(remote_, "a1", out.string(), console_), kExitOk) << err_.str();
  for (const auto& [name, content] : fake_.report_files) {
    EXPECT_EQ(ReadFile(out / name), content) << name;
  }
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(out)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 3);  // no temporary files left
}

TEST_F(RemoteCommandsTest, ListJsonIsOneObjectWithEveryPage) {
  v1::ListAuditsResponse first, second;
  *first.add_audits() = MakeAudit("audits/a1", v1::Audit::SUCCEEDED, 5, "done", 4, 4, 1);
  first.set_next_page_token("p2");
  *second.add_audits() = MakeAudit("audits/a2", v1::Audit::PENDING, 1, "queued", 0, 4, 0);
  fake_.list_pages = {{"", first}, {"p2", second}};
  ListOptions list;
  list.json = true;
  list.all = true;
  EXPECT_EQ(RunList(remote_, list, console_), kExitOk) << err_.str();
  v1::ListAuditsResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out_.str(), &parsed).ok()) << out_.str();
  ASSERT_EQ(parsed.audits_size(), 2);
  EXPECT_EQ(parsed.audits(0).name(), "audits/a1");
  EXPECT_EQ(parsed.audits(1).state(), v1::Audit::PENDING);
  EXPECT_THAT(out_.str(), HasSubstr("\"next_page_token\":\"\""));
  EXPECT_THAT(out_.str(), Not(HasSubstr("NAME")));  // no table header

  // One page: the token to continue with is in the object.
  out_.str("");
  list.all = false;
  EXPECT_EQ(RunList(remote_, list, console_), kExitOk);
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out_.str(), &parsed).ok());
  EXPECT_EQ(parsed.audits_size(), 1);
  EXPECT_EQ(parsed.next_page_token(), "p2");

  // No audits: still an object with an (empty) array.
  out_.str("");
  fake_.list_pages = {{"", v1::ListAuditsResponse()}};
  EXPECT_EQ(RunList(remote_, list, console_), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("\"audits\":[]"));
}

TEST_F(RemoteCommandsTest, ReportNamesMissingFilesAndExits3) {
  fake_.report_files = {{"result.json", "{}\n"}, {"scores.csv", "row_id\n"}};
  fake_.missing_files = {"roc.svg", "summary.md"};
  const std::filesystem::path out = dir_ / "report";
  EXPECT_EQ(RunReport(remote_, "a1", out.string(), console_), kExitNotFound);
  EXPECT_THAT(err_.str(), HasSubstr("report audits/a1 is incomplete: the server lost 2 files: "
                                    "roc.svg, summary.md"));
  // What the server still has is downloaded.
  EXPECT_EQ(ReadFile(out / "result.json"), "{}\n");
  EXPECT_EQ(ReadFile(out / "scores.csv"), "row_id\n");
}

TEST_F(RemoteCommandsTest, GetWarnsAboutMissingReportFiles) {
  fake_.got = MakeAudit("audits/a1", v1::Audit::SUCCEEDED, 9, "done", 4, 4, 1);
  fake_.missing_files = {"result.json"};
  EXPECT_EQ(RunGet(remote_, "a1", false, console_), kExitOk);
  EXPECT_THAT(err_.str(), HasSubstr("mia: warning: audits/a1: the server lost 1 file: "
                                    "result.json of its report"));
  err_.str("");
  EXPECT_EQ(RunGet(remote_, "a1", true, console_), kExitOk);
  EXPECT_THAT(err_.str(), HasSubstr("the server lost 1 file: result.json"));
  // A complete report: no warning.
  err_.str("");
  fake_.missing_files.clear();
  EXPECT_EQ(RunGet(remote_, "a1", false, console_), kExitOk);
  EXPECT_THAT(err_.str(), Not(HasSubstr("warning")));
}

TEST_F(RemoteCommandsTest, ServerAddressMustBeHostPort) {
  for (const std::string bad : {"localhost", "localhost:", ":50051", "host:99999", "host:port",
                                "::1:50051", "http://host:50051"}) {
    err_.str("");
    remote_.server = bad;
    EXPECT_EQ(RunList(remote_, ListOptions(), console_), kExitInvalidInput) << bad;
    EXPECT_THAT(err_.str(), HasSubstr("--server '" + bad + "' (MIA_SERVER)")) << bad;
    EXPECT_THAT(err_.str(), HasSubstr("expected HOST:PORT")) << bad;
  }
  EXPECT_TRUE(fake_.list_requests().empty());  // refused before connecting
}

TEST_F(RemoteCommandsTest, AnUnresolvableHostGetsADnsHintNotATlsOne) {
  // .invalid never resolves (RFC 2606).
  remote_.server = "no-such-host.invalid:50051";
  remote_.timeout_seconds = 20;
  EXPECT_EQ(RunList(remote_, ListOptions(), console_), kExitUnavailable);
  EXPECT_THAT(err_.str(), HasSubstr("does not resolve"));
  EXPECT_THAT(err_.str(), Not(HasSubstr("TLS")));
}

TEST_F(RemoteCommandsTest, ReportRejectsAChecksumMismatch) {
  fake_.report_files = {{"result.json", "{\"auc\": 0.75}\n"}, {"scores.csv", "row_id\n1\n"}};
  fake_.corrupt_file = "scores.csv";
  const std::filesystem::path out = dir_ / "report";
  EXPECT_EQ(RunReport(remote_, "a1", out.string(), console_), kExitFailure);
  EXPECT_THAT(err_.str(), HasSubstr("report file scores.csv: checksum mismatch"));
  EXPECT_FALSE(std::filesystem::exists(out / "scores.csv"));
  for (const auto& entry : std::filesystem::directory_iterator(out)) {
    EXPECT_THAT(entry.path().filename().string(), Not(HasSubstr("tmp")));
  }
}

TEST_F(RemoteCommandsTest, ReportRefusesUnsafeFileNames) {
  fake_.report_files = {{"../escape.txt", "x"}};
  EXPECT_EQ(RunReport(remote_, "a1", (dir_ / "r").string(), console_), kExitFailure);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "escape.txt"));
}

TEST_F(RemoteCommandsTest, UploadSendsHeaderThenChunks) {
  // 2.5 MiB: two full chunks and a half one.
  std::string content(5 << 19, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 7919) >> 3);
  const std::filesystem::path file = dir_ / "model.pt";
  WriteFile(file, content);
  EXPECT_EQ(RunUpload(remote_, file.string(), console_), kExitOk) << err_.str();
  const std::vector<v1::UploadArtifactRequest> got = fake_.uploads();
  ASSERT_EQ(got.size(), 4u);
  ASSERT_TRUE(got[0].has_header());
  EXPECT_EQ(got[0].header().filename(), "model.pt");
  EXPECT_EQ(got[0].header().size(), static_cast<int64_t>(content.size()));
  EXPECT_EQ(got[0].header().sha256(), Sha256Hex(content));
  std::string joined;
  std::vector<size_t> sizes;
  for (size_t i = 1; i < got.size(); ++i) {
    ASSERT_EQ(got[i].payload_case(), v1::UploadArtifactRequest::kChunk);
    sizes.push_back(got[i].chunk().size());
    joined += got[i].chunk();
  }
  EXPECT_THAT(sizes, ElementsAre(1u << 20, 1u << 20, 1u << 19));
  EXPECT_EQ(joined, content);
  EXPECT_EQ(out_.str(), Sha256Hex(content) + "\n");

  EXPECT_EQ(RunUpload(remote_, (dir_ / "missing.pt").string(), console_), kExitNotFound);
  EXPECT_EQ(RunUpload(remote_, dir_.string(), console_), kExitInvalidInput);
}

TEST_F(RemoteCommandsTest, ScoresWritesCsvAcrossPages) {
  v1::ListAuditScoresResponse first, second;
  for (auto* page : {&first, &second}) {
    page->add_attacks("rmia");
    page->add_attacks("rmia-offline:a=0.3,gamma=2");
  }
  v1::ScoreRow* r = first.add_rows();
  r->set_row_id(10);
  r->set_target(0);
  r->set_member(true);
  r->add_scores(0.5);
  r->add_scores(std::nan(""));
  first.set_next_page_token("n");
  r = second.add_rows();
  r->set_row_id(11);
  r->set_target(0);
  r->set_member(false);
  r->add_scores(0.1);
  r->add_scores(-2);
  fake_.score_pages = {{"", first}, {"n", second}};

  ScoresOptions scores;
  scores.name = "a1";
  scores.out = (dir_ / "scores.csv").string();
  EXPECT_EQ(RunScores(remote_, scores, console_), kExitOk) << err_.str();
  EXPECT_EQ(ReadFile(dir_ / "scores.csv"),
            "row_id,target,member,rmia,\"rmia-offline:a=0.3,gamma=2\"\n"
            "10,0,1,0.5,\n"
            "11,0,0,0.1,-2\n");
}

}  // namespace
}  // namespace mia::client
