#include <gtest/gtest.h>

#include "coordinator/registry.hpp"

using namespace coordinator;

namespace {

Registry make_registry(std::size_t n) {
  std::vector<Child> children;
  for (std::size_t i = 0; i < n; ++i) {
    Child child;
    child.name = "c" + std::to_string(i);
    children.push_back(child);
  }
  return Registry(std::move(children));
}

const auto kNow = Clock::now();

void make_ready(Registry& registry, std::size_t index) {
  registry.report_health(index, true, "", kNow);
}

}  // namespace

TEST(Registry, NothingIsPickedBeforeAChildIsReady) {
  Registry registry = make_registry(3);
  EXPECT_FALSE(registry.pick({}).has_value());
  EXPECT_EQ(registry.ready_count(), 0u);
}

TEST(Registry, RoundRobinOverReadyChildren) {
  Registry registry = make_registry(3);
  for (std::size_t i = 0; i < 3; ++i) make_ready(registry, i);
  std::vector<std::size_t> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(*registry.pick({}));
  EXPECT_EQ(picks, (std::vector<std::size_t>{0, 1, 2, 0, 1, 2}));
}

TEST(Registry, RoundRobinSkipsChildrenThatAreNotReady) {
  Registry registry = make_registry(3);
  make_ready(registry, 0);
  make_ready(registry, 2);
  EXPECT_EQ(*registry.pick({}), 0u);
  EXPECT_EQ(*registry.pick({}), 2u);
  EXPECT_EQ(*registry.pick({}), 0u);
}

TEST(Registry, TriedChildrenAreNotPickedAgain) {
  Registry registry = make_registry(3);
  for (std::size_t i = 0; i < 3; ++i) make_ready(registry, i);
  std::vector<bool> tried{true, false, true};
  EXPECT_EQ(*registry.pick(tried), 1u);
  tried[1] = true;
  EXPECT_FALSE(registry.pick(tried).has_value());
}

TEST(Registry, StartingChildStaysStartingOnFailedProbe) {
  Registry registry = make_registry(1);
  EXPECT_FALSE(registry.report_health(0, false, "connect: refused", kNow));
  EXPECT_EQ(registry.at(0).state, ChildState::starting);
  EXPECT_EQ(registry.at(0).last_error, "connect: refused");
}

TEST(Registry, ReadyChildLeavesOnFailedProbeAndComesBack) {
  Registry registry = make_registry(2);
  make_ready(registry, 0);
  EXPECT_TRUE(registry.report_health(0, false, "/health answered 500", kNow));
  EXPECT_EQ(registry.at(0).state, ChildState::unhealthy);
  EXPECT_EQ(registry.names_in(false), (std::vector<std::string>{"c0", "c1"}));
  EXPECT_FALSE(registry.report_health(0, false, "again", kNow));  // logged once
  EXPECT_TRUE(registry.report_health(0, true, "", kNow));
  EXPECT_EQ(registry.names_in(true), (std::vector<std::string>{"c0"}));
}

TEST(Registry, ForwardFailureTakesChildOutUntilHealthReadmits) {
  Registry registry = make_registry(2);
  make_ready(registry, 0);
  make_ready(registry, 1);
  EXPECT_TRUE(registry.report_forward_failure(0, "answered 503", kNow));
  EXPECT_EQ(registry.at(0).failures, 1u);
  EXPECT_EQ(*registry.pick({}), 1u);
  EXPECT_EQ(*registry.pick({}), 1u);
  registry.report_health(0, true, "", kNow);
  EXPECT_EQ(registry.ready_count(), 2u);
}

TEST(Registry, ExitedChildIsNotRevivedByAStaleProbe) {
  Registry registry = make_registry(1);
  make_ready(registry, 0);
  EXPECT_TRUE(registry.report_exit(0, "exited with code 4", kNow));
  EXPECT_EQ(registry.at(0).state, ChildState::exited);
  EXPECT_FALSE(registry.report_health(0, true, "", kNow));
  EXPECT_EQ(registry.at(0).state, ChildState::exited);
  EXPECT_EQ(registry.at(0).last_error, "exited with code 4");
}

TEST(Registry, StoppingThenExitIsNotAnError) {
  Registry registry = make_registry(1);
  make_ready(registry, 0);
  EXPECT_TRUE(registry.report_stopping(0, kNow));
  EXPECT_FALSE(registry.pick({}).has_value());
  EXPECT_TRUE(registry.report_exit(0, "was killed by signal 15", kNow));
  EXPECT_TRUE(registry.at(0).last_error.empty());
}

TEST(Registry, RequestAccounting) {
  Registry registry = make_registry(1);
  registry.begin_request(0);
  registry.begin_request(0);
  EXPECT_EQ(registry.at(0).in_flight, 2u);
  registry.end_request(0, true);
  registry.end_request(0, false);
  EXPECT_EQ(registry.at(0).in_flight, 0u);
  EXPECT_EQ(registry.at(0).served, 1u);
}

TEST(Registry, FindByName) {
  Registry registry = make_registry(3);
  EXPECT_EQ(registry.find("c2"), 2u);
  EXPECT_FALSE(registry.find("nope").has_value());
}
