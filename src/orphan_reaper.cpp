#include "coordinator/orphan_reaper.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <vector>

namespace coordinator {

namespace {

// Our direct children, read from /proc/self/task/*/children.
std::vector<pid_t> list_children() {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end; it.increment(ec)) {
    std::ifstream in(it->path() / "children");
    pid_t pid = 0;
    while (in >> pid) pids.push_back(pid);
  }
  return pids;
}

}  // namespace

OrphanReaper::OrphanReaper(net::io_context& io, std::function<bool(pid_t)> is_managed)
    : sigchld_(io, SIGCHLD), is_managed_(std::move(is_managed)) {}

void OrphanReaper::start() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    spdlog::warn("cannot become a child subreaper; orphaned browsers would go to PID 1");
  }
  wait_for_signal();
}

void OrphanReaper::wait_for_signal() {
  sigchld_.async_wait([this](const error_code& ec, int) {
    if (ec) return;
    reap_now();
    wait_for_signal();
  });
}

std::size_t OrphanReaper::reap_now() {
  std::size_t reaped = 0;
  for (const pid_t pid : list_children()) {
    if (is_managed_(pid)) continue;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      ++reaped;
      spdlog::debug("reaped orphaned process {}", pid);
    }
  }
  return reaped;
}

}  // namespace coordinator
