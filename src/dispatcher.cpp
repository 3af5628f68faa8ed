#include "coordinator/dispatcher.hpp"

#include <algorithm>

namespace coordinator {

Dispatcher::Dispatcher(Registry& registry, Balance balance, std::size_t max_queue, Clock::duration queue_timeout)
    : registry_(registry), balance_(balance), max_queue_(max_queue), queue_timeout_(queue_timeout) {}

Dispatcher::Choice Dispatcher::acquire(const std::vector<bool>& tried, std::string_view model) {
  const bool need_free_slot = balance_ == Balance::least_busy;
  const auto now = Clock::now();
  // Requests already waiting go first.
  if (!need_free_slot || queue_.empty()) {
    if (const auto child = registry_.pick(tried, need_free_slot, model, now)) {
      registry_.take_slot(*child, now);
      return {Verdict::granted, *child};
    }
  }
  if (need_free_slot && registry_.any_serving(tried, model, now)) return {Verdict::wait, 0};
  // Only cooldowns stand in the way: wait for the first to end, if it ends in time.
  if (const auto first_end = registry_.first_cooldown_end(tried, model, now)) {
    if (*first_end - now <= queue_timeout_) return {Verdict::wait, 0};
    return {Verdict::cooling, 0, *first_end};
  }
  return {Verdict::none, 0};
}

std::optional<std::size_t> Dispatcher::pick_without_slot(const std::vector<bool>& tried) {
  return registry_.pick(tried, false);
}

bool Dispatcher::enqueue(Waiter* waiter) {
  if (queue_.size() >= max_queue_) return false;
  queue_.push_back(waiter);
  if (std::find(turns_.begin(), turns_.end(), waiter->key) == turns_.end()) turns_.emplace_back(waiter->key);
  pump();
  return true;
}

void Dispatcher::remove(Waiter* waiter) {
  queue_.erase(std::remove(queue_.begin(), queue_.end(), waiter), queue_.end());
}

void Dispatcher::release(std::size_t child, bool served) {
  registry_.free_slot(child, served, Clock::now());
}

void Dispatcher::pump() {
  // take_slot changes states, which calls back into pump through the
  // registry's capacity listener: one pass at a time.
  if (pumping_ || queue_.empty()) return;
  pumping_ = true;
  const auto now = Clock::now();
  // Waiters no child could ever serve are refused, wherever they stand.
  for (auto it = queue_.begin(); it != queue_.end();) {
    Waiter* waiter = *it;
    if (registry_.any_serving(*waiter->tried, waiter->model, now) ||
        registry_.first_cooldown_end(*waiter->tried, waiter->model, now)) {
      ++it;
      continue;
    }
    waiter->refused = true;
    it = queue_.erase(it);
    if (waiter->wake) waiter->wake();
  }
  while (Waiter* granted = grant_next(now)) {
    if (granted->wake) granted->wake();
  }
  pumping_ = false;
}

// The next waiter a free child can take, its slot taken: the keys in turn (the
// one served longest ago first), the first such waiter of that key.
Waiter* Dispatcher::grant_next(Clock::time_point now) {
  for (std::size_t turn = 0; turn < turns_.size();) {
    const std::string_view key = turns_[turn];
    bool key_waits = false;
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      Waiter* waiter = *it;
      if (waiter->key != key) continue;
      key_waits = true;
      const auto child = registry_.pick(*waiter->tried, true, waiter->model, now);
      if (!child) continue;
      registry_.take_slot(*child, now);
      waiter->granted = *child;
      queue_.erase(it);
      // This key's turn is over: it goes to the back.
      std::rotate(turns_.begin() + static_cast<std::ptrdiff_t>(turn),
                  turns_.begin() + static_cast<std::ptrdiff_t>(turn) + 1, turns_.end());
      return waiter;
    }
    if (key_waits) {
      ++turn;
    } else {
      turns_.erase(turns_.begin() + static_cast<std::ptrdiff_t>(turn));  // nobody of that key waits any more
    }
  }
  return nullptr;
}

}  // namespace coordinator
