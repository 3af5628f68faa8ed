#pragma once

#include <functional>
#include <string>

#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/registry.hpp"

namespace coordinator {

// What a child's /health answer means: 200 with JSON "status":"OK" is healthy.
struct HealthVerdict {
  bool healthy = false;
  std::string error;               // why not, short
  std::uint64_t queue_length = 0;  // details.queueLength: requests waiting inside the child
};
HealthVerdict judge_health(unsigned status, std::string_view body);

// Polls each child's GET /health and reports to the registry. Children that
// have never been ready are polled quickly (start-up), the others every
// --health-interval. It only flips state; routing reads it from the registry.
class HealthChecker {
 public:
  HealthChecker(net::io_context& io, const Config& config, Registry& registry);
  void start();
  // Starts polling a slot added after start (live reload).
  void watch(std::size_t index);
  void stop() { stopping_ = true; }

 private:
  awaitable<void> poll_child(std::size_t index);
  void report_progress(std::size_t index);

  net::io_context& io_;
  const Config& config_;
  Registry& registry_;
  Clock::time_point started_{};
  bool stopping_ = false;
  bool all_ready_reported_ = false;
};

}  // namespace coordinator
