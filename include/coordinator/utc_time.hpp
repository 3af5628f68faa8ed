#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace coordinator {

// Wall-clock times written to files and admin answers, always in UTC, so that a
// restart (or another machine) reads back the same instant.

// "2024-05-01T12:34:56.789Z" (milliseconds; finer parts are dropped).
std::string format_utc(std::chrono::system_clock::time_point when);

// Reads what format_utc writes, with 0 to 9 fraction digits. Years outside
// 1970..2200 are refused: they are no real timestamp, and beyond 2262 the
// nanosecond clock would overflow.
std::optional<std::chrono::system_clock::time_point> parse_utc(std::string_view text);

// A steady-clock moment as wall-clock time and back, through the two clocks'
// present (`now`, `wall_now`): for cooldowns shown in UTC and kept across restarts.
std::chrono::system_clock::time_point wall_clock_of(std::chrono::steady_clock::time_point at,
                                                    std::chrono::steady_clock::time_point now,
                                                    std::chrono::system_clock::time_point wall_now);
std::chrono::steady_clock::time_point steady_clock_of(std::chrono::system_clock::time_point at,
                                                      std::chrono::steady_clock::time_point now,
                                                      std::chrono::system_clock::time_point wall_now);

// "20240501T123456Z": a timestamp usable in a file name.
std::string format_utc_compact(std::chrono::system_clock::time_point when);

// The UTC day holding `when` (days since 1970-01-01; the day starts at UTC midnight).
std::chrono::sys_days utc_day(std::chrono::system_clock::time_point when);

// "2024-05-01", and back (same year range as parse_utc).
std::string format_utc_day(std::chrono::sys_days day);
std::optional<std::chrono::sys_days> parse_utc_day(std::string_view text);

}  // namespace coordinator
