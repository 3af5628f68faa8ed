#include "coordinator/model_learner.hpp"

#include <gtest/gtest.h>

using namespace coordinator;

namespace {

using std::chrono::seconds;

const Clock::time_point kStart = Clock::now();
constexpr Clock::duration kInterval = seconds(300);

Child child_in(ChildState state, std::uint64_t in_flight = 0, std::uint64_t external_queue = 0) {
  Child child;
  child.name = "c";
  child.state = state;
  child.in_flight = in_flight;
  child.external_queue = external_queue;
  return child;
}

}  // namespace

TEST(ModelLearner, ReadsAtOnceWhenAChildBecomesReady) {
  ModelsSchedule schedule;
  // Starting: nothing to read; the serving listener wakes the learner later.
  EXPECT_FALSE(plan_models_read(child_in(ChildState::starting), schedule, kStart, kInterval).read_now);
  const ModelsStep step = plan_models_read(child_in(ChildState::ready), schedule, kStart + seconds(1), kInterval);
  EXPECT_TRUE(step.read_now);
}

TEST(ModelLearner, ReadsAgainEveryInterval) {
  ModelsSchedule schedule;
  const Child ready = child_in(ChildState::ready);
  ASSERT_TRUE(plan_models_read(ready, schedule, kStart, kInterval).read_now);
  note_models_read(schedule, /*listed=*/true, /*known_before=*/false, kStart, kInterval);
  const ModelsStep wait = plan_models_read(ready, schedule, kStart + seconds(10), kInterval);
  EXPECT_FALSE(wait.read_now);
  EXPECT_EQ(wait.next, kStart + kInterval);
  EXPECT_TRUE(plan_models_read(ready, schedule, kStart + kInterval, kInterval).read_now);
}

TEST(ModelLearner, ABusyChildIsSkippedAndLookedAtAgainSoon) {
  ModelsSchedule schedule;
  // Whatever keeps it from being idle: a request in flight (busy or not), or its own queue.
  for (const Child& child :
       {child_in(ChildState::busy, 1), child_in(ChildState::ready, 1, 0), child_in(ChildState::ready, 0, 2)}) {
    schedule = {};
    const ModelsStep step = plan_models_read(child, schedule, kStart, kInterval);
    EXPECT_FALSE(step.read_now);
    EXPECT_EQ(step.next, kStart + seconds(1));
  }
  // Idle again: the read that was due happens.
  EXPECT_TRUE(plan_models_read(child_in(ChildState::ready), schedule, kStart + seconds(1), kInterval).read_now);
}

TEST(ModelLearner, ANewServingSpellReadsAgainAtOnce) {
  ModelsSchedule schedule;
  const Child ready = child_in(ChildState::ready);
  ASSERT_TRUE(plan_models_read(ready, schedule, kStart, kInterval).read_now);
  note_models_read(schedule, true, false, kStart, kInterval);
  // It fails a health check and comes back (maybe restarted): its list may have changed.
  EXPECT_FALSE(plan_models_read(child_in(ChildState::unhealthy), schedule, kStart + seconds(5), kInterval).read_now);
  EXPECT_TRUE(plan_models_read(ready, schedule, kStart + seconds(6), kInterval).read_now);
}

TEST(ModelLearner, AFailedReadIsRetriedSoonerWhileNothingIsKnown) {
  ModelsSchedule schedule;
  const Child ready = child_in(ChildState::ready);
  ASSERT_TRUE(plan_models_read(ready, schedule, kStart, kInterval).read_now);
  note_models_read(schedule, /*listed=*/false, /*known_before=*/false, kStart, kInterval);
  EXPECT_EQ(plan_models_read(ready, schedule, kStart, kInterval).next, kStart + seconds(10));
  // With a list known, a failure keeps it and the next read waits the interval.
  note_models_read(schedule, /*listed=*/false, /*known_before=*/true, kStart, kInterval);
  EXPECT_EQ(plan_models_read(ready, schedule, kStart, kInterval).next, kStart + kInterval);
  // A short interval bounds the retry too.
  note_models_read(schedule, false, false, kStart, seconds(2));
  EXPECT_EQ(plan_models_read(ready, schedule, kStart, seconds(2)).next, kStart + seconds(2));
}
