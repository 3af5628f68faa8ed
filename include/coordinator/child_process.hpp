#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "coordinator/asio.hpp"
#include "coordinator/child.hpp"
#include "coordinator/process_tree.hpp"

namespace spdlog {
class logger;
}

namespace coordinator {

class OrphanGuard;

// The OS side of running a child: starting it with Boost.Process (what it
// starts with is child_launch.hpp's), pumping its output into its log (and
// noticing the lines that say something), stopping and killing its whole
// process tree, reading /proc for what the tree holds. The policy (when to
// start, stop, restart) is the Supervisor's.

// True when a TCP port can be bound on every address (nothing listens on it).
bool port_is_free(int port);

// True for the line the real child prints when its account is logged out
// (browser_utils/initialization/core.py): in headless mode it exits at once;
// in the other modes it gives up after waiting for a login in the window.
bool child_reports_logged_out(std::string_view line);

// True for the line the real child logs each time its account hits a quota
// (config/global_state.py set_quota_exceeded), streamed or not.
bool child_reports_quota(std::string_view line);

// "exited with code 3", "was killed by signal 9": a waitpid status for the log.
std::string describe_exit(int native_status);

inline constexpr std::size_t kMaxLogLine = 16 * 1024;

// Cuts a child's output into log lines: at '\n', without a trailing '\r',
// and at most `max_line` bytes each (a longer line goes out in pieces).
class LineSplitter {
 public:
  explicit LineSplitter(std::size_t max_line = kMaxLogLine) : max_line_(max_line) {}
  // Calls `emit(line)` for each line that `bytes` completes.
  template <class Emit>
  void feed(std::string_view bytes, Emit&& emit) {
    for (const char c : bytes) {
      if (c == '\n' || line_.size() >= max_line_) {
        send(emit);
        if (c == '\n') continue;
      }
      line_.push_back(c);
    }
  }
  // The last line, when the output did not end with '\n'.
  template <class Emit>
  void finish(Emit&& emit) {
    if (!line_.empty()) send(emit);
  }

 private:
  template <class Emit>
  void send(Emit& emit) {
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    emit(static_cast<const std::string&>(line_));
    line_.clear();
  }
  std::size_t max_line_;
  std::string line_;
};

// One start of a child: the launcher (its own process group, stdin
// /dev/null), its stdout and stderr copied into {log-dir}/{name}.log, and
// what is known of its tree. Kept alive (shared) while anything of it runs: a
// bp::child's destructor kills a running child. Runs on the I/O thread only.
class ChildProcess : public std::enable_shared_from_this<ChildProcess> {
 public:
  ChildProcess(net::io_context& io, std::string name, std::filesystem::path log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Opens the child's rotating log; returns an error or "".
  std::string open_log();
  // Starts `argv` (interpreter first) in `work_dir` with `environment`;
  // `on_exit` runs on the I/O thread once the launcher has exited. Returns
  // false (with `error`, and the reason logged) when it could not be started.
  bool launch(const std::vector<std::string>& argv, std::vector<std::string> environment,
              const std::filesystem::path& work_dir, std::function<void()> on_exit, std::error_code& error);
  int native_exit_code() const;
  // Lets go of the launcher without killing it (at the supervisor's end).
  void detach();
  // Copies stdout and stderr into the log, a line at a time, until both close.
  static void pump_output(const std::shared_ptr<ChildProcess>& process);
  // Waits until both output pipes are read to their end, for at most `limit`.
  awaitable<void> wait_for_output(Clock::duration limit);

  bool group_alive() const;
  void terminate_group() const;  // SIGTERM to the launcher's process group
  void kill_group() const;       // SIGKILL to it
  // SIGTERM to the group, and SIGKILL if the launcher still runs after `grace`.
  void stop(Clock::duration grace);

  // What belongs to this tree (`guard_pid`, the orphan guard, never does).
  TreeQuery tree_query(pid_t guard_pid) const;
  // The tree's members and resident memory in `snapshot`; the guard learns
  // the members without the marker and forgets the ones gone.
  void update_tree(const std::vector<ProcInfo>& snapshot, OrphanGuard& guard);

  std::string name;  // the profile it runs
  std::filesystem::path log_path;
  std::shared_ptr<spdlog::logger> log;
  pid_t pgid = 0;               // the launcher's pid and process group
  std::string tree;             // its COORDINATOR_TREE
  std::vector<ProcId> members;  // every process of its tree seen so far (some may lack the marker)
  std::uint64_t tree_rss = 0;   // at the last scan
  bool running = false;         // the launcher has not exited
  bool tree_gone = false;       // nothing of its tree is left (after the launcher's exit)
  int open_pipes = 2;           // output pumps still reading
  bool logged_out = false;
  Clock::time_point logged_out_at{};
  std::function<void()> on_quota;  // its log showed a quota hit

 private:
  struct Handles;
  static awaitable<void> pump(std::shared_ptr<ChildProcess> process, bool from_stderr);
  void take_line(const char* stream_name, const std::string& line);

  net::io_context& io_;
  std::unique_ptr<Handles> handles_;
};

// What is left of a tree once its launcher is gone gets this long after
// SIGTERM, then SIGKILL (repeated, for what it forks meanwhile).
inline constexpr auto kTreeTermGrace = std::chrono::seconds(3);
inline constexpr auto kTreeKillTime = std::chrono::seconds(2);
// The longest end_tree takes (bar its last scan).
inline constexpr auto kTreeEndTime = kTreeTermGrace + kTreeKillTime;

// Ends what is left of a tree whose launcher has exited: SIGTERM, a grace,
// then SIGKILL (repeated, for what it forks meanwhile); every member seen is
// added to process->members.
awaitable<void> end_tree(std::shared_ptr<ChildProcess> process, MarkerCache* markers, pid_t guard_pid);

// The last sweep at shutdown: SIGKILL to anything still marked with `fleet`
// or in `known`, and to any orphan re-parented to this subreaper that
// `managed` does not claim, until nothing is left (bounded).
awaitable<void> sweep_fleet(std::string fleet, std::vector<ProcId> known, pid_t guard_pid, MarkerCache* markers,
                            std::function<bool(pid_t)> managed);

}  // namespace coordinator
