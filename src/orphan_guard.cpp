#include "coordinator/orphan_guard.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

namespace coordinator {

namespace {

bool group_alive(pid_t pgid) {
  return ::kill(-pgid, 0) == 0 || errno == EPERM;
}

// The guard's whole life: collect "+pgid"/"-pgid" lines until the pipe closes.
// A close with groups still listed means the coordinator died without
// stopping them: SIGTERM them, then SIGKILL what is left after 2 s.
[[noreturn]] void run_guard(int read_fd) {
  ::prctl(PR_SET_NAME, "coordinator-gd", 0, 0, 0);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(sig, SIG_IGN);
  std::set<pid_t> groups;
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
      if (line.size() > 1) {
        const pid_t pgid = static_cast<pid_t>(std::strtol(line.c_str() + 1, nullptr, 10));
        if (pgid > 1) {
          if (line[0] == '+') groups.insert(pgid);
          if (line[0] == '-') groups.erase(pgid);
        }
      }
      line.clear();
    }
  }
  if (groups.empty()) ::_exit(0);
  for (pid_t pgid : groups) ::kill(-pgid, SIGTERM);
  for (int waited_ms = 0; waited_ms < 2000; waited_ms += 50) {
    bool any = false;
    for (pid_t pgid : groups) any = any || group_alive(pgid);
    if (!any) ::_exit(0);
    ::usleep(50 * 1000);
  }
  for (pid_t pgid : groups) ::kill(-pgid, SIGKILL);
  std::fprintf(stderr, "coordinator guard: the coordinator died; killed %zu child process group(s)\n", groups.size());
  ::_exit(0);
}

}  // namespace

bool OrphanGuard::start() {
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
    run_guard(fds[0]);
  }
  ::close(fds[0]);
  pipe_fd_ = fds[1];
  guard_pid_ = pid;
  return true;
}

void OrphanGuard::send(char op, pid_t pgid) {
  if (pipe_fd_ < 0 || pgid <= 1) return;
  const std::string line = op + std::to_string(pgid) + "\n";
  // A short line on a pipe is written whole; a failed write only loses the guard.
  [[maybe_unused]] const auto written = ::write(pipe_fd_, line.data(), line.size());
}

void OrphanGuard::watch_group(pid_t pgid) {
  send('+', pgid);
}
void OrphanGuard::forget_group(pid_t pgid) {
  send('-', pgid);
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
