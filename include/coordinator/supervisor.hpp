#pragma once

#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "coordinator/asio.hpp"
#include "coordinator/child_launch.hpp"
#include "coordinator/child_process.hpp"
#include "coordinator/config.hpp"
#include "coordinator/lifecycle.hpp"
#include "coordinator/orphan_guard.hpp"
#include "coordinator/process_tree.hpp"
#include "coordinator/profiles.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/working_profile.hpp"

namespace coordinator {

// What PUT /admin/profiles/{name} did with a profile whose file was just written.
struct ProfileUpdate {
  std::optional<std::size_t> slot;  // its child; none while it waits in the queue
  std::string what;                 // one line for the log and the answer
  std::string error;                // set when nothing could be applied
};

// What DELETE /admin/profiles/{name} did.
struct ProfileRemoval {
  bool known = false;               // the fleet ran it, queued it or had it parked
  std::optional<std::size_t> slot;  // its child, now draining or retired
  std::string what;
};

// Runs the children like a process supervisor: starts them (staggered), writes
// their output to `{log-dir}/{name}.log`, notices exits at once, restarts with
// exponential backoff, parks profiles that keep failing, rotates queued
// profiles into a slot whose child failed, recycles stuck or oversized
// children, keeps each child's working copy of its profile in step with the
// operator's file, and stops every process of every child's tree on
// shutdown. This is the policy; the OS side of each start is a ChildProcess
// (child_process.hpp). Runs on the I/O thread only.
class Supervisor {
 public:
  Supervisor(net::io_context& io, const Config& config, Registry& registry, OrphanGuard& guard,
             std::deque<Profile> waiting_profiles, std::string fleet);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Resolves the interpreter and launcher once, makes the log and runtime
  // folders; returns a one-line error if unusable.
  std::string prepare();
  // Before start(): the state file says this profile was logged out (and its
  // file is unchanged since: `logged_out`) or parked. It is not started; an
  // operator's restart starts it, and so does a reload that finds its file
  // changed (for a logged-out one).
  void hold_back(std::size_t slot, bool logged_out, std::string reason);
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
  // ones are drained and stopped, ones an operator changed restarted (a
  // child's own cookie refresh is not a change). Returns a summary.
  std::string reload(const std::vector<Profile>& profiles);
  // The file of `profile` was just written through the admin API: a profile
  // the fleet does not run gets a slot on the next ports (or a place in the
  // queue), a serving child drains and then restarts on the new file (its
  // requests in flight finish), a starting, stopped, parked or logged-out one
  // starts again at once.
  ProfileUpdate apply_profile(const Profile& profile);
  // Why a profile named `name` could not be taken now, or "" (checked before its file is written).
  std::string cannot_take(const std::string& name) const;
  // Takes a profile out of the fleet, as a reload does when its file is gone:
  // its child drains and stops for good; a queued or parked one is forgotten.
  ProfileRemoval remove_profile(const std::string& name);
  // The fleet runs, queues or parks a profile of this name.
  bool knows_profile(const std::string& name) const;
  // Called with the index of each slot added by a reload (to health-check it).
  void on_slot_added(std::function<void(std::size_t)> listener) { slot_added_ = std::move(listener); }
  // Called with a slot whose child's log showed a quota hit (child_reports_quota).
  void on_quota_signal(std::function<void(std::size_t)> listener) { quota_listener_ = std::move(listener); }
  // Queued, parked and logged-out profiles, as JSON fields for /ready.
  std::string fleet_json() const;

  // SIGTERM to every child's process group, SIGKILL to what is left after
  // `timeout`, then whatever is left of every tree; completes when all is gone.
  awaitable<void> stop_all(Clock::duration timeout);

 private:
  // After an exit, the output still in the pipes is read (the logged-out line
  // may be among it) for at most this long before the restart decision.
  static constexpr Clock::duration kOutputDrain = std::chrono::seconds(1);

  // The OS side of one start (ChildProcess), and what the supervisor keeps
  // about its working copy of the profile.
  struct Process : ChildProcess {
    using ChildProcess::ChildProcess;
    WorkingProfile profile;
    bool settled = false;  // its exit is handled: output read, cookies copied back
    bool operator_change_reported = false;
    bool copy_failure_reported = false;
  };
  struct Slot {
    std::shared_ptr<Process> process;
    unsigned consecutive_failures = 0;
    unsigned generation = 0;  // invalidates scheduled starts
    unsigned spawns = 0;      // the tree marker's last part
    bool started_once = false;
    bool stop_requested = false;
    bool stop_is_failure = false;
    bool retire_when_stopped = false;  // drained by an operator or a reload: do not restart
    std::string stop_reason;
    std::optional<FileStamp> held_stamp;  // held back at start: its profile file then
  };

  enum class Added { slot, queued, no_room };
  // A profile the fleet does not know: a new slot (ports continue the
  // sequence) unless the pool is full (then it queues).
  Added add_profile(const Profile& profile);
  // The slot that runs `name` and is not retired.
  std::optional<std::size_t> live_slot_of(const std::string& name) const;
  std::size_t active_slots() const;
  void schedule_start(std::size_t slot, Clock::duration delay);
  awaitable<void> start_when_due(std::size_t slot, unsigned generation, Clock::time_point at);
  void spawn(std::size_t slot);
  // A start that failed before the launcher ran: `what` (with `detail`) is the exit reported.
  void start_failed(std::size_t slot, const std::string& what, const std::string& detail);
  void on_exit(std::size_t slot, const std::shared_ptr<Process>& process, int native_status);
  awaitable<void> settle_exit(std::size_t slot, std::shared_ptr<Process> process, std::string how);
  awaitable<void> clean_up_tree(std::shared_ptr<Process> process);
  void after_exit(std::size_t slot, bool failure, const std::string& reason);
  void stop_process(std::size_t slot, bool failure, const std::string& reason);
  void recycle_with(std::size_t slot, ChildEvent event, const std::string& reason);
  awaitable<void> monitor();
  void check_slot(std::size_t slot, Clock::time_point now);
  void sync_profile(Process& process, bool final);
  void refresh_trees();
  void maybe_recycle_for_limits(Clock::time_point now);
  void discard_working_copy(Process& process);
  // stop_all's steps: SIGTERM to every launcher's group (and no more starts),
  // SIGKILL to the groups still alive after `waited`.
  void terminate_all();
  void kill_remaining_groups(Clock::duration waited);
  bool any_launcher_running() const;
  bool all_settled() const;

  net::io_context& io_;
  const Config& config_;
  Registry& registry_;
  OrphanGuard& guard_;
  std::string fleet_;
  std::filesystem::path fleet_dir_;  // {runtime-dir}/{fleet}: this run's working copies
  std::string python_;
  std::string launcher_;
  std::string launcher_dir_;
  std::deque<Slot> slots_;
  std::function<void(std::size_t)> slot_added_;
  std::function<void(std::size_t)> quota_listener_;
  std::deque<Profile> waiting_;
  std::vector<Profile> parked_;
  std::unordered_map<std::string, FailureHistory> history_;
  Clock::time_point next_start_at_{};
  Clock::time_point last_limit_check_{};
  Clock::time_point last_tree_scan_{};
  MarkerCache markers_;  // each process's environment is read once
  bool stopping_ = false;
  std::mt19937 random_{std::random_device{}()};
};

}  // namespace coordinator
