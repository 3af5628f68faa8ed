#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/config.hpp"

namespace coordinator {

using Clock = std::chrono::steady_clock;

enum class ChildState {
  starting,   // spawned, not yet healthy
  ready,      // healthy: takes requests
  unhealthy,  // failed a health check or a forwarded request
  exited,     // the process is gone
  stopping,   // being shut down by the coordinator
};

std::string_view to_string(ChildState state);

// Everything the coordinator knows about one child. The health checker, the
// supervisor and the router each write their part; only the registry changes state.
struct Child {
  std::string name;
  std::filesystem::path profile;
  ChildPorts ports;
  ChildState state = ChildState::starting;
  Clock::time_point state_since{};
  int pid = 0;
  std::uint64_t in_flight = 0;
  std::uint64_t served = 0;
  std::uint64_t failures = 0;
  std::string last_error;
  bool ever_ready = false;
};

// The set of children and the round-robin choice over the ready ones. No I/O:
// callers report what they saw, the registry decides and logs state changes.
class Registry {
 public:
  explicit Registry(std::vector<Child> children);

  std::size_t size() const { return children_.size(); }
  const Child& at(std::size_t index) const { return children_.at(index); }
  const std::vector<Child>& children() const { return children_; }
  std::optional<std::size_t> find(std::string_view name) const;

  // The next ready child after the last one picked whose `tried` flag is false.
  std::optional<std::size_t> pick(const std::vector<bool>& tried);

  // Each returns true when the child's state changed.
  bool report_health(std::size_t index, bool healthy, std::string_view error, Clock::time_point now);
  bool report_forward_failure(std::size_t index, std::string_view error, Clock::time_point now);
  bool report_spawned(std::size_t index, int pid, Clock::time_point now);
  bool report_exit(std::size_t index, std::string_view how, Clock::time_point now);
  bool report_stopping(std::size_t index, Clock::time_point now);

  void begin_request(std::size_t index) { ++children_.at(index).in_flight; }
  void end_request(std::size_t index, bool served);

  std::size_t ready_count() const;
  std::vector<std::string> names_in(bool ready) const;

 private:
  bool transition(std::size_t index, ChildState next, std::string_view reason, Clock::time_point now);

  std::vector<Child> children_;
  std::size_t cursor_ = 0;  // where the next round-robin search starts
};

}  // namespace coordinator
