#include "coordinator/state_writer.hpp"

#include <spdlog/spdlog.h>

#include "coordinator/state_file.hpp"

namespace coordinator {

StateWriter::StateWriter(std::filesystem::path path, std::chrono::milliseconds min_interval, WriteObserver observer)
    : path_(std::move(path)), min_interval_(min_interval), observer_(std::move(observer)) {
  try {
    thread_ = std::thread([this] { run(); });
    threaded_ = true;
  } catch (const std::system_error& error) {
    // Out of threads: keep saving, on the caller's thread.
    spdlog::warn("state file {}: no writer thread ({}); saving synchronously", path_.string(), error.what());
  }
}

StateWriter::~StateWriter() {
  flush_and_stop();
}

void StateWriter::submit(nlohmann::json snapshot) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    if (threaded_) {
      pending_ = std::move(snapshot);
      wake_.notify_one();
      return;
    }
  }
  write(snapshot);
}

void StateWriter::flush_and_stop() {
  std::call_once(stopped_, [this] {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  });
}

void StateWriter::run() {
  std::unique_lock lock(mutex_);
  std::optional<std::chrono::steady_clock::time_point> last_write;
  while (true) {
    wake_.wait(lock, [this] { return pending_.has_value() || stopping_; });
    if (!stopping_ && last_write) {
      // Coalesce: snapshots submitted until the interval is over replace this one.
      wake_.wait_until(lock, *last_write + min_interval_, [this] { return stopping_; });
    }
    if (!pending_) {
      if (stopping_) return;
      continue;
    }
    const nlohmann::json snapshot = std::move(*pending_);
    pending_.reset();
    lock.unlock();
    last_write = std::chrono::steady_clock::now();
    write(snapshot);
    lock.lock();
  }
}

void StateWriter::write(const nlohmann::json& snapshot) {
  const std::error_code error = save_state_atomically(path_, snapshot);
  ++writes_;
  if (error) {
    ++failures_;
    if (error != logged_error_) {
      spdlog::warn("state file {}: cannot save it: {}", path_.string(), error.message());
      logged_error_ = error;
    }
  } else if (logged_error_) {
    spdlog::info("state file {}: saved again", path_.string());
    logged_error_ = {};
  }
  if (observer_) observer_(error);
}

}  // namespace coordinator
