#include "coordinator/supervisor.hpp"

#include "coordinator/http_util.hpp"

#include <signal.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/process/args.hpp>
#include <boost/process/async.hpp>
#include <boost/process/async_pipe.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/io.hpp>
#include <boost/process/search_path.hpp>
#include <boost/process/start_dir.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace coordinator {

namespace bp = boost::process;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kLogFileBytes = 5 * 1024 * 1024;
constexpr std::size_t kLogFiles = 5;
constexpr std::size_t kMaxLogLine = 16 * 1024;
// What is left of a tree once its launcher is gone gets this long after
// SIGTERM, then SIGKILL (repeated, for what it forks meanwhile).
constexpr auto kTreeTermGrace = std::chrono::seconds(3);
constexpr auto kTreeKillTime = std::chrono::seconds(2);
constexpr auto kTreePoll = std::chrono::milliseconds(100);
// A restart waits this long for the old tree to be gone and the slot's three
// ports to be free; then it counts as a failed start (backoff, and parking if
// it keeps happening): a browser started on a taken debug port would only fail
// tens of seconds later.
constexpr auto kPortWait = std::chrono::seconds(30);
// After an exit, the output still in the pipes is read (the logged-out line
// may be among it) for at most this long before the restart decision.
constexpr auto kOutputDrain = std::chrono::seconds(1);
// A child that said it is logged out but does not exit is stopped after this.
constexpr auto kLoggedOutGrace = std::chrono::seconds(10);
constexpr auto kTreeScanInterval = std::chrono::seconds(1);

// Runs in the child between fork and exec: its own process group (so the
// launcher can be signalled with what stays in its group), and death with the
// coordinator.
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

const char* inherited_value(const char* const* inherited, std::string_view name) {
  for (const char* const* entry = inherited; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (text.size() > name.size() && text.substr(0, name.size()) == name && text[name.size()] == '=') {
      return *entry + name.size() + 1;
    }
  }
  return nullptr;
}

// The variables of child_variables an operator may have set on purpose, and
// why a different value deserves a warning.
struct Switch {
  std::string_view name;
  std::string_view value;
  std::string_view why;
};
constexpr std::array<Switch, 3> kSwitches{{
    {"AUTO_ROTATE_AUTH_PROFILE", "false", "a child would swap accounts by itself"},
    {"QUOTA_SOFT_LIMIT", kOutOfReachTokens, "with rotation off, a child stops serving once it is reached"},
    {"QUOTA_HARD_LIMIT", kOutOfReachTokens, "a child answers quota errors once it is reached"},
}};

awaitable<void> pause(net::steady_timer& timer, Clock::duration length) {
  timer.expires_after(length);
  error_code ec;
  co_await timer.async_wait(use_awaitable_ec(ec));
}

std::string ports_text(const std::vector<int>& ports) {
  std::string text;
  for (int port : ports) text += (text.empty() ? "" : ", ") + std::to_string(port);
  return text;
}

}  // namespace

struct Supervisor::Process {
  explicit Process(net::io_context& io) : out(io), err(io) {}
  bp::async_pipe out;
  bp::async_pipe err;
  std::unique_ptr<bp::child> child;
  std::shared_ptr<spdlog::logger> log;
  fs::path log_path;
  std::string name;             // the profile it runs
  pid_t pgid = 0;               // the launcher's pid and process group
  std::string tree;             // its COORDINATOR_TREE
  std::vector<ProcId> members;  // every process of its tree seen so far (some may lack the marker)
  std::uint64_t tree_rss = 0;   // at the last scan
  WorkingProfile profile;
  bool running = false;    // the launcher has not exited
  bool tree_gone = false;  // nothing of its tree is left (after the launcher's exit)
  bool settled = false;    // its exit is handled: output read, cookies copied back
  int open_pipes = 2;      // output pumps still reading
  bool logged_out = false;
  Clock::time_point logged_out_at{};
  std::function<void()> on_quota;  // its log showed a quota hit
  bool operator_change_reported = false;
  bool copy_failure_reported = false;
};

std::vector<std::string> child_command(const Config& config, const std::string& python, const Child& child,
                                       const fs::path& profile) {
  std::vector<std::string> argv{python,
                                fs::absolute(config.launcher).lexically_normal().string(),
                                "--server-port",
                                std::to_string(child.ports.api),
                                "--stream-port",
                                std::to_string(child.ports.stream),
                                "--camoufox-debug-port",
                                std::to_string(child.ports.camoufox),
                                "--active-auth-json",
                                profile.string()};
  // The launcher's three modes (launcher/config.py); with none it asks on stdin.
  switch (config.browser_mode) {
    case BrowserMode::headless:
      argv.emplace_back("--headless");
      break;
    case BrowserMode::headful:
      argv.emplace_back("--debug");
      break;
    case BrowserMode::virtual_display:
      argv.emplace_back("--virtual-display");
      break;
  }
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

std::vector<std::pair<std::string, std::string>> child_variables(const char* const* inherited) {
  std::vector<std::pair<std::string, std::string>> variables;
  for (const Switch& entry : kSwitches) {
    if (inherited_value(inherited, entry.name) == nullptr) variables.emplace_back(entry.name, entry.value);
  }
  // In the modes with a window, the child waits (up to 3 minutes) for a login
  // in that window instead of reading Enter from stdin, which is /dev/null.
  if (inherited_value(inherited, "SUPPRESS_LOGIN_WAIT") == nullptr)
    variables.emplace_back("SUPPRESS_LOGIN_WAIT", "true");
  // No AUTH_KEY_FILE_PATH: the real child reads only {launcher}/auth_profiles/key.txt
  // (api_utils/auth_utils.py), once; the coordinator is the one key check (docs/real-child.md).
  return variables;
}

fs::path working_copies_folder(const Config& config, std::string_view fleet) {
  return fs::absolute(config.runtime_dir).lexically_normal() / std::string(fleet);
}

namespace {
// A folder only the coordinator's user can enter (created if missing).
std::string make_private_dir(const fs::path& folder) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return ec.message();
  if (::chmod(folder.c_str(), 0700) != 0) return std::strerror(errno);
  return {};
}
}  // namespace

namespace {
// The real child checks /v1/* against its own key.txt (api_utils/auth_utils.py)
// when that file has a key: a request the coordinator accepted could get a 401.
void warn_if_children_check_keys(const fs::path& key_file) {
  std::ifstream in(key_file);
  std::string line;
  std::size_t keys = 0;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) ++keys;
  }
  if (keys > 0) {
    spdlog::warn(
        "{} holds {} key(s): every child checks them itself, so a request the coordinator accepted "
        "can get a 401 from a child. Keep it empty and use --api-keys-file (docs/real-child.md).",
        key_file.string(), keys);
  }
}
}  // namespace

fs::path child_work_dir(const Config& config, std::string_view name) {
  return fs::absolute(config.runtime_dir).lexically_normal() / "children" / std::string(name);
}

bool child_reports_quota(std::string_view line) {
  // config/global_state.py set_quota_exceeded, logged at CRITICAL for every quota hit.
  return line.find("GLOBAL ALERT: Quota Exceeded!") != std::string_view::npos;
}

bool child_reports_logged_out(std::string_view line) {
  return line.find("Auth failed in headless mode, auth file update required.") != std::string_view::npos ||
         line.find("Failed to detect AI Studio URL after login prompt") != std::string_view::npos;
}

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
    if (slot.process && slot.process->child) slot.process->child->detach();
  }
  std::error_code ec;
  if (!fleet_dir_.empty()) fs::remove(fleet_dir_, ec);  // only when empty (a start that failed early)
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
  warn_if_children_check_keys(launcher.parent_path() / "auth_profiles" / "key.txt");
  std::error_code dir_ec;
  fs::create_directories(config_.log_dir, dir_ec);
  if (dir_ec) return "cannot create log folder " + config_.log_dir.string() + ": " + dir_ec.message();

  // The working copies hold logged-in sessions: a private folder per run.
  const fs::path runtime = fs::absolute(config_.runtime_dir).lexically_normal();
  const bool existed = fs::exists(runtime, dir_ec);
  fs::create_directories(runtime, dir_ec);
  if (dir_ec) return "cannot create runtime folder " + runtime.string() + ": " + dir_ec.message();
  if (!existed) ::chmod(runtime.c_str(), 0700);
  // Folders of earlier runs whose coordinator is gone (killed, and its guard
  // too): their copies were synced while they ran; what is left is stale. A
  // run with this very pid (PID 1 in a container) is gone too.
  for (fs::directory_iterator it(runtime, dir_ec), end; !dir_ec && it != end; it.increment(dir_ec)) {
    const std::string name = it->path().filename().string();
    const pid_t owner = fleet_owner(name);
    const bool gone = owner == ::getpid() || (::kill(owner, 0) != 0 && errno == ESRCH);
    if (owner > 0 && name != fleet_ && gone) {
      std::error_code remove_ec;
      fs::remove_all(it->path(), remove_ec);
      spdlog::info("removed the working copies of an earlier run ({})", it->path().string());
    }
  }
  fleet_dir_ = working_copies_folder(config_, fleet_);
  fs::create_directories(fleet_dir_, dir_ec);
  if (dir_ec || ::chmod(fleet_dir_.c_str(), 0700) != 0) {
    return "cannot create runtime folder " + fleet_dir_.string() + ": " + (dir_ec ? dir_ec.message() : "chmod failed");
  }
  for (const Switch& entry : kSwitches) {
    const char* value = ::getenv(std::string(entry.name).c_str());
    if (value != nullptr && entry.value != value) {
      spdlog::warn("{}={} is set in the coordinator's environment and goes to every child: {}", entry.name, value,
                   entry.why);
    }
  }
  for (char** entry = ::environ; *entry != nullptr; ++entry) {
    if (std::string_view(*entry).starts_with("QUOTA_LIMIT_")) {
      spdlog::warn(
          "{} is set in the coordinator's environment: every child answers quota errors for that model "
          "once it has used that many tokens",
          std::string_view(*entry).substr(0, std::string_view(*entry).find('=')));
    }
  }
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
  nlohmann::json relogin = nlohmann::json::array();
  for (const Child& child : registry_.children()) {
    if (child.state == ChildState::needs_relogin) relogin.push_back(child.name);
  }
  return dump_json(
      nlohmann::json{{"queued_profiles", queued}, {"parked_profiles", parked}, {"needs_relogin_profiles", relogin}});
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

awaitable<void> Supervisor::start_when_due(std::size_t slot, unsigned generation, Clock::time_point at) {
  net::steady_timer timer(io_);
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

void Supervisor::spawn(std::size_t index) {
  Slot& slot = slots_.at(index);
  const Child& child = registry_.at(index);
  auto process = std::make_shared<Process>(io_);
  process->name = child.name;
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
    registry_.report_exit(index, "profile could not be copied: " + copy_error, Clock::now());
    after_exit(index, true, "profile could not be copied");
    return;
  }

  // The environment: inherited, plus the coordinator's switches, the
  // profile's own {name}.env, and the tree marker last (it must be exact).
  // Values are never logged.
  std::vector<std::pair<std::string, std::string>> overrides = child_variables(::environ);
  const fs::path env_path = env_file_for(child.profile);
  std::error_code exists_ec;
  if (fs::is_regular_file(env_path, exists_ec)) {
    std::ifstream in(env_path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const EnvFile env_file = parse_env_file(text);
    for (const auto& error : env_file.errors) spdlog::error("{}: {}", env_path.string(), error);
    for (const auto& [key, value] : env_file.variables) {
      for (const Switch& entry : kSwitches) {
        if (key == entry.name && value != entry.value)
          spdlog::warn("{} sets {}: {}", env_path.string(), key, entry.why);
      }
    }
    overrides.insert(overrides.end(), env_file.variables.begin(), env_file.variables.end());
    spdlog::info("child {}: {} variable(s) from {}", child.name, env_file.variables.size(), env_path.string());
  }
  // What the child's unauthenticated /api/ports/kill takes for "its" ports
  // (default 2048: the coordinator's); the launcher's flags already set them.
  overrides.emplace_back("DEFAULT_FASTAPI_PORT", std::to_string(child.ports.api));
  overrides.emplace_back("DEFAULT_CAMOUFOX_PORT", std::to_string(child.ports.camoufox));
  overrides.emplace_back(kTreeVariable, process->tree);
  std::vector<std::string> environment = child_environment(::environ, overrides);
  std::vector<char*> environment_pointers;
  for (auto& entry : environment) environment_pointers.push_back(entry.data());
  environment_pointers.push_back(nullptr);

  // Its own working folder: the child writes certs/, config/profile_usage.json and
  // logs/fc_debug/ relative to it, which N children in one folder would share.
  const fs::path work_dir = child_work_dir(config_, child.name);
  if (const std::string work_error = make_private_dir(work_dir); !work_error.empty()) {
    spdlog::error("child {}: cannot make its working folder {}: {}", child.name, work_dir.string(), work_error);
    process->profile.remove();
    registry_.report_exit(index, "working folder could not be made: " + work_error, Clock::now());
    after_exit(index, true, "working folder could not be made");
    return;
  }
  std::vector<std::string> argv = child_command(config_, python_, child, process->profile.path());
  argv[1] = launcher_;
  const std::vector<std::string> args(argv.begin() + 1, argv.end());
  std::error_code spawn_error;
  try {
    ChildProcessSetup setup;
    setup.parent = ::getpid();
    setup.environment = environment_pointers.data();
    std::weak_ptr<Process> weak = process;
    // stdin is /dev/null: the launcher's prompts (mode, login) read EOF at once.
    process->child =
        std::make_unique<bp::child>(bp::exe = python_, bp::args = args, bp::start_dir = work_dir.string(),
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
    process->profile.remove();
    registry_.report_exit(index, "could not be started: " + spawn_error.message(), Clock::now());
    after_exit(index, true, "could not be started");
    return;
  }
  process->pgid = process->child->id();
  process->running = true;
  guard_.watch_group(process->pgid);
  process->log->info("[coordinator] started pid {} (tree {}): {}", process->pgid, process->tree, join_command(argv));
  if (slot.started_once) registry_.count_restart(index);
  slot.started_once = true;
  slot.stop_requested = false;
  slot.stop_is_failure = false;
  spdlog::info("child {} started: pid {}, ports api {} stream {} camoufox {}, log {}", child.name, process->pgid,
               child.ports.api, child.ports.stream, child.ports.camoufox, process->log_path.string());
  registry_.report_spawned(index, process->pgid, Clock::now());
  net::co_spawn(io_, pump_output(process, false), LogEscapedException{"child log"});
  net::co_spawn(io_, pump_output(process, true), LogEscapedException{"child log"});
  slot.process = std::move(process);
}

awaitable<void> Supervisor::pump_output(std::shared_ptr<Process> process, bool from_stderr) {
  bp::async_pipe& pipe = from_stderr ? process->err : process->out;
  const char* stream_name = from_stderr ? "stderr" : "stdout";
  std::array<char, 4096> buffer{};
  std::string line;
  auto emit = [&] {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    process->log->info("[{}] {}", stream_name, line);
    if (process->on_quota && child_reports_quota(line)) process->on_quota();
    if (!process->logged_out && child_reports_logged_out(line)) {
      process->logged_out = true;
      process->logged_out_at = Clock::now();
      spdlog::error("child {}: its account is logged out (\"{}\")", process->name, line.substr(0, 200));
    }
    line.clear();
  };
  while (true) {
    error_code ec;
    const std::size_t n = co_await pipe.async_read_some(net::buffer(buffer), use_awaitable_ec(ec));
    for (std::size_t i = 0; i < n; ++i) {
      if (buffer[i] == '\n' || line.size() >= kMaxLogLine) {
        emit();
        if (buffer[i] == '\n') continue;
      }
      line.push_back(buffer[i]);
    }
    if (ec) break;
  }
  if (!line.empty()) emit();
  process->log->flush();
  --process->open_pipes;
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
  // The launcher is gone (whatever the cause, SIGKILL and the OOM killer
  // included); whatever it started, in any session or group, goes too.
  net::co_spawn(io_, clean_up_tree(process), LogEscapedException{"child tree cleanup"});
  net::co_spawn(io_, settle_exit(index, process, how), LogEscapedException{"child exit"});
}

awaitable<void> Supervisor::settle_exit(std::size_t index, std::shared_ptr<Process> process, std::string how) {
  // Read what is still in the pipes first: the line saying the account is
  // logged out is often the last one, and it decides what comes next.
  net::steady_timer timer(io_);
  const auto until = Clock::now() + kOutputDrain;
  while (process->open_pipes > 0 && Clock::now() < until) {
    timer.expires_after(std::chrono::milliseconds(20));
    error_code ec;
    co_await timer.async_wait(use_awaitable_ec(ec));
  }
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

TreeQuery Supervisor::tree_query(const Process& process) const {
  TreeQuery query;
  query.marker = process.tree;
  if (process.pgid > 1) {
    // Once the launcher is reaped its pid may be reused: from then on the
    // marker, its group (whose members keep the id alive) and the members
    // seen so far (pid and start time) find what is left.
    if (process.running) query.roots.push_back(process.pgid);
    query.groups.push_back(process.pgid);
  }
  query.known = process.members;
  query.exclude = {::getpid()};
  if (guard_.pid() > 0) query.exclude.push_back(guard_.pid());
  return query;
}

awaitable<void> Supervisor::clean_up_tree(std::shared_ptr<Process> process) {
  net::steady_timer timer(io_);
  auto left = [&] {
    auto members = select_tree(scan_processes(&markers_), tree_query(*process));
    for (const ProcId& id : ids_of(members)) {
      if (std::find(process->members.begin(), process->members.end(), id) == process->members.end()) {
        process->members.push_back(id);
      }
    }
    return members;
  };
  auto members = left();
  if (!members.empty()) {
    spdlog::warn("child {}: {} process(es) of its tree outlived the launcher: SIGTERM to {}", process->name,
                 members.size(), describe(members));
    signal_each(members, SIGTERM);
    for (const auto until = Clock::now() + kTreeTermGrace; !members.empty() && Clock::now() < until;) {
      timer.expires_after(kTreePoll);
      error_code ec;
      co_await timer.async_wait(use_awaitable_ec(ec));
      members = left();
    }
    if (!members.empty()) {
      spdlog::warn("child {}: SIGKILL to what is left of its tree: {}", process->name, describe(members));
    }
    for (const auto until = Clock::now() + kTreeKillTime; !members.empty() && Clock::now() < until;) {
      signal_each(members, SIGKILL);
      timer.expires_after(std::chrono::milliseconds(50));
      error_code ec;
      co_await timer.async_wait(use_awaitable_ec(ec));
      members = left();
    }
    if (!members.empty()) spdlog::error("child {}: could not end {}", process->name, describe(members));
  }
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
  if (state == ChildState::retired || state == ChildState::exited || state == ChildState::failed ||
      state == ChildState::needs_relogin) {
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
  const pid_t pgid = slot.process->pgid;
  spdlog::warn("stopping child {} (pid {}): {}", registry_.at(index).name, pgid, reason);
  // The launcher's group first: the child's own clean stop saves its cookies
  // and closes its browser; what it leaves goes once it has exited.
  ::kill(-pgid, SIGTERM);
  auto escalate = [](std::weak_ptr<Process> weak, pid_t group, Clock::duration grace) -> awaitable<void> {
    net::steady_timer timer(co_await net::this_coro::executor);
    timer.expires_after(grace);
    co_await timer.async_wait(net::use_awaitable);
    const auto process = weak.lock();
    if (process && process->running && group_alive(group)) {
      spdlog::warn("child process group {} still running {:.0f} s after SIGTERM: SIGKILL", group,
                   std::chrono::duration<double>(grace).count());
      ::kill(-group, SIGKILL);  // the exit then takes the rest of the tree
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
    if (now - last_tree_scan_ >= kTreeScanInterval) {
      last_tree_scan_ = now;
      refresh_trees();
    }
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

void Supervisor::refresh_trees() {
  // One scan for every tree: members are remembered, so a process that leaves
  // the tree's groups and loses its parent (re-parented to this subreaper or
  // to init) is still known, and the guard learns the ones without a marker.
  bool any = false;
  for (const auto& slot : slots_) any = any || (slot.process && slot.process->running);
  if (!any) return;
  const std::vector<ProcInfo> snapshot = scan_processes(&markers_);
  for (auto& slot : slots_) {
    if (!slot.process || !slot.process->running) continue;
    Process& process = *slot.process;
    const auto members = select_tree(snapshot, tree_query(process));
    process.tree_rss = resident_bytes(members);
    std::vector<ProcId> current;
    for (const ProcInfo& member : members) {
      const ProcId id{member.stat.pid, member.stat.start_time};
      current.push_back(id);
      const bool seen = std::find(process.members.begin(), process.members.end(), id) != process.members.end();
      if (!seen && member.tree != process.tree) guard_.watch_process(id);
    }
    for (const ProcId& id : process.members) {
      if (std::find(current.begin(), current.end(), id) == current.end()) guard_.forget_process(id);
    }
    process.members = std::move(current);
  }
}

void Supervisor::check_slot(std::size_t index, Clock::time_point now) {
  Slot& slot = slots_.at(index);
  const Child& child = registry_.at(index);
  const bool running = slot.process && slot.process->running;
  if (is_serving(child.state) && now - child.serving_since >= to_duration(config_.backoff_reset_after)) {
    slot.consecutive_failures = 0;
  }
  if (!running) return;
  sync_profile(*slot.process, /*final=*/false);
  if (slot.stop_requested) return;
  if (slot.process->logged_out && now - slot.process->logged_out_at >= kLoggedOutGrace) {
    stop_process(index, /*failure=*/false, "logged out, and still running");
    return;
  }
  if (child.state == ChildState::starting && now - child.started_at >= to_duration(config_.ready_timeout)) {
    spdlog::error("child {} not ready after {:.1f} s ({})", child.name, config_.ready_timeout,
                  child.last_error.empty() ? "no answer" : child.last_error);
    recycle_with(index, ChildEvent::ready_timeout, "not ready within --ready-timeout");
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
    if (process->running) {
      ::kill(-process->pgid, SIGTERM);
      groups.push_back(process->pgid);
    }
  }
  if (!groups.empty()) spdlog::info("stopping {} child process group(s)", groups.size());
  net::steady_timer timer(io_);
  auto launcher_running = [&] {
    for (const auto& slot : slots_) {
      if (slot.process && slot.process->running) return true;
    }
    return false;
  };
  const auto deadline = Clock::now() + timeout;
  while (launcher_running() && Clock::now() < deadline) co_await pause(timer, std::chrono::milliseconds(50));
  bool killed = false;
  for (const auto& slot : slots_) {
    if (slot.process && slot.process->running && group_alive(slot.process->pgid)) {
      ::kill(-slot.process->pgid, SIGKILL);
      killed = true;
    }
  }
  if (killed) {
    spdlog::warn("child process groups still alive after {:.0f} s: sent SIGKILL",
                 std::chrono::duration<double>(timeout).count());
  }
  // Each exit cleans up its own tree and copies its last cookies back (bounded).
  auto all_settled = [&] {
    for (const auto& slot : slots_) {
      if (slot.process && (slot.process->running || !slot.process->settled || !slot.process->tree_gone)) return false;
    }
    return true;
  };
  const auto settle_deadline = Clock::now() + kOutputDrain + kTreeTermGrace + kTreeKillTime + std::chrono::seconds(2);
  while (!all_settled() && Clock::now() < settle_deadline) co_await pause(timer, std::chrono::milliseconds(50));
  // Last sweep: anything still marked with this fleet, and any orphan
  // re-parented to this subreaper, whoever started it.
  TreeQuery everything;
  everything.marker = fleet_;
  everything.exclude = {::getpid()};
  if (guard_.pid() > 0) everything.exclude.push_back(guard_.pid());
  for (const auto& slot : slots_) {
    if (slot.process)
      everything.known.insert(everything.known.end(), slot.process->members.begin(), slot.process->members.end());
  }
  for (int round = 0; round < 20; ++round) {
    const auto snapshot = scan_processes(&markers_);
    auto left = select_tree(snapshot, everything);
    for (const ProcInfo& info : snapshot) {
      if (info.stat.ppid == ::getpid() && info.stat.pid != guard_.pid() && !info.gone() && !manages(info.stat.pid)) {
        left.push_back(info);
      }
    }
    if (left.empty()) break;
    if (round == 0) spdlog::warn("SIGKILL to {} leftover process(es): {}", left.size(), describe(left));
    signal_each(left, SIGKILL);
    co_await pause(timer, std::chrono::milliseconds(50));
  }
  for (auto& slot : slots_) {
    if (!slot.process) continue;
    guard_.forget_group(slot.process->pgid);
    slot.process->profile.remove();
  }
  std::error_code ec;
  if (!fleet_dir_.empty()) fs::remove_all(fleet_dir_, ec);
}

}  // namespace coordinator
