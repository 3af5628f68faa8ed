#pragma once

#include <memory>
#include <vector>

#include "coordinator/asio.hpp"
#include "coordinator/registry.hpp"

namespace coordinator {

// The control plane's timers that end a child's time in `cooling` (a 429, a
// quota signal, an ejection). The data path only reports what a child did to
// the registry; the registry tells this class the new deadline, and this class
// alone applies `cooldown_over` when it has passed. One timer per child, moved
// when the deadline moves.
class CooldownTimers {
 public:
  CooldownTimers(Executor executor, Registry& registry);
  CooldownTimers(const CooldownTimers&) = delete;
  CooldownTimers& operator=(const CooldownTimers&) = delete;
  ~CooldownTimers();

  // Ends child `index`'s cooldown at `until`, unless something else changed its state meanwhile.
  void schedule(std::size_t index, Clock::time_point until);

 private:
  void expired(std::size_t index);

  Executor executor_;
  Registry& registry_;
  std::vector<std::unique_ptr<SteadyTimer>> timers_;
};

}  // namespace coordinator
