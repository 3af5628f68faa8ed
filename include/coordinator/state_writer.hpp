#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <thread>

namespace coordinator {

// Saves snapshots of the fleet's state (state_file.hpp) off the event loop.
//
// One thread of its own does the file work (save_state_atomically: write, fsync,
// rename, fsync). submit() only swaps the pending snapshot under a mutex, so the
// event loop never waits for a disk. Writes are coalesced: the first snapshot
// after a quiet spell is written at once, later ones at most once per
// `min_interval`, and only the newest of those that came in meanwhile. A failed
// write is logged once per distinct error (one line, never the contents) and the
// next snapshot is tried again; a success after failures is logged once too.
class StateWriter {
 public:
  // Called on the writer thread after each write, with its result (tests count writes with it).
  using WriteObserver = std::function<void(std::error_code)>;

  explicit StateWriter(std::filesystem::path path, std::chrono::milliseconds min_interval = std::chrono::seconds(1),
                       WriteObserver observer = {});
  // flush_and_stop().
  ~StateWriter();
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  // Replaces the snapshot waiting to be written. Cheap; never blocks on I/O.
  // After flush_and_stop it does nothing (the state saved is the last one before).
  void submit(nlohmann::json snapshot);

  // Writes the pending snapshot now, without waiting out the interval, and
  // joins the thread. For shutdown; safe to call more than once.
  void flush_and_stop();

  std::uint64_t writes() const { return writes_.load(); }      // attempts made
  std::uint64_t failures() const { return failures_.load(); }  // of which failed

 private:
  void run();
  void write(const nlohmann::json& snapshot);

  const std::filesystem::path path_;
  const std::chrono::milliseconds min_interval_;
  const WriteObserver observer_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<nlohmann::json> pending_;  // guarded by mutex_
  bool stopping_ = false;                  // guarded by mutex_
  std::once_flag stopped_;
  // Without a thread (it could not be started) submit() writes on the caller's thread.
  bool threaded_ = false;
  std::thread thread_;

  std::atomic<std::uint64_t> writes_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::error_code logged_error_;  // the last failure logged; used by whoever writes
};

}  // namespace coordinator
