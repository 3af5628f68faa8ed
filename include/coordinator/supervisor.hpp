#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/lifecycle.hpp"
#include "coordinator/orphan_guard.hpp"
#include "coordinator/profiles.hpp"
#include "coordinator/registry.hpp"

namespace coordinator {

// The argv a child is started with, interpreter first.
std::vector<std::string> child_command(const Config& config, const std::string& python, const Child& child);

// True when a TCP port can be bound on every address (nothing listens on it).
bool port_is_free(int port);

// A child's environment ("KEY=VALUE" entries): `inherited` with `overrides`
// replacing or adding variables.
std::vector<std::string> child_environment(const char* const* inherited,
                                           const std::vector<std::pair<std::string, std::string>>& overrides);

// Resident memory of every process in a process group, in bytes (from /proc).
std::uint64_t process_group_rss(int pgid);

// Runs the children like a process supervisor: starts them (staggered), writes
// their output to `{log-dir}/{name}.log`, notices exits at once, restarts with
// exponential backoff, parks profiles that keep failing, rotates queued
// profiles into a slot whose child failed, recycles stuck or oversized
// children, and stops them all on shutdown. Runs on the I/O thread only.
class Supervisor {
 public:
  Supervisor(net::io_context& io, const Config& config, Registry& registry, OrphanGuard& guard,
             std::deque<Profile> waiting_profiles);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Resolves the interpreter and launcher once; returns a one-line error if unusable.
  std::string prepare();
  // Schedules every slot's first start (--start-stagger apart) and the monitor.
  void start();
  // Stops a stuck child and restarts it as after a failure.
  void recycle(std::size_t slot, const std::string& reason);
  bool manages(pid_t pid) const;

  // Admin actions; each returns an error message or "".
  std::string restart(std::size_t slot);  // stop now, start again at once (not a failure)
  std::string drain(std::size_t slot);    // no new requests; stop when idle; stays stopped
  std::string undrain(std::size_t slot);  // back into service
  // Live reload: new profiles get a slot (or a place in the queue), removed
  // ones are drained and stopped, changed ones restarted. Returns a summary.
  std::string reload(const std::vector<Profile>& profiles);
  // Called with the index of each slot added by a reload (to health-check it).
  void on_slot_added(std::function<void(std::size_t)> listener) { slot_added_ = std::move(listener); }
  // Queued and parked profiles, as JSON fields for /ready.
  std::string fleet_json() const;

  // SIGTERM to every child's process group, SIGKILL to what is left after
  // `timeout`; completes when every group is gone.
  awaitable<void> stop_all(Clock::duration timeout);

 private:
  struct Process;
  struct Slot {
    std::shared_ptr<Process> process;
    unsigned consecutive_failures = 0;
    unsigned generation = 0;  // invalidates scheduled starts
    bool started_once = false;
    bool stop_requested = false;
    bool stop_is_failure = false;
    bool retire_when_stopped = false;  // drained by an operator or a reload: do not restart
    std::string stop_reason;
    std::string profile_stamp;  // size and mtime of the profile when started
  };

  void schedule_start(std::size_t slot, Clock::duration delay);
  awaitable<void> start_when_due(std::size_t slot, unsigned generation, Clock::time_point at);
  void spawn(std::size_t slot);
  void on_exit(std::size_t slot, const std::shared_ptr<Process>& process, int native_status);
  void after_exit(std::size_t slot, bool failure, const std::string& reason);
  void stop_process(std::size_t slot, bool failure, const std::string& reason);
  awaitable<void> monitor();
  void check_slot(std::size_t slot, Clock::time_point now);
  void maybe_recycle_for_limits(Clock::time_point now);

  net::io_context& io_;
  const Config& config_;
  Registry& registry_;
  OrphanGuard& guard_;
  std::string python_;
  std::string launcher_;
  std::string launcher_dir_;
  std::deque<Slot> slots_;
  std::function<void(std::size_t)> slot_added_;
  std::deque<Profile> waiting_;
  std::vector<Profile> parked_;
  std::unordered_map<std::string, FailureHistory> history_;
  Clock::time_point next_start_at_{};
  Clock::time_point last_limit_check_{};
  bool stopping_ = false;
  std::mt19937 random_{std::random_device{}()};
};

}  // namespace coordinator
