#pragma once

#include <deque>

#include "coordinator/child.hpp"

namespace coordinator {

// Delay before restart number `consecutive_failures` (1-based): 1, 2, 4 ...
// seconds, capped at `cap`, spread by +-20% (`unit_random` in [0, 1)) so
// children that failed together do not restart together.
Clock::duration restart_delay(unsigned consecutive_failures, double unit_random, double cap_seconds = 60);

// When a profile failed, to decide when it has failed too often.
class FailureHistory {
 public:
  void record(Clock::time_point when);
  std::size_t count_within(Clock::duration window, Clock::time_point now);

 private:
  std::deque<Clock::time_point> failures_;
};

}  // namespace coordinator
