#include "core/jobs/job.h"

#include <string>

#include "absl/strings/escaping.h"
#include "core/jobs/job_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia::jobs {
namespace {

using ::testing::HasSubstr;

constexpr JobState kAll[] = {JobState::kPending, JobState::kRunning, JobState::kSucceeded,
                             JobState::kFailed, JobState::kCancelled};

TEST(JobStateTest, NamesRoundTrip) {
  for (JobState s : kAll) EXPECT_EQ(ParseJobState(JobStateName(s)), s);
  EXPECT_FALSE(ParseJobState("pending").has_value());
  EXPECT_FALSE(ParseJobState("").has_value());
}

TEST(JobStateTest, TransitionTableIsExactlyTheLifecycle) {
  // Written out in full rather than derived: this is the documented contract.
  auto legal = [](JobState from, JobState to) {
    using S = JobState;
    return (from == S::kPending && (to == S::kRunning || to == S::kCancelled)) ||
           (from == S::kRunning &&
            (to == S::kSucceeded || to == S::kFailed || to == S::kCancelled || to == S::kPending));
  };
  for (JobState from : kAll) {
    for (JobState to : kAll) {
      EXPECT_EQ(IsLegalTransition(from, to), legal(from, to))
          << JobStateName(from) << " -> " << JobStateName(to);
      const absl::Status s = CheckTransition("job-1", from, to);
      EXPECT_EQ(s.ok(), legal(from, to));
      if (!s.ok()) {
        EXPECT_TRUE(absl::IsFailedPrecondition(s));
        EXPECT_THAT(s.message(), HasSubstr("job-1"));
        EXPECT_THAT(s.message(), HasSubstr(std::string(JobStateName(to))));
      }
    }
  }
}

TEST(JobStateTest, TerminalStatesHaveNoWayOut) {
  for (JobState from : kAll) {
    bool any_exit = false;
    for (JobState to : kAll) any_exit = any_exit || IsLegalTransition(from, to);
    EXPECT_EQ(IsTerminal(from), !any_exit) << JobStateName(from);
  }
}

TEST(JobIdTest, Rules) {
  EXPECT_TRUE(ValidateJobId("a").ok());
  EXPECT_TRUE(ValidateJobId("0f3c-91ab").ok());
  EXPECT_TRUE(ValidateJobId(std::string(63, 'x')).ok());
  EXPECT_FALSE(ValidateJobId("").ok());
  EXPECT_FALSE(ValidateJobId(std::string(64, 'x')).ok());
  EXPECT_FALSE(ValidateJobId("Upper").ok());
  EXPECT_FALSE(ValidateJobId("a/b").ok());
  EXPECT_FALSE(ValidateJobId("a|b").ok());
  EXPECT_FALSE(ValidateJobId("-a").ok());
  EXPECT_FALSE(ValidateJobId("a-").ok());
  const absl::Status s = ValidateJobId("../etc");
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("etc")));  // ids are not echoed
}

TEST(PageTokenTest, RoundTrip) {
  PageCursor c;
  c.create_time = absl::FromUnixNanos(1700000000123456789);
  c.id = "job-17";
  c.state = JobState::kRunning;
  absl::StatusOr<PageCursor> back = DecodePageToken(EncodePageToken(c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->create_time, c.create_time);
  EXPECT_EQ(back->id, c.id);
  EXPECT_EQ(back->state, c.state);
  c.state.reset();
  back = DecodePageToken(EncodePageToken(c));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->state.has_value());
}

TEST(PageTokenTest, MalformedTokensAreInvalidArgument) {
  const std::string bad[] = {
      "not base64 !!",
      absl::WebSafeBase64Escape("hello"),
      absl::WebSafeBase64Escape("p1|12|RUNNING"),            // missing id
      absl::WebSafeBase64Escape("p2|12||job-1"),             // unknown version
      absl::WebSafeBase64Escape("p1|twelve||job-1"),         // bad time
      absl::WebSafeBase64Escape("p1|12|SLEEPING|job-1"),     // bad state
      absl::WebSafeBase64Escape("p1|12||../../etc/passwd"),  // bad id
      std::string(600, 'A'),                                 // too long
  };
  for (const std::string& token : bad) {
    const absl::StatusOr<PageCursor> c = DecodePageToken(token);
    EXPECT_TRUE(absl::IsInvalidArgument(c.status())) << token;
    EXPECT_THAT(c.status().message(), ::testing::Not(HasSubstr(token.substr(0, 8))));
  }
}

}  // namespace
}  // namespace mia::jobs
