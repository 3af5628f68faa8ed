// The Supervisor's side that answers requests from outside: the operator's
// actions (restart, drain, undrain), the live reload, /ready's fleet fields,
// and the shutdown. What it runs on its own (starts, exits, restarts,
// limits) is in supervisor.cpp.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "coordinator/http_util.hpp"
#include "coordinator/supervisor.hpp"

namespace coordinator {

namespace fs = std::filesystem;

namespace {

awaitable<void> pause(SteadyTimer& timer, Clock::duration length) {
  timer.expires_after(length);
  error_code ec;
  co_await timer.async_wait(use_awaitable_ec(ec));
}

}  // namespace

std::string Supervisor::fleet_json() const {
  nlohmann::json queued = nlohmann::json::array();
  for (const auto& profile : waiting_) queued.push_back(profile.name);
  nlohmann::json parked = nlohmann::json::array();
  for (const auto& profile : parked_) parked.push_back(profile.name);
  nlohmann::json relogin = nlohmann::json::array();
  for (const Child& child : registry_.children()) {
    if (child.state == ChildState::needs_relogin) relogin.push_back(child.name);
  }
  return dump_json(
      nlohmann::json{{"queued_profiles", queued}, {"parked_profiles", parked}, {"needs_relogin_profiles", relogin}});
}

std::string Supervisor::restart(std::size_t index) {
  Slot& slot = slots_.at(index);
  if (stopping_) return "shutting down";
  if (slot.process && slot.process->running) {
    slot.retire_when_stopped = false;
    stop_process(index, /*failure=*/false, "restart requested by an operator");
    return {};
  }
  const ChildState state = registry_.at(index).state;
  if (state == ChildState::backoff) {
    schedule_start(index, Clock::duration::zero());
    return {};
  }
  if (state == ChildState::retired || state == ChildState::exited || state == ChildState::failed ||
      state == ChildState::needs_relogin) {
    slot.consecutive_failures = 0;
    slot.retire_when_stopped = false;
    history_.erase(registry_.at(index).name);
    std::erase_if(parked_, [&](const Profile& p) { return p.name == registry_.at(index).name; });
    registry_.set_retire_on_exit(index, false);
    slot.held_stamp.reset();
    registry_.apply(index, ChildEvent::restart_scheduled, "restart requested by an operator", Clock::now());
    schedule_start(index, Clock::duration::zero());
    return {};
  }
  return "child is " + std::string(to_string(state)) + " and has no process to restart";
}

std::string Supervisor::drain(std::size_t index) {
  Slot& slot = slots_.at(index);
  const ChildState state = registry_.at(index).state;
  if (state == ChildState::draining || state == ChildState::retired) return "already " + std::string(to_string(state));
  registry_.set_retire_on_exit(index, true);
  if (!registry_.apply(index, ChildEvent::drain, "drained by an operator", Clock::now())) {
    registry_.set_retire_on_exit(index, false);
    return "child is " + std::string(to_string(state)) + " and cannot be drained";
  }
  slot.retire_when_stopped = true;
  ++slot.generation;  // no scheduled start
  return {};
}

std::string Supervisor::undrain(std::size_t index) {
  Slot& slot = slots_.at(index);
  const ChildState state = registry_.at(index).state;
  if (state != ChildState::draining && state != ChildState::retired) return "child is not drained";
  slot.retire_when_stopped = false;
  registry_.set_retire_on_exit(index, false);
  registry_.apply(index, ChildEvent::undrain, {}, Clock::now());
  if (state == ChildState::retired) schedule_start(index, Clock::duration::zero());
  return {};
}

std::string Supervisor::reload(const std::vector<Profile>& profiles) {
  if (stopping_) return "shutting down";
  std::size_t added = 0, queued = 0, removed = 0, restarted = 0;
  auto listed = [&](const std::string& name) {
    return std::any_of(profiles.begin(), profiles.end(), [&](const Profile& p) { return p.name == name; });
  };
  auto known = [&](const std::string& name) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (registry_.at(i).name == name && registry_.at(i).state != ChildState::retired) return true;
    }
    const auto in = [&](const auto& list) {
      return std::any_of(list.begin(), list.end(), [&](const Profile& p) { return p.name == name; });
    };
    return in(waiting_) || in(parked_);
  };
  // Removed profiles: their slots drain and stop. Changed ones restart: a
  // change is one the coordinator did not make (a child's own cookie
  // refresh, copied back, is not one); a logged-out child starts again.
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Child& child = registry_.at(i);
    if (child.state == ChildState::retired || child.state == ChildState::draining) continue;
    const auto& process = slots_[i].process;
    if (!listed(child.name)) {
      spdlog::info("reload: profile {} was removed; draining its child", child.name);
      drain(i);
      ++removed;
      continue;
    }
    const bool ran_this_profile = process && process->profile.source() == child.profile;
    if (!process && child.state == ChildState::needs_relogin && slots_[i].held_stamp &&
        file_stamp(child.profile) != slots_[i].held_stamp) {
      // Held back at start (logged out before the restart): its file was replaced since.
      spdlog::info("reload: profile {} was replaced; starting its logged-out child", child.name);
      restart(i);
      ++restarted;
      continue;
    }
    if (!ran_this_profile) continue;
    if (process->running) sync_profile(*process, /*final=*/false);  // a pending refresh is not a change
    if (!process->profile.changed_by_operator()) continue;
    if (process->running) {
      spdlog::info("reload: profile {} was changed; restarting its child", child.name);
      restart(i);
      ++restarted;
    } else if (child.state == ChildState::needs_relogin) {
      spdlog::info("reload: profile {} was replaced; starting its logged-out child again", child.name);
      restart(i);
      ++restarted;
    }
  }
  std::erase_if(waiting_, [&](const Profile& p) { return !listed(p.name); });
  for (const Profile& profile : profiles) {
    if (known(profile.name)) continue;
    switch (add_profile(profile)) {
      case Added::slot:
        ++added;
        break;
      case Added::queued:
        ++queued;
        break;
      case Added::no_room:
        break;
    }
  }
  return std::to_string(added) + " added, " + std::to_string(queued) + " queued, " + std::to_string(removed) +
         " removed, " + std::to_string(restarted) + " restarted";
}

std::size_t Supervisor::active_slots() const {
  std::size_t active = 0;
  for (std::size_t i = 0; i < slots_.size(); ++i) active += registry_.at(i).state != ChildState::retired ? 1 : 0;
  return active;
}

std::optional<std::size_t> Supervisor::live_slot_of(const std::string& name) const {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (registry_.at(i).name == name && registry_.at(i).state != ChildState::retired) return i;
  }
  return std::nullopt;
}

Supervisor::Added Supervisor::add_profile(const Profile& profile) {
  if (config_.pool_size != 0 && active_slots() >= config_.pool_size) {
    waiting_.push_back(profile);
    spdlog::info("profile {} waits in the queue: the pool of {} children is full", profile.name, config_.pool_size);
    return Added::queued;
  }
  const std::size_t index = registry_.size();
  if (auto problem = validate_port_layout(config_, index + 1)) {
    spdlog::error("no room for profile {}: {}", profile.name, *problem);
    return Added::no_room;
  }
  Child child;
  child.name = profile.name;
  child.profile = profile.path;
  child.ports = assign_ports(config_, index);
  child.max_in_flight = config_.max_inflight_per_child;
  child.state_since = Clock::now();
  registry_.add(std::move(child));
  slots_.emplace_back();
  spdlog::info("new profile {} gets ports api {} stream {} camoufox {}", profile.name, registry_.at(index).ports.api,
               registry_.at(index).ports.stream, registry_.at(index).ports.camoufox);
  if (slot_added_) slot_added_(index);
  schedule_start(index, Clock::duration::zero());
  return Added::slot;
}

std::string Supervisor::cannot_take(const std::string& name) const {
  if (stopping_) return "shutting down";
  const auto in = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const Profile& p) { return p.name == name; });
  };
  if (live_slot_of(name) || in(waiting_)) return {};
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (registry_.at(i).name == name) return {};  // a retired slot of its own starts again
  }
  if (config_.pool_size != 0 && active_slots() >= config_.pool_size) return {};  // it queues
  if (auto problem = validate_port_layout(config_, registry_.size() + 1))
    return "no room for another child: " + *problem;
  return {};
}

ProfileUpdate Supervisor::apply_profile(const Profile& profile) {
  if (stopping_) return {std::nullopt, {}, "shutting down"};
  const auto now = Clock::now();
  if (const auto index = live_slot_of(profile.name)) {
    Slot& slot = slots_[*index];
    const ChildState state = registry_.at(*index).state;
    if (slot.process) slot.process->operator_change_reported = true;  // this change is known: no warning for it
    if (state == ChildState::draining) {
      // Drained by an operator, a reload or a limit: it restarts on the new file once idle.
      slot.retire_when_stopped = false;
      registry_.set_retire_on_exit(*index, false);
      return {index, "draining; restarts on the new file once its requests in flight are done", {}};
    }
    if (state == ChildState::ready || state == ChildState::busy || state == ChildState::unhealthy ||
        state == ChildState::cooling) {
      // Drain, then restart (check_slot stops it when idle; its exit restarts
      // it): the requests in flight finish on the old login.
      slot.retire_when_stopped = false;
      registry_.set_retire_on_exit(*index, false);
      registry_.apply(*index, ChildEvent::drain, "profile replaced through the admin API; restarting once idle", now);
      return {index, "drains, then restarts on the new file", {}};
    }
    if (state == ChildState::starting && !(slot.process && slot.process->running)) {
      // Its first start is still due (a new slot): it copies the new file then.
      return {index, "starts on the new file", {}};
    }
    // Starting (nothing in flight yet), stopped, backing off, parked or logged out: start it now.
    if (std::string error = restart(*index); !error.empty()) return {index, {}, std::move(error)};
    return {index, "restarts on the new file", {}};
  }
  const auto named = [&](const Profile& p) { return p.name == profile.name; };
  if (std::any_of(waiting_.begin(), waiting_.end(), named)) {
    return {std::nullopt, "waits in the queue for a slot; it starts on the new file", {}};
  }
  if (std::erase_if(parked_, named) > 0) history_.erase(profile.name);  // parked without a slot: a fresh start
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (registry_.at(i).name != profile.name) continue;
    // Its own retired slot (removed or drained for good): the same ports again.
    if (config_.pool_size != 0 && active_slots() >= config_.pool_size) break;
    if (std::string error = restart(i); !error.empty()) return {i, {}, std::move(error)};
    return {i, "starts again on its former ports", {}};
  }
  switch (add_profile(profile)) {
    case Added::slot:
      return {registry_.size() - 1, "starts on new ports", {}};
    case Added::queued:
      return {std::nullopt, "waits in the queue: --pool-size children run already", {}};
    case Added::no_room:
      break;
  }
  return {std::nullopt, {}, "no room on the port layout for another child"};
}

bool Supervisor::knows_profile(const std::string& name) const {
  const auto named = [&](const Profile& p) { return p.name == name; };
  return live_slot_of(name) || std::any_of(waiting_.begin(), waiting_.end(), named) ||
         std::any_of(parked_.begin(), parked_.end(), named);
}

ProfileRemoval Supervisor::remove_profile(const std::string& name) {
  ProfileRemoval removal;
  const auto named = [&](const Profile& p) { return p.name == name; };
  if (std::erase_if(waiting_, named) > 0) {
    removal.known = true;
    removal.what = "taken out of the queue";
  }
  if (std::erase_if(parked_, named) > 0) {
    removal.known = true;
    removal.what = "no longer parked";
    history_.erase(name);
  }
  const auto index = live_slot_of(name);
  if (!index) return removal;
  removal.known = true;
  removal.slot = index;
  Slot& slot = slots_[*index];
  if (slot.process) slot.process->operator_change_reported = true;  // its file moved away: known, no warning
  if (registry_.at(*index).state == ChildState::draining) {
    // Already draining (for a restart, perhaps): it now stops for good.
    slot.retire_when_stopped = true;
    registry_.set_retire_on_exit(*index, true);
    ++slot.generation;
    removal.what = "draining; stops for good once its requests in flight are done";
    return removal;
  }
  if (registry_.at(*index).state == ChildState::failed) {
    // Parked, no process: through backoff (no start is scheduled) to retired,
    // as a drain retires any other stopped slot.
    registry_.apply(*index, ChildEvent::restart_scheduled, "profile removed through the admin API", Clock::now());
  }
  if (std::string error = drain(*index); !error.empty()) {
    removal.what = error;
    return removal;
  }
  removal.what = registry_.at(*index).state == ChildState::retired
                     ? "stopped for good"
                     : "draining; stops for good once its requests in flight are done";
  return removal;
}

awaitable<void> Supervisor::stop_all(Clock::duration timeout) {
  stopping_ = true;
  terminate_all();
  SteadyTimer timer(io_);
  const auto deadline = Clock::now() + timeout;
  while (any_launcher_running() && Clock::now() < deadline) co_await pause(timer, std::chrono::milliseconds(50));
  kill_remaining_groups(timeout);
  // Each exit cleans up its own tree and copies its last cookies back (bounded).
  const auto settle_deadline = Clock::now() + kOutputDrain + kTreeEndTime + std::chrono::seconds(2);
  while (!all_settled() && Clock::now() < settle_deadline) co_await pause(timer, std::chrono::milliseconds(50));
  // Last sweep: anything still marked with this fleet, and any orphan
  // re-parented to this subreaper, whoever started it.
  std::vector<ProcId> known;
  for (const auto& slot : slots_) {
    if (slot.process) known.insert(known.end(), slot.process->members.begin(), slot.process->members.end());
  }
  co_await sweep_fleet(fleet_, std::move(known), guard_.pid(), &markers_, [this](pid_t pid) { return manages(pid); });
  for (auto& slot : slots_) {
    if (!slot.process) continue;
    guard_.forget_group(slot.process->pgid);
    slot.process->profile.remove();
  }
  std::error_code ec;
  if (!fleet_dir_.empty()) fs::remove_all(fleet_dir_, ec);
}

void Supervisor::terminate_all() {
  std::size_t groups = 0;
  const auto now = Clock::now();
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    ++slots_[i].generation;  // cancels scheduled starts
    registry_.set_retire_on_exit(i, true);
    registry_.apply(i, ChildEvent::drain, {}, now);
    const auto& process = slots_[i].process;
    if (process && process->running) {
      process->terminate_group();
      ++groups;
    }
  }
  if (groups > 0) spdlog::info("stopping {} child process group(s)", groups);
}

void Supervisor::kill_remaining_groups(Clock::duration waited) {
  bool killed = false;
  for (const auto& slot : slots_) {
    if (slot.process && slot.process->running && slot.process->group_alive()) {
      slot.process->kill_group();
      killed = true;
    }
  }
  if (killed) {
    spdlog::warn("child process groups still alive after {:.0f} s: sent SIGKILL",
                 std::chrono::duration<double>(waited).count());
  }
}

bool Supervisor::any_launcher_running() const {
  return std::any_of(slots_.begin(), slots_.end(),
                     [](const Slot& slot) { return slot.process && slot.process->running; });
}

bool Supervisor::all_settled() const {
  return std::none_of(slots_.begin(), slots_.end(), [](const Slot& slot) {
    return slot.process && (slot.process->running || !slot.process->settled || !slot.process->tree_gone);
  });
}

}  // namespace coordinator
