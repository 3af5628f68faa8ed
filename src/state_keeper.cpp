#include "coordinator/state_keeper.hpp"

#include <spdlog/spdlog.h>

#include "coordinator/http_util.hpp"
#include "coordinator/utc_time.hpp"
#include "coordinator/working_profile.hpp"

namespace coordinator {

namespace {

using Wall = std::chrono::system_clock;

void add_cooldowns(ProfileState& profile, const ModelCooldowns& cooldowns, Clock::time_point now,
                   Wall::time_point wall_now) {
  for (const ModelCooldown& cooldown : cooldowns.entries()) {
    if (cooldown.until <= now) continue;
    profile.cooldowns.push_back({cooldown.model, wall_clock_of(cooldown.until, now, wall_now), cooldown.reason});
  }
}

std::optional<ProfileFileStamp> stamp_of(const std::filesystem::path& file) {
  const auto stamp = file_stamp(file);
  if (!stamp) return std::nullopt;
  return ProfileFileStamp{stamp->mtime_ns, static_cast<std::uint64_t>(stamp->size)};
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
      restored.push_back({saved.model, steady_clock_of(saved.until, now, wall_now), CoolingCause::quota, saved.reason});
    }
    cooldowns += restored.size();
    registry_.restore_cooldowns(name, std::move(restored), now);
  }
  if (!loaded.state.usage.is_null()) usage_ = UsageBook::from_state(loaded.state.usage);
  loaded_ = std::move(loaded.state.profiles);
  spdlog::info("state file {}: {} profile(s), {} model cooldown(s) restored{}", path_.string(),
               loaded.state.profiles.size(), cooldowns,
               loaded.skipped.empty() ? "" : fmt::format(" ({} malformed part(s) skipped)", loaded.skipped.size()));
  last_written_ = dump_json(snapshot());
}

std::optional<StateKeeper::HeldBack> StateKeeper::held_back(const Child& child) const {
  const auto found = loaded_.find(child.name);
  if (found == loaded_.end() || child.attached) return std::nullopt;
  const ProfileState& saved = found->second;
  if (saved.needs_relogin && saved.relogin_file_stamp && stamp_of(child.profile) == saved.relogin_file_stamp) {
    return HeldBack{true, "logged out before the restart: replace " + child.profile.filename().string() +
                              " with a fresh login, then reload (SIGHUP or POST /admin/reload)"};
  }
  if (saved.parked) {
    return HeldBack{false, "parked before the restart (too many failures): POST /admin/children/" + child.name +
                               "/restart starts it"};
  }
  return std::nullopt;
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

nlohmann::json StateKeeper::snapshot() {
  const auto now = Clock::now();
  const auto wall_now = Wall::now();
  FleetState state;
  for (const Child& child : registry_.children()) {
    if (child.attached) continue;  // an --upstream is no account of ours
    ProfileState& profile = state.profiles[child.name];
    add_cooldowns(profile, child.model_cooldowns, now, wall_now);
    if (child.state == ChildState::retired) {
      // Stopped for good (the shutdown, or its file removed): what it was before counts.
      if (const auto last = last_flags_.find(child.name); last != last_flags_.end()) {
        profile.parked = last->second.parked;
        profile.needs_relogin = last->second.needs_relogin;
        profile.relogin_file_stamp = last->second.relogin_file_stamp;
      }
      continue;
    }
    profile.parked = child.state == ChildState::failed;
    profile.needs_relogin = child.state == ChildState::needs_relogin;
    if (!profile.needs_relogin) {
      relogin_stamps_.erase(child.name);
      continue;
    }
    auto stamp = relogin_stamps_.find(child.name);
    if (stamp == relogin_stamps_.end()) {
      // First seen logged out (within a second of it, or held back at start with its file unchanged).
      if (const auto first = stamp_of(child.profile)) stamp = relogin_stamps_.emplace(child.name, *first).first;
    }
    if (stamp != relogin_stamps_.end()) profile.relogin_file_stamp = stamp->second;
  }
  for (const auto& [name, profile] : state.profiles) last_flags_[name] = profile;
  registry_.for_each_resting_cooldowns([&](const std::string& name, const ModelCooldowns& cooldowns) {
    add_cooldowns(state.profiles[name], cooldowns, now, wall_now);
  });
  state.usage = usage_.to_state();
  return to_json(state);
}

}  // namespace coordinator
