#include "coordinator/alert_tracker.hpp"

#include <algorithm>
#include <set>

#include "coordinator/model_catalog.hpp"
#include "coordinator/utc_time.hpp"

namespace coordinator {

using Wall = std::chrono::system_clock;

std::string_view to_string(AlertCause cause) {
  switch (cause) {
    case AlertCause::needs_relogin:
      return "needs_relogin";
    case AlertCause::quota_exhausted:
      return "quota_exhausted";
    case AlertCause::child_failed:
      return "child_failed";
    case AlertCause::profile_expiring:
      return "profile_expiring";
  }
  return "unknown";
}

AlertSnapshot alert_snapshot(const Registry& registry, const ProfileFactsCache* profiles, Clock::time_point now,
                             Wall::time_point wall_now) {
  AlertSnapshot snapshot;
  for (const Child& child : registry.children()) {
    AlertChildView view;
    view.name = child.name;
    view.state = child.state;
    view.models_known = child.models.known;
    for (const ModelEntry& entry : child.models.entries) view.models.push_back(entry.key);
    for (const ModelCooldown& cooldown : child.model_cooldowns.entries()) {
      // An ejection is the child's, not its account's: another start may serve.
      if (cooldown.until <= now || cooldown.cause == CoolingCause::ejected) continue;
      view.cooling_models.emplace_back(cooldown.model, wall_clock_of(cooldown.until, now, wall_now));
    }
    const bool account_cooling =
        child.state == ChildState::cooling &&
        (child.cooling_cause == CoolingCause::quota || child.cooling_cause == CoolingCause::rate_limited);
    if (account_cooling && child.cooling_until > now) {
      view.account_cooling_until = wall_clock_of(child.cooling_until, now, wall_now);
    }
    if (profiles != nullptr && !child.attached) {
      if (const auto* entry = profiles->find(child.name)) view.cookies_expire_at = entry->facts.earliest_expiry;
    }
    snapshot.children.push_back(std::move(view));
  }
  return snapshot;
}

namespace {

// In service, or out of it only for a while (its account cools down, or it is ejected).
bool takes_requests(ChildState state) {
  return is_serving(state) || state == ChildState::cooling;
}

bool may_serve(const AlertChildView& child, std::string_view model) {
  if (!child.models_known) return true;  // no list yet: the child takes any model
  return std::any_of(child.models.begin(), child.models.end(), [&](const std::string& key) { return key == model; });
}

// Until when `child` cannot serve `model` for its account; nothing when it can.
std::optional<Wall::time_point> cooling_until(const AlertChildView& child, std::string_view model) {
  std::optional<Wall::time_point> until = child.account_cooling_until;
  for (const auto& [key, end] : child.cooling_models) {
    if (key == model && (!until || end > *until)) until = end;
  }
  return until;
}

std::string recovered_message(AlertCause cause, const std::string& child, const std::string& model) {
  switch (cause) {
    case AlertCause::needs_relogin:
      return "child " + child + " is logged in again and serving";
    case AlertCause::child_failed:
      return "child " + child + " is serving again";
    case AlertCause::quota_exhausted:
      return "model " + model + " can be served again";
    case AlertCause::profile_expiring:
      return "profile " + child + ": its cookies no longer expire within the warning window";
  }
  return "recovered";
}

}  // namespace

std::map<AlertTracker::Key, AlertTracker::Active> AlertTracker::current_causes(const AlertSnapshot& snapshot,
                                                                               Wall::time_point wall_now) const {
  std::map<Key, Active> causes;
  std::set<std::string, std::less<>> present;
  const auto keep_or = [&](const Key& key, Active fresh) {
    const auto earlier = active_.find(key);
    causes.emplace(key, earlier != active_.end() ? earlier->second : std::move(fresh));
  };
  for (const AlertChildView& child : snapshot.children) {
    present.insert(child.name);
    if (child.state == ChildState::retired) {
      // Stopped for good (the shutdown, its profile removed): nothing cleared, nothing to announce.
      for (const auto& [key, active] : active_) {
        if (std::get<1>(key) == child.name) causes.emplace(key, active);
      }
      continue;
    }
    const bool serving = takes_requests(child.state);
    // A logged-out or parked child stays so until it serves again: a fixed
    // profile is `recovered` once its new child is ready, not when it starts.
    const Key relogin{AlertCause::needs_relogin, child.name, ""};
    if (child.state == ChildState::needs_relogin || (!serving && active_.contains(relogin))) {
      keep_or(relogin, {"child " + child.name +
                            ": its account is logged out; replace its profile file with a fresh "
                            "login, then reload (SIGHUP or POST /admin/reload)",
                        std::nullopt});
    }
    const Key failed{AlertCause::child_failed, child.name, ""};
    if (child.state == ChildState::failed || (!serving && active_.contains(failed))) {
      keep_or(failed, {"child " + child.name + " is parked as failed after too many restarts; POST /admin/children/" +
                           child.name + "/restart starts it",
                       std::nullopt});
    }
    if (child.cookies_expire_at && *child.cookies_expire_at - wall_now <= expiry_warning_) {
      const Key expiring{AlertCause::profile_expiring, child.name, ""};
      keep_or(expiring, {"profile " + child.name + ": a cookie expires at " + format_utc(*child.cookies_expire_at) +
                             "; log in again and replace the profile file before then",
                         child.cookies_expire_at});
    }
  }
  // A slot that took another profile (pool rotation): the profile it had keeps its causes, silently.
  for (const auto& [key, active] : active_) {
    if (!std::get<1>(key).empty() && !present.contains(std::get<1>(key))) causes.emplace(key, active);
  }

  // quota_exhausted: a model that some serving child cools for, and that every
  // serving child that may serve it cools for.
  std::set<std::string, std::less<>> models;
  for (const AlertChildView& child : snapshot.children) {
    if (!takes_requests(child.state)) continue;
    for (const auto& cooling : child.cooling_models) models.insert(cooling.first);
  }
  for (const std::string& model : models) {
    std::vector<std::string> names;
    std::optional<Wall::time_point> first_back;
    bool every_one_cooling = true;
    for (const AlertChildView& child : snapshot.children) {
      if (!takes_requests(child.state) || !may_serve(child, model)) continue;
      const auto until = cooling_until(child, model);
      if (!until) {
        every_one_cooling = false;
        break;
      }
      names.push_back(child.name);
      if (!first_back || *until < *first_back) first_back = *until;
    }
    if (!every_one_cooling || names.empty()) continue;
    std::string list;
    for (const auto& name : names) list += (list.empty() ? "" : ", ") + name;
    keep_or({AlertCause::quota_exhausted, "", model},
            {"no child can serve model " + model + " now: every child that serves it is cooling for it (" + list +
                 "); the first is back at " + format_utc(*first_back),
             std::nullopt});
  }
  return causes;
}

std::vector<AlertEvent> AlertTracker::update(const AlertSnapshot& snapshot, Wall::time_point wall_now) {
  std::map<Key, Active> next = current_causes(snapshot, wall_now);
  std::vector<AlertEvent> events;
  for (const auto& [key, active] : next) {
    if (active_.contains(key)) continue;
    const auto& [cause, child, model] = key;
    events.push_back({cause, false, child, model, active.message, wall_now, active.expires_at});
  }
  for (const auto& [key, active] : active_) {
    if (next.contains(key)) continue;
    const auto& [cause, child, model] = key;
    events.push_back({cause, true, child, model, recovered_message(cause, child, model), wall_now, std::nullopt});
  }
  active_ = std::move(next);
  return events;
}

std::vector<std::pair<std::string, Wall::time_point>> AlertTracker::expiry_warnings_due(const AlertSnapshot& snapshot,
                                                                                        Wall::time_point wall_now) {
  std::vector<std::pair<std::string, Wall::time_point>> due;
  const auto today = utc_day(wall_now);
  for (const AlertChildView& child : snapshot.children) {
    if (child.state == ChildState::retired || !child.cookies_expire_at) continue;
    if (*child.cookies_expire_at - wall_now > expiry_warning_) continue;
    auto [logged, fresh] = expiry_logged_.try_emplace(child.name, today);
    if (!fresh && logged->second == today) continue;
    logged->second = today;
    due.emplace_back(child.name, *child.cookies_expire_at);
  }
  return due;
}

}  // namespace coordinator
