#pragma once

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "coordinator/child.hpp"

namespace coordinator {

// When a child that answers with server errors (5xx other than the 502/503/504
// that fail over) is taken out of rotation: after `eject_after` of them in a
// row, for `base`, doubled for each further ejection with no good answer in
// between, up to `longest`.
struct OutlierPolicy {
  std::uint64_t eject_after = 5;  // 0 = never eject
  Clock::duration base = std::chrono::seconds(30);
  Clock::duration longest = std::chrono::seconds(300);
};

// The fleet: one Child per slot, their states, request slots, and the
// round-robin choice. No I/O: callers report what they saw; the registry
// applies the state machine (next_state) and logs each change once.
class Registry {
 public:
  explicit Registry(std::vector<Child> children);

  std::size_t size() const { return children_.size(); }
  const Child& at(std::size_t index) const { return children_.at(index); }
  const std::deque<Child>& children() const { return children_; }
  // A new slot (live reload); references to existing children stay valid.
  std::size_t add(Child child);
  std::optional<std::size_t> find(std::string_view name) const;

  // Applies `event`; returns true when the state changed. `reason` becomes
  // last_error for changes away from service.
  bool apply(std::size_t index, ChildEvent event, std::string_view reason, Clock::time_point now);

  bool report_health(std::size_t index, bool healthy, std::string_view error, std::uint64_t external_queue,
                     Clock::time_point now);
  bool report_forward_failure(std::size_t index, std::string_view error, Clock::time_point now);
  bool report_rate_limited(std::size_t index, Clock::time_point until, Clock::time_point now);
  // A quota signal (a 530, an in-stream quota or auth-rotation error): the
  // account is spent, so the child cools down until `until`.
  bool report_quota_exhausted(std::size_t index, Clock::time_point until, std::string_view why, Clock::time_point now);
  // A quota signal or a 429 for a request that named `model`: that model of the
  // account cools down until `until`, its other models are still routed to it.
  // When every model it lists is cooling, the child is `cooling` as a whole
  // until the first of them ends.
  void report_model_limited(std::size_t index, std::string_view model, Clock::time_point until, CoolingCause cause,
                            std::string_view why, Clock::time_point now);
  // The control plane's timer for child `index` fired: ended model cooldowns
  // go, and a whole cooldown that has ended is over.
  void end_cooldowns(std::size_t index, Clock::time_point now);
  // Until when child `index` cannot take a request for `model` (empty: one
  // that names none) because its account is spent or rate limited; nothing
  // when it is not cooling for it (ejections do not count: not the account).
  std::optional<Clock::time_point> cooling_for(std::size_t index, std::string_view model, Clock::time_point now) const;
  // The first end of such a cooldown among the untried children that may serve `model`.
  std::optional<Clock::time_point> first_cooldown_end(const std::vector<bool>& tried, std::string_view model,
                                                      Clock::time_point now) const;
  // Cooldowns read back from the state file for profile `name` (applied now if
  // it holds a slot, else when it takes one).
  void restore_cooldowns(const std::string& name, std::vector<ModelCooldown> cooldowns, Clock::time_point now);
  // The cooldowns of profiles that hold no slot now, for the state file.
  template <class Visit>
  void for_each_resting_cooldowns(Visit visit) const {
    for (const auto& [name, cooldowns] : resting_cooldowns_) visit(name, cooldowns);
  }
  // The status of an answer the child gave a client. Returns the end of the
  // ejection when this answer got the child ejected (state cooling). The last
  // serving child is never ejected: that would only turn its errors into 503s.
  std::optional<Clock::time_point> report_answer(std::size_t index, unsigned status, const OutlierPolicy& policy,
                                                 Clock::time_point now);
  bool report_spawned(std::size_t index, int pid, Clock::time_point now);
  bool report_exit(std::size_t index, std::string_view how, Clock::time_point now);

  // A new profile takes over a slot (pool rotation).
  void assign_profile(std::size_t index, std::string name, std::filesystem::path profile);
  void set_retire_on_exit(std::size_t index, bool retire) { children_.at(index).retire_on_exit = retire; }
  void count_restart(std::size_t index) { ++children_.at(index).restarts; }
  // Records why a child is not running without a change of state (a start that could not happen).
  void note_error(std::size_t index, std::string_view reason) {
    children_.at(index).last_error = std::string(reason.substr(0, 200));
  }

  // Request slots. A child has a free slot while it is ready, below
  // max_in_flight and its own queue (/health details.queueLength) is empty.
  bool has_free_slot(std::size_t index) const;
  void take_slot(std::size_t index, Clock::time_point now);
  void free_slot(std::size_t index, bool served, Clock::time_point now);

  // The next child after the last one picked, skipping `tried`: with a free
  // slot when `need_free_slot`, else any serving (ready or busy) child. With a
  // `model`, only a child that may serve it (ModelSet::may_serve).
  // A child cooling for `model` at `now` is skipped.
  std::optional<std::size_t> pick(const std::vector<bool>& tried, bool need_free_slot, std::string_view model = {},
                                  Clock::time_point now = {});
  bool any_serving(const std::vector<bool>& tried, std::string_view model = {}, Clock::time_point now = {}) const;

  // What a child's /v1/models listed (a set that is not `known` is ignored:
  // the last known list stays). Waiters are pumped: their choice may change.
  void report_models(std::size_t index, ModelSet models);
  // The model sets of the serving children, and of those cooling for their
  // account (their models exist, only not now), in slot order (for the union).
  std::vector<const ModelSet*> serving_model_sets() const;
  // True when children serve (or cool) but none of them may serve `model`: a 404, not a wait.
  bool no_serving_child_has(std::string_view model) const;

  // Called after any change that may let a waiting request go (a child
  // became ready, a slot came free).
  void set_capacity_listener(std::function<void()> listener) { capacity_listener_ = std::move(listener); }
  // Called when a child starts serving (its model list is read then).
  void set_serving_listener(std::function<void(std::size_t)> listener) { serving_listener_ = std::move(listener); }
  // Called when a child goes cooling (429, quota, ejection) or its cooldown
  // moves: the control plane owns the timer that ends it (CooldownTimers).
  void set_cooling_listener(std::function<void(std::size_t, Clock::time_point)> listener) {
    cooling_listener_ = std::move(listener);
  }

  // Which child holds a req_id, as seen in streamed chunk ids.
  void remember_req_id(const std::string& req_id, std::size_t index) { req_owners_[req_id] = index; }
  void forget_req_id(const std::string& req_id) { req_owners_.erase(req_id); }
  std::optional<std::size_t> owner_of(const std::string& req_id) const;

  std::size_t serving_count() const;
  std::vector<std::string> names_serving(bool serving) const;

 private:
  void notify_capacity();
  void notify_cooling(std::size_t index);
  void cool_if_every_model_is(std::size_t index, CoolingCause cause, std::string_view why, Clock::time_point now);

  std::deque<Child> children_;  // a deque: adding a slot never moves the others
  std::size_t cursor_ = 0;
  std::function<void()> capacity_listener_;
  std::function<void(std::size_t, Clock::time_point)> cooling_listener_;
  std::function<void(std::size_t)> serving_listener_;
  std::unordered_map<std::string, std::size_t> req_owners_;
  // Cooldowns of profiles that hold no slot now (rotated out, or read from the
  // state file before their slot exists), by profile name.
  std::map<std::string, ModelCooldowns, std::less<>> resting_cooldowns_;
};

}  // namespace coordinator
