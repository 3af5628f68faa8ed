#pragma once

#include <sys/types.h>

namespace coordinator {

// A small process forked at start, before any thread or socket exists, that
// outlives a crashed or SIGKILLed coordinator just long enough to kill every
// child process group it was told about. PR_SET_PDEATHSIG alone only reaches
// the launcher, not the browser it started.
class OrphanGuard {
 public:
  OrphanGuard() = default;
  OrphanGuard(const OrphanGuard&) = delete;
  OrphanGuard& operator=(const OrphanGuard&) = delete;
  ~OrphanGuard();

  // Forks the guard. Returns false (and the coordinator runs unguarded) if it cannot.
  bool start();
  void watch_group(pid_t pgid);
  void forget_group(pid_t pgid);
  // Normal shutdown: the coordinator has stopped every group itself.
  void stop();
  pid_t pid() const { return guard_pid_; }

 private:
  void send(char op, pid_t pgid);
  int pipe_fd_ = -1;
  pid_t guard_pid_ = -1;
};

}  // namespace coordinator
