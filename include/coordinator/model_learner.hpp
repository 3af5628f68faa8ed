#pragma once

#include <deque>

#include "coordinator/asio.hpp"
#include "coordinator/config.hpp"
#include "coordinator/registry.hpp"

namespace coordinator {

// The learner's memory of one child between two looks.
struct ModelsSchedule {
  bool was_serving = false;  // serving at the last look
  Clock::time_point due{};   // the next read is due then
};

// What to do for one child now: read its /v1/models, or look again at `next`.
struct ModelsStep {
  bool read_now = false;
  Clock::time_point next{};
};

// Read at once when a child starts serving, then every `interval`; only while
// it is idle (ready, nothing in flight, nothing in its own queue), because the
// real child handles the call beside the page's work. Pure: updates `schedule`.
ModelsStep plan_models_read(const Child& child, ModelsSchedule& schedule, Clock::time_point now,
                            Clock::duration interval);
// After a read: a list read makes the next one due after `interval`; a failed
// read, or one with no list yet, is tried again sooner while nothing is known.
void note_models_read(ModelsSchedule& schedule, bool listed, bool known_before, Clock::time_point now,
                      Clock::duration interval);

// Learns each child's models from its GET /v1/models and reports them to the
// registry (Registry::report_models), which routing reads. A failed read keeps
// the last known list and logs one line.
class ModelLearner {
 public:
  ModelLearner(net::io_context& io, const Config& config, Registry& registry);
  void start();
  // Starts learning a slot added after start (live reload).
  void watch(std::size_t index);
  // The child started serving: read its list now rather than at the next look.
  void wake(std::size_t index);
  void stop();

 private:
  struct Watch {
    ModelsSchedule schedule;
    SteadyTimer* timer = nullptr;  // the loop's timer while it waits
    bool woken = false;
    unsigned failures_in_row = 0;  // failed reads since the last answer
  };
  awaitable<void> learn_child(std::size_t index);
  awaitable<void> read_models(std::size_t index);

  net::io_context& io_;
  const Config& config_;
  Registry& registry_;
  std::deque<Watch> watches_;  // by slot; a deque: adding one never moves the others
  bool stopping_ = false;
};

}  // namespace coordinator
