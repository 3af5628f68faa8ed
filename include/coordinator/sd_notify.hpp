#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace coordinator {

// Sends one sd_notify(3) message ("READY=1", "STOPPING=1", "WATCHDOG=1") to
// $NOTIFY_SOCKET, if systemd gave one. Returns false when there is none or it failed.
bool sd_notify(std::string_view state);

// The watchdog interval systemd expects pings at ($WATCHDOG_USEC, for this pid).
std::optional<std::chrono::microseconds> sd_watchdog_interval();

}  // namespace coordinator
