#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "coordinator/child.hpp"
#include "coordinator/profile_facts_cache.hpp"
#include "coordinator/registry.hpp"

namespace coordinator {

// What an alert is about (--webhook).
enum class AlertCause {
  needs_relogin,     // a child's account is logged out
  quota_exhausted,   // a model no child can serve now: every child that serves it is cooling for it
  child_failed,      // a child parked as failed after its restart budget
  profile_expiring,  // a profile's first cookie expires within --expiry-warning
};
std::string_view to_string(AlertCause cause);

// The part of one child's state the alerts look at, copied out of the
// registry each tick (alert_snapshot), so that the tracker is pure.
struct AlertChildView {
  std::string name;
  ChildState state = ChildState::starting;
  bool models_known = false;
  std::vector<std::string> models;  // model keys its /v1/models listed
  // Models its account cannot serve now (a quota signal or a 429), each with when it is back.
  std::vector<std::pair<std::string, std::chrono::system_clock::time_point>> cooling_models;
  // Cooling as a whole for its account (quota or 429): no model now, until then.
  std::optional<std::chrono::system_clock::time_point> account_cooling_until;
  std::optional<std::chrono::system_clock::time_point> cookies_expire_at;  // its profile's first cookie expiry
};
struct AlertSnapshot {
  std::vector<AlertChildView> children;
};
AlertSnapshot alert_snapshot(const Registry& registry, const ProfileFactsCache* profiles, Clock::time_point now,
                             std::chrono::system_clock::time_point wall_now);

// One event to send: a cause that began, or (recovered) one that cleared.
struct AlertEvent {
  AlertCause cause = AlertCause::needs_relogin;
  bool recovered = false;
  std::string child;  // empty: about no one child (quota_exhausted)
  std::string model;  // empty: none
  std::string message;
  std::chrono::system_clock::time_point time;
  std::optional<std::chrono::system_clock::time_point> expires_at;  // profile_expiring: the first cookie expiry

  // "needs_relogin", ..., or "recovered".
  std::string_view name() const { return recovered ? std::string_view("recovered") : to_string(cause); }
};

// Which causes are active now, compared with those of the last tick: one
// event when a cause begins, one `recovered` when it clears, nothing in
// between. No I/O and no clock of its own (both are given), so the tests step it.
class AlertTracker {
 public:
  explicit AlertTracker(std::chrono::system_clock::duration expiry_warning) : expiry_warning_(expiry_warning) {}

  std::vector<AlertEvent> update(const AlertSnapshot& snapshot, std::chrono::system_clock::time_point wall_now);

  // The expiring profiles not yet warned about on `wall_now`'s UTC day, with
  // their first cookie expiry: the caller logs each (once per UTC day and profile).
  std::vector<std::pair<std::string, std::chrono::system_clock::time_point>> expiry_warnings_due(
      const AlertSnapshot& snapshot, std::chrono::system_clock::time_point wall_now);

  std::size_t active_count() const { return active_.size(); }

 private:
  using Key = std::tuple<AlertCause, std::string, std::string>;  // cause, child, model
  struct Active {
    std::string message;
    std::optional<std::chrono::system_clock::time_point> expires_at;
  };
  std::map<Key, Active> current_causes(const AlertSnapshot& snapshot,
                                       std::chrono::system_clock::time_point wall_now) const;

  std::chrono::system_clock::duration expiry_warning_;
  std::map<Key, Active> active_;
  std::map<std::string, std::chrono::sys_days> expiry_logged_;  // profile -> the UTC day it was last warned about
};

}  // namespace coordinator
