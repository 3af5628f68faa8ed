#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/config.hpp"
#include "coordinator/registry.hpp"

namespace coordinator {

// A request waiting for a child. The dispatcher sets `granted` (with the
// slot already taken) or `refused` (no child could ever serve it), then calls `wake`.
struct Waiter {
  const std::vector<bool>* tried = nullptr;
  std::string_view model;  // only children that may serve it (empty: any)
  std::string_view key;    // whose request (its API key; empty without keys): keys take turns
  std::optional<std::size_t> granted;
  bool refused = false;
  std::function<void()> wake;
};

// Chooses the child for each request and keeps the FIFO of requests waiting
// for a free one. No I/O: it reads and updates the registry's request slots.
class Dispatcher {
 public:
  // `queue_timeout`: the longest a request waits for a cooldown to end.
  Dispatcher(Registry& registry, Balance balance, std::size_t max_queue,
             Clock::duration queue_timeout = std::chrono::seconds(300));

  // cooling: every child that could serve it is cooling for its account (quota,
  // 429) past the queue timeout; `cooling_until` is the first end.
  enum class Verdict { granted, wait, none, cooling };
  struct Choice {
    Verdict verdict = Verdict::none;
    std::size_t child = 0;
    Clock::time_point cooling_until{};
  };

  // A child for a request now (its slot taken), or whether it should wait.
  // least-busy: the next ready child with a free slot; wait while some
  // untried child is serving but busy. round-robin: the next serving child.
  // With a `model`, only children that may serve it and are not cooling for
  // it count (Registry::pick). When every one of those is cooling for it, the
  // request waits if the first cooldown ends within the queue timeout.
  Choice acquire(const std::vector<bool>& tried, std::string_view model = {});
  // A child for work that takes no slot (/v1/models): the next serving one.
  std::optional<std::size_t> pick_without_slot(const std::vector<bool>& tried);

  // False when the queue is full.
  bool enqueue(Waiter* waiter);
  void remove(Waiter* waiter);
  std::size_t queued() const { return queue_.size(); }

  void release(std::size_t child, bool served);
  // Hands free slots to waiters, the keys taking turns (round robin between
  // API keys, FIFO within one key: one key's hundred queued requests do not
  // hold back another key's one); refuses the ones no child can serve.
  void pump();

 private:
  Registry& registry_;
  Balance balance_;
  std::size_t max_queue_;
  Clock::duration queue_timeout_;
  Waiter* grant_next(Clock::time_point now);

  std::deque<Waiter*> queue_;
  std::vector<std::string> turns_;  // keys with waiters, the next to be served first
  bool pumping_ = false;
};

}  // namespace coordinator
