#include "coordinator/utc_time.hpp"

#include <cstdio>

namespace coordinator {

namespace {

using std::chrono::system_clock;

constexpr int kFirstYear = 1970;
constexpr int kLastYear = 2200;

// Reads exactly `digits` decimal digits at `at`, advancing it.
std::optional<int> read_digits(std::string_view text, std::size_t& at, std::size_t digits) {
  if (at + digits > text.size()) return std::nullopt;
  int value = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    const char c = text[at + i];
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  at += digits;
  return value;
}

bool read_char(std::string_view text, std::size_t& at, char expected) {
  if (at >= text.size() || text[at] != expected) return false;
  ++at;
  return true;
}

// "YYYY-MM-DD" at `at`, checked as a real calendar day in the accepted years.
std::optional<std::chrono::sys_days> read_day(std::string_view text, std::size_t& at) {
  const auto year = read_digits(text, at, 4);
  if (!year || !read_char(text, at, '-')) return std::nullopt;
  const auto month = read_digits(text, at, 2);
  if (!month || !read_char(text, at, '-')) return std::nullopt;
  const auto day = read_digits(text, at, 2);
  if (!day || *year < kFirstYear || *year > kLastYear) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year{*year}, std::chrono::month{static_cast<unsigned>(*month)},
                                         std::chrono::day{static_cast<unsigned>(*day)}};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days{date};
}

struct Civil {
  std::chrono::year_month_day date;
  std::chrono::hh_mm_ss<std::chrono::milliseconds> time;
};

Civil civil(system_clock::time_point when) {
  const auto millis = std::chrono::floor<std::chrono::milliseconds>(when);
  const auto day = std::chrono::floor<std::chrono::days>(millis);
  return {std::chrono::year_month_day{day}, std::chrono::hh_mm_ss<std::chrono::milliseconds>{millis - day}};
}

}  // namespace

std::string format_utc(system_clock::time_point when) {
  const Civil c = civil(when);
  char text[40];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(c.date.year()),
                static_cast<unsigned>(c.date.month()), static_cast<unsigned>(c.date.day()),
                static_cast<int>(c.time.hours().count()), static_cast<int>(c.time.minutes().count()),
                static_cast<int>(c.time.seconds().count()), static_cast<int>(c.time.subseconds().count()));
  return text;
}

std::string format_utc_compact(system_clock::time_point when) {
  const Civil c = civil(when);
  char text[32];
  std::snprintf(text, sizeof text, "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(c.date.year()),
                static_cast<unsigned>(c.date.month()), static_cast<unsigned>(c.date.day()),
                static_cast<int>(c.time.hours().count()), static_cast<int>(c.time.minutes().count()),
                static_cast<int>(c.time.seconds().count()));
  return text;
}

std::optional<system_clock::time_point> parse_utc(std::string_view text) {
  std::size_t at = 0;
  const auto day = read_day(text, at);
  if (!day || !read_char(text, at, 'T')) return std::nullopt;
  const auto hours = read_digits(text, at, 2);
  if (!hours || !read_char(text, at, ':')) return std::nullopt;
  const auto minutes = read_digits(text, at, 2);
  if (!minutes || !read_char(text, at, ':')) return std::nullopt;
  const auto seconds = read_digits(text, at, 2);
  if (!seconds || *hours > 23 || *minutes > 59 || *seconds > 59) return std::nullopt;
  std::int64_t nanos = 0;
  if (read_char(text, at, '.')) {
    std::size_t digits = 0;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9' && digits < 9) {
      nanos = nanos * 10 + (text[at++] - '0');
      ++digits;
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 9; ++digits) nanos *= 10;
  }
  if (!read_char(text, at, 'Z') || at != text.size()) return std::nullopt;
  const auto since_midnight = std::chrono::hours{*hours} + std::chrono::minutes{*minutes} +
                              std::chrono::seconds{*seconds} + std::chrono::nanoseconds{nanos};
  return std::chrono::time_point_cast<system_clock::duration>(system_clock::time_point{*day} + since_midnight);
}

std::chrono::sys_days utc_day(system_clock::time_point when) {
  return std::chrono::floor<std::chrono::days>(when);
}

std::string format_utc_day(std::chrono::sys_days day) {
  const std::chrono::year_month_day date{day};
  char text[24];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                static_cast<unsigned>(date.day()));
  return text;
}

std::optional<std::chrono::sys_days> parse_utc_day(std::string_view text) {
  std::size_t at = 0;
  const auto day = read_day(text, at);
  if (!day || at != text.size()) return std::nullopt;
  return day;
}

std::chrono::system_clock::time_point wall_clock_of(std::chrono::steady_clock::time_point at,
                                                    std::chrono::steady_clock::time_point now,
                                                    std::chrono::system_clock::time_point wall_now) {
  return wall_now + std::chrono::duration_cast<std::chrono::system_clock::duration>(at - now);
}

std::chrono::steady_clock::time_point steady_clock_of(std::chrono::system_clock::time_point at,
                                                      std::chrono::steady_clock::time_point now,
                                                      std::chrono::system_clock::time_point wall_now) {
  return now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(at - wall_now);
}

}  // namespace coordinator
