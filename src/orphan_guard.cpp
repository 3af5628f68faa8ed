#include "coordinator/orphan_guard.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace coordinator {

namespace {

// Parses "+g123", "-g123", "+p123:456", "-p123:456" into the query.
void apply_line(const std::string& line, TreeQuery& query) {
  if (line.size() < 3 || (line[0] != '+' && line[0] != '-')) return;
  const bool add = line[0] == '+';
  char* end = nullptr;
  const long pid = std::strtol(line.c_str() + 2, &end, 10);
  if (pid <= 1) return;
  if (line[1] == 'g') {
    std::erase(query.groups, static_cast<pid_t>(pid));
    if (add) query.groups.push_back(static_cast<pid_t>(pid));
  } else if (line[1] == 'p' && end != nullptr && *end == ':') {
    const ProcId id{static_cast<pid_t>(pid), std::strtoull(end + 1, nullptr, 10)};
    std::erase(query.known, id);
    if (add) query.known.push_back(id);
  }
}

double seconds_since(const timespec& start) {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec - start.tv_sec) + static_cast<double>(now.tv_nsec - start.tv_nsec) / 1e9;
}

// The guard's whole life: collect groups and members until the pipe closes.
// Then find every tree (the fleet's marker, the groups, the members, their
// descendants) and end it: SIGTERM at once, SIGKILL to what is left after
// 2 s, repeated until nothing is left or 4.5 s have passed. The members seen
// are remembered across scans, so one whose parent dies meanwhile (and is
// re-parented out of reach of the parent links) is still found.
[[noreturn]] void run_guard(int read_fd, const std::string& fleet, const std::string& folder) {
  ::prctl(PR_SET_NAME, "coordinator-gd", 0, 0, 0);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(sig, SIG_IGN);
  TreeQuery query;
  query.marker = fleet;
  query.exclude = {::getpid(), ::getppid()};  // itself and the coordinator
  std::string line;
  char buffer[256];
  while (true) {
    const ssize_t n = ::read(read_fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buffer[i] != '\n') {
        line.push_back(buffer[i]);
        continue;
      }
      apply_line(line, query);
      line.clear();
    }
  }
  timespec start{};
  ::clock_gettime(CLOCK_MONOTONIC, &start);
  MarkerCache markers;
  auto scan = [&] {
    auto members = select_tree(scan_processes(&markers), query);
    for (const ProcId& id : ids_of(members)) {
      if (std::find(query.known.begin(), query.known.end(), id) == query.known.end()) query.known.push_back(id);
    }
    return members;
  };
  // The working copies of a coordinator that did not stop cleanly (the
  // coordinator removes them itself otherwise).
  auto remove_copies = [&] {
    std::error_code ec;
    if (!folder.empty()) std::filesystem::remove_all(folder, ec);
  };
  auto members = scan();
  if (members.empty()) {  // a normal stop: the coordinator ended everything
    remove_copies();
    ::_exit(0);
  }
  const std::size_t found = members.size();
  signal_each(members, SIGTERM);
  while (!members.empty() && seconds_since(start) < 2.0) {
    ::usleep(100 * 1000);
    members = scan();
  }
  while (!members.empty() && seconds_since(start) < 4.5) {
    signal_each(members, SIGKILL);
    ::usleep(50 * 1000);
    members = scan();
  }
  remove_copies();
  std::fprintf(stderr, "coordinator guard: the coordinator is gone; ended %zu process(es) of its children%s\n", found,
               members.empty() ? "" : " (some could not be ended)");
  ::_exit(0);
}

}  // namespace

bool OrphanGuard::start(std::string fleet, std::string folder) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  if (pid == 0) {
    ::close(fds[1]);
    run_guard(fds[0], fleet, folder);
  }
  ::close(fds[0]);
  pipe_fd_ = fds[1];
  guard_pid_ = pid;
  return true;
}

void OrphanGuard::send(const std::string& line) {
  if (pipe_fd_ < 0) return;
  // A short line on a pipe is written whole; a failed write only loses the guard.
  [[maybe_unused]] const auto written = ::write(pipe_fd_, line.data(), line.size());
}

void OrphanGuard::watch_group(pid_t pgid) {
  if (pgid > 1) send("+g" + std::to_string(pgid) + "\n");
}
void OrphanGuard::forget_group(pid_t pgid) {
  if (pgid > 1) send("-g" + std::to_string(pgid) + "\n");
}
void OrphanGuard::watch_process(const ProcId& id) {
  if (id.pid > 1) send("+p" + std::to_string(id.pid) + ":" + std::to_string(id.start_time) + "\n");
}
void OrphanGuard::forget_process(const ProcId& id) {
  if (id.pid > 1) send("-p" + std::to_string(id.pid) + ":" + std::to_string(id.start_time) + "\n");
}

void OrphanGuard::stop() {
  if (pipe_fd_ >= 0) {
    ::close(pipe_fd_);
    pipe_fd_ = -1;
  }
  if (guard_pid_ > 0) {
    int status = 0;
    while (::waitpid(guard_pid_, &status, 0) < 0 && errno == EINTR) {
    }
    guard_pid_ = -1;
  }
}

OrphanGuard::~OrphanGuard() {
  stop();
}

}  // namespace coordinator
