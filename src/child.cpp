#include "coordinator/child.hpp"

namespace coordinator {

std::string_view to_string(ChildState state) {
  switch (state) {
    case ChildState::starting:
      return "starting";
    case ChildState::ready:
      return "ready";
    case ChildState::busy:
      return "busy";
    case ChildState::unhealthy:
      return "unhealthy";
    case ChildState::cooling:
      return "cooling";
    case ChildState::exited:
      return "exited";
    case ChildState::backoff:
      return "backoff";
    case ChildState::failed:
      return "failed";
    case ChildState::draining:
      return "draining";
    case ChildState::retired:
      return "retired";
    case ChildState::needs_relogin:
      return "needs_relogin";
  }
  return "unknown";
}

std::string_view to_string(ChildEvent event) {
  switch (event) {
    case ChildEvent::spawned:
      return "spawned";
    case ChildEvent::health_ok:
      return "health_ok";
    case ChildEvent::health_failed:
      return "health_failed";
    case ChildEvent::forward_failed:
      return "forward_failed";
    case ChildEvent::slots_full:
      return "slots_full";
    case ChildEvent::slot_freed:
      return "slot_freed";
    case ChildEvent::rate_limited:
      return "rate_limited";
    case ChildEvent::cooldown_over:
      return "cooldown_over";
    case ChildEvent::drain:
      return "drain";
    case ChildEvent::exited:
      return "exited";
    case ChildEvent::restart_scheduled:
      return "restart_scheduled";
    case ChildEvent::parked:
      return "parked";
    case ChildEvent::ready_timeout:
      return "ready_timeout";
    case ChildEvent::undrain:
      return "undrain";
    case ChildEvent::ejected:
      return "ejected";
    case ChildEvent::quota_signal:
      return "quota_signal";
    case ChildEvent::recycled:
      return "recycled";
    case ChildEvent::logged_out:
      return "logged_out";
  }
  return "unknown";
}

std::optional<ChildState> next_state(ChildState current, ChildEvent event, bool retire_on_exit) {
  using S = ChildState;
  const bool alive = current == S::starting || current == S::ready || current == S::busy || current == S::unhealthy ||
                     current == S::cooling || current == S::draining;
  switch (event) {
    case ChildEvent::spawned:
      if (current == S::starting || current == S::exited || current == S::backoff) return S::starting;
      return std::nullopt;
    case ChildEvent::health_ok:
      // A cooling child stays out until its deadline; a busy one stays busy.
      if (current == S::starting || current == S::unhealthy) return S::ready;
      return std::nullopt;
    case ChildEvent::health_failed:
      // "starting" stays until its readiness deadline: it was never serving.
      // "cooling" stays until its deadline, so a probe cannot cut a cooldown short.
      if (current == S::ready || current == S::busy) return S::unhealthy;
      return std::nullopt;
    case ChildEvent::forward_failed:
      if (current == S::ready || current == S::busy) return S::unhealthy;
      return std::nullopt;
    case ChildEvent::slots_full:
      if (current == S::ready) return S::busy;
      return std::nullopt;
    case ChildEvent::slot_freed:
      if (current == S::busy) return S::ready;
      return std::nullopt;
    case ChildEvent::rate_limited:
    case ChildEvent::ejected:
      // Only a serving child answers requests; an unhealthy one stays unhealthy.
      if (current == S::ready || current == S::busy) return S::cooling;
      return std::nullopt;
    case ChildEvent::quota_signal:
      // A spent account stays spent whatever its health says; a cooling child
      // gets the later deadline (the registry has already set it).
      if (current == S::ready || current == S::busy || current == S::unhealthy || current == S::cooling) {
        return S::cooling;
      }
      return std::nullopt;
    case ChildEvent::cooldown_over:
      if (current == S::cooling) return S::ready;
      return std::nullopt;
    case ChildEvent::drain:
      if (alive && current != S::draining) return S::draining;
      // A slot with no process left is retired at once when it is stopped for good.
      if (retire_on_exit && (current == S::exited || current == S::backoff || current == S::needs_relogin)) {
        return S::retired;
      }
      return std::nullopt;
    case ChildEvent::exited:
      if (!alive) return std::nullopt;
      return current == S::draining && retire_on_exit ? S::retired : S::exited;
    case ChildEvent::restart_scheduled:
      // From failed or retired only by an operator's restart; from needs_relogin
      // when a reload finds a new profile file (or an operator asks).
      if (current == S::exited || current == S::failed || current == S::retired || current == S::needs_relogin) {
        return S::backoff;
      }
      return std::nullopt;
    case ChildEvent::parked:
      // A logged-out account is never parked: it waits for a new profile instead.
      if (current == S::exited || current == S::backoff) return S::failed;
      return std::nullopt;
    case ChildEvent::ready_timeout:
      if (current == S::starting) return S::unhealthy;
      return std::nullopt;
    case ChildEvent::undrain:
      // Still running: back through a health check. Stopped: start it again.
      if (current == S::draining) return S::unhealthy;
      if (current == S::retired) return S::backoff;
      return std::nullopt;
    case ChildEvent::recycled:
      // Out of rotation until its process is gone; the exit then restarts it.
      // A draining child is being stopped already.
      if (alive && current != S::draining) return S::unhealthy;
      return std::nullopt;
    case ChildEvent::logged_out:
      // Reported once the process is gone (a running one's exit decides): a
      // restart would only fail the same way, so wait for a new profile file.
      // failed and retired stay: parked or stopped for good.
      if (current == S::exited || current == S::backoff) return S::needs_relogin;
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace coordinator
