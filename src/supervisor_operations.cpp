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
  // New profiles: a new slot (ports continue the sequence) unless the pool is full.
  for (const Profile& profile : profiles) {
    if (known(profile.name)) continue;
    std::size_t active = 0;
    for (std::size_t i = 0; i < slots_.size(); ++i) active += registry_.at(i).state != ChildState::retired ? 1 : 0;
    if (config_.pool_size != 0 && active >= config_.pool_size) {
      waiting_.push_back(profile);
      ++queued;
      continue;
    }
    const std::size_t index = registry_.size();
    if (auto problem = validate_port_layout(config_, index + 1)) {
      spdlog::error("reload: no room for profile {}: {}", profile.name, *problem);
      continue;
    }
    Child child;
    child.name = profile.name;
    child.profile = profile.path;
    child.ports = assign_ports(config_, index);
    child.max_in_flight = config_.max_inflight_per_child;
    child.state_since = Clock::now();
    registry_.add(std::move(child));
    slots_.emplace_back();
    spdlog::info("reload: new profile {} gets ports api {} stream {} camoufox {}", profile.name,
                 registry_.at(index).ports.api, registry_.at(index).ports.stream, registry_.at(index).ports.camoufox);
    if (slot_added_) slot_added_(index);
    schedule_start(index, Clock::duration::zero());
    ++added;
  }
  return std::to_string(added) + " added, " + std::to_string(queued) + " queued, " + std::to_string(removed) +
         " removed, " + std::to_string(restarted) + " restarted";
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
