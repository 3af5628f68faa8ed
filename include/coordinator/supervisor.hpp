#pragma once

#include <memory>
#include <string>
#include <vector>

#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/orphan_guard.hpp"
#include "coordinator/registry.hpp"

namespace coordinator {

// The argv a child is started with, interpreter first.
std::vector<std::string> child_command(const Config& config, const std::string& python, const Child& child);

// Starts, watches and stops the child processes (Boost.Process), and writes
// their output to `{log-dir}/{name}.log`. Runs on the I/O thread only.
class Supervisor {
 public:
  Supervisor(net::io_context& io, const Config& config, Registry& registry, OrphanGuard& guard);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Resolves the interpreter and launcher once; returns a one-line error if unusable.
  std::string prepare();
  void spawn(std::size_t index);
  bool running(std::size_t index) const;
  // True for a launcher process Boost.Process still waits for.
  bool manages(pid_t pid) const;

  // SIGTERM to every child's process group, SIGKILL to what is left after
  // `timeout`; completes when every group is gone (or SIGKILL could not help).
  awaitable<void> stop_all(Clock::duration timeout);

 private:
  struct Process;
  void on_exit(std::size_t index, const std::shared_ptr<Process>& process, int native_status);

  net::io_context& io_;
  const Config& config_;
  Registry& registry_;
  OrphanGuard& guard_;
  std::string python_;
  std::string launcher_;
  std::string launcher_dir_;
  std::vector<std::shared_ptr<Process>> processes_;
};

}  // namespace coordinator
