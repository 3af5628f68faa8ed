#pragma once

#include <algorithm>

#include "coordinator/child.hpp"

namespace coordinator {

// Why a relay's wait ended without the child's bytes.
enum class Expiry { none, queue, total, idle, stall };

// Every deadline of one relayed request, kept in one place. No I/O: times are
// passed in, so the rules are unit-tested with a made-up clock.
//   queue  --queue-timeout, from when the request first had to wait for a child
//   total  --request-timeout, a non-streamed answer, from the first attempt
//   idle   --stream-idle-timeout, a stream with no byte from the child
//   stall  --stall-timeout, a stream whose child sent nothing (then recycled)
//   heartbeat  --sse-heartbeat, a streamed request's client that got nothing
class RelayDeadlines {
 public:
  struct Limits {
    Clock::duration queue;
    Clock::duration request;
    Clock::duration stream_idle;
    Clock::duration stall;
    Clock::duration heartbeat;  // zero: no heartbeats
  };
  static constexpr Clock::time_point kNever = Clock::time_point::max();
  // A request still waiting this long gets its client watched (see watch_client).
  static constexpr Clock::duration kClientWatchDelay = std::chrono::milliseconds(500);

  explicit RelayDeadlines(const Limits& limits) : limits_(limits) {}

  // The request arrived: a streamed one that waits gets heartbeats from here on.
  void begin(Clock::time_point now) {
    heartbeat_ = now + heartbeat_period();
    client_watch_ = now + kClientWatchDelay;
  }

  // The first attempt on a child: time spent queued does not count against it.
  void start(Clock::time_point now, bool stream) {
    stream_ = stream;
    total_ = stream ? kNever : now + limits_.request;
    idle_ = stream ? now + limits_.stream_idle : kNever;
    heartbeat_ = now + heartbeat_period();
  }
  // The request had to wait for a free child (once: a retry keeps the first deadline).
  void start_queue(Clock::time_point now) {
    if (queue_ == kNever) queue_ = now + limits_.queue;
  }
  // The request went to a child: a stream's child must send something before --stall-timeout.
  void sent_to_child(Clock::time_point now) { stall_ = stream_ ? now + limits_.stall : kNever; }
  // The child answered with an event stream although none was asked for.
  void become_stream(Clock::time_point now) {
    stream_ = true;
    total_ = kNever;
    idle_ = now + limits_.stream_idle;
    stall_ = now + limits_.stall;
  }
  // Any byte from the child shows it alive (a stream's comments too).
  void child_sent(Clock::time_point now) {
    if (!stream_) return;
    stall_ = now + limits_.stall;
    idle_ = now + limits_.stream_idle;
  }
  // Only what reaches the client puts off its next heartbeat.
  void client_sent(Clock::time_point now) { heartbeat_ = now + heartbeat_period(); }

  // The deadline that has passed, the most severe first.
  Expiry expired(Clock::time_point now) const {
    if (now >= total_) return Expiry::total;
    if (now >= idle_) return Expiry::idle;
    if (now >= stall_) return Expiry::stall;
    return Expiry::none;
  }
  bool queue_expired(Clock::time_point now) const { return now >= queue_; }
  bool heartbeat_due(Clock::time_point now) const { return heartbeats_on() && now >= heartbeat_; }
  // When a wait on the child must wake (for a deadline or a heartbeat).
  Clock::time_point next_wake(bool with_heartbeats) const {
    auto wake = std::min({total_, idle_, stall_, client_watch_});
    if (with_heartbeats && heartbeats_on()) wake = std::min(wake, heartbeat_);
    return wake;
  }
  // When a wait in the queue must wake.
  Clock::time_point next_queue_wake(bool with_heartbeats) const {
    const auto wake = std::min(queue_, client_watch_);
    return with_heartbeats && heartbeats_on() ? std::min(wake, heartbeat_) : wake;
  }
  // Time to watch the client (see watch_client); the watch then stays armed.
  bool client_watch_due(Clock::time_point now) const { return now >= client_watch_; }
  void client_watched() { client_watch_ = kNever; }
  bool heartbeats_on() const { return limits_.heartbeat > Clock::duration::zero(); }
  bool stream() const { return stream_; }
  const Limits& limits() const { return limits_; }

 private:
  Clock::duration heartbeat_period() const { return heartbeats_on() ? limits_.heartbeat : Clock::duration::max() / 2; }

  Limits limits_;
  bool stream_ = false;
  Clock::time_point queue_ = kNever;
  Clock::time_point total_ = kNever;
  Clock::time_point idle_ = kNever;
  Clock::time_point stall_ = kNever;
  Clock::time_point heartbeat_ = kNever;
  Clock::time_point client_watch_ = kNever;
};

}  // namespace coordinator
