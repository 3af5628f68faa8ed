#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "coordinator/asio.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/state_file.hpp"
#include "coordinator/state_writer.hpp"
#include "coordinator/usage.hpp"

namespace coordinator {

// Keeps the state file (--state-file) in step with the fleet. At start what it
// holds is applied: each profile's model cooldowns (until the same wall-clock
// moment) and the usage counters. While running, a snapshot goes to the writer
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
  // Snapshots once a second from now on.
  void start();
  // The last snapshot, written before this returns.
  void stop();

  // What would be written now (for the tests and the writer).
  nlohmann::json snapshot() const;

 private:
  awaitable<void> keep();
  void submit_if_changed();

  Executor executor_;
  std::filesystem::path path_;
  Registry& registry_;
  UsageBook& usage_;
  std::unique_ptr<StateWriter> writer_;
  std::unique_ptr<SteadyTimer> timer_;
  std::string last_written_;  // the last snapshot handed over, dumped: unchanged ones are not written
  bool stopping_ = false;
};

}  // namespace coordinator
