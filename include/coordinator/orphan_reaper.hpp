#pragma once

#include <sys/types.h>

#include <functional>

#include "coordinator/asio.hpp"

namespace coordinator {

// Makes the coordinator a child subreaper (PR_SET_CHILD_SUBREAPER), so browser
// processes orphaned by a crashed launcher are re-parented to it rather than
// to PID 1, and reaps them as they exit. Processes for which `is_managed` is
// true (Boost.Process's children, the orphan guard) are left to their owners.
class OrphanReaper {
 public:
  OrphanReaper(net::io_context& io, std::function<bool(pid_t)> is_managed);
  void start();
  // Reaps every exited child that nobody else waits for; returns how many.
  std::size_t reap_now();

 private:
  void wait_for_signal();
  net::signal_set sigchld_;
  std::function<bool(pid_t)> is_managed_;
};

}  // namespace coordinator
