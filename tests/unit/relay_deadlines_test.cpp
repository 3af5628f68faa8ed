#include "coordinator/relay_deadlines.hpp"

#include <gtest/gtest.h>

namespace coordinator {
namespace {

using std::chrono::seconds;

const RelayDeadlines::Limits kLimits{seconds(300), seconds(600), seconds(60), seconds(30), seconds(15)};
const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(1);

TEST(RelayDeadlines, NonStreamIsBoundByTheRequestTimeoutOnly) {
  RelayDeadlines deadlines(kLimits);
  deadlines.begin(t0);
  deadlines.start(t0, false);
  deadlines.sent_to_child(t0);
  EXPECT_EQ(deadlines.expired(t0 + seconds(599)), Expiry::none);
  EXPECT_EQ(deadlines.expired(t0 + seconds(600)), Expiry::total);
  // A silent child is no stall for a non-streamed answer.
  deadlines.client_watched();
  EXPECT_EQ(deadlines.next_wake(false), t0 + seconds(600));
}

TEST(RelayDeadlines, StreamIsBoundByStallAndIdleAndMovedByChildBytes) {
  RelayDeadlines deadlines(kLimits);
  deadlines.begin(t0);
  deadlines.start(t0, true);
  deadlines.sent_to_child(t0);
  EXPECT_EQ(deadlines.expired(t0 + seconds(29)), Expiry::none);
  EXPECT_EQ(deadlines.expired(t0 + seconds(30)), Expiry::stall);
  deadlines.child_sent(t0 + seconds(25));
  EXPECT_EQ(deadlines.expired(t0 + seconds(54)), Expiry::none);
  EXPECT_EQ(deadlines.expired(t0 + seconds(55)), Expiry::stall);
}

TEST(RelayDeadlines, AnEventStreamAnswerTurnsTheRequestTimeoutOff) {
  RelayDeadlines deadlines(kLimits);
  deadlines.begin(t0);
  deadlines.start(t0, false);
  deadlines.become_stream(t0 + seconds(590));
  EXPECT_TRUE(deadlines.stream());
  EXPECT_EQ(deadlines.expired(t0 + seconds(610)), Expiry::none);
  EXPECT_EQ(deadlines.expired(t0 + seconds(620)), Expiry::stall);
}

TEST(RelayDeadlines, HeartbeatsComeWhenTheClientGotNothing) {
  RelayDeadlines deadlines(kLimits);
  deadlines.begin(t0);
  EXPECT_FALSE(deadlines.heartbeat_due(t0 + seconds(14)));
  EXPECT_TRUE(deadlines.heartbeat_due(t0 + seconds(15)));
  deadlines.client_sent(t0 + seconds(10));
  EXPECT_FALSE(deadlines.heartbeat_due(t0 + seconds(24)));
  EXPECT_TRUE(deadlines.heartbeat_due(t0 + seconds(25)));
  RelayDeadlines off({seconds(1), seconds(1), seconds(1), seconds(1), Clock::duration::zero()});
  off.begin(t0);
  EXPECT_FALSE(off.heartbeat_due(t0 + std::chrono::hours(100)));
}

TEST(RelayDeadlines, TheQueueDeadlineIsSetOnceAcrossRetries) {
  RelayDeadlines deadlines(kLimits);
  deadlines.begin(t0);
  deadlines.start_queue(t0);
  deadlines.start_queue(t0 + seconds(100));
  EXPECT_FALSE(deadlines.queue_expired(t0 + seconds(299)));
  EXPECT_TRUE(deadlines.queue_expired(t0 + seconds(300)));
}

TEST(RelayDeadlines, TheClientIsWatchedOnlyOnceARequestHasWaited) {
  RelayDeadlines deadlines(kLimits);
  deadlines.begin(t0);
  deadlines.start(t0, false);
  EXPECT_FALSE(deadlines.client_watch_due(t0));
  EXPECT_EQ(deadlines.next_wake(false), t0 + RelayDeadlines::kClientWatchDelay);
  EXPECT_TRUE(deadlines.client_watch_due(t0 + RelayDeadlines::kClientWatchDelay));
  deadlines.client_watched();
  EXPECT_FALSE(deadlines.client_watch_due(t0 + std::chrono::hours(1)));
}

}  // namespace
}  // namespace coordinator
