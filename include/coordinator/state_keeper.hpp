#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "coordinator/asio.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/state_file.hpp"
#include "coordinator/state_writer.hpp"
#include "coordinator/usage.hpp"

namespace coordinator {

// Keeps the state file (--state-file) in step with the fleet. At start what it
// holds is applied: each profile's model cooldowns (until the same wall-clock
// moment) and the usage counters; which profiles must not start (held_back:
// logged out with the same file, or parked) the app tells the supervisor. While running, a snapshot goes to the writer
// thread (StateWriter: atomic, at most once a second) whenever it changed; at
// shutdown a last one is written. Disabled with an empty path.
class StateKeeper {
 public:
  StateKeeper(Executor executor, std::filesystem::path path, Registry& registry, UsageBook& usage);
  StateKeeper(const StateKeeper&) = delete;
  StateKeeper& operator=(const StateKeeper&) = delete;
  ~StateKeeper();

  // Reads the file and applies it; a corrupt one is set aside with a warning.
  void load();
  // A profile the state file holds back: logged out (its file unchanged since)
  // or parked before the restart. Nothing when it may start.
  struct HeldBack {
    bool logged_out = false;
    std::string reason;
  };
  std::optional<HeldBack> held_back(const Child& child) const;
  // Snapshots once a second from now on.
  void start();
  // The last snapshot, written before this returns.
  void stop();

  // What would be written now (for the tests and the writer).
  nlohmann::json snapshot();

 private:
  awaitable<void> keep();
  void submit_if_changed();

  Executor executor_;
  std::filesystem::path path_;
  Registry& registry_;
  UsageBook& usage_;
  std::unique_ptr<StateWriter> writer_;
  std::unique_ptr<SteadyTimer> timer_;
  std::map<std::string, ProfileState, std::less<>> loaded_;  // the profiles as the file had them
  // When a profile was first seen logged out: its file's stamp then (a file
  // replaced later is a new login).
  std::map<std::string, ProfileFileStamp, std::less<>> relogin_stamps_;
  std::map<std::string, ProfileState, std::less<>> last_flags_;  // each profile in the last snapshot
  std::string last_written_;  // the last snapshot handed over, dumped: unchanged ones are not written
  bool stopping_ = false;
};

}  // namespace coordinator
