#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace coordinator {

// What the admin API says about a profile (a Playwright storage state) without
// a cookie's name or value: how many cookies, and when the first expires.
struct ProfileFacts {
  bool valid = false;   // an object with a `cookies` array
  std::string problem;  // why not (never quotes the file)
  std::size_t cookies = 0;
  // The earliest `expires` of a cookie that has one (session cookies, -1, have none).
  std::optional<std::chrono::system_clock::time_point> earliest_expiry;
};
ProfileFacts profile_facts(std::string_view text);

}  // namespace coordinator
