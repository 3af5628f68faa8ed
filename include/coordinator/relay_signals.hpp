#pragma once

#include <chrono>
#include <memory>
#include <string_view>

#include "coordinator/asio.hpp"

namespace coordinator {

// What reaches a relay from outside its own coroutine: the client went away, a
// cancel, a quota signal from the child's log, a deadline timer. Shared with
// the handlers that set it, which may run after the relay has moved on: they
// act only through the pointers here, which are null once it has.
struct RelaySignals {
  TcpStream* upstream = nullptr;       // the child connection being read, if any
  Socket* client = nullptr;            // watched while the relay waits (see watch_client)
  SteadyTimer* queue_timer = nullptr;  // set while the request waits for a child
  bool tick = false;                   // the deadline timer woke the read
  bool client_gone = false;            // the client closed or a write to it failed
  bool cancelled = false;              // POST /v1/cancel/{req_id} ended this relay
  std::string_view model;              // the relay's requested model (empty: any), for a quota signal in a child's log
  bool quota_retry = false;            // the child's log showed a quota signal: go elsewhere if nothing was delivered
  bool client_watched = false;         // watch_client was armed for this relay
  // The deadline timer waits for `timer_expiry`: kept armed across reads that
  // wake at the same moment (a timer armed and cancelled per read was a
  // tenth of a short request's work).
  bool timer_armed = false;
  std::chrono::steady_clock::time_point timer_expiry;

  // Wakes whatever the relay waits on: its read from the child, or the queue.
  void wake() {
    error_code ignored;
    if (upstream != nullptr) upstream->socket().cancel(ignored);
    if (queue_timer != nullptr) queue_timer->cancel();
  }
  // The relay is over: no handler may touch its objects any more.
  void detach() {
    upstream = nullptr;
    client = nullptr;
    queue_timer = nullptr;
  }
};

// Steers a relay from outside: sets `flag` and wakes it. A cancel then closes
// the upstream connection, which is what stops the real child's page; a quota
// signal sends a request that has delivered nothing to another child.
void interrupt_relay(const std::weak_ptr<RelaySignals>& weak, bool RelaySignals::*flag);

// Notices a client that goes away while the relay waits on the child, so the
// child is released at once rather than at the next write. Armed only for a
// request that has already waited a while: a short one ends before it could
// matter, and arming costs a system call per request.
void watch_client(const std::shared_ptr<RelaySignals>& signals);

}  // namespace coordinator
