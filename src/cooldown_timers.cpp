#include "coordinator/cooldown_timers.hpp"

namespace coordinator {

CooldownTimers::CooldownTimers(Executor executor, Registry& registry)
    : executor_(std::move(executor)), registry_(registry) {
  registry_.set_cooling_listener([this](std::size_t index, Clock::time_point until) { schedule(index, until); });
}

CooldownTimers::~CooldownTimers() {
  registry_.set_cooling_listener({});
  for (const auto& timer : timers_) {
    if (timer) timer->cancel();
  }
}

void CooldownTimers::schedule(std::size_t index, Clock::time_point until) {
  if (index >= timers_.size()) timers_.resize(index + 1);
  auto& timer = timers_[index];
  if (!timer) timer = std::make_unique<SteadyTimer>(executor_);
  // Moving the expiry cancels the wait for the old deadline.
  timer->expires_at(until);
  timer->async_wait([this, index](error_code ec) {
    if (!ec) expired(index);  // an aborted wait may outlive this object: touch nothing then
  });
}

// The registry decides what has ended and tells this class the next deadline.
void CooldownTimers::expired(std::size_t index) {
  registry_.end_cooldowns(index, Clock::now());
}

}  // namespace coordinator
