#include "coordinator/utc_time.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace coordinator;
using namespace std::chrono_literals;

namespace {

std::chrono::system_clock::time_point at(int y, unsigned m, unsigned d, std::chrono::nanoseconds since_midnight = {}) {
  return std::chrono::sys_days{std::chrono::year{y} / m / d} + since_midnight;
}

}  // namespace

TEST(UtcTime, FormatsWithMillisecondsAndZ) {
  EXPECT_EQ(format_utc(at(2024, 5, 1, 12h + 34min + 56s + 789ms)), "2024-05-01T12:34:56.789Z");
  EXPECT_EQ(format_utc(at(1970, 1, 1)), "1970-01-01T00:00:00.000Z");
  // Finer parts are dropped, not rounded up into the next second.
  EXPECT_EQ(format_utc(at(2024, 12, 31, 23h + 59min + 59s + 999999999ns)), "2024-12-31T23:59:59.999Z");
}

TEST(UtcTime, ParsesWhatItFormats) {
  const auto when = at(2031, 2, 28, 1h + 2min + 3s + 4ms);
  EXPECT_EQ(parse_utc(format_utc(when)), when);
  EXPECT_EQ(parse_utc("2024-05-01T12:00:00Z"), at(2024, 5, 1, 12h));
  EXPECT_EQ(parse_utc("2024-05-01T12:00:00.5Z"), at(2024, 5, 1, 12h + 500ms));
  EXPECT_EQ(parse_utc("2024-05-01T12:00:00.123456789Z"), at(2024, 5, 1, 12h + 123456789ns));
  EXPECT_EQ(parse_utc("2024-02-29T00:00:00Z"), at(2024, 2, 29));
}

TEST(UtcTime, RefusesWhatIsNoTimestamp) {
  for (const char* text : {"",
                           "2024-05-01",
                           "2024-05-01T12:00:00",
                           "2024-05-01 12:00:00Z",
                           "2024-05-01t12:00:00Z",
                           "2024-05-01T12:00:00+00:00",
                           "2024-05-01T12:00:00.Z",
                           "2024-05-01T12:00:00.1234567890Z",
                           "2024-05-01T12:00:00Zjunk",
                           "2023-02-29T00:00:00Z",
                           "2024-13-01T00:00:00Z",
                           "2024-00-01T00:00:00Z",
                           "2024-05-32T00:00:00Z",
                           "2024-05-01T24:00:00Z",
                           "2024-05-01T12:60:00Z",
                           "2024-05-01T12:00:60Z",
                           "9999-01-01T00:00:00Z",
                           "1969-12-31T23:59:59Z",
                           "+024-05-01T12:00:00Z",
                           "2024-5-01T12:00:00Z"}) {
    EXPECT_FALSE(parse_utc(text)) << text;
  }
}

TEST(UtcTime, DaysStartAtUtcMidnight) {
  const auto day = utc_day(at(2024, 5, 1, 23h + 59min + 59s + 999ms));
  EXPECT_EQ(format_utc_day(day), "2024-05-01");
  EXPECT_EQ(utc_day(at(2024, 5, 2)), day + std::chrono::days{1});
  EXPECT_EQ(parse_utc_day("2024-05-01"), day);
  EXPECT_FALSE(parse_utc_day("2024-05-01T00:00:00Z"));
  EXPECT_FALSE(parse_utc_day("2024-02-30"));
}

TEST(UtcTime, CompactFormIsFileNameSafe) {
  EXPECT_EQ(format_utc_compact(at(2024, 5, 1, 7h + 8min + 9s + 999ms)), "20240501T070809Z");
}
