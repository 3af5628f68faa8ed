#include <gtest/gtest.h>

#include "coordinator/registry.hpp"

using namespace coordinator;

namespace {

Registry make_registry(std::size_t n, std::uint64_t max_in_flight = 1) {
  std::vector<Child> children;
  for (std::size_t i = 0; i < n; ++i) {
    Child child;
    child.name = "c" + std::to_string(i);
    child.max_in_flight = max_in_flight;
    children.push_back(child);
  }
  return Registry(std::move(children));
}

const auto kNow = Clock::now();

void make_ready(Registry& registry, std::size_t index) {
  registry.report_health(index, true, "", 0, kNow);
}

const std::vector<bool> kNoneTried;

}  // namespace

TEST(Registry, NothingIsPickedBeforeAChildIsReady) {
  Registry registry = make_registry(3);
  EXPECT_FALSE(registry.pick(kNoneTried, false).has_value());
  EXPECT_EQ(registry.serving_count(), 0u);
}

TEST(Registry, RoundRobinOverReadyChildren) {
  Registry registry = make_registry(3);
  for (std::size_t i = 0; i < 3; ++i) make_ready(registry, i);
  std::vector<std::size_t> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(*registry.pick(kNoneTried, false));
  EXPECT_EQ(picks, (std::vector<std::size_t>{0, 1, 2, 0, 1, 2}));
}

TEST(Registry, RoundRobinSkipsChildrenThatAreNotReady) {
  Registry registry = make_registry(3);
  make_ready(registry, 0);
  make_ready(registry, 2);
  EXPECT_EQ(*registry.pick(kNoneTried, false), 0u);
  EXPECT_EQ(*registry.pick(kNoneTried, false), 2u);
  EXPECT_EQ(*registry.pick(kNoneTried, false), 0u);
}

TEST(Registry, TriedChildrenAreNotPickedAgain) {
  Registry registry = make_registry(3);
  for (std::size_t i = 0; i < 3; ++i) make_ready(registry, i);
  std::vector<bool> tried{true, false, true};
  EXPECT_EQ(*registry.pick(tried, false), 1u);
  tried[1] = true;
  EXPECT_FALSE(registry.pick(tried, false).has_value());
  EXPECT_FALSE(registry.any_serving(tried));
}

TEST(Registry, StartingChildStaysStartingOnFailedProbe) {
  Registry registry = make_registry(1);
  EXPECT_FALSE(registry.report_health(0, false, "connect: refused", 0, kNow));
  EXPECT_EQ(registry.at(0).state, ChildState::starting);
  EXPECT_EQ(registry.at(0).last_error, "connect: refused");
}

TEST(Registry, ReadyChildLeavesOnFailedProbeAndComesBack) {
  Registry registry = make_registry(2);
  make_ready(registry, 0);
  EXPECT_TRUE(registry.report_health(0, false, "/health answered 500", 0, kNow));
  EXPECT_EQ(registry.at(0).state, ChildState::unhealthy);
  EXPECT_EQ(registry.names_serving(false), (std::vector<std::string>{"c0", "c1"}));
  EXPECT_FALSE(registry.report_health(0, false, "again", 0, kNow));  // logged once
  EXPECT_TRUE(registry.report_health(0, true, "", 0, kNow));
  EXPECT_EQ(registry.names_serving(true), (std::vector<std::string>{"c0"}));
}

TEST(Registry, ForwardFailureTakesChildOutUntilHealthReadmits) {
  Registry registry = make_registry(2);
  make_ready(registry, 0);
  make_ready(registry, 1);
  EXPECT_TRUE(registry.report_forward_failure(0, "answered 503", kNow));
  EXPECT_EQ(registry.at(0).failures, 1u);
  EXPECT_EQ(*registry.pick(kNoneTried, false), 1u);
  EXPECT_EQ(*registry.pick(kNoneTried, false), 1u);
  make_ready(registry, 0);
  EXPECT_EQ(registry.serving_count(), 2u);
}

TEST(Registry, ExitedChildIsNotRevivedByAStaleProbe) {
  Registry registry = make_registry(1);
  make_ready(registry, 0);
  EXPECT_TRUE(registry.report_exit(0, "exited with code 4", kNow));
  EXPECT_EQ(registry.at(0).state, ChildState::exited);
  EXPECT_FALSE(registry.report_health(0, true, "", 0, kNow));
  EXPECT_EQ(registry.at(0).state, ChildState::exited);
  EXPECT_EQ(registry.at(0).last_error, "exited with code 4");
}

TEST(Registry, DrainThenExitRetiresWhenFinal) {
  Registry registry = make_registry(1);
  make_ready(registry, 0);
  registry.set_retire_on_exit(0, true);
  EXPECT_TRUE(registry.apply(0, ChildEvent::drain, {}, kNow));
  EXPECT_FALSE(registry.pick(kNoneTried, false).has_value());
  EXPECT_TRUE(registry.report_exit(0, "was killed by signal 15", kNow));
  EXPECT_EQ(registry.at(0).state, ChildState::retired);
}

TEST(Registry, SlotsMakeAChildBusyAndFreeAgain) {
  Registry registry = make_registry(1, 2);
  make_ready(registry, 0);
  EXPECT_TRUE(registry.has_free_slot(0));
  registry.take_slot(0, kNow);
  EXPECT_EQ(registry.at(0).state, ChildState::ready);
  registry.take_slot(0, kNow);
  EXPECT_EQ(registry.at(0).state, ChildState::busy);
  EXPECT_FALSE(registry.has_free_slot(0));
  EXPECT_EQ(registry.at(0).in_flight, 2u);
  registry.free_slot(0, true, kNow);
  EXPECT_EQ(registry.at(0).state, ChildState::ready);
  registry.free_slot(0, false, kNow);
  EXPECT_EQ(registry.at(0).in_flight, 0u);
  EXPECT_EQ(registry.at(0).served, 1u);
}

TEST(Registry, ChildReportingAQueueHasNoFreeSlot) {
  Registry registry = make_registry(2);
  registry.report_health(0, true, "", 3, kNow);
  make_ready(registry, 1);
  EXPECT_FALSE(registry.has_free_slot(0));
  EXPECT_EQ(*registry.pick(kNoneTried, true), 1u);
  EXPECT_EQ(*registry.pick(kNoneTried, true), 1u);
}

TEST(Registry, CapacityListenerFiresWhenAChildBecomesReadyOrFrees) {
  Registry registry = make_registry(1);
  int calls = 0;
  registry.set_capacity_listener([&] { ++calls; });
  make_ready(registry, 0);
  EXPECT_EQ(calls, 1);
  registry.take_slot(0, kNow);
  registry.free_slot(0, true, kNow);
  EXPECT_GE(calls, 2);
}

TEST(Registry, RateLimitedChildCoolsAndComesBack) {
  Registry registry = make_registry(1);
  make_ready(registry, 0);
  EXPECT_TRUE(registry.report_rate_limited(0, kNow + std::chrono::seconds(5), kNow));
  EXPECT_EQ(registry.at(0).state, ChildState::cooling);
  EXPECT_FALSE(registry.report_health(0, true, "", 0, kNow));  // health does not end a cooldown
  EXPECT_TRUE(registry.apply(0, ChildEvent::cooldown_over, {}, kNow));
  EXPECT_EQ(registry.at(0).state, ChildState::ready);
}

TEST(Registry, ReqIdOwnership) {
  Registry registry = make_registry(2);
  registry.remember_req_id("abc", 1);
  EXPECT_EQ(registry.owner_of("abc"), 1u);
  registry.forget_req_id("abc");
  EXPECT_FALSE(registry.owner_of("abc").has_value());
}

TEST(Registry, FindByName) {
  Registry registry = make_registry(3);
  EXPECT_EQ(registry.find("c2"), 2u);
  EXPECT_FALSE(registry.find("nope").has_value());
}

namespace {

const OutlierPolicy kEjectAfterThree{3, std::chrono::seconds(10), std::chrono::seconds(35)};

// Answers `count` requests of child `index` with `status`; returns the last result.
std::optional<Clock::time_point> answer(Registry& registry, std::size_t index, unsigned status, int count = 1) {
  std::optional<Clock::time_point> ejected_until;
  for (int i = 0; i < count; ++i) ejected_until = registry.report_answer(index, status, kEjectAfterThree, kNow);
  return ejected_until;
}

}  // namespace

TEST(Registry, RunOfServerErrorsEjectsTheChild) {
  Registry registry = make_registry(2);
  make_ready(registry, 0);
  make_ready(registry, 1);
  EXPECT_FALSE(answer(registry, 0, 500, 2));
  EXPECT_EQ(registry.at(0).state, ChildState::ready);
  const auto until = answer(registry, 0, 500);
  ASSERT_TRUE(until);
  EXPECT_EQ(*until, kNow + std::chrono::seconds(10));
  EXPECT_EQ(registry.at(0).state, ChildState::cooling);
  EXPECT_EQ(registry.at(0).ejections, 1u);
  EXPECT_EQ(registry.at(0).last_error, "ejected for 10 s after 3 server errors in a row (last 500)");
  EXPECT_FALSE(registry.report_health(0, true, "", 0, kNow));  // a passing /health does not end it
  EXPECT_EQ(*registry.pick(kNoneTried, true), 1u);
  EXPECT_EQ(*registry.pick(kNoneTried, true), 1u);
}

TEST(Registry, AnyGoodAnswerEndsTheRun) {
  Registry registry = make_registry(2);
  make_ready(registry, 0);
  make_ready(registry, 1);
  for (unsigned good : {200u, 400u, 404u, 499u}) {
    EXPECT_FALSE(answer(registry, 0, 500, 2));
    EXPECT_FALSE(answer(registry, 0, good)) << good;
  }
  EXPECT_FALSE(answer(registry, 0, 501, 2));
  EXPECT_TRUE(answer(registry, 0, 599));
  EXPECT_EQ(registry.at(0).state, ChildState::cooling);
}

TEST(Registry, EjectionsInARowDoubleUpToTheLongest) {
  Registry registry = make_registry(2);
  make_ready(registry, 1);
  std::vector<Clock::duration> lengths;
  for (int round = 0; round < 4; ++round) {
    make_ready(registry, 0);
    if (round > 0) registry.apply(0, ChildEvent::cooldown_over, {}, kNow);
    const auto until = answer(registry, 0, 500, 3);
    ASSERT_TRUE(until) << round;
    lengths.push_back(*until - kNow);
  }
  using std::chrono::seconds;
  EXPECT_EQ(lengths, (std::vector<Clock::duration>{seconds(10), seconds(20), seconds(35), seconds(35)}));
  EXPECT_EQ(registry.at(0).ejections, 4u);

  // A good answer after the ejection starts the next one from the base again.
  registry.apply(0, ChildEvent::cooldown_over, {}, kNow);
  EXPECT_FALSE(answer(registry, 0, 200));
  EXPECT_EQ(*answer(registry, 0, 500, 3) - kNow, seconds(10));
}

TEST(Registry, LastServingChildIsNeverEjected) {
  Registry registry = make_registry(2);
  make_ready(registry, 0);
  EXPECT_FALSE(answer(registry, 0, 500, 10));
  EXPECT_EQ(registry.at(0).state, ChildState::ready);
  EXPECT_EQ(registry.at(0).consecutive_server_errors, 10u);
  // Once another child serves, the run (still going) ejects it at the next error.
  make_ready(registry, 1);
  EXPECT_TRUE(answer(registry, 0, 500));
  EXPECT_EQ(registry.at(0).state, ChildState::cooling);
}

TEST(Registry, BusyChildCanBeEjectedAndUnhealthyOneIsNot) {
  Registry registry = make_registry(3);
  for (std::size_t i = 0; i < 3; ++i) make_ready(registry, i);
  registry.take_slot(0, kNow);
  ASSERT_EQ(registry.at(0).state, ChildState::busy);
  EXPECT_TRUE(answer(registry, 0, 500, 3));
  EXPECT_EQ(registry.at(0).state, ChildState::cooling);
  registry.free_slot(0, true, kNow);
  EXPECT_EQ(registry.at(0).state, ChildState::cooling);  // freeing its slot does not readmit it

  registry.report_health(1, false, "down", 0, kNow);
  EXPECT_FALSE(answer(registry, 1, 500, 3));
  EXPECT_EQ(registry.at(1).state, ChildState::unhealthy);
}

TEST(Registry, EjectAfterZeroNeverEjects) {
  Registry registry = make_registry(2);
  make_ready(registry, 0);
  make_ready(registry, 1);
  const OutlierPolicy off{0, std::chrono::seconds(10), std::chrono::seconds(100)};
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(registry.report_answer(0, 500, off, kNow));
  EXPECT_EQ(registry.at(0).state, ChildState::ready);
}

TEST(Registry, ARestartStartsANewRunButKeepsTheStreak) {
  Registry registry = make_registry(2);
  make_ready(registry, 0);
  make_ready(registry, 1);
  EXPECT_TRUE(answer(registry, 0, 500, 3));
  registry.report_exit(0, "killed", kNow);
  registry.apply(0, ChildEvent::restart_scheduled, {}, kNow);
  registry.report_spawned(0, 42, kNow);
  make_ready(registry, 0);
  EXPECT_FALSE(answer(registry, 0, 500, 2));
  const auto until = answer(registry, 0, 500);
  ASSERT_TRUE(until);
  EXPECT_EQ(*until - kNow, std::chrono::seconds(20));
}
