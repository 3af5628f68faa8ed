#pragma once

// A registry of ready children and a dispatcher over it, wired as the app
// does, for the dispatcher and model-quota tests.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/dispatcher.hpp"

namespace coordinator::testing {

inline Registry make_registry(std::size_t n, std::uint64_t max_in_flight = 1) {
  std::vector<Child> children;
  for (std::size_t i = 0; i < n; ++i) {
    Child child;
    child.name = "c" + std::to_string(i);
    child.max_in_flight = max_in_flight;
    children.push_back(child);
  }
  return Registry(std::move(children));
}

inline const auto kNow = Clock::now();
inline const std::vector<bool> kNoneTried;

inline void make_ready(Registry& registry, std::size_t index) {
  registry.report_health(index, true, "", 0, kNow);
}

// A registry of `n` ready children and a dispatcher over it, wired as the app does.
struct Fleet {
  Fleet(std::size_t n, Balance balance, std::size_t max_queue = 1000, std::uint64_t max_in_flight = 1,
        bool ready = true, Clock::duration queue_timeout = std::chrono::seconds(300))
      : registry(make_registry(n, max_in_flight)), dispatcher(registry, balance, max_queue, queue_timeout) {
    registry.set_capacity_listener([this] { dispatcher.pump(); });
    if (ready) {
      for (std::size_t i = 0; i < n; ++i) make_ready(registry, i);
    }
  }
  std::size_t granted(const std::vector<bool>& tried = kNoneTried) {
    const auto choice = dispatcher.acquire(tried);
    EXPECT_EQ(choice.verdict, Dispatcher::Verdict::granted);
    return choice.child;
  }
  Registry registry;
  Dispatcher dispatcher;
};

// A queued request that records when and how it was woken.
struct TestWaiter {
  explicit TestWaiter(std::vector<int>* log, int id, std::vector<bool> tried_children = {})
      : tried(std::move(tried_children)) {
    waiter.tried = &tried;
    waiter.wake = [log, id] { log->push_back(id); };
  }
  std::vector<bool> tried;
  Waiter waiter;
};

inline ModelSet listing(std::vector<std::string> ids) {
  ModelSet set;
  set.known = true;
  for (auto& id : ids) set.entries.push_back({id, "{\"id\":\"" + id + "\"}"});
  return set;
}

}  // namespace coordinator::testing
