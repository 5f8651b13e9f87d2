// The mia.v1 API messages: an Audit with every field set survives the binary
// and JSON encodings unchanged, proto3 `optional` keeps "set to the default"
// apart from "unset", and the service has the methods and streaming shapes
// the design names.
#include <cmath>
#include <limits>
#include <set>
#include <string>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "mia/v1/audit.grpc.pb.h"
#include "mia/v1/audit.pb.h"

namespace mia::v1 {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;
using ::google::protobuf::util::MessageDifferencer;
using ::google::protobuf::util::TimeUtil;

RocCurve Roc() {
  RocCurve roc;
  // Threshold +infinity at (0, 0): JSON must carry it as "Infinity".
  const double thresholds[] = {std::numeric_limits<double>::infinity(), 2.5, 0.5, -1.0};
  const double fpr[] = {0, 0.00001, 0.5, 1};
  const double tpr[] = {0, 0.25, 0.75, 1};
  for (int i = 0; i < 4; ++i) {
    roc.add_fpr(fpr[i]);
    roc.add_tpr(tpr[i]);
    roc.add_thresholds(thresholds[i]);
  }
  roc.set_positives(4);
  roc.set_negatives(100000);
  roc.set_downsampled(true);
  roc.set_exact_points(1234);
  return roc;
}

Spread MakeSpread(double mean) {
  Spread s;
  s.set_count(2);
  s.set_mean(mean);
  s.set_stddev(0.01);
  s.set_min(mean - 0.01);
  s.set_max(mean + 0.01);
  return s;
}

// An audit with every field of every message reachable from Audit set,
// including both alternatives of each oneof somewhere in the tree (checked by
// CoversEveryField below, so a field added later without a test fails here).
Audit FullAudit() {
  Audit a;
  a.set_name("audits/a1b2c3");
  a.set_state(Audit::SUCCEEDED);
  *a.mutable_create_time() = TimeUtil::SecondsToTimestamp(1700000000);
  *a.mutable_start_time() = TimeUtil::NanosecondsToTimestamp(1700000001'000000123);
  *a.mutable_end_time() = TimeUtil::SecondsToTimestamp(1700000100);
  a.set_version(42);
  a.set_tenant("team-a");
  a.set_request_id("0b7c1a9e-5a55-4d7e-9a4e-000000000001");
  (*a.mutable_labels())["team"] = "privacy";
  (*a.mutable_labels())["model"] = "cnn-v3";
  a.set_priority(-3);

  AuditSpec* spec = a.mutable_spec();
  RunSection* run = spec->mutable_run();
  run->set_random_seed(0);  // explicitly 0, not the default 12345
  run->set_log_dir("");
  run->set_time_log(false);
  run->set_num_experiments(2);
  run->set_threads(4);
  DataSection* data = spec->mutable_data();
  data->set_dataset("csv");
  data->mutable_data_dir()->set_server_path("datasets/purchase.csv");
  data->set_split("all");
  data->set_label_column(0);
  data->set_header(true);
  data->set_cifar100_labels("coarse");
  data->set_pool_size(30000);
  data->set_population_size(10000);
  data->set_shuffle(true);
  data->set_text_field("body");
  data->set_label_field("topic");
  data->set_tokenize(true);
  data->set_tokenizer("models/gpt2");
  TrainSection* train = spec->mutable_train();
  train->set_model_name("mlp");
  train->mutable_hidden()->add_widths(256);
  train->mutable_hidden()->add_widths(128);
  train->set_activation("relu");
  train->set_dropout(0.1);
  train->set_width(2);
  train->set_device("cuda:0");
  train->set_batched(false);
  train->set_optimizer("sgd");
  train->set_learning_rate(0.05);
  train->set_momentum(0.0);
  train->set_nesterov(false);
  train->set_weight_decay(5e-4);
  train->set_epochs(30);
  train->set_batch_size(128);
  train->set_schedule("cosine");
  train->set_warmup_epochs(2);
  train->set_random_crop(true);
  train->set_crop_padding(4);
  train->set_horizontal_flip(true);
  train->set_precision("bf16");
  train->set_data_on_device(true);
  train->set_channels_last(true);
  train->add_normalize_mean(0.5f);
  train->add_normalize_std(0.25f);
  train->set_tokenizer("models/gpt2");
  train->set_vocab_size(1024);
  train->mutable_checkpoint()->set_server_path("models/gpt2");
  train->set_n_layer(2);
  train->set_n_head(2);
  train->set_n_embd(64);
  train->set_block_size(64);
  train->set_warmup_ratio(0.1);
  train->set_max_grad_norm(1.0);
  PeftSection* peft = train->mutable_peft();
  peft->set_type("lora");
  peft->set_r(4);
  peft->set_lora_alpha(8);
  peft->set_lora_dropout(0.05);
  peft->add_target_modules("c_attn");
  peft->set_fan_in_fan_out(true);
  AuditSection* audit = spec->mutable_audit();
  audit->add_attacks("rmia-offline:gamma=2");
  audit->add_attacks("lira");
  audit->set_algorithm("");
  audit->set_privacy_game("privacy_loss_model");
  audit->set_num_ref_models(8);
  audit->set_device("cpu");
  audit->set_batch_size(2048);
  audit->set_data_size(5000);
  audit->set_report_log("");
  audit->set_splits("paired");
  audit->mutable_augmentation()->set_flip(true);
  audit->mutable_augmentation()->set_shift(2);
  audit->set_temperature(2.0);
  audit->add_fprs(0.01);
  audit->add_fprs(0.0);
  audit->set_bootstrap(0);
  audit->set_confidence(0.9);
  audit->set_delta(1e-6);
  audit->set_population_size(100);
  audit->set_beta(0.01);
  DpAuditSection* dp = audit->mutable_dp_audit();
  dp->set_canary_dataset("mislabelled");
  dp->set_canary_size(1000);
  dp->set_training_alg("nondp");
  DpAuditGuessSplit* split = dp->add_grid();
  split->set_k_plus(50);
  split->set_k_minus(40);
  dp->set_delta(0);
  dp->set_beta(0.05);
  audit->mutable_duci()->add_fractions(0.25);
  // Not a valid spec (one game per audit): the test covers the fields.
  RamiaSection* ramia = audit->mutable_ramia();
  ramia->set_range_function("missing_values");
  ramia->set_sample_size(10);
  ramia->set_radius(1.5);
  ramia->set_trim(0.2);
  ramia->set_num_missing_feats(1);
  RamiaColumnRange* range = ramia->add_col_ranges();
  range->set_low(0.5);
  range->set_high(1);
  ramia->set_is_categorical(true);
  ramia->add_transformations("rotate");
  DpSection* dp_train = spec->mutable_train()->mutable_dp();
  dp_train->set_noise_multiplier(1.1);
  dp_train->set_max_grad_norm(1.0);
  dp_train->set_delta(1e-5);
  dp_train->set_target_epsilon(3.0);
  dp_train->set_poisson(true);
  PolicySection* policy = audit->mutable_policy();
  policy->set_use("upper_ci");
  policy->set_max_auc(0.6);
  (*policy->mutable_max_tpr_at_fpr())["0.001"] = 0.01;
  policy->set_max_epsilon_lower_bound(2);
  (*policy->mutable_attacks())["rmia"].set_max_auc(0.55);
  ModelsSection* models = spec->mutable_models();
  models->add_torchscript()->set_artifact_id(std::string(64, 'a'));
  models->add_torchscript()->set_server_path("models/ref.pt");
  models->mutable_keep()->set_artifact_id(std::string(64, 'b'));
  // A real spec sets either the pipeline sections or a bundle; the encoding
  // does not care, and setting both covers every field in one message.
  SignalsBundleInput* bundle = spec->mutable_signals_bundle();
  bundle->mutable_bundle()->set_server_path("bundles/run7.npz");
  bundle->add_attacks("rmia");
  bundle->add_targets(0);
  bundle->add_targets(3);
  bundle->set_all_targets(false);
  bundle->set_temperature(1.0);
  bundle->add_fprs(0.001);
  bundle->set_bootstrap(200);
  bundle->set_confidence(0.95);
  bundle->set_delta(1e-5);
  bundle->set_beta(0.05);
  bundle->set_seed(7);
  bundle->mutable_policy()->set_max_auc(0.6);

  Progress* progress = a.mutable_progress();
  progress->set_stage("done");
  progress->set_models_trained(10);
  progress->set_models_total(10);
  progress->set_fraction(1.0);
  progress->set_detail("model 10/10, epoch 30/30");

  AuditResult* result = a.mutable_result();
  result->set_schema_version(1);
  result->set_tool_version("0.1.0");
  result->add_fprs(0.01);
  result->add_fprs(0.0);
  result->add_targets(0);
  result->add_targets(1);
  result->set_audit_points(5000);
  AttackTargetResult* r = result->add_results();
  r->set_attack("rmia-offline:gamma=2");
  r->set_target(1);
  r->set_members(2500);
  r->set_non_members(2490);
  r->set_excluded(10);
  r->set_auc(0.61);
  r->mutable_auc_ci()->set_low(0.59);
  r->mutable_auc_ci()->set_high(0.63);
  TprAtFpr* t = r->add_tpr_at_fpr();
  t->set_fpr(0.01);
  t->set_resolved(true);
  t->set_tpr(0.04);
  t->mutable_ci()->set_low(0.03);
  t->mutable_ci()->set_high(0.05);
  EpsilonBound* eps = r->mutable_epsilon();
  eps->set_epsilon(0.8);
  eps->set_delta(1e-6);
  eps->set_threshold(std::numeric_limits<double>::infinity());
  eps->set_fpr_upper(0.02);
  eps->set_fnr_upper(0.9);
  eps->set_selection_points(2495);
  eps->set_evaluation_points(2495);
  (*r->mutable_chosen_parameters())["a"] = 0.3;
  r->add_warnings("10 points had no OUT reference");
  *r->mutable_roc() = Roc();
  AttackSummary* summary = result->add_summaries();
  summary->set_attack("rmia-offline:gamma=2");
  *summary->mutable_auc() = MakeSpread(0.6);
  *summary->add_tpr_at_fpr() = MakeSpread(0.04);
  result->add_warnings("population smaller than recommended");
  StageTiming* timing = result->add_timings();
  timing->set_stage("attack:rmia");
  timing->set_seconds(1.5);
  DpAuditResult* dp_result = result->mutable_dp_audit();
  dp_result->set_canary_dataset("mislabelled");
  dp_result->set_training_alg("nondp");
  dp_result->set_canaries(1000);
  dp_result->set_included(497);
  dp_result->set_delta(1e-5);
  dp_result->set_beta(0.05);
  dp_result->set_note("the largest over a grid is optimistic");
  DpAuditAttackResult* dp_attack = dp_result->add_attacks();
  dp_attack->set_attack("loss");
  dp_attack->set_best(1);
  DpAuditGuessResult* guess = dp_attack->add_entries();
  guess->set_k_plus(50);
  guess->set_k_minus(40);
  guess->set_guesses(90);
  guess->set_correct(81);
  guess->set_epsilon(0.75);
  guess->set_chosen_after_looking(true);
  // A membership result has no duci section; set here to cover its fields.
  RamiaResult* ramia_result = result->mutable_ramia();
  ramia_result->set_range_function("l2");
  ramia_result->set_sample_size(10);
  ramia_result->set_trim(0.2);
  ramia_result->set_trimmed_each_end(2);
  ramia_result->set_radius(10);
  ramia_result->set_num_missing_feats(3);
  ramia_result->set_ranges(100);
  ramia_result->set_member_ranges(50);
  ramia_result->set_non_member_ranges(50);
  ramia_result->set_population_points(200);
  DpTargetGuarantee* guarantee = result->add_dp_targets();
  guarantee->set_target(1);
  guarantee->set_epsilon(3.0);
  guarantee->set_delta(1e-5);
  guarantee->set_order(9);
  guarantee->set_noise_multiplier(1.1);
  guarantee->set_max_grad_norm(1.0);
  guarantee->set_sample_rate(0.004);
  guarantee->set_steps(14063);
  DpBoundCheck* check = result->add_dp_checks();
  check->set_attack("rmia");
  check->set_target(1);
  check->set_lower_bound(0.5);
  check->set_lower_bound_delta(1e-5);
  check->set_accountant_epsilon(3.0);
  check->set_accountant_delta(1e-5);
  check->set_exceeded(true);
  mia::v1::DuciResult* duci = result->mutable_duci();
  duci->set_candidate_points(400);
  duci->add_references(5);
  mia::v1::DuciAttackResult* duci_attack = duci->add_attacks();
  duci_attack->set_attack("rmia");
  duci_attack->set_threshold(0.7);
  duci_attack->set_tpr(0.6);
  duci_attack->set_fpr(0.1);
  duci_attack->set_reference_members(800);
  duci_attack->set_reference_non_members(800);
  duci_attack->set_signal(true);
  duci_attack->set_mean_error(0.05);
  duci_attack->set_mean_error_clipped(0.04);
  duci_attack->add_warnings("no signal");
  mia::v1::DuciTargetEstimate* estimate = duci_attack->add_targets();
  estimate->set_target(1);
  estimate->set_true_fraction(0.5);
  estimate->set_estimate(0.55);
  estimate->set_estimate_clipped(0.55);
  estimate->set_error(0.05);
  estimate->set_error_clipped(0.05);
  estimate->set_points(400);
  estimate->set_excluded(1);
  estimate->set_predicted_members(150);
  PolicyVerdict* verdict = result->mutable_policy();
  verdict->set_pass(true);
  verdict->set_verdict("PASS");
  verdict->set_use("upper_ci");
  PolicyRuleResult* rule = verdict->add_rules();
  rule->set_rule("max_auc");
  rule->set_attack("rmia");
  rule->set_target(1);
  rule->set_value(0.58);
  rule->set_limit(0.6);
  rule->set_pass(true);
  rule->set_note("-");

  Error* error = a.mutable_error();  // only on FAILED in practice
  error->set_code("INVALID_ARGUMENT");
  error->set_message("not a TorchScript module");
  error->set_field_path("spec.models.torchscript[1]");
  error->set_stage("load");
  return a;
}

// Records the full name of every field set anywhere in `m`.
void CollectSetFields(const Message& m, std::set<std::string>* set) {
  const Reflection* reflection = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(m, &fields);  // set fields only (proto3: non-default or present)
  for (const FieldDescriptor* f : fields) {
    set->insert(f->full_name());
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(m, f); ++i) {
        CollectSetFields(reflection->GetRepeatedMessage(m, f, i), set);
      }
    } else {
      CollectSetFields(reflection->GetMessage(m, f), set);
    }
  }
}

// Every field of every message type reachable from `d` (well-known types
// such as Timestamp excluded: they are not ours).
void CollectAllFields(const Descriptor* d, std::set<std::string>* seen_types,
                      std::set<std::string>* fields) {
  if (d->file()->package() != "mia.v1" || !seen_types->insert(d->full_name()).second) return;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    fields->insert(f->full_name());
    if (f->message_type() != nullptr && !f->is_map()) {
      CollectAllFields(f->message_type(), seen_types, fields);
    }
  }
}

bool Equal(const Message& a, const Message& b) { return MessageDifferencer::Equals(a, b); }

TEST(AuditProtoTest, FullAuditCoversEveryField) {
  std::set<std::string> set_fields;
  CollectSetFields(FullAudit(), &set_fields);
  std::set<std::string> types, all_fields;
  CollectAllFields(Audit::descriptor(), &types, &all_fields);
  EXPECT_GE(all_fields.size(), 148u);  // the walk reached the whole tree (148 today)
  EXPECT_TRUE(types.count("mia.v1.SignalsBundleInput"));
  for (const std::string& f : all_fields) {
    EXPECT_TRUE(set_fields.count(f)) << f << " is never set by FullAudit()";
  }
}

TEST(AuditProtoTest, BinaryRoundTrip) {
  const Audit a = FullAudit();
  std::string bytes;
  ASSERT_TRUE(a.SerializeToString(&bytes));
  Audit b;
  ASSERT_TRUE(b.ParseFromString(bytes));
  EXPECT_TRUE(Equal(a, b)) << b.DebugString();
}

TEST(AuditProtoTest, JsonRoundTrip) {
  const Audit a = FullAudit();
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(a, &json).ok());
  // Infinity is carried as the JSON string "Infinity"; times as RFC 3339.
  EXPECT_NE(json.find("\"Infinity\""), std::string::npos) << json;
  EXPECT_NE(json.find("2023-11-14T22:13:21.000000123Z"), std::string::npos) << json;
  Audit b;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &b).ok()) << json;
  EXPECT_TRUE(Equal(a, b)) << json;

  // Original (snake_case) field names are accepted too.
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  json.clear();
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(a, &json, print).ok());
  EXPECT_NE(json.find("\"random_seed\""), std::string::npos);
  Audit c;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &c).ok());
  EXPECT_TRUE(Equal(a, c));
}

TEST(AuditProtoTest, JsonRefusesUnknownFields) {
  // A misspelt key must not be silently dropped (STYLE.md: no unknown keys).
  AuditSpec spec;
  const auto status =
      google::protobuf::util::JsonStringToMessage(R"({"train": {"learing_rate": 0.1}})", &spec);
  EXPECT_FALSE(status.ok());
}

TEST(AuditProtoTest, OptionalKeepsExplicitDefaultsApartFromUnset) {
  AuditSpec spec;
  spec.mutable_run()->set_num_experiments(0);  // out of range: must reach the validator
  spec.mutable_run()->set_random_seed(0);
  spec.mutable_train();  // present, every field unset
  std::string bytes;
  ASSERT_TRUE(spec.SerializeToString(&bytes));
  AuditSpec from_binary;
  ASSERT_TRUE(from_binary.ParseFromString(bytes));
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(spec, &json).ok());
  AuditSpec from_json;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &from_json).ok());
  for (const AuditSpec* s : {&from_binary, &from_json}) {
    EXPECT_TRUE(s->run().has_num_experiments());
    EXPECT_EQ(s->run().num_experiments(), 0);
    EXPECT_TRUE(s->run().has_random_seed());
    EXPECT_FALSE(s->run().has_threads());
    EXPECT_TRUE(s->has_train());
    EXPECT_FALSE(s->train().has_learning_rate());
    EXPECT_FALSE(s->train().has_hidden());  // unset: the default [128]
    EXPECT_FALSE(s->has_signals_bundle());
  }
  // An empty LayerWidths (no hidden layer) differs from an unset one.
  spec.mutable_train()->mutable_hidden();
  ASSERT_TRUE(spec.SerializeToString(&bytes));
  ASSERT_TRUE(from_binary.ParseFromString(bytes));
  EXPECT_TRUE(from_binary.train().has_hidden());
  EXPECT_EQ(from_binary.train().hidden().widths_size(), 0);
}

TEST(AuditProtoTest, DataRefIsOneOrTheOther) {
  DataRef ref;
  EXPECT_EQ(ref.source_case(), DataRef::SOURCE_NOT_SET);
  ref.set_server_path("datasets/x.npz");
  ref.set_artifact_id(std::string(64, 'c'));  // replaces the path
  EXPECT_EQ(ref.source_case(), DataRef::kArtifactId);
  EXPECT_TRUE(ref.server_path().empty());
}

TEST(AuditProtoTest, ScoresKeepNanThroughJson) {
  ListAuditScoresResponse page;
  page.add_attacks("rmia");
  page.add_attacks("lira");
  ScoreRow* row = page.add_rows();
  row->set_row_id(123456789012);
  row->set_target(1);
  row->set_member(true);
  row->add_scores(0.75);
  row->add_scores(std::numeric_limits<double>::quiet_NaN());  // not scorable
  page.set_next_page_token("opaque");
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(page, &json).ok());
  ListAuditScoresResponse back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &back).ok()) << json;
  ASSERT_EQ(back.rows_size(), 1);
  EXPECT_EQ(back.rows(0).row_id(), 123456789012);  // int64 survives as a JSON string
  EXPECT_EQ(back.rows(0).scores(0), 0.75);
  EXPECT_TRUE(std::isnan(back.rows(0).scores(1)));
  EXPECT_EQ(back.attacks(1), "lira");
}

TEST(AuditProtoTest, RequestsRoundTrip) {
  CreateAuditRequest create;
  *create.mutable_spec() = FullAudit().spec();
  create.set_request_id("r-1");
  (*create.mutable_labels())["k"] = "v";
  create.set_priority(5);
  WatchAuditResponse watch;
  watch.mutable_heartbeat()->set_version(9);
  *watch.mutable_heartbeat()->mutable_time() = TimeUtil::SecondsToTimestamp(5);
  UploadArtifactRequest upload;
  upload.mutable_header()->set_filename("bundle.npz");
  upload.mutable_header()->set_size(1 << 20);
  upload.mutable_header()->set_sha256(std::string(64, 'd'));
  FileChunk chunk;
  chunk.set_offset(1 << 20);
  chunk.set_data(std::string("\0\x01\xff", 3));
  chunk.set_total_size((1 << 20) + 3);
  chunk.set_sha256(std::string(64, 'e'));
  for (const Message* m : std::initializer_list<const Message*>{&create, &watch, &upload, &chunk}) {
    std::string json;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(*m, &json).ok());
    std::unique_ptr<Message> back(m->New());
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, back.get()).ok()) << json;
    EXPECT_TRUE(Equal(*m, *back)) << json;
  }
}

TEST(AuditProtoTest, ServiceShape) {
  const auto* service = Audit::descriptor()->file()->FindServiceByName("AuditService");
  ASSERT_NE(service, nullptr);
  struct Expected {
    const char* name;
    bool client_streaming;
    bool server_streaming;
  };
  const Expected expected[] = {
      {"CreateAudit", false, false},     {"GetAudit", false, false},
      {"ListAudits", false, false},      {"WatchAudit", false, true},
      {"CancelAudit", false, false},     {"DeleteAudit", false, false},
      {"ListAuditScores", false, false}, {"ListReportFiles", false, false},
      {"GetReportFile", false, true},    {"UploadArtifact", true, false},
  };
  EXPECT_EQ(service->method_count(), static_cast<int>(std::size(expected)));
  for (const Expected& e : expected) {
    const auto* method = service->FindMethodByName(e.name);
    ASSERT_NE(method, nullptr) << e.name;
    EXPECT_EQ(method->client_streaming(), e.client_streaming) << e.name;
    EXPECT_EQ(method->server_streaming(), e.server_streaming) << e.name;
  }
  EXPECT_EQ(service->full_name(), "mia.v1.AuditService");
}

TEST(AuditProtoTest, StubLinksAgainstGrpc) {
  // Creating a channel does not connect; this checks the generated stub and
  // libgrpc++ link and construct.
  auto channel = grpc::CreateChannel("localhost:1", grpc::InsecureChannelCredentials());
  std::unique_ptr<AuditService::Stub> stub = AuditService::NewStub(channel);
  EXPECT_NE(stub, nullptr);
}

}  // namespace
}  // namespace mia::v1
