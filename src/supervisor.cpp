#include "coordinator/supervisor.hpp"

#include "coordinator/http_util.hpp"

#include <signal.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <boost/process/args.hpp>
#include <boost/process/async.hpp>
#include <boost/process/async_pipe.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/io.hpp>
#include <boost/process/search_path.hpp>
#include <boost/process/start_dir.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace coordinator {

namespace bp = boost::process;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kLogFileBytes = 5 * 1024 * 1024;
constexpr std::size_t kLogFiles = 5;
constexpr std::size_t kMaxLogLine = 16 * 1024;

// Runs in the child between fork and exec: its own process group (so the
// whole browser tree can be signalled at once), and death with the coordinator.
struct ChildProcessSetup : bp::extend::handler {
  pid_t parent = 0;
  char** environment = nullptr;  // prepared in the parent: nothing is allocated after fork
  template <class Executor>
  void on_exec_setup(Executor& executor) const {
    if (environment != nullptr) executor.env = environment;
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    // The coordinator may have died between fork and prctl.
    if (::getppid() != parent) ::_exit(127);
    ::signal(SIGPIPE, SIG_DFL);
  }
};

bool group_alive(pid_t pgid) {
  return pgid > 1 && (::kill(-pgid, 0) == 0 || errno == EPERM);
}

std::string describe_status(int native_status) {
  if (WIFSIGNALED(native_status)) return "was killed by signal " + std::to_string(WTERMSIG(native_status));
  if (WIFEXITED(native_status)) return "exited with code " + std::to_string(WEXITSTATUS(native_status));
  return "ended (status " + std::to_string(native_status) + ")";
}

std::string join_command(const std::vector<std::string>& argv) {
  std::string joined;
  for (const auto& arg : argv) {
    if (!joined.empty()) joined += ' ';
    joined += arg;
  }
  return joined;
}

}  // namespace

struct Supervisor::Process {
  explicit Process(net::io_context& io) : out(io), err(io) {}
  bp::async_pipe out;
  bp::async_pipe err;
  std::unique_ptr<bp::child> child;
  std::shared_ptr<spdlog::logger> log;
  fs::path log_path;
  pid_t pgid = 0;
  bool running = false;
};

namespace {

// Copies one output stream of a child into its log, a line at a time.
awaitable<void> pump_output(std::shared_ptr<spdlog::logger> log, bp::async_pipe& pipe, std::string stream_name,
                            [[maybe_unused]] std::shared_ptr<void> keep_alive) {
  // `keep_alive` owns the pipe while this coroutine reads it.
  std::array<char, 4096> buffer{};
  std::string line;
  while (true) {
    error_code ec;
    const std::size_t n = co_await pipe.async_read_some(net::buffer(buffer), use_awaitable_ec(ec));
    for (std::size_t i = 0; i < n; ++i) {
      if (buffer[i] == '\n' || line.size() >= kMaxLogLine) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        log->info("[{}] {}", stream_name, line);
        line.clear();
        if (buffer[i] == '\n') continue;
      }
      line.push_back(buffer[i]);
    }
    if (ec) break;
  }
  if (!line.empty()) log->info("[{}] {}", stream_name, line);
  log->flush();
}

}  // namespace

std::vector<std::string> child_command(const Config& config, const std::string& python, const Child& child) {
  std::vector<std::string> argv{python,
                                fs::absolute(config.launcher).lexically_normal().string(),
                                "--server-port",
                                std::to_string(child.ports.api),
                                "--stream-port",
                                std::to_string(child.ports.stream),
                                "--camoufox-debug-port",
                                std::to_string(child.ports.camoufox),
                                "--active-auth-json",
                                child.profile.string()};
  if (config.headless) argv.emplace_back("--headless");
  return argv;
}

bool port_is_free(int port) {
  if (port <= 0) return true;
  net::io_context io;
  tcp::acceptor probe(io);
  error_code ec;
  probe.open(tcp::v4(), ec);
  if (!ec) probe.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(tcp::endpoint(net::ip::address_v4::any(), static_cast<unsigned short>(port)), ec);
  return !ec;
}

std::vector<std::string> child_environment(const char* const* inherited,
                                           const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::vector<std::string> result;
  for (const char* const* entry = inherited; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const std::string_view key = text.substr(0, text.find('='));
    const bool replaced =
        std::any_of(overrides.begin(), overrides.end(), [&](const auto& override) { return override.first == key; });
    if (!replaced) result.emplace_back(text);
  }
  for (const auto& variable : overrides) {
    // A later line of the same key wins, as in a shell.
    const std::string prefix = variable.first + "=";
    std::erase_if(result, [&](const std::string& entry) { return entry.compare(0, prefix.size(), prefix) == 0; });
    result.push_back(prefix + variable.second);
  }
  return result;
}

std::uint64_t process_group_rss(int pgid) {
  if (pgid <= 1) return 0;
  static const long page = ::sysconf(_SC_PAGESIZE);
  std::uint64_t total = 0;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return 0;
  while (const dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + entry->d_name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // Fields after the command name, which is in parentheses and may hold spaces.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(line.substr(close + 2));
    std::string state;
    long ppid = 0, pgrp = 0;
    fields >> state >> ppid >> pgrp;
    if (pgrp != pgid) continue;
    std::string skip;
    for (int i = 6; i <= 23; ++i) fields >> skip;  // fields 6..23; rss (pages) is field 24
    long rss_pages = 0;
    fields >> rss_pages;
    if (rss_pages > 0) total += static_cast<std::uint64_t>(rss_pages) * static_cast<std::uint64_t>(page);
  }
  ::closedir(proc);
  return total;
}

Supervisor::Supervisor(net::io_context& io, const Config& config, Registry& registry, OrphanGuard& guard,
                       std::deque<Profile> waiting_profiles)
    : io_(io),
      config_(config),
      registry_(registry),
      guard_(guard),
      slots_(registry.size()),
      waiting_(std::move(waiting_profiles)) {}

Supervisor::~Supervisor() {
  // A bp::child destructor would terminate a running child; by now every one
  // has been stopped, so just let go of them.
  for (auto& slot : slots_) {
    if (slot.process && slot.process->child) slot.process->child->detach();
  }
}

std::string Supervisor::prepare() {
  if (config_.python.find('/') == std::string::npos) {
    const auto found = bp::search_path(config_.python);
    if (found.empty()) return "python interpreter '" + config_.python + "' not found on PATH";
    python_ = found.string();
  } else {
    python_ = fs::absolute(config_.python).lexically_normal().string();
    if (::access(python_.c_str(), X_OK) != 0) return "python interpreter " + python_ + " is not executable";
  }
  const fs::path launcher = fs::absolute(config_.launcher).lexically_normal();
  std::error_code ec;
  if (!fs::is_regular_file(launcher, ec)) return "launcher " + launcher.string() + " is not a file";
  launcher_ = launcher.string();
  launcher_dir_ = launcher.parent_path().string();
  std::error_code dir_ec;
  fs::create_directories(config_.log_dir, dir_ec);
  if (dir_ec) return "cannot create log folder " + config_.log_dir.string() + ": " + dir_ec.message();
  return {};
}

bool Supervisor::manages(pid_t pid) const {
  for (const auto& slot : slots_) {
    if (slot.process && slot.process->running && slot.process->pgid == pid) return true;
  }
  return false;
}

std::string Supervisor::fleet_json() const {
  nlohmann::json queued = nlohmann::json::array();
  for (const auto& profile : waiting_) queued.push_back(profile.name);
  nlohmann::json parked = nlohmann::json::array();
  for (const auto& profile : parked_) parked.push_back(profile.name);
  return dump_json(nlohmann::json{{"queued_profiles", queued}, {"parked_profiles", parked}});
}

void Supervisor::start() {
  for (std::size_t i = 0; i < slots_.size(); ++i) schedule_start(i, Clock::duration::zero());
  net::co_spawn(io_, monitor(), LogEscapedException{"supervisor monitor"});
}

void Supervisor::schedule_start(std::size_t slot, Clock::duration delay) {
  const auto now = Clock::now();
  // Browsers are expensive to start: keep starts --start-stagger apart.
  const auto at = std::max(now + delay, next_start_at_);
  next_start_at_ = at + to_duration(config_.start_stagger);
  const unsigned generation = ++slots_.at(slot).generation;
  net::co_spawn(io_, start_when_due(slot, generation, at), LogEscapedException{"child start"});
}

namespace {

// What identifies a profile file's version: its size and modification time.
std::string profile_stamp(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  const auto time = fs::last_write_time(path, ec);
  if (ec) return {};
  return std::to_string(size) + ":" + std::to_string(time.time_since_epoch().count());
}

}  // namespace

awaitable<void> Supervisor::start_when_due(std::size_t slot, unsigned generation, Clock::time_point at) {
  net::steady_timer timer(io_);
  timer.expires_at(at);
  error_code ec;
  co_await timer.async_wait(use_awaitable_ec(ec));
  // A browser left by the previous run may still hold the ports: wait (bounded).
  const Child& child = registry_.at(slot);
  for (int tries = 0; tries < 40 && !stopping_; ++tries) {
    if (port_is_free(child.ports.api) && port_is_free(child.ports.stream)) break;
    if (tries == 0)
      spdlog::info("child {}: waiting for ports {} and {} to be free", child.name, child.ports.api, child.ports.stream);
    timer.expires_after(std::chrono::milliseconds(250));
    co_await timer.async_wait(use_awaitable_ec(ec));
  }
  if (stopping_ || slots_.at(slot).generation != generation) co_return;
  spawn(slot);
}

void Supervisor::spawn(std::size_t index) {
  Slot& slot = slots_.at(index);
  const Child& child = registry_.at(index);
  auto process = std::make_shared<Process>(io_);
  process->log_path = fs::absolute(config_.log_dir / (child.name + ".log")).lexically_normal();
  try {
    auto sink =
        std::make_shared<spdlog::sinks::rotating_file_sink_st>(process->log_path.string(), kLogFileBytes, kLogFiles);
    process->log = std::make_shared<spdlog::logger>(child.name, std::move(sink));
    process->log->set_pattern("%Y-%m-%d %H:%M:%S.%e %v");
    process->log->flush_on(spdlog::level::info);
  } catch (const spdlog::spdlog_ex& e) {
    spdlog::error("child {}: cannot open log {}: {}", child.name, process->log_path.string(), e.what());
    registry_.report_exit(index, "log file could not be opened", Clock::now());
    after_exit(index, true, "log file could not be opened");
    return;
  }

  // The environment: inherited, plus AUTO_ROTATE_AUTH_PROFILE=false (the
  // coordinator, not the child, decides which account runs where) and the
  // profile's own {name}.env. Values are never logged.
  std::vector<std::pair<std::string, std::string>> overrides;
  if (::getenv("AUTO_ROTATE_AUTH_PROFILE") == nullptr) overrides.emplace_back("AUTO_ROTATE_AUTH_PROFILE", "false");
  // The children check the same keys as the coordinator, as AIstudioProxyAPI's own launcher arranges.
  if (!config_.api_keys_file.empty()) {
    overrides.emplace_back("AUTH_KEY_FILE_PATH", fs::absolute(config_.api_keys_file).lexically_normal().string());
  }
  const fs::path env_path = env_file_for(child.profile);
  std::error_code exists_ec;
  if (fs::is_regular_file(env_path, exists_ec)) {
    std::ifstream in(env_path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const EnvFile env_file = parse_env_file(text);
    for (const auto& error : env_file.errors) spdlog::error("{}: {}", env_path.string(), error);
    overrides.insert(overrides.end(), env_file.variables.begin(), env_file.variables.end());
    spdlog::info("child {}: {} variable(s) from {}", child.name, env_file.variables.size(), env_path.string());
  }
  std::vector<std::string> environment = child_environment(::environ, overrides);
  std::vector<char*> environment_pointers;
  for (auto& entry : environment) environment_pointers.push_back(entry.data());
  environment_pointers.push_back(nullptr);

  std::vector<std::string> argv = child_command(config_, python_, child);
  argv[1] = launcher_;
  const std::vector<std::string> args(argv.begin() + 1, argv.end());
  std::error_code spawn_error;
  try {
    ChildProcessSetup setup;
    setup.parent = ::getpid();
    setup.environment = environment_pointers.data();
    std::weak_ptr<Process> weak = process;
    process->child =
        std::make_unique<bp::child>(bp::exe = python_, bp::args = args, bp::start_dir = launcher_dir_,
                                    bp::std_in<bp::null, bp::std_out> process->out, bp::std_err > process->err, io_,
                                    setup, bp::on_exit([this, index, weak](int, const std::error_code&) {
                                      if (auto owner = weak.lock())
                                        on_exit(index, owner, owner->child->native_exit_code());
                                    }),
                                    spawn_error);
  } catch (const std::exception& e) {
    spawn_error = std::make_error_code(std::errc::io_error);
    process->log->error("[coordinator] cannot start: {}", e.what());
  }
  if (spawn_error || !process->child || !process->child->valid()) {
    spdlog::error("child {}: cannot start {}: {}", child.name, join_command(argv), spawn_error.message());
    registry_.report_exit(index, "could not be started: " + spawn_error.message(), Clock::now());
    after_exit(index, true, "could not be started");
    return;
  }
  process->pgid = process->child->id();
  process->running = true;
  slot.profile_stamp = profile_stamp(child.profile);
  guard_.watch_group(process->pgid);
  process->log->info("[coordinator] started pid {}: {}", process->pgid, join_command(argv));
  if (slot.started_once) registry_.count_restart(index);
  slot.started_once = true;
  slot.stop_requested = false;
  slot.stop_is_failure = false;
  spdlog::info("child {} started: pid {}, ports api {} stream {} camoufox {}, log {}", child.name, process->pgid,
               child.ports.api, child.ports.stream, child.ports.camoufox, process->log_path.string());
  registry_.report_spawned(index, process->pgid, Clock::now());
  net::co_spawn(io_, pump_output(process->log, process->out, "stdout", process), LogEscapedException{"child log"});
  net::co_spawn(io_, pump_output(process->log, process->err, "stderr", process), LogEscapedException{"child log"});
  slot.process = std::move(process);
}

void Supervisor::on_exit(std::size_t index, const std::shared_ptr<Process>& process, int native_status) {
  if (!process->running) return;
  process->running = false;
  Slot& slot = slots_.at(index);
  const std::string how = describe_status(native_status);
  const Child& child = registry_.at(index);
  const bool expected = stopping_ || child.state == ChildState::draining || slot.stop_requested;
  process->log->info("[coordinator] pid {} {}", process->pgid, how);
  spdlog::log(expected ? spdlog::level::info : spdlog::level::err, "child {} (pid {}) {}; log: {}", child.name,
              process->pgid, how, process->log_path.string());
  registry_.report_exit(index, slot.stop_requested ? slot.stop_reason : how, Clock::now());
  // The launcher is gone; whatever it started (the browser) must not outlive it.
  const pid_t pgid = process->pgid;
  if (group_alive(pgid)) ::kill(-pgid, SIGTERM);
  auto reap = [](pid_t group, OrphanGuard* guard) -> awaitable<void> {
    net::steady_timer timer(co_await net::this_coro::executor);
    for (int waited_ms = 0; waited_ms < 3000 && group_alive(group); waited_ms += 50) {
      timer.expires_after(std::chrono::milliseconds(50));
      co_await timer.async_wait(net::use_awaitable);
    }
    if (group_alive(group)) ::kill(-group, SIGKILL);
    guard->forget_group(group);
  };
  net::co_spawn(io_, reap(pgid, &guard_), LogEscapedException{"reap child group"});
  if (stopping_ || registry_.at(index).state == ChildState::retired) return;
  if (slot.retire_when_stopped) {
    registry_.set_retire_on_exit(index, true);
    registry_.apply(index, ChildEvent::drain, slot.stop_reason, Clock::now());
    return;
  }
  const bool failure = !slot.stop_requested || slot.stop_is_failure;
  after_exit(index, failure, slot.stop_requested ? slot.stop_reason : how);
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
  const std::size_t recent = history_[child.name].count_within(to_duration(config_.restart_window), now) + 1;
  history_[child.name].record(now);
  const Profile current{child.name, child.profile};
  const bool park = recent > static_cast<std::size_t>(config_.max_restarts);
  if (park) {
    spdlog::error("child {} failed {} times within {:.0f} s: parked as failed ({})", child.name, recent,
                  config_.restart_window, reason);
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
    registry_.apply(
        index, ChildEvent::parked,
        fmt::format("parked: {} failure(s) within {:.0f} s, last: {}", recent, config_.restart_window, reason), now);
    return;
  }
  registry_.apply(index, ChildEvent::restart_scheduled, {}, now);
  const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
  const auto delay = restart_delay(slot.consecutive_failures, unit);
  spdlog::warn("restarting child {} in {:.2f} s (attempt {})", registry_.at(index).name,
               std::chrono::duration<double>(delay).count(), slot.consecutive_failures);
  schedule_start(index, delay);
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
  if (state == ChildState::retired || state == ChildState::exited || state == ChildState::failed) {
    slot.consecutive_failures = 0;
    slot.retire_when_stopped = false;
    history_.erase(registry_.at(index).name);
    std::erase_if(parked_, [&](const Profile& p) { return p.name == registry_.at(index).name; });
    registry_.set_retire_on_exit(index, false);
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
  // Removed profiles: their slots drain and stop; changed ones restart.
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Child& child = registry_.at(i);
    if (child.state == ChildState::retired || child.state == ChildState::draining) continue;
    if (!listed(child.name)) {
      spdlog::info("reload: profile {} was removed; draining its child", child.name);
      drain(i);
      ++removed;
    } else if (slots_[i].process && slots_[i].process->running &&
               profile_stamp(child.profile) != slots_[i].profile_stamp) {
      spdlog::info("reload: profile {} changed; restarting its child", child.name);
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

void Supervisor::recycle(std::size_t index, const std::string& reason) {
  if (stopping_) return;
  const Child& child = registry_.at(index);
  if (child.state == ChildState::starting) {
    registry_.apply(index, ChildEvent::ready_timeout, reason, Clock::now());
  } else {
    registry_.apply(index, ChildEvent::health_failed, reason, Clock::now());
  }
  stop_process(index, /*failure=*/true, reason);
}

void Supervisor::stop_process(std::size_t index, bool failure, const std::string& reason) {
  Slot& slot = slots_.at(index);
  if (!slot.process || !slot.process->running || slot.stop_requested) return;
  slot.stop_requested = true;
  slot.stop_is_failure = failure;
  slot.stop_reason = reason;
  const pid_t pgid = slot.process->pgid;
  spdlog::warn("stopping child {} (pid {}): {}", registry_.at(index).name, pgid, reason);
  ::kill(-pgid, SIGTERM);
  auto escalate = [](std::weak_ptr<Process> weak, pid_t group, Clock::duration grace) -> awaitable<void> {
    net::steady_timer timer(co_await net::this_coro::executor);
    timer.expires_after(grace);
    co_await timer.async_wait(net::use_awaitable);
    const auto process = weak.lock();
    if (process && process->running && group_alive(group)) {
      spdlog::warn("child process group {} ignored SIGTERM: SIGKILL", group);
      ::kill(-group, SIGKILL);
    }
  };
  net::co_spawn(io_, escalate(slot.process, pgid, to_duration(config_.child_stop_timeout)),
                LogEscapedException{"stop child"});
}

awaitable<void> Supervisor::monitor() {
  net::steady_timer timer(io_);
  const auto tick = to_duration(std::clamp(config_.health_interval / 4, 0.05, 1.0));
  while (!stopping_) {
    const auto now = Clock::now();
    for (std::size_t i = 0; i < slots_.size(); ++i) check_slot(i, now);
    if ((config_.max_child_rss > 0 || config_.max_child_age > 0) &&
        now - last_limit_check_ >= to_duration(config_.health_interval)) {
      last_limit_check_ = now;
      maybe_recycle_for_limits(now);
    }
    timer.expires_after(tick);
    error_code ec;
    co_await timer.async_wait(use_awaitable_ec(ec));
  }
}

void Supervisor::check_slot(std::size_t index, Clock::time_point now) {
  Slot& slot = slots_.at(index);
  const Child& child = registry_.at(index);
  const bool running = slot.process && slot.process->running;
  if (is_serving(child.state) && now - child.serving_since >= to_duration(config_.backoff_reset_after)) {
    slot.consecutive_failures = 0;
  }
  if (!running || slot.stop_requested) return;
  if (child.state == ChildState::starting && now - child.started_at >= to_duration(config_.ready_timeout)) {
    spdlog::error("child {} not ready after {:.1f} s ({})", child.name, config_.ready_timeout,
                  child.last_error.empty() ? "no answer" : child.last_error);
    recycle(index, "not ready within --ready-timeout");
    return;
  }
  if (child.state == ChildState::unhealthy && now - child.state_since >= to_duration(config_.unhealthy_restart_after)) {
    recycle(index, fmt::format("unhealthy for {:.1f} s", config_.unhealthy_restart_after));
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
    if (config_.max_child_age > 0 && now - child.started_at >= to_duration(config_.max_child_age)) {
      reason = "older than --max-child-age";
    } else if (config_.max_child_rss > 0) {
      const auto rss = process_group_rss(slot.process->pgid);
      if (rss > config_.max_child_rss) reason = "uses " + std::to_string(rss >> 20) + " MiB, over --max-child-rss";
    }
    if (reason.empty()) continue;
    spdlog::warn("draining child {}: {}", child.name, reason);
    registry_.apply(i, ChildEvent::drain, reason, now);
    return;
  }
}

awaitable<void> Supervisor::stop_all(Clock::duration timeout) {
  stopping_ = true;
  std::vector<pid_t> groups;
  const auto now = Clock::now();
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    ++slots_[i].generation;  // cancels scheduled starts
    registry_.set_retire_on_exit(i, true);
    registry_.apply(i, ChildEvent::drain, {}, now);
    const auto& process = slots_[i].process;
    if (!process) continue;
    if (process->running || group_alive(process->pgid)) {
      ::kill(-process->pgid, SIGTERM);
      groups.push_back(process->pgid);
    }
  }
  if (!groups.empty()) spdlog::info("stopping {} child process group(s)", groups.size());
  net::steady_timer timer(io_);
  const auto deadline = Clock::now() + timeout;
  auto anything_left = [&] {
    for (const auto& slot : slots_) {
      if (slot.process && slot.process->running) return true;
    }
    for (pid_t pgid : groups) {
      if (group_alive(pgid)) return true;
    }
    return false;
  };
  while (anything_left() && Clock::now() < deadline) {
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(net::use_awaitable);
  }
  bool killed = false;
  for (pid_t pgid : groups) {
    if (group_alive(pgid)) {
      ::kill(-pgid, SIGKILL);
      killed = true;
    }
  }
  if (killed) {
    spdlog::warn("child process groups still alive after {:.0f} s: sent SIGKILL",
                 std::chrono::duration<double>(timeout).count());
  }
  // Let the exit notifications of SIGKILLed children arrive (bounded).
  for (int i = 0; i < 40 && anything_left(); ++i) {
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(net::use_awaitable);
  }
  for (pid_t pgid : groups) guard_.forget_group(pgid);
}

}  // namespace coordinator
