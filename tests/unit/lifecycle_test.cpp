#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "coordinator/config.hpp"  // to_seconds
#include "coordinator/lifecycle.hpp"

using namespace coordinator;
using std::chrono::duration;
using std::chrono::seconds;

namespace {

const std::vector<double> kExpectedBase{1, 2, 4, 8, 16, 32, 60, 60};

}  // namespace

TEST(RestartDelay, DoublesFromOneSecondUpToTheCap) {
  for (unsigned failures = 1; failures <= kExpectedBase.size(); ++failures) {
    EXPECT_EQ(restart_delay(failures, 0.5),
              std::chrono::duration_cast<Clock::duration>(duration<double>(kExpectedBase[failures - 1])))
        << "failure " << failures;
  }
  EXPECT_EQ(restart_delay(1, 0.5), seconds(1));
  EXPECT_EQ(restart_delay(6, 0.5), seconds(32));
  EXPECT_EQ(restart_delay(7, 0.5), seconds(60));
}

TEST(RestartDelay, StaysAtTheCapForManyFailures) {
  EXPECT_EQ(restart_delay(17, 0.5), seconds(60));
  EXPECT_EQ(restart_delay(100, 0.5), seconds(60));
  EXPECT_EQ(restart_delay(4000000000u, 0.5), seconds(60));
}

TEST(RestartDelay, ZeroFailuresIsTreatedAsTheFirst) {
  EXPECT_EQ(restart_delay(0, 0.5), seconds(1));
}

TEST(RestartDelay, CustomCap) {
  EXPECT_EQ(restart_delay(3, 0.5, 10), seconds(4));
  EXPECT_EQ(restart_delay(4, 0.5, 10), seconds(8));
  EXPECT_EQ(restart_delay(5, 0.5, 10), seconds(10));
  EXPECT_EQ(restart_delay(9, 0.5, 10), seconds(10));
}

TEST(RestartDelay, JitterStaysWithinTwentyPercent) {
  for (unsigned failures = 1; failures <= kExpectedBase.size(); ++failures) {
    const double base = kExpectedBase[failures - 1];
    const double low = to_seconds(restart_delay(failures, 0.0));
    const double high = to_seconds(restart_delay(failures, 0.999999));
    EXPECT_NEAR(low, base * 0.8, 1e-6) << "failure " << failures;
    EXPECT_NEAR(high, base * 1.2, base * 1e-5) << "failure " << failures;
    EXPECT_GE(low, base * 0.8 - 1e-9);
    EXPECT_LE(high, base * 1.2 + 1e-9);
    EXPECT_LT(low, high);
    for (double unit : {0.1, 0.25, 0.5, 0.75, 0.9}) {
      const double delay = to_seconds(restart_delay(failures, unit));
      EXPECT_GE(delay, base * 0.8 - 1e-9) << failures << " " << unit;
      EXPECT_LE(delay, base * 1.2 + 1e-9) << failures << " " << unit;
    }
  }
}

TEST(RestartDelay, OutOfRangeRandomIsClamped) {
  EXPECT_NEAR(to_seconds(restart_delay(3, -5.0)), 3.2, 1e-6);
  EXPECT_NEAR(to_seconds(restart_delay(3, 7.0)), 4.8, 1e-6);
}

TEST(FailureHistory, EmptyCountsNothing) {
  FailureHistory history;
  EXPECT_EQ(history.count_within(seconds(600), Clock::now()), 0u);
}

TEST(FailureHistory, CountsOnlyFailuresWithinTheWindow) {
  const auto t0 = Clock::now();
  FailureHistory history;
  history.record(t0);
  history.record(t0 + seconds(10));
  history.record(t0 + seconds(20));
  EXPECT_EQ(history.count_within(seconds(60), t0 + seconds(30)), 3u);
  // At t0+25 with a 15 s window: t0 is out, t0+10 is exactly on the edge (kept).
  EXPECT_EQ(history.count_within(seconds(15), t0 + seconds(25)), 2u);
  EXPECT_EQ(history.count_within(seconds(15), t0 + seconds(26)), 1u);
  EXPECT_EQ(history.count_within(seconds(15), t0 + seconds(36)), 0u);
}

TEST(FailureHistory, NewFailuresAfterOldOnesExpire) {
  const auto t0 = Clock::now();
  FailureHistory history;
  for (int i = 0; i < 5; ++i) history.record(t0 + seconds(i));
  EXPECT_EQ(history.count_within(seconds(600), t0 + seconds(5)), 5u);
  EXPECT_EQ(history.count_within(seconds(600), t0 + seconds(1000)), 0u);
  history.record(t0 + seconds(1000));
  EXPECT_EQ(history.count_within(seconds(600), t0 + seconds(1001)), 1u);
}
