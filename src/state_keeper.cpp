#include "coordinator/state_keeper.hpp"

#include <spdlog/spdlog.h>

#include "coordinator/http_util.hpp"

namespace coordinator {

namespace {

using Wall = std::chrono::system_clock;

// The state file holds wall-clock moments (a restart loses the steady clock):
// converted through the two clocks' present.
Wall::time_point to_wall(Clock::time_point at, Clock::time_point now, Wall::time_point wall_now) {
  return wall_now + std::chrono::duration_cast<Wall::duration>(at - now);
}

Clock::time_point to_steady(Wall::time_point at, Clock::time_point now, Wall::time_point wall_now) {
  return now + std::chrono::duration_cast<Clock::duration>(at - wall_now);
}

void add_cooldowns(ProfileState& profile, const ModelCooldowns& cooldowns, Clock::time_point now,
                   Wall::time_point wall_now) {
  for (const ModelCooldown& cooldown : cooldowns.entries()) {
    if (cooldown.until <= now) continue;
    profile.cooldowns.push_back({cooldown.model, to_wall(cooldown.until, now, wall_now), cooldown.reason});
  }
}

}  // namespace

StateKeeper::StateKeeper(Executor executor, std::filesystem::path path, Registry& registry, UsageBook& usage)
    : executor_(std::move(executor)), path_(std::move(path)), registry_(registry), usage_(usage) {}

StateKeeper::~StateKeeper() {
  stop();
}

void StateKeeper::load() {
  if (path_.empty()) return;
  const auto now = Clock::now();
  const auto wall_now = Wall::now();
  LoadResult loaded = load_state(path_, wall_now);
  switch (loaded.outcome) {
    case LoadResult::Outcome::missing:
      spdlog::info("state file {}: none yet; starting fresh", path_.string());
      return;
    case LoadResult::Outcome::set_aside:
      spdlog::warn("state file {} could not be used ({}); set aside as {}; starting fresh", path_.string(),
                   loaded.reason, loaded.set_aside_path.empty() ? "(not moved)" : loaded.set_aside_path.string());
      return;
    case LoadResult::Outcome::loaded:
      break;
  }
  std::size_t cooldowns = 0;
  for (auto& [name, profile] : loaded.state.profiles) {
    std::vector<ModelCooldown> restored;
    for (const ModelCooldownState& saved : profile.cooldowns) {
      restored.push_back({saved.model, to_steady(saved.until, now, wall_now), CoolingCause::quota, saved.reason});
    }
    cooldowns += restored.size();
    registry_.restore_cooldowns(name, std::move(restored), now);
  }
  if (!loaded.state.usage.is_null()) usage_ = UsageBook::from_state(loaded.state.usage);
  spdlog::info("state file {}: {} profile(s), {} model cooldown(s) restored{}", path_.string(),
               loaded.state.profiles.size(), cooldowns,
               loaded.skipped.empty() ? "" : fmt::format(" ({} malformed part(s) skipped)", loaded.skipped.size()));
  last_written_ = dump_json(snapshot());
}

void StateKeeper::start() {
  if (path_.empty()) return;
  writer_ = std::make_unique<StateWriter>(path_);
  timer_ = std::make_unique<SteadyTimer>(executor_);
  net::co_spawn(executor_, keep(), LogEscapedException{"state keeper"});
}

void StateKeeper::stop() {
  if (stopping_ || !writer_) return;
  stopping_ = true;
  if (timer_) timer_->cancel();
  submit_if_changed();
  writer_->flush_and_stop();
}

awaitable<void> StateKeeper::keep() {
  while (!stopping_) {
    timer_->expires_after(std::chrono::seconds(1));
    error_code ec;
    co_await timer_->async_wait(use_awaitable_ec(ec));
    if (stopping_) break;
    submit_if_changed();
  }
}

void StateKeeper::submit_if_changed() {
  nlohmann::json document = snapshot();
  std::string dumped = dump_json(document);
  if (dumped == last_written_) return;
  last_written_ = std::move(dumped);
  writer_->submit(std::move(document));
}

nlohmann::json StateKeeper::snapshot() const {
  const auto now = Clock::now();
  const auto wall_now = Wall::now();
  FleetState state;
  for (const Child& child : registry_.children()) {
    if (child.attached) continue;  // an --upstream is no account of ours
    add_cooldowns(state.profiles[child.name], child.model_cooldowns, now, wall_now);
  }
  registry_.for_each_resting_cooldowns([&](const std::string& name, const ModelCooldowns& cooldowns) {
    add_cooldowns(state.profiles[name], cooldowns, now, wall_now);
  });
  state.usage = usage_.to_state();
  return to_json(state);
}

}  // namespace coordinator
