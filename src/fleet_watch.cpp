#include "coordinator/fleet_watch.hpp"

#include <spdlog/spdlog.h>

#include "coordinator/utc_time.hpp"

namespace coordinator {

FleetWatch::FleetWatch(Executor executor, Registry& registry, ProfileFactsCache& profiles, AlertSender& sender)
    : executor_(std::move(executor)),
      registry_(registry),
      profiles_(profiles),
      sender_(sender),
      tracker_(profiles.expiry_warning()) {}

void FleetWatch::start() {
  if (timer_) return;
  timer_ = std::make_unique<SteadyTimer>(executor_);
  tick();
  net::co_spawn(executor_, keep(this, stopped_), LogEscapedException{"fleet watch"});
}

void FleetWatch::stop() {
  *stopped_ = true;
  if (timer_) timer_->cancel();
}

awaitable<void> FleetWatch::keep(FleetWatch* watch, std::shared_ptr<bool> stopped) {
  while (!*stopped) {
    watch->timer_->expires_after(std::chrono::seconds(1));
    error_code ec;
    co_await watch->timer_->async_wait(use_awaitable_ec(ec));
    if (*stopped) break;
    watch->tick();
  }
}

void FleetWatch::tick() {
  profiles_.refresh(registry_);
  const auto now = Clock::now();
  const auto wall_now = std::chrono::system_clock::now();
  const AlertSnapshot snapshot = alert_snapshot(registry_, &profiles_, now, wall_now);
  for (const auto& [name, expires_at] : tracker_.expiry_warnings_due(snapshot, wall_now)) {
    const double days = std::chrono::duration<double>(expires_at - wall_now).count() / 86400.0;
    spdlog::warn(
        "profile {}: its first cookie expires at {} (in {:.1f} days, within --expiry-warning); log in again "
        "and replace the profile file before then",
        name, format_utc(expires_at), days);
  }
  for (const AlertEvent& event : tracker_.update(snapshot, wall_now)) {
    const std::string_view about = event.child.empty() ? std::string_view(event.model) : std::string_view(event.child);
    if (event.recovered) {
      spdlog::info("alert recovered ({} {}): {}", to_string(event.cause), about, event.message);
    } else {
      spdlog::warn("alert {} ({}): {}", to_string(event.cause), about, event.message);
    }
    sender_.send(event);
  }
}

}  // namespace coordinator
