#include "coordinator/model_learner.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "coordinator/child_client.hpp"
#include "coordinator/model_catalog.hpp"

namespace coordinator {

namespace {

// A child busy when its read is due is looked at again this soon: it is idle
// between two requests far more often than every interval.
constexpr Clock::duration kBusyRecheck = std::chrono::seconds(1);
// While a child's list is unknown, a read that found none is repeated this
// soon (the real child's page may deliver its list a little after it serves).
constexpr Clock::duration kUnknownRetry = std::chrono::seconds(10);

bool idle(const Child& child) {
  return child.state == ChildState::ready && child.in_flight == 0 && child.external_queue == 0;
}

}  // namespace

ModelsStep plan_models_read(const Child& child, ModelsSchedule& schedule, Clock::time_point now,
                            Clock::duration interval) {
  if (!is_serving(child.state)) {
    // Nothing to read; the registry's serving listener wakes the learner when it serves.
    schedule.was_serving = false;
    return {false, now + interval};
  }
  if (!schedule.was_serving) {
    schedule.was_serving = true;
    schedule.due = now;  // it just became ready: read its list now
  }
  if (now < schedule.due) return {false, schedule.due};
  if (!idle(child)) return {false, now + std::min(kBusyRecheck, interval)};
  return {true, now};
}

void note_models_read(ModelsSchedule& schedule, bool listed, bool known_before, Clock::time_point now,
                      Clock::duration interval) {
  const bool soon = !listed && !known_before;
  schedule.due = now + (soon ? std::min(kUnknownRetry, interval) : interval);
}

ModelLearner::ModelLearner(net::io_context& io, const Config& config, Registry& registry)
    : io_(io), config_(config), registry_(registry) {}

void ModelLearner::start() {
  for (std::size_t i = 0; i < registry_.size(); ++i) watch(i);
}

void ModelLearner::watch(std::size_t index) {
  if (watches_.size() <= index) watches_.resize(index + 1);
  net::co_spawn(io_, learn_child(index), LogEscapedException{"model learner"});
}

void ModelLearner::wake(std::size_t index) {
  if (index >= watches_.size()) return;
  Watch& watch = watches_[index];
  watch.woken = true;
  if (watch.timer != nullptr) watch.timer->cancel();
}

void ModelLearner::stop() {
  stopping_ = true;
  for (Watch& watch : watches_) {
    if (watch.timer != nullptr) watch.timer->cancel();
  }
}

awaitable<void> ModelLearner::learn_child(std::size_t index) {
  SteadyTimer timer(io_);
  const auto interval = config_.models_interval;
  while (!stopping_) {
    const ModelsStep step = plan_models_read(registry_.at(index), watches_[index].schedule, Clock::now(), interval);
    if (step.read_now) {
      co_await read_models(index);
      continue;
    }
    if (watches_[index].woken) {
      watches_[index].woken = false;
      continue;
    }
    watches_[index].timer = &timer;
    timer.expires_at(step.next);
    error_code ec;
    co_await timer.async_wait(use_awaitable_ec(ec));
    watches_[index].timer = nullptr;
    watches_[index].woken = false;
  }
}

awaitable<void> ModelLearner::read_models(std::size_t index) {
  const Child& child = registry_.at(index);
  const std::string name = child.name;
  const auto started_at = child.started_at;
  const bool known_before = child.models.known;
  std::string error;
  const auto response = co_await fetch_models(child.host, child.ports.api, config_.health_timeout, error);
  if (stopping_) co_return;
  // Another process or profile in the slot now: this answer is not its list.
  if (registry_.at(index).name != name || registry_.at(index).started_at != started_at) co_return;
  ModelsVerdict verdict = response ? judge_models(response->status, response->body) : ModelsVerdict{false, {}, error};
  Watch& watch = watches_[index];
  note_models_read(watch.schedule, verdict.ok && verdict.models.known, known_before, Clock::now(),
                   config_.models_interval);
  if (!verdict.ok) {
    // One line per run of failures: an upstream without /v1/models would otherwise repeat it forever.
    const auto level = watch.failures_in_row++ == 0 ? spdlog::level::warn : spdlog::level::debug;
    spdlog::log(level, "child {}: reading /v1/models failed ({}); {}", name, verdict.error,
                known_before ? "its last known list stays" : "it is given any model until a list is read");
    co_return;
  }
  if (watch.failures_in_row > 0) spdlog::info("child {}: /v1/models answers again", name);
  watch.failures_in_row = 0;
  if (!verdict.models.known) {
    spdlog::debug("child {} has no model list yet (its fallback answer); it is given any model", name);
    co_return;
  }
  registry_.report_models(index, std::move(verdict.models));
}

}  // namespace coordinator
