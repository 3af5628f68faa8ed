#include "coordinator/supervisor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

namespace coordinator {

namespace fs = std::filesystem;

namespace {

// A restart waits this long for the old tree to be gone and the slot's three
// ports to be free; then it counts as a failed start (backoff, and parking if
// it keeps happening): a browser started on a taken debug port would only fail
// tens of seconds later.
constexpr auto kPortWait = std::chrono::seconds(30);
// A child that said it is logged out but does not exit is stopped after this.
constexpr auto kLoggedOutGrace = std::chrono::seconds(10);
constexpr auto kTreeScanInterval = std::chrono::seconds(1);

std::string ports_text(const std::vector<int>& ports) {
  std::string text;
  for (int port : ports) text += (text.empty() ? "" : ", ") + std::to_string(port);
  return text;
}

}  // namespace

Supervisor::Supervisor(net::io_context& io, const Config& config, Registry& registry, OrphanGuard& guard,
                       std::deque<Profile> waiting_profiles, std::string fleet)
    : io_(io),
      config_(config),
      registry_(registry),
      guard_(guard),
      fleet_(std::move(fleet)),
      slots_(registry.size()),
      waiting_(std::move(waiting_profiles)) {}

Supervisor::~Supervisor() {
  // A bp::child destructor would terminate a running child; by now every one
  // has been stopped, so just let go of them.
  for (auto& slot : slots_) {
    if (slot.process) slot.process->detach();
  }
  std::error_code ec;
  if (!fleet_dir_.empty()) fs::remove(fleet_dir_, ec);  // only when empty (a start that failed early)
}

std::string Supervisor::prepare() {
  std::string error;
  python_ = resolve_interpreter(config_.python, error);
  if (!error.empty()) return error;
  const fs::path launcher = fs::absolute(config_.launcher).lexically_normal();
  std::error_code ec;
  if (!fs::is_regular_file(launcher, ec)) return "launcher " + launcher.string() + " is not a file";
  launcher_ = launcher.string();
  launcher_dir_ = launcher.parent_path().string();
  warn_if_children_check_keys(launcher.parent_path() / "auth_profiles" / "key.txt");
  std::error_code dir_ec;
  fs::create_directories(config_.log_dir, dir_ec);
  if (dir_ec) return "cannot create log folder " + config_.log_dir.string() + ": " + dir_ec.message();
  fleet_dir_ = working_copies_folder(config_, fleet_);
  if (std::string folder_error = prepare_working_copies_folder(config_, fleet_); !folder_error.empty()) {
    return folder_error;
  }
  warn_about_inherited_variables();
  return {};
}

bool Supervisor::manages(pid_t pid) const {
  for (const auto& slot : slots_) {
    if (slot.process && slot.process->running && slot.process->pgid == pid) return true;
  }
  return false;
}

void Supervisor::hold_back(std::size_t index, bool logged_out, std::string reason) {
  Slot& slot = slots_.at(index);
  slot.held_stamp = file_stamp(registry_.at(index).profile);
  if (!slot.held_stamp) slot.held_stamp = FileStamp{};
  const auto now = Clock::now();
  registry_.apply(index, ChildEvent::exited, {}, now);
  registry_.apply(index, logged_out ? ChildEvent::logged_out : ChildEvent::parked, reason, now);
  spdlog::warn("child {} is not started: {}", registry_.at(index).name, reason);
}

void Supervisor::start() {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].held_stamp) schedule_start(i, Clock::duration::zero());
  }
  net::co_spawn(io_, monitor(), LogEscapedException{"supervisor monitor"});
}

void Supervisor::schedule_start(std::size_t slot, Clock::duration delay) {
  const auto now = Clock::now();
  // Browsers are expensive to start: keep starts --start-stagger apart.
  const auto at = std::max(now + delay, next_start_at_);
  next_start_at_ = at + config_.start_stagger;
  const unsigned generation = ++slots_.at(slot).generation;
  net::co_spawn(io_, start_when_due(slot, generation, at), LogEscapedException{"child start"});
}

awaitable<void> Supervisor::start_when_due(std::size_t slot, unsigned generation, Clock::time_point at) {
  SteadyTimer timer(io_);
  timer.expires_at(at);
  error_code ec;
  co_await timer.async_wait(use_awaitable_ec(ec));
  // The previous child's tree must be gone (its last cookie save copied back)
  // and the slot's three ports free: a browser of the previous run, or one
  // that outlived its launcher, may still hold them.
  const auto deadline = Clock::now() + kPortWait;
  bool announced = false;
  while (!stopping_ && slots_.at(slot).generation == generation) {
    const auto& previous = slots_[slot].process;
    const bool previous_done = !previous || (!previous->running && previous->settled && previous->tree_gone);
    const ChildPorts ports = registry_.at(slot).ports;
    std::vector<int> busy;
    for (int port : {ports.api, ports.stream, ports.camoufox}) {
      if (!port_is_free(port)) busy.push_back(port);
    }
    if (previous_done && busy.empty()) break;
    if (Clock::now() >= deadline) {
      const std::string reason = previous_done ? "port(s) " + ports_text(busy) + " still in use after " +
                                                     std::to_string(kPortWait.count()) + " s"
                                               : "the previous process tree is still being stopped";
      spdlog::error("child {}: not started: {}", registry_.at(slot).name, reason);
      registry_.report_exit(slot, reason, Clock::now());
      registry_.note_error(slot, reason);
      after_exit(slot, /*failure=*/true, reason);
      co_return;
    }
    if (!announced && previous_done) {
      spdlog::info("child {}: waiting for port(s) {} to be free", registry_.at(slot).name, ports_text(busy));
      announced = true;
    }
    timer.expires_after(std::chrono::milliseconds(100));
    co_await timer.async_wait(use_awaitable_ec(ec));
  }
  if (stopping_ || slots_.at(slot).generation != generation) co_return;
  spawn(slot);
}

void Supervisor::start_failed(std::size_t index, const std::string& what, const std::string& detail) {
  registry_.report_exit(index, detail.empty() ? what : what + ": " + detail, Clock::now());
  after_exit(index, /*failure=*/true, what);
}

void Supervisor::spawn(std::size_t index) {
  Slot& slot = slots_.at(index);
  const Child& child = registry_.at(index);
  auto process = std::make_shared<Process>(io_, child.name,
                                           fs::absolute(config_.log_dir / (child.name + ".log")).lexically_normal());
  if (const std::string log_error = process->open_log(); !log_error.empty()) {
    spdlog::error("child {}: cannot open log {}: {}", child.name, process->log_path.string(), log_error);
    start_failed(index, "log file could not be opened", {});
    return;
  }
  ++slot.spawns;
  process->tree = tree_marker(fleet_, index, slot.spawns);
  process->on_quota = [this, index] {
    if (quota_listener_) quota_listener_(index);
  };
  // The child runs on its own copy of the profile (see WorkingProfile).
  const std::string copy_error =
      process->profile.create(child.profile, fleet_dir_ / (std::to_string(index) + "-" + std::to_string(slot.spawns)));
  if (!copy_error.empty()) {
    spdlog::error("child {}: cannot make its working copy of the profile: {}", child.name, copy_error);
    process->profile.remove();
    start_failed(index, "profile could not be copied", copy_error);
    return;
  }
  // The environment: inherited, plus the coordinator's switches, the
  // profile's own {name}.env, and the tree marker last. Values are never logged.
  const Variables overrides = launch_variables(::environ, read_profile_env(child), child.ports, process->tree);
  // Its own working folder: the child writes certs/, config/profile_usage.json and
  // logs/fc_debug/ relative to it, which N children in one folder would share.
  const fs::path work_dir = child_work_dir(config_, child.name);
  if (const std::string work_error = make_private_dir(work_dir); !work_error.empty()) {
    spdlog::error("child {}: cannot make its working folder {}: {}", child.name, work_dir.string(), work_error);
    process->profile.remove();
    start_failed(index, "working folder could not be made", work_error);
    return;
  }
  std::vector<std::string> argv = child_command(config_, python_, child, process->profile.path());
  argv[1] = launcher_;
  std::weak_ptr<Process> weak = process;
  auto exited = [this, index, weak] {
    if (auto owner = weak.lock()) on_exit(index, owner, owner->native_exit_code());
  };
  std::error_code spawn_error;
  if (!process->launch(argv, child_environment(::environ, overrides), work_dir, exited, spawn_error)) {
    process->profile.remove();
    start_failed(index, "could not be started", spawn_error.message());
    return;
  }
  guard_.watch_group(process->pgid);
  if (slot.started_once) registry_.count_restart(index);
  slot.started_once = true;
  slot.stop_requested = false;
  slot.stop_is_failure = false;
  spdlog::info("child {} started: pid {}, ports api {} stream {} camoufox {}, log {}", child.name, process->pgid,
               child.ports.api, child.ports.stream, child.ports.camoufox, process->log_path.string());
  registry_.report_spawned(index, process->pgid, Clock::now());
  ChildProcess::pump_output(process);
  slot.process = std::move(process);
}

void Supervisor::on_exit(std::size_t index, const std::shared_ptr<Process>& process, int native_status) {
  if (!process->running) return;
  process->running = false;
  Slot& slot = slots_.at(index);
  const std::string how = describe_exit(native_status);
  const Child& child = registry_.at(index);
  const bool expected = stopping_ || child.state == ChildState::draining || slot.stop_requested;
  process->log->info("[coordinator] pid {} {}", process->pgid, how);
  spdlog::log(expected ? spdlog::level::info : spdlog::level::err, "child {} (pid {}) {}; log: {}", child.name,
              process->pgid, how, process->log_path.string());
  registry_.report_exit(index, slot.stop_requested ? slot.stop_reason : how, Clock::now());
  // The launcher is gone (whatever the cause, SIGKILL and the OOM killer
  // included); whatever it started, in any session or group, goes too.
  net::co_spawn(io_, clean_up_tree(process), LogEscapedException{"child tree cleanup"});
  net::co_spawn(io_, settle_exit(index, process, how), LogEscapedException{"child exit"});
}

awaitable<void> Supervisor::settle_exit(std::size_t index, std::shared_ptr<Process> process, std::string how) {
  // Read what is still in the pipes first: the line saying the account is
  // logged out is often the last one, and it decides what comes next.
  co_await process->wait_for_output(kOutputDrain);
  // A clean stop saves the cookies once more: copy them back (if the
  // operator's file is still ours to write).
  sync_profile(*process, /*final=*/true);
  // Replaced while this child ran (or stopped): its logged-out verdict was about the old file.
  const bool replaced_meanwhile = process->profile.changed_by_operator();
  process->settled = true;
  discard_working_copy(*process);
  Slot& slot = slots_.at(index);
  if (stopping_ || slot.process != process || registry_.at(index).state == ChildState::retired) co_return;
  if (slot.retire_when_stopped) {
    registry_.set_retire_on_exit(index, true);
    registry_.apply(index, ChildEvent::drain, slot.stop_reason, Clock::now());
    co_return;
  }
  if (process->logged_out && replaced_meanwhile) {
    spdlog::info("child {} was logged out, but its profile file has been replaced since: starting it again",
                 registry_.at(index).name);
    after_exit(index, /*failure=*/false, "profile replaced after a log-out");
    co_return;
  }
  if (process->logged_out) {
    // Not a failure to retry: every restart would end the same way.
    const std::string what = "logged out: replace " + registry_.at(index).profile.filename().string() +
                             " with a fresh login, then reload (SIGHUP or POST /admin/reload)";
    registry_.apply(index, ChildEvent::logged_out, what, Clock::now());
    spdlog::error("child {} needs a new login; not restarted until its profile file {} changes and a reload runs",
                  registry_.at(index).name, registry_.at(index).profile.string());
    co_return;
  }
  const bool failure = !slot.stop_requested || slot.stop_is_failure;
  after_exit(index, failure, slot.stop_requested ? slot.stop_reason : how);
}

awaitable<void> Supervisor::clean_up_tree(std::shared_ptr<Process> process) {
  co_await end_tree(process, &markers_, guard_.pid());
  guard_.forget_group(process->pgid);
  for (const ProcId& id : process->members) guard_.forget_process(id);
  process->tree_gone = true;
  discard_working_copy(*process);
}

void Supervisor::discard_working_copy(Process& process) {
  // Only once nothing of the child can write it any more and it was copied back.
  if (process.settled && process.tree_gone) process.profile.remove();
}

void Supervisor::sync_profile(Process& process, bool final) {
  const CopyBack outcome = process.profile.sync(final);
  const std::string& name = process.name;
  switch (outcome) {
    case CopyBack::written:
      spdlog::info("child {}: its refreshed cookies are copied back to {}", name, process.profile.source().string());
      break;
    case CopyBack::operator_changed:
      if (!process.operator_change_reported) {
        process.operator_change_reported = true;
        spdlog::warn(
            "child {}: {} was changed by someone else; the child's refreshed cookies stay in its working "
            "copy (a reload restarts it with the new file)",
            name, process.profile.source().string());
      }
      break;
    case CopyBack::half_written:
      if (final) spdlog::warn("child {}: its last cookie save is not a whole JSON object; not copied back", name);
      break;
    case CopyBack::failed:
      if (final || !process.copy_failure_reported) {
        process.copy_failure_reported = true;  // once while it runs
        spdlog::error("child {}: its refreshed cookies could not be copied back to {}", name,
                      process.profile.source().string());
      }
      break;
    case CopyBack::unchanged:
      break;
  }
}

void Supervisor::after_exit(std::size_t index, bool failure, const std::string& reason) {
  if (stopping_) return;
  Slot& slot = slots_.at(index);
  const auto now = Clock::now();
  if (!failure) {
    registry_.apply(index, ChildEvent::restart_scheduled, {}, now);
    spdlog::info("restarting child {} (recycled: {})", registry_.at(index).name, reason);
    schedule_start(index, Clock::duration::zero());
    return;
  }
  const Child& child = registry_.at(index);
  ++slot.consecutive_failures;
  const std::size_t recent = history_[child.name].count_within(config_.restart_window, now) + 1;
  history_[child.name].record(now);
  const Profile current{child.name, child.profile};
  const bool park = recent > static_cast<std::size_t>(config_.max_restarts);
  if (park) {
    spdlog::error("child {} failed {} times within {:.0f} s: parked as failed ({})", child.name, recent,
                  to_seconds(config_.restart_window), reason);
    parked_.push_back(current);
  }
  if (!waiting_.empty()) {
    // Rotate: the slot's ports go to the next queued profile; a failing (not
    // parked) profile waits at the back for another turn.
    if (!park) waiting_.push_back(current);
    Profile next = std::move(waiting_.front());
    waiting_.pop_front();
    spdlog::warn("slot {} (ports {}): profile {} {}; profile {} takes its place", index, child.ports.api, current.name,
                 park ? "is parked" : "goes to the back of the queue", next.name);
    registry_.assign_profile(index, next.name, next.path);
  } else if (park) {
    registry_.apply(index, ChildEvent::parked,
                    fmt::format("parked: {} failure(s) within {:.0f} s, last: {}", recent,
                                to_seconds(config_.restart_window), reason),
                    now);
    return;
  }
  registry_.apply(index, ChildEvent::restart_scheduled, {}, now);
  const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
  const auto delay = restart_delay(slot.consecutive_failures, unit);
  spdlog::warn("restarting child {} in {:.2f} s (attempt {})", registry_.at(index).name,
               std::chrono::duration<double>(delay).count(), slot.consecutive_failures);
  schedule_start(index, delay);
}

void Supervisor::recycle(std::size_t index, const std::string& reason) {
  recycle_with(index, ChildEvent::recycled, reason);
}

void Supervisor::recycle_with(std::size_t index, ChildEvent event, const std::string& reason) {
  if (stopping_) return;
  registry_.apply(index, event, reason, Clock::now());
  stop_process(index, /*failure=*/true, reason);
}

void Supervisor::stop_process(std::size_t index, bool failure, const std::string& reason) {
  Slot& slot = slots_.at(index);
  if (!slot.process || !slot.process->running || slot.stop_requested) return;
  slot.stop_requested = true;
  slot.stop_is_failure = failure;
  slot.stop_reason = reason;
  spdlog::warn("stopping child {} (pid {}): {}", registry_.at(index).name, slot.process->pgid, reason);
  slot.process->stop(config_.child_stop_timeout);
}

awaitable<void> Supervisor::monitor() {
  SteadyTimer timer(io_);
  const auto tick =
      std::clamp<Clock::duration>(config_.health_interval / 4, std::chrono::milliseconds(50), std::chrono::seconds(1));
  while (!stopping_) {
    const auto now = Clock::now();
    if (now - last_tree_scan_ >= kTreeScanInterval) {
      last_tree_scan_ = now;
      refresh_trees();
    }
    for (std::size_t i = 0; i < slots_.size(); ++i) check_slot(i, now);
    if ((config_.max_child_rss > 0 || config_.max_child_age > Clock::duration::zero()) &&
        now - last_limit_check_ >= config_.health_interval) {
      last_limit_check_ = now;
      maybe_recycle_for_limits(now);
    }
    timer.expires_after(tick);
    error_code ec;
    co_await timer.async_wait(use_awaitable_ec(ec));
  }
}

void Supervisor::refresh_trees() {
  // One scan for every tree: members are remembered, so a process that leaves
  // the tree's groups and loses its parent (re-parented to this subreaper or
  // to init) is still known, and the guard learns the ones without a marker.
  bool any = false;
  for (const auto& slot : slots_) any = any || (slot.process && slot.process->running);
  if (!any) return;
  const std::vector<ProcInfo> snapshot = scan_processes(&markers_);
  for (auto& slot : slots_) {
    if (slot.process && slot.process->running) slot.process->update_tree(snapshot, guard_);
  }
}

void Supervisor::check_slot(std::size_t index, Clock::time_point now) {
  Slot& slot = slots_.at(index);
  const Child& child = registry_.at(index);
  const bool running = slot.process && slot.process->running;
  if (is_serving(child.state) && now - child.serving_since >= config_.backoff_reset_after) {
    slot.consecutive_failures = 0;
  }
  if (!running) return;
  sync_profile(*slot.process, /*final=*/false);
  if (slot.stop_requested) return;
  if (slot.process->logged_out && now - slot.process->logged_out_at >= kLoggedOutGrace) {
    stop_process(index, /*failure=*/false, "logged out, and still running");
    return;
  }
  if (child.state == ChildState::starting && now - child.started_at >= config_.ready_timeout) {
    spdlog::error("child {} not ready after {:.1f} s ({})", child.name, to_seconds(config_.ready_timeout),
                  child.last_error.empty() ? "no answer" : child.last_error);
    recycle_with(index, ChildEvent::ready_timeout, "not ready within --ready-timeout");
    return;
  }
  if (child.state == ChildState::unhealthy && now - child.state_since >= config_.unhealthy_restart_after) {
    recycle(index, fmt::format("unhealthy for {:.1f} s", to_seconds(config_.unhealthy_restart_after)));
    return;
  }
  if (child.state == ChildState::draining && child.in_flight == 0) {
    stop_process(index, /*failure=*/false, child.last_error.empty() ? "drained" : child.last_error);
  }
}

void Supervisor::maybe_recycle_for_limits(Clock::time_point now) {
  // One child at a time, and never the last one serving.
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (registry_.at(i).state == ChildState::draining) return;
  }
  if (registry_.serving_count() <= 1) return;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Child& child = registry_.at(i);
    const Slot& slot = slots_[i];
    if (!is_serving(child.state) || !slot.process || !slot.process->running) continue;
    std::string reason;
    if (slot.retire_when_stopped) continue;
    if (config_.max_child_age > Clock::duration::zero() && now - child.started_at >= config_.max_child_age) {
      reason = "older than --max-child-age";
    } else if (config_.max_child_rss > 0) {
      // The whole tree (at the last scan): the browser and Firefox hold most of it, outside the launcher's group.
      const auto rss = slot.process->tree_rss;
      if (rss > config_.max_child_rss) {
        reason = "its process tree uses " + std::to_string(rss >> 20) + " MiB, over --max-child-rss";
      }
    }
    if (reason.empty()) continue;
    spdlog::warn("draining child {}: {}", child.name, reason);
    registry_.apply(i, ChildEvent::drain, reason, now);
    return;
  }
}

}  // namespace coordinator
