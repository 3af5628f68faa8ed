#pragma once

#include <memory>

#include <spdlog/logger.h>

namespace coordinator {

// The coordinator's logger, on stderr, and its access logger on the same sink.
// On a terminal every line goes out at once, in colour. Otherwise (a pipe to
// journald or Docker, a file) access lines are gathered and written with the
// next other line, per 16 KiB, or within a second: one write(2) per access
// line was a system call per request. Every other line is written at once.
std::shared_ptr<spdlog::logger> make_coordinator_logger();

// The access log (the default logger before make_coordinator_logger).
spdlog::logger& access_logger();

}  // namespace coordinator
