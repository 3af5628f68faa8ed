#include "coordinator/registry.hpp"

#include <spdlog/spdlog.h>

namespace coordinator {

std::string_view to_string(ChildState state) {
  switch (state) {
    case ChildState::starting:
      return "starting";
    case ChildState::ready:
      return "ready";
    case ChildState::unhealthy:
      return "unhealthy";
    case ChildState::exited:
      return "exited";
    case ChildState::stopping:
      return "stopping";
  }
  return "unknown";
}

Registry::Registry(std::vector<Child> children) : children_(std::move(children)) {}

std::optional<std::size_t> Registry::find(std::string_view name) const {
  for (std::size_t i = 0; i < children_.size(); ++i) {
    if (children_[i].name == name) return i;
  }
  return std::nullopt;
}

std::optional<std::size_t> Registry::pick(const std::vector<bool>& tried) {
  const std::size_t n = children_.size();
  for (std::size_t step = 0; step < n; ++step) {
    const std::size_t index = (cursor_ + step) % n;
    if (children_[index].state != ChildState::ready) continue;
    if (index < tried.size() && tried[index]) continue;
    cursor_ = (index + 1) % n;
    return index;
  }
  return std::nullopt;
}

bool Registry::transition(std::size_t index, ChildState next, std::string_view reason, Clock::time_point now) {
  Child& child = children_.at(index);
  if (child.state == next) return false;
  const ChildState previous = child.state;
  child.state = next;
  child.state_since = now;
  if (!reason.empty()) child.last_error = std::string(reason.substr(0, 200));
  if (next == ChildState::ready && !child.ever_ready) {
    child.ever_ready = true;
    child.last_error.clear();  // start-up probe failures are not worth reporting once it serves
  }
  if (reason.empty()) {
    spdlog::info("child {} {} -> {}", child.name, to_string(previous), to_string(next));
  } else {
    spdlog::warn("child {} {} -> {}: {}", child.name, to_string(previous), to_string(next), reason);
  }
  return true;
}

bool Registry::report_health(std::size_t index, bool healthy, std::string_view error, Clock::time_point now) {
  const ChildState state = children_.at(index).state;
  // A process that is gone or being stopped cannot be revived by a stale probe.
  if (state == ChildState::exited || state == ChildState::stopping) return false;
  if (healthy) return transition(index, ChildState::ready, {}, now);
  // A child still starting stays "starting" until it has been ready once.
  if (state == ChildState::starting) {
    children_.at(index).last_error = std::string(error.substr(0, 200));
    return false;
  }
  return transition(index, ChildState::unhealthy, error, now);
}

bool Registry::report_forward_failure(std::size_t index, std::string_view error, Clock::time_point now) {
  Child& child = children_.at(index);
  ++child.failures;
  if (child.state != ChildState::ready) {
    child.last_error = std::string(error.substr(0, 200));
    return false;
  }
  return transition(index, ChildState::unhealthy, error, now);
}

bool Registry::report_spawned(std::size_t index, int pid, Clock::time_point now) {
  children_.at(index).pid = pid;
  return transition(index, ChildState::starting, {}, now);
}

bool Registry::report_exit(std::size_t index, std::string_view how, Clock::time_point now) {
  const bool expected = children_.at(index).state == ChildState::stopping;
  return transition(index, ChildState::exited, expected ? std::string_view{} : how, now);
}

bool Registry::report_stopping(std::size_t index, Clock::time_point now) {
  if (children_.at(index).state == ChildState::exited) return false;
  return transition(index, ChildState::stopping, {}, now);
}

void Registry::end_request(std::size_t index, bool served) {
  Child& child = children_.at(index);
  if (child.in_flight > 0) --child.in_flight;
  if (served) ++child.served;
}

std::size_t Registry::ready_count() const {
  std::size_t count = 0;
  for (const auto& child : children_) count += child.state == ChildState::ready ? 1 : 0;
  return count;
}

std::vector<std::string> Registry::names_in(bool ready) const {
  std::vector<std::string> names;
  for (const auto& child : children_) {
    if ((child.state == ChildState::ready) == ready) names.push_back(child.name);
  }
  return names;
}

}  // namespace coordinator
