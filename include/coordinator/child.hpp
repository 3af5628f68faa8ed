#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "coordinator/config.hpp"
#include "coordinator/model_catalog.hpp"
#include "coordinator/model_cooldowns.hpp"

namespace coordinator {

using Clock = std::chrono::steady_clock;

// Every state a child (one slot of the fleet) can be in.
enum class ChildState {
  starting,       // process spawned (or upstream attached), not yet healthy
  ready,          // healthy, with a free request slot
  busy,           // healthy, every request slot taken
  unhealthy,      // failed a health check or a forwarded request
  cooling,        // out of rotation until a deadline: rate limited (429) or ejected (a run of 5xx answers)
  exited,         // the process is gone; a restart decision is pending
  backoff,        // waiting to be restarted
  failed,         // parked after too many failures: not restarted
  draining,       // takes no new requests; stopped once the in-flight ones finish
  retired,        // stopped on purpose and not coming back (shutdown, profile removed)
  needs_relogin,  // its account is logged out: not restarted until its profile file is replaced
};

// Every state, in declaration order (for /metrics and the tests).
inline constexpr std::array<ChildState, 11> kChildStates{
    ChildState::starting, ChildState::ready,   ChildState::busy,         ChildState::unhealthy,
    ChildState::cooling,  ChildState::exited,  ChildState::backoff,      ChildState::failed,
    ChildState::draining, ChildState::retired, ChildState::needs_relogin};

// What can happen to a child. The registry feeds these to `next_state`.
enum class ChildEvent {
  spawned,         // a process was started for the slot
  health_ok,       // a /health check passed
  health_failed,   // a /health check failed
  forward_failed,  // a forwarded request failed in a way that blames the child
  slots_full,      // the last free request slot was taken
  slot_freed,      // a request slot came free
  rate_limited,    // the child answered 429
  cooldown_over,   // its rate-limit deadline passed
  drain,           // stop giving it requests, then stop it
  exited,          // the process ended
  restart_scheduled,
  parked,
  ready_timeout,  // never became ready within --ready-timeout
  undrain,        // an operator takes back a drain
  ejected,        // answered a run of 5xx errors: out of rotation for a while
  quota_signal,   // its account is out of quota (530, an in-stream quota error)
  recycled,       // the supervisor stops a running child to start it again (stall, unhealthy too long)
  logged_out,     // the child said its account is logged out, and its process is gone
};

std::string_view to_string(ChildState state);
std::string_view to_string(ChildEvent event);

// True for the states in which a child takes requests.
constexpr bool is_serving(ChildState state) {
  return state == ChildState::ready || state == ChildState::busy;
}

// The one state machine: the next state for an event, or nothing when the
// event does not apply in `current` (it is then ignored). `retire_on_exit`
// says whether a drained child's exit is final.
std::optional<ChildState> next_state(ChildState current, ChildEvent event, bool retire_on_exit);

// Everything the coordinator knows about one slot of the fleet. The
// supervisor, the health checker and the router report what they see; only
// the registry changes `state`.
struct Child {
  std::string name;               // the profile (or NAME= of an --upstream) now in this slot
  std::filesystem::path profile;  // empty for an attached upstream
  std::string host = "127.0.0.1";
  ChildPorts ports;
  bool attached = false;  // an --upstream the coordinator did not spawn
  ChildState state = ChildState::starting;
  Clock::time_point state_since{};
  Clock::time_point started_at{};
  Clock::time_point serving_since{};
  Clock::time_point cooling_until{};
  CoolingCause cooling_cause = CoolingCause::none;  // why it is `cooling` as a whole
  int pid = 0;
  std::uint64_t in_flight = 0;
  std::uint64_t max_in_flight = 1;
  std::uint64_t external_queue = 0;  // details.queueLength from its /health
  std::uint64_t served = 0;
  std::uint64_t failures = 0;
  std::uint64_t restarts = 0;
  std::uint64_t health_failures = 0;
  std::uint64_t cooldowns = 0;
  std::uint64_t quota_cooldowns = 0;  // cooled down after a quota signal
  std::uint64_t ejections = 0;
  std::uint64_t consecutive_server_errors = 0;  // 5xx answers relayed in a row
  std::uint64_t ejection_streak = 0;            // ejections with no good answer between them
  std::string last_error;
  ModelSet models;  // what its /v1/models listed; kept across restarts of the same profile
  // Its account's models out of quota (or rate limited) for a while; kept
  // across restarts of the same profile (the account is still spent).
  ModelCooldowns model_cooldowns;
  bool ever_ready = false;
  bool retire_on_exit = false;  // drained or stopped for good, not for a restart
};

}  // namespace coordinator
