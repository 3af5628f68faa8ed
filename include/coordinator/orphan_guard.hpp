#pragma once

#include <sys/types.h>

#include <string>

#include "coordinator/process_tree.hpp"

namespace coordinator {

// A small process forked at start, before any thread or socket exists, that
// outlives a crashed or SIGKILLed coordinator just long enough to end every
// process of every child's tree: everything carrying this run's fleet id in
// COORDINATOR_TREE, the child process groups and the unmarked members it was
// told about, and their descendants, whatever their session or group.
// PR_SET_PDEATHSIG alone only reaches the launcher, not the browser it
// started in its own session.
class OrphanGuard {
 public:
  OrphanGuard() = default;
  OrphanGuard(const OrphanGuard&) = delete;
  OrphanGuard& operator=(const OrphanGuard&) = delete;
  ~OrphanGuard();

  // Forks the guard for the trees marked with `fleet`; once they are ended
  // it removes `folder` (the run's working copies of the profiles). Returns
  // false (and the coordinator runs unguarded) if it cannot.
  bool start(std::string fleet, std::string folder);
  void watch_group(pid_t pgid);
  void forget_group(pid_t pgid);
  // A tree member without the marker (a browser started with an environment of its own).
  void watch_process(const ProcId& id);
  void forget_process(const ProcId& id);
  // Normal shutdown: the coordinator has stopped every tree itself (the guard
  // checks, and ends whatever is left).
  void stop();
  pid_t pid() const { return guard_pid_; }

 private:
  void send(const std::string& line);
  int pipe_fd_ = -1;
  pid_t guard_pid_ = -1;
};

}  // namespace coordinator
