#include "coordinator/registry.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace coordinator {

Registry::Registry(std::vector<Child> children)
    : children_(std::make_move_iterator(children.begin()), std::make_move_iterator(children.end())) {}

std::size_t Registry::add(Child child) {
  children_.push_back(std::move(child));
  return children_.size() - 1;
}

std::optional<std::size_t> Registry::find(std::string_view name) const {
  for (std::size_t i = 0; i < children_.size(); ++i) {
    if (children_[i].name == name) return i;
  }
  return std::nullopt;
}

bool Registry::apply(std::size_t index, ChildEvent event, std::string_view reason, Clock::time_point now) {
  Child& child = children_.at(index);
  const auto next = next_state(child.state, event, child.retire_on_exit);
  if (!next || *next == child.state) return false;
  const ChildState previous = child.state;
  child.state = *next;
  child.state_since = now;
  if (!reason.empty()) child.last_error = std::string(reason.substr(0, 200));
  if (*next == ChildState::ready && !child.ever_ready) {
    child.ever_ready = true;
    child.last_error.clear();  // start-up probe failures are not worth reporting once it serves
  }
  if (is_serving(*next) && !is_serving(previous)) child.serving_since = now;
  const bool routine = event == ChildEvent::slots_full || event == ChildEvent::slot_freed;
  if (routine) {
    spdlog::debug("child {} {} -> {}", child.name, to_string(previous), to_string(*next));
  } else if (reason.empty()) {
    spdlog::info("child {} {} -> {}", child.name, to_string(previous), to_string(*next));
  } else {
    spdlog::warn("child {} {} -> {}: {}", child.name, to_string(previous), to_string(*next), reason);
  }
  if (*next == ChildState::ready) notify_capacity();
  if (is_serving(*next) && !is_serving(previous) && serving_listener_) serving_listener_(index);
  return true;
}

bool Registry::report_health(std::size_t index, bool healthy, std::string_view error, std::uint64_t external_queue,
                             Clock::time_point now) {
  Child& child = children_.at(index);
  if (!healthy) {
    ++child.health_failures;
    if (child.state == ChildState::starting) child.last_error = std::string(error.substr(0, 200));
    return apply(index, ChildEvent::health_failed, error, now);
  }
  const bool had_queue = child.external_queue > 0;
  child.external_queue = external_queue;
  const bool changed = apply(index, ChildEvent::health_ok, {}, now);
  if (had_queue && external_queue == 0) notify_capacity();
  return changed;
}

bool Registry::report_forward_failure(std::size_t index, std::string_view error, Clock::time_point now) {
  Child& child = children_.at(index);
  ++child.failures;
  if (!is_serving(child.state)) {
    child.last_error = std::string(error.substr(0, 200));
    return false;
  }
  return apply(index, ChildEvent::forward_failed, error, now);
}

bool Registry::report_rate_limited(std::size_t index, Clock::time_point until, Clock::time_point now) {
  Child& child = children_.at(index);
  child.cooling_until = until;
  if (is_serving(child.state)) child.cooling_cause = CoolingCause::rate_limited;
  ++child.cooldowns;
  const auto seconds = std::chrono::duration<double>(until - now).count();
  const bool changed =
      apply(index, ChildEvent::rate_limited, fmt::format("rate limited (429) for {:.0f} s", seconds), now);
  if (changed) notify_cooling(index);
  return changed;
}

bool Registry::report_quota_exhausted(std::size_t index, Clock::time_point until, std::string_view why,
                                      Clock::time_point now) {
  Child& child = children_.at(index);
  // A cooldown already running for longer (an ejection's) keeps its end.
  if (child.state != ChildState::cooling || until > child.cooling_until) child.cooling_until = until;
  child.cooling_cause = CoolingCause::quota;
  ++child.quota_cooldowns;
  const auto seconds = std::chrono::duration<double>(until - now).count();
  const bool changed =
      apply(index, ChildEvent::quota_signal, fmt::format("{}; cooling down for {:.0f} s", why, seconds), now);
  // Also when it was cooling already: its deadline moved.
  if (child.state == ChildState::cooling) notify_cooling(index);
  return changed;
}

std::optional<Clock::time_point> Registry::report_answer(std::size_t index, unsigned status,
                                                         const OutlierPolicy& policy, Clock::time_point now) {
  Child& child = children_.at(index);
  if (status < 500) {
    child.consecutive_server_errors = 0;
    child.ejection_streak = 0;
    return std::nullopt;
  }
  ++child.consecutive_server_errors;
  if (policy.eject_after == 0 || child.consecutive_server_errors < policy.eject_after) return std::nullopt;
  if (!is_serving(child.state) || serving_count() < 2) return std::nullopt;
  auto duration = policy.base;
  for (std::uint64_t i = 0; i < child.ejection_streak && duration < policy.longest; ++i) duration *= 2;
  duration = std::max(policy.base, std::min(duration, policy.longest));
  const auto run = child.consecutive_server_errors;
  child.consecutive_server_errors = 0;
  ++child.ejection_streak;
  ++child.ejections;
  child.cooling_until = now + duration;
  child.cooling_cause = CoolingCause::ejected;
  apply(index, ChildEvent::ejected,
        fmt::format("ejected for {:g} s after {} server errors in a row (last {})",
                    std::chrono::duration<double>(duration).count(), run, status),
        now);
  notify_cooling(index);
  return child.cooling_until;
}

void Registry::notify_cooling(std::size_t index) {
  if (!cooling_listener_) return;
  const Child& child = children_.at(index);
  auto next = child.model_cooldowns.first_end();
  if (child.state == ChildState::cooling && (!next || child.cooling_until < *next)) next = child.cooling_until;
  if (next) cooling_listener_(index, *next);
}

void Registry::report_model_limited(std::size_t index, std::string_view model, Clock::time_point until,
                                    CoolingCause cause, std::string_view why, Clock::time_point now) {
  Child& child = children_.at(index);
  if (cause == CoolingCause::quota) ++child.quota_cooldowns;
  ++child.cooldowns;
  child.model_cooldowns.add(model, until, cause, why);
  spdlog::warn("child {}: model {} cooling down for {:.0f} s: {}", child.name, model_key(model),
               std::chrono::duration<double>(until - now).count(), why);
  cool_if_every_model_is(index, cause, why, now);
  notify_cooling(index);
  notify_capacity();  // waiters for this model may now have to be refused or wait longer
}

// Every model it lists is cooling: no request can go to it, so it is `cooling`
// as a whole until the first of them ends.
void Registry::cool_if_every_model_is(std::size_t index, CoolingCause cause, std::string_view why,
                                      Clock::time_point now) {
  Child& child = children_.at(index);
  if (!child.model_cooldowns.covers_every(child.models, now)) return;
  const auto first = child.model_cooldowns.first_end_of(child.models);
  if (!first) return;
  if (child.state != ChildState::cooling || *first > child.cooling_until) child.cooling_until = *first;
  child.cooling_cause = cause;
  const auto event = cause == CoolingCause::rate_limited ? ChildEvent::rate_limited : ChildEvent::quota_signal;
  apply(index, event,
        fmt::format("{}; every model it lists is cooling down, the first is back in {:.0f} s", why,
                    std::chrono::duration<double>(child.cooling_until - now).count()),
        now);
}

void Registry::end_cooldowns(std::size_t index, Clock::time_point now) {
  Child& child = children_.at(index);
  const bool dropped = child.model_cooldowns.drop_ended(now) > 0;
  if (child.state == ChildState::cooling && child.cooling_until <= now) {
    child.cooling_cause = CoolingCause::none;
    apply(index, ChildEvent::cooldown_over, {}, now);
  }
  if (dropped) notify_capacity();  // waiters for a model that is back
  notify_cooling(index);           // the next end, if any
}

std::optional<Clock::time_point> Registry::cooling_for(std::size_t index, std::string_view model,
                                                       Clock::time_point now) const {
  const Child& child = children_.at(index);
  std::optional<Clock::time_point> until;
  if (const ModelCooldown* cooldown = child.model_cooldowns.find(model, now)) until = cooldown->until;
  const bool account_cooling =
      child.state == ChildState::cooling && child.cooling_until > now &&
      (child.cooling_cause == CoolingCause::quota || child.cooling_cause == CoolingCause::rate_limited);
  // Cooling as a whole (its account, or every model it lists): not before that ends either.
  if (account_cooling && (!until || child.cooling_until > *until)) until = child.cooling_until;
  return until;
}

std::optional<Clock::time_point> Registry::first_cooldown_end(const std::vector<bool>& tried, std::string_view model,
                                                              Clock::time_point now) const {
  std::optional<Clock::time_point> first;
  for (std::size_t i = 0; i < children_.size(); ++i) {
    if (i < tried.size() && tried[i]) continue;
    const Child& child = children_[i];
    if (!is_serving(child.state) && child.state != ChildState::cooling) continue;
    if (!child.models.may_serve(model)) continue;
    const auto until = cooling_for(i, model, now);
    if (until && (!first || *until < *first)) first = until;
  }
  return first;
}

void Registry::restore_cooldowns(const std::string& name, std::vector<ModelCooldown> cooldowns, Clock::time_point now) {
  ModelCooldowns restored;
  for (ModelCooldown& cooldown : cooldowns) {
    if (cooldown.until > now) restored.add(cooldown.model, cooldown.until, cooldown.cause, cooldown.reason);
  }
  if (restored.empty()) return;
  if (const auto index = find(name)) {
    Child& child = children_[*index];
    for (const ModelCooldown& cooldown : restored.entries()) {
      child.model_cooldowns.add(cooldown.model, cooldown.until, cooldown.cause, cooldown.reason);
    }
    cool_if_every_model_is(*index, CoolingCause::quota, "cooling down since before the restart", now);
    notify_cooling(*index);
    return;
  }
  resting_cooldowns_[name] = std::move(restored);
}

bool Registry::report_spawned(std::size_t index, int pid, Clock::time_point now) {
  Child& child = children_.at(index);
  child.pid = pid;
  child.started_at = now;
  child.external_queue = 0;
  child.consecutive_server_errors = 0;  // a new process starts a new run (the streak stays)
  child.retire_on_exit = false;
  if (child.state == ChildState::starting) {
    child.state_since = now;
    return false;
  }
  return apply(index, ChildEvent::spawned, {}, now);
}

bool Registry::report_exit(std::size_t index, std::string_view how, Clock::time_point now) {
  Child& child = children_.at(index);
  const bool planned = child.state == ChildState::draining;
  child.pid = 0;  // the pid is in the log line; a dead one would mislead here
  return apply(index, ChildEvent::exited, planned ? std::string_view{} : how, now);
}

void Registry::assign_profile(std::size_t index, std::string name, std::filesystem::path profile) {
  Child& child = children_.at(index);
  child.ever_ready = false;
  child.last_error.clear();
  child.models = {};  // another account may list other models
  // The cooldowns belong to the account: they rest with the profile that leaves
  // and come back with the one that takes the slot.
  if (!child.model_cooldowns.empty()) resting_cooldowns_[child.name] = std::move(child.model_cooldowns);
  child.model_cooldowns.clear();
  child.cooling_cause = CoolingCause::none;
  child.name = std::move(name);
  child.profile = std::move(profile);
  if (const auto resting = resting_cooldowns_.find(child.name); resting != resting_cooldowns_.end()) {
    child.model_cooldowns = std::move(resting->second);
    resting_cooldowns_.erase(resting);
    notify_cooling(index);
  }
}

bool Registry::has_free_slot(std::size_t index) const {
  const Child& child = children_.at(index);
  return child.state == ChildState::ready && child.in_flight < child.max_in_flight && child.external_queue == 0;
}

void Registry::take_slot(std::size_t index, Clock::time_point now) {
  Child& child = children_.at(index);
  ++child.in_flight;
  if (child.in_flight >= child.max_in_flight) apply(index, ChildEvent::slots_full, {}, now);
}

void Registry::free_slot(std::size_t index, bool served, Clock::time_point now) {
  Child& child = children_.at(index);
  if (child.in_flight > 0) --child.in_flight;
  if (served) ++child.served;
  if (child.in_flight < child.max_in_flight) apply(index, ChildEvent::slot_freed, {}, now);
  notify_capacity();
}

std::optional<std::size_t> Registry::pick(const std::vector<bool>& tried, bool need_free_slot, std::string_view model,
                                          Clock::time_point now) {
  const std::size_t n = children_.size();
  for (std::size_t step = 0; step < n; ++step) {
    const std::size_t index = (cursor_ + step) % n;
    if (index < tried.size() && tried[index]) continue;
    const Child& child = children_[index];
    if (need_free_slot ? !has_free_slot(index) : !is_serving(child.state)) continue;
    if (!child.models.may_serve(model) || child.model_cooldowns.find(model, now) != nullptr) continue;
    cursor_ = (index + 1) % n;
    return index;
  }
  return std::nullopt;
}

bool Registry::any_serving(const std::vector<bool>& tried, std::string_view model, Clock::time_point now) const {
  for (std::size_t i = 0; i < children_.size(); ++i) {
    if (i < tried.size() && tried[i]) continue;
    const Child& child = children_[i];
    if (is_serving(child.state) && child.models.may_serve(model) && child.model_cooldowns.find(model, now) == nullptr) {
      return true;
    }
  }
  return false;
}

void Registry::report_models(std::size_t index, ModelSet models) {
  Child& child = children_.at(index);
  if (!models.known) return;
  if (models == child.models) {
    spdlog::debug("child {} lists the same {} model(s)", child.name, models.entries.size());
    return;
  }
  const bool first = !child.models.known;
  child.models = std::move(models);
  spdlog::info("child {} lists {} model(s){}", child.name, child.models.entries.size(), first ? "" : " (changed)");
  if (!child.model_cooldowns.empty()) {
    const auto now = Clock::now();
    const ModelCooldown& first = child.model_cooldowns.entries().front();
    cool_if_every_model_is(index, first.cause, first.reason, now);
    notify_cooling(index);
  }
  notify_capacity();  // a waiter for a model may now have a child, or none left
}

std::vector<const ModelSet*> Registry::serving_model_sets() const {
  std::vector<const ModelSet*> sets;
  for (const Child& child : children_) {
    if (is_serving(child.state) || child.state == ChildState::cooling) sets.push_back(&child.models);
  }
  return sets;
}

bool Registry::no_serving_child_has(std::string_view model) const {
  bool any = false;
  for (const Child& child : children_) {
    if (!is_serving(child.state) && child.state != ChildState::cooling) continue;
    if (child.models.may_serve(model)) return false;
    any = true;
  }
  return any;
}

std::optional<std::size_t> Registry::owner_of(const std::string& req_id) const {
  const auto found = req_owners_.find(req_id);
  if (found == req_owners_.end()) return std::nullopt;
  return found->second;
}

std::size_t Registry::serving_count() const {
  std::size_t count = 0;
  for (const auto& child : children_) count += is_serving(child.state) ? 1 : 0;
  return count;
}

std::vector<std::string> Registry::names_serving(bool serving) const {
  std::vector<std::string> names;
  for (const auto& child : children_) {
    if (is_serving(child.state) == serving) names.push_back(child.name);
  }
  return names;
}

void Registry::notify_capacity() {
  if (capacity_listener_) capacity_listener_();
}

}  // namespace coordinator
