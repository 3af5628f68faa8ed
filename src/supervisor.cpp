#include "coordinator/supervisor.hpp"

#include <signal.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

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
  template <class Executor>
  void on_exec_setup(Executor&) const {
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
  Process(net::io_context& io) : out(io), err(io) {}
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

Supervisor::Supervisor(net::io_context& io, const Config& config, Registry& registry, OrphanGuard& guard)
    : io_(io), config_(config), registry_(registry), guard_(guard), processes_(registry.size()) {}

Supervisor::~Supervisor() {
  // A bp::child destructor would terminate a running child; by now every one
  // has been stopped, so just let go of them.
  for (auto& process : processes_) {
    if (process && process->child) process->child->detach();
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

bool Supervisor::running(std::size_t index) const {
  const auto& process = processes_.at(index);
  return process && process->running;
}

bool Supervisor::manages(pid_t pid) const {
  for (const auto& process : processes_) {
    if (process && process->running && process->pgid == pid) return true;
  }
  return false;
}

void Supervisor::spawn(std::size_t index) {
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
    return;
  }

  std::vector<std::string> argv = child_command(config_, python_, child);
  argv[1] = launcher_;
  const std::vector<std::string> args(argv.begin() + 1, argv.end());
  std::error_code spawn_error;
  try {
    ChildProcessSetup setup;
    setup.parent = ::getpid();
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
    return;
  }
  process->pgid = process->child->id();
  process->running = true;
  guard_.watch_group(process->pgid);
  process->log->info("[coordinator] started pid {}: {}", process->pgid, join_command(argv));
  spdlog::info("child {} started: pid {}, ports api {} stream {} camoufox {}, log {}", child.name, process->pgid,
               child.ports.api, child.ports.stream, child.ports.camoufox, process->log_path.string());
  registry_.report_spawned(index, process->pgid, Clock::now());
  net::co_spawn(io_, pump_output(process->log, process->out, "stdout", process), LogEscapedException{"child log"});
  net::co_spawn(io_, pump_output(process->log, process->err, "stderr", process), LogEscapedException{"child log"});
  processes_.at(index) = std::move(process);
}

void Supervisor::on_exit(std::size_t index, const std::shared_ptr<Process>& process, int native_status) {
  if (!process->running) return;
  process->running = false;
  const std::string how = describe_status(native_status);
  const Child& child = registry_.at(index);
  process->log->info("[coordinator] pid {} {}", process->pgid, how);
  spdlog::log(child.state == ChildState::stopping ? spdlog::level::info : spdlog::level::err,
              "child {} (pid {}) {}; log: {}", child.name, process->pgid, how, process->log_path.string());
  registry_.report_exit(index, how, Clock::now());
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
}

awaitable<void> Supervisor::stop_all(Clock::duration timeout) {
  std::vector<pid_t> groups;
  for (std::size_t i = 0; i < processes_.size(); ++i) {
    const auto& process = processes_[i];
    if (!process) continue;
    if (process->running) registry_.report_stopping(i, Clock::now());
    if (process->running || group_alive(process->pgid)) {
      ::kill(-process->pgid, SIGTERM);
      groups.push_back(process->pgid);
    }
  }
  if (!groups.empty()) spdlog::info("stopping {} child process group(s)", groups.size());
  net::steady_timer timer(io_);
  const auto deadline = Clock::now() + timeout;
  auto anything_left = [&] {
    for (const auto& process : processes_) {
      if (process && process->running) return true;
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
  if (killed)
    spdlog::warn("child process groups still alive after {:.0f} s: sent SIGKILL",
                 std::chrono::duration<double>(timeout).count());
  // Let the exit notifications of SIGKILLed children arrive (bounded).
  for (int i = 0; i < 40 && anything_left(); ++i) {
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(net::use_awaitable);
  }
  for (pid_t pgid : groups) guard_.forget_group(pgid);
}

}  // namespace coordinator
