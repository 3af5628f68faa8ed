#pragma once

#include <memory>

#include "coordinator/alert_sender.hpp"
#include "coordinator/alert_tracker.hpp"
#include "coordinator/asio.hpp"
#include "coordinator/profile_facts_cache.hpp"
#include "coordinator/registry.hpp"

namespace coordinator {

// The control plane's once-a-second look at the fleet for what an operator
// must hear about: it refreshes the profile facts (only files whose stamp
// changed), logs each expiring profile once per UTC day, and turns the
// tracker's events into log lines and webhook posts. Nothing here is on the
// request path.
class FleetWatch {
 public:
  FleetWatch(Executor executor, Registry& registry, ProfileFactsCache& profiles, AlertSender& sender);
  FleetWatch(const FleetWatch&) = delete;
  FleetWatch& operator=(const FleetWatch&) = delete;

  // One look now, then one a second.
  void start();
  void stop();
  // One look (also for the tests).
  void tick();

 private:
  static awaitable<void> keep(FleetWatch* watch, std::shared_ptr<bool> stopped);

  Executor executor_;
  Registry& registry_;
  ProfileFactsCache& profiles_;
  AlertSender& sender_;
  AlertTracker tracker_;
  std::unique_ptr<SteadyTimer> timer_;
  std::shared_ptr<bool> stopped_ = std::make_shared<bool>(false);
};

}  // namespace coordinator
