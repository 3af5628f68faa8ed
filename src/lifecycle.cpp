#include "coordinator/lifecycle.hpp"

#include <algorithm>
#include <cmath>

namespace coordinator {

Clock::duration restart_delay(unsigned consecutive_failures, double unit_random, double cap_seconds) {
  const unsigned exponent = std::min(consecutive_failures == 0 ? 0u : consecutive_failures - 1, 16u);
  const double base = std::min(cap_seconds, std::ldexp(1.0, static_cast<int>(exponent)));
  const double spread = 0.8 + 0.4 * std::clamp(unit_random, 0.0, 1.0);
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(base * spread));
}

void FailureHistory::record(Clock::time_point when) {
  failures_.push_back(when);
}

std::size_t FailureHistory::count_within(Clock::duration window, Clock::time_point now) {
  while (!failures_.empty() && now - failures_.front() > window) failures_.pop_front();
  return failures_.size();
}

}  // namespace coordinator
