#include "coordinator/health_checker.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "coordinator/json_check.hpp"
#include "coordinator/upstream.hpp"

namespace coordinator {

HealthVerdict judge_health(unsigned status, std::string_view body) {
  if (status != 200) return {false, "/health answered " + std::to_string(status)};
  if (!check_json(body).is_object) return {false, "/health answered a body that is not a JSON object"};
  const auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  const auto found = json.find("status");
  if (found == json.end() || !found->is_string()) return {false, "/health has no \"status\""};
  if (found->get<std::string>() != "OK") return {false, "/health status is not OK"};
  HealthVerdict verdict{true, {}};
  const auto details = json.find("details");
  if (details != json.end() && details->is_object()) {
    const auto queue = details->find("queueLength");
    if (queue != details->end() && queue->is_number_unsigned()) verdict.queue_length = queue->get<std::uint64_t>();
  }
  return verdict;
}

HealthChecker::HealthChecker(net::io_context& io, const Config& config, Registry& registry)
    : io_(io), config_(config), registry_(registry) {}

void HealthChecker::start() {
  started_ = Clock::now();
  for (std::size_t i = 0; i < registry_.size(); ++i) {
    net::co_spawn(io_, poll_child(i), LogEscapedException{"health checker"});
  }
}

void HealthChecker::watch(std::size_t index) {
  net::co_spawn(io_, poll_child(index), LogEscapedException{"health checker"});
}

void HealthChecker::report_progress(std::size_t index) {
  const std::size_t ready = registry_.serving_count();
  const std::size_t total = registry_.size();
  const double elapsed = std::chrono::duration<double>(Clock::now() - started_).count();
  if (!all_ready_reported_) {
    spdlog::info("{}/{} children ready ({} after {:.2f} s)", ready, total, registry_.at(index).name, elapsed);
  }
  if (ready == total && !all_ready_reported_) {
    all_ready_reported_ = true;
    spdlog::info("all {} children ready in {:.2f} s", total, elapsed);
  }
}

awaitable<void> HealthChecker::poll_child(std::size_t index) {
  SteadyTimer timer(io_);
  // Start-up polls come fast so a child is used as soon as it can serve.
  const auto startup_interval = std::min<Clock::duration>(std::chrono::milliseconds(250), config_.health_interval);
  const auto ready_deadline = Clock::now() + config_.ready_timeout;
  bool late_reported = false;
  while (!stopping_) {
    const ChildState state = registry_.at(index).state;
    // Only a live process is worth asking; the supervisor handles the rest.
    const bool probe = state == ChildState::starting || is_serving(state) || state == ChildState::unhealthy ||
                       state == ChildState::cooling;
    if (probe && (registry_.at(index).pid > 0 || registry_.at(index).attached)) {
      std::string error;
      const Child& target = registry_.at(index);
      const auto response = co_await simple_request(target.host, target.ports.api, http::verb::get, "/health", "",
                                                    config_.health_timeout, error);
      if (stopping_) break;
      const HealthVerdict verdict =
          response ? judge_health(response->status, response->body) : HealthVerdict{false, error, 0};
      const bool was_serving = is_serving(registry_.at(index).state);
      if (registry_.report_health(index, verdict.healthy, verdict.error, verdict.queue_length, Clock::now()) &&
          !was_serving && verdict.healthy) {
        report_progress(index);
      }
      const Child& child = registry_.at(index);
      // Spawned children are restarted by the supervisor; an attached one is only reported.
      if (child.attached && !child.ever_ready && !late_reported && Clock::now() >= ready_deadline) {
        late_reported = true;
        spdlog::error("upstream {} not ready after {:.0f} s ({}); still polling", child.name,
                      to_seconds(config_.ready_timeout), child.last_error.empty() ? "no answer" : child.last_error);
      }
    }
    const bool fast = registry_.at(index).state == ChildState::starting && !late_reported;
    timer.expires_after(fast ? startup_interval : config_.health_interval);
    error_code ec;
    co_await timer.async_wait(use_awaitable_ec(ec));
  }
}

}  // namespace coordinator
