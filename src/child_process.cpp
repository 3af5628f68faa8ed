#include "coordinator/child_process.hpp"

#include <fcntl.h>
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
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "coordinator/orphan_guard.hpp"
#include "coordinator/profiles.hpp"

namespace coordinator {

namespace bp = boost::process;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kLogFileBytes = 5 * 1024 * 1024;
constexpr std::size_t kLogFiles = 5;
constexpr auto kTreePoll = std::chrono::milliseconds(100);

// Between fork and exec: nothing of the coordinator's but stdin/out/err may
// cross exec. Asio opens its sockets without FD_CLOEXEC, so a child would
// otherwise hold the listening socket (the port stays taken after a crash,
// connections queue where nobody accepts) and every client or child connection
// open at the fork (closing one here would not close it there). CLOEXEC rather
// than close: Boost.Process's pipe that reports a failed exec must stay open.
void close_on_exec_from(int first) {
  if (::close_range(static_cast<unsigned>(first), ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  // Kernels before 5.11: one fcntl per descriptor (async-signal-safe, no allocation).
  const long limit = std::min(::sysconf(_SC_OPEN_MAX), 1L << 16);
  for (int fd = first; fd < limit; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

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
    close_on_exec_from(3);  // after the pipes' handlers made them fds 1 and 2
  }
};

bool group_alive(pid_t pgid) {
  return pgid > 1 && (::kill(-pgid, 0) == 0 || errno == EPERM);
}

std::string join_command(const std::vector<std::string>& argv) {
  std::string joined;
  for (const auto& arg : argv) {
    if (!joined.empty()) joined += ' ';
    joined += arg;
  }
  return joined;
}

awaitable<void> pause(SteadyTimer& timer, Clock::duration length) {
  timer.expires_after(length);
  error_code ec;
  co_await timer.async_wait(use_awaitable_ec(ec));
}

TreeQuery excluding_us(pid_t guard_pid) {
  TreeQuery query;
  query.exclude = {::getpid()};
  if (guard_pid > 0) query.exclude.push_back(guard_pid);
  return query;
}

}  // namespace

bool port_is_free(int port) {
  if (port <= 0) return true;
  net::io_context io;
  Acceptor probe(io);
  error_code ec;
  probe.open(tcp::v4(), ec);
  if (!ec) probe.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(tcp::endpoint(net::ip::address_v4::any(), static_cast<unsigned short>(port)), ec);
  return !ec;
}

bool child_reports_quota(std::string_view line) {
  // config/global_state.py set_quota_exceeded, logged at CRITICAL for every quota hit.
  return line.find("GLOBAL ALERT: Quota Exceeded!") != std::string_view::npos;
}

bool child_reports_logged_out(std::string_view line) {
  return line.find("Auth failed in headless mode, auth file update required.") != std::string_view::npos ||
         line.find("Failed to detect AI Studio URL after login prompt") != std::string_view::npos;
}

std::string describe_exit(int native_status) {
  if (WIFSIGNALED(native_status)) return "was killed by signal " + std::to_string(WTERMSIG(native_status));
  if (WIFEXITED(native_status)) return "exited with code " + std::to_string(WEXITSTATUS(native_status));
  return "ended (status " + std::to_string(native_status) + ")";
}

struct ChildProcess::Handles {
  explicit Handles(net::io_context& io) : out(io), err(io) {}
  bp::async_pipe out;
  bp::async_pipe err;
  std::unique_ptr<bp::child> child;
};

ChildProcess::ChildProcess(net::io_context& io, std::string child_name, fs::path child_log_path)
    : name(std::move(child_name)),
      log_path(std::move(child_log_path)),
      io_(io),
      handles_(std::make_unique<Handles>(io)) {}

ChildProcess::~ChildProcess() = default;

std::string ChildProcess::open_log() {
  try {
    auto sink = std::make_shared<spdlog::sinks::rotating_file_sink_st>(log_path.string(), kLogFileBytes, kLogFiles);
    log = std::make_shared<spdlog::logger>(name, std::move(sink));
    log->set_pattern("%Y-%m-%d %H:%M:%S.%e %v");
    log->flush_on(spdlog::level::info);
  } catch (const spdlog::spdlog_ex& e) {
    return e.what();
  }
  return {};
}

bool ChildProcess::launch(const std::vector<std::string>& argv, std::vector<std::string> environment,
                          const fs::path& work_dir, std::function<void()> on_exit, std::error_code& error) {
  std::vector<char*> environment_pointers;
  for (auto& entry : environment) environment_pointers.push_back(entry.data());
  environment_pointers.push_back(nullptr);
  const std::vector<std::string> args(argv.begin() + 1, argv.end());
  try {
    ChildProcessSetup setup;
    setup.parent = ::getpid();
    setup.environment = environment_pointers.data();
    // stdin is /dev/null: the launcher's prompts (mode, login) read EOF at once.
    handles_->child = std::make_unique<bp::child>(
        bp::exe = argv.front(), bp::args = args, bp::start_dir = work_dir.string(),
        bp::std_in<bp::null, bp::std_out> handles_->out, bp::std_err > handles_->err, io_, setup,
        bp::on_exit([exited = std::move(on_exit)](int, const std::error_code&) { exited(); }), error);
  } catch (const std::exception& e) {
    error = std::make_error_code(std::errc::io_error);
    log->error("[coordinator] cannot start: {}", e.what());
  }
  if (error || !handles_->child || !handles_->child->valid()) {
    spdlog::error("child {}: cannot start {}: {}", name, join_command(argv), error.message());
    return false;
  }
  pgid = handles_->child->id();
  running = true;
  log->info("[coordinator] started pid {} (tree {}): {}", pgid, tree, join_command(argv));
  return true;
}

int ChildProcess::native_exit_code() const {
  return handles_->child->native_exit_code();
}

void ChildProcess::detach() {
  if (handles_->child) handles_->child->detach();
}

void ChildProcess::pump_output(const std::shared_ptr<ChildProcess>& process) {
  net::co_spawn(process->io_, pump(process, false), LogEscapedException{"child log"});
  net::co_spawn(process->io_, pump(process, true), LogEscapedException{"child log"});
}

void ChildProcess::take_line(const char* stream_name, const std::string& line) {
  log->info("[{}] {}", stream_name, line);
  if (on_quota && child_reports_quota(line)) on_quota();
  if (!logged_out && child_reports_logged_out(line)) {
    logged_out = true;
    logged_out_at = Clock::now();
    spdlog::error("child {}: its account is logged out (\"{}\")", name, line.substr(0, 200));
  }
}

awaitable<void> ChildProcess::pump(std::shared_ptr<ChildProcess> process, bool from_stderr) {
  bp::async_pipe& pipe = from_stderr ? process->handles_->err : process->handles_->out;
  const char* stream_name = from_stderr ? "stderr" : "stdout";
  std::array<char, 4096> buffer{};
  LineSplitter lines;
  auto take = [&](const std::string& line) { process->take_line(stream_name, line); };
  while (true) {
    error_code ec;
    const std::size_t n = co_await pipe.async_read_some(net::buffer(buffer), use_awaitable_ec(ec));
    lines.feed(std::string_view(buffer.data(), n), take);
    if (ec) break;
  }
  lines.finish(take);
  process->log->flush();
  --process->open_pipes;
}

awaitable<void> ChildProcess::wait_for_output(Clock::duration limit) {
  SteadyTimer timer(io_);
  const auto until = Clock::now() + limit;
  while (open_pipes > 0 && Clock::now() < until) co_await pause(timer, std::chrono::milliseconds(20));
}

bool ChildProcess::group_alive() const {
  return coordinator::group_alive(pgid);
}

void ChildProcess::terminate_group() const {
  ::kill(-pgid, SIGTERM);
}

void ChildProcess::kill_group() const {
  ::kill(-pgid, SIGKILL);
}

namespace {
awaitable<void> kill_if_still_running(std::weak_ptr<ChildProcess> weak, pid_t group, Clock::duration grace) {
  SteadyTimer timer(co_await net::this_coro::executor);
  timer.expires_after(grace);
  co_await timer.async_wait(use_awaitable);
  const auto process = weak.lock();
  if (process && process->running && group_alive(group)) {
    spdlog::warn("child process group {} still running {:.0f} s after SIGTERM: SIGKILL", group,
                 std::chrono::duration<double>(grace).count());
    ::kill(-group, SIGKILL);  // the exit then takes the rest of the tree
  }
}
}  // namespace

void ChildProcess::stop(Clock::duration grace) {
  // The launcher's group first: the child's own clean stop saves its cookies
  // and closes its browser; what it leaves goes once it has exited.
  terminate_group();
  net::co_spawn(io_, kill_if_still_running(weak_from_this(), pgid, grace), LogEscapedException{"stop child"});
}

TreeQuery ChildProcess::tree_query(pid_t guard_pid) const {
  TreeQuery query = excluding_us(guard_pid);
  query.marker = tree;
  if (pgid > 1) {
    // Once the launcher is reaped its pid may be reused: from then on the
    // marker, its group (whose members keep the id alive) and the members
    // seen so far (pid and start time) find what is left.
    if (running) query.roots.push_back(pgid);
    query.groups.push_back(pgid);
  }
  query.known = members;
  return query;
}

void ChildProcess::update_tree(const std::vector<ProcInfo>& snapshot, OrphanGuard& guard) {
  const auto found = select_tree(snapshot, tree_query(guard.pid()));
  tree_rss = resident_bytes(found);
  std::vector<ProcId> current;
  for (const ProcInfo& member : found) {
    const ProcId id{member.stat.pid, member.stat.start_time};
    current.push_back(id);
    const bool seen = std::find(members.begin(), members.end(), id) != members.end();
    if (!seen && member.tree != tree) guard.watch_process(id);
  }
  for (const ProcId& id : members) {
    if (std::find(current.begin(), current.end(), id) == current.end()) guard.forget_process(id);
  }
  members = std::move(current);
}

awaitable<void> end_tree(std::shared_ptr<ChildProcess> process, MarkerCache* markers, pid_t guard_pid) {
  SteadyTimer timer(co_await net::this_coro::executor);
  auto left = [&] {
    auto found = select_tree(scan_processes(markers), process->tree_query(guard_pid));
    for (const ProcId& id : ids_of(found)) {
      auto& seen = process->members;
      if (std::find(seen.begin(), seen.end(), id) == seen.end()) seen.push_back(id);
    }
    return found;
  };
  auto found = left();
  if (found.empty()) co_return;
  spdlog::warn("child {}: {} process(es) of its tree outlived the launcher: SIGTERM to {}", process->name, found.size(),
               describe(found));
  signal_each(found, SIGTERM);
  for (const auto until = Clock::now() + kTreeTermGrace; !found.empty() && Clock::now() < until;) {
    co_await pause(timer, kTreePoll);
    found = left();
  }
  if (!found.empty()) spdlog::warn("child {}: SIGKILL to what is left of its tree: {}", process->name, describe(found));
  for (const auto until = Clock::now() + kTreeKillTime; !found.empty() && Clock::now() < until;) {
    signal_each(found, SIGKILL);
    co_await pause(timer, std::chrono::milliseconds(50));
    found = left();
  }
  if (!found.empty()) spdlog::error("child {}: could not end {}", process->name, describe(found));
}

awaitable<void> sweep_fleet(std::string fleet, std::vector<ProcId> known, pid_t guard_pid, MarkerCache* markers,
                            std::function<bool(pid_t)> managed) {
  SteadyTimer timer(co_await net::this_coro::executor);
  TreeQuery everything = excluding_us(guard_pid);
  everything.marker = std::move(fleet);
  everything.known = std::move(known);
  for (int round = 0; round < 20; ++round) {
    const auto snapshot = scan_processes(markers);
    auto left = select_tree(snapshot, everything);
    for (const ProcInfo& info : snapshot) {
      if (info.stat.ppid == ::getpid() && info.stat.pid != guard_pid && !info.gone() && !managed(info.stat.pid)) {
        left.push_back(info);
      }
    }
    if (left.empty()) break;
    if (round == 0) spdlog::warn("SIGKILL to {} leftover process(es): {}", left.size(), describe(left));
    signal_each(left, SIGKILL);
    co_await pause(timer, std::chrono::milliseconds(50));
  }
}

}  // namespace coordinator
